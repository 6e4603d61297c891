#pragma once
/// @file version.hpp
/// The one place the traincb version lives; CMake reads it from here.

#define TRAINCB_VERSION_MAJOR 0
#define TRAINCB_VERSION_MINOR 1
#define TRAINCB_VERSION_PATCH 0

namespace traincb::inline v0 {
/// The library version as "major.minor.patch".
inline constexpr const char* version_string = "0.1.0";
}  // namespace traincb::inline v0
