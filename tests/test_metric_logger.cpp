// Tests for traincb/callbacks/metric_logger.hpp (and sinks/memory.hpp, which records what the
// logger forwards): call order, RunInfo, batch forwarding and skipping, keys added by earlier
// callbacks, error propagation.
#include "catch.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/sinks/memory.hpp>
#include <utility>
#include <vector>

namespace test_metric_logger {

using traincb::Logs;
using traincb::sinks::MemoryOptions;
using traincb::sinks::MemorySink;

namespace {

using Events = std::vector<std::string>;

// A user callback that adds a key in on_epoch_end, as ReduceLROnPlateau adds learning_rate.
struct AddsLearningRate final : traincb::Callback {
    void on_epoch_end(traincb::Context& ctx) override { ctx.logs().set("learning_rate", 0.125); }
};

// A sink that fails at a chosen call.
struct FailingSink final : traincb::sinks::Sink {
    bool fail_begin = false, fail_epoch = false, fail_end = false;
    void begin(const traincb::sinks::RunInfo&) override {
        if (fail_begin) throw std::runtime_error("begin failed");
    }
    void write_epoch(int, const Logs&) override {
        if (fail_epoch) throw traincb::IoError("FailingSink", "cannot write", "/x", ENOSPC);
    }
    void end(const traincb::TrainEnd&) override {
        if (fail_end) throw std::runtime_error("end failed");
    }
};

// A two-epoch loop with two batches each, as Keras's fit drives callbacks
// (docs/keras-semantics.md).
void two_epochs(traincb::CallbackList& cbs) {
    cbs.on_train_begin();
    for (int e = 0; e < 2; ++e) {
        cbs.on_epoch_begin(e);
        for (int b = 0; b < 2; ++b) {
            cbs.on_train_batch_begin(b);
            Logs running{{"loss", 1.0 / (b + 1)}};
            cbs.on_train_batch_end(b, running);
        }
        Logs logs{{"loss", 0.5 - e * 0.25}};
        cbs.on_epoch_end(e, logs);
    }
    cbs.on_train_end();
}

}  // namespace

TEST_CASE("MetricLogger forwards begin, batches (to sinks that want them), epoch then flush, end") {
    auto epochs_only = std::make_shared<MemorySink>();
    auto with_batches = std::make_shared<MemorySink>(MemoryOptions{.batches = true});
    traincb::MetricLogger logger({epochs_only, with_batches});
    REQUIRE(logger.name() == "MetricLogger");
    REQUIRE(logger.any_sink_wants_batches());
    traincb::CallbackList cbs{logger};
    REQUIRE(cbs.wants_batch_logs());
    two_epochs(cbs);
    REQUIRE(epochs_only->events() == Events{"begin", "epoch 0", "flush", "epoch 1", "flush", "end completed"});
    REQUIRE(with_batches->events() == Events{"begin", "batch 0.0", "batch 0.1", "epoch 0", "flush", "batch 1.0",
                                             "batch 1.1", "epoch 1", "flush", "end completed"});
    // Batch info: 0-based epoch and batch, global step counting every batch of the run.
    const auto& b = with_batches->batches();
    REQUIRE(b.size() == 4);
    REQUIRE(b[3].first.epoch == 1);
    REQUIRE(b[3].first.batch == 1);
    REQUIRE(b[3].first.global_step == 4);
    REQUIRE(b[3].second.at("loss") == 0.5);
    REQUIRE(epochs_only->rows().size() == 2);
    REQUIRE(epochs_only->rows()[1].first == 1);
    REQUIRE(epochs_only->rows()[1].second.at("loss") == 0.25);
    REQUIRE(epochs_only->batches().empty());
}

TEST_CASE("RunInfo carries the params, resumed and initial_epoch") {
    auto sink = std::make_shared<MemorySink>();
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.set_params({.epochs = 7, .initial_epoch = 3, .steps_per_epoch = 11, .resumed = true});
    cbs.on_train_begin();
    REQUIRE(sink->run_info().has_value());
    REQUIRE(sink->run_info()->resumed);
    REQUIRE(sink->run_info()->initial_epoch == 3);
    REQUIRE(sink->run_info()->params.epochs == 7);
    REQUIRE(sink->run_info()->params.steps_per_epoch == 11);
}

TEST_CASE("Added last, the logger sees keys that earlier callbacks add in on_epoch_end") {
    auto sink = std::make_shared<MemorySink>();
    AddsLearningRate lr;
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{lr, logger};
    cbs.on_train_begin();
    Logs logs{{"loss", 1.0}};
    cbs.on_epoch_end(0, logs);
    REQUIRE(sink->rows().at(0).second == Logs{{"learning_rate", 0.125}, {"loss", 1.0}});
}

TEST_CASE("Batch skipping: with no sink that wants batches, the logger is left out of the batch loop") {
    {
        // The hook is overridden, but wants_train_batch_end() is false: CallbackList skips it.
        auto sink = std::make_shared<MemorySink>();
        traincb::MetricLogger logger({sink});
        REQUIRE_FALSE(logger.any_sink_wants_batches());
        REQUIRE_FALSE(logger.wants_train_batch_end());
        traincb::CallbackList cbs{logger};
        REQUIRE_FALSE(cbs.wants_batch_logs());
        two_epochs(cbs);
        REQUIRE_FALSE(cbs.wants_batch_logs());
        REQUIRE(sink->events() == Events{"begin", "epoch 0", "flush", "epoch 1", "flush", "end completed"});
    }
    {
        // A sink that wants batches, added after the list was built: asked again at on_train_begin.
        auto epochs_only = std::make_shared<MemorySink>();
        auto batches = std::make_shared<MemorySink>(MemoryOptions{.batches = true});
        traincb::MetricLogger logger({epochs_only});
        traincb::CallbackList cbs{logger};
        REQUIRE_FALSE(cbs.wants_batch_logs());
        logger.add_sink(batches);
        REQUIRE(logger.wants_train_batch_end());
        two_epochs(cbs);
        REQUIRE(cbs.wants_batch_logs());
        REQUIRE(batches->batches().size() == 4);  // 2 epochs x 2 batches
        REQUIRE(epochs_only->batches().empty());
        REQUIRE(epochs_only->rows().size() == 2);
    }
}

TEST_CASE("add_sink appends, a null sink is refused") {
    auto a = std::make_shared<MemorySink>();
    auto b = std::make_shared<MemorySink>(MemoryOptions{.batches = true});
    traincb::MetricLogger logger;
    REQUIRE_FALSE(logger.any_sink_wants_batches());
    logger.add_sink(a).add_sink(b);
    REQUIRE(logger.sinks().size() == 2);
    REQUIRE(logger.sinks()[1] == b);
    REQUIRE(logger.any_sink_wants_batches());
    REQUIRE_THROWS_AS(logger.add_sink(nullptr), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(traincb::MetricLogger({a, nullptr}), traincb::InvalidArgument);
}

TEST_CASE("A failing sink does not keep the others from their record, its error propagates") {
    auto failing = std::make_shared<FailingSink>();
    auto after = std::make_shared<MemorySink>();
    traincb::MetricLogger logger({failing, after});
    traincb::CallbackList cbs{logger};

    failing->fail_begin = true;
    REQUIRE_THROWS_WITH(cbs.on_train_begin(), "begin failed");
    REQUIRE(after->events() == Events{"begin"});

    failing->fail_begin = false;
    failing->fail_epoch = true;
    cbs.on_train_begin();
    Logs logs{{"loss", 1.0}};
    REQUIRE_THROWS_AS(cbs.on_epoch_end(0, logs), traincb::IoError);
    REQUIRE(after->events() == Events{"begin", "epoch 0", "flush"});

    failing->fail_end = true;
    REQUIRE_THROWS_WITH(cbs.on_train_end(), "end failed");
    REQUIRE(after->events().back() == "end completed");
}

TEST_CASE("Every kind of end reaches the sinks with its source and reason") {
    auto sink = std::make_shared<MemorySink>();
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.on_train_begin();
    cbs.context().request_stop("EarlyStopping", "patience");
    cbs.on_train_end();
    REQUIRE(sink->train_end()->kind == traincb::EndKind::Stopped);
    REQUIRE(sink->train_end()->source == "EarlyStopping");
    REQUIRE(sink->train_end()->reason == "patience");

    cbs.on_train_begin();
    cbs.on_train_end(std::make_exception_ptr(std::runtime_error("crash")));
    REQUIRE(sink->train_end()->kind == traincb::EndKind::Exception);
    REQUIRE(sink->train_end()->reason == "crash");
    REQUIRE(sink->events() == Events{"begin", "end exception"});
}

TEST_CASE("A one-sink braced list builds a logger") {
    auto sink = std::make_shared<MemorySink>();
    traincb::MetricLogger logger({sink});
    REQUIRE(logger.sinks().size() == 1);
}

// ---- the model's learning rate ----------------------------------------------------------------

namespace {

// A model with only the learning-rate capability (all the logger reaches through ModelHandle).
struct LrModel {
    double lr = 0.5;
    [[nodiscard]] double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
};

// Sets the rate at each epoch begin, as a scheduler does, and changes it again at epoch end
// without logging it: a logger reading the rate at epoch end would see the later value.
struct SetsRate final : traincb::Callback {
    void on_epoch_begin(traincb::Context& ctx) override { ctx.model().set_learning_rate(0.25 * (ctx.epoch() + 1)); }
    void on_epoch_end(traincb::Context& ctx) override { ctx.model().set_learning_rate(-1.0); }
};

}  // namespace

TEST_CASE("The model's learning rate reaches the sinks: the rate of the epoch, in a copy of the logs") {
    auto sink = std::make_shared<MemorySink>();
    LrModel model;
    SetsRate rate;
    traincb::MetricLogger logger({sink});
    REQUIRE(logger.log_learning_rate());  // on by default
    traincb::History history;
    traincb::CallbackList cbs{rate, logger};
    cbs.set_model(model);
    cbs.set_history(&history);
    // on_epoch_begin is a per-epoch hook: the logger still adds nothing per batch.
    REQUIRE_FALSE(cbs.wants_batch_logs());
    two_epochs(cbs);
    REQUIRE(sink->rows().size() == 2);
    // SetsRate set 0.25 * (epoch + 1) before the epoch (its on_epoch_begin runs first) and -1
    // after it: the logged rate is the one the epoch trained with.
    REQUIRE(sink->rows()[0].second == Logs{{"learning_rate", 0.25}, {"loss", 0.5}});
    REQUIRE(sink->rows()[1].second == Logs{{"learning_rate", 0.5}, {"loss", 0.25}});
    // The run's logs are untouched: History (and every other callback) sees what it saw before.
    REQUIRE(history.history.count("learning_rate") == 0);
    REQUIRE(history.history.at("loss") == std::vector<double>{0.5, 0.25});
}

TEST_CASE("A learning_rate logged by a callback wins over the model's") {
    auto sink = std::make_shared<MemorySink>();
    LrModel model;          // 0.5
    AddsLearningRate adds;  // logs 0.125
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{adds, logger};
    cbs.set_model(model);
    two_epochs(cbs);
    REQUIRE(sink->rows().size() == 2);
    for (const auto& row : sink->rows()) REQUIRE(row.second.at("learning_rate") == 0.125);
}

TEST_CASE("No learning_rate without a model, for a model without one, or with log_learning_rate(false)") {
    struct NoLr {
        double w = 0;
    };
    auto none = std::make_shared<MemorySink>();
    auto no_lr = std::make_shared<MemorySink>();
    auto off = std::make_shared<MemorySink>();
    std::vector<std::pair<int, Logs>> off_rows;
    {
        traincb::MetricLogger logger({none});
        traincb::CallbackList cbs{logger};  // a hand-written loop with no model attached
        two_epochs(cbs);
    }
    {
        NoLr model;
        traincb::MetricLogger logger({no_lr});
        traincb::CallbackList cbs{logger};
        cbs.set_model(model);
        two_epochs(cbs);
    }
    {
        LrModel model;
        traincb::MetricLogger logger({off});
        REQUIRE_FALSE(logger.log_learning_rate(false).log_learning_rate());
        traincb::CallbackList cbs{logger};
        cbs.set_model(model);
        two_epochs(cbs);
        off_rows = off->rows();
        // Switched back on, the next run logs it again (the sink keeps one run's rows).
        logger.log_learning_rate(true);
        two_epochs(cbs);
        REQUIRE(off->rows().size() == 2);
        REQUIRE(off->rows()[0].second == Logs{{"learning_rate", 0.5}, {"loss", 0.5}});
    }
    for (const std::vector<std::pair<int, Logs>>* rows : {&none->rows(), &no_lr->rows(), &std::as_const(off_rows)}) {
        REQUIRE(rows->size() == 2);
        REQUIRE((*rows)[0].second == Logs{{"loss", 0.5}});
        REQUIRE((*rows)[1].second == Logs{{"loss", 0.25}});
    }
}

TEST_CASE("An epoch resumed mid-way (no on_epoch_begin) logs the model's rate at its end") {
    auto sink = std::make_shared<MemorySink>();
    LrModel model;
    model.lr = 0.75;
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.set_model(model);
    cbs.set_params({.epochs = 3, .initial_epoch = 1, .resumed = true});
    cbs.on_train_begin();
    cbs.on_epoch_resume(1);
    Logs logs{{"loss", 1.0}};
    cbs.on_epoch_end(1, logs);
    // An on_epoch_begin of another epoch is not mistaken for this one's either.
    cbs.on_epoch_begin(2);
    model.lr = 0.125;
    cbs.on_epoch_end(2, logs);
    cbs.on_train_end();
    REQUIRE(sink->rows().size() == 2);
    REQUIRE(sink->rows()[0].second.at("learning_rate") == 0.75);
    REQUIRE(sink->rows()[1].second.at("learning_rate") == 0.75);  // read at on_epoch_begin(2)
}

}  // namespace test_metric_logger
