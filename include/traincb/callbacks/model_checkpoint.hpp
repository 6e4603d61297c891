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
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0 {

TRAINCB_INLINE ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options) : opt_(std::move(options)) {
    auto bad = [](const std::string& what) { throw InvalidArgument("traincb: ModelCheckpoint: " + what); };
    const std::string text = opt_.filepath.string();
    if (text.empty()) bad("filepath is empty; pass a file name such as \"ckpt/model-{epoch:02d}.safetensors\"");
    if (!text.ends_with(".safetensors"))
        bad("filepath '" + text + "' must end in \".safetensors\" (the file format; resume looks for such files)");
    template_ = detail::PathTemplate(text, "traincb: ModelCheckpoint", {"epoch", "batch"});
    if (opt_.save_freq < 0)
        bad("save_freq must be 0 (each epoch) or a number of batches > 0, got " + std::to_string(opt_.save_freq));
    if (opt_.every_n_epochs < 1) bad("every_n_epochs must be >= 1, got " + std::to_string(opt_.every_n_epochs));
    if (opt_.save_top_k < -1)
        bad("save_top_k must be -1 (keep all), 0 or a number of files to keep, got " + std::to_string(opt_.save_top_k));
    if (opt_.initial_value_threshold && std::isnan(*opt_.initial_value_threshold))
        bad("initial_value_threshold is NaN; pass a number or leave it unset");
    validate_train_time_interval();
    if (template_.uses("batch") && !batch_saves())
        bad("filepath '" + text +
            "' uses {batch}, which exists only for batch saves; set save_freq > 0 (or train_time_interval)");
    if (needs_monitor() && opt_.monitor.empty())
        bad("monitor is empty, but save_best_only or save_top_k compares it; pass a log key such as \"val_loss\"");
    if (needs_monitor() && batch_saves() && opt_.strict && opt_.monitor.starts_with("val_"))
        bad("monitor '" + opt_.monitor + "' is a validation key, but " +
            (opt_.save_freq > 0 ? "save_freq > 0" : "train_time_interval") +
            " saves after batches, whose logs hold only training values; monitor a training key or save per "
            "epoch (save_freq = 0)");
    if (opt_.save_last) {
        if (!template_.directory_is_literal())
            bad("save_last writes last.safetensors beside the checkpoints, so the directory of filepath '" + text +
                "' must not contain {fields}");
        last_path_ = opt_.filepath.parent_path() / "last.safetensors";
        if (opt_.filepath.filename() == "last.safetensors")
            bad("filepath '" + text + "' is the file save_last writes; name the checkpoints otherwise");
        if (opt_.filepath.filename() == "last.prev.safetensors")
            bad("filepath '" + text +
                "' is the file save_last keeps the previous last.safetensors in; name the checkpoints otherwise");
        last_file_ = io::RotatingCheckpoint(last_path_);
    }
    // A full checkpoint written again and again under one name keeps its previous version too.
    if (template_.fields().empty() && !opt_.save_weights_only && !opt_.save_best_only && opt_.save_top_k == -1)
        main_file_ = io::RotatingCheckpoint(opt_.filepath);
    best_ = opt_.initial_value_threshold;
    if (!opt_.now_seconds)
        opt_.now_seconds = [] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
        };
    if (opt_.mode != Mode::Auto)
        dir_ = detail::resolve_mode("ModelCheckpoint", opt_.mode, opt_.monitor);
    else if (auto d = detail::direction_from_name(opt_.monitor))
        dir_ = *d;
}

TRAINCB_INLINE ModelCheckpoint::~ModelCheckpoint() {
    try {
        collect_background_save(true);
    } catch (const std::exception& e) {
        warn(detail::cat(e.what(), " (reported when the ModelCheckpoint was destroyed: no hook was left to raise it)"));
    } catch (...) {
        warn("traincb: ModelCheckpoint: a background save failed (reported when the ModelCheckpoint was destroyed)");
    }
}

TRAINCB_INLINE std::string ModelCheckpoint::name() const {
    return "ModelCheckpoint";
}

TRAINCB_INLINE std::vector<std::string> ModelCheckpoint::required_keys() const {
    if (opt_.strict && needs_monitor()) return {opt_.monitor};
    return {};
}

