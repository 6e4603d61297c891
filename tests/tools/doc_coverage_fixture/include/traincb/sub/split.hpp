#pragma once
// A header whose function bodies live in split-inl.hpp, as traincb's do (traincb/detail/config.hpp).
namespace fixture::inline v0 {

/// Its body, in split-inl.hpp, returns: no @throws needed.
int split_quiet(int a);
/// Its body, in split-inl.hpp, throws, and this comment does not say so.
int split_throws(int a);  // BAD
/// Its body, in split-inl.hpp, throws.
/// @throws int when a is negative.
int split_documented_throw(int a);

}  // namespace fixture::inline v0

#include "traincb/sub/split-inl.hpp"
