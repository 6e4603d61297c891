#pragma once
/// @file callbacks/spike_detection.hpp
/// SpikeDetection: watches each training batch's loss against a running window of the recent
/// losses, with a robust statistic (the median and the median absolute deviation), and on a spike
/// stops training, throws, or rolls the batch back: the Trainer restores its in-memory snapshot of
/// the training state from before the batch, skips the batch, and goes on (docs/callbacks.md,
/// "SpikeDetection").
///
///     traincb::SpikeDetection spikes({.action = traincb::SpikeAction::Rollback, .max_rollbacks = 5});
///     trainer.fit(x, y, {.epochs = 20}, spikes, logger);   // SpikeDetection first, loggers last
///
/// A loss is a spike when it is not finite, or, once the window holds `warmup` losses, when it
/// exceeds median + max(threshold * 1.4826 * MAD, min_delta) of the window (1.4826 * MAD estimates
/// the standard deviation of normal noise, so `threshold` counts robust standard deviations). A
/// spike's loss never enters the window. With a communicator, the verdict is any-rank
/// (Communicator::any), so that every rank acts together.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/logs.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0 {

/// What SpikeDetection does on a spike.
enum class SpikeAction {
    Stop,      ///< request a stop (the epoch still completes its validation and on_epoch_end)
    Raise,     ///< throw TrainingError at once
    Rollback,  ///< undo the batch: the Trainer restores its snapshot and skips the batch (Context::request_rollback)
};

/// "stop", "raise", "rollback".
[[nodiscard]] constexpr const char* to_string(SpikeAction a) noexcept {
    switch (a) {
        case SpikeAction::Stop:
            return "stop";
        case SpikeAction::Raise:
            return "raise";
        case SpikeAction::Rollback:
            return "rollback";
    }
    return "?";
}

/// Options of SpikeDetection.
struct SpikeDetectionOptions {
    SpikeAction action = SpikeAction::Rollback;  ///< what a spike does
    int window = 100;        ///< the recent (non-spike) losses the statistic is computed over (>= 3)
    int warmup = 20;         ///< losses the window must hold before the statistic judges (1 .. window)
    double threshold = 6.0;  ///< robust standard deviations above the median that make a spike (> 0)
    double min_delta = 0.0;  ///< and the loss must exceed the median by more than this (finite, >= 0)
    int max_rollbacks = 10;  ///< rollbacks in a run (>= 0); the spike after them stops training
    int snapshot_every = 1;  ///< Rollback: batches between the Trainer's snapshots (>= 1); see docs/callbacks.md
    int verbose = 1;         ///< > 0: each spike is also a warning (traincb::warn)
    std::string id{};        ///< checkpoint state key; "" means "SpikeDetection"
};

/// One spike, as SpikeDetection recorded it.
struct SpikeEvent {
    int epoch = 0;                 ///< 0-based absolute epoch
    std::int64_t batch = 0;        ///< 0-based batch within the epoch
    std::int64_t global_step = 0;  ///< the global step of the batch (Context::global_step in its on_train_batch_end)
    double loss = 0;               ///< this rank's loss of the batch (NaN or infinite for a non-finite one)
    double median = std::numeric_limits<double>::quiet_NaN();  ///< the window's median before the batch (NaN: empty)
    double mad = std::numeric_limits<double>::quiet_NaN();     ///< the window's median absolute deviation (NaN: empty)
    /// median + max(threshold * 1.4826 * mad, min_delta): a larger loss is a spike; NaN during the
    /// warm-up, when only a non-finite loss is one.
    double bound = std::numeric_limits<double>::quiet_NaN();
    bool local = true;                       ///< false: the spike was on another rank (Communicator::any)
    SpikeAction action = SpikeAction::Stop;  ///< what was done (Stop also when max_rollbacks was reached)
};

/// Detects loss spikes against a running median/MAD window and stops, raises or rolls back.
class SpikeDetection final : public Callback {
public:
    /// 1 / Phi^-1(3/4): 1.4826 * MAD estimates the standard deviation of normal noise.
    static constexpr double kMadScale = 1.482602218505602;

    /// @throws InvalidArgument for a window below 3, a warmup outside [1, window], a threshold not
    /// > 0, a min_delta not finite and >= 0, a negative max_rollbacks or a snapshot_every below 1;
    /// the message names the value and the fix.
    explicit SpikeDetection(SpikeDetectionOptions options = {});

