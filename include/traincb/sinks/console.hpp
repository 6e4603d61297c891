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
#include "traincb/sinks/console-inl.hpp"
#endif
