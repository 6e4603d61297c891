#pragma once
// Shared by the checkpoint, ModelCheckpoint, resume and interrupt tests: a small model whose whole
// training state (weights, learning rate, step) is visited, deterministic data, temporary
// directories, warning capture and fault injection through io/atomic_file.hpp's FileOps seam.
#include <unistd.h>

#include <Eigen/Core>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <traincb/callback.hpp>
#include <traincb/diagnostics.hpp>
#include <traincb/io/atomic_file.hpp>
#include <traincb/logs.hpp>
#include <traincb/model.hpp>
#include <traincb/state.hpp>
#include <vector>

#include "test_support.hpp"

namespace ckpt_test {

namespace fs = std::filesystem;
using traincb_test::read_bytes;
using traincb_test::TempDir;
using traincb_test::write_bytes;
using Warnings = traincb_test::WarningCapture;  // collects every traincb warning while alive

// y = tanh(x * w1) * w2 + b trained by SGD with momentum: enough state (two matrices, a velocity,
// a learning rate, a step count) that forgetting any of it on resume changes the result.
struct Net {
    Eigen::MatrixXd w1, w2, b, v1, v2;
    Eigen::MatrixXd h, out, g_out, g_h;
    double lr = 0.05;
    std::int64_t steps = 0;

    Net(int in, int hidden, int outs)
        : w1(in, hidden),
          w2(hidden, outs),
          b(Eigen::MatrixXd::Zero(1, outs)),
          v1(Eigen::MatrixXd::Zero(in, hidden)),
          v2(Eigen::MatrixXd::Zero(hidden, outs)) {
        for (Eigen::Index i = 0; i < w1.size(); ++i) w1.data()[i] = std::sin(1.7 * static_cast<double>(i) + 0.3) * 0.5;
        for (Eigen::Index i = 0; i < w2.size(); ++i) w2.data()[i] = std::cos(0.9 * static_cast<double>(i) + 0.1) * 0.5;
    }

    traincb::BatchResult<const Eigen::MatrixXd&> train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
        h = (x * w1).array().tanh().matrix();
        out = h * w2;
        out.rowwise() += b.row(0);
        const double n = static_cast<double>(out.size());
        const double loss = (out - y).squaredNorm() / n;
        g_out = (out - y) * (2.0 / n);
        g_h = ((g_out * w2.transpose()).array() * (1.0 - h.array().square())).matrix();
        v2 = 0.9 * v2 + h.transpose() * g_out;
        v1 = 0.9 * v1 + x.transpose() * g_h;
        w2 -= lr * v2;
        w1 -= lr * v1;
        b -= lr * g_out.colwise().sum();
        ++steps;
        return {loss, out};
    }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const {
        Eigen::MatrixXd p = (x * w1).array().tanh().matrix() * w2;
        p.rowwise() += b.row(0);
        return p;
    }
    double loss(const Eigen::MatrixXd& y_true, const Eigen::MatrixXd& y_pred) const {
        return (y_pred - y_true).squaredNorm() / static_cast<double>(y_pred.size());
    }
    double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w1", w1);
        traincb::visit(v, "w2", w2);
        traincb::visit(v, "b", b);
        traincb::visit_training_state(v, "opt.v1", v1);
        traincb::visit_training_state(v, "opt.v2", v2);
        traincb::visit_training_state(v, "opt.lr", lr);
        traincb::visit_training_state(v, "opt.steps", steps);
    }
};

// Deterministic regression data: y = sin(x0) - 0.5 x1 + 0.25 x2 x3 (+ a wiggle).
inline void make_data(Eigen::Index n, Eigen::MatrixXd& x, Eigen::MatrixXd& y) {
    x.resize(n, 4);
    y.resize(n, 1);
    for (Eigen::Index i = 0; i < n; ++i) {
        const auto t = static_cast<double>(i);
        x(i, 0) = std::sin(0.37 * t);
        x(i, 1) = std::cos(0.11 * t + 1.0);
        x(i, 2) = std::sin(0.05 * t * t);
        x(i, 3) = std::cos(1.3 * t);
        y(i, 0) = std::sin(x(i, 0)) - 0.5 * x(i, 1) + 0.25 * x(i, 2) * x(i, 3) + 0.1 * std::sin(3.0 * t);
    }
}

// The model's state as owned tensors (for bit-exact comparisons).
inline traincb::StateDict state_of(Net& m) {
    traincb::StateDict d;
    traincb::StateCollector c(d);
    m.visit_state(c);
    return d;
}

// Same tensors (names, dtypes, shapes, bytes), in any order (a file orders them by dtype and name).
inline bool same_state(const traincb::StateDict& a, const traincb::StateDict& b) {
    if (a.size() != b.size()) return false;
    for (const auto& t : a.tensors()) {
        const traincb::Tensor* u = b.find(t.name);
        if (u == nullptr || !(*u == t)) return false;
    }
    return true;
}

