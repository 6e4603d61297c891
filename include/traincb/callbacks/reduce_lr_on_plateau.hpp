#pragma once
/// @file callbacks/reduce_lr_on_plateau.hpp
/// ReduceLROnPlateau: multiplies the model's learning rate by `factor` when the monitored value has
/// stopped improving for `patience` epochs. Keras 3.15 semantics (docs/keras-semantics.md,
/// "ReduceLROnPlateau") with traincb's checks, as EarlyStopping's (docs/early-stopping-rules.md):
/// options are validated at construction, a NaN is never the best value, and a misspelt monitor is
/// an error instead of a warning.
///
///     traincb::ReduceLROnPlateau plateau({.monitor = "val_loss", .factor = 0.5, .patience = 3});
///
/// Differences from Keras, on purpose:
/// - `factor` must be in (0, 1); `patience`, `cooldown`, `min_delta` and `min_lr` must be >= 0
///   (Keras rejects only `factor >= 1` and silently takes `abs(min_delta)`).
/// - A NaN value is never an improvement, so a first NaN cannot become an unbeatable best; it
///   counts as a non-improving epoch.
/// - `strict` (default): a monitor missing from the logs is an error listing the keys that exist
///   (Keras warns, so a typo silently disables the callback). A `val_*` monitor on an epoch
///   without validation is skipped.
/// - The learning rate is a double: traincb does not round it to float32 as Keras's optimizer
///   variable does, and compares it with `min_lr` in double. So 0.1 reduced by 0.1 is the double
///   product 0.010000000000000002, which is also what the verbose message prints (one line on
///   stdout, without the leading newline Keras adds for its progress bar).
///
/// Resuming: state_key()/save_state()/load_state() carry best, wait and cooldown_counter, so a
/// resumed run reduces at the same epochs as an uninterrupted one. The learning rate itself is
/// the model's state; reductions() lists only the current run's reductions.

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/monitor.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/direction.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

/// Options of ReduceLROnPlateau, with the Keras names and defaults.
struct ReduceLROnPlateauOptions {
    std::string monitor = "val_loss";  ///< key of the epoch logs to watch
    double factor = 0.1;               ///< new_lr = lr * factor; must be in (0, 1)
    int patience = 10;                 ///< non-improving monitored epochs before a reduction (>= 0; 0 acts as 1)
    int verbose = 0;                   ///< > 0 prints one line on stdout per reduction
    Mode mode = Mode::Auto;            ///< Min, Max, or Auto (from the metric's direction or name)
    double min_delta = 1e-4;           ///< an improvement must beat the best by more than this (>= 0)
    int cooldown = 0;                  ///< epochs after a reduction before counting resumes (>= 0)
    double min_lr = 0.0;               ///< the learning rate is never reduced below this (>= 0)
    bool strict = true;                ///< a missing monitor throws (true) or warns once and is skipped (false)
    std::string id{};                  ///< checkpoint state key; "" derives "ReduceLROnPlateau:<monitor>"
};

/// One learning-rate reduction made by ReduceLROnPlateau.
struct LrReduction {
    int epoch = 0;        ///< 0-based absolute epoch at whose end the reduction happened
    double old_lr = 0.0;  ///< the learning rate used during that epoch
    double new_lr = 0.0;  ///< the learning rate set for the next epoch
};

/// Reduces the learning rate when a metric has stopped improving (Keras's ReduceLROnPlateau).
class ReduceLROnPlateau final : public Callback {
public:
    /// Lets Trainer reject this callback at compile time for a model without a learning rate.
    static constexpr bool requires_learning_rate = true;

