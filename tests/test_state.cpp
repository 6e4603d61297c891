// Tests for traincb/state.hpp's weight / training-state distinction: the kind a visitor sees for
// each way of visiting a tensor, FilteredStateVisitor, and the StateFilter of StateSnapshot,
// StateCollector and StateLoader. The expected kinds follow the rule of state.hpp: `visit` is a
// weight, `visit_training_state` (or an explicit StateKind::Training) is training state.
// Also the raw overload of `visit` (dense row-major tensors of any rank, F16 and BF16 included):
// the views it makes, its validation, shapes kept by to_tensor / from_tensor / StateSnapshot, and
// the float16 / bfloat16 conversions, checked against the IEEE 754 definition (an independent
// decoder and a nearest-value search written here) and against bit patterns numpy printed.
#include "catch.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <traincb/state.hpp>
#include <utility>
#include <vector>

namespace test_state {

namespace {

using traincb::StateFilter;
using traincb::StateKind;

// Every form of visit: Eigen matrices (column- and row-major), vectors, arrays and scalars, as
// weights and as training state.
struct Mixed {
    Eigen::MatrixXd w = Eigen::MatrixXd::Constant(2, 3, 1.5);
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> buffer =
        Eigen::MatrixXf::Constant(2, 2, 0.25f);
    Eigen::VectorXd moment = Eigen::VectorXd::Constant(3, -1.0);
    Eigen::ArrayXf velocity = Eigen::ArrayXf::Constant(2, 4.0f);
    double lr = 0.01;
    std::int64_t step = 7;
    std::int64_t seen = 3;  // a buffer counter, a weight
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit(v, "buffer", buffer);
        traincb::visit_training_state(v, "moment", moment);
        traincb::visit(v, "velocity", velocity, StateKind::Training);
        traincb::visit_training_state(v, "lr", lr);
        traincb::visit_training_state(v, "step", step);
        traincb::visit(v, "seen", seen);
    }
};

// A user's visitor: records the kind of each tensor, in visiting order.
struct KindRecorder final : traincb::StateVisitor {
    std::vector<std::pair<std::string, StateKind>> seen;
    void visit(const traincb::TensorView& t) override { seen.emplace_back(std::string(t.name), t.kind); }
};

std::vector<std::string> names(const traincb::StateDict& d) {
    std::vector<std::string> out;
    for (const auto& t : d.tensors()) out.push_back(t.name);
    return out;
}

// The value of binary16 bits from the IEEE 754 definition: (-1)^s * 2^(e-15) * (1 + m/1024) for
// a normal, (-1)^s * 2^-14 * (m/1024) for a subnormal, e = 31 inf/NaN (NaN returned as quiet NaN).
double ieee_half(std::uint16_t h) {
    const int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double v = 0;
    if (e == 31)
        v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    else if (e == 0)
        v = std::ldexp(static_cast<double>(m) / 1024.0, -14);
    else
        v = std::ldexp(1.0 + static_cast<double>(m) / 1024.0, e - 15);
    return s != 0 ? -v : v;
}
// The same for bfloat16: 8 exponent bits (bias 127), 7 mantissa bits.
double ieee_bfloat16(std::uint16_t b) {
    const int s = b >> 15, e = (b >> 7) & 0xFF, m = b & 0x7F;
    double v = 0;
    if (e == 255)
        v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    else if (e == 0)
        v = std::ldexp(static_cast<double>(m) / 128.0, -126);
    else
        v = std::ldexp(1.0 + static_cast<double>(m) / 128.0, e - 127);
    return s != 0 ? -v : v;
}
// The values of the positive finite patterns 0 .. inf_bits-1 (increasing with the bits), and the
// pattern nearest to `x` among them: a binary search, ties to the even pattern; overflow as
// IEEE 754 rounds it: to infinity from the midpoint between the largest finite value and the next
// power of two.
std::vector<double> values_below(double (*value)(std::uint16_t), std::uint16_t inf_bits) {
    std::vector<double> table(inf_bits);
    for (std::uint16_t b = 0; b < inf_bits; ++b) table[b] = value(b);
    return table;
}
std::uint16_t nearest(double x, const std::vector<double>& table, std::uint16_t inf_bits, double overflow_at) {
    const auto sign = static_cast<std::uint16_t>(std::signbit(x) ? 0x8000 : 0);
    const double a = std::abs(x);
    if (a >= overflow_at) return static_cast<std::uint16_t>(sign | inf_bits);
    auto hi = static_cast<std::size_t>(std::lower_bound(table.begin(), table.end(), a) - table.begin());
    if (hi == table.size()) hi = table.size() - 1;  // between the largest finite value and overflow_at
    std::size_t best = hi;
    if (hi > 0) {
        const double below = a - table[hi - 1], above = table[hi] - a;
        if (below < above || (below == above && (hi - 1) % 2 == 0)) best = hi - 1;
    }
    return static_cast<std::uint16_t>(sign | best);
}
std::uint16_t nearest_half(double x) {
    static const std::vector<double> table = values_below(ieee_half, 0x7C00);
    return nearest(x, table, 0x7C00, 65520.0);  // 65504 + half its ulp of 32
}
std::uint16_t nearest_bfloat16(double x) {
    // The largest finite bfloat16 is (2 - 2^-7) * 2^127; half an ulp above it is (2 - 2^-8) * 2^127.
    static const std::vector<double> table = values_below(ieee_bfloat16, 0x7F80);
    return nearest(x, table, 0x7F80, std::ldexp(2.0 - 1.0 / 256.0, 127));
}

// A framework-style model: tensors held as raw row-major buffers with their shapes, visited
// with the raw overload. `conv` is a rank-4 F32 weight, `scale` a rank-3 F16 weight, `bias` a
// BF16 vector, `moment` a rank-4 F32 optimizer moment (training state) and `step` a scalar.
struct RawModel {
    std::vector<float> conv = std::vector<float>(24);
    std::vector<std::uint16_t> scale = std::vector<std::uint16_t>(12);
    std::vector<std::uint16_t> bias = std::vector<std::uint16_t>(3);
    std::vector<float> moment = std::vector<float>(24);
    std::int64_t step = 0;
    RawModel() {
        for (std::size_t i = 0; i < conv.size(); ++i) conv[i] = 0.5f * static_cast<float>(i) - 3.0f;
        for (std::size_t i = 0; i < scale.size(); ++i)
            scale[i] = traincb::float_to_half(0.25f * static_cast<float>(i) + 0.125f);
        for (std::size_t i = 0; i < bias.size(); ++i)
            bias[i] = traincb::float_to_bfloat16(-1.5f * static_cast<float>(i + 1));
        for (std::size_t i = 0; i < moment.size(); ++i) moment[i] = static_cast<float>(i) * 0.01f;
    }
    void visit_state(traincb::StateVisitor& v) {
        // Shapes built afresh at every visit: traincb must keep copies, not spans into them.
        const std::vector<std::int64_t> conv_shape{2, 3, 2, 2};
        const std::array<std::int64_t, 3> scale_shape{3, 1, 4};
        const std::array<std::int64_t, 1> bias_shape{3};
        traincb::visit(v, "conv.weight", conv.data(), traincb::DType::F32, conv_shape);
        traincb::visit(v, "norm.scale", scale.data(), traincb::DType::F16, scale_shape);
        traincb::visit(v, "conv.bias", bias.data(), traincb::DType::BF16, bias_shape);
        traincb::visit_training_state(v, "adam.m.conv", moment.data(), traincb::DType::F32, conv_shape);
        traincb::visit_training_state(v, "adam.step", step);
    }
};

// Records a copy of each view, with its shape() (its dims are only valid during the visit).
struct ViewRecorder final : traincb::StateVisitor {
    std::vector<traincb::TensorView> views;
    std::vector<std::vector<std::int64_t>> shapes;
    void visit(const traincb::TensorView& t) override {
        views.push_back(t);
        views.back().dims = {};
        shapes.push_back(t.shape());
    }
};

// The message of the InvalidArgument `f` throws (fails the test if none).
template <class F>
std::string invalid_argument(F&& f) {
    try {
        f();
    } catch (const traincb::InvalidArgument& e) {
        return e.what();
    }
    FAIL("no InvalidArgument thrown");
    return {};
}

}  // namespace

