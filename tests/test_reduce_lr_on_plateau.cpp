// Tests for traincb/callbacks/reduce_lr_on_plateau.hpp. Expected learning rates and counters are
// hand-derived from docs/keras-semantics.md, "ReduceLROnPlateau" (the rule is quoted where it
// matters); the Keras test names are those of keras/src/callbacks/reduce_lr_on_plateau_test.py.
#include "catch.hpp"
#include "test_support.hpp"

#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/diagnostics.hpp>
#include <vector>

namespace test_reduce_lr_on_plateau {

using traincb_test::contains;
using traincb_test::CoutCapture;
using traincb_test::error_of;
using traincb_test::WarningCapture;

namespace {

using traincb::ReduceLROnPlateau;
using traincb::ReduceLROnPlateauOptions;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The smallest model with the learning-rate capability.
struct FakeModel {
    double lr = 0.1;
    [[nodiscard]] double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
};
// A model without it.
struct NoLrModel {
    int unused = 0;
};

// What one epoch looked like from outside.
struct Epoch {
    double logged_lr;  // logs["learning_rate"] after on_epoch_end
    double lr_after;   // the model's rate after on_epoch_end (used by the next epoch)
    int wait;
    int cooldown;
};

// Runs epochs first_epoch.. with `values` as the monitor, on an existing list.
std::vector<Epoch> epochs(traincb::CallbackList& cbs, ReduceLROnPlateau& cb, FakeModel& m,
                          const std::vector<double>& values, int first_epoch = 0) {
    std::vector<Epoch> out;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const int e = first_epoch + static_cast<int>(i);
        cbs.on_epoch_begin(e);
        traincb::Logs logs{{"loss", 0.5}, {cb.options().monitor, values[i]}};
        cbs.on_epoch_end(e, logs);
        out.push_back({logs.at("learning_rate"), m.lr, cb.wait(), cb.cooldown_counter()});
    }
    return out;
}

// A whole fresh run.
std::vector<Epoch> run(ReduceLROnPlateau& cb, FakeModel& m, const std::vector<double>& values) {
    traincb::CallbackList cbs(cb);
    cbs.set_model(m);
    cbs.on_train_begin();
    return epochs(cbs, cb, m, values);
}

std::vector<int> reduction_epochs(const ReduceLROnPlateau& cb) {
    std::vector<int> out;
    for (const auto& r : cb.reductions()) out.push_back(r.epoch);
    return out;
}

std::string message_of_construction(ReduceLROnPlateauOptions o) {
    try {
        ReduceLROnPlateau cb(std::move(o));
    } catch (const traincb::InvalidArgument& e) {
        return e.what();
    }
    return "no exception";
}

// The message of the exception `f` throws ("no exception" when it does not throw).

// Collects traincb warnings for the lifetime of the object.

}  // namespace

static_assert(traincb::detail::requires_learning_rate<ReduceLROnPlateau>(),
              "ReduceLROnPlateau must declare requires_learning_rate so Trainer can reject it at compile time");

TEST_CASE("ReduceLROnPlateau: Keras test_reduces_lr_with_model_fit, 0.1 becomes 0.01 at epoch 1") {
    // Keras: patience=1, factor=0.1, min_delta=100, 2 epochs. Epoch 0 is the first monitored value
    // (best unset: an improvement); epoch 1 cannot beat it by 100, so wait = 1 >= patience: reduce.
    FakeModel m;
    ReduceLROnPlateau cb({.factor = 0.1, .patience = 1, .min_delta = 100});
    const auto r = run(cb, m, {1.0, 0.9});
    REQUIRE(r[0].lr_after == 0.1);
    REQUIRE(r[1].lr_after == 0.1 * 0.1);  // the double product: traincb does not round to float32
    REQUIRE(reduction_epochs(cb) == std::vector<int>{1});
    REQUIRE(cb.reductions()[0].old_lr == 0.1);
    REQUIRE(cb.reductions()[0].new_lr == 0.1 * 0.1);
}

