#pragma once
/// @file detail/strings.hpp
/// Small string helpers: edit distance for did-you-mean suggestions, and the one number codec of
/// traincb: every double in a saved state is written by format_double and read by parse_double,
/// and every number printed for people goes through to_chars too (format_fixed), so neither
/// depends on the C locale (setlocale(LC_ALL, "de_DE.UTF-8") makes printf write "0,5" and strtod
/// stop at "0.5"'s point; std::to_chars and std::from_chars never look at the locale).

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace traincb::inline v0::detail {

/// The concatenation of `parts` (anything convertible to std::string_view), built in one buffer.
/// Used instead of chains of `"literal" + std::string(...)`, on which g++ 12 at -O2 issues false
/// -Wrestrict / -Wstringop-overflow warnings (GCC bug 105329) that -Werror turns into errors.
template <class... Parts>
std::string cat(const Parts&... parts) {
    std::string out;
    out.reserve((std::string_view(parts).size() + ... + 0));
    (out.append(std::string_view(parts)), ...);
    return out;
}

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
/// "-inf" for the non-finite values, as Python's repr writes them; "-0" for negative zero. The
/// text every saved state stores for a double (parse_double reads it back bit for bit).
inline std::string format_double(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// The double `text` spells, or nullopt: the whole text must be one number as std::from_chars
/// reads it (what format_double writes, including "nan", "inf", "-inf" and "-0"; also any other
/// decimal or scientific form, without a leading '+' or spaces). A value beyond the double
/// range is nullopt, not infinity.
[[nodiscard]] inline std::optional<double> parse_double(std::string_view text) noexcept {
    if (text.empty()) return std::nullopt;
    double v = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) return std::nullopt;
    return v;
}

/// Appends `v` with `decimals` digits after the point ('.' whatever the locale): printf's "%.Nf",
/// or "%.Ne" when `scientific`; "nan", "inf", "-inf" for the non-finite values.
inline void append_fixed(std::string& out, double v, int decimals, bool scientific = false) {
    if (std::isnan(v)) {
        out += std::signbit(v) ? "-nan" : "nan";
        return;
    }
    char buf[400];  // "%.Nf" of 1e308 has 309 digits before the point
    const auto r = std::to_chars(buf, buf + sizeof buf, v,
                                 scientific ? std::chars_format::scientific : std::chars_format::fixed, decimals);
    if (r.ec == std::errc{}) out.append(buf, r.ptr);
}

/// `v` with `decimals` digits after the point ('.' whatever the locale), as printf's "%.Nf".
[[nodiscard]] inline std::string format_fixed(double v, int decimals) {
    std::string s;
    append_fixed(s, v, decimals);
    return s;
}

}  // namespace traincb::inline v0::detail
