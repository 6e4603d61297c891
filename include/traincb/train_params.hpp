#pragma once
/// @file train_params.hpp
/// TrainParams: what the driver of a run tells callbacks and sinks about it. Its own header so
/// that the sink interface needs neither the callback machinery nor JSON.

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "traincb/direction.hpp"

namespace traincb::inline v0 {

/// What the driver of a run (Trainer, or your own loop) tells callbacks about it.
struct TrainParams {
    int epochs = 0;                        ///< total epochs (absolute: the loop runs initial_epoch..epochs-1)
    int initial_epoch = 0;                 ///< first epoch of this run (> 0 when resuming)
    std::int64_t steps_per_epoch = 0;      ///< batches per epoch, 0 when unknown
    std::int64_t batch_size = 0;           ///< samples per batch, 0 when unknown
    std::int64_t samples = 0;              ///< training samples, 0 when unknown
    int verbose = 0;                       ///< the driver's verbosity
    bool has_validation = false;           ///< some epochs will log val_* keys
    bool resumed = false;                  ///< the run continues from a checkpoint (initial_epoch is where)
    std::filesystem::path resumed_from{};  ///< the checkpoint file the run resumed from (empty if none)
    /// The keys epoch logs will hold (training and val_*); empty when unknown. Used to check
    /// every monitored name before the first epoch.
    std::vector<std::string> log_keys{};
    /// Directions declared by the metric objects being logged, by log key (both `name` and
    /// `val_name`), so Mode::Auto resolves a metric by its own declaration.
    std::vector<std::pair<std::string, Direction>> metric_directions{};
};

}  // namespace traincb::inline v0
