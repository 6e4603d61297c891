// Allocation tests for traincb/metrics.hpp: a counting global operator new/delete (every form),
// plus Eigen's own run-time check (EIGEN_RUNTIME_NO_MALLOC: Eigen asserts on any heap allocation
// while it is disallowed, which catches temporaries that bypass operator new; active in builds with
// assertions). The scalar functions allocate nothing at all, at any size; roc_auc allocates exactly
// one buffer of N doubles for its sort; precision/recall/f1 with Macro or Weighted allocate only
// per-class counts (nothing up to 256 classes); streaming updates of the mean-type, class-score and
// confusion-matrix objects allocate nothing.
#define EIGEN_RUNTIME_NO_MALLOC
#include "catch.hpp"

#include <Eigen/Core>
#include <atomic>
#include <cstdlib>
#include <new>
#include <traincb/metrics.hpp>

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
std::atomic<long> g_bytes{0};

[[gnu::noinline]] void* counted(std::size_t n, std::size_t align = 0) {
    if (g_counting.load(std::memory_order_relaxed)) {
        g_allocations.fetch_add(1, std::memory_order_relaxed);
        g_bytes.fetch_add(static_cast<long>(n), std::memory_order_relaxed);
    }
    void* p = nullptr;
    if (align > alignof(std::max_align_t)) {
        const std::size_t rounded = (n + align - 1) / align * align;
        p = std::aligned_alloc(align, rounded == 0 ? align : rounded);
    } else {
        p = std::malloc(n == 0 ? 1 : n);
    }
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
// Out of line, so that GCC does not pair an inlined operator new with this free() and warn
// (-Wmismatched-new-delete): the replacement operators below are a matched set.
[[gnu::noinline]] void release(void* p) noexcept {
    std::free(p);
}
}  // namespace

