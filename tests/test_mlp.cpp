// Tests for examples/common/mlp.hpp, the examples' MLP: backprop against finite differences,
// Adam against the Keras formula, the Keras losses against hand-computed values, state round
// trips, determinism, learning, and zero heap allocations per train_batch in steady state.

// Eigen's heap allocations go through std::malloc, not operator new, so count them with Eigen's
// own hook: EIGEN_RUNTIME_NO_MALLOC makes every Eigen allocation check a flag through
// eigen_assert, which this file routes to a counter while a no-allocation window is open (and to
// a plain assertion failure otherwise). Must precede every include of Eigen.
#include <cstdio>
#include <cstdlib>
namespace traincb_test {
inline bool no_malloc_window = false;
inline long eigen_assert_failures_in_window = 0;
inline void on_eigen_assert(bool ok, const char* expr, const char* file, int line) {
    if (ok) return;
    if (no_malloc_window) {
        ++eigen_assert_failures_in_window;
        return;
    }
    std::fprintf(stderr, "%s:%d: eigen_assert(%s) failed\n", file, line, expr);
    std::abort();
}
}  // namespace traincb_test
#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x) ::traincb_test::on_eigen_assert(static_cast<bool>(x), #x, __FILE__, __LINE__)

#include "catch.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <traincb/metrics.hpp>
#include <traincb/model.hpp>
#include <traincb/state.hpp>

#include "common/mlp.hpp"

// ---- global operator new counting (std containers, strings; Eigen is counted above) ----------
namespace traincb_test {
inline long operator_new_calls = 0;
// Out of line, so that an optimiser inlining operator delete does not see free() applied to the
// result of a new-expression (GCC's -Wmismatched-new-delete at -O2 and above).
[[gnu::noinline]] inline void release(void* p) noexcept {
    std::free(p);
}
}  // namespace traincb_test
void* operator new(std::size_t n) {
    ++traincb_test::operator_new_calls;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    ++traincb_test::operator_new_calls;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
    ++traincb_test::operator_new_calls;
    const auto al = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return operator new(n, a);
}
// The nothrow forms too: if any form were left to the runtime, a sanitizer runtime would supply
// its own set and memory could be freed by a different family than allocated it.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    ++traincb_test::operator_new_calls;
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
    return operator new(n, t);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    ++traincb_test::operator_new_calls;
    const auto al = static_cast<std::size_t>(a);
    return std::aligned_alloc(al, (n + al - 1) / al * al);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
    return operator new(n, a, t);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    traincb_test::release(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    traincb_test::release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    traincb_test::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    traincb_test::release(p);
}
void operator delete(void* p) noexcept {
    traincb_test::release(p);
}
void operator delete[](void* p) noexcept {
    traincb_test::release(p);
}
void operator delete(void* p, std::size_t) noexcept {
    traincb_test::release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    traincb_test::release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    traincb_test::release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    traincb_test::release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    traincb_test::release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    traincb_test::release(p);
}

using Eigen::MatrixXd;
using traincb_examples::Activation;
using traincb_examples::Loss;
using traincb_examples::Mlp;
using traincb_examples::MlpOptions;

