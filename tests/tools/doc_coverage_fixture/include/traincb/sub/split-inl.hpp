#pragma once
// The bodies of split.hpp: read as its continuation, so these definitions need no comment of their own.
#include "traincb/sub/split.hpp"

namespace fixture::inline v0 {

inline int split_quiet(int a) {
    return a;
}
inline int split_throws(int a) {
    if (a < 0) throw a;
    return a;
}
inline int split_documented_throw(int a) {
    if (a < 0) throw a;
    return a;
}
// A public function that split.hpp does not declare: reported here, in split-inl.hpp.
inline int split_undeclared(int a) {
    return a;
}  // BAD

}  // namespace fixture::inline v0
