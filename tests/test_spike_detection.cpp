// Tests for callbacks/spike_detection.hpp and the Trainer support it needs (FitOptions::skip_batches,
// Context::request_snapshot / request_rollback, RunEvent reports): option checks; the window's
// median and MAD against a sort-based computation and the spike rule at its exact bound; NaN and
// infinity; the warm-up; Stop and Raise from a hand-written loop; a remote spike (a fake
// Communicator); a rolled-back spike ending bit-identical to a run told to skip the batch from the
// start; max_rollbacks; no false positive on a noisy healthy loss; events to sinks and warnings;
// skipped batches (hooks, global step, running means, data order) and their survival of a
// checkpoint; resume in the middle of a run with rollbacks, bit-identical.
#include "catch.hpp"

#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/spike_detection.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/sinks/memory.hpp>
#include <traincb/trainer.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace test_spike_detection {

using traincb::SpikeAction;
using traincb::SpikeDetection;
using traincb_test::contains;
using traincb_test::error_of;
using traincb_test::TempDir;
using traincb_test::WarningCapture;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The median by sorting (the mean of the two middle values for an even count): independent of
// the callback's selection-based computation.
double sorted_median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
double sorted_mad(const std::vector<double>& v) {
    const double m = sorted_median(v);
    std::vector<double> d;
    for (double x : v) d.push_back(std::fabs(x - m));
    return sorted_median(d);
}

// Drives a CallbackList by hand: one epoch, a batch per loss, the loss in the batch logs.
struct HandLoop {
    traincb::CallbackList list;
    traincb::Logs logs;
    int batch = 0;
    template <class... Cbs>
    explicit HandLoop(Cbs&... cbs) {
        (list.add(cbs), ...);
        traincb::TrainParams p;
        p.epochs = 1;
        p.steps_per_epoch = 1000;
        list.set_params(p);
    }
    void begin() {
        list.on_train_begin();
        list.on_epoch_begin(0);
    }
    void feed(double loss) {
        list.on_train_batch_begin(batch);
        logs.set("loss", loss);
        list.on_train_batch_end(batch, logs);
        ++batch;
    }
    traincb::Context& ctx() { return list.context(); }
};

// Any-rank verdicts: true when this rank's is, or at the `at`-th call (0-based), as if another
// rank had seen a spike there.
struct RemoteSpike final : traincb::Communicator {
    int calls = 0;
    int at = -1;
    bool any(bool local) override { return (calls++ == at) || local; }
};

// y = x w + b, mean squared error, SGD with momentum (the momentum buffers are optimizer state),
// a learning rate and a step counter: everything a rollback must restore. A row whose features
// are huge (the "poisoned" row) blows the loss and the gradient up.
struct SpikyNet {
    Eigen::MatrixXd w = Eigen::MatrixXd::Constant(2, 1, 0.1), b = Eigen::MatrixXd::Zero(1, 1);
    Eigen::MatrixXd vw = Eigen::MatrixXd::Zero(2, 1), vb = Eigen::MatrixXd::Zero(1, 1);
    Eigen::MatrixXd out, g, gw;
    double lr = 0.05;
    std::int64_t steps = 0;

    traincb::BatchResult<const Eigen::MatrixXd&> train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
        out.resize(x.rows(), 1);
        out.noalias() = x * w;
        out.array() += b(0, 0);
        const double loss = (out - y).squaredNorm() / static_cast<double>(out.size());
        g.resize(out.rows(), 1);
        g = (out - y) * (2.0 / static_cast<double>(out.size()));
        gw.resize(2, 1);
        gw.noalias() = x.transpose() * g;
        vw = 0.9 * vw + gw;
        vb(0, 0) = 0.9 * vb(0, 0) + g.sum();
        w -= lr * vw;
        b -= lr * vb;
        ++steps;
        return {loss, out};
    }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const {
        Eigen::MatrixXd p = x * w;
        p.array() += b(0, 0);
        return p;
    }
    double loss(const Eigen::MatrixXd& t, const Eigen::MatrixXd& p) const {
        return (p - t).squaredNorm() / static_cast<double>(p.size());
    }
    double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit(v, "b", b);
        traincb::visit_training_state(v, "momentum.w", vw);
        traincb::visit_training_state(v, "momentum.b", vb);
        traincb::visit_training_state(v, "steps", steps);
    }
};

// A portable normal deviate (SplitMix64 and Box-Muller), so the noisy curves are the same with
// every standard library.
struct Normal {
    traincb::detail::SplitMix64 rng;
    double uniform() { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1p-53; }
    double operator()() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

// Its loss is a noisy decreasing curve, (0.2 + 2 exp(-t/500)) * exp(0.1 z), z standard normal
// (log-normal noise: skewed upwards, as batch losses are), optionally times `bump` for the batch
// whose first x is `bump_row`.
struct NoisyCurve {
    std::int64_t t = 0;
    std::int64_t rng = 12345;  // the noise generator's state (SplitMix64's word, as a state tensor)
    double w = 0;              // a weight, so that the state is not trivial
    double bump_row = -1;
    double bump = 1;
    double train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd&) {
        const double base = 0.2 + 2.0 * std::exp(-static_cast<double>(t) / 500.0);
        Normal z{{static_cast<std::uint64_t>(rng)}};
        double loss = base * std::exp(0.1 * z());
        rng = static_cast<std::int64_t>(z.rng.state);
        if (x(0, 0) == bump_row) loss *= bump;
        ++t;
        w += 0.001 * loss;
        return loss;
    }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const { return Eigen::MatrixXd::Zero(x.rows(), 1); }
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "t", t);
        traincb::visit(v, "rng", rng);
        traincb::visit(v, "w", w);
    }
};