TEST_CASE("state: a custom visitor sees each tensor's kind: visit is a weight, visit_training_state is not") {
    Mixed m;
    KindRecorder r;
    m.visit_state(r);
    const std::vector<std::pair<std::string, StateKind>> expected{
        {"w", StateKind::Weight},          {"buffer", StateKind::Weight}, {"moment", StateKind::Training},
        {"velocity", StateKind::Training}, {"lr", StateKind::Training},   {"step", StateKind::Training},
        {"seen", StateKind::Weight}};
    CHECK(r.seen == expected);
    CHECK(traincb::TensorView{}.kind == StateKind::Weight);  // a view made by hand is a weight
    CHECK(std::string(traincb::to_string(StateKind::Weight)) == "weight");
    CHECK(std::string(traincb::to_string(StateKind::Training)) == "training");
}

TEST_CASE("state: selects() and FilteredStateVisitor forward only the chosen kind") {
    CHECK(traincb::selects(StateFilter::All, StateKind::Weight));
    CHECK(traincb::selects(StateFilter::All, StateKind::Training));
    CHECK(traincb::selects(StateFilter::Weights, StateKind::Weight));
    CHECK_FALSE(traincb::selects(StateFilter::Weights, StateKind::Training));
    CHECK_FALSE(traincb::selects(StateFilter::Training, StateKind::Weight));
    CHECK(traincb::selects(StateFilter::Training, StateKind::Training));
    Mixed m;
    KindRecorder weights, training;
    traincb::FilteredStateVisitor fw(weights, StateFilter::Weights);
    traincb::FilteredStateVisitor ft(training, StateFilter::Training);
    m.visit_state(fw);
    m.visit_state(ft);
    CHECK(weights.seen.size() == 3);
    CHECK(training.seen.size() == 4);
    for (const auto& e : weights.seen) CHECK(e.second == StateKind::Weight);
    for (const auto& e : training.seen) CHECK(e.second == StateKind::Training);
}