namespace {

// Every tensor of a model's state as owned row-major copies.
traincb::StateDict state_of(Mlp& m) {
    traincb::StateDict d;
    traincb::StateCollector c(d);
    m.visit_state(c);
    return d;
}

// Reads element i of a F64 tensor.
double f64_at(const traincb::Tensor& t, std::size_t i) {
    double v = 0;
    std::memcpy(&v, t.data.data() + i * sizeof(double), sizeof(double));
    return v;
}

// Central finite differences of loss(y, predict(x)) with respect to every weight and bias,
// compared with the backprop gradients. The FD side only uses predict() and loss(), so it is an
// independent oracle for the backward pass.
void check_gradients(Mlp& m, const MatrixXd& x, const MatrixXd& y) {
    const double loss = m.compute_gradients(x, y);
    REQUIRE(loss == Approx(m.loss(y, m.predict(x))).epsilon(1e-12));
    const double h = 1e-6;
    auto fd = [&](double& param) {
        const double saved = param;
        param = saved + h;
        const double up = m.loss(y, m.predict(x));
        param = saved - h;
        const double down = m.loss(y, m.predict(x));
        param = saved;
        return (up - down) / (2 * h);
    };
    int checked = 0;
    for (std::size_t l = 0; l < m.num_layers(); ++l) {
        const MatrixXd gw = m.weight_gradient(l);
        const Eigen::RowVectorXd gb = m.bias_gradient(l);
        for (Eigen::Index i = 0; i < m.weight(l).size(); ++i) {
            const double num = fd(m.weight(l).data()[i]);
            INFO("layer " << l << " weight " << i << ": backprop " << gw.data()[i] << " vs finite difference " << num);
            REQUIRE(std::abs(gw.data()[i] - num) <= 1e-7 + 1e-5 * std::abs(num));
            ++checked;
        }
        for (Eigen::Index i = 0; i < m.bias(l).size(); ++i) {
            const double num = fd(m.bias(l).data()[i]);
            INFO("layer " << l << " bias " << i << ": backprop " << gb.data()[i] << " vs finite difference " << num);
            REQUIRE(std::abs(gb.data()[i] - num) <= 1e-7 + 1e-5 * std::abs(num));
            ++checked;
        }
    }
    REQUIRE(checked > 0);
}

// Random non-zero biases, so that the bias path is exercised away from the Glorot zeros.
void randomize_biases(Mlp& m, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (std::size_t l = 0; l < m.num_layers(); ++l)
        for (Eigen::Index i = 0; i < m.bias(l).size(); ++i) m.bias(l)(i) = traincb_examples::uniform01(rng) - 0.5;
}

MatrixXd inputs(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    MatrixXd x = traincb_examples::uniform_matrix(rows, cols, rng);
    return (x.array() * 4 - 2).matrix();
}

}  // namespace

static_assert(traincb::Model<Mlp>);
static_assert(traincb::HasLoss<Mlp>);
static_assert(traincb::HasLearningRate<Mlp>);
static_assert(traincb::HasState<Mlp>);
static_assert(traincb::Model<traincb_examples::BasicMlp<float>, float>);

TEST_CASE("Backprop matches finite differences: sigmoid + binary cross-entropy, relu hidden layer") {
    Mlp m({.inputs = 3,
           .layers = {{5, Activation::Relu}, {4, Activation::Relu}, {2, Activation::Sigmoid}},
           .loss = Loss::BinaryCrossentropy,
           .seed = 7});
    randomize_biases(m, 1);
    const MatrixXd x = inputs(6, 3, 2);
    // Soft and hard targets: Keras BCE accepts both.
    MatrixXd y(6, 2);
    y << 1, 0, 0, 1, 1, 1, 0, 0, 0.3, 0.8, 1, 0;
    check_gradients(m, x, y);
}

TEST_CASE("Backprop matches finite differences: softmax + sparse categorical cross-entropy") {
    Mlp m({.inputs = 4,
           .layers = {{6, Activation::Relu}, {3, Activation::Softmax}},
           .loss = Loss::SparseCategoricalCrossentropy,
           .seed = 11});
    randomize_biases(m, 3);
    const MatrixXd x = inputs(7, 4, 4);
    MatrixXd y(7, 1);
    y << 0, 2, 1, 1, 0, 2, 2;
    check_gradients(m, x, y);
}

TEST_CASE("Backprop matches finite differences: mean squared error through relu, sigmoid and linear") {
    Mlp m({.inputs = 3,
           .layers = {{5, Activation::Relu}, {4, Activation::Sigmoid}, {2, Activation::Linear}},
           .loss = Loss::MeanSquaredError,
           .seed = 5});
    randomize_biases(m, 5);
    const MatrixXd x = inputs(5, 3, 6);
    const MatrixXd y = inputs(5, 2, 7);
    check_gradients(m, x, y);
}

TEST_CASE("Backprop matches finite differences: mean squared error on a softmax output") {
    Mlp m({.inputs = 2,
           .layers = {{4, Activation::Relu}, {3, Activation::Softmax}},
           .loss = Loss::MeanSquaredError,
           .seed = 9});
    randomize_biases(m, 8);
    const MatrixXd x = inputs(4, 2, 10);
    MatrixXd y(4, 3);
    y << 1, 0, 0, 0, 1, 0, 0, 0, 1, 0.2, 0.3, 0.5;
    check_gradients(m, x, y);
}

