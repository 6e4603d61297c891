// Compile-time cost of a user who includes only the metrics and streams one of them
// (scripts/compile-times.sh).
#include <Eigen/Core>
#include <iostream>
#include <traincb/metrics.hpp>

int main() {
    const Eigen::MatrixXd y_true = Eigen::MatrixXd::Ones(8, 1);
    const Eigen::MatrixXd y_pred = Eigen::MatrixXd::Constant(8, 1, 0.75);
    traincb::metrics::MeanSquaredError mse;
    mse.update(y_true, y_pred);
    std::cout << mse.name() << " = " << mse.result() << '\n';
    return mse.result() > 0 ? 0 : 1;
}
