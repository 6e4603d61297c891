// Tests for traincb/trainer.hpp: hook order and stop rules (docs/keras-semantics.md, "How fit
// drives callbacks"), data handling, determinism, errors, and exception safety.
#include "catch.hpp"

#include <sstream>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/terminate_on_nan.hpp>
#include <traincb/trainer.hpp>

#include "trainer_test_models.hpp"

namespace test_trainer {

using test_models::Linear;
using traincb::Context;
using traincb::Logs;

namespace {

// Records every hook as a short string ("eb0", "bb0", "be0", "te", "ee0", ...).
struct Recorder final : traincb::Callback {
    std::vector<std::string> events;
    std::vector<Logs> epoch_logs;
    std::vector<Logs> test_logs;
    traincb::TrainEnd end;
    traincb::TrainParams params;
    int stop_in_batch = -1;  // request a stop at this (epoch*1000 + batch)
    bool stop_at_begin = false;
    void on_train_begin(Context& c) override {
        events.push_back("tb");
        params = c.params();
        if (stop_at_begin) c.request_stop("Recorder", "begin");
    }
    void on_train_end(Context& c) override {
        events.push_back("tend");
        end = c.end();
    }
    void on_epoch_begin(Context& c) override { events.push_back("eb" + std::to_string(c.epoch())); }
    void on_epoch_end(Context& c) override {
        events.push_back("ee" + std::to_string(c.epoch()));
        epoch_logs.push_back(c.logs());
    }
    void on_train_batch_begin(Context& c) override { events.push_back("bb" + std::to_string(c.batch())); }
    void on_train_batch_end(Context& c) override {
        events.push_back("be" + std::to_string(c.batch()));
        if (stop_in_batch == c.epoch() * 1000 + c.batch()) c.request_stop("Recorder", "batch");
    }
    void on_test_begin(Context&) override { events.push_back("vb"); }
    void on_test_end(Context& c) override {
        events.push_back("ve");
        test_logs.push_back(c.logs());
    }
    std::string name() const override { return "Recorder"; }
};

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : " ") + e;
    return s;
}

}  // namespace

