#pragma once
/// @file trainer.hpp
/// Trainer<Model>: drives any model satisfying the contract of model.hpp through epochs and fires
/// the callback chain with the hook order and stop rules of Keras's Model.fit
/// (docs/keras-semantics.md, "How fit drives callbacks").

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <compare>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/rollback.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/distributed.hpp"
#include "traincb/errors.hpp"
#include "traincb/interrupt.hpp"
#include "traincb/io/checkpoint.hpp"
#include "traincb/logs.hpp"
#include "traincb/metric.hpp"
#include "traincb/model.hpp"

namespace traincb::inline v0 {

/// Validation data given explicitly (copied once at the start of fit).
template <class Scalar = double>
struct ValidationData {
    Matrix<Scalar> x{};  ///< rows are samples; same columns as the training x
    Matrix<Scalar> y{};  ///< same columns as the training y
};

/// A batch's place in a run: batch `batch` (0-based) of absolute epoch `epoch` (0-based) in that
/// epoch's data order (the permutation of (seed, epoch) when shuffling), whatever else is skipped.
struct BatchIndex {
    int epoch = 0;           ///< 0-based absolute epoch
    std::int64_t batch = 0;  ///< 0-based batch within the epoch
    /// Ordered by epoch, then batch.
    friend auto operator<=>(const BatchIndex&, const BatchIndex&) = default;
};

/// Options of Trainer::fit, read with designated initializers like Keras keyword arguments:
/// `trainer.fit(x, y, {.epochs = 100, .batch_size = 10, .validation_split = 0.1}, early_stopping)`.
template <class Scalar = double>
struct FitOptions {
    int epochs = 1;          ///< the loop runs epochs initial_epoch .. epochs-1 (absolute, as Keras)
    int batch_size = 32;     ///< >= 1; the last batch of an epoch may be smaller
    bool shuffle = true;     ///< shuffle the training rows each epoch
    std::uint64_t seed = 0;  ///< shuffling seed: same seed, same batches, bit for bit
    std::optional<ValidationData<Scalar>> validation_data{};  ///< explicit validation set
    double validation_split = 0;  ///< in [0, 1): the LAST fraction of the rows (before shuffling), as Keras
    int validation_freq = 1;      ///< >= 1: validate after epochs where (epoch + 1) % freq == 0
    int initial_epoch = 0;        ///< >= 0 and <= epochs
    /// Loss used for val_loss (its name is ignored; the key is "loss"). When unset, the model's
    /// own loss(y_true, y_pred) is used if it has one; otherwise no val_loss is logged.
    std::shared_ptr<metrics::Metric> loss{};
    /// Metrics logged under their name() (running means over the epoch for training; computed on
    /// the whole validation set as val_<name>).
    std::vector<std::shared_ptr<metrics::Metric>> metrics{};
    int verbose = 0;  ///< 0 silent; 1 one line per epoch on stdout (use MetricLogger for more)
    /// Continue a run from a checkpoint: a full checkpoint file, or a directory whose newest valid
    /// full checkpoint is used (io::scan_checkpoints): when newer files are invalid (a corrupted
    /// latest), it falls back to the newest valid one with a warning naming each skipped file and
    /// why. A file that is invalid or missing falls back the same way to its previous version
    /// (io::previous_checkpoint_path). Checkpoint files that are all invalid are a
    /// NoValidCheckpointError, thrown before anything is written (see start_over_if_invalid). A
    /// directory with no full checkpoint, or a missing path without the ".safetensors" extension
    /// (a directory not created yet), starts a fresh run with a warning; a missing ".safetensors"
    /// file without a previous version is an IoError. Restores the model,
    /// the position (epoch and batch), the global step, the running loss and training metric
    /// states of a mid-epoch checkpoint (a metric that cannot be restored restarts, with a warning
    /// naming it), every callback's state (after on_train_begin) and the History. An option changed
    /// since the checkpoint wins, with a warning naming it. See docs/checkpoints.md.
    std::filesystem::path resume_from{};
    /// Install a SignalGuard (interrupt.hpp) during fit: SIGINT/SIGTERM then end training gracefully
    /// after the current batch, with a checkpoint (see interrupt_checkpoint) and EndKind::Interrupted.
    bool handle_signals = false;
    /// When training is interrupted (signal or request_interrupt), also save a full checkpoint
    /// here (besides ModelCheckpoint's last.safetensors when save_last is set). Empty: none.
    std::filesystem::path interrupt_checkpoint{};
    /// When every checkpoint file resume_from finds is invalid, start a fresh run (with a warning
    /// naming each file and why; the run then overwrites them) instead of throwing
    /// NoValidCheckpointError. A resume_from with no checkpoint at all starts fresh either way.
    bool start_over_if_invalid = false;
    /// Batches not to train on (BatchIndex: a position in the epoch's data order, so a list means
    /// the same batches whatever else is skipped). A skipped batch runs no step and no batch hook:
    /// the global step does not advance, the epoch's running loss and training metrics cover the
    /// other batches, and the data order of the rest is unchanged. A rollback
    /// (Context::request_rollback, e.g. SpikeDetection) adds the batch it undoes; checkpoints record
    /// the list, and a resumed run skips the checkpoint's batches as well as these.
    std::vector<BatchIndex> skip_batches{};
    /// Data-parallel training over the ranks of this communicator (docs/distributed.md): every
    /// rank passes the same x, y and options (and the same validation data); each trains on its
    /// share of every step, with batch_size rows per rank per step. The epoch's rows (its
    /// permutation, a function of seed and epoch) are dealt out in steps of batch_size x ranks
    /// rows, every rank runs the same number of steps, and the rows left over (fewer than a full
    /// step) join the epoch's last step, split as evenly as possible (so no row is dropped and a
    /// rank's last batch may hold up to 2 x batch_size - 1 rows). Validation rows are split
    /// across the ranks. The epoch's training loss and metrics, val_loss and the validation
    /// metrics are reduced exactly over every rank (metrics::all_reduce) before any callback
    /// sees them, so every rank takes the same decisions. Before the first step rank 0's model
    /// state is broadcast (visit_state), and a resume reads the checkpoint on rank 0 and
    /// broadcasts it. Averaging gradients stays the model's job. nullptr or one rank: a single
    /// process, exactly as without it.
    Communicator* communicator = nullptr;
};

namespace detail {
/// The version of epoch_permutation's order. Checkpoints record it as `"shuffle_order"` in their
/// fit_options; a checkpoint without it was written with order 1 (a Fisher-Yates shuffle over
/// mt19937_64 with a division-based bounded draw), whose batches this traincb cannot reproduce.
inline constexpr int kShuffleOrder = 2;

/// The high 64 bits of the 128-bit product a * b; the low 64 bits go to `lo`. Portable form
/// (four 32x32 -> 64 products), for compilers without a 128-bit integer type.
[[nodiscard]] constexpr std::uint64_t mul_64x64_portable(std::uint64_t a, std::uint64_t b, std::uint64_t& lo) noexcept {
    constexpr std::uint64_t m32 = 0xFFFFFFFFU;
    const std::uint64_t p0 = (a & m32) * (b & m32), p1 = (a & m32) * (b >> 32);
    const std::uint64_t p2 = (a >> 32) * (b & m32), p3 = (a >> 32) * (b >> 32);
    const std::uint64_t mid = (p0 >> 32) + (p1 & m32) + (p2 & m32);
    lo = (mid << 32) | (p0 & m32);
    return p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
}

/// The high 64 bits of the 128-bit product a * b; the low 64 bits go to `lo`.
[[nodiscard]] inline std::uint64_t mul_64x64(std::uint64_t a, std::uint64_t b, std::uint64_t& lo) noexcept {
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 U128;
    const U128 m = static_cast<U128>(a) * b;
    lo = static_cast<std::uint64_t>(m);
    return static_cast<std::uint64_t>(m >> 64);
#else
    return mul_64x64_portable(a, b, lo);
#endif
}

/// SplitMix64's output function (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014; Stafford's Mix13 constants): a bijection of 64-bit words.
[[nodiscard]] constexpr std::uint64_t splitmix64_mix(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9U;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBU;
    return z ^ (z >> 31);
}

/// SplitMix64, the generator java.util.SplittableRandom uses and xoshiro's authors seed with:
/// one 64-bit word of state, a few cycles per number, and it passes BigCrush. Specified in full
/// here, so its numbers are the same with every compiler and standard library.
struct SplitMix64 {
    std::uint64_t state = 0;  ///< advanced by the golden-ratio increment before each number
    /// The next number.
    constexpr std::uint64_t operator()() noexcept {
        state += 0x9E3779B97F4A7C15U;
        return splitmix64_mix(state);
    }
};

/// A uniform integer in [0, bound) for bound >= 1, by Lemire's nearly divisionless method ("Fast
/// random integer generation in an interval", ACM TOMACS 2019): the high word of rng() * bound,
/// rejecting the few products whose low word falls below 2^64 mod bound; the one division (that
/// remainder) runs only when the low word is below bound, with probability bound / 2^64.
template <class Rng>
[[nodiscard]] std::uint64_t bounded_random(Rng& rng, std::uint64_t bound) noexcept {
    std::uint64_t lo = 0;
    std::uint64_t hi = mul_64x64(rng(), bound, lo);
    if (lo < bound) {
        const std::uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
        while (lo < threshold) hi = mul_64x64(rng(), bound, lo);
    }
    return hi;
}

/// A deterministic, portable permutation of 0..n-1 for (seed, epoch) (shuffle order
/// kShuffleOrder): for i = n down to 2, swap element i-1 with element bounded_random(rng, i)
/// (Fisher-Yates), where rng is a SplitMix64 starting from state
/// splitmix64_mix(splitmix64_mix(seed) + epoch). std::shuffle and the std distributions differ
/// across standard libraries; this does not. Being a function of (seed, epoch), it needs no state
/// to resume.
TRAINCB_INLINE void epoch_permutation(std::vector<Eigen::Index>& idx, std::uint64_t seed, int epoch);

template <class C>
struct callback_type {
    using type = std::remove_cvref_t<C>;
};
template <class C>
struct callback_type<std::shared_ptr<C>> {
    using type = C;
};
template <class C>
struct callback_type<std::shared_ptr<C>&> {
    using type = C;
};
template <class C>
struct callback_type<const std::shared_ptr<C>&> {
    using type = C;
};

TRAINCB_INLINE std::string shape(Eigen::Index r, Eigen::Index c);

/// The states of the training metrics by log key (null for a metric that saves none), their
/// tensors into `tensors` by log key, for RunState::metric_states.
TRAINCB_INLINE nlohmann::json save_metric_states(const std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms,
                                                 std::map<std::string, StateDict, std::less<>>& tensors);

/// `j` as compact JSON text, for messages: nlohmann::json's serialiser is large, and in the
/// compiled mode it is compiled once, not in every translation unit that calls Trainer::fit.
[[nodiscard]] TRAINCB_INLINE std::string json_text(const nlohmann::json& j);

// Everything one fit works with, shared by its steps (Trainer::run owns it; it never moves, as
// RunState::metric_states points into it).
template <class S>
struct FitRun {
    using Mat = Matrix<S>;
    template <class DX, class DY>
    FitRun(const Eigen::MatrixBase<DX>& x_in, const Eigen::MatrixBase<DY>& y_in, const FitOptions<S>& o,
           CallbackList& l)
        : opt(o), list(l), x(x_in.derived()), y(y_in.derived()), n_train(x.rows()), first_epoch(o.initial_epoch) {}
    FitRun(const FitRun&) = delete;
    FitRun& operator=(const FitRun&) = delete;
    ~FitRun();

