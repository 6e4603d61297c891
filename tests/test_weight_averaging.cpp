// Tests for traincb/callbacks/weight_averaging.hpp. The expected averages are computed here, in
// double, from the sequence of weights the model really had after each step, with the definitions
// of torch.optim.swa_utils.AveragedModel (the first averaged step copies the weights; EMA:
// avg = decay * avg + (1 - decay) * w, get_ema_avg_fn; Uniform: the arithmetic mean, computed
// here as a sum divided by the count rather than the callback's running update). The swap rules
// (nothing swapped before the first update: Lightning #21724; no checkpoint of the swapped state:
// nequip #590) and the composition with EarlyStopping follow docs/callbacks.md, "WeightAveraging".
#include "catch.hpp"

#include <Eigen/Core>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/lambda_callback.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/callbacks/weight_averaging.hpp>
#include <traincb/interrupt.hpp>
#include <traincb/io/checkpoint.hpp>
#include <traincb/trainer.hpp>
#include <vector>

#include "checkpoint_test_support.hpp"

namespace test_weight_averaging {

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::AveragingMode;
using traincb::CallbackList;
using traincb::Context;
using traincb::History;
using traincb::Logs;
using traincb::WeightAveraging;
using traincb::WeightAveragingOptions;

namespace {

// Weights of three dtypes (a double matrix, a float vector, an integer counter) and training
// state (a moment, the learning rate, a step count). Each step moves the weights from where they
// are, so training that went on from the averaged weights would give other weights.
struct SeqModel {
    Eigen::MatrixXd w = Eigen::MatrixXd::Constant(2, 3, 0.5);
    Eigen::VectorXf f = Eigen::VectorXf::Constant(4, 1.0f);
    std::int64_t count = 0;  // a buffer counter: a weight, but not a float
    Eigen::VectorXd m = Eigen::VectorXd::Zero(3);
    double lr = 0.1;
    std::int64_t step = 0;
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit_training_state(v, "m", m);
        traincb::visit(v, "f", f);
        traincb::visit_training_state(v, "lr", lr);
        traincb::visit(v, "count", count);
        traincb::visit_training_state(v, "step", step);
    }
    void train_step() {
        ++step;
        const auto k = static_cast<double>(step);
        for (Eigen::Index i = 0; i < w.size(); ++i)
            w.data()[i] = 0.8 * w.data()[i] + std::sin(0.7 * k + static_cast<double>(i));
        for (Eigen::Index i = 0; i < f.size(); ++i)
            f[i] = 0.5f * f[i] + static_cast<float>(std::cos(0.3 * k + static_cast<double>(i)));
        count += 3;
        m.array() += k;
    }
};

// The model's weights after each step, as doubles: w's elements then f's.
using Weights = std::vector<double>;
Weights weights_of(const SeqModel& s) {
    Weights out(s.w.data(), s.w.data() + s.w.size());
    for (Eigen::Index i = 0; i < s.f.size(); ++i) out.push_back(static_cast<double>(s.f[i]));
    return out;
}
// The same from an average's tensors (w is stored row-major, f as F32).
Weights weights_of(const traincb::StateDict& d) {
    const traincb::Tensor* w = d.find("w");
    const traincb::Tensor* f = d.find("f");
    REQUIRE(w != nullptr);
    REQUIRE(f != nullptr);
    Eigen::MatrixXd mw(2, 3);
    io::get_tensor(*w, mw);
    Eigen::VectorXf vf(4);
    io::get_tensor(*f, vf);
    SeqModel tmp;
    tmp.w = mw;
    tmp.f = vf;
    return weights_of(tmp);
}

// The tolerance between the callback's average (double for w, float for f) and the reference
// computed in double: a few ulps of double for w's 6 elements, float rounding for f's 4.
void check_close(const Weights& got, const Weights& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i, got[i], want[i]);
        const double tol = i < 6 ? 1e-13 : 1e-5;
        CHECK(std::abs(got[i] - want[i]) <= tol * (1.0 + std::abs(want[i])));
    }
}

Weights ema_reference(const std::vector<Weights>& seq, double decay) {
    Weights avg = seq.front();
    for (std::size_t k = 1; k < seq.size(); ++k)
        for (std::size_t i = 0; i < avg.size(); ++i) avg[i] = decay * avg[i] + (1.0 - decay) * seq[k][i];
    return avg;
}
Weights mean_reference(const std::vector<Weights>& seq) {
    Weights sum(seq.front().size(), 0.0);
    for (const Weights& w : seq)
        for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += w[i];
    for (double& v : sum) v /= static_cast<double>(seq.size());
    return sum;
}

// A hand-written loop over SeqModel: epochs of `steps` batches, validation at each epoch end.
struct Loop {
    SeqModel& model;
    CallbackList list;
    std::map<std::int64_t, Weights> after_step;  // the raw weights after each global step
    std::int64_t global = 0;
    explicit Loop(SeqModel& m) : model(m) {}
    void begin() {
        list.set_model(model);
        list.on_train_begin();
    }
    void epoch(int e, int steps, bool validate = true) {
        list.on_epoch_begin(e);
        for (int b = 0; b < steps; ++b) {
            list.on_train_batch_begin(b);
            model.train_step();
            after_step[++global] = weights_of(model);
            list.on_train_batch_end(b);
        }
        if (validate) {
            list.on_test_begin();
            Logs val{{"loss", 1.0}};
            list.on_test_end(val);
        }
        Logs logs{{"loss", 1.0}, {"val_loss", 1.0}};
        list.on_epoch_end(e, logs);
    }
};