TRAINCB_INLINE Capabilities ModelCheckpoint::required_capabilities() const {
    return {.learning_rate = false, .state = true};
}

TRAINCB_INLINE void ModelCheckpoint::on_train_begin(Context& ctx) {
    collect_background_save(true);
    if (train_time_interval_ > 0) {
        last_time_ = opt_.now_seconds();
        clock_started_ = true;
    }
    if (!dir_) {
        if (needs_monitor())
            dir_ = detail::resolve_mode("ModelCheckpoint", opt_.mode, opt_.monitor, ctx.params().metric_directions);
        else
            dir_ = detail::direction_from_name(opt_.monitor, ctx.params().metric_directions);
    }
    resumed_from_ = ctx.params().resumed_from;
    last_file_.begin_run(resumed_from_);
    main_file_.begin_run(resumed_from_);
    pending_.reset();
    to_delete_.clear();
    warned_missing_ = false;
    if (template_.directory_is_literal() && ctx.comm().is_primary()) {
        const std::filesystem::path dir = opt_.filepath.parent_path();
        (void)io::remove_stale_temp_files(dir.empty() ? std::filesystem::path(".") : dir);
    }
}

TRAINCB_INLINE void ModelCheckpoint::on_epoch_end(Context& ctx) {
    collect_background_save(false);
    if (batch_saves()) return;
    if ((ctx.epoch() + 1) % opt_.every_n_epochs != 0) return;
    decide(ctx, false);
}

TRAINCB_INLINE void ModelCheckpoint::on_epoch_commit(Context& ctx) {
    commit(ctx, true);
}

TRAINCB_INLINE void ModelCheckpoint::on_train_batch_end(Context& ctx) {
    collect_background_save(false);
    if (opt_.save_freq > 0) {
        if (ctx.global_step() % opt_.save_freq == 0) decide(ctx, true);
    } else if (train_time_interval_ > 0 && time_is_up()) {
        decide(ctx, true);
    }
}

TRAINCB_INLINE void ModelCheckpoint::on_train_batch_commit(Context& ctx) {
    if (pending_) commit(ctx, false);
}

TRAINCB_INLINE void ModelCheckpoint::on_interrupt(Context& ctx) {
    collect_background_save(true);
    if (!opt_.save_last || !ctx.comm().is_primary()) return;
    last_file_.save(io::encode_checkpoint(io::capture_checkpoint(ctx, io::CheckpointKind::Full)), "ModelCheckpoint");
    if (opt_.verbose > 0)
        std::cout << "Epoch " << ctx.epoch() + 1 << ": training interrupted, saved the full state to "
                  << last_path_.string() << '\n';
}

TRAINCB_INLINE void ModelCheckpoint::on_train_end(Context& ctx) {
    writer_.stop();  // waits for the save in flight; no thread outlives the run
    if (ctx.end().kind != EndKind::Exception && std::uncaught_exceptions() == 0) {
        collect_background_save(true);
        return;
    }
    try {
        collect_background_save(true);
    } catch (const std::exception& e) {
        warn(detail::cat(e.what(), "; reported as a warning because training is ending with another exception (",
                         ctx.end().reason, ")"));
    } catch (...) {
        warn(
            detail::cat("traincb: ModelCheckpoint: a background save failed; reported as a warning because "
                        "training is ending with another exception (",
                        ctx.end().reason, ")"));
    }
}

TRAINCB_INLINE std::string ModelCheckpoint::state_key() const {
    return opt_.id.empty() ? "ModelCheckpoint:" + opt_.filepath.filename().string() : opt_.id;
}

TRAINCB_INLINE void ModelCheckpoint::save_state(CallbackState& s) const {
    s.version = kStateVersion;
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& k : kept_)
        kept.push_back({{"path", k.path.string()},
                        {"score", k.score ? detail::json_double(*k.score) : nlohmann::json()},
                        {"epoch", k.epoch},
                        {"global_step", k.global_step}});
    s.json = {{"best", best_ ? detail::json_double(*best_) : nlohmann::json()},
              {"best_path", best_path_.string()},
              {"kept", std::move(kept)},
              {"options", options_json()}};
}