    const FitOptions<S>& opt;
    CallbackList& list;
    // Evaluated once: expressions and row-major inputs become one column-major matrix; a
    // column-major Matrix is referenced without a copy.
    const Eigen::Ref<const Mat> x, y;
    Eigen::Index n_train;     // the training rows: x's, less a validation split
    const Mat* vx = nullptr;  // the validation data, or nullptr when there is none
    const Mat* vy = nullptr;
    Mat split_x{}, split_y{};  // the rows of a validation split
    bool has_val_loss = false;
    std::vector<std::unique_ptr<::traincb::metrics::Metric>> train_metrics{}, val_metrics{};  // running, validation
    std::vector<std::string> metric_keys{};                         // their log keys, asked of name() once per fit
    std::unique_ptr<::traincb::metrics::Metric> val_loss_metric{};  // a clone of FitOptions::loss
    TrainParams params{};
    RunState run_state{};  // its loss_sum and loss_count are the epoch's running training loss
    History history{};
    std::optional<io::Checkpoint> resume{};
    int first_epoch;
    bool resumed_stopped = false;     // the checkpoint was taken after a stop request
    Mat xb{}, yb{}, xt{}, yt{};       // batch buffers: full batches, and the (smaller) tail batch
    std::vector<Eigen::Index> idx{};  // the epoch's order of the training rows
    Logs batch_logs{}, epoch_logs{}, val_logs{};
    Communicator* comm = nullptr;  // FitOptions::communicator when it has more than one rank
    int world = 1, rank = 0;       // its size and this process's rank
    // The current epoch's steps: the rows of its order from `offset` on, labelled (as batch
    // indices) from label_base to end_label - 1. Offset and label_base are 0 except in an
    // epoch resumed in the middle from a checkpoint written by another number of ranks.
    Eigen::Index offset = 0;
    std::int64_t label_base = 0, end_label = 0;
    int interrupted_by = 0;               // the signal that interrupted training (0: none)
    std::vector<BatchIndex> skip{};       // sorted: skip_batches, the checkpoint's and the rollbacks'
    detail::RollbackSnapshot snapshot{};  // see Context::request_snapshot
};

// The steps of Trainer::fit that depend neither on the model nor on the scalar type.
struct FitCommon {
    // [begin, begin + rows) of rank `rank`'s share of `n` rows split as evenly as possible over
    // `world` ranks (the first n % world ranks get one more).
    static std::pair<Eigen::Index, Eigen::Index> even_share(Eigen::Index n, int world, int rank) {
        const Eigen::Index per = n / world;
        const Eigen::Index extra = n % world;
        return {rank * per + std::min<Eigen::Index>(rank, extra), per + (rank < extra ? 1 : 0)};
    }

