#pragma once
/// @file callbacks/early_stopping.hpp
/// EarlyStopping: Keras 3.15's rules (docs/keras-semantics.md, "EarlyStopping") with five
/// improvements, all specified in docs/early-stopping-rules.md: negative min_delta rejected; a NaN
/// is never best; the baseline means "stop unless beaten within patience epochs"; a missing monitor
/// is an error under strict; restore_best_weights also on an exception. Plus Lightning's
/// stopping/divergence thresholds and check_finite, and a relative min_delta. restore_best_weights
/// restores the weights only (StateKind::Weight), as Keras does: the optimizer state and the
/// learning rate are not rolled back.

#include <cmath>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "traincb/callback.hpp"
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
[[nodiscard]] inline Mode parse_mode(std::string_view s) {
    if (s == "auto") return Mode::Auto;
    if (s == "min") return Mode::Min;
    if (s == "max") return Mode::Max;
    throw InvalidArgument("traincb: EarlyStopping: unknown mode '" + std::string(s) + "'; use auto, min or max");
}

/// Parses "abs"/"absolute" or "rel"/"relative". @throws InvalidArgument for anything else.
[[nodiscard]] inline DeltaMode parse_delta_mode(std::string_view s) {
    if (s == "abs" || s == "absolute") return DeltaMode::Absolute;
    if (s == "rel" || s == "relative") return DeltaMode::Relative;
    throw InvalidArgument("traincb: EarlyStopping: unknown min_delta_mode '" + std::string(s) + "'; use abs or rel");
}

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
};

/// Stops training when a monitored metric has stopped improving.
/// @code
/// traincb::EarlyStopping es({.monitor = "val_loss", .patience = 5, .restore_best_weights = true});
/// @endcode
class EarlyStopping final : public Callback {
public:
    /// @throws InvalidArgument for a negative patience, min_delta or start_from_epoch, a NaN
    /// threshold, or an empty monitor.
    explicit EarlyStopping(EarlyStoppingOptions options = {}) : opt_(std::move(options)) {
        auto bad = [](const std::string& what) { throw InvalidArgument("traincb: EarlyStopping: " + what); };
        if (opt_.monitor.empty()) bad("monitor is empty; pass the log key to watch, e.g. \"val_loss\"");
        if (opt_.patience < 0) bad("patience must be >= 0, got " + std::to_string(opt_.patience) + "; pass 0 or more");
        if (!(opt_.min_delta >= 0) || std::isinf(opt_.min_delta))
            bad("min_delta must be a finite number >= 0, got " + detail::format_double(opt_.min_delta) +
                "; Keras silently takes abs(), traincb asks you to pass the margin itself");
        if (opt_.start_from_epoch < 0)
            bad("start_from_epoch must be >= 0, got " + std::to_string(opt_.start_from_epoch));
        if (opt_.baseline && std::isnan(*opt_.baseline)) bad("baseline is NaN; pass a number or leave it unset");
        if (opt_.stopping_threshold && std::isnan(*opt_.stopping_threshold))
            bad("stopping_threshold is NaN; pass a number or leave it unset");
        if (opt_.divergence_threshold && std::isnan(*opt_.divergence_threshold))
            bad("divergence_threshold is NaN; pass a number or leave it unset");
        if (opt_.mode != Mode::Auto)
            dir_ = detail::resolve_mode("EarlyStopping", opt_.mode, opt_.monitor);
        else if (auto d = detail::direction_from_name(opt_.monitor))
            dir_ = *d;
    }