TRAINCB_INLINE void ModelCheckpoint::load_state(const CallbackState& s, Context&) {
    const std::string c = "traincb: ModelCheckpoint: checkpointed state (key '" + state_key() + "'): ";
    s.require_version(kStateVersion, "ModelCheckpoint", state_key());
    try {
        const nlohmann::json& j = s.json;
        bool comparable = true;
        const nlohmann::json now = options_json();
        if (const auto it = j.find("options"); it != j.end())
            for (const auto& [key, value] : now.items()) {
                const auto old = it->find(key);
                if (old == it->end() || *old == value) continue;
                warn(c + "option '" + key + "' changed since the checkpoint (was " + old->dump() + ", now " +
                     value.dump() + "); the new value applies");
                if (key == "monitor" || key == "mode") comparable = false;
            }
        std::vector<KeptCheckpoint> kept;
        for (const auto& e : j.at("kept")) {
            KeptCheckpoint k;
            k.path = e.at("path").get<std::string>();
            if (!e.at("score").is_null() && comparable)
                k.score = detail::parse_json_double(e.at("score"), "ModelCheckpoint score", state_key());
            k.epoch = e.at("epoch").get<int>();
            k.global_step = e.at("global_step").get<std::int64_t>();
            kept.push_back(std::move(k));
        }
        if (comparable) {  // parsed in full before anything is assigned: all or nothing
            std::optional<double> best = j.at("best").is_null()
                                             ? std::nullopt
                                             : std::optional<double>(detail::parse_json_double(
                                                   j.at("best"), "ModelCheckpoint best", state_key()));
            std::string best_path = j.at("best_path").get<std::string>();
            best_ = best;
            best_path_ = std::move(best_path);
        }
        kept_ = std::move(kept);
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(c + "malformed (" + e.what() + ")");
    }
}

TRAINCB_INLINE void ModelCheckpoint::validate_train_time_interval() {
    const double s = opt_.train_time_interval.count();
    const auto bad = [](const std::string& what) { throw InvalidArgument("traincb: ModelCheckpoint: " + what); };
    if (!(s >= 0.0) || !std::isfinite(s))
        bad(detail::cat("train_time_interval must be a finite number of seconds >= 0 (0: off), got ",
                        detail::format_double(s), " s"));
    if (s > 0.0 && opt_.save_freq > 0)
        bad(detail::cat("train_time_interval (", detail::format_double(s), " s) and save_freq (",
                        std::to_string(opt_.save_freq),
                        ") are mutually exclusive, as in Lightning: save after an interval of time or after a "
                        "number of batches; set one of them to 0"));
    if (s > 0.0 && opt_.every_n_epochs != 1)
        bad(detail::cat("train_time_interval (", detail::format_double(s), " s) and every_n_epochs (",
                        std::to_string(opt_.every_n_epochs),
                        ") are mutually exclusive, as in Lightning: time-triggered saves replace the per-epoch "
                        "ones; leave every_n_epochs at 1 or set train_time_interval to 0"));
    train_time_interval_ = s;
}

TRAINCB_INLINE bool ModelCheckpoint::time_is_up() {
    const double t = opt_.now_seconds();
    if (!clock_started_) {  // a list driven without on_train_begin
        clock_started_ = true;
        last_time_ = t;
        return false;
    }
    if (t - last_time_ < train_time_interval_) return false;
    last_time_ = t;
    return true;
}

TRAINCB_INLINE nlohmann::json ModelCheckpoint::options_json() const {
    // The file name only: the directory may move between runs (see state_key).
    nlohmann::json j = {{"filename", opt_.filepath.filename().string()},
                        {"monitor", opt_.monitor},
                        {"mode", opt_.mode == Mode::Auto  ? "auto"
                                 : opt_.mode == Mode::Min ? "min"
                                                          : "max"},
                        {"save_best_only", opt_.save_best_only},
                        {"save_weights_only", opt_.save_weights_only},
                        {"save_freq", opt_.save_freq},
                        {"every_n_epochs", opt_.every_n_epochs},
                        {"save_top_k", opt_.save_top_k},
                        {"save_last", opt_.save_last}};
    // Only when set, so that the state of a run without it is as before.
    if (train_time_interval_ > 0) j["train_time_interval"] = detail::json_double(train_time_interval_);
    return j;
}

