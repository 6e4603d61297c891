#pragma once
/// @file callbacks/terminate_on_nan.hpp
/// TerminateOnNaN, with Keras semantics (docs/keras-semantics.md, "The other callbacks"): after
/// each training batch, a NaN or infinite running `loss` stops training; the epoch still completes
/// (validation and on_epoch_end run), then on_train_end. With raise_error, it throws instead.

#include <cmath>
#include <iostream>
#include <string>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

/// TerminateOnNaN's options.
struct TerminateOnNaNOptions {
    bool raise_error = false;  ///< throw TrainingError at once instead of requesting a stop
    int verbose = 1;           ///< > 0: print "Batch B: Invalid loss, terminating training" (as Keras)
};

/// Stops training when the running training loss becomes NaN or infinite.
class TerminateOnNaN final : public Callback {
public:
    /// Builds it with `options`.
    explicit TerminateOnNaN(TerminateOnNaNOptions options = {}) : opt_(options) {}

    /// "TerminateOnNaN", the source of its stop request.
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;

    /// Forgets the previous run's terminated_batch().
    TRAINCB_INLINE void on_train_begin(Context&) override;

    /// Checks logs["loss"] (the running epoch mean, as in Keras).
    /// @throws TrainingError when raise_error is set and the loss is not finite.
    TRAINCB_INLINE void on_train_batch_end(Context& ctx) override;

    /// The batch at which it stopped training in the last run, or -1.
    [[nodiscard]] int terminated_batch() const noexcept { return terminated_batch_; }

private:
    TerminateOnNaNOptions opt_;
    int terminated_batch_ = -1;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0 {

TRAINCB_INLINE std::string TerminateOnNaN::name() const {
    return "TerminateOnNaN";
}

TRAINCB_INLINE void TerminateOnNaN::on_train_begin(Context&) {
    terminated_batch_ = -1;
}

TRAINCB_INLINE void TerminateOnNaN::on_train_batch_end(Context& ctx) {
    const double* loss = ctx.logs().find("loss");
    if (loss == nullptr || std::isfinite(*loss)) return;
    if (opt_.raise_error)
        throw TrainingError("traincb: TerminateOnNaN: NaN or Inf loss encountered at batch " +
                            std::to_string(ctx.batch()) + " of epoch " + std::to_string(ctx.epoch()) +
                            ". Loss value: " + detail::format_double(*loss) + ". Terminating training immediately.");
    if (opt_.verbose > 0) std::cout << "Batch " << ctx.batch() << ": Invalid loss, terminating training\n";
    terminated_batch_ = ctx.batch();
    ctx.request_stop(name(), "non_finite_loss");
}

}  // namespace traincb::inline v0
#endif  // TRAINCB_DEFINITIONS