// 400 rows of y = x [1, -2]^T + 0.5 + noise, and a row index whose features are set to 1000.
struct SpikyData {
    Eigen::MatrixXd x, y, xv, yv;
    Eigen::Index poisoned = 0;
};
const SpikyData& spiky_data() {
    static const SpikyData d = [] {
        SpikyData s;
        s.x.resize(400, 2);
        s.y.resize(400, 1);
        Normal z{{7}};
        for (Eigen::Index i = 0; i < 400; ++i) {
            const double t = static_cast<double>(i);
            s.x(i, 0) = std::sin(0.37 * t);
            s.x(i, 1) = std::cos(0.11 * t + 1.0);
            s.y(i, 0) = s.x(i, 0) - 2.0 * s.x(i, 1) + 0.5 + 0.1 * z();
        }
        s.xv = s.x.topRows(40);
        s.yv = s.y.topRows(40);
        // The row drawn at batch 30 of epoch 0 (seed 3, batches of 8): past the warm-up.
        std::vector<Eigen::Index> idx(400);
        traincb::detail::epoch_permutation(idx, 3, 0);
        s.poisoned = idx[30 * 8 + 2];
        s.x.row(s.poisoned).setConstant(1000.0);
        return s;
    }();
    return d;
}

// The batch (within the epoch) that holds `row` in epoch `epoch` (seed 3, batches of 8).
std::int64_t batch_of(Eigen::Index row, int epoch) {
    std::vector<Eigen::Index> idx(400);
    traincb::detail::epoch_permutation(idx, 3, epoch);
    const auto at = std::find(idx.begin(), idx.end(), row) - idx.begin();
    return at / 8;
}

traincb::FitOptions<double> spiky_options(int epochs) {
    return {.epochs = epochs,
            .batch_size = 8,
            .seed = 3,
            .validation_data = traincb::ValidationData<double>{spiky_data().xv, spiky_data().yv},
            .metrics = {std::make_shared<traincb::metrics::MeanSquaredError>(),
                        std::make_shared<traincb::metrics::MeanAbsoluteError>()}};
}

traincb::StateDict state_of(SpikyNet& m) {
    traincb::StateDict d;
    traincb::StateCollector c(d);
    m.visit_state(c);
    return d;
}

bool same_bits(double a, double b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}
bool same_history(const traincb::History& a, const traincb::History& b) {
    if (a.epoch != b.epoch || a.history.size() != b.history.size()) return false;
    for (const auto& [k, col] : a.history) {
        const auto it = b.history.find(k);
        if (it == b.history.end() || it->second.size() != col.size()) return false;
        for (std::size_t i = 0; i < col.size(); ++i)
            if (!same_bits(col[i], it->second[i])) return false;
    }
    return true;
}

// The global step at the end of the run.
struct LastStep final : traincb::Callback {
    std::int64_t step = -1;
    void on_train_end(traincb::Context& c) override { step = c.global_step(); }
};

}  // namespace

// --- options -------------------------------------------------------------------------------

TEST_CASE("SpikeDetection: invalid options are rejected at construction, naming the value and the fix") {
    const auto msg = [](traincb::SpikeDetectionOptions o) { return error_of([&] { SpikeDetection s(std::move(o)); }); };
    CHECK_THROWS_AS(SpikeDetection({.window = 2}), traincb::InvalidArgument);
    CHECK(msg({.window = 2}) ==
          "traincb: SpikeDetection: window = 2 is too small for a median and a MAD; pass window >= 3, e.g. 100");
    CHECK(msg({.window = 10, .warmup = 11}) ==
          "traincb: SpikeDetection: warmup = 11 is outside [1, window = 10]; the window must hold warmup losses "
          "before it judges, e.g. 20");
    CHECK(contains(msg({.warmup = 0}), "warmup = 0 is outside [1, window = 100]"));
    CHECK(contains(msg({.threshold = 0}), "threshold = 0 is not a finite number > 0"));
    CHECK(contains(msg({.threshold = kNaN}), "threshold = nan is not a finite number > 0"));
    CHECK(contains(msg({.threshold = std::numeric_limits<double>::infinity()}), "threshold = inf"));
    CHECK(contains(msg({.min_delta = -1}), "min_delta = -1 is not a finite number >= 0"));
    CHECK(contains(msg({.max_rollbacks = -1}), "max_rollbacks = -1 is negative; pass max_rollbacks >= 0"));
    CHECK(contains(msg({.snapshot_every = 0}), "snapshot_every = 0 is below 1"));
    CHECK_NOTHROW(SpikeDetection({.window = 3, .warmup = 3, .min_delta = 0, .max_rollbacks = 0}));
}

// --- the statistic ----------------------------------------------------------------------------

TEST_CASE("SpikeDetection: the window's median and MAD match a sort-based computation, over a wrapped window") {
    SpikeDetection sd({.action = SpikeAction::Stop, .window = 7, .warmup = 7, .verbose = 0});
    HandLoop loop(sd);
    loop.begin();
    const std::vector<double> fed = {0.9, 1.4, 1.1, 0.7, 1.0, 1.3, 0.8, 1.2, 0.95, 1.05};
    std::vector<double> held;
    for (double l : fed) {
        loop.feed(l);
        held.push_back(l);
        if (held.size() > 7) held.erase(held.begin());
        REQUIRE(sd.window() == held);  // oldest first, the last 7
        CHECK(sd.median() == sorted_median(held));
        CHECK(sd.mad() == sorted_mad(held));
    }
    CHECK(sd.events().empty());
    // An even count: the mean of the two middle values.
    SpikeDetection even({.action = SpikeAction::Stop, .window = 6, .warmup = 6, .verbose = 0});
    HandLoop loop2(even);
    loop2.begin();
    for (double l : {3.0, 1.0, 4.0, 1.5, 9.0, 2.0}) loop2.feed(l);
    CHECK(even.median() == 2.5);  // sorted 1 1.5 2 3 4 9
    CHECK(even.mad() == sorted_mad({3.0, 1.0, 4.0, 1.5, 9.0, 2.0}));
    CHECK(even.mad() == 1.25);  // |x - 2.5| sorted: 0.5 1 1.5 1.5 2.5 6.5
}

