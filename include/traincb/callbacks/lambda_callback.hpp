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
#include "traincb/callbacks/lambda_callback-inl.hpp"
#endif
