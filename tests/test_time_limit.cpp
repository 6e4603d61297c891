// Tests for traincb/callbacks/time_limit.hpp with an injected clock (no real time is measured).
// Each expected stop is hand-derived from the documented rule: at an epoch end, stop when
// elapsed + longest epoch > seconds, an epoch lasting from the previous epoch end (the epoch
// begin for the first one) to its own end; after a batch, stop when elapsed >= seconds.
#include "catch.hpp"
#include "test_support.hpp"

#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <traincb/callbacks/time_limit.hpp>
#include <vector>

namespace test_time_limit {

using traincb_test::contains;
using traincb_test::CoutCapture;
using traincb_test::error_of;

namespace {

using traincb::TimeLimit;

struct Clock {
    double t = 0;
    std::function<double()> fn() {
        return [this] { return t; };
    }
};

struct Outcome {
    int epochs = 0;   // epochs whose on_epoch_end ran
    int batches = 0;  // batches run in total
};

// A training loop as Keras runs it (docs/keras-semantics.md, "How fit drives callbacks"): a stop
// requested after a batch leaves the batch loop, the epoch still ends, then training stops. Each
// batch of epoch i advances the clock by batches[i][b]; `gap` seconds pass between an epoch end and
// the next epoch begin (e.g. a checkpoint written by a later callback).
Outcome run(traincb::CallbackList& cbs, Clock& clock, const std::vector<std::vector<double>>& batches,
            int first_epoch = 0, double gap = 0) {
    Outcome out;
    for (std::size_t i = 0; i < batches.size(); ++i) {
        const int e = first_epoch + static_cast<int>(i);
        cbs.on_epoch_begin(e);
        for (std::size_t b = 0; b < batches[i].size(); ++b) {
            cbs.on_train_batch_begin(static_cast<int>(b));
            clock.t += batches[i][b];
            traincb::Logs logs{{"loss", 1.0}};
            cbs.on_train_batch_end(static_cast<int>(b), logs);
            ++out.batches;
            if (cbs.stop_requested()) break;
        }
        traincb::Logs logs{{"loss", 1.0}};
        cbs.on_epoch_end(e, logs);
        ++out.epochs;
        if (cbs.stop_requested()) break;
        clock.t += gap;
    }
    return out;
}

std::vector<std::vector<double>> uniform(int epochs, int batches, double batch_seconds) {
    return std::vector<std::vector<double>>(static_cast<std::size_t>(epochs),
                                            std::vector<double>(static_cast<std::size_t>(batches), batch_seconds));
}

}  // namespace

TEST_CASE("TimeLimit: stops before the epoch that would overrun, not before") {
    // 3 s epochs, 10 s budget: ends at 3 (3+3 <= 10), 6 (6+3 <= 10), 9 (9+3 > 10): stop after 3.
    Clock clock;
    TimeLimit tl({.seconds = 10, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    const auto out = run(cbs, clock, uniform(10, 3, 1.0));
    REQUIRE(out.epochs == 3);
    REQUIRE(tl.stopped_epoch() == 2);
    REQUIRE(tl.longest_epoch() == 3.0);
    REQUIRE(tl.elapsed() == 9.0);
    REQUIRE(cbs.context().stop_source() == "TimeLimit");
    REQUIRE(cbs.context().stop_reason() == "time_limit");
}

TEST_CASE("TimeLimit: an epoch that would end exactly at the budget still runs") {
    // 3 s epochs, 12 s budget: at 9, 9+3 = 12 is not past the budget; at 12, 12+3 > 12: stop.
    Clock clock;
    TimeLimit tl({.seconds = 12, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    const auto out = run(cbs, clock, uniform(10, 3, 1.0));
    REQUIRE(out.epochs == 4);
    REQUIRE(tl.elapsed() == 12.0);  // used the whole budget, never more
}

TEST_CASE("TimeLimit: predicts with the longest epoch, not the last one") {
    // Epochs of 1, 4, 1 s, budget 9.5: at 1, 1+1 <= 9.5; at 5, 5+4 <= 9.5; at 6 the longest is 4:
    // 6+4 > 9.5, stop (the last epoch, 1 s, or the mean, 2 s, would have let a 4 s epoch overrun).
    Clock clock;
    TimeLimit tl({.seconds = 9.5, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    const auto out = run(cbs, clock, {{1.0}, {2.0, 2.0}, {1.0}, {1.0}, {1.0}});
    REQUIRE(out.epochs == 3);
    REQUIRE(tl.longest_epoch() == 4.0);
}

TEST_CASE("TimeLimit: time spent between epochs counts toward an epoch's duration") {
    // Epochs of 2 s with 2 s between them (a checkpoint), budget 9: first epoch 0..2 (2 s,
    // 2+2 <= 9); the second lasts from the first's end (2) to 6: 4 s, and 6+4 > 9: stop.
    Clock clock;
    TimeLimit tl({.seconds = 9, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    const auto out = run(cbs, clock, uniform(5, 1, 2.0), 0, 2.0);
    REQUIRE(out.epochs == 2);
    REQUIRE(tl.longest_epoch() == 4.0);
}

TEST_CASE("TimeLimit: time before the first epoch is elapsed but not an epoch") {
    // Setup takes 5 s between on_train_begin and the first epoch; epochs of 1 s, budget 10:
    // ends at 6 (6+1 <= 10), 7, 8, 9 (9+1 = 10, not past), 10 (10+1 > 10): 5 epochs.
    Clock clock;
    TimeLimit tl({.seconds = 10, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    clock.t += 5;
    const auto out = run(cbs, clock, uniform(10, 1, 1.0));
    REQUIRE(out.epochs == 5);
    REQUIRE(tl.longest_epoch() == 1.0);
}

TEST_CASE("TimeLimit: stops after the batch that uses up the budget, the epoch still ends") {
    // One epoch of 4 s batches, budget 10: after batches at 4, 8 it goes on; at 12 >= 10 it stops.
    Clock clock;
    TimeLimit tl({.seconds = 10, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    const auto out = run(cbs, clock, uniform(3, 5, 4.0));
    REQUIRE(out.batches == 3);
    REQUIRE(out.epochs == 1);
    REQUIRE(tl.stopped_epoch() == 0);
    REQUIRE(cbs.context().stop_reason() == "time_limit");

    // Exactly at the budget after a batch is "used up" too.
    Clock c2;
    TimeLimit tl2({.seconds = 8, .now_seconds = c2.fn()});
    traincb::CallbackList cbs2(tl2);
    cbs2.on_train_begin();
    REQUIRE(run(cbs2, c2, uniform(3, 5, 4.0)).batches == 2);
}

TEST_CASE("TimeLimit: the elapsed time is carried across a resume") {
    // First run: one 4 s epoch of a 10 s budget (4+4 <= 10), then the process dies.
    Clock clock;
    TimeLimit first({.seconds = 10, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(first);
    cbs.on_train_begin();
    REQUIRE(run(cbs, clock, uniform(1, 1, 4.0)).epochs == 1);
    REQUIRE_FALSE(cbs.stop_requested());
    traincb::CallbackState state;
    first.save_state(state);
    REQUIRE(state.version == 1);
    REQUIRE(state.json.at("elapsed") == 4.0);
    REQUIRE(first.state_key() == "TimeLimit");

    // The resumed run starts on a clock with another origin; 4 s are already used, so its first
    // epoch ends at 8 and 8+4 > 10 stops it (a fresh budget would allow 4+4 <= 10).
    Clock later{1000.0};
    TimeLimit second({.seconds = 10, .now_seconds = later.fn()});
    traincb::CallbackList cbs2(second);
    cbs2.set_params({.epochs = 10, .initial_epoch = 1, .resumed = true});
    cbs2.on_train_begin();
    second.load_state(state, cbs2.context());
    REQUIRE(second.elapsed() == 4.0);
    REQUIRE_FALSE(cbs2.stop_requested());
    const auto out = run(cbs2, later, uniform(9, 1, 4.0), 1);
    REQUIRE(out.epochs == 1);
    REQUIRE(second.stopped_epoch() == 1);
}

TEST_CASE("TimeLimit: a resumed run whose budget is used up stops at once") {
    Clock clock;
    TimeLimit tl({.seconds = 10, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.set_params({.epochs = 10, .initial_epoch = 4, .resumed = true});
    cbs.on_train_begin();
    traincb::CallbackState state;
    state.json = {{"elapsed", 10.0}, {"seconds", 10.0}};
    tl.load_state(state, cbs.context());
    REQUIRE(cbs.stop_requested());
    REQUIRE(tl.stopped_epoch() == 4);  // the run's first epoch
}

TEST_CASE("TimeLimit: a new run starts a new budget") {
    Clock clock;
    TimeLimit tl({.seconds = 10, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    (void)run(cbs, clock, uniform(10, 1, 3.0));
    REQUIRE(tl.stopped_epoch() == 2);
    cbs.on_train_begin();
    REQUIRE(tl.elapsed() == 0.0);
    REQUIRE(tl.longest_epoch() == 0.0);
    REQUIRE_FALSE(tl.stopped_epoch().has_value());
    REQUIRE(run(cbs, clock, uniform(10, 1, 3.0)).epochs == 3);
    TimeLimit named({.seconds = 1, .id = "job-limit"});
    REQUIRE(named.state_key() == "job-limit");
}

TEST_CASE("TimeLimit: the default clock is the steady clock") {
    TimeLimit tl({.seconds = 3600});
    REQUIRE(tl.options().now_seconds);
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    cbs.on_epoch_begin(0);
    traincb::Logs logs{{"loss", 1.0}};
    cbs.on_epoch_end(0, logs);
    REQUIRE(tl.elapsed() >= 0.0);
    REQUIRE_FALSE(cbs.stop_requested());  // an instant epoch cannot exhaust an hour
}

TEST_CASE("TimeLimit: verbose prints why it stops") {
    CoutCapture out;
    Clock clock;
    TimeLimit tl({.seconds = 10, .verbose = 1, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    (void)run(cbs, clock, uniform(10, 3, 1.0));
    REQUIRE(out.out.str() ==
            "Epoch 3: TimeLimit stopping training: 9.0s of the 10.0s budget used, and an epoch takes up to 3.0s.\n");

    CoutCapture out2;
    Clock c2;
    TimeLimit tl2({.seconds = 10, .verbose = 1, .now_seconds = c2.fn()});
    traincb::CallbackList cbs2(tl2);
    cbs2.on_train_begin();
    (void)run(cbs2, c2, uniform(1, 5, 4.0));
    REQUIRE(out2.out.str() ==
            "Epoch 1: TimeLimit stopping training: the budget of 10.0s is used up (12.0s elapsed); the epoch "
            "finishes.\n");
}

TEST_CASE("TimeLimit: a budget that is not a positive finite number is rejected") {
    const double bad =
        GENERATE(0.0, -1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity());
    CAPTURE(bad);
    const std::string msg = error_of([bad] { TimeLimit tl({.seconds = bad}); });
    REQUIRE(msg.starts_with("traincb: TimeLimit: seconds = "));
    REQUIRE(contains(msg, "finite number of seconds > 0"));
    REQUIRE(contains(error_of([] { TimeLimit tl(traincb::TimeLimitOptions{}); }), "seconds = 0 "));
}

TEST_CASE("TimeLimit: load_state rejects a foreign version or a malformed elapsed time") {
    Clock clock;
    TimeLimit tl({.seconds = 10, .now_seconds = clock.fn()});
    traincb::CallbackList cbs(tl);
    cbs.on_train_begin();
    traincb::CallbackState s;
    s.version = 2;
    s.json = {{"elapsed", 1.0}};
    REQUIRE_THROWS_AS(tl.load_state(s, cbs.context()), traincb::FormatError);
    REQUIRE(contains(error_of([&] { tl.load_state(s, cbs.context()); }), "version 2"));
    s.version = 1;
    for (const nlohmann::json& j : {nlohmann::json{{"elapsed", -1.0}}, nlohmann::json{{"elapsed", "3"}},
                                    nlohmann::json{{"seconds", 10.0}}, nlohmann::json::array(), nlohmann::json()}) {
        CAPTURE(j.dump());
        s.json = j;
        REQUIRE_THROWS_AS(tl.load_state(s, cbs.context()), traincb::FormatError);
    }
    REQUIRE(tl.elapsed() == 0.0);  // nothing was loaded
}

}  // namespace test_time_limit
