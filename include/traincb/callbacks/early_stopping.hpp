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
#include "traincb/callbacks/early_stopping-inl.hpp"
#endif
