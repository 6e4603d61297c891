// Epochs of example_torch's model through Trainer with its callbacks, against the same epochs in
// a hand-written LibTorch loop, timed in the same run: the UCI digits data (1078 training rows,
// 359 validation rows, batch 32, 34 batches per epoch), Linear(64, 64) -> ReLU -> Dropout(0.1) ->
// Linear(64, 10), Adam, cross-entropy, one torch thread.
//
//   build/release/benchmarks/bench_torch --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Both sides do the same work per epoch: shuffle, gather each batch, forward, loss, backward,
// step, the training accuracy from the batch's outputs, and a validation pass (loss and accuracy).
// Trainer also runs EarlyStopping (restore_best_weights), ReduceLROnPlateau and a MetricLogger
// (CSV file); BM_TorchTrainerCheckpoint adds ModelCheckpoint writing last.safetensors (the full
// state: weights, Adam's moments, the generator) every epoch. The tiny pair (a single
// Linear(64, 10)) shows the per-batch overhead that a larger model hides. The *VsHandLoop pair
// alternates the two in every iteration and reports their ratio (the figure to quote: the
// separate benchmarks drift apart with the machine's load).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/torch.hpp>
#include <traincb/trainer.hpp>

#include "common/torch_digits.hpp"

namespace {

namespace fs = std::filesystem;

// Epochs per timed iteration: a run of Trainer (with its per-run setup) against as many
// hand-written epochs.
constexpr int kEpochs = 5;

// The example's split (x, y, xv, yv for Trainer) and row-major tensor copies for the hand loop,
// with the labels as int64.
struct Digits : traincb_examples::TorchDigits {
    torch::Tensor tx, ty, txv, tyv;
    Digits() : TorchDigits(traincb_examples::load_torch_digits(1)) {
        tx = to_tensor(x);
        ty = to_tensor(y).squeeze(1).to(torch::kLong);
        txv = to_tensor(xv);
        tyv = to_tensor(yv).squeeze(1).to(torch::kLong);
    }
    static torch::Tensor to_tensor(const Eigen::MatrixXf& m) {
        const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m;
        return torch::from_blob(const_cast<float*>(rm.data()), {rm.rows(), rm.cols()}, torch::kFloat32).clone();
    }
};
const Digits& data() {
    static const Digits d;
    return d;
}

torch::nn::Sequential make_net(bool tiny) {
    torch::manual_seed(1);
    if (tiny) return torch::nn::Sequential(torch::nn::Linear(64, 10));
    return torch::nn::Sequential(torch::nn::Linear(64, 64), torch::nn::ReLU(), torch::nn::Dropout(0.1),
                                 torch::nn::Linear(64, 10));
}

traincb::TorchLoss cross_entropy() {
    return [](const torch::Tensor& logits, const torch::Tensor& y) {
        return torch::nn::functional::cross_entropy(logits, y.squeeze(1).to(torch::kLong));
    };
}

// The epoch a user writes by hand: randperm, index_select, step, accuracy, validation.
void hand_epoch(torch::nn::Sequential& net, torch::optim::Adam& opt, const Digits& d, std::int64_t batch) {
    net->train();
    const std::int64_t n = d.tx.size(0);
    const torch::Tensor perm = torch::randperm(n, torch::kLong);
    double loss_sum = 0;
    std::int64_t correct = 0;
    for (std::int64_t s = 0; s < n; s += batch) {
        const torch::Tensor idx = perm.slice(0, s, std::min(n, s + batch));
        const torch::Tensor xb = d.tx.index_select(0, idx), yb = d.ty.index_select(0, idx);
        opt.zero_grad();
        const torch::Tensor logits = net->forward(xb);
        const torch::Tensor loss = torch::nn::functional::cross_entropy(logits, yb);
        loss.backward();
        opt.step();
        loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
        correct += logits.argmax(1).eq(yb).sum().item<std::int64_t>();
    }
    net->eval();
    const torch::NoGradGuard no_grad;
    const torch::Tensor logits = net->forward(d.txv);
    const double val_loss = torch::nn::functional::cross_entropy(logits, d.tyv).item<double>();
    const auto val_correct = logits.argmax(1).eq(d.tyv).sum().item<std::int64_t>();
    benchmark::DoNotOptimize(loss_sum + val_loss + static_cast<double>(correct + val_correct));
}

void hand_loop(benchmark::State& state, bool tiny) {
    at::set_num_threads(1);
    const Digits& d = data();
    torch::nn::Sequential net = make_net(tiny);
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
    for (auto _ : state)
        for (int e = 0; e < kEpochs; ++e) hand_epoch(net, opt, d, 32);
    state.SetItemsProcessed(state.iterations() * kEpochs * d.x.rows());
}

// A run of kEpochs epochs with fresh callbacks (the model keeps training across runs).
template <class Trainer>
void trainer_run(Trainer& trainer, const Digits& d, const fs::path& dir, bool checkpoint) {
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 1000, .restore_best_weights = true});
    traincb::ReduceLROnPlateau rlr({.monitor = "val_loss", .factor = 0.5, .patience = 1000});
    traincb::MetricLogger logger(
        {std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = dir / "history.csv"})});
    traincb::ModelCheckpoint ckpt({.filepath = dir / "last.safetensors"});
    traincb::CallbackList callbacks(es, rlr, logger);
    if (checkpoint) callbacks.add(ckpt);
    (void)trainer.fit(d.x, d.y,
                      {.epochs = kEpochs,
                       .batch_size = 32,
                       .seed = 1,
                       .validation_data = traincb::ValidationData<float>{d.xv, d.yv},
                       .metrics = {std::make_shared<traincb::metrics::SparseCategoricalAccuracy>(
                           traincb::metrics::SparseCategoricalAccuracyOptions{.name = "accuracy"})}},
                      callbacks);
}

