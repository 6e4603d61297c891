#pragma once
/// @file io/atomic_file.hpp
/// Crash-safe file replacement (POSIX). A file is written to a hidden temporary file in the same
/// directory, flushed to disk, then renamed over the target, and the directory is flushed: a
/// reader (or a machine that loses power) sees either the complete old file or the complete new
/// one, never a torn mix. On any failure the temporary file is removed and the old file is left
/// exactly as it was.
///
///     traincb::io::write_file_atomic("ckpt/best.safetensors", bytes, "ModelCheckpoint");

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

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

#include "traincb/detail/hash.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0::detail {

/// The system calls the file layer makes, as replaceable function pointers: the seam through
/// which tests inject ENOSPC, EIO, EINTR or short writes at any step. Each follows the POSIX
/// contract of the call it names (return -1 and set errno on failure).
struct FileOps {
    int (*open)(const char* path, int flags, mode_t mode);
    ssize_t (*read)(int fd, void* buf, std::size_t n);
    ssize_t (*write)(int fd, const void* buf, std::size_t n);
    int (*fsync)(int fd);
    int (*close)(int fd);
    int (*rename)(const char* from, const char* to);
    int (*mkdir)(const char* path, mode_t mode);
    ssize_t (*pwrite)(int fd, const void* buf, std::size_t n, off_t offset);
    /// posix_fadvise: returns 0 or an error number (not -1). A hint only.
    int (*fadvise)(int fd, off_t offset, off_t n, int advice);
};

/// The real system calls.
[[nodiscard]] inline FileOps system_file_ops() noexcept {
    return FileOps{
        [](const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); },
        [](int fd, void* buf, std::size_t n) { return ::read(fd, buf, n); },
        [](int fd, const void* buf, std::size_t n) { return ::write(fd, buf, n); },
        [](int fd) { return ::fsync(fd); },
        [](int fd) { return ::close(fd); },
        [](const char* from, const char* to) { return ::rename(from, to); },
        [](const char* path, mode_t mode) { return ::mkdir(path, mode); },
        [](int fd, const void* buf, std::size_t n, off_t offset) { return ::pwrite(fd, buf, n, offset); },
        [](int fd, off_t offset, off_t n, int advice) {
#if defined(POSIX_FADV_DONTNEED)
            return ::posix_fadvise(fd, offset, n, advice);
#else
            (void)fd, (void)offset, (void)n, (void)advice;
            return 0;
#endif
        },
    };
}

/// The operations in force (the real ones unless a test replaced them).
[[nodiscard]] inline FileOps& file_ops() noexcept {
    static FileOps ops = system_file_ops();
    return ops;
}

/// Replaces the file operations for its lifetime (tests only; not thread-safe against I/O
/// running concurrently in other threads).
class ScopedFileOps {
public:
    /// Installs `ops`; the destructor reinstates the previous ones.
    explicit ScopedFileOps(const FileOps& ops) noexcept : saved_(std::exchange(file_ops(), ops)) {}
    ScopedFileOps(const ScopedFileOps&) = delete;
    ScopedFileOps& operator=(const ScopedFileOps&) = delete;
    ~ScopedFileOps() { file_ops() = saved_; }

private:
    FileOps saved_;
};

/// Creates `dir` and its missing ancestors (mkdir -p) through file_ops().
/// @throws IoError (ENOTDIR when a component is a regular file, EACCES, EROFS, ...)
inline void create_directories(const std::filesystem::path& dir, const std::string& component) {
    if (dir.empty()) return;
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return;
        throw IoError(component, "cannot create directory", dir, ENOTDIR);
    }
    if (errno != ENOENT) throw IoError(component, "cannot create directory", dir, errno);
    const std::filesystem::path parent = dir.parent_path();
    if (!parent.empty() && parent != dir) create_directories(parent, component);
    if (file_ops().mkdir(dir.c_str(), 0777) != 0) {
        const int err = errno;
        // Another process may have created it between our stat and mkdir: fine if it is a directory.
        if (err != EEXIST || ::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            throw IoError(component, "cannot create directory", dir, err == EEXIST ? ENOTDIR : err);
    }
}

