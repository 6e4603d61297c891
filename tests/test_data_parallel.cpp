// Data-parallel training through the in-process ThreadCommunicator (threads as ranks; see
// tests/thread_communicator.hpp): Trainer with FitOptions::communicator, and CallbackList in a
// hand-written loop. The references are independent of the code under test: a one-process run of
// the same model on the same global batches (the data-parallel step averages its gradient over
// the ranks, so its updates equal one process's on the union of the ranks' rows, up to rounding),
// metrics computed in one process over all rows, and the ranks' agreement with each other.
#include "catch.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/lambda_callback.hpp>
#include <traincb/interrupt.hpp>
#include <traincb/metrics.hpp>
#include <traincb/trainer.hpp>
#include <vector>

#include "common/mlp.hpp"
#include "test_support.hpp"
#include "thread_communicator.hpp"

namespace test_data_parallel {

namespace {

using traincb_test::ThreadCommunicator;
using traincb_test::ThreadGroup;

// y = x * w + b by SGD on the mean squared error, with the gradient summed over every rank and
// divided by the global batch's size: a step on R ranks equals one process's step on the union
// of their rows (up to rounding). Records the first column of every row it trains on (each row's
// id in these tests).
struct DpLinear {
    Eigen::MatrixXd w, b, out;
    double lr = 0.05;
    std::int64_t steps = 0;
    traincb::Communicator* comm = nullptr;  // nullptr: one process
    std::vector<double> seen{};             // x(i, 0) of every row trained on

    explicit DpLinear(int in = 3, double init = 0.1)
        : w(Eigen::MatrixXd::Constant(in, 1, init)), b(Eigen::MatrixXd::Zero(1, 1)) {}

    traincb::BatchResult<const Eigen::MatrixXd&> train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
        for (Eigen::Index i = 0; i < x.rows(); ++i) seen.push_back(x(i, 0));
        out = x * w;
        out.rowwise() += b.row(0);
        const Eigen::MatrixXd e = out - y;
        // [gradient of w..., gradient of b, rows], summed over the ranks.
        std::vector<double> g(static_cast<std::size_t>(w.rows()) + 2);
        const Eigen::MatrixXd gw = x.transpose() * e * 2.0;
        for (Eigen::Index i = 0; i < w.rows(); ++i) g[static_cast<std::size_t>(i)] = gw(i, 0);
        g[static_cast<std::size_t>(w.rows())] = 2.0 * e.sum();
        g.back() = static_cast<double>(x.rows());
        if (comm != nullptr) comm->sum(g);
        for (Eigen::Index i = 0; i < w.rows(); ++i) w(i, 0) -= lr * g[static_cast<std::size_t>(i)] / g.back();
        b(0, 0) -= lr * g[static_cast<std::size_t>(w.rows())] / g.back();
        ++steps;
        return {e.squaredNorm() / static_cast<double>(e.size()), out};
    }
    [[nodiscard]] Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const {
        Eigen::MatrixXd p = x * w;
        p.rowwise() += b.row(0);
        return p;
    }
    [[nodiscard]] double loss(const Eigen::MatrixXd& t, const Eigen::MatrixXd& p) const {
        return (p - t).squaredNorm() / static_cast<double>(p.size());
    }
    [[nodiscard]] double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit(v, "b", b);
        traincb::visit_training_state(v, "steps", steps);
        traincb::visit_training_state(v, "lr", lr);
    }
};

// n rows: column 0 is the row's id (i / 1000, distinct and exact), columns 1-2 features;
// y = 0.3 id + x1 - 2 x2 + 0.5.
void make_rows(Eigen::Index n, Eigen::MatrixXd& x, Eigen::MatrixXd& y) {
    x.resize(n, 3);
    y.resize(n, 1);
    for (Eigen::Index i = 0; i < n; ++i) {
        x(i, 0) = static_cast<double>(i) / 1000.0;
        x(i, 1) = std::sin(0.37 * static_cast<double>(i));
        x(i, 2) = std::cos(0.11 * static_cast<double>(i) + 1.0);
        y(i, 0) = 0.3 * x(i, 0) + x(i, 1) - 2.0 * x(i, 2) + 0.5;
    }
}

double rel(double a, double b) {
    return std::abs(a - b) / std::max(1e-300, std::max(std::abs(a), std::abs(b)));
}

