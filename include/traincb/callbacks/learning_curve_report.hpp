#pragma once
/// @file callbacks/learning_curve_report.hpp
/// LearningCurveReport: one self-contained HTML file (inline SVG and CSS; no script, no network,
/// no external font) with a chart per metric, the best and stopped epochs, learning-rate changes,
/// checkpoint saves and a table of final values. It is rewritten atomically after every epoch of
/// the first 100, then after every ceil(n / 100)-th (n epochs recorded; `write_every` sets a fixed
/// interval) and after every epoch with a new mark (a checkpoint save), so a browser can open it
/// while training runs and a long run does not pay a whole page per epoch; and once more at train
/// end with the stop reason.
///
///     traincb::EarlyStopping es({.monitor = "val_loss", .patience = 10});
///     traincb::LearningCurveReport report({.path = "runs/r1/report.html", .early_stopping = &es});
///     trainer.fit(x, y, {.epochs = 100}, lr_scheduler, es, report);
///
/// Add it after the callbacks that add log keys (schedulers write "learning_rate") and after
/// EarlyStopping, so each epoch's file already shows their results. Epochs are 0-based in the API
/// (mark(), data-epoch attributes) and labelled from 1 in the page, as Keras prints them.
///
/// In data-parallel training (a Communicator with more than one rank) only rank 0 writes; every
/// rank keeps the same state (the recorded epochs, the marks, save_state), so another rank's
/// directory may be missing or read-only.

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/callbacks/early_stopping.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/monitor.hpp"
#include "traincb/detail/os.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/atomic_file.hpp"
#include "traincb/logs.hpp"

