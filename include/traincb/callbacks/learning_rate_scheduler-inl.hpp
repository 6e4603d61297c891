#pragma once
// The bodies of traincb/callbacks/learning_rate_scheduler.hpp's non-template functions: included at
// the end of that header when traincb is header-only, compiled once into traincb::compiled in the
// compiled mode (traincb/detail/config.hpp).
#include "traincb/callbacks/learning_rate_scheduler.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE LearningRateScheduler::LearningRateScheduler(Schedule schedule, int verbose)
    : schedule_(std::move(schedule)), verbose_(verbose) {
    if (!schedule_)
        throw InvalidArgument(
            "traincb: LearningRateScheduler: the schedule is empty; pass a function "
            "double(int epoch, double lr)");
}

TRAINCB_INLINE void LearningRateScheduler::on_train_begin(Context& ctx) {
    check_model(ctx);
}

TRAINCB_INLINE void LearningRateScheduler::on_epoch_begin(Context& ctx) {
    check_model(ctx);
    const int epoch = ctx.epoch();
    const double lr = schedule_(epoch, ctx.model().learning_rate());
    if (!std::isfinite(lr) || lr < 0.0)
        throw InvalidArgument("traincb: LearningRateScheduler: the schedule returned " + detail::format_double(lr) +
                              " for epoch " + std::to_string(epoch) +
                              " (0-based); it must return a finite learning rate >= 0");
    ctx.model().set_learning_rate(lr);
    if (verbose_ > 0 && ctx.comm().is_primary())  // data-parallel: rank 0 prints
        std::cout << "Epoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to "
                  << detail::format_double(lr) << ".\n";
}

TRAINCB_INLINE void LearningRateScheduler::on_epoch_end(Context& ctx) {
    check_model(ctx);
    ctx.logs().set("learning_rate", ctx.model().learning_rate());
}

TRAINCB_INLINE std::string LearningRateScheduler::name() const {
    return "LearningRateScheduler";
}

TRAINCB_INLINE Capabilities LearningRateScheduler::required_capabilities() const {
    return {.learning_rate = true, .state = false};
}

TRAINCB_INLINE std::vector<std::string> LearningRateScheduler::provided_keys() const {
    return {"learning_rate"};
}

TRAINCB_INLINE void LearningRateScheduler::check_model(Context& ctx) {
    if (ctx.model().has_learning_rate()) return;
    throw InvalidArgument(
        "traincb: LearningRateScheduler: needs the model's learning rate, but the model has no "
        "learning_rate() const / set_learning_rate(double); add them or specialise traincb::model_traits" +
        std::string(ctx.model().attached() ? "" : " (no model is attached: call CallbackList::set_model)"));
}

}  // namespace traincb::inline v0