// Every rank's result, collected under a lock.
template <class T>
struct PerRank {
    explicit PerRank(int n) : v(static_cast<std::size_t>(n)) {}
    std::mutex m;
    std::vector<T> v;
    void set(int r, T x) {
        const std::lock_guard<std::mutex> lock(m);
        v[static_cast<std::size_t>(r)] = std::move(x);
    }
};

bool same_history(const traincb::History& a, const traincb::History& b) {
    if (a.epoch != b.epoch || a.history.size() != b.history.size()) return false;
    for (const auto& [k, v] : a.history) {
        const auto it = b.history.find(k);
        if (it == b.history.end() || it->second.size() != v.size()) return false;
        for (std::size_t i = 0; i < v.size(); ++i)
            if (std::bit_cast<std::uint64_t>(v[i]) != std::bit_cast<std::uint64_t>(it->second[i])) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("data-parallel fit equals one process on the global batch, and every rank agrees bit for bit",
          "[data_parallel]") {
    // 150 rows, validation_split 0.2: 120 training rows = 4 steps of 3 ranks x 10 rows, which one
    // process runs as 4 batches of 30 over the same permutation; 30 validation rows, 10 per rank.
    Eigen::MatrixXd x, y;
    make_rows(150, x, y);
    const int world = 3;
    auto options = [](traincb::Communicator* comm, int batch) {
        traincb::FitOptions<double> o;
        o.epochs = 12;
        o.batch_size = batch;
        o.seed = 7;
        o.validation_split = 0.2;
        o.metrics = {std::make_shared<traincb::metrics::MeanAbsoluteError>()};
        o.communicator = comm;
        return o;
    };
    DpLinear one(3, 0.1);
    traincb::EarlyStopping es1({.monitor = "val_loss", .min_delta = 1e-3, .patience = 3});
    const traincb::History h1 = traincb::Trainer(one).fit(x, y, options(nullptr, 30), es1);

    PerRank<traincb::History> hist(world);
    PerRank<Eigen::MatrixXd> weights(world);
    PerRank<std::vector<double>> seen(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m(3, 0.1 * (comm.rank() + 1));  // initialised differently: rank 0's state is broadcast
        m.comm = &comm;
        traincb::EarlyStopping es({.monitor = "val_loss", .min_delta = 1e-3, .patience = 3});
        hist.set(comm.rank(), traincb::Trainer(m).fit(x, y, options(&comm, 10), es));
        weights.set(comm.rank(), m.w);
        seen.set(comm.rank(), m.seen);
    });
    for (int r = 1; r < world; ++r) {
        CHECK(same_history(hist.v[0], hist.v[static_cast<std::size_t>(r)]));
        CHECK(weights.v[0] == weights.v[static_cast<std::size_t>(r)]);
    }
    const traincb::History& hd = hist.v[0];
    REQUIRE(hd.epoch == h1.epoch);  // the same stop, at the same epoch
    CHECK(hd.end.kind == h1.end.kind);
    for (const char* key : {"loss", "val_loss", "mean_absolute_error", "val_mean_absolute_error"}) {
        INFO(key);
        REQUIRE(hd.history.at(key).size() == h1.history.at(key).size());
        for (std::size_t e = 0; e < h1.history.at(key).size(); ++e)
            CHECK(rel(hd.history.at(key)[e], h1.history.at(key)[e]) < 1e-12);
    }
    CHECK((weights.v[0] - one.w).cwiseAbs().maxCoeff() < 1e-12);
    // Every epoch, each training row was trained on exactly once, by one rank.
    std::map<double, int> count;
    for (const auto& s : seen.v)
        for (double id : s) ++count[id];
    CHECK(count.size() == 120);
    for (const auto& [id, c] : count) CHECK(c == static_cast<int>(hd.epoch.size()));
}

TEST_CASE("data-parallel validation metrics are exact over uneven shards, not a mean of per-rank values",
          "[data_parallel]") {
    // 31 validation rows over 3 ranks (11, 10, 10), 121 training rows (the 1 left over joins the
    // last step). Reference: the metric of the final model (identical on every rank) over all 31
    // rows, computed in one process.
    Eigen::MatrixXd x, y;
    make_rows(121, x, y);
    traincb::ValidationData<double> val;
    make_rows(31, val.x, val.y);
    val.x.col(0).array() += 0.5;  // other ids than the training rows
    const int world = 3;
    PerRank<traincb::History> hist(world);
    PerRank<DpLinear> models(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m(3, 0.1);
        m.comm = &comm;
        traincb::FitOptions<double> o;
        o.epochs = 3;
        o.batch_size = 8;
        o.validation_data = val;
        o.metrics = {std::make_shared<traincb::metrics::MeanAbsoluteError>()};
        o.communicator = &comm;
        hist.set(comm.rank(), traincb::Trainer(m).fit(x, y, o));
        m.comm = nullptr;
        models.set(comm.rank(), m);
    });
    const traincb::History& h = hist.v[0];
    REQUIRE(h.epoch.size() == 3);
    const Eigen::MatrixXd pred = models.v[0].predict(val.x);
    const double mae_all = (pred - val.y).cwiseAbs().mean();
    const double mse_all = (pred - val.y).squaredNorm() / 31.0;
    CHECK(rel(h.history.at("val_mean_absolute_error").back(), mae_all) < 1e-12);
    CHECK(rel(h.history.at("val_loss").back(), mse_all) < 1e-12);
    // What averaging per-rank results (Horovod's MetricAverageCallback) would have logged.
    double mean_of_means = 0;
    for (const auto& [begin, rows] : {std::pair{0, 11}, std::pair{11, 10}, std::pair{21, 10}})
        mean_of_means += (pred.middleRows(begin, rows) - val.y.middleRows(begin, rows)).cwiseAbs().mean() / 3.0;
    CHECK(rel(mean_of_means, mae_all) > 1e-6);
    for (int r = 1; r < world; ++r) CHECK(same_history(h, hist.v[static_cast<std::size_t>(r)]));
}

