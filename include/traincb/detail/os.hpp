#pragma once
/// @file detail/os.hpp
/// Every POSIX call traincb makes, in one place: the file system calls (behind the FileOps seam,
/// through which tests inject ENOSPC, EIO, EINTR or short writes), stat, the process id, the host
/// name, terminals, signal handlers and the scheduling class of a background thread. The rest of the library calls
/// these functions and never includes a POSIX header itself. Each function returns 0 or an errno value (never -1 with
/// errno), so callers need not read errno at the right moment.

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

namespace traincb::inline v0::detail {

namespace os::sys {
// The real system calls, as plain functions for FileOps's defaults.
inline int open(const char* path, int flags, mode_t mode) {
    return ::open(path, flags, mode);
}
inline ssize_t read(int fd, void* buf, std::size_t n) {
    return ::read(fd, buf, n);
}
inline ssize_t write(int fd, const void* buf, std::size_t n) {
    return ::write(fd, buf, n);
}
inline int fsync(int fd) {
    return ::fsync(fd);
}
inline int close(int fd) {
    return ::close(fd);
}
inline int rename(const char* from, const char* to) {
    return ::rename(from, to);
}
inline int mkdir(const char* path, mode_t mode) {
    return ::mkdir(path, mode);
}
inline ssize_t pwrite(int fd, const void* buf, std::size_t n, off_t offset) {
    return ::pwrite(fd, buf, n, offset);
}
inline int fadvise(int fd, off_t offset, off_t n, int advice) {
#if defined(POSIX_FADV_DONTNEED)
    return ::posix_fadvise(fd, offset, n, advice);
#else
    (void)fd, (void)offset, (void)n, (void)advice;
    return 0;
#endif
}
inline int fchmod(int fd, mode_t mode) {
    return ::fchmod(fd, mode);
}
inline int ftruncate(int fd, off_t size) {
    return ::ftruncate(fd, size);
}
}  // namespace os::sys

/// The system calls the file layer makes, as replaceable function pointers: the seam through
/// which tests inject ENOSPC, EIO, EINTR or short writes at any step. Each follows the POSIX
/// contract of the call it names (return -1 and set errno on failure). Every field defaults to
/// the real call, so a test replaces only the ones it needs.
struct FileOps {
    int (*open)(const char* path, int flags, mode_t mode) = &os::sys::open;
    ssize_t (*read)(int fd, void* buf, std::size_t n) = &os::sys::read;
    ssize_t (*write)(int fd, const void* buf, std::size_t n) = &os::sys::write;
    int (*fsync)(int fd) = &os::sys::fsync;
    int (*close)(int fd) = &os::sys::close;
    int (*rename)(const char* from, const char* to) = &os::sys::rename;
    int (*mkdir)(const char* path, mode_t mode) = &os::sys::mkdir;
    ssize_t (*pwrite)(int fd, const void* buf, std::size_t n, off_t offset) = &os::sys::pwrite;
    /// posix_fadvise: returns 0 or an error number (not -1). A hint only.
    int (*fadvise)(int fd, off_t offset, off_t n, int advice) = &os::sys::fadvise;
    int (*fchmod)(int fd, mode_t mode) = &os::sys::fchmod;
    int (*ftruncate)(int fd, off_t size) = &os::sys::ftruncate;
};

/// The real system calls.
[[nodiscard]] inline FileOps system_file_ops() noexcept {
    return FileOps{};
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

namespace os {

/// What a path or descriptor names.
enum class FileType { Regular, Directory, Other };

/// The part of stat(2) traincb uses.
struct FileStatus {
    FileType type = FileType::Other;
    std::uint64_t size = 0;    // bytes, for a regular file
    unsigned permissions = 0;  // the mode's permission bits (07777)
};

namespace impl {
inline FileStatus to_status(const struct ::stat& st) noexcept {
    FileStatus s;
    s.type = S_ISREG(st.st_mode) ? FileType::Regular : S_ISDIR(st.st_mode) ? FileType::Directory : FileType::Other;
    s.size = S_ISREG(st.st_mode) && st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    s.permissions = static_cast<unsigned>(st.st_mode) & 07777U;
    return s;
}
}  // namespace impl

/// stat(2) of `path` (following symbolic links). Returns 0 or the errno (ENOENT when missing).
[[nodiscard]] inline int status(const std::filesystem::path& path, FileStatus& out) noexcept {
    struct ::stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno;
    out = impl::to_status(st);
    return 0;
}

/// fstat(2) of `fd`. Returns 0 or the errno.
[[nodiscard]] inline int status(int fd, FileStatus& out) noexcept {
    struct ::stat st {};
    if (::fstat(fd, &st) != 0) return errno;
    out = impl::to_status(st);
    return 0;
}

/// How open_file opens a path (the open(2) flags, by enumerator, in kOpenFlags).
enum class OpenFor { Read, ReadHint, Directory, CreateNew, Truncate, Append, CreateNewAppend };

/// The open(2) flags of each OpenFor, in its order (close-on-exec is added to each).
inline constexpr int kOpenFlags[] = {
    O_RDONLY,                                 // Read
    O_RDONLY | O_NOFOLLOW | O_NONBLOCK,       // ReadHint: to pass a hint, never blocking on a FIFO
    O_RDONLY | O_DIRECTORY,                   // Directory: to fsync a directory
    O_WRONLY | O_CREAT | O_EXCL,              // CreateNew
    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,  // Truncate
    O_WRONLY | O_CREAT | O_APPEND,            // Append
    O_WRONLY | O_CREAT | O_EXCL | O_APPEND,   // CreateNewAppend
};
static_assert(sizeof kOpenFlags / sizeof kOpenFlags[0] == static_cast<std::size_t>(OpenFor::CreateNewAppend) + 1,
              "one set of flags per OpenFor");

/// Opens `path` through file_ops() (close-on-exec, retrying EINTR); a new file gets
/// `permissions` less the umask. Returns 0 and sets `fd`, or returns the errno.
[[nodiscard]] inline int open_file(const std::filesystem::path& path, OpenFor how, unsigned permissions,
                                   int& fd) noexcept {
    const int flags = kOpenFlags[static_cast<int>(how)] | O_CLOEXEC;
    for (;;) {
        const int r = file_ops().open(path.c_str(), flags, static_cast<mode_t>(permissions));
        if (r >= 0) {
            fd = r;
            return 0;
        }
        if (errno != EINTR) return errno;
    }
}

/// Closes `fd` through file_ops(). Returns 0 or the errno (close can report a deferred write
/// error, e.g. on NFS; the descriptor is released either way).
[[nodiscard]] inline int close_file(int fd) noexcept {
    return file_ops().close(fd) == 0 ? 0 : errno;
}

namespace impl {
// Hands all of `n` bytes at `p` to `call(piece, size, done)` (a write-like call; `done` bytes are
// already written), resuming after short writes and EINTR. Returns 0 or an errno (EIO when a
// call accepts 0 of n > 0 bytes, which a working file never does).
template <class Call>
[[nodiscard]] int transfer_all(const std::byte* p, std::size_t n, Call call) noexcept {
    std::uint64_t done = 0;
    while (n > 0) {
        const ssize_t r = call(p, n, done);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return EIO;
        p += r;
        n -= static_cast<std::size_t>(r);
        done += static_cast<std::uint64_t>(r);
    }
    return 0;
}
}  // namespace impl

/// Writes all of `n` bytes at `p` to `fd`, resuming after short writes and EINTR. Returns 0 or
/// an errno (EIO when a call accepts 0 of n > 0 bytes, which a working file never does).
[[nodiscard]] inline int write_all(int fd, const std::byte* p, std::size_t n) noexcept {
    // Linux transfers at most ~2 GiB per call; smaller chunks keep every platform happy.
    constexpr std::size_t kMaxChunk = std::size_t{1} << 30;
    return impl::transfer_all(p, n, [fd](const std::byte* q, std::size_t k, std::uint64_t) {
        return file_ops().write(fd, q, k < kMaxChunk ? k : kMaxChunk);
    });
}

/// Writes all of `n` bytes at `p` to `fd` at `offset` (the file position is unchanged),
/// resuming after short writes and EINTR. Returns 0 or an errno.
[[nodiscard]] inline int pwrite_all(int fd, const std::byte* p, std::size_t n, std::uint64_t offset) noexcept {
    return impl::transfer_all(p, n, [fd, offset](const std::byte* q, std::size_t k, std::uint64_t done) {
        return file_ops().pwrite(fd, q, k, static_cast<off_t>(offset + done));
    });
}

/// Reads up to `n` bytes from `fd` into `p`, retrying EINTR; fewer only at end of file. Returns
/// 0 or the errno, and the number of bytes read in `got`.
[[nodiscard]] inline int read_some(int fd, std::byte* p, std::size_t n, std::size_t& got) noexcept {
    got = 0;
    while (got < n) {
        const ssize_t r = file_ops().read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    return 0;
}

/// fsync(2) through file_ops(). Returns 0 or the errno.
[[nodiscard]] inline int sync_file(int fd) noexcept {
    return file_ops().fsync(fd) == 0 ? 0 : errno;
}

/// Flushes the directory `dir` (its entries: a rename in it) to disk. Returns 0 or the errno;
/// a file system that cannot fsync a directory (EINVAL, ENOTSUP) counts as success, as nothing
/// more can be done there.
[[nodiscard]] inline int sync_directory(const std::filesystem::path& dir) noexcept {
    int dfd = -1;
    if (const int err = open_file(dir, OpenFor::Directory, 0, dfd)) return err;
    const int rc = file_ops().fsync(dfd);
    const int err = errno;
    file_ops().close(dfd);
    return rc != 0 && err != EINVAL && err != ENOTSUP ? err : 0;
}

/// rename(2) through file_ops(). Returns 0 or the errno.
[[nodiscard]] inline int rename_file(const std::filesystem::path& from, const std::filesystem::path& to) noexcept {
    return file_ops().rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

/// mkdir(2) (mode 0777 less the umask) through file_ops(). Returns 0 or the errno.
[[nodiscard]] inline int make_directory(const std::filesystem::path& dir) noexcept {
    return file_ops().mkdir(dir.c_str(), 0777) == 0 ? 0 : errno;
}

/// fchmod(2) through file_ops(): sets the permission bits (07777) of `fd`. Returns 0 or the errno.
[[nodiscard]] inline int set_permissions(int fd, unsigned permissions) noexcept {
    return file_ops().fchmod(fd, static_cast<mode_t>(permissions & 07777U)) == 0 ? 0 : errno;
}

/// ftruncate(2) through file_ops(): cuts `fd` back to `size` bytes. Returns 0 or the errno.
[[nodiscard]] inline int truncate_file(int fd, std::uint64_t size) noexcept {
    return file_ops().ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : errno;
}

/// Drops the clean cached pages of the regular, non-empty file `path` (posix_fadvise
/// DONTNEED through file_ops()); its content is untouched. A hint: every failure is ignored. Only
/// regular files: opening a device or FIFO could have side effects.
inline void drop_cached_pages(const std::filesystem::path& path) noexcept {
#if defined(POSIX_FADV_DONTNEED)
    FileStatus st;
    if (status(path, st) != 0 || st.type != FileType::Regular || st.size == 0) return;
    int fd = -1;
    if (open_file(path, OpenFor::ReadHint, 0, fd) != 0) return;
    (void)file_ops().fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    file_ops().close(fd);
#else
    (void)path;
#endif
}

/// unlink(2). Returns 0 or the errno.
inline int remove_file(const std::filesystem::path& path) noexcept {
    return ::unlink(path.c_str()) == 0 ? 0 : errno;
}

/// This process's id.
[[nodiscard]] inline long current_pid() noexcept {
    return static_cast<long>(::getpid());
}

/// True when no process `pid` exists (kill(pid, 0) fails with ESRCH); false when it exists or
/// that cannot be told (EPERM: it exists but belongs to another user).
[[nodiscard]] inline bool process_is_gone(long pid) noexcept {
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

/// Marks the calling thread as a background batch thread (Linux SCHED_BATCH, same nice value):
/// its wake-ups do not preempt the threads already running, such as the training thread that
/// handed it a checkpoint to write, while it keeps its fair share of the CPU. Returns 0 or the
/// errno; a no-op (0) where SCHED_BATCH does not exist.
inline int make_current_thread_batch() noexcept {
#ifdef SCHED_BATCH
    const sched_param p{};
    return ::pthread_setschedparam(::pthread_self(), SCHED_BATCH, &p);
#else
    return 0;
#endif
}

/// This machine's host name, or "" when it cannot be read.
[[nodiscard]] inline std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return {};
    return buf;
}

/// Whether standard output (`fd_is_stderr` false) or standard error is a terminal.
[[nodiscard]] inline bool std_stream_is_terminal(bool fd_is_stderr) noexcept {
    return ::isatty(fd_is_stderr ? STDERR_FILENO : STDOUT_FILENO) == 1;
}

/// SIGINT, as interrupt handling names it.
inline constexpr int kSigInt = SIGINT;
/// SIGTERM.
inline constexpr int kSigTerm = SIGTERM;

/// A signal's disposition, saved by install_signal_handler to be reinstated later.
struct SignalDisposition {
    struct ::sigaction action {};
};

/// Installs `handler` for `sig` (SA_RESTART: a read or write in progress carries on instead of
/// failing with EINTR; no signal blocked while it runs) and saves the previous disposition in
/// `previous`. Returns 0 or the errno (the disposition is then unchanged).
[[nodiscard]] inline int install_signal_handler(int sig, void (*handler)(int), SignalDisposition& previous) noexcept {
    struct ::sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return ::sigaction(sig, &sa, &previous.action) == 0 ? 0 : errno;
}

/// Reinstates a disposition saved by install_signal_handler.
inline void restore_signal_handler(int sig, const SignalDisposition& saved) noexcept {
    ::sigaction(sig, &saved.action, nullptr);
}

/// Gives `sig` its default action and raises it (async-signal-safe: sigaction and raise are).
inline void raise_with_default_action(int sig) noexcept {
    struct ::sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    ::raise(sig);
}

}  // namespace os

}  // namespace traincb::inline v0::detail
