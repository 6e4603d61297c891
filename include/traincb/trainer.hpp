#pragma once
/// @file trainer.hpp
/// Trainer<Model>: drives any model satisfying the contract of model.hpp through epochs and fires
/// the callback chain with the hook order and stop rules of Keras's Model.fit
/// (keras-reference.md section 0).

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
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
    /// full checkpoint is used (io::find_latest_checkpoint). A directory with no checkpoint, or a
    /// missing path without the ".safetensors" extension (a directory not created yet), starts a
    /// fresh run with a warning; a missing ".safetensors" file is an IoError. Restores the model,
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
};

namespace detail {
/// A deterministic, portable permutation of 0..n-1 for (seed, epoch): a Fisher-Yates shuffle driven
/// by mt19937_64 with explicit rejection sampling (std::shuffle and the std distributions differ
/// across standard libraries). Being a function of (seed, epoch), it needs no state to resume.
inline void epoch_permutation(std::vector<Eigen::Index>& idx, std::uint64_t seed, int epoch) {
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<Eigen::Index>(i);
    std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                      static_cast<std::uint32_t>(epoch), 0x7472U};
    std::mt19937_64 rng(seq);
    for (std::size_t i = idx.size(); i > 1; --i) {
        const std::uint64_t bound = i;
        const std::uint64_t limit =
            std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % bound;
        std::uint64_t r;
        do r = rng();
        while (r >= limit);
        std::swap(idx[i - 1], idx[static_cast<std::size_t>(r % bound)]);
    }
}

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

inline std::string shape(Eigen::Index r, Eigen::Index c) {
    return std::to_string(r) + "x" + std::to_string(c);
}

