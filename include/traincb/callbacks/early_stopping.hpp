#pragma once
/// @file callbacks/early_stopping.hpp
/// EarlyStopping: Keras 3.15's rules (docs/keras-semantics.md, "EarlyStopping") with five
/// improvements, all specified in docs/early-stopping-rules.md: negative min_delta rejected; a NaN
/// is never best; the baseline means "stop unless beaten within patience epochs"; a missing monitor
/// is an error under strict; restore_best_weights also on an exception. Plus Lightning's
/// stopping/divergence thresholds and check_finite, and a relative min_delta. With several monitors
/// (EarlyStoppingOptions::monitors) it stops only when none of them improves (docs/early-stopping-
/// rules.md, "Several monitors"). restore_best_weights restores the weights only
/// (StateKind::Weight), as Keras does: the optimizer state and the learning rate are not rolled back.

#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/monitor.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0 {

/// How min_delta is applied.
enum class DeltaMode {
    Absolute,  ///< the margin is min_delta
    Relative,  ///< the margin is min_delta * abs(reference): 0.01 means "1% better"
};

/// Why EarlyStopping stopped training.
enum class StopReason {
    None,                 ///< it did not stop training
    PatienceExhausted,    ///< "patience"
    StoppingThreshold,    ///< "stopping_threshold"
    DivergenceThreshold,  ///< "divergence_threshold"
    NonFiniteMetric,      ///< "non_finite"
};

/// "patience", "stopping_threshold", "divergence_threshold", "non_finite", or "" for None.
[[nodiscard]] constexpr const char* to_string(StopReason r) noexcept {
    switch (r) {
        case StopReason::None:
            return "";
        case StopReason::PatienceExhausted:
            return "patience";
        case StopReason::StoppingThreshold:
            return "stopping_threshold";
        case StopReason::DivergenceThreshold:
            return "divergence_threshold";
        case StopReason::NonFiniteMetric:
            return "non_finite";
    }
    return "";
}

/// Parses "auto", "min" or "max". @throws InvalidArgument for anything else.
[[nodiscard]] TRAINCB_INLINE Mode parse_mode(std::string_view s);

/// Parses "abs"/"absolute" or "rel"/"relative". @throws InvalidArgument for anything else.
[[nodiscard]] TRAINCB_INLINE DeltaMode parse_delta_mode(std::string_view s);

/// One monitor of a multi-metric EarlyStopping (EarlyStoppingOptions::monitors).
struct MonitorSpec {
    std::string key{};       ///< key of the epoch logs; not empty
    Mode mode = Mode::Auto;  ///< Min, Max, or Auto (from the metric's direction or name)
    double min_delta = 0;    ///< >= 0; this monitor's margin (scaled as min_delta_mode says)
};

/// EarlyStopping's options (see docs/early-stopping-rules.md for each rule).
struct EarlyStoppingOptions {
    std::string monitor = "val_loss";                ///< key of the epoch logs
    Mode mode = Mode::Auto;                          ///< Min, Max, or Auto (from the metric's direction or name)
    double min_delta = 0;                            ///< >= 0; the margin an improvement must exceed
    DeltaMode min_delta_mode = DeltaMode::Absolute;  ///< absolute margin or relative to the reference
    int patience = 0;                                ///< >= 0; non-improving monitored epochs tolerated (0 acts as 1)
    std::optional<double> baseline{};                ///< stop unless beaten within patience epochs
    int start_from_epoch = 0;                        ///< >= 0; epochs before this absolute index are ignored
    bool restore_best_weights = false;               ///< restore the best epoch's weights when training ends
    std::optional<double> stopping_threshold{};      ///< stop once the monitor is strictly better than this
    std::optional<double> divergence_threshold{};    ///< stop once the monitor is strictly worse than this
    bool check_finite = true;                        ///< stop once the monitor is NaN or infinite
    bool strict = true;                              ///< a missing monitor is an error (else a warning, once)
    int verbose = 0;                                 ///< > 0: print Keras's messages (epochs numbered from 1)
    std::string id{};                                ///< explicit state key, for two instances with the same monitor
    std::vector<MonitorSpec> monitors{};  ///< several monitors, the first primary; replaces monitor/mode/min_delta
};