TEST_CASE("state: a weights-only snapshot restores the weights and leaves the training state alone") {
    Mixed m;
    const auto visit = [&m](traincb::StateVisitor& v) { m.visit_state(v); };
    traincb::StateSnapshot s;
    s.take(visit, StateFilter::Weights);
    CHECK(s.filter() == StateFilter::Weights);
    CHECK(s.size() == 3);
    CHECK(s.bytes() == 6 * sizeof(double) + 4 * sizeof(float) + sizeof(std::int64_t));
    CHECK(names(s.to_state_dict()) == std::vector<std::string>{"w", "buffer", "seen"});

    const Mixed taken = m;
    m.w.setConstant(9.0);
    m.buffer.setConstant(9.0f);
    m.seen = 9;
    m.moment.setConstant(9.0);
    m.velocity.setConstant(9.0f);
    m.lr = 9.0;
    m.step = 9;
    s.restore(visit);
    CHECK(m.w == taken.w);
    CHECK(m.buffer == taken.buffer);
    CHECK(m.seen == taken.seen);
    CHECK(m.moment == Eigen::VectorXd::Constant(3, 9.0));  // training state untouched
    CHECK((m.velocity == 9.0f).all());
    CHECK(m.lr == 9.0);
    CHECK(m.step == 9);

    // The default covers every tensor, as before.
    traincb::StateSnapshot all;
    all.take(visit);
    CHECK(all.filter() == StateFilter::All);
    CHECK(all.size() == 7);
    // The same buffers serve a weights-only snapshot afterwards: it shrinks to the weights.
    all.take(visit, StateFilter::Weights);
    CHECK(all.size() == 3);
}

TEST_CASE("state: from_state_dict with a filter reads the selected tensors and ignores the others") {
    Mixed m;
    const auto visit = [&m](traincb::StateVisitor& v) { m.visit_state(v); };
    traincb::StateDict d;
    traincb::StateCollector everything(d);
    m.visit_state(everything);
    REQUIRE(d.size() == 7);
    // Weights only: a dict holding the training state too (as an earlier EarlyStopping saved) loads.
    traincb::StateSnapshot s;
    s.from_state_dict(d, "", visit, StateFilter::Weights);
    CHECK(s.size() == 3);
    // A dict holding only the weights loads with the filter, and fails without it.
    traincb::StateDict weights_only;
    traincb::StateCollector wc(weights_only, "", StateFilter::Weights);
    m.visit_state(wc);
    CHECK(names(weights_only) == std::vector<std::string>{"w", "buffer", "seen"});
    CHECK_NOTHROW(s.from_state_dict(weights_only, "", visit, StateFilter::Weights));
    traincb::StateSnapshot strict;
    CHECK_THROWS_AS(strict.from_state_dict(weights_only, "", visit), traincb::FormatError);
}