    // The number of steps over an epoch's rows from `offset` on: batches of `bs` rows on one
    // process (the last may be smaller); steps of bs rows per rank on several, the rows left over
    // joining the last step (see FitOptions::communicator).
    static std::int64_t steps_from(Eigen::Index n, Eigen::Index offset, Eigen::Index bs, int world) {
        const Eigen::Index rest = n - offset;
        if (world == 1) return (rest + bs - 1) / bs;
        return std::max<Eigen::Index>(1, rest / (bs * world));
    }

    // The skipped batches as checkpoints record them: [[epoch, batch], ...].
    static nlohmann::json skip_json(const std::vector<BatchIndex>& skip);

    // The number of ranks that wrote a checkpoint (1 when it does not say).
    static int checkpoint_world(const io::Checkpoint& c);

    // "'<file>' (<why>); ..." for messages.
    static std::string list_invalid(const std::vector<InvalidCheckpointFile>& files);

    // One warning for a resume past invalid files: each one and why, and the file used instead.
    static void warn_fallback(const std::filesystem::path& from, const std::vector<InvalidCheckpointFile>& invalid,
                              const std::filesystem::path& used, const io::CheckpointPosition& pos);

    // The batches a checkpoint's run skipped (fit_options.skip_batches; none in a checkpoint that
    // predates it).
    static std::vector<BatchIndex> checkpoint_skips(const io::Checkpoint& c, const std::filesystem::path& path);

    // Hands each stateful callback its saved state (after on_train_begin, as load_state requires).
    static void load_callback_states(CallbackList& list, const io::Checkpoint& c, const std::filesystem::path& path);

    // Restores the training metrics of the epoch a mid-epoch checkpoint was taken in; each one
    // that cannot be restored restarts (from the next batch), and one warning names them all.
    static void restore_train_metrics(std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms,
                                      const io::Checkpoint& c, const std::filesystem::path& path, int epoch,
                                      std::int64_t next_batch, std::int64_t steps);

