#pragma once
/// @file io/checkpoint.hpp
/// traincb's checkpoint file: a safetensors file (readable by numpy, torch, ...) holding
///
///  - the model's state tensors as "model/<name>" (row-major, as the model's visit_state names them);
///  - each stateful callback's tensors as "callbacks/<state_key>/<name>" (e.g. EarlyStopping's best
///    weights);
///  - the bulk state of each training metric of a mid-epoch checkpoint as
///    "train_metrics/<log key>/<name>" (RocAuc's scores);
///  - the History as "history/epoch" (I64 [epochs]) and "history/values/<key>" (F64 [epochs]);
///  - `__metadata__` = {"format": "pt", "traincb.version", "traincb.kind": "full" | "weights",
///    "traincb.state": one JSON document as a string (format version, position, seed, data-order
///    options, running loss and training metric states of a mid-epoch checkpoint, every
///    callback's versioned JSON state, the History's size and keys), "traincb.state.checksum"
///    (XXH64 of that string) and "traincb.checksum" (XXH64 of the tensor bytes)}.
///
/// The state document does not grow with the epochs: what does (the History, a metric's scores)
/// is tensor data. Files of state format version 1 (the History as JSON) are still read.
///
/// Files are replaced atomically (temporary file, fsync, rename, fsync of the directory), and a
/// checkpoint is loaded only when both checksums match: a truncated or corrupted file is a
/// FormatError, never a crash or a silent load. See docs/checkpoints.md.
///
///     auto ckpt = traincb::io::load_checkpoint("ckpt/last.safetensors");
///     traincb::io::restore_model(ckpt, model);          // any model with visit_state()
///     auto latest = traincb::io::find_latest_checkpoint("ckpt");   // newest valid full checkpoint

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
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
#include <system_error>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/hash.hpp"
#include "traincb/detail/os.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/atomic_file.hpp"
#include "traincb/io/safetensors.hpp"
#include "traincb/logs.hpp"
#include "traincb/model.hpp"
#include "traincb/state.hpp"
#include "traincb/version.hpp"

namespace traincb::inline v0::io {

/// What a checkpoint holds: everything needed to resume, or the model's state alone.
enum class CheckpointKind {
    Full,     ///< model, callbacks, position, History: a run resumes from it
    Weights,  ///< the model's state tensors only (plus the position, for information)
};

/// "full" or "weights" (the value of the metadata key "traincb.kind").
[[nodiscard]] constexpr const char* to_string(CheckpointKind k) noexcept {
    return k == CheckpointKind::Full ? "full" : "weights";
}

/// The version of the "traincb.state" document of the full checkpoints this traincb writes: 2,
/// where the History and the training metrics' bulk state are tensors ("history/...",
/// "train_metrics/..."). Weights checkpoints, whose layout did not change, say 1, so that older
/// traincb versions still load them.
inline constexpr int kCheckpointFormatVersion = 2;
/// The oldest version this traincb reads: 1, where the History is JSON inside "traincb.state".
inline constexpr int kCheckpointMinFormatVersion = 1;

/// Where a run stood when a checkpoint was taken.
struct CheckpointPosition {
    int epoch = -1;                ///< 0-based epoch the checkpoint was taken in (-1: before any)
    bool epoch_completed = true;   ///< the epoch's on_epoch_end ran (false: taken after a batch)
    std::int64_t batch = 0;        ///< batches of `epoch` completed
    std::int64_t global_step = 0;  ///< batches completed in the whole run

    /// The first epoch a resumed run runs.
    [[nodiscard]] int next_epoch() const noexcept { return epoch_completed ? epoch + 1 : epoch; }
    /// The first batch (0-based) of next_epoch() a resumed run runs.
    [[nodiscard]] std::int64_t next_batch() const noexcept { return epoch_completed ? 0 : batch; }
    friend bool operator==(const CheckpointPosition&, const CheckpointPosition&) = default;
};

/// A checkpoint in memory: what load_checkpoint returns and save_checkpoint writes.
struct Checkpoint {
    CheckpointKind kind = CheckpointKind::Full;             ///< full or weights
    std::string version{};                                  ///< the traincb version that wrote it
    CheckpointPosition position{};                          ///< where the run stood
    std::uint64_t seed = 0;                                 ///< the run's shuffling seed
    nlohmann::json fit_options = nlohmann::json::object();  ///< data-order and length options of the run
    double loss_sum = 0;          ///< running training loss of a mid-epoch checkpoint (sample-weighted sum)
    std::int64_t loss_count = 0;  ///< samples behind loss_sum
    /// The training metric states of a mid-epoch checkpoint (RunState::metric_states: by log key,
    /// each what metrics::Metric::save_state wrote, or null); null when the file holds none (an
    /// epoch-boundary checkpoint, a run without metrics, a file written before traincb saved them).
    nlohmann::json train_metrics{};
    /// The tensors of those states (metrics::Metric::save_state_with_tensors), by log key; a
    /// metric whose state is JSON only has none.
    std::map<std::string, StateDict, std::less<>> train_metric_tensors{};
    bool stopped = false;       ///< a callback had asked to stop training when it was taken
    std::string stop_source{};  ///< who asked ("EarlyStopping")
    std::string stop_reason{};  ///< why ("patience")
    StateDict model{};          ///< the model's state, names without the "model/" prefix
    std::map<std::string, CallbackState, std::less<>> callbacks{};  ///< by state key
    History history{};  ///< every epoch recorded up to the position (History::end unset)
};

}  // namespace traincb::inline v0::io