TEST_CASE("SpikeDetection: a loss above median + threshold * 1.4826 * MAD is a spike, one at the bound is not") {
    const std::vector<double> w = {1.0, 1.2, 0.8, 1.1, 0.9, 1.05, 0.95};
    // Independent: the bound from the sorted window; 1.482602218505602 = 1 / Phi^-1(3/4).
    const double bound = sorted_median(w) + 4.0 * 1.482602218505602 * sorted_mad(w);
    {
        SpikeDetection sd({.action = SpikeAction::Stop, .window = 7, .warmup = 7, .threshold = 4.0, .verbose = 0});
        HandLoop loop(sd);
        loop.begin();
        for (double l : w) loop.feed(l);
        loop.feed(bound);
        CHECK(sd.events().empty());
        CHECK_FALSE(loop.ctx().stop_requested());
    }
    SpikeDetection sd({.action = SpikeAction::Stop, .window = 7, .warmup = 7, .threshold = 4.0, .verbose = 0});
    HandLoop loop(sd);
    loop.begin();
    for (double l : w) loop.feed(l);
    loop.feed(std::nextafter(bound, 100.0));
    REQUIRE(sd.events().size() == 1);
    const traincb::SpikeEvent& e = sd.events()[0];
    CHECK(e.epoch == 0);
    CHECK(e.batch == 7);
    CHECK(e.global_step == 8);
    CHECK(e.median == sorted_median(w));
    CHECK(e.mad == sorted_mad(w));
    CHECK(e.bound == bound);
    CHECK(e.local);
    CHECK(e.action == SpikeAction::Stop);
    CHECK(sd.window() == w);  // the spike's loss did not enter the window
    CHECK(loop.ctx().stop_requested());
    CHECK(loop.ctx().stop_source() == "SpikeDetection");
    CHECK(loop.ctx().stop_reason() == "loss spike");
}

TEST_CASE("SpikeDetection: min_delta is a floor on the excess over the median (a constant window has MAD 0)") {
    SpikeDetection strict({.action = SpikeAction::Stop, .window = 5, .warmup = 5, .verbose = 0});
    SpikeDetection floor({.action = SpikeAction::Stop, .window = 5, .warmup = 5, .min_delta = 0.5, .verbose = 0});
    HandLoop a(strict), b(floor);
    a.begin();
    b.begin();
    for (int i = 0; i < 5; ++i) {
        a.feed(1.0);
        b.feed(1.0);
    }
    a.feed(1.25);
    b.feed(1.25);
    CHECK(strict.events().size() == 1);  // MAD 0: any larger loss is above median + 0
    CHECK(floor.events().empty());       // 1.25 <= 1 + 0.5
    b.feed(1.5000001);
    CHECK(floor.events().size() == 1);
}

TEST_CASE("SpikeDetection: a NaN or infinite loss is a spike, even during the warm-up") {
    for (const double bad : {kNaN, std::numeric_limits<double>::infinity()}) {
        SpikeDetection sd({.action = SpikeAction::Stop, .window = 10, .warmup = 10, .verbose = 0});
        HandLoop loop(sd);
        loop.begin();
        loop.feed(1.0);
        loop.feed(bad);
        REQUIRE(sd.events().size() == 1);
        CHECK(sd.events()[0].batch == 1);
        CHECK(std::isnan(sd.events()[0].bound));  // no statistic during the warm-up
        CHECK(sd.events()[0].median == 1.0);
        CHECK(loop.ctx().stop_requested());
        CHECK(sd.window() == std::vector<double>{1.0});
    }
}

TEST_CASE("SpikeDetection: the warm-up: no statistic judges before the window holds warmup losses") {
    SpikeDetection sd({.action = SpikeAction::Stop, .window = 20, .warmup = 6, .verbose = 0});
    HandLoop loop(sd);
    loop.begin();
    for (int i = 0; i < 5; ++i) loop.feed(1.0 + 0.01 * i);
    loop.feed(1000.0);  // the 6th loss: the window holds 5 < 6, so it is not judged
    CHECK(sd.events().empty());
    CHECK(sd.window().size() == 6);
    for (int i = 0; i < 3; ++i) loop.feed(1.0 + 0.01 * i);
    loop.feed(1000.0);  // the window holds 9 >= 6: judged
    REQUIRE(sd.events().size() == 1);
    CHECK(sd.events()[0].batch == 9);
}

// --- actions from a hand-written loop ---------------------------------------------------------

TEST_CASE("SpikeDetection: Raise throws TrainingError naming the epoch, the batch, the loss and the statistic") {
    SpikeDetection sd({.action = SpikeAction::Raise, .window = 5, .warmup = 5, .verbose = 0});
    HandLoop loop(sd);
    loop.begin();
    for (double l : {1.0, 1.1, 0.9, 1.0, 1.2}) loop.feed(l);
    std::string what;
    try {
        loop.feed(50.0);
    } catch (const traincb::TrainingError& e) {
        what = e.what();
    }
    // median 1, MAD 0.1; bound 1 + 6 * 1.482602218505602 * 0.1 (as the callback formats it).
    CHECK(what ==
          "traincb: SpikeDetection: loss spike in epoch 1, batch 6 of 1000 (global step 6): loss 50 > " +
              traincb::detail::format_double(1.0 + 6.0 * 1.482602218505602 * sorted_mad({1.0, 1.1, 0.9, 1.0, 1.2})) +
              " (window median 1, MAD " + traincb::detail::format_double(sorted_mad({1.0, 1.1, 0.9, 1.0, 1.2})) +
              ", threshold 6); set action = SpikeAction::Rollback to skip such batches, or raise threshold");
    REQUIRE(sd.events().size() == 1);
    CHECK(sd.events()[0].action == SpikeAction::Raise);
}

