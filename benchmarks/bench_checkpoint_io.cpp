// Checkpoint I/O cost against its floor, measured in the same run, in alternating rounds:
//  - save_safetensors (atomic: temp file, fsync, rename, directory fsync; with XXH64 checksum)
//    vs a raw write()+fsync() of the same tensor bytes to a file on the same file system.
//    Target: within 1.25x. Also the bare atomic protocol on the same bytes, to split the
//    overhead between the format+checksum and crash safety.
//  - StateSnapshot::take (EarlyStopping's restore_best_weights) vs memcpy of the same tensors.
//    Target: within 1.5x.
// After the runs, the median per-round ratios are printed. Files go to $TRAINCB_BENCH_DIR or the
// system temporary directory, and are removed at exit.
//
//   cmake -S . -B build/io-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DTRAINCB_BUILD_BENCHMARKS=ON
//   cmake --build build/io-rel --target bench_checkpoint_io && build/io-rel/benchmarks/bench_checkpoint_io
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <traincb/io/safetensors.hpp>
#include <traincb/state.hpp>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kMiB = 1 << 20;

fs::path bench_dir() {
    static const fs::path dir = [] {
        const char* env = std::getenv("TRAINCB_BENCH_DIR");
        fs::path d = (env != nullptr && *env != '\0') ? fs::path(env) : fs::temp_directory_path();
        d /= "traincb_bench_io_" + std::to_string(::getpid());
        fs::create_directories(d);
        return d;
    }();
    return dir;
}

// A model-like state of `bytes` bytes: four large F32 matrices and a few small tensors, filled
// with non-constant data.
traincb::StateDict make_state(std::int64_t bytes) {
    traincb::StateDict d;
    std::uint32_t x = 12345;
    auto fill = [&x](traincb::Tensor& t) {
        for (std::size_t i = 0; i + 4 <= t.data.size(); i += 4) {
            x = x * 1664525U + 1013904223U;
            std::memcpy(t.data.data() + i, &x, 4);
        }
    };
    const std::int64_t small = std::int64_t{4} * 1024;  // bias-like tensors
    const std::int64_t big = (bytes - 4 * small) / 4;
    for (int i = 0; i < 4; ++i) {
        traincb::Tensor w{"layer" + std::to_string(i) + ".weight", traincb::DType::F32, {big / 4 / 256, 256}, {}};
        w.data.resize(static_cast<std::size_t>(w.numel() * 4));
        fill(w);
        d.put(std::move(w));
        traincb::Tensor b{"layer" + std::to_string(i) + ".bias", traincb::DType::F32, {small / 4}, {}};
        b.data.resize(static_cast<std::size_t>(small));
        fill(b);
        d.put(std::move(b));
    }
    return d;
}

const traincb::StateDict& state(std::int64_t bytes) {
    static std::map<std::int64_t, traincb::StateDict> cache;
    auto it = cache.find(bytes);
    if (it == cache.end()) it = cache.emplace(bytes, make_state(bytes)).first;
    return it->second;
}

// A model with Eigen members, visited as ModelCheckpoint/EarlyStopping would visit it.
struct Model {
    std::vector<Eigen::MatrixXf> weights;
    std::vector<Eigen::VectorXf> biases;
    std::int64_t step = 0;
    explicit Model(std::int64_t bytes) {
        const Eigen::Index cols = 256;
        const Eigen::Index rows = (bytes / 4 - std::int64_t{4} * 1024) / 4 / cols;
        for (int i = 0; i < 4; ++i) {
            weights.push_back(Eigen::MatrixXf::Random(rows, cols));
            biases.push_back(Eigen::VectorXf::Random(1024));
        }
    }
    void visit_state(traincb::StateVisitor& v) {
        for (std::size_t i = 0; i < weights.size(); ++i) {
            traincb::visit(v, i == 0 ? "w0" : i == 1 ? "w1" : i == 2 ? "w2" : "w3", weights[i]);
            traincb::visit(v, i == 0 ? "b0" : i == 1 ? "b1" : i == 2 ? "b2" : "b3", biases[i]);
        }
        traincb::visit(v, "step", step);
    }
};

using Clock = std::chrono::steady_clock;

