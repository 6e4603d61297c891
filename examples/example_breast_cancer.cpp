// example_breast_cancer: a small MLP on the UCI Breast Cancer Wisconsin (Diagnostic) data
// (examples/data/breast_cancer.csv; provenance in examples/data/README.md).
//
// Standardised with training statistics, a stratified 60/20/20 train/validation/test split, an
// MLP 30 -> 16 (relu) -> 1 (sigmoid) trained with Adam on binary cross-entropy, EarlyStopping on
// val_loss with restore_best_weights, DIR/report.html (learning curves), and a MetricLogger writing DIR/history.csv,
// TensorBoard event files under DIR/tensorboard/ and the console.
//
// Checkpoints: DIR/checkpoints/best.safetensors (the weights of the best val_loss epoch) and
// DIR/checkpoints/last.safetensors (the full state, every epoch). After a crash, a kill or Ctrl-C,
// `--resume` continues from DIR/checkpoints and ends bit-identical to an uninterrupted run with
// the same seed (history.csv, with the model's learning_rate column, and report.html hold only
// values the seed determines). Ctrl-C stops gracefully
// after the current batch, saving last.safetensors; a second Ctrl-C kills at once.
// last.prev.safetensors keeps the previous full state: when last.safetensors is corrupted,
// `--resume` falls back to it (with a warning) and still ends bit-identical. When every
// checkpoint is invalid, `--resume` fails without touching DIR; `--start-over` then starts a fresh
// run over them.
//
//   example_breast_cancer [--out DIR] [--resume] [--start-over] [--epochs 300] [--patience 20] [--batch-size 16]
//                         [--seed 1] [--json]
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <optional>
#include <thread>
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

#include "common/cli.hpp"
#include "common/dataset.hpp"
#include "common/mlp.hpp"

namespace {

// For crash tests (--checkpoint-ballast-mb): adds a large deterministic tensor to every full
// checkpoint so that writing one takes long enough for a kill to land in the middle of it, and
// checks it when a run resumes.
class Ballast final : public traincb::Callback {
public:
    explicit Ballast(std::size_t bytes) : bytes_(bytes) {}
    [[nodiscard]] std::string name() const override { return "Ballast"; }
    [[nodiscard]] std::string state_key() const override { return "ballast"; }
    void save_state(traincb::CallbackState& s) const override {
        traincb::Tensor t{
            .name = "bytes", .dtype = traincb::DType::U8, .shape = {static_cast<std::int64_t>(bytes_)}, .data = {}};
        t.data.resize(bytes_);
        for (std::size_t i = 0; i < bytes_; ++i) t.data[i] = static_cast<std::byte>((i * 131U) >> 3U);
        s.json = {{"bytes", bytes_}};
        s.tensors.put(std::move(t));
    }
    void load_state(const traincb::CallbackState& s, traincb::Context&) override {
        const traincb::Tensor* t = s.tensors.find("bytes");
        if (t == nullptr || t->data.size() != s.json.at("bytes").get<std::size_t>())
            throw traincb::FormatError("traincb: Ballast: the checkpoint's ballast tensor is missing or truncated");
    }

private:
    std::size_t bytes_;
};

// For crash tests (--epoch-delay-ms): makes each epoch last longer, so that a run can be killed
// several times before it completes.
class EpochDelay final : public traincb::Callback {
public:
    explicit EpochDelay(int ms) : ms_(ms) {}
    void on_epoch_end(traincb::Context&) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms_)); }

private:
    int ms_;
};

}  // namespace