TEST_CASE("Glorot-uniform kernels and zero biases, drawn from the seed") {
    Mlp m({.inputs = 40,
           .layers = {{60, Activation::Relu}, {1, Activation::Sigmoid}},
           .loss = Loss::BinaryCrossentropy,
           .seed = 3});
    // limit = sqrt(6 / (fan_in + fan_out)) (keras.initializers.GlorotUniform).
    const double limit0 = std::sqrt(6.0 / (40 + 60));
    const double limit1 = std::sqrt(6.0 / (60 + 1));
    REQUIRE(m.weight(0).rows() == 40);
    REQUIRE(m.weight(0).cols() == 60);
    REQUIRE(m.weight(0).cwiseAbs().maxCoeff() <= limit0);
    REQUIRE(m.weight(1).cwiseAbs().maxCoeff() <= limit1);
    REQUIRE(m.bias(0).isZero(0));
    REQUIRE(m.bias(1).isZero(0));
    // U(-a, a) has mean 0 and variance a^2 / 3; 2400 draws pin both to a few percent.
    const double mean = m.weight(0).mean();
    const double var = (m.weight(0).array() - mean).square().mean();
    REQUIRE(std::abs(mean) < 0.05 * limit0);
    REQUIRE(var == Approx(limit0 * limit0 / 3).epsilon(0.08));
    // The first kernel entry is the first draw of std::mt19937_64(3) mapped as documented:
    // -a + 2a * (word >> 11) * 2^-53. The engine's output is fixed by the C++ standard.
    std::mt19937_64 rng(3);
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    REQUIRE(m.weight(0)(0, 0) == -limit0 + (limit0 - -limit0) * u);
    // Row-major fill: the second draw is W(0, 1), not W(1, 0).
    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    REQUIRE(m.weight(0)(0, 1) == -limit0 + (limit0 - -limit0) * u2);
}

TEST_CASE("Adam's first steps on one weight follow keras.optimizers.Adam") {
    // One input, one linear unit, MSE; x = 1, y = 0, bias pinned at 0 in the hand computation
    // by giving the bias the same gradient: pred = w + b, loss = (w + b)^2, dL/dw = dL/db = 2(w + b).
    const double lr = 0.1;
    Mlp m({.inputs = 1, .layers = {{1, Activation::Linear}}, .loss = Loss::MeanSquaredError, .learning_rate = lr});
    m.weight(0)(0, 0) = 0.5;
    MatrixXd x(1, 1), y(1, 1);
    x << 1;
    y << 0;
    // Hand-written Keras update (keras/src/optimizers/adam.py, update_step):
    //   alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    //   p -= m * alpha / (sqrt(v) + eps)
    double w = 0.5, b = 0, mw = 0, vw = 0, mb = 0, vb = 0;
    for (int t = 1; t <= 3; ++t) {
        const double g = 2 * (w + b);
        const double alpha = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
        mw += (g - mw) * (1 - 0.9);
        vw += (g * g - vw) * (1 - 0.999);
        mb += (g - mb) * (1 - 0.9);
        vb += (g * g - vb) * (1 - 0.999);
        w -= mw * alpha / (std::sqrt(vw) + 1e-7);
        b -= mb * alpha / (std::sqrt(vb) + 1e-7);
        const auto r = m.train_batch(x, y);
        REQUIRE(m.step() == t);
        REQUIRE(m.weight(0)(0, 0) == Approx(w).epsilon(1e-14));
        REQUIRE(m.bias(0)(0) == Approx(b).epsilon(1e-14));
        (void)r;
    }
    // Independent sanity check of the first step: m/sqrt(v) after one step is sign(g) (bias
    // corrections cancel), so Adam moves each weight by ~lr: 0.5 - 0.1 = 0.4 (up to eps/|g|).
    Mlp one({.inputs = 1, .layers = {{1, Activation::Linear}}, .loss = Loss::MeanSquaredError, .learning_rate = lr});
    one.weight(0)(0, 0) = 0.5;
    (void)one.train_batch(x, y);
    REQUIRE(one.weight(0)(0, 0) == Approx(0.4).epsilon(1e-5));
    REQUIRE(one.bias(0)(0) == Approx(-0.1).epsilon(1e-5));
}

TEST_CASE("train_batch returns the loss and the predictions before the update") {
    Mlp m({.inputs = 3, .layers = {{4, Activation::Relu}, {1, Activation::Sigmoid}}, .loss = Loss::BinaryCrossentropy});
    const MatrixXd x = inputs(8, 3, 12);
    MatrixXd y(8, 1);
    y << 1, 0, 1, 1, 0, 0, 1, 0;
    const MatrixXd before = m.predict(x);
    const double loss_before = m.loss(y, before);
    const auto r = m.train_batch(x, y);
    REQUIRE(r.loss == loss_before);
    REQUIRE(r.outputs == before);
    REQUIRE(m.predict(x) != before);  // the step changed the weights
    REQUIRE(m.step() == 1);
}

