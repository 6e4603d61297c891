// Part of traincb::compiled (traincb/detail/config.hpp): the bodies of the callback machinery,
// saved state, the distributed agreement and the Trainer's non-template helpers. Compiled with
// TRAINCB_COMPILED defined: the headers then only declare, and each *-inl.hpp included here
// defines, once for the whole program. Every *-inl.hpp is included by exactly one file of src/
// (CMakeLists.txt checks it).
#include "traincb/callback-inl.hpp"
#include "traincb/detail/async_checkpoint-inl.hpp"
#include "traincb/detail/monitor-inl.hpp"
#include "traincb/distributed-inl.hpp"
#include "traincb/state-inl.hpp"
#include "traincb/trainer-inl.hpp"