template <class Fn>
double seconds(Fn&& fn) {
    const auto t0 = Clock::now();
    fn();
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// The ratios, measured in pairs: each round runs every contender once, in a rotating order, so
// that all of them see the same disk and machine load (the machine is shared: absolute times
// drift by 2x over a run, per-round ratios much less). The reported ratio is the median of the
// per-round ratios; the iteration time is the save's.
void BM_SaveVsRaw(benchmark::State& st) {
    const auto& d = state(st.range(0));
    std::vector<std::span<const std::byte>> pieces;
    for (const auto& t : d.tensors()) pieces.emplace_back(t.data);
    const fs::path raw_path = bench_dir() / "raw.bin";
    const fs::path atomic_path = bench_dir() / "atomic.bin";
    const fs::path save_path = bench_dir() / "save.safetensors";
    auto raw = [&] {
        const int fd = ::open(raw_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) std::abort();
        for (const auto& piece : pieces)
            if (traincb::detail::write_all(fd, piece.data(), piece.size()) != 0) std::abort();
        if (::fsync(fd) != 0) std::abort();
        ::close(fd);
    };
    auto atomic = [&] { traincb::io::write_file_atomic(atomic_path, pieces, "bench"); };
    auto save = [&] { traincb::io::save_safetensors(save_path, d, {{"format", "pt"}}, {.checksum = true}); };
    std::vector<double> t_raw, t_atomic, t_save, save_raw, save_atomic, atomic_raw;
    int round = 0;
    for (auto _ : st) {
        double r = 0, a = 0, s = 0;
        for (int k = 0; k < 3; ++k) {
            switch ((round + k) % 3) {
                case 0:
                    r = seconds(raw);
                    break;
                case 1:
                    a = seconds(atomic);
                    break;
                default:
                    s = seconds(save);
                    break;
            }
        }
        ++round;
        st.SetIterationTime(s);
        t_raw.push_back(r);
        t_atomic.push_back(a);
        t_save.push_back(s);
        save_raw.push_back(s / r);
        save_atomic.push_back(s / a);
        atomic_raw.push_back(a / r);
    }
    st.counters["raw_ms"] = median(t_raw) * 1e3;
    st.counters["atomic_ms"] = median(t_atomic) * 1e3;
    st.counters["save_ms"] = median(t_save) * 1e3;
    st.counters["save/raw"] = median(save_raw);
    st.counters["save/atomic"] = median(save_atomic);
    st.counters["atomic/raw"] = median(atomic_raw);
    st.SetBytesProcessed(st.iterations() * st.range(0));
}

void BM_SnapshotVsMemcpy(benchmark::State& st) {
    Model m(st.range(0));
    traincb::StateSnapshot snap;
    auto visit = [&m](traincb::StateVisitor& v) { m.visit_state(v); };
    snap.take(visit);  // sizes the buffers once, as in training after the first epoch
    std::vector<std::vector<float>> dst;
    for (const auto& w : m.weights) dst.emplace_back(static_cast<std::size_t>(w.size()));
    for (const auto& b : m.biases) dst.emplace_back(static_cast<std::size_t>(b.size()));
    std::int64_t step_copy = 0;
    auto copy = [&] {
        for (std::size_t i = 0; i < m.weights.size(); ++i) {
            std::memcpy(dst[i].data(), m.weights[i].data(), static_cast<std::size_t>(m.weights[i].size()) * 4);
            std::memcpy(dst[4 + i].data(), m.biases[i].data(), static_cast<std::size_t>(m.biases[i].size()) * 4);
        }
        std::memcpy(&step_copy, &m.step, sizeof step_copy);
        benchmark::DoNotOptimize(dst.data());
        benchmark::DoNotOptimize(step_copy);
        benchmark::ClobberMemory();
    };
    auto take = [&] {
        snap.take(visit);
        benchmark::ClobberMemory();
    };
    std::vector<double> t_take, t_copy, ratio;
    int round = 0;
    for (auto _ : st) {
        double t = 0, c = 0;
        if (round++ % 2 == 0) {
            t = seconds(take);
            c = seconds(copy);
        } else {
            c = seconds(copy);
            t = seconds(take);
        }
        st.SetIterationTime(t);
        t_take.push_back(t);
        t_copy.push_back(c);
        ratio.push_back(t / c);
    }
    st.counters["take_us"] = median(t_take) * 1e6;
    st.counters["memcpy_us"] = median(t_copy) * 1e6;
    st.counters["take/memcpy"] = median(ratio);
    st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(snap.bytes()));
}

