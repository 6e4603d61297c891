#pragma once
// The bodies of traincb/callbacks/metric_logger.hpp's non-template functions: included at the end
// of that header when traincb is header-only, compiled once into traincb::compiled in the compiled
// mode (traincb/detail/config.hpp).
#include "traincb/callbacks/metric_logger.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE MetricLogger::MetricLogger(std::vector<std::shared_ptr<sinks::Sink>> sinks) {
    for (auto& s : sinks) add_sink(std::move(s));
}

TRAINCB_INLINE MetricLogger& MetricLogger::add_sink(std::shared_ptr<sinks::Sink> sink) {
    if (!sink) throw InvalidArgument("traincb: MetricLogger: add_sink() got a null sink; pass a sink object");
    if (sink->wants_batches()) batch_sinks_.push_back(sink.get());
    sinks_.push_back(std::move(sink));
    return *this;
}

TRAINCB_INLINE void MetricLogger::on_train_begin(Context& ctx) {
    lr_epoch_ = -1;
    const sinks::RunInfo info{ctx.params(), ctx.params().resumed, ctx.params().initial_epoch};
    for_each_sink(ctx, sinks_, [&](sinks::Sink& s) { s.begin(info); });
}

TRAINCB_INLINE void MetricLogger::on_epoch_begin(Context& ctx) {
    lr_epoch_ = -1;
    if (!log_lr_ || !ctx.model().has_learning_rate()) return;
    lr_ = ctx.model().learning_rate();
    lr_epoch_ = ctx.epoch();
}

TRAINCB_INLINE void MetricLogger::on_train_batch_end(Context& ctx) {
    if (batch_sinks_.empty()) return;
    const sinks::BatchInfo info{ctx.epoch(), ctx.batch(), ctx.params().steps_per_epoch, ctx.global_step()};
    const Logs& logs = ctx.logs();
    for_each_sink(ctx, batch_sinks_, [&](sinks::Sink& s) { s.write_batch(info, logs); });
}

TRAINCB_INLINE void MetricLogger::on_epoch_end(Context& ctx) {
    const int epoch = ctx.epoch();
    const Logs* logs = &ctx.logs();
    if (log_lr_ && !logs->contains(kLearningRateKey) && ctx.model().has_learning_rate()) {
        // No on_epoch_begin for an epoch resumed from a mid-epoch checkpoint: the model's
        // rate now, which only a callback that changes it in on_epoch_end without logging
        // it could have moved.
        const double lr = lr_epoch_ == epoch ? lr_ : ctx.model().learning_rate();
        with_lr_ = *logs;  // a member: reuses the previous epoch's storage
        with_lr_.set(kLearningRateKey, lr);
        logs = &with_lr_;
    }
    for_each_sink(ctx, sinks_, [&](sinks::Sink& s) {
        s.write_epoch(epoch, *logs);
        s.flush();
    });
}

TRAINCB_INLINE void MetricLogger::on_run_event(Context& ctx) {
    const RunEvent& event = ctx.run_event();
    for_each_sink(ctx, sinks_, [&](sinks::Sink& s) { s.write_event(event); });
}

TRAINCB_INLINE void MetricLogger::on_train_end(Context& ctx) {
    const TrainEnd& end = ctx.end();
    for_each_sink(ctx, sinks_, [&](sinks::Sink& s) { s.end(end); });
}

TRAINCB_INLINE bool MetricLogger::wants_train_batch_end() const {
    return !batch_sinks_.empty();
}

TRAINCB_INLINE std::string MetricLogger::name() const {
    return "MetricLogger";
}

}  // namespace traincb::inline v0
