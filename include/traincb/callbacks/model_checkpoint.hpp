#pragma once
/// @file callbacks/model_checkpoint.hpp
/// ModelCheckpoint: Keras's callback (docs/keras-semantics.md, "ModelCheckpoint") writing traincb
/// checkpoints (io/checkpoint.hpp: safetensors, written atomically, checksummed), plus Lightning's
/// save_top_k, save_last and every_n_epochs, and resumable state of its own.
///
///     traincb::ModelCheckpoint best({.filepath = "ckpt/best.safetensors", .monitor = "val_loss",
///                                    .save_best_only = true, .save_weights_only = true,
///                                    .save_last = true});   // also ckpt/last.safetensors, full state
///     trainer.fit(x, y, {.epochs = 100, .resume_from = "ckpt"}, best);
///
/// Files are written in on_epoch_commit (or on_train_batch_commit), after EVERY callback's
/// on_epoch_end: a full checkpoint of epoch E holds each callback's state after epoch E, whatever
/// the order of the callback list. The save decision and the bookkeeping (best, top-k) happen in
/// on_epoch_end, so that another ModelCheckpoint's file records them too.
///
/// last.safetensors, and a full checkpoint saved every time under a filepath without {fields},
/// keep the version they replace as "<stem>.prev.safetensors" (io::RotatingCheckpoint): the
/// latest full checkpoint always has a valid predecessor for a resume to fall back to.
/// Weights-only, best-only and top-k files keep none (docs/checkpoints.md).
///
/// In data-parallel training (a Communicator with more than one rank) only rank 0 writes; every
/// rank keeps the same state. Every rank decides each save and keeps the same best, top-k list and
/// save_state; only rank 0 captures, writes, rotates and deletes files, scans the directory at
/// train begin and prints the verbose messages, so another rank's directory may be missing or
/// read-only.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/async_checkpoint.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/monitor.hpp"
#include "traincb/detail/path_template.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/checkpoint.hpp"

namespace traincb::inline v0 {

/// ModelCheckpoint's options (defaults as Keras where Keras has the option).
struct ModelCheckpointOptions {
    /// Where to save: a template such as "ckpt/model-{epoch:02d}-{val_loss:.4f}.safetensors"
    /// ({epoch} and {batch} are 1-based; any log key; a subset of Python's format spec, see
    /// docs/checkpoints.md). Must end in ".safetensors". Missing directories are created.
    std::filesystem::path filepath{};
    std::string monitor = "val_loss";  ///< log key compared by save_best_only and save_top_k
    Mode mode = Mode::Auto;            ///< Min, Max, or Auto (from the metric's direction or name)
    bool save_best_only = false;       ///< save only when the monitor improves on the best so far
    bool save_weights_only = false;    ///< "weights" files (the model's state only) instead of "full" ones
    /// 0: save at the end of each epoch (Keras's "epoch"); N > 0: after every N-th batch, counted
    /// in global steps (batches since the start of the whole run, across epochs and resumes).
    std::int64_t save_freq = 0;
    int every_n_epochs = 1;  ///< >= 1; with save_freq 0, save only after epochs where (epoch+1) % n == 0
    /// -1 keeps every file; k >= 0 keeps the k best by monitor, deleting the files that drop out
    /// (never the file the run resumed from); 0 saves none (but last.safetensors with save_last).
    int save_top_k = -1;
    /// Also write "last.safetensors" (full state, to resume from) in the template's directory at
    /// every epoch end, after every batch save, and when training is interrupted. The version it
    /// replaces is kept as "last.prev.safetensors" (io::RotatingCheckpoint), which a resume falls
    /// back to when last.safetensors is corrupted.
    bool save_last = false;
    std::optional<double> initial_value_threshold{};  ///< the best value to beat at first (save_best_only)
    int verbose = 0;                                  ///< > 0: print Keras's messages (epochs numbered from 1)
    bool strict = true;  ///< a missing monitor is an error (else Keras >= 3.10: warn once, save anyway)
    std::string id{};    ///< explicit state key, for two instances with the same file name template
    /// Save in the background: the hook only copies the state (the model's tensors into buffers
    /// reused from save to save) and a background thread encodes, writes, fsyncs and renames. At
    /// most one save is in flight; a failed one raises IoError at a later hook, on_train_end waits
    /// for the last one. Files are byte-identical to synchronous saves (docs/checkpoints.md).
    bool async_save = false;
    /// > 0: save every this many seconds of the run's wall-clock time (Lightning's
    /// train_time_interval), checked after each training batch, across epochs; replaces the
    /// per-epoch saves, so save_freq must be 0 and every_n_epochs 1. 0: off.
    std::chrono::duration<double> train_time_interval{0};
    /// The clock of train_time_interval, in seconds from any fixed origin (for tests); empty means
    /// std::chrono::steady_clock.
    std::function<double()> now_seconds{};
};

/// One file kept by ModelCheckpoint (the top-k list).
struct KeptCheckpoint {
    std::filesystem::path path{};   ///< the file
    std::optional<double> score{};  ///< the monitored value when it was saved (none when missing)
    int epoch = 0;                  ///< 0-based epoch it was saved in
    std::int64_t global_step = 0;   ///< batches done in the run when it was saved
    friend bool operator==(const KeptCheckpoint&, const KeptCheckpoint&) = default;
};

/// Saves checkpoints during training (see the file comment and docs/checkpoints.md). In
/// data-parallel training (a Communicator with more than one rank) only rank 0 writes; every rank
/// keeps the same state.
class ModelCheckpoint final : public Callback {
public:
    /// @throws InvalidArgument for an empty filepath or one not ending in ".safetensors", a
    /// template syntax error or unsupported format spec, {batch} without batch saves (save_freq or
    /// train_time_interval), a negative save_freq, every_n_epochs < 1, save_top_k < -1, a NaN
    /// initial_value_threshold, an empty monitor when one is needed, save_last with a templated
    /// directory, or a train_time_interval that is negative, not finite, or combined with
    /// save_freq or every_n_epochs
    explicit ModelCheckpoint(ModelCheckpointOptions options);

