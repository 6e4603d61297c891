#pragma once
/// @file detail/path_template.hpp
/// File-name templates in the style of Python's str.format, as Keras's ModelCheckpoint uses them:
/// "ckpt/model-{epoch:02d}-{val_loss:.4f}.safetensors". The supported subset of the format spec
/// is `[[fill]align][sign][0][width][.precision][type]` with align in `< > = ^`, sign in `+ - space`,
/// and type in `d f F e E g G %` (or none); see docs/checkpoints.md. Field values are sanitised so
/// that they can never add a directory level or leave the target directory.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "traincb/detail/python_float.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0::detail {

/// A parsed format spec (the part after ':' in "{key:spec}").
struct FormatSpec {
    char fill = ' ';
    char align = 0;   ///< '<', '>', '=', '^' or 0 (default: right for numbers)
    char sign = '-';  ///< '-', '+' or ' '
    bool zero = false;
    int width = 0;
    int precision = -1;  ///< -1: none
    char type = 0;       ///< 'd', 'f', 'F', 'e', 'E', 'g', 'G', '%' or 0
};

/// Parses `spec`. @throws InvalidArgument naming the template and the unsupported part.
[[nodiscard]] inline FormatSpec parse_format_spec(std::string_view spec, std::string_view where) {
    FormatSpec f;
    auto fail = [&](const std::string& why) {
        throw InvalidArgument(std::string(where) + ": format spec '" + std::string(spec) + "' " + why +
                              "; supported: [[fill]align][sign][0][width][.precision][type], align in <>=^, sign in "
                              "+- and space, type in d f F e E g G %");
    };
    std::size_t i = 0;
    auto is_align = [](char c) { return c == '<' || c == '>' || c == '=' || c == '^'; };
    if (spec.size() >= 2 && is_align(spec[1])) {
        f.fill = spec[0];
        f.align = spec[1];
        i = 2;
        if (f.fill == '{' || f.fill == '}') fail("uses a brace as the fill character");
    } else if (!spec.empty() && is_align(spec[0])) {
        f.align = spec[0];
        i = 1;
    }
    const bool explicit_fill = i == 2;
    if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) f.sign = spec[i++];
    if (i < spec.size() && (spec[i] == 'z' || spec[i] == '#'))
        fail(std::string("uses '") + spec[i] + "', which is not supported");
    if (i < spec.size() && spec[i] == '0') {
        f.zero = true;
        ++i;
    }
    auto number = [&](int& out) {
        const std::size_t b = i;
        while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') ++i;
        if (i == b) return false;
        const auto r = std::from_chars(spec.data() + b, spec.data() + i, out);
        if (r.ec != std::errc{} || out > 1000) fail("has a width or precision above 1000");
        return true;
    };
    (void)number(f.width);
    if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) fail("uses digit grouping, which is not supported");
    if (i < spec.size() && spec[i] == '.') {
        ++i;
        if (!number(f.precision)) fail("has a '.' without a precision after it");
    }
    if (i < spec.size()) {
        const char t = spec[i++];
        if (std::string_view("dfFeEgG%").find(t) == std::string_view::npos)
            fail(std::string("has type '") + t + "', which is not supported");
        f.type = t;
    }
    if (i != spec.size()) fail("has trailing characters");
    if (f.zero) {
        if (!explicit_fill) f.fill = '0';
        if (f.align == 0) f.align = '=';
    }
    return f;
}

/// Pads "sign + body" to the spec's width.
[[nodiscard]] inline std::string pad_formatted(const std::string& sign, const std::string& body, const FormatSpec& f) {
    const std::size_t len = sign.size() + body.size();
    const auto width = static_cast<std::size_t>(f.width);
    if (len >= width) return sign + body;
    const std::size_t n = width - len;
    switch (f.align) {
        case '<':
            return sign + body + std::string(n, f.fill);
        case '=':
            return sign + std::string(n, f.fill) + body;
        case '^':
            return std::string(n / 2, f.fill) + sign + body + std::string(n - n / 2, f.fill);
        default:
            return std::string(n, f.fill) + sign + body;
    }
}