// Records what the model holds at each validation and epoch hook.
struct Probe final : traincb::Callback {
    SeqModel& model;
    std::vector<Weights> at_test_end, at_epoch_end, at_commit;
    explicit Probe(SeqModel& m) : model(m) {}
    void on_test_end(Context&) override { at_test_end.push_back(weights_of(model)); }
    void on_epoch_end(Context&) override { at_epoch_end.push_back(weights_of(model)); }
    void on_epoch_commit(Context&) override { at_commit.push_back(weights_of(model)); }
};

// A framework-style model whose weights are F16 (rank 4, [1,2,1,2]) and BF16 ([3]) buffers
// visited with the raw overload, plus a step count (training state). Each step sets the weights
// to the float values `next` gives, rounded to the dtypes.
struct HalfModel {
    std::vector<std::uint16_t> h = std::vector<std::uint16_t>(4);
    std::vector<std::uint16_t> b = std::vector<std::uint16_t>(3);
    std::int64_t step = 0;
    void visit_state(traincb::StateVisitor& v) {
        const std::array<std::int64_t, 4> h_shape{1, 2, 1, 2};
        const std::array<std::int64_t, 1> b_shape{3};
        traincb::visit(v, "h", h.data(), traincb::DType::F16, h_shape);
        traincb::visit_training_state(v, "step", step);
        traincb::visit(v, "b", b.data(), traincb::DType::BF16, b_shape);
    }
    // The weights' float values: h's 4 then b's 3.
    [[nodiscard]] std::vector<float> values() const {
        std::vector<float> out;
        for (const std::uint16_t x : h) out.push_back(traincb::half_to_float(x));
        for (const std::uint16_t x : b) out.push_back(traincb::bfloat16_to_float(x));
        return out;
    }
};

// Drives `wa` over `model` for one epoch of `steps.size()` batches, step k setting the weights'
// bits to steps[k] (h's 4 then b's 3), with validation at the end; returns the weights' bits
// validation saw (the average when swapped in) and those after the epoch (the raw ones).
struct HalfRun {
    HalfModel model;
    CallbackList list;
    std::vector<std::uint16_t> at_validation, after_epoch;
    explicit HalfRun(WeightAveraging& wa) : list(wa) {
        list.set_model(model);
        list.on_train_begin();
    }
    static std::vector<std::uint16_t> bits_of(const HalfModel& m) {
        std::vector<std::uint16_t> out(m.h);
        out.insert(out.end(), m.b.begin(), m.b.end());
        return out;
    }
    void epoch(int e, const std::vector<std::array<std::uint16_t, 7>>& steps) {
        list.on_epoch_begin(e);
        for (std::size_t k = 0; k < steps.size(); ++k) {
            list.on_train_batch_begin(static_cast<int>(k));
            std::copy(steps[k].begin(), steps[k].begin() + 4, model.h.begin());
            std::copy(steps[k].begin() + 4, steps[k].end(), model.b.begin());
            ++model.step;
            list.on_train_batch_end(static_cast<int>(k));
        }
        list.on_test_begin();
        at_validation = bits_of(model);
        Logs val{{"loss", 1.0}};
        list.on_test_end(val);
        Logs logs{{"loss", 1.0}, {"val_loss", 1.0}};
        list.on_epoch_end(e, logs);
        after_epoch = bits_of(model);
    }
};

}  // namespace

TEST_CASE("WeightAveraging: options are checked at construction, with the value and a fix") {
    using traincb_test::error_of;
    auto make = [](WeightAveragingOptions o) { return [o] { WeightAveraging wa(o); }; };
    CHECK(error_of(make({.decay = 1.0})) ==
          "traincb: WeightAveraging: decay must be in (0, 1), got 1; pass e.g. 0.999 (the weight of the old average "
          "at each update)");
    CHECK(traincb_test::contains(error_of(make({.decay = 0.0})), "decay must be in (0, 1), got 0;"));
    CHECK(traincb_test::contains(error_of(make({.decay = -0.5})), "decay must be in (0, 1), got -0.5;"));
    CHECK(traincb_test::contains(error_of(make({.decay = std::numeric_limits<double>::quiet_NaN()})),
                                 "decay must be in (0, 1), got nan;"));
    // Checked whatever the mode, so that a typo does not wait for a switch to Ema.
    CHECK(traincb_test::contains(error_of(make({.mode = AveragingMode::Uniform, .decay = 2.0})), "got 2;"));
    CHECK(error_of(make({.update_every = 0})) ==
          "traincb: WeightAveraging: update_every must be >= 1, got 0; pass 1 to average after every step");
    CHECK(traincb_test::contains(error_of(make({.start_step = -1})), "start_step must be >= 0, got -1;"));
    CHECK(traincb_test::contains(error_of(make({.start_epoch = -2})), "start_epoch must be >= 0, got -2;"));
    CHECK_THROWS_AS(WeightAveraging({.update_every = -3}), traincb::InvalidArgument);
    CHECK_NOTHROW(WeightAveraging());
    const WeightAveraging defaults;
    CHECK(defaults.options().mode == AveragingMode::Ema);
    CHECK(defaults.options().decay == 0.999);
    CHECK(defaults.options().swap_for_validation);
    CHECK(defaults.state_key() == "WeightAveraging");
}