TEST_CASE("ReduceLROnPlateau: Keras test_cooldown, cooldown 2 patience 1 reduces at epochs 1 and 3") {
    // Keras: cooldown=2, patience=1, min_delta=100, 4 epochs, final 0.001. Hand trace:
    // e0 best; e1 wait 1 -> reduce, cooldown = 2; e2 cooldown 2->1, frozen; e3 cooldown 1->0, then
    // (re-tested after the decrement) wait 1 -> reduce. Both a slowly improving run (the Keras
    // fit) and an always-worse run give the same result.
    const auto values = GENERATE(std::vector<double>{1.0, 0.9, 0.8, 0.7}, std::vector<double>{1.0, 2.0, 3.0, 4.0});
    FakeModel m;
    ReduceLROnPlateau cb({.factor = 0.1, .patience = 1, .min_delta = 100, .cooldown = 2});
    const auto r = run(cb, m, values);
    REQUIRE(reduction_epochs(cb) == std::vector<int>{1, 3});
    REQUIRE(r[1].cooldown == 2);
    REQUIRE(r[2].cooldown == 1);
    REQUIRE(r[2].lr_after == 0.1 * 0.1);
    REQUIRE(m.lr == 0.1 * 0.1 * 0.1);
    REQUIRE(m.lr == Approx(0.001));
}

TEST_CASE("ReduceLROnPlateau: Keras test_honors_min_lr, 0.1, 0.01, 0.005 clamped, then no change") {
    // Keras: patience=1, min_delta=10, min_lr=0.005, 4 epochs. e1: max(0.1*0.1, 0.005);
    // e2: max(0.01*0.1, 0.005) = 0.005; e3: 0.005 > 0.005 is false, no change.
    FakeModel m;
    ReduceLROnPlateau cb({.factor = 0.1, .patience = 1, .min_delta = 10, .min_lr = 0.005});
    const auto r = run(cb, m, {1.0, 0.9, 0.8, 0.7, 0.6, 0.5});
    REQUIRE(r[0].lr_after == 0.1);
    REQUIRE(r[1].lr_after == 0.1 * 0.1);
    REQUIRE(r[2].lr_after == 0.005);
    REQUIRE(r[3].lr_after == 0.005);
    REQUIRE(reduction_epochs(cb) == std::vector<int>{1, 2});
    // At the floor, wait is not reset and keeps growing (Keras L83: no reduction, no reset).
    REQUIRE(r[3].wait == 1);
    REQUIRE(r[4].wait == 2);
    REQUIRE(r[5].wait == 3);
}

TEST_CASE("ReduceLROnPlateau: cooldown = 1 has no effect") {
    // docs/keras-semantics.md, ReduceLROnPlateau: "cooldown = 1 has no effect, because the counter
    // reaches 0 in the same epoch that tests it". patience 1, nothing improves after e0: both
    // reduce at every epoch from 1.
    for (int cooldown : {0, 1}) {
        CAPTURE(cooldown);
        FakeModel m;
        ReduceLROnPlateau cb({.patience = 1, .min_delta = 100, .cooldown = cooldown});
        (void)run(cb, m, {1.0, 1.0, 1.0, 1.0, 1.0});
        REQUIRE(reduction_epochs(cb) == std::vector<int>{1, 2, 3, 4});
    }
}

TEST_CASE("ReduceLROnPlateau: patience 0 behaves as patience 1") {
    // wait is incremented before the test, so wait >= 0 and wait >= 1 hold on the same epochs.
    for (int patience : {0, 1}) {
        CAPTURE(patience);
        FakeModel m;
        ReduceLROnPlateau cb({.patience = patience, .min_delta = 0});
        (void)run(cb, m, {1.0, 0.5, 0.6, 0.4, 0.7});
        // e0 best, e1 improves, e2 worse -> reduce, e3 improves, e4 worse -> reduce
        REQUIRE(reduction_epochs(cb) == std::vector<int>{2, 4});
    }
}

TEST_CASE("ReduceLROnPlateau: patience counts consecutive non-improving epochs") {
    // patience 3, min_delta 0: e0 best 1.0; e1..e3 not better -> wait 1, 2, 3 -> reduce at e3;
    // e4 improves (0.5 + 0 < 1.0) -> wait 0; e5..e7 -> reduce at e7.
    FakeModel m;
    ReduceLROnPlateau cb({.factor = 0.5, .patience = 3, .min_delta = 0});
    const auto r = run(cb, m, {1.0, 1.0, 1.5, 1.2, 0.5, 0.5, 0.6, 0.7});
    REQUIRE(r[1].wait == 1);
    REQUIRE(r[2].wait == 2);
    REQUIRE(r[3].wait == 0);  // reset by the reduction
    REQUIRE(reduction_epochs(cb) == std::vector<int>{3, 7});
    REQUIRE(m.lr == 0.1 * 0.5 * 0.5);
    REQUIRE(cb.best() == 0.5);
}

