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
#include "traincb/callbacks/spike_detection-inl.hpp"
#endif
