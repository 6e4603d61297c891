#pragma once
/// @file sinks/tensorboard.hpp
/// TensorBoard event files without protobuf or TensorFlow: a low-level EventWriter (one event
/// file in one run directory) and TensorBoardSink, which lays the logs out as Keras's
/// TensorBoard callback does (`<log_dir>/train` and `<log_dir>/validation`, tags `epoch_<name>`).
///
/// Scalars are written as `simple_value`, a float32: TensorBoard's legacy loader, its Rust
/// loader and pandas-export scripts all read that. The double a metric holds is rounded to the
/// nearest float32 (about 7 significant digits; magnitudes beyond 3.4e38 become +-inf), so a
/// value read back from TensorBoard can differ from the one in History in the 8th digit.
///
/// Files are written through io::AppendFile (the FileOps seam of detail/os.hpp). Not
/// thread-safe: use one writer from one thread.

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "traincb/detail/config.hpp"
#include "traincb/detail/crc32c.hpp"
#include "traincb/detail/os.hpp"
#include "traincb/detail/protobuf_wire.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/atomic_file.hpp"
#include "traincb/logs.hpp"
#include "traincb/sinks/sink.hpp"

namespace traincb::inline v0 {

namespace tensorboard {
/// A wall-clock source: seconds since the Unix epoch, fractional (inject a fixed one in tests).
using Clock = std::function<double()>;
}  // namespace tensorboard

namespace detail::tb {

static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "TensorBoard events store IEEE-754 floats and doubles");

inline constexpr std::string_view component = "TensorBoard";
inline constexpr std::string_view file_version = "brain.Event:2";
inline constexpr std::string_view file_prefix = "events.out.tfevents.";
// Pending records are written once they pass this size even between flushes, so a long epoch
// with per-batch scalars never holds more than this in memory.
inline constexpr std::size_t write_threshold = std::size_t{64} * 1024;

// Field numbers, from tensorboard/compat/proto/{event,summary}.proto.
inline constexpr std::uint32_t event_wall_time = 1;
inline constexpr std::uint32_t event_step = 2;
inline constexpr std::uint32_t event_file_version = 3;
inline constexpr std::uint32_t event_summary = 5;
inline constexpr std::uint32_t event_session_log = 7;
inline constexpr std::uint32_t event_source_metadata = 10;
inline constexpr std::uint32_t summary_value = 1;
inline constexpr std::uint32_t value_tag = 1;
inline constexpr std::uint32_t value_simple_value = 2;
inline constexpr std::uint32_t session_log_status = 1;
inline constexpr std::uint32_t session_log_start = 1;
inline constexpr std::uint32_t source_metadata_writer = 1;

/// Seconds since the Unix epoch from the system clock, with sub-second precision.
TRAINCB_INLINE double system_wall_time();

/// `v` rounded to the nearest float32 (IEEE round-to-nearest-even), with out-of-range magnitudes
/// mapped to FLT_MAX or +-inf explicitly: a plain cast of such a double is undefined behaviour.
[[nodiscard]] TRAINCB_INLINE float to_float32(double v) noexcept;

/// True when `s` is well-formed UTF-8 (protobuf rejects a `string` field that is not).
[[nodiscard]] TRAINCB_INLINE bool is_valid_utf8(std::string_view s) noexcept;

// Event fields 1 and 2. Defaults are omitted, as proto3's canonical serializer omits them, so
// the bytes equal Python's SerializeToString().
TRAINCB_INLINE void put_event_header(std::string& out, double wall_time, std::int64_t step);

/// Appends the Event `{wall_time, file_version: "brain.Event:2", source_metadata{writer}}` that
/// starts every file (source_metadata is left out when `writer` is empty).
TRAINCB_INLINE void encode_file_version_event(std::string& out, double wall_time, std::string_view writer);

/// Appends the Event `{wall_time, step, summary{value{tag, simple_value}}}`.
TRAINCB_INLINE void encode_scalar_event(std::string& out, double wall_time, std::int64_t step, std::string_view tag,
                                        float value);

/// Appends the Event `{wall_time, step, session_log{status: START}}`.
TRAINCB_INLINE void encode_session_start_event(std::string& out, double wall_time, std::int64_t step);

/// Appends one TFRecord: uint64 length, masked CRC-32C of those 8 bytes, the payload, masked
/// CRC-32C of the payload (all little-endian).
TRAINCB_INLINE void append_record(std::string& out, std::string_view payload);

/// "events.out.tfevents.<10-digit secs>.<host>.<pid>.<counter><suffix>", TensorBoard's and
/// PyTorch's convention.
[[nodiscard]] TRAINCB_INLINE std::string event_file_name(std::int64_t secs, std::string_view host, std::int64_t pid,
                                                         std::uint64_t counter, std::string_view suffix);

/// The timestamp of a conventional event file name, or nullopt for any other name.
[[nodiscard]] TRAINCB_INLINE std::optional<std::int64_t> event_file_secs(std::string_view name);

/// This machine's host name, for the file name ("localhost" if it cannot be read).
[[nodiscard]] TRAINCB_INLINE std::string host_name();

/// A process-wide counter, so two writers created in the same second get different names.
TRAINCB_INLINE std::atomic<std::uint64_t>& file_counter();

}  // namespace detail::tb

