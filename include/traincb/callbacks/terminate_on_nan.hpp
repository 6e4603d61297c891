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
#include "traincb/callbacks/terminate_on_nan-inl.hpp"
#endif
