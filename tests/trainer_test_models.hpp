#pragma once
// Small models for the Trainer tests: a least-squares linear model trained by SGD (with every
// optional capability), and variants that lack capabilities.
#include <Eigen/Core>
#include <cmath>
#include <stdexcept>
#include <traincb/model.hpp>
#include <traincb/state.hpp>

namespace test_models {

// y = x * w + b, loss = mean squared error, one SGD step per batch. Returns loss and outputs
// (a reference to its own buffer, so a batch allocates nothing).
struct Linear {
    Eigen::MatrixXd w;
    Eigen::MatrixXd b;
    Eigen::MatrixXd out, grad_out, gw;
    double lr = 0.05;
    std::int64_t steps = 0;
    int throw_at_step = -1;     // throw from train_batch at this global step (tests)
    bool nan_at_throw = false;  // instead of throwing, return NaN loss from that step on

    Linear(int in, int outs) : w(Eigen::MatrixXd::Constant(in, outs, 0.1)), b(Eigen::MatrixXd::Zero(1, outs)) {}

    traincb::BatchResult<const Eigen::MatrixXd&> train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
        if (throw_at_step >= 0 && steps >= throw_at_step && !nan_at_throw)
            throw std::runtime_error("model exploded at step " + std::to_string(steps));
        out.resize(x.rows(), w.cols());  // no-op when the size is unchanged
        out.noalias() = x * w;
        out.rowwise() += b.row(0);
        const double loss = (out - y).squaredNorm() / static_cast<double>(out.size());
        grad_out.resize(out.rows(), out.cols());
        grad_out = (out - y) * (2.0 / static_cast<double>(out.size()));
        gw.resize(w.rows(), w.cols());
        gw.noalias() = x.transpose() * grad_out;
        w -= lr * gw;
        b -= lr * grad_out.colwise().sum();
        ++steps;
        if (nan_at_throw && throw_at_step >= 0 && steps > throw_at_step) return {std::nan(""), out};
        return {loss, out};
    }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const {
        Eigen::MatrixXd p = x * w;
        p.rowwise() += b.row(0);
        return p;
    }
    double loss(const Eigen::MatrixXd& y_true, const Eigen::MatrixXd& y_pred) const {
        return (y_pred - y_true).squaredNorm() / static_cast<double>(y_pred.size());
    }
    double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit(v, "b", b);
        traincb::visit_training_state(v, "steps", steps);
    }
};

// Only the two required members; returns a bare loss (no outputs).
struct Minimal {
    Eigen::MatrixXd w = Eigen::MatrixXd::Zero(2, 1);
    double train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
        const Eigen::MatrixXd e = x * w - y;
        w -= 0.1 * x.transpose() * e / static_cast<double>(x.rows());
        return e.squaredNorm() / static_cast<double>(e.size());
    }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const { return x * w; }
};

// Deterministic data: y = x * [1, -2]^T + 0.5.
inline void make_data(Eigen::Index n, Eigen::MatrixXd& x, Eigen::MatrixXd& y) {
    x.resize(n, 2);
    y.resize(n, 1);
    for (Eigen::Index i = 0; i < n; ++i) {
        x(i, 0) = std::sin(0.37 * static_cast<double>(i));
        x(i, 1) = std::cos(0.11 * static_cast<double>(i) + 1.0);
        y(i, 0) = x(i, 0) - 2.0 * x(i, 1) + 0.5;
    }
}

}  // namespace test_models
