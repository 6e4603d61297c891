#pragma once
/// @file sinks/memory.hpp
/// MemorySink: keeps everything a MetricLogger sends, for tests and for programs that want the
/// logs in memory (spdlog's ringbuffer/ostream sinks play this role there).

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/logs.hpp"
#include "traincb/sinks/sink.hpp"

namespace traincb::inline v0::sinks {

/// Options of MemorySink.
struct MemoryOptions {
    bool batches = false;  ///< ask for (and record) per-batch logs
};

/// Records the run: its RunInfo, every epoch's logs, the batches (when asked for), the RunEvents,
/// how it ended, and the order of every call as readable events ("begin", "epoch 0", "flush",
/// "batch 0.3", "event loss_spike", "end stopped"). begin() forgets the previous run.
class MemorySink final : public Sink {
public:
    MemorySink() = default;
    /// A sink that records batches when `options.batches` is set.
    explicit MemorySink(MemoryOptions options) : opt_(options) {}

    /// Forgets the previous run and records `info`.
    TRAINCB_INLINE void begin(const RunInfo& info) override;
    /// Records the epoch's logs.
    TRAINCB_INLINE void write_epoch(int epoch, const Logs& logs) override;
    /// MemoryOptions::batches.
    [[nodiscard]] TRAINCB_INLINE bool wants_batches() const override;
    /// Records the batch and its running means.
    TRAINCB_INLINE void write_batch(const BatchInfo& info, const Logs& logs) override;
    /// Records the event.
    TRAINCB_INLINE void write_event(const RunEvent& event) override;
    /// Records how the run ended.
    TRAINCB_INLINE void end(const TrainEnd& end) override;
    /// Counts the flush.
    TRAINCB_INLINE void flush() override;
    /// True: it writes no file, so in data-parallel training every rank records its run (the
    /// same logs on every rank).
    [[nodiscard]] TRAINCB_INLINE bool on_every_rank() const override;

    /// The RunInfo of the last begin(), if any.
    [[nodiscard]] const std::optional<RunInfo>& run_info() const noexcept { return run_; }
    /// (epoch, logs) for every epoch of the run, in order.
    [[nodiscard]] const std::vector<std::pair<int, Logs>>& rows() const noexcept { return rows_; }
    /// (batch, running means) for every batch of the run (empty unless MemoryOptions::batches).
    [[nodiscard]] const std::vector<std::pair<BatchInfo, Logs>>& batches() const noexcept { return batches_; }
    /// Every RunEvent of the run, in order.
    [[nodiscard]] const std::vector<RunEvent>& run_events() const noexcept { return run_events_; }
    /// How the run ended, once end() was called.
    [[nodiscard]] const std::optional<TrainEnd>& train_end() const noexcept { return end_; }
    /// Every call of the run, in order ("begin", "epoch 3", "flush", "batch 3.0", "event loss_spike",
    /// "end completed").
    [[nodiscard]] const std::vector<std::string>& events() const noexcept { return events_; }

private:
    MemoryOptions opt_;
    std::optional<RunInfo> run_;
    std::vector<std::pair<int, Logs>> rows_;
    std::vector<std::pair<BatchInfo, Logs>> batches_;
    std::vector<RunEvent> run_events_;
    std::optional<TrainEnd> end_;
    std::vector<std::string> events_;
};

}  // namespace traincb::inline v0::sinks

#if TRAINCB_DEFINITIONS
#include "traincb/sinks/memory-inl.hpp"
#endif
