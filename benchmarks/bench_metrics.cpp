// Benchmarks for traincb/metrics.hpp. Every metric runs beside a bare single pass over the same
// memory (the sum of both inputs, in double, with the same SIMD vectors and four accumulators as
// the metrics: 2 lanes on SSE2, 4 with AVX2), in the same run; each benchmark reports its time over
// that baseline as the counter "x_bare", and a summary table is printed at the end. Times are
// process CPU time (steadier than wall time on a shared machine).
//
//   cmake -S . -B build/metrics-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DTRAINCB_BUILD_BENCHMARKS=ON
//   cmake --build build/metrics-rel --target bench_metrics
//   build/metrics-rel/benchmarks/bench_metrics --benchmark_repetitions=5
//
// The kernels choose their instruction set at compile time: add -DTRAINCB_BENCH_NATIVE=ON (builds
// with -march=native) to measure the AVX2 + FMA kernels on a machine that has them.
//
// Targets: accuracy, MSE and MAE within 1.5x of the bare pass; binary cross-entropy within 4x.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <random>
#include <string>
#include <traincb/metrics.hpp>

namespace {

namespace m = traincb::metrics;
namespace simd = traincb::detail::simd;

// Process CPU time in ns (wall time where POSIX clocks are missing).
double now_ns() {
#if defined(CLOCK_PROCESS_CPUTIME_ID)
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
#else
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
#endif
}

// ---- Data (built once, on first use) ----

template <class T>
struct Binary {
    Eigen::Matrix<T, Eigen::Dynamic, 1> y_true, y_pred, logits;
};

template <class T>
const Binary<T>& binary_data(Eigen::Index n) {
    static std::map<Eigen::Index, Binary<T>> cache;
    auto it = cache.find(n);
    if (it != cache.end()) return it->second;
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    Binary<T> d;
    d.y_true.resize(n);
    d.y_pred.resize(n);
    d.logits.resize(n);
    for (Eigen::Index i = 0; i < n; ++i) {
        const double p = u(rng);
        d.y_true(i) = static_cast<T>(u(rng) < p ? 1 : 0);
        d.y_pred(i) = static_cast<T>(p);
        d.logits(i) = static_cast<T>(std::log(p / (1 - p)));
    }
    return cache.emplace(n, std::move(d)).first->second;
}

struct Categorical {
    static constexpr Eigen::Index kRows = 1000000, kCols = 10;
    Eigen::MatrixXf logits, probs, onehot;  // column-major, as the Trainer passes them
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> logits_rm, onehot_rm, probs_rm;
    Eigen::MatrixXf labels;  // N x 1 class indices, as the Trainer passes sparse targets
};

const Categorical& categorical_data() {
    static const Categorical d = [] {
        Categorical c;
        std::mt19937_64 rng(7);
        std::normal_distribution<float> g(0.0f, 2.0f);
        std::uniform_int_distribution<int> cls(0, Categorical::kCols - 1);
        c.logits.resize(Categorical::kRows, Categorical::kCols);
        c.labels.resize(Categorical::kRows, 1);
        c.onehot = Eigen::MatrixXf::Zero(Categorical::kRows, Categorical::kCols);
        for (Eigen::Index i = 0; i < Categorical::kRows; ++i) {
            const int y = cls(rng);
            c.labels(i, 0) = static_cast<float>(y);
            c.onehot(i, y) = 1.0f;
            for (Eigen::Index j = 0; j < Categorical::kCols; ++j) c.logits(i, j) = g(rng) + (j == y ? 2.0f : 0.0f);
        }
        c.probs = c.logits.array().exp();
        c.probs.array().colwise() /= c.probs.array().rowwise().sum();
        c.logits_rm = c.logits;
        c.onehot_rm = c.onehot;
        c.probs_rm = c.probs;
        return c;
    }();
    return d;
}

// ---- The baseline: one pass summing both inputs ----

template <class T>
double bare_sum(const T* p, Eigen::Index n) {
    using V = simd::VD;
    V a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    Eigen::Index i = 0;
    for (; i + 4 * V::size <= n; i += 4 * V::size) {
        a0 = a0 + V::load(p + i);
        a1 = a1 + V::load(p + i + V::size);
        a2 = a2 + V::load(p + i + 2 * V::size);
        a3 = a3 + V::load(p + i + 3 * V::size);
    }
    double s = ((a0 + a1) + (a2 + a3)).sum();
    for (; i < n; ++i) s += static_cast<double>(p[i]);
    return s;
}

template <class A, class B>
double bare_pass(const A& a, const B& b) {
    return bare_sum(a.data(), a.size()) + bare_sum(b.data(), b.size());
}

// ---- Timing and the summary ----

std::map<std::string, double>& best_ns() {
    static std::map<std::string, double> m;
    return m;
}

// Runs f under the benchmark loop, records the fastest ns/iteration under `key`, and reports the
// ratio to the baseline `base` (recorded by an earlier benchmark of this run).
template <class F>
void timed(benchmark::State& state, const std::string& key, const std::string& base, double bytes, F&& f) {
    const double t0 = now_ns();
    for (auto _ : state) benchmark::DoNotOptimize(f());
    const double ns = (now_ns() - t0) / static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
    auto& best = best_ns()[key];
    if (best == 0 || ns < best) best = ns;
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes) * state.iterations());
    if (!base.empty() && best_ns().count(base) != 0) state.counters["x_bare"] = ns / best_ns()[base];
}

