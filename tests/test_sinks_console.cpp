// Tests for traincb/sinks/console.hpp: the one-line-per-epoch format, the (forced) progress bar with
// a fake clock, value formatting, the stop message and the stream error path.
#include "catch.hpp"

#include <cerrno>
#include <limits>
#include <sstream>
#include <string>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/sinks/console.hpp>
#include <vector>

namespace test_sinks_console {

using traincb::Logs;
using traincb::sinks::BatchInfo;
using traincb::sinks::ConsoleOptions;
using traincb::sinks::ConsoleSink;
using traincb::sinks::ConsoleStyle;
using traincb::sinks::RunInfo;

namespace {

// A clock that returns the given times, in order (each clock read consumes one).
struct FakeClock {
    std::vector<double> times;
    std::size_t next = 0;
    double operator()() {
        REQUIRE(next < times.size());
        return times[next++];
    }
};

RunInfo run_info(int epochs, std::int64_t steps) {
    RunInfo info;
    info.params.epochs = epochs;
    info.params.steps_per_epoch = steps;
    return info;
}

}  // namespace

TEST_CASE("Console values: %.4f, %.4e below 1e-3, nan and inf as printf writes them") {
    auto f = [](double v) {
        std::string s;
        traincb::detail::append_console_value(s, v);
        return s;
    };
    // Expected strings are C printf output for the formats Keras's Progbar uses.
    REQUIRE(f(0.43214) == "0.4321");
    REQUIRE(f(0.0) == "0.0000");
    REQUIRE(f(1e-05) == "1.0000e-05");
    REQUIRE(f(-0.0005) == "-5.0000e-04");
    REQUIRE(f(0.001) == "0.0010");
    REQUIRE(f(1234.5) == "1234.5000");
    REQUIRE(f(std::numeric_limits<double>::quiet_NaN()) == "nan");
    REQUIRE(f(-std::numeric_limits<double>::infinity()) == "-inf");
}

TEST_CASE("Not a terminal: exactly one line per epoch, 1-based, loss first, val_ keys last") {
    std::ostringstream out;
    auto sink = std::make_shared<ConsoleSink>(ConsoleOptions{.out = &out, .clock = FakeClock{{10.0, 10.125, 10.5}}});
    REQUIRE_FALSE(sink->progress_bar());  // Auto on a string stream
    REQUIRE_FALSE(sink->wants_batches());
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.set_params({.epochs = 10, .initial_epoch = 2});
    cbs.on_train_begin();
    Logs e2{{"loss", 0.43214}, {"accuracy", 0.88}, {"val_loss", 0.5}, {"val_accuracy", 0.85}};
    cbs.on_epoch_end(2, e2);
    Logs e3{{"loss", 0.25}, {"learning_rate", 1e-05}};
    cbs.on_epoch_end(3, e3);
    cbs.on_train_end();
    // Keras's order (loss, then the metrics; val_loss, then the val_ metrics); times from the fake
    // clock: 10.125 - 10.0 and 10.5 - 10.125.
    REQUIRE(out.str() ==
            "Epoch 3/10 - 0.12s - loss: 0.4321 - accuracy: 0.8800 - val_loss: 0.5000 - val_accuracy: 0.8500\n"
            "Epoch 4/10 - 0.38s - loss: 0.2500 - learning_rate: 1.0000e-05\n");
}

TEST_CASE("A stopped or interrupted run says who stopped it and why") {
    std::ostringstream out;
    ConsoleSink sink(ConsoleOptions{.out = &out, .style = ConsoleStyle::Lines});
    sink.begin(run_info(0, 0));
    sink.end(traincb::TrainEnd{
        .kind = traincb::EndKind::Stopped, .source = "EarlyStopping", .reason = "patience", .exception = {}});
    sink.end(
        traincb::TrainEnd{.kind = traincb::EndKind::Interrupted, .source = "", .reason = "SIGINT", .exception = {}});
    sink.end(traincb::TrainEnd{});  // completed: nothing
    sink.end(traincb::TrainEnd{.kind = traincb::EndKind::Exception, .source = "", .reason = "boom", .exception = {}});
    REQUIRE(out.str() == "Stopped by EarlyStopping: patience\nInterrupted: SIGINT\n");

    // Through CallbackList: a stop request becomes the end's source and reason.
    std::ostringstream out2;
    auto s2 = std::make_shared<ConsoleSink>(ConsoleOptions{.out = &out2, .style = ConsoleStyle::Lines});
    traincb::MetricLogger logger({s2});
    traincb::CallbackList cbs{logger};
    cbs.on_train_begin();
    cbs.context().request_stop("TimeLimit", "time");
    cbs.on_train_end();
    REQUIRE(out2.str() == "Stopped by TimeLimit: time\n");
}

TEST_CASE("Forced progress bar: title, throttled in-place redraws, final line with time and val_ logs") {
    std::ostringstream out;
    // Clock reads: begin; batches 0..4; epoch end; batch 0 of the next epoch; its epoch end.
    FakeClock clock{{0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0}};
    auto sink = std::make_shared<ConsoleSink>(ConsoleOptions{
        .out = &out, .style = ConsoleStyle::ProgressBar, .updates_per_second = 1, .bar_width = 10, .clock = clock});
    REQUIRE(sink->wants_batches());
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.set_params({.epochs = 2, .steps_per_epoch = 5});
    cbs.on_train_begin();
    cbs.on_epoch_begin(0);
    const double running_loss[5] = {0.9, 0.8, 0.7, 0.6, 0.5};
    for (int b = 0; b < 5; ++b) {
        cbs.on_train_batch_begin(b);
        Logs batch{{"loss", running_loss[b]}};
        cbs.on_train_batch_end(b, batch);
    }
    Logs e0{{"loss", 0.5}, {"val_loss", 0.625}};
    cbs.on_epoch_end(0, e0);
    cbs.on_epoch_begin(1);
    Logs b0{{"loss", 0.4}};
    cbs.on_train_batch_end(0, b0);
    cbs.context().request_stop("EarlyStopping", "patience");
    cbs.on_train_end();  // the bar line is still open: ended with '\n' before the message
    // Hand derivation (Keras 2 Progbar, width 10, 1 redraw per second):
    //  batch 0 at t=0.5: first of the epoch, drawn. 1/5 -> int(10*0.2)=2 cells: "=>" then 8 dots.
    //      ETA = 0.5 s/step * 4 steps left = 2s.
    //  batch 1 at t=1.0: 0.5 s since the last redraw < 1 s: skipped.
    //  batch 2 at t=1.5: 1.0 s since: drawn. 3/5 -> 6 cells "=====>"; ETA = 1.5/3*2 = 1s.
    //  batch 3 at t=2.0: skipped. batch 4 at t=2.5: the last batch is always drawn: full bar and the
    //      elapsed time instead of the ETA ("2.50s" is 2 characters shorter than "ETA: 1s", so 2
    //      blanks cover the old line).
    //  epoch end at t=3.0: full bar, 3.00s, 3.0/5 s = 600ms/step, the epoch logs with val_loss.
    //  epoch 2, batch 0 at t=3.5 (0.5 s after the epoch ended): 1/5, ETA = 0.5*4 = 2s.
    REQUIRE(out.str() ==
            "Epoch 1/2\n"
            "\r1/5 [=>........] - ETA: 2s - loss: 0.9000"
            "\r3/5 [=====>....] - ETA: 1s - loss: 0.7000"
            "\r5/5 [==========] - 2.50s - loss: 0.5000  "
            "\r5/5 [==========] - 3.00s 600ms/step - loss: 0.5000 - val_loss: 0.6250\n"
            "Epoch 2/2\n"
            "\r1/5 [=>........] - ETA: 2s - loss: 0.4000\n"
            "Stopped by EarlyStopping: patience\n");
}

TEST_CASE("Progress bar with an unknown number of steps, and without batches") {
    std::ostringstream out;
    ConsoleSink sink(
        ConsoleOptions{.out = &out, .style = ConsoleStyle::ProgressBar, .clock = FakeClock{{0, 1.5, 2.0, 2.25}}});
    sink.begin(run_info(0, 0));
    sink.write_batch(BatchInfo{.epoch = 0, .batch = 2, .steps_per_epoch = 0, .global_step = 3}, Logs{{"loss", 1.0}});
    sink.write_epoch(0, Logs{{"loss", 1.0}});
    // No batch reached the sink for epoch 1: the one-line form.
    sink.write_epoch(1, Logs{{"loss", 0.5}});
    // "Epoch 1" without a total (epochs unknown); 3 steps done, 1.5 s elapsed; at the end the bar
    // uses the steps seen (3): 2.0 s / 3 = 667ms/step.
    REQUIRE(out.str() ==
            "Epoch 1\n"
            "\r3/Unknown - 1.50s - loss: 1.0000"
            "\r3/3 [==============================] - 2.00s 667ms/step - loss: 1.0000\n"
            "Epoch 2 - 0.25s - loss: 0.5000\n");
}

TEST_CASE("Console options are validated") {
    REQUIRE_THROWS_AS(ConsoleSink(ConsoleOptions{.updates_per_second = 0}), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(ConsoleSink(ConsoleOptions{.updates_per_second = std::numeric_limits<double>::quiet_NaN()}),
                      traincb::InvalidArgument);
    REQUIRE_THROWS_AS(ConsoleSink(ConsoleOptions{.updates_per_second = std::numeric_limits<double>::infinity()}),
                      traincb::InvalidArgument);
    REQUIRE_THROWS_AS(ConsoleSink(ConsoleOptions{.bar_width = 0}), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(ConsoleSink(ConsoleOptions{.bar_width = 1001}), traincb::InvalidArgument);
}

TEST_CASE("A failed stream throws IoError instead of losing the log silently") {
    std::ostream broken(nullptr);  // no buffer: every write sets badbit
    ConsoleSink sink(ConsoleOptions{.out = &broken, .style = ConsoleStyle::Lines});
    sink.begin(run_info(1, 0));
    try {
        sink.write_epoch(0, Logs{{"loss", 1.0}});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(std::string(e.what()).find("traincb: ConsoleSink: cannot write to '<stream>'") == 0);
    }
    REQUIRE_THROWS_AS(sink.flush(), traincb::IoError);
}

}  // namespace test_sinks_console
