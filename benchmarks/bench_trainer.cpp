// Per-epoch cost of Trainer (EarlyStopping + five no-op callbacks) against a hand-written loop
// over the same model and data: the model of example_seed (8 -> Dense(10, relu) -> Dense(1,
// sigmoid), Adam, binary cross-entropy), 1000 training rows, 100 validation rows, batch 10 (100
// batches/epoch).
//
//   build/release/benchmarks/bench_trainer --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The ratio Trainer / hand loop is what matters: both do the same gathers, steps, validation and
// early-stopping test; the difference is the callback machinery.
#include <benchmark/benchmark.h>

#include <random>
#include <traincb/callbacks/early_stopping.hpp>
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

// One epoch of the hand-written loop: the same shuffle, batch gathering, training, validation
// and early-stopping bookkeeping as Trainer + EarlyStopping. Returns the epoch's mean loss.
template <class Model, class Data>
double hand_epoch(Model& model, const Data& d, std::vector<Eigen::Index>& idx, Eigen::MatrixXd& xb, Eigen::MatrixXd& yb,
                  int epoch, double& best, int& wait) {
    const Eigen::Index n = d.x.rows(), bs = xb.rows();
    traincb::detail::epoch_permutation(idx, 7, epoch);
    double loss_sum = 0;
    for (Eigen::Index b = 0; b < n / bs; ++b) {
        for (Eigen::Index r = 0; r < bs; ++r) {
            const Eigen::Index src = idx[static_cast<std::size_t>(b * bs + r)];
            xb.row(r) = d.x.row(src);
            yb.row(r) = d.y.row(src);
        }
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

}  // namespace

BENCHMARK_MAIN();
