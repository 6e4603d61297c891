#pragma once
// The bodies of traincb/callbacks/terminate_on_nan.hpp's non-template functions: included at the
// end of that header when traincb is header-only, compiled once into traincb::compiled in the
// compiled mode (traincb/detail/config.hpp).
#include "traincb/callbacks/terminate_on_nan.hpp"

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