TRAINCB_INLINE bool ModelCheckpoint::has_val_keys(const Logs& logs) {
    for (const auto& kv : logs)
        if (kv.first.starts_with("val_")) return true;
    return false;
}

TRAINCB_INLINE std::optional<std::filesystem::path> ModelCheckpoint::format_path(Context& ctx, bool batch_save) const {
    const Logs& logs = ctx.logs();
    bool skip = false;
    std::string p = template_.format(
        [&](const std::string& key) -> std::optional<detail::TemplateValue> {
            if (key == "epoch") return detail::TemplateValue(static_cast<std::int64_t>(ctx.epoch()) + 1);
            if (key == "batch" && batch_save) return detail::TemplateValue(static_cast<std::int64_t>(ctx.batch()) + 1);
            if (const double* v = logs.find(key)) return detail::TemplateValue(*v);
            return std::nullopt;
        },
        [&](const std::string& key) -> detail::TemplateValue {
            if (key.starts_with("val_") && !batch_save && !has_val_keys(logs)) {
                skip = true;  // an epoch without validation: nothing to name the file with
                return 0.0;
            }
            std::vector<std::string> keys{"epoch"};
            if (batch_save) keys.emplace_back("batch");
            for (const auto& kv : logs) keys.push_back(kv.first);
            std::string msg = "traincb: ModelCheckpoint: filepath '" + template_.text() + "' uses {" + key +
                              "}, which is not available " + (batch_save ? "after a batch" : "at this epoch's end") +
                              "; available keys: " + detail::join(keys);
            if (auto m = detail::closest_match(key, keys); !m.empty()) msg += "; did you mean '" + m + "'?";
            if (batch_save && key.starts_with("val_")) msg += " (batch logs hold training values only)";
            throw InvalidArgument(msg);
        });
    if (skip) return std::nullopt;
    return std::filesystem::path(std::move(p));
}

TRAINCB_INLINE std::string ModelCheckpoint::num(const std::optional<double>& v) {
    if (!v) return "None";
    return detail::format_fixed(*v, 5);  // Keras's "%.5f", with '.' whatever the locale
}

TRAINCB_INLINE bool ModelCheckpoint::is_resumed_from(const std::filesystem::path& p) const {
    if (resumed_from_.empty()) return false;
    std::error_code ec;
    if (std::filesystem::equivalent(p, resumed_from_, ec)) return true;
    return std::filesystem::absolute(p, ec).lexically_normal() ==
           std::filesystem::absolute(resumed_from_, ec).lexically_normal();
}