// ---- Elementwise metrics, N x 1 ----

template <class T>
std::string tag(Eigen::Index n) {
    return std::string(sizeof(T) == 4 ? "f32" : "f64") + "/" + (n >= 10000000 ? "1e7" : "1e6");
}

template <class T>
void BM_bare(benchmark::State& s) {
    const auto& d = binary_data<T>(s.range(0));
    timed(s, "bare " + tag<T>(s.range(0)), "", 2.0 * sizeof(T) * d.y_true.size(),
          [&] { return bare_pass(d.y_true, d.y_pred); });
}

#define TRAINCB_ELEMENTWISE_BENCH(NAME, EXPR)                                                                     \
    template <class T>                                                                                            \
    void BM_##NAME(benchmark::State& s) {                                                                         \
        const auto& d = binary_data<T>(s.range(0));                                                               \
        timed(s, #NAME " " + tag<T>(s.range(0)), "bare " + tag<T>(s.range(0)), 2.0 * sizeof(T) * d.y_true.size(), \
              [&] { return EXPR; });                                                                              \
    }
TRAINCB_ELEMENTWISE_BENCH(binary_accuracy, m::binary_accuracy(d.y_true, d.y_pred))
TRAINCB_ELEMENTWISE_BENCH(mean_squared_error, m::mean_squared_error(d.y_true, d.y_pred))
TRAINCB_ELEMENTWISE_BENCH(mean_absolute_error, m::mean_absolute_error(d.y_true, d.y_pred))
TRAINCB_ELEMENTWISE_BENCH(binary_crossentropy, m::binary_crossentropy(d.y_true, d.y_pred))
TRAINCB_ELEMENTWISE_BENCH(binary_crossentropy_logits, m::binary_crossentropy(d.y_true, d.logits, true))
TRAINCB_ELEMENTWISE_BENCH(roc_auc, m::roc_auc(d.y_true, d.y_pred))
#undef TRAINCB_ELEMENTWISE_BENCH