    static void print_epoch(int epoch, int epochs, const Logs& logs);

    // x of xr x xc and y of yr x yc as Trainer::fit's data: as many rows, none empty.
    static void check_shapes(Eigen::Index xr, Eigen::Index xc, Eigen::Index yr, Eigen::Index yc);

    // predict(x) on the validation rows returned rows x cols for `expected` rows: one row per
    // sample, else an InvalidArgument.
    static void check_prediction(Eigen::Index rows, Eigen::Index cols, Eigen::Index expected) {
        if (rows != expected) bad_prediction(rows, cols, expected);
    }
    [[noreturn]] static void bad_prediction(Eigen::Index rows, Eigen::Index cols, Eigen::Index expected);
};

// This rank's rows of the step labelled `b` of the current epoch: [begin, begin + rows) of the
// epoch's order.
template <class S>
inline std::pair<Eigen::Index, Eigen::Index> batch_rows(const FitRun<S>& r, std::int64_t b) {
    const Eigen::Index bs = r.opt.batch_size;
    const auto k = static_cast<Eigen::Index>(b - r.label_base);
    if (r.world == 1) {
        const Eigen::Index begin = r.offset + k * bs;
        return {begin, std::min<Eigen::Index>(bs, r.n_train - begin)};
    }
    const Eigen::Index step = bs * r.world;
    const Eigen::Index g0 = r.offset + k * step;
    const Eigen::Index total = b + 1 == r.end_label ? r.n_train - g0 : step;
    const auto [begin, rows] = FitCommon::even_share(total, r.world, r.rank);
    return {g0 + begin, rows};
}

// The steps of Trainer::fit that do not touch the model. They are not members of Trainer<Model>, so
// they are compiled once per scalar type instead of once per model type; in the compiled mode
// traincb::compiled holds them for float and double (traincb/trainer-inl.hpp) and a translation
// unit that calls fit compiles none of them. The steps that call the model (and the per-batch
// loop) stay in Trainer.
template <class S>
struct FitSteps : FitCommon {
    using Run = FitRun<S>;

    // Validation: explicit data, or the last fraction of the rows (before shuffling, as Keras).
    static void prepare_validation(Run& r, bool model_has_loss);

    // The metric objects (one set running over the epoch, one for validation) and what the
    // callbacks are told about the run: sizes, and every key the epoch logs will hold.
    static void build_metrics_and_params(Run& r);

    // What a checkpoint records about the data order (see RunState); also what a resumed run
    // compares against the checkpoint's.
    static void record_run_state(Run& r);

    // Data-parallel: rank 0 finds and reads the checkpoint and broadcasts its bytes (no shared
    // file system needed); every rank decodes the same bytes. An error on rank 0 (no valid
    // checkpoint, unreadable) is rank 0's own exception there and a RemoteRankError elsewhere.
    static std::filesystem::path find_resume_on_rank0(Run& r, io::Checkpoint& out);

    // resume_from: loads the checkpoint, checks it against this run, and restores the position
    // and the History (the model's state is the caller's to restore from r.resume, the callbacks'
    // follow after on_train_begin). Returns false for a fresh run.
    static bool open_resume(Run& r);

    // Before a rollback of batch `b` of `epoch` (Context::request_rollback): a snapshot must have
    // been taken in this epoch; the batch joins the skipped ones.
    static void begin_rollback(Run& r, int epoch, std::int64_t b);

    // Batch buffers and row order, allocated once; the batch log keys are inserted once, so that
    // a batch allocates nothing.
    static void allocate_buffers(Run& r);

    static void install_signal_guard(const Run& r, std::optional<SignalGuard>& guard);

    // After on_train_begin: hands each callback its checkpointed state. A checkpoint taken after a
    // stop request resumes into that stop: the rest of its epoch (if any) is skipped as the
    // original run skipped it, and no further epoch runs.
    static void restore_callbacks(Run& r);

    // Shuffles, then starts the epoch afresh (on_epoch_begin) or, in the epoch a mid-epoch
    // checkpoint was taken in, where it left off. Returns the first batch to run.
    static std::int64_t begin_epoch(Run& r, int epoch, bool resumes_mid_epoch);

    // Adds `i` to the skipped batches, and to what checkpoints record of them.
    static void add_skip(Run& r, BatchIndex i);

    // Data-parallel, before on_interrupt in the middle of an epoch: the checkpoint (written by
    // rank 0) needs every rank's running values. Each rank's running loss goes into
    // fit_options.rank_losses (a resume on as many ranks gives each its own back, so the epoch
    // ends bit-identical), and the training metrics are merged over the ranks (a resume gives
    // them to rank 0).
    static void share_running_values(Run& r);

    // An epoch resumed in the middle on another number of ranks than wrote the checkpoint: the
    // rest of its order, from the global row the checkpoint reached, is dealt out over this run's
    // ranks (no row skipped or repeated); its batches are labelled on from the checkpoint's.
    static void reshard_resumed_epoch(Run& r, const io::Checkpoint& c);

    // The running training loss and metrics of an epoch resumed in the middle. One process, or the
    // same number of ranks as wrote the checkpoint: each gets its own back. Another number of
    // ranks: rank 0 gets them all (the sums of the others' and the merged metrics), the others
    // start from zero, so the epoch's reduced values are the same. A data-parallel checkpoint
    // taken by a save between epochs' ends (ModelCheckpoint with a batch save_freq) holds rank 0's
    // values only: the epoch's running values then restart, with a warning.
    static void restore_running_values(Run& r, const io::Checkpoint& c, int epoch);

