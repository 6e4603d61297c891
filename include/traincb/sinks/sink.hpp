#pragma once
/// @file sinks/sink.hpp
/// The sink interface MetricLogger writes to, built like spdlog's: one small abstract class, many
/// small final implementations (CSV, JSON lines, console, TensorBoard, in-memory).

#include <cstdint>

#include "traincb/logs.hpp"
#include "traincb/train_params.hpp"

namespace traincb::inline v0::sinks {

/// What a sink learns when a run starts.
struct RunInfo {
    TrainParams params{};   ///< epochs, steps per epoch, batch size, ... of the run
    bool resumed = false;   ///< true when the run continues from a checkpoint
    int initial_epoch = 0;  ///< first epoch this run will log; on resume, rows with epoch >= this are dropped
};

/// One training batch, for sinks that want per-batch output (progress bar, per-batch scalars).
struct BatchInfo {
    int epoch = 0;                     ///< 0-based absolute epoch
    int batch = 0;                     ///< 0-based batch within the epoch
    std::int64_t steps_per_epoch = 0;  ///< 0 when unknown
    std::int64_t global_step = 0;      ///< batches done in the whole run, this one included
};

/// Receives a run's logs. Every function may throw IoError (naming the path and the OS error);
/// a sink never ignores an I/O failure.
class Sink {
public:
    Sink() = default;
    Sink(const Sink&) = delete;
    Sink& operator=(const Sink&) = delete;
    virtual ~Sink() = default;
    /// The run starts (open files, write headers, drop rows past a resumed epoch).
    virtual void begin(const RunInfo& info) { (void)info; }
    /// One epoch's logs (sorted keys; training values and val_* values).
    virtual void write_epoch(int epoch, const Logs& logs) = 0;
    /// True when the sink wants write_batch calls (they are skipped otherwise, at no cost).
    [[nodiscard]] virtual bool wants_batches() const { return false; }
    /// One batch's running means.
    virtual void write_batch(const BatchInfo& info, const Logs& logs) {
        (void)info;
        (void)logs;
    }
    /// Something a callback reported during the run (RunEvent: a loss spike rolled back, ...). The
    /// default ignores it; MemorySink records it and ConsoleSink prints its message.
    virtual void write_event(const RunEvent& event) { (void)event; }
    /// The run ended (flush and close; the reason is for sinks that report it).
    virtual void end(const TrainEnd& end) { (void)end; }
    /// Pushes buffered output to the OS.
    virtual void flush() {}
    /// True for a sink that writes no file and prints nothing (MemorySink): in data-parallel
    /// training MetricLogger calls it on every rank. False (the default): rank 0 only.
    [[nodiscard]] virtual bool on_every_rank() const { return false; }
};

}  // namespace traincb::inline v0::sinks
