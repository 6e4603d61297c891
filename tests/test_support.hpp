#pragma once
// Helpers shared by the Catch2 tests: a temporary directory, whole-file reads and writes, the
// message of an expected exception, and captures of std::cout and of traincb warnings.

#include <stdlib.h>  // mkdtemp

#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <traincb/diagnostics.hpp>
#include <utility>
#include <vector>

#include "catch.hpp"

namespace traincb_test {

namespace fs = std::filesystem;

/// A fresh directory per test (`traincb_<tag>_XXXXXX` in the system temporary directory),
/// removed with everything in it at scope exit.
struct TempDir {
    fs::path path;
    explicit TempDir(const std::string& tag = "test") {
        std::string tmpl = (fs::temp_directory_path() / ("traincb_" + tag + "_XXXXXX")).string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] fs::path operator/(const std::string& name) const { return path / name; }
};

/// The whole file as bytes ("" when it cannot be opened).
inline std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Replaces the file's content with `bytes`.
inline void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

/// The what() of the exception `f` throws, or "no exception".
template <class F>
std::string error_of(F&& f) {
    try {
        std::forward<F>(f)();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "no exception";
}

/// True when `part` occurs in `s`.
inline bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

/// Captures std::cout for its lifetime.
struct CoutCapture {
    std::ostringstream out;
    std::streambuf* previous;
    CoutCapture() : previous(std::cout.rdbuf(out.rdbuf())) {}
    ~CoutCapture() { std::cout.rdbuf(previous); }
    CoutCapture(const CoutCapture&) = delete;
    CoutCapture& operator=(const CoutCapture&) = delete;
};

/// Captures traincb::warn messages for its lifetime (the previous handler is restored).
struct WarningCapture {
    std::vector<std::string> messages;
    traincb::WarningHandler previous;
    WarningCapture() {
        previous = traincb::set_warning_handler([this](std::string_view m) { messages.emplace_back(m); });
    }
    ~WarningCapture() { traincb::set_warning_handler(std::move(previous)); }
    WarningCapture(const WarningCapture&) = delete;
    WarningCapture& operator=(const WarningCapture&) = delete;
    /// True when some message contains `part`.
    [[nodiscard]] bool any_contains(std::string_view part) const {
        for (const auto& m : messages)
            if (contains(m, part)) return true;
        return false;
    }
    /// Every message, one per line.
    [[nodiscard]] std::string all() const {
        std::string s;
        for (const auto& m : messages) s += m + "\n";
        return s;
    }
};

}  // namespace traincb_test
