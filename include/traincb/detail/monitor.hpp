#pragma once
/// @file detail/monitor.hpp
/// The monitor logic shared by EarlyStopping, ReduceLROnPlateau and ModelCheckpoint: resolving
/// Mode::Auto and the exact improvement arithmetic of docs/keras-semantics.md ("The shared monitor
/// logic").

#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/direction.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

/// How a monitored value improves: Min, Max, or Auto (resolved from the metric's declared
/// direction or its name; never guessed).
enum class Mode { Auto, Min, Max };

namespace detail {

TRAINCB_INLINE bool ends_with(std::string_view s, std::string_view suffix);

/// The direction of a metric name per docs/early-stopping-rules.md (`Mode::Auto`), or nullopt.
/// `declared` are the directions the logged metric objects declare, by log key; they win.
TRAINCB_INLINE std::optional<Direction> direction_from_name(
    std::string_view monitor, const std::vector<std::pair<std::string, Direction>>& declared = {});

/// Resolves `mode` for `monitor`. @throws InvalidArgument when Auto cannot be resolved.
TRAINCB_INLINE Direction resolve_mode(std::string_view component, Mode mode, std::string_view monitor,
                                      const std::vector<std::pair<std::string, Direction>>& declared = {});

/// `v + d < ref` (min) or `v - d > ref` (max), with exactly this operand order (Keras's
/// arithmetic; reordering changes results in floating point). Any comparison with NaN is false.
[[nodiscard]] inline bool better(Direction dir, double v, double ref, double d) noexcept {
    return dir == Direction::Min ? (v + d < ref) : (v - d > ref);
}
/// `v > ref` (min) or `v < ref` (max).
[[nodiscard]] inline bool worse(Direction dir, double v, double ref) noexcept {
    return dir == Direction::Min ? (v > ref) : (v < ref);
}

}  // namespace detail
}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/detail/monitor-inl.hpp"
#endif