TEST_CASE("ReduceLROnPlateau: the best value moves during cooldown") {
    // patience 1, cooldown 3: e0 best 1.0; e1 worse -> reduce, cooldown 3; e2 cooldown -> 2 and
    // 0.5 improves: best 0.5 (Keras updates best before checking the cooldown).
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 1, .min_delta = 0, .cooldown = 3});
    const auto r = run(cb, m, {1.0, 2.0, 0.5});
    REQUIRE(cb.best() == 0.5);
    REQUIRE(r[2].cooldown == 2);
    REQUIRE(cb.in_cooldown());
    REQUIRE(reduction_epochs(cb) == std::vector<int>{1});
}

TEST_CASE("ReduceLROnPlateau: logs learning_rate is the rate used during the epoch, seen by later callbacks") {
    // Keras writes logs["learning_rate"] first, before any reduction (L104-112).
    struct Probe final : traincb::Callback {
        std::vector<double> seen;
        void on_epoch_end(traincb::Context& ctx) override { seen.push_back(ctx.logs().at("learning_rate")); }
    };
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 1, .min_delta = 100});
    Probe probe;
    traincb::CallbackList cbs(cb, probe);
    cbs.set_model(m);
    cbs.on_train_begin();
    const auto r = epochs(cbs, cb, m, {1.0, 1.0, 1.0});
    REQUIRE(r[0].logged_lr == 0.1);
    REQUIRE(r[1].logged_lr == 0.1);  // reduced at the end of epoch 1, but 0.1 was used during it
    REQUIRE(r[1].lr_after == 0.1 * 0.1);
    REQUIRE(r[2].logged_lr == 0.1 * 0.1);
    REQUIRE(probe.seen == std::vector<double>{0.1, 0.1, 0.1 * 0.1});
}

TEST_CASE("ReduceLROnPlateau: a first NaN does not become the best value, and NaN never improves") {
    // traincb (docs/early-stopping-rules.md, step 3): improved = v is not NaN and (best unset or
    // better).
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 10, .min_delta = 0});
    auto r = run(cb, m, {kNaN, 1.0, 0.9});
    REQUIRE(cb.best() == 0.9);  // in Keras best would stay NaN forever
    REQUIRE(r[0].wait == 1);    // the NaN epoch counts as not improving
    REQUIRE(r[1].wait == 0);
    REQUIRE(r[2].wait == 0);

    FakeModel m2;
    ReduceLROnPlateau cb2({.patience = 2, .min_delta = 0});
    r = run(cb2, m2, {1.0, kNaN, kNaN});
    REQUIRE(cb2.best() == 1.0);
    REQUIRE(reduction_epochs(cb2) == std::vector<int>{2});  // two non-improving NaN epochs
}

TEST_CASE("ReduceLROnPlateau: +inf never improves in min mode") {
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 5, .min_delta = 0});
    const auto r = run(cb, m, {kInf, kInf});
    REQUIRE(cb.best() == kInf);  // the first value is the best (best unset)
    REQUIRE(r[1].wait == 1);     // inf + 0 < inf is false
}

TEST_CASE("ReduceLROnPlateau: the improvement test is exactly v + d < best (min) and v - d > best (max)") {
    // docs/keras-semantics.md, "The improvement test": best=1.0, v=0.7, d=0.3: 0.7 + 0.3 < 1.0 is
    // false in double, although 1.0 - 0.7 > 0.3 is true. So epoch 1 is not an improvement.
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 10, .mode = traincb::Mode::Min, .min_delta = 0.3});
    auto r = run(cb, m, {1.0, 0.7});
    REQUIRE(r[1].wait == 1);
    REQUIRE(cb.best() == 1.0);

    // Max mode, min_delta 0.5: 0 -> 0.5 is not an improvement (strict; monitor_callback_test L80-86).
    FakeModel m2;
    ReduceLROnPlateau cb2({.monitor = "val_accuracy", .patience = 10, .min_delta = 0.5});
    r = run(cb2, m2, {0.0, 0.5, 0.6});
    REQUIRE(cb2.direction() == traincb::Direction::Max);
    REQUIRE(r[1].wait == 1);
    REQUIRE(r[2].wait == 0);  // 0.6 - 0.5 > 0.0
    REQUIRE(cb2.best() == 0.6);
}

