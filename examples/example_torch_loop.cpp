// example_torch_loop: traincb inside a LibTorch-native training loop. The loop is the user's own
// (a torch::data DataLoader over a Dataset, forward, cross_entropy, backward, Adam step), on the
// UCI optical digits data (examples/data/digits.csv; provenance in examples/data/README.md); it
// drives a traincb::CallbackList with the callbacks example_torch uses under Trainer:
// EarlyStopping on val_loss with restore_best_weights, ReduceLROnPlateau, ModelCheckpoint
// (DIR/checkpoints/best.safetensors and last.safetensors) and a MetricLogger (DIR/history.csv,
// DIR/tensorboard/ and the console). traincb::TorchState gives the callbacks the module's and
// Adam's state and learning rate; the validation accuracy is a traincb metric fed with tensors
// through traincb::as_eigen (no copy of the labels or the logits' memory).
//
//   example_torch_loop [--out DIR] [--epochs 200] [--patience 10] [--batch-size 32] [--seed 1]
//                      [--threads 1] [--json]
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <traincb/torch.hpp>

#include "common/cli.hpp"
#include "common/torch_digits.hpp"

namespace {

// The user's data set: features [n, 64] (float) and class indices [n] (int64).
struct Digits : torch::data::datasets::Dataset<Digits> {
    torch::Tensor x, y;
    Digits(torch::Tensor features, torch::Tensor labels) : x(std::move(features)), y(std::move(labels)) {}
    torch::data::Example<> get(std::size_t i) override {
        const auto row = static_cast<std::int64_t>(i);
        return {x[row], y[row]};
    }
    [[nodiscard]] torch::optional<std::size_t> size() const override { return static_cast<std::size_t>(x.size(0)); }
};

// An Eigen matrix (rows = samples) as a new [n, k] tensor.
torch::Tensor to_tensor(const Eigen::MatrixXf& m) {
    const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m;
    return torch::from_blob(const_cast<float*>(rm.data()), {rm.rows(), rm.cols()}, torch::kFloat32).clone();
}

}  // namespace

