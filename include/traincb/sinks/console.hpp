#pragma once
/// @file sinks/console.hpp
/// ConsoleSink: Keras's progress output. On a terminal, a progress bar per epoch updated in place;
/// elsewhere (a file, a pipe, CI logs), exactly one line per epoch.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/detail/os.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"
#include "traincb/logs.hpp"
#include "traincb/sinks/sink.hpp"

namespace traincb::inline v0::detail {
/// A value as Keras's Progbar prints it: "%.4f", or "%.4e" when 0 < |v| < 1e-3 (so a tiny
/// learning rate does not print as 0.0000); "nan", "inf", "-inf". The point is '.' whatever the
/// C locale (std::to_chars, not printf).
TRAINCB_INLINE void append_console_value(std::string& out, double v);

/// Keras's display order: `loss` first, then the other training keys sorted; then `val_loss`,
/// then the other `val_*` keys sorted (Logs iterate sorted, so this is one stable partition).
TRAINCB_INLINE void append_console_logs(std::string& out, const Logs& logs);

/// "12s", "1:05", "1:01:05" (Keras's ETA format).
TRAINCB_INLINE std::string format_eta(double seconds);

/// "0.12s" (the epoch's wall time).
TRAINCB_INLINE std::string format_seconds(double seconds);

/// "25ms/step" as Keras's Progbar: s, ms or us per step, no decimals.
TRAINCB_INLINE std::string format_per_step(double seconds);
}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::sinks {

/// How ConsoleSink draws.
enum class ConsoleStyle {
    Auto,         ///< ProgressBar when the stream is std::cout / std::cerr / std::clog on a terminal, else Lines
    ProgressBar,  ///< Keras verbose=1: "Epoch 3/10", then a bar updated in place with '\r'
    Lines,        ///< Keras verbose=2: one line per epoch
};

/// Options of ConsoleSink.
struct ConsoleOptions {
    std::ostream* out = nullptr;              ///< where to write; nullptr means std::cout
    ConsoleStyle style = ConsoleStyle::Auto;  ///< progress bar or one line per epoch
    double updates_per_second = 10;  ///< at most this many bar redraws per second (the last batch always draws)
    int bar_width = 30;              ///< characters between the bar's brackets (Keras's width)
    /// Monotonic seconds; empty means std::chrono::steady_clock. Tests set a fake clock.
    std::function<double()> clock{};
};

/// Prints the run as Keras's progress output. Epochs are 1-based in what it prints ("Epoch 3/10"),
/// as in every Keras message. Lines style (not a terminal), one line per epoch:
///
///     Epoch 3/10 - 0.12s - loss: 0.4321 - accuracy: 0.8800 - val_loss: 0.5000 - val_accuracy: 0.8500
///
/// ProgressBar style (a terminal): "Epoch 3/10", then for each batch (at most
/// `updates_per_second` redraws, so a fast loop pays one clock read per batch)
///
///     12/50 [=====>........................] - ETA: 3s - loss: 0.4321 - accuracy: 0.8800
///
/// redrawn in place with '\r', and at the epoch's end the full bar with the epoch's time and every
/// epoch log (val_* included). Values use "%.4f" ("%.4e" when 0 < |v| < 1e-3). The epoch's time is
/// counted from the end of the previous epoch (or begin()). A RunEvent's message gets a line of its
/// own. At the end it prints "Stopped by EarlyStopping: patience" when a callback stopped training.
class ConsoleSink final : public Sink {
public:
    /// Writes to std::cout, a progress bar when it is a terminal.
    ConsoleSink() : ConsoleSink(ConsoleOptions{}) {}
    /// @throws InvalidArgument when updates_per_second is not > 0 or bar_width is not in [1, 1000].
    explicit ConsoleSink(ConsoleOptions options);

    /// True when drawing a progress bar (which needs the batches).
    [[nodiscard]] TRAINCB_INLINE bool wants_batches() const override;
    /// True when drawing a progress bar, false for one line per epoch.
    [[nodiscard]] bool progress_bar() const noexcept { return progress_; }

    /// Remembers the number of epochs and steps, and starts the first epoch's clock.
    TRAINCB_INLINE void begin(const RunInfo& info) override;

    /// Redraws the progress bar (throttled). @throws IoError when the stream fails.
    TRAINCB_INLINE void write_batch(const BatchInfo& info, const Logs& logs) override;

    /// Prints the epoch's line (or the bar's final state). @throws IoError when the stream fails.
    TRAINCB_INLINE void write_epoch(int epoch, const Logs& logs) override;

    /// Prints the event's message on a line of its own (after an open bar line, which the next
    /// batch redraws below it). @throws IoError when the stream fails.
    TRAINCB_INLINE void write_event(const RunEvent& event) override;

    /// Ends an open bar line, and says why training stopped (or was interrupted).
    /// @throws IoError when the stream fails.
    TRAINCB_INLINE void end(const TrainEnd& end) override;

    /// Flushes the stream. @throws IoError when it fails.
    TRAINCB_INLINE void flush() override;

private:
    static bool stream_is_terminal(const std::ostream& os);

    void append_epoch_title(std::string& out, int epoch) const;

    // "12/50 [=====>........................]" as Keras 2's Progbar (current right-aligned to the
    // width of the target), or "12/Unknown" when the number of steps is not known.
    void append_bar(std::string& out, std::int64_t done, std::int64_t steps) const;

    // Writes text_ over the current bar line: '\r', the text, and spaces over a longer old line.
    void redraw();

    void write_text();

    void check_stream() const;

    ConsoleOptions opt_;
    bool progress_ = false;
    double interval_ = 0.1;
    int epochs_ = 0;
    std::int64_t steps_ = 0;
    int bar_epoch_ = -1;          // the epoch whose bar is on screen
    std::int64_t bar_steps_ = 0;  // its number of steps (0: unknown)
    std::int64_t bar_done_ = 0;   // batches seen in it
    double last_draw_ = -1e300;
    double epoch_start_ = 0;
    bool line_open_ = false;      // a bar line without its '\n' is on screen
    std::size_t prev_width_ = 0;  // width of that line, to blank a longer old one
    std::string text_;            // reused output buffer
};

}  // namespace traincb::inline v0::sinks

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
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
#endif  // TRAINCB_DEFINITIONS
