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
#include <cstring>
#include <filesystem>
#include <traincb/trainer.hpp>

#include "common/breast_cancer.hpp"
#include "common/cli.hpp"
#include "common/epoch_delay.hpp"

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
        const BreastCancerData data = load_breast_cancer(useed);
        Mlp model = breast_cancer_model(data.x.cols(), useed);
        fs::create_directories(out);
        BreastCancerCallbacks run({.out = out,
                                   .patience = patience,
                                   .console = !quiet,
                                   .async_save = async_save,
                                   .title = "example_breast_cancer"});
        traincb::CallbackList callbacks(run.early_stopping, run.checkpoint, run.mark_saves, run.report);
        Ballast ballast(static_cast<std::size_t>(std::max(ballast_mb, 0)) << 20U);
        if (ballast_mb > 0) callbacks.add(ballast);
        EpochDelay delay(epoch_delay_ms);
        if (epoch_delay_ms > 0) callbacks.add(delay);
        callbacks.add(run.logger);  // last, so that it logs what the other callbacks added

        traincb::Trainer trainer(model);
        const traincb::History history = trainer.fit(
            data.x, data.y,
            breast_cancer_fit_options(data, epochs, batch_size, useed,
                                      resume ? BreastCancerCallbacks::checkpoints_dir(out) : fs::path(), start_over),
            callbacks);
        if (history.end.kind == traincb::EndKind::Interrupted) {
            std::cout << "\ninterrupted (" << history.end.reason << "): the state is saved in "
                      << run.checkpoint.last_model_path().string() << "; continue with --resume\n";
            return 130;
        }

        // Held-out test set, with the best epoch's weights (restored by EarlyStopping).
        const BreastCancerTest test = evaluate_breast_cancer(model, data);
        print_breast_cancer_summary(std::cout, history, run, test, out);
        if (json) print_json_summary(breast_cancer_json(history, run, test));
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
