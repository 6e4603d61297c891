// traincb's own collective cost in a data-parallel Trainer::fit over MPI, against the epoch's time.
// Runs under mpirun (built when MPI is found, with target traincb::mpi):
//
//   cmake --preset release && cmake --build build/release --target bench_distributed
//   mpirun --allow-run-as-root --oversubscribe -np 1 build/release/benchmarks/bench_distributed
//   mpirun --allow-run-as-root --oversubscribe -np 2 build/release/benchmarks/bench_distributed
//   mpirun --allow-run-as-root --oversubscribe -np 4 build/release/benchmarks/bench_distributed
//
// (--allow-run-as-root only as root, --oversubscribe only with more ranks than cores: both Open
// MPI's.) Every rank runs every benchmark with a fixed iteration count (the collectives must
// pair); rank 0 reports, the other ranks run with a reporter that prints nothing.
//
// The run: a linear model trained by SGD on the mean squared error, its step summing the
// gradient over the ranks itself (Communicator::sum on the raw MpiCommunicator, as a user's
// allreduce would), 8192 training rows of 16 features, batch_size 32 per rank (256 / np steps
// per epoch), 1024 validation rows, with EarlyStopping on val_loss, a MetricLogger writing to a
// MemorySink, and two metrics (MAE, MSE). One iteration is one fit of 5 epochs.
//
// BM_DataParallelFit/raw gives Trainer the MpiCommunicator itself: the epoch's time as a user
// sees it. BM_DataParallelFit/counted gives it a wrapper that forwards every call to the same
// MpiCommunicator and counts and times the calls traincb makes (the model's own sums go to the
// raw communicator, so they are not counted), by phase: per batch (the votes after each batch),
// per epoch (on_epoch_begin's vote, the epoch's metric reduction, on_epoch_end's vote) and per
// fit (the model broadcast and on_train_begin's vote; on_train_end's vote). Counters, per epoch
// unless named otherwise (a fit's own collectives are spread over its 5 epochs in
// traincb_us_per_epoch and ratio):
//   epoch_ms              wall time of an epoch
//   batches               steps per epoch
//   batch_colls           traincb collectives in the batch phase (the per-batch votes)
//   epoch_colls           traincb collectives in the epoch phase
//   fit_colls_per_fit     traincb collectives at the start and end of a fit
//   traincb_us_per_epoch  time in traincb's collectives (waiting for other ranks included)
//   compute_ms            epoch_ms minus that: the model's steps, its own sums, validation,
//                         the callbacks' work
//   ratio                 traincb's collective time / the epoch's time (rank 0)
//   ratio_max_rank        the same, the largest over the ranks
// At np 1 Trainer runs as one process (no vote, no reduction), but CallbackList::stop_requested
// still asks the communicator (Communicator::any, an MPI_Allreduce over one rank) after every
// batch and epoch: those calls are what np 1 counts.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/metrics.hpp>
#include <traincb/mpi.hpp>
#include <traincb/sinks/memory.hpp>
#include <traincb/trainer.hpp>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kInputs = 16;
constexpr Eigen::Index kRows = 8192;
constexpr Eigen::Index kValRows = 1024;
constexpr int kBatch = 32;
constexpr int kEpochsPerFit = 5;
constexpr int kIterations = 50;

enum Phase : std::size_t { kFit, kBatchPhase, kEpochPhase, kPhases };

// Forwards every collective to `inner` and counts the calls and the seconds spent in them, by the
// phase the run is in (set by the model and PhaseProbe).
class CountingCommunicator final : public traincb::Communicator {
public:
    explicit CountingCommunicator(traincb::Communicator& inner) : inner_(inner) {}
    Phase phase = kFit;
    std::array<std::int64_t, kPhases> calls{};
    std::array<double, kPhases> seconds{};