TEST_CASE("loss() is Keras binary cross-entropy: eps = 1e-7 clipping, mean over elements") {
    Mlp m({.inputs = 1, .layers = {{1, Activation::Sigmoid}}, .loss = Loss::BinaryCrossentropy});
    MatrixXd y(4, 1), p(4, 1);
    y << 1, 0, 1, 0;
    p << 0.9, 0.2, 0.6, 1.0;
    // Hand values: -ln 0.9, -ln 0.8, -ln 0.6, and for p = 1 with y = 0 the clipped
    // -ln(1 - (1 - 1e-7)) ~= -ln(1e-7) = 7 ln 10 = 16.11809565095832 (the double 1 - 1e-7 makes
    // it 16.1180957..., inside the tolerance below).
    const double expected = (0.10536051565782628 + 0.2231435513142097 + 0.5108256237659907 + 16.11809565095832) / 4;
    REQUIRE(m.loss(y, p) == Approx(expected).epsilon(1e-8));
    // p = 0 with y = 1 is clipped the same way.
    MatrixXd y1(1, 1), p1(1, 1);
    y1 << 1;
    p1 << 0;
    REQUIRE(m.loss(y1, p1) == Approx(16.11809565095832).epsilon(1e-8));
    // Two outputs: mean over all elements. Values -ln 0.5 = 0.6931471805599453, -ln 0.75 = 0.2876820724517809.
    Mlp m2({.inputs = 1, .layers = {{2, Activation::Sigmoid}}, .loss = Loss::BinaryCrossentropy});
    MatrixXd y2(1, 2), p2(1, 2);
    y2 << 1, 0;
    p2 << 0.5, 0.25;
    REQUIRE(m2.loss(y2, p2) == Approx((0.6931471805599453 + 0.2876820724517809) / 2).epsilon(1e-12));
}

TEST_CASE("loss() is Keras sparse categorical cross-entropy and mean squared error") {
    Mlp m({.inputs = 1, .layers = {{3, Activation::Softmax}}, .loss = Loss::SparseCategoricalCrossentropy});
    MatrixXd y(2, 1), p(2, 3);
    y << 0, 2;
    p << 0.7, 0.2, 0.1, 0.1, 0.1, 0.8;
    // -ln 0.7 = 0.35667494393873245, -ln 0.8 = 0.2231435513142097.
    REQUIRE(m.loss(y, p) == Approx((0.35667494393873245 + 0.2231435513142097) / 2).epsilon(1e-12));
    // Keras renormalises rows: [1.4, 0.4, 0.2] is the same distribution as the first row.
    MatrixXd p_scaled(1, 3), y1(1, 1);
    p_scaled << 1.4, 0.4, 0.2;
    y1 << 0;
    REQUIRE(m.loss(y1, p_scaled) == Approx(0.35667494393873245).epsilon(1e-12));

    Mlp mse({.inputs = 1, .layers = {{2, Activation::Linear}}, .loss = Loss::MeanSquaredError});
    MatrixXd t(2, 2), q(2, 2);
    t << 1, 2, 3, 4;
    q << 1.5, 2, 1, 4;
    // ((0.5)^2 + 0 + 2^2 + 0) / 4 = 1.0625
    REQUIRE(mse.loss(t, q) == 1.0625);
}

TEST_CASE("loss() agrees with traincb::metrics' Keras losses on random data") {
    // traincb/metrics.hpp implements the same Keras definitions independently (docs/metrics.md).
    std::mt19937_64 rng(77);
    const MatrixXd p = traincb_examples::uniform_matrix(20, 2, rng);
    const MatrixXd t = traincb_examples::uniform_matrix(20, 2, rng);  // soft targets
    Mlp bce({.inputs = 1, .layers = {{2, Activation::Sigmoid}}, .loss = Loss::BinaryCrossentropy});
    REQUIRE(bce.loss(t, p) == Approx(traincb::metrics::binary_crossentropy(t, p)).epsilon(1e-12));
    Mlp mse({.inputs = 1, .layers = {{2, Activation::Linear}}, .loss = Loss::MeanSquaredError});
    REQUIRE(mse.loss(t, p) == Approx(traincb::metrics::mean_squared_error(t, p)).epsilon(1e-12));
    const MatrixXd probs = traincb_examples::uniform_matrix(20, 4, rng);  // unnormalised rows
    MatrixXd labels(20, 1);
    for (Eigen::Index i = 0; i < 20; ++i) labels(i, 0) = static_cast<double>(traincb_examples::uniform_index(rng, 4));
    Mlp scce({.inputs = 1, .layers = {{4, Activation::Softmax}}, .loss = Loss::SparseCategoricalCrossentropy});
    REQUIRE(scce.loss(labels, probs) ==
            Approx(traincb::metrics::sparse_categorical_crossentropy(labels, probs)).epsilon(1e-12));
}

