// Must NOT compile: the model has train_batch() but no predict(). The error must name it.
#include <traincb/trainer.hpp>
struct NoPredict {
    double train_batch(const Eigen::MatrixXd&, const Eigen::MatrixXd&) { return 0; }
};
int main() {
    NoPredict m;
    traincb::Trainer trainer(m);
    Eigen::MatrixXd x(4, 2), y(4, 1);
    trainer.fit(x, y);
}
