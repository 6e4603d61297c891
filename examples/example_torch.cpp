// example_torch: a LibTorch MLP on the UCI optical digits data (examples/data/digits.csv, 8x8
// images with values 0-16; provenance in examples/data/README.md), driven by traincb's Trainer.
//
// A torch::nn::Sequential 64 -> 64 (ReLU, Dropout 0.1) -> 10 (logits), trained with Adam
// (learning rate 0.001) on cross-entropy through traincb::TorchModel; a stratified 60/20/20
// train/validation/test split standardised with the training statistics. Callbacks:
// EarlyStopping on val_loss with restore_best_weights, ReduceLROnPlateau (factor 0.5, patience 5),
// ModelCheckpoint writing DIR/checkpoints/best.safetensors (the weights of the best val_loss
// epoch) and DIR/checkpoints/last.safetensors (the full state after every epoch: weights, Adam's
// moments, the learning rate, torch's CPU generator, every callback), and a MetricLogger writing
// DIR/history.csv and TensorBoard event files under DIR/tensorboard/.
//
// Deterministic: torch::manual_seed(seed) before the module is built and a fixed thread count
// (--threads, 1 by default), so a run killed at any moment (SIGKILL included) and continued with
// --resume ends with last.safetensors and history.csv bit-identical to an uninterrupted run with
// the same seed. Ctrl-C stops gracefully after the current batch, saving last.safetensors.
//
//   example_torch [--out DIR] [--resume] [--start-over] [--epochs 200] [--patience 10]
//                 [--batch-size 32] [--seed 1] [--threads 1] [--json]
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <thread>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/tensorboard.hpp>
#include <traincb/torch.hpp>
#include <traincb/trainer.hpp>

#include "common/cli.hpp"
#include "common/dataset.hpp"

namespace {

using Net = torch::nn::Sequential;
using Model = traincb::TorchModel<Net, torch::optim::Adam>;

// For crash tests (--epoch-delay-ms): makes each epoch last longer, so that a run can be killed
// several times before it completes.
class EpochDelay final : public traincb::Callback {
public:
    explicit EpochDelay(int ms) : ms_(ms) {}
    void on_epoch_end(traincb::Context&) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms_)); }

private:
    int ms_;
};

// The module's logits as predicted labels (argmax per row).
Eigen::VectorXf argmax_rows(const Eigen::MatrixXf& logits) {
    Eigen::VectorXf labels(logits.rows());
    for (Eigen::Index i = 0; i < logits.rows(); ++i) {
        Eigen::Index arg = 0;
        logits.row(i).maxCoeff(&arg);
        labels(i) = static_cast<float>(arg);
    }
    return labels;
}

}  // namespace