/// Stops training when a monitored metric has stopped improving (with several monitors: when none
/// of them improves).
/// @code
/// traincb::EarlyStopping es({.monitor = "val_loss", .patience = 5, .restore_best_weights = true});
/// traincb::EarlyStopping both({.patience = 5, .monitors = {{.key = "val_loss"}, {.key = "val_accuracy"}}});
/// @endcode
class EarlyStopping final : public Callback {
public:
    /// @throws InvalidArgument for a negative patience, min_delta or start_from_epoch, a NaN
    /// threshold, or an empty monitor; with `monitors`: monitor, mode or min_delta also set, or an
    /// entry with an empty or repeated key or a bad min_delta.
    explicit EarlyStopping(EarlyStoppingOptions options = {});

    /// The options it was built with.
    [[nodiscard]] const EarlyStoppingOptions& options() const noexcept { return opt_; }
    /// The primary monitor's resolved direction (nullopt until resolved: Auto on a name only a
    /// metric object declares).
    [[nodiscard]] std::optional<Direction> direction() const noexcept { return monitors_.front().dir; }
    /// The epoch at which it stopped training, or nullopt.
    [[nodiscard]] std::optional<int> stopped_epoch() const noexcept { return stopped_epoch_; }
    /// The epoch of the (primary monitor's) best value, or nullopt when nothing was monitored.
    [[nodiscard]] std::optional<int> best_epoch() const noexcept { return monitors_.front().best_epoch; }
    /// The (primary monitor's) best value, or nullopt when nothing was monitored.
    [[nodiscard]] std::optional<double> best() const noexcept { return monitors_.front().best; }
    /// Monitored epochs since the last improvement that also beat the baseline; with several
    /// monitors, the smallest of their waits (the epochs since any of them last improved).
    [[nodiscard]] int wait() const noexcept {
        int w = monitors_.front().wait;
        for (const Tracker& t : monitors_) w = std::min(w, t.wait);
        return w;
    }
    /// The monitored keys, the primary one first (just `monitor` without `monitors`).
    [[nodiscard]] std::vector<std::string> monitor_keys() const;
    /// Monitor `key`'s best value, or nullopt. @throws InvalidArgument when `key` is not monitored.
    [[nodiscard]] std::optional<double> best(std::string_view key) const { return tracker(key).best; }
    /// The epoch of monitor `key`'s best value, or nullopt. @throws InvalidArgument when `key` is not
    /// monitored.
    [[nodiscard]] std::optional<int> best_epoch(std::string_view key) const { return tracker(key).best_epoch; }
    /// Monitor `key`'s own wait. @throws InvalidArgument when `key` is not monitored.
    [[nodiscard]] int wait(std::string_view key) const { return tracker(key).wait; }
    /// Monitor `key`'s resolved direction, or nullopt. @throws InvalidArgument when `key` is not
    /// monitored.
    [[nodiscard]] std::optional<Direction> direction(std::string_view key) const { return tracker(key).dir; }
    /// Why it stopped training (StopReason::None if it did not).
    [[nodiscard]] StopReason stop_reason() const noexcept { return reason_; }
    /// The epoch whose state was restored at the end of training, or nullopt.
    [[nodiscard]] std::optional<int> restored_from_epoch() const noexcept { return restored_from_; }
    /// The in-memory snapshot of the best epoch's weights (empty unless restore_best_weights).
    [[nodiscard]] const StateSnapshot& best_state() const noexcept { return snapshot_; }

    /// "EarlyStopping" (the source of its stop requests and the start of its messages).
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// The monitors when `strict` (checked against the keys the driver will log before epoch 1).
    [[nodiscard]] TRAINCB_INLINE std::vector<std::string> required_keys() const override;
    /// Model state, when `restore_best_weights` (checked before epoch 1).
    [[nodiscard]] TRAINCB_INLINE Capabilities required_capabilities() const override;

