#pragma once
/// @file callbacks/learning_rate_scheduler.hpp
/// LearningRateScheduler: sets the model's learning rate at the start of every epoch from a
/// function of the epoch and the current rate (Keras semantics, docs/keras-semantics.md, "The other
/// callbacks").
///
///     traincb::LearningRateScheduler sched([](int epoch, double lr) {
///         return epoch < 10 ? lr : lr * std::exp(-0.1);
///     });
///
/// `epoch` is the 0-based absolute epoch (a resumed run continues the schedule where it left
/// off). The schedule must return a finite rate >= 0; anything else throws at that epoch instead
/// of silently training with a NaN rate.

#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

/// Sets the learning rate to `schedule(epoch, current_lr)` at each epoch begin (Keras's
/// LearningRateScheduler), and logs it as "learning_rate" at each epoch end.
class LearningRateScheduler final : public Callback {
public:
    /// The schedule: (0-based absolute epoch, current learning rate) -> new learning rate.
    using Schedule = std::function<double(int epoch, double lr)>;

    /// Lets Trainer reject this callback at compile time for a model without a learning rate.
    static constexpr bool requires_learning_rate = true;

    /// `verbose > 0` prints the rate set at each epoch on stdout (rank 0 only in data-parallel training).
    /// @throws InvalidArgument when `schedule` is empty.
    explicit LearningRateScheduler(Schedule schedule, int verbose = 0);

    /// Checks that the model exposes its learning rate.
    /// @throws InvalidArgument when it does not.
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;

    /// Sets the learning rate for this epoch.
    /// @throws InvalidArgument when the schedule returns NaN, an infinity or a negative rate.
    TRAINCB_INLINE void on_epoch_begin(Context& ctx) override;

    /// Writes logs["learning_rate"]: the rate used during this epoch.
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;

    /// "LearningRateScheduler".
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// The learning rate.
    [[nodiscard]] TRAINCB_INLINE Capabilities required_capabilities() const override;
    /// "learning_rate", which it writes at each epoch end (so a callback may monitor it).
    [[nodiscard]] TRAINCB_INLINE std::vector<std::string> provided_keys() const override;

private:
    static void check_model(Context& ctx);

    Schedule schedule_;
    int verbose_;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
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
#endif  // TRAINCB_DEFINITIONS