TEST_CASE("Trainer fires hooks in Keras's order, validating every validation_freq epochs") {
    Eigen::MatrixXd x, y;
    test_models::make_data(10, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    Recorder rec;
    // 8 training rows (validation_split 0.2 takes the last 2), batch 3 -> batches of 3, 3, 2.
    auto h = trainer.fit(
        x, y, {.epochs = 2, .batch_size = 3, .shuffle = false, .validation_split = 0.2, .validation_freq = 2}, rec);
    CHECK(join(rec.events) == "tb eb0 bb0 be0 bb1 be1 bb2 be2 ee0 eb1 bb0 be0 bb1 be1 bb2 be2 vb ve ee1 tend");
    REQUIRE(rec.epoch_logs.size() == 2);
    CHECK(rec.epoch_logs[0].keys() == std::vector<std::string>{"loss"});  // no val_* without validation
    CHECK(rec.epoch_logs[1].keys() == std::vector<std::string>{"loss", "val_loss"});
    CHECK(rec.test_logs[0].keys() == std::vector<std::string>{"loss"});  // on_test_end: unprefixed
    CHECK(rec.params.steps_per_epoch == 3);
    CHECK(rec.params.samples == 8);
    CHECK(rec.params.log_keys == std::vector<std::string>{"loss", "val_loss"});
    CHECK(h.end.kind == traincb::EndKind::Completed);
    CHECK(h.epoch == std::vector<int>{0, 1});
    // val_loss is the model's loss on the last 2 rows with the weights after epoch 1.
    const Eigen::MatrixXd vx = x.bottomRows(2), vy = y.bottomRows(2);
    CHECK(h.at("val_loss")[1] == model.loss(vy, model.predict(vx)));
}

TEST_CASE("CallbackList: on_before_epoch_commit runs after every on_epoch_end and before any on_epoch_commit") {
    // Two callbacks sharing one event log; whatever their order, every on_epoch_end comes first,
    // then every on_before_epoch_commit, then every on_epoch_commit (callback.hpp).
    struct Phases final : traincb::Callback {
        std::vector<std::string>& log;
        std::string tag;
        Phases(std::vector<std::string>& l, std::string t) : log(l), tag(std::move(t)) {}
        void on_epoch_end(Context&) override { log.push_back("end:" + tag); }
        void on_before_epoch_commit(Context&) override { log.push_back("before:" + tag); }
        void on_epoch_commit(Context&) override { log.push_back("commit:" + tag); }
    };
    std::vector<std::string> log;
    Phases a(log, "a"), b(log, "b");
    traincb::CallbackList list(a, b);
    list.on_train_begin();
    Logs logs{{"loss", 1.0}};
    list.on_epoch_end(0, logs);
    CHECK(join(log) == "end:a end:b before:a before:b commit:a commit:b");
    // A callback reached through a base-class reference is called for the new hook too.
    log.clear();
    traincb::Callback& base = a;
    traincb::CallbackList by_base;
    by_base.add(base);
    by_base.on_train_begin();
    by_base.on_epoch_end(0, logs);
    CHECK(join(log) == "end:a before:a commit:a");
}

TEST_CASE("Trainer: the training loss is the sample-weighted mean of the batch losses") {
    Eigen::MatrixXd x, y;
    test_models::make_data(7, x, y);
    Linear model(2, 1), twin(2, 1);
    traincb::Trainer trainer(model);
    auto h = trainer.fit(x, y, {.epochs = 1, .batch_size = 3, .shuffle = false});
    // Independent computation: the same steps by hand on batches [0,3), [3,6), [6,7).
    double sum = 0;
    for (int b = 0; b < 3; ++b) {
        const Eigen::Index begin = b * 3, rows = std::min<Eigen::Index>(3, 7 - begin);
        const Eigen::MatrixXd bx = x.middleRows(begin, rows), by = y.middleRows(begin, rows);
        sum += twin.train_batch(bx, by).loss * static_cast<double>(rows);
    }
    CHECK(h.at("loss")[0] == Approx(sum / 7.0).epsilon(1e-15));
    CHECK(model.w == twin.w);
}

TEST_CASE("Trainer: a stop requested in a batch still completes that epoch's validation and on_epoch_end") {
    Eigen::MatrixXd x, y;
    test_models::make_data(10, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    Recorder rec;
    rec.stop_in_batch = 1000 + 0;  // epoch 1, batch 0
    auto h = trainer.fit(x, y, {.epochs = 5, .batch_size = 4, .shuffle = false, .validation_split = 0.2}, rec);
    CHECK(join(rec.events) == "tb eb0 bb0 be0 bb1 be1 vb ve ee0 eb1 bb0 be0 vb ve ee1 tend");
    CHECK(h.epoch == std::vector<int>{0, 1});
    CHECK(h.end.kind == traincb::EndKind::Stopped);
    CHECK(h.end.source == "Recorder");
    CHECK(h.end.reason == "batch");
}

TEST_CASE("Trainer: a stop requested in on_train_begin still runs one batch (Keras rule 2)") {
    Eigen::MatrixXd x, y;
    test_models::make_data(8, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    Recorder rec;
    rec.stop_at_begin = true;
    trainer.fit(x, y, {.epochs = 3, .batch_size = 4, .shuffle = false}, rec);
    CHECK(join(rec.events) == "tb eb0 bb0 be0 ee0 tend");
    CHECK(model.steps == 1);
}

TEST_CASE("Trainer: TerminateOnNaN stops after the batch, the epoch still ends with a NaN loss row") {
    Eigen::MatrixXd x, y;
    test_models::make_data(12, x, y);
    Linear model(2, 1);
    model.throw_at_step = 1;
    model.nan_at_throw = true;  // batch 1 onwards returns NaN
    traincb::Trainer trainer(model);
    traincb::TerminateOnNaN ton({.verbose = 0});
    Recorder rec;
    auto h = trainer.fit(x, y, {.epochs = 10, .batch_size = 4, .shuffle = false}, ton, rec);
    CHECK(h.size() == 1);
    CHECK(std::isnan(h.at("loss")[0]));
    CHECK(ton.terminated_batch() == 1);
    CHECK(model.steps == 2);
    CHECK(h.end.source == "TerminateOnNaN");
    CHECK(rec.events.back() == "tend");
}

TEST_CASE("Trainer: TerminateOnNaN(raise_error) throws, every on_train_end still runs and learns why") {
    Eigen::MatrixXd x, y;
    test_models::make_data(12, x, y);
    Linear model(2, 1);
    model.throw_at_step = 0;
    model.nan_at_throw = true;
    traincb::Trainer trainer(model);
    traincb::TerminateOnNaN ton({.raise_error = true});
    Recorder rec;
    CHECK_THROWS_AS(trainer.fit(x, y, {.epochs = 3, .batch_size = 4}, ton, rec), traincb::TrainingError);
    CHECK(rec.events.back() == "tend");
    CHECK(rec.end.kind == traincb::EndKind::Exception);
    CHECK(rec.end.reason.find("NaN or Inf loss encountered at batch 0") != std::string::npos);
}

TEST_CASE("Trainer: an exception from the model runs on_train_end, restores best weights, then propagates") {
    Eigen::MatrixXd x, y;
    test_models::make_data(16, x, y);
    Linear model(2, 1);
    model.throw_at_step = 9;  // 4 batches per epoch: throws in epoch 2
    traincb::Trainer trainer(model);
    traincb::EarlyStopping es({.monitor = "loss", .patience = 5, .restore_best_weights = true});
    Recorder rec;
    // The weights at the end of each epoch, as the model held them.
    struct WeightsAtEpochEnd final : traincb::Callback {
        Linear& m;
        std::vector<Eigen::MatrixXd> w;
        explicit WeightsAtEpochEnd(Linear& model) : m(model) {}
        void on_epoch_end(Context&) override { w.push_back(m.w); }
    } seen(model);
    CHECK_THROWS_WITH(trainer.fit(x, y, {.epochs = 5, .batch_size = 4, .shuffle = false}, es, rec, seen),
                      Catch::Contains("model exploded at step 9"));
    CHECK(rec.end.kind == traincb::EndKind::Exception);
    CHECK(rec.end.reason == "model exploded at step 9");
    REQUIRE(es.best_epoch() == 1);  // the loss decreases every epoch here
    CHECK(es.restored_from_epoch() == 1);
    REQUIRE(seen.w.size() == 2);
    CHECK(model.w == seen.w[1]);  // the weights are back to the end of epoch 1
    CHECK(model.w != seen.w[0]);
    CHECK(model.steps == 9);  // the step counter is training state: not rolled back
}

TEST_CASE("Trainer: same seed, same run bit for bit, another seed, other batches") {
    Eigen::MatrixXd x, y;
    test_models::make_data(50, x, y);
    auto train = [&](std::uint64_t seed) {
        Linear m(2, 1);
        traincb::Trainer t(m);
        auto h = t.fit(x, y, {.epochs = 3, .batch_size = 7, .shuffle = true, .seed = seed});
        return std::make_pair(m.w, h.at("loss"));
    };
    const auto a = train(7), b = train(7), c = train(8);
    CHECK(a.first == b.first);
    CHECK(a.second == b.second);
    CHECK(a.first != c.first);
}

TEST_CASE("Trainer: the epoch permutation is a permutation, differs per epoch, and is reproducible") {
    std::vector<Eigen::Index> p0(100), p1(100), p0b(100);
    traincb::detail::epoch_permutation(p0, 3, 0);
    traincb::detail::epoch_permutation(p1, 3, 1);
    traincb::detail::epoch_permutation(p0b, 3, 0);
    CHECK(p0 == p0b);
    CHECK(p0 != p1);
    auto sorted = p0;
    std::sort(sorted.begin(), sorted.end());
    for (Eigen::Index i = 0; i < 100; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("Trainer: initial_epoch numbers epochs absolutely and global steps continue") {
    Eigen::MatrixXd x, y;
    test_models::make_data(8, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    struct Steps final : traincb::Callback {
        std::vector<std::int64_t> seen;
        void on_train_batch_end(Context& c) override { seen.push_back(c.global_step()); }
    } steps;
    Recorder rec;
    auto h = trainer.fit(x, y, {.epochs = 5, .batch_size = 4, .initial_epoch = 3}, rec, steps);
    CHECK(h.epoch == std::vector<int>{3, 4});
    CHECK(rec.events[1] == "eb3");
    CHECK(steps.seen == std::vector<std::int64_t>{7, 8, 9, 10});  // 3 epochs x 2 batches done before
}

TEST_CASE("Trainer: invalid options are rejected before any batch, naming the value") {
    Eigen::MatrixXd x, y;
    test_models::make_data(8, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    CHECK_THROWS_WITH(trainer.fit(x, y, {.batch_size = 0}), Catch::Contains("batch_size must be >= 1, got 0"));
    CHECK_THROWS_WITH(trainer.fit(x, y, {.epochs = 2, .initial_epoch = 3}),
                      Catch::Contains("epochs (2) is less than initial_epoch (3)"));
    CHECK_THROWS_WITH(trainer.fit(x, y, {.validation_split = 1.0}),
                      Catch::Contains("validation_split must be in [0, 1), got 1"));
    CHECK_THROWS_WITH(trainer.fit(x, y, {.validation_freq = 0}), Catch::Contains("validation_freq must be >= 1"));
    CHECK_THROWS_WITH(trainer.fit(x, y, {.validation_split = 0.05}), Catch::Contains("both need at least one"));
    CHECK(model.steps == 0);
}

TEST_CASE("Trainer: mismatched shapes are rejected at fit with both shapes in the message") {
    Eigen::MatrixXd x, y;
    test_models::make_data(8, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    const Eigen::MatrixXd y7 = y.topRows(7);
    CHECK_THROWS_WITH(trainer.fit(x, y7), Catch::Contains("x has 8x2 but y has 7x1"));
    traincb::ValidationData<double> bad{Eigen::MatrixXd::Zero(3, 5), Eigen::MatrixXd::Zero(3, 1)};
    CHECK_THROWS_WITH(trainer.fit(x, y, {.validation_data = bad}),
                      Catch::Contains("validation x is 3x5") && Catch::Contains("training x is 8x2"));
    const Eigen::MatrixXd empty(0, 2), empty_y(0, 1);
    CHECK_THROWS_WITH(trainer.fit(empty, empty_y), Catch::Contains("pass non-empty data"));
    CHECK(model.steps == 0);
}

namespace {
// A model whose predict drops the last row: validation must refuse its output.
struct ShortPredict : Linear {
    using Linear::Linear;
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const { return Linear::predict(x).topRows(x.rows() - 1); }
};
}  // namespace

TEST_CASE("Trainer: a predict that returns another number of rows than it was given is rejected at validation") {
    Eigen::MatrixXd x, y;
    test_models::make_data(10, x, y);
    ShortPredict model(2, 1);
    traincb::Trainer trainer(model);
    // 10 rows, validation_split 0.4: 4 validation rows, for which predict returns 3 (1 column).
    CHECK_THROWS_AS(trainer.fit(x, y, {.epochs = 2, .validation_split = 0.4}), traincb::InvalidArgument);
    CHECK_THROWS_WITH(trainer.fit(x, y, {.epochs = 2, .validation_split = 0.4}),
                      "traincb: Trainer::fit: predict(x) returned 3x1 for 4 validation rows; it must return one row "
                      "per sample");
    CHECK(model.steps == 2);  // each fit ran its first epoch's one step (6 rows, batch_size 32), then validated
}

TEST_CASE("Trainer: a monitor typo fails before the first epoch with a did-you-mean") {
    Eigen::MatrixXd x, y;
    test_models::make_data(8, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    traincb::EarlyStopping es({.monitor = "val_los", .mode = traincb::Mode::Min});
    CHECK_THROWS_WITH(trainer.fit(x, y, {.epochs = 50, .validation_split = 0.25}, es),
                      Catch::Contains("did you mean 'val_loss'"));
    CHECK(model.steps == 0);
    traincb::EarlyStopping es2({.monitor = "val_loss"});
    CHECK_THROWS_WITH(trainer.fit(x, y, {.epochs = 50}, es2), Catch::Contains("there is no validation data"));
    CHECK(model.steps == 0);
}

TEST_CASE("Trainer: restore_best_weights on a model without state fails before the first epoch") {
    Eigen::MatrixXd x, y;
    test_models::make_data(8, x, y);
    test_models::Minimal model;
    traincb::Trainer trainer(model);
    traincb::EarlyStopping es({.monitor = "loss", .restore_best_weights = true});
    CHECK_THROWS_WITH(trainer.fit(x, y, {.epochs = 3}, es), Catch::Contains("visit_state"));
    CHECK(model.w.isZero());
}

TEST_CASE("Trainer: one Trainer and one callback serve a second fit, callbacks may be shared_ptrs or lists") {
    Eigen::MatrixXd x, y;
    test_models::make_data(8, x, y);
    Linear model(2, 1);
    traincb::Trainer trainer(model);
    auto es = std::make_shared<traincb::EarlyStopping>(traincb::EarlyStoppingOptions{.monitor = "loss", .patience = 2});
    Recorder rec;
    traincb::CallbackList extra(rec);
    auto h1 = trainer.fit(x, y, {.epochs = 2, .batch_size = 4}, es, extra);
    auto h2 = trainer.fit(x, y, {.epochs = 2, .batch_size = 4}, es, extra);
    CHECK(h1.size() == 2);
    CHECK(h2.size() == 2);
    CHECK(es->best_epoch() == 1);
    CHECK(std::count(rec.events.begin(), rec.events.end(), "tb") == 2);
}

TEST_CASE("Trainer: a model returning only its loss works, and float data trains a float model") {
    Eigen::MatrixXd x, y;
    test_models::make_data(20, x, y);
    test_models::Minimal model;
    traincb::Trainer trainer(model);
    auto h = trainer.fit(x, y, {.epochs = 5, .batch_size = 5});
    CHECK(h.at("loss").back() < h.at("loss").front());

    struct FloatModel {
        float train_batch(const Eigen::MatrixXf& bx, const Eigen::MatrixXf&) { return static_cast<float>(bx.rows()); }
        Eigen::MatrixXf predict(const Eigen::MatrixXf& bx) { return bx.leftCols(1); }
    } fm;
    traincb::Trainer tf(fm);
    const Eigen::MatrixXf xf = x.cast<float>(), yf = y.cast<float>();
    auto hf = tf.fit(xf, yf, traincb::FitOptions<float>{.epochs = 1, .batch_size = 8, .shuffle = false});
    CHECK(hf.at("loss")[0] == Approx((8.0 * 8 + 8.0 * 8 + 4.0 * 4) / 20.0));
}

TEST_CASE("Trainer: row-major and expression inputs train exactly like a column-major matrix") {
    Eigen::MatrixXd x, y;
    test_models::make_data(12, x, y);
    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const RowMajor xr = x;
    Linear a(2, 1), b(2, 1);
    traincb::Trainer(a).fit(x, y, {.epochs = 2, .batch_size = 5, .seed = 1});
    traincb::Trainer(b).fit(xr, y * 1.0, {.epochs = 2, .batch_size = 5, .seed = 1});
    CHECK(a.w == b.w);
}

}  // namespace test_trainer
