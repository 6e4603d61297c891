// Compile-time cost of a user who trains a tiny model with Trainer and EarlyStopping, including
// only their two headers: umbrella.cpp's code without the umbrella header
// (scripts/compile-times.sh).
#include <iostream>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/trainer.hpp>

namespace {
// y = a * x, one weight: the model is deliberately minimal (no matrix product), so that what the
// figure shows is traincb's cost, not Eigen's for the model.
struct Scale {
    double a = 0;
    double train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
        const Eigen::ArrayXd err = a * x.col(0).array() - y.col(0).array();
        a -= 0.5 * (err * x.col(0).array()).mean();
        return err.square().mean();
    }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const { return a * x.leftCols(1); }
    double loss(const Eigen::MatrixXd& y, const Eigen::MatrixXd& p) const { return (p - y).squaredNorm() / y.size(); }
    void visit_state(traincb::StateVisitor& v) { traincb::visit(v, "a", a); }
};
}  // namespace

int main() {
    const Eigen::MatrixXd x = Eigen::MatrixXd::Random(64, 1);
    const Eigen::MatrixXd y = 3.0 * x;
    Scale model;
    traincb::Trainer trainer(model);
    traincb::EarlyStopping early_stopping({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
    const traincb::History history =
        trainer.fit(x, y, {.epochs = 20, .batch_size = 16, .validation_split = 0.25}, early_stopping);
    std::cout << "ran " << history.size() << " epochs\n";
    return history.size() > 0 ? 0 : 1;
}