// File names in `dir` (sorted).
inline std::set<std::string> names_in(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
}

// Makes the n-th call (0-based, counted from installation) of one file operation fail with `err`.
enum class Op { Open, Write, Fsync, Rename, Mkdir };
struct Fault {
    static inline Op op = Op::Write;
    static inline int fail_at = -1;
    static inline int err = 0;
    static inline int calls = 0;
    static bool hit(Op o) {
        if (o != op) return false;
        if (calls++ != fail_at) return false;
        errno = err;
        return true;
    }
};
struct InjectFault {
    traincb::detail::ScopedFileOps ops;
    InjectFault(Op o, int nth, int err) : ops(make()) {
        Fault::op = o;
        Fault::fail_at = nth;
        Fault::err = err;
        Fault::calls = 0;
    }
    static traincb::detail::FileOps make() {
        traincb::detail::FileOps f = traincb::detail::system_file_ops();
        f.open = [](const char* p, int flags, mode_t mode) -> int {
            return Fault::hit(Op::Open) ? -1 : ::open(p, flags, mode);
        };
        f.write = [](int fd, const void* b, std::size_t n) -> ssize_t {
            return Fault::hit(Op::Write) ? -1 : ::write(fd, b, n);
        };
        f.fsync = [](int fd) -> int { return Fault::hit(Op::Fsync) ? -1 : ::fsync(fd); };
        f.rename = [](const char* a, const char* b) -> int { return Fault::hit(Op::Rename) ? -1 : ::rename(a, b); };
        f.mkdir = [](const char* p, mode_t m) -> int { return Fault::hit(Op::Mkdir) ? -1 : ::mkdir(p, m); };
        return f;
    }
};

// A History compared bit for bit (NaN equals NaN).
inline bool same_bits(double a, double b) {
    return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}
inline bool same_history(const traincb::History& a, const traincb::History& b) {
    if (a.epoch != b.epoch || a.history.size() != b.history.size()) return false;
    for (const auto& [k, col] : a.history) {
        const auto it = b.history.find(k);
        if (it == b.history.end() || it->second.size() != col.size()) return false;
        for (std::size_t i = 0; i < col.size(); ++i)
            if (!same_bits(col[i], it->second[i])) return false;
    }
    return true;
}

// Drives a CallbackList by hand, one epoch per value of `val_loss` (and a fixed "loss").
struct Driver {
    traincb::CallbackList list;
    traincb::History history;
    Net& model;
    explicit Driver(Net& m) : model(m) {
        list.set_model(model);
        list.set_history(&history);
        traincb::TrainParams p;
        p.epochs = 100;
        p.steps_per_epoch = 1;
        p.has_validation = true;
        p.log_keys = {"loss", "val_loss"};
        list.set_params(p);
    }
    void begin() { list.on_train_begin(); }
    // One epoch: a batch (changing the model), then on_epoch_end with the given logs.
    void epoch(int e, traincb::Logs logs) {
        list.on_epoch_begin(e);
        list.on_train_batch_begin(0);
        Eigen::MatrixXd x = Eigen::MatrixXd::Constant(2, 4, 0.1 * (e + 1)), y = Eigen::MatrixXd::Ones(2, 1);
        (void)model.train_batch(x, y);
        traincb::Logs bl{{"loss", 1.0}};
        list.on_train_batch_end(0, bl);
        list.on_epoch_end(e, logs);
    }
    void end() { list.on_train_end(); }
};

// The data of the resume tests: 64 training rows (8 batches of 8) and 20 validation rows.
struct ResumeData {
    Eigen::MatrixXd x, y, xv, yv;
    ResumeData() {
        make_data(64, x, y);
        Eigen::MatrixXd all_x, all_y;
        make_data(84, all_x, all_y);
        xv = all_x.bottomRows(20);
        yv = all_y.bottomRows(20);
    }
};
inline const ResumeData& resume_data() {
    static const ResumeData d;
    return d;
}

// Throws at the end of epoch `at` (put it first in the list, so no other callback sees that
// epoch end), or at global step `at_step` in on_train_batch_end: a crash that leaves the files as
// a kill would.
struct Crash final : traincb::Callback {
    int at = -1;
    std::int64_t at_step = -1;
    void on_epoch_end(traincb::Context& c) override {
        if (c.epoch() == at) throw std::runtime_error("crash");
    }
    void on_train_batch_end(traincb::Context& c) override {
        if (c.global_step() == at_step) throw std::runtime_error("crash");
    }
};

}  // namespace ckpt_test
