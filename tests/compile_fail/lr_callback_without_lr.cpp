// Must NOT compile: ReduceLROnPlateau attached to a Trainer whose model has no learning rate.
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/trainer.hpp>
struct NoLearningRate {
    double train_batch(const Eigen::MatrixXd&, const Eigen::MatrixXd&) { return 0; }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) { return x; }
};
int main() {
    NoLearningRate m;
    traincb::Trainer trainer(m);
    traincb::ReduceLROnPlateau plateau;
    Eigen::MatrixXd x(4, 2), y(4, 1);
    trainer.fit(x, y, {}, plateau);
}
