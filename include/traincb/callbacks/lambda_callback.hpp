#pragma once
/// @file callbacks/lambda_callback.hpp
/// LambdaCallback: a callback made of functions, for one-off hooks (Keras's LambdaCallback).
///
///     traincb::LambdaCallback print_loss({
///         .on_epoch_end = [](traincb::Context& ctx) { std::cout << ctx.logs().at("loss") << '\n'; },
///     });
///
/// Every hook is a `std::function<void(Context&)>`; an empty one does nothing.

#include <functional>
#include <string>
#include <utility>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

/// The functions of a LambdaCallback, one per hook (each optional), in Callback's hook order.
struct LambdaCallbackOptions {
    using Hook = std::function<void(Context&)>;  ///< one hook's function
    Hook on_train_begin{};                       ///< before the first epoch
    Hook on_train_end{};                         ///< after the last epoch (on every exit)
    Hook on_epoch_begin{};                       ///< at the start of each epoch
    Hook on_epoch_end{};                         ///< at the end of each epoch, with its logs
    Hook on_train_batch_begin{};                 ///< before each training batch
    Hook on_train_batch_end{};                   ///< after each training batch, with the running means
    Hook on_test_begin{};                        ///< before validation
    Hook on_test_end{};                          ///< after validation, with the unprefixed validation values
    std::string name = "LambdaCallback";         ///< the name used in messages and as the source of stop requests
};

/// A callback whose hooks are the functions given in its options.
class LambdaCallback final : public Callback {
public:
    /// @throws InvalidArgument when `name` is empty.
    explicit LambdaCallback(LambdaCallbackOptions options = {});

    // CallbackList calls a hook only when the type overrides it, so all are overridden and an
    // empty function is a cheap early return.
    /// Calls options().on_train_begin, if set.
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;
    /// Calls options().on_train_end, if set.
    TRAINCB_INLINE void on_train_end(Context& ctx) override;
    /// Calls options().on_epoch_begin, if set.
    TRAINCB_INLINE void on_epoch_begin(Context& ctx) override;
    /// Calls options().on_epoch_end, if set.
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;
    /// Calls options().on_train_batch_begin, if set.
    TRAINCB_INLINE void on_train_batch_begin(Context& ctx) override;
    /// Calls options().on_train_batch_end, if set.
    TRAINCB_INLINE void on_train_batch_end(Context& ctx) override;
    /// Calls options().on_test_begin, if set.
    TRAINCB_INLINE void on_test_begin(Context& ctx) override;
    /// Calls options().on_test_end, if set.
    TRAINCB_INLINE void on_test_end(Context& ctx) override;

    /// options().name ("LambdaCallback" by default).
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// The options.
    [[nodiscard]] const LambdaCallbackOptions& options() const noexcept { return opt_; }

private:
    static void call(const LambdaCallbackOptions::Hook& f, Context& ctx);
    LambdaCallbackOptions opt_;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
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
#endif  // TRAINCB_DEFINITIONS