    /// A copy has its own background writer (no save in flight).
    ModelCheckpoint(const ModelCheckpoint&) = default;
    /// Copies the options and the state; this instance keeps its own background writer.
    ModelCheckpoint& operator=(const ModelCheckpoint&) = default;
    /// Waits for a background save still in flight (a run that ended without on_train_end); its
    /// failure becomes a warning (traincb::warn), never lost.
    TRAINCB_INLINE ~ModelCheckpoint() override;

    /// The options it was built with.
    [[nodiscard]] const ModelCheckpointOptions& options() const noexcept { return opt_; }
    /// The file with the best monitored value saved so far (empty before one).
    [[nodiscard]] const std::filesystem::path& best_model_path() const noexcept { return best_path_; }
    /// The best monitored value so far (initial_value_threshold until something beats it).
    [[nodiscard]] std::optional<double> best_score() const noexcept { return best_; }
    /// The files kept (with save_top_k >= 0, at most k scored ones), in the order they were saved.
    [[nodiscard]] const std::vector<KeptCheckpoint>& kept() const noexcept { return kept_; }
    /// The path of last.safetensors (empty unless save_last).
    [[nodiscard]] const std::filesystem::path& last_model_path() const noexcept { return last_path_; }
    /// The resolved direction (nullopt until resolved: Auto on a name only a metric object declares).
    [[nodiscard]] std::optional<Direction> direction() const noexcept { return dir_; }
    /// True while a background save (async_save) runs: the files it writes may not be on disk yet.
    [[nodiscard]] bool saving() const noexcept { return writer_.pending() && !writer_.finished(); }

    /// "ModelCheckpoint".
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// Under strict, the monitor when save_best_only or save_top_k compares it.
    [[nodiscard]] TRAINCB_INLINE std::vector<std::string> required_keys() const override;
    /// The model's state (visit_state).
    [[nodiscard]] TRAINCB_INLINE Capabilities required_capabilities() const override;

    /// Resolves Auto mode, remembers the file the run resumed from (the only file found at
    /// last.safetensors whose version is kept as last.prev.safetensors), and removes temporary files
    /// that killed processes left in the checkpoint directory (rank 0 only). Best and kept files carry over
    /// from an earlier fit of the same instance, as Keras's best does. Starts the clock of
    /// train_time_interval.
    /// @throws InvalidArgument when the monitor is compared and Auto cannot be resolved; IoError
    /// from a background save of an earlier run that ended without on_train_end
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;

    /// Decides whether this epoch saves (and updates best and the kept list); the file is written
    /// in on_epoch_commit. @throws InvalidArgument for a filepath key or (strict) monitor that is
    /// not in the logs, naming the available keys
    TRAINCB_INLINE void on_epoch_end(Context& ctx) override;
    /// Writes the file decided in on_epoch_end, then last.safetensors (save_last); with
    /// async_save, hands them to the background thread after the previous save has finished. On
    /// ranks other than 0 of a data-parallel run it writes nothing (the decision stays taken).
    /// @throws IoError naming the path (earlier files are intact; best and kept are rolled back)
    TRAINCB_INLINE void on_epoch_commit(Context& ctx) override;
    /// Every save_freq global steps, or once train_time_interval has passed since the last
    /// time-triggered save (or the start of the run), decides whether this batch saves.
    /// @throws InvalidArgument as on_epoch_end; IoError from a failed background save
    TRAINCB_INLINE void on_train_batch_end(Context& ctx) override;
    /// Writes the file decided in on_train_batch_end, then last.safetensors (save_last).
    /// @throws IoError as on_epoch_commit
    TRAINCB_INLINE void on_train_batch_commit(Context& ctx) override;
    /// With save_last, writes last.safetensors at the interrupted position (after the background
    /// save in flight, if any, and synchronously; rank 0 only).
    /// @throws IoError naming the path
    TRAINCB_INLINE void on_interrupt(Context& ctx) override;

    /// With async_save, waits for the save in flight and raises its failure, except while training
    /// is already ending with an exception (or unwinding one): the failure is then a warning, so
    /// that the original exception is the one that propagates.
    /// @throws IoError from the last background save
    TRAINCB_INLINE void on_train_end(Context& ctx) override;

