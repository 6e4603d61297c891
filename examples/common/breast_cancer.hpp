#pragma once
/// @file breast_cancer.hpp
/// The breast cancer run shared by example_breast_cancer (one process) and example_distributed
/// (data-parallel over MPI): the data and its split, the MLP, the callbacks with their files
/// under DIR, the fit options, and the held-out test evaluation with its console and JSON summary.
///
///     const BreastCancerData d = load_breast_cancer(seed);
///     Mlp model = breast_cancer_model(d.x.cols(), seed);
///     BreastCancerCallbacks run({.out = out, .patience = 20, .title = "my_run"});
///     traincb::CallbackList callbacks(run.early_stopping, run.checkpoint, run.mark_saves, run.report);
///     callbacks.add(run.logger);  // last, so that it logs what the other callbacks added
///     const traincb::History h =
///         traincb::Trainer(model).fit(d.x, d.y, breast_cancer_fit_options(d, 300, 16, seed, {}, false), callbacks);

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <ostream>
#include <string>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/lambda_callback.hpp>
#include <traincb/callbacks/learning_curve_report.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/tensorboard.hpp>
#include <traincb/trainer.hpp>

#include <nlohmann/json.hpp>

#include "dataset.hpp"
#include "mlp.hpp"

namespace traincb_examples {

/// The breast cancer data (examples/data/breast_cancer.csv), split 60/20/20 (stratified) and
/// standardised with the training rows' statistics.
using BreastCancerData = PreparedSplit;

/// Loads and splits the data for `seed`. @throws traincb::IoError, traincb::FormatError
[[nodiscard]] inline BreastCancerData load_breast_cancer(std::uint64_t seed) {
    const Dataset data = load_csv(data_dir() / "breast_cancer.csv");
    return prepare_split(data, {.train = 0.6, .val = 0.2, .test = 0.2}, seed);
}

/// The MLP inputs -> 16 (relu) -> 1 (sigmoid), Adam (learning rate 0.001) on binary cross-entropy.
[[nodiscard]] inline Mlp breast_cancer_model(Eigen::Index inputs, std::uint64_t seed) {
    return Mlp(MlpOptions{.inputs = inputs,
                          .layers = {{16, Activation::Relu}, {1, Activation::Sigmoid}},
                          .loss = Loss::BinaryCrossentropy,
                          .learning_rate = 0.001,
                          .seed = seed});
}

/// What BreastCancerCallbacks writes and how.
struct BreastCancerRunOptions {
    std::filesystem::path out{};  ///< DIR: history.csv, checkpoints/, tensorboard/, report.html
    int patience = 20;            ///< EarlyStopping patience on val_loss
    bool console = true;          ///< add a ConsoleSink (one line per epoch) to the logger
    bool async_save = false;      ///< ModelCheckpoint's async_save
    std::string title{};          ///< report.html's title
};

/// The run's callbacks, each a member (not movable: they refer to each other). Put them in a
/// CallbackList in the order early_stopping, checkpoint, mark_saves, report, then any others, and
/// logger last, so that it logs what the other callbacks added.
class BreastCancerCallbacks {
public:
    /// Builds every callback over files under options.out (none is written yet).
    explicit BreastCancerCallbacks(const BreastCancerRunOptions& options)
        : early_stopping({.monitor = "val_loss", .patience = options.patience, .restore_best_weights = true}),
          // best.safetensors: the weights of the best val_loss epoch; last.safetensors: the full
          // state after every epoch (and on Ctrl-C), which --resume continues from.
          checkpoint({.filepath = checkpoints_dir(options.out) / "best.safetensors",
                      .monitor = "val_loss",
                      .save_best_only = true,
                      .save_weights_only = true,
                      .save_last = true,
                      .async_save = options.async_save}),
          logger({std::make_shared<traincb::sinks::CsvSink>(
                      traincb::sinks::CsvOptions{.path = options.out / "history.csv"}),
                  std::make_shared<traincb::sinks::TensorBoardSink>(
                      traincb::sinks::TensorBoardOptions{.log_dir = options.out / "tensorboard"})}),
          // report.html: the learning curves with the best and stopped epochs, rewritten after
          // each of the first 100 epochs, then every ceil(n/100)-th, and after every save of
          // best.safetensors, which is marked on it. ModelCheckpoint decides in on_epoch_end and
          // records the epoch of its save in kept(), which a resumed run restores, so the marks
          // after a --resume are those of an uninterrupted run (the report restores the earlier ones).
          report({.path = options.out / "report.html", .title = options.title, .early_stopping = &early_stopping}),
          mark_saves({.on_epoch_end = [this](traincb::Context& ctx) {
              for (const traincb::KeptCheckpoint& k : checkpoint.kept())
                  if (k.epoch == ctx.epoch()) report.mark(ctx.epoch(), "checkpoint", k.path.filename().string());
          }}) {
        if (options.console)
            logger.add_sink(std::make_shared<traincb::sinks::ConsoleSink>(traincb::sinks::ConsoleOptions{}));
    }
    BreastCancerCallbacks(const BreastCancerCallbacks&) = delete;
    BreastCancerCallbacks& operator=(const BreastCancerCallbacks&) = delete;

    /// DIR/checkpoints.
    [[nodiscard]] static std::filesystem::path checkpoints_dir(const std::filesystem::path& out) {
        return out / "checkpoints";
    }

