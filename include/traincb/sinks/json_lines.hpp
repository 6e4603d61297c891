#pragma once
/// @file sinks/json_lines.hpp
/// JsonLinesSink: one JSON object per epoch and line, `{"epoch":E,"accuracy":...,"loss":...}`, read
/// by `pandas.read_json(path, lines=True)`.

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "traincb/detail/config.hpp"
#include "traincb/detail/logfile.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/atomic_file.hpp"
#include "traincb/logs.hpp"
#include "traincb/sinks/sink.hpp"

namespace traincb::inline v0::sinks {

/// Options of JsonLinesSink.
struct JsonLinesOptions {
    std::filesystem::path path{};  ///< the .jsonl file; its directory must exist
    /// Keep an existing file: its lines of epochs before RunInfo::initial_epoch stay, the lines of
    /// later epochs are replaced by this run's (a resumed run behaves so even when false).
    bool append = false;
};

/// Writes one line per epoch: a JSON object with `epoch` (0-based, absolute) first, then every
/// key of the epoch's logs in sorted order; a key absent in an epoch is absent from its line.
/// Numbers are written by nlohmann::json (shortest round-trip: `0.1`, `1e-05`, `100.0`). JSON has
/// no NaN or infinity: they are written as `null`, which pandas reads as NaN (so +-inf reads back
/// as NaN too; use CsvSink when infinities must survive). With pandas, pass `convert_dates=False`
/// if a key looks like a date column (`*_time`, `*_at`, `timestamp`).
///
/// Resume rules as CsvSink: a resumed run (or `append`) keeps the existing lines of epochs before
/// RunInfo::initial_epoch and drops the rest (atomic rewrite), and a last line cut off by a crash.
/// Each line is handed to the OS with one write(2), so flush() has nothing to do; a failed write
/// is cut back, so the file never ends in a partial line. A rewrite keeps the file's permission
/// bits.
class JsonLinesSink final : public Sink {
public:
    /// @throws InvalidArgument for an empty path; IoError naming the path when it is a directory
    /// (EISDIR) or its parent is missing or not a directory (ENOENT, ENOTDIR).
    explicit JsonLinesSink(JsonLinesOptions options);
    JsonLinesSink(const JsonLinesSink&) = delete;
    JsonLinesSink& operator=(const JsonLinesSink&) = delete;
    ~JsonLinesSink() override = default;

    /// Opens the file: truncates it, or (resumed run or `append`) keeps its lines of epochs before
    /// `info.initial_epoch`. @throws IoError naming the path; FormatError when an existing line is
    /// not a JSON object with an integer `epoch`.
    TRAINCB_INLINE void begin(const RunInfo& info) override;

    /// Appends the line of `epoch`. @throws IoError naming the path (ENOSPC on a full disk);
    /// InvalidArgument for a key named `epoch`; LogicError before begin().
    TRAINCB_INLINE void write_epoch(int epoch, const Logs& logs) override;

    /// Every line is already written with write(2): nothing is buffered here.
    TRAINCB_INLINE void flush() override;

    /// Closes the file. @throws IoError when close(2) reports an error.
    TRAINCB_INLINE void end(const TrainEnd& end) override;

    /// The .jsonl file.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return opt_.path; }

private:
    static constexpr const char* kComponent = "JsonLinesSink";

    // As CsvSink::keep_rows_before.
    void keep_lines_before(int initial_epoch, bool warn_replaced);

    JsonLinesOptions opt_;
    io::AppendFile file_;
    std::string line_;
};

}  // namespace traincb::inline v0::sinks

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0::sinks {

TRAINCB_INLINE JsonLinesSink::JsonLinesSink(JsonLinesOptions options) : opt_(std::move(options)) {
    if (opt_.path.empty())
        throw InvalidArgument(
            "traincb: JsonLinesSink: path is empty; set JsonLinesOptions::path to the .jsonl file to write");
    traincb::detail::logfile::check_log_path(opt_.path, kComponent);
}

TRAINCB_INLINE void JsonLinesSink::begin(const RunInfo& info) {
    file_.reset();
    if (!opt_.append && !info.resumed) {
        file_ = io::AppendFile(opt_.path, kComponent, io::AppendMode::Truncate);
        return;
    }
    if (traincb::detail::logfile::file_kind(opt_.path, kComponent) == traincb::detail::logfile::FileKind::Regular)
        keep_lines_before(info.initial_epoch, !info.resumed);
    file_ = io::AppendFile(opt_.path, kComponent, io::AppendMode::Append);
}

TRAINCB_INLINE void JsonLinesSink::write_epoch(int epoch, const Logs& logs) {
    if (!file_.is_open())
        throw LogicError(
            "traincb: JsonLinesSink: write_epoch() before begin(); call MetricLogger's "
            "on_train_begin (or Sink::begin) first");
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["epoch"] = epoch;
    for (const auto& [k, v] : logs) {
        if (k == "epoch")
            throw InvalidArgument(
                "traincb: JsonLinesSink: the logs hold a key 'epoch', which would clash with "
                "the epoch field; rename that metric");
        j[k] = v;
    }
    // replace: a key that is not valid UTF-8 must not abort training
    line_ = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    line_ += '\n';
    file_.write(line_);
}

TRAINCB_INLINE void JsonLinesSink::flush() {}

TRAINCB_INLINE void JsonLinesSink::end(const TrainEnd& end) {
    (void)end;
    file_.close();
}

TRAINCB_INLINE void JsonLinesSink::keep_lines_before(int initial_epoch, bool warn_replaced) {
    std::size_t replaced = 0;
    const std::string text = io::read_text_file(opt_.path, kComponent);
    std::string kept;
    bool changed = false;
    std::size_t pos = 0;
    std::size_t line_no = 0;
    while (pos < text.size()) {
        ++line_no;
        const std::size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) {  // a last line cut off by a crash
            changed = true;
            break;
        }
        const std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
            kept.append(line);
            kept += '\n';
            continue;
        }
        const auto j = nlohmann::json::parse(line, nullptr, false);
        const nlohmann::json* e = nullptr;
        if (!j.is_discarded() && j.is_object()) {
            const auto it = j.find("epoch");
            if (it != j.end() && it->is_number_integer()) e = &*it;
        }
        if (e == nullptr)
            throw FormatError("traincb: JsonLinesSink: '" + opt_.path.string() + "' line " + std::to_string(line_no) +
                              " is not a JSON object with an integer \"epoch\"; it is not a log this sink can "
                              "continue: delete it, move it, or choose another path");
        if (e->get<long long>() >= initial_epoch) {
            changed = true;
            ++replaced;
            continue;
        }
        kept.append(line);
        kept += '\n';
    }
    if (changed) traincb::detail::logfile::rewrite(opt_.path, kept, kComponent);
    if (warn_replaced && replaced > 0)
        traincb::detail::logfile::warn_replaced(kComponent, opt_.path, replaced, initial_epoch);
}

}  // namespace traincb::inline v0::sinks
#endif  // TRAINCB_DEFINITIONS
