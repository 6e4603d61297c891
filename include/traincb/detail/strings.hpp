#pragma once
/// @file detail/strings.hpp
/// Small string helpers: edit distance for did-you-mean suggestions, shortest round-trip numbers.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

namespace traincb::inline v0::detail {

/// Levenshtein distance, for "did you mean" hints in error messages.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0U : 1U)});
            diag = up;
        }
    }
    return row[b.size()];
}

/// The candidate closest to `name`, or "" when none is plausibly a typo of it.
template <class Range>
std::string closest_match(std::string_view name, const Range& candidates) {
    std::string best;
    std::size_t best_d = std::string::npos;
    for (const auto& c : candidates) {
        const std::string_view cv(c);
        const std::size_t d = edit_distance(name, cv);
        if (d < best_d) {
            best_d = d;
            best = std::string(cv);
        }
    }
    if (best_d == std::string::npos || best_d > std::max<std::size_t>(2, name.size() / 3)) return {};
    return best;
}

/// "a, b, c" (or "(none)").
template <class Range>
std::string join(const Range& items, std::string_view sep = ", ") {
    std::string out;
    for (const auto& it : items) {
        if (!out.empty()) out += sep;
        out += std::string_view(it);
    }
    return out.empty() ? std::string("(none)") : out;
}

/// Shortest decimal that round-trips to the same double (std::to_chars), with "nan", "inf",
/// "-inf" for the non-finite values, as Python's repr writes them.
inline std::string format_double(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

}  // namespace traincb::inline v0::detail