namespace traincb::inline v0 {

/// LearningCurveReport's options.
struct LearningCurveReportOptions {
    std::filesystem::path path = "report.html";  ///< the HTML file (missing directories are created)
    std::string title = "traincb run";           ///< page heading and <title>
    /// The EarlyStopping whose best and stopped epochs are marked (it must outlive the report);
    /// null: the best epoch of `monitor` is computed here, and a stop seen at train end is marked.
    const EarlyStopping* early_stopping = nullptr;
    /// The metric whose best epoch is marked when no EarlyStopping is given; "" picks "val_loss"
    /// when it is logged, else "loss".
    std::string monitor{};
    Mode mode = Mode::Auto;  ///< direction of `monitor` (Auto: from the metric's declaration or name)
    std::string learning_rate_key = "learning_rate";  ///< the log key of the learning rate
    /// At most this many learning-rate changes are marked (a scheduler that changes the rate every
    /// epoch would bury the curves); beyond, the learning_rate chart alone shows them.
    int max_lr_markers = 12;
    /// > 0: a <meta http-equiv="refresh"> makes an open browser reload the page every that many
    /// seconds while training runs (removed from the final file). 0: never.
    int refresh_seconds = 0;
    /// How often the page is rewritten while training runs. 0 (adaptive): after each of the first
    /// 100 epochs, then whenever ceil(n / 100) epochs have passed since the last write (n = epochs
    /// recorded), so rewriting costs a bounded amount per epoch however long the run, and the
    /// page is at most 1% of the run behind. N > 0: after every N-th epoch. In both cases also
    /// after an epoch in which mark() was called (a checkpoint save), at train begin, when a
    /// checkpoint's state is loaded, and at train end.
    int write_every = 0;
    /// The key of its state in checkpoints; "" means "LearningCurveReport". Give each of two
    /// reports in one run its own id.
    std::string id{};
};

/// An event drawn as a small marker on the x axis of every chart (a checkpoint save, ...).
struct ReportMark {
    int epoch = 0;        ///< 0-based absolute epoch
    std::string kind{};   ///< "checkpoint" or any word; becomes a CSS class suffix
    std::string label{};  ///< free text (a file path, a note), shown on hover and in the events table
};

namespace detail::lcr {

/// Escapes text for HTML/SVG content and quoted attribute values.
TRAINCB_INLINE std::string escape(std::string_view s);

/// A CSS class suffix made of [a-z0-9-] only (so a kind can never break out of the attribute).
TRAINCB_INLINE std::string css_ident(std::string_view s);

/// `v` with `decimals` digits after the point (std::to_chars: locale-independent, deterministic).
TRAINCB_INLINE std::string fixed(double v, int decimals);

/// `v` with at most `digits` significant digits ("0.3123", "1e-05"); "nan", "inf", "-inf".
TRAINCB_INLINE std::string sig(double v, int digits);

/// Appends every piece to `out` in one pass (no temporary strings).
template <class... Pieces>
void put(std::string& out, const Pieces&... pieces) {
    auto one = [&out](const auto& piece) {
        if constexpr (std::is_same_v<std::decay_t<decltype(piece)>, char>)
            out += piece;
        else
            out.append(std::string_view(piece));
    };
    (one(pieces), ...);
}

/// A pixel coordinate (one decimal is finer than any screen needs and keeps the file small).
inline std::string px(double v) {
    return fixed(v, 1);
}

/// Rough rendered width of `s` at `font_px` (for placing labels without a layout engine).
TRAINCB_INLINE double text_width(std::string_view s, double font_px);

/// Ticks of an axis: the domain [lo, hi] and the labelled values within it.
struct Axis {
    double lo = 0;
    double hi = 1;
    std::vector<double> ticks{};
    std::vector<std::string> labels{};
};

/// A 1, 2 or 5 times a power of ten close to range / target.
TRAINCB_INLINE double nice_step(double range, double target);

/// Round ticks covering [min, max] (Heckbert's "nice numbers"); the domain snaps to them.
TRAINCB_INLINE Axis value_axis(double mn, double mx);

/// Integer ticks for 1-based epoch labels from `first` to `last`.
TRAINCB_INLINE Axis epoch_axis(int first, int last);

}  // namespace detail::lcr

/// Writes a learning-curve report: one self-contained HTML page rewritten atomically as epochs end
/// (see LearningCurveReportOptions::write_every) and at train end. Other callbacks add markers
/// with mark() (example_breast_cancer marks ModelCheckpoint's saves as "checkpoint" from a
/// LambdaCallback). Resumable: a full checkpoint holds its marks, and takes its epochs and values
/// from the run's History (state_key()), so a resumed run's page shows the whole run,
/// byte-identical to an uninterrupted one (the page holds no time). In data-parallel training (a
/// Communicator with more than one rank) only rank 0 writes; every rank keeps the same state.
/// @code
/// traincb::LearningCurveReport report({.path = "report.html", .title = "mnist mlp", .early_stopping = &es});
/// @endcode
class LearningCurveReport final : public Callback {
public:
    /// @throws InvalidArgument for an empty path, a path ending in a separator, an empty
    /// learning_rate_key, or a negative max_lr_markers, refresh_seconds or write_every.
    /// @throws IoError naming the path when it is a directory or an ancestor is a regular file.
    explicit LearningCurveReport(LearningCurveReportOptions options = {});

    /// The options it was built with.
    [[nodiscard]] const LearningCurveReportOptions& options() const noexcept { return opt_; }
    /// The markers added with mark(), in the order they were added.
    [[nodiscard]] const std::vector<ReportMark>& marks() const noexcept { return marks_; }
    /// The 0-based epochs recorded in this run.
    [[nodiscard]] const std::vector<int>& epochs() const noexcept { return epochs_; }
    /// Number of times this process wrote the file in this run (0 on ranks other than 0 of a
    /// data-parallel run, which only record).
    [[nodiscard]] int writes() const noexcept { return writes_; }

    /// Adds a marker at 0-based `epoch` (shown from the next write on; on_train_begin forgets the
    /// previous run's, load_state restores a checkpoint's), e.g. `report.mark(epoch, "checkpoint", path)`.
    /// @throws InvalidArgument for a negative epoch or an empty kind.
    void mark(int epoch, std::string kind, std::string label);

