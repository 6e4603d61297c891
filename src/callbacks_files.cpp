// Part of traincb::compiled (traincb/detail/config.hpp): the bodies of the callbacks that keep
// weights or write files (checkpoints, weight averaging, the report). Compiled with
// TRAINCB_COMPILED defined: the headers then only declare, and each *-inl.hpp included here
// defines, once for the whole program. Every *-inl.hpp is included by exactly one file of src/
// (CMakeLists.txt checks it).
#include "traincb/callbacks/learning_curve_report-inl.hpp"
#include "traincb/callbacks/model_checkpoint-inl.hpp"
#include "traincb/callbacks/weight_averaging-inl.hpp"