#define TRAINCB_REGISTER_ELEMENTWISE(NAME)                                                             \
    BENCHMARK_TEMPLATE(BM_##NAME, double)->Arg(1000000)->Arg(10000000)->Unit(benchmark::kMillisecond); \
    BENCHMARK_TEMPLATE(BM_##NAME, float)->Arg(1000000)->Arg(10000000)->Unit(benchmark::kMillisecond);
TRAINCB_REGISTER_ELEMENTWISE(bare)
TRAINCB_REGISTER_ELEMENTWISE(binary_accuracy)
TRAINCB_REGISTER_ELEMENTWISE(mean_squared_error)
TRAINCB_REGISTER_ELEMENTWISE(mean_absolute_error)
TRAINCB_REGISTER_ELEMENTWISE(binary_crossentropy)
TRAINCB_REGISTER_ELEMENTWISE(binary_crossentropy_logits)
#undef TRAINCB_REGISTER_ELEMENTWISE
BENCHMARK_TEMPLATE(BM_roc_auc, double)->Arg(1000000)->Unit(benchmark::kMillisecond);

// ---- Categorical metrics, 1M x 10 floats ----

constexpr double kCatBytes = 4.0 * Categorical::kRows * Categorical::kCols;

void BM_cat_bare_labels(benchmark::State& s) {
    const auto& d = categorical_data();
    timed(s, "bare cat+labels", "", kCatBytes + 4.0 * Categorical::kRows,
          [&] { return bare_pass(d.logits, d.labels); });
}
void BM_cat_bare_onehot(benchmark::State& s) {
    const auto& d = categorical_data();
    timed(s, "bare cat+onehot", "", 2 * kCatBytes, [&] { return bare_pass(d.logits, d.onehot); });
}

#define TRAINCB_CAT_BENCH(NAME, BASE, BYTES, EXPR)          \
    void BM_##NAME(benchmark::State& s) {                   \
        const auto& d = categorical_data();                 \
        timed(s, #NAME, BASE, BYTES, [&] { return EXPR; }); \
    }                                                       \
    BENCHMARK(BM_##NAME)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_cat_bare_labels)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_cat_bare_onehot)->Unit(benchmark::kMillisecond);
TRAINCB_CAT_BENCH(sparse_cce_logits, "bare cat+labels", kCatBytes,
                  m::sparse_categorical_crossentropy(d.labels, d.logits, true))
TRAINCB_CAT_BENCH(sparse_cce_probs, "bare cat+labels", kCatBytes, m::sparse_categorical_crossentropy(d.labels, d.probs))
TRAINCB_CAT_BENCH(sparse_categorical_accuracy, "bare cat+labels", kCatBytes,
                  m::sparse_categorical_accuracy(d.labels, d.logits))
TRAINCB_CAT_BENCH(categorical_accuracy, "bare cat+onehot", 2 * kCatBytes, m::categorical_accuracy(d.onehot, d.logits))
TRAINCB_CAT_BENCH(cce_logits, "bare cat+onehot", 2 * kCatBytes, m::categorical_crossentropy(d.onehot, d.logits, true))
TRAINCB_CAT_BENCH(cce_probs, "bare cat+onehot", 2 * kCatBytes, m::categorical_crossentropy(d.onehot, d.probs))
TRAINCB_CAT_BENCH(top_k_categorical_accuracy, "bare cat+onehot", 2 * kCatBytes,
                  m::top_k_categorical_accuracy(d.onehot, d.logits, 5))
TRAINCB_CAT_BENCH(sparse_cce_logits_rowmajor, "bare cat+labels", kCatBytes,
                  m::sparse_categorical_crossentropy(d.labels, d.logits_rm, true))
TRAINCB_CAT_BENCH(categorical_accuracy_rowmajor, "bare cat+onehot", 2 * kCatBytes,
                  m::categorical_accuracy(d.onehot_rm, d.logits_rm))
#undef TRAINCB_CAT_BENCH

// The streaming object through the Trainer's interface (virtual update on Ref), batches of 256.
void BM_sparse_cce_logits_streaming_b256(benchmark::State& s) {
    const auto& d = categorical_data();
    timed(s, "sparse_cce_logits_streaming_b256", "bare cat+labels", kCatBytes, [&] {
        m::SparseCategoricalCrossentropy loss({.from_logits = true});
        m::Metric& metric = loss;
        for (Eigen::Index r = 0; r < Categorical::kRows; r += 256) {
            const Eigen::Index b = std::min<Eigen::Index>(256, Categorical::kRows - r);
            metric.update(d.labels.middleRows(r, b), d.logits.middleRows(r, b));
        }
        return metric.result();
    });
}
BENCHMARK(BM_sparse_cce_logits_streaming_b256)->Unit(benchmark::kMillisecond);

// Label metrics on 1e6 labels of 10 classes.
void BM_labels_bare(benchmark::State& s) {
    const auto& d = categorical_data();
    static const Eigen::VectorXf pred = d.labels.col(0).reverse();
    timed(s, "bare labels", "", 8.0 * Categorical::kRows, [&] { return bare_pass(d.labels, pred); });
}
void BM_f1_macro(benchmark::State& s) {
    const auto& d = categorical_data();
    static const Eigen::VectorXf pred = d.labels.col(0).reverse();
    timed(s, "f1_score macro", "bare labels", 8.0 * Categorical::kRows,
          [&] { return m::f1_score(d.labels.col(0), pred, m::Average::Macro); });
}
void BM_confusion_matrix(benchmark::State& s) {
    const auto& d = categorical_data();
    static const Eigen::VectorXf pred = d.labels.col(0).reverse();
    timed(s, "confusion_matrix", "bare labels", 8.0 * Categorical::kRows,
          [&] { return m::confusion_matrix(d.labels.col(0), pred, 10).sum(); });
}
BENCHMARK(BM_labels_bare)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_f1_macro)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_confusion_matrix)->Unit(benchmark::kMillisecond);

// Which baseline each summary line divides by.
std::string base_of(const std::string& key) {
    if (key.rfind("bare", 0) == 0) return "";
    const auto sp = key.rfind(' ');
    if (sp != std::string::npos && (key.find("f32/") != std::string::npos || key.find("f64/") != std::string::npos))
        return "bare " + key.substr(sp + 1);
    if (key == "f1_score macro" || key == "confusion_matrix") return "bare labels";
    if (key.find("sparse") != std::string::npos) return "bare cat+labels";
    return "bare cat+onehot";
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    std::printf("\nSummary (fastest run of each; x_bare = time / bare pass over the same memory; %s kernels):\n",
                simd::VD::size == 4   ? "AVX2+FMA"
                : simd::VD::size == 2 ? "SSE2"
                                      : "scalar");
    std::printf("%-40s %12s %8s\n", "benchmark", "ms", "x_bare");
    for (const auto& [key, ns] : best_ns()) {
        const std::string base = base_of(key);
        const auto it = best_ns().find(base);
        if (base.empty() || it == best_ns().end())
            std::printf("%-40s %12.3f %8s\n", key.c_str(), ns / 1e6, "-");
        else
            std::printf("%-40s %12.3f %8.2f\n", key.c_str(), ns / 1e6, ns / it->second);
    }
    return 0;
}
