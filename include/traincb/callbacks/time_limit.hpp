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
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0 {

TRAINCB_INLINE TimeLimit::TimeLimit(TimeLimitOptions options) : opt_(std::move(options)) {
    if (!(opt_.seconds > 0.0) || std::isinf(opt_.seconds))
        throw InvalidArgument("traincb: TimeLimit: seconds = " + detail::format_double(opt_.seconds) +
                              " is not a budget; pass a finite number of seconds > 0, e.g. .seconds = 3600");
    if (!opt_.now_seconds)
        opt_.now_seconds = [] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
        };
}

TRAINCB_INLINE void TimeLimit::on_train_begin(Context&) {
    run_start_ = opt_.now_seconds();
    started_ = true;
    carried_ = 0.0;
    longest_epoch_ = 0.0;
    mark_ = run_start_;
    epoch_ended_ = false;
    stopped_epoch_.reset();
}

TRAINCB_INLINE void TimeLimit::on_epoch_begin(Context&) {
    ensure_started();
    if (!epoch_ended_) mark_ = opt_.now_seconds();
}

TRAINCB_INLINE void TimeLimit::on_train_batch_end(Context& ctx) {
    ensure_started();
    if (stopped_epoch_) return;
    const double elapsed = elapsed_at(opt_.now_seconds());
    if (elapsed < opt_.seconds) return;
    stop(ctx);
    if (opt_.verbose > 0)
        std::cout << "Epoch " << ctx.epoch() + 1 << ": TimeLimit stopping training: the budget of "
                  << secs(opt_.seconds) << " is used up (" << secs(elapsed) << " elapsed); the epoch finishes.\n";
}

TRAINCB_INLINE void TimeLimit::on_epoch_end(Context& ctx) {
    ensure_started();
    const double t = opt_.now_seconds();
    longest_epoch_ = std::max(longest_epoch_, t - mark_);
    mark_ = t;
    epoch_ended_ = true;
    if (stopped_epoch_) return;
    const double elapsed = elapsed_at(t);
    if (!(elapsed + longest_epoch_ > opt_.seconds)) return;
    stop(ctx);
    if (opt_.verbose > 0)
        std::cout << "Epoch " << ctx.epoch() + 1 << ": TimeLimit stopping training: " << secs(elapsed) << " of the "
                  << secs(opt_.seconds) << " budget used, and an epoch takes up to " << secs(longest_epoch_) << ".\n";
}

TRAINCB_INLINE std::string TimeLimit::name() const {
    return "TimeLimit";
}

TRAINCB_INLINE std::string TimeLimit::state_key() const {
    return opt_.id.empty() ? "TimeLimit" : opt_.id;
}

TRAINCB_INLINE void TimeLimit::save_state(CallbackState& state) const {
    state.version = kStateVersion;
    state.json = {{"elapsed", elapsed()}, {"seconds", opt_.seconds}};
}

TRAINCB_INLINE void TimeLimit::load_state(const CallbackState& state, Context& ctx) {
    const std::string c = "traincb: TimeLimit: checkpointed state (key '" + state_key() + "'): ";
    state.require_version(kStateVersion, "TimeLimit", state_key());
    const nlohmann::json& j = state.json;
    const auto it = j.is_object() ? j.find("elapsed") : j.end();
    if (it == j.end() || !it->is_number() || !(it->get<double>() >= 0.0) || std::isinf(it->get<double>()))
        throw FormatError(c + "expected {\"elapsed\": seconds >= 0}, got " + j.dump());
    carried_ = it->get<double>();
    if (elapsed() >= opt_.seconds) stop(ctx);
}

TRAINCB_INLINE void TimeLimit::ensure_started() {
    if (started_) return;
    run_start_ = opt_.now_seconds();
    mark_ = run_start_;
    started_ = true;
}

TRAINCB_INLINE void TimeLimit::stop(Context& ctx) {
    // Before the first epoch (from load_state) the stop belongs to the run's first epoch.
    stopped_epoch_ = ctx.epoch() >= 0 ? ctx.epoch() : ctx.params().initial_epoch;
    ctx.request_stop("TimeLimit", "time_limit");
}

TRAINCB_INLINE std::string TimeLimit::secs(double s) {
    return detail::format_fixed(s, 1) + "s";
}

}  // namespace traincb::inline v0
#endif  // TRAINCB_DEFINITIONS
