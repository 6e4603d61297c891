// Checkpoint I/O cost against its floor, measured in the same run, in alternating rounds:
//  - save_safetensors (atomic: temp file, fsync, rename, directory fsync; with XXH64 checksum)
//    vs a raw write()+fsync() of the same tensor bytes to a file on the same file system.
//    Target: within 1.25x. Also the bare atomic protocol on the same bytes (write_file_atomic:
//    write, fsync, rename, directory fsync: the floor of any crash-safe save), to split the
//    overhead between the format+checksum (save/atomic) and crash safety (atomic/raw). Every
//    contender replaces an existing file of the same size in every timed round.
//  - Where a save's time goes: the real save_safetensors with each system call timed through the
//    FileOps seam, next to the raw baseline timed call by call (printed as a table at the end).
//  - StateSnapshot::take (EarlyStopping's restore_best_weights) vs memcpy of the same tensors.
//    Target: within 1.5x.
//  - The time the TRAINING THREAD is blocked per ModelCheckpoint save (the epoch-end hooks that
//    save), with async_save against a synchronous save, against a memcpy of the model's bytes
//    into warm buffers, in the same rounds. Target: async within 1.5x of the memcpy.
// After the runs, the median per-round ratios are printed. Files go to $TRAINCB_BENCH_DIR or the
// system temporary directory, and are removed at exit.
//
//   cmake -S . -B build/io-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DTRAINCB_BUILD_BENCHMARKS=ON
//   cmake --build build/io-rel --target bench_checkpoint_io && build/io-rel/benchmarks/bench_checkpoint_io
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <traincb/callback.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
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
        traincb::visit_training_state(v, "step", step);
    }
};

using Clock = std::chrono::steady_clock;