TEST_CASE("WeightAveraging: the default averages after every step from the first one") {
    const WeightAveraging wa;
    for (std::int64_t n = 1; n <= 5; ++n) CHECK(wa.averages_step(n, static_cast<int>(n / 3)));
    // start_step 2, start_epoch 1, every 3rd step: n > 2, epoch >= 1, (n - 2) % 3 == 0.
    const WeightAveraging sched({.start_step = 2, .start_epoch = 1, .update_every = 3});
    CHECK_FALSE(sched.averages_step(2, 1));
    CHECK_FALSE(sched.averages_step(5, 0));  // right step, epoch too early
    CHECK(sched.averages_step(5, 1));
    CHECK_FALSE(sched.averages_step(6, 1));
    CHECK(sched.averages_step(8, 2));
}

TEST_CASE("WeightAveraging: EMA copies the weights at the first averaged step, then decay*avg + (1-decay)*w") {
    SeqModel model;
    WeightAveraging wa({.mode = AveragingMode::Ema, .decay = 0.9});
    Loop loop(model);
    loop.list.add(wa);
    loop.begin();
    loop.epoch(0, 1, false);
    REQUIRE(wa.averaged_steps() == 1);
    check_close(weights_of(wa.average()), loop.after_step.at(1));  // a copy
    CHECK(weights_of(wa.average()) == loop.after_step.at(1));      // exactly
    loop.epoch(1, 6, false);
    CHECK(wa.averaged_steps() == 7);
    std::vector<Weights> seq;
    for (const auto& [n, w] : loop.after_step) seq.push_back(w);
    check_close(weights_of(wa.average()), ema_reference(seq, 0.9));
    // Only the weights are averaged: the average holds no training state, and the integer
    // counter holds its latest value.
    const traincb::StateDict avg = wa.average();
    CHECK(avg.size() == 3);
    CHECK(avg.find("m") == nullptr);
    CHECK(avg.find("lr") == nullptr);
    CHECK(avg.find("step") == nullptr);
    CHECK(io::get_scalar<std::int64_t>(*avg.find("count")) == 21);
    // Nothing validated, so the model still holds the raw weights and its own training state.
    CHECK(weights_of(model) == loop.after_step.at(7));
    CHECK(model.step == 7);
    CHECK(model.lr == 0.1);
}

TEST_CASE("WeightAveraging: Uniform is the arithmetic mean of the averaged steps' weights") {
    SeqModel model;
    WeightAveraging wa({.mode = AveragingMode::Uniform});
    Loop loop(model);
    loop.list.add(wa);
    loop.begin();
    loop.epoch(0, 5, false);
    loop.epoch(1, 4, false);
    CHECK(wa.averaged_steps() == 9);
    std::vector<Weights> seq;
    for (const auto& [n, w] : loop.after_step) seq.push_back(w);
    check_close(weights_of(wa.average()), mean_reference(seq));
}

TEST_CASE("WeightAveraging: start_step, start_epoch and update_every choose the averaged steps") {
    SeqModel model;
    // Epochs of 4 steps: global steps 1-4 in epoch 0, 5-8 in epoch 1, 9-12 in epoch 2. Averaged:
    // n > 2, epoch >= 1, (n - 2) % 3 == 0, so steps 5, 8 and 11.
    WeightAveraging wa({.mode = AveragingMode::Uniform, .start_step = 2, .start_epoch = 1, .update_every = 3});
    Loop loop(model);
    loop.list.add(wa);
    loop.begin();
    loop.epoch(0, 4, false);
    CHECK(wa.averaged_steps() == 0);
    CHECK(wa.average().empty());
    loop.epoch(1, 4, false);
    CHECK(wa.averaged_steps() == 2);
    loop.epoch(2, 4, false);
    CHECK(wa.averaged_steps() == 3);
    check_close(weights_of(wa.average()),
                mean_reference({loop.after_step.at(5), loop.after_step.at(8), loop.after_step.at(11)}));

    // EMA over the same steps.
    SeqModel model2;
    WeightAveraging ema({.decay = 0.5, .start_step = 2, .start_epoch = 1, .update_every = 3});
    Loop loop2(model2);
    loop2.list.add(ema);
    loop2.begin();
    for (int e = 0; e < 3; ++e) loop2.epoch(e, 4, false);
    check_close(weights_of(ema.average()),
                ema_reference({loop2.after_step.at(5), loop2.after_step.at(8), loop2.after_step.at(11)}, 0.5));
}

TEST_CASE("WeightAveraging: nothing is swapped in for validation before the first averaged step") {
    // Lightning #21724: its WeightAveraging swapped an uninitialised average in for validation.
    SeqModel model;
    WeightAveraging wa({.decay = 0.9, .start_step = 4});
    Probe probe(model);
    Loop loop(model);
    loop.list.add(probe);
    loop.list.add(wa);
    loop.begin();
    loop.epoch(0, 3);  // steps 1-3: nothing averaged yet
    CHECK(wa.averaged_steps() == 0);
    CHECK_FALSE(wa.swapped());
    REQUIRE(probe.at_test_end.size() == 1);
    CHECK(probe.at_test_end[0] == loop.after_step.at(3));  // validation saw the raw weights
    CHECK(probe.at_epoch_end[0] == loop.after_step.at(3));
    loop.epoch(1, 3);  // steps 4-6: 5 and 6 averaged
    CHECK(wa.averaged_steps() == 2);
    CHECK(probe.at_test_end[1] == weights_of(wa.average()));
    CHECK(probe.at_test_end[1] != loop.after_step.at(6));
}