TEST_CASE("a stop requested on one rank stops every rank after the same epoch, with its reason", "[data_parallel]") {
    Eigen::MatrixXd x, y;
    make_rows(60, x, y);
    const int world = 3;
    PerRank<traincb::History> hist(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m(3, 0.1);
        m.comm = &comm;
        traincb::LambdaCallback stopper({.on_epoch_end =
                                             [&comm](traincb::Context& ctx) {
                                                 if (comm.rank() == 2 && ctx.epoch() == 2)
                                                     ctx.request_stop("Stopper", "rank 2 had enough");
                                             },
                                         .name = "Stopper"});
        traincb::FitOptions<double> o;
        o.epochs = 10;
        o.batch_size = 5;
        o.communicator = &comm;
        hist.set(comm.rank(), traincb::Trainer(m).fit(x, y, o, stopper));
    });
    for (const traincb::History& h : hist.v) {
        CHECK(h.epoch.size() == 3);
        CHECK(h.end.kind == traincb::EndKind::Stopped);
        CHECK(h.end.source == "Stopper");
        CHECK(h.end.reason == "rank 2 had enough");
    }
}

TEST_CASE("a stop requested in a batch on one rank ends every rank's epoch after that batch", "[data_parallel]") {
    Eigen::MatrixXd x, y;
    make_rows(60, x, y);
    const int world = 2;
    PerRank<std::int64_t> steps(world);
    PerRank<std::size_t> epochs(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m(3, 0.1);
        m.comm = &comm;
        traincb::LambdaCallback stopper({.on_train_batch_end =
                                             [&comm](traincb::Context& ctx) {
                                                 if (comm.rank() == 1 && ctx.epoch() == 1 && ctx.batch() == 2)
                                                     ctx.request_stop("Stopper", "batch stop");
                                             },
                                         .name = "Stopper"});
        traincb::FitOptions<double> o;
        o.epochs = 10;
        o.batch_size = 5;  // 6 steps per epoch
        o.communicator = &comm;
        epochs.set(comm.rank(), traincb::Trainer(m).fit(x, y, o, stopper).epoch.size());
        steps.set(comm.rank(), m.steps);
    });
    for (std::size_t e : epochs.v) CHECK(e == 2);
    CHECK(steps.v[0] == 6 + 3);  // the model's collectives would hang if the ranks' steps differed
    CHECK(steps.v[1] == 6 + 3);
}