    /// @throws InvalidArgument for an empty monitor, factor outside (0, 1), or a negative (or NaN)
    /// patience, cooldown, min_delta or min_lr; the message names the value and the fix.
    explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});

    /// Resets the per-run state, resolves Mode::Auto and checks the model's learning rate.
    /// @throws InvalidArgument when the model has no learning rate or Auto cannot be resolved.
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;

    /// Writes logs["learning_rate"] (the rate used during this epoch), then applies Keras's rule.
    /// @throws InvalidArgument when the monitor is missing under strict, or Auto cannot be resolved.
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;

    /// "ReduceLROnPlateau".
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// Under strict, the monitor, so the driver checks it against the known keys before epoch 1.
    [[nodiscard]] TRAINCB_INLINE std::vector<std::string> required_keys() const override;
    /// The learning rate.
    [[nodiscard]] TRAINCB_INLINE Capabilities required_capabilities() const override;
    /// "learning_rate", which it writes at each epoch end (so a callback may monitor it).
    [[nodiscard]] TRAINCB_INLINE std::vector<std::string> provided_keys() const override;

    /// The explicit id, else "ReduceLROnPlateau:<monitor>".
    [[nodiscard]] TRAINCB_INLINE std::string state_key() const override;
    /// Writes best, wait and cooldown_counter (version 1), with the monitor and direction so a
    /// resumed run can tell that they changed. The learning rate itself is the model's state.
    TRAINCB_INLINE void save_state(CallbackState& state) const override;
    /// Restores the state written by save_state (after on_train_begin of a resumed run).
    /// @throws FormatError for another version or a malformed field; InvalidArgument when the
    /// state was saved for another monitor or direction.
    TRAINCB_INLINE void load_state(const CallbackState& state, Context&) override;

    /// The options, as validated.
    [[nodiscard]] const ReduceLROnPlateauOptions& options() const noexcept { return opt_; }
    /// The resolved direction (nullopt until Auto is resolved).
    [[nodiscard]] std::optional<Direction> direction() const noexcept { return dir_; }
    /// Monitored non-improving epochs counted since the last improvement or reduction.
    [[nodiscard]] int wait() const noexcept { return wait_; }
    /// Epochs of cooldown left.
    [[nodiscard]] int cooldown_counter() const noexcept { return cooldown_counter_; }
    /// True while a cooldown is running.
    [[nodiscard]] bool in_cooldown() const noexcept { return cooldown_counter_ > 0; }
    /// The best monitored value of this run (nullopt before the first non-NaN value).
    [[nodiscard]] std::optional<double> best() const noexcept { return best_; }
    /// The reductions made in this run (not carried across resumes).
    [[nodiscard]] const std::vector<LrReduction>& reductions() const noexcept { return reductions_; }

private:
    static constexpr int kStateVersion = 1;

    void check_model(Context& ctx) const;

    void handle_missing(Context& ctx);

    ReduceLROnPlateauOptions opt_;
    std::optional<Direction> dir_;
    std::optional<double> best_;
    int wait_ = 0;
    int cooldown_counter_ = 0;
    bool warned_ = false;
    std::vector<LrReduction> reductions_;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0 {

TRAINCB_INLINE ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options) : opt_(std::move(options)) {
    const std::string c = "traincb: ReduceLROnPlateau: ";
    if (opt_.monitor.empty())
        throw InvalidArgument(c + "monitor is empty; pass the log key to watch, e.g. .monitor = \"val_loss\"");
    if (!(opt_.factor > 0.0 && opt_.factor < 1.0))
        throw InvalidArgument(c + "factor = " + detail::format_double(opt_.factor) +
                              " would not reduce the learning rate; pass a factor in (0, 1), e.g. 0.1 or 0.5");
    if (opt_.patience < 0)
        throw InvalidArgument(c + "patience = " + std::to_string(opt_.patience) + " is negative; pass patience >= 0");
    if (opt_.cooldown < 0)
        throw InvalidArgument(c + "cooldown = " + std::to_string(opt_.cooldown) + " is negative; pass cooldown >= 0");
    if (!(opt_.min_delta >= 0.0) || std::isinf(opt_.min_delta))
        throw InvalidArgument(c + "min_delta = " + detail::format_double(opt_.min_delta) +
                              " is not a finite number >= 0; pass the margin as a non-negative number, "
                              "e.g. 1e-4 (Keras would silently take its absolute value)");
    if (!(opt_.min_lr >= 0.0) || std::isinf(opt_.min_lr))
        throw InvalidArgument(c + "min_lr = " + detail::format_double(opt_.min_lr) +
                              " is not a finite number >= 0; pass a floor >= 0, e.g. 0 or 1e-6");
    // Resolve now when the name alone decides, so that most errors surface here; a monitor
    // whose direction is declared by a metric object is resolved in on_train_begin.
    if (opt_.mode == Mode::Min)
        dir_ = Direction::Min;
    else if (opt_.mode == Mode::Max)
        dir_ = Direction::Max;
    else
        dir_ = detail::direction_from_name(opt_.monitor);
}