int main(int argc, char** argv) {
    std::string out = "torch_loop_run";
    int epochs = 200;
    int patience = 10;
    int batch_size = 32;
    int seed = 1;
    int threads = 1;
    bool json = false;
    bool quiet = false;
    traincb_examples::Cli cli("example_torch_loop",
                              "A LibTorch-native training loop on the UCI digits data that drives traincb's "
                              "CallbackList (EarlyStopping, ReduceLROnPlateau, checkpoints, CSV/TensorBoard logs).");
    cli.flag("out", out, "output directory (history.csv, checkpoints/, tensorboard/ are written there)");
    cli.flag("epochs", epochs, "maximum number of epochs");
    cli.flag("patience", patience, "EarlyStopping patience on val_loss");
    cli.flag("batch-size", batch_size, "samples per batch");
    cli.flag("seed", seed, "seed for the split, torch's initial weights, dropout and the sampler");
    cli.flag("threads", threads, "torch's intra-op threads");
    cli.flag("quiet", quiet, "no per-epoch console lines");
    cli.flag("json", json, "print a one-line JSON summary as the last line");
    cli.parse_or_exit(argc, argv);

    try {
        using namespace traincb_examples;
        namespace fs = std::filesystem;
        if (threads < 1) throw traincb::InvalidArgument("example_torch_loop: --threads must be at least 1");
        if (batch_size < 1) throw traincb::InvalidArgument("example_torch_loop: --batch-size must be at least 1");
        const auto useed = static_cast<std::uint64_t>(seed);
        const TorchDigits d = load_torch_digits(useed);
        at::set_num_threads(threads);
        torch::manual_seed(useed);

        // The user's torch objects: data, loader, module, optimizer.
        const torch::Tensor x = to_tensor(d.x), xv = to_tensor(d.xv), xt = to_tensor(d.xt);
        const torch::Tensor y = to_tensor(d.y).squeeze(1).to(torch::kLong);
        const torch::Tensor yv = to_tensor(d.yv).squeeze(1);  // float labels, for the traincb metric
        auto loader = torch::data::make_data_loader<torch::data::samplers::RandomSampler>(
            Digits(x, y).map(torch::data::transforms::Stack<>()),
            torch::data::DataLoaderOptions().batch_size(static_cast<std::size_t>(batch_size)));
        torch::nn::Sequential net(torch::nn::Linear(x.size(1), 64), torch::nn::ReLU(), torch::nn::Dropout(0.1),
                                  torch::nn::Linear(64, 10));
        torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(1e-3));

        // traincb's callbacks, over the module's and the optimizer's state.
        fs::create_directories(out);
        TorchDigitsCallbacks run({.out = out, .patience = patience, .console = !quiet});
        traincb::CallbackList callbacks(run.early_stopping, run.reduce_lr, run.checkpoint, run.logger);
        traincb::TorchState state(net, optimizer);
        callbacks.set_model(state);
        const std::int64_t n = x.size(0);
        callbacks.set_params({.epochs = epochs,
                              .steps_per_epoch = (n + batch_size - 1) / batch_size,
                              .batch_size = batch_size,
                              .samples = n,
                              .has_validation = true,
                              .log_keys = {"loss", "val_loss", "val_accuracy"}});
        traincb::metrics::SparseCategoricalAccuracy val_accuracy({.name = "accuracy"});

        int epochs_run = 0;
        traincb::Logs logs;
        callbacks.on_train_begin();
        for (int epoch = 0; epoch < epochs && !callbacks.stop_requested(); ++epoch) {
            callbacks.on_epoch_begin(epoch);
            net->train();
            double loss_sum = 0;
            std::int64_t seen = 0, step = 0;
            for (auto& batch : *loader) {
                callbacks.on_train_batch_begin(step);
                optimizer.zero_grad();
                const torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(batch.data), batch.target);
                loss.backward();
                optimizer.step();
                const auto rows = batch.data.size(0);
                loss_sum += loss.item<double>() * static_cast<double>(rows);
                seen += rows;
                logs.clear();
                logs.set("loss", loss_sum / static_cast<double>(seen));
                callbacks.on_train_batch_end(step++, logs);
                if (callbacks.stop_requested()) break;
            }
            // Validation: the loss in torch, the accuracy by a traincb metric over tensor views.
            net->eval();
            const torch::NoGradGuard no_grad;
            const torch::Tensor logits = net->forward(xv);
            logs.clear();
            logs.set("loss", loss_sum / static_cast<double>(std::max<std::int64_t>(seen, 1)));
            logs.set("val_loss", torch::nn::functional::cross_entropy(logits, yv.to(torch::kLong)).item<double>());
            val_accuracy.reset();
            val_accuracy.update(traincb::as_eigen(yv), traincb::as_eigen(logits));
            logs.set("val_accuracy", val_accuracy.result());
            callbacks.on_epoch_end(epoch, logs);
            ++epochs_run;
        }
        callbacks.on_train_end();  // restores the best weights (not the learning rate)

        // Held-out test set, with the best epoch's weights.
        net->eval();
        const torch::NoGradGuard no_grad;
        const torch::Tensor logits = net->forward(xt);
        const TorchDigitsTest test = evaluate_torch_digits(traincb::as_eigen(logits), d.yt);
        std::cout << "\n"
                  << epochs_run << " epochs, final learning rate " << state.learning_rate() << "\ntest accuracy "
                  << std::fixed << std::setprecision(4) << test.accuracy << ", macro F1 " << test.macro_f1 << '\n';
        if (json)
            print_json_summary(
                torch_digits_json(run, test, static_cast<std::size_t>(epochs_run), state.learning_rate()));
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "example_torch_loop: error: " << e.what() << '\n';
        return 1;
    }
}
