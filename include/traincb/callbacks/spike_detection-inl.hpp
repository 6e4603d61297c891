#pragma once
// The bodies of traincb/callbacks/spike_detection.hpp's non-template functions: included at the end
// of that header when traincb is header-only, compiled once into traincb::compiled in the compiled
// mode (traincb/detail/config.hpp).
#include "traincb/callbacks/spike_detection.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE SpikeDetection::SpikeDetection(SpikeDetectionOptions options) : opt_(std::move(options)) {
    const auto bad = [](const std::string& what) {
        throw InvalidArgument(detail::cat("traincb: SpikeDetection: ", what));
    };
    if (opt_.window < 3)
        bad(detail::cat("window = ", std::to_string(opt_.window),
                        " is too small for a median and a MAD; pass window >= 3, e.g. 100"));
    if (opt_.warmup < 1 || opt_.warmup > opt_.window)
        bad(detail::cat("warmup = ", std::to_string(opt_.warmup),
                        " is outside [1, window = ", std::to_string(opt_.window),
                        "]; the window must hold warmup losses before it judges, e.g. 20"));
    if (!(opt_.threshold > 0) || std::isinf(opt_.threshold))
        bad(detail::cat("threshold = ", detail::format_double(opt_.threshold),
                        " is not a finite number > 0; pass the robust standard deviations above the median "
                        "that make a spike, e.g. 6"));
    if (!(opt_.min_delta >= 0) || std::isinf(opt_.min_delta))
        bad(detail::cat("min_delta = ", detail::format_double(opt_.min_delta),
                        " is not a finite number >= 0; pass the least excess over the median, e.g. 0"));
    if (opt_.max_rollbacks < 0)
        bad(detail::cat("max_rollbacks = ", std::to_string(opt_.max_rollbacks),
                        " is negative; pass max_rollbacks >= 0 (0 stops at the first spike)"));
    if (opt_.snapshot_every < 1)
        bad(detail::cat("snapshot_every = ", std::to_string(opt_.snapshot_every),
                        " is below 1; pass the batches between snapshots, e.g. 1 (a snapshot before every batch)"));
    const auto n = static_cast<std::size_t>(opt_.window);
    ring_.resize(n);
    scratch_.resize(n);
    snap_ring_.resize(n);
}

TRAINCB_INLINE std::string SpikeDetection::name() const {
    return "SpikeDetection";
}

TRAINCB_INLINE Capabilities SpikeDetection::required_capabilities() const {
    if (opt_.action == SpikeAction::Rollback) return {.learning_rate = false, .state = true, .rollback = true};
    return {};
}

TRAINCB_INLINE void SpikeDetection::on_train_begin(Context& ctx) {
    size_ = 0;
    head_ = 0;
    rollbacks_ = 0;
    events_.clear();
    request_snapshot(ctx);
}

TRAINCB_INLINE void SpikeDetection::on_epoch_begin(Context& ctx) {
    request_snapshot(ctx);
}

TRAINCB_INLINE void SpikeDetection::on_train_batch_end(Context& ctx) {
    const double loss = batch_loss(ctx);
    const bool finite = std::isfinite(loss);
    double bound = std::numeric_limits<double>::quiet_NaN();
    if (finite && size_ >= static_cast<std::size_t>(opt_.warmup)) bound = statistic().bound;
    const bool local = !finite || loss > bound;
    if (!ctx.comm().any(local)) {
        push(loss);
        if (opt_.action == SpikeAction::Rollback && ++since_snapshot_ >= opt_.snapshot_every) request_snapshot(ctx);
        return;
    }
    on_spike(ctx, loss, local);
}

TRAINCB_INLINE std::string SpikeDetection::state_key() const {
    return opt_.id.empty() ? "SpikeDetection" : opt_.id;
}

TRAINCB_INLINE void SpikeDetection::save_state(CallbackState& state) const {
    state.version = kStateVersion;
    nlohmann::json events = nlohmann::json::array();
    for (const SpikeEvent& e : events_)
        events.push_back({{"epoch", e.epoch},
                          {"batch", e.batch},
                          {"global_step", e.global_step},
                          {"loss", detail::format_double(e.loss)},
                          {"median", detail::format_double(e.median)},
                          {"mad", detail::format_double(e.mad)},
                          {"bound", detail::format_double(e.bound)},
                          {"local", e.local},
                          {"action", to_string(e.action)}});
    state.json = {{"options", options_json()}, {"rollbacks", rollbacks_}, {"events", std::move(events)}};
    const std::vector<double> w = window();
    state.tensors.clear();
    state.tensors.put(vector_tensor<double>("window", w));
}