TRAINCB_INLINE void ReduceLROnPlateau::on_train_begin(Context& ctx) {
    check_model(ctx);
    if (opt_.mode == Mode::Auto)
        dir_ = detail::resolve_mode(name(), Mode::Auto, opt_.monitor, ctx.params().metric_directions);
    best_.reset();
    wait_ = 0;
    cooldown_counter_ = 0;
    warned_ = false;
    reductions_.clear();
}

TRAINCB_INLINE void ReduceLROnPlateau::on_epoch_end(Context& ctx) {
    check_model(ctx);
    Logs& logs = ctx.logs();
    const double lr = ctx.model().learning_rate();
    logs.set("learning_rate", lr);  // first, so the missing-key message lists it, as in Keras
    const double* value = logs.find(opt_.monitor);
    if (value == nullptr) {
        handle_missing(ctx);
        return;
    }
    // Unresolved only when on_train_begin was skipped: fail loudly rather than guess.
    if (!dir_) dir_ = detail::resolve_mode(name(), Mode::Auto, opt_.monitor, ctx.params().metric_directions);
    const double v = *value;
    if (cooldown_counter_ > 0) {  // before the improvement test, as in Keras
        --cooldown_counter_;
        wait_ = 0;
    }
    const bool improved = !std::isnan(v) && (!best_ || detail::better(*dir_, v, *best_, opt_.min_delta));
    if (improved) {  // best moves even during cooldown
        best_ = v;
        wait_ = 0;
    } else if (cooldown_counter_ == 0) {  // re-tested after the decrement: cooldown = 1 has no effect
        ++wait_;
        if (wait_ >= opt_.patience) {
            if (lr > opt_.min_lr) {
                const double new_lr = std::max(lr * opt_.factor, opt_.min_lr);
                ctx.model().set_learning_rate(new_lr);
                reductions_.push_back({ctx.epoch(), lr, new_lr});
                if (opt_.verbose > 0 && ctx.comm().is_primary())  // data-parallel: rank 0 prints
                    std::cout << "Epoch " << ctx.epoch() + 1 << ": ReduceLROnPlateau reducing learning rate to "
                              << detail::format_double(new_lr) << ".\n";
                cooldown_counter_ = opt_.cooldown;
                wait_ = 0;
            }
            // At the floor, wait is not reset and keeps growing (Keras).
        }
    }
}

TRAINCB_INLINE std::string ReduceLROnPlateau::name() const {
    return "ReduceLROnPlateau";
}

TRAINCB_INLINE std::vector<std::string> ReduceLROnPlateau::required_keys() const {
    if (opt_.strict) return {opt_.monitor};
    return {};
}

TRAINCB_INLINE Capabilities ReduceLROnPlateau::required_capabilities() const {
    return {.learning_rate = true, .state = false};
}

TRAINCB_INLINE std::vector<std::string> ReduceLROnPlateau::provided_keys() const {
    return {"learning_rate"};
}

TRAINCB_INLINE std::string ReduceLROnPlateau::state_key() const {
    return opt_.id.empty() ? "ReduceLROnPlateau:" + opt_.monitor : opt_.id;
}

TRAINCB_INLINE void ReduceLROnPlateau::save_state(CallbackState& state) const {
    state.version = kStateVersion;
    nlohmann::json j;
    j["monitor"] = opt_.monitor;
    j["mode"] = dir_ ? nlohmann::json(to_string(*dir_)) : nlohmann::json(nullptr);
    if (!best_)
        j["best"] = nullptr;
    else if (std::isinf(*best_))
        j["best"] = detail::format_double(*best_);  // "inf" or "-inf": JSON has no infinities
    else
        j["best"] = *best_;
    j["wait"] = wait_;
    j["cooldown_counter"] = cooldown_counter_;
    state.json = std::move(j);
}

