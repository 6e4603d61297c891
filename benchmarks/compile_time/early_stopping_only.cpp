// Compile-time cost of a user who includes only EarlyStopping and drives it from a hand-written
// loop through a CallbackList (scripts/compile-times.sh).
#include <iostream>
#include <traincb/callbacks/early_stopping.hpp>

int main() {
    traincb::EarlyStopping early_stopping({.monitor = "loss", .patience = 2});
    traincb::CallbackList callbacks{early_stopping};
    callbacks.set_params({.epochs = 10});
    callbacks.on_train_begin();
    for (int epoch = 0; epoch < 10 && !callbacks.stop_requested(); ++epoch) {
        callbacks.on_epoch_begin(epoch);
        traincb::Logs logs{{"loss", epoch < 3 ? 1.0 / (epoch + 1) : 1.0}};
        callbacks.on_epoch_end(epoch, logs);
    }
    callbacks.on_train_end();
    std::cout << "stopped at epoch " << early_stopping.stopped_epoch().value_or(-1) << '\n';
    return early_stopping.stopped_epoch() ? 0 : 1;
}