TEST_CASE("WeightAveraging: validation and on_epoch_end see the average, commits and training the raw weights") {
    // The same loop without the callback gives the raw weights training must follow.
    SeqModel reference;
    Loop plain(reference);
    plain.begin();
    for (int e = 0; e < 3; ++e) plain.epoch(e, 3);

    SeqModel model;
    WeightAveraging wa({.decay = 0.8});
    Probe before(model), after(model);  // on both sides of the callback in the list
    Loop loop(model);
    loop.list.add(before);
    loop.list.add(wa);
    loop.list.add(after);
    loop.begin();
    std::vector<Weights> averages;
    for (int e = 0; e < 3; ++e) {
        loop.epoch(e, 3);
        averages.push_back(weights_of(wa.average()));
        CHECK_FALSE(wa.swapped());
    }
    CHECK(loop.after_step == plain.after_step);  // training went on from the raw weights, bit for bit
    for (const Probe* p : {&before, &after}) {
        REQUIRE(p->at_test_end.size() == 3);
        for (std::size_t e = 0; e < 3; ++e) {
            CAPTURE(e);
            const Weights& raw = loop.after_step.at(3 * static_cast<std::int64_t>(e) + 3);
            REQUIRE(averages[e] != raw);
            CHECK(p->at_test_end[e] == averages[e]);
            CHECK(p->at_epoch_end[e] == averages[e]);
            CHECK(p->at_commit[e] == raw);
        }
    }
    CHECK(weights_of(model) == loop.after_step.at(9));

    // Without swap_for_validation, validation sees the raw weights.
    SeqModel model2;
    WeightAveraging no_swap({.decay = 0.8, .swap_for_validation = false});
    Probe probe2(model2);
    Loop loop2(model2);
    loop2.list.add(no_swap);
    loop2.list.add(probe2);
    loop2.begin();
    loop2.epoch(0, 3);
    CHECK(probe2.at_test_end[0] == loop2.after_step.at(3));
    CHECK(probe2.at_epoch_end[0] == loop2.after_step.at(3));
}

TEST_CASE("WeightAveraging: at train end the model holds the average, on every kind of end") {
    for (const bool exception : {false, true}) {
        CAPTURE(exception);
        SeqModel model;
        WeightAveraging wa({.decay = 0.7});
        Loop loop(model);
        loop.list.add(wa);
        loop.begin();
        loop.epoch(0, 4);
        loop.epoch(1, 2, false);
        const Weights avg = weights_of(wa.average());
        REQUIRE(avg != weights_of(model));
        const std::int64_t step = model.step;
        if (exception)
            loop.list.on_train_end(std::make_exception_ptr(std::runtime_error("boom")));
        else
            loop.list.on_train_end();
        CHECK(weights_of(model) == avg);
        CHECK(model.step == step);  // training state untouched
        CHECK(io::get_scalar<std::int64_t>(*wa.average().find("count")) == model.count);
    }
}

TEST_CASE("WeightAveraging: training that ends during validation leaves the average in the model") {
    SeqModel model;
    WeightAveraging wa({.decay = 0.7});
    Loop loop(model);
    loop.list.add(wa);
    loop.begin();
    loop.epoch(0, 3, false);
    loop.list.on_test_begin();
    REQUIRE(wa.swapped());
    loop.list.on_train_end(std::make_exception_ptr(std::runtime_error("validation failed")));
    CHECK_FALSE(wa.swapped());
    CHECK(weights_of(model) == weights_of(wa.average()));
}

TEST_CASE("WeightAveraging: a loop validating mid-epoch gets the raw weights back before the next batch") {
    SeqModel model;
    WeightAveraging wa({.decay = 0.7});
    Loop loop(model);
    loop.list.add(wa);
    loop.begin();
    loop.list.on_epoch_begin(0);
    for (int b = 0; b < 2; ++b) {
        loop.list.on_train_batch_begin(b);
        model.train_step();
        loop.list.on_train_batch_end(b);
    }
    const Weights raw = weights_of(model);
    loop.list.on_test_begin();
    Logs val{{"loss", 1.0}};
    loop.list.on_test_end(val);
    REQUIRE(weights_of(model) == weights_of(wa.average()));
    loop.list.on_train_batch_begin(2);
    CHECK(weights_of(model) == raw);
    CHECK_FALSE(wa.swapped());
    // Training a batch on the swapped weights (no on_train_batch_begin) is a loud error.
    loop.list.on_test_begin();
    model.train_step();
    CHECK_THROWS_WITH(loop.list.on_train_batch_end(2), Catch::Contains("a batch was trained while the averaged"));
}

TEST_CASE("WeightAveraging: a weight changed while the average is in the model is reported") {
    // A learning rate visited as a weight (not marked as training state) that a callback lowers
    // in on_epoch_end would silently come back when the raw weights are put back.
    SeqModel model;
    WeightAveraging wa({.decay = 0.7});
    traincb::LambdaCallback lower({.on_epoch_end = [&model](Context&) { model.w(0, 0) *= 0.5; }});
    Loop loop(model);
    loop.list.add(wa);
    loop.list.add(lower);
    loop.begin();
    traincb_test::WarningCapture w;
    loop.epoch(0, 2);
    CHECK(w.any_contains(
        "traincb: WeightAveraging: the weight 'w' changed while the averaged weights were in the model"));
    CHECK(w.any_contains("traincb::visit_training_state"));
    CHECK(weights_of(model) == loop.after_step.at(2));  // the raw weights came back
}