TEST_CASE("state: StateCollector and StateLoader honour a filter") {
    Mixed src;
    src.w.setConstant(2.0);
    src.lr = 0.5;
    traincb::StateDict training;
    traincb::StateCollector tc(training, "opt/", StateFilter::Training);
    src.visit_state(tc);
    CHECK(names(training) == std::vector<std::string>{"opt/moment", "opt/velocity", "opt/lr", "opt/step"});

    traincb::StateDict all;
    traincb::StateCollector ac(all);
    src.visit_state(ac);
    Mixed dst;
    traincb::StateLoader weights_loader(all, "", StateFilter::Weights);
    dst.visit_state(weights_loader);
    CHECK(dst.w == src.w);
    CHECK(dst.lr == 0.01);  // not loaded
    // A loader of the training state alone needs no weight tensor.
    traincb::StateLoader training_loader(training, "opt/", StateFilter::Training);
    dst.visit_state(training_loader);
    CHECK(dst.lr == 0.5);
}

// ---- float16 / bfloat16 --------------------------------------------------------------------

TEST_CASE("state: DType F16 and BF16 are 2-byte dtypes with the safetensors names") {
    CHECK(traincb::dtype_size(traincb::DType::F16) == 2);
    CHECK(traincb::dtype_size(traincb::DType::BF16) == 2);
    CHECK(std::string(traincb::dtype_name(traincb::DType::F16)) == "F16");
    CHECK(std::string(traincb::dtype_name(traincb::DType::BF16)) == "BF16");
    // Appended: the values of the older dtypes did not change.
    CHECK(static_cast<int>(traincb::DType::Bool) == 5);
    CHECK(static_cast<int>(traincb::DType::F16) == 6);
    CHECK(static_cast<int>(traincb::DType::BF16) == 7);
}

TEST_CASE("state: half_to_float and bfloat16_to_float decode every pattern as IEEE 754 defines it") {
    // Known patterns of IEEE 754 binary16: 1.0, the largest finite value, the smallest normal,
    // the smallest and largest subnormals, -0, infinity.
    CHECK(traincb::half_to_float(0x3C00) == 1.0f);
    CHECK(traincb::half_to_float(0x7BFF) == 65504.0f);
    CHECK(traincb::half_to_float(0x0400) == std::ldexp(1.0f, -14));
    CHECK(traincb::half_to_float(0x0001) == std::ldexp(1.0f, -24));  // 5.96e-8
    CHECK(traincb::half_to_float(0x03FF) == std::ldexp(1023.0f, -24));
    CHECK(std::signbit(traincb::half_to_float(0x8000)));
    CHECK(traincb::half_to_float(0xFC00) == -std::numeric_limits<float>::infinity());
    // Every one of the 65536 patterns against the definition (ieee_half above).
    for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
        const auto h = static_cast<std::uint16_t>(b);
        const double want = ieee_half(h);
        const float got = traincb::half_to_float(h);
        if (std::isnan(want)) {
            if (!std::isnan(got)) FAIL_CHECK("half " << b << " is a NaN but decoded as " << got);
        } else if (static_cast<double>(got) != want || std::signbit(got) != std::signbit(want)) {
            FAIL_CHECK("half " << b << ": got " << got << ", want " << want);
        }
    }
    // bfloat16: 1.0 is 0x3F80, -2.0 is 0xC000 (the top half of the float's bits), and every
    // pattern against the definition.
    CHECK(traincb::bfloat16_to_float(0x3F80) == 1.0f);
    CHECK(traincb::bfloat16_to_float(0xC000) == -2.0f);
    for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
        const auto h = static_cast<std::uint16_t>(b);
        const double want = ieee_bfloat16(h);
        const float got = traincb::bfloat16_to_float(h);
        if (std::isnan(want)) {
            if (!std::isnan(got)) FAIL_CHECK("bfloat16 " << b << " is a NaN but decoded as " << got);
        } else if (static_cast<double>(got) != want || std::signbit(got) != std::signbit(want)) {
            FAIL_CHECK("bfloat16 " << b << ": got " << got << ", want " << want);
        }
    }
}