TEST_CASE("visit_state round trip continues training bit-identically") {
    const MlpOptions opts{.inputs = 4,
                          .layers = {{6, Activation::Relu}, {3, Activation::Softmax}},
                          .loss = Loss::SparseCategoricalCrossentropy,
                          .learning_rate = 0.01,
                          .seed = 21};
    const MatrixXd x = inputs(10, 4, 30);
    MatrixXd y(10, 1);
    y << 0, 1, 2, 0, 1, 2, 0, 1, 2, 0;
    Mlp a(opts);
    for (int i = 0; i < 3; ++i) (void)a.train_batch(x, y);
    a.set_learning_rate(0.005);
    const traincb::StateDict saved = state_of(a);

    // The names, dtypes and shapes a checkpoint holds.
    const traincb::Tensor* w0 = saved.find("dense0.weight");
    REQUIRE(w0 != nullptr);
    REQUIRE(w0->shape == std::vector<std::int64_t>{4, 6});
    REQUIRE(w0->dtype == traincb::DType::F64);
    REQUIRE(f64_at(*w0, 1) == a.weight(0)(0, 1));  // row-major, as the Keras kernel
    REQUIRE(saved.find("dense1.bias")->shape == std::vector<std::int64_t>{3});
    REQUIRE(saved.find("adam.m.dense0.weight") != nullptr);
    REQUIRE(saved.find("adam.v.dense1.bias") != nullptr);
    REQUIRE(saved.find("adam.step")->dtype == traincb::DType::I64);
    REQUIRE(saved.find("adam.step")->shape.empty());
    REQUIRE(f64_at(*saved.find("adam.learning_rate"), 0) == 0.005);
    REQUIRE(saved.size() == 2 * 2 + 2 * 4 + 2);

    for (int i = 0; i < 4; ++i) (void)a.train_batch(x, y);

    Mlp b({.inputs = 4,
           .layers = {{6, Activation::Relu}, {3, Activation::Softmax}},
           .loss = Loss::SparseCategoricalCrossentropy,
           .learning_rate = 0.3,
           .seed = 99});  // different weights and learning rate, all overwritten by the load
    traincb::StateLoader loader(saved);
    b.visit_state(loader);
    REQUIRE(b.step() == 3);
    REQUIRE(b.learning_rate() == 0.005);
    for (int i = 0; i < 4; ++i) (void)b.train_batch(x, y);
    REQUIRE(state_of(a) == state_of(b));
}

TEST_CASE("visit_state marks Adam's moments, step and learning rate as training state, the rest as weights") {
    // A visitor of the user's own, as in traincb/state.hpp: it sees each tensor's kind.
    struct KindRecorder final : traincb::StateVisitor {
        std::vector<std::pair<std::string, traincb::StateKind>> seen;
        void visit(const traincb::TensorView& t) override { seen.emplace_back(std::string(t.name), t.kind); }
    } r;
    Mlp m({.inputs = 3, .layers = {{4, Activation::Relu}, {1, Activation::Linear}}});
    m.visit_state(r);
    REQUIRE(r.seen.size() == 2 * 2 + 2 * 4 + 2);  // (weight, bias) per layer; their 8 moments; step, lr
    int weights = 0;
    for (const auto& [name, kind] : r.seen) {
        CAPTURE(name);
        const bool optimizer = name.starts_with("adam.");
        CHECK(kind == (optimizer ? traincb::StateKind::Training : traincb::StateKind::Weight));
        weights += optimizer ? 0 : 1;
    }
    CHECK(weights == 4);
}

TEST_CASE("Loading a state of another architecture fails with the tensor's name") {
    Mlp a({.inputs = 4, .layers = {{6, Activation::Relu}, {1, Activation::Sigmoid}}, .loss = Loss::BinaryCrossentropy});
    Mlp b({.inputs = 4, .layers = {{5, Activation::Relu}, {1, Activation::Sigmoid}}, .loss = Loss::BinaryCrossentropy});
    const traincb::StateDict saved = state_of(a);
    traincb::StateLoader loader(saved);
    try {
        b.visit_state(loader);
        FAIL("no exception");
    } catch (const traincb::FormatError& e) {
        REQUIRE(std::string(e.what()).find("dense0.weight") != std::string::npos);
    }
}