int main(int argc, char** argv) {
    std::string out = "breast_cancer_run";
    int epochs = 300;
    int patience = 20;
    int batch_size = 16;
    int seed = 1;
    bool json = false;
    bool quiet = false;
    bool resume = false;
    bool start_over = false;
    int ballast_mb = 0;
    int epoch_delay_ms = 0;
    bool async_save = false;
    traincb_examples::Cli cli("example_breast_cancer",
                              "Trains an MLP on the UCI breast cancer data with EarlyStopping and a CSV/console log.");
    cli.flag("out", out, "output directory (history.csv, checkpoints/, tensorboard/ are written there)");
    cli.flag("resume", resume,
             "continue from the newest valid checkpoint in DIR/checkpoints (fresh run if there is none; an error, "
             "writing nothing, if every one is invalid)");
    cli.flag("start-over", start_over,
             "with --resume: when every checkpoint in DIR/checkpoints is invalid, start a fresh run over them");
    cli.flag("epochs", epochs, "maximum number of epochs");
    cli.flag("patience", patience, "EarlyStopping patience on val_loss");
    cli.flag("batch-size", batch_size, "samples per batch");
    cli.flag("seed", seed, "seed for the split, the initial weights and the shuffling");
    cli.flag("quiet", quiet, "no per-epoch console lines");
    cli.flag("json", json, "print a one-line JSON summary as the last line");
    cli.flag("checkpoint-ballast-mb", ballast_mb,
             "crash tests: add this many MB of dummy data to each full checkpoint");
    cli.flag("epoch-delay-ms", epoch_delay_ms, "crash tests: sleep this long at the end of each epoch");
    cli.flag("async-save", async_save, "write the checkpoints in a background thread (ModelCheckpoint's async_save)");
    cli.parse_or_exit(argc, argv);

    try {
        using namespace traincb_examples;
        namespace fs = std::filesystem;
        const auto useed = static_cast<std::uint64_t>(seed);
        const Dataset data = load_csv(data_dir() / "breast_cancer.csv");
        const auto [x, y, xv, yv, xt, yt] = prepare_split(data, {.train = 0.6, .val = 0.2, .test = 0.2}, useed);

        Mlp model(MlpOptions{.inputs = x.cols(),
                             .layers = {{16, Activation::Relu}, {1, Activation::Sigmoid}},
                             .loss = Loss::BinaryCrossentropy,
                             .learning_rate = 0.001,
                             .seed = useed});
        fs::create_directories(out);
        const fs::path checkpoints = fs::path(out) / "checkpoints";
        traincb::EarlyStopping early_stopping(
            {.monitor = "val_loss", .patience = patience, .restore_best_weights = true});
        // best.safetensors: the weights of the best val_loss epoch; last.safetensors: the full
        // state after every epoch (and on Ctrl-C), which --resume continues from.
        traincb::ModelCheckpoint checkpoint({.filepath = checkpoints / "best.safetensors",
                                             .monitor = "val_loss",
                                             .save_best_only = true,
                                             .save_weights_only = true,
                                             .save_last = true,
                                             .async_save = async_save});
        traincb::MetricLogger logger(
            {std::make_shared<traincb::sinks::CsvSink>(
                 traincb::sinks::CsvOptions{.path = fs::path(out) / "history.csv"}),
             std::make_shared<traincb::sinks::TensorBoardSink>(
                 traincb::sinks::TensorBoardOptions{.log_dir = fs::path(out) / "tensorboard"})});
        if (!quiet) logger.add_sink(std::make_shared<traincb::sinks::ConsoleSink>(traincb::sinks::ConsoleOptions{}));
        // report.html: the learning curves with the best and stopped epochs, rewritten after each
        // of the first 100 epochs, then every ceil(n/100)-th, and after every save of
        // best.safetensors, which is marked on it. ModelCheckpoint decides in on_epoch_end
        // and records the epoch of its save in kept(), which a resumed run restores, so the marks
        // after a --resume are those of an uninterrupted run (the report restores the earlier ones).
        traincb::LearningCurveReport report({.path = fs::path(out) / "report.html",
                                             .title = "example_breast_cancer",
                                             .early_stopping = &early_stopping});
        traincb::LambdaCallback mark_saves({.on_epoch_end = [&](traincb::Context& ctx) {
            for (const traincb::KeptCheckpoint& k : checkpoint.kept())
                if (k.epoch == ctx.epoch()) report.mark(ctx.epoch(), "checkpoint", k.path.filename().string());
        }});
        traincb::CallbackList callbacks(early_stopping, checkpoint, mark_saves, report);
        Ballast ballast(static_cast<std::size_t>(std::max(ballast_mb, 0)) << 20U);
        if (ballast_mb > 0) callbacks.add(ballast);
        EpochDelay delay(epoch_delay_ms);
        if (epoch_delay_ms > 0) callbacks.add(delay);
        callbacks.add(logger);  // last, so that it logs what the other callbacks added

        traincb::Trainer trainer(model);
        const traincb::History history =
            trainer.fit(x, y,
                        {.epochs = epochs,
                         .batch_size = batch_size,
                         .seed = useed,
                         .validation_data = traincb::ValidationData<double>{xv, yv},
                         .metrics = {std::make_shared<traincb::metrics::BinaryAccuracy>(
                                         traincb::metrics::BinaryAccuracyOptions{.name = "accuracy"}),
                                     std::make_shared<traincb::metrics::RocAuc>()},
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
        const Eigen::MatrixXd scores = model.predict(xt);
        const Eigen::VectorXd labels_true = yt.col(0);
        const Eigen::VectorXd labels_pred = (scores.col(0).array() > 0.5).cast<double>().matrix();
        namespace m = traincb::metrics;
        const double acc = m::binary_accuracy(yt, scores);
        const double prec = m::precision(labels_true, labels_pred);
        const double rec = m::recall(labels_true, labels_pred);
        const double f1 = m::f1_score(labels_true, labels_pred);
        const double auc = m::roc_auc(yt, scores);
        const auto cm = m::confusion_matrix(labels_true, labels_pred, 2);

        std::cout << "\nstopped: " << traincb::to_string(history.end.kind)
                  << (history.end.source.empty() ? "" : " by " + history.end.source + " (" + history.end.reason + ")")
                  << "; best epoch " << (early_stopping.best_epoch() ? *early_stopping.best_epoch() + 1 : 0) << " of "
                  << history.size() << " (1-based)\n";
        std::cout << "test: accuracy " << std::fixed << std::setprecision(4) << acc << ", precision " << prec
                  << ", recall " << rec << ", F1 " << f1 << ", ROC AUC " << auc << '\n';
        std::cout << "confusion matrix (rows: true benign/malignant, columns: predicted):\n"
                  << "             benign  malignant\n"
                  << "  benign     " << std::setw(6) << cm(0, 0) << "  " << std::setw(9) << cm(0, 1) << '\n'
                  << "  malignant  " << std::setw(6) << cm(1, 0) << "  " << std::setw(9) << cm(1, 1) << '\n';
        std::cout << "history: " << (fs::path(out) / "history.csv").string() << '\n';
        std::cout << "checkpoints: " << checkpoint.best_model_path().string() << " (best val_loss "
                  << checkpoint.best_score().value_or(std::nan("")) << "), " << checkpoint.last_model_path().string()
                  << '\n';
        if (json) {
            nlohmann::json s;
            s["test_accuracy"] = acc;
            s["test_precision"] = prec;
            s["test_recall"] = rec;
            s["test_f1"] = f1;
            s["test_auc"] = auc;
            s["best_epoch"] =
                early_stopping.best_epoch() ? nlohmann::json(*early_stopping.best_epoch()) : nlohmann::json();
            s["stopped_epoch"] =
                early_stopping.stopped_epoch() ? nlohmann::json(*early_stopping.stopped_epoch()) : nlohmann::json();
            s["epochs_run"] = history.size();
            s["stop_reason"] = history.end.reason.empty() ? nlohmann::json() : nlohmann::json(history.end.reason);
            s["confusion_matrix"] = {{cm(0, 0), cm(0, 1)}, {cm(1, 0), cm(1, 1)}};
            s["best_checkpoint"] = checkpoint.best_model_path().string();
            print_json_summary(s);
        }
        return 0;
    } catch (const traincb::NoValidCheckpointError& e) {
        std::cerr << "example_breast_cancer: error: " << e.what()
                  << "\n(nothing was written; run again with --resume --start-over to start a fresh run over them)\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "example_breast_cancer: error: " << e.what() << '\n';
        return 1;
    }
}
