#pragma once
/// @file detail/logfile.hpp
/// What the log-file sinks (CSV, JSON lines) share on top of io/atomic_file.hpp, so that neither
/// sink includes the other.

#include <cerrno>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "traincb/detail/os.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/atomic_file.hpp"

namespace traincb::inline v0::detail {

/// The helpers the log sinks (CSV, JSON lines) share on top of io/atomic_file.hpp: early path
/// checks, what a path names, and the warning of an `append` run.
namespace logfile {

/// Fails early, at construction, for a log path that can never be a file: an existing directory
/// (EISDIR), or a nearest existing ancestor that is not a directory (ENOTDIR). It only reads (a
/// sink is built on every rank of a data-parallel run, and only rank 0 opens the file): a missing
/// directory is not an error here, it is at begin() on the rank that writes (ENOENT).
/// @throws IoError naming `path`.
inline void check_log_path(const std::filesystem::path& path, const char* component) {
    namespace os = traincb::detail::os;
    os::FileStatus st;
    if (const int err = os::status(path, st); err == 0) {
        if (st.type == os::FileType::Directory) throw IoError(component, "cannot write the log file", path, EISDIR);
        return;
    } else if (err != ENOENT) {
        throw IoError(component, "cannot write the log file", path, err);
    }
    for (std::filesystem::path p = path.parent_path(); !p.empty(); p = p.parent_path()) {
        const int err = os::status(p, st);
        if (err == ENOENT) {
            if (p == p.parent_path()) return;
            continue;
        }
        if (err != 0) throw IoError(component, "cannot create the log file", path, err);
        if (st.type != os::FileType::Directory) throw IoError(component, "cannot create the log file", path, ENOTDIR);
        return;
    }
}

/// Replaces the log file `path` by `content` crash-safely (io::write_file_atomic), keeping the
/// old file's permission bits. @throws IoError naming the path; the old file is then intact.
inline void rewrite(const std::filesystem::path& path, std::string_view content, const char* component) {
    io::write_file_atomic(path, content, component, io::AtomicFileOptions{.keep_permissions = true});
}

/// What a log path names: nothing yet, a regular file (which can be read back and rewritten), or
/// something else (a device, pipe or terminal, which can only be appended to).
enum class FileKind { Missing, Regular, Other };

/// The kind of `path`. @throws IoError for a stat error other than ENOENT.
inline FileKind file_kind(const std::filesystem::path& path, const char* component) {
    traincb::detail::os::FileStatus st;
    if (const int err = traincb::detail::os::status(path, st)) {
        if (err == ENOENT) return FileKind::Missing;
        throw IoError(component, "cannot open", path, err);
    }
    return st.type == traincb::detail::os::FileType::Regular ? FileKind::Regular : FileKind::Other;
}

/// Warns that an `append` run (not a resume) replaced `rows` complete rows of epochs >=
/// `initial_epoch`: the user asked to keep the file, so dropping part of it must not be silent.
inline void warn_replaced(const char* component, const std::filesystem::path& path, std::size_t rows,
                          int initial_epoch) {
    traincb::warn("traincb: " + std::string(component) + ": append: '" + path.string() + "' held " +
                  std::to_string(rows) + (rows == 1 ? " row" : " rows") +
                  " of epochs >= " + std::to_string(initial_epoch) +
                  ", which this run logs again: they were replaced, not duplicated. "
                  "To keep them, continue the run (FitOptions::initial_epoch or resume_from) or log to another file");
}

}  // namespace logfile

}  // namespace traincb::inline v0::detail