TRAINCB_INLINE void ReduceLROnPlateau::load_state(const CallbackState& state, Context&) {
    const std::string c = "traincb: ReduceLROnPlateau: checkpointed state (key '" + state_key() + "'): ";
    state.require_version(kStateVersion, "ReduceLROnPlateau", state_key());
    const nlohmann::json& j = state.json;
    if (!j.is_object()) throw FormatError(c + "expected a JSON object, got " + j.dump());
    auto field = [&](const char* key) -> const nlohmann::json& {
        auto it = j.find(key);
        if (it == j.end()) throw FormatError(c + "the field '" + key + "' is missing");
        return *it;
    };
    const auto& monitor = field("monitor");
    if (!monitor.is_string()) throw FormatError(c + "'monitor' must be a string, got " + monitor.dump());
    if (monitor.get<std::string>() != opt_.monitor)
        throw InvalidArgument(c + "it was saved for monitor '" + monitor.get<std::string>() +
                              "', but this callback monitors '" + opt_.monitor +
                              "'; give this callback another id, or start it afresh");
    const auto& mode = field("mode");
    if (!mode.is_null() && !mode.is_string()) throw FormatError(c + "'mode' must be a string, got " + mode.dump());
    if (mode.is_string() && dir_ && mode.get<std::string>() != to_string(*dir_))
        throw InvalidArgument(c + "it was saved in mode '" + mode.get<std::string>() + "', but this callback " +
                              "runs in mode '" + to_string(*dir_) + "'; pass the same mode, or start it afresh");
    std::optional<double> best;
    const auto& b = field("best");
    const std::optional<double> inf =
        b.is_string() ? detail::parse_double(b.get_ref<const std::string&>()) : std::nullopt;
    if (b.is_number())
        best = b.get<double>();
    else if (inf && std::isinf(*inf))
        best = *inf;
    else if (!b.is_null())
        throw FormatError(c + "'best' must be a number, \"inf\", \"-inf\" or null, got " + b.dump());
    auto count = [&](const char* key) {
        const auto& n = field(key);
        if (!n.is_number_integer() || n.get<long long>() < 0 || n.get<long long>() > std::numeric_limits<int>::max())
            throw FormatError(c + "'" + key + "' must be an integer >= 0, got " + n.dump());
        return static_cast<int>(n.get<long long>());
    };
    const int wait = count("wait");
    const int cooldown_counter = count("cooldown_counter");
    best_ = best;
    wait_ = wait;
    cooldown_counter_ = cooldown_counter;
}

TRAINCB_INLINE void ReduceLROnPlateau::check_model(Context& ctx) const {
    if (ctx.model().has_learning_rate()) return;
    throw InvalidArgument(
        "traincb: ReduceLROnPlateau: needs the model's learning rate, but the model has no learning_rate() "
        "const / set_learning_rate(double); add them or specialise traincb::model_traits" +
        std::string(ctx.model().attached() ? "" : " (no model is attached: call CallbackList::set_model)"));
}

TRAINCB_INLINE void ReduceLROnPlateau::handle_missing(Context& ctx) {
    const Logs& logs = ctx.logs();
    if (opt_.monitor.starts_with("val_")) {
        bool has_val = false;
        for (const auto& kv : logs) has_val = has_val || kv.first.starts_with("val_");
        if (!has_val) return;  // an epoch without validation: nothing to compare, nothing counted
    }
    const auto keys = logs.keys();
    std::string msg = "traincb: ReduceLROnPlateau: monitor '" + opt_.monitor +
                      "' is not in the logs at the end of epoch " + std::to_string(ctx.epoch() + 1) +
                      "; available keys: " + detail::join(keys);
    if (auto m = detail::closest_match(opt_.monitor, keys); !m.empty()) msg += "; did you mean '" + m + "'?";
    if (opt_.strict)
        throw InvalidArgument(msg +
                              "; fix the monitor name, or pass .strict = false to skip such epochs with a "
                              "warning");
    if (!warned_) {
        warned_ = true;
        warn(msg + "; epochs without it are skipped (warned once per run)");
    }
}

}  // namespace traincb::inline v0
#endif  // TRAINCB_DEFINITIONS
