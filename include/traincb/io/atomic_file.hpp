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
#include "traincb/io/atomic_file-inl.hpp"
#endif
