#pragma once
// The bodies of traincb/sinks/console.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/sinks/console.hpp"

namespace traincb::inline v0::detail {

TRAINCB_INLINE void append_console_value(std::string& out, double v) {
    const bool tiny = v != 0 && std::fabs(v) < 1e-3;
    append_fixed(out, v, 4, tiny);
}

TRAINCB_INLINE void append_console_logs(std::string& out, const Logs& logs) {
    auto emit = [&](const std::string& k, double v) {
        out += " - ";
        out += k;
        out += ": ";
        append_console_value(out, v);
    };
    for (int pass = 0; pass < 2; ++pass) {
        const std::string_view first = pass == 0 ? "loss" : "val_loss";
        if (const double* v = logs.find(first)) emit(std::string(first), *v);
        for (const auto& [k, v] : logs) {
            if (k.starts_with("val_") != (pass == 1) || k == first) continue;
            emit(k, v);
        }
    }
}

TRAINCB_INLINE std::string format_eta(double seconds) {
    const auto s = static_cast<long long>(seconds);
    char buf[48];
    if (s > 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s % 3600) / 60, s % 60);
    else if (s > 60)
        std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%llds", s);
    return buf;
}

TRAINCB_INLINE std::string format_seconds(double seconds) {
    return format_fixed(seconds, 2) + "s";
}

TRAINCB_INLINE std::string format_per_step(double seconds) {
    if (seconds >= 1) return format_fixed(seconds, 0) + "s/step";
    if (seconds >= 1e-3) return format_fixed(seconds * 1e3, 0) + "ms/step";
    return format_fixed(seconds * 1e6, 0) + "us/step";
}

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::sinks {

TRAINCB_INLINE ConsoleSink::ConsoleSink(ConsoleOptions options) : opt_(std::move(options)) {
    if (!(opt_.updates_per_second > 0) || !std::isfinite(opt_.updates_per_second))
        throw InvalidArgument("traincb: ConsoleSink: updates_per_second is " +
                              traincb::detail::format_double(opt_.updates_per_second) +
                              "; it must be a finite number > 0 (10 is "
                              "Keras-like)");
    if (opt_.bar_width < 1 || opt_.bar_width > 1000)
        throw InvalidArgument("traincb: ConsoleSink: bar_width is " + std::to_string(opt_.bar_width) +
                              "; it must be in [1, 1000] (Keras uses 30)");
    if (opt_.out == nullptr) opt_.out = &std::cout;
    if (!opt_.clock)
        opt_.clock = [] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
        };
    progress_ =
        opt_.style == ConsoleStyle::ProgressBar || (opt_.style == ConsoleStyle::Auto && stream_is_terminal(*opt_.out));
    interval_ = 1.0 / opt_.updates_per_second;
}

TRAINCB_INLINE bool ConsoleSink::wants_batches() const {
    return progress_;
}

TRAINCB_INLINE void ConsoleSink::begin(const RunInfo& info) {
    epochs_ = info.params.epochs;
    steps_ = info.params.steps_per_epoch;
    bar_epoch_ = -1;
    line_open_ = false;
    prev_width_ = 0;
    epoch_start_ = opt_.clock();
}

TRAINCB_INLINE void ConsoleSink::write_batch(const BatchInfo& info, const Logs& logs) {
    if (!progress_) return;
    const double now = opt_.clock();
    const std::int64_t steps = info.steps_per_epoch > 0 ? info.steps_per_epoch : steps_;
    const std::int64_t done = static_cast<std::int64_t>(info.batch) + 1;
    if (info.epoch != bar_epoch_) {
        bar_epoch_ = info.epoch;
        last_draw_ = -1e300;
        text_.clear();
        if (line_open_) text_ += '\n';
        append_epoch_title(text_, info.epoch);
        text_ += '\n';
        write_text();
        line_open_ = false;
        prev_width_ = 0;
    } else if (now - last_draw_ < interval_ && done != steps) {
        return;
    }
    last_draw_ = now;
    bar_steps_ = steps;
    bar_done_ = done;
    text_.clear();
    append_bar(text_, done, steps);
    const double elapsed = now - epoch_start_;
    if (steps > 0 && done < steps) {
        text_ += " - ETA: ";
        text_ += traincb::detail::format_eta(elapsed / static_cast<double>(done) * static_cast<double>(steps - done));
    } else {
        text_ += " - ";
        text_ += traincb::detail::format_seconds(elapsed);
    }
    traincb::detail::append_console_logs(text_, logs);
    redraw();
}