TEST_CASE("ReduceLROnPlateau: max mode reduces when accuracy stops rising") {
    FakeModel m;
    ReduceLROnPlateau cb({.monitor = "val_accuracy", .factor = 0.5, .patience = 1, .min_delta = 0});
    (void)run(cb, m, {0.5, 0.6, 0.55});
    REQUIRE(reduction_epochs(cb) == std::vector<int>{2});
    REQUIRE(m.lr == 0.1 * 0.5);
}

TEST_CASE("ReduceLROnPlateau: Auto resolves from the name at construction, else from declared metric directions") {
    ReduceLROnPlateau by_name({.monitor = "val_loss"});
    REQUIRE(by_name.direction() == traincb::Direction::Min);

    ReduceLROnPlateau custom({.monitor = "val_score"});
    REQUIRE_FALSE(custom.direction().has_value());
    FakeModel m;
    traincb::CallbackList cbs(custom);
    cbs.set_model(m);
    cbs.set_params({.metric_directions = {{"score", traincb::Direction::Max}}});
    cbs.on_train_begin();
    REQUIRE(custom.direction() == traincb::Direction::Max);
}

TEST_CASE("ReduceLROnPlateau: an Auto mode that cannot be resolved fails in on_train_begin, not at an epoch end") {
    FakeModel m;
    ReduceLROnPlateau cb({.monitor = "val_score"});
    traincb::CallbackList cbs(cb);
    cbs.set_model(m);
    try {
        cbs.on_train_begin();
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        const std::string msg = e.what();
        REQUIRE(contains(msg, "traincb: ReduceLROnPlateau: "));
        REQUIRE(contains(msg, "val_score"));
        REQUIRE(contains(msg, "Mode::Min"));
    }
    // Without on_train_begin (a hand-written loop), the first epoch end reports the same error.
    ReduceLROnPlateau cb2({.monitor = "val_score"});
    traincb::CallbackList cbs2(cb2);
    cbs2.set_model(m);
    traincb::Logs logs{{"val_score", 1.0}};
    REQUIRE_THROWS_AS(cbs2.on_epoch_end(0, logs), traincb::InvalidArgument);
}

TEST_CASE("ReduceLROnPlateau: invalid options are rejected at construction with the value and the fix") {
    struct Bad {
        ReduceLROnPlateauOptions opt;
        std::vector<std::string> parts;
    };
    const std::vector<Bad> cases = {
        {{.factor = 1.0}, {"factor = 1", "(0, 1)"}},
        {{.factor = 1.5}, {"factor = 1.5", "(0, 1)"}},
        {{.factor = 0.0}, {"factor = 0", "(0, 1)"}},
        {{.factor = -0.5}, {"factor = -0.5", "(0, 1)"}},
        {{.factor = kNaN}, {"factor = nan", "(0, 1)"}},
        {{.patience = -1}, {"patience = -1", "patience >= 0"}},
        {{.min_delta = -1e-4}, {"min_delta = -1e-04", ">= 0"}},
        {{.min_delta = kNaN}, {"min_delta = nan", ">= 0"}},
        {{.min_delta = kInf}, {"min_delta = inf", ">= 0"}},
        {{.cooldown = -2}, {"cooldown = -2", "cooldown >= 0"}},
        {{.min_lr = -1e-3}, {"min_lr = -0.001", ">= 0"}},
        {{.min_lr = kNaN}, {"min_lr = nan", ">= 0"}},
        {{.monitor = ""}, {"monitor is empty"}},
    };
    for (const auto& c : cases) {
        const std::string msg = message_of_construction(c.opt);
        CAPTURE(msg);
        REQUIRE(msg.starts_with("traincb: ReduceLROnPlateau: "));
        for (const auto& p : c.parts) REQUIRE(contains(msg, p));
    }
    // The boundaries that are valid.
    REQUIRE_NOTHROW(ReduceLROnPlateau({.factor = 0.999, .patience = 0, .min_delta = 0, .cooldown = 0, .min_lr = 0}));
}

