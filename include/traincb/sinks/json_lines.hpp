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
#include "traincb/sinks/json_lines-inl.hpp"
#endif
