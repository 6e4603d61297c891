// Part of traincb::compiled (traincb/detail/config.hpp): the bodies of the sinks. Compiled with
// TRAINCB_COMPILED defined: the headers then only declare, and each *-inl.hpp included here
// defines, once for the whole program. Every *-inl.hpp is included by exactly one file of src/
// (CMakeLists.txt checks it).
#include "traincb/sinks/console-inl.hpp"
#include "traincb/sinks/csv-inl.hpp"
#include "traincb/sinks/json_lines-inl.hpp"
#include "traincb/sinks/memory-inl.hpp"
#include "traincb/sinks/tensorboard-inl.hpp"
