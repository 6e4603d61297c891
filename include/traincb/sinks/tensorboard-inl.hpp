#pragma once
// The bodies of traincb/sinks/tensorboard.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/sinks/tensorboard.hpp"

namespace traincb::inline v0 {

namespace detail::tb {

TRAINCB_INLINE double system_wall_time() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TRAINCB_INLINE float to_float32(double v) noexcept {
    constexpr double max = std::numeric_limits<float>::max();
    if (std::isnan(v) || (v >= -max && v <= max)) return static_cast<float>(v);
    // FLT_MAX + half an ulp (2^128 - 2^103): below it rounds down to FLT_MAX; at it, ties-to-even
    // goes up, because FLT_MAX's significand is odd.
    constexpr double halfway = 0x1.ffffffp+127;
    const float mag =
        std::fabs(v) < halfway ? std::numeric_limits<float>::max() : std::numeric_limits<float>::infinity();
    return v < 0 ? -mag : mag;
}

TRAINCB_INLINE bool is_valid_utf8(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80U) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if ((c & 0xE0U) == 0xC0U) {
            len = 2;
            cp = c & 0x1FU;
        } else if ((c & 0xF0U) == 0xE0U) {
            len = 3;
            cp = c & 0x0FU;
        } else if ((c & 0xF8U) == 0xF0U) {
            len = 4;
            cp = c & 0x07U;
        } else {
            return false;
        }
        if (s.size() - i < len) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0U) != 0x80U) return false;
            cp = (cp << 6) | (b & 0x3FU);
        }
        const bool overlong = (len == 2 && cp < 0x80U) || (len == 3 && cp < 0x800U) || (len == 4 && cp < 0x10000U);
        if (overlong || cp > 0x10FFFFU || (cp >= 0xD800U && cp <= 0xDFFFU)) return false;
        i += len;
    }
    return true;
}

TRAINCB_INLINE void put_event_header(std::string& out, double wall_time, std::int64_t step) {
    if (std::bit_cast<std::uint64_t>(wall_time) != 0) pb::put_double_field(out, event_wall_time, wall_time);
    if (step != 0) pb::put_int64_field(out, event_step, step);
}

TRAINCB_INLINE void encode_file_version_event(std::string& out, double wall_time, std::string_view writer) {
    put_event_header(out, wall_time, 0);
    pb::put_bytes_field(out, event_file_version, file_version);
    if (!writer.empty()) {
        pb::put_key(out, event_source_metadata, pb::WireType::Len);
        pb::put_varint(out, 1 + pb::varint_size(writer.size()) + writer.size());
        pb::put_bytes_field(out, source_metadata_writer, writer);
    }
}

TRAINCB_INLINE void encode_scalar_event(std::string& out, double wall_time, std::int64_t step, std::string_view tag,
                                        float value) {
    // Sizes are computed up front so the nested messages are written in place, without temporaries.
    const std::size_t value_size = 1 + pb::varint_size(tag.size()) + tag.size() + 1 + 4;
    const std::size_t summary_size = 1 + pb::varint_size(value_size) + value_size;
    put_event_header(out, wall_time, step);
    pb::put_key(out, event_summary, pb::WireType::Len);
    pb::put_varint(out, summary_size);
    pb::put_key(out, summary_value, pb::WireType::Len);
    pb::put_varint(out, value_size);
    pb::put_bytes_field(out, value_tag, tag);
    // simple_value is in a oneof, so it is written even when it is 0.
    pb::put_float_field(out, value_simple_value, value);
}

TRAINCB_INLINE void encode_session_start_event(std::string& out, double wall_time, std::int64_t step) {
    put_event_header(out, wall_time, step);
    pb::put_key(out, event_session_log, pb::WireType::Len);
    pb::put_varint(out, 2);
    pb::put_uint64_field(out, session_log_status, session_log_start);
}

TRAINCB_INLINE void append_record(std::string& out, std::string_view payload) {
    const std::size_t header_at = out.size();
    pb::put_fixed64(out, payload.size());
    pb::put_fixed32(out, masked_crc32c(std::string_view(out).substr(header_at, 8)));
    out.append(payload);
    pb::put_fixed32(out, masked_crc32c(payload));
}