    /// Resets per-run state and resolves Auto mode. @throws InvalidArgument when Auto cannot be
    /// resolved or restore_best_weights is set and the model has no state.
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;

    /// Applies the decision of docs/early-stopping-rules.md to this epoch's monitored values.
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;

    /// Restores the best epoch's weights (on every exit, including an exception; training state such
    /// as the optimizer's moments and the learning rate keeps its latest value) and prints Keras's
    /// messages (in data-parallel training, on rank 0 only).
    TRAINCB_INLINE void on_train_end(Context& ctx) override;

    /// The outcome of one epoch's monitored values (exposed so tools can replay a history without
    /// a model).
    struct Decision {
        bool improved = false;               ///< the (primary) monitor's value became its new best
        StopReason stop = StopReason::None;  ///< why training should stop now, or None
    };
    /// Feeds the one monitor's value for absolute epoch `epoch` (steps 2-6 of the decision);
    /// updates best, best_epoch, wait. Does not snapshot or request a stop: on_epoch_end does.
    /// @throws InvalidArgument when there are several monitors (pass one value per monitor).
    Decision decide(double v, int epoch);
    /// Feeds each monitor's value (in monitor_keys() order; nullopt: not logged, skipped) for
    /// absolute epoch `epoch`: the decision of docs/early-stopping-rules.md ("Several monitors").
    /// @throws InvalidArgument when `values` does not hold one entry per monitor.
    Decision decide(std::span<const std::optional<double>> values, int epoch);
    /// Resolves the directions outside a run (for replay tools). @throws InvalidArgument.
    void resolve(const std::vector<std::pair<std::string, Direction>>& declared = {});
    /// Forgets every per-run value (done at on_train_begin).
    void reset() noexcept;

    /// The explicit id, else "EarlyStopping:<monitor>" (several monitors: "EarlyStopping:<key1>+<key2>...").
    [[nodiscard]] TRAINCB_INLINE std::string state_key() const override;
    /// Writes best, best_epoch, wait, stopped_epoch, the reason and the options (version 1), each
    /// monitor's best, best_epoch and wait when there are several, and the best-weights snapshot
    /// as tensors (the weights only).
    TRAINCB_INLINE void save_state(CallbackState& s) const override;
    /// Restores what save_state wrote; all or nothing. Changed options win, with a warning. Each
    /// monitor takes the saved values of its key (a one-monitor state: of `options.monitor`; one
    /// monitor takes a one-monitor state whatever its key); a monitor without saved values starts
    /// fresh, with a warning. The snapshot takes the model's weights from the tensors; a state
    /// written before traincb told weights from training state also holds the training state,
    /// which is ignored.
    /// @throws FormatError for another version or a malformed state, naming the state key
    TRAINCB_INLINE void load_state(const CallbackState& s, Context& ctx) override;

private:
    // One monitor: its spec, its resolved direction and its per-run values.
    struct Tracker {
        MonitorSpec spec;
        std::optional<Direction> dir{};
        std::optional<double> best{};
        std::optional<int> best_epoch{};
        int wait = 0;
        bool warned_missing = false;
    };

