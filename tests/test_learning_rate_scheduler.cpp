// Tests for traincb/callbacks/learning_rate_scheduler.hpp against docs/keras-semantics.md ("The
// other callbacks"): lr = schedule(epoch, current lr) at each epoch begin (absolute 0-based epoch),
// logs "learning_rate" at each epoch end, Keras's verbose message; plus traincb's output check.
#include "catch.hpp"
#include "test_support.hpp"

#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <traincb/callbacks/learning_rate_scheduler.hpp>
#include <utility>
#include <vector>

namespace test_learning_rate_scheduler {

using traincb_test::contains;
using traincb_test::CoutCapture;
using traincb_test::error_of;

namespace {

using traincb::LearningRateScheduler;

struct FakeModel {
    double lr = 0.1;
    std::vector<double> lr_during;  // the rate in force when each epoch's batches run
    [[nodiscard]] double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
};
struct NoLrModel {
    int unused = 0;
};

// Drives epochs [first, last) the way a training loop does, recording the rate each epoch used
// and the logged rate.
std::vector<double> drive(traincb::CallbackList& cbs, FakeModel& m, int first, int last) {
    std::vector<double> logged;
    for (int e = first; e < last; ++e) {
        cbs.on_epoch_begin(e);
        m.lr_during.push_back(m.lr);  // "training" happens here
        traincb::Logs logs{{"loss", 1.0}};
        cbs.on_epoch_end(e, logs);
        logged.push_back(logs.at("learning_rate"));
    }
    return logged;
}

}  // namespace

static_assert(traincb::detail::requires_learning_rate<LearningRateScheduler>(),
              "LearningRateScheduler must declare requires_learning_rate");

TEST_CASE("LearningRateScheduler: sets schedule(epoch, lr) before each epoch and logs the rate used") {
    std::vector<std::pair<int, double>> calls;
    LearningRateScheduler sched([&](int epoch, double lr) {
        calls.emplace_back(epoch, lr);
        return epoch < 2 ? lr : lr * 0.5;
    });
    FakeModel m;
    traincb::CallbackList cbs(sched);
    cbs.set_model(m);
    cbs.on_train_begin();
    const auto logged = drive(cbs, m, 0, 4);
    // Hand derivation: epochs 0, 1 keep 0.1; epoch 2 halves to 0.05; epoch 3 halves again.
    const std::vector<double> expected = {0.1, 0.1, 0.1 * 0.5, 0.1 * 0.5 * 0.5};
    REQUIRE(m.lr_during == expected);
    REQUIRE(logged == expected);
    // The schedule sees the absolute epoch and the current rate (the result of the previous call).
    REQUIRE(calls == std::vector<std::pair<int, double>>{{0, 0.1}, {1, 0.1}, {2, 0.1}, {3, 0.1 * 0.5}});
}

TEST_CASE("LearningRateScheduler: a resumed run passes the absolute epoch") {
    std::vector<int> epochs;
    LearningRateScheduler sched([&](int epoch, double) {
        epochs.push_back(epoch);
        return 0.01 * (epoch + 1);
    });
    FakeModel m;
    traincb::CallbackList cbs(sched);
    cbs.set_model(m);
    cbs.set_params({.epochs = 7, .initial_epoch = 5, .resumed = true});
    cbs.on_train_begin();
    const auto logged = drive(cbs, m, 5, 7);
    REQUIRE(epochs == std::vector<int>{5, 6});
    REQUIRE(logged == std::vector<double>{0.01 * 6, 0.01 * 7});
}

TEST_CASE("LearningRateScheduler: a NaN, infinite or negative rate is rejected naming the epoch and value") {
    const double bad = GENERATE(std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                                -std::numeric_limits<double>::infinity(), -0.001);
    CAPTURE(bad);
    LearningRateScheduler sched([bad](int epoch, double lr) { return epoch == 3 ? bad : lr; });
    FakeModel m;
    traincb::CallbackList cbs(sched);
    cbs.set_model(m);
    cbs.on_train_begin();
    (void)drive(cbs, m, 0, 3);
    const std::string msg = error_of([&] { cbs.on_epoch_begin(3); });
    CAPTURE(msg);
    REQUIRE(msg.starts_with("traincb: LearningRateScheduler: the schedule returned "));
    REQUIRE(contains(msg, "for epoch 3"));
    REQUIRE(contains(msg, "finite learning rate >= 0"));
    const std::string shown = std::isnan(bad)                                  ? "nan"
                              : bad == std::numeric_limits<double>::infinity() ? "inf"
                              : bad < -1                                       ? "-inf"
                                                                               : "-0.001";
    REQUIRE(contains(msg, "returned " + shown + " "));
    REQUIRE(m.lr == 0.1);  // the bad value was not applied
}

TEST_CASE("LearningRateScheduler: zero is a valid rate") {
    LearningRateScheduler sched([](int, double) { return 0.0; });
    FakeModel m;
    traincb::CallbackList cbs(sched);
    cbs.set_model(m);
    cbs.on_train_begin();
    REQUIRE(drive(cbs, m, 0, 1) == std::vector<double>{0.0});
}

TEST_CASE("LearningRateScheduler: an empty schedule is rejected at construction") {
    const std::string msg = error_of([] { LearningRateScheduler s{LearningRateScheduler::Schedule{}}; });
    REQUIRE(msg.starts_with("traincb: LearningRateScheduler: the schedule is empty"));
}

TEST_CASE("LearningRateScheduler: a model without a learning rate gets a clear error") {
    LearningRateScheduler sched([](int, double lr) { return lr; });
    REQUIRE(sched.required_capabilities().learning_rate);
    REQUIRE(sched.provided_keys() == std::vector<std::string>{"learning_rate"});
    NoLrModel nolr;
    traincb::CallbackList cbs(sched);
    cbs.set_model(nolr);
    REQUIRE(
        contains(error_of([&] { cbs.on_train_begin(); }), "LearningRateScheduler: needs the model's learning rate"));
    // The callback's own check, for drivers that call its hooks directly.
    const std::string own = error_of([&] { sched.on_train_begin(cbs.context()); });
    REQUIRE(own.starts_with("traincb: LearningRateScheduler: needs the model's learning rate"));
    REQUIRE(contains(own, "set_learning_rate(double)"));
    REQUIRE(contains(error_of([&] { sched.on_epoch_begin(cbs.context()); }), "needs the model's learning rate"));

    traincb::CallbackList unattached(sched);
    REQUIRE(contains(error_of([&] { sched.on_train_begin(unattached.context()); }),
                     "no model is attached: call CallbackList::set_model"));
}

TEST_CASE("LearningRateScheduler: verbose prints Keras's message, epochs numbered from 1") {
    CoutCapture out;
    LearningRateScheduler sched([](int epoch, double) { return epoch == 0 ? 0.1 : 0.1 * 0.1; }, 1);
    FakeModel m;
    traincb::CallbackList cbs(sched);
    cbs.set_model(m);
    cbs.on_train_begin();
    (void)drive(cbs, m, 0, 2);
    // Keras: "Epoch {epoch+1}: LearningRateScheduler setting learning rate to {lr}." with Python's
    // repr of the double (repr(0.1 * 0.1) == '0.010000000000000002').
    REQUIRE(out.out.str() ==
            "Epoch 1: LearningRateScheduler setting learning rate to 0.1.\n"
            "Epoch 2: LearningRateScheduler setting learning rate to 0.010000000000000002.\n");
}

TEST_CASE("LearningRateScheduler: a schedule's exception propagates and the rate is unchanged") {
    LearningRateScheduler sched([](int, double) -> double { throw std::runtime_error("schedule failed"); });
    FakeModel m;
    traincb::CallbackList cbs(sched);
    cbs.set_model(m);
    cbs.on_train_begin();
    REQUIRE(error_of([&] { cbs.on_epoch_begin(0); }) == "schedule failed");
    REQUIRE(m.lr == 0.1);
}

}  // namespace test_learning_rate_scheduler
