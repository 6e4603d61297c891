#pragma once
/// @file io/atomic_file.hpp
/// The one file layer every writer of traincb uses (checkpoints, CSV and JSON-lines logs,
/// TensorBoard event files, the HTML report), all through the FileOps seam of detail/os.hpp.
///
/// Crash-safe replacement (AtomicFile, write_file_atomic): a file is written to a hidden
/// temporary file in the same directory, flushed to disk, then renamed over the target, and the
/// directory is flushed: a reader (or a machine that loses power) sees either the complete old
/// file or the complete new one, never a torn mix. On any failure the temporary file is removed
/// and the old file is left exactly as it was.
///
///     traincb::io::write_file_atomic("ckpt/best.safetensors", bytes, "ModelCheckpoint");
///
/// Appending (AppendFile): whole pieces (a log row, event records) handed to the OS one write at
/// a time; a failed write is cut back, so the file keeps exactly the pieces written before it.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/detail/hash.hpp"
#include "traincb/detail/os.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0::detail {

using os::pwrite_all;
using os::write_all;

/// Creates `dir` and its missing ancestors (mkdir -p) through file_ops().
/// @throws IoError (ENOTDIR when a component is a regular file, EACCES, EROFS, ...)
TRAINCB_INLINE void create_directories(const std::filesystem::path& dir, const std::string& component);

/// A file opened for sequential reading through file_ops().
class FileReader {
public:
    /// Opens `path`. @throws IoError when it cannot be opened or is a directory.
    FileReader(const std::filesystem::path& path, std::string component);
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;
    ~FileReader() { (void)os::close_file(fd_); }

    /// The size the file had when it was opened (0 for pipes and devices).
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }

    /// Reads up to `out.size()` bytes; fewer only at end of file. @throws IoError
    std::size_t read(std::span<std::byte> out);

private:
    std::filesystem::path path_;
    std::string component_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

/// Appends the whole content of `path` to `out` (a std::string or a std::vector<std::byte>).
/// @throws IoError (ENOENT, EACCES, EISDIR, EIO, ...) naming the path
template <class Buffer>
void read_whole_file(const std::filesystem::path& path, std::string_view component, Buffer& out) {
    FileReader in(path, std::string(component));
    const std::size_t start = out.size();
    out.resize(start + static_cast<std::size_t>(in.size()));
    const std::size_t got = in.read(std::as_writable_bytes(std::span(out.data() + start, out.size() - start)));
    out.resize(start + got);
    if (got < in.size()) return;  // shrank while reading: return what is there
    // The file may be longer than stat said (still growing, or a pipe): read to the end.
    std::vector<std::byte> chunk(64 << 10);
    while (const std::size_t n = in.read(chunk)) {
        const auto* p = reinterpret_cast<const typename Buffer::value_type*>(chunk.data());
        out.insert(out.end(), p, p + n);
        if (n < chunk.size()) break;
    }
}

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::io {

/// Options of AtomicFile and write_file_atomic.
struct AtomicFileOptions {
    /// Give the new file the permission bits (chmod) of the file it replaces, as an in-place
    /// edit would keep them; a new file gets 0666 less the umask either way. Off for checkpoints
    /// (each is a new version), on for the logs and the report, which a user may chmod while a
    /// run rewrites them.
    bool keep_permissions = false;
};

/// A file being written crash-safely: bytes go to a hidden temporary file next to the target
/// (".<name>.tmp.<pid>.<random>") and replace the target only on commit(). Destroying it without
/// commit() (or any failure) removes the temporary file and leaves the target untouched. The
/// old version's cached pages are dropped when the temporary file is created (its bytes stay).
class AtomicFile {
public:
    /// Creates the missing parent directories and the temporary file (with the target's
    /// permission bits when `options.keep_permissions` is set and the target exists).
    /// @throws IoError naming the directory or target (EACCES, EROFS, ENOTDIR, ENOSPC, ...)
    /// @throws InvalidArgument when `path` is empty
    AtomicFile(std::filesystem::path path, std::string_view component, AtomicFileOptions options = {});
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    /// Abandons the write unless commit() succeeded.
    ~AtomicFile() { abandon(); }

    /// The target path.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// The temporary file's path (empty once committed or abandoned).
    [[nodiscard]] const std::filesystem::path& temp_path() const noexcept { return temp_; }

    /// Appends bytes. Small pieces are gathered into one buffer so that a state with many small
    /// tensors costs few system calls; large ones go straight to the file without a copy.
    /// @throws IoError (the temporary file is removed) @throws LogicError after commit or failure
    void write(std::span<const std::byte> bytes);

    /// Replaces bytes already written, at `offset` from the start of the file (e.g. a header field
    /// known only once the data after it has been written).
    /// @throws IoError (the temporary file is removed) @throws LogicError after commit or failure,
    /// or when the range reaches past the bytes written so far
    void overwrite(std::uint64_t offset, std::span<const std::byte> bytes);

    /// The number of bytes written so far.
    [[nodiscard]] std::uint64_t size() const noexcept { return written_; }

    /// Flushes the data to disk, renames the temporary file over the target and flushes the
    /// directory. @throws IoError; when flushing the directory fails the new file is already in
    /// place, but a power loss could still undo the rename.
    void commit() { commit_keeping_previous({}); }

    /// As commit(), but the file it replaces (when there is one) is first renamed to `previous`
    /// (replacing that file), so the old version stays whole on disk under another name; an empty
    /// `previous` is commit(). Crash-safe at every step: a kill between the two renames leaves
    /// `previous` holding the old version and no file at the target. When the second rename
    /// fails, the old version is renamed back to the target (best effort) before the IoError.
    /// @throws IoError ("cannot keep the previous version of" when the first rename fails: the
    /// target and `previous` are then untouched)
    void commit_keeping_previous(const std::filesystem::path& previous);

    /// Removes the temporary file (no-op once committed or abandoned). Never throws.
    void abandon() noexcept;

private:
    // Pieces below this are gathered; at 64 KiB the buffer comes from the heap's free lists
    // (below malloc's mmap threshold), so it costs no page faults, and a large tensor is never copied.
    static constexpr std::size_t kStageBytes = std::size_t{64} << 10;

    static std::string random_suffix();
    // The temporary file takes the permission bits of the file it will replace (a missing
    // target: nothing to keep).
    void keep_permissions();
    void require_open(const char* what) const;
    void flush_stage();
    [[noreturn]] void fail(const char* action, int err);

    std::filesystem::path path_;
    std::string component_;
    std::filesystem::path temp_;
    int fd_ = -1;
    std::uint64_t written_ = 0;
    std::vector<std::byte> stage_;
};

/// Replaces `path` with `bytes` crash-safely (see AtomicFile); missing parent directories are
/// created. `component` starts error messages, e.g. "ModelCheckpoint".
/// @throws IoError naming the path and the OS error; the previous file is then left intact
TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes,
                                      std::string_view component, AtomicFileOptions options = {});

