#pragma once
// The bodies of traincb/sinks/csv.hpp's non-template functions: included at the end of that header
// when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/sinks/csv.hpp"

namespace traincb::inline v0::detail {

TRAINCB_INLINE void append_csv_cell(std::string& out, std::string_view cell, char separator) {
    bool quote = false;
    for (char c : cell) quote = quote || c == separator || c == '"' || c == '\r' || c == '\n';
    if (!quote) {
        out.append(cell);
        return;
    }
    out += '"';
    for (char c : cell) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

TRAINCB_INLINE CsvRecords parse_csv(std::string_view text, char separator, const std::filesystem::path& path,
                                    const char* component) {
    CsvRecords out;
    std::vector<std::string> record;
    std::string cell;
    std::size_t i = 0;
    std::size_t line = 1;
    bool in_record = false;
    while (i < text.size()) {
        in_record = true;
        const char c = text[i];
        if (c == '"' && cell.empty()) {
            // a quoted cell: runs to the closing quote ("" inside is one quote)
            std::size_t j = i + 1;
            bool closed = false;
            while (j < text.size()) {
                if (text[j] == '"') {
                    if (j + 1 < text.size() && text[j + 1] == '"') {
                        cell += '"';
                        j += 2;
                        continue;
                    }
                    closed = true;
                    ++j;
                    break;
                }
                if (text[j] == '\n') ++line;
                cell += text[j++];
            }
            if (!closed) {
                // cut off inside a quoted cell: an unterminated last record
                record.push_back(std::move(cell));
                out.records.push_back(std::move(record));
                out.last_terminated = false;
                return out;
            }
            if (j < text.size() && text[j] != separator && text[j] != '\r' && text[j] != '\n')
                throw FormatError("traincb: " + std::string(component) + ": '" + path.string() + "' line " +
                                  std::to_string(line) +
                                  ": text after a closing quote; the file is not a CSV log, delete it or choose "
                                  "another path");
            i = j;
            continue;
        }
        if (c == separator) {
            record.push_back(std::move(cell));
            cell.clear();
            ++i;
            continue;
        }
        if (c == '\r' || c == '\n') {
            record.push_back(std::move(cell));
            cell.clear();
            out.records.push_back(std::move(record));
            record.clear();
            in_record = false;
            ++line;
            i += (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ? 2 : 1;
            continue;
        }
        cell += c;
        ++i;
    }
    if (in_record) {
        record.push_back(std::move(cell));
        out.records.push_back(std::move(record));
        out.last_terminated = false;
    }
    return out;
}

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::sinks {

TRAINCB_INLINE CsvSink::CsvSink(CsvOptions options) : opt_(std::move(options)) {
    if (opt_.path.empty())
        throw InvalidArgument("traincb: CsvSink: path is empty; set CsvOptions::path to the CSV file to write");
    const char sep = opt_.separator;
    const bool alnum = (sep >= '0' && sep <= '9') || (sep >= 'a' && sep <= 'z') || (sep >= 'A' && sep <= 'Z');
    if (alnum || sep == '"' || sep == '\r' || sep == '\n' || sep == '.' || sep == '+' || sep == '-' || sep == '\0')
        throw InvalidArgument(std::string("traincb: CsvSink: separator '") + sep +
                              "' can appear in a number, NA or a quoted cell; use ',', ';', '\\t' or '|'");
    traincb::detail::logfile::check_log_path(opt_.path, kComponent);
}

TRAINCB_INLINE void CsvSink::begin(const RunInfo& info) {
    file_.reset();
    header_.clear();
    sorted_keys_.clear();
    header_written_ = false;
    dropped_keys_.clear();
    const traincb::detail::logfile::FileKind kind = traincb::detail::logfile::file_kind(opt_.path, kComponent);
    regular_ = kind != traincb::detail::logfile::FileKind::Other;
    if (!opt_.append && !info.resumed) {
        file_ = io::AppendFile(opt_.path, kComponent, io::AppendMode::Truncate);
        for (const auto& k : info.params.log_keys) add_key(k);
        return;
    }
    if (kind == traincb::detail::logfile::FileKind::Regular) keep_rows_before(info.initial_epoch, !info.resumed);
    file_ = io::AppendFile(opt_.path, kComponent, io::AppendMode::Append);
    if (!header_written_)
        for (const auto& k : info.params.log_keys) add_key(k);
}

TRAINCB_INLINE void CsvSink::write_epoch(int epoch, const Logs& logs) {
    if (!file_.is_open())
        throw LogicError(
            "traincb: CsvSink: write_epoch() before begin(); call MetricLogger's on_train_begin "
            "(or Sink::begin) first");
    std::vector<std::string> fresh;
    for (const auto& kv : logs) {
        if (kv.first == "epoch")
            throw InvalidArgument(
                "traincb: CsvSink: the logs hold a key 'epoch', which would clash with the "
                "epoch column; rename that metric");
        if (!std::binary_search(sorted_keys_.begin(), sorted_keys_.end(), kv.first) &&
            !dropped_keys_.contains(kv.first))
            fresh.push_back(kv.first);
    }
    if (!fresh.empty()) {
        if (!header_written_) {
            for (const auto& k : fresh) add_key(k);
        } else if (regular_) {
            widen(fresh, epoch, logs);
            return;
        } else {
            for (const auto& k : fresh) {
                warn("traincb: CsvSink: '" + opt_.path.string() + "' is not a regular file, so its header " +
                     "cannot be rewritten; the new key '" + k + "' is not written");
                dropped_keys_.insert(k);
            }
        }
    }
    line_.clear();
    if (!header_written_) append_header(line_);
    append_row(line_, epoch, logs);
    file_.write(line_);
    header_written_ = true;
}

TRAINCB_INLINE void CsvSink::flush() {}

TRAINCB_INLINE void CsvSink::end(const TrainEnd& end) {
    (void)end;
    file_.close();
}

TRAINCB_INLINE void CsvSink::add_key(const std::string& k) {
    if (k == "epoch" || std::binary_search(sorted_keys_.begin(), sorted_keys_.end(), k)) return;
    const bool sorted = std::is_sorted(header_.begin(), header_.end());
    sorted_keys_.insert(std::lower_bound(sorted_keys_.begin(), sorted_keys_.end(), k), k);
    if (sorted)
        header_.insert(std::lower_bound(header_.begin(), header_.end(), k), k);
    else
        header_.push_back(k);
}

TRAINCB_INLINE void CsvSink::append_header(std::string& out) const {
    out += "epoch";
    for (const auto& k : header_) {
        out += opt_.separator;
        traincb::detail::append_csv_cell(out, k, opt_.separator);
    }
    out += "\r\n";
}

TRAINCB_INLINE void CsvSink::append_row(std::string& out, int epoch, const Logs& logs) const {
    char buf[16];
    const auto r = std::to_chars(buf, buf + sizeof buf, epoch);
    out.append(buf, r.ptr);
    for (const auto& k : header_) {
        out += opt_.separator;
        if (const double* v = logs.find(k))
            traincb::detail::append_python_float(out, *v);
        else
            out += "NA";
    }
    out += "\r\n";
}

TRAINCB_INLINE void CsvSink::append_cells(std::string& out, const std::vector<std::string>& cells, char sep) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
        if (i) out += sep;
        traincb::detail::append_csv_cell(out, cells[i], sep);
    }
    out += "\r\n";
}

TRAINCB_INLINE void CsvSink::bad_file(const std::string& what) const {
    throw FormatError("traincb: CsvSink: '" + opt_.path.string() + "' " + what +
                      "; it is not a CSV log this sink can continue: delete it, move it, or choose another path");
}

TRAINCB_INLINE void CsvSink::keep_rows_before(int initial_epoch, bool warn_replaced) {
    std::size_t replaced = 0;
    const std::string text = io::read_text_file(opt_.path, kComponent);
    if (text.empty()) return;
    auto parsed = traincb::detail::parse_csv(text, opt_.separator, opt_.path, kComponent);
    auto& recs = parsed.records;
    if (recs.size() == 1 && !parsed.last_terminated && std::string_view("epoch").starts_with(recs[0][0])) {
        // the first write (header and first row together) was cut off by a crash: start afresh
        traincb::detail::logfile::rewrite(opt_.path, "", kComponent);
        return;
    }
    if (recs.empty() || recs.front().empty() || recs.front().front() != "epoch")
        bad_file("does not start with an 'epoch' column");
    const std::vector<std::string> header = recs.front();
    bool changed = false;
    std::string kept;
    append_cells(kept, header, opt_.separator);
    for (std::size_t i = 1; i < recs.size(); ++i) {
        if (i + 1 == recs.size() && !parsed.last_terminated) {
            changed = true;  // a row cut off by a crash
            break;
        }
        const auto& row = recs[i];
        if (row.size() != header.size())
            bad_file("row " + std::to_string(i) + " has " + std::to_string(row.size()) + " fields but the header has " +
                     std::to_string(header.size()));
        int e = 0;
        const auto& cell = row.front();
        const auto r = std::from_chars(cell.data(), cell.data() + cell.size(), e);
        if (r.ec != std::errc{} || r.ptr != cell.data() + cell.size())
            bad_file("row " + std::to_string(i) + " has the epoch '" + cell + "', not an integer");
        if (e >= initial_epoch) {
            changed = true;
            ++replaced;
            continue;
        }
        append_cells(kept, row, opt_.separator);
    }
    if (changed) traincb::detail::logfile::rewrite(opt_.path, kept, kComponent);
    if (warn_replaced && replaced > 0)
        traincb::detail::logfile::warn_replaced(kComponent, opt_.path, replaced, initial_epoch);
    for (std::size_t i = 1; i < header.size(); ++i) {
        header_.push_back(header[i]);
        sorted_keys_.insert(std::lower_bound(sorted_keys_.begin(), sorted_keys_.end(), header[i]), header[i]);
    }
    header_written_ = true;
}

TRAINCB_INLINE void CsvSink::widen(const std::vector<std::string>& fresh, int epoch, const Logs& logs) {
    const std::string text = io::read_text_file(opt_.path, kComponent);
    const auto parsed = traincb::detail::parse_csv(text, opt_.separator, opt_.path, kComponent);
    std::vector<std::string> old_header{"epoch"};
    old_header.insert(old_header.end(), header_.begin(), header_.end());
    for (const auto& k : fresh) add_key(k);
    // where each new-header column was in the old rows (npos: new, NA)
    std::vector<std::size_t> from;
    from.push_back(0);
    for (const auto& k : header_) {
        const auto it = std::find(old_header.begin(), old_header.end(), k);
        from.push_back(it == old_header.end() ? std::string::npos : static_cast<std::size_t>(it - old_header.begin()));
    }
    std::string out;
    append_header(out);
    const auto& recs = parsed.records;
    for (std::size_t i = 1; i < recs.size(); ++i) {
        if (i + 1 == recs.size() && !parsed.last_terminated) break;
        std::vector<std::string> cells;
        cells.reserve(from.size());
        for (std::size_t f : from) cells.push_back(f < recs[i].size() ? recs[i][f] : std::string("NA"));
        append_cells(out, cells, opt_.separator);
    }
    append_row(out, epoch, logs);
    file_.close();
    traincb::detail::logfile::rewrite(opt_.path, out, kComponent);
    file_ = io::AppendFile(opt_.path, kComponent, io::AppendMode::Append);
}

}  // namespace traincb::inline v0::sinks