TRAINCB_INLINE void SpikeDetection::load_state(const CallbackState& state, Context& ctx) {
    const std::string c = detail::cat("traincb: SpikeDetection: checkpointed state (key '", state_key(), "'): ");
    state.require_version(kStateVersion, "SpikeDetection", state_key());
    const nlohmann::json& j = state.json;
    try {
        const nlohmann::json& saved = j.at("options");
        if (saved != options_json())
            warn(detail::cat(c, "options changed since the checkpoint (was ", saved.dump(), ", now ",
                             options_json().dump(), "); the new values apply"));
        const int rollbacks = j.at("rollbacks").get<int>();
        std::vector<SpikeEvent> events;
        for (const auto& e : j.at("events")) events.push_back(parse_event(e, c));
        const Tensor* t = state.tensors.find("window");
        std::vector<double> w;
        if (t == nullptr || t->shape.size() != 1 || t->shape[0] < 0 ||
            !read_vector_tensor(*t, static_cast<std::size_t>(t->shape[0]), w))
            throw FormatError(c + "the tensor 'window' is missing or not F64 [n]");
        if (rollbacks < 0) throw FormatError(c + "'rollbacks' is negative");
        const std::size_t keep = std::min(w.size(), ring_.size());
        size_ = 0;
        head_ = 0;
        for (std::size_t i = w.size() - keep; i < w.size(); ++i) push(w[i]);
        rollbacks_ = rollbacks;
        events_ = std::move(events);
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(c + "malformed (" + e.what() + ")");
    }
    request_snapshot(ctx);  // the snapshot's copy of the window is the restored one
}

TRAINCB_INLINE double SpikeDetection::median_of(std::span<double> v) {
    const std::size_t n = v.size();
    const auto mid = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
    std::nth_element(v.begin(), mid, v.end());
    if (n % 2 == 1) return *mid;
    const double lower = *std::max_element(v.begin(), mid);
    return (lower + *mid) / 2;
}

TRAINCB_INLINE SpikeDetection::Stat SpikeDetection::statistic() const {
    Stat s;
    if (size_ == 0) return s;
    const std::span<double> v(scratch_.data(), size_);
    for (std::size_t i = 0; i < size_; ++i) v[i] = ring_[i];  // the ring's order does not matter here
    s.median = median_of(v);
    for (double& x : v) x = std::fabs(x - s.median);
    s.mad = median_of(v);
    s.bound = s.median + std::max(opt_.threshold * kMadScale * s.mad, opt_.min_delta);
    return s;
}

TRAINCB_INLINE void SpikeDetection::push(double loss) {
    ring_[head_] = loss;
    head_ = (head_ + 1) % ring_.size();
    size_ = std::min(size_ + 1, ring_.size());
}

TRAINCB_INLINE void SpikeDetection::request_snapshot(Context& ctx) {
    if (opt_.action != SpikeAction::Rollback || !ctx.rollback_supported()) return;
    ctx.request_snapshot();
    std::copy(ring_.begin(), ring_.end(), snap_ring_.begin());
    snap_head_ = head_;
    snap_size_ = size_;
    since_snapshot_ = 0;
}

TRAINCB_INLINE double SpikeDetection::batch_loss(Context& ctx) const {
    if (const RunState* rs = ctx.run_state(); rs != nullptr && rs->batch_loss) return *rs->batch_loss;
    if (const double* l = ctx.logs().find("loss")) return *l;
    throw LogicError(
        detail::cat("traincb: SpikeDetection: the loss of batch ", std::to_string(ctx.batch()), " of epoch ",
                    std::to_string(ctx.epoch() + 1),
                    " is unknown: the driver sets no RunState::batch_loss and the batch logs hold no 'loss'; "
                    "set one of them before on_train_batch_end"));
}

