// Tests for traincb/io/atomic_file.hpp: crash-safe replacement, failure at every step (through the
// FileOps seam, a real read-only mount, a real full tmpfs and /dev/full), and read_file.
#include "catch.hpp"
#include "file_faults.hpp"
#include "test_support.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <traincb/io/atomic_file.hpp>
#include <vector>

namespace test_atomic_file {

namespace fs = std::filesystem;
namespace io = traincb::io;
using namespace traincb_test::faults;  // Faults, FaultGuard and the Op names

using traincb_test::read_bytes;
using traincb_test::TempDir;
using traincb_test::write_bytes;

namespace {

std::vector<std::byte> bytes_of(const std::string& s) {
    const auto b = std::as_bytes(std::span(s));
    return {b.begin(), b.end()};
}

// Names in `dir` other than `keep` (a failed write must leave no temporary file behind).
std::vector<std::string> stray_files(const fs::path& dir, const std::vector<std::string>& keep) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (std::find(keep.begin(), keep.end(), n) == keep.end()) out.push_back(n);
    }
    return out;
}

// The error expected for `err` at `path`: component prefix, path and the OS message.
void check_io_error(const traincb::IoError& e, const fs::path& path, int err) {
    const std::string msg = e.what();
    INFO(msg);
    REQUIRE(msg.rfind("traincb: ModelCheckpoint: ", 0) == 0);
    REQUIRE(msg.find("'" + path.string() + "'") != std::string::npos);
    REQUIRE(msg.find(std::strerror(err)) != std::string::npos);
    REQUIRE(e.code() == std::error_code(err, std::generic_category()));
    REQUIRE(e.path() == path);
}

// Runs a mount command; false when the environment does not allow it (not root, no privileges).
bool sh(const std::string& cmd) {
    return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

struct Mount {
    fs::path dir;
    bool mounted = false;
    Mount(const fs::path& d, const std::string& options) : dir(d) {
        fs::create_directories(dir);
        mounted = sh("mount -t tmpfs -o " + options + " traincb_test " + dir.string());
    }
    Mount(const Mount&) = delete;
    Mount& operator=(const Mount&) = delete;
    ~Mount() {
        if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
    }
};

}  // namespace

TEST_CASE("write_file_atomic creates the file and its missing parent directories") {
    TempDir tmp("create");
    const fs::path target = tmp.path / "a" / "b" / "c" / "ckpt.bin";
    io::write_file_atomic(target, bytes_of("hello"), "ModelCheckpoint");
    REQUIRE(read_bytes(target) == "hello");
    REQUIRE(stray_files(target.parent_path(), {"ckpt.bin"}).empty());
}

TEST_CASE("write_file_atomic replaces an existing file and leaves no temporary file") {
    TempDir tmp("replace");
    const fs::path target = tmp.path / "ckpt.bin";
    write_bytes(target, "old contents");
    io::write_file_atomic(target, bytes_of("new"), "ModelCheckpoint");
    REQUIRE(read_bytes(target) == "new");
    io::write_file_atomic(target, std::span<const std::byte>{}, "ModelCheckpoint");
    REQUIRE(fs::file_size(target) == 0);
    REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
}

TEST_CASE("write_file_atomic in the current directory (a path without a parent)") {
    TempDir tmp("cwd");
    const fs::path old = fs::current_path();
    fs::current_path(tmp.path);
    io::write_file_atomic("plain.bin", bytes_of("x"), "ModelCheckpoint");
    fs::current_path(old);
    REQUIRE(read_bytes(tmp.path / "plain.bin") == "x");
}

TEST_CASE("the streaming variant writes the pieces back to back, small and large") {
    TempDir tmp("pieces");
    const fs::path target = tmp.path / "f.bin";
    // Sizes straddle the 64 KiB gathering buffer: tiny, empty, exactly at it, just below, above.
    std::string expected;
    std::vector<std::vector<std::byte>> storage;
    for (std::size_t size :
         {std::size_t{3}, std::size_t{0}, std::size_t{64} << 10, std::size_t{17}, (std::size_t{64} << 10) - 1,
          std::size_t{40} << 10, std::size_t{1} << 20, std::size_t{5}}) {
        std::string s(size, '\0');
        for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7 + size) % 26);
        expected += s;
        storage.push_back(bytes_of(s));
    }
    // Many tiny pieces too: they are gathered, not written one system call each.
    for (int i = 0; i < 5000; ++i) {
        expected += "ab";
        storage.push_back(bytes_of("ab"));
    }
    std::vector<std::span<const std::byte>> pieces(storage.begin(), storage.end());
    FaultGuard guard;  // counts the write calls
    io::write_file_atomic(target, pieces, "ModelCheckpoint");
    REQUIRE(read_bytes(target) == expected);
    REQUIRE(Faults::calls[kWrite] < 20);
    io::write_file_atomic(target, {std::as_bytes(std::span("ab", 2)), std::as_bytes(std::span("cd", 2))},
                          "ModelCheckpoint");
    REQUIRE(read_bytes(target) == "abcd");
}