TEST_CASE("SpikeDetection: Rollback in a loop that cannot roll back fails at on_train_begin; Stop works there") {
    SpikeDetection sd({.verbose = 0});  // Rollback is the default
    SpikyNet net;
    HandLoop loop(sd);
    loop.list.set_model(net);
    CHECK(error_of([&] { loop.list.on_train_begin(); }) ==
          "traincb: SpikeDetection: needs a driver that keeps snapshots and rolls back to them, but this loop does "
          "not (CallbackList::set_rollback_support was not called); train with traincb::Trainer, or choose an action "
          "that does not roll back");
    // And a callback that asks anyway, without declaring the capability, gets a LogicError.
    traincb::CallbackList empty;
    CHECK_THROWS_AS(empty.context().request_rollback("Mine", "why"), traincb::LogicError);
    CHECK(contains(error_of([&] { empty.context().request_rollback("Mine", "why"); }),
                   "traincb: Mine: requested a rollback, but the driver of this run keeps no snapshots"));
    // Rollback also needs the model's state.
    SpikeDetection sd2({.verbose = 0});
    traincb::CallbackList list(sd2);
    list.set_rollback_support(true);
    CHECK(contains(error_of([&] { list.on_train_begin(); }), "traincb: SpikeDetection: needs the model's state"));
}

TEST_CASE("SpikeDetection: the verdict is any-rank: a spike on another rank triggers the local action") {
    SECTION("Stop") {
        SpikeDetection sd({.action = SpikeAction::Stop, .window = 5, .warmup = 5, .verbose = 0});
        RemoteSpike comm;
        comm.at = 7;  // the 8th batch's verdict
        HandLoop loop(sd);
        loop.list.set_communicator(comm);
        loop.begin();
        for (int i = 0; i < 7; ++i) loop.feed(1.0 + 0.01 * i);
        CHECK(sd.events().empty());
        loop.feed(1.0);  // a healthy local loss
        REQUIRE(sd.events().size() == 1);
        CHECK_FALSE(sd.events()[0].local);
        CHECK(sd.events()[0].loss == 1.0);
        CHECK(loop.ctx().stop_requested());
        CHECK(comm.calls == 8);  // one collective verdict per batch
    }
    SECTION("Rollback, with a loop that declares rollback support: the request, then nothing after it") {
        SpikeDetection sd({.window = 5, .warmup = 5, .verbose = 0});
        struct After final : traincb::Callback {
            int ends = 0, commits = 0;
            void on_train_batch_end(traincb::Context&) override { ++ends; }
            void on_train_batch_commit(traincb::Context&) override { ++commits; }
        } after;
        RemoteSpike comm;
        comm.at = 6;
        SpikyNet net;
        HandLoop loop(sd, after);
        loop.list.set_model(net);
        loop.list.set_communicator(comm);
        loop.list.set_rollback_support(true);
        loop.begin();
        CHECK(loop.list.take_snapshot_request());  // asked in on_train_begin / on_epoch_begin
        for (int i = 0; i < 6; ++i) {
            loop.feed(1.0);
            CHECK(loop.list.take_snapshot_request());  // snapshot_every = 1
            CHECK_FALSE(loop.list.take_rollback_request());
        }
        loop.feed(1.0);
        CHECK(loop.list.take_rollback_request());
        CHECK_FALSE(loop.list.take_rollback_request());  // taken once
        CHECK(loop.ctx().rollback_source() == "SpikeDetection");
        CHECK(loop.ctx().rollback_reason() == "loss spike");
        CHECK(after.ends == 6);  // not called for the rolled-back batch
        CHECK(after.commits == 6);
        CHECK(sd.rollbacks() == 1);
        CHECK_FALSE(sd.events()[0].local);
    }
}

// --- rollback with Trainer --------------------------------------------------------------------

TEST_CASE(
    "SpikeDetection: an injected spike is rolled back and skipped; the run ends bit-identical to one "
    "told to skip that batch from the start") {
    const SpikyData& d = spiky_data();
    const int snapshot_every = GENERATE(1, 4);
    CAPTURE(snapshot_every);
    SpikyNet a;
    SpikeDetection sd({.window = 40, .warmup = 10, .snapshot_every = snapshot_every, .verbose = 0});
    LastStep last_a;
    traincb::Trainer ta(a);
    const traincb::History ha = ta.fit(d.x, d.y, spiky_options(3), sd, last_a);
    // One spike per epoch, at the batch that holds the poisoned row (found from the permutation).
    REQUIRE(sd.events().size() == 3);
    std::vector<traincb::BatchIndex> skipped;
    for (int e = 0; e < 3; ++e) {
        const traincb::SpikeEvent& ev = sd.events()[static_cast<std::size_t>(e)];
        CHECK(ev.epoch == e);
        CHECK(ev.batch == batch_of(d.poisoned, e));
        CHECK(ev.loss > 1000.0);
        CHECK(ev.action == SpikeAction::Rollback);
        skipped.push_back({ev.epoch, ev.batch});
    }
    CHECK(sd.events()[0].batch == 30);
    CHECK(sd.rollbacks() == 3);
    CHECK(ha.end.kind == traincb::EndKind::Completed);
    // The run told to skip the same batches from the start, without SpikeDetection.
    SpikyNet b;
    LastStep last_b;
    traincb::FitOptions<double> o = spiky_options(3);
    o.skip_batches = skipped;
    traincb::Trainer tb(b);
    const traincb::History hb = tb.fit(d.x, d.y, o, last_b);
    CHECK(state_of(a) == state_of(b));  // weights, momentum buffers, step counter
    CHECK(a.steps == 3 * 50 - 3);
    CHECK(same_history(ha, hb));  // loss, mse, auc (running metric states), val_*
    CHECK(last_a.step == last_b.step);
    CHECK(last_a.step == 3 * 50 - 3);  // skipped batches do not count
    // The poisoned row really blows a run up (the test can fail): without skipping, the loss explodes.
    SpikyNet c;
    traincb::Trainer tc(c);
    const traincb::History hc = tc.fit(d.x, d.y, spiky_options(3));
    CHECK(!(hc.at("loss")[0] < 100 * ha.at("loss")[0]));
}

TEST_CASE("SpikeDetection: after max_rollbacks the next spike stops training, naming the count") {
    const SpikyData& d = spiky_data();
    SpikyNet net;
    SpikeDetection sd({.window = 40, .warmup = 10, .max_rollbacks = 1, .verbose = 0});
    traincb::Trainer t(net);
    const traincb::History h = t.fit(d.x, d.y, spiky_options(3), sd);
    REQUIRE(sd.events().size() == 2);
    CHECK(sd.events()[0].action == SpikeAction::Rollback);
    CHECK(sd.events()[1].action == SpikeAction::Stop);
    CHECK(sd.events()[1].epoch == 1);
    CHECK(sd.rollbacks() == 1);
    CHECK(h.end.kind == traincb::EndKind::Stopped);
    CHECK(h.end.source == "SpikeDetection");
    CHECK(h.end.reason == "loss spike after 1 rollbacks (max_rollbacks = 1)");
    CHECK(h.size() == 2);  // the epoch of the stop still completes
}

