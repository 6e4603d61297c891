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
#include "traincb/callbacks/learning_rate_scheduler-inl.hpp"
#endif