TEST_CASE("short writes and EINTR are resumed until every byte is written") {
    TempDir tmp("short");
    const fs::path target = tmp.path / "f.bin";
    std::string content(300000, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 % 251);
    FaultGuard guard;
    Faults::max_write = 4093;
    Faults::eintr_every_other = true;
    io::write_file_atomic(target, bytes_of(content), "ModelCheckpoint");
    REQUIRE(read_bytes(target) == content);
    REQUIRE(Faults::calls[kWrite] > 100);  // the limits above really were in force
}

TEST_CASE("overwrite replaces bytes already written, through short pwrites and EINTR") {
    TempDir tmp("overwrite");
    const fs::path target = tmp.path / "f.bin";
    // 100 KiB of 'a', then 10 of 'b' (still in the gathering buffer when overwrite runs).
    std::string expected(100 << 10, 'a');
    FaultGuard guard;
    {
        io::AtomicFile f(target, "ModelCheckpoint");
        f.write(bytes_of(expected));
        f.write(bytes_of(std::string(10, 'b')));
        expected += std::string(10, 'b');
        REQUIRE(f.size() == expected.size());
        Faults::max_write = 3;  // from here on every write and pwrite is short
        Faults::eintr_every_other = true;
        // Across the start, the middle, and the unflushed tail of the file.
        f.overwrite(0, bytes_of("XYZ"));
        f.overwrite(50000, bytes_of("0123456789"));
        f.overwrite(expected.size() - 4, bytes_of("TAIL"));
        REQUIRE(f.size() == expected.size());  // overwriting never grows the file
        f.commit();
    }
    expected.replace(0, 3, "XYZ");
    expected.replace(50000, 10, "0123456789");
    expected.replace(expected.size() - 4, 4, "TAIL");
    REQUIRE(read_bytes(target) == expected);
    REQUIRE(Faults::calls[kPwrite] > 10);  // the limits above really were in force
}

TEST_CASE("overwrite outside the bytes written is a LogicError, and the file stays usable") {
    TempDir tmp("overwrite_range");
    const fs::path target = tmp.path / "f.bin";
    io::AtomicFile f(target, "ModelCheckpoint");
    f.write(bytes_of("0123456789"));
    REQUIRE_THROWS_AS(f.overwrite(8, bytes_of("abc")), traincb::LogicError);  // ends at 11 > 10
    REQUIRE_THROWS_AS(f.overwrite(11, bytes_of("")), traincb::LogicError);    // starts past the end
    try {
        f.overwrite(~std::uint64_t{0}, bytes_of("a"));  // offset + size would wrap around
        FAIL("no exception");
    } catch (const traincb::LogicError& e) {
        const std::string msg = e.what();
        REQUIRE(msg.rfind("traincb: ModelCheckpoint: AtomicFile::overwrite()", 0) == 0);
        REQUIRE(msg.find("only bytes already written can be replaced") != std::string::npos);
    }
    f.overwrite(7, bytes_of("abc"));  // exactly up to the end is fine
    f.commit();
    REQUIRE(read_bytes(target) == "0123456abc");
    REQUIRE_THROWS_AS(f.overwrite(0, bytes_of("x")), traincb::LogicError);  // after commit
}