/// Replaces `path` with the text `text` crash-safely (see AtomicFile).
/// @throws IoError naming the path and the OS error; the previous file is then left intact
TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path, std::string_view text,
                                      std::string_view component, AtomicFileOptions options = {});

/// Replaces `path` with the concatenation of `pieces`, written one after another without
/// joining them in memory (a header, then each tensor's bytes).
/// @throws IoError naming the path and the OS error; the previous file is then left intact
TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path,
                                      std::span<const std::span<const std::byte>> pieces, std::string_view component,
                                      AtomicFileOptions options = {});

/// Replaces `path` with the concatenation of `pieces` (braced-list convenience).
/// @throws IoError naming the path and the OS error; the previous file is then left intact
TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path,
                                      std::initializer_list<std::span<const std::byte>> pieces,
                                      std::string_view component, AtomicFileOptions options = {});

/// How AppendFile opens its file (every mode writes at the end: O_APPEND).
enum class AppendMode {
    Truncate,   ///< create the file, or empty an existing one
    Append,     ///< create the file, or keep an existing one and write after its end
    CreateNew,  ///< create a file that does not exist yet (an existing one is EEXIST)
};

/// A file written by appending whole pieces (a log row, a batch of event records) through the
/// FileOps seam. Each write() hands its bytes to the OS at once (nothing is buffered here, so a
/// killed process loses no completed piece). A failed write is cut back (ftruncate) to where the
/// file ended before it, so a regular file never ends in a torn piece; a pipe or terminal cannot
/// be cut back. Not thread-safe. Move-only; destroying it closes the file, ignoring errors (call
/// close() to see them).
class AppendFile {
public:
    /// No file (is_open() is false).
    AppendFile() noexcept = default;
    /// Opens `path` as `mode` says; a new file gets `permissions` less the umask. The parent
    /// directory must exist. @throws IoError naming the path ("cannot create" for
    /// AppendMode::CreateNew, else "cannot open"; EEXIST, ENOENT, EACCES, EISDIR, ...)
    AppendFile(std::filesystem::path path, std::string_view component, AppendMode mode, unsigned permissions = 0666);
    /// Takes over `other`'s file; `other` is left closed.
    AppendFile(AppendFile&& other) noexcept
        : path_(std::move(other.path_)),
          component_(std::move(other.component_)),
          fd_(std::exchange(other.fd_, -1)),
          regular_(other.regular_),
          size_(other.size_) {}
    /// Closes this file (ignoring errors), then takes over `other`'s.
    AppendFile& operator=(AppendFile&& other) noexcept;
    AppendFile(const AppendFile&) = delete;
    AppendFile& operator=(const AppendFile&) = delete;
    /// Closes the file, ignoring errors.
    ~AppendFile() { reset(); }