TEST_CASE("ReduceLROnPlateau: a model without a learning rate gets a clear error") {
    ReduceLROnPlateau cb;
    REQUIRE(cb.required_capabilities().learning_rate);
    REQUIRE(cb.provided_keys() == std::vector<std::string>{"learning_rate"});

    NoLrModel nolr;
    traincb::CallbackList cbs(cb);
    cbs.set_model(nolr);
    // CallbackList::validate (run by on_train_begin) reports it first ...
    REQUIRE(contains(error_of([&] { cbs.validate(); }), "ReduceLROnPlateau: needs the model's learning rate"));
    REQUIRE(contains(error_of([&] { cbs.on_train_begin(); }), "ReduceLROnPlateau: needs the model's learning rate"));
    // ... and the callback checks it itself, for drivers that call its hooks directly.
    try {
        cb.on_train_begin(cbs.context());
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        const std::string msg = e.what();
        REQUIRE(msg.starts_with("traincb: ReduceLROnPlateau: needs the model's learning rate"));
        REQUIRE(contains(msg, "set_learning_rate(double)"));
        REQUIRE_FALSE(contains(msg, "set_model"));  // a model is attached
    }

    traincb::CallbackList unattached(cb);
    try {
        cb.on_train_begin(unattached.context());
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        REQUIRE(contains(e.what(), "no model is attached: call CallbackList::set_model"));
    }
}

TEST_CASE("ReduceLROnPlateau: strict, a missing monitor is checked before epoch 1 and throws at an epoch end") {
    ReduceLROnPlateau cb({.monitor = "val_los", .mode = traincb::Mode::Min});
    REQUIRE(cb.required_keys() == std::vector<std::string>{"val_los"});

    FakeModel m;
    traincb::CallbackList cbs(cb);
    cbs.set_model(m);
    cbs.set_params({.has_validation = true, .log_keys = {"loss", "val_loss"}});
    REQUIRE(contains(error_of([&] { cbs.on_train_begin(); }), "did you mean 'val_loss'"));

    // A driver that does not know its keys in advance finds out at the first epoch end.
    cbs.set_params({});
    cbs.on_train_begin();
    traincb::Logs logs{{"loss", 1.0}, {"val_loss", 0.5}};
    try {
        cbs.on_epoch_end(0, logs);
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        const std::string msg = e.what();
        REQUIRE(msg.starts_with("traincb: ReduceLROnPlateau: monitor 'val_los'"));
        REQUIRE(contains(msg, "epoch 1"));  // messages number epochs from 1
        REQUIRE(contains(msg, "available keys: learning_rate, loss, val_loss"));
        REQUIRE(contains(msg, "did you mean 'val_loss'?"));
        REQUIRE(contains(msg, "strict = false"));
    }
}

TEST_CASE("ReduceLROnPlateau: non-strict, a missing monitor warns once and the epoch changes nothing") {
    WarningCapture warnings;
    FakeModel m;
    ReduceLROnPlateau cb({.monitor = "val_acc", .patience = 1, .strict = false});
    REQUIRE(cb.required_keys().empty());
    traincb::CallbackList cbs(cb);
    cbs.set_model(m);
    cbs.on_train_begin();
    for (int e = 0; e < 3; ++e) {
        traincb::Logs logs{{"loss", 1.0}, {"val_loss", 2.0}};
        cbs.on_epoch_end(e, logs);
        REQUIRE(logs.at("learning_rate") == 0.1);
    }
    REQUIRE(warnings.messages.size() == 1);
    REQUIRE(warnings.messages[0].starts_with("traincb: ReduceLROnPlateau: monitor 'val_acc'"));
    REQUIRE(contains(warnings.messages[0], "available keys: learning_rate, loss, val_loss"));
    REQUIRE(cb.wait() == 0);
    REQUIRE_FALSE(cb.best().has_value());
    REQUIRE(m.lr == 0.1);

    // A new run warns again.
    cbs.on_train_begin();
    traincb::Logs logs{{"loss", 1.0}, {"val_loss", 2.0}};
    cbs.on_epoch_end(3, logs);
    REQUIRE(warnings.messages.size() == 2);
}