/// The states of the training metrics by log key (null for a metric that saves none), for
/// RunState::metric_states.
inline nlohmann::json save_metric_states(const std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& m : ms) {
        nlohmann::json s;
        out[m->name()] = m->save_state(s) ? std::move(s) : nlohmann::json();
    }
    return out;
}
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
        if constexpr (std::is_same_v<T, CallbackList>)
            list.add(cb);
        else if constexpr (std::is_base_of_v<Callback, T>)
            list.add(cb);
        else
            list.add(typename std::remove_cvref_t<C>(cb));  // shared_ptr
    }

    template <class S, class DX, class DY>
    History run(const Eigen::MatrixBase<DX>& x_in, const Eigen::MatrixBase<DY>& y_in, const FitOptions<S>& opt,
                CallbackList& list) {
        using Mat = Matrix<S>;
        validate_options(opt);
        if (x_in.rows() != y_in.rows())
            throw InvalidArgument("traincb: Trainer::fit: x has " + detail::shape(x_in.rows(), x_in.cols()) +
                                  " but y has " + detail::shape(y_in.rows(), y_in.cols()) +
                                  "; rows are samples, so both need the same number of rows");
        if (x_in.rows() == 0 || x_in.cols() == 0 || y_in.cols() == 0)
            throw InvalidArgument("traincb: Trainer::fit: x is " + detail::shape(x_in.rows(), x_in.cols()) +
                                  " and y is " + detail::shape(y_in.rows(), y_in.cols()) + "; pass non-empty data");
        // Evaluate once: expressions and row-major inputs become one column-major matrix; a
        // column-major Matrix is referenced without a copy.
        const Eigen::Ref<const Mat> x = x_in.derived();
        const Eigen::Ref<const Mat> y = y_in.derived();

        // Validation: explicit data, or the last fraction of the rows (before shuffling, as Keras).
        Eigen::Index n_train = x.rows();
        const Mat* vx = nullptr;
        const Mat* vy = nullptr;
        Mat split_x, split_y;
        if (opt.validation_data) {
            const auto& vd = *opt.validation_data;
            if (vd.x.cols() != x.cols() || vd.y.cols() != y.cols() || vd.x.rows() != vd.y.rows() || vd.x.rows() == 0)
                throw InvalidArgument(
                    "traincb: Trainer::fit: validation x is " + detail::shape(vd.x.rows(), vd.x.cols()) +
                    " and validation y is " + detail::shape(vd.y.rows(), vd.y.cols()) + ", but training x is " +
                    detail::shape(x.rows(), x.cols()) + " and y is " + detail::shape(y.rows(), y.cols()) +
                    "; validation needs the same columns and as many x rows as y rows (at least one)");
            vx = &vd.x;
            vy = &vd.y;
        } else if (opt.validation_split > 0) {
            const auto n_val =
                static_cast<Eigen::Index>(std::floor(static_cast<double>(x.rows()) * opt.validation_split));
            n_train = x.rows() - n_val;
            if (n_val == 0 || n_train == 0)
                throw InvalidArgument("traincb: Trainer::fit: validation_split " +
                                      detail::format_double(opt.validation_split) + " of " + std::to_string(x.rows()) +
                                      " rows leaves " + std::to_string(n_train) + " training and " +
                                      std::to_string(n_val) + " validation rows; both need at least one");
            split_x = x.bottomRows(n_val);
            split_y = y.bottomRows(n_val);
            vx = &split_x;
            vy = &split_y;
        }
        const bool has_val = vx != nullptr;
        const bool has_val_loss = has_val && (opt.loss != nullptr || HasLoss<M, S>);

        // Metric objects: one set for training (running), one for validation.
        std::vector<std::unique_ptr<metrics::Metric>> train_metrics, val_metrics;
        std::unique_ptr<metrics::Metric> val_loss_metric = opt.loss ? opt.loss->clone() : nullptr;
        TrainParams params;
        params.epochs = opt.epochs;
        params.initial_epoch = opt.initial_epoch;
        params.batch_size = opt.batch_size;
        params.samples = n_train;
        params.steps_per_epoch = (n_train + opt.batch_size - 1) / opt.batch_size;
        params.verbose = opt.verbose;
        params.has_validation = has_val;
        params.log_keys.push_back("loss");
        if (has_val_loss) params.log_keys.push_back("val_loss");
        for (const auto& m : opt.metrics) {
            if (!m) throw InvalidArgument("traincb: Trainer::fit: options.metrics holds a null pointer");
            const std::string key = m->name();
            for (const auto& k : params.log_keys)
                if (k == key || k == "val_" + key)
                    throw InvalidArgument("traincb: Trainer::fit: two metrics log the key '" + key +
                                          "'; give one of them another name");
            train_metrics.push_back(m->clone());
            train_metrics.back()->reset();
            params.log_keys.push_back(key);
            params.metric_directions.emplace_back(key, m->direction());
            if (has_val) {
                val_metrics.push_back(m->clone());
                params.log_keys.push_back("val_" + key);
                params.metric_directions.emplace_back("val_" + key, m->direction());
            }
        }
        std::sort(params.log_keys.begin(), params.log_keys.end());

        // What a checkpoint records about the data order (see RunState); also what a resumed run
        // compares against the checkpoint's.
        RunState run_state;
        run_state.seed = opt.seed;
        run_state.fit_options = {{"epochs", opt.epochs},
                                 {"batch_size", opt.batch_size},
                                 {"shuffle", opt.shuffle},
                                 {"samples", static_cast<std::int64_t>(n_train)},
                                 {"steps_per_epoch", params.steps_per_epoch},
                                 {"validation_freq", opt.validation_freq},
                                 {"has_validation", has_val}};

        History history;
        int first_epoch = opt.initial_epoch;
        std::optional<io::Checkpoint> resume;
        if (!opt.resume_from.empty()) {
            if constexpr (!HasState<M>) {
                throw InvalidArgument(
                    "traincb: Trainer::fit: resume_from is set, but the model has no "
                    "visit_state(traincb::StateVisitor&), so its state cannot be restored; add it (see "
                    "traincb/state.hpp) or specialise traincb::model_traits");
            } else {
                const std::filesystem::path path = resolve_resume_path(opt.resume_from);
                if (!path.empty()) {
                    resume = io::load_checkpoint(path, "Trainer");
                    check_resume(*resume, path, run_state, opt);
                    first_epoch = resume->position.next_epoch();
                    params.resumed = true;
                    params.initial_epoch = first_epoch;
                    params.resumed_from = path;
                    io::restore_model(*resume, model_);
                    history.epoch = std::move(resume->history.epoch);
                    history.history = std::move(resume->history.history);
                }
            }
        }
        list.set_model(model_);
        list.set_params(params);
        list.set_global_step(resume ? resume->position.global_step
                                    : static_cast<std::int64_t>(opt.initial_epoch) * params.steps_per_epoch);
        list.set_history(&history);
        // Metric states are gathered only when a mid-epoch checkpoint is taken, never per batch.
        if (!train_metrics.empty())
            run_state.metric_states = [&train_metrics] { return detail::save_metric_states(train_metrics); };
        list.set_run_state(&run_state);

        // Batch buffers, allocated once: full batches and the (smaller) tail batch.
        const Eigen::Index bs = std::min<Eigen::Index>(opt.batch_size, n_train);
        const Eigen::Index tail = n_train % opt.batch_size;
        Mat xb(bs, x.cols()), yb(bs, y.cols());
        Mat xt(tail, x.cols()), yt(tail, y.cols());
        std::vector<Eigen::Index> idx(static_cast<std::size_t>(n_train));
        for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<Eigen::Index>(i);

        Logs batch_logs, epoch_logs, val_logs;
        // Insert the batch keys once so per-batch updates never allocate.
        batch_logs.set("loss", 0.0);
        for (const auto& m : train_metrics) batch_logs.set(m->name(), 0.0);

        std::optional<SignalGuard> guard;
        if (opt.handle_signals) {
            guard.emplace();
            if (!list.handles_interrupt() && opt.interrupt_checkpoint.empty())
                warn(
                    "traincb: Trainer::fit: handle_signals is set but nothing saves a checkpoint on interruption; "
                    "set FitOptions::interrupt_checkpoint or use a ModelCheckpoint with save_last = true");
        }
        int interrupted_by = 0;  // the signal that interrupted training (0: none)
        try {
            list.on_train_begin();
            // A checkpoint taken after a stop request resumes into that stop: the rest of its epoch
            // (if any) is skipped as the original run skipped it, and no further epoch runs.
            bool resumed_stopped = false;
            if (resume) {
                load_callback_states(list, *resume, params.resumed_from);
                if (resume->stopped) {
                    list.context().request_stop(resume->stop_source, resume->stop_reason);
                    resumed_stopped = true;
                }
            }
            const bool resume_mid_epoch = resume && !resume->position.epoch_completed;
            for (int epoch = first_epoch; epoch < opt.epochs; ++epoch) {
                if (resumed_stopped && !(resume_mid_epoch && epoch == first_epoch)) break;
                if (opt.shuffle) detail::epoch_permutation(idx, opt.seed, epoch);
                for (auto& m : train_metrics) m->reset();
                double loss_sum = 0;
                std::int64_t seen = 0;
                std::int64_t first_batch = 0;
                if (resume_mid_epoch && epoch == first_epoch) {
                    loss_sum = resume->loss_sum;
                    seen = resume->loss_count;
                    first_batch = resumed_stopped ? params.steps_per_epoch : resume->position.next_batch();
                    list.on_epoch_resume(epoch);
                    restore_train_metrics(train_metrics, *resume, params.resumed_from, epoch,
                                          resume->position.next_batch(), params.steps_per_epoch);
                } else {
                    list.on_epoch_begin(epoch);
                }
                run_state.loss_sum = loss_sum;
                run_state.loss_count = seen;
                const bool batch_logs_wanted = list.wants_batch_logs();
                std::int64_t last_batch = -1;
                for (std::int64_t b = first_batch; b < params.steps_per_epoch; ++b) {
                    const Eigen::Index begin = static_cast<Eigen::Index>(b) * opt.batch_size;
                    const Eigen::Index rows = std::min<Eigen::Index>(opt.batch_size, n_train - begin);
                    Mat& bx = rows == bs ? xb : xt;
                    Mat& by = rows == bs ? yb : yt;
                    for (Eigen::Index r = 0; r < rows; ++r) {
                        const Eigen::Index src = idx[static_cast<std::size_t>(begin + r)];
                        bx.row(r) = x.row(src);
                        by.row(r) = y.row(src);
                    }
                    list.on_train_batch_begin(static_cast<int>(b));
                    decltype(auto) result = model_traits<M>::train_batch(model_, std::as_const(bx), std::as_const(by));
                    const double loss = detail::batch_loss(result);
                    loss_sum += loss * static_cast<double>(rows);
                    seen += rows;
                    run_state.loss_sum = loss_sum;
                    run_state.loss_count = seen;
                    if (!train_metrics.empty()) update_train_metrics(train_metrics, result, bx, by);
                    if (batch_logs_wanted) {
                        batch_logs.set("loss", loss_sum / static_cast<double>(seen));
                        for (const auto& m : train_metrics) batch_logs.set(m->name(), m->result());
                    }
                    list.on_train_batch_end(static_cast<int>(b), batch_logs);
                    last_batch = b;
                    if (list.stop_requested()) break;
                    // After the epoch's last batch the epoch is finished first: the checkpoint is
                    // then an epoch-boundary one, from which nothing is lost.
                    if (b + 1 < params.steps_per_epoch && interrupt_requested()) {
                        interrupted_by = interrupt_signal();
                        break;
                    }
                }
                if (interrupted_by != 0) {
                    list.on_interrupt(epoch, static_cast<int>(last_batch));
                    break;
                }
                epoch_logs.clear();
                epoch_logs.set("loss", loss_sum / static_cast<double>(seen));
                for (const auto& m : train_metrics) epoch_logs.set(m->name(), m->result());
                if (has_val && (epoch + 1) % opt.validation_freq == 0) {
                    list.on_test_begin();
                    const Mat pred = model_traits<M>::predict(model_, *vx);
                    if (pred.rows() != vy->rows())
                        throw InvalidArgument("traincb: Trainer::fit: predict(x) returned " +
                                              detail::shape(pred.rows(), pred.cols()) + " for " +
                                              std::to_string(vx->rows()) +
                                              " validation rows; it must return one row per sample");
                    val_logs.clear();
                    if (val_loss_metric) {
                        val_loss_metric->reset();
                        val_loss_metric->update(*vy, pred);
                        val_logs.set("loss", val_loss_metric->result());
                    } else if constexpr (HasLoss<M, S>) {
                        val_logs.set("loss", model_traits<M>::loss(model_, *vy, pred));
                    }
                    for (auto& m : val_metrics) {
                        m->reset();
                        m->update(*vy, pred);
                        val_logs.set(m->name(), m->result());
                    }
                    list.on_test_end(val_logs);
                    for (const auto& [k, v] : val_logs) epoch_logs.set("val_" + k, v);
                }
                // Runs every on_epoch_end, records the epoch in `history`, then every on_epoch_commit.
                list.on_epoch_end(epoch, epoch_logs);
                if (opt.verbose > 0) print_epoch(epoch, opt.epochs, epoch_logs);
                if (list.stop_requested()) break;
                if (interrupt_requested()) {
                    interrupted_by = interrupt_signal();
                    list.on_interrupt(epoch, -1);
                    break;
                }
            }
            if (interrupted_by != 0) {
                clear_interrupt();
                if (!opt.interrupt_checkpoint.empty())
                    io::save_checkpoint(opt.interrupt_checkpoint,
                                        io::capture_checkpoint(list.context(), io::CheckpointKind::Full), "Trainer");
            }
        } catch (...) {
            list.on_train_end(std::current_exception());
            throw;
        }
        if (interrupted_by != 0) {
            TrainEnd end;
            end.kind = EndKind::Interrupted;
            end.source = "signal";
            end.reason = interrupt_signal_name(interrupted_by);
            list.on_train_end(std::move(end));
        } else {
            list.on_train_end();
        }
        // A signal that arrived after the last check belongs to this fit, not to the next one.
        if (guard) clear_interrupt();
        history.end = list.context().end();
        return history;
    }

    // The checkpoint file named by resume_from, or an empty path for a fresh run.
    static std::filesystem::path resolve_resume_path(const std::filesystem::path& p) {
        namespace fs = std::filesystem;
        std::error_code ec;
        const fs::file_status st = fs::status(p, ec);
        if (ec && ec != std::errc::no_such_file_or_directory) throw IoError("Trainer", "cannot resume from", p, ec);
        if (fs::is_directory(st)) {
            if (auto latest = io::find_latest_checkpoint(p)) return *latest;
            warn("traincb: Trainer::fit: resume_from '" + p.string() +
                 "' holds no valid checkpoint yet; starting a fresh run");
            return {};
        }
        if (fs::exists(st)) return p;  // load_checkpoint reports anything wrong with the file
        if (p.extension() == ".safetensors") throw IoError("Trainer", "cannot resume from", p, ENOENT);
        warn("traincb: Trainer::fit: resume_from '" + p.string() +
             "' does not exist yet (taken as a checkpoint directory); starting a fresh run");
        return {};
    }

    // Warns about every option changed since the checkpoint; refuses to continue mid-epoch when
    // the data order changed (the batches already done could not be told apart from the rest).
    template <class S>
    static void check_resume(const io::Checkpoint& c, const std::filesystem::path& path, const RunState& now,
                             const FitOptions<S>& opt) {
        const std::string where = "traincb: Trainer::fit: resuming from '" + path.string() + "': ";
        if (c.kind != io::CheckpointKind::Full)
            throw InvalidArgument(where +
                                  "it is a weights-only checkpoint, which cannot resume a run; resume from a full "
                                  "checkpoint (ModelCheckpoint without save_weights_only, or its last.safetensors), "
                                  "or load the weights with traincb::io::load_weights and train afresh");
        std::vector<std::string> order_changed;
        for (const auto& [key, value] : now.fit_options.items()) {
            const auto it = c.fit_options.find(key);
            if (it == c.fit_options.end() || *it == value) continue;
            warn(where + "'" + key + "' changed since the checkpoint (was " + it->dump() + ", now " + value.dump() +
                 "); the new value applies");
            if (key == "batch_size" || key == "shuffle" || key == "samples" || key == "steps_per_epoch")
                order_changed.push_back(key);
        }
        if (c.seed != now.seed) {
            warn(where + "'seed' changed since the checkpoint (was " + std::to_string(c.seed) + ", now " +
                 std::to_string(now.seed) + "); the new value applies, so the batches differ from the original run's");
            if (opt.shuffle) order_changed.emplace_back("seed");
        }
        if (!c.position.epoch_completed && !order_changed.empty())
            throw InvalidArgument(where + "it was taken in the middle of epoch " +
                                  std::to_string(c.position.epoch + 1) + ", and " + detail::join(order_changed) +
                                  " changed since, so the rest of that epoch's batches cannot be determined; pass "
                                  "the checkpoint's values, or resume from an epoch-boundary checkpoint");
        if (opt.initial_epoch != 0 && opt.initial_epoch != c.position.next_epoch())
            warn(where + "initial_epoch " + std::to_string(opt.initial_epoch) +
                 " is ignored; the run continues where the checkpoint left off (initial_epoch " +
                 std::to_string(c.position.next_epoch()) + ")");
    }

    // Hands each stateful callback its saved state (after on_train_begin, as load_state requires).
    static void load_callback_states(CallbackList& list, const io::Checkpoint& c, const std::filesystem::path& path) {
        const std::string where = "traincb: Trainer::fit: resuming from '" + path.string() + "': ";
        std::set<std::string, std::less<>> used;
        for (std::size_t i = 0; i < list.size(); ++i) {
            Callback& cb = list[i];
            const std::string key = cb.state_key();
            if (key.empty()) continue;
            const auto it = c.callbacks.find(key);
            if (it == c.callbacks.end()) {
                warn(where + "the checkpoint holds no state for callback '" + key + "' (" + cb.name() +
                     "); it starts fresh");
                continue;
            }
            cb.load_state(it->second, list.context());
            used.insert(key);
        }
        for (const auto& [key, state] : c.callbacks)
            if (!used.contains(key))
                warn(where + "the checkpoint holds state for '" + key +
                     "', which no callback of this run has; it is ignored");
    }

    // Restores the training metrics of the epoch a mid-epoch checkpoint was taken in; each one
    // that cannot be restored restarts (from the next batch), and one warning names them all.
    static void restore_train_metrics(std::vector<std::unique_ptr<metrics::Metric>>& ms, const io::Checkpoint& c,
                                      const std::filesystem::path& path, int epoch, std::int64_t next_batch,
                                      std::int64_t steps) {
        if (ms.empty()) return;
        const std::string where = "traincb: Trainer::fit: resuming from '" + path.string() + "': ";
        std::string missed;
        const auto miss = [&](const metrics::Metric& m, const std::string& why) {
            missed += std::string(missed.empty() ? "" : "; ") + "'" + m.name() + "' (" + why + ")";
        };
        if (!c.train_metrics.is_object()) {
            for (const auto& m : ms)
                miss(*m, "the checkpoint holds no training metric states: it predates them, or its driver saves none");
        } else {
            for (auto& m : ms) {
                const auto it = c.train_metrics.find(m->name());
                if (it == c.train_metrics.end()) {
                    miss(*m, "the checkpoint holds no state for it");
                } else if (it->is_null()) {
                    miss(*m, "its class does not implement metrics::Metric::save_state and load_state");
                } else {
                    try {
                        m->load_state(*it);
                    } catch (const InvalidArgument& e) {  // another class or other options: the new ones win
                        miss(*m, e.what());
                    } catch (const FormatError& e) {
                        throw FormatError(where + "the state of training metric '" + m->name() +
                                          "' is unusable: " + e.what());
                    }
                }
            }
        }
        if (!missed.empty())
            warn(where + "resumed in the middle of epoch " + std::to_string(epoch + 1) + " (after batch " +
                 std::to_string(next_batch) + " of " + std::to_string(steps) +
                 "): the training loss is restored exactly, but these training metrics restart, so this epoch's "
                 "values of them cover only the batches after the resume: " +
                 missed);
    }

    template <class S>
    static void validate_options(const FitOptions<S>& o) {
        auto bad = [](const std::string& m) { throw InvalidArgument("traincb: Trainer::fit: " + m); };
        if (o.batch_size < 1) bad("batch_size must be >= 1, got " + std::to_string(o.batch_size));
        if (o.epochs < 0) bad("epochs must be >= 0, got " + std::to_string(o.epochs));
        if (o.initial_epoch < 0) bad("initial_epoch must be >= 0, got " + std::to_string(o.initial_epoch));
        if (o.epochs < o.initial_epoch)
            bad("epochs (" + std::to_string(o.epochs) + ") is less than initial_epoch (" +
                std::to_string(o.initial_epoch) + "); epochs is the absolute index to stop at, as in Keras");
        if (!(o.validation_split >= 0 && o.validation_split < 1))
            bad("validation_split must be in [0, 1), got " + detail::format_double(o.validation_split));
        if (o.validation_split > 0 && o.validation_data)
            bad("pass either validation_data or validation_split, not both");
        if (o.validation_freq < 1) bad("validation_freq must be >= 1, got " + std::to_string(o.validation_freq));
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

    static void print_epoch(int epoch, int epochs, const Logs& logs) {
        std::string line = "Epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
        for (const auto& [k, v] : logs) line += " - " + k + ": " + detail::format_double(v);
        std::cout << line << '\n';
    }

    M& model_;
};

}  // namespace traincb::inline v0