void* operator new(std::size_t n) {
    return counted(n);
}
void* operator new[](std::size_t n) {
    return counted(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
    return counted(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return counted(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted(n);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void* p) noexcept {
    release(p);
}
void operator delete[](void* p) noexcept {
    release(p);
}
void operator delete(void* p, std::size_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    release(p);
}

namespace {

namespace m = traincb::metrics;
using Eigen::Index;
using Eigen::MatrixXd;

struct Usage {
    long allocations;
    long bytes;
};

// Runs f with counting on and Eigen's heap allocations disallowed.
template <class F>
Usage usage_of(F&& f) {
    g_allocations = 0;
    g_bytes = 0;
    Eigen::internal::set_is_malloc_allowed(false);
    g_counting = true;
    f();
    g_counting = false;
    Eigen::internal::set_is_malloc_allowed(true);
    return {g_allocations.load(), g_bytes.load()};
}

struct Inputs {
    MatrixXd y, p, x, onehot, probs;
    Eigen::MatrixXf yf, pf, probsf;
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> probs_rm;
    Eigen::VectorXd labels, labels_pred;
};

Inputs make(Index n, Index c) {
    Inputs in;
    in.y = MatrixXd::Zero(n, 1);
    in.p = MatrixXd::Constant(n, 1, 0.25);
    in.x = MatrixXd::Constant(n, 1, -1.5);
    in.onehot = MatrixXd::Zero(n, c);
    in.probs = MatrixXd::Constant(n, c, 0.5);
    in.labels = Eigen::VectorXd::Zero(n);
    in.labels_pred = Eigen::VectorXd::Zero(n);
    for (Index i = 0; i < n; ++i) {
        in.y(i, 0) = static_cast<double>(i % 2);
        in.labels(i) = static_cast<double>(i % c);
        in.labels_pred(i) = static_cast<double>((i / 2) % c);
        in.onehot(i, i % c) = 1;
        in.probs(i, i % c) = 0.75;
    }
    in.yf = in.y.cast<float>();
    in.pf = in.p.cast<float>();
    in.probsf = in.probs.cast<float>();
    in.probs_rm = in.probs;
    return in;
}

// Every scalar function except roc_auc, over several layouts.
double all_scalar_functions(const Inputs& in) {
    double s = 0;
    s += m::binary_accuracy(in.y, in.p) + m::binary_accuracy(in.yf, in.pf) +
         m::binary_accuracy(in.y.array(), (in.p.array() * 2.0));
    s += m::binary_crossentropy(in.y, in.p) + m::binary_crossentropy(in.yf, in.pf) +
         m::binary_crossentropy(in.y, in.x, true);
    s += m::mean_squared_error(in.y, in.p) + m::mean_squared_error(in.yf.transpose(), in.pf.transpose());
    s += m::mean_absolute_error(in.y, in.p) +
         m::mean_absolute_error(in.y.col(0).head(in.y.rows() / 2), in.p.col(0).tail(in.y.rows() / 2));
    s += m::categorical_accuracy(in.onehot, in.probs) + m::categorical_accuracy(in.onehot, in.probs_rm) +
         m::categorical_accuracy(in.onehot, in.probsf);
    s += m::top_k_categorical_accuracy(in.onehot, in.probs, 2);
    s += m::categorical_crossentropy(in.onehot, in.probs) + m::categorical_crossentropy(in.onehot, in.probs_rm, true);
    s += m::sparse_categorical_accuracy(in.labels, in.probs) + m::sparse_categorical_accuracy(in.labels, in.probsf);
    s += m::sparse_categorical_crossentropy(in.labels, in.probs) +
         m::sparse_categorical_crossentropy(in.labels, in.probs_rm, true);
    s += m::sparse_categorical_crossentropy(in.labels.cast<float>(), in.probsf, true);
    for (const auto avg : {m::Average::Micro, m::Average::Macro, m::Average::Weighted})
        s += m::precision(in.labels, in.labels_pred, avg) + m::recall(in.labels, in.labels_pred, avg) +
             m::f1_score(in.labels, in.labels_pred, avg);
    s += m::f1_score(in.y.col(0), in.labels_pred.cwiseMin(1.0));
    return s;
}

}  // namespace

TEST_CASE("the scalar metric functions allocate nothing, at any input size") {
    for (const Index n : {Index{10}, Index{100000}}) {
        const Inputs in = make(n, 7);
        double sink = 0;
        const Usage u = usage_of([&] { sink = all_scalar_functions(in); });
        INFO("n = " << n);
        CHECK(u.allocations == 0);
        CHECK(u.bytes == 0);
        CHECK(std::isfinite(sink));
    }
}

TEST_CASE("roc_auc allocates exactly one buffer of N doubles") {
    for (const Index n : {Index{10}, Index{100000}}) {
        const Inputs in = make(n, 2);
        double auc = 0;
        const Usage u = usage_of([&] { auc = m::roc_auc(in.y, in.p); });
        INFO("n = " << n);
        CHECK(u.allocations == 1);
        CHECK(u.bytes == static_cast<long>(n * sizeof(double)));
        CHECK(auc == 0.5);
    }
}

TEST_CASE("precision with many classes allocates per-class counts, not per-sample memory") {
    // 1000 classes (above the 256 kept on the stack): 3 counts of 8 bytes per class, whatever N.
    for (const Index n : {Index{1000}, Index{100000}}) {
        Eigen::VectorXd lt(n), lp(n);
        for (Index i = 0; i < n; ++i) {
            lt(i) = static_cast<double>(i % 1000);
            lp(i) = static_cast<double>((i + 1) % 1000);
        }
        const Usage u = usage_of([&] { (void)m::precision(lt, lp, m::Average::Macro); });
        INFO("n = " << n);
        CHECK(u.allocations == 1);
        CHECK(u.bytes == static_cast<long>(sizeof(std::int64_t) * 3 * 1000));
    }
    // Sparse label values (far more than 4N apart): memory follows the distinct labels, at most 2N.
    Eigen::VectorXd lt(100), lp(100);
    for (Index i = 0; i < 100; ++i) {
        lt(i) = static_cast<double>(i) * 1e9;
        lp(i) = 0;
    }
    const Usage u = usage_of([&] { (void)m::recall(lt, lp, m::Average::Weighted); });
    CHECK(u.allocations == 2);  // the distinct labels and their counts
    CHECK(u.bytes <= static_cast<long>((sizeof(double) + 3 * sizeof(std::int64_t)) * 2 * 100));
}

TEST_CASE("streaming updates of the metric objects allocate nothing") {
    const Inputs in = make(50000, 5);
    m::BinaryAccuracy acc;
    m::BinaryCrossentropy bce({.from_logits = true});
    m::MeanSquaredError mse;
    m::SparseCategoricalCrossentropy sce({.from_logits = true});
    m::CategoricalAccuracy cat;
    m::F1Score f1({.average = m::Average::Macro, .num_classes = 5});
    m::Precision prec;
    m::ConfusionMatrix cm({.num_classes = 5});
    const MatrixXd labels = in.labels;
    const Usage u = usage_of([&] {
        for (Index r = 0; r < 50000; r += 1000) {
            m::Metric& a = acc;  // the Trainer's path: virtual update on Ref
            a.update(in.y.middleRows(r, 1000), in.p.middleRows(r, 1000));
            bce.update(in.y.middleRows(r, 1000), in.x.middleRows(r, 1000));
            mse.update(in.yf.middleRows(r, 1000), in.pf.middleRows(r, 1000));
            sce.update(labels.middleRows(r, 1000), in.probs.middleRows(r, 1000));
            cat.update(in.onehot.middleRows(r, 1000), in.probs_rm.middleRows(r, 1000));
            f1.update(labels.middleRows(r, 1000), in.probs.middleRows(r, 1000));
            prec.update(in.y.middleRows(r, 1000), in.p.middleRows(r, 1000));
            cm.update(in.labels.segment(r, 1000), in.labels_pred.segment(r, 1000));
        }
    });
    CHECK(u.allocations == 0);
    CHECK(acc.result() == m::binary_accuracy(in.y, in.p));
    CHECK(std::isfinite(sce.result() + cat.result() + f1.result() + prec.result() + bce.result() + mse.result()));
    CHECK(cm.result().sum() == 50000);
}
