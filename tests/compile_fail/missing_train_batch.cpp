// Must NOT compile: the model has predict() but no train_batch(). The error must name it.
#include <traincb/trainer.hpp>
struct NoTrainBatch {
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) { return x; }
};
int main() {
    NoTrainBatch m;
    traincb::Trainer trainer(m);
    Eigen::MatrixXd x(4, 2), y(4, 1);
    trainer.fit(x, y);
}