TEST_CASE("a failing or stuck pwrite in overwrite leaves the previous file intact") {
    for (const bool stuck : {false, true}) {
        INFO((stuck ? "pwrite returns 0" : "pwrite fails with ENOSPC"));
        TempDir tmp("overwrite_fault");
        const fs::path target = tmp.path / "ckpt.bin";
        write_bytes(target, "previous checkpoint");
        FaultGuard guard;
        if (stuck)
            Faults::zero_pwrite_at = 0;
        else
            FaultGuard::fail(kPwrite, 0, ENOSPC);
        io::AtomicFile f(target, "ModelCheckpoint");
        f.write(bytes_of("new header and data"));
        try {
            f.overwrite(0, bytes_of("NEW"));
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            check_io_error(e, target, stuck ? EIO : ENOSPC);
        }
        REQUIRE(f.temp_path().empty());  // abandoned
        REQUIRE_THROWS_AS(f.commit(), traincb::LogicError);
        REQUIRE(read_bytes(target) == "previous checkpoint");
        REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
    }
}

TEST_CASE("the old version's cached pages are dropped before the new one is written, and only then") {
    TempDir tmp("drop");
    const fs::path target = tmp.path / "ckpt.bin";
    const std::string dontneed = ":0:0:" + std::to_string(POSIX_FADV_DONTNEED);
    FaultGuard guard;
    io::write_file_atomic(target, bytes_of("first"), "ModelCheckpoint");
    REQUIRE(Faults::fadvised.empty());  // nothing to replace
    io::write_file_atomic(target, bytes_of("second"), "ModelCheckpoint");
    REQUIRE(Faults::fadvised == std::vector<std::string>{target.string() + dontneed});
    REQUIRE(read_bytes(target) == "second");

    Faults::reset();
    write_bytes(target, "");
    io::write_file_atomic(target, bytes_of("third"), "ModelCheckpoint");
    REQUIRE(Faults::fadvised.empty());  // an empty file has no pages

    // A symbolic link is replaced by the new file, and the file it pointed to is neither opened
    // nor changed (O_NOFOLLOW).
    Faults::reset();
    const fs::path pointee = tmp.path / "elsewhere.bin";
    write_bytes(pointee, "someone else's data");
    const fs::path link = tmp.path / "link.bin";
    fs::create_symlink(pointee, link);
    io::write_file_atomic(link, bytes_of("fourth"), "ModelCheckpoint");
    REQUIRE(Faults::fadvised.empty());
    REQUIRE_FALSE(fs::is_symlink(link));
    REQUIRE(read_bytes(link) == "fourth");
    REQUIRE(read_bytes(pointee) == "someone else's data");
}

TEST_CASE("a failure to drop the old version's cache is ignored: it is only a hint") {
    TempDir tmp("drop_fault");
    const fs::path target = tmp.path / "ckpt.bin";
    for (const Op op : {kOpen, kFadvise}) {
        INFO((op == kOpen ? "open of the old version fails" : "posix_fadvise fails"));
        write_bytes(target, "previous");
        FaultGuard guard;
        FaultGuard::fail(op, op == kOpen ? 1 : 0, op == kOpen ? EACCES : EIO);  // open 0 is the temporary file
        io::write_file_atomic(target, bytes_of("next"), "ModelCheckpoint");
        REQUIRE(read_bytes(target) == "next");
        REQUIRE(Faults::calls[op] >= 1);  // the fault really was reached
        REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
    }
}

TEST_CASE("the temporary file is hidden, next to the target, and names the target and the pid") {
    TempDir tmp("tempname");
    const fs::path target = tmp.path / "model.safetensors";
    FaultGuard guard;
    FaultGuard::fail(kRename, 0, EACCES);  // stop before the rename so the temp name can be checked
    REQUIRE_THROWS_AS(io::write_file_atomic(target, bytes_of("x"), "ModelCheckpoint"), traincb::IoError);
    const fs::path temp = Faults::last_open;  // the last open before the failure is the temp file
    REQUIRE(temp.parent_path() == tmp.path);
    const std::string name = temp.filename().string();
    REQUIRE(name.rfind(".model.safetensors.tmp." + std::to_string(::getpid()) + ".", 0) == 0);
    REQUIRE(name.size() > (".model.safetensors.tmp." + std::to_string(::getpid()) + ".").size());
    REQUIRE_FALSE(fs::exists(temp));
}

TEST_CASE("a target name near NAME_MAX still gets a valid temporary name") {
    TempDir tmp("longname");
    const fs::path target = tmp.path / std::string(250, 'n');
    io::write_file_atomic(target, bytes_of("long"), "ModelCheckpoint");
    REQUIRE(read_bytes(target) == "long");
}