TEST_CASE("WeightAveraging: a model without state, without weights, or a second instance is an error at train begin") {
    struct Stateless {};
    Stateless stateless;
    WeightAveraging wa;
    CallbackList a(wa);
    a.set_model(stateless);
    CHECK_THROWS_WITH(a.on_train_begin(), Catch::Contains("WeightAveraging: needs the model's state") &&
                                              Catch::Contains("visit_state(traincb::StateVisitor&)"));

    struct OnlyTraining {
        double lr = 0.1;
        void visit_state(traincb::StateVisitor& v) { traincb::visit_training_state(v, "lr", lr); }
    } only_training;
    CallbackList b(wa);
    b.set_model(only_training);
    CHECK_THROWS_WITH(b.on_train_begin(), Catch::Contains("the model visits no weight"));

    SeqModel model;
    WeightAveraging ema, uniform({.mode = AveragingMode::Uniform, .id = "swa"});
    CallbackList c(ema, uniform);
    c.set_model(model);
    CHECK_THROWS_WITH(c.on_train_begin(), Catch::Contains("two WeightAveraging callbacks"));
}

TEST_CASE("WeightAveraging: state round-trips through save_state/load_state; bad states are FormatErrors") {
    SeqModel model;
    WeightAveraging a({.decay = 0.9});
    Loop loop(model);
    loop.list.add(a);
    loop.begin();
    loop.epoch(0, 5);
    traincb::CallbackState st;
    a.save_state(st);
    CHECK(st.version == 1);
    CHECK(st.json.at("averaged_steps") == 5);
    CHECK(st.tensors == a.average());

    SeqModel other;
    WeightAveraging b({.decay = 0.9});
    CallbackList lb(b);
    lb.set_model(other);
    lb.on_train_begin();
    b.load_state(st, lb.context());
    CHECK(b.averaged_steps() == 5);
    CHECK(b.average() == a.average());

    auto load_fails = [&](traincb::CallbackState bad, const char* what) {
        CAPTURE(what);
        WeightAveraging c;
        CallbackList lc(c);
        lc.set_model(other);
        lc.on_train_begin();
        CHECK_THROWS_AS(c.load_state(bad, lc.context()), traincb::FormatError);
        CHECK(c.averaged_steps() == 0);
    };
    traincb::CallbackState v2 = st;
    v2.version = 2;
    load_fails(v2, "version");
    traincb::CallbackState neg = st;
    neg.json["averaged_steps"] = -1;
    load_fails(neg, "negative count");
    traincb::CallbackState text = st;
    text.json["averaged_steps"] = "5";
    load_fails(text, "count as text");
    traincb::CallbackState missing = st;
    missing.tensors.tensors().erase(missing.tensors.tensors().begin());
    load_fails(missing, "a missing tensor");

    traincb_test::WarningCapture w;
    WeightAveraging changed({.decay = 0.5});
    CallbackList lc(changed);
    lc.set_model(other);
    lc.on_train_begin();
    changed.load_state(st, lc.context());
    CHECK(w.any_contains("traincb: WeightAveraging: options changed since the checkpoint"));
}

TEST_CASE("WeightAveraging: from a hand-written loop with set_model, as docs/callbacks.md shows") {
    // Ordinary least squares by gradient descent, validated every epoch; EMA weights for
    // validation, and EarlyStopping on the validation loss they give.
    struct Linear {
        Eigen::VectorXd w = Eigen::VectorXd::Zero(2);
        void visit_state(traincb::StateVisitor& v) { traincb::visit(v, "w", w); }
    } model;
    Eigen::MatrixXd x(8, 2);
    Eigen::VectorXd y(8);
    for (int i = 0; i < 8; ++i) {
        x(i, 0) = 1.0;
        x(i, 1) = 0.25 * i;
        y(i) = 2.0 - 0.5 * x(i, 1) + 0.1 * std::sin(3.0 * i);
    }
    WeightAveraging ema({.decay = 0.9});
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
    std::vector<Eigen::VectorXd> validated;
    CallbackList callbacks(ema, es);
    callbacks.set_model(model);
    callbacks.on_train_begin();
    std::vector<double> val_losses;
    for (int epoch = 0; epoch < 30 && !callbacks.stop_requested(); ++epoch) {
        callbacks.on_epoch_begin(epoch);
        for (int b = 0; b < 4; ++b) {
            callbacks.on_train_batch_begin(b);
            const auto rows = x.middleRows(2 * b, 2);
            model.w -= 0.2 * rows.transpose() * (rows * model.w - y.segment(2 * b, 2));
            callbacks.on_train_batch_end(b);
        }
        callbacks.on_test_begin();
        validated.push_back(model.w);  // what validation scores
        const double val_loss = (x * model.w - y).squaredNorm() / 8.0;
        Logs val{{"loss", val_loss}};
        callbacks.on_test_end(val);
        val_losses.push_back(val_loss);
        Logs logs{{"val_loss", val_loss}};
        callbacks.on_epoch_end(epoch, logs);
    }
    callbacks.on_train_end();
    REQUIRE(ema.averaged_steps() == 4 * static_cast<std::int64_t>(validated.size()));
    REQUIRE(es.best_epoch().has_value());
    // The validated weights were the averages (not the raw ones), and EarlyStopping restored the
    // best of them.
    CHECK(model.w == validated[static_cast<std::size_t>(*es.best_epoch())]);
    CHECK((x * model.w - y).squaredNorm() / 8.0 == *es.best());
}