// The checksum's own speed (CPU only, so free of the disk's noise): XXH64 over 64 MiB vs a memcpy
// of the same bytes. The hash adds one read pass over the tensors to a save.
void BM_ChecksumVsMemcpy(benchmark::State& st) {
    const auto& d = state(st.range(0));
    std::vector<std::vector<std::byte>> dst;
    for (const auto& t : d.tensors()) dst.emplace_back(t.data.size());
    auto hash = [&] {
        traincb::detail::Xxh64 h;
        for (const auto& t : d.tensors()) h.update(t.data);
        benchmark::DoNotOptimize(h.digest());
    };
    auto copy = [&] {
        for (std::size_t i = 0; i < dst.size(); ++i)
            std::memcpy(dst[i].data(), d.tensors()[i].data.data(), dst[i].size());
        benchmark::ClobberMemory();
    };
    std::vector<double> t_hash, t_copy, ratio;
    int round = 0;
    for (auto _ : st) {
        double h = 0, c = 0;
        if (round++ % 2 == 0) {
            h = seconds(hash);
            c = seconds(copy);
        } else {
            c = seconds(copy);
            h = seconds(hash);
        }
        st.SetIterationTime(h);
        t_hash.push_back(h);
        t_copy.push_back(c);
        ratio.push_back(h / c);
    }
    st.counters["hash_ms"] = median(t_hash) * 1e3;
    st.counters["memcpy_ms"] = median(t_copy) * 1e3;
    st.counters["hash/memcpy"] = median(ratio);
    st.SetBytesProcessed(st.iterations() * st.range(0));
}

void register_benchmarks() {
    benchmark::RegisterBenchmark("checksum_vs_memcpy", BM_ChecksumVsMemcpy)
        ->Arg(64 * kMiB)
        ->Iterations(40)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    const std::pair<std::int64_t, int> io_sizes[] = {{1 * kMiB, 60}, {64 * kMiB, 15}, {512 * kMiB, 7}};
    for (const auto& [bytes, rounds] : io_sizes)
        benchmark::RegisterBenchmark("save_vs_raw_write_fsync", BM_SaveVsRaw)
            ->Arg(bytes)
            ->Iterations(rounds)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    for (const auto& [bytes, rounds] : {std::pair<std::int64_t, int>{1 * kMiB, 2000}, {64 * kMiB, 100}})
        benchmark::RegisterBenchmark("snapshot_take_vs_memcpy", BM_SnapshotVsMemcpy)
            ->Arg(bytes)
            ->Iterations(rounds)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
}

// Prints the console report as usual, then a summary of the ratios against their targets.
class RatioReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            const std::string mib = std::to_string(std::stoll(r.run_name.args) / kMiB) + " MiB";
            for (const auto& [name, target] : {std::pair<std::string, double>{"save/raw", 1.25},
                                               {"save/atomic", 1.25},
                                               {"atomic/raw", 0.0},
                                               {"hash/memcpy", 0.0},
                                               {"take/memcpy", 1.5}})
                if (const auto it = r.counters.find(name); it != r.counters.end())
                    lines_.push_back({name, mib, it->second.value, target});
        }
        ConsoleReporter::ReportRuns(runs);
    }
    void print_ratios() const {
        std::printf(
            "\nmedian per-round ratios (targets: save/raw <= 1.25, take/memcpy <= 1.5;\n"
            "save/atomic = cost of the format and checksum, atomic/raw = cost of crash safety)\n");
        for (const auto& l : lines_)
            std::printf("  %-12s %8s: %.3fx  %s\n", l.name.c_str(), l.size.c_str(), l.value,
                        l.target == 0.0       ? ""
                        : l.value <= l.target ? "ok"
                                              : "ABOVE TARGET");
    }

private:
    struct Line {
        std::string name, size;
        double value, target;
    };
    std::vector<Line> lines_;
};

}  // namespace

int main(int argc, char** argv) {
    register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.print_ratios();
    benchmark::Shutdown();
    std::error_code ec;
    fs::remove_all(bench_dir(), ec);
    return 0;
}