    /// The options it was built with.
    [[nodiscard]] const EarlyStoppingOptions& options() const noexcept { return opt_; }
    /// The resolved direction (nullopt until resolved: Auto on a name only a metric object declares).
    [[nodiscard]] std::optional<Direction> direction() const noexcept { return dir_; }
    /// The epoch at which it stopped training, or nullopt.
    [[nodiscard]] std::optional<int> stopped_epoch() const noexcept { return stopped_epoch_; }
    /// The epoch of the best monitored value, or nullopt when nothing was monitored.
    [[nodiscard]] std::optional<int> best_epoch() const noexcept { return best_epoch_; }
    /// The best monitored value, or nullopt when nothing was monitored.
    [[nodiscard]] std::optional<double> best() const noexcept { return best_; }
    /// Monitored epochs since the last improvement that also beat the baseline.
    [[nodiscard]] int wait() const noexcept { return wait_; }
    /// Why it stopped training (StopReason::None if it did not).
    [[nodiscard]] StopReason stop_reason() const noexcept { return reason_; }
    /// The epoch whose state was restored at the end of training, or nullopt.
    [[nodiscard]] std::optional<int> restored_from_epoch() const noexcept { return restored_from_; }
    /// The in-memory snapshot of the best epoch's weights (empty unless restore_best_weights).
    [[nodiscard]] const StateSnapshot& best_state() const noexcept { return snapshot_; }

    /// "EarlyStopping" (the source of its stop requests and the start of its messages).
    [[nodiscard]] std::string name() const override { return "EarlyStopping"; }
    /// The monitor when `strict` (checked against the keys the driver will log before epoch 1).
    [[nodiscard]] std::vector<std::string> required_keys() const override {
        if (!opt_.strict) return {};
        return {opt_.monitor};
    }
    /// Model state, when `restore_best_weights` (checked before epoch 1).
    [[nodiscard]] Capabilities required_capabilities() const override {
        return {.learning_rate = false, .state = opt_.restore_best_weights};
    }

    /// Resets per-run state and resolves Auto mode. @throws InvalidArgument when Auto cannot be
    /// resolved or restore_best_weights is set and the model has no state.
    void on_train_begin(Context& ctx) override {
        reset();
        if (!dir_)
            dir_ = detail::resolve_mode("EarlyStopping", opt_.mode, opt_.monitor, ctx.params().metric_directions);
        if (opt_.restore_best_weights && !ctx.model().has_state())
            throw InvalidArgument(
                "traincb: EarlyStopping: restore_best_weights needs the model's state, but the model has no "
                "visit_state(traincb::StateVisitor&); add it (see traincb/state.hpp) or specialise "
                "traincb::model_traits, or set restore_best_weights = false");
    }

    /// Applies the decision of docs/early-stopping-rules.md to this epoch's monitored value.
    void on_epoch_end(Context& ctx) override {
        const Logs& logs = ctx.logs();
        const double* pv = logs.find(opt_.monitor);
        if (pv == nullptr) {
            handle_missing(logs);
            return;
        }
        // The first monitored epoch with direction still unset (a list driven without
        // on_train_begin) resolves it here, failing loudly rather than guessing.
        if (!dir_)
            dir_ = detail::resolve_mode("EarlyStopping", opt_.mode, opt_.monitor, ctx.params().metric_directions);
        const int epoch = ctx.epoch();
        Decision d = decide(*pv, epoch);
        if (d.improved && opt_.restore_best_weights) {
            ModelHandle& m = ctx.model();
            snapshot_.take([&m](StateVisitor& v) { m.visit_state(v); }, StateFilter::Weights);
        }
        if (d.stop != StopReason::None) ctx.request_stop(name(), to_string(d.stop));
    }

    /// Restores the best epoch's weights (on every exit, including an exception; training state such
    /// as the optimizer's moments and the learning rate keeps its latest value) and prints Keras's
    /// messages.
    void on_train_end(Context& ctx) override {
        if (opt_.verbose > 0 && stopped_epoch_)
            std::cout << "Epoch " << (*stopped_epoch_ + 1) << ": early stopping (" << to_string(reason_) << ")\n";
        if (opt_.restore_best_weights && snapshot_.has_value() && best_epoch_) {
            if (opt_.verbose > 0)
                std::cout << "Restoring model weights from the end of the best epoch: " << (*best_epoch_ + 1) << ".\n";
            ModelHandle& m = ctx.model();
            snapshot_.restore([&m](StateVisitor& v) { m.visit_state(v); });
            restored_from_ = best_epoch_;
        }
    }