TEST_CASE("a failure at any step throws IoError and leaves the previous file intact") {
    struct Case {
        const char* what;
        Op op;
        int call;
        int err;
    };
    // Each row fails one system call of the sequence mkdir? -> open(temp) -> open, fadvise, close
    // (the old version's cache: close call 0) -> write... -> fsync -> close (call 1) -> rename.
    const Case cases[] = {
        {"read-only directory (open of the temporary file)", kOpen, 0, EACCES},
        {"read-only file system (open)", kOpen, 0, EROFS},
        {"disk full on the first write", kWrite, 0, ENOSPC},
        {"disk full on a later write", kWrite, 1, ENOSPC},
        {"I/O error on write", kWrite, 0, EIO},
        {"quota exceeded", kWrite, 0, EDQUOT},
        {"fsync of the file", kFsync, 0, EIO},
        {"fsync reports a full disk (delayed allocation)", kFsync, 0, ENOSPC},
        {"close of the file", kClose, 1, EIO},
        {"rename over the target", kRename, 0, EACCES},
        {"rename across devices", kRename, 0, EXDEV},
    };
    for (const Case& c : cases) {
        SECTION(c.what) {
            TempDir tmp("fault");
            const fs::path target = tmp.path / "ckpt.bin";
            write_bytes(target, "previous checkpoint");
            std::string content(600 << 10, 'n');
            FaultGuard guard;
            Faults::max_write = 64 << 10;  // the content takes several write calls
            FaultGuard::fail(c.op, c.call, c.err);
            try {
                io::write_file_atomic(target, bytes_of(content), "ModelCheckpoint");
                FAIL("no exception");
            } catch (const traincb::IoError& e) {
                check_io_error(e, target, c.err);
            }
            REQUIRE(read_bytes(target) == "previous checkpoint");
            REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
            // The failure left nothing behind that would stop the next save.
            Faults::reset();
            io::write_file_atomic(target, bytes_of("next"), "ModelCheckpoint");
            REQUIRE(read_bytes(target) == "next");
        }
    }
}

