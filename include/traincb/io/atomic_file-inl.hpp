#pragma once
// The bodies of traincb/io/atomic_file.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/io/atomic_file.hpp"

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