TEST_CASE("an exception in a callback on one rank is thrown on every rank at the same hook", "[data_parallel]") {
    Eigen::MatrixXd x, y;
    make_rows(60, x, y);
    const int world = 3;
    PerRank<std::string> what(world);
    PerRank<int> remote_rank(world);
    PerRank<int> epochs_ended(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m(3, 0.1);
        m.comm = &comm;
        int ended = 0;
        traincb::LambdaCallback failing({.on_epoch_end =
                                             [&comm, &ended](traincb::Context& ctx) {
                                                 ++ended;
                                                 if (comm.rank() == 2 && ctx.epoch() == 1)
                                                     throw std::runtime_error("disk full");
                                             },
                                         .name = "Failing"});
        traincb::FitOptions<double> o;
        o.epochs = 5;
        o.batch_size = 5;
        o.communicator = &comm;
        remote_rank.set(comm.rank(), -1);
        try {
            (void)traincb::Trainer(m).fit(x, y, o, failing);
        } catch (const traincb::RemoteRankError& e) {
            remote_rank.set(comm.rank(), e.rank());
            what.set(comm.rank(), e.what());
        } catch (const std::runtime_error& e) {
            what.set(comm.rank(), e.what());
        }
        epochs_ended.set(comm.rank(), ended);
        comm.barrier();  // still in step afterwards
    });
    CHECK(what.v[2] == "disk full");
    CHECK(remote_rank.v[2] == -1);
    for (int r : {0, 1}) {
        CHECK(remote_rank.v[static_cast<std::size_t>(r)] == 2);
        CHECK(what.v[static_cast<std::size_t>(r)] == "traincb: rank 2 failed: disk full");
    }
    for (int e : epochs_ended.v) CHECK(e == 2);
}

TEST_CASE("ranks configured differently fail at the first vote, naming what differs", "[data_parallel]") {
    Eigen::MatrixXd x, y;
    make_rows(60, x, y);
    const int world = 3;
    PerRank<std::string> what(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m(3, 0.1);
        m.comm = &comm;
        traincb::EarlyStopping es({.monitor = "loss", .patience = comm.rank() == 1 ? 3 : 5});
        traincb::FitOptions<double> o;
        o.epochs = 5;
        o.batch_size = 5;
        o.communicator = &comm;
        try {
            (void)traincb::Trainer(m).fit(x, y, o, es);
        } catch (const traincb::LogicError& e) {
            what.set(comm.rank(), e.what());
        }
    });
    for (const std::string& w : what.v) {
        CHECK_THAT(w, Catch::Matchers::Contains("not in step at on_train_begin"));
        CHECK_THAT(w, Catch::Matchers::Contains("where rank 1 has"));
        CHECK_THAT(w, Catch::Matchers::Contains("\"patience\":3"));
        CHECK_THAT(w, Catch::Matchers::Contains("\"patience\":5"));
    }
}

TEST_CASE("a hand-written loop whose ranks run different numbers of batches fails on every rank, not a hang",
          "[data_parallel]") {
    const int world = 2;
    PerRank<std::string> what(world);
    ThreadGroup group(world, std::chrono::seconds(10));
    group.run([&](ThreadCommunicator& comm) {
        traincb::CallbackList list;
        list.set_communicator(comm);
        try {
            list.on_train_begin();
            list.on_epoch_begin(0);
            const int batches = comm.rank() == 0 ? 11 : 10;
            for (int b = 0; b < batches; ++b) {
                list.on_train_batch_begin(b);
                list.on_train_batch_end(b);
            }
            traincb::Logs logs;
            logs.set("loss", 1.0);
            list.on_epoch_end(0, logs);
        } catch (const traincb::LogicError& e) {
            what.set(comm.rank(), e.what());
        }
    });
    for (const std::string& w : what.v) {
        CHECK_THAT(w, Catch::Matchers::Contains("not in step at"));
        CHECK_THAT(w, Catch::Matchers::Contains("on_train_batch_end of epoch 1, batch 10"));
        CHECK_THAT(w, Catch::Matchers::Contains("on_epoch_end of epoch 1"));
    }
}