TRAINCB_INLINE std::string event_file_name(std::int64_t secs, std::string_view host, std::int64_t pid,
                                           std::uint64_t counter, std::string_view suffix) {
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, secs < 0 ? 0 : secs);
    const std::string_view secs_text(digits, static_cast<std::size_t>(r.ptr - digits));
    std::string name(file_prefix);
    if (secs_text.size() < 10) name.append(10 - secs_text.size(), '0');
    name += secs_text;
    name += '.';
    name += host;
    name += '.';
    r = std::to_chars(digits, digits + sizeof digits, pid);
    name.append(digits, r.ptr);
    name += '.';
    r = std::to_chars(digits, digits + sizeof digits, counter);
    name.append(digits, r.ptr);
    name += suffix;
    return name;
}

TRAINCB_INLINE std::optional<std::int64_t> event_file_secs(std::string_view name) {
    if (!name.starts_with(file_prefix)) return std::nullopt;
    name.remove_prefix(file_prefix.size());
    if (name.size() < 11 || name[10] != '.') return std::nullopt;
    std::int64_t secs = 0;
    const auto r = std::from_chars(name.data(), name.data() + 10, secs);
    if (r.ec != std::errc() || r.ptr != name.data() + 10) return std::nullopt;
    return secs;
}

TRAINCB_INLINE std::string host_name() {
    std::string host;
    for (const char c : os::host_name()) {
        if (c != '/') host += c;  // a '/' would turn the file name into a path
    }
    return host.empty() ? std::string("localhost") : host;
}

TRAINCB_INLINE std::atomic<std::uint64_t>& file_counter() {
    static std::atomic<std::uint64_t> counter{0};
    return counter;
}

}  // namespace detail::tb