    /// The outcome of one monitored value (exposed so tools can replay a history without a model).
    struct Decision {
        bool improved = false;               ///< the value became the new best
        StopReason stop = StopReason::None;  ///< why training should stop now, or None
    };
    /// Feeds one monitored value for absolute epoch `epoch` (steps 2-6 of the decision); updates
    /// best, best_epoch, wait. Does not snapshot or request a stop: on_epoch_end does.
    Decision decide(double v, int epoch) {
        Decision d;
        if (epoch < opt_.start_from_epoch) return d;
        const Direction dir = *dir_;
        d.improved = !std::isnan(v) && (!best_ || detail::better(dir, v, *best_, margin(*best_)));
        if (d.improved) {
            best_ = v;
            best_epoch_ = epoch;
        }
        const bool beats_baseline =
            !opt_.baseline || (!std::isnan(v) && detail::better(dir, v, *opt_.baseline, margin(*opt_.baseline)));
        if (d.improved && beats_baseline)
            wait_ = 0;
        else
            ++wait_;
        if (opt_.check_finite && !std::isfinite(v))
            d.stop = StopReason::NonFiniteMetric;
        else if (opt_.stopping_threshold && detail::better(dir, v, *opt_.stopping_threshold, 0.0))
            d.stop = StopReason::StoppingThreshold;
        else if (opt_.divergence_threshold && detail::worse(dir, v, *opt_.divergence_threshold))
            d.stop = StopReason::DivergenceThreshold;
        else if (wait_ >= std::max(opt_.patience, 1))
            d.stop = StopReason::PatienceExhausted;
        if (d.stop != StopReason::None) {
            stopped_epoch_ = epoch;
            reason_ = d.stop;
        }
        return d;
    }
    /// Resolves the direction outside a run (for replay tools). @throws InvalidArgument.
    void resolve(const std::vector<std::pair<std::string, Direction>>& declared = {}) {
        if (!dir_) dir_ = detail::resolve_mode("EarlyStopping", opt_.mode, opt_.monitor, declared);
    }
    /// Forgets every per-run value (done at on_train_begin).
    void reset() noexcept {
        best_.reset();
        best_epoch_.reset();
        stopped_epoch_.reset();
        restored_from_.reset();
        wait_ = 0;
        reason_ = StopReason::None;
        warned_missing_ = false;
        snapshot_.reset();
    }