    // The interrupt checkpoint keeps its previous version (io::RotatingCheckpoint) when that one
    // is this run's: the file the run resumed from.
    static void save_interrupt_checkpoint(Run& r);

    // on_train_end (interrupted, stopped or completed), and the History with how training ended.
    static History finish(Run& r, bool guarded);

    // The checkpoint resume_from names, loaded into `out` (verified), and its path; an empty path
    // for a fresh run. Falls back past invalid files (see FitOptions::resume_from).
    static std::filesystem::path find_resume_checkpoint(const FitOptions<S>& opt, io::Checkpoint& out);

    // Every checkpoint found is invalid: an error that writes nothing, or a fresh run when asked.
    static std::filesystem::path no_valid_checkpoint(const FitOptions<S>& opt,
                                                     std::vector<InvalidCheckpointFile> invalid);

    // Warns about every option changed since the checkpoint; refuses to continue mid-epoch when
    // the data order changed (the batches already done could not be told apart from the rest).
    static void check_resume(const io::Checkpoint& c, const std::filesystem::path& path, const RunState& now,
                             const FitOptions<S>& opt, int rank);

    // A checkpoint written by a traincb that shuffled in another order (one without
    // "shuffle_order" used order 1): the later epochs are shuffled in this traincb's order, with a
    // warning, but the rest of an epoch it was taken in the middle of cannot be determined.
    static void check_shuffle_order(const io::Checkpoint& c, const std::string& where, const RunState& now,
                                    const FitOptions<S>& opt, int rank);

    static void validate_options(const FitOptions<S>& o);

    // Runs `write` on rank 0 only and shares its outcome: an exception there is rank 0's own and a
    // RemoteRankError on every other rank. One process: just runs it.
    template <class F>
    static void on_rank0(Run& r, F&& write) {
        if (r.comm == nullptr) {
            write();
            return;
        }
        std::exception_ptr error;
        if (r.rank == 0) {
            try {
                write();
            } catch (...) {
                error = std::current_exception();
            }
        }
        std::array<std::int64_t, 1> failed{error ? 1 : 0};
        r.comm->max_int64(failed);
        if (failed[0] != 0) detail::throw_agreed_failure(*r.comm, 0, error);
    }
};

#if defined(TRAINCB_COMPILED)
// The compiled mode: traincb::compiled holds FitSteps<float> and FitSteps<double>
// (traincb/trainer-inl.hpp), so a translation unit that calls Trainer::fit does not compile them.
extern template struct FitRun<float>;
extern template struct FitRun<double>;
extern template struct FitSteps<float>;
extern template struct FitSteps<double>;
#endif
}  // namespace detail

/// Drives `Model` through epochs. The model is held by reference and must outlive the Trainer.
/// @code
/// Mlp model(...);
/// traincb::Trainer trainer(model);
/// traincb::EarlyStopping es({.monitor = "val_loss", .patience = 10});
/// traincb::History h = trainer.fit(x, y, {.epochs = 100, .validation_split = 0.1}, es);
/// @endcode
template <class M>
class Trainer {
public:
    /// Wraps `model` (not copied).
    explicit Trainer(M& model) : model_(model) {}

    /// The model being trained.
    [[nodiscard]] M& model() noexcept { return model_; }

    /// Trains on rows of `x` (samples) against rows of `y`, firing `callbacks` (each a Callback
    /// by reference, a std::shared_ptr to one, or a CallbackList). Returns every epoch's logs and
    /// why training ended (History::end). If anything throws, every callback's on_train_end still
    /// runs (with EndKind::Exception) and the exception propagates.
    /// @throws InvalidArgument for invalid options or mismatched shapes (before any epoch), and
    /// whatever a callback or the model throws.
    template <class DX, class DY, class... Cbs>
    History fit(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                const FitOptions<typename DX::Scalar>& options = {}, Cbs&&... callbacks) {
        using S = typename DX::Scalar;
        static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                      "traincb: Trainer::fit: x must hold float or double");
        static_assert(std::is_same_v<S, typename DY::Scalar>,
                      "traincb: Trainer::fit: x and y must have the same scalar type (cast one with .cast<T>())");
        static_assert(HasTrainBatch<M, S>,
                      "traincb: Trainer<Model>: the model has no train_batch(x, y) callable with "
                      "Eigen::Matrix<Scalar, Dynamic, Dynamic> batches. Add a member "
                      "`double train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y)` (or return "
                      "traincb::BatchResult{loss, outputs}), or specialise traincb::model_traits<Model>");
        static_assert(
            HasPredict<M, S>,
            "traincb: Trainer<Model>: the model has no predict(x) callable with an "
            "Eigen::Matrix<Scalar, Dynamic, Dynamic>. Add a member "
            "`Eigen::MatrixXd predict(const Eigen::MatrixXd& x)`, or specialise traincb::model_traits<Model>");
        static_assert((check_callback<typename detail::callback_type<Cbs>::type>() && ...),
                      "traincb: Trainer::fit: each callback must be a traincb::Callback (by reference or "
                      "std::shared_ptr) or a traincb::CallbackList");
        if constexpr (HasTrainBatch<M, S> && HasPredict<M, S>) {
            CallbackList list;
            (add_callback(list, std::forward<Cbs>(callbacks)), ...);
            return run<S>(x, y, options, list);
        } else {
            return {};
        }
    }

private:
    // The state of one fit, and the steps that do not touch the model (detail::FitSteps).
    template <class S>
    using Run = detail::FitRun<S>;
    template <class S>
    using Steps = detail::FitSteps<S>;
    template <class C>
    static constexpr bool check_callback() {
        if constexpr (std::is_base_of_v<Callback, C>) {
            static_assert(!detail::requires_learning_rate<C>() || HasLearningRate<M>,
                          "traincb: Trainer::fit: this callback changes the learning rate (ReduceLROnPlateau, "
                          "LearningRateScheduler), but the model has no learning_rate() const and "
                          "set_learning_rate(double); add them or specialise traincb::model_traits<Model>");
            return true;
        } else {
            return std::is_same_v<C, CallbackList>;
        }
    }
    template <class C>
    static void add_callback(CallbackList& list, C&& cb) {
        using T = std::remove_cvref_t<C>;
        if constexpr (std::is_same_v<T, CallbackList> || std::is_base_of_v<Callback, T>)
            list.add(cb);  // CallbackList::add has an overload for each
        else
            list.add(T(cb));  // shared_ptr
    }

