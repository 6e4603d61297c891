// Per-epoch cost of Trainer (EarlyStopping + five no-op callbacks) against a hand-written loop
// over the same model and data: the model of example_seed (8 -> Dense(10, relu) -> Dense(1,
// sigmoid), Adam, binary cross-entropy), 1000 training rows, 100 validation rows, batch 10 (100
// batches/epoch).
//
//   build/release/benchmarks/bench_trainer --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The ratio Trainer / hand loop is what matters: both do the same gathers, steps, validation and
// early-stopping test; the difference is the callback machinery.

// BM_TinyTrainerVsHandLoop: the Trainer's own cost per batch, where it shows: a tiny model (one
// 8 -> 1 sigmoid layer), same data, 200 epochs, Trainer with EarlyStopping, TerminateOnNaN and a
// MetricLogger over a MemorySink against the loop a user would write for the same work, both
// timed in the same run (its `ratio` counter).
#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/terminate_on_nan.hpp>
#include <traincb/sinks/memory.hpp>
#include <traincb/trainer.hpp>

#include "common/dataset.hpp"
#include "common/mlp.hpp"

namespace {

struct SeedData {
    Eigen::MatrixXd x, y, vx, vy;
    SeedData() {
        std::mt19937_64 rng(1);
        x = traincb_examples::uniform_matrix(1000, 8, rng);
        y = traincb_examples::random_binary_labels(1000, rng);
        vx = traincb_examples::uniform_matrix(100, 8, rng);
        vy = traincb_examples::random_binary_labels(100, rng);
    }
};
const SeedData& data() {
    static const SeedData d;
    return d;
}
traincb_examples::Mlp make_model() {
    using namespace traincb_examples;
    return Mlp(MlpOptions{.inputs = 8,
                          .layers = {{10, Activation::Relu}, {1, Activation::Sigmoid}},
                          .loss = Loss::BinaryCrossentropy,
                          .learning_rate = 0.001,
                          .seed = 3});
}

struct NoOp final : traincb::Callback {
    void on_train_batch_begin(traincb::Context&) override { benchmark::ClobberMemory(); }
    void on_train_batch_end(traincb::Context&) override { benchmark::ClobberMemory(); }
    void on_epoch_end(traincb::Context&) override { benchmark::ClobberMemory(); }
};

// The rows of batch `b` (of xb.rows() rows) in the order `idx`, into xb and yb.
template <class Data>
void gather_batch(const Data& d, const std::vector<Eigen::Index>& idx, Eigen::Index b, Eigen::MatrixXd& xb,
                  Eigen::MatrixXd& yb) {
    const Eigen::Index bs = xb.rows();
    for (Eigen::Index r = 0; r < bs; ++r) {
        const Eigen::Index src = idx[static_cast<std::size_t>(b * bs + r)];
        xb.row(r) = d.x.row(src);
        yb.row(r) = d.y.row(src);
    }
}

// One epoch of the hand-written loop: the same shuffle, batch gathering, training, validation
// and early-stopping bookkeeping as Trainer + EarlyStopping. Returns the epoch's mean loss.
template <class Model, class Data>
double hand_epoch(Model& model, const Data& d, std::vector<Eigen::Index>& idx, Eigen::MatrixXd& xb, Eigen::MatrixXd& yb,
                  int epoch, double& best, int& wait) {
    const Eigen::Index n = d.x.rows(), bs = xb.rows();
    traincb::detail::epoch_permutation(idx, 7, epoch);
    double loss_sum = 0;
    for (Eigen::Index b = 0; b < n / bs; ++b) {
        gather_batch(d, idx, b, xb, yb);
        loss_sum += model.train_batch(xb, yb).loss * static_cast<double>(bs);
    }
    const double val_loss = model.loss(d.vy, model.predict(d.vx));
    if (val_loss + 0.0 < best) {
        best = val_loss;
        wait = 0;
    } else {
        ++wait;
    }
    return loss_sum / static_cast<double>(n);
}

void BM_HandLoop(benchmark::State& state) {
    const auto& d = data();
    auto model = make_model();
    const Eigen::Index n = d.x.rows(), bs = 10;
    Eigen::MatrixXd xb(bs, d.x.cols()), yb(bs, 1);
    std::vector<Eigen::Index> idx(static_cast<std::size_t>(n));
    double best = std::numeric_limits<double>::infinity();
    int wait = 0, epoch = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(hand_epoch(model, d, idx, xb, yb, epoch, best, wait));
        benchmark::DoNotOptimize(wait);
        ++epoch;
    }
    state.counters["us_per_batch"] = benchmark::Counter(static_cast<double>(state.iterations()) * 100,
                                                        benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_HandLoop)->Unit(benchmark::kMillisecond);

void BM_Trainer(benchmark::State& state) {
    const auto& d = data();
    auto model = make_model();
    traincb::Trainer trainer(model);
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 1000000});
    NoOp a, b, c, e, f;
    int epoch = 0;
    const traincb::ValidationData<double> val{d.vx, d.vy};
    for (auto _ : state) {
        // One epoch per iteration: fit continues at the next absolute epoch.
        auto h = trainer.fit(
            d.x, d.y,
            {.epochs = epoch + 1, .batch_size = 10, .seed = 7, .validation_data = val, .initial_epoch = epoch}, es, a,
            b, c, e, f);
        benchmark::DoNotOptimize(h);
        ++epoch;
    }
    state.counters["us_per_batch"] = benchmark::Counter(static_cast<double>(state.iterations()) * 100,
                                                        benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Trainer)->Unit(benchmark::kMillisecond);

