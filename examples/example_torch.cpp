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
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <traincb/torch.hpp>
#include <traincb/trainer.hpp>

#include "common/cli.hpp"
#include "common/epoch_delay.hpp"
#include "common/torch_digits.hpp"

namespace {

using Net = torch::nn::Sequential;
using Model = traincb::TorchModel<Net, torch::optim::Adam>;

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
        const TorchDigits d = load_torch_digits(useed);

        at::set_num_threads(threads);
        torch::manual_seed(useed);
        Net net(torch::nn::Linear(d.x.cols(), 64), torch::nn::ReLU(), torch::nn::Dropout(0.1),
                torch::nn::Linear(64, 10));
        Model model(net, torch::optim::AdamOptions(1e-3), [](const torch::Tensor& logits, const torch::Tensor& target) {
            return torch::nn::functional::cross_entropy(logits, target.squeeze(1).to(torch::kLong));
        });

        fs::create_directories(out);
        TorchDigitsCallbacks run({.out = out, .patience = patience, .console = !quiet});
        traincb::CallbackList callbacks(run.early_stopping, run.reduce_lr, run.checkpoint);
        EpochDelay delay(epoch_delay_ms);
        if (epoch_delay_ms > 0) callbacks.add(delay);
        callbacks.add(run.logger);  // last, so that it logs what the other callbacks added

        traincb::Trainer trainer(model);
        const traincb::History history =
            trainer.fit(d.x, d.y,
                        {.epochs = epochs,
                         .batch_size = batch_size,
                         .seed = useed,
                         .validation_data = traincb::ValidationData<float>{d.xv, d.yv},
                         .metrics = {std::make_shared<traincb::metrics::SparseCategoricalAccuracy>(
                             traincb::metrics::SparseCategoricalAccuracyOptions{.name = "accuracy"})},
                         .resume_from = resume ? TorchDigitsCallbacks::checkpoints_dir(out) : fs::path(),
                         .handle_signals = true,
                         .start_over_if_invalid = start_over},
                        callbacks);
        if (history.end.kind == traincb::EndKind::Interrupted) {
            std::cout << "\ninterrupted (" << history.end.reason << "): the state is saved in "
                      << run.checkpoint.last_model_path().string() << "; continue with --resume\n";
            return 130;
        }

        // Held-out test set, with the best epoch's weights (restored by EarlyStopping).
        const TorchDigitsTest test = evaluate_torch_digits(model.predict(d.xt), d.yt);
        std::cout << "\nstopped: " << traincb::to_string(history.end.kind)
                  << (history.end.source.empty() ? "" : " by " + history.end.source + " (" + history.end.reason + ")")
                  << "; " << history.size() << " epochs, final learning rate " << model.learning_rate() << '\n'
                  << "test accuracy " << std::fixed << std::setprecision(4) << test.accuracy << ", macro F1 "
                  << test.macro_f1 << '\n'
                  << "history: " << (fs::path(out) / "history.csv").string()
                  << "\ncheckpoints: " << run.checkpoint.best_model_path().string() << ", "
                  << run.checkpoint.last_model_path().string() << '\n';
        if (json) print_json_summary(torch_digits_json(run, test, history.size(), model.learning_rate()));
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
