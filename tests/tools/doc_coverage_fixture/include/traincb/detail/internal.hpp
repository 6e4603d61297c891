#pragma once
// Files under traincb/detail/ are internals: nothing here needs a comment.
namespace fixture::detail {
struct Undocumented {
    int x = 0;
};
inline void f() { throw 1; }
}  // namespace fixture::detail
