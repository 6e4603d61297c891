// Must compile: the control for the compile-failure tests (same flags, a complete model).
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/trainer.hpp>
struct Complete {
    double lr = 0.1;
    double train_batch(const Eigen::MatrixXd&, const Eigen::MatrixXd&) { return 0; }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) { return x; }
    double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
};
int main() {
    Complete m;
    traincb::Trainer trainer(m);
    traincb::ReduceLROnPlateau plateau({.monitor = "loss"});
    Eigen::MatrixXd x = Eigen::MatrixXd::Zero(4, 2), y = Eigen::MatrixXd::Zero(4, 1);
    trainer.fit(x, y, {}, plateau);
}
