// example_custom_loop: traincb without Trainer. A hand-written training loop (logistic regression
// by full-batch gradient descent, in plain Eigen, on the UCI breast cancer data) drives a
// traincb::CallbackList with EarlyStopping and a MetricLogger directly: the same callbacks, the
// same rules, in any loop.
//
//   example_custom_loop [--epochs 2000] [--patience 20] [--lr 0.1] [--seed 7] [--json]
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>

#include "common/cli.hpp"
#include "common/dataset.hpp"

namespace {

// The loop's own model: w and b, with a state so EarlyStopping can restore the best weights.
struct LogisticRegression {
    Eigen::VectorXd w;
    double b = 0;
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit(v, "b", b);
    }
    [[nodiscard]] Eigen::VectorXd predict(const Eigen::MatrixXd& x) const {
        return (1.0 + (-((x * w).array() + b)).exp()).inverse().matrix();
    }
};

}  // namespace

int main(int argc, char** argv) {
    int epochs = 2000;
    int patience = 20;
    double lr = 0.1;
    int seed = 7;
    bool json = false;
    traincb_examples::Cli cli("example_custom_loop",
                              "Logistic regression by hand-written gradient descent, driving traincb's "
                              "CallbackList (EarlyStopping + MetricLogger) without Trainer.");
    cli.flag("epochs", epochs, "maximum number of epochs (full-batch steps)");
    cli.flag("patience", patience, "EarlyStopping patience on val_loss");
    cli.flag("lr", lr, "gradient-descent step size");
    cli.flag("seed", seed, "seed of the stratified train/validation/test split");
    cli.flag("json", json, "print a one-line JSON summary as the last line");
    cli.parse_or_exit(argc, argv);

    try {
        using namespace traincb_examples;
        const Dataset data = load_csv(data_dir() / "breast_cancer.csv");
        const Split split =
            stratified_split(data.labels, {.train = 0.6, .val = 0.2, .test = 0.2}, static_cast<std::uint64_t>(seed));
        Standardizer scaler(take_rows(data.features, split.train));
        const Eigen::MatrixXd x = scaler.transform(take_rows(data.features, split.train));
        const Eigen::VectorXd y = take_rows(data.labels, split.train).col(0);
        const Eigen::MatrixXd xv = scaler.transform(take_rows(data.features, split.val));
        const Eigen::VectorXd yv = take_rows(data.labels, split.val).col(0);

        LogisticRegression model{Eigen::VectorXd::Zero(x.cols()), 0.0};
        traincb::EarlyStopping early_stopping(
            {.monitor = "val_loss", .patience = patience, .restore_best_weights = true});
        traincb::MetricLogger logger({std::make_shared<traincb::sinks::ConsoleSink>(
            traincb::sinks::ConsoleOptions{.style = traincb::sinks::ConsoleStyle::Lines})});

        traincb::CallbackList callbacks(early_stopping, logger);
        callbacks.set_model(model);  // gives EarlyStopping the model's state
        callbacks.set_params({.epochs = epochs,
                              .steps_per_epoch = 1,
                              .samples = x.rows(),
                              .has_validation = true,
                              .log_keys = {"accuracy", "loss", "val_accuracy", "val_loss"}});
        int epochs_run = 0;
        traincb::Logs logs;
        callbacks.on_train_begin();
        for (int epoch = 0; epoch < epochs && !callbacks.stop_requested(); ++epoch) {
            callbacks.on_epoch_begin(epoch);
            callbacks.on_train_batch_begin(0);
            const Eigen::VectorXd p = model.predict(x);
            const Eigen::VectorXd err = p - y;  // d(BCE)/d(logit)
            model.w -= lr * (x.transpose() * err) / static_cast<double>(x.rows());
            model.b -= lr * err.mean();
            logs.clear();
            logs.set("loss", traincb::metrics::binary_crossentropy(y, p));
            logs.set("accuracy", traincb::metrics::binary_accuracy(y, p));
            callbacks.on_train_batch_end(0, logs);
            const Eigen::VectorXd pv = model.predict(xv);
            logs.set("val_loss", traincb::metrics::binary_crossentropy(yv, pv));
            logs.set("val_accuracy", traincb::metrics::binary_accuracy(yv, pv));
            callbacks.on_epoch_end(epoch, logs);
            ++epochs_run;
        }
        callbacks.on_train_end();  // restores the best weights

        const Eigen::MatrixXd xt = scaler.transform(take_rows(data.features, split.test));
        const Eigen::VectorXd yt = take_rows(data.labels, split.test).col(0);
        const double test_accuracy = traincb::metrics::binary_accuracy(yt, model.predict(xt));
        std::cout << "test accuracy: " << test_accuracy << '\n';
        if (json) {
            nlohmann::json summary;
            summary["epochs_run"] = epochs_run;
            summary["stopped_epoch"] =
                early_stopping.stopped_epoch() ? nlohmann::json(*early_stopping.stopped_epoch()) : nlohmann::json();
            summary["best_epoch"] =
                early_stopping.best_epoch() ? nlohmann::json(*early_stopping.best_epoch()) : nlohmann::json();
            summary["best_val_loss"] =
                early_stopping.best() ? nlohmann::json(*early_stopping.best()) : nlohmann::json();
            summary["test_accuracy"] = test_accuracy;
            print_json_summary(summary);
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "example_custom_loop: error: " << e.what() << '\n';
        return 1;
    }
}