TEST_CASE("state: float_to_half rounds to nearest, ties to even, as numpy's float16 does") {
    // {float bits, float16 bits} printed by numpy 1.24.2:
    // np.float32(x).view(np.uint32), np.float32(x).astype(np.float16).view(np.uint16).
    const std::vector<std::pair<std::uint32_t, std::uint16_t>> numpy{
        {0x3F800000U, 0x3C00U},  // 1.0
        {0xC0000000U, 0xC000U},  // -2.0
        {0x477FE000U, 0x7BFFU},  // 65504.0, the largest finite half
        {0x477FEFFFU, 0x7BFFU},  // 65519.996 -> 65504
        {0x477FF000U, 0x7C00U},  // 65520.0 (the tie with 65536) -> inf
        {0x47C35000U, 0x7C00U},  // 100000.0 -> inf
        {0x3EAAAAABU, 0x3555U},  // 1/3 -> 0.333251953125
        {0x3DCCCCCDU, 0x2E66U},  // 0.1 -> 0.0999755859375
        {0xBDCCCCCDU, 0xAE66U},  // -0.1
        {0x33800000U, 0x0001U},  // 2^-24, the smallest subnormal
        {0x33000000U, 0x0000U},  // 2^-25 (the tie with 0) -> 0
        {0x33000001U, 0x0001U},  // just above 2^-25 -> 2^-24
        {0x33400000U, 0x0001U},  // 0.75 * 2^-24 -> 2^-24
        {0x33C00000U, 0x0002U},  // 1.5 * 2^-24 (tie) -> 2 * 2^-24
        {0x34200000U, 0x0002U},  // 2.5 * 2^-24 (tie) -> 2 * 2^-24
        {0x38800000U, 0x0400U},  // 2^-14, the smallest normal
        {0x387FE000U, 0x0400U},  // 1023.5 * 2^-24 (tie) -> the smallest normal
        {0x387FDA40U, 0x03FFU},  // 6.1e-5 -> the largest subnormal
        {0x322BCC77U, 0x0000U},  // 1e-8 -> 0
        {0x00000000U, 0x0000U},  // 0.0
        {0x80000000U, 0x8000U},  // -0.0
        {0x7F800000U, 0x7C00U},  // inf
        {0xFF800000U, 0xFC00U},  // -inf
        {0x3F801000U, 0x3C00U},  // 1 + 2^-11 (tie) -> 1.0
        {0x45001000U, 0x6800U},  // 2049.0 (tie) -> 2048
        {0x45003000U, 0x6802U},  // 2051.0 (tie) -> 2052
        {0x45800800U, 0x6C00U},  // 4097.0 (tie) -> 4096
        {0xC0490FD0U, 0xC248U},  // -3.14159 -> -3.140625
    };
    for (const auto& [f, h] : numpy) {
        CAPTURE(f, h);
        CHECK(traincb::float_to_half(std::bit_cast<float>(f)) == h);
    }
    // NaN stays NaN (numpy gives 0x7E00 for the default NaN), whatever its payload.
    CHECK(traincb::float_to_half(std::numeric_limits<float>::quiet_NaN()) == 0x7E00);
    for (const std::uint32_t nan : {0x7F800001U, 0xFFC00000U, 0x7FBFFFFFU})
        CHECK(std::isnan(traincb::half_to_float(traincb::float_to_half(std::bit_cast<float>(nan)))));
    // Every finite half survives the round trip, and every midpoint between neighbours (exact
    // in float) goes to the even one, the float just below it down and just above it up.
    for (std::uint16_t h = 0; h < 0x7C00; ++h) {
        CAPTURE(h);
        const float v = traincb::half_to_float(h);
        CHECK(traincb::float_to_half(v) == h);
        CHECK(traincb::float_to_half(-v) == (h | 0x8000));
        const float next = h + 1 < 0x7C00 ? traincb::half_to_float(static_cast<std::uint16_t>(h + 1)) : 65536.0f;
        const float mid = (v + next) / 2;  // exact: neighbours differ in their last bit only
        const std::uint16_t even = (h % 2 == 0) ? h : static_cast<std::uint16_t>(h + 1);
        CHECK(traincb::float_to_half(mid) == even);
        CHECK(traincb::float_to_half(std::nextafter(mid, 0.0f)) == h);
        CHECK(traincb::float_to_half(std::nextafter(mid, 1e30f)) == h + 1);
    }
    // Floats spread over the whole range against the independent search (nearest_half).
    for (std::uint32_t bits = 0; bits < 0x7F800000U; bits += 0x10001U + (bits >> 12)) {
        const float f = std::bit_cast<float>(bits);
        CAPTURE(bits, f);
        CHECK(traincb::float_to_half(f) == nearest_half(static_cast<double>(f)));
    }
}