namespace {

// Trainer runs over ckpt_test::Net with the resume data.
traincb::FitOptions<double> fit_options(int epochs, fs::path resume = {}, fs::path interrupt = {}) {
    return {.epochs = epochs,
            .batch_size = 8,
            .seed = 11,
            .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
            .resume_from = std::move(resume),
            .interrupt_checkpoint = std::move(interrupt)};
}

// Net's weights (w1, w2, b) as tensors, and its whole state.
traincb::StateDict weights_of(Net& n) {
    traincb::StateDict d;
    traincb::StateCollector c(d, "", traincb::StateFilter::Weights);
    n.visit_state(c);
    return d;
}

// Net's weights and the average after each global step, as the callback leaves them.
struct StepRecorder final : traincb::Callback {
    Net& net;
    const WeightAveraging& wa;
    std::map<std::int64_t, traincb::StateDict> raw, avg;
    std::vector<traincb::StateDict> at_epoch_end;
    StepRecorder(Net& n, const WeightAveraging& w) : net(n), wa(w) {}
    void on_train_batch_end(Context& c) override {
        raw[c.global_step()] = weights_of(net);
        avg[c.global_step()] = wa.average();
    }
    void on_epoch_end(Context&) override { at_epoch_end.push_back(weights_of(net)); }
};

// Asks for an interruption at the end of epoch `at` (while the average is in the model).
struct InterruptAt final : traincb::Callback {
    int at = -1;
    void on_epoch_end(Context& c) override {
        if (c.epoch() == at) traincb::request_interrupt();
    }
};

// The model tensors of the checkpoint file `p` that are weights, and the average it holds.
struct Saved {
    std::int64_t step;
    traincb::StateDict raw, avg;
};
Saved saved(const fs::path& p) {
    const io::Checkpoint c = io::load_checkpoint(p);
    Saved s{c.position.global_step, {}, {}};
    for (const char* n : {"w1", "w2", "b"}) s.raw.put(*c.model.find(n));
    const auto it = c.callbacks.find("WeightAveraging");
    REQUIRE(it != c.callbacks.end());
    s.avg = it->second.tensors;
    return s;
}

}  // namespace

TEST_CASE("WeightAveraging: checkpoints hold the raw weights and the average, never the swapped state") {
    // nequip #590: a checkpoint taken while the average was swapped in saved it as the weights.
    // Every ModelCheckpoint comes BEFORE WeightAveraging in the list (the order that would expose
    // it), saving at epoch ends (best and last), every 3 steps, and at an interruption requested
    // while the average is in the model.
    TempDir tmp("wa_ckpt");
    Net net(4, 6, 1);
    WeightAveraging wa({.decay = 0.9});
    traincb::ModelCheckpoint best(
        {.filepath = tmp / "best.safetensors", .monitor = "val_loss", .save_best_only = true, .save_last = true});
    traincb::ModelCheckpoint steps({.filepath = tmp / "steps/s{epoch}-{batch}.safetensors", .save_freq = 3});
    InterruptAt interrupt;
    interrupt.at = 3;
    StepRecorder rec(net, wa);
    traincb::Trainer trainer(net);
    const History h = trainer.fit(resume_data().x, resume_data().y, fit_options(8, {}, tmp / "interrupted.safetensors"),
                                  best, steps, interrupt, wa, rec);
    REQUIRE(h.end.kind == traincb::EndKind::Interrupted);
    REQUIRE(h.size() == 4);
    std::vector<fs::path> files{tmp / "best.safetensors", tmp / "last.safetensors", tmp / "interrupted.safetensors"};
    for (const auto& name : names_in(tmp / "steps")) files.push_back(tmp / "steps" / name);
    REQUIRE(files.size() >= 3 + 10);  // 32 steps: a batch save every 3
    for (const fs::path& p : files) {
        CAPTURE(p.filename().string());
        const Saved s = saved(p);
        REQUIRE(rec.raw.contains(s.step));
        REQUIRE(!(rec.raw.at(s.step) == rec.avg.at(s.step)));  // the test can tell them apart
        CHECK(same_state(s.raw, rec.raw.at(s.step)));
        CHECK(same_state(s.avg, rec.avg.at(s.step)));
    }
    // The swap did happen: on_epoch_end saw the average.
    CHECK(same_state(rec.at_epoch_end.back(), rec.avg.at(32)));
    // After fit the model holds the average; the raw weights are in last.safetensors.
    CHECK(same_state(weights_of(net), wa.average()));
    CHECK(same_state(saved(tmp / "last.safetensors").raw, rec.raw.at(32)));
    // A checkpoint's average goes into a model as docs/callbacks.md shows.
    const io::Checkpoint last = io::load_checkpoint(tmp / "last.safetensors");
    Net fresh(4, 6, 1);
    traincb::StateLoader loader(last.callbacks.at("WeightAveraging").tensors, "", traincb::StateFilter::Weights);
    fresh.visit_state(loader);
    CHECK(same_state(weights_of(fresh), rec.avg.at(32)));
}