    [[nodiscard]] int rank() const noexcept override { return inner_.rank(); }
    [[nodiscard]] int size() const noexcept override { return inner_.size(); }
    [[nodiscard]] bool any(bool local) override {
        const Timer t = start();
        return inner_.any(local);
    }
    [[nodiscard]] bool all(bool local) override {
        const Timer t = start();
        return inner_.all(local);
    }
    void sum(std::span<double> values) override {
        const Timer t = start();
        inner_.sum(values);
    }
    void broadcast(std::span<std::byte> bytes, int root) override {
        const Timer t = start();
        inner_.broadcast(bytes, root);
    }
    void sum_int64(std::span<std::int64_t> values) override {
        const Timer t = start();
        inner_.sum_int64(values);
    }
    void max_int64(std::span<std::int64_t> values) override {
        const Timer t = start();
        inner_.max_int64(values);
    }
    void broadcast_resize(std::vector<std::byte>& bytes, int root) override {
        const Timer t = start();
        inner_.broadcast_resize(bytes, root);
    }
    [[nodiscard]] std::vector<std::vector<std::byte>> all_gather(std::span<const std::byte> mine) override {
        const Timer t = start();
        return inner_.all_gather(mine);
    }
    void barrier() override {
        const Timer t = start();
        inner_.barrier();
    }

private:
    // Adds the time from its construction to its destruction to the phase's seconds.
    struct Timer {
        Timer(CountingCommunicator& counter, Phase p) : c(counter), phase(p) {}
        Timer(const Timer&) = delete;
        Timer& operator=(const Timer&) = delete;
        ~Timer() { c.seconds[phase] += std::chrono::duration<double>(Clock::now() - t0).count(); }
        CountingCommunicator& c;
        Phase phase;
        Clock::time_point t0 = Clock::now();
    };
    Timer start() {
        ++calls[phase];
        return Timer{*this, phase};
    }
    traincb::Communicator& inner_;
};

// y = x w + b by SGD on the mean squared error; the gradient is summed over the ranks on the raw
// communicator and divided by the global batch's rows (tests/test_data_parallel.cpp's DpLinear).
// Its steps and validation predictions mark the phase for the counting communicator.
struct BenchLinear {
    Eigen::MatrixXd w, b, out;
    double lr = 0.01;
    traincb::Communicator* comm = nullptr;
    CountingCommunicator* phases = nullptr;
    std::vector<double> g;
    std::int64_t steps = 0;

    BenchLinear() : w(Eigen::MatrixXd::Zero(kInputs, 1)), b(Eigen::MatrixXd::Zero(1, 1)), g(kInputs + 2) {}

    traincb::BatchResult<const Eigen::MatrixXd&> train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
        if (phases != nullptr) phases->phase = kBatchPhase;
        out = x * w;
        out.array() += b(0, 0);
        const Eigen::MatrixXd e = out - y;
        const Eigen::MatrixXd gw = x.transpose() * e * 2.0;
        for (Eigen::Index i = 0; i < kInputs; ++i) g[static_cast<std::size_t>(i)] = gw(i, 0);
        g[kInputs] = 2.0 * e.sum();
        g[kInputs + 1] = static_cast<double>(x.rows());
        comm->sum(g);
        for (Eigen::Index i = 0; i < kInputs; ++i) w(i, 0) -= lr * g[static_cast<std::size_t>(i)] / g.back();
        b(0, 0) -= lr * g[kInputs] / g.back();
        ++steps;
        return {e.squaredNorm() / static_cast<double>(e.size()), out};
    }
    [[nodiscard]] Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const {
        if (phases != nullptr) phases->phase = kEpochPhase;
        Eigen::MatrixXd p = x * w;
        p.array() += b(0, 0);
        return p;
    }
    [[nodiscard]] double loss(const Eigen::MatrixXd& t, const Eigen::MatrixXd& p) const {
        return (p - t).squaredNorm() / static_cast<double>(p.size());
    }
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit(v, "b", b);
    }
};

// Marks the epoch phase at on_epoch_begin and the fit phase at on_train_end. Both hooks vote
// whatever this callback does (MetricLogger overrides on_epoch_begin; on_train_end always votes),
// so the probe adds no collective.
struct PhaseProbe final : traincb::Callback {
    CountingCommunicator* phases = nullptr;
    void on_epoch_begin(traincb::Context&) override {
        if (phases != nullptr) phases->phase = kEpochPhase;
    }
    void on_train_end(traincb::Context&) override {
        if (phases != nullptr) phases->phase = kFit;
    }
};