    // The checks of `monitors` (docs/early-stopping-rules.md, "Several monitors").
    template <class Bad>
    void check_monitors(const Bad& bad) const {
        if (opt_.monitor != "val_loss")
            bad(detail::cat("monitor '", opt_.monitor, "' and monitors are both set; put '", opt_.monitor,
                            "' first in monitors (the first one is the primary) and leave monitor unset"));
        if (opt_.mode != Mode::Auto)
            bad("mode is set together with monitors; set each monitor's own MonitorSpec::mode and leave mode unset");
        if (opt_.min_delta != 0)
            bad(detail::cat("min_delta ", detail::format_double(opt_.min_delta),
                            " is set together with monitors; set each monitor's own MonitorSpec::min_delta and leave "
                            "min_delta unset"));
        for (std::size_t i = 0; i < opt_.monitors.size(); ++i) {
            const MonitorSpec& m = opt_.monitors[i];
            const std::string which = detail::cat("monitors[", std::to_string(i), "]");
            if (m.key.empty())
                bad(detail::cat(which, " has an empty key; pass the log key to watch, e.g. \"val_accuracy\""));
            if (!(m.min_delta >= 0) || std::isinf(m.min_delta))
                bad(detail::cat(which, " ('", m.key, "'): min_delta must be a finite number >= 0, got ",
                                detail::format_double(m.min_delta), "; pass the margin itself"));
            for (std::size_t k = 0; k < i; ++k)
                if (opt_.monitors[k].key == m.key)
                    bad(detail::cat(which, ": '", m.key, "' is also monitors[", std::to_string(k),
                                    "]; list each key once"));
        }
    }
    [[nodiscard]] const Tracker& tracker(std::string_view key) const;
    [[nodiscard]] double margin(const Tracker& t, double ref) const noexcept {
        return opt_.min_delta_mode == DeltaMode::Relative ? t.spec.min_delta * std::abs(ref) : t.spec.min_delta;
    }
    // Steps 3 to 5 for one monitor's value; the baseline applies to the primary only. Returns
    // whether the value became the monitor's new best.
    bool update(Tracker& t, double v, int epoch, bool primary);
    [[nodiscard]] nlohmann::json options_json() const;
    void handle_missing(const Logs& logs, Tracker& t);

