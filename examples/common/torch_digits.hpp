#pragma once
/// @file torch_digits.hpp
/// What example_torch (Trainer + TorchModel) and example_torch_loop (a torch-native loop driving
/// CallbackList) share: the UCI digits split as float matrices, the callbacks with their files
/// under DIR, the held-out test metrics and the JSON summary. Nothing here includes torch.
///
///     const TorchDigits d = load_torch_digits(seed);
///     TorchDigitsCallbacks run({.out = out, .patience = 10, .console = true});
///     traincb::CallbackList callbacks(run.early_stopping, run.reduce_lr, run.checkpoint);
///     callbacks.add(run.logger);  // last, so that it logs what the other callbacks added
#include <Eigen/Core>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/tensorboard.hpp>

#include <nlohmann/json.hpp>

#include "dataset.hpp"

namespace traincb_examples {

/// The digits data (examples/data/digits.csv) split 60/20/20 (stratified), standardised with the
/// training rows' statistics, as float (torch's default dtype). Labels are class indices, N x 1.
struct TorchDigits {
    Eigen::MatrixXf x{}, y{};    ///< training features and labels
    Eigen::MatrixXf xv{}, yv{};  ///< validation
    Eigen::MatrixXf xt{}, yt{};  ///< held-out test
};

/// Loads and splits the data for `seed`. @throws traincb::IoError, traincb::FormatError
[[nodiscard]] inline TorchDigits load_torch_digits(std::uint64_t seed) {
    const PreparedSplit d =
        prepare_split(load_csv(data_dir() / "digits.csv"), {.train = 0.6, .val = 0.2, .test = 0.2}, seed);
    return {d.x.cast<float>(),  d.y.cast<float>(),  d.xv.cast<float>(),
            d.yv.cast<float>(), d.xt.cast<float>(), d.yt.cast<float>()};
}

/// What TorchDigitsCallbacks writes.
struct TorchDigitsRunOptions {
    std::filesystem::path out{};  ///< DIR: history.csv, checkpoints/, tensorboard/
    int patience = 10;            ///< EarlyStopping patience on val_loss
    bool console = true;          ///< add a ConsoleSink (one line per epoch) to the logger
};

/// The callbacks of both torch examples, each a member. Put them in a CallbackList in the order
/// early_stopping, reduce_lr, checkpoint, then any others, and logger last.
class TorchDigitsCallbacks {
public:
    /// Builds every callback over files under options.out (none is written yet).
    explicit TorchDigitsCallbacks(const TorchDigitsRunOptions& options)
        : early_stopping({.monitor = "val_loss", .patience = options.patience, .restore_best_weights = true}),
          reduce_lr({.monitor = "val_loss", .factor = 0.5, .patience = 5}),
          // best.safetensors: the weights of the best val_loss epoch; last.safetensors: the full
          // state after every epoch (and on Ctrl-C), which --resume continues from.
          checkpoint({.filepath = checkpoints_dir(options.out) / "best.safetensors",
                      .monitor = "val_loss",
                      .save_best_only = true,
                      .save_weights_only = true,
                      .save_last = true}),
          logger({std::make_shared<traincb::sinks::CsvSink>(
                      traincb::sinks::CsvOptions{.path = options.out / "history.csv"}),
                  std::make_shared<traincb::sinks::TensorBoardSink>(
                      traincb::sinks::TensorBoardOptions{.log_dir = options.out / "tensorboard"})}) {
        if (options.console)
            logger.add_sink(std::make_shared<traincb::sinks::ConsoleSink>(traincb::sinks::ConsoleOptions{}));
    }
    TorchDigitsCallbacks(const TorchDigitsCallbacks&) = delete;
    TorchDigitsCallbacks& operator=(const TorchDigitsCallbacks&) = delete;
    /// DIR/checkpoints.
    [[nodiscard]] static std::filesystem::path checkpoints_dir(const std::filesystem::path& out) {
        return out / "checkpoints";
    }
    traincb::EarlyStopping early_stopping;  ///< val_loss, restore_best_weights
    traincb::ReduceLROnPlateau reduce_lr;   ///< val_loss, factor 0.5, patience 5
    traincb::ModelCheckpoint checkpoint;    ///< checkpoints/best.safetensors and last.safetensors
    traincb::MetricLogger logger;           ///< history.csv, tensorboard/ and (optionally) the console
};

/// The held-out test metrics of a model's logits (argmax = the predicted digit).
struct TorchDigitsTest {
    double accuracy = 0;  ///< sparse categorical accuracy
    double macro_f1 = 0;  ///< F1 averaged over the ten digits
};

/// Evaluates logits (N x 10) against the labels (N x 1).
[[nodiscard]] inline TorchDigitsTest evaluate_torch_digits(const Eigen::Ref<const Eigen::MatrixXf>& logits,
                                                           const Eigen::Ref<const Eigen::MatrixXf>& labels) {
    Eigen::VectorXf predicted(logits.rows());
    for (Eigen::Index i = 0; i < logits.rows(); ++i) {
        Eigen::Index arg = 0;
        logits.row(i).maxCoeff(&arg);
        predicted(i) = static_cast<float>(arg);
    }
    namespace m = traincb::metrics;
    const Eigen::VectorXf truth = labels.col(0);
    return {m::sparse_categorical_accuracy(truth, logits), m::f1_score(truth, predicted, m::Average::Macro)};
}

/// The JSON summary: test_accuracy, test_macro_f1, epochs_run, stopped_epoch and best_epoch
/// (0-based, null when none), the final learning_rate and the number of lr_reductions.
[[nodiscard]] inline nlohmann::json torch_digits_json(const TorchDigitsCallbacks& run, const TorchDigitsTest& t,
                                                      std::size_t epochs_run, double learning_rate) {
    const traincb::EarlyStopping& es = run.early_stopping;
    nlohmann::json s;
    s["test_accuracy"] = t.accuracy;
    s["test_macro_f1"] = t.macro_f1;
    s["epochs_run"] = epochs_run;
    s["stopped_epoch"] = es.stopped_epoch() ? nlohmann::json(*es.stopped_epoch()) : nlohmann::json();
    s["best_epoch"] = es.best_epoch() ? nlohmann::json(*es.best_epoch()) : nlohmann::json();
    s["learning_rate"] = learning_rate;
    s["lr_reductions"] = run.reduce_lr.reductions().size();
    return s;
}

}  // namespace traincb_examples