template <class Fn>
double seconds(Fn&& fn) {
    const auto t0 = Clock::now();
    fn();
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The CPU time the calling thread has used, in seconds: with a wall time much above it, the thread
// was waiting or preempted.
double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
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
    // An untimed round first, so that in every timed round each contender replaces an existing
    // file of the same size (freeing its blocks is part of the work: O_TRUNC in raw, the rename
    // in the others) and none pays for growing the directory.
    raw();
    atomic();
    save();
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

// Where a save's time goes. The real save_safetensors runs with timed wrappers installed through
// the FileOps seam (the same path, no copy of its code), so each system call it makes is timed
// where it happens; "cpu" is the rest (validation, header, checksum, copies). The raw baseline is
// timed call by call. Counters are per-phase medians in microseconds.
enum Phase { kOpenTmp, kWrite, kFsyncFile, kCloseFile, kRename, kOpenDir, kFsyncDir, kCloseDir, kDrop, kPhases };
constexpr const char* kPhaseNames[kPhases] = {"open",     "write",     "fsync_file", "close_file", "rename",
                                              "open_dir", "fsync_dir", "close_dir",  "drop"};
struct PhaseClock {
    static inline std::array<double, kPhases> t{};
    static inline int dir_fd = -1;
    template <class Fn>
    static auto time(Phase p, Fn&& fn) {
        const auto t0 = Clock::now();
        auto r = fn();
        t[p] += std::chrono::duration<double>(Clock::now() - t0).count();
        return r;
    }
};
traincb::detail::FileOps timed_file_ops() {
    traincb::detail::FileOps f = traincb::detail::system_file_ops();
    f.open = [](const char* p, int flags, mode_t mode) {
        const bool dir = (flags & O_DIRECTORY) != 0;
        const int fd = PhaseClock::time(dir ? kOpenDir : kOpenTmp, [&] { return ::open(p, flags, mode); });
        if (dir) PhaseClock::dir_fd = fd;
        return fd;
    };
    f.write = [](int fd, const void* b, std::size_t n) {
        return PhaseClock::time(kWrite, [&] { return ::write(fd, b, n); });
    };
    f.fsync = [](int fd) {
        return PhaseClock::time(fd == PhaseClock::dir_fd ? kFsyncDir : kFsyncFile, [&] { return ::fsync(fd); });
    };
    f.close = [](int fd) {
        const bool dir = fd == PhaseClock::dir_fd;
        if (dir) PhaseClock::dir_fd = -1;
        return PhaseClock::time(dir ? kCloseDir : kCloseFile, [&] { return ::close(fd); });
    };
    f.rename = [](const char* a, const char* b) { return PhaseClock::time(kRename, [&] { return ::rename(a, b); }); };
    // Dropping the old version's cached pages (its open and close count as "open" and "close").
    f.fadvise = [](int fd, off_t off, off_t n, int advice) {
        return PhaseClock::time(kDrop, [&] { return ::posix_fadvise(fd, off, n, advice); });
    };
    return f;
}

void BM_SavePhases(benchmark::State& st) {
    const auto& d = state(st.range(0));
    const fs::path raw_path = bench_dir() / "phase_raw.bin";
    const fs::path save_path = bench_dir() / "phase_save.safetensors";
    std::vector<std::array<double, kPhases>> save_phases, raw_phases;
    std::vector<double> save_cpu, save_total, raw_total, plan, hash;
    const std::map<std::string, std::string> meta{{"format", "pt"}};
    auto run_save = [&] {
        PhaseClock::t.fill(0);
        double total = 0;
        {
            traincb::detail::ScopedFileOps timed(timed_file_ops());
            total = seconds([&] { traincb::io::save_safetensors(save_path, d, meta, {.checksum = true}); });
        }
        double io = 0;
        for (double x : PhaseClock::t) io += x;
        save_phases.push_back(PhaseClock::t);
        save_cpu.push_back(total - io);
        save_total.push_back(total);
    };
    auto run_raw = [&] {
        std::array<double, kPhases> t{};
        int fd = -1;
        const double total = seconds([&] {
            t[kOpenTmp] =
                seconds([&] { fd = ::open(raw_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); });
            if (fd < 0) std::abort();
            t[kWrite] = seconds([&] {
                for (const auto& tensor : d.tensors())
                    if (traincb::detail::write_all(fd, tensor.data.data(), tensor.data.size()) != 0) std::abort();
            });
            t[kFsyncFile] = seconds([&] {
                if (::fsync(fd) != 0) std::abort();
            });
            t[kCloseFile] = seconds([&] { ::close(fd); });
        });
        raw_phases.push_back(t);
        raw_total.push_back(total);
    };
    // An untimed round, so that every timed one replaces files of the same size (see above).
    run_save();
    run_raw();
    save_phases.clear();
    save_cpu.clear();
    save_total.clear();
    raw_phases.clear();
    raw_total.clear();
    int round = 0;
    for (auto _ : st) {
        if (round++ % 2 == 0) {
            run_save();
            run_raw();
        } else {
            run_raw();
            run_save();
        }
        st.SetIterationTime(save_total.back());
        // The validation and header alone, and a separate checksum pass (no I/O), in memory. The
        // save hashes each chunk just before writing it, so its "cpu" is not their sum.
        plan.push_back(
            seconds([&] { benchmark::DoNotOptimize(traincb::detail::plan_safetensors(d, meta, {.checksum = true})); }));
        hash.push_back(seconds([&] {
            traincb::detail::Xxh64 h;
            for (const auto& t : d.tensors()) h.update(t.data);
            benchmark::DoNotOptimize(h.digest());
        }));
    }
    auto med = [](const std::vector<std::array<double, kPhases>>& v, int p) {
        std::vector<double> x;
        for (const auto& a : v) x.push_back(a[static_cast<std::size_t>(p)]);
        return median(x) * 1e6;
    };
    for (int p = 0; p < kPhases; ++p) {
        st.counters[std::string("s.") + kPhaseNames[p]] = med(save_phases, p);
        if (p <= kCloseFile) st.counters[std::string("r.") + kPhaseNames[p]] = med(raw_phases, p);
    }
    st.counters["s.cpu"] = median(save_cpu) * 1e6;
    st.counters["s.plan"] = median(plan) * 1e6;
    st.counters["s.hash"] = median(hash) * 1e6;
    st.counters["s.total"] = median(save_total) * 1e6;
    st.counters["r.total"] = median(raw_total) * 1e6;
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

// The time the training thread is blocked per save: ModelCheckpoint's epoch-end hooks (decide,
// capture, and for a synchronous save the encoding, write, fsync and rename), through a
// CallbackList as a training loop drives it, for a model of Eigen matrices (column-major, as
// Eigen's default, so the file's row-major layout needs a transposition somewhere). The async
// contender's background write is waited for after the timed part: each round measures the
// handover of a save that finds no other in flight (one that does waits for it; see
// docs/checkpoints.md). The memcpy copies the same tensors into warm buffers.
void BM_SaveBlocking(benchmark::State& st) {
    Model m(st.range(0));
    struct Saver {
        traincb::History history;
        traincb::ModelCheckpoint mc;
        traincb::CallbackList list;
        Saver(Model& model, fs::path path, bool async) : mc({.filepath = std::move(path), .async_save = async}) {
            list.add(mc);
            list.set_model(model);
            list.set_history(&history);
            traincb::TrainParams p;
            p.epochs = 1 << 30;
            p.steps_per_epoch = 1;
            list.set_params(p);
            list.on_train_begin();
        }
        Saver(const Saver&) = delete;
        Saver& operator=(const Saver&) = delete;
        ~Saver() { list.on_train_end(); }
        double save(int epoch) {
            traincb::Logs logs{{"loss", 1.0}};
            return seconds([&] { list.on_epoch_end(epoch, logs); });
        }
    };
    Saver sync(m, bench_dir() / "blocking_sync.safetensors", false);
    Saver async(m, bench_dir() / "blocking_async.safetensors", true);
    std::vector<std::vector<float>> dst;
    for (const auto& w : m.weights) dst.emplace_back(static_cast<std::size_t>(w.size()));
    for (const auto& b : m.biases) dst.emplace_back(static_cast<std::size_t>(b.size()));
    auto copy = [&] {
        for (std::size_t i = 0; i < m.weights.size(); ++i) {
            std::memcpy(dst[i].data(), m.weights[i].data(), static_cast<std::size_t>(m.weights[i].size()) * 4);
            std::memcpy(dst[4 + i].data(), m.biases[i].data(), static_cast<std::size_t>(m.biases[i].size()) * 4);
        }
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    };
    // An untimed round: the buffers are sized and each file exists, as in training after the
    // first save.
    int epoch = 0;
    (void)sync.save(epoch);
    (void)async.save(epoch++);
    async.mc.wait_until_finished();
    copy();
    std::vector<double> t_sync, t_async, t_copy, async_copy, sync_copy, sync_async, cpu_async, cpu_copy, cpu_ratio;
    int round = 0;
    for (auto _ : st) {
        double s = 0, a = 0, c = 0;
        for (int k = 0; k < 3; ++k) {
            switch ((round + k) % 3) {
                case 0:
                    s = sync.save(epoch);
                    break;
                case 1: {
                    const double cpu0 = thread_cpu_seconds();
                    a = async.save(epoch);
                    cpu_async.push_back(thread_cpu_seconds() - cpu0);
                    async.mc.wait_until_finished();  // not timed: the background write
                    break;
                }
                default: {
                    const double cpu0 = thread_cpu_seconds();
                    c = seconds(copy);
                    cpu_copy.push_back(thread_cpu_seconds() - cpu0);
                    break;
                }
            }
        }
        ++round;
        ++epoch;
        cpu_ratio.push_back(cpu_async.back() / cpu_copy.back());
        st.SetIterationTime(a);
        t_sync.push_back(s);
        t_async.push_back(a);
        t_copy.push_back(c);
        async_copy.push_back(a / c);
        sync_copy.push_back(s / c);
        sync_async.push_back(s / a);
    }
    st.counters["sync_ms"] = median(t_sync) * 1e3;
    st.counters["async_ms"] = median(t_async) * 1e3;
    st.counters["async_cpu_ms"] = median(cpu_async) * 1e3;
    st.counters["memcpy_cpu_ms"] = median(cpu_copy) * 1e3;
    st.counters["async/memcpy_cpu"] = median(cpu_ratio);
    st.counters["memcpy_ms"] = median(t_copy) * 1e3;
    st.counters["async/memcpy"] = median(async_copy);
    st.counters["sync/memcpy"] = median(sync_copy);
    st.counters["sync/async"] = median(sync_async);
    st.SetBytesProcessed(st.iterations() * st.range(0));
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
    // Odd round counts, so each median is one measured round.
    const std::pair<std::int64_t, int> io_sizes[] = {{1 * kMiB, 101}, {64 * kMiB, 21}, {512 * kMiB, 9}};
    for (const auto& [bytes, rounds] : io_sizes)
        benchmark::RegisterBenchmark("save_vs_raw_write_fsync", BM_SaveVsRaw)
            ->Arg(bytes)
            ->Iterations(rounds)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    for (const auto& [bytes, rounds] : io_sizes)
        benchmark::RegisterBenchmark("save_phases", BM_SavePhases)
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
    for (const auto& [bytes, rounds] : {std::pair<std::int64_t, int>{64 * kMiB, 51}, {512 * kMiB, 9}})
        benchmark::RegisterBenchmark("save_blocking_async_vs_sync", BM_SaveBlocking)
            ->Arg(bytes)
            ->Iterations(rounds)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
}

// Prints the console report as usual, then a summary of the ratios against their targets.
class RatioReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            const std::string mib = std::to_string(std::stoll(r.run_name.args) / kMiB) + " MiB";
            if (r.counters.count("s.total") != 0) {
                std::map<std::string, double> c;
                for (const auto& [k, v] : r.counters) c[k] = v.value;
                phases_.emplace_back(mib, std::move(c));
            }
            for (const auto& [name, target] : {std::pair<std::string, double>{"save/raw", 1.25},
                                               {"save/atomic", 1.25},
                                               {"atomic/raw", 0.0},
                                               {"hash/memcpy", 0.0},
                                               {"take/memcpy", 1.5},
                                               {"async/memcpy", 1.5},
                                               {"async/memcpy_cpu", 0.0},
                                               {"sync/memcpy", 0.0},
                                               {"sync/async", 0.0}})
                if (const auto it = r.counters.find(name); it != r.counters.end())
                    lines_.push_back({name, mib, it->second.value, target});
        }
        ConsoleReporter::ReportRuns(runs);
    }
    void print_ratios() const {
        std::printf(
            "\nmedian per-round ratios (targets: save/raw <= 1.25, take/memcpy <= 1.5, async/memcpy <= 1.5;\n"
            "save/atomic = cost of the format and checksum, atomic/raw = cost of crash safety;\n"
            "async/memcpy, sync/memcpy = the training thread's time blocked per ModelCheckpoint save;\n"
            "async/memcpy_cpu = the same in the thread's CPU time, which preemption on a busy machine does not add "
            "to)\n");
        for (const auto& l : lines_)
            std::printf("  %-16s %8s: %.3fx  %s\n", l.name.c_str(), l.size.c_str(), l.value,
                        l.target == 0.0       ? ""
                        : l.value <= l.target ? "ok"
                                              : "ABOVE TARGET");
        if (phases_.empty()) return;
        std::printf(
            "\nwhere a save's time goes (median microseconds per phase; cpu = validation, header, checksum\n"
            "and copies; hash = a separate in-memory XXH64 pass over the tensors, for scale):\n");
        std::printf("  %-8s %9s %9s %9s %9s %9s %9s %9s %9s %9s | %9s %9s %9s %9s %9s\n", "size", "total", "cpu",
                    "hash", "open", "drop", "write", "fsync", "rename", "dirfsync", "raw", "r.open", "r.write",
                    "r.fsync", "r.close");
        for (const auto& [mib, counters] : phases_) {
            const auto& c = counters;  // clang 14 cannot capture a structured binding
            auto g = [&c](const char* k) {
                const auto it = c.find(k);
                return it == c.end() ? 0.0 : it->second;
            };
            std::printf(
                "  %-8s %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f | %9.0f %9.0f %9.0f %9.0f %9.0f\n",
                mib.c_str(), g("s.total"), g("s.cpu"), g("s.hash"), g("s.open"), g("s.drop"), g("s.write"),
                g("s.fsync_file"), g("s.rename"), g("s.fsync_dir"), g("r.total"), g("r.open"), g("r.write"),
                g("r.fsync_file"), g("r.close_file"));
        }
    }

private:
    struct Line {
        std::string name, size;
        double value, target;
    };
    std::vector<Line> lines_;
    std::vector<std::pair<std::string, std::map<std::string, double>>> phases_;
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