    template <class S, class DX, class DY>
    History run(const Eigen::MatrixBase<DX>& x_in, const Eigen::MatrixBase<DY>& y_in, const FitOptions<S>& opt,
                CallbackList& list) {
        Steps<S>::validate_options(opt);
        Steps<S>::check_shapes(x_in.rows(), x_in.cols(), y_in.rows(), y_in.cols());
        Run<S> r(x_in, y_in, opt, list);
        if (opt.communicator != nullptr) {
            list.set_communicator(*opt.communicator);
            if (opt.communicator->size() > 1) {
                r.comm = opt.communicator;
                r.world = r.comm->size();
                r.rank = r.comm->rank();
            }
        }
        Steps<S>::prepare_validation(r, HasLoss<M, S>);
        Steps<S>::build_metrics_and_params(r);
        Steps<S>::record_run_state(r);
        load_resume(r);
        if (r.comm != nullptr) broadcast_model(r);
        attach_to_callbacks(r);
        Steps<S>::allocate_buffers(r);
        std::optional<SignalGuard> guard;
        if (opt.handle_signals) Steps<S>::install_signal_guard(r, guard);
        try {
            list.on_train_begin();
            Steps<S>::restore_callbacks(r);
            for (int epoch = r.first_epoch; epoch < opt.epochs; ++epoch)
                if (!run_epoch(r, epoch)) break;
            if (r.interrupted_by != 0) Steps<S>::save_interrupt_checkpoint(r);
        } catch (...) {
            list.on_train_end(std::current_exception());
            throw;
        }
        return Steps<S>::finish(r, guard.has_value());
    }

    // resume_from: loads the checkpoint, checks it against this run, and restores the model, the
    // position and the History (the callbacks' states follow after on_train_begin).
    template <class S>
    void load_resume(Run<S>& r) {
        if (r.opt.resume_from.empty()) return;
        if constexpr (!HasState<M>) {
            throw InvalidArgument(
                "traincb: Trainer::fit: resume_from is set, but the model has no "
                "visit_state(traincb::StateVisitor&), so its state cannot be restored; add it (see "
                "traincb/state.hpp) or specialise traincb::model_traits");
        } else {
            if (Steps<S>::open_resume(r)) io::restore_model(*r.resume, model_);
        }
    }

    // Data-parallel: every rank starts from rank 0's model state (after a resume too, so ranks
    // initialised differently, or a checkpoint only rank 0 could read, leave every rank equal).
    template <class S>
    void broadcast_model(Run<S>& r) {
        if constexpr (HasState<M>) {
            std::vector<std::byte> bytes;
            if (r.rank == 0) {
                StateDict d;
                StateCollector collect(d);
                model_traits<M>::visit_state(model_, collect);
                bytes = detail::pack_metric_state(nlohmann::json::object(), d);
            }
            r.comm->broadcast_resize(bytes, 0);
            if (r.rank != 0) {
                nlohmann::json unused;
                StateDict d;
                detail::unpack_metric_state(bytes, unused, d);
                StateLoader load(d);
                model_traits<M>::visit_state(model_, load);
            }
        } else if (r.rank == 0) {
            warn(
                "traincb: Trainer::fit: data-parallel training with a model that has no "
                "visit_state(traincb::StateVisitor&): traincb cannot give every rank rank 0's initial weights, so "
                "initialise them identically on every rank (the same seed), or add visit_state");
        }
    }

    template <class S>
    void attach_to_callbacks(Run<S>& r) {
        r.list.set_model(model_);
        r.list.set_params(r.params);
        r.list.set_global_step(r.resume ? r.resume->position.global_step
                                        : static_cast<std::int64_t>(r.opt.initial_epoch) * r.params.steps_per_epoch);
        r.list.set_history(&r.history);
        r.list.set_run_state(&r.run_state);
        r.list.set_rollback_support(true);
    }

    // One epoch: its batches, then validation and on_epoch_end. Returns false when training ends
    // with it (a stop request or an interruption), or before it (a resumed run that had stopped).
    template <class S>
    bool run_epoch(Run<S>& r, int epoch) {
        const bool resumes_mid_epoch = r.resume && !r.resume->position.epoch_completed && epoch == r.first_epoch;
        if (r.resumed_stopped && !resumes_mid_epoch) return false;
        const std::int64_t first_batch = Steps<S>::begin_epoch(r, epoch, resumes_mid_epoch);
        const std::int64_t last_batch = run_batches(r, epoch, first_batch);
        if (r.interrupted_by != 0) {
            if (r.comm != nullptr) Steps<S>::share_running_values(r);
            r.list.on_interrupt(epoch, static_cast<int>(last_batch));
            return false;
        }
        end_epoch(r, epoch);
        if (r.list.stop_requested()) return false;
        if (const int sig = r.list.interrupt_to_handle(); sig != 0) {
            r.interrupted_by = sig;
            r.list.on_interrupt(epoch, -1);
            return false;
        }
        return true;
    }