struct Data {
    Eigen::MatrixXd x, y;
    traincb::ValidationData<double> val;
    Data() {
        std::mt19937_64 rng(11);
        std::uniform_real_distribution<double> u(-1.0, 1.0);
        auto fill = [&](Eigen::Index n, Eigen::MatrixXd& xs, Eigen::MatrixXd& ys) {
            xs.resize(n, kInputs);
            ys.resize(n, 1);
            for (Eigen::Index i = 0; i < n; ++i) {
                double t = 0.5;
                for (Eigen::Index j = 0; j < kInputs; ++j) {
                    xs(i, j) = u(rng);
                    t += xs(i, j) * (static_cast<double>(j % 5) - 2.0) * 0.25;
                }
                ys(i, 0) = t + 0.1 * u(rng);
            }
        };
        fill(kRows, x, y);
        fill(kValRows, val.x, val.y);
    }
};
const Data& data() {
    static const Data d;
    return d;
}

void BM_DataParallelFit(benchmark::State& state, bool counted) {
    const Data& d = data();
    traincb::MpiCommunicator mpi;
    CountingCommunicator counter(mpi);
    BenchLinear model;
    model.comm = &mpi;
    model.phases = counted ? &counter : nullptr;
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 1 << 30});
    traincb::MetricLogger logger({std::make_shared<traincb::sinks::MemorySink>()});
    PhaseProbe probe;
    probe.phases = model.phases;
    traincb::Trainer trainer(model);
    traincb::FitOptions<double> o;
    o.batch_size = kBatch;
    o.seed = 7;
    o.validation_data = d.val;
    o.metrics = {std::make_shared<traincb::metrics::MeanAbsoluteError>(),
                 std::make_shared<traincb::metrics::MeanSquaredError>()};
    o.communicator = counted ? static_cast<traincb::Communicator*>(&counter) : &mpi;
    double seconds = 0;
    int epoch = 0;
    for (auto _ : state) {
        o.initial_epoch = epoch;
        o.epochs = epoch + kEpochsPerFit;
        counter.phase = kFit;
        const auto t0 = Clock::now();
        const traincb::History h = trainer.fit(d.x, d.y, o, es, logger, probe);
        seconds += std::chrono::duration<double>(Clock::now() - t0).count();
        benchmark::DoNotOptimize(h);
        epoch += kEpochsPerFit;
    }
    const auto epochs = static_cast<double>(state.iterations()) * kEpochsPerFit;
    state.counters["ranks"] = mpi.size();
    state.counters["epoch_ms"] = seconds / epochs * 1e3;
    state.counters["batches"] = static_cast<double>(model.steps) / epochs;
    if (!counted) return;
    double traincb_seconds = 0;
    for (double s : counter.seconds) traincb_seconds += s;
    state.counters["batch_colls"] = static_cast<double>(counter.calls[kBatchPhase]) / epochs;
    state.counters["epoch_colls"] = static_cast<double>(counter.calls[kEpochPhase]) / epochs;
    state.counters["fit_colls_per_fit"] =
        static_cast<double>(counter.calls[kFit]) / static_cast<double>(state.iterations());
    state.counters["traincb_us_per_epoch"] = traincb_seconds / epochs * 1e6;
    state.counters["compute_ms"] = (seconds - traincb_seconds) / epochs * 1e3;
    double ratio = traincb_seconds / seconds;
    state.counters["ratio"] = ratio;
    MPI_Allreduce(MPI_IN_PLACE, &ratio, 1, MPI_DOUBLE, MPI_MAX, mpi.native());
    state.counters["ratio_max_rank"] = ratio;
}
BENCHMARK_CAPTURE(BM_DataParallelFit, raw, false)
    ->Iterations(kIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DataParallelFit, counted, true)
    ->Iterations(kIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Rank > 0: runs every benchmark (so that the collectives pair) and prints nothing.
class NullReporter final : public benchmark::BenchmarkReporter {
public:
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
    traincb::MpiSession session(argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (traincb::MpiSession::world_rank() == 0) {
        benchmark::RunSpecifiedBenchmarks();
    } else {
        NullReporter quiet;
        benchmark::RunSpecifiedBenchmarks(&quiet);
    }
    benchmark::Shutdown();
    return 0;
}