    /// The page as it would be written now (deterministic: the same calls give the same bytes).
    [[nodiscard]] std::string render() const;

    /// Writes render() to the path atomically (temporary file, fsync, rename), keeping the
    /// permission bits of the file it replaces. The hooks call it on rank 0 only; a direct call
    /// writes on any rank.
    /// @throws IoError naming the path; the previous file is then left intact
    void write();

    /// "LearningCurveReport" (starts its error messages).
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;

    /// Forgets the previous run, resolves the monitor's direction and writes a first (empty)
    /// page, so a bad path fails before the first epoch (rank 0 only, here and in every hook).
    /// @throws InvalidArgument when an explicit monitor's direction cannot be inferred
    /// @throws IoError naming the path
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;

    /// Records the epoch's logs and rewrites the file when it is due (see
    /// LearningCurveReportOptions::write_every). @throws IoError naming the path
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;

    /// Rewrites the file with how training ended (kind, source, reason). Keys that callbacks
    /// after this one added to the last epoch's logs are merged in first.
    /// @throws IoError naming the path
    TRAINCB_INLINE void on_train_end(Context& ctx) override;

    /// The explicit id, else "LearningCurveReport".
    [[nodiscard]] TRAINCB_INLINE std::string state_key() const override;
    /// Writes the marks and how to rebuild the recorded epochs and values (version 2). The values
    /// that the run's History holds bit for bit (every logged key, normally) are not stored
    /// again: the state names their keys and the History rows they are ("history": {"offset",
    /// "keys"}). A key absent in some epoch, or whose value differs from the History's, keeps its
    /// own column as two tensors, "values/<key>" (F64) and "present/<key>" (U8, 0 where absent);
    /// without a History (a hand-written loop without CallbackList::set_history) every column is
    /// stored so, with the epochs in the tensor "epochs" (I64).
    TRAINCB_INLINE void save_state(CallbackState& state) const override;
    /// Restores what save_state wrote (version 2, or version 1: every value as JSON) after
    /// on_train_begin of a resumed run, taking the shared values from ctx.history() (which the
    /// Trainer has restored from the same checkpoint), and rewrites the page, which then shows
    /// the whole run so far.
    /// @throws FormatError for another version, a malformed field or tensor, or a History that
    /// lacks the rows or keys the state names (the report is then unchanged); IoError naming the
    /// path
    TRAINCB_INLINE void load_state(const CallbackState& state, Context& ctx) override;

private:
    static constexpr int kStateVersion = 2;
    // The adaptive write interval is ceil(epochs recorded / this).
    static constexpr std::size_t kAdaptiveWrites = 100;

    using Column = std::vector<std::optional<double>>;
    using Columns = std::map<std::string, Column, std::less<>>;
    struct Parsed {
        std::vector<int> epochs;
        Columns cols;
    };

    // The field `key` of a state, an object or an array. @throws FormatError
    static const nlohmann::json& field(const nlohmann::json& j, const char* key, bool want_object,
                                       const std::string& c);
    // An epoch (an integer in [0, INT_MAX]). @throws FormatError naming `where`
    static int epoch_of(const nlohmann::json& e, const std::string& where, const std::string& c);
    // A count (an integer >= 0). @throws FormatError naming it
    static std::size_t count_of(const nlohmann::json& j, const char* key, const std::string& c);

    // Version 1: the epochs and every column as JSON (values as strings, null where absent).
    static Parsed parse_v1(const nlohmann::json& j, const std::string& c);

    // Version 2: shared columns from the History, the others (and, without a History, the
    // epochs) from tensors.
    static Parsed parse_v2(const CallbackState& state, const History* h, const std::string& c);