TRAINCB_INLINE void ModelCheckpoint::decide(Context& ctx, bool batch_save) {
    // A list driven without on_train_begin resolves the direction here, failing loudly.
    if (needs_monitor() && !dir_)
        dir_ = detail::resolve_mode("ModelCheckpoint", opt_.mode, opt_.monitor, ctx.params().metric_directions);
    const std::optional<std::filesystem::path> path = format_path(ctx, batch_save);
    if (!path) return;
    const Logs& logs = ctx.logs();
    const double* pv = opt_.monitor.empty() ? nullptr : logs.find(opt_.monitor);
    const std::string epoch_str = "Epoch " + std::to_string(ctx.epoch() + 1) + ": ";
    const bool verbose = opt_.verbose > 0 && ctx.comm().is_primary();
    std::optional<double> score;
    if (pv != nullptr) score = *pv;
    if (needs_monitor()) {
        if (pv == nullptr) {
            if (!batch_save && opt_.monitor.starts_with("val_") && !has_val_keys(logs))
                return;  // an epoch without validation: nothing to compare
            std::string msg = logs.missing_key_message("ModelCheckpoint", opt_.monitor);
            if (opt_.strict) throw InvalidArgument(msg + " (set strict = false to save anyway, as Keras >= 3.10)");
            if (!warned_missing_) {
                warned_missing_ = true;
                warn(msg + "; saving anyway, as Keras >= 3.10 does (warned once per run)");
            }
        } else if (std::isnan(*pv)) {
            if (verbose) std::cout << epoch_str << opt_.monitor << " is NaN, which is never best; not saving\n";
            return;
        } else {
            const bool improved = !best_ || detail::better(*dir_, *pv, *best_, 0.0);
            if (opt_.save_best_only && !improved) {
                if (verbose) std::cout << epoch_str << opt_.monitor << " did not improve from " << num(best_) << '\n';
                return;
            }
            if (opt_.save_top_k == 0) return;
            if (opt_.save_top_k > 0) {
                const KeptCheckpoint* worst = worst_scored(*path);
                if (worst != nullptr && scored_count(*path) >= static_cast<std::size_t>(opt_.save_top_k) &&
                    !detail::better(*dir_, *pv, *worst->score, 0.0)) {
                    if (verbose)
                        std::cout << epoch_str << opt_.monitor << " (" << num(score) << ") is not in the top "
                                  << opt_.save_top_k << '\n';
                    return;
                }
            }
            if (verbose && opt_.save_best_only)
                std::cout << epoch_str << opt_.monitor << " improved from " << num(best_) << " to " << num(score)
                          << ", saving model to " << path->string() << '\n';
        }
    }
    Pending p{*path, best_, best_path_, kept_};
    if (score && !std::isnan(*score) && dir_.has_value() && (!best_ || detail::better(*dir_, *score, *best_, 0.0))) {
        best_ = score;
        best_path_ = *path;
    } else if (best_path_ == *path) {
        best_path_.clear();  // overwritten by a worse model
    }
    std::erase_if(kept_, [&](const KeptCheckpoint& k) { return k.path == *path; });
    KeptCheckpoint k;
    k.path = *path;
    if (score && !std::isnan(*score)) k.score = score;
    k.epoch = ctx.epoch();
    k.global_step = ctx.global_step();
    kept_.push_back(std::move(k));
    if (opt_.save_top_k > 0)
        while (scored_count({}) > static_cast<std::size_t>(opt_.save_top_k)) {
            const KeptCheckpoint* worst = worst_scored({});
            const std::filesystem::path gone = worst->path;
            if (!is_resumed_from(gone) && gone != *path) to_delete_.push_back(gone);
            if (best_path_ == gone) best_path_.clear();
            std::erase_if(kept_, [&](const KeptCheckpoint& e) { return e.path == gone; });
        }
    pending_ = std::move(p);
}

TRAINCB_INLINE std::size_t ModelCheckpoint::scored_count(const std::filesystem::path& except) const {
    std::size_t n = 0;
    for (const auto& k : kept_) n += (k.score && k.path != except) ? 1U : 0U;
    return n;
}

TRAINCB_INLINE const KeptCheckpoint* ModelCheckpoint::worst_scored(const std::filesystem::path& except) const {
    const KeptCheckpoint* w = nullptr;
    for (const auto& k : kept_) {
        if (!k.score || k.path == except) continue;
        if (w == nullptr || detail::better(*dir_, *w->score, *k.score, 0.0)) w = &k;
    }
    return w;
}

TRAINCB_INLINE void ModelCheckpoint::commit(Context& ctx, bool epoch_end) {
    if (!ctx.comm().is_primary()) {
        // Another rank of a data-parallel run: the decision (best, kept) is taken, rank 0
        // writes the files.
        pending_.reset();
        to_delete_.clear();
        return;
    }
    if (opt_.async_save) {
        commit_async(ctx, epoch_end);
        return;
    }
    std::optional<io::SafetensorsFile> full;
    if (pending_) {
        Pending p = std::move(*pending_);
        pending_.reset();
        const auto kind = opt_.save_weights_only ? io::CheckpointKind::Weights : io::CheckpointKind::Full;
        if (opt_.verbose > 0 && !opt_.save_best_only)
            std::cout << "Epoch " << ctx.epoch() + 1 << ": saving model to " << p.path.string() << '\n';
        try {
            io::SafetensorsFile file = io::encode_checkpoint(io::capture_checkpoint(ctx, kind));
            if (!main_file_.path().empty())
                main_file_.save(file, "ModelCheckpoint");
            else
                io::save_checkpoint_file(p.path, file, "ModelCheckpoint");
            if (kind == io::CheckpointKind::Full) full = std::move(file);
        } catch (...) {
            best_ = p.old_best;
            best_path_ = p.old_best_path;
            kept_ = std::move(p.old_kept);
            to_delete_.clear();
            throw;
        }
        if (opt_.verbose > 0)
            std::cout << "Epoch " << ctx.epoch() + 1 << ": finished saving model to " << p.path.string() << '\n';
        for (const auto& gone : to_delete_) {
            std::error_code ec;
            std::filesystem::remove(gone, ec);
            if (ec)
                warn("traincb: ModelCheckpoint: cannot delete '" + gone.string() + "', which dropped out of the top " +
                     std::to_string(opt_.save_top_k) + ": " + ec.message());
        }
        to_delete_.clear();
        if (!epoch_end && !opt_.save_last) return;
    }
    if (!opt_.save_last) return;
    if (!full) full = io::encode_checkpoint(io::capture_checkpoint(ctx, io::CheckpointKind::Full));
    last_file_.save(*full, "ModelCheckpoint");
}