/// Writes all of `bytes` to `fd`, resuming after short writes and EINTR. Returns 0 or an errno.
[[nodiscard]] inline int write_all(int fd, const std::byte* p, std::size_t n) noexcept {
    // Linux transfers at most ~2 GiB per call; smaller chunks keep every platform happy.
    constexpr std::size_t kMaxChunk = std::size_t{1} << 30;
    while (n > 0) {
        const ssize_t r = file_ops().write(fd, p, n < kMaxChunk ? n : kMaxChunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return EIO;  // a regular file never accepts 0 of n > 0 bytes unless broken
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return 0;
}

/// Writes all of `bytes` to `fd` at `offset` (the file position is unchanged), resuming after
/// short writes and EINTR. Returns 0 or an errno.
[[nodiscard]] inline int pwrite_all(int fd, const std::byte* p, std::size_t n, std::uint64_t offset) noexcept {
    while (n > 0) {
        const ssize_t r = file_ops().pwrite(fd, p, n, static_cast<off_t>(offset));
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return EIO;
        p += r;
        n -= static_cast<std::size_t>(r);
        offset += static_cast<std::uint64_t>(r);
    }
    return 0;
}

/// A file opened for sequential reading through file_ops().
class FileReader {
public:
    /// Opens `path`. @throws IoError when it cannot be opened or is a directory.
    FileReader(const std::filesystem::path& path, std::string component)
        : path_(path), component_(std::move(component)) {
        fd_ = file_ops().open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
        if (fd_ < 0) throw IoError(component_, "cannot open", path_, errno);
        struct stat st {};
        if (::fstat(fd_, &st) != 0) {
            const int err = errno;
            file_ops().close(fd_);
            throw IoError(component_, "cannot open", path_, err);
        }
        if (S_ISDIR(st.st_mode)) {
            file_ops().close(fd_);
            throw IoError(component_, "cannot read", path_, EISDIR);
        }
        size_ = S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
    }
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;
    ~FileReader() { file_ops().close(fd_); }

    /// The size the file had when it was opened (0 for pipes and devices).
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }

    /// Reads up to `out.size()` bytes; fewer only at end of file. @throws IoError
    std::size_t read(std::span<std::byte> out) {
        std::size_t got = 0;
        while (got < out.size()) {
            const ssize_t r = file_ops().read(fd_, out.data() + got, out.size() - got);
            if (r < 0) {
                if (errno == EINTR) continue;
                throw IoError(component_, "cannot read", path_, errno);
            }
            if (r == 0) break;
            got += static_cast<std::size_t>(r);
        }
        return got;
    }

private:
    std::filesystem::path path_;
    std::string component_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::io {

/// A file being written crash-safely: bytes go to a hidden temporary file next to the target
/// (".<name>.tmp.<pid>.<random>") and replace the target only on commit(). Destroying it without
/// commit() (or any failure) removes the temporary file and leaves the target untouched. The
/// old version's cached pages are dropped when the temporary file is created (its bytes stay).
class AtomicFile {
public:
    /// Creates the missing parent directories and the temporary file.
    /// @throws IoError naming the directory or target (EACCES, EROFS, ENOTDIR, ENOSPC, ...)
    /// @throws InvalidArgument when `path` is empty
    AtomicFile(std::filesystem::path path, std::string_view component) : path_(std::move(path)), component_(component) {
        if (path_.empty())
            throw InvalidArgument("traincb: " + component_ + ": the file path is empty; pass a file name");
        if (!path_.has_filename()) throw IoError(component_, "cannot write", path_, EISDIR);
        const std::filesystem::path dir = path_.parent_path();
        detail::create_directories(dir, component_);
        // Keep the temporary name within NAME_MAX (255) even for a long target name.
        std::string base = path_.filename().string();
        if (base.size() > 200) base.resize(200);
        for (int attempt = 0;; ++attempt) {
            temp_ = dir / ("." + base + ".tmp." + std::to_string(::getpid()) + "." + random_suffix());
            fd_ = detail::file_ops().open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd_ >= 0) break;
            const int err = errno;
            if (err == EEXIST && attempt < 16) continue;  // a name collision: draw another suffix
            temp_.clear();
            throw IoError(component_, "cannot create a temporary file for", path_, err);
        }
        drop_cached_target();
    }
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
    void write(std::span<const std::byte> bytes) {
        require_open("write");
        written_ += bytes.size();
        if (bytes.size() >= kStageBytes) {
            flush_stage();
            if (const int err = detail::write_all(fd_, bytes.data(), bytes.size())) fail("cannot write", err);
            return;
        }
        if (stage_.size() + bytes.size() > kStageBytes) flush_stage();
        if (stage_.capacity() == 0) stage_.reserve(kStageBytes);
        stage_.insert(stage_.end(), bytes.begin(), bytes.end());
    }

    /// Replaces bytes already written, at `offset` from the start of the file (e.g. a header field
    /// known only once the data after it has been written).
    /// @throws IoError (the temporary file is removed) @throws LogicError after commit or failure,
    /// or when the range reaches past the bytes written so far
    void overwrite(std::uint64_t offset, std::span<const std::byte> bytes) {
        require_open("overwrite");
        if (offset > written_ || bytes.size() > written_ - offset)
            throw LogicError("traincb: " + component_ + ": AtomicFile::overwrite() of bytes [" +
                             std::to_string(offset) + ", " + std::to_string(offset + bytes.size()) + ") of '" +
                             path_.string() + "', which has only " + std::to_string(written_) +
                             " bytes; only bytes already written can be replaced");
        flush_stage();
        if (const int err = detail::pwrite_all(fd_, bytes.data(), bytes.size(), offset)) fail("cannot write", err);
    }

    /// The number of bytes written so far.
    [[nodiscard]] std::uint64_t size() const noexcept { return written_; }

    /// Flushes the data to disk, renames the temporary file over the target and flushes the
    /// directory. @throws IoError; when flushing the directory fails the new file is already in
    /// place, but a power loss could still undo the rename.
    void commit() {
        require_open("commit");
        flush_stage();
        if (detail::file_ops().fsync(fd_) != 0) fail("cannot flush", errno);
        const int fd = std::exchange(fd_, -1);
        // close() can report a deferred write error (NFS): the data is then not safely stored.
        if (detail::file_ops().close(fd) != 0) fail("cannot close", errno);
        if (detail::file_ops().rename(temp_.c_str(), path_.c_str()) != 0) fail("cannot replace", errno);
        temp_.clear();
        sync_directory();
    }

    /// Removes the temporary file (no-op once committed or abandoned). Never throws.
    void abandon() noexcept {
        if (fd_ >= 0) detail::file_ops().close(std::exchange(fd_, -1));
        if (!temp_.empty()) {
            ::unlink(temp_.c_str());
            temp_.clear();
        }
        stage_.clear();
    }

private:
    // Pieces below this are gathered; at 64 KiB the buffer comes from the heap's free lists
    // (below malloc's mmap threshold), so it costs no page faults, and a large tensor is never copied.
    static constexpr std::size_t kStageBytes = std::size_t{64} << 10;

    static std::string random_suffix() {
        // Unique per call within a process (counter) and across processes and runs (pid is in
        // the name already; the clock and an address separate restarts that reuse a pid).
        static std::atomic<std::uint64_t> counter{0};
        const auto now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        const std::uint64_t parts[3] = {now, counter.fetch_add(1, std::memory_order_relaxed),
                                        reinterpret_cast<std::uintptr_t>(&counter)};
        return detail::hex64(detail::xxh64(std::as_bytes(std::span(parts)))).substr(0, 12);
    }
    // The version being replaced keeps its page cache until the rename, so the new one needs as
    // much fresh memory again; dropping the old file's clean cached pages first lets the new
    // data reuse them (measured on a VM: writing 512 MiB next to a cached 512 MiB old version
    // took 5x as long). The old file's content is untouched (a later read comes from the disk);
    // a hint, so every failure is ignored. Only regular files: opening a device or FIFO could
    // have side effects.
    void drop_cached_target() noexcept {
#if defined(POSIX_FADV_DONTNEED)
        struct stat st {};
        if (::stat(path_.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return;
        const int fd = detail::file_ops().open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
        if (fd < 0) return;
        (void)detail::file_ops().fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        detail::file_ops().close(fd);
#endif
    }
    void require_open(const char* what) const {
        if (fd_ < 0 || temp_.empty())
            throw LogicError("traincb: " + component_ + ": AtomicFile::" + what + "() on '" + path_.string() +
                             "' after it was committed or failed; start a new AtomicFile");
    }
    void flush_stage() {
        if (stage_.empty()) return;
        const int err = detail::write_all(fd_, stage_.data(), stage_.size());
        stage_.clear();
        if (err != 0) fail("cannot write", err);
    }
    [[noreturn]] void fail(const char* action, int err) {
        abandon();
        throw IoError(component_, action, path_, err);
    }
    void sync_directory() {
        const std::filesystem::path dir =
            path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path();
        const int dfd = detail::file_ops().open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (dfd < 0) throw IoError(component_, "cannot flush the directory of", path_, errno);
        const int rc = detail::file_ops().fsync(dfd);
        const int err = errno;
        detail::file_ops().close(dfd);
        // Some file systems cannot fsync a directory (EINVAL): nothing more can be done there.
        if (rc != 0 && err != EINVAL && err != ENOTSUP)
            throw IoError(component_, "cannot flush the directory of", path_, err);
    }

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
inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes,
                              std::string_view component) {
    AtomicFile f(path, component);
    f.write(bytes);
    f.commit();
}

/// Replaces `path` with the concatenation of `pieces`, written one after another without
/// joining them in memory (a header, then each tensor's bytes).
/// @throws IoError naming the path and the OS error; the previous file is then left intact
inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::span<const std::byte>> pieces,
                              std::string_view component) {
    AtomicFile f(path, component);
    for (const auto& piece : pieces) f.write(piece);
    f.commit();
}

/// Replaces `path` with the concatenation of `pieces` (braced-list convenience).
/// @throws IoError naming the path and the OS error; the previous file is then left intact
inline void write_file_atomic(const std::filesystem::path& path,
                              std::initializer_list<std::span<const std::byte>> pieces, std::string_view component) {
    write_file_atomic(path, std::span<const std::span<const std::byte>>(pieces.begin(), pieces.size()), component);
}

/// The whole content of `path`.
/// @throws IoError (ENOENT, EACCES, EISDIR, EIO, ...) naming the path
[[nodiscard]] inline std::vector<std::byte> read_file(const std::filesystem::path& path, std::string_view component) {
    detail::FileReader in(path, std::string(component));
    std::vector<std::byte> out(static_cast<std::size_t>(in.size()));
    std::size_t got = in.read(out);
    out.resize(got);
    if (got < in.size()) return out;  // shrank while reading: return what is there
    // The file may be longer than stat said (still growing, or a pipe): read to the end.
    std::vector<std::byte> chunk(64 << 10);
    while (const std::size_t n = in.read(chunk)) {
        out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
        if (n < chunk.size()) break;
    }
    return out;
}

}  // namespace traincb::inline v0::io
