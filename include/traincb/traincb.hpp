#pragma once
/// @file traincb.hpp
/// The umbrella header: one include for all of traincb.

#include "traincb/callback.hpp"
#include "traincb/communicator.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/direction.hpp"
#include "traincb/errors.hpp"
#include "traincb/logs.hpp"
#include "traincb/metrics.hpp"
#include "traincb/model.hpp"
#include "traincb/state.hpp"
#include "traincb/trainer.hpp"
#include "traincb/version.hpp"

#include "traincb/callbacks/early_stopping.hpp"
#include "traincb/callbacks/lambda_callback.hpp"
#include "traincb/callbacks/learning_curve_report.hpp"
#include "traincb/callbacks/learning_rate_scheduler.hpp"
#include "traincb/callbacks/metric_logger.hpp"
#include "traincb/callbacks/model_checkpoint.hpp"
#include "traincb/callbacks/reduce_lr_on_plateau.hpp"
#include "traincb/callbacks/spike_detection.hpp"
#include "traincb/callbacks/terminate_on_nan.hpp"
#include "traincb/callbacks/time_limit.hpp"
#include "traincb/callbacks/weight_averaging.hpp"

#include "traincb/sinks/console.hpp"
#include "traincb/sinks/csv.hpp"
#include "traincb/sinks/json_lines.hpp"
#include "traincb/sinks/memory.hpp"
#include "traincb/sinks/sink.hpp"
#include "traincb/sinks/tensorboard.hpp"

#include "traincb/interrupt.hpp"
#include "traincb/io/atomic_file.hpp"
#include "traincb/io/checkpoint.hpp"
#include "traincb/io/safetensors.hpp"