    EarlyStoppingOptions opt_;
    std::vector<Tracker> monitors_;              // one per monitor, the primary first
    std::vector<std::optional<double>> values_;  // this epoch's values (reused: no allocation per epoch)
    std::optional<int> stopped_epoch_{};
    std::optional<int> restored_from_{};
    StopReason reason_ = StopReason::None;
    StateSnapshot snapshot_;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0 {

TRAINCB_INLINE Mode parse_mode(std::string_view s) {
    if (s == "auto") return Mode::Auto;
    if (s == "min") return Mode::Min;
    if (s == "max") return Mode::Max;
    throw InvalidArgument("traincb: EarlyStopping: unknown mode '" + std::string(s) + "'; use auto, min or max");
}

TRAINCB_INLINE DeltaMode parse_delta_mode(std::string_view s) {
    if (s == "abs" || s == "absolute") return DeltaMode::Absolute;
    if (s == "rel" || s == "relative") return DeltaMode::Relative;
    throw InvalidArgument("traincb: EarlyStopping: unknown min_delta_mode '" + std::string(s) + "'; use abs or rel");
}

TRAINCB_INLINE EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : opt_(std::move(options)) {
    auto bad = [](const std::string& what) { throw InvalidArgument("traincb: EarlyStopping: " + what); };
    if (!opt_.monitors.empty()) check_monitors(bad);
    if (opt_.monitor.empty()) bad("monitor is empty; pass the log key to watch, e.g. \"val_loss\"");
    if (opt_.patience < 0) bad("patience must be >= 0, got " + std::to_string(opt_.patience) + "; pass 0 or more");
    if (!(opt_.min_delta >= 0) || std::isinf(opt_.min_delta))
        bad("min_delta must be a finite number >= 0, got " + detail::format_double(opt_.min_delta) +
            "; Keras silently takes abs(), traincb asks you to pass the margin itself");
    if (opt_.start_from_epoch < 0) bad("start_from_epoch must be >= 0, got " + std::to_string(opt_.start_from_epoch));
    if (opt_.baseline && std::isnan(*opt_.baseline)) bad("baseline is NaN; pass a number or leave it unset");
    if (opt_.stopping_threshold && std::isnan(*opt_.stopping_threshold))
        bad("stopping_threshold is NaN; pass a number or leave it unset");
    if (opt_.divergence_threshold && std::isnan(*opt_.divergence_threshold))
        bad("divergence_threshold is NaN; pass a number or leave it unset");
    if (opt_.monitors.empty()) monitors_.push_back({.spec = {opt_.monitor, opt_.mode, opt_.min_delta}});
    for (const MonitorSpec& m : opt_.monitors) monitors_.push_back({.spec = m});
    for (Tracker& t : monitors_) {
        if (t.spec.mode != Mode::Auto)
            t.dir = detail::resolve_mode("EarlyStopping", t.spec.mode, t.spec.key);
        else if (auto d = detail::direction_from_name(t.spec.key))
            t.dir = *d;
    }
    values_.resize(monitors_.size());
}

TRAINCB_INLINE std::vector<std::string> EarlyStopping::monitor_keys() const {
    std::vector<std::string> keys;
    keys.reserve(monitors_.size());
    for (const Tracker& t : monitors_) keys.push_back(t.spec.key);
    return keys;
}

TRAINCB_INLINE std::string EarlyStopping::name() const {
    return "EarlyStopping";
}

TRAINCB_INLINE std::vector<std::string> EarlyStopping::required_keys() const {
    if (!opt_.strict) return {};
    return monitor_keys();
}

TRAINCB_INLINE Capabilities EarlyStopping::required_capabilities() const {
    return {.learning_rate = false, .state = opt_.restore_best_weights};
}

TRAINCB_INLINE void EarlyStopping::on_train_begin(Context& ctx) {
    reset();
    resolve(ctx.params().metric_directions);
    if (opt_.restore_best_weights && !ctx.model().has_state())
        throw InvalidArgument(
            "traincb: EarlyStopping: restore_best_weights needs the model's state, but the model has no "
            "visit_state(traincb::StateVisitor&); add it (see traincb/state.hpp) or specialise "
            "traincb::model_traits, or set restore_best_weights = false");
}

TRAINCB_INLINE void EarlyStopping::on_epoch_end(Context& ctx) {
    const Logs& logs = ctx.logs();
    bool any = false;
    for (std::size_t i = 0; i < monitors_.size(); ++i) {
        const double* pv = logs.find(monitors_[i].spec.key);
        values_[i] = pv ? std::optional<double>(*pv) : std::nullopt;
        any = any || pv != nullptr;
    }
    // Every missing monitor is handled (under strict: thrown) before anything changes.
    for (std::size_t i = 0; i < monitors_.size(); ++i)
        if (!values_[i]) handle_missing(logs, monitors_[i]);
    if (!any) return;
    // The first monitored epoch with a direction still unset (a list driven without
    // on_train_begin) resolves it here, failing loudly rather than guessing.
    resolve(ctx.params().metric_directions);
    const int epoch = ctx.epoch();
    Decision d = decide(values_, epoch);
    if (d.improved && opt_.restore_best_weights) {
        ModelHandle& m = ctx.model();
        snapshot_.take([&m](StateVisitor& v) { m.visit_state(v); }, StateFilter::Weights);
    }
    if (d.stop != StopReason::None) ctx.request_stop(name(), to_string(d.stop));
}

TRAINCB_INLINE void EarlyStopping::on_train_end(Context& ctx) {
    const bool verbose = opt_.verbose > 0 && ctx.comm().is_primary();  // data-parallel: rank 0 prints
    if (verbose && stopped_epoch_)
        std::cout << "Epoch " << (*stopped_epoch_ + 1) << ": early stopping (" << to_string(reason_) << ")\n";
    if (opt_.restore_best_weights && snapshot_.has_value() && best_epoch()) {
        if (verbose)
            std::cout << "Restoring model weights from the end of the best epoch: " << (*best_epoch() + 1) << ".\n";
        ModelHandle& m = ctx.model();
        snapshot_.restore([&m](StateVisitor& v) { m.visit_state(v); });
        restored_from_ = best_epoch();
    }
}

TRAINCB_INLINE EarlyStopping::Decision EarlyStopping::decide(double v, int epoch) {
    if (monitors_.size() != 1)
        throw InvalidArgument(
            detail::cat("traincb: EarlyStopping: decide(value, epoch) feeds one monitor, but there are ",
                        std::to_string(monitors_.size()), "; pass one value per monitor"));
    const std::optional<double> one[] = {v};
    return decide(std::span<const std::optional<double>>(one), epoch);
}

TRAINCB_INLINE EarlyStopping::Decision EarlyStopping::decide(std::span<const std::optional<double>> values, int epoch) {
    if (values.size() != monitors_.size())
        throw InvalidArgument(detail::cat("traincb: EarlyStopping: decide got ", std::to_string(values.size()),
                                          " values for ", std::to_string(monitors_.size()),
                                          " monitors; pass one per monitor, nullopt for one not logged"));
    Decision d;
    if (epoch < opt_.start_from_epoch) return d;
    bool any = false, non_finite = false, exhausted = true;
    for (std::size_t i = 0; i < monitors_.size(); ++i) {
        Tracker& t = monitors_[i];
        if (values[i]) {
            any = true;
            const bool improved = update(t, *values[i], epoch, i == 0);
            if (i == 0) d.improved = improved;
            non_finite = non_finite || !std::isfinite(*values[i]);
        }
        exhausted = exhausted && t.wait >= std::max(opt_.patience, 1);
    }
    if (!any) return d;
    // The thresholds are numbers on the primary's scale: they apply to the primary only.
    const std::optional<double>& v = values[0];
    const Direction dir = *monitors_.front().dir;
    if (opt_.check_finite && non_finite)
        d.stop = StopReason::NonFiniteMetric;
    else if (v && opt_.stopping_threshold && detail::better(dir, *v, *opt_.stopping_threshold, 0.0))
        d.stop = StopReason::StoppingThreshold;
    else if (v && opt_.divergence_threshold && detail::worse(dir, *v, *opt_.divergence_threshold))
        d.stop = StopReason::DivergenceThreshold;
    else if (exhausted)
        d.stop = StopReason::PatienceExhausted;
    if (d.stop != StopReason::None) {
        stopped_epoch_ = epoch;
        reason_ = d.stop;
    }
    return d;
}

TRAINCB_INLINE void EarlyStopping::resolve(const std::vector<std::pair<std::string, Direction>>& declared) {
    for (Tracker& t : monitors_)
        if (!t.dir) t.dir = detail::resolve_mode("EarlyStopping", t.spec.mode, t.spec.key, declared);
}

TRAINCB_INLINE void EarlyStopping::reset() noexcept {
    for (Tracker& t : monitors_) {
        t.best.reset();
        t.best_epoch.reset();
        t.wait = 0;
        t.warned_missing = false;
    }
    stopped_epoch_.reset();
    restored_from_.reset();
    reason_ = StopReason::None;
    snapshot_.reset();
}

TRAINCB_INLINE std::string EarlyStopping::state_key() const {
    return opt_.id.empty() ? detail::cat("EarlyStopping:", detail::join(monitor_keys(), "+")) : opt_.id;
}

TRAINCB_INLINE void EarlyStopping::save_state(CallbackState& s) const {
    s.version = 1;
    auto opt = [](const std::optional<double>& v) {
        return v ? nlohmann::json(detail::format_double(*v)) : nlohmann::json();
    };
    auto opt_int = [](const std::optional<int>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    s.json = {{"best", opt(best())},
              {"best_epoch", opt_int(best_epoch())},
              {"wait", wait()},
              {"stopped_epoch", stopped_epoch_ ? nlohmann::json(*stopped_epoch_) : nlohmann::json()},
              {"stop_reason", to_string(reason_)},
              {"options", options_json()}};
    if (monitors_.size() > 1) {
        nlohmann::json ms = nlohmann::json::array();
        for (const Tracker& t : monitors_)
            ms.push_back(
                {{"key", t.spec.key}, {"best", opt(t.best)}, {"best_epoch", opt_int(t.best_epoch)}, {"wait", t.wait}});
        s.json["monitors"] = std::move(ms);
    }
    if (snapshot_.has_value()) s.tensors = snapshot_.to_state_dict();
}

TRAINCB_INLINE void EarlyStopping::load_state(const CallbackState& s, Context& ctx) {
    s.require_version(1, "EarlyStopping", state_key());
    const auto& j = s.json;
    std::optional<double> best;
    std::optional<int> best_epoch, stopped_epoch;
    int wait = 0;
    StopReason reason = StopReason::None;
    struct Saved {
        std::string key;
        std::optional<double> best;
        std::optional<int> best_epoch;
        int wait = 0;
    };
    std::vector<Saved> saved;
    try {
        auto num = [](const nlohmann::json& v) -> std::optional<double> {
            if (v.is_null()) return std::nullopt;
            const std::string text = v.get<std::string>();  // format_double's round-trip text
            const std::optional<double> d = detail::parse_double(text);
            if (!d) throw std::invalid_argument("best '" + text + "' is not a number");
            return *d;
        };
        auto integer = [](const nlohmann::json& v, const char* what) -> int {
            if (!v.is_number_integer())
                throw std::invalid_argument(std::string(what) + " " + v.dump() + " is not an integer");
            return v.get<int>();
        };
        auto epoch = [&integer](const nlohmann::json& v, const char* what) -> std::optional<int> {
            if (v.is_null()) return std::nullopt;
            return integer(v, what);
        };
        best = num(j.at("best"));
        best_epoch = epoch(j.at("best_epoch"), "best_epoch");
        stopped_epoch = epoch(j.at("stopped_epoch"), "stopped_epoch");
        wait = integer(j.at("wait"), "wait");
        const std::string r = j.at("stop_reason").get<std::string>();
        bool known = r == to_string(StopReason::None);
        for (auto k : {StopReason::PatienceExhausted, StopReason::StoppingThreshold, StopReason::DivergenceThreshold,
                       StopReason::NonFiniteMetric})
            if (r == to_string(k)) {
                reason = k;
                known = true;
            }
        if (!known) throw std::invalid_argument("unknown stop_reason '" + r + "'");
        if (wait < 0) throw std::invalid_argument("wait " + std::to_string(wait) + " < 0");
        if (j.contains("monitors")) {
            const nlohmann::json& ms = j.at("monitors");
            if (!ms.is_array()) throw std::invalid_argument(detail::cat("monitors ", ms.dump(), " is not an array"));
            for (const nlohmann::json& m : ms) {
                Saved e{m.at("key").get<std::string>(), num(m.at("best")), epoch(m.at("best_epoch"), "best_epoch"),
                        integer(m.at("wait"), "wait")};
                if (e.wait < 0) throw std::invalid_argument(detail::cat("wait ", std::to_string(e.wait), " < 0"));
                saved.push_back(std::move(e));
            }
        } else {
            // One monitor's state (every state written before several monitors existed).
            const nlohmann::json* o = j.contains("options") ? &j.at("options") : nullptr;
            std::string key = o && o->contains("monitor") ? o->at("monitor").get<std::string>() : std::string();
            saved.push_back({std::move(key), best, best_epoch, wait});
        }
    } catch (const std::exception& e) {
        throw FormatError("traincb: EarlyStopping: checkpointed state (key '" + state_key() + "') is malformed (" +
                          e.what() + "); it was not written by this traincb: resume from another checkpoint");
    }
    std::vector<Tracker> next = monitors_;
    std::vector<std::string> fresh;
    for (std::size_t i = 0; i < next.size(); ++i) {
        Tracker& t = next[i];
        const Saved* found = next.size() == 1 && saved.size() == 1 ? &saved.front() : nullptr;
        for (const Saved& e : saved)
            if (!found && (e.key == t.spec.key || (i == 0 && e.key.empty()))) found = &e;
        t.best = found ? found->best : std::nullopt;
        t.best_epoch = found ? found->best_epoch : std::nullopt;
        t.wait = found ? found->wait : 0;
        if (!found) fresh.push_back(t.spec.key);
    }
    if (!s.tensors.empty() && opt_.restore_best_weights && ctx.model().has_state()) {
        ModelHandle& m = ctx.model();
        snapshot_.from_state_dict(
            s.tensors, "", [&m](StateVisitor& v) { m.visit_state(v); }, StateFilter::Weights);
    }
    monitors_ = std::move(next);
    stopped_epoch_ = stopped_epoch;
    reason_ = reason;
    if (j.contains("options") && j.at("options") != options_json())
        warn("traincb: EarlyStopping: options changed since the checkpoint (was " + j.at("options").dump() + ", now " +
             options_json().dump() + "); the new options apply");
    if (!fresh.empty())
        warn(detail::cat("traincb: EarlyStopping: the checkpointed state (key '", state_key(),
                         "') has no values for monitor ", detail::join(fresh), "; it starts fresh"));
}

TRAINCB_INLINE const EarlyStopping::Tracker& EarlyStopping::tracker(std::string_view key) const {
    for (const Tracker& t : monitors_)
        if (t.spec.key == key) return t;
    throw InvalidArgument(detail::cat("traincb: EarlyStopping: '", key,
                                      "' is not monitored; the monitors are: ", detail::join(monitor_keys())));
}

TRAINCB_INLINE bool EarlyStopping::update(Tracker& t, double v, int epoch, bool primary) {
    const Direction dir = *t.dir;
    const bool improved = !std::isnan(v) && (!t.best || detail::better(dir, v, *t.best, margin(t, *t.best)));
    if (improved) {
        t.best = v;
        t.best_epoch = epoch;
    }
    const bool beats_baseline = !primary || !opt_.baseline ||
                                (!std::isnan(v) && detail::better(dir, v, *opt_.baseline, margin(t, *opt_.baseline)));
    if (improved && beats_baseline)
        t.wait = 0;
    else
        ++t.wait;
    return improved;
}

TRAINCB_INLINE nlohmann::json EarlyStopping::options_json() const {
    auto opt = [](const std::optional<double>& v) {
        return v ? nlohmann::json(detail::format_double(*v)) : nlohmann::json();
    };
    auto mode_name = [](Mode m) { return m == Mode::Auto ? "auto" : m == Mode::Min ? "min" : "max"; };
    const MonitorSpec& primary = monitors_.front().spec;
    nlohmann::json j = {{"monitor", primary.key},
                        {"mode", mode_name(primary.mode)},
                        {"min_delta", detail::format_double(primary.min_delta)},
                        {"min_delta_mode", opt_.min_delta_mode == DeltaMode::Absolute ? "abs" : "rel"},
                        {"patience", opt_.patience},
                        {"baseline", opt(opt_.baseline)},
                        {"start_from_epoch", opt_.start_from_epoch},
                        {"restore_best_weights", opt_.restore_best_weights},
                        {"stopping_threshold", opt(opt_.stopping_threshold)},
                        {"divergence_threshold", opt(opt_.divergence_threshold)},
                        {"check_finite", opt_.check_finite}};
    if (monitors_.size() > 1) {
        nlohmann::json ms = nlohmann::json::array();
        for (const Tracker& t : monitors_)
            ms.push_back({{"key", t.spec.key},
                          {"mode", mode_name(t.spec.mode)},
                          {"min_delta", detail::format_double(t.spec.min_delta)}});
        j["monitors"] = std::move(ms);
    }
    return j;
}

TRAINCB_INLINE void EarlyStopping::handle_missing(const Logs& logs, Tracker& t) {
    if (t.spec.key.starts_with("val_")) {
        bool any_val = false;
        for (const auto& kv : logs) any_val = any_val || kv.first.starts_with("val_");
        if (!any_val) return;  // an epoch without validation: skipped, not counted
    }
    const std::string msg = logs.missing_key_message("EarlyStopping", t.spec.key);
    if (opt_.strict) throw InvalidArgument(msg + " (set strict = false to skip such epochs with a warning)");
    if (!t.warned_missing) {
        t.warned_missing = true;
        warn(msg + (monitors_.size() == 1 ? "; the epoch is skipped" : "; this monitor skips the epoch"));
    }
}

}  // namespace traincb::inline v0
#endif  // TRAINCB_DEFINITIONS