TEST_CASE("a write call that accepts 0 bytes is an I/O error, not an endless loop") {
    TempDir tmp("zero");
    const fs::path target = tmp.path / "ckpt.bin";
    write_bytes(target, "previous");
    FaultGuard guard;
    Faults::zero_write_at = 0;
    try {
        io::write_file_atomic(target, bytes_of("abc"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, target, EIO);
    }
    REQUIRE(read_bytes(target) == "previous");
    REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
}

TEST_CASE("a failing mkdir of a missing parent names the directory") {
    TempDir tmp("mkdir");
    const fs::path target = tmp.path / "new" / "ckpt.bin";
    FaultGuard guard;
    FaultGuard::fail(kMkdir, 0, EACCES);
    try {
        io::write_file_atomic(target, bytes_of("abc"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, tmp.path / "new", EACCES);
    }
    REQUIRE_FALSE(fs::exists(tmp.path / "new"));
}

TEST_CASE("a parent that is a regular file gives ENOTDIR") {
    TempDir tmp("notdir");
    write_bytes(tmp.path / "file", "i am a file");
    const fs::path target = tmp.path / "file" / "ckpt.bin";
    try {
        io::write_file_atomic(target, bytes_of("abc"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, tmp.path / "file", ENOTDIR);
    }
    // Deeper: a regular file in the middle of the missing chain.
    try {
        io::write_file_atomic(tmp.path / "file" / "x" / "y" / "ckpt.bin", bytes_of("abc"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(ENOTDIR, std::generic_category()));
    }
    REQUIRE(read_bytes(tmp.path / "file") == "i am a file");
}

TEST_CASE("a target that is a directory gives EISDIR and the directory is untouched") {
    TempDir tmp("isdir");
    fs::create_directories(tmp.path / "ckpt" / "inner");
    try {
        io::write_file_atomic(tmp.path / "ckpt", bytes_of("abc"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, tmp.path / "ckpt", EISDIR);
    }
    REQUIRE(fs::is_directory(tmp.path / "ckpt" / "inner"));
    REQUIRE(stray_files(tmp.path, {"ckpt"}).empty());
    // A path ending in a separator names a directory too.
    const fs::path slash = tmp.path.string() + "/other/";
    try {
        io::write_file_atomic(slash, bytes_of("abc"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(EISDIR, std::generic_category()));
    }
}

TEST_CASE("an empty path is an InvalidArgument") {
    REQUIRE_THROWS_AS(io::write_file_atomic("", bytes_of("abc"), "ModelCheckpoint"), traincb::InvalidArgument);
}

TEST_CASE("flushing the directory: a failure is reported, an unsupported fsync is not") {
    TempDir tmp("dirsync");
    const fs::path target = tmp.path / "ckpt.bin";
    write_bytes(target, "previous");
    {
        FaultGuard guard;
        FaultGuard::fail(kFsync, 1, EIO);  // call 0 is the file, call 1 the directory
        try {
            io::write_file_atomic(target, bytes_of("new"), "ModelCheckpoint");
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            check_io_error(e, target, EIO);
            REQUIRE(std::string(e.what()).find("directory") != std::string::npos);
        }
        // The rename had happened: the new file is in place (durability is what failed).
        REQUIRE(read_bytes(target) == "new");
        REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
    }
    {
        FaultGuard guard;
        FaultGuard::fail(kOpen, 2, EACCES);  // 0: the temporary file, 1: the old version (see below), 2: the directory
        REQUIRE_THROWS_AS(io::write_file_atomic(target, bytes_of("newer"), "ModelCheckpoint"), traincb::IoError);
        REQUIRE(read_bytes(target) == "newer");
    }
    {
        FaultGuard guard;
        FaultGuard::fail(kFsync, 1, EINVAL);  // a file system that cannot fsync directories
        io::write_file_atomic(target, bytes_of("newest"), "ModelCheckpoint");
        REQUIRE(read_bytes(target) == "newest");
    }
}

TEST_CASE("AtomicFile: destroying without commit abandons, use after commit is a LogicError") {
    TempDir tmp("abandon");
    const fs::path target = tmp.path / "ckpt.bin";
    write_bytes(target, "previous");
    fs::path temp;
    {
        io::AtomicFile f(target, "ModelCheckpoint");
        f.write(bytes_of("partial"));
        temp = f.temp_path();
        REQUIRE(fs::exists(temp));
        REQUIRE(f.path() == target);
    }
    REQUIRE_FALSE(fs::exists(temp));
    REQUIRE(read_bytes(target) == "previous");

    io::AtomicFile f(target, "ModelCheckpoint");
    f.write(bytes_of("done"));
    f.commit();
    REQUIRE(f.temp_path().empty());
    REQUIRE(read_bytes(target) == "done");
    REQUIRE_THROWS_AS(f.write(bytes_of("more")), traincb::LogicError);
    REQUIRE_THROWS_AS(f.commit(), traincb::LogicError);

    io::AtomicFile g(target, "ModelCheckpoint");
    g.abandon();
    REQUIRE_THROWS_AS(g.commit(), traincb::LogicError);
    REQUIRE(read_bytes(target) == "done");
    REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
}

TEST_CASE("/dev/full: a real ENOSPC from the kernel surfaces as IoError") {
    const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (full < 0) TRAINCB_SKIP("/dev/full is not available");
    TempDir tmp("devfull");
    const fs::path target = tmp.path / "ckpt.bin";
    write_bytes(target, "previous");
    {
        FaultGuard guard;
        Faults::devfull_fd = full;  // the data goes to /dev/full, which always answers ENOSPC
        try {
            io::write_file_atomic(target, bytes_of("abc"), "ModelCheckpoint");
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            check_io_error(e, target, ENOSPC);
        }
    }
    ::close(full);
    REQUIRE(read_bytes(target) == "previous");
    REQUIRE(stray_files(tmp.path, {"ckpt.bin"}).empty());
}

TEST_CASE("a real read-only mount: EROFS, and the previous file stays readable") {
    TempDir tmp("romount");
    Mount m(tmp.path / "mnt", "size=1m,mode=0755");
    if (!m.mounted) TRAINCB_SKIP("cannot mount a tmpfs here (needs root with mount privileges)");
    const fs::path target = m.dir / "ckpt.bin";
    io::write_file_atomic(target, bytes_of("previous"), "ModelCheckpoint");
    REQUIRE(sh("mount -o remount,ro " + m.dir.string()));
    try {
        io::write_file_atomic(target, bytes_of("new"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, target, EROFS);
    }
    try {
        io::write_file_atomic(m.dir / "sub" / "ckpt.bin", bytes_of("new"), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, m.dir / "sub", EROFS);
    }
    REQUIRE(read_bytes(target) == "previous");
    REQUIRE(io::read_file(target, "ModelCheckpoint") == bytes_of("previous"));
    REQUIRE(stray_files(m.dir, {"ckpt.bin"}).empty());
}

TEST_CASE("a real full disk (small tmpfs): ENOSPC, previous file intact, space released") {
    TempDir tmp("fullmount");
    Mount m(tmp.path / "mnt", "size=256k");
    if (!m.mounted) TRAINCB_SKIP("cannot mount a tmpfs here (needs root with mount privileges)");
    const fs::path target = m.dir / "ckpt.bin";
    const std::string small(64 << 10, 's');
    io::write_file_atomic(target, bytes_of(small), "ModelCheckpoint");
    try {
        io::write_file_atomic(target, bytes_of(std::string(1 << 20, 'B')), "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, target, ENOSPC);
    }
    REQUIRE(read_bytes(target) == small);
    REQUIRE(stray_files(m.dir, {"ckpt.bin"}).empty());
    // The partial temporary file was removed, so its space is free again.
    io::write_file_atomic(target, bytes_of(std::string(128 << 10, 't')), "ModelCheckpoint");
    REQUIRE(fs::file_size(target) == (128U << 10));
}

TEST_CASE("read_file returns the whole file, resuming after short reads and EINTR") {
    TempDir tmp("read");
    const fs::path p = tmp.path / "data.bin";
    std::string content(200000, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 13 % 256);
    write_bytes(p, content);
    REQUIRE(io::read_file(p, "ModelCheckpoint") == bytes_of(content));
    write_bytes(tmp.path / "empty", "");
    REQUIRE(io::read_file(tmp.path / "empty", "ModelCheckpoint").empty());
    FaultGuard guard;
    Faults::max_write = 1000;
    Faults::eintr_every_other = true;
    REQUIRE(io::read_file(p, "ModelCheckpoint") == bytes_of(content));
}

TEST_CASE("read_file of a pipe-like file without a size reads to the end") {
    // /proc files report size 0 but have content: read_file must not trust the size.
    const auto bytes = io::read_file("/proc/self/stat", "ModelCheckpoint");
    REQUIRE_FALSE(bytes.empty());
}

TEST_CASE("read_file errors name the path and the OS error") {
    TempDir tmp("readerr");
    try {
        (void)io::read_file(tmp.path / "missing.bin", "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, tmp.path / "missing.bin", ENOENT);
    }
    try {
        (void)io::read_file(tmp.path, "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, tmp.path, EISDIR);
    }
    write_bytes(tmp.path / "f", "abc");
    FaultGuard guard;
    FaultGuard::fail(kRead, 0, EIO);
    try {
        (void)io::read_file(tmp.path / "f", "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, tmp.path / "f", EIO);
    }
}

// ---- permission bits ---------------------------------------------------------------------------

namespace {
// The permission bits of `p` (stat), and the mode a new file gets (0666 less the umask).
unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return static_cast<unsigned>(st.st_mode) & 07777U;
}
unsigned new_file_mode() {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    return 0666U & ~static_cast<unsigned>(mask);
}
}  // namespace

TEST_CASE("keep_permissions: the new file has the permission bits of the file it replaces") {
    TempDir tmp("perm");
    const fs::path target = tmp.path / "log.csv";
    const io::AtomicFileOptions keep{.keep_permissions = true};
    // Modes a user may set by hand; each differs from every default (0644, 0664, 0666).
    for (const unsigned mode : {0600U, 0640U, 0604U, 0755U}) {
        CAPTURE(mode);
        write_bytes(target, "old");
        REQUIRE(::chmod(target.c_str(), mode) == 0);
        io::write_file_atomic(target, std::string_view("new"), "CsvSink", keep);
        REQUIRE(read_bytes(target) == "new");
        REQUIRE(mode_of(target) == mode);
    }
    // Without the option (checkpoints), the new file gets the default mode, as before.
    REQUIRE(::chmod(target.c_str(), 0600) == 0);
    io::write_file_atomic(target, std::string_view("ckpt"), "ModelCheckpoint");
    REQUIRE(mode_of(target) == new_file_mode());
    // A missing target has nothing to keep: the default mode.
    io::write_file_atomic(tmp.path / "fresh.csv", std::string_view("x"), "CsvSink", keep);
    REQUIRE(mode_of(tmp.path / "fresh.csv") == new_file_mode());
}

TEST_CASE("keep_permissions: a failing chmod leaves the previous file and its mode intact") {
    TempDir tmp("permfail");
    const fs::path target = tmp.path / "report.html";
    write_bytes(target, "previous");
    REQUIRE(::chmod(target.c_str(), 0640) == 0);
    FaultGuard guard;
    FaultGuard::fail(kFchmod, 0, EPERM);
    try {
        io::write_file_atomic(target, std::string_view("new"), "ModelCheckpoint", {.keep_permissions = true});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, target, EPERM);
        REQUIRE(std::string(e.what()).find("cannot set the permissions of") != std::string::npos);
    }
    REQUIRE(read_bytes(target) == "previous");
    REQUIRE(mode_of(target) == 0640U);
    REQUIRE(stray_files(tmp.path, {"report.html"}).empty());
}

// ---- AppendFile ----------------------------------------------------------------------------------

TEST_CASE("AppendFile: truncate, append after the existing bytes, create a new file only") {
    TempDir tmp("append");
    const fs::path p = tmp.path / "h.csv";
    write_bytes(p, "old\n");
    {
        io::AppendFile f(p, "CsvSink", io::AppendMode::Append);
        REQUIRE(f.size() == 4);  // "old\n"
        f.write(std::string_view("a\n"));
        f.write(std::string_view("b\n"));
        REQUIRE(f.size() == 8);
        f.close();
    }
    REQUIRE(read_bytes(p) == "old\na\nb\n");
    {
        io::AppendFile f(p, "CsvSink", io::AppendMode::Truncate);
        REQUIRE(f.size() == 0);
        f.write(std::string_view("c\n"));
    }  // the destructor closes
    REQUIRE(read_bytes(p) == "c\n");
    // CreateNew: an existing file is EEXIST ("cannot create"), untouched; a new one gets the mode asked.
    try {
        io::AppendFile f(p, "TensorBoard", io::AppendMode::CreateNew, 0644);
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::errc::file_exists);
        REQUIRE(std::string(e.what()) ==
                "traincb: TensorBoard: cannot create '" + p.string() + "': " + std::strerror(EEXIST));
    }
    REQUIRE(read_bytes(p) == "c\n");
    io::AppendFile fresh(tmp.path / "events", "TensorBoard", io::AppendMode::CreateNew, 0600);
    REQUIRE(mode_of(tmp.path / "events") == (0600U & new_file_mode()));
    fresh.close();
    REQUIRE_THROWS_AS(fresh.write(std::string_view("x")), traincb::LogicError);
    REQUIRE_NOTHROW(fresh.close());  // closing twice is a no-op
}

TEST_CASE("AppendFile: a failed write is cut back to the bytes before it and names the file") {
    TempDir tmp("appendfail");
    const fs::path p = tmp.path / "h.jsonl";
    write_bytes(p, "{\"epoch\":0}\n");
    io::AppendFile f(p, "JsonLinesSink", io::AppendMode::Append);
    FaultGuard guard;
    Faults::max_write = 3;                // the row takes several write calls...
    FaultGuard::fail(kWrite, 2, ENOSPC);  // ...and the third one finds the disk full
    try {
        f.write(std::string_view("{\"epoch\":1}\n"));
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(std::string(e.what()) ==
                "traincb: JsonLinesSink: cannot write '" + p.string() + "': " + std::strerror(ENOSPC));
        REQUIRE(e.path() == p);
    }
    REQUIRE(Faults::calls[kFtruncate] == 1);
    REQUIRE(read_bytes(p) == "{\"epoch\":0}\n");  // the 6 bytes that did reach the file are gone
    REQUIRE(f.size() == 12);
    // The file stays usable: the next write lands right after the last whole row.
    Faults::reset();
    f.write(std::string_view("{\"epoch\":1}\n"));
    f.close();
    REQUIRE(read_bytes(p) == "{\"epoch\":0}\n{\"epoch\":1}\n");
}

TEST_CASE("AppendFile: a failing close is an IoError naming the file") {
    TempDir tmp("appendclose");
    const fs::path p = tmp.path / "h.csv";
    io::AppendFile f(p, "CsvSink", io::AppendMode::Truncate);
    f.write(std::string_view("row\n"));
    FaultGuard guard;
    FaultGuard::fail(kClose, 0, EIO);
    try {
        f.close();
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(EIO, std::generic_category()));
        REQUIRE(e.path() == p);
    }
    REQUIRE_FALSE(f.is_open());
}

}  // namespace test_atomic_file