TEST_CASE("SpikeDetection: Stop and Raise with Trainer") {
    const SpikyData& d = spiky_data();
    SpikyNet net;
    SpikeDetection stop({.action = SpikeAction::Stop, .window = 40, .warmup = 10, .verbose = 0});
    traincb::Trainer t(net);
    const traincb::History h = t.fit(d.x, d.y, spiky_options(3), stop);
    CHECK(h.end.kind == traincb::EndKind::Stopped);
    CHECK(h.end.reason == "loss spike");
    CHECK(h.size() == 1);
    CHECK(net.steps == 31);  // batches 0..30: the spike's batch was trained (Stop does not undo it)
    SpikyNet net2;
    SpikeDetection raise({.action = SpikeAction::Raise, .window = 40, .warmup = 10, .verbose = 0});
    traincb::Trainer t2(net2);
    CHECK_THROWS_WITH(t2.fit(d.x, d.y, spiky_options(3), raise),
                      Catch::StartsWith("traincb: SpikeDetection: loss spike in epoch 1, batch 31 of 50 (global step "
                                        "31): loss "));
}

TEST_CASE("SpikeDetection: no false positive on a noisy but healthy loss over 3000 batches, default options") {
    Eigen::MatrixXd x(1000, 1), y = Eigen::MatrixXd::Zero(1000, 1);
    for (int i = 0; i < 1000; ++i) x(i, 0) = i;
    NoisyCurve model;
    SpikeDetection sd;  // defaults: Rollback, window 100, warmup 20, threshold 6
    traincb::Trainer t(model);
    const traincb::History h = t.fit(x, y, {.epochs = 3, .batch_size = 1}, sd);
    CHECK(sd.events().empty());
    CHECK(model.t == 3000);
    CHECK(h.end.kind == traincb::EndKind::Completed);
    // The same curve with row 500's batch 3 times too large: detected there in each epoch (so the
    // check above can fail), rolled back and skipped.
    NoisyCurve bumped;
    bumped.bump_row = 500;
    bumped.bump = 3;
    SpikeDetection sd2;
    WarningCapture warnings;  // verbose = 1: one warning per spike
    traincb::Trainer t2(bumped);
    t2.fit(x, y, {.epochs = 3, .batch_size = 1, .shuffle = false}, sd2);
    CHECK(warnings.messages.size() == 3);
    REQUIRE(sd2.events().size() == 3);
    for (int e = 0; e < 3; ++e) {
        CHECK(sd2.events()[static_cast<std::size_t>(e)].epoch == e);
        CHECK(sd2.events()[static_cast<std::size_t>(e)].batch == 500);
    }
    CHECK(bumped.t == 3000 - 3);
}

// --- reporting --------------------------------------------------------------------------------

TEST_CASE("SpikeDetection: each spike is reported to the sinks (MetricLogger) and as a warning") {
    const SpikyData& d = spiky_data();
    SpikyNet net;
    SpikeDetection sd({.window = 40, .warmup = 10});
    auto memory = std::make_shared<traincb::sinks::MemorySink>();
    std::ostringstream console_out;
    auto console = std::make_shared<traincb::sinks::ConsoleSink>(
        traincb::sinks::ConsoleOptions{.out = &console_out, .style = traincb::sinks::ConsoleStyle::Lines});
    traincb::MetricLogger logger({memory, console});
    WarningCapture warnings;
    traincb::Trainer t(net);
    t.fit(d.x, d.y, spiky_options(2), sd, logger);
    REQUIRE(memory->run_events().size() == 2);
    const traincb::RunEvent& ev = memory->run_events()[0];
    CHECK(ev.source == "SpikeDetection");
    CHECK(ev.kind == "loss_spike");
    CHECK(ev.epoch == 0);
    CHECK(ev.batch == 30);
    CHECK(ev.global_step == 31);
    CHECK(ev.values.at("loss") == sd.events()[0].loss);
    CHECK(ev.values.at("median") == sd.events()[0].median);
    CHECK(ev.values.at("mad") == sd.events()[0].mad);
    CHECK(ev.values.at("bound") == sd.events()[0].bound);
    CHECK(ev.values.at("rollbacks") == 1);
    CHECK(contains(ev.message, "traincb: SpikeDetection: loss spike in epoch 1, batch 31 of 50 (global step 31)"));
    CHECK(contains(ev.message, "; rolling back and skipping the batch (rollback 1 of 10)"));
    // In order with the rest of the run: the event, then the epoch's row.
    const auto& calls = memory->events();
    CHECK(std::find(calls.begin(), calls.end(), "event loss_spike") < std::find(calls.begin(), calls.end(), "epoch 0"));
    CHECK(contains(console_out.str(), ev.message + "\n"));
    CHECK(warnings.messages.size() == 2);
    CHECK(warnings.messages[0] == ev.message);
    // verbose = 0: no warning, the sinks still get it.
    SpikyNet net2;
    SpikeDetection quiet({.window = 40, .warmup = 10, .verbose = 0});
    auto memory2 = std::make_shared<traincb::sinks::MemorySink>();
    traincb::MetricLogger logger2({memory2});
    WarningCapture none;
    traincb::Trainer t2(net2);
    t2.fit(d.x, d.y, spiky_options(1), quiet, logger2);
    CHECK(none.messages.empty());
    CHECK(memory2->run_events().size() == 1);
}

// --- Trainer: skip_batches --------------------------------------------------------------------

namespace {
// Records the rows (first column holds the row index) of every batch, and returns their mean as
// the loss.
struct RowRecorder {
    std::vector<std::vector<double>> batches;
    double train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd&) {
        batches.emplace_back(x.col(0).data(), x.col(0).data() + x.rows());
        return x.col(0).mean();
    }
    Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const { return Eigen::MatrixXd::Zero(x.rows(), 1); }
};
}  // namespace