TEST_CASE("a hand-written loop: an exception in a batch hook on one rank reaches every rank there", "[data_parallel]") {
    const int world = 3;
    PerRank<std::string> what(world);
    PerRank<int> at_batch(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        traincb::LambdaCallback cb({.on_train_batch_end = [&comm](traincb::Context& ctx) {
            if (comm.rank() == 1 && ctx.batch() == 4) throw traincb::IoError("Sink", "cannot write", "x.csv", 28);
        }});
        traincb::CallbackList list(cb);
        list.set_communicator(comm);
        int b = 0;
        try {
            list.on_train_begin();
            list.on_epoch_begin(0);
            for (; b < 10; ++b) {
                list.on_train_batch_begin(b);
                list.on_train_batch_end(b);
            }
        } catch (const std::exception& e) {
            what.set(comm.rank(), e.what());
            list.on_train_end(std::current_exception());
        }
        at_batch.set(comm.rank(), b);
    });
    for (int b : at_batch.v) CHECK(b == 4);
    CHECK_THAT(what.v[1], Catch::Matchers::Contains("x.csv"));
    CHECK_THAT(what.v[0], Catch::Matchers::StartsWith("traincb: rank 1 failed: "));
    CHECK_THAT(what.v[0], Catch::Matchers::Contains("x.csv"));
    CHECK(what.v[2] == what.v[0]);
}

TEST_CASE("an interrupt on any rank interrupts every rank after the same batch; the run resumes on 3 or 2 ranks",
          "[data_parallel]") {
    // 3 ranks are interrupted in the middle of epoch 3 (request_interrupt, as a signal handler
    // would) and save FitOptions::interrupt_checkpoint from rank 0. Resumed on 3 ranks, the run
    // ends bit-identical to an uninterrupted one; resumed on 2, every row of the interrupted
    // epoch is still trained on exactly once.
    Eigen::MatrixXd x, y;
    make_rows(96, x, y);  // 96 rows: 4 steps of 3 x 8 rows; on 2 ranks, 6 steps of 2 x 8
    traincb_test::TempDir dir("dp");
    const std::filesystem::path ckpt = dir / "interrupt.safetensors";
    auto options = [&](traincb::Communicator& comm) {
        traincb::FitOptions<double> o;
        o.epochs = 5;
        o.batch_size = 8;
        o.seed = 3;
        o.metrics = {std::make_shared<traincb::metrics::MeanAbsoluteError>()};
        o.communicator = &comm;
        o.interrupt_checkpoint = ckpt;
        return o;
    };
    auto run = [&](int world, bool interrupt, bool resume, PerRank<traincb::History>& hist, PerRank<DpLinear>& models) {
        ThreadGroup group(world);
        group.run([&](ThreadCommunicator& comm) {
            DpLinear m(3, 0.1);
            m.comm = &comm;
            traincb::LambdaCallback interrupter({.on_train_batch_end = [&](traincb::Context& ctx) {
                if (interrupt && comm.rank() == world - 1 && ctx.epoch() == 2 && ctx.batch() == 1)
                    traincb::request_interrupt();
            }});
            traincb::FitOptions<double> o = options(comm);
            if (resume) o.resume_from = ckpt;
            hist.set(comm.rank(), traincb::Trainer(m).fit(x, y, o, interrupter));
            m.comm = nullptr;
            models.set(comm.rank(), m);
        });
    };
    PerRank<traincb::History> full_h(3), cut_h(3), again_h(3), two_h(2);
    PerRank<DpLinear> full_m(3), cut_m(3), again_m(3), two_m(2);
    run(3, false, false, full_h, full_m);
    run(3, true, false, cut_h, cut_m);
    for (const traincb::History& h : cut_h.v) {
        CHECK(h.end.kind == traincb::EndKind::Interrupted);
        CHECK(h.epoch.size() == 2);  // epochs 1 and 2 complete, 3 interrupted after its batch 1
    }
    for (const DpLinear& m : cut_m.v) CHECK(m.steps == 4 + 4 + 2);
    REQUIRE(std::filesystem::exists(ckpt));

    run(3, false, true, again_h, again_m);
    for (int r = 0; r < 3; ++r) {
        CHECK(same_history(again_h.v[static_cast<std::size_t>(r)], full_h.v[0]));
        CHECK(again_m.v[static_cast<std::size_t>(r)].w == full_m.v[0].w);
    }

    run(2, false, true, two_h, two_m);
    CHECK(same_history(two_h.v[0], two_h.v[1]));
    CHECK(two_h.v[0].epoch.size() == 5);
    // The interrupted epoch (index 2): rows 0..47 of its order were trained on by the 3 ranks
    // before the interrupt (2 steps of 3 x 8); the 2 ranks train on the other 48 (3 steps of
    // 2 x 8), each once.
    std::map<double, int> count;
    for (const DpLinear& m : cut_m.v)
        for (std::size_t i = 2 * 32; i < m.seen.size(); ++i) ++count[m.seen[i]];  // 32 rows per rank per epoch
    for (const DpLinear& m : two_m.v)
        for (std::size_t i = 0; i < 24; ++i) ++count[m.seen[i]];  // 3 steps of 8 rows per rank
    CHECK(count.size() == 96);
    for (const auto& [id, c] : count) CHECK(c == 1);
    traincb::clear_interrupt();
}