TEST_CASE("state: float_to_bfloat16 rounds to nearest, ties to even; NaN stays NaN") {
    // Known bfloat16 patterns: the top 16 bits of the float when the rest is zero.
    CHECK(traincb::float_to_bfloat16(1.0f) == 0x3F80);
    CHECK(traincb::float_to_bfloat16(-2.0f) == 0xC000);
    CHECK(traincb::float_to_bfloat16(std::numeric_limits<float>::infinity()) == 0x7F80);
    CHECK(traincb::float_to_bfloat16(-0.0f) == 0x8000);
    // Ties: 0x3F808000 is halfway between 0x3F80 and 0x3F81 -> even 0x3F80; 0x3F818000 -> 0x3F82.
    CHECK(traincb::float_to_bfloat16(std::bit_cast<float>(0x3F808000U)) == 0x3F80);
    CHECK(traincb::float_to_bfloat16(std::bit_cast<float>(0x3F818000U)) == 0x3F82);
    CHECK(traincb::float_to_bfloat16(std::bit_cast<float>(0x3F808001U)) == 0x3F81);
    // The largest float rounds up to infinity (beyond the largest bfloat16's half ulp).
    CHECK(traincb::float_to_bfloat16(std::numeric_limits<float>::max()) == 0x7F80);
    for (const std::uint32_t nan : {0x7FC00000U, 0x7F800001U, 0xFF800001U, 0x7FFFFFFFU}) {
        CAPTURE(nan);
        CHECK(std::isnan(traincb::bfloat16_to_float(traincb::float_to_bfloat16(std::bit_cast<float>(nan)))));
    }
    // Every finite bfloat16 survives the round trip; floats over the whole range against the
    // independent search (nearest_bfloat16), subnormals included.
    for (std::uint16_t b = 0; b < 0x7F80; ++b) CHECK(traincb::float_to_bfloat16(traincb::bfloat16_to_float(b)) == b);
    for (std::uint32_t bits = 0; bits < 0x7F800000U; bits += 0x10001U + (bits >> 12)) {
        const float f = std::bit_cast<float>(bits);
        CAPTURE(bits, f);
        CHECK(traincb::float_to_bfloat16(f) == nearest_bfloat16(static_cast<double>(f)));
        CHECK(traincb::float_to_bfloat16(-f) == (nearest_bfloat16(static_cast<double>(f)) | 0x8000));
    }
}

// ---- the raw overload: any rank, any dtype -------------------------------------------------