int main(int argc, char** argv) {
    std::string out = "torch_run";
    int epochs = 200;
    int patience = 10;
    int batch_size = 32;
    int seed = 1;
    int threads = 1;
    bool json = false;
    bool quiet = false;
    bool resume = false;
    bool start_over = false;
    int epoch_delay_ms = 0;
    traincb_examples::Cli cli("example_torch",
                              "Trains a LibTorch MLP on the UCI digits data through traincb's Trainer, with "
                              "EarlyStopping, ReduceLROnPlateau, checkpoints and CSV/TensorBoard logs.");
    cli.flag("out", out, "output directory (history.csv, checkpoints/, tensorboard/ are written there)");
    cli.flag("resume", resume,
             "continue from the newest valid checkpoint in DIR/checkpoints (fresh run if there is none; an error, "
             "writing nothing, if every one is invalid)");
    cli.flag("start-over", start_over,
             "with --resume: when every checkpoint in DIR/checkpoints is invalid, start a fresh run over them");
    cli.flag("epochs", epochs, "maximum number of epochs");
    cli.flag("patience", patience, "EarlyStopping patience on val_loss");
    cli.flag("batch-size", batch_size, "samples per batch");
    cli.flag("seed", seed, "seed for the split, torch's initial weights and dropout, and the shuffling");
    cli.flag("threads", threads, "torch's intra-op threads (keep it the same when resuming: results depend on it)");
    cli.flag("quiet", quiet, "no per-epoch console lines");
    cli.flag("json", json, "print a one-line JSON summary as the last line");
    cli.flag("epoch-delay-ms", epoch_delay_ms, "crash tests: sleep this long at the end of each epoch");
    cli.parse_or_exit(argc, argv);

    try {
        using namespace traincb_examples;
        namespace fs = std::filesystem;
        if (threads < 1) throw traincb::InvalidArgument("example_torch: --threads must be at least 1");
        const auto useed = static_cast<std::uint64_t>(seed);
        const PreparedSplit d =
            prepare_split(load_csv(data_dir() / "digits.csv"), {.train = 0.6, .val = 0.2, .test = 0.2}, useed);
        const Eigen::MatrixXf x = d.x.cast<float>(), y = d.y.cast<float>();
        const Eigen::MatrixXf xv = d.xv.cast<float>(), yv = d.yv.cast<float>();
        const Eigen::MatrixXf xt = d.xt.cast<float>(), yt = d.yt.cast<float>();

        at::set_num_threads(threads);
        torch::manual_seed(useed);
        Net net(torch::nn::Linear(x.cols(), 64), torch::nn::ReLU(), torch::nn::Dropout(0.1), torch::nn::Linear(64, 10));
        Model model(net, torch::optim::AdamOptions(1e-3), [](const torch::Tensor& logits, const torch::Tensor& target) {
            return torch::nn::functional::cross_entropy(logits, target.squeeze(1).to(torch::kLong));
        });

        const fs::path checkpoints = fs::path(out) / "checkpoints";
        fs::create_directories(out);
        traincb::EarlyStopping early_stopping(
            {.monitor = "val_loss", .patience = patience, .restore_best_weights = true});
        traincb::ReduceLROnPlateau reduce_lr({.monitor = "val_loss", .factor = 0.5, .patience = 5});
        // best.safetensors: the weights of the best val_loss epoch; last.safetensors: the full
        // state after every epoch (and on Ctrl-C), which --resume continues from.
        traincb::ModelCheckpoint checkpoint({.filepath = checkpoints / "best.safetensors",
                                             .monitor = "val_loss",
                                             .save_best_only = true,
                                             .save_weights_only = true,
                                             .save_last = true});
        traincb::MetricLogger logger(
            {std::make_shared<traincb::sinks::CsvSink>(
                 traincb::sinks::CsvOptions{.path = fs::path(out) / "history.csv"}),
             std::make_shared<traincb::sinks::TensorBoardSink>(
                 traincb::sinks::TensorBoardOptions{.log_dir = fs::path(out) / "tensorboard"})});
        if (!quiet) logger.add_sink(std::make_shared<traincb::sinks::ConsoleSink>(traincb::sinks::ConsoleOptions{}));
        traincb::CallbackList callbacks(early_stopping, reduce_lr, checkpoint);
        EpochDelay delay(epoch_delay_ms);
        if (epoch_delay_ms > 0) callbacks.add(delay);
        callbacks.add(logger);  // last, so that it logs what the other callbacks added

        traincb::Trainer trainer(model);
        const traincb::History history =
            trainer.fit(x, y,
                        {.epochs = epochs,
                         .batch_size = batch_size,
                         .seed = useed,
                         .validation_data = traincb::ValidationData<float>{xv, yv},
                         .metrics = {std::make_shared<traincb::metrics::SparseCategoricalAccuracy>(
                             traincb::metrics::SparseCategoricalAccuracyOptions{.name = "accuracy"})},
                         .resume_from = resume ? checkpoints : fs::path(),
                         .handle_signals = true,
                         .start_over_if_invalid = start_over},
                        callbacks);
        if (history.end.kind == traincb::EndKind::Interrupted) {
            std::cout << "\ninterrupted (" << history.end.reason << "): the state is saved in "
                      << checkpoint.last_model_path().string() << "; continue with --resume\n";
            return 130;
        }

        // Held-out test set, with the best epoch's weights (restored by EarlyStopping).
        namespace m = traincb::metrics;
        const Eigen::MatrixXf logits = model.predict(xt);
        const Eigen::VectorXf labels_true = yt.col(0);
        const Eigen::VectorXf labels_pred = argmax_rows(logits);
        const double acc = m::sparse_categorical_accuracy(labels_true, logits);
        const double macro_f1 = m::f1_score(labels_true, labels_pred, m::Average::Macro);
        std::cout << "\nstopped: " << traincb::to_string(history.end.kind)
                  << (history.end.source.empty() ? "" : " by " + history.end.source + " (" + history.end.reason + ")")
                  << "; " << history.size() << " epochs, final learning rate " << model.learning_rate() << '\n'
                  << "test accuracy " << std::fixed << std::setprecision(4) << acc << ", macro F1 " << macro_f1 << '\n'
                  << "history: " << (fs::path(out) / "history.csv").string()
                  << "\ncheckpoints: " << checkpoint.best_model_path().string() << ", "
                  << checkpoint.last_model_path().string() << '\n';
        if (json) {
            nlohmann::json s;
            s["test_accuracy"] = acc;
            s["test_macro_f1"] = macro_f1;
            s["epochs_run"] = history.size();
            s["stopped_epoch"] =
                early_stopping.stopped_epoch() ? nlohmann::json(*early_stopping.stopped_epoch()) : nlohmann::json();
            s["best_epoch"] =
                early_stopping.best_epoch() ? nlohmann::json(*early_stopping.best_epoch()) : nlohmann::json();
            s["learning_rate"] = model.learning_rate();
            s["lr_reductions"] = reduce_lr.reductions().size();
            print_json_summary(s);
        }
        return 0;
    } catch (const traincb::NoValidCheckpointError& e) {
        std::cerr << "example_torch: error: " << e.what()
                  << "\n(nothing was written; run again with --resume --start-over to start a fresh run over them)\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "example_torch: error: " << e.what() << '\n';
        return 1;
    }
}