TEST_CASE("examples' Mlp with a gradient communicator: the gradient is the union's, and every rank stays bit-equal",
          "[data_parallel]") {
    // A 13-row batch dealt 5, 4, 4 over 3 ranks: each rank's gradient, summed with its row
    // weight, must be the gradient of the mean loss over all 13 rows, which the reference
    // computes in one process (compute_gradients on the whole batch). A plain mean of the three
    // ranks' gradients would differ, since the shards differ in size.
    using traincb_examples::Activation;
    const traincb_examples::MlpOptions opts{.inputs = 4,
                                            .layers = {{6, Activation::Relu}, {1, Activation::Sigmoid}},
                                            .loss = traincb_examples::Loss::BinaryCrossentropy,
                                            .seed = 5};
    Eigen::MatrixXd x(13, 4), y(13, 1);
    for (Eigen::Index i = 0; i < 13; ++i) {
        for (Eigen::Index j = 0; j < 4; ++j) x(i, j) = std::sin(0.7 * static_cast<double>(i * 4 + j) + 0.3);
        y(i, 0) = x(i, 0) + 0.5 * x(i, 1) > 0 ? 1.0 : 0.0;
    }
    traincb_examples::Mlp one(opts);
    (void)one.compute_gradients(x, y);
    const std::array<Eigen::Index, 4> begin{0, 5, 9, 13};
    PerRank<std::vector<Eigen::MatrixXd>> grads(3);
    PerRank<std::vector<Eigen::MatrixXd>> weights(3);
    ThreadGroup group(3);
    group.run([&](ThreadCommunicator& comm) {
        traincb_examples::Mlp m(opts);
        m.set_gradient_communicator(&comm);
        const auto r = static_cast<std::size_t>(comm.rank());
        const Eigen::Index b = begin[r], n = begin[r + 1] - begin[r];
        (void)m.train_batch(x.middleRows(b, n), y.middleRows(b, n));
        std::vector<Eigen::MatrixXd> g;
        for (std::size_t l = 0; l < m.num_layers(); ++l) {
            g.emplace_back(m.weight_gradient(l));
            g.emplace_back(m.bias_gradient(l));
        }
        grads.set(comm.rank(), g);
        // More steps on shards of other sizes: the ranks' weights stay bit-equal.
        for (int step = 0; step < 5; ++step) {
            const Eigen::Index rows = 2 + ((comm.rank() + step) % 3);
            (void)m.train_batch(x.topRows(rows), y.topRows(rows));
        }
        std::vector<Eigen::MatrixXd> w;
        for (std::size_t l = 0; l < m.num_layers(); ++l) {
            w.emplace_back(m.weight(l));
            w.emplace_back(m.bias(l));
        }
        weights.set(comm.rank(), w);
    });
    for (std::size_t l = 0; l < one.num_layers(); ++l) {
        const Eigen::MatrixXd gw = one.weight_gradient(l), gb = one.bias_gradient(l);
        for (const auto& g : grads.v) {
            CHECK((g[2 * l] - gw).norm() <= 1e-12 * gw.norm());
            CHECK((g[2 * l + 1] - gb).norm() <= 1e-12 * gb.norm());
        }
    }
    for (std::size_t r = 1; r < 3; ++r) {
        REQUIRE(weights.v[r].size() == weights.v[0].size());
        for (std::size_t i = 0; i < weights.v[0].size(); ++i) CHECK(weights.v[r][i] == weights.v[0][i]);
    }
}

