// A program outside the traincb tree that uses the installed headers.
#include <Eigen/Core>
#include <iostream>
#include <traincb/traincb.hpp>

int main() {
    Eigen::VectorXd y_true(4), y_pred(4);
    y_true << 1, 0, 1, 0;
    y_pred << 0.9, 0.2, 0.4, 0.1;
    const double acc = traincb::metrics::binary_accuracy(y_true, y_pred);
    traincb::Logs logs{{"accuracy", acc}};
    std::cout << "traincb " << traincb::version_string << " accuracy=" << logs.at("accuracy") << '\n';
    return acc == 0.75 ? 0 : 1;
}
