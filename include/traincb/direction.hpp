#pragma once
/// @file direction.hpp
/// Whether a metric improves by going down (losses, errors) or up (accuracies, AUC).

namespace traincb::inline v0 {

/// The direction in which a metric improves.
enum class Direction {
    Min,  ///< lower is better (losses, errors)
    Max,  ///< higher is better (accuracy, precision, AUC, ...)
};

/// "min" or "max".
[[nodiscard]] constexpr const char* to_string(Direction d) noexcept {
    return d == Direction::Min ? "min" : "max";
}

}  // namespace traincb::inline v0
