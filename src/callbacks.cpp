// Part of traincb::compiled (traincb/detail/config.hpp): the bodies of the callbacks that act on
// the logs (stopping, learning rate, logging). Compiled with TRAINCB_COMPILED defined: the headers
// then only declare, and each *-inl.hpp included here defines, once for the whole program. Every
// *-inl.hpp is included by exactly one file of src/ (CMakeLists.txt checks it).
#include "traincb/callbacks/early_stopping-inl.hpp"
#include "traincb/callbacks/lambda_callback-inl.hpp"
#include "traincb/callbacks/learning_rate_scheduler-inl.hpp"
#include "traincb/callbacks/metric_logger-inl.hpp"
#include "traincb/callbacks/reduce_lr_on_plateau-inl.hpp"
#include "traincb/callbacks/spike_detection-inl.hpp"
#include "traincb/callbacks/terminate_on_nan-inl.hpp"
#include "traincb/callbacks/time_limit-inl.hpp"