    /// "SpikeDetection", the source of its stop and rollback requests.
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// Rollback needs the model's state and a driver that rolls back (Trainer): a hand-written
    /// loop without CallbackList::set_rollback_support is refused at on_train_begin.
    [[nodiscard]] TRAINCB_INLINE Capabilities required_capabilities() const override;

    /// Forgets the previous run (window, rollbacks, events); with Rollback, asks for a snapshot.
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;
    /// With Rollback, asks for a snapshot before the epoch's first batch (a rollback never reaches
    /// into an earlier epoch).
    TRAINCB_INLINE void on_epoch_begin(Context& ctx) override;

    /// Judges the batch's loss (RunState::batch_loss, or in a loop that sets none, the batch logs'
    /// "loss"), agrees on the verdict with the other ranks (Communicator::any), and acts on a spike.
    /// @throws TrainingError with action Raise on a spike; LogicError when the batch's loss is
    /// unknown; what a sink throws for the event
    TRAINCB_INLINE void on_train_batch_end(Context& ctx) override;

    /// The explicit id, else "SpikeDetection".
    [[nodiscard]] TRAINCB_INLINE std::string state_key() const override;
    /// Writes the options (to tell a change), the rollbacks and the events as JSON (doubles as
    /// round-trip strings), and the window, oldest first, as the tensor "window" (F64).
    TRAINCB_INLINE void save_state(CallbackState& state) const override;
    /// Restores the state written by save_state (after on_train_begin of a resumed run); an option
    /// changed since is warned about and applies (a smaller window keeps the newest losses).
    /// @throws FormatError for another version or a malformed field
    TRAINCB_INLINE void load_state(const CallbackState& state, Context& ctx) override;

    /// The options, as validated.
    [[nodiscard]] const SpikeDetectionOptions& options() const noexcept { return opt_; }
    /// The losses in the window, oldest first.
    [[nodiscard]] std::vector<double> window() const {
        std::vector<double> out(size_);
        for (std::size_t i = 0; i < size_; ++i) out[i] = ring_[(head_ + ring_.size() - size_ + i) % ring_.size()];
        return out;
    }
    /// The window's median (NaN when it is empty).
    [[nodiscard]] double median() const { return statistic().median; }
    /// The window's median absolute deviation, unscaled (NaN when it is empty).
    [[nodiscard]] double mad() const { return statistic().mad; }
    /// Rollbacks done in the run (across resumes).
    [[nodiscard]] int rollbacks() const noexcept { return rollbacks_; }
    /// Every spike of the run, in order (across resumes).
    [[nodiscard]] const std::vector<SpikeEvent>& events() const noexcept { return events_; }

private:
    static constexpr int kStateVersion = 1;

    struct Stat {
        double median = std::numeric_limits<double>::quiet_NaN();
        double mad = std::numeric_limits<double>::quiet_NaN();
        double bound = std::numeric_limits<double>::quiet_NaN();
    };

    // The median of v (reordered), by selection: the middle element, or the mean of the two
    // middle ones for an even count.
    static double median_of(std::span<double> v);

    // The window's median, MAD and bound, in scratch_ (no allocation).
    [[nodiscard]] Stat statistic() const;

    void push(double loss);

    // With Rollback: asks the driver for a snapshot before the next batch, and keeps this
    // callback's own state as of then, to go back to with it.
    void request_snapshot(Context& ctx);

    double batch_loss(Context& ctx) const;

    void on_spike(Context& ctx, double loss, bool local);

    // "traincb: SpikeDetection: loss spike in epoch 3, batch 18 of 50 (global step 217): loss 12.5 >
    // 1.93 (window median 0.51, MAD 0.096, threshold 6)".
    std::string describe(const Context& ctx, const SpikeEvent& e) const;

    void report(Context& ctx, const SpikeEvent& e, const std::string& message) const;

    [[nodiscard]] nlohmann::json options_json() const;

    static SpikeEvent parse_event(const nlohmann::json& j, const std::string& c);

    SpikeDetectionOptions opt_;
    std::vector<double> ring_;             // the window: a ring of window() slots
    std::size_t head_ = 0;                 // the next slot to write
    std::size_t size_ = 0;                 // losses held
    mutable std::vector<double> scratch_;  // for the median and the MAD
    std::vector<double> snap_ring_;        // the window when the last snapshot was requested
    std::size_t snap_head_ = 0;
    std::size_t snap_size_ = 0;
    int since_snapshot_ = 0;  // batches pushed since the last snapshot request
    int rollbacks_ = 0;
    std::vector<SpikeEvent> events_;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
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
#endif  // TRAINCB_DEFINITIONS