using TorchMlp = traincb::TorchModel<torch::nn::Sequential, torch::optim::Adam>;

void trainer_loop(benchmark::State& state, bool tiny, bool checkpoint) {
    at::set_num_threads(1);
    const Digits& d = data();
    const fs::path dir = fs::temp_directory_path() / ("traincb_bench_torch_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    TorchMlp model(make_net(tiny), torch::optim::AdamOptions(1e-3), cross_entropy());
    traincb::Trainer trainer(model);
    for (auto _ : state) trainer_run(trainer, d, dir, checkpoint);
    state.SetItemsProcessed(state.iterations() * kEpochs * d.x.rows());
    fs::remove_all(dir);
}

// The two alternately in every iteration (a hand-written run of kEpochs epochs, then a Trainer
// run), each timed on its own: the machine's slow and fast periods fall on both alike, and the
// `ratio` counter is Trainer's total time over the hand loop's.
void trainer_vs_hand_loop(benchmark::State& state, bool tiny) {
    using Clock = std::chrono::steady_clock;
    at::set_num_threads(1);
    const Digits& d = data();
    const fs::path dir = fs::temp_directory_path() / ("traincb_bench_torch_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    torch::nn::Sequential net = make_net(tiny);
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
    TorchMlp model(make_net(tiny), torch::optim::AdamOptions(1e-3), cross_entropy());
    traincb::Trainer trainer(model);
    Clock::duration hand{}, with_trainer{};
    for (auto _ : state) {
        const auto t0 = Clock::now();
        for (int e = 0; e < kEpochs; ++e) hand_epoch(net, opt, d, 32);
        const auto t1 = Clock::now();
        trainer_run(trainer, d, dir, false);
        with_trainer += Clock::now() - t1;
        hand += t1 - t0;
    }
    const auto ms = [](Clock::duration t) { return std::chrono::duration<double, std::milli>(t).count(); };
    const auto n = static_cast<double>(state.iterations());
    state.counters["hand_ms"] = ms(hand) / n;
    state.counters["trainer_ms"] = ms(with_trainer) / n;
    state.counters["ratio"] = ms(with_trainer) / ms(hand);
    fs::remove_all(dir);
}

void BM_TorchHandLoop(benchmark::State& state) {
    hand_loop(state, false);
}
void BM_TorchTrainer(benchmark::State& state) {
    trainer_loop(state, false, false);
}
void BM_TorchTrainerCheckpoint(benchmark::State& state) {
    trainer_loop(state, false, true);
}
void BM_TinyTorchHandLoop(benchmark::State& state) {
    hand_loop(state, true);
}
void BM_TinyTorchTrainer(benchmark::State& state) {
    trainer_loop(state, true, false);
}
void BM_TorchTrainerVsHandLoop(benchmark::State& state) {
    trainer_vs_hand_loop(state, false);
}
void BM_TinyTorchTrainerVsHandLoop(benchmark::State& state) {
    trainer_vs_hand_loop(state, true);
}

}  // namespace

BENCHMARK(BM_TorchHandLoop)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TorchTrainer)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TorchTrainerCheckpoint)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TinyTorchHandLoop)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TinyTorchTrainer)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TorchTrainerVsHandLoop)->Unit(benchmark::kMillisecond)->MinTime(4.0);
BENCHMARK(BM_TinyTorchTrainerVsHandLoop)->Unit(benchmark::kMillisecond)->MinTime(4.0);
BENCHMARK_MAIN();