    // The epoch's batches from `first`, until the last one, a stop request or an interruption:
    // skipped batches are passed over; a snapshot is taken before a batch when a callback asked for
    // one; a batch a callback asked to roll back is undone and the loop goes on from the snapshot.
    // Returns the last batch run (-1: none).
    template <class S>
    std::int64_t run_batches(Run<S>& r, int epoch, std::int64_t first) {
        const bool logs_wanted = r.list.wants_batch_logs();
        std::int64_t last = -1;
        for (std::int64_t b = first; b < r.end_label; ++b) {
            if (std::binary_search(r.skip.begin(), r.skip.end(), BatchIndex{epoch, b})) continue;
            if (r.list.take_snapshot_request()) take_snapshot(r, epoch, b);
            run_batch(r, b, logs_wanted);
            if (r.list.take_rollback_request()) {
                b = roll_back(r, epoch, b) - 1;
                continue;
            }
            last = b;
            if (r.list.stop_requested()) break;
            // After the epoch's last batch the epoch is finished first: the checkpoint is then an
            // epoch-boundary one, from which nothing is lost.
            if (const int sig = r.list.interrupt_to_handle(); b + 1 < r.end_label && sig != 0) {
                r.interrupted_by = sig;
                break;
            }
        }
        return last;
    }

    // The state before batch `b` of `epoch`, for a rollback (Context::request_snapshot).
    template <class S>
    void take_snapshot(Run<S>& r, int epoch, std::int64_t b) {
        if constexpr (HasState<M>) {
            std::optional<double> lr;
            if constexpr (HasLearningRate<M>) lr = model_traits<M>::learning_rate(std::as_const(model_));
            r.snapshot.take([this](StateVisitor& v) { model_traits<M>::visit_state(model_, v); }, lr, r.run_state,
                            r.train_metrics, r.list.context().global_step(), epoch, b);
        } else {
            (void)r, (void)epoch, (void)b;
            throw LogicError(
                "traincb: Trainer::fit: a callback asked for a snapshot (Context::request_snapshot), but the model "
                "has no visit_state(traincb::StateVisitor&), so its state cannot be copied; add it (see "
                "traincb/state.hpp) or specialise traincb::model_traits");
        }
    }

    // Undoes batch `b` of `epoch` (Context::request_rollback): the batch joins the skipped ones,
    // and the snapshot's state comes back. Returns the batch to go on from (the snapshot's).
    template <class S>
    std::int64_t roll_back(Run<S>& r, int epoch, std::int64_t b) {
        Steps<S>::begin_rollback(r, epoch, b);
        if constexpr (HasState<M>) {
            r.snapshot.restore([this](StateVisitor& v) { model_traits<M>::visit_state(model_, v); },
                               [&](double lr) {
                                   if constexpr (HasLearningRate<M>)
                                       model_traits<M>::set_learning_rate(model_, lr);
                                   else
                                       (void)lr;
                               },
                               r.run_state, r.train_metrics);
        }
        r.list.set_global_step(r.snapshot.global_step());
        return r.snapshot.batch();
    }

    // Batch `b`: gathers its rows, trains on them, and updates the running loss, the training
    // metrics and (when a callback reads them) the batch logs, between the two batch hooks.
    template <class S>
    void run_batch(Run<S>& r, std::int64_t b, bool logs_wanted) {
        const auto [begin, rows] = detail::batch_rows(r, b);
        const bool full = rows == r.xb.rows();
        if (!full && r.xt.rows() != rows) {  // only in an epoch resumed on another number of ranks
            r.xt.resize(rows, r.x.cols());
            r.yt.resize(rows, r.y.cols());
        }
        Matrix<S>& bx = full ? r.xb : r.xt;
        Matrix<S>& by = full ? r.yb : r.yt;
        for (Eigen::Index i = 0; i < rows; ++i) {
            const Eigen::Index src = r.idx[static_cast<std::size_t>(begin + i)];
            bx.row(i) = r.x.row(src);
            by.row(i) = r.y.row(src);
        }
        r.list.on_train_batch_begin(static_cast<int>(b));
        decltype(auto) result = model_traits<M>::train_batch(model_, std::as_const(bx), std::as_const(by));
        r.run_state.batch_loss = detail::batch_loss(result);
        r.run_state.loss_sum += *r.run_state.batch_loss * static_cast<double>(rows);
        r.run_state.loss_count += rows;
        if (!r.train_metrics.empty()) update_train_metrics(r.train_metrics, result, bx, by);
        if (logs_wanted) {
            r.batch_logs.set("loss", r.run_state.loss_sum / static_cast<double>(r.run_state.loss_count));
            for (std::size_t i = 0; i < r.train_metrics.size(); ++i)
                r.batch_logs.set(r.metric_keys[i], r.train_metrics[i]->result());
        }
        r.list.on_train_batch_end(static_cast<int>(b), r.batch_logs);
    }