    /// The explicit id, else "EarlyStopping:<monitor>".
    [[nodiscard]] std::string state_key() const override {
        return opt_.id.empty() ? "EarlyStopping:" + opt_.monitor : opt_.id;
    }
    /// Writes best, best_epoch, wait, stopped_epoch, the reason and the options (version 1), and
    /// the best-weights snapshot as tensors (the weights only).
    void save_state(CallbackState& s) const override {
        s.version = 1;
        auto opt = [](const std::optional<double>& v) {
            return v ? nlohmann::json(detail::format_double(*v)) : nlohmann::json();
        };
        s.json = {{"best", opt(best_)},
                  {"best_epoch", best_epoch_ ? nlohmann::json(*best_epoch_) : nlohmann::json()},
                  {"wait", wait_},
                  {"stopped_epoch", stopped_epoch_ ? nlohmann::json(*stopped_epoch_) : nlohmann::json()},
                  {"stop_reason", to_string(reason_)},
                  {"options", options_json()}};
        if (snapshot_.has_value()) s.tensors = snapshot_.to_state_dict();
    }
    /// Restores what save_state wrote; all or nothing. Changed options win, with a warning. The
    /// snapshot takes the model's weights from the tensors; a state written before traincb told
    /// weights from training state also holds the training state, which is ignored.
    /// @throws FormatError for another version or a malformed state, naming the state key
    void load_state(const CallbackState& s, Context& ctx) override {
        s.require_version(1, "EarlyStopping", state_key());
        const auto& j = s.json;
        std::optional<double> best;
        std::optional<int> best_epoch, stopped_epoch;
        int wait = 0;
        StopReason reason = StopReason::None;
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
            for (auto k : {StopReason::PatienceExhausted, StopReason::StoppingThreshold,
                           StopReason::DivergenceThreshold, StopReason::NonFiniteMetric})
                if (r == to_string(k)) {
                    reason = k;
                    known = true;
                }
            if (!known) throw std::invalid_argument("unknown stop_reason '" + r + "'");
            if (wait < 0) throw std::invalid_argument("wait " + std::to_string(wait) + " < 0");
        } catch (const std::exception& e) {
            throw FormatError("traincb: EarlyStopping: checkpointed state (key '" + state_key() + "') is malformed (" +
                              e.what() + "); it was not written by this traincb: resume from another checkpoint");
        }
        if (!s.tensors.empty() && opt_.restore_best_weights && ctx.model().has_state()) {
            ModelHandle& m = ctx.model();
            snapshot_.from_state_dict(
                s.tensors, "", [&m](StateVisitor& v) { m.visit_state(v); }, StateFilter::Weights);
        }
        best_ = best;
        best_epoch_ = best_epoch;
        wait_ = wait;
        stopped_epoch_ = stopped_epoch;
        reason_ = reason;
        if (j.contains("options") && j.at("options") != options_json())
            warn("traincb: EarlyStopping: options changed since the checkpoint (was " + j.at("options").dump() +
                 ", now " + options_json().dump() + "); the new options apply");
    }

private:
    [[nodiscard]] double margin(double ref) const noexcept {
        return opt_.min_delta_mode == DeltaMode::Relative ? opt_.min_delta * std::abs(ref) : opt_.min_delta;
    }
    [[nodiscard]] nlohmann::json options_json() const {
        auto opt = [](const std::optional<double>& v) {
            return v ? nlohmann::json(detail::format_double(*v)) : nlohmann::json();
        };
        return {{"monitor", opt_.monitor},
                {"mode", opt_.mode == Mode::Auto  ? "auto"
                         : opt_.mode == Mode::Min ? "min"
                                                  : "max"},
                {"min_delta", detail::format_double(opt_.min_delta)},
                {"min_delta_mode", opt_.min_delta_mode == DeltaMode::Absolute ? "abs" : "rel"},
                {"patience", opt_.patience},
                {"baseline", opt(opt_.baseline)},
                {"start_from_epoch", opt_.start_from_epoch},
                {"restore_best_weights", opt_.restore_best_weights},
                {"stopping_threshold", opt(opt_.stopping_threshold)},
                {"divergence_threshold", opt(opt_.divergence_threshold)},
                {"check_finite", opt_.check_finite}};
    }
    void handle_missing(const Logs& logs) {
        if (opt_.monitor.starts_with("val_")) {
            bool any_val = false;
            for (const auto& kv : logs) any_val = any_val || kv.first.starts_with("val_");
            if (!any_val) return;  // an epoch without validation: skipped, not counted
        }
        const std::string msg = logs.missing_key_message("EarlyStopping", opt_.monitor);
        if (opt_.strict) throw InvalidArgument(msg + " (set strict = false to skip such epochs with a warning)");
        if (!warned_missing_) {
            warned_missing_ = true;
            warn(msg + "; the epoch is skipped");
        }
    }

    EarlyStoppingOptions opt_;
    std::optional<Direction> dir_{};
    std::optional<double> best_{};
    std::optional<int> best_epoch_{};
    std::optional<int> stopped_epoch_{};
    std::optional<int> restored_from_{};
    int wait_ = 0;
    StopReason reason_ = StopReason::None;
    bool warned_missing_ = false;
    StateSnapshot snapshot_;
};

}  // namespace traincb::inline v0
