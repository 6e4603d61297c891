// example_breast_cancer: a small MLP on the UCI Breast Cancer Wisconsin (Diagnostic) data
// (examples/data/breast_cancer.csv; provenance in examples/data/README.md).
//
// Standardised with training statistics, a stratified 60/20/20 train/validation/test split, an
// MLP 30 -> 16 (relu) -> 1 (sigmoid) trained with Adam on binary cross-entropy, EarlyStopping on
// val_loss with restore_best_weights, and a MetricLogger writing DIR/history.csv and the console.
//
//   example_breast_cancer [--out DIR] [--epochs 300] [--patience 20] [--batch-size 16] [--seed 1] [--json]
#include <filesystem>
#include <iomanip>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/trainer.hpp>

#include "common/cli.hpp"
#include "common/dataset.hpp"
#include "common/mlp.hpp"

int main(int argc, char** argv) {
    std::string out = "breast_cancer_run";
    int epochs = 300;
    int patience = 20;
    int batch_size = 16;
    int seed = 1;
    bool json = false;
    bool quiet = false;
    traincb_examples::Cli cli("example_breast_cancer",
                              "Trains an MLP on the UCI breast cancer data with EarlyStopping and a CSV/console log.");
    cli.flag("out", out, "output directory (history.csv is written there)");
    cli.flag("epochs", epochs, "maximum number of epochs");
    cli.flag("patience", patience, "EarlyStopping patience on val_loss");
    cli.flag("batch-size", batch_size, "samples per batch");
    cli.flag("seed", seed, "seed for the split, the initial weights and the shuffling");
    cli.flag("quiet", quiet, "no per-epoch console lines");
    cli.flag("json", json, "print a one-line JSON summary as the last line");
    cli.parse_or_exit(argc, argv);

    try {
        using namespace traincb_examples;
        namespace fs = std::filesystem;
        const auto useed = static_cast<std::uint64_t>(seed);
        const Dataset data = load_csv(data_dir() / "breast_cancer.csv");
        const Split split = stratified_split(data.labels, {.train = 0.6, .val = 0.2, .test = 0.2}, useed);
        Standardizer scaler(take_rows(data.features, split.train));
        const Eigen::MatrixXd x = scaler.transform(take_rows(data.features, split.train));
        const Eigen::MatrixXd y = take_rows(data.labels, split.train);
        const Eigen::MatrixXd xv = scaler.transform(take_rows(data.features, split.val));
        const Eigen::MatrixXd yv = take_rows(data.labels, split.val);
        const Eigen::MatrixXd xt = scaler.transform(take_rows(data.features, split.test));
        const Eigen::MatrixXd yt = take_rows(data.labels, split.test);

        Mlp model(MlpOptions{.inputs = x.cols(),
                             .layers = {{16, Activation::Relu}, {1, Activation::Sigmoid}},
                             .loss = Loss::BinaryCrossentropy,
                             .learning_rate = 0.001,
                             .seed = useed});
        fs::create_directories(out);
        traincb::EarlyStopping early_stopping({.monitor = "val_loss", .patience = patience, .restore_best_weights = true});
        traincb::MetricLogger logger({std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = fs::path(out) / "history.csv"})});
        if (!quiet)
            logger.add_sink(std::make_shared<traincb::sinks::ConsoleSink>(traincb::sinks::ConsoleOptions{}));

        traincb::Trainer trainer(model);
        const traincb::History history = trainer.fit(
            x, y,
            {.epochs = epochs,
             .batch_size = batch_size,
             .seed = useed,
             .validation_data = traincb::ValidationData<double>{xv, yv},
             .metrics = {std::make_shared<traincb::metrics::BinaryAccuracy>(traincb::metrics::BinaryAccuracyOptions{.name = "accuracy"}),
                         std::make_shared<traincb::metrics::RocAuc>()}},
            early_stopping, logger);

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
                  << "; best epoch " << (early_stopping.best_epoch() ? *early_stopping.best_epoch() + 1 : 0)
                  << " of " << history.size() << " (1-based)\n";
        std::cout << "test: accuracy " << std::fixed << std::setprecision(4) << acc << ", precision " << prec
                  << ", recall " << rec << ", F1 " << f1 << ", ROC AUC " << auc << '\n';
        std::cout << "confusion matrix (rows: true benign/malignant, columns: predicted):\n"
                  << "             benign  malignant\n"
                  << "  benign     " << std::setw(6) << cm(0, 0) << "  " << std::setw(9) << cm(0, 1) << '\n'
                  << "  malignant  " << std::setw(6) << cm(1, 0) << "  " << std::setw(9) << cm(1, 1) << '\n';
        std::cout << "history: " << (fs::path(out) / "history.csv").string() << '\n';
        if (json) {
            nlohmann::json s;
            s["test_accuracy"] = acc;
            s["test_precision"] = prec;
            s["test_recall"] = rec;
            s["test_f1"] = f1;
            s["test_auc"] = auc;
            s["best_epoch"] = early_stopping.best_epoch() ? nlohmann::json(*early_stopping.best_epoch()) : nlohmann::json();
            s["stopped_epoch"] = early_stopping.stopped_epoch() ? nlohmann::json(*early_stopping.stopped_epoch()) : nlohmann::json();
            s["epochs_run"] = history.size();
            s["stop_reason"] = history.end.reason.empty() ? nlohmann::json() : nlohmann::json(history.end.reason);
            s["confusion_matrix"] = {{cm(0, 0), cm(0, 1)}, {cm(1, 0), cm(1, 1)}};
            print_json_summary(s);
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "example_breast_cancer: error: " << e.what() << '\n';
        return 1;
    }
}