// A whole fit of 20 epochs in one call (per-fit setup amortised), for the per-epoch figure.
void BM_Trainer20Epochs(benchmark::State& state) {
    const auto& d = data();
    const traincb::ValidationData<double> val{d.vx, d.vy};
    for (auto _ : state) {
        auto model = make_model();
        traincb::Trainer trainer(model);
        traincb::EarlyStopping es({.monitor = "val_loss", .patience = 1000000});
        NoOp a, b, c, e, f;
        auto h = trainer.fit(d.x, d.y, {.epochs = 20, .batch_size = 10, .seed = 7, .validation_data = val}, es, a, b, c,
                             e, f);
        benchmark::DoNotOptimize(h);
    }
}
BENCHMARK(BM_Trainer20Epochs)->Unit(benchmark::kMillisecond);

void BM_HandLoop20Epochs(benchmark::State& state) {
    const auto& d = data();
    const Eigen::Index n = d.x.rows(), bs = 10;
    for (auto _ : state) {
        auto model = make_model();
        Eigen::MatrixXd xb(bs, d.x.cols()), yb(bs, 1);
        std::vector<Eigen::Index> idx(static_cast<std::size_t>(n));
        double best = std::numeric_limits<double>::infinity();
        int wait = 0;
        for (int epoch = 0; epoch < 20; ++epoch)
            benchmark::DoNotOptimize(hand_epoch(model, d, idx, xb, yb, epoch, best, wait));
        benchmark::DoNotOptimize(wait);
    }
}
BENCHMARK(BM_HandLoop20Epochs)->Unit(benchmark::kMillisecond);

// ---- The Trainer's own cost per batch: a tiny model, where it is not hidden by the model's ----

traincb_examples::Mlp make_tiny_model() {
    using namespace traincb_examples;
    return Mlp(MlpOptions{.inputs = 8,
                          .layers = {{1, Activation::Sigmoid}},
                          .loss = Loss::BinaryCrossentropy,
                          .learning_rate = 0.001,
                          .seed = 3});
}

constexpr int kTinyEpochs = 200;
constexpr Eigen::Index kTinyBatch = 10;

// The loop a user writes for what the Trainer run below does: std::shuffle each epoch, gather the
// batch rows, one step per batch with a NaN check of the running loss (TerminateOnNaN), validation
// predict and loss, the epoch's losses kept (MemorySink), and the early-stopping test.
std::size_t hand_fit_tiny(traincb_examples::Mlp& model, const SeedData& d) {
    const Eigen::Index n = d.x.rows();
    Eigen::MatrixXd xb(kTinyBatch, d.x.cols()), yb(kTinyBatch, 1);
    std::vector<Eigen::Index> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), Eigen::Index{0});
    std::mt19937_64 rng(7);
    std::vector<std::pair<double, double>> history;
    double best = std::numeric_limits<double>::infinity();
    int wait = 0;
    bool stop = false;
    for (int epoch = 0; epoch < kTinyEpochs && !stop; ++epoch) {
        std::shuffle(idx.begin(), idx.end(), rng);
        double loss_sum = 0;
        Eigen::Index seen = 0;
        for (Eigen::Index b = 0; b < n / kTinyBatch; ++b) {
            gather_batch(d, idx, b, xb, yb);
            loss_sum += model.train_batch(xb, yb).loss * static_cast<double>(kTinyBatch);
            seen += kTinyBatch;
            if (!std::isfinite(loss_sum / static_cast<double>(seen))) stop = true;
        }
        const double val_loss = model.loss(d.vy, model.predict(d.vx));
        history.emplace_back(loss_sum / static_cast<double>(seen), val_loss);
        if (val_loss < best) {
            best = val_loss;
            wait = 0;
        } else if (++wait >= 1000000) {
            stop = true;
        }
    }
    return history.size();
}

std::size_t trainer_fit_tiny(traincb_examples::Mlp& model, const SeedData& d) {
    traincb::Trainer trainer(model);
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 1000000});
    traincb::TerminateOnNaN ton;
    traincb::MetricLogger logger({std::make_shared<traincb::sinks::MemorySink>()});
    const auto h = trainer.fit(d.x, d.y,
                               {.epochs = kTinyEpochs,
                                .batch_size = static_cast<int>(kTinyBatch),
                                .seed = 7,
                                .validation_data = traincb::ValidationData<double>{d.vx, d.vy}},
                               es, ton, logger);
    return h.size();
}

// This thread's CPU time in ns: other processes on the machine do not count.
double thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Both fits in every iteration, in alternating order (the machine's noise hits both alike), each
// timed in thread CPU time; counters: ns per batch of each, their ratio, and the Trainer's own ns
// per batch (the difference).
void BM_TinyTrainerVsHandLoop(benchmark::State& state) {
    const auto& d = data();
    double hand_ns = 0, trainer_ns = 0;
    bool trainer_first = false;
    const auto timed = [&d](auto fit, double& total) {
        auto model = make_tiny_model();
        const double t0 = thread_cpu_ns();
        benchmark::DoNotOptimize(fit(model, d));
        total += thread_cpu_ns() - t0;
    };
    for (auto _ : state) {
        if (trainer_first) timed(trainer_fit_tiny, trainer_ns);
        timed(hand_fit_tiny, hand_ns);
        if (!trainer_first) timed(trainer_fit_tiny, trainer_ns);
        trainer_first = !trainer_first;
    }
    const double batches =
        static_cast<double>(state.iterations()) * kTinyEpochs * static_cast<double>(d.x.rows() / kTinyBatch);
    state.counters["hand_ns_per_batch"] = hand_ns / batches;
    state.counters["trainer_ns_per_batch"] = trainer_ns / batches;
    state.counters["ratio"] = trainer_ns / hand_ns;
    state.counters["own_ns_per_batch"] = (trainer_ns - hand_ns) / batches;
}
BENCHMARK(BM_TinyTrainerVsHandLoop)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