    /// Waits for the background save in flight (async_save), if any, and raises its failure;
    /// afterwards every file decided so far is on disk. A no-op without async_save.
    /// @throws IoError naming the file and the OS error (best and kept are then rolled back to
    /// before the failed save when its checkpoint file was not written)
    void wait_until_finished() { collect_background_save(true); }

    /// The explicit id, else "ModelCheckpoint:<file name template>": the directory is left out (as
    /// Lightning does), so a run directory can be moved or reached by another path and resumed.
    [[nodiscard]] TRAINCB_INLINE std::string state_key() const override;
    /// Writes best, best path, the kept list and the options (version 1).
    TRAINCB_INLINE void save_state(CallbackState& s) const override;
    /// Restores the state written by save_state. An option changed since gets a warning naming
    /// it; with another monitor or mode the saved best and scores are not comparable and are
    /// dropped (the files stay on disk).
    /// @throws FormatError for another version or a malformed field
    TRAINCB_INLINE void load_state(const CallbackState& s, Context&) override;

private:
    static constexpr int kStateVersion = 1;

    struct Pending {
        std::filesystem::path path;
        // For rollback when the write fails.
        std::optional<double> old_best;
        std::filesystem::path old_best_path;
        std::vector<KeptCheckpoint> old_kept;
    };

    [[nodiscard]] bool needs_monitor() const noexcept { return opt_.save_best_only || opt_.save_top_k >= 0; }
    // Saves decided after batches (save_freq or train_time_interval) instead of at epoch ends.
    [[nodiscard]] bool batch_saves() const noexcept { return opt_.save_freq > 0 || train_time_interval_ > 0; }

    // Lightning's rule: train_time_interval, save_freq (every_n_train_steps) and every_n_epochs
    // are mutually exclusive (every_n_epochs at its default 1 counts as unset).
    void validate_train_time_interval();

    // True when train_time_interval has passed since the last time-triggered save (or since the
    // clock started: on_train_begin, else the first batch); restarts the interval then.
    [[nodiscard]] bool time_is_up();

    [[nodiscard]] nlohmann::json options_json() const;

    [[nodiscard]] static bool has_val_keys(const Logs& logs);

    // The file name of this save, or nullopt when it uses a val_ key in an epoch without validation.
    [[nodiscard]] std::optional<std::filesystem::path> format_path(Context& ctx, bool batch_save) const;

    [[nodiscard]] static std::string num(const std::optional<double>& v);

    [[nodiscard]] bool is_resumed_from(const std::filesystem::path& p) const;

    void decide(Context& ctx, bool batch_save);

    // Scored entries other than `except`.
    [[nodiscard]] std::size_t scored_count(const std::filesystem::path& except) const;
    // The worst scored entry other than `except` (the oldest among equals), or nullptr.
    [[nodiscard]] const KeptCheckpoint* worst_scored(const std::filesystem::path& except) const;

    void commit(Context& ctx, bool epoch_end);

    // async_save: the same files as commit() writes, in the same order (the checkpoint file, the
    // deletions, last.safetensors), captured here and written by writer_'s thread. The previous
    // save must have finished first: its buffers are reused, and its failure is raised here.
    void commit_async(Context& ctx, bool epoch_end);

    // Collects the outcome of the background save (waiting for it when `wait`, else only when it
    // has finished). A failure is raised here, on the training thread: best and kept are rolled
    // back to before that save when its checkpoint file was not written (as commit() does), and a
    // save decided since is dropped.
    void collect_background_save(bool wait);

    void roll_back(Pending& p);

    // Rethrows a background failure; an IoError says that it comes from the save of an earlier
    // epoch: "traincb: ModelCheckpoint: background save of epoch 3: cannot write '<path>': <OS error>".
    [[noreturn]] static void raise_background_error(const std::exception_ptr& error, int epoch);

    // A save handed to the background thread, for its outcome.
    struct InFlight {
        int epoch = -1;                   // 0-based, for messages
        std::optional<Pending> rollback;  // the checkpoint file's decision (none: last.safetensors only)
    };

    ModelCheckpointOptions opt_;
    detail::PathTemplate template_{};
    std::filesystem::path last_path_{};
    io::RotatingCheckpoint last_file_{};  // last.safetensors and last.prev.safetensors (save_last)
    io::RotatingCheckpoint main_file_{};  // a literal full filepath, saved every time (else no path)
    std::optional<Direction> dir_{};
    std::optional<double> best_{};
    std::filesystem::path best_path_{};
    std::vector<KeptCheckpoint> kept_{};
    std::filesystem::path resumed_from_{};
    std::optional<Pending> pending_{};
    std::vector<std::filesystem::path> to_delete_{};
    bool warned_missing_ = false;
    double train_time_interval_ = 0.0;  // seconds
    double last_time_ = 0.0;            // now_seconds() at the last time-triggered save or the start
    bool clock_started_ = false;
    std::optional<InFlight> in_flight_{};
    detail::AsyncCheckpointWriter writer_{};  // declared last: destroyed (waiting for its job) first
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/callbacks/model_checkpoint-inl.hpp"
#endif