TEST_CASE("ReduceLROnPlateau: a val_* monitor on an epoch without validation is skipped, even under strict") {
    WarningCapture warnings;
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 1, .min_delta = 0});  // val_loss, strict
    traincb::CallbackList cbs(cb);
    cbs.set_model(m);
    cbs.on_train_begin();
    // validation every other epoch: epochs 1 and 3 have no val_ keys
    const std::vector<traincb::Logs> per_epoch = {
        {{"loss", 1.0}, {"val_loss", 1.0}},
        {{"loss", 0.9}},
        {{"loss", 0.8}, {"val_loss", 1.5}},
        {{"loss", 0.7}},
    };
    for (int e = 0; e < 4; ++e) {
        traincb::Logs logs = per_epoch[static_cast<std::size_t>(e)];
        REQUIRE_NOTHROW(cbs.on_epoch_end(e, logs));
        REQUIRE(logs.contains("learning_rate"));
        if (e == 1) REQUIRE(cb.wait() == 0);  // skipped: not counted
    }
    // e0 best 1.0; e2 worse -> wait 1 >= 1 -> reduce at 2; skipped epochs count nothing
    REQUIRE(reduction_epochs(cb) == std::vector<int>{2});
    REQUIRE(warnings.messages.empty());
}

TEST_CASE("ReduceLROnPlateau: a new run resets best, wait and cooldown but keeps the learning rate") {
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 1, .min_delta = 0, .cooldown = 5});
    (void)run(cb, m, {1.0, 2.0});
    REQUIRE(cb.cooldown_counter() == 5);
    REQUIRE(cb.reductions().size() == 1);
    const double lr = m.lr;
    traincb::CallbackList cbs(cb);
    cbs.set_model(m);
    cbs.on_train_begin();
    REQUIRE(cb.cooldown_counter() == 0);
    REQUIRE(cb.wait() == 0);
    REQUIRE_FALSE(cb.best().has_value());
    REQUIRE(cb.reductions().empty());
    REQUIRE(m.lr == lr);  // Keras does not restore the learning rate
}

TEST_CASE("ReduceLROnPlateau: verbose prints the Keras message with the double learning rate") {
    CoutCapture out;
    FakeModel m;
    ReduceLROnPlateau cb({.patience = 1, .verbose = 1, .min_delta = 100});
    (void)run(cb, m, {1.0, 1.0});
    // Python's repr(0.1 * 0.1) is 0.010000000000000002 (Keras prints the float64 product too).
    REQUIRE(out.out.str() == "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.010000000000000002.\n");
}

TEST_CASE("ReduceLROnPlateau: state key and a save/load round trip resume exactly") {
    REQUIRE(ReduceLROnPlateau().state_key() == "ReduceLROnPlateau:val_loss");
    REQUIRE(ReduceLROnPlateau({.monitor = "loss"}).state_key() == "ReduceLROnPlateau:loss");
    REQUIRE(ReduceLROnPlateau({.id = "plateau2"}).state_key() == "plateau2");

    const ReduceLROnPlateauOptions opt{.factor = 0.5, .patience = 2, .min_delta = 0, .cooldown = 2};
    const std::vector<double> values = {1.0, 0.8, 0.9, 0.95, 0.7, 0.75, 0.76, 0.8, 0.9, 1.0};

    FakeModel whole_model;
    ReduceLROnPlateau whole(opt);
    const auto whole_run = run(whole, whole_model, values);
    // Hand trace: e1 best 0.8; e2, e3 wait 1, 2 -> reduce at 3, cooldown 2; e4 cooldown 1, best 0.7;
    // e5 cooldown 0, wait 1; e6 wait 2 -> reduce; e7 frozen; e8 wait 1; e9 wait 2 -> reduce.
    REQUIRE(reduction_epochs(whole) == std::vector<int>{3, 6, 9});

    // The same run interrupted after epoch 4: the callback is rebuilt from its saved state and
    // the model keeps its rate (the model's own state in a real checkpoint).
    FakeModel m;
    ReduceLROnPlateau first(opt);
    const std::vector<double> head(values.begin(), values.begin() + 5);
    (void)run(first, m, head);
    traincb::CallbackState state;
    first.save_state(state);
    REQUIRE(state.version == 1);
    REQUIRE(state.json.at("wait") == first.wait());
    REQUIRE(state.json.at("cooldown_counter") == first.cooldown_counter());
    REQUIRE(state.json.at("best") == 0.7);
    REQUIRE(state.json.at("cooldown_counter") == 1);  // interrupted inside a cooldown

    ReduceLROnPlateau second(opt);
    traincb::CallbackList cbs(second);
    cbs.set_model(m);
    cbs.set_params({.epochs = 10, .initial_epoch = 5, .resumed = true});
    cbs.on_train_begin();
    second.load_state(state, cbs.context());
    REQUIRE(second.best() == first.best());
    REQUIRE(second.wait() == first.wait());
    REQUIRE(second.cooldown_counter() == first.cooldown_counter());
    const std::vector<double> tail(values.begin() + 5, values.end());
    const auto resumed = epochs(cbs, second, m, tail, 5);
    for (std::size_t i = 0; i < tail.size(); ++i) {
        CAPTURE(i);
        REQUIRE(resumed[i].lr_after == whole_run[i + 5].lr_after);
        REQUIRE(resumed[i].wait == whole_run[i + 5].wait);
        REQUIRE(resumed[i].cooldown == whole_run[i + 5].cooldown);
    }
    REQUIRE(second.best() == whole.best());
}

