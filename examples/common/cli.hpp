#pragma once
/// @file cli.hpp
/// A tiny command-line flag parser for traincb's examples, and the one-line JSON summary.
///
///     int epochs = 100;                 // the current value is the default shown by --help
///     double lr = 0.001;
///     bool json = false;
///     traincb_examples::Cli cli("breast_cancer", "Trains a small MLP on the Wisconsin data set.");
///     cli.flag("epochs", epochs, "maximum number of epochs");
///     cli.flag("lr", lr, "Adam's learning rate");
///     cli.flag("json", json, "print a one-line JSON summary last");
///     cli.parse_or_exit(argc, argv);
///
/// Flags are `--name value` or `--name=value`; a bool flag is a switch (`--json`, or
/// `--json=true|false|1|0`). `--help` / `-h` print the usage and exit 0. An unknown flag, a
/// missing or malformed value, or a stray argument prints one "error: ..." line to stderr and
/// exits 2. parse() does the same work without printing or exiting, for tests.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#if !(defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L)
#include <locale>
#include <sstream>
#endif

#include <nlohmann/json.hpp>
#include <traincb/errors.hpp>

namespace traincb_examples {

/// What parse() decided.
enum class ParseStatus {
    Ok,    ///< every flag was valid; the bound variables hold the values
    Help,  ///< --help or -h was given; message holds the usage
    Error  ///< message holds the one-line error ("error: ... (see --help)")
};

/// The result of Cli::parse.
struct ParseResult {
    ParseStatus status = ParseStatus::Ok;  ///< the outcome
    std::string message{};                 ///< usage (Help) or the error line (Error); empty when Ok
};

/// Declares flags bound to variables, parses argv into them, and prints usage.
class Cli {
public:
    /// @param program the name shown in the usage line; @param description one paragraph for --help.
    Cli(std::string program, std::string description)
        : program_(std::move(program)), description_(std::move(description)) {}

    /// An integer flag `--name <int>`; `value`'s current content is the default.
    /// @throws traincb::InvalidArgument for an invalid or duplicate name.
    Cli& flag(std::string name, int& value, std::string help) { return add_(std::move(name), &value, std::move(help)); }
    /// A floating-point flag `--name <number>` (finite values only).
    /// @throws traincb::InvalidArgument for an invalid or duplicate name.
    Cli& flag(std::string name, double& value, std::string help) {
        return add_(std::move(name), &value, std::move(help));
    }
    /// A string flag `--name <text>`.
    /// @throws traincb::InvalidArgument for an invalid or duplicate name.
    Cli& flag(std::string name, std::string& value, std::string help) {
        return add_(std::move(name), &value, std::move(help));
    }
    /// A switch `--name`: sets value to true (or to the value of `--name=true|false|1|0`).
    /// @throws traincb::InvalidArgument for an invalid or duplicate name.
    Cli& flag(std::string name, bool& value, std::string help) {
        return add_(std::move(name), &value, std::move(help));
    }

    /// Parses argv[1..argc) into the bound variables, without printing or exiting. A later
    /// occurrence of a flag overrides an earlier one. --help anywhere wins over errors.
    [[nodiscard]] ParseResult parse(int argc, const char* const* argv) const {
        std::vector<std::string_view> args;
        for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
        for (auto a : args)
            if (a == "--help" || a == "-h") return {ParseStatus::Help, usage()};
        for (std::size_t i = 0; i < args.size(); ++i) {
            const std::string_view arg = args[i];
            if (!arg.starts_with("--") || arg.size() == 2) {
                if (arg.starts_with("-")) return error_("unknown flag '" + std::string(arg) + "'");
                return error_("unexpected argument '" + std::string(arg) + "'; flags start with --");
            }
            const auto eq = arg.find('=');
            const std::string_view name = arg.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2);
            const Flag* f = find_(name);
            if (f == nullptr) return error_("unknown flag '--" + std::string(name) + "'");
            std::optional<std::string_view> value;
            if (eq != std::string_view::npos) value = arg.substr(eq + 1);
            if (std::holds_alternative<bool*>(f->target)) {
                bool b = true;
                if (value && !parse_bool_(*value, b))
                    return error_("invalid value '" + std::string(*value) + "' for switch '--" + f->name +
                                  "': expected true, false, 1 or 0");
                *std::get<bool*>(f->target) = b;
                continue;
            }
            if (!value) {
                if (i + 1 >= args.size())
                    return error_("flag '--" + f->name + "' needs a value (" + type_name_(*f) + ")");
                value = args[++i];
            }
            if (!assign_(*f, *value))
                return error_("invalid value '" + std::string(*value) + "' for '--" + f->name + "': expected " +
                              type_name_(*f));
        }
        return {};
    }

    /// Prints the usage (exit code 0) or the error (to `err`, exit code 2) of a parse result.
    /// @return the exit code the program should end with, or nullopt to continue when Ok.
    static std::optional<int> report(const ParseResult& r, std::ostream& out, std::ostream& err) {
        switch (r.status) {
            case ParseStatus::Ok:
                return std::nullopt;
            case ParseStatus::Help:
                out << r.message << std::flush;
                return 0;
            case ParseStatus::Error:
                err << r.message << '\n' << std::flush;
                return 2;
        }
        return 2;
    }