    /// Appends all of `bytes` (resuming after short writes and EINTR).
    /// @throws IoError naming the path (ENOSPC on a full disk); the file then ends where it
    /// ended before this call. @throws LogicError when the file is not open
    void write(std::span<const std::byte> bytes);
    /// Appends the characters of `text` (see the byte overload).
    /// @throws IoError naming the path; LogicError when the file is not open
    void write(std::string_view text) { write(std::as_bytes(std::span(text.data(), text.size()))); }

    /// Closes the file (no-op when it is not open). @throws IoError when close(2) reports an
    /// error (e.g. a deferred write error on NFS); the file is closed either way
    void close();
    /// Closes the file, ignoring errors (for unwinding); no-op when it is not open.
    void reset() noexcept {
        if (fd_ >= 0) (void)detail::os::close_file(std::exchange(fd_, -1));
    }

    /// True between a successful open and close() or reset().
    [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
    /// The file's path.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// The bytes in the file: its size when opened (0 when not a regular file) plus every
    /// completed write.
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }

private:
    std::filesystem::path path_;
    std::string component_;
    int fd_ = -1;
    bool regular_ = false;
    std::uint64_t size_ = 0;
};

/// The whole content of `path`.
/// @throws IoError (ENOENT, EACCES, EISDIR, EIO, ...) naming the path
[[nodiscard]] TRAINCB_INLINE std::vector<std::byte> read_file(const std::filesystem::path& path,
                                                              std::string_view component);

