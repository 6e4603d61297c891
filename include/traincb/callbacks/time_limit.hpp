#pragma once
/// @file callbacks/time_limit.hpp
/// TimeLimit: stops training before it runs past a wall-clock budget.
///
///     traincb::TimeLimit limit({.seconds = 3600});   // the whole run, across resumes
///
/// At each epoch end it predicts the next epoch's duration as the longest epoch measured so far
/// and stops when `elapsed + longest > seconds`: the maximum rather than a mean, because a
/// budget is usually a hard limit (a job's wall time) and a slow epoch must not overrun it. An
/// epoch's duration is measured from the previous epoch end (from the epoch begin for the first
/// epoch of a run) to this epoch end, so time spent between epochs by other callbacks
/// (checkpoints, logging) is counted. After each training batch it also stops as soon as the
/// budget is used up (the epoch then finishes with validation and on_epoch_end, as any stop
/// requested in a batch does). Stops are requested as ("TimeLimit", "time_limit").
///
/// The elapsed time is part of the callback's checkpointed state, so a resumed run gets only what
/// is left of the budget (time between the last checkpoint and a crash is not counted).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

/// Options of TimeLimit.
struct TimeLimitOptions {
    double seconds = 0.0;  ///< the wall-clock budget of the whole run, in seconds (finite, > 0)
    int verbose = 0;       ///< > 0 prints one line on stdout when it stops training
    /// The clock, in seconds from any fixed origin (for tests); empty means std::chrono::steady_clock.
    std::function<double()> now_seconds{};
    std::string id{};  ///< checkpoint state key; "" means "TimeLimit"
};

/// Stops training when the next epoch would end past a wall-clock budget, or once the budget is
/// used up after a batch.
class TimeLimit final : public Callback {
public:
    /// @throws InvalidArgument when `seconds` is not a finite number > 0.
    explicit TimeLimit(TimeLimitOptions options);

    /// Starts the clock of this run (the budget used by earlier runs comes from load_state).
    TRAINCB_INLINE void on_train_begin(Context&) override;

    /// Marks the start of the first epoch of the run (later epochs are measured end to end).
    TRAINCB_INLINE void on_epoch_begin(Context&) override;

    /// Stops once the budget is used up.
    TRAINCB_INLINE void on_train_batch_end(Context& ctx) override;

    /// Stops when the next epoch, as long as the longest so far, would end past the budget.
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;

    /// "TimeLimit".
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// The explicit id, else "TimeLimit".
    [[nodiscard]] TRAINCB_INLINE std::string state_key() const override;
    /// Writes the elapsed time of the whole run so far (version 1).
    TRAINCB_INLINE void save_state(CallbackState& state) const override;
    /// Adds the elapsed time of the earlier runs to this one's; requests a stop at once if the
    /// budget is already used up.
    /// @throws FormatError for another version or an elapsed time that is not a number >= 0.
    TRAINCB_INLINE void load_state(const CallbackState& state, Context& ctx) override;

    /// The options (now_seconds is the clock in use).
    [[nodiscard]] const TimeLimitOptions& options() const noexcept { return opt_; }
    /// Seconds used so far: this run's, plus the earlier runs' restored by load_state.
    [[nodiscard]] double elapsed() const { return elapsed_at(opt_.now_seconds()); }
    /// The longest epoch of this run, in seconds (0 before the first epoch end).
    [[nodiscard]] double longest_epoch() const noexcept { return longest_epoch_; }
    /// The 0-based epoch in which TimeLimit asked to stop; empty if it did not (as EarlyStopping's).
    [[nodiscard]] std::optional<int> stopped_epoch() const noexcept { return stopped_epoch_; }

private:
    static constexpr int kStateVersion = 1;

    [[nodiscard]] double elapsed_at(double t) const noexcept { return carried_ + (started_ ? t - run_start_ : 0.0); }
    // A driver that skips on_train_begin still gets a clock started at its first hook.
    void ensure_started();
    void stop(Context& ctx);
    static std::string secs(double s);

    TimeLimitOptions opt_;
    double run_start_ = 0.0;
    bool started_ = false;
    double carried_ = 0.0;
    double mark_ = 0.0;
    bool epoch_ended_ = false;
    double longest_epoch_ = 0.0;
    std::optional<int> stopped_epoch_{};
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/callbacks/time_limit-inl.hpp"
#endif
