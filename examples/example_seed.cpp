// example_seed: the Keras early-stopping tutorial program in C++, an MLP on random data with
// EarlyStopping(patience 100):
//
//   model = Sequential([Dense(10, activation="relu"), Dense(1, activation="sigmoid")])
//   model.compile(optimizer=Adam(0.001), loss="binary_crossentropy")
//   model.fit(x_train, y_train, batch_size=10, epochs=1000, validation_data=(x_val, y_val),
//             callbacks=[EarlyStopping(monitor="val_loss", patience=100)])
//
// 1000 training and 100 validation rows of 8 uniform random features with random 0/1 labels (so
// there is nothing to learn and val_loss soon stops improving: early stopping ends the run).
//
//   example_seed [--epochs 1000] [--patience 100] [--seed 42] [--json]
#include <random>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/trainer.hpp>

#include "common/cli.hpp"
#include "common/dataset.hpp"
#include "common/mlp.hpp"

int main(int argc, char** argv) {
    int epochs = 1000;
    int patience = 100;
    int seed = 42;
    bool json = false;
    traincb_examples::Cli cli("example_seed",
                              "The Keras early-stopping tutorial program: an MLP on random data with EarlyStopping.");
    cli.flag("epochs", epochs, "maximum number of epochs");
    cli.flag("patience", patience, "EarlyStopping patience (epochs without val_loss improvement)");
    cli.flag("seed", seed, "seed for the data, the initial weights and the shuffling");
    cli.flag("json", json, "print a one-line JSON summary as the last line");
    cli.parse_or_exit(argc, argv);

    try {
        using namespace traincb_examples;
        std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
        const Eigen::MatrixXd x_train = uniform_matrix(1000, 8, rng);
        const Eigen::MatrixXd y_train = random_binary_labels(1000, rng);
        const Eigen::MatrixXd x_val = uniform_matrix(100, 8, rng);
        const Eigen::MatrixXd y_val = random_binary_labels(100, rng);

        Mlp model(MlpOptions{.inputs = 8,
                             .layers = {{10, Activation::Relu}, {1, Activation::Sigmoid}},
                             .loss = Loss::BinaryCrossentropy,
                             .learning_rate = 0.001,
                             .seed = static_cast<std::uint64_t>(seed)});
        traincb::Trainer trainer(model);
        traincb::EarlyStopping early_stopping({.monitor = "val_loss", .patience = patience});
        traincb::MetricLogger logger({std::make_shared<traincb::sinks::ConsoleSink>(
            traincb::sinks::ConsoleOptions{.style = traincb::sinks::ConsoleStyle::Lines})});

        const traincb::History history =
            trainer.fit(x_train, y_train,
                        {.epochs = epochs,
                         .batch_size = 10,
                         .seed = static_cast<std::uint64_t>(seed),
                         .validation_data = traincb::ValidationData<double>{x_val, y_val},
                         .metrics = {std::make_shared<traincb::metrics::BinaryAccuracy>(
                             traincb::metrics::BinaryAccuracyOptions{.name = "accuracy"})}},
                        early_stopping, logger);

        if (json) {
            nlohmann::json summary;
            summary["epochs_run"] = history.size();
            summary["stopped_epoch"] =
                early_stopping.stopped_epoch() ? nlohmann::json(*early_stopping.stopped_epoch()) : nlohmann::json();
            summary["best_epoch"] =
                early_stopping.best_epoch() ? nlohmann::json(*early_stopping.best_epoch()) : nlohmann::json();
            summary["stop_reason"] = early_stopping.stopped_epoch()
                                         ? nlohmann::json(traincb::to_string(early_stopping.stop_reason()))
                                         : nlohmann::json();
            summary["val_loss"] = history.at("val_loss").back();
            summary["best_val_loss"] =
                early_stopping.best() ? nlohmann::json(*early_stopping.best()) : nlohmann::json();
            print_json_summary(summary);
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "example_seed: error: " << e.what() << '\n';
        return 1;
    }
}