TEST_CASE("Same seed and batches give bit-identical weights, another seed does not") {
    const MlpOptions opts{.inputs = 5,
                          .layers = {{8, Activation::Relu}, {1, Activation::Sigmoid}},
                          .loss = Loss::BinaryCrossentropy,
                          .seed = 1234};
    const MatrixXd x = inputs(32, 5, 40);
    std::mt19937_64 rng(41);
    const MatrixXd y = traincb_examples::random_binary_labels(32, rng);
    Mlp a(opts), b(opts);
    MlpOptions other = opts;
    other.seed = 1235;
    Mlp c(other);
    REQUIRE(state_of(a) == state_of(b));
    REQUIRE_FALSE(state_of(a) == state_of(c));
    for (int i = 0; i < 20; ++i) {
        (void)a.train_batch(x.topRows(24), y.topRows(24));
        (void)b.train_batch(x.topRows(24), y.topRows(24));
        (void)a.train_batch(x.bottomRows(8), y.bottomRows(8));
        (void)b.train_batch(x.bottomRows(8), y.bottomRows(8));
    }
    REQUIRE(state_of(a) == state_of(b));
}

TEST_CASE("Learns a linearly separable problem to more than 95% accuracy") {
    // Points in [0, 1]^2, label 1 above the line x0 + x1 = 1.
    std::mt19937_64 rng(5);
    const MatrixXd x = traincb_examples::uniform_matrix(256, 2, rng);
    MatrixXd y(256, 1);
    for (Eigen::Index i = 0; i < 256; ++i) y(i, 0) = x(i, 0) + x(i, 1) > 1 ? 1 : 0;
    Mlp m({.inputs = 2,
           .layers = {{8, Activation::Relu}, {1, Activation::Sigmoid}},
           .loss = Loss::BinaryCrossentropy,
           .learning_rate = 0.02,
           .seed = 42});
    double first_loss = 0, last_loss = 0;
    for (int epoch = 0; epoch < 150; ++epoch) {
        double sum = 0;
        for (Eigen::Index b = 0; b < 256; b += 32) sum += m.train_batch(x.middleRows(b, 32), y.middleRows(b, 32)).loss;
        if (epoch == 0) first_loss = sum / 8;
        last_loss = sum / 8;
    }
    const MatrixXd p = m.predict(x);
    int correct = 0;
    for (Eigen::Index i = 0; i < 256; ++i) correct += ((p(i, 0) > 0.5) == (y(i, 0) == 1)) ? 1 : 0;
    INFO("accuracy " << correct / 256.0 << ", loss " << first_loss << " -> " << last_loss);
    REQUIRE(correct > 0.95 * 256);
    REQUIRE(last_loss < first_loss);
}

TEST_CASE("Learns three separable classes with softmax to more than 95% accuracy") {
    // Three blobs around (0, 0), (3, 0) and (0, 3), radius < 1.
    std::mt19937_64 rng(8);
    MatrixXd x(150, 2), y(150, 1);
    const double cx[3] = {0, 3, 0}, cy[3] = {0, 0, 3};
    for (Eigen::Index i = 0; i < 150; ++i) {
        const int k = static_cast<int>(i % 3);
        x(i, 0) = cx[k] + traincb_examples::uniform01(rng) - 0.5;
        x(i, 1) = cy[k] + traincb_examples::uniform01(rng) - 0.5;
        y(i, 0) = k;
    }
    Mlp m({.inputs = 2,
           .layers = {{8, Activation::Relu}, {3, Activation::Softmax}},
           .loss = Loss::SparseCategoricalCrossentropy,
           .learning_rate = 0.02,
           .seed = 4});
    for (int epoch = 0; epoch < 100; ++epoch)
        for (Eigen::Index b = 0; b < 150; b += 30) (void)m.train_batch(x.middleRows(b, 30), y.middleRows(b, 30));
    const MatrixXd p = m.predict(x);
    int correct = 0;
    for (Eigen::Index i = 0; i < 150; ++i) {
        Eigen::Index arg = 0;
        p.row(i).maxCoeff(&arg);
        correct += arg == static_cast<Eigen::Index>(y(i, 0)) ? 1 : 0;
    }
    REQUIRE(correct > 0.95 * 150);
    // Softmax rows are distributions.
    REQUIRE((p.rowwise().sum().array() - 1).abs().maxCoeff() < 1e-12);
}