TEST_CASE("WeightAveraging with restore_best_weights: the model ends with the averaged weights validation scored") {
    for (const bool es_first : {true, false}) {
        for (const bool swap : {true, false}) {
            CAPTURE(es_first, swap);
            Net net(4, 6, 1);
            WeightAveraging wa({.decay = 0.95, .swap_for_validation = swap});
            traincb::EarlyStopping es({.monitor = "val_loss", .patience = 2, .restore_best_weights = true});
            StepRecorder rec(net, wa);
            traincb::Trainer trainer(net);
            // A learning rate high enough that the validation loss turns up, so that EarlyStopping
            // stops after a best epoch that is not the last.
            net.lr = 0.4;
            const History h = es_first ? trainer.fit(resume_data().x, resume_data().y, fit_options(40), es, wa, rec)
                                       : trainer.fit(resume_data().x, resume_data().y, fit_options(40), wa, es, rec);
            REQUIRE(es.stopped_epoch().has_value());
            REQUIRE(es.best_epoch().has_value());
            const auto best = static_cast<std::size_t>(*es.best_epoch());
            REQUIRE(best + 1 < h.size());
            CHECK(es.restored_from_epoch() == es.best_epoch());
            // The model holds the weights on_epoch_end saw at the best epoch: the average with
            // swap_for_validation, the raw weights without.
            CHECK(same_state(weights_of(net), rec.at_epoch_end[best]));
            const std::int64_t best_step = 8 * static_cast<std::int64_t>(best + 1);
            CHECK(same_state(weights_of(net), swap ? rec.avg.at(best_step) : rec.raw.at(best_step)));
            CHECK_FALSE(same_state(weights_of(net), wa.average()));
            // Those weights give exactly the val_loss that made the epoch the best.
            const Eigen::MatrixXd p = net.predict(resume_data().xv);
            CHECK(net.loss(resume_data().yv, p) == h.at("val_loss")[best]);
        }
    }
}

namespace {

// One process's worth of training for the resume tests: fresh objects writing into `dir`.
struct Rig {
    fs::path dir;
    Net net{4, 6, 1};
    Crash crash;
    WeightAveraging wa{{.decay = 0.9, .start_step = 5}};
    traincb::EarlyStopping es{{.monitor = "val_loss", .patience = 4, .restore_best_weights = true}};
    traincb::ReduceLROnPlateau rlr{{.monitor = "val_loss", .factor = 0.5, .patience = 1, .min_delta = 0.0}};
    traincb::ModelCheckpoint mc;
    explicit Rig(fs::path d, bool mid_epoch)
        : dir(std::move(d)),
          mc(mid_epoch
                 ? traincb::ModelCheckpointOptions{.filepath = dir / "ckpt/b{epoch}-{batch}.safetensors",
                                                   .save_freq = 3}
                 : traincb::ModelCheckpointOptions{.filepath = dir / "ckpt/model.safetensors", .save_last = true}) {}
    History fit(int epochs, fs::path resume = {}) {
        traincb::Trainer trainer(net);
        return trainer.fit(resume_data().x, resume_data().y, fit_options(epochs, std::move(resume)), crash, mc, es, wa,
                           rlr);
    }
    [[nodiscard]] traincb::CallbackState state(const traincb::Callback& cb) const {
        traincb::CallbackState s;
        cb.save_state(s);
        return s;
    }
};

void require_same_run(Rig& straight, const History& hs, Rig& resumed, const History& hr) {
    CHECK(same_state(state_of(resumed.net), state_of(straight.net)));  // weights and training state
    CHECK(same_history(hr, hs));
    const traincb::CallbackState a = resumed.state(resumed.wa), b = straight.state(straight.wa);
    CHECK(a.json == b.json);
    CHECK(same_state(a.tensors, b.tensors));  // the average, bit for bit
    REQUIRE(!a.tensors.empty());
    const traincb::CallbackState ea = resumed.state(resumed.es), eb = straight.state(straight.es);
    CHECK(ea.json == eb.json);
    CHECK(same_state(ea.tensors, eb.tensors));
    CHECK(resumed.state(resumed.rlr).json == straight.state(straight.rlr).json);
}

}  // namespace

TEST_CASE("WeightAveraging: a run crashed and resumed ends bit-identical to an uninterrupted one, average included") {
    for (const bool mid_epoch : {false, true}) {
        CAPTURE(mid_epoch);
        TempDir tmp("wa_resume");
        Rig straight(tmp / "a", mid_epoch);
        const History hs = straight.fit(12);
        REQUIRE(hs.size() >= 6);
        REQUIRE(straight.wa.averaged_steps() > 0);
        {
            Rig crashing(tmp / "b", mid_epoch);
            if (mid_epoch)
                crashing.crash.at_step = 29;  // the newest checkpoint: global step 27, in epoch 3
            else
                crashing.crash.at = 4;  // epoch 4 never ends: the newest checkpoint is from epoch 3
            CHECK_THROWS(crashing.fit(12));
        }
        Rig resumed(tmp / "b", mid_epoch);
        const History hr = resumed.fit(12, tmp / "b/ckpt");
        require_same_run(straight, hs, resumed, hr);
    }
}