TRAINCB_INLINE void SpikeDetection::on_spike(Context& ctx, double loss, bool local) {
    const Stat s = statistic();
    SpikeEvent e;
    e.epoch = ctx.epoch();
    e.batch = ctx.batch();
    e.global_step = ctx.global_step();
    e.loss = loss;
    e.median = s.median;
    e.mad = s.mad;
    e.bound = size_ >= static_cast<std::size_t>(opt_.warmup) ? s.bound : std::numeric_limits<double>::quiet_NaN();
    e.local = local;
    e.action = opt_.action;
    const bool exhausted = opt_.action == SpikeAction::Rollback && rollbacks_ >= opt_.max_rollbacks;
    if (exhausted) e.action = SpikeAction::Stop;
    std::string what = describe(ctx, e);
    if (e.action == SpikeAction::Rollback) {
        ++rollbacks_;
        what += detail::cat("; rolling back and skipping the batch (rollback ", std::to_string(rollbacks_), " of ",
                            std::to_string(opt_.max_rollbacks), ")");
    } else if (exhausted) {
        what += detail::cat("; stopping: ", std::to_string(rollbacks_),
                            " rollbacks done (max_rollbacks = ", std::to_string(opt_.max_rollbacks), ")");
    } else if (e.action == SpikeAction::Stop) {
        what += "; stopping training";
    }
    events_.push_back(e);
    report(ctx, e, what);
    switch (e.action) {
        case SpikeAction::Raise:
            throw TrainingError(what +
                                "; set action = SpikeAction::Rollback to skip such batches, or raise "
                                "threshold");
        case SpikeAction::Stop:
            if (opt_.verbose > 0) warn(what);
            ctx.request_stop(
                name(), exhausted ? detail::cat("loss spike after ", std::to_string(rollbacks_),
                                                " rollbacks (max_rollbacks = ", std::to_string(opt_.max_rollbacks), ")")
                                  : std::string("loss spike"));
            return;
        case SpikeAction::Rollback:
            if (opt_.verbose > 0) warn(what);
            // Back to this callback's state at the snapshot: the batches replayed from there
            // enter the window again, as they did the first time.
            std::copy(snap_ring_.begin(), snap_ring_.end(), ring_.begin());
            head_ = snap_head_;
            size_ = snap_size_;
            since_snapshot_ = 0;
            ctx.request_rollback(name(), "loss spike");
            return;
    }
}

TRAINCB_INLINE std::string SpikeDetection::describe(const Context& ctx, const SpikeEvent& e) const {
    const std::int64_t steps = ctx.params().steps_per_epoch;
    std::string out = detail::cat("traincb: SpikeDetection: loss spike", e.local ? "" : " on another rank",
                                  " in epoch ", std::to_string(e.epoch + 1), ", batch ", std::to_string(e.batch + 1));
    if (steps > 0) out += detail::cat(" of ", std::to_string(steps));
    out += detail::cat(" (global step ", std::to_string(e.global_step), "): ");
    if (!e.local) out += "this rank's ";
    out += detail::cat("loss ", detail::format_double(e.loss));
    if (!std::isfinite(e.loss))
        out += " is not finite";
    else if (!std::isnan(e.bound))
        out += detail::cat(e.local ? " > " : " <= ", detail::format_double(e.bound));
    if (std::isnan(e.median))
        out += " (the window is empty)";
    else
        out += detail::cat(" (window median ", detail::format_double(e.median), ", MAD ", detail::format_double(e.mad),
                           ", threshold ", detail::format_double(opt_.threshold),
                           size_ < static_cast<std::size_t>(opt_.warmup) ? ", still warming up)" : ")");
    return out;
}

TRAINCB_INLINE void SpikeDetection::report(Context& ctx, const SpikeEvent& e, const std::string& message) const {
    RunEvent ev;
    ev.source = name();
    ev.kind = "loss_spike";
    ev.message = message;
    ev.epoch = e.epoch;
    ev.batch = static_cast<int>(e.batch);
    ev.global_step = e.global_step;
    ev.values.set("loss", e.loss);
    ev.values.set("median", e.median);
    ev.values.set("mad", e.mad);
    ev.values.set("bound", e.bound);
    ev.values.set("rollbacks", rollbacks_);
    ctx.report(std::move(ev));
}

TRAINCB_INLINE nlohmann::json SpikeDetection::options_json() const {
    return {{"action", to_string(opt_.action)},
            {"window", opt_.window},
            {"warmup", opt_.warmup},
            {"threshold", detail::format_double(opt_.threshold)},
            {"min_delta", detail::format_double(opt_.min_delta)},
            {"max_rollbacks", opt_.max_rollbacks}};
}

TRAINCB_INLINE SpikeEvent SpikeDetection::parse_event(const nlohmann::json& j, const std::string& c) {
    const auto real = [&](const char* key) {
        const nlohmann::json& v = j.at(key);
        const auto d = v.is_string() ? detail::parse_double(v.get_ref<const std::string&>()) : std::nullopt;
        if (!d) throw FormatError(detail::cat(c, "event field '", key, "' is not a number string: ", v.dump()));
        return *d;
    };
    SpikeEvent e;
    e.epoch = j.at("epoch").get<int>();
    e.batch = j.at("batch").get<std::int64_t>();
    e.global_step = j.at("global_step").get<std::int64_t>();
    e.loss = real("loss");
    e.median = real("median");
    e.mad = real("mad");
    e.bound = real("bound");
    e.local = j.at("local").get<bool>();
    const std::string a = j.at("action").get<std::string>();
    if (a == "stop")
        e.action = SpikeAction::Stop;
    else if (a == "raise")
        e.action = SpikeAction::Raise;
    else if (a == "rollback")
        e.action = SpikeAction::Rollback;
    else
        throw FormatError(detail::cat(c, "event action '", a, "' is not stop, raise or rollback"));
    return e;
}

}  // namespace traincb::inline v0
