#pragma once
// Fault injection through the FileOps seam of traincb/detail/os.hpp, shared by the tests of the
// file layer and of its writers (atomic files, the CSV and JSON-lines sinks, TensorBoard): any
// call of any file operation can fail with a chosen errno, writes can be short or interrupted
// (EINTR), or go to /dev/full.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <map>
#include <string>
#include <traincb/detail/os.hpp>
#include <vector>

namespace traincb_test::faults {

/// The file operations of the seam, in FileOps order.
enum Op { kOpen, kRead, kWrite, kFsync, kClose, kRename, kMkdir, kPwrite, kFadvise, kFchmod, kFtruncate, kOpCount };

/// What the faulty operations do; reset() makes them the real calls again.
struct Faults {
    static inline std::array<int, kOpCount> calls{};
    static inline std::array<int, kOpCount> fail_at{};  // 0-based index of the call that fails, -1: none
    static inline std::array<int, kOpCount> err{};
    static inline std::size_t max_write = 0;       // >0: short writes of at most this many bytes
    static inline bool eintr_every_other = false;  // writes and reads alternate EINTR / progress
    static inline int devfull_fd = -1;             // >=0: every write goes to /dev/full
    static inline std::string last_open;
    static inline int zero_write_at = -1;                 // that write call returns 0
    static inline int zero_pwrite_at = -1;                // that pwrite call returns 0
    static inline std::vector<std::string> fadvised;      // "<path>:<offset>:<length>:<advice>" per call
    static inline std::map<int, std::string> open_paths;  // descriptor -> the path it was opened with

    static void reset() {
        calls.fill(0);
        fail_at.fill(-1);
        err.fill(0);
        max_write = 0;
        eintr_every_other = false;
        devfull_fd = -1;
        last_open.clear();
        zero_write_at = -1;
        zero_pwrite_at = -1;
        fadvised.clear();
        open_paths.clear();
    }
    static bool hit(Op op) {
        const int n = calls[op]++;
        if (n == fail_at[op]) {
            errno = err[op];
            return true;
        }
        return false;
    }
};

/// The real calls, each first asking Faults whether to fail (and how).
inline traincb::detail::FileOps faulty_ops() {
    traincb::detail::FileOps f{};
    f.open = [](const char* p, int flags, mode_t mode) -> int {
        Faults::last_open = p;
        if (Faults::hit(kOpen)) return -1;
        const int fd = ::open(p, flags, mode);
        if (fd >= 0) Faults::open_paths[fd] = p;
        return fd;
    };
    f.read = [](int fd, void* b, std::size_t n) -> ssize_t {
        if (Faults::hit(kRead)) return -1;
        if (Faults::eintr_every_other && Faults::calls[kRead] % 2 == 1) {
            errno = EINTR;
            return -1;
        }
        if (Faults::max_write != 0 && n > Faults::max_write) n = Faults::max_write;
        return ::read(fd, b, n);
    };
    f.write = [](int fd, const void* b, std::size_t n) -> ssize_t {
        if (Faults::hit(kWrite)) return -1;
        if (Faults::calls[kWrite] - 1 == Faults::zero_write_at) return 0;
        if (Faults::eintr_every_other && Faults::calls[kWrite] % 2 == 1) {
            errno = EINTR;
            return -1;
        }
        if (Faults::max_write != 0 && n > Faults::max_write) n = Faults::max_write;
        return ::write(Faults::devfull_fd >= 0 ? Faults::devfull_fd : fd, b, n);
    };
    f.fsync = [](int fd) -> int { return Faults::hit(kFsync) ? -1 : ::fsync(fd); };
    f.close = [](int fd) -> int {
        // A failing close still releases the descriptor, as POSIX close does.
        const bool fail = Faults::hit(kClose);
        const int rc = ::close(fd);
        return fail ? -1 : rc;
    };
    f.rename = [](const char* a, const char* b) -> int { return Faults::hit(kRename) ? -1 : ::rename(a, b); };
    f.mkdir = [](const char* p, mode_t m) -> int { return Faults::hit(kMkdir) ? -1 : ::mkdir(p, m); };
    f.pwrite = [](int fd, const void* b, std::size_t n, off_t off) -> ssize_t {
        if (Faults::hit(kPwrite)) return -1;
        if (Faults::calls[kPwrite] - 1 == Faults::zero_pwrite_at) return 0;
        if (Faults::eintr_every_other && Faults::calls[kPwrite] % 2 == 1) {
            errno = EINTR;
            return -1;
        }
        if (Faults::max_write != 0 && n > Faults::max_write) n = Faults::max_write;
        return ::pwrite(fd, b, n, off);
    };
    f.fadvise = [](int fd, off_t off, off_t n, int advice) -> int {
        Faults::fadvised.push_back(Faults::open_paths[fd] + ":" + std::to_string(off) + ":" + std::to_string(n) + ":" +
                                   std::to_string(advice));
        if (Faults::hit(kFadvise)) return Faults::err[kFadvise];  // posix_fadvise returns the error
        return ::posix_fadvise(fd, off, n, advice);
    };
    f.fchmod = [](int fd, mode_t mode) -> int { return Faults::hit(kFchmod) ? -1 : ::fchmod(fd, mode); };
    f.ftruncate = [](int fd, off_t size) -> int { return Faults::hit(kFtruncate) ? -1 : ::ftruncate(fd, size); };
    return f;
}

/// Installs faulty_ops() for its lifetime, with no fault armed; fail() arms one.
struct FaultGuard {
    traincb::detail::ScopedFileOps ops{faulty_ops()};
    FaultGuard() { Faults::reset(); }
    FaultGuard(const FaultGuard&) = delete;
    FaultGuard& operator=(const FaultGuard&) = delete;
    ~FaultGuard() { Faults::reset(); }
    static void fail(Op op, int call, int err) {
        Faults::fail_at[op] = call;
        Faults::err[op] = err;
    }
};

}  // namespace traincb_test::faults