namespace traincb::inline v0::detail {

inline constexpr std::string_view kModelPrefix = "model/";
inline constexpr std::string_view kCallbacksPrefix = "callbacks/";
inline constexpr std::string_view kTrainMetricsPrefix = "train_metrics/";
inline constexpr std::string_view kHistoryEpochTensor = "history/epoch";
inline constexpr std::string_view kHistoryValuesPrefix = "history/values/";
inline constexpr std::string_view kStateKey = "traincb.state";
inline constexpr std::string_view kStateChecksumKey = "traincb.state.checksum";
inline constexpr std::string_view kKindKey = "traincb.kind";
inline constexpr std::string_view kVersionKey = "traincb.version";

/// Doubles travel as strings: the shortest round-trip digits, and "nan"/"inf"/"-inf" (JSON has none).
[[nodiscard]] TRAINCB_INLINE nlohmann::json json_double(double v);

/// Parses a double written by json_double. @throws FormatError naming `what`.
[[nodiscard]] TRAINCB_INLINE double parse_json_double(const nlohmann::json& j, std::string_view what,
                                                      std::string_view source);

/// Throws "traincb: checkpoint: '<source>': <why>".
[[noreturn]] TRAINCB_INLINE void checkpoint_error(std::string_view source, const std::string& why);

/// The entry of `owners` whose key, followed by '/', is the longest prefix of `rest` (a key may
/// itself contain '/'), or nullptr; `key_len` receives that key's length.
template <class Map>
[[nodiscard]] auto* longest_owner(Map& owners, std::string_view rest, std::size_t& key_len) {
    decltype(&owners.begin()->second) owner = nullptr;
    for (auto& [key, value] : owners)
        if (rest.size() > key.size() + 1 && rest.starts_with(key) && rest[key.size()] == '/' &&
            (owner == nullptr || key.size() >= key_len)) {
            owner = &value;
            key_len = key.size();
        }
    return owner;
}

/// "xxh64:<16 hex digits>" of a text.
[[nodiscard]] TRAINCB_INLINE std::string text_checksum(std::string_view text);

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::io {

/// Takes a checkpoint of a run at the current hook, without the model's state (`model` stays
/// empty): what capture_checkpoint takes besides the model, for a caller that copies the model's
/// tensors itself (ModelCheckpoint's async_save copies them into buffers it reuses).
/// @throws InvalidArgument when the model exposes no state (no visit_state); whatever
/// RunState::metric_states throws
[[nodiscard]] TRAINCB_INLINE Checkpoint capture_checkpoint_without_model(Context& ctx, CheckpointKind kind);

/// Takes a checkpoint of a run at the current hook: the model's state (through ctx.model()), the
/// position (ctx.epoch(), ctx.batch(): >= 0 after a batch, -1 after an epoch end), the global
/// step, the driver's run state (for a full mid-epoch checkpoint with the training metric
/// states of RunState::metric_states), and, for a full checkpoint, every stateful callback of
/// ctx.callbacks() and the History.
/// @throws InvalidArgument when the model exposes no state (no visit_state); whatever
/// RunState::metric_states throws
[[nodiscard]] TRAINCB_INLINE Checkpoint capture_checkpoint(Context& ctx, CheckpointKind kind);

/// The "traincb.state" JSON document of a checkpoint (see docs/checkpoints.md for every field).
/// The History's values are not in it: encode_checkpoint stores them as tensors.
[[nodiscard]] TRAINCB_INLINE nlohmann::json checkpoint_state_json(const Checkpoint& c);

/// The tensors and metadata of the file holding `c` (tensors are moved out of `c`); the History
/// becomes the tensors "history/epoch" and "history/values/<key>".
/// @throws InvalidArgument when a callback's state key is empty, two tensor names collide, or a
/// History column does not hold one value per recorded epoch
[[nodiscard]] TRAINCB_INLINE SafetensorsFile encode_checkpoint(Checkpoint c);

/// Writes `file` (from encode_checkpoint) to `path` crash-safely, with the tensor checksum.
/// `component` starts error messages ("ModelCheckpoint"). When `keep_previous` is not empty, the
/// file `path` held is renamed to it before the new one takes its place (see RotatingCheckpoint).
/// @throws IoError naming the path and the OS error (EACCES, ENOSPC, EISDIR for a directory, ...);
/// every earlier file, including the previous content of `path`, is then left intact
TRAINCB_INLINE void save_checkpoint_file(const std::filesystem::path& path, const SafetensorsFile& file,
                                         std::string_view component = "checkpoint",
                                         const std::filesystem::path& keep_previous = {});

/// Writes checkpoint `c` to `path` crash-safely (see save_checkpoint_file).
/// @throws IoError naming the path and the OS error; earlier files are left intact
TRAINCB_INLINE void save_checkpoint(const std::filesystem::path& path, Checkpoint c,
                                    std::string_view component = "checkpoint");

namespace detail_ckpt {
/// Where a version-2 full checkpoint keeps its History: how many epochs, and the keys of the
/// "history/values/<key>" tensors.
struct HistoryLayout {
    bool in_tensors = false;
    std::size_t epochs = 0;
    std::vector<std::string> keys{};
};
/// Reads the metadata; fills `layout` (when given) with where the History's tensors are.
[[nodiscard]] TRAINCB_INLINE Checkpoint decode_metadata(const std::map<std::string, std::string>& metadata,
                                                        std::string_view source, HistoryLayout* layout);
}  // namespace detail_ckpt

/// Decodes the metadata of a checkpoint file (kind, version, state; no tensors, so the History of
/// a version-2 checkpoint stays empty: decode_checkpoint reads it); `source` names the file in
/// messages.
/// @throws FormatError when it is not a traincb checkpoint, its state checksum does not match, or
/// a field of its state is missing or malformed
[[nodiscard]] TRAINCB_INLINE Checkpoint decode_checkpoint_metadata(const std::map<std::string, std::string>& metadata,
                                                                   std::string_view source);

/// Decodes a parsed safetensors file as a checkpoint; `source` names it in messages.
/// @throws FormatError when it is not a traincb checkpoint, its state checksum does not match, a
/// field of its state is missing or malformed, or it holds no model tensor
[[nodiscard]] TRAINCB_INLINE Checkpoint decode_checkpoint(SafetensorsFile&& f, std::string_view source);

/// Parses a checkpoint held in memory; `source` names it in messages.
/// @throws FormatError for a malformed file (see parse_safetensors and decode_checkpoint)
[[nodiscard]] TRAINCB_INLINE Checkpoint parse_checkpoint(std::span<const std::byte> bytes,
                                                         std::string_view source = "(memory)");

/// Reads and verifies the checkpoint at `path` (both checksums).
/// @throws IoError when it cannot be read (missing, a directory, EACCES, ...); FormatError when it
/// is truncated, corrupted or not a traincb checkpoint
[[nodiscard]] TRAINCB_INLINE Checkpoint load_checkpoint(const std::filesystem::path& path,
                                                        std::string_view component = "checkpoint");

/// Loads the model state of `c` into `model` (a ModelHandle or any model with visit_state).
/// @throws FormatError when a tensor the model has is missing or has another shape or dtype
TRAINCB_INLINE void restore_model(const Checkpoint& c, ModelHandle& model);

/// Loads the model state of `c` into `model`.
/// @throws FormatError when a tensor the model has is missing or has another shape or dtype
template <class M>
requires HasState<M>
void restore_model(const Checkpoint& c, M& model) {
    StateLoader loader(c.model);
    model_traits<M>::visit_state(model, loader);
}

/// Loads the model state stored in the checkpoint file `path` (full or weights) into `model`.
/// @throws IoError, FormatError as load_checkpoint and restore_model
template <class M>
requires HasState<M>
void load_weights(const std::filesystem::path& path, M& model) {
    restore_model(load_checkpoint(path), model);
}

namespace detail_ckpt {
/// The position and kind of a checkpoint file, from its header alone (no tensor data is read).
struct Header {
    CheckpointKind kind = CheckpointKind::Full;
    CheckpointPosition position{};
};
[[nodiscard]] TRAINCB_INLINE Header read_header(const std::filesystem::path& path);
}  // namespace detail_ckpt

/// What scan_checkpoints found in a directory.
struct CheckpointScan {
    /// The newest valid full checkpoint (as find_latest_checkpoint chooses it); nullopt when none.
    std::optional<std::filesystem::path> latest{};
    /// The files that cannot resume a run, each with why, in path order: every file whose
    /// header is invalid, and every full checkpoint newer than `latest` (all of them when there is
    /// none) whose data failed its checks. Valid weights files are not listed; full checkpoints
    /// older than `latest` are not read in full, so a flaw in their data is not seen.
    std::vector<InvalidCheckpointFile> invalid{};
};

namespace detail_ckpt {
/// The reason of a failed check on `path`, without the "traincb: <component>: '<path>': " that
/// starts the message of a file error.
[[nodiscard]] TRAINCB_INLINE std::string reason_of(const Error& e, const std::filesystem::path& path);

/// True when `a` and `b` name the same file (or, when one does not exist, the same absolute path).
[[nodiscard]] TRAINCB_INLINE bool same_file(const std::filesystem::path& a, const std::filesystem::path& b);

/// scan_checkpoints, which also hands the newest valid checkpoint, loaded, to `loaded` when given
/// (so that a resume reads it once).
[[nodiscard]] TRAINCB_INLINE CheckpointScan scan(const std::filesystem::path& dir, Checkpoint* loaded);
}  // namespace detail_ckpt

/// Looks at the `*.safetensors` files directly in `dir` (not hidden temporary files) for the
/// newest valid full checkpoint, by the run position each records (global step, then whether its
/// epoch had ended; not by modification time; at equal positions "last.safetensors", then name
/// order), and lists the invalid files it met (truncated, corrupted, unreadable, not a
/// checkpoint). Weights-only files are passed over. Warns about nothing.
/// @throws IoError when `dir` exists but cannot be listed
[[nodiscard]] TRAINCB_INLINE CheckpointScan scan_checkpoints(const std::filesystem::path& dir);

/// The newest VALID full checkpoint in `dir` (as scan_checkpoints chooses it), or nullopt when
/// there is none. Each invalid file it met gets a warning (traincb::warn) naming it and the
/// failed check.
/// @throws IoError when `dir` exists but cannot be listed
[[nodiscard]] TRAINCB_INLINE std::optional<std::filesystem::path> find_latest_checkpoint(
    const std::filesystem::path& dir);

/// The file in which a RotatingCheckpoint keeps the version it replaced: "<stem>.prev.safetensors"
/// beside `path` ("ckpt/last.safetensors" -> "ckpt/last.prev.safetensors"), or "<name>.prev" for a
/// name without the ".safetensors" extension.
[[nodiscard]] TRAINCB_INLINE std::filesystem::path previous_checkpoint_path(const std::filesystem::path& path);

/// One full checkpoint file rewritten during a run (ModelCheckpoint's last.safetensors, the
/// interrupt checkpoint of FitOptions) that keeps the version it replaces as
/// previous_checkpoint_path(path), so that the latest checkpoint always has a valid predecessor
/// on disk: a latest corrupted later falls back to it (docs/checkpoints.md, "The previous
/// checkpoint"). Only a version known to be valid is kept: one this object wrote in the current
/// run, or the file the run resumed from (verified when it was loaded). Any other file at `path`
/// (a corrupted latest the run fell back from, a file of another run) is replaced without being
/// kept, and the previous version is removed first, unless it is the file the run resumed from:
/// a previous version of another run must not outrank this run's checkpoints.
class RotatingCheckpoint {
public:
    /// No file (save() must not be called).
    RotatingCheckpoint() = default;
    /// The file `path`, kept in previous_checkpoint_path(path).
    explicit RotatingCheckpoint(std::filesystem::path path)
        : path_(std::move(path)), previous_(previous_checkpoint_path(path_)) {}

    /// The file written.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// Where the version it replaces is kept.
    [[nodiscard]] const std::filesystem::path& previous_path() const noexcept { return previous_; }

    /// Starts a run that resumed from the checkpoint `resumed_from` (empty: a fresh run).
    void begin_run(std::filesystem::path resumed_from);

    /// Writes `file` (encode_checkpoint of a full checkpoint) to path() crash-safely, keeping the
    /// version it replaces when that one is known to be valid (see the class comment). A kill at
    /// any moment leaves a valid checkpoint at path() or at previous_path().
    /// @throws IoError naming the path and the OS error (the files on disk then hold what they
    /// held before, or, when the last rename failed and could not be undone, the old version at
    /// previous_path() only)
    void save(const SafetensorsFile& file, std::string_view component);

private:
    std::filesystem::path path_{};
    std::filesystem::path previous_{};
    std::filesystem::path resumed_from_{};
    bool ours_ = false;  // path_ holds a valid checkpoint of this run (written by save(), or resumed from)
};

/// Removes the temporary files that a killed process left next to `*.safetensors` targets in
/// `dir` (".<name>.safetensors.tmp.<pid>.<random>", see AtomicFile) when process <pid> no longer
/// exists; files of live processes are left alone. Returns how many were removed. Never throws.
TRAINCB_INLINE std::size_t remove_stale_temp_files(const std::filesystem::path& dir) noexcept;

}  // namespace traincb::inline v0::io

#if TRAINCB_DEFINITIONS
#include "traincb/io/checkpoint-inl.hpp"
#endif
