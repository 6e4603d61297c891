// example_digits: a softmax MLP on the UCI optical digits data (examples/data/digits.csv, 8x8
// images with values 0-16; provenance in examples/data/README.md), trained with sparse categorical
// cross-entropy; reports the test accuracy, the macro F1 and the confusion matrix.
//
//   example_digits [--epochs 200] [--patience 10] [--batch-size 32] [--seed 1] [--json]
#include <iomanip>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/trainer.hpp>

#include "common/cli.hpp"
#include "common/dataset.hpp"
#include "common/mlp.hpp"

int main(int argc, char** argv) {
    int epochs = 200;
    int patience = 10;
    int batch_size = 32;
    int seed = 1;
    bool json = false;
    bool quiet = false;
    traincb_examples::Cli cli("example_digits", "Trains a softmax MLP on the UCI digits data with EarlyStopping.");
    cli.flag("epochs", epochs, "maximum number of epochs");
    cli.flag("patience", patience, "EarlyStopping patience on val_loss");
    cli.flag("batch-size", batch_size, "samples per batch");
    cli.flag("seed", seed, "seed for the split, the initial weights and the shuffling");
    cli.flag("quiet", quiet, "no per-epoch console lines");
    cli.flag("json", json, "print a one-line JSON summary as the last line");
    cli.parse_or_exit(argc, argv);

    try {
        using namespace traincb_examples;
        const auto useed = static_cast<std::uint64_t>(seed);
        const Dataset data = load_csv(data_dir() / "digits.csv");
        const auto [x, y, xv, yv, xt, yt] = prepare_split(data, {.train = 0.6, .val = 0.2, .test = 0.2}, useed);

        Mlp model(MlpOptions{.inputs = x.cols(),
                             .layers = {{32, Activation::Relu}, {10, Activation::Softmax}},
                             .loss = Loss::SparseCategoricalCrossentropy,
                             .learning_rate = 0.002,
                             .seed = useed});
        traincb::EarlyStopping early_stopping(
            {.monitor = "val_loss", .patience = patience, .restore_best_weights = true});
        traincb::MetricLogger logger(std::vector<std::shared_ptr<traincb::sinks::Sink>>{});
        if (!quiet) logger.add_sink(std::make_shared<traincb::sinks::ConsoleSink>(traincb::sinks::ConsoleOptions{}));
        traincb::Trainer trainer(model);
        const traincb::History history =
            trainer.fit(x, y,
                        {.epochs = epochs,
                         .batch_size = batch_size,
                         .seed = useed,
                         .validation_data = traincb::ValidationData<double>{xv, yv},
                         .metrics = {std::make_shared<traincb::metrics::SparseCategoricalAccuracy>(
                             traincb::metrics::SparseCategoricalAccuracyOptions{.name = "accuracy"})}},
                        early_stopping, logger);

        namespace m = traincb::metrics;
        const Eigen::MatrixXd probs = model.predict(xt);
        const Eigen::VectorXd labels_true = yt.col(0);
        Eigen::VectorXd labels_pred(probs.rows());
        for (Eigen::Index i = 0; i < probs.rows(); ++i) {
            Eigen::Index arg = 0;
            probs.row(i).maxCoeff(&arg);
            labels_pred(i) = static_cast<double>(arg);
        }
        const double acc = m::sparse_categorical_accuracy(labels_true, probs);
        const double macro_f1 = m::f1_score(labels_true, labels_pred, m::Average::Macro);
        const auto cm = m::confusion_matrix(labels_true, labels_pred, 10);
        std::cout << "\ntest accuracy " << std::fixed << std::setprecision(4) << acc << ", macro F1 " << macro_f1
                  << " (" << history.size() << " epochs)\nconfusion matrix (rows: true digit, columns: predicted):\n";
        for (Eigen::Index r = 0; r < 10; ++r) {
            std::cout << "  " << r << " |";
            for (Eigen::Index c = 0; c < 10; ++c) std::cout << std::setw(4) << cm(r, c);
            std::cout << '\n';
        }
        if (json) {
            nlohmann::json s;
            s["test_accuracy"] = acc;
            s["test_macro_f1"] = macro_f1;
            s["epochs_run"] = history.size();
            s["best_epoch"] =
                early_stopping.best_epoch() ? nlohmann::json(*early_stopping.best_epoch()) : nlohmann::json();
            print_json_summary(s);
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "example_digits: error: " << e.what() << '\n';
        return 1;
    }
}
