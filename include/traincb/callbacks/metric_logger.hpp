#pragma once
/// @file callbacks/metric_logger.hpp
/// MetricLogger: a callback that owns a list of sinks (CSV, JSON lines, console, TensorBoard,
/// memory) and hands each of them the run's logs, as spdlog's logger hands messages to its sinks.
///
///     auto csv = std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = "log.csv"});
///     auto console = std::make_shared<traincb::sinks::ConsoleSink>();
///     traincb::MetricLogger logger({csv, console});
///     traincb::CallbackList cbs{early_stopping, reduce_lr, logger};   // the logger last
///
/// Add it LAST, as Keras puts History and ProgbarLogger after the user's callbacks: callbacks may
/// add keys in on_epoch_end (ReduceLROnPlateau and LearningRateScheduler add `learning_rate`), and
/// only callbacks after them see those keys.
///
/// When the attached model exposes a learning rate, the sinks also get `learning_rate` (the rate
/// read at on_epoch_begin, i.e. the one used during the epoch) in epochs whose logs lack it, as
/// Keras's TensorBoard logs `epoch_learning_rate`. log_learning_rate(false) turns that off.
///
/// When no sink wants batches, the logger is left out of the batch loop: it costs nothing inside
/// an epoch, and the driver builds no batch logs for it.
///
/// A RunEvent that a callback reports (Context::report: SpikeDetection's loss spikes) goes to every
/// sink's write_event.
///
/// In data-parallel training (a Communicator with more than one rank) only rank 0 writes; every
/// rank keeps the same state. On the other ranks no method of a file or console sink is called
/// (no file opened, no directory created, nothing printed); a sink whose on_every_rank() is true
/// (MemorySink, which writes nothing) gets every call on every rank, with the same logs.

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/errors.hpp"
#include "traincb/logs.hpp"
#include "traincb/sinks/sink.hpp"

namespace traincb::inline v0 {

/// Forwards the run's logs to its sinks: begin at on_train_begin, each epoch's logs (then flush)
/// at on_epoch_end, each batch's running means at on_train_batch_end to the sinks that want
/// batches (a ConsoleSink on a terminal, for its progress bar), end at on_train_end. Add it last
/// (see the file comment). When none of its sinks wants batches, CallbackList leaves it out of the
/// batch loop (see wants_train_batch_end), so it costs nothing inside an epoch. In data-parallel
/// training (a Communicator with more than one rank) only rank 0 writes; every rank keeps the same
/// state (ranks other than 0 call only the sinks whose on_every_rank() is true).
class MetricLogger final : public Callback {
public:
    /// A logger with no sink yet (see add_sink).
    MetricLogger() = default;
    /// A logger writing to `sinks`, in order. @throws InvalidArgument for a null sink.
    explicit MetricLogger(std::vector<std::shared_ptr<sinks::Sink>> sinks);

    /// Adds a sink after the ones given so far. A sink that wants batches gets them from the next
    /// on_train_begin on. @throws InvalidArgument for a null sink.
    MetricLogger& add_sink(std::shared_ptr<sinks::Sink> sink);
    /// The sinks, in the order they receive each call.
    [[nodiscard]] const std::vector<std::shared_ptr<sinks::Sink>>& sinks() const noexcept { return sinks_; }
    /// True when some sink wants per-batch logs (Sink::wants_batches() when it was added).
    [[nodiscard]] bool any_sink_wants_batches() const noexcept { return !batch_sinks_.empty(); }
    /// Whether the model's learning rate is added for the sinks (default true; see the file comment).
    MetricLogger& log_learning_rate(bool on) noexcept {
        log_lr_ = on;
        return *this;
    }
    /// True when the model's learning rate is added for the sinks.
    [[nodiscard]] bool log_learning_rate() const noexcept { return log_lr_; }

    /// Calls begin(RunInfo{params, params.resumed, params.initial_epoch}) on every sink (on ranks
    /// other than 0: on the sinks whose on_every_rank() is true, here and in every hook below).
    /// @throws the first sink's exception, after every sink was called.
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;
    /// Reads the model's learning rate, when it has one: a scheduler earlier in the list has set
    /// this epoch's rate by now, and a callback may change it in on_epoch_end (ReduceLROnPlateau
    /// does), so this is the rate the epoch trains with. Once per epoch, never per batch.
    /// @throws what the model's learning_rate() throws.
    TRAINCB_INLINE void on_epoch_begin(Context& ctx) override;
    /// Calls write_batch on the sinks that want batches.
    /// @throws the first sink's exception, after every such sink was called.
    TRAINCB_INLINE void on_train_batch_end(Context& ctx) override;
    /// Calls write_epoch(epoch, logs) then flush() on every sink; the logs get `learning_rate`
    /// (in a copy: the run's logs stay as the callbacks left them) when the model has one, the
    /// option is on and no callback logged it (a callback's value wins).
    /// @throws the first sink's exception (e.g. IoError), after every sink was called.
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;
    /// Calls write_event(ctx.run_event()) on every sink (a RunEvent a callback reported).
    /// @throws the first sink's exception, after every sink was called.
    TRAINCB_INLINE void on_run_event(Context& ctx) override;
    /// Calls end(ctx.end()) on every sink, on every kind of end.
    /// @throws the first sink's exception, after every sink was called.
    TRAINCB_INLINE void on_train_end(Context& ctx) override;
    /// True when some sink wants batches: otherwise CallbackList does not call on_train_batch_end,
    /// and a driver with no other batch callback builds no batch logs.
    [[nodiscard]] TRAINCB_INLINE bool wants_train_batch_end() const override;
    /// "MetricLogger".
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;

private:
    // One sink's I/O failure must not keep the other sinks from their record (the CSV file being
    // on a full disk is no reason to lose the console line); the first failure still propagates.
    // Ranks other than 0 skip the sinks that write (data-parallel training: rank 0 writes).
    template <class Range, class F>
    static void for_each_sink(Context& ctx, const Range& range, F&& f) {
        const bool primary = ctx.comm().is_primary();
        std::exception_ptr first;
        for (const auto& s : range) {
            if (!primary && !s->on_every_rank()) continue;
            try {
                f(*s);
            } catch (...) {
                if (!first) first = std::current_exception();
            }
        }
        if (first) std::rethrow_exception(first);
    }

    // The log key of the learning rate, as ReduceLROnPlateau and LearningRateScheduler write it.
    static constexpr std::string_view kLearningRateKey = "learning_rate";

    std::vector<std::shared_ptr<sinks::Sink>> sinks_;
    std::vector<sinks::Sink*> batch_sinks_;  // the sinks whose wants_batches() was true when added
    bool log_lr_ = true;
    int lr_epoch_ = -1;  // the epoch whose rate lr_ holds (-1: none)
    double lr_ = 0;
    Logs with_lr_;  // the epoch's logs plus learning_rate, handed to the sinks
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/callbacks/metric_logger-inl.hpp"
#endif
