#pragma once
// The bodies of traincb/sinks/json_lines.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/sinks/json_lines.hpp"

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