    // True when `v` is the History's value of `key` at `row`, bit for bit.
    static bool same_as_history(const std::optional<double>& v, const History& h, std::string_view key,
                                std::size_t row);
    // Compares the epochs recorded since the last call with the run's History (which records an
    // epoch after every on_epoch_end, before any checkpoint of it is taken), so that a checkpoint
    // can take the values from the History instead of storing them a second time: a key whose
    // value differs, or that was absent, keeps its own column. O(keys) per new epoch.
    void sync_history() const;
    // After a load: the report's epochs are the last rows of `h` (when it has them); each key
    // whose column differs from the History's keeps its own column in later checkpoints.
    void link_history(const History* h);

    // A double written by detail::format_double ("nan", "inf" included); nullopt if it is not one.
    static std::optional<double> parse(const std::string& s) { return detail::parse_double(s); }

    // A vertical line across every chart: best, stopped, learning-rate change.
    struct Event {
        int epoch = 0;
        std::string cls{};
        std::string label{};
        std::string tip{};
        double x = 0;   // centre of the plot line
        double lx = 0;  // centre of the label, shifted to stay inside the chart
        int lane = 0;   // label row above the plot
    };
    struct Group {
        std::string base{};
        std::string train{};  // "" when absent
        std::string val{};    // "" when absent
    };
    struct Best {
        std::string key{};
        int epoch = 0;
        double value = 0;
    };

    static constexpr double kWidth = 560;
    static constexpr double kLeft = 62;
    static constexpr double kRight = 18;
    static constexpr double kPlotH = 190;
    static constexpr double kBottom = 40;
    static constexpr double kTitleH = 28;
    static constexpr double kLaneH = 14;
    static constexpr int kMaxLanes = 4;

    // write() on rank 0; another rank of a data-parallel run only advances the bookkeeping of
    // what was written, so that every rank decides the same writes.
    void write_on_primary(Context& ctx);

    void probe_path() const;

    void record(int epoch, const Logs& logs);

    [[nodiscard]] std::string monitor_key() const;

    [[nodiscard]] std::optional<Best> best() const;

    struct Stop {
        int epoch = 0;
        std::string word{};    // "stopped", "exception", "interrupted"
        std::string reason{};  // "patience", the exception's message, ...
    };
    // The stopped epoch, from EarlyStopping, else from a run that did not complete.
    [[nodiscard]] std::optional<Stop> stopped() const;

    // Epochs where the learning rate differs from the previous logged value, with both values.
    [[nodiscard]] std::vector<std::pair<int, std::pair<double, double>>> lr_changes() const;

    [[nodiscard]] std::vector<Group> groups() const;

    [[nodiscard]] double x_of(double epoch1, const detail::lcr::Axis& ax) const {
        return kLeft + (epoch1 - ax.lo) / (ax.hi - ax.lo) * (kWidth - kLeft - kRight);
    }

    // Places event labels in rows above the plots so that none overlaps another.
    static int layout_lanes(std::vector<Event>& events);

    void render_chart(std::string& o, const Group& g, const detail::lcr::Axis& xa, const std::vector<Event>& events,
                      int lanes, const std::optional<Best>& best_mark) const;

    LearningCurveReportOptions opt_;
    std::vector<int> epochs_{};
    Columns cols_{};
    std::vector<ReportMark> marks_{};
    // How a checkpoint can take the values from the run's History (ctx.history(), read from
    // on_train_begin to on_train_end): the report's rows are its rows history_offset_..
    // (linked_), checked up to verified_; the keys in own_ differ from it.
    const History* history_ = nullptr;
    mutable bool linked_ = false;
    std::size_t history_offset_ = 0;
    mutable std::size_t verified_ = 0;
    mutable std::set<std::string, std::less<>> own_{};
    // What the last write showed (the cadence counts from it).
    std::size_t written_rows_ = 0;
    std::size_t written_marks_ = 0;
    std::vector<std::pair<std::string, Direction>> declared_{};
    std::optional<Direction> dir_{};
    int total_epochs_ = 0;
    bool ended_ = false;
    TrainEnd end_{};
    int writes_ = 0;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/callbacks/learning_curve_report-inl.hpp"
#endif
