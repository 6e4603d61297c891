// The Trainer's batch loop allocates nothing: a counting global operator new measures every heap
// allocation between consecutive on_train_batch_begin hooks (which spans gathering the batch, the
// model's step, the running means, the batch logs, every batch hook and the stop check), with the
// callbacks of a typical run: EarlyStopping, TerminateOnNaN (which makes the Trainer keep batch
// logs) and a MetricLogger over a MemorySink; WeightAveraging, whose update after each step
// and swap around each validation reuse the buffers sized at on_train_begin; and SpikeDetection
// rolling back, whose snapshot of the whole training state before every batch reuses its buffers.
#include "catch.hpp"

#include <array>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/spike_detection.hpp>
#include <traincb/callbacks/terminate_on_nan.hpp>
#include <traincb/callbacks/weight_averaging.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/memory.hpp>
#include <traincb/trainer.hpp>
#include <vector>

#include "trainer_test_models.hpp"

namespace {
std::atomic<long> g_allocations{0};
}

// Every form is replaced, so that each allocation and its deallocation pair up (ASan checks it).
// None is inlined: an optimising build that inlines them sees malloc and free where the program
// says new and delete, and g++ then warns of mismatched allocation functions.
[[gnu::noinline]] void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
    return ::operator new(n);
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
    return ::operator new(n, t);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

namespace {

// Records the allocation count at each batch begin of epochs >= 1 (epoch 0 warms up buffers).
struct AllocProbe final : traincb::Callback {
    std::array<long, 4096> marks{};
    std::size_t n = 0;
    int epoch = 0;
    void on_epoch_begin(traincb::Context& c) override {
        epoch = c.epoch();
        last = -1;
    }
    void on_train_batch_begin(traincb::Context&) override {
        const long now = g_allocations.load(std::memory_order_relaxed);
        if (epoch >= 1 && last >= 0 && n < marks.size()) marks[n++] = now - last;
        last = g_allocations.load(std::memory_order_relaxed);
    }
    long last = -1;
};

struct NoOp final : traincb::Callback {
    void on_train_batch_begin(traincb::Context&) override {}
    void on_train_batch_end(traincb::Context&) override {}
};

}  // namespace

TEST_CASE("Trainer: zero heap allocations per batch with EarlyStopping, TerminateOnNaN and five no-op callbacks") {
    Eigen::MatrixXd x, y;
    test_models::make_data(200, x, y);  // 20 batches of 10: no tail batch
    test_models::Linear model(2, 1);
    traincb::Trainer trainer(model);
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 100});
    traincb::TerminateOnNaN ton;  // makes the Trainer maintain batch logs
    NoOp a, b, c, d, e;
    AllocProbe probe;
    trainer.fit(x, y, {.epochs = 3, .batch_size = 10, .shuffle = true, .seed = 1, .validation_split = 0.1}, es, ton, a,
                b, c, d, e, probe);
    REQUIRE(probe.n >= 30);  // (18 batches - 1) x 2 epochs measured
    long total = 0;
    for (std::size_t i = 0; i < probe.n; ++i) total += probe.marks[i];
    CHECK(total == 0);
}

namespace {
// The allocations per batch (summed over the measured batches) of a 3-epoch run of the linear
// model with EarlyStopping, TerminateOnNaN and a MetricLogger over a MemorySink, plus `metrics`.
long allocations_per_batch_with_logger(std::vector<std::shared_ptr<traincb::metrics::Metric>> metrics) {
    Eigen::MatrixXd x, y;
    test_models::make_data(200, x, y);  // 18 training batches of 10 after the split: no tail batch
    test_models::Linear model(2, 1);
    traincb::Trainer trainer(model);
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 100});
    traincb::TerminateOnNaN ton;
    auto sink = std::make_shared<traincb::sinks::MemorySink>();
    traincb::MetricLogger logger({sink});
    AllocProbe probe;
    trainer.fit(x, y,
                {.epochs = 3,
                 .batch_size = 10,
                 .shuffle = true,
                 .seed = 1,
                 .validation_split = 0.1,
                 .metrics = std::move(metrics)},
                es, ton, logger, probe);
    REQUIRE(sink->rows().size() == 3);  // the logger did run
    REQUIRE(probe.n >= 30);             // (18 batches - 1) x 2 epochs measured
    long total = 0;
    for (std::size_t i = 0; i < probe.n; ++i) total += probe.marks[i];
    return total;
}
}  // namespace