TEST_CASE("state: the raw visit gives ranks 0-2 the ordinary row-major views, higher ranks their dims") {
    std::vector<std::uint16_t> data(24);
    ViewRecorder r;
    traincb::visit(r, "scalar", data.data(), traincb::DType::F16, std::span<const std::int64_t>{});
    traincb::visit(r, "vector", data.data(), traincb::DType::BF16, std::vector<std::int64_t>{5});
    traincb::visit(r, "matrix", data.data(), traincb::DType::F16, std::vector<std::int64_t>{4, 6});
    traincb::visit(r, "conv", data.data(), traincb::DType::F16, std::vector<std::int64_t>{2, 3, 2, 2});
    traincb::visit_training_state(r, "moment", data.data(), traincb::DType::F16, std::vector<std::int64_t>{3, 0, 2});
    REQUIRE(r.views.size() == 5);
    const auto& v = r.views;
    CHECK((v[0].rank == 0 && v[0].rows == 1 && v[0].cols == 1 && v[0].size() == 1));
    CHECK((v[1].rank == 1 && v[1].size() == 5 && v[1].dtype == traincb::DType::BF16));
    CHECK((v[2].rank == 2 && v[2].rows == 4 && v[2].cols == 6 && v[2].row_major));
    CHECK((v[3].rank == 4 && v[3].rows == 2 && v[3].cols == 12 && v[3].row_major && v[3].bytes() == 48));
    CHECK((v[4].rank == 3 && v[4].size() == 0 && v[4].kind == StateKind::Training));
    CHECK(v[3].kind == StateKind::Weight);
    CHECK(v[3].data == data.data());
    const std::vector<std::vector<std::int64_t>> shapes{{}, {5}, {4, 6}, {2, 3, 2, 2}, {3, 0, 2}};
    CHECK(r.shapes == shapes);
}

TEST_CASE("state: the raw visit rejects a negative dimension or null data, naming the tensor, shape and fix") {
    std::vector<float> data(6);
    ViewRecorder r;
    const std::string neg = invalid_argument([&] {
        traincb::visit(r, "conv.weight", data.data(), traincb::DType::F32, std::vector<std::int64_t>{2, -3, 1});
    });
    CHECK(neg ==
          "traincb: state: tensor 'conv.weight' of shape [2,-3,1] has a negative dimension; pass the tensor's sizes, "
          "each >= 0");
    const std::string null = invalid_argument([&] {
        traincb::visit_training_state(r, "adam.m", nullptr, traincb::DType::F16, std::vector<std::int64_t>{2, 3});
    });
    CHECK(null.rfind("traincb: state: tensor 'adam.m' of shape [2,3] has a null data pointer for 6 elements; pass the "
                     "address of its first element",
                     0) == 0);
    const std::string huge = invalid_argument([&] {
        traincb::visit(r, "huge", data.data(), traincb::DType::F32,
                       std::vector<std::int64_t>{std::int64_t{1} << 40, std::int64_t{1} << 40});
    });
    CHECK(huge.find("tensor 'huge'") != std::string::npos);
    CHECK(r.views.empty());  // nothing reached the visitor
    // No data is fine when there are no elements.
    traincb::visit(r, "empty", nullptr, traincb::DType::F32, std::vector<std::int64_t>{0, 3, 2});
    CHECK(r.views.size() == 1);
}

TEST_CASE("state: to_tensor keeps the full shape of a rank-4 tensor; from_tensor compares it") {
    RawModel m;
    traincb::StateDict d;
    traincb::StateCollector c(d);
    m.visit_state(c);
    REQUIRE(names(d) == std::vector<std::string>{"conv.weight", "norm.scale", "conv.bias", "adam.m.conv", "adam.step"});
    const traincb::Tensor& conv = *d.find("conv.weight");
    CHECK(conv.dtype == traincb::DType::F32);
    CHECK(conv.shape == std::vector<std::int64_t>{2, 3, 2, 2});
    REQUIRE(conv.data.size() == 24 * sizeof(float));
    CHECK(std::memcmp(conv.data.data(), m.conv.data(), conv.data.size()) == 0);  // already row-major
    CHECK(d.find("norm.scale")->shape == std::vector<std::int64_t>{3, 1, 4});
    CHECK(d.find("norm.scale")->dtype == traincb::DType::F16);
    CHECK(d.find("conv.bias")->dtype == traincb::DType::BF16);
    CHECK(d.find("conv.bias")->shape == std::vector<std::int64_t>{3});

    // Loading it back into a fresh model is bit-identical.
    RawModel other;
    std::fill(other.conv.begin(), other.conv.end(), 0.0f);
    std::fill(other.scale.begin(), other.scale.end(), std::uint16_t{0});
    traincb::StateLoader loader(d);
    other.visit_state(loader);
    CHECK(other.conv == m.conv);
    CHECK(other.scale == m.scale);
    CHECK(other.bias == m.bias);

    // A tensor whose shape differs in one dimension (same element count) is refused with the
    // message naming both shapes; dropping or adding 1-dims is still accepted (as for vectors).
    std::vector<float> buf(24);
    ViewRecorder r;
    traincb::visit(r, "t", buf.data(), traincb::DType::F32, std::vector<std::int64_t>{2, 3, 4});
    const traincb::TensorView& view = r.views.front();
    const std::vector<std::int64_t> dims{2, 3, 4};
    traincb::TensorView v = view;
    v.dims = dims;
    traincb::Tensor wrong{"t", traincb::DType::F32, {2, 4, 3}, std::vector<std::byte>(96)};
    try {
        traincb::from_tensor(wrong, v);
        FAIL("a [2,4,3] tensor loaded into a [2,3,4] view");
    } catch (const traincb::FormatError& e) {
        CHECK(std::string(e.what()) ==
              "traincb: state: tensor 't' is F32 [2,4,3] in the file but F32 [2,3,4] in the model; the checkpoint "
              "was written by a different architecture");
    }
    traincb::Tensor flat{"t", traincb::DType::F32, {6, 4}, std::vector<std::byte>(96)};
    CHECK_THROWS_AS(traincb::from_tensor(flat, v), traincb::FormatError);
    traincb::Tensor padded{"t", traincb::DType::F32, {1, 2, 3, 1, 4}, std::vector<std::byte>(96)};
    padded.data[4] = std::byte{0x3F};
    CHECK_NOTHROW(traincb::from_tensor(padded, v));
    CHECK(buf[1] == std::bit_cast<float>(0x0000003FU));
}

