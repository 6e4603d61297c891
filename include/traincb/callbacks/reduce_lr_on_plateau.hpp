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
#include "traincb/callbacks/reduce_lr_on_plateau-inl.hpp"
#endif