[[nodiscard]] inline std::string format_with_spec(double value, const FormatSpec& f);

/// Formats an integer as Python's format(value, spec) does for the supported subset.
[[nodiscard]] inline std::string format_with_spec(std::int64_t value, const FormatSpec& f) {
    if (f.type != 0 && f.type != 'd') return format_with_spec(static_cast<double>(value), f);
    const std::string digits = std::to_string(value);
    const bool negative = value < 0;
    const std::string sign = negative ? "-" : f.sign == '+' ? "+" : f.sign == ' ' ? " " : "";
    return pad_formatted(sign, negative ? digits.substr(1) : digits, f);
}

/// Formats a double as Python's format(value, spec) does for the supported subset.
[[nodiscard]] inline std::string format_with_spec(double value, const FormatSpec& f) {
    const bool upper = f.type == 'F' || f.type == 'E' || f.type == 'G';
    std::string body;
    bool negative = std::signbit(value) && !std::isnan(value);
    if (!std::isfinite(value)) {
        body = std::isnan(value) ? "nan" : "inf";
        if (upper) body = std::isnan(value) ? "NAN" : "INF";
        if (f.type == '%') body += '%';
    } else {
        const double v = std::abs(f.type == '%' ? value * 100.0 : value);
        char buf[1200];
        std::to_chars_result r{};
        switch (f.type) {
            case 'f':
            case 'F':
            case '%':
                r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed,
                                  f.precision < 0 ? 6 : f.precision);
                break;
            case 'e':
            case 'E':
                r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific,
                                  f.precision < 0 ? 6 : f.precision);
                break;
            case 'g':
            case 'G':
                r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general,
                                  f.precision < 0 ? 6 : std::max(f.precision, 1));
                break;
            default:
                if (f.precision < 0) {
                    body = format_python_float(v);
                } else {
                    // No type with a precision: 'g', but fixed notation keeps one decimal ("2.0").
                    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, std::max(f.precision, 1));
                    body.assign(buf, r.ptr);
                    if (body.find_first_of(".e") == std::string::npos) body += ".0";
                }
                break;
        }
        if (body.empty()) body.assign(buf, r.ptr);
        if (upper)
            for (char& c : body) c = c == 'e' ? 'E' : c;
        if (f.type == '%') body += '%';
    }
    const std::string sign = negative ? "-" : f.sign == '+' ? "+" : f.sign == ' ' ? " " : "";
    return pad_formatted(sign, body, f);
}

/// A field value made safe for a file name: '/', '\\', NUL and control characters become '_',
/// and so does every '.' of a run of two or more (no ".." component), so a value can never add a
/// directory level or point outside the target directory. A value of "." becomes "_".
[[nodiscard]] inline std::string sanitize_file_name_part(std::string s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7F) s[i] = '_';
    }
    for (std::size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == '.' && s[i + 1] == '.') {
            std::size_t j = i;
            while (j < s.size() && s[j] == '.') s[j++] = '_';
            i = j;
        }
    if (s == ".") s = "_";
    return s;
}

/// A value a template field can take.
using TemplateValue = std::variant<std::int64_t, double>;

/// A parsed file-name template: literal text and `{key[:spec]}` fields (`{{` and `}}` are braces).
class PathTemplate {
public:
    /// One `{key:spec}` field.
    struct Field {
        std::string key;
        FormatSpec spec;
    };

