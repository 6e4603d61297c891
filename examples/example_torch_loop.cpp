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
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/tensorboard.hpp>
#include <traincb/torch.hpp>

#include "common/cli.hpp"
#include "common/dataset.hpp"

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
torch::Tensor to_tensor(const Eigen::MatrixXd& m) {
    const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m.cast<float>();
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
        const PreparedSplit d =
            prepare_split(load_csv(data_dir() / "digits.csv"), {.train = 0.6, .val = 0.2, .test = 0.2}, useed);
        at::set_num_threads(threads);
        torch::manual_seed(useed);

        // The user's torch objects: data, loader, module, optimizer.
        const torch::Tensor x = to_tensor(d.x), xv = to_tensor(d.xv), xt = to_tensor(d.xt);
        const torch::Tensor y = to_tensor(d.y).squeeze(1).to(torch::kLong);
        const torch::Tensor yv = to_tensor(d.yv).squeeze(1);  // float labels, for the traincb metric
        const torch::Tensor yt = to_tensor(d.yt).squeeze(1);
        auto loader = torch::data::make_data_loader<torch::data::samplers::RandomSampler>(
            Digits(x, y).map(torch::data::transforms::Stack<>()),
            torch::data::DataLoaderOptions().batch_size(static_cast<std::size_t>(batch_size)));
        torch::nn::Sequential net(torch::nn::Linear(x.size(1), 64), torch::nn::ReLU(), torch::nn::Dropout(0.1),
                                  torch::nn::Linear(64, 10));
        torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(1e-3));

        // traincb's callbacks, over the module's and the optimizer's state.
        const fs::path checkpoints = fs::path(out) / "checkpoints";
        fs::create_directories(out);
        traincb::EarlyStopping early_stopping(
            {.monitor = "val_loss", .patience = patience, .restore_best_weights = true});
        traincb::ReduceLROnPlateau reduce_lr({.monitor = "val_loss", .factor = 0.5, .patience = 5});
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
        traincb::CallbackList callbacks(early_stopping, reduce_lr, checkpoint, logger);
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
        const auto labels_true = traincb::as_eigen(yt);
        const Eigen::VectorXf labels_pred = traincb::as_eigen(logits.argmax(1).to(torch::kFloat32).contiguous());
        namespace m = traincb::metrics;
        const double acc = m::sparse_categorical_accuracy(labels_true, traincb::as_eigen(logits));
        const double macro_f1 = m::f1_score(Eigen::VectorXf(labels_true), labels_pred, m::Average::Macro);
        std::cout << "\n"
                  << epochs_run << " epochs, final learning rate " << state.learning_rate() << "\ntest accuracy "
                  << std::fixed << std::setprecision(4) << acc << ", macro F1 " << macro_f1 << '\n';
        if (json) {
            nlohmann::json s;
            s["test_accuracy"] = acc;
            s["test_macro_f1"] = macro_f1;
            s["epochs_run"] = epochs_run;
            s["stopped_epoch"] =
                early_stopping.stopped_epoch() ? nlohmann::json(*early_stopping.stopped_epoch()) : nlohmann::json();
            s["best_epoch"] =
                early_stopping.best_epoch() ? nlohmann::json(*early_stopping.best_epoch()) : nlohmann::json();
            s["learning_rate"] = state.learning_rate();
            s["lr_reductions"] = reduce_lr.reductions().size();
            print_json_summary(s);
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "example_torch_loop: error: " << e.what() << '\n';
        return 1;
    }
}
