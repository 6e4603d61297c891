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

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/errors.hpp"
#include "traincb/sinks/sink.hpp"

namespace traincb::inline v0 {

/// What MetricLogger and EpochMetricLogger share: the sinks, and the forwarding of train begin,
/// epoch end and train end. Not used on its own.
class MetricLoggerBase : public Callback {
public:
    /// Adds a sink after the ones given so far. @throws InvalidArgument for a null sink.
    MetricLoggerBase& add_sink(std::shared_ptr<sinks::Sink> sink) {
        if (!sink) throw InvalidArgument("traincb: MetricLogger: add_sink() got a null sink; pass a sink object");
        if (sink->wants_batches()) batch_sinks_.push_back(sink.get());
        sinks_.push_back(std::move(sink));
        return *this;
    }
    /// The sinks, in the order they receive each call.
    [[nodiscard]] const std::vector<std::shared_ptr<sinks::Sink>>& sinks() const noexcept { return sinks_; }
    /// True when some sink wants per-batch logs (then use MetricLogger, not EpochMetricLogger).
    [[nodiscard]] bool any_sink_wants_batches() const noexcept { return !batch_sinks_.empty(); }

    /// Calls begin(RunInfo{params, params.resumed, params.initial_epoch}) on every sink.
    /// @throws the first sink's exception, after every sink was called.
    void on_train_begin(Context& ctx) override {
        const sinks::RunInfo info{ctx.params(), ctx.params().resumed, ctx.params().initial_epoch};
        for_each_sink(sinks_, [&](sinks::Sink& s) { s.begin(info); });
    }
    /// Calls write_epoch(epoch, logs) then flush() on every sink.
    /// @throws the first sink's exception (e.g. IoError), after every sink was called.
    void on_epoch_end(Context& ctx) override {
        const int epoch = ctx.epoch();
        const Logs& logs = ctx.logs();
        for_each_sink(sinks_, [&](sinks::Sink& s) {
            s.write_epoch(epoch, logs);
            s.flush();
        });
    }
    /// Calls end(ctx.end()) on every sink, on every kind of end.
    /// @throws the first sink's exception, after every sink was called.
    void on_train_end(Context& ctx) override {
        const TrainEnd& end = ctx.end();
        for_each_sink(sinks_, [&](sinks::Sink& s) { s.end(end); });
    }
    /// "MetricLogger".
    [[nodiscard]] std::string name() const override { return "MetricLogger"; }

protected:
    MetricLoggerBase() = default;
    /// Takes the sinks in order. @throws InvalidArgument for a null sink.
    explicit MetricLoggerBase(std::vector<std::shared_ptr<sinks::Sink>> sinks) {
        for (auto& s : sinks) add_sink(std::move(s));
    }

    // One sink's I/O failure must not keep the other sinks from their record (the CSV file being
    // on a full disk is no reason to lose the console line); the first failure still propagates.
    template <class Range, class F>
    static void for_each_sink(const Range& range, F&& f) {
        std::exception_ptr first;
        for (const auto& s : range) {
            try {
                f(*s);
            } catch (...) {
                if (!first) first = std::current_exception();
            }
        }
        if (first) std::rethrow_exception(first);
    }

    std::vector<std::shared_ptr<sinks::Sink>> sinks_;
    std::vector<sinks::Sink*> batch_sinks_;  // the sinks whose wants_batches() was true when added
};

/// Forwards the run's logs to its sinks: begin at on_train_begin, each epoch's logs (then flush)
/// at on_epoch_end, each batch's running means at on_train_batch_end to the sinks that want
/// batches (a ConsoleSink on a terminal, for its progress bar), end at on_train_end. Add it last
/// (see the file comment). Because it overrides on_train_batch_end, CallbackList calls it after
/// every batch (an empty loop when no sink wants batches) and asks the driver for batch logs; when
/// no sink wants batches, EpochMetricLogger (or add_metric_logger) avoids even that.
class MetricLogger final : public MetricLoggerBase {
public:
    /// A logger with no sink yet (see add_sink).
    MetricLogger() = default;
    /// A logger writing to `sinks`, in order. @throws InvalidArgument for a null sink.
    explicit MetricLogger(std::vector<std::shared_ptr<sinks::Sink>> sinks) : MetricLoggerBase(std::move(sinks)) {}

    /// Calls write_batch on the sinks that want batches.
    /// @throws the first sink's exception, after every such sink was called.
    void on_train_batch_end(Context& ctx) override {
        if (batch_sinks_.empty()) return;
        const sinks::BatchInfo info{ctx.epoch(), ctx.batch(), ctx.params().steps_per_epoch, ctx.global_step()};
        const Logs& logs = ctx.logs();
        for_each_sink(batch_sinks_, [&](sinks::Sink& s) { s.write_batch(info, logs); });
    }
};

/// MetricLogger without the batch hook: CallbackList never calls it per batch, so it costs
/// nothing inside an epoch. Sinks that want batches get only the epoch calls (a ConsoleSink then
/// prints one line per epoch).
class EpochMetricLogger final : public MetricLoggerBase {
public:
    /// A logger with no sink yet (see add_sink).
    EpochMetricLogger() = default;
    /// A logger writing to `sinks`, in order. @throws InvalidArgument for a null sink.
    explicit EpochMetricLogger(std::vector<std::shared_ptr<sinks::Sink>> sinks) : MetricLoggerBase(std::move(sinks)) {}
};

/// Adds to `list` a logger for `sinks`: a MetricLogger when some sink wants batches, else an
/// EpochMetricLogger (no per-batch call). Returns it, for add_sink() of epoch-only sinks.
/// @throws InvalidArgument for a null sink.
inline std::shared_ptr<MetricLoggerBase> add_metric_logger(CallbackList& list,
                                                           std::vector<std::shared_ptr<sinks::Sink>> sinks) {
    bool batches = false;
    for (const auto& s : sinks) batches = batches || (s && s->wants_batches());
    if (batches) {
        auto logger = std::make_shared<MetricLogger>(std::move(sinks));
        list.add(logger);
        return logger;
    }
    auto logger = std::make_shared<EpochMetricLogger>(std::move(sinks));
    list.add(logger);
    return logger;
}

}  // namespace traincb::inline v0
