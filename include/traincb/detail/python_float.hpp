#pragma once
/// @file detail/python_float.hpp
/// Python's repr() of a double, as Keras's CSVLogger writes it and as a file-name template
/// formats a field without a spec; shared by the CSV sink and detail/path_template.hpp.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

namespace traincb::inline v0::detail {

/// Appends Python's repr() of `v` (what Keras's CSVLogger writes): the shortest round-trip digits,
/// fixed notation with a trailing ".0" for integral values when the decimal exponent is in
/// [-4, 16), else scientific with a signed exponent of at least 2 digits; "nan", "inf", "-inf".
inline void append_python_float(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "nan";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "inf" : "-inf";
        return;
    }
    char buf[40];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    const std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));  // "-1.25e+02"
    const std::size_t e = sci.find('e');
    int exp = 0;
    const char* exp_begin = sci.data() + e + 1;
    const bool exp_negative = *exp_begin == '-';
    std::from_chars(exp_begin + 1, sci.data() + sci.size(), exp);  // skips the sign to_chars always writes
    if (exp_negative) exp = -exp;
    if (exp < -4 || exp >= 16) {  // to_chars's scientific layout is already Python's
        out.append(sci);
        return;
    }
    const bool negative = sci.front() == '-';
    std::string_view mantissa = sci.substr(negative ? 1 : 0, e - (negative ? 1 : 0));
    char digits[24];
    std::size_t n = 0;
    for (char c : mantissa)
        if (c != '.') digits[n++] = c;
    if (negative) out += '-';
    if (exp >= 0) {
        const auto int_digits = static_cast<std::size_t>(exp) + 1;
        if (n <= int_digits) {
            out.append(digits, n);
            out.append(int_digits - n, '0');
            out += ".0";
        } else {
            out.append(digits, int_digits);
            out += '.';
            out.append(digits + int_digits, n - int_digits);
        }
    } else {
        out += "0.";
        out.append(static_cast<std::size_t>(-exp - 1), '0');
        out.append(digits, n);
    }
}

/// Python's repr() of `v` as a string (see append_python_float).
inline std::string format_python_float(double v) {
    std::string s;
    append_python_float(s, v);
    return s;
}

}  // namespace traincb::inline v0::detail