    PathTemplate() = default;
    /// Parses `text`; `component` starts messages ("traincb: ModelCheckpoint"); `int_keys` are
    /// the keys whose values are integers (the 'd' type and no precision-without-type need one).
    /// @throws InvalidArgument for an unclosed or empty field, a stray '}', or an unsupported spec
    PathTemplate(std::string text, std::string_view component, const std::vector<std::string>& int_keys)
        : text_(std::move(text)) {
        const std::string where = std::string(component) + ": filepath '" + text_ + "'";
        std::string literal;
        for (std::size_t i = 0; i < text_.size(); ++i) {
            const char c = text_[i];
            if (c == '{' && i + 1 < text_.size() && text_[i + 1] == '{') {
                literal += '{';
                ++i;
            } else if (c == '}' && i + 1 < text_.size() && text_[i + 1] == '}') {
                literal += '}';
                ++i;
            } else if (c == '}') {
                throw InvalidArgument(where + ": a single '}' at position " + std::to_string(i) +
                                      "; write '}}' for a brace");
            } else if (c == '{') {
                const std::size_t close = text_.find('}', i + 1);
                if (close == std::string::npos)
                    throw InvalidArgument(where + ": the '{' at position " + std::to_string(i) +
                                          " is never closed; write '{{' for a brace");
                const std::string_view inner(text_.data() + i + 1, close - i - 1);
                const std::size_t colon = inner.find(':');
                Field f;
                f.key = std::string(inner.substr(0, colon));
                if (f.key.empty())
                    throw InvalidArgument(where + ": an empty field '{}' at position " + std::to_string(i) +
                                          "; name a log key, e.g. {epoch:02d} or {val_loss:.4f}");
                if (f.key.find_first_of("{!") != std::string::npos)
                    throw InvalidArgument(where + ": field '" + f.key +
                                          "' uses a conversion or a nested field, which is not supported");
                if (colon != std::string_view::npos) f.spec = parse_format_spec(inner.substr(colon + 1), where);
                bool is_int = false;
                for (const auto& k : int_keys) is_int = is_int || k == f.key;
                if (f.spec.type == 'd' && !is_int)
                    throw InvalidArgument(where + ": field '" + f.key + "' uses type 'd', but only " + join(int_keys) +
                                          " are integers; log values are floats, e.g. {" + f.key + ":.0f}");
                if (is_int && f.spec.type == 0 && f.spec.precision >= 0)
                    throw InvalidArgument(where + ": field '" + f.key +
                                          "' is an integer and takes no precision without a type (as in Python)");
                if (first_field_ == std::string::npos) first_field_ = i;
                pieces_.push_back({std::move(literal), static_cast<int>(fields_.size())});
                literal.clear();
                fields_.push_back(std::move(f));
                i = close;
            } else {
                literal += c;
            }
        }
        pieces_.push_back({std::move(literal), -1});
    }

    /// The template text.
    [[nodiscard]] const std::string& text() const noexcept { return text_; }
    /// The fields, in order.
    [[nodiscard]] const std::vector<Field>& fields() const noexcept { return fields_; }
    /// True when some field names `key`.
    [[nodiscard]] bool uses(std::string_view key) const noexcept {
        for (const auto& f : fields_)
            if (f.key == key) return true;
        return false;
    }
    /// True when the text before the last '/' has no field.
    [[nodiscard]] bool directory_is_literal() const noexcept {
        const std::size_t slash = text_.rfind('/');
        return slash == std::string::npos || first_field_ == std::string::npos || first_field_ > slash;
    }

    /// The file name for `lookup(key) -> std::optional<TemplateValue>`; a field whose key has no
    /// value is reported through `missing(key)`, which must throw or return a replacement.
    template <class Lookup, class Missing>
    [[nodiscard]] std::string format(Lookup&& lookup, Missing&& missing) const {
        std::string out;
        for (const auto& p : pieces_) {
            out += p.literal;
            if (p.field < 0) continue;
            const Field& f = fields_[static_cast<std::size_t>(p.field)];
            std::optional<TemplateValue> v = lookup(f.key);
            if (!v) v = missing(f.key);
            const std::string s = std::visit([&](auto x) { return format_with_spec(x, f.spec); }, *v);
            out += sanitize_file_name_part(s);
        }
        return out;
    }

private:
    struct Piece {
        std::string literal;  // text before the field
        int field = -1;       // index into fields_, -1 for the trailing text
    };
    std::string text_{};
    std::vector<Piece> pieces_{};
    std::vector<Field> fields_{};
    std::size_t first_field_ = std::string::npos;  // position of the first field's '{' in text_
};

}  // namespace traincb::inline v0::detail