    // The epoch's logs (training means, then val_* when this epoch validates), then every
    // on_epoch_end, the History, every on_epoch_commit, and the verbose line.
    template <class S>
    void end_epoch(Run<S>& r, int epoch) {
        r.epoch_logs.clear();
        const bool validating = r.vx != nullptr && (epoch + 1) % r.opt.validation_freq == 0;
        if (r.comm != nullptr) {
            end_epoch_distributed(r, validating);
        } else {
            r.epoch_logs.set("loss", r.run_state.loss_sum / static_cast<double>(r.run_state.loss_count));
            for (std::size_t i = 0; i < r.train_metrics.size(); ++i)
                r.epoch_logs.set(r.metric_keys[i], r.train_metrics[i]->result());
            if (validating) validate(r);
        }
        r.list.on_epoch_end(epoch, r.epoch_logs);
        if (r.opt.verbose > 0 && r.rank == 0) Steps<S>::print_epoch(epoch, r.opt.epochs, r.epoch_logs);
    }

    // Data-parallel end of epoch: this rank's validation share is predicted, then one exchange
    // (metrics::all_reduce) merges every rank's running training loss and metrics, validation
    // metrics and val_loss, so that the logs every callback sees are the values over all rows,
    // bit-identical on every rank.
    template <class S>
    void end_epoch_distributed(Run<S>& r, bool validating) {
        std::vector<metrics::Metric*> ms;
        for (const auto& m : r.train_metrics) ms.push_back(m.get());
        std::array<double, 2> sums{r.run_state.loss_sum, 0.0};  // training, validation loss
        std::array<std::int64_t, 2> counts{r.run_state.loss_count, 0};
        if (validating) {
            r.list.on_test_begin();
            predict_validation_share(r, sums[1], counts[1]);
            for (const auto& m : r.val_metrics) ms.push_back(m.get());
            if (r.val_loss_metric) ms.push_back(r.val_loss_metric.get());
        }
        metrics::all_reduce(*r.comm, ms, sums, counts);
        r.epoch_logs.set("loss", sums[0] / static_cast<double>(counts[0]));
        for (std::size_t i = 0; i < r.train_metrics.size(); ++i)
            r.epoch_logs.set(r.metric_keys[i], r.train_metrics[i]->result());
        if (!validating) return;
        r.val_logs.clear();
        if (r.val_loss_metric)
            r.val_logs.set("loss", r.val_loss_metric->result());
        else if (r.has_val_loss)
            r.val_logs.set("loss", sums[1] / static_cast<double>(counts[1]));
        for (std::size_t i = 0; i < r.val_metrics.size(); ++i)
            r.val_logs.set(r.metric_keys[i], r.val_metrics[i]->result());
        r.list.on_test_end(r.val_logs);
        for (const auto& [k, v] : r.val_logs) r.epoch_logs.set("val_" + k, v);
    }

    // This rank's validation rows: the metrics (and val_loss metric) are updated with them; the
    // model's own loss, a mean, is returned as a sum over `count` rows.
    template <class S>
    void predict_validation_share(Run<S>& r, double& loss_sum, std::int64_t& count) {
        if (r.val_loss_metric) r.val_loss_metric->reset();
        for (auto& m : r.val_metrics) m->reset();
        if (r.vx->rows() == 0) return;  // fewer validation rows than ranks
        const Matrix<S> pred = model_traits<M>::predict(model_, *r.vx);
        Steps<S>::check_prediction(pred.rows(), pred.cols(), r.vy->rows());
        if (r.val_loss_metric) {
            r.val_loss_metric->update(*r.vy, pred);
        } else if constexpr (HasLoss<M, S>) {
            loss_sum = model_traits<M>::loss(model_, *r.vy, pred) * static_cast<double>(pred.rows());
            count = pred.rows();
        }
        for (auto& m : r.val_metrics) m->update(*r.vy, pred);
    }

    // Validation between on_test_begin and on_test_end: the loss and the metrics over the whole
    // validation set, added to the epoch logs as val_*.
    template <class S>
    void validate(Run<S>& r) {
        r.list.on_test_begin();
        const Matrix<S> pred = model_traits<M>::predict(model_, *r.vx);
        Steps<S>::check_prediction(pred.rows(), pred.cols(), r.vy->rows());
        r.val_logs.clear();
        if (r.val_loss_metric) {
            r.val_loss_metric->reset();
            r.val_loss_metric->update(*r.vy, pred);
            r.val_logs.set("loss", r.val_loss_metric->result());
        } else if constexpr (HasLoss<M, S>) {
            r.val_logs.set("loss", model_traits<M>::loss(model_, *r.vy, pred));
        }
        for (std::size_t i = 0; i < r.val_metrics.size(); ++i) {
            auto& m = r.val_metrics[i];
            m->reset();
            m->update(*r.vy, pred);
            r.val_logs.set(r.metric_keys[i], m->result());
        }
        r.list.on_test_end(r.val_logs);
        for (const auto& [k, v] : r.val_logs) r.epoch_logs.set("val_" + k, v);
    }

    template <class R, class Mat>
    void update_train_metrics(std::vector<std::unique_ptr<metrics::Metric>>& ms, const R& result, const Mat& bx,
                              const Mat& by) {
        if constexpr (detail::LossAndOutputs<std::remove_cvref_t<R>>) {
            (void)bx;
            const Mat& out = result.outputs;
            for (auto& m : ms) m->update(by, out);
        } else {
            // The model returns only its loss: a second forward pass gives the outputs.
            const Mat out = model_traits<M>::predict(model_, bx);
            for (auto& m : ms) m->update(by, out);
        }
    }

    M& model_;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/trainer-inl.hpp"
#endif