TEST_CASE("BasicMlp<float> trains and exposes F32 state") {
    using MlpF = traincb_examples::BasicMlp<float>;
    std::mt19937_64 rng(5);
    const Eigen::MatrixXf x = traincb_examples::uniform_matrix(64, 2, rng).cast<float>();
    Eigen::MatrixXf y(64, 1);
    for (Eigen::Index i = 0; i < 64; ++i) y(i, 0) = x(i, 0) > x(i, 1) ? 1.0f : 0.0f;
    MlpF m({.inputs = 2,
            .layers = {{4, Activation::Relu}, {1, Activation::Sigmoid}},
            .loss = Loss::BinaryCrossentropy,
            .learning_rate = 0.05});
    const double first = m.train_batch(x, y).loss;
    double last = first;
    for (int i = 0; i < 200; ++i) last = m.train_batch(x, y).loss;
    REQUIRE(last < first);
    traincb::StateDict d;
    traincb::StateCollector c(d);
    m.visit_state(c);
    REQUIRE(d.find("dense0.weight")->dtype == traincb::DType::F32);
    REQUIRE(d.find("adam.learning_rate")->dtype == traincb::DType::F64);
}

TEST_CASE("train_batch allocates nothing in steady state, alternating full and tail batches") {
    Mlp m({.inputs = 30,
           .layers = {{16, Activation::Relu}, {8, Activation::Sigmoid}, {3, Activation::Softmax}},
           .loss = Loss::SparseCategoricalCrossentropy});
    const MatrixXd x = inputs(40, 30, 50);
    MatrixXd y(40, 1);
    for (Eigen::Index i = 0; i < 40; ++i) y(i, 0) = static_cast<double>(i % 3);
    // Warm-up: the first full (32) and tail (8) batches size the buffers.
    (void)m.train_batch(x.topRows(32), y.topRows(32));
    (void)m.train_batch(x.bottomRows(8), y.bottomRows(8));
    const MatrixXd xf = x.topRows(32), yf = y.topRows(32);  // plain matrices, as the Trainer passes

    const long new_before = traincb_test::operator_new_calls;
    traincb_test::eigen_assert_failures_in_window = 0;
    traincb_test::no_malloc_window = true;
    Eigen::internal::set_is_malloc_allowed(false);
    double sink = 0;
    for (int i = 0; i < 10; ++i) {
        const auto full = m.train_batch(xf, yf);
        const auto tail = m.train_batch(x.bottomRows(8), y.bottomRows(8));  // blocks: no copy either
        sink += full.loss + tail.loss + full.outputs(0, 0) + tail.outputs(0, 0);
    }
    Eigen::internal::set_is_malloc_allowed(true);
    traincb_test::no_malloc_window = false;
    const long new_calls = traincb_test::operator_new_calls - new_before;
    REQUIRE(std::isfinite(sink));
    REQUIRE(new_calls == 0);
    REQUIRE(traincb_test::eigen_assert_failures_in_window == 0);
}

TEST_CASE("The allocation counters do detect allocations") {
    // Guards the test above against counting nothing.
    const long new_before = traincb_test::operator_new_calls;
    traincb_test::eigen_assert_failures_in_window = 0;
    traincb_test::no_malloc_window = true;
    Eigen::internal::set_is_malloc_allowed(false);
    MatrixXd fresh(50, 50);
    auto* s = new std::string(100, 'x');
    Eigen::internal::set_is_malloc_allowed(true);
    traincb_test::no_malloc_window = false;
    const long eigen_allocs = traincb_test::eigen_assert_failures_in_window;
    const long new_calls = traincb_test::operator_new_calls - new_before;
    delete s;
    fresh.setZero();
    REQUIRE(eigen_allocs >= 1);
    REQUIRE(new_calls >= 1);
}

TEST_CASE("Mlp rejects invalid options with a message naming the problem") {
    auto message = [](const MlpOptions& o) {
        try {
            Mlp m(o);
        } catch (const traincb::InvalidArgument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    using LS = traincb_examples::LayerSpec;
    REQUIRE(message({.inputs = 0, .layers = {{1, Activation::Linear}}}).find("inputs is 0") != std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {}}).find("layers is empty") != std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {LS{0, Activation::Relu}, {1, Activation::Linear}}})
                .find("layer 0 has 0 units") != std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{3, Activation::Softmax}, {1, Activation::Linear}}})
                .find("output layer only") != std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{1, Activation::Softmax}}}).find("softmax over 1 unit") !=
            std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{1, Activation::Linear}}, .loss = Loss::BinaryCrossentropy})
                .find("binary_crossentropy needs a sigmoid") != std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{3, Activation::Sigmoid}}, .loss = Loss::SparseCategoricalCrossentropy})
                .find("sparse_categorical_crossentropy needs a softmax") != std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{1, Activation::Linear}}, .learning_rate = -1}).find("learning_rate") !=
            std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{1, Activation::Linear}}, .beta_1 = 1.0}).find("beta_1") !=
            std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{1, Activation::Linear}}, .epsilon = 0}).find("epsilon") !=
            std::string::npos);
    REQUIRE(message({.inputs = 2, .layers = {{1, Activation::Linear}}}) == "no exception");
    REQUIRE(message({.inputs = 0, .layers = {{1, Activation::Linear}}}).rfind("traincb: Mlp: ", 0) == 0);
}