namespace tensorboard {

/// Options of EventWriter.
struct EventWriterOptions {
    std::string filename_suffix{};        ///< appended to the generated file name; must not contain '/'
    std::string writer_name = "traincb";  ///< source_metadata.writer of the first event ("" leaves it out)
    Clock clock{};                        ///< wall-time source; empty means the system clock
};

/// Writes one TensorBoard event file in a run directory: a new file per writer (never appending
/// to an old one), named `events.out.tfevents.<10-digit unix secs>.<host>.<pid>.<counter><suffix>`,
/// whose first record is `file_version = "brain.Event:2"`. Records are buffered whole and reach
/// the file at flush(), close(), destruction, or once 64 KiB are pending; a failed write is cut
/// back to the last whole record, so the file never ends in a torn record.
class EventWriter {
public:
    /// Creates `run_dir` if needed and a new event file in it, and writes the file_version event.
    /// The name's timestamp is raised past that of any event file already in `run_dir` that
    /// would sort after it: TensorBoard's legacy loader reads a run's files in name order and
    /// only watches the last one.
    /// @throws InvalidArgument if `run_dir` is empty or the suffix contains '/'.
    /// @throws IoError naming the path and the OS error if the directory or file cannot be made.
    explicit EventWriter(const std::filesystem::path& run_dir, EventWriterOptions options = {});

    /// Flushes and closes; a failure is reported through traincb::warn (destructors do not throw).
    ~EventWriter();

    /// Takes over `other`'s file; `other` is left closed.
    EventWriter(EventWriter&& other) noexcept
        : options_(std::move(other.options_)),
          path_(std::move(other.path_)),
          pending_(std::move(other.pending_)),
          file_(std::move(other.file_)) {}

    /// Closes this writer's file (warning on failure), then takes over `other`'s.
    EventWriter& operator=(EventWriter&& other) noexcept;

    EventWriter(const EventWriter&) = delete;
    EventWriter& operator=(const EventWriter&) = delete;

    /// Adds `{step, summary{value{tag, simple_value}}}`; `value` is rounded to float32 (see the
    /// file comment). `wall_time` defaults to the writer's clock.
    /// @throws InvalidArgument if `tag` is empty or not UTF-8; LogicError if the writer is closed;
    /// IoError if writing the pending records fails.
    void add_scalar(std::string_view tag, std::int64_t step, double value,
                    std::optional<double> wall_time = std::nullopt);

    /// Adds `{step, session_log{status: START}}`: TensorBoard's legacy loader then drops the
    /// points of earlier runs with step >= `step` (the restart marker of a resumed run).
    /// @throws LogicError if the writer is closed; IoError if writing pending records fails.
    void add_session_start(std::int64_t step, std::optional<double> wall_time = std::nullopt);

    /// Hands every pending record to the OS in one write (no fsync). On failure the file is cut
    /// back to its last whole record and the pending records are dropped.
    /// @throws IoError naming the file and the OS error; LogicError if the writer is closed.
    void flush() {
        require_open("flush");
        write_pending();
    }

    /// Flushes and closes the file; later calls other than close() and path() throw LogicError.
    /// Does nothing if already closed. @throws IoError if the final write or close fails.
    void close();

    /// The event file's path.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// True until close() (or a move away).
    [[nodiscard]] bool is_open() const noexcept { return file_.is_open(); }
    /// The current time from the writer's clock, in seconds since the Unix epoch.
    [[nodiscard]] double now() const { return options_.clock(); }

private:
    void open_file(const std::filesystem::path& run_dir);

    void require_open(const char* what) const;

    void append(std::string_view payload);

    // A failed write is cut back to the last whole record by AppendFile: the loaders stop at
    // the first bad record, so a torn one would hide every later event.
    void write_pending();

    void close_noexcept() noexcept;