/// The whole content of `path`, as text.
/// @throws IoError (ENOENT, EACCES, EISDIR, EIO, ...) naming the path
[[nodiscard]] TRAINCB_INLINE std::string read_text_file(const std::filesystem::path& path, std::string_view component);

}  // namespace traincb::inline v0::io

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0::detail {

TRAINCB_INLINE void create_directories(const std::filesystem::path& dir, const std::string& component) {
    if (dir.empty()) return;
    os::FileStatus st;
    if (const int err = os::status(dir, st); err == 0) {
        if (st.type == os::FileType::Directory) return;
        throw IoError(component, "cannot create directory", dir, ENOTDIR);
    } else if (err != ENOENT) {
        throw IoError(component, "cannot create directory", dir, err);
    }
    const std::filesystem::path parent = dir.parent_path();
    if (!parent.empty() && parent != dir) create_directories(parent, component);
    if (const int err = os::make_directory(dir)) {
        // Another process may have created it between our stat and mkdir: fine if it is a directory.
        if (err != EEXIST || os::status(dir, st) != 0 || st.type != os::FileType::Directory)
            throw IoError(component, "cannot create directory", dir, err == EEXIST ? ENOTDIR : err);
    }
}

TRAINCB_INLINE FileReader::FileReader(const std::filesystem::path& path, std::string component)
    : path_(path), component_(std::move(component)) {
    if (const int err = os::open_file(path, os::OpenFor::Read, 0, fd_))
        throw IoError(component_, "cannot open", path_, err);
    os::FileStatus st;
    if (const int err = os::status(fd_, st)) {
        (void)os::close_file(fd_);
        throw IoError(component_, "cannot open", path_, err);
    }
    if (st.type == os::FileType::Directory) {
        (void)os::close_file(fd_);
        throw IoError(component_, "cannot read", path_, EISDIR);
    }
    size_ = st.size;
}

TRAINCB_INLINE std::size_t FileReader::read(std::span<std::byte> out) {
    std::size_t got = 0;
    if (const int err = os::read_some(fd_, out.data(), out.size(), got))
        throw IoError(component_, "cannot read", path_, err);
    return got;
}

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::io {

TRAINCB_INLINE AtomicFile::AtomicFile(std::filesystem::path path, std::string_view component, AtomicFileOptions options)
    : path_(std::move(path)), component_(component) {
    if (path_.empty()) throw InvalidArgument("traincb: " + component_ + ": the file path is empty; pass a file name");
    if (!path_.has_filename()) throw IoError(component_, "cannot write", path_, EISDIR);
    const std::filesystem::path dir = path_.parent_path();
    detail::create_directories(dir, component_);
    // Keep the temporary name within NAME_MAX (255) even for a long target name.
    std::string base = path_.filename().string();
    if (base.size() > 200) base.resize(200);
    for (int attempt = 0;; ++attempt) {
        temp_ = dir / ("." + base + ".tmp." + std::to_string(detail::os::current_pid()) + "." + random_suffix());
        const int err = detail::os::open_file(temp_, detail::os::OpenFor::CreateNew, 0666, fd_);
        if (err == 0) break;
        if (err == EEXIST && attempt < 16) continue;  // a name collision: draw another suffix
        temp_.clear();
        throw IoError(component_, "cannot create a temporary file for", path_, err);
    }
    if (options.keep_permissions) keep_permissions();
    detail::os::drop_cached_pages(path_);
}

TRAINCB_INLINE void AtomicFile::write(std::span<const std::byte> bytes) {
    require_open("write");
    written_ += bytes.size();
    if (bytes.size() >= kStageBytes) {
        flush_stage();
        if (const int err = detail::os::write_all(fd_, bytes.data(), bytes.size())) fail("cannot write", err);
        return;
    }
    if (stage_.size() + bytes.size() > kStageBytes) flush_stage();
    if (stage_.capacity() == 0) stage_.reserve(kStageBytes);
    stage_.insert(stage_.end(), bytes.begin(), bytes.end());
}

TRAINCB_INLINE void AtomicFile::overwrite(std::uint64_t offset, std::span<const std::byte> bytes) {
    require_open("overwrite");
    if (offset > written_ || bytes.size() > written_ - offset)
        throw LogicError("traincb: " + component_ + ": AtomicFile::overwrite() of bytes [" + std::to_string(offset) +
                         ", " + std::to_string(offset + bytes.size()) + ") of '" + path_.string() +
                         "', which has only " + std::to_string(written_) +
                         " bytes; only bytes already written can be replaced");
    flush_stage();
    if (const int err = detail::os::pwrite_all(fd_, bytes.data(), bytes.size(), offset)) fail("cannot write", err);
}

TRAINCB_INLINE void AtomicFile::commit_keeping_previous(const std::filesystem::path& previous) {
    require_open("commit");
    flush_stage();
    if (const int err = detail::os::sync_file(fd_)) fail("cannot flush", err);
    // close() can report a deferred write error (NFS): the data is then not safely stored.
    if (const int err = detail::os::close_file(std::exchange(fd_, -1))) fail("cannot close", err);
    bool moved = false;  // the old version is now at `previous`
    if (!previous.empty()) {
        const int err = detail::os::rename_file(path_, previous);
        if (err != 0 && err != ENOENT) fail("cannot keep the previous version of", err);
        moved = err == 0;
    }
    if (const int err = detail::os::rename_file(temp_, path_)) {
        if (moved) (void)detail::os::rename_file(previous, path_);
        fail("cannot replace", err);
    }
    temp_.clear();
    const std::filesystem::path dir = path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path();
    if (const int err = detail::os::sync_directory(dir))
        throw IoError(component_, "cannot flush the directory of", path_, err);
}

TRAINCB_INLINE void AtomicFile::abandon() noexcept {
    if (fd_ >= 0) (void)detail::os::close_file(std::exchange(fd_, -1));
    if (!temp_.empty()) {
        (void)detail::os::remove_file(temp_);
        temp_.clear();
    }
    stage_.clear();
}

TRAINCB_INLINE std::string AtomicFile::random_suffix() {
    // Unique per call within a process (counter) and across processes and runs (pid is in
    // the name already; the clock and an address separate restarts that reuse a pid).
    static std::atomic<std::uint64_t> counter{0};
    const auto now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    const std::uint64_t parts[3] = {now, counter.fetch_add(1, std::memory_order_relaxed),
                                    reinterpret_cast<std::uintptr_t>(&counter)};
    return detail::hex64(detail::xxh64(std::as_bytes(std::span(parts)))).substr(0, 12);
}

TRAINCB_INLINE void AtomicFile::keep_permissions() {
    detail::os::FileStatus st;
    if (detail::os::status(path_, st) != 0) return;
    if (const int err = detail::os::set_permissions(fd_, st.permissions)) fail("cannot set the permissions of", err);
}

TRAINCB_INLINE void AtomicFile::require_open(const char* what) const {
    if (fd_ < 0 || temp_.empty())
        throw LogicError("traincb: " + component_ + ": AtomicFile::" + what + "() on '" + path_.string() +
                         "' after it was committed or failed; start a new AtomicFile");
}

TRAINCB_INLINE void AtomicFile::flush_stage() {
    if (stage_.empty()) return;
    const int err = detail::os::write_all(fd_, stage_.data(), stage_.size());
    stage_.clear();
    if (err != 0) fail("cannot write", err);
}

TRAINCB_INLINE void AtomicFile::fail(const char* action, int err) {
    abandon();
    throw IoError(component_, action, path_, err);
}

TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes,
                                      std::string_view component, AtomicFileOptions options) {
    AtomicFile f(path, component, options);
    f.write(bytes);
    f.commit();
}

TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path, std::string_view text,
                                      std::string_view component, AtomicFileOptions options) {
    write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())), component, options);
}

TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path,
                                      std::span<const std::span<const std::byte>> pieces, std::string_view component,
                                      AtomicFileOptions options) {
    AtomicFile f(path, component, options);
    for (const auto& piece : pieces) f.write(piece);
    f.commit();
}

TRAINCB_INLINE void write_file_atomic(const std::filesystem::path& path,
                                      std::initializer_list<std::span<const std::byte>> pieces,
                                      std::string_view component, AtomicFileOptions options) {
    write_file_atomic(path, std::span<const std::span<const std::byte>>(pieces.begin(), pieces.size()), component,
                      options);
}

TRAINCB_INLINE AppendFile::AppendFile(std::filesystem::path path, std::string_view component, AppendMode mode,
                                      unsigned permissions)
    : path_(std::move(path)), component_(component) {
    using detail::os::OpenFor;
    const OpenFor how = mode == AppendMode::Truncate ? OpenFor::Truncate
                        : mode == AppendMode::Append ? OpenFor::Append
                                                     : OpenFor::CreateNewAppend;
    if (const int err = detail::os::open_file(path_, how, permissions, fd_))
        throw IoError(component_, mode == AppendMode::CreateNew ? "cannot create" : "cannot open", path_, err);
    detail::os::FileStatus st;
    if (const int err = detail::os::status(fd_, st)) {
        reset();
        throw IoError(component_, "cannot open", path_, err);
    }
    regular_ = st.type == detail::os::FileType::Regular;
    size_ = st.size;
}

TRAINCB_INLINE AppendFile& AppendFile::operator=(AppendFile&& other) noexcept {
    if (this != &other) {
        reset();
        path_ = std::move(other.path_);
        component_ = std::move(other.component_);
        fd_ = std::exchange(other.fd_, -1);
        regular_ = other.regular_;
        size_ = other.size_;
    }
    return *this;
}

TRAINCB_INLINE void AppendFile::write(std::span<const std::byte> bytes) {
    if (fd_ < 0)
        throw LogicError("traincb: " + component_ + ": AppendFile::write() on '" + path_.string() +
                         "', which is not open; open the file first");
    if (const int err = detail::os::write_all(fd_, bytes.data(), bytes.size())) {
        // Cut a torn piece off; O_APPEND makes the next write land at the new end.
        if (regular_) (void)detail::os::truncate_file(fd_, size_);
        throw IoError(component_, "cannot write", path_, err);
    }
    size_ += bytes.size();
}

TRAINCB_INLINE void AppendFile::close() {
    if (fd_ < 0) return;
    if (const int err = detail::os::close_file(std::exchange(fd_, -1)))
        throw IoError(component_, "cannot close", path_, err);
}

TRAINCB_INLINE std::vector<std::byte> read_file(const std::filesystem::path& path, std::string_view component) {
    std::vector<std::byte> out;
    detail::read_whole_file(path, component, out);
    return out;
}

TRAINCB_INLINE std::string read_text_file(const std::filesystem::path& path, std::string_view component) {
    std::string out;
    detail::read_whole_file(path, component, out);
    return out;
}

}  // namespace traincb::inline v0::io
#endif  // TRAINCB_DEFINITIONS