TEST_CASE("state: StateSnapshot takes and restores rank-4 and F16 tensors, and keeps their shapes") {
    RawModel m;
    const auto visit = [&m](traincb::StateVisitor& v) { m.visit_state(v); };
    traincb::StateSnapshot all;
    all.take(visit);
    CHECK(all.size() == 5);
    CHECK(all.bytes() == 24 * 4 + 12 * 2 + 3 * 2 + 24 * 4 + 8);
    const RawModel taken = m;
    for (float& x : m.conv) x = 7.0f;
    for (auto& x : m.scale) x = traincb::float_to_half(7.0f);
    for (auto& x : m.bias) x = 0;
    for (float& x : m.moment) x = 7.0f;
    m.step = 7;
    all.restore(visit);
    CHECK(m.conv == taken.conv);
    CHECK(m.scale == taken.scale);
    CHECK(m.bias == taken.bias);
    CHECK(m.moment == taken.moment);
    CHECK(m.step == 0);

    // The shapes were copied at take(): the visit's shape vectors are gone by now.
    const traincb::StateDict d = all.to_state_dict("best/");
    CHECK(d.find("best/conv.weight")->shape == std::vector<std::int64_t>{2, 3, 2, 2});
    CHECK(d.find("best/norm.scale")->shape == std::vector<std::int64_t>{3, 1, 4});
    CHECK(d.find("best/norm.scale")->dtype == traincb::DType::F16);
    CHECK(std::memcmp(d.find("best/norm.scale")->data.data(), taken.scale.data(), 24) == 0);
    traincb::StateSnapshot back;
    back.from_state_dict(d, "best/", visit);
    CHECK(back.to_state_dict("best/") == d);
    // A snapshot of another shape is refused by from_state_dict (full shape compared).
    traincb::StateDict reshaped = d;
    for (traincb::Tensor& t : reshaped.tensors())
        if (t.name == "best/conv.weight") t.shape = {2, 3, 4};
    CHECK_THROWS_AS(back.from_state_dict(reshaped, "best/", visit), traincb::FormatError);

    // A weights-only snapshot (EarlyStopping's) skips the raw overload's training state.
    traincb::StateSnapshot weights;
    weights.take(visit, StateFilter::Weights);
    CHECK(names(weights.to_state_dict()) == std::vector<std::string>{"conv.weight", "norm.scale", "conv.bias"});
    for (float& x : m.conv) x = 1.0f;
    for (float& x : m.moment) x = 1.0f;
    weights.restore(visit);
    CHECK(m.conv == taken.conv);
    CHECK(m.moment == std::vector<float>(24, 1.0f));  // training state untouched
}

}  // namespace test_state