TRAINCB_INLINE void ConsoleSink::write_epoch(int epoch, const Logs& logs) {
    const double now = opt_.clock();
    const double elapsed = now - epoch_start_;
    text_.clear();
    if (progress_ && bar_epoch_ == epoch) {
        const std::int64_t steps = bar_steps_ > 0 ? bar_steps_ : bar_done_;
        append_bar(text_, steps, steps);
        text_ += " - ";
        text_ += traincb::detail::format_seconds(elapsed);
        text_ += ' ';
        text_ += traincb::detail::format_per_step(elapsed / static_cast<double>(bar_done_ > 0 ? bar_done_ : 1));
        traincb::detail::append_console_logs(text_, logs);
        redraw();
        text_.assign("\n");
    } else {
        if (line_open_) text_ += '\n';
        append_epoch_title(text_, epoch);
        text_ += " - ";
        text_ += traincb::detail::format_seconds(elapsed);
        traincb::detail::append_console_logs(text_, logs);
        text_ += '\n';
    }
    write_text();
    line_open_ = false;
    prev_width_ = 0;
    epoch_start_ = now;  // the next epoch's clock starts here (sinks see no epoch begin)
}

TRAINCB_INLINE void ConsoleSink::write_event(const RunEvent& event) {
    text_.clear();
    if (line_open_) text_ += '\n';
    text_ += event.message;
    text_ += '\n';
    write_text();
    line_open_ = false;
    prev_width_ = 0;
    last_draw_ = -1e300;
}

TRAINCB_INLINE void ConsoleSink::end(const TrainEnd& end) {
    text_.clear();
    if (line_open_) text_ += '\n';
    line_open_ = false;
    if (end.kind == EndKind::Stopped || end.kind == EndKind::Interrupted) {
        text_ += end.kind == EndKind::Stopped ? "Stopped" : "Interrupted";
        if (!end.source.empty()) {
            text_ += " by ";
            text_ += end.source;
        }
        if (!end.reason.empty()) {
            text_ += ": ";
            text_ += end.reason;
        }
        text_ += '\n';
    }
    if (!text_.empty()) write_text();
}

TRAINCB_INLINE void ConsoleSink::flush() {
    opt_.out->flush();
    check_stream();
}

TRAINCB_INLINE bool ConsoleSink::stream_is_terminal(const std::ostream& os) {
    if (&os == &std::cout) return traincb::detail::os::std_stream_is_terminal(false);
    if (&os == &std::cerr || &os == &std::clog) return traincb::detail::os::std_stream_is_terminal(true);
    return false;
}

TRAINCB_INLINE void ConsoleSink::append_epoch_title(std::string& out, int epoch) const {
    out += "Epoch ";
    out += std::to_string(epoch + 1);
    if (epochs_ > 0) {
        out += '/';
        out += std::to_string(epochs_);
    }
}

TRAINCB_INLINE void ConsoleSink::append_bar(std::string& out, std::int64_t done, std::int64_t steps) const {
    const std::string target = std::to_string(steps);
    const std::string current = std::to_string(done);
    if (steps <= 0) {
        out += current;
        out += "/Unknown";
        return;
    }
    if (current.size() < target.size()) out.append(target.size() - current.size(), ' ');
    out += current;
    out += '/';
    out += target;
    out += " [";
    const int width = opt_.bar_width;
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(steps));
    const int filled = static_cast<int>(width * frac);
    if (filled > 0) {
        out.append(static_cast<std::size_t>(filled - 1), '=');
        out += done < steps ? '>' : '=';
    }
    out.append(static_cast<std::size_t>(width - filled), '.');
    out += ']';
}

TRAINCB_INLINE void ConsoleSink::redraw() {
    const std::size_t width = text_.size();
    if (width < prev_width_) text_.append(prev_width_ - width, ' ');
    text_.insert(text_.begin(), '\r');
    prev_width_ = width;
    write_text();
    line_open_ = true;
}

TRAINCB_INLINE void ConsoleSink::write_text() {
    errno = 0;
    opt_.out->write(text_.data(), static_cast<std::streamsize>(text_.size()));
    opt_.out->flush();
    check_stream();
}

TRAINCB_INLINE void ConsoleSink::check_stream() const {
    if (opt_.out->good()) return;
    const int err = errno != 0 ? errno : EIO;
    const char* name = opt_.out == &std::cout                               ? "<stdout>"
                       : (opt_.out == &std::cerr || opt_.out == &std::clog) ? "<stderr>"
                                                                            : "<stream>";
    throw IoError("ConsoleSink", "cannot write to", name, err);
}

}  // namespace traincb::inline v0::sinks
