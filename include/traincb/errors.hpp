#pragma once
/// @file errors.hpp
/// traincb's exception hierarchy. Every exception traincb throws derives from traincb::Error, and
/// also from the standard exception that fits it, so `catch (const std::invalid_argument&)` and
/// `catch (const traincb::Error&)` both work. Messages start with "traincb: <component>: ".

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace traincb::inline v0 {

/// Base of every traincb exception; a mixin, so that each concrete error keeps exactly one
/// std::exception base and `catch (const std::exception&)` stays unambiguous.
class Error {
public:
    Error() = default;
    Error(const Error&) = default;
    Error& operator=(const Error&) = default;
    virtual ~Error() = default;
    /// The full message, starting with "traincb: <component>: ".
    [[nodiscard]] virtual const char* what() const noexcept = 0;
};

/// Bad configuration or bad data passed to a traincb function (thrown at construction or at the
/// call, never later).
class InvalidArgument : public std::invalid_argument, public Error {
public:
    using std::invalid_argument::invalid_argument;
    /// The message, starting with "traincb: <component>: ".
    [[nodiscard]] const char* what() const noexcept override { return std::invalid_argument::what(); }
};

/// A file that is not in the expected format (truncated, corrupted, failed checksum, ...).
class FormatError : public std::runtime_error, public Error {
public:
    using std::runtime_error::runtime_error;
    /// The message, starting with "traincb: <component>: ".
    [[nodiscard]] const char* what() const noexcept override { return std::runtime_error::what(); }
};

/// A checkpoint file that cannot resume a run, and why (see NoValidCheckpointError).
struct InvalidCheckpointFile {
    std::filesystem::path path{};  ///< the file
    std::string reason{};          ///< the failed check or the read error ("checksum mismatch: ...")
};

/// FitOptions::resume_from found checkpoint files, but none that can resume the run (each one
/// truncated, corrupted or unreadable). Thrown before anything is written: every file of the run
/// is as it was. FitOptions::start_over_if_invalid starts a fresh run instead.
class NoValidCheckpointError : public FormatError {
public:
    /// @param message the full message, naming each file and why; @param files the same, as data
    NoValidCheckpointError(const std::string& message, std::vector<InvalidCheckpointFile> files)
        : FormatError(message), files_(std::move(files)) {}
    /// Every invalid file and why, in path order.
    [[nodiscard]] const std::vector<InvalidCheckpointFile>& files() const noexcept { return files_; }

private:
    std::vector<InvalidCheckpointFile> files_;
};

/// An operating-system I/O failure; the message names the path and the OS error.
class IoError : public std::runtime_error, public Error {
public:
    /// @param component e.g. "ModelCheckpoint"; @param action e.g. "cannot write"
    IoError(const std::string& component, const std::string& action, const std::filesystem::path& path,
            std::error_code code)
        : std::runtime_error("traincb: " + component + ": " + action + " '" + path.string() + "': " + code.message()),
          path_(path),
          code_(code) {}
    /// Builds the message from errno.
    IoError(const std::string& component, const std::string& action, const std::filesystem::path& path, int errno_value)
        : IoError(component, action, path, std::error_code(errno_value, std::generic_category())) {}
    /// The message, starting with "traincb: <component>: ".
    [[nodiscard]] const char* what() const noexcept override { return std::runtime_error::what(); }
    /// The path the failed operation was about.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// The OS error.
    [[nodiscard]] std::error_code code() const noexcept { return code_; }

private:
    std::filesystem::path path_;
    std::error_code code_;
};

/// Training could not go on (e.g. TerminateOnNaN with raise_error and a non-finite loss).
class TrainingError : public std::runtime_error, public Error {
public:
    using std::runtime_error::runtime_error;
    /// The message, starting with "traincb: <component>: ".
    [[nodiscard]] const char* what() const noexcept override { return std::runtime_error::what(); }
};

/// A misuse of the library detected at run time (e.g. a hook called out of order).
class LogicError : public std::logic_error, public Error {
public:
    using std::logic_error::logic_error;
    /// The message, starting with "traincb: <component>: ".
    [[nodiscard]] const char* what() const noexcept override { return std::logic_error::what(); }
};

/// What every other rank throws when one rank of a data-parallel run fails at a collective point
/// (see docs/distributed.md): the failing rank rethrows its own exception, the others this one,
/// so that no rank waits for a collective the failing rank will never reach.
class RemoteRankError : public std::runtime_error, public Error {
public:
    /// @param rank the rank that failed; @param message its exception's message
    RemoteRankError(int rank, const std::string& message)
        : std::runtime_error("traincb: rank " + std::to_string(rank) + " failed: " + message), rank_(rank) {}
    /// The message: "traincb: rank <r> failed: <that rank's message>".
    [[nodiscard]] const char* what() const noexcept override { return std::runtime_error::what(); }
    /// The rank that failed.
    [[nodiscard]] int rank() const noexcept { return rank_; }

private:
    int rank_ = 0;
};

}  // namespace traincb::inline v0