TEST_CASE("examples' Mlp with a one-rank gradient communicator trains bit-identically to one without",
          "[data_parallel]") {
    using traincb_examples::Activation;
    const traincb_examples::MlpOptions opts{.inputs = 3,
                                            .layers = {{4, Activation::Relu}, {1, Activation::Sigmoid}},
                                            .loss = traincb_examples::Loss::BinaryCrossentropy,
                                            .seed = 9};
    Eigen::MatrixXd x(7, 3), y(7, 1);
    for (Eigen::Index i = 0; i < 7; ++i) {
        for (Eigen::Index j = 0; j < 3; ++j) x(i, j) = std::cos(0.9 * static_cast<double>(i * 3 + j));
        y(i, 0) = x(i, 0) > 0 ? 1.0 : 0.0;
    }
    traincb::Communicator single;  // the identity: one rank
    traincb_examples::Mlp a(opts), b(opts);
    b.set_gradient_communicator(&single);
    for (int step = 0; step < 4; ++step) {
        (void)a.train_batch(x, y);
        (void)b.train_batch(x, y);
    }
    for (std::size_t l = 0; l < a.num_layers(); ++l) {
        CHECK(a.weight(l) == b.weight(l));
        CHECK(a.bias(l) == b.bias(l));
    }
}

TEST_CASE("a resume that fails on rank 0, which alone reads the checkpoint, fails every rank", "[data_parallel]") {
    // Every checkpoint file is invalid (garbage bytes): rank 0 throws NoValidCheckpointError, as
    // one process does, and the other ranks a RemoteRankError carrying its message, before any
    // epoch and without a hang.
    Eigen::MatrixXd x, y;
    make_rows(30, x, y);
    traincb_test::TempDir dir("dp_resume");
    traincb_test::write_bytes(dir / "last.safetensors", "not a checkpoint");
    const int world = 3;
    PerRank<std::string> what(world);
    PerRank<int> remote(world);
    PerRank<std::int64_t> steps(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m;
        m.comm = &comm;
        traincb::FitOptions<double> o;
        o.epochs = 2;
        o.batch_size = 5;
        o.communicator = &comm;
        o.resume_from = dir.path;
        remote.set(comm.rank(), -1);
        try {
            (void)traincb::Trainer(m).fit(x, y, o);
        } catch (const traincb::RemoteRankError& e) {
            remote.set(comm.rank(), e.rank());
            what.set(comm.rank(), e.what());
        } catch (const traincb::NoValidCheckpointError& e) {
            what.set(comm.rank(), e.what());
        }
        steps.set(comm.rank(), m.steps);
    });
    for (std::int64_t n : steps.v) CHECK(n == 0);
    CHECK(remote.v[0] == -1);
    CHECK_THAT(what.v[0], Catch::Matchers::Contains("last.safetensors"));
    for (int r : {1, 2}) {
        CHECK(remote.v[static_cast<std::size_t>(r)] == 0);
        CHECK(what.v[static_cast<std::size_t>(r)] == "traincb: rank 0 failed: " + what.v[0]);
    }
}

TEST_CASE("an interrupt checkpoint that rank 0 cannot write fails every rank", "[data_parallel]") {
    // FitOptions::interrupt_checkpoint under a regular file: rank 0, the only writer, gets the
    // IoError; the others a RemoteRankError naming rank 0.
    Eigen::MatrixXd x, y;
    make_rows(30, x, y);
    traincb_test::TempDir dir("dp_interrupt");
    traincb_test::write_bytes(dir / "file", "x");
    const int world = 2;
    PerRank<std::string> what(world);
    PerRank<int> remote(world);
    ThreadGroup group(world);
    group.run([&](ThreadCommunicator& comm) {
        DpLinear m;
        m.comm = &comm;
        traincb::LambdaCallback interrupter({.on_train_batch_end = [&comm](traincb::Context& ctx) {
            if (comm.rank() == 1 && ctx.epoch() == 0 && ctx.batch() == 1) traincb::request_interrupt();
        }});
        traincb::FitOptions<double> o;
        o.epochs = 2;
        o.batch_size = 5;
        o.communicator = &comm;
        o.interrupt_checkpoint = dir / "file" / "interrupt.safetensors";
        remote.set(comm.rank(), -1);
        try {
            (void)traincb::Trainer(m).fit(x, y, o, interrupter);
        } catch (const traincb::RemoteRankError& e) {
            remote.set(comm.rank(), e.rank());
            what.set(comm.rank(), e.what());
        } catch (const traincb::IoError& e) {
            what.set(comm.rank(), e.what());
        }
    });
    traincb::clear_interrupt();
    CHECK(remote.v[0] == -1);
    CHECK_THAT(what.v[0],
               Catch::Matchers::StartsWith("traincb: Trainer: ") && Catch::Matchers::Contains("/file/interrupt"));
    CHECK(remote.v[1] == 0);
    CHECK(what.v[1] == "traincb: rank 0 failed: " + what.v[0]);
}

}  // namespace test_data_parallel
