#pragma once
// The bodies of traincb/callbacks/lambda_callback.hpp's non-template functions: included at the end
// of that header when traincb is header-only, compiled once into traincb::compiled in the compiled
// mode (traincb/detail/config.hpp).
#include "traincb/callbacks/lambda_callback.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE LambdaCallback::LambdaCallback(LambdaCallbackOptions options) : opt_(std::move(options)) {
    if (opt_.name.empty())
        throw InvalidArgument(
            "traincb: LambdaCallback: name is empty; pass a name for messages and stop "
            "requests, or leave the default \"LambdaCallback\"");
}

TRAINCB_INLINE void LambdaCallback::on_train_begin(Context& ctx) {
    call(opt_.on_train_begin, ctx);
}

TRAINCB_INLINE void LambdaCallback::on_train_end(Context& ctx) {
    call(opt_.on_train_end, ctx);
}

TRAINCB_INLINE void LambdaCallback::on_epoch_begin(Context& ctx) {
    call(opt_.on_epoch_begin, ctx);
}

TRAINCB_INLINE void LambdaCallback::on_epoch_end(Context& ctx) {
    call(opt_.on_epoch_end, ctx);
}

TRAINCB_INLINE void LambdaCallback::on_train_batch_begin(Context& ctx) {
    call(opt_.on_train_batch_begin, ctx);
}

TRAINCB_INLINE void LambdaCallback::on_train_batch_end(Context& ctx) {
    call(opt_.on_train_batch_end, ctx);
}

TRAINCB_INLINE void LambdaCallback::on_test_begin(Context& ctx) {
    call(opt_.on_test_begin, ctx);
}

TRAINCB_INLINE void LambdaCallback::on_test_end(Context& ctx) {
    call(opt_.on_test_end, ctx);
}

TRAINCB_INLINE std::string LambdaCallback::name() const {
    return opt_.name;
}

TRAINCB_INLINE void LambdaCallback::call(const LambdaCallbackOptions::Hook& f, Context& ctx) {
    if (f) f(ctx);
}

}  // namespace traincb::inline v0