TEST_CASE("ReduceLROnPlateau: an infinite or unset best survives the round trip") {
    // -inf in min mode is a (unbeatable) best; JSON has no infinities, so it is stored as a string.
    FakeModel m;
    ReduceLROnPlateau a({.patience = 5});
    (void)run(a, m, {-kInf});
    traincb::CallbackState s;
    a.save_state(s);
    REQUIRE(s.json.at("best") == "-inf");
    ReduceLROnPlateau b({.patience = 5});
    traincb::CallbackList cbs(b);
    cbs.set_model(m);
    cbs.on_train_begin();
    b.load_state(s, cbs.context());
    REQUIRE(b.best() == -kInf);

    ReduceLROnPlateau fresh;
    traincb::CallbackState empty;
    fresh.save_state(empty);
    REQUIRE(empty.json.at("best").is_null());
    b.load_state(empty, cbs.context());
    REQUIRE_FALSE(b.best().has_value());
}

TEST_CASE("ReduceLROnPlateau: load_state rejects a foreign version, malformed fields, another monitor or mode") {
    FakeModel m;
    ReduceLROnPlateau cb;
    traincb::CallbackList cbs(cb);
    cbs.set_model(m);
    cbs.on_train_begin();
    traincb::CallbackState good;
    cb.save_state(good);

    auto bad = good;
    bad.version = 2;
    REQUIRE_THROWS_AS(cb.load_state(bad, cbs.context()), traincb::FormatError);
    REQUIRE(contains(error_of([&] { cb.load_state(bad, cbs.context()); }), "version 2"));

    for (const char* field : {"wait", "cooldown_counter", "best", "monitor", "mode"}) {
        CAPTURE(field);
        bad = good;
        bad.json.erase(field);
        REQUIRE_THROWS_AS(cb.load_state(bad, cbs.context()), traincb::FormatError);
    }
    bad = good;
    bad.json["wait"] = -1;
    REQUIRE_THROWS_AS(cb.load_state(bad, cbs.context()), traincb::FormatError);
    bad = good;
    bad.json["cooldown_counter"] = "3";
    REQUIRE_THROWS_AS(cb.load_state(bad, cbs.context()), traincb::FormatError);
    bad = good;
    bad.json["best"] = "nan";
    REQUIRE_THROWS_AS(cb.load_state(bad, cbs.context()), traincb::FormatError);
    bad = good;
    bad.json = nlohmann::json::array();
    REQUIRE_THROWS_AS(cb.load_state(bad, cbs.context()), traincb::FormatError);

    bad = good;
    bad.json["monitor"] = "loss";
    REQUIRE_THROWS_AS(cb.load_state(bad, cbs.context()), traincb::InvalidArgument);
    REQUIRE(contains(error_of([&] { cb.load_state(bad, cbs.context()); }), "saved for monitor 'loss'"));
    bad = good;
    bad.json["mode"] = "max";
    REQUIRE(contains(error_of([&] { cb.load_state(bad, cbs.context()); }), "saved in mode 'max'"));

    // A failed load leaves the state untouched.
    REQUIRE(cb.wait() == 0);
    REQUIRE_NOTHROW(cb.load_state(good, cbs.context()));
}

}  // namespace test_reduce_lr_on_plateau
