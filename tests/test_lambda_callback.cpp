// Tests for traincb/callbacks/lambda_callback.hpp: every hook is forwarded with its context, an
// empty hook does nothing, keys written in on_epoch_end reach later callbacks, stops work.
#include "catch.hpp"

#include <string>
#include <traincb/callbacks/lambda_callback.hpp>
#include <vector>

namespace test_lambda_callback {

namespace {

using traincb::Context;
using traincb::LambdaCallback;

// Records the name of each hook with the context fields meaningful in it.
struct Recorder {
    std::vector<std::string> events;
    traincb::LambdaCallbackOptions::Hook hook(const std::string& name) {
        return [this, name](Context& ctx) {
            std::string e = name + " epoch=" + std::to_string(ctx.epoch());
            // batch() is specified in batch hooks (and -1 in epoch and train hooks) only.
            if (!name.starts_with("test")) e += " batch=" + std::to_string(ctx.batch());
            if (const double* loss = ctx.logs().find("loss")) e += " loss=" + std::to_string(*loss);
            events.push_back(e);
        };
    }
};

}  // namespace

TEST_CASE("LambdaCallback: forwards every hook, in order, with its context") {
    Recorder r;
    LambdaCallback cb({
        .on_train_begin = r.hook("train_begin"),
        .on_train_end = r.hook("train_end"),
        .on_epoch_begin = r.hook("epoch_begin"),
        .on_epoch_end = r.hook("epoch_end"),
        .on_train_batch_begin = r.hook("batch_begin"),
        .on_train_batch_end = r.hook("batch_end"),
        .on_test_begin = r.hook("test_begin"),
        .on_test_end = r.hook("test_end"),
    });
    traincb::CallbackList cbs(cb);
    cbs.on_train_begin();
    cbs.on_epoch_begin(0);
    cbs.on_train_batch_begin(0);
    traincb::Logs batch_logs{{"loss", 2.0}};
    cbs.on_train_batch_end(0, batch_logs);
    cbs.on_test_begin();
    traincb::Logs val_logs{{"loss", 3.0}};
    cbs.on_test_end(val_logs);
    traincb::Logs epoch_logs{{"loss", 1.5}};
    cbs.on_epoch_end(0, epoch_logs);
    cbs.on_train_end();
    // Expected from the order of the calls above and Context's documented fields (epoch -1
    // before the first epoch, batch -1 outside batch hooks, on_train_end sees the last epoch's logs).
    REQUIRE(r.events == std::vector<std::string>{
                            "train_begin epoch=-1 batch=-1",
                            "epoch_begin epoch=0 batch=-1",
                            "batch_begin epoch=0 batch=0",
                            "batch_end epoch=0 batch=0 loss=2.000000",
                            "test_begin epoch=0",
                            "test_end epoch=0 loss=3.000000",
                            "epoch_end epoch=0 batch=-1 loss=1.500000",
                            "train_end epoch=0 batch=-1 loss=1.500000",
                        });
}

TEST_CASE("LambdaCallback: empty hooks do nothing and the default name is LambdaCallback") {
    LambdaCallback cb;
    REQUIRE(cb.name() == "LambdaCallback");
    traincb::CallbackList cbs(cb);
    cbs.on_train_begin();
    cbs.on_epoch_begin(0);
    cbs.on_train_batch_begin(0);
    cbs.on_train_batch_end(0);
    cbs.on_test_begin();
    traincb::Logs logs{{"loss", 1.0}};
    cbs.on_test_end(logs);
    cbs.on_epoch_end(0, logs);
    cbs.on_train_end();
    REQUIRE(logs == traincb::Logs{{"loss", 1.0}});  // nothing touched them
    REQUIRE_FALSE(cbs.stop_requested());
}

TEST_CASE("LambdaCallback: a key written in on_epoch_end is seen by later callbacks, stops are requested") {
    int calls = 0;
    LambdaCallback writer(
        {.on_epoch_end = [](Context& ctx) { ctx.logs().set("double_loss", 2 * ctx.logs().at("loss")); },
         .name = "Writer"});
    double seen = 0;
    LambdaCallback reader({.on_epoch_end =
                               [&](Context& ctx) {
                                   ++calls;
                                   seen = ctx.logs().at("double_loss");
                                   if (ctx.epoch() == 1) ctx.request_stop("Reader", "enough");
                               },
                           .name = "Reader"});
    REQUIRE(writer.name() == "Writer");
    traincb::CallbackList cbs(writer, reader);
    cbs.on_train_begin();
    int epochs = 0;
    for (int e = 0; e < 10 && !cbs.stop_requested(); ++e, ++epochs) {
        cbs.on_epoch_begin(e);
        traincb::Logs logs{{"loss", 0.25 * (e + 1)}};
        cbs.on_epoch_end(e, logs);
        REQUIRE(logs.at("double_loss") == 0.5 * (e + 1));
    }
    REQUIRE(epochs == 2);
    REQUIRE(calls == 2);
    REQUIRE(seen == 1.0);  // 2 * 0.25 * 2
    REQUIRE(cbs.context().stop_source() == "Reader");
    REQUIRE(cbs.context().stop_reason() == "enough");
}

TEST_CASE("LambdaCallback: an exception thrown by a hook propagates") {
    LambdaCallback cb({.on_epoch_begin = [](Context&) { throw std::runtime_error("boom"); }});
    traincb::CallbackList cbs(cb);
    cbs.on_train_begin();
    REQUIRE_THROWS_AS(cbs.on_epoch_begin(0), std::runtime_error);
}

TEST_CASE("LambdaCallback: an empty name is rejected") {
    try {
        LambdaCallback cb({.name = ""});
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        REQUIRE(std::string(e.what()).starts_with("traincb: LambdaCallback: name is empty"));
    }
}

}  // namespace test_lambda_callback