TEST_CASE("Trainer: zero heap allocations per batch with EarlyStopping, TerminateOnNaN and a MetricLogger") {
    CHECK(allocations_per_batch_with_logger({}) == 0);
}

TEST_CASE("Trainer: zero heap allocations per batch with a training metric whose name outgrows the small string") {
    // "mean_squared_error" (18 characters) does not fit a small-string buffer: building it per
    // batch for the batch logs would allocate.
    CHECK(allocations_per_batch_with_logger({std::make_shared<traincb::metrics::MeanSquaredError>()}) == 0);
}

TEST_CASE("Trainer: zero heap allocations per batch with WeightAveraging averaging after every step") {
    Eigen::MatrixXd x, y;
    test_models::make_data(200, x, y);  // 18 training batches of 10 after the split: no tail batch
    test_models::Linear model(2, 1);
    traincb::Trainer trainer(model);
    traincb::WeightAveraging ema({.decay = 0.9});
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 100, .restore_best_weights = true});
    AllocProbe probe;
    trainer.fit(x, y, {.epochs = 3, .batch_size = 10, .shuffle = true, .seed = 1, .validation_split = 0.1}, ema, es,
                probe);
    REQUIRE(ema.averaged_steps() == 3 * 18);  // it did average every step
    REQUIRE(probe.n >= 30);
    long total = 0;
    for (std::size_t i = 0; i < probe.n; ++i) total += probe.marks[i];
    CHECK(total == 0);
}

TEST_CASE("Trainer: zero heap allocations per batch with SpikeDetection's snapshot before every batch") {
    Eigen::MatrixXd x, y;
    test_models::make_data(200, x, y);
    test_models::Linear model(2, 1);
    traincb::Trainer trainer(model);
    traincb::SpikeDetection spikes({.action = traincb::SpikeAction::Rollback, .window = 20, .warmup = 5});
    auto sink = std::make_shared<traincb::sinks::MemorySink>();
    traincb::MetricLogger logger({sink});
    AllocProbe probe;
    trainer.fit(x, y,
                {.epochs = 3,
                 .batch_size = 10,
                 .shuffle = true,
                 .seed = 1,
                 .validation_split = 0.1,
                 .metrics = {std::make_shared<traincb::metrics::MeanSquaredError>(),
                             std::make_shared<traincb::metrics::MeanAbsoluteError>()}},
                spikes, logger, probe);
    REQUIRE(spikes.events().empty());  // no spike: every batch took a snapshot and judged its loss
    REQUIRE(spikes.window().size() == 20);
    REQUIRE(probe.n >= 30);
    long total = 0;
    for (std::size_t i = 0; i < probe.n; ++i) total += probe.marks[i];
    CHECK(total == 0);
}

TEST_CASE("WeightAveraging: the swap around validation allocates nothing after the first") {
    Eigen::MatrixXd x, y;
    test_models::make_data(20, x, y);
    test_models::Linear model(2, 1);
    traincb::WeightAveraging ema({.decay = 0.9});
    traincb::CallbackList list(ema);
    list.set_model(model);
    list.on_train_begin();
    traincb::Logs val{{"loss", 0.0}}, logs{{"loss", 0.0}, {"val_loss", 0.0}};
    std::array<long, 4> per_validation{};
    for (int e = 0; e < 4; ++e) {
        list.on_epoch_begin(e);
        list.on_train_batch_begin(0);
        (void)model.train_batch(x, y);
        list.on_train_batch_end(0);
        const long before = g_allocations.load(std::memory_order_relaxed);
        list.on_test_begin();
        const bool swapped = ema.swapped();
        list.on_test_end(val);
        list.on_epoch_end(e, logs);
        per_validation[static_cast<std::size_t>(e)] = g_allocations.load(std::memory_order_relaxed) - before;
        REQUIRE(swapped);  // the average really went in and out
        REQUIRE_FALSE(ema.swapped());
    }
    CHECK(per_validation[1] == 0);
    CHECK(per_validation[2] == 0);
    CHECK(per_validation[3] == 0);
    list.on_train_end();
}

namespace {
// Where the probe's allocation escapes: the optimiser cannot drop a new/delete pair whose pointer
// went through a volatile object.
std::vector<int>* volatile g_escape = nullptr;
}  // namespace

TEST_CASE("Trainer: the counting allocator sees allocations (the probe can fail)") {
    const long before = g_allocations.load();
    g_escape = new std::vector<int>(100);
    delete g_escape;
    CHECK(g_allocations.load() - before >= 2);
}
