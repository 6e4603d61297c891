#pragma once
/// @file diagnostics.hpp
/// Warnings. traincb never prints from a hot path; the few warnings it gives (a skipped invalid
/// checkpoint, a missing monitor under strict=false, ...) go through one replaceable handler.

#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace traincb::inline v0 {

/// A function that receives each warning's full text (starting with "traincb: <component>: ").
using WarningHandler = std::function<void(std::string_view)>;

namespace detail {
struct WarningState {
    std::mutex mutex;
    WarningHandler handler;
};
inline WarningState& warning_state() {
    static WarningState s;
    return s;
}
}  // namespace detail

/// Installs `handler` for all later warnings and returns the previous one; an empty handler
/// restores the default (one line on stderr).
inline WarningHandler set_warning_handler(WarningHandler handler) {
    auto& s = detail::warning_state();
    const std::lock_guard lock(s.mutex);
    return std::exchange(s.handler, std::move(handler));
}

/// Emits a warning through the installed handler.
inline void warn(std::string_view message) {
    auto& s = detail::warning_state();
    WarningHandler h;
    {
        const std::lock_guard lock(s.mutex);
        h = s.handler;
    }
    if (h) {
        h(message);
    } else {
        std::cerr << message << '\n';
    }
}

}  // namespace traincb::inline v0
