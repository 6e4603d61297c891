// Part of traincb::compiled (traincb/detail/config.hpp): the bodies of the atomic-file layer and
// the safetensors and checkpoint reader and writer. Compiled with TRAINCB_COMPILED defined: the
// headers then only declare, and each *-inl.hpp included here defines, once for the whole program.
// Every *-inl.hpp is included by exactly one file of src/ (CMakeLists.txt checks it).
#include "traincb/io/atomic_file-inl.hpp"
#include "traincb/io/checkpoint-inl.hpp"
#include "traincb/io/safetensors-inl.hpp"
