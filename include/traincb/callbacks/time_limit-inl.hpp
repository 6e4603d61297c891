#pragma once
// The bodies of traincb/callbacks/time_limit.hpp's non-template functions: included at the end of
// that header when traincb is header-only, compiled once into traincb::compiled in the compiled
// mode (traincb/detail/config.hpp).
#include "traincb/callbacks/time_limit.hpp"

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