TEST_CASE("Trainer: skip_batches: no step and no hook, the global step does not advance, the data order stays") {
    Eigen::MatrixXd x(10, 1), y = Eigen::MatrixXd::Zero(10, 1);
    for (int i = 0; i < 10; ++i) x(i, 0) = i;
    RowRecorder model;
    struct Hooks final : traincb::Callback {
        std::vector<std::pair<int, int>> begins, ends;
        std::vector<std::int64_t> steps;
        void on_train_batch_begin(traincb::Context& c) override { begins.emplace_back(c.epoch(), c.batch()); }
        void on_train_batch_end(traincb::Context& c) override {
            ends.emplace_back(c.epoch(), c.batch());
            steps.push_back(c.global_step());
        }
    } hooks;
    traincb::Trainer t(model);
    // Batches of 3: 4 per epoch (the last holds 1 row). Skip batch 1 of epoch 0 and the tail of epoch 1.
    const traincb::History h = t.fit(
        x, y,
        {.epochs = 2, .batch_size = 3, .seed = 5, .skip_batches = {{.epoch = 1, .batch = 3}, {.epoch = 0, .batch = 1}}},
        hooks);
    CHECK(hooks.begins == std::vector<std::pair<int, int>>{{0, 0}, {0, 2}, {0, 3}, {1, 0}, {1, 1}, {1, 2}});
    CHECK(hooks.ends == hooks.begins);
    CHECK(hooks.steps == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
    // The other batches hold exactly the rows of the unskipped run's permutation (independent:
    // epoch_permutation of (seed, epoch)).
    std::vector<double> expected_means;
    std::size_t k = 0;
    for (int e = 0; e < 2; ++e) {
        std::vector<Eigen::Index> idx(10);
        traincb::detail::epoch_permutation(idx, 5, e);
        double sum = 0;
        double n = 0;
        for (int b = 0; b < 4; ++b) {
            if ((e == 0 && b == 1) || (e == 1 && b == 3)) continue;
            std::vector<double> rows;
            for (int i = b * 3; i < std::min(10, b * 3 + 3); ++i)
                rows.push_back(static_cast<double>(idx[static_cast<std::size_t>(i)]));
            REQUIRE(k < model.batches.size());
            CHECK(model.batches[k++] == rows);
            double s = 0;
            for (double r : rows) s += r;
            sum += (s / static_cast<double>(rows.size())) * static_cast<double>(rows.size());
            n += static_cast<double>(rows.size());
        }
        expected_means.push_back(sum / n);
    }
    CHECK(k == model.batches.size());
    // The epoch's loss is the sample-weighted mean over the batches trained.
    CHECK(h.at("loss")[0] == Approx(expected_means[0]).epsilon(1e-15));
    CHECK(h.at("loss")[1] == Approx(expected_means[1]).epsilon(1e-15));
    CHECK(error_of([&] {
              RowRecorder m;
              traincb::Trainer tt(m);
              tt.fit(x, y, {.skip_batches = {{.epoch = 0, .batch = -1}}});
          }) ==
          "traincb: Trainer::fit: skip_batches holds {.epoch = 0, .batch = -1}; epochs and batches are "
          "0-based, so both must be >= 0");
}

TEST_CASE("Trainer: a rollback without a snapshot of the epoch is a LogicError naming the requester") {
    SpikyNet net;
    struct Rogue final : traincb::Callback {
        void on_train_batch_end(traincb::Context& c) override {
            if (c.batch() == 2) c.request_rollback("Rogue", "test");
        }
    } rogue;
    traincb::Trainer t(net);
    CHECK(error_of([&] { t.fit(spiky_data().xv, spiky_data().yv, {.batch_size = 8}, rogue); }) ==
          "traincb: Trainer::fit: Rogue asked to roll back batch 2 of epoch 1, but no snapshot was taken in this "
          "epoch; call Context::request_snapshot() in on_epoch_begin (and as often as a rollback should reach back)");
}

// --- checkpoints ------------------------------------------------------------------------------

namespace {
struct CrashAt final : traincb::Callback {
    std::int64_t at = -1;
    void on_train_batch_end(traincb::Context& c) override {
        if (c.global_step() == at) throw std::runtime_error("crash");
    }
};
}  // namespace

TEST_CASE("Trainer: skipped batches survive a checkpoint: a resumed run skips them without being told again") {
    TempDir tmp("skip_resume");
    const SpikyData& d = spiky_data();
    const std::int64_t b1 = batch_of(d.poisoned, 1);  // the poisoned row's batch in epoch 1
    REQUIRE(b1 > 2);
    const std::vector<traincb::BatchIndex> skip = {{.epoch = 0, .batch = 30}, {.epoch = 1, .batch = b1}};
    SpikyNet straight;
    {
        traincb::FitOptions<double> o = spiky_options(2);
        o.skip_batches = skip;
        traincb::Trainer t(straight);
        t.fit(d.x, d.y, o);
    }
    SpikyNet first;
    {
        traincb::ModelCheckpoint ckpt({.filepath = tmp.path / "b{epoch}-{batch}.safetensors", .save_freq = 5});
        CrashAt crash;
        crash.at = 52;  // in epoch 1, before its skipped batch; the newest checkpoint is at step 50
        traincb::FitOptions<double> o = spiky_options(2);
        o.skip_batches = skip;
        traincb::Trainer t(first);
        CHECK_THROWS(t.fit(d.x, d.y, o, crash, ckpt));
    }
    const auto latest = traincb::io::find_latest_checkpoint(tmp.path);
    REQUIRE(latest);
    const traincb::io::Checkpoint c = traincb::io::load_checkpoint(*latest);
    CHECK(c.position.global_step == 50);
    CHECK(c.fit_options.at("skip_batches") == nlohmann::json::array({{0, 30}, {1, b1}}));
    SpikyNet resumed;
    traincb::FitOptions<double> o = spiky_options(2);  // no skip_batches
    o.resume_from = tmp.path;
    WarningCapture warnings;  // the checkpoint's list is not an option change to warn about
    traincb::Trainer t(resumed);
    t.fit(d.x, d.y, o);
    CHECK(state_of(resumed) == state_of(straight));
    CHECK(resumed.steps == 100 - 2);
    INFO(warnings.all());
    CHECK_FALSE(warnings.any_contains("skip_batches"));
}

TEST_CASE("SpikeDetection: a run with rollbacks resumed in the middle ends bit-identical to the straight run") {
    TempDir tmp("spike_resume");
    const SpikyData& d = spiky_data();
    const auto options = [] {
        return traincb::SpikeDetectionOptions{.window = 40, .warmup = 10, .snapshot_every = 3, .verbose = 0};
    };
    SpikyNet straight;
    SpikeDetection sd_straight(options());
    traincb::History h_straight;
    {
        traincb::Trainer t(straight);
        h_straight = t.fit(d.x, d.y, spiky_options(3), sd_straight);
    }
    REQUIRE(sd_straight.rollbacks() == 3);
    SpikyNet first;
    {
        SpikeDetection sd(options());
        traincb::ModelCheckpoint ckpt({.filepath = tmp.path / "b{epoch}-{batch}.safetensors", .save_freq = 4});
        CrashAt crash;
        // Epoch 0 has 49 steps (its batch 30 rolled back); the poisoned row is in batch 13 of epoch 1
        // (step 63). The crash at step 58 leaves the newest checkpoint at step 56, mid-epoch 1,
        // between the two rollbacks.
        REQUIRE(batch_of(d.poisoned, 1) == 13);
        crash.at = 58;
        traincb::Trainer t(first);
        CHECK_THROWS(t.fit(d.x, d.y, spiky_options(3), sd, crash, ckpt));
        REQUIRE(sd.rollbacks() == 1);
    }
    // The checkpoint recorded the rollback's skipped batch and the callback's state.
    const traincb::io::Checkpoint c = traincb::io::load_checkpoint(*traincb::io::find_latest_checkpoint(tmp.path));
    CHECK(c.position.global_step == 56);
    CHECK_FALSE(c.position.epoch_completed);
    CHECK(c.fit_options.at("skip_batches") == nlohmann::json::array({nlohmann::json::array({0, 30})}));
    CHECK(c.callbacks.at("SpikeDetection").json.at("rollbacks") == 1);
    SpikyNet resumed;
    SpikeDetection sd_resumed(options());
    traincb::FitOptions<double> o = spiky_options(3);
    o.resume_from = tmp.path;
    WarningCapture warnings;  // the checkpoint's ModelCheckpoint state, which no callback claims
    traincb::Trainer t(resumed);
    const traincb::History h_resumed = t.fit(d.x, d.y, o, sd_resumed);
    CHECK(state_of(resumed) == state_of(straight));
    CHECK(same_history(h_resumed, h_straight));
    traincb::CallbackState a, b;
    sd_straight.save_state(a);
    sd_resumed.save_state(b);
    CHECK(a.json == b.json);        // options, rollbacks, every event
    CHECK(a.tensors == b.tensors);  // the window, bit for bit
    CHECK(sd_resumed.rollbacks() == 3);
}

TEST_CASE("SpikeDetection: save_state and load_state round-trip; a changed option is warned about") {
    SpikeDetection sd({.action = SpikeAction::Stop, .window = 5, .warmup = 3, .verbose = 0});
    HandLoop loop(sd);
    loop.begin();
    for (double l : {1.0, 2.0, 1.5, 1.25, 1.75, 1.5, kNaN}) loop.feed(l);
    traincb::CallbackState s;
    sd.save_state(s);
    CHECK(s.version == 1);
    CHECK(s.json.at("events").size() == 1);
    CHECK(s.json.at("events")[0].at("loss") == "nan");
    SpikeDetection back({.action = SpikeAction::Stop, .window = 5, .warmup = 3, .verbose = 0});
    HandLoop loop2(back);
    loop2.begin();
    {
        WarningCapture none;
        back.load_state(s, loop2.ctx());
        CHECK(none.messages.empty());
    }
    CHECK(back.window() == sd.window());
    CHECK(back.events().size() == 1);
    CHECK(std::isnan(back.events()[0].loss));
    CHECK(back.events()[0].median == sd.events()[0].median);
    // A smaller window keeps the newest losses, with a warning.
    SpikeDetection smaller({.action = SpikeAction::Stop, .window = 3, .warmup = 3, .verbose = 0});
    WarningCapture warnings;
    smaller.load_state(s, loop2.ctx());
    CHECK(smaller.window() == std::vector<double>{1.25, 1.75, 1.5});
    CHECK(
        warnings.any_contains("traincb: SpikeDetection: checkpointed state (key 'SpikeDetection'): options changed "
                              "since the checkpoint"));
    traincb::CallbackState bad = s;
    bad.version = 2;
    CHECK_THROWS_AS(back.load_state(bad, loop2.ctx()), traincb::FormatError);
    bad = s;
    bad.tensors.clear();
    CHECK(contains(error_of([&] { back.load_state(bad, loop2.ctx()); }), "the tensor 'window' is missing"));
}

namespace {
// A user-defined metric (the mean of y_pred) that implements only the required members, or also
// the JSON state functions: a rollback restores the latter through them, and restarts the former.
class MeanPrediction final : public traincb::metrics::Metric {
public:
    explicit MeanPrediction(bool saveable) : saveable_(saveable) {}
    [[nodiscard]] std::string name() const override { return saveable_ ? "mean_pred" : "mean_pred_plain"; }
    [[nodiscard]] traincb::Direction direction() const noexcept override { return traincb::Direction::Min; }
    void update(const Eigen::Ref<const Eigen::MatrixXd>&, const Eigen::Ref<const Eigen::MatrixXd>& p) override {
        sum_ += p.sum();
        n_ += static_cast<double>(p.size());
    }
    void update(const Eigen::Ref<const Eigen::MatrixXf>&, const Eigen::Ref<const Eigen::MatrixXf>& p) override {
        sum_ += static_cast<double>(p.sum());
        n_ += static_cast<double>(p.size());
    }
    [[nodiscard]] double result() const override { return sum_ / n_; }
    void reset() override { sum_ = n_ = 0; }
    void merge(const traincb::metrics::Metric& o) override {
        const auto& m = dynamic_cast<const MeanPrediction&>(o);
        sum_ += m.sum_;
        n_ += m.n_;
    }
    [[nodiscard]] std::unique_ptr<traincb::metrics::Metric> clone() const override {
        return std::make_unique<MeanPrediction>(*this);
    }
    bool save_state(nlohmann::json& s) const override {
        if (!saveable_) return false;
        s = {{"sum", traincb::detail::format_double(sum_)}, {"n", traincb::detail::format_double(n_)}};
        return true;
    }
    void load_state(const nlohmann::json& s) override {
        sum_ = *traincb::detail::parse_double(s.at("sum").get<std::string>());
        n_ = *traincb::detail::parse_double(s.at("n").get<std::string>());
    }

private:
    bool saveable_;
    double sum_ = 0, n_ = 0;
};
}  // namespace

TEST_CASE("Trainer: a rollback restores a user metric through save_state, and restarts one without it, warning") {
    const SpikyData& d = spiky_data();
    SpikyNet a, b;
    SpikeDetection sd({.window = 40, .warmup = 10, .snapshot_every = 4, .verbose = 0});
    traincb::FitOptions<double> o = spiky_options(1);
    o.metrics = {std::make_shared<MeanPrediction>(true), std::make_shared<MeanPrediction>(false)};
    WarningCapture warnings;
    traincb::Trainer ta(a);
    const traincb::History ha = ta.fit(d.x, d.y, o, sd);
    REQUIRE(sd.rollbacks() == 1);
    CHECK(warnings.messages.size() == 1);
    CHECK(
        warnings.any_contains("traincb: Trainer::fit: training metric 'mean_pred_plain' implements neither "
                              "copy_state_from nor save_state, so a rollback cannot restore it"));
    o.skip_batches = {{.epoch = 0, .batch = 30}};
    traincb::Trainer tb(b);
    const traincb::History hb = tb.fit(d.x, d.y, o);
    // Restored through its JSON state: exactly the skip run's value.
    CHECK(same_bits(ha.at("mean_pred")[0], hb.at("mean_pred")[0]));
    // Restarted at the rollback (the snapshot before batch 28): it covers the batches from there on.
    CHECK_FALSE(same_bits(ha.at("mean_pred_plain")[0], hb.at("mean_pred_plain")[0]));
    CHECK(same_bits(ha.at("loss")[0], hb.at("loss")[0]));
}

TEST_CASE("metrics::Metric::copy_state_from: an exact copy of a clone's state, storage reused; another class throws") {
    namespace m = traincb::metrics;
    Eigen::MatrixXd t(6, 1), p(6, 1);
    t << 1, 0, 1, 1, 0, 0;
    p << 0.9, 0.2, 0.4, 0.7, 0.6, 0.1;
    m::RocAuc auc;
    auc.update(t.topRows(4), p.topRows(4));
    auto snap = auc.clone();
    snap->reset();
    REQUIRE(snap->copy_state_from(auc));
    CHECK(snap->result() == auc.result());
    auc.update(t.bottomRows(2), p.bottomRows(2));  // then back to the copy: the later batch is gone
    REQUIRE(auc.copy_state_from(*snap));
    m::RocAuc fresh;
    fresh.update(t.topRows(4), p.topRows(4));
    CHECK(auc.result() == fresh.result());
    auc.update(t.bottomRows(2), p.bottomRows(2));
    fresh.update(t.bottomRows(2), p.bottomRows(2));
    CHECK(auc.result() == fresh.result());
    // A compensated mean: sum and compensation travel whole (reset + merge would re-round them).
    m::MeanSquaredError mse, copy;
    for (int i = 0; i < 50; ++i) mse.update(t * (0.1 * i), p * 1e8);
    REQUIRE(copy.copy_state_from(mse));
    CHECK(copy.result() == mse.result());
    mse.update(t, p);
    copy.update(t, p);
    CHECK(copy.result() == mse.result());
    CHECK(error_of([&] { (void)mse.copy_state_from(auc); }) ==
          "traincb: metrics::MeanSquaredError::copy_state_from: cannot copy the state of metric 'auc' of another type "
          "into 'mean_squared_error'; copy from an object of the same class");
}

TEST_CASE("Context::report: a RunEvent reaches every on_run_event and MetricLogger's sinks, its position filled") {
    struct Reporter final : traincb::Callback {
        void on_train_batch_end(traincb::Context& c) override {
            if (c.batch() != 1) return;
            traincb::RunEvent e;
            e.source = "Reporter";
            e.kind = "note";
            e.message = "traincb: Reporter: batch 2";
            e.values.set("x", 2.5);
            c.report(e);
        }
    } reporter;
    struct Listener final : traincb::Callback {
        std::vector<std::string> kinds;
        void on_run_event(traincb::Context& c) override { kinds.push_back(c.run_event().kind); }
    } listener;
    auto memory = std::make_shared<traincb::sinks::MemorySink>();
    traincb::MetricLogger logger({memory});
    HandLoop loop(reporter, listener, logger);
    loop.begin();
    loop.feed(1.0);
    loop.feed(1.0);
    CHECK(listener.kinds == std::vector<std::string>{"note"});
    REQUIRE(memory->run_events().size() == 1);
    const traincb::RunEvent& e = memory->run_events()[0];
    CHECK(e.epoch == 0);
    CHECK(e.batch == 1);
    CHECK(e.global_step == 2);
    CHECK(e.values.at("x") == 2.5);
    CHECK(e.message == "traincb: Reporter: batch 2");
    CHECK(memory->events().back() == "event note");
    CHECK(&loop.ctx().run_event() != &e);  // outside on_run_event: an empty event
    CHECK(loop.ctx().run_event().kind.empty());
}

}  // namespace test_spike_detection