TEST_CASE("train_batch, predict, loss and set_learning_rate reject bad arguments and leave the model unchanged") {
    Mlp m({.inputs = 3,
           .layers = {{4, Activation::Relu}, {3, Activation::Softmax}},
           .loss = Loss::SparseCategoricalCrossentropy});
    const traincb::StateDict before = state_of(m);
    const MatrixXd x = inputs(4, 3, 60);
    MatrixXd y(4, 1);
    y << 0, 1, 2, 1;
    auto throws_with = [](auto&& fn, const std::string& needle) {
        try {
            fn();
        } catch (const traincb::InvalidArgument& e) {
            INFO(e.what());
            return std::string(e.what()).find(needle) != std::string::npos;
        }
        return false;
    };
    REQUIRE(
        throws_with([&] { (void)m.train_batch(inputs(4, 2, 1), y); }, "x has 2 columns but the model has 3 inputs"));
    REQUIRE(throws_with([&] { (void)m.train_batch(x, y.topRows(3)); }, "y has 3 rows"));
    REQUIRE(throws_with([&] { (void)m.train_batch(x.topRows(0), y.topRows(0)); }, "x has no rows"));
    REQUIRE(throws_with([&] { (void)m.train_batch(x, MatrixXd::Zero(4, 3)); }, "N x 1 integer class labels"));
    MatrixXd bad = y;
    bad(2, 0) = 3;
    REQUIRE(throws_with([&] { (void)m.train_batch(x, bad); }, "row 2 is not a class index in [0, 3)"));
    bad(2, 0) = 0.5;
    REQUIRE(throws_with([&] { (void)m.train_batch(x, bad); }, "row 2"));
    bad(2, 0) = -1;
    REQUIRE(throws_with([&] { (void)m.compute_gradients(x, bad); }, "row 2"));
    REQUIRE(throws_with([&] { (void)m.predict(inputs(2, 4, 1)); }, "predict: x has 4 columns"));
    REQUIRE(throws_with([&] { (void)m.loss(y, MatrixXd::Zero(4, 2)); }, "y_pred has 2 columns"));
    REQUIRE(throws_with([&] { (void)m.loss(y.topRows(2), MatrixXd::Constant(4, 3, 1.0 / 3)); }, "y has 2 rows"));
    REQUIRE(throws_with([&] { m.set_learning_rate(-0.1); }, "learning rate"));
    REQUIRE(throws_with([&] { m.set_learning_rate(std::numeric_limits<double>::quiet_NaN()); }, "learning rate"));
    REQUIRE(throws_with([&] { m.set_learning_rate(std::numeric_limits<double>::infinity()); }, "learning rate"));
    REQUIRE(state_of(m) == before);
    REQUIRE(m.step() == 0);

    Mlp r({.inputs = 3, .layers = {{2, Activation::Linear}}});
    REQUIRE(throws_with([&] { (void)r.train_batch(x, MatrixXd::Zero(4, 3)); },
                        "y has 3 columns but the output layer has 2"));
    m.set_learning_rate(0);  // zero is allowed (a schedule may reach it)
    REQUIRE(m.learning_rate() == 0);
}

TEST_CASE("predict of zero rows is an empty matrix with the output width") {
    Mlp m({.inputs = 3, .layers = {{2, Activation::Sigmoid}}, .loss = Loss::BinaryCrossentropy});
    const MatrixXd p = m.predict(MatrixXd(0, 3));
    REQUIRE(p.rows() == 0);
    REQUIRE(p.cols() == 2);
    REQUIRE(std::string(traincb_examples::loss_name(Loss::SparseCategoricalCrossentropy)) ==
            "sparse_categorical_crossentropy");
    REQUIRE(std::string(traincb_examples::activation_name(Activation::Relu)) == "relu");
}
