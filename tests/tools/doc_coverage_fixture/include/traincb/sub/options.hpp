#pragma once
/// @file sub/options.hpp
/// Options structs and callback classes for the docs-option check.
#include <string>

namespace fixture::inline v0 {

/// The base classes the check recognises.
class Callback {};
/// Sinks.
class Sink {};

/// Options of Covered (every member is in its docs section).
struct CoveredOptions {
    int patience = 0;          ///< in a table row
    double min_delta = 0.0;    ///< in a sentence
    std::string monitor = "";  ///< in a subsection
    static constexpr int kNotAnOption = 1;  ///< static: not an option
};

/// Options of Partial (two members are missing from its section).
struct PartialOptions {
    int documented = 0;  ///< in its section
    int only_in_code = 0;  ///< only in a ```cpp block: not enough  (BAD)
    int elsewhere = 0;     ///< only in another struct's section: not enough  (BAD)
};

/// Options no doc names.
struct OrphanOptions {  // BAD
    int x = 0;  ///< never mentioned
};

/// A callback with a section.
class Covered final : public Callback {};
/// A callback no heading names (the prose mentions Missing, but that is not a section).
class Missing final : public Callback {};  // BAD
/// A sink with a section.
class MySink final : public Sink {};
/// A base for derivation: a mention in backticks is enough.
class LoggerBase : public Callback {};
/// A base the docs never mention.
class QuietBase : public Sink {};  // BAD
/// Derived indirectly from Callback, and no heading names it.
class Indirect final : public LoggerBase {};  // BAD

namespace detail {
/// Internal options are not checked.
struct InternalOptions {
    int x = 0;  ///< internal
};
}  // namespace detail

}  // namespace fixture::inline v0