TEST_CASE("WeightAveraging: F16 and BF16 weights are averaged in float and written back rounded to nearest even") {
    // Two steps with EMA decay 0.5: the average is the mean of the two steps' weights, exact in
    // float, and each falls where rounding shows (IEEE 754 binary16 / bfloat16 patterns):
    //   h0: 1.0 (3C00) and 1 + 2^-10 (3C01): mean 1 + 2^-11, a tie -> the even 3C00 (down)
    //   h1: 1 + 2^-10 (3C01) and 1 + 2^-9 (3C02): a tie -> the even 3C02 (up; truncation gives 3C01)
    //   h2: -2.0 (C000) and -(2 + 3 * 2^-9) (C003): mean -(2 + 1.5 * 2^-9), a tie -> C002
    //   h3: 0 (0000) and 2^-23 (0002, a subnormal): mean 2^-24 -> 0001, exact
    //   b0: 1.0 (3F80) and 1 + 2^-7 (3F81): a tie -> 3F80 (down)
    //   b1: 3F81 and 3F82: a tie -> 3F82 (up)
    //   b2: 3.0 (4040) and 5.0 (40A0): mean 4.0 -> 4080, exact
    const std::vector<std::array<std::uint16_t, 7>> steps{
        {0x3C00, 0x3C01, 0xC000, 0x0000, 0x3F80, 0x3F81, 0x4040},
        {0x3C01, 0x3C02, 0xC003, 0x0002, 0x3F81, 0x3F82, 0x40A0},
    };
    const std::vector<std::uint16_t> expected{0x3C00, 0x3C02, 0xC002, 0x0001, 0x3F80, 0x3F82, 0x4080};
    WeightAveraging wa({.mode = AveragingMode::Ema, .decay = 0.5});
    HalfRun run(wa);
    run.epoch(0, steps);
    REQUIRE(wa.averaged_steps() == 2);
    CHECK(run.at_validation == expected);  // validation saw the rounded average
    const std::vector<std::uint16_t> raw(steps[1].begin(), steps[1].end());
    CHECK(run.after_epoch == raw);  // and training goes on from the raw weights
    CHECK(run.model.step == 2);     // training state is not averaged

    // average(): the model's dtypes and shapes, rounded as the model receives it.
    const traincb::StateDict avg = wa.average();
    REQUIRE(avg.size() == 2);
    const traincb::Tensor& h = *avg.find("h");
    CHECK(h.dtype == traincb::DType::F16);
    CHECK(h.shape == std::vector<std::int64_t>{1, 2, 1, 2});
    std::vector<std::uint16_t> h_bits(4);
    std::memcpy(h_bits.data(), h.data.data(), 8);
    CHECK(h_bits == std::vector<std::uint16_t>(expected.begin(), expected.begin() + 4));
    CHECK(avg.find("b")->dtype == traincb::DType::BF16);

    // The checkpointed state keeps the float accumulator (F32, same shape): the exact means.
    traincb::CallbackState st;
    wa.save_state(st);
    const traincb::Tensor& acc = *st.tensors.find("h");
    CHECK(acc.dtype == traincb::DType::F32);
    CHECK(acc.shape == std::vector<std::int64_t>{1, 2, 1, 2});
    std::vector<float> acc_values(4);
    std::memcpy(acc_values.data(), acc.data.data(), 16);
    CHECK(acc_values == std::vector<float>{1.0f + std::ldexp(1.0f, -11), 1.0f + 1.5f * std::ldexp(1.0f, -10),
                                           -(2.0f + 1.5f * std::ldexp(1.0f, -9)), std::ldexp(1.0f, -24)});
    CHECK(st.tensors.find("b")->dtype == traincb::DType::F32);

    // It round-trips: a callback loaded from it holds the same average and state.
    WeightAveraging back({.mode = AveragingMode::Ema, .decay = 0.5});
    HalfRun other(back);
    back.load_state(st, other.list.context());
    CHECK(back.averaged_steps() == 2);
    CHECK(back.average() == avg);
    traincb::CallbackState again;
    back.save_state(again);
    CHECK(again.tensors == st.tensors);
    // An F16 average (not the F32 accumulator) does not fit: a FormatError naming the state.
    traincb::CallbackState wrong = st;
    wrong.tensors.put(*avg.find("h"));
    WeightAveraging refuses({.mode = AveragingMode::Ema, .decay = 0.5});
    HalfRun third(refuses);
    CHECK_THROWS_AS(refuses.load_state(wrong, third.list.context()), traincb::FormatError);
}

TEST_CASE("WeightAveraging: the Uniform average of F16 and BF16 weights is the float mean, rounded") {
    // Five steps of weights from sin/cos, rounded to the dtypes; the reference mean is computed
    // here in double from the weights' float values, then rounded to the dtype.
    std::vector<std::array<std::uint16_t, 7>> steps;
    std::vector<std::vector<double>> values;
    for (int k = 0; k < 5; ++k) {
        std::array<std::uint16_t, 7> s{};
        std::vector<double> v;
        for (int i = 0; i < 7; ++i) {
            const float x = static_cast<float>(3.0 * std::sin(0.9 * k + 1.3 * i) + 0.01 * k);
            s[static_cast<std::size_t>(i)] = i < 4 ? traincb::float_to_half(x) : traincb::float_to_bfloat16(x);
            v.push_back(i < 4 ? traincb::half_to_float(s[static_cast<std::size_t>(i)])
                              : traincb::bfloat16_to_float(s[static_cast<std::size_t>(i)]));
        }
        steps.push_back(s);
        values.push_back(v);
    }
    WeightAveraging wa({.mode = AveragingMode::Uniform});
    HalfRun run(wa);
    run.epoch(0, steps);
    REQUIRE(wa.averaged_steps() == 5);
    for (std::size_t i = 0; i < 7; ++i) {
        double mean = 0;
        for (const auto& v : values) mean += v[i];
        mean /= 5.0;
        const float m = static_cast<float>(mean);
        const std::uint16_t want = i < 4 ? traincb::float_to_half(m) : traincb::float_to_bfloat16(m);
        CAPTURE(i, mean);
        CHECK(run.at_validation[i] == want);
    }
    // At the end of training the model holds the rounded average.
    run.list.on_train_end();
    CHECK(HalfRun::bits_of(run.model) == run.at_validation);
}

}  // namespace test_weight_averaging