namespace tensorboard {

TRAINCB_INLINE EventWriter::EventWriter(const std::filesystem::path& run_dir, EventWriterOptions options)
    : options_(std::move(options)) {
    if (run_dir.empty()) {
        throw InvalidArgument(
            "traincb: TensorBoard: the run directory is empty; pass the directory "
            "that should hold the event file (e.g. \"logs/train\")");
    }
    if (options_.filename_suffix.find('/') != std::string::npos ||
        options_.filename_suffix.find('\0') != std::string::npos) {
        throw InvalidArgument("traincb: TensorBoard: filename_suffix '" + options_.filename_suffix +
                              "' contains '/' or a NUL byte; use a plain suffix such as \".v2\"");
    }
    if (!detail::tb::is_valid_utf8(options_.writer_name)) {
        throw InvalidArgument("traincb: TensorBoard: writer_name is not valid UTF-8; protobuf strings must be");
    }
    if (!options_.clock) options_.clock = detail::tb::system_wall_time;
    open_file(run_dir);
}

TRAINCB_INLINE EventWriter::~EventWriter() {
    close_noexcept();
}

TRAINCB_INLINE EventWriter& EventWriter::operator=(EventWriter&& other) noexcept {
    if (this != &other) {
        close_noexcept();
        options_ = std::move(other.options_);
        path_ = std::move(other.path_);
        pending_ = std::move(other.pending_);
        file_ = std::move(other.file_);
    }
    return *this;
}

TRAINCB_INLINE void EventWriter::add_scalar(std::string_view tag, std::int64_t step, double value,
                                            std::optional<double> wall_time) {
    require_open("add_scalar");
    if (tag.empty() || !detail::tb::is_valid_utf8(tag)) {
        throw InvalidArgument("traincb: TensorBoard: scalar tag '" + std::string(tag) +
                              "' is empty or not valid UTF-8; use a name such as \"epoch_loss\"");
    }
    scratch_.clear();
    detail::tb::encode_scalar_event(scratch_, wall_time ? *wall_time : options_.clock(), step, tag,
                                    detail::tb::to_float32(value));
    append(scratch_);
}

TRAINCB_INLINE void EventWriter::add_session_start(std::int64_t step, std::optional<double> wall_time) {
    require_open("add_session_start");
    scratch_.clear();
    detail::tb::encode_session_start_event(scratch_, wall_time ? *wall_time : options_.clock(), step);
    append(scratch_);
}

TRAINCB_INLINE void EventWriter::close() {
    if (!file_.is_open()) return;
    try {
        write_pending();
    } catch (...) {
        file_.reset();
        throw;
    }
    file_.close();
}

TRAINCB_INLINE void EventWriter::open_file(const std::filesystem::path& run_dir) {
    namespace fs = std::filesystem;
    const std::string comp(detail::tb::component);
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (!ec && !fs::is_directory(run_dir, ec) && !ec) ec = std::make_error_code(std::errc::not_a_directory);
    if (ec) throw IoError(comp, "cannot create directory", run_dir, ec);

    // The name that sorts last among the run's event files ("tfevents" anywhere in the name is
    // what the loaders look for).
    std::string last;
    for (fs::directory_iterator it(run_dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (name.find("tfevents") != std::string::npos && name > last) last = std::move(name);
    }
    if (ec) throw IoError(comp, "cannot list directory", run_dir, ec);

    const double t = options_.clock();  // one reading for the name and the first event
    std::int64_t secs = std::isfinite(t) && t > 0 ? static_cast<std::int64_t>(std::floor(t)) : 0;
    const std::string host = detail::tb::host_name();
    const auto pid = static_cast<std::int64_t>(detail::os::current_pid());
    auto make_name = [&] {
        return detail::tb::event_file_name(secs, host, pid, detail::tb::file_counter().fetch_add(1),
                                           options_.filename_suffix);
    };
    std::string name = make_name();
    if (!last.empty() && name <= last) {
        if (const auto last_secs = detail::tb::event_file_secs(last)) {
            secs = std::max(secs, *last_secs + 1);
            name = make_name();
        } else {
            warn("traincb: TensorBoard: the event file '" + last + "' in '" + run_dir.string() +
                 "' sorts after the new file '" + name +
                 "'; TensorBoard's legacy loader may skip the new one. Use a fresh run directory.");
        }
    }
    // O_EXCL: never append to an existing file. A clash (same second, pid and counter from an
    // earlier process) is retried with the next counter value.
    for (int attempt = 0;; ++attempt) {
        path_ = run_dir / name;
        try {
            file_ = io::AppendFile(path_, comp, io::AppendMode::CreateNew, 0644);
            break;
        } catch (const IoError& e) {
            if (e.code() != std::errc::file_exists || attempt >= 100) throw;
        }
        name = make_name();
    }
    try {
        scratch_.clear();
        detail::tb::encode_file_version_event(scratch_, t, options_.writer_name);
        append(scratch_);
        write_pending();
    } catch (...) {
        // No half-made file is left behind.
        file_.reset();
        std::error_code ignored;
        fs::remove(path_, ignored);
        throw;
    }
}

TRAINCB_INLINE void EventWriter::require_open(const char* what) const {
    if (!file_.is_open()) {
        throw LogicError("traincb: TensorBoard: " + std::string(what) + " on a closed EventWriter ('" + path_.string() +
                         "'); create a new writer to write more events");
    }
}

TRAINCB_INLINE void EventWriter::append(std::string_view payload) {
    detail::tb::append_record(pending_, payload);
    if (pending_.size() >= detail::tb::write_threshold) write_pending();
}

TRAINCB_INLINE void EventWriter::write_pending() {
    if (pending_.empty()) return;
    try {
        file_.write(pending_);
    } catch (...) {
        pending_.clear();
        throw;
    }
    pending_.clear();
}

TRAINCB_INLINE void EventWriter::close_noexcept() noexcept {
    try {
        close();
    } catch (const std::exception& e) {
        warn(e.what());
    }
}

}  // namespace tensorboard

namespace sinks {

TRAINCB_INLINE TensorBoardSink::TensorBoardSink(TensorBoardOptions options) : options_(std::move(options)) {
    if (options_.log_dir.empty()) {
        throw InvalidArgument("traincb: TensorBoardSink: log_dir is empty; set .log_dir = \"logs/run1\"");
    }
    if (options_.update_freq < 1) {
        throw InvalidArgument("traincb: TensorBoardSink: update_freq = " + std::to_string(options_.update_freq) +
                              " must be >= 1 (1 writes every batch)");
    }
    if (options_.filename_suffix.find('/') != std::string::npos ||
        options_.filename_suffix.find('\0') != std::string::npos) {
        throw InvalidArgument("traincb: TensorBoardSink: filename_suffix '" + options_.filename_suffix +
                              "' contains '/' or a NUL byte; use a plain suffix such as \".v2\"");
    }
    if (!options_.clock) options_.clock = detail::tb::system_wall_time;
    // The nearest existing one of log_dir and its ancestors must be a directory.
    for (std::filesystem::path p = options_.log_dir; !p.empty(); p = p.parent_path()) {
        std::error_code ec;
        const std::filesystem::file_status st = std::filesystem::status(p, ec);
        if (st.type() == std::filesystem::file_type::not_found) {
            if (p == p.parent_path()) break;
            continue;
        }
        if (!ec && st.type() != std::filesystem::file_type::directory)
            ec = std::make_error_code(std::errc::not_a_directory);
        if (ec) throw IoError("TensorBoardSink", "cannot create log_dir", options_.log_dir, ec);
        break;
    }
}

TRAINCB_INLINE void TensorBoardSink::begin(const RunInfo& info) {
    close_writers();
    std::error_code ec;
    std::filesystem::create_directories(options_.log_dir, ec);
    if (!ec && !std::filesystem::is_directory(options_.log_dir, ec) && !ec)
        ec = std::make_error_code(std::errc::not_a_directory);
    if (ec) throw IoError("TensorBoardSink", "cannot create log_dir", options_.log_dir, ec);
    began_ = true;
    resumed_ = info.resumed;
    initial_epoch_ = info.initial_epoch;
    train_start_pending_ = false;
    train_ = open_run("train");
    if (resumed_) {
        if (options_.log_batches) {
            train_start_pending_ = true;
        } else {
            train_->add_session_start(initial_epoch_);
        }
    }
    train_->flush();
    if (info.params.has_validation) validation().flush();
}

TRAINCB_INLINE void TensorBoardSink::write_epoch(int epoch, const Logs& logs) {
    require_begun("write_epoch");
    write_pending_start(initial_epoch_);
    const double now = options_.clock();
    for (const auto& [key, value] : logs) {
        const std::string_view k(key);
        if (k.starts_with("val_")) {
            validation().add_scalar(tag("epoch_", k.substr(4)), epoch, value, now);
        } else {
            train_->add_scalar(tag("epoch_", k), epoch, value, now);
        }
    }
    flush();
}

TRAINCB_INLINE bool TensorBoardSink::wants_batches() const {
    return options_.log_batches;
}

TRAINCB_INLINE void TensorBoardSink::write_batch(const BatchInfo& info, const Logs& logs) {
    require_begun("write_batch");
    if (!options_.log_batches) return;
    write_pending_start(info.global_step);
    if (info.global_step % options_.update_freq != 0) return;
    const double now = options_.clock();
    for (const auto& [key, value] : logs) train_->add_scalar(tag("batch_", key), info.global_step, value, now);
}

TRAINCB_INLINE void TensorBoardSink::end(const TrainEnd& end) {
    (void)end;
    began_ = false;
    std::exception_ptr first;
    for (auto* w : {&train_, &validation_}) {
        try {
            if (*w) (*w)->close();
        } catch (...) {
            if (!first) first = std::current_exception();
        }
        w->reset();
    }
    if (first) std::rethrow_exception(first);
}

TRAINCB_INLINE void TensorBoardSink::flush() {
    if (train_) train_->flush();
    if (validation_) validation_->flush();
}

TRAINCB_INLINE tensorboard::EventWriter TensorBoardSink::open_run(const char* run) const {
    return tensorboard::EventWriter(options_.log_dir / run,
                                    {.filename_suffix = options_.filename_suffix, .clock = options_.clock});
}

TRAINCB_INLINE tensorboard::EventWriter& TensorBoardSink::validation() {
    if (!validation_) {
        validation_ = open_run("validation");
        if (resumed_) validation_->add_session_start(initial_epoch_);
    }
    return *validation_;
}

TRAINCB_INLINE void TensorBoardSink::write_pending_start(std::int64_t step) {
    if (train_start_pending_) {
        train_start_pending_ = false;
        train_->add_session_start(step);
    }
}

TRAINCB_INLINE void TensorBoardSink::require_begun(const char* what) const {
    if (!began_) {
        throw LogicError("traincb: TensorBoardSink: " + std::string(what) +
                         " called outside a run; call begin() first (MetricLogger does)");
    }
}

TRAINCB_INLINE std::string TensorBoardSink::tag(std::string_view prefix, std::string_view name) {
    std::string t;
    t.reserve(prefix.size() + name.size());
    t += prefix;
    t += name;
    return t;
}

TRAINCB_INLINE void TensorBoardSink::close_writers() noexcept {
    train_.reset();  // the destructors flush and warn on failure
    validation_.reset();
}

}  // namespace sinks

}  // namespace traincb::inline v0
