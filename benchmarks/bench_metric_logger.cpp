// Per-epoch cost of MetricLogger with the CSV and JSON-lines sinks (6 log keys, a file in /tmp),
// beside the baseline of a raw write(2) of the same line bytes in the same run; and the per-batch
// cost of the logger when no sink wants batches (CallbackList leaves it out of the batch loop, so
// it should equal BM_BatchHook_EmptyList) and when one does.
//
//   build/logger-rel/benchmarks/bench_metric_logger
//
// Relate each per-epoch figure to BM_RawWrite_*: the difference is the formatting and the logger.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/json_lines.hpp>

namespace {

std::filesystem::path bench_file(const char* name) {
    return std::filesystem::temp_directory_path() / (std::string("traincb_bench_") + name);
}

// Six keys, as a classifier with validation and a learning-rate schedule logs them.
traincb::Logs epoch_logs(int e) {
    const double x = 1.0 / (e + 3);  // full-precision values, different every epoch
    return traincb::Logs{{"loss", 0.5 + x},         {"accuracy", 0.75 - x / 7},  {"val_loss", 0.625 + x / 3},
                         {"val_accuracy", 0.7 - x}, {"learning_rate", 1e-3 * x}, {"precision", 0.8125 + x / 11}};
}

// The bytes one epoch's row takes in each format (what the baseline writes).
std::string csv_row(int e) {
    std::string out = std::to_string(e);
    for (const auto& [k, v] : epoch_logs(e)) {
        out += ',';
        traincb::detail::append_python_float(out, v);
    }
    return out + "\r\n";
}
std::string json_line(int e) {
    nlohmann::ordered_json j;
    j["epoch"] = e;
    for (const auto& [k, v] : epoch_logs(e)) j[k] = v;
    return j.dump() + "\n";
}

void raw_write(benchmark::State& state, const std::string& line, const char* name) {
    const auto path = bench_file(name);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        state.SkipWithError("cannot open the benchmark file");
        return;
    }
    for (auto _ : state) {
        if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            state.SkipWithError("write failed");
            break;
        }
    }
    ::close(fd);
    std::filesystem::remove(path);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * line.size()));
}

void BM_RawWrite_CsvLine(benchmark::State& state) {
    raw_write(state, csv_row(1000), "raw.csv");
}
void BM_RawWrite_JsonLine(benchmark::State& state) {
    raw_write(state, json_line(1000), "raw.jsonl");
}

// One epoch end through CallbackList -> MetricLogger -> sink (format, write(2), flush).
template <class SinkT, class Options>
void logger_epoch(benchmark::State& state, const char* name) {
    const auto path = bench_file(name);
    auto sink = std::make_shared<SinkT>(Options{.path = path});
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.on_train_begin();
    traincb::Logs logs = epoch_logs(0);
    int e = 0;
    for (auto _ : state) {
        // new values every epoch, as a real run has (Logs::set on existing keys does not allocate)
        const double x = 1.0 / (e + 3);
        logs.set("loss", 0.5 + x);
        logs.set("val_loss", 0.625 + x / 3);
        cbs.on_epoch_end(e++, logs);
    }
    cbs.on_train_end();
    std::filesystem::remove(path);
}

void BM_MetricLogger_Csv(benchmark::State& state) {
    logger_epoch<traincb::sinks::CsvSink, traincb::sinks::CsvOptions>(state, "logger.csv");
}
void BM_MetricLogger_JsonLines(benchmark::State& state) {
    logger_epoch<traincb::sinks::JsonLinesSink, traincb::sinks::JsonLinesOptions>(state, "logger.jsonl");
}

// Per batch: what the logger costs inside an epoch, with a sink that does or does not want batches.
struct CountingSink final : traincb::sinks::Sink {
    explicit CountingSink(bool wants) : batches(wants) {}
    void write_epoch(int, const traincb::Logs&) override {}
    void write_batch(const traincb::sinks::BatchInfo&, const traincb::Logs& logs) override { values += logs.size(); }
    [[nodiscard]] bool wants_batches() const override { return batches; }
    bool batches;
    std::size_t values = 0;
};
void batch_hook(benchmark::State& state, bool sink_wants_batches) {
    auto sink = std::make_shared<CountingSink>(sink_wants_batches);
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.on_train_begin();
    traincb::Logs running{{"loss", 0.5}, {"accuracy", 0.5}};
    int b = 0;
    for (auto _ : state) {
        cbs.on_train_batch_end(b++, running);
        benchmark::ClobberMemory();
    }
    cbs.on_train_end();
    benchmark::DoNotOptimize(sink->values);
}
void BM_BatchHook_EmptyList(benchmark::State& state) {
    traincb::CallbackList cbs;
    traincb::Logs running{{"loss", 0.5}, {"accuracy", 0.5}};
    int b = 0;
    for (auto _ : state) {
        cbs.on_train_batch_end(b++, running);
        benchmark::ClobberMemory();
    }
}
void BM_BatchHook_MetricLogger_NoBatchSink(benchmark::State& state) {
    batch_hook(state, false);
}
void BM_BatchHook_MetricLogger_BatchSink(benchmark::State& state) {
    batch_hook(state, true);
}

}  // namespace

BENCHMARK(BM_RawWrite_CsvLine);
BENCHMARK(BM_MetricLogger_Csv);
BENCHMARK(BM_RawWrite_JsonLine);
BENCHMARK(BM_MetricLogger_JsonLines);
BENCHMARK(BM_BatchHook_EmptyList);
BENCHMARK(BM_BatchHook_MetricLogger_NoBatchSink);
BENCHMARK(BM_BatchHook_MetricLogger_BatchSink);

BENCHMARK_MAIN();
