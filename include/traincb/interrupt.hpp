#pragma once
/// @file interrupt.hpp
/// Graceful interruption (opt-in). While a SignalGuard lives, SIGINT and SIGTERM only set a flag;
/// Trainer::fit checks it after each batch: it finishes that batch, lets every callback save a
/// checkpoint (on_interrupt: a ModelCheckpoint with save_last writes last.safetensors; and
/// FitOptions::interrupt_checkpoint), runs on_train_end with EndKind::Interrupted and returns
/// normally. A second signal while the first is pending is not caught: the process gets the
/// default action (Ctrl-C twice kills a run that is stuck).
///
///     traincb::SignalGuard guard;                   // or FitOptions{.handle_signals = true}
///     auto history = trainer.fit(x, y, {...}, checkpoint);
///     if (history.end.kind == traincb::EndKind::Interrupted) return 130;

#include <atomic>
#include <string>

#include "traincb/detail/os.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

namespace detail {
static_assert(std::atomic<int>::is_always_lock_free,
              "traincb: the interrupt flag must be lock-free to be set from a signal handler");
/// The pending signal number (0: none). A lock-free atomic is async-signal-safe; constant
/// initialisation means the handler never runs a dynamic initialiser.
inline std::atomic<int> g_interrupt_signal{0};

inline void traincb_interrupt_handler(int sig) {
    int expected = 0;
    if (!g_interrupt_signal.compare_exchange_strong(expected, sig)) {
        // Second signal: give up on being graceful (sigaction and raise are async-signal-safe).
        os::raise_with_default_action(sig);
    }
}
}  // namespace detail

/// True when SIGINT or SIGTERM arrived under a SignalGuard (or request_interrupt was called) and
/// no Trainer has handled it yet.
[[nodiscard]] inline bool interrupt_requested() noexcept {
    return detail::g_interrupt_signal.load(std::memory_order_relaxed) != 0;
}
/// The pending signal (SIGINT, SIGTERM, or -1 for request_interrupt), 0 when none.
[[nodiscard]] inline int interrupt_signal() noexcept {
    return detail::g_interrupt_signal.load(std::memory_order_relaxed);
}
/// Asks for a graceful interruption without a signal (e.g. from another thread or a UI).
inline void request_interrupt() noexcept {
    int expected = 0;
    detail::g_interrupt_signal.compare_exchange_strong(expected, -1);
}
namespace detail {
/// Makes `sig` (interrupt_signal()'s values) pending when no interruption is (another rank's,
/// agreed by a vote: every rank then handles it as its own).
inline void adopt_interrupt(int sig) noexcept {
    int expected = 0;
    g_interrupt_signal.compare_exchange_strong(expected, sig);
}
}  // namespace detail
/// Forgets a pending interruption (Trainer does this once it has handled one).
inline void clear_interrupt() noexcept {
    detail::g_interrupt_signal.store(0, std::memory_order_relaxed);
}
/// "SIGINT", "SIGTERM", "request_interrupt" or "" for the value of interrupt_signal().
[[nodiscard]] inline std::string interrupt_signal_name(int sig) {
    if (sig == detail::os::kSigInt) return "SIGINT";
    if (sig == detail::os::kSigTerm) return "SIGTERM";
    if (sig == -1) return "request_interrupt";
    return sig == 0 ? "" : "signal " + std::to_string(sig);
}

/// Installs the graceful handler for SIGINT and SIGTERM for its lifetime and reinstates the
/// previous handlers afterwards (guards nest). Does not clear a pending interruption.
class SignalGuard {
public:
    /// @throws IoError when sigaction fails (the previous handlers are then kept)
    SignalGuard() {
        // SA_RESTART: a read or write in progress carries on instead of failing with EINTR.
        namespace os = detail::os;
        if (const int err = os::install_signal_handler(os::kSigInt, &detail::traincb_interrupt_handler, old_int_))
            throw IoError("SignalGuard", "cannot install a handler for", "SIGINT", err);
        if (const int err = os::install_signal_handler(os::kSigTerm, &detail::traincb_interrupt_handler, old_term_)) {
            os::restore_signal_handler(os::kSigInt, old_int_);
            throw IoError("SignalGuard", "cannot install a handler for", "SIGTERM", err);
        }
    }
    SignalGuard(const SignalGuard&) = delete;
    SignalGuard& operator=(const SignalGuard&) = delete;
    /// Reinstates the handlers that were installed before.
    ~SignalGuard() {
        detail::os::restore_signal_handler(detail::os::kSigTerm, old_term_);
        detail::os::restore_signal_handler(detail::os::kSigInt, old_int_);
    }

private:
    detail::os::SignalDisposition old_int_{};
    detail::os::SignalDisposition old_term_{};
};

}  // namespace traincb::inline v0
