// A program outside the traincb tree that uses the installed headers: a metric, and an
// EarlyStopping driven through a CallbackList (whose functions, in the compiled mode, come from the
// installed library: a missing definition fails the link).
#include <Eigen/Core>
#include <iostream>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/metrics.hpp>
#include <traincb/version.hpp>

int main() {
    Eigen::VectorXd y_true(4), y_pred(4);
    y_true << 1, 0, 1, 0;
    y_pred << 0.9, 0.2, 0.4, 0.1;
    const double acc = traincb::metrics::binary_accuracy(y_true, y_pred);
    traincb::Logs logs{{"accuracy", acc}};

    // The loss improves for three epochs and then stays flat: patience 2 stops after epoch 4.
    traincb::EarlyStopping early_stopping({.monitor = "loss", .patience = 2});
    traincb::CallbackList callbacks{early_stopping};
    callbacks.set_params({.epochs = 10});
    callbacks.on_train_begin();
    for (int epoch = 0; epoch < 10 && !callbacks.stop_requested(); ++epoch) {
        callbacks.on_epoch_begin(epoch);
        traincb::Logs epoch_logs{{"loss", epoch < 3 ? 1.0 / (epoch + 1) : 1.0 / 3}};
        callbacks.on_epoch_end(epoch, epoch_logs);
    }
    callbacks.on_train_end();
    const int stopped = early_stopping.stopped_epoch().value_or(-1);
    std::cout << "traincb " << traincb::version_string << " accuracy=" << logs.at("accuracy")
              << " stopped_epoch=" << stopped << '\n';
    return acc == 0.75 && stopped == 4 ? 0 : 1;
}