    /// parse(), then report() to stdout/stderr and std::exit with its code unless parsing
    /// succeeded.
    void parse_or_exit(int argc, const char* const* argv) const {
        if (const auto code = report(parse(argc, argv), std::cout, std::cerr)) std::exit(*code);
    }

    /// The --help text: usage line, description, then one line per flag with its default.
    [[nodiscard]] std::string usage() const {
        std::vector<std::pair<std::string, std::string>> rows;
        for (const Flag& f : flags_) {
            std::string left = "--" + f.name;
            if (!std::holds_alternative<bool*>(f.target)) left += " <" + type_name_(f) + ">";
            rows.emplace_back(std::move(left), f.help + " (default: " + default_text_(f) + ")");
        }
        rows.emplace_back("--help, -h", "show this help and exit");
        std::size_t width = 0;
        for (const auto& [left, right] : rows) width = std::max(width, left.size());
        std::string out = "usage: " + program_ + " [flags]\n\n";
        if (!description_.empty()) out += description_ + "\n\n";
        out += "flags:\n";
        for (const auto& [left, right] : rows) {
            out.append(2, ' ').append(left).append(width - left.size() + 2, ' ').append(right).append(1, '\n');
        }
        return out;
    }

private:
    using Target = std::variant<int*, double*, std::string*, bool*>;
    struct Flag {
        std::string name;
        Target target;
        std::string help;
        std::string default_text;
    };

    template <class T>
    Cli& add_(std::string name, T* target, std::string help) {
        const bool bad = name.empty() || name.starts_with("-") || name.find_first_of("= \t\n") != std::string::npos ||
                         name == "help" || name == "h";
        if (bad)
            throw traincb::InvalidArgument("traincb: Cli: flag name '" + name +
                                           "' is invalid; use letters, digits, '-' or '_' without leading dashes "
                                           "(help is reserved)");
        if (find_(name) != nullptr)
            throw traincb::InvalidArgument("traincb: Cli: flag '--" + name + "' is declared twice");
        Flag f{std::move(name), Target(target), std::move(help), {}};
        f.default_text = default_text_(f);
        flags_.push_back(std::move(f));
        return *this;
    }

    [[nodiscard]] const Flag* find_(std::string_view name) const {
        for (const Flag& f : flags_)
            if (f.name == name) return &f;
        return nullptr;
    }

    [[nodiscard]] static ParseResult error_(const std::string& what) {
        return {ParseStatus::Error, "error: " + what + " (see --help)"};
    }

    [[nodiscard]] static std::string type_name_(const Flag& f) {
        if (std::holds_alternative<int*>(f.target)) return "int";
        if (std::holds_alternative<double*>(f.target)) return "number";
        if (std::holds_alternative<std::string*>(f.target)) return "text";
        return "switch";
    }

    // The default as shown by --help: taken from the bound variable when the flag was declared.
    [[nodiscard]] static std::string default_text_(const Flag& f) {
        if (!f.default_text.empty()) return f.default_text;
        if (auto* p = std::get_if<int*>(&f.target)) return std::to_string(**p);
        if (auto* p = std::get_if<double*>(&f.target)) {
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
            char buf[64];
            const auto res = std::to_chars(buf, buf + sizeof buf, **p);
            return std::string(buf, res.ptr);
#else
            std::ostringstream os;
            os.imbue(std::locale::classic());
            os << **p;
            return os.str();
#endif
        }
        if (auto* p = std::get_if<std::string*>(&f.target)) return "\"" + **p + "\"";
        return *std::get<bool*>(f.target) ? "on" : "off";
    }

    static bool parse_bool_(std::string_view s, bool& out) {
        if (s == "true" || s == "1")
            out = true;
        else if (s == "false" || s == "0")
            out = false;
        else
            return false;
        return true;
    }

    // Converts the whole of `s`; leaves the variable untouched on failure.
    static bool assign_(const Flag& f, std::string_view s) {
        if (auto* p = std::get_if<std::string*>(&f.target)) {
            **p = std::string(s);
            return true;
        }
        if (s.empty()) return false;
        const char* first = s.data();
        const char* last = s.data() + s.size();
        if (auto* p = std::get_if<int*>(&f.target)) {
            int v = 0;
            const auto [end, ec] = std::from_chars(first, last, v);
            if (ec != std::errc() || end != last) return false;
            **p = v;
            return true;
        }
        double v = 0;
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
        const auto [end, ec] = std::from_chars(first, last, v);
        if (ec != std::errc() || end != last || !std::isfinite(v)) return false;
#else  // a standard library without floating-point from_chars (older libc++)
        std::istringstream in{std::string(s)};
        in.imbue(std::locale::classic());
        in >> v;
        if (!in || in.peek() != std::char_traits<char>::eof() || !std::isfinite(v)) return false;
#endif
        *std::get<double*>(f.target) = v;
        return true;
    }

    std::string program_;
    std::string description_;
    std::vector<Flag> flags_{};
};

/// Prints `summary` as one compact JSON line to `out` and flushes. With --json this must be the
/// LAST line an example prints, so that scripts can read it with `tail -n 1`. Invalid UTF-8 in
/// strings is replaced (never throws); non-finite numbers print as null (JSON has no NaN).
inline void print_json_summary(const nlohmann::json& summary, std::ostream& out = std::cout) {
    out << summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n' << std::flush;
}

}  // namespace traincb_examples