TRAINCB_INLINE void ModelCheckpoint::commit_async(Context& ctx, bool epoch_end) {
    const bool had_pending = pending_.has_value();
    const bool write_last = opt_.save_last && (epoch_end || had_pending);
    if (!had_pending && !write_last) return;
    collect_background_save(true);
    detail::CheckpointJob job;
    job.component = "ModelCheckpoint";
    InFlight f;
    f.epoch = ctx.epoch();
    const auto kind = opt_.save_weights_only ? io::CheckpointKind::Weights : io::CheckpointKind::Full;
    if (had_pending) {
        Pending p = std::move(*pending_);
        pending_.reset();
        if (opt_.verbose > 0 && !opt_.save_best_only)
            std::cout << "Epoch " << ctx.epoch() + 1 << ": saving model to " << p.path.string() << '\n';
        job.writes.push_back({p.path, kind, main_file_.path().empty() ? nullptr : &main_file_});
        job.delete_after = 1;
        job.to_delete = std::exchange(to_delete_, {});
        job.delete_reason = "which dropped out of the top " + std::to_string(opt_.save_top_k);
        f.rollback = std::move(p);
    }
    if (write_last) job.writes.push_back({last_path_, io::CheckpointKind::Full, &last_file_});
    const bool any_full = kind == io::CheckpointKind::Full || write_last;
    try {
        job.state = io::capture_checkpoint_without_model(ctx, any_full ? io::CheckpointKind::Full : kind);
        writer_.submit(ctx.model(), std::move(job));
    } catch (...) {
        if (f.rollback) roll_back(*f.rollback);
        throw;
    }
    in_flight_ = std::move(f);
}

TRAINCB_INLINE void ModelCheckpoint::collect_background_save(bool wait) {
    if (!writer_.pending() || (!wait && !writer_.finished())) return;
    detail::CheckpointJobResult r = writer_.take_result();
    InFlight f = std::move(*in_flight_);
    in_flight_.reset();
    for (const auto& w : r.warnings) warn(w);
    if (r.error) {
        if (f.rollback && r.written == 0) roll_back(*f.rollback);
        pending_.reset();
        to_delete_.clear();
        raise_background_error(r.error, f.epoch);
    }
    if (opt_.verbose > 0 && f.rollback)
        std::cout << "Epoch " << f.epoch + 1 << ": finished saving model to " << f.rollback->path.string() << '\n';
}

TRAINCB_INLINE void ModelCheckpoint::roll_back(Pending& p) {
    best_ = p.old_best;
    best_path_ = std::move(p.old_best_path);
    kept_ = std::move(p.old_kept);
    to_delete_.clear();
}

TRAINCB_INLINE void ModelCheckpoint::raise_background_error(const std::exception_ptr& error, int epoch) {
    try {
        std::rethrow_exception(error);
    } catch (const IoError& e) {
        const std::string what = e.what();
        const std::string prefix = "traincb: ModelCheckpoint: ";
        const std::size_t at = what.find(detail::cat(" '", e.path().string(), "'"));
        if (!what.starts_with(prefix) || at == std::string::npos || at <= prefix.size()) throw;
        throw IoError("ModelCheckpoint",
                      detail::cat("background save of epoch ", std::to_string(epoch + 1), ": ",
                                  what.substr(prefix.size(), at - prefix.size())),
                      e.path(), e.code());
    }
}

}  // namespace traincb::inline v0
#endif  // TRAINCB_DEFINITIONS
