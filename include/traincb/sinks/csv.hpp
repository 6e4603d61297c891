#pragma once
/// @file sinks/csv.hpp
/// CsvSink: Keras's CSVLogger file (`epoch` then the sorted keys, `NA` for a missing value, RFC 4180
/// quoting, "\r\n" line ends, Python float repr), without its traps: no phantom `val_*` columns, a
/// key that first appears in a later epoch widens the header instead of being dropped, and a
/// resumed run replaces the rows of the epochs it re-runs instead of duplicating them.

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/detail/logfile.hpp"
#include "traincb/detail/os.hpp"
#include "traincb/detail/python_float.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/atomic_file.hpp"
#include "traincb/logs.hpp"
#include "traincb/sinks/sink.hpp"

namespace traincb::inline v0::detail {

/// Appends `cell` to a CSV line, quoted as RFC 4180 and Python's QUOTE_MINIMAL do when it holds
/// the separator, a double quote, CR or LF (a quote inside is doubled).
TRAINCB_INLINE void append_csv_cell(std::string& out, std::string_view cell, char separator);

/// The records of a CSV text, and whether the last one ended with a line terminator (a missing
/// one means the writer was cut off mid-row).
struct CsvRecords {
    std::vector<std::vector<std::string>> records;
    bool last_terminated = true;
};

/// Parses RFC 4180 text with "\r\n" or "\n" line ends. @throws FormatError for a quote that is
/// not closed before a complete line (the message names `path`).
TRAINCB_INLINE CsvRecords parse_csv(std::string_view text, char separator, const std::filesystem::path& path,
                                    const char* component);

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::sinks {

/// Options of CsvSink (Keras's CSVLogger arguments).
struct CsvOptions {
    std::filesystem::path path{};  ///< the CSV file; its directory must exist
    char separator = ',';          ///< the field separator
    /// Keep an existing file: its rows of epochs before RunInfo::initial_epoch stay, the rows of
    /// later epochs are replaced by this run's (a resumed run behaves so even when false).
    bool append = false;
};

/// Writes one CSV row per epoch, as Keras's CSVLogger: the header `epoch` then every key in sorted
/// order; `epoch` is 0-based and absolute; a value missing in an epoch is `NA`; numbers are
/// Python's float repr (`0.1`, `1e-05`, `100.0`, `nan`, `inf`, `-inf`: the bytes Keras writes, and
/// pandas reads every column as float64); cells holding the separator, `"`, CR or LF are quoted
/// (RFC 4180); lines end with "\r\n" as Python's csv module writes them on every OS.
///
/// Unlike Keras: columns are the keys actually logged (plus TrainParams::log_keys when known), so
/// a run without validation has no `val_*` columns; a key first logged in a later epoch (e.g. a
/// `val_*` key with validation_freq > 1) widens the header: the file is rewritten atomically with
/// the new column, `NA` in the earlier rows. When the run is resumed (or `append` is set) and the
/// file exists, its header is kept and its rows with epoch >= RunInfo::initial_epoch are dropped
/// (atomic rewrite) before appending, so a resumed run never duplicates a row; a last row cut off
/// by a crash is dropped too. Each row is handed to the OS with one write(2) as soon as it is
/// formatted, so flush() has nothing to do and a killed process loses no row; a failed write is
/// cut back, so the file never ends in a partial row. A rewrite keeps the file's permission bits.
class CsvSink final : public Sink {
public:
    /// @throws InvalidArgument for an empty path or a separator that can appear inside a cell (a
    /// letter, digit, `.`, `+`, `-`, `"`, CR, LF or NUL);
    /// IoError naming the path when it is a directory (EISDIR) or its parent is missing or not a
    /// directory (ENOENT, ENOTDIR).
    explicit CsvSink(CsvOptions options);
    CsvSink(const CsvSink&) = delete;
    CsvSink& operator=(const CsvSink&) = delete;
    ~CsvSink() override = default;

    /// Opens the file: truncates it, or (resumed run or `append`) keeps its header and the rows of
    /// epochs before `info.initial_epoch`. @throws IoError naming the path; FormatError when an
    /// existing file is not a CSV log with `epoch` as its first column.
    TRAINCB_INLINE void begin(const RunInfo& info) override;

    /// Appends the row of `epoch` (widening the header first when `logs` holds a new key).
    /// @throws IoError naming the path (ENOSPC on a full disk); InvalidArgument for a key named
    /// `epoch`; LogicError before begin().
    TRAINCB_INLINE void write_epoch(int epoch, const Logs& logs) override;

    /// Every row is already written with write(2): nothing is buffered here.
    TRAINCB_INLINE void flush() override;

    /// Closes the file. @throws IoError when close(2) reports an error.
    TRAINCB_INLINE void end(const TrainEnd& end) override;

    /// The CSV file.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return opt_.path; }
    /// The header cells (`epoch` first), as written or about to be written.
    [[nodiscard]] std::vector<std::string> columns() const {
        std::vector<std::string> out{"epoch"};
        out.insert(out.end(), header_.begin(), header_.end());
        return out;
    }

private:
    static constexpr const char* kComponent = "CsvSink";

    // Adds a column: in sorted position while the existing columns are sorted (always, for files
    // this sink wrote), else at the end.
    void add_key(const std::string& k);

    void append_header(std::string& out) const;

    void append_row(std::string& out, int epoch, const Logs& logs) const;

    static void append_cells(std::string& out, const std::vector<std::string>& cells, char sep);

    [[noreturn]] void bad_file(const std::string& what) const;

    // Reads the existing file; keeps its header and its rows of epochs < initial_epoch; rewrites
    // it atomically when a row was dropped. `warn_replaced`: an `append` run that is not a resume
    // warns about the complete rows it replaces (a resume replaces them by design, silently).
    void keep_rows_before(int initial_epoch, bool warn_replaced);

    // A key first seen after the header was written: rewrite the file with the new columns (NA in
    // the earlier rows) and this epoch's row, then continue appending to the new file.
    void widen(const std::vector<std::string>& fresh, int epoch, const Logs& logs);

    CsvOptions opt_;
    io::AppendFile file_;
    bool regular_ = true;
    bool header_written_ = false;
    std::vector<std::string> header_;                  // the keys after `epoch`, in file order
    std::vector<std::string> sorted_keys_;             // the same, sorted, for lookups
    std::set<std::string, std::less<>> dropped_keys_;  // new keys a non-regular file cannot take
    std::string line_;                                 // reused row buffer
};

}  // namespace traincb::inline v0::sinks

#if TRAINCB_DEFINITIONS
#include "traincb/sinks/csv-inl.hpp"
#endif