    EventWriterOptions options_;
    std::filesystem::path path_;
    std::string pending_;  // whole records not yet written
    std::string scratch_;  // the event being encoded (kept to reuse its capacity)
    io::AppendFile file_;  // holds whole records only
};

}  // namespace tensorboard

namespace sinks {

/// Options of TensorBoardSink.
struct TensorBoardOptions {
    std::filesystem::path log_dir{};  ///< runs go to `<log_dir>/train` and `<log_dir>/validation`
    bool log_batches = false;         ///< also write `batch_<name>` at step = global step (train run)
    std::int64_t update_freq =
        1;  ///< with log_batches, write when global_step % update_freq == 0 (Keras's update_freq=N)
    std::string filename_suffix{};  ///< appended to every event file name
    tensorboard::Clock clock{};     ///< wall-time source; empty means the system clock (inject in tests)
};

/// Writes the logs as TensorBoard scalars, laid out as Keras's TensorBoard callback does:
/// training values (and `learning_rate`: a scheduler's, else the model's, which MetricLogger adds
/// when the model exposes one) in run `<log_dir>/train` as `epoch_<name>`, `val_<name>`
/// values in run `<log_dir>/validation` as `epoch_<name>`, at step = the 0-based epoch; with
/// log_batches, `batch_<name>` in the train run at step = the global step. Each begin() starts new
/// event files; a resumed run also writes a SessionLog START (see begin()). Values are float32.
class TensorBoardSink final : public Sink {
public:
    /// Validates the options, and fails early for a `log_dir` that can never be a directory (it,
    /// or its nearest existing ancestor, is not a directory). It only reads: `log_dir` is created
    /// by begin(), so that a sink built on every rank of a data-parallel run creates nothing on
    /// the ranks that do not write.
    /// @throws InvalidArgument for an empty log_dir, update_freq < 1 or a suffix with '/';
    /// IoError (ENOTDIR) naming log_dir.
    explicit TensorBoardSink(TensorBoardOptions options);

    /// Opens new event files: the train run always, the validation run now if the run has
    /// validation (else at the first `val_` key). When `info.resumed`, each run gets a SessionLog
    /// START at the resume step, so TensorBoard's legacy loader drops the points the previous
    /// process wrote past the checkpoint: step = initial_epoch in the validation run, and in the
    /// train run too unless log_batches is set; then it is the first batch's global step, since
    /// batch points share that run and a START at the epoch number would drop valid ones. Creates
    /// `log_dir` first, when missing.
    /// @throws IoError if log_dir or a file cannot be created.
    TRAINCB_INLINE void begin(const RunInfo& info) override;

    /// Writes `epoch_<name>` at step = `epoch` in the train or validation run, then flushes both.
    /// @throws LogicError before begin(); IoError if writing fails.
    TRAINCB_INLINE void write_epoch(int epoch, const Logs& logs) override;

    /// True when log_batches is set.
    [[nodiscard]] TRAINCB_INLINE bool wants_batches() const override;

    /// Writes `batch_<name>` at step = the global step in the train run, on every update_freq-th
    /// global step; the records reach the file at the epoch's flush.
    /// @throws LogicError before begin(); IoError if writing fails.
    TRAINCB_INLINE void write_batch(const BatchInfo& info, const Logs& logs) override;

    /// Flushes and closes the event files. @throws IoError if the final write fails.
    TRAINCB_INLINE void end(const TrainEnd& end) override;

    /// Hands the pending records of both runs to the OS. @throws IoError if writing fails.
    TRAINCB_INLINE void flush() override;

    /// The options, as validated.
    [[nodiscard]] const TensorBoardOptions& options() const noexcept { return options_; }
    /// The train run's current event file (empty before begin() and after end()).
    [[nodiscard]] std::filesystem::path train_file() const { return train_ ? train_->path() : std::filesystem::path(); }
    /// The validation run's current event file (empty until it is opened and after end()).
    [[nodiscard]] std::filesystem::path validation_file() const {
        return validation_ ? validation_->path() : std::filesystem::path();
    }

private:
    tensorboard::EventWriter open_run(const char* run) const;

    tensorboard::EventWriter& validation();

    void write_pending_start(std::int64_t step);

    void require_begun(const char* what) const;

    static std::string tag(std::string_view prefix, std::string_view name);

    void close_writers() noexcept;

    TensorBoardOptions options_;
    std::optional<tensorboard::EventWriter> train_;
    std::optional<tensorboard::EventWriter> validation_;
    bool began_ = false;
    bool resumed_ = false;
    bool train_start_pending_ = false;
    int initial_epoch_ = 0;
};

}  // namespace sinks

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/sinks/tensorboard-inl.hpp"
#endif