    traincb::EarlyStopping early_stopping;  ///< val_loss, restore_best_weights
    traincb::ModelCheckpoint checkpoint;    ///< checkpoints/best.safetensors and last.safetensors
    traincb::MetricLogger logger;           ///< history.csv, tensorboard/ and (optionally) the console
    traincb::LearningCurveReport report;    ///< report.html
    traincb::LambdaCallback mark_saves;     ///< marks each save of best.safetensors on report.html
};

/// The fit options of the run: `epochs`, `batch_size`, `seed`, validation on d.xv/d.yv, the
/// accuracy and ROC AUC metrics, resume from `resume_from` (empty: a fresh run), and graceful
/// SIGINT/SIGTERM.
[[nodiscard]] inline traincb::FitOptions<double> breast_cancer_fit_options(const BreastCancerData& d, int epochs,
                                                                           int batch_size, std::uint64_t seed,
                                                                           const std::filesystem::path& resume_from,
                                                                           bool start_over) {
    return {.epochs = epochs,
            .batch_size = batch_size,
            .seed = seed,
            .validation_data = traincb::ValidationData<double>{d.xv, d.yv},
            .metrics = {std::make_shared<traincb::metrics::BinaryAccuracy>(
                            traincb::metrics::BinaryAccuracyOptions{.name = "accuracy"}),
                        std::make_shared<traincb::metrics::RocAuc>()},
            .resume_from = resume_from,
            .handle_signals = true,
            .start_over_if_invalid = start_over};
}

/// The held-out test metrics of a model.
struct BreastCancerTest {
    double accuracy = 0, precision = 0, recall = 0, f1 = 0, auc = 0;  ///< at threshold 0.5 (AUC: over the scores)
    traincb::metrics::CountMatrix confusion{};  ///< rows: true benign/malignant, columns: predicted
};

/// Evaluates `model` on the test rows.
[[nodiscard]] inline BreastCancerTest evaluate_breast_cancer(const Mlp& model, const BreastCancerData& d) {
    const Eigen::MatrixXd scores = model.predict(d.xt);
    const Eigen::VectorXd labels_true = d.yt.col(0);
    const Eigen::VectorXd labels_pred = (scores.col(0).array() > 0.5).cast<double>().matrix();
    namespace m = traincb::metrics;
    BreastCancerTest t;
    t.accuracy = m::binary_accuracy(d.yt, scores);
    t.precision = m::precision(labels_true, labels_pred);
    t.recall = m::recall(labels_true, labels_pred);
    t.f1 = m::f1_score(labels_true, labels_pred);
    t.auc = m::roc_auc(d.yt, scores);
    t.confusion = m::confusion_matrix(labels_true, labels_pred, 2);
    return t;
}

/// Prints how training ended, the test metrics, the confusion matrix and where the files are.
inline void print_breast_cancer_summary(std::ostream& os, const traincb::History& history,
                                        const BreastCancerCallbacks& run, const BreastCancerTest& t,
                                        const std::filesystem::path& out) {
    const auto& cm = t.confusion;
    os << "\nstopped: " << traincb::to_string(history.end.kind)
       << (history.end.source.empty() ? "" : " by " + history.end.source + " (" + history.end.reason + ")")
       << "; best epoch " << (run.early_stopping.best_epoch() ? *run.early_stopping.best_epoch() + 1 : 0) << " of "
       << history.size() << " (1-based)\n";
    os << "test: accuracy " << std::fixed << std::setprecision(4) << t.accuracy << ", precision " << t.precision
       << ", recall " << t.recall << ", F1 " << t.f1 << ", ROC AUC " << t.auc << '\n';
    os << "confusion matrix (rows: true benign/malignant, columns: predicted):\n"
       << "             benign  malignant\n"
       << "  benign     " << std::setw(6) << cm(0, 0) << "  " << std::setw(9) << cm(0, 1) << '\n'
       << "  malignant  " << std::setw(6) << cm(1, 0) << "  " << std::setw(9) << cm(1, 1) << '\n';
    os << "history: " << (out / "history.csv").string() << '\n';
    os << "checkpoints: " << run.checkpoint.best_model_path().string() << " (best val_loss "
       << run.checkpoint.best_score().value_or(std::nan("")) << "), " << run.checkpoint.last_model_path().string()
       << '\n';
}

/// The JSON summary: the test metrics, best_epoch, stopped_epoch (0-based, null when none),
/// epochs_run, stop_reason, confusion_matrix and best_checkpoint.
[[nodiscard]] inline nlohmann::json breast_cancer_json(const traincb::History& history,
                                                       const BreastCancerCallbacks& run, const BreastCancerTest& t) {
    const auto& cm = t.confusion;
    const traincb::EarlyStopping& es = run.early_stopping;
    nlohmann::json s;
    s["test_accuracy"] = t.accuracy;
    s["test_precision"] = t.precision;
    s["test_recall"] = t.recall;
    s["test_f1"] = t.f1;
    s["test_auc"] = t.auc;
    s["best_epoch"] = es.best_epoch() ? nlohmann::json(*es.best_epoch()) : nlohmann::json();
    s["stopped_epoch"] = es.stopped_epoch() ? nlohmann::json(*es.stopped_epoch()) : nlohmann::json();
    s["epochs_run"] = history.size();
    s["stop_reason"] = history.end.reason.empty() ? nlohmann::json() : nlohmann::json(history.end.reason);
    s["confusion_matrix"] = {{cm(0, 0), cm(0, 1)}, {cm(1, 0), cm(1, 1)}};
    s["best_checkpoint"] = run.checkpoint.best_model_path().string();
    return s;
}

}  // namespace traincb_examples
