// Part of traincb::compiled (traincb/detail/config.hpp): the metrics' state codecs and the metric
// classes' constructors, and with them each built-in metric's virtual functions (update over
// Eigen::Ref, merge, save_state, load_state, ...) and the kernels they use. Compiled with
// TRAINCB_COMPILED defined: the headers then only declare, and each *-inl.hpp included here
// defines, once for the whole program. Every *-inl.hpp is included by exactly one file of src/
// (CMakeLists.txt checks it).
#include "traincb/metrics-inl.hpp"
