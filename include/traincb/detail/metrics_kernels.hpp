#pragma once
/// @file detail/metrics_kernels.hpp
/// The loops behind traincb/metrics.hpp. Inputs are read in place: a float or double matrix whose
/// rows are contiguous in memory (column-major, or any N x 1) is read through its pointer with
/// SIMD loads; anything else (row-major, strided maps, integer scalars, unevaluated expressions)
/// through Eigen's evaluator, one coefficient at a time. Nothing is copied and nothing is
/// allocated, except where a function's documentation says so (roc_auc, many-class averages).
///
/// Two loop shapes cover every metric:
///  - elementwise (accuracy, cross-entropy, MSE, MAE): a pass over pairs of equal-shaped inputs
///    that follows the storage order, in blocks of kBlock elements whose sums are added with
///    Neumaier compensation, so long inputs lose no accuracy;
///  - row-wise (categorical metrics): SIMD lanes hold consecutive rows, each lane walks its row's
///    classes, so a column-major N x C matrix is read with contiguous loads.

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "traincb/detail/metrics_simd.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0::detail::metrics {

using Eigen::Index;
using simd::V1;
using simd::VD;

/// Keras's epsilon (keras.config.epsilon()): probabilities are clipped to [kEps, 1 - kEps].
inline constexpr double kEps = 1e-7;
/// Elements per block of the elementwise loops (block sums are added with compensation).
inline constexpr Index kBlock = 4096;
/// Rows per block of the row-wise loops.
inline constexpr Index kRowBlock = 1024;
/// Products of clipped probabilities (>= 1e-7) or of 1 + e (<= 2) stay normal for 32 factors;
/// their exponents are moved out every kRenorm steps.
inline constexpr int kRenorm = 32;

// ---------------------------------------------------------------------------------------------
// Messages

inline std::string shape(Index r, Index c) {
    return std::to_string(r) + "x" + std::to_string(c);
}
template <class X>
std::string shape(const X& x) {
    return shape(x.rows(), x.cols());
}
inline std::string number(double v) {
    if (v == std::trunc(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
    return format_double(v);
}

[[noreturn]] inline void fail(const char* who, const std::string& what) {
    throw InvalidArgument(std::string("traincb: ") + who + ": " + what);
}

template <class A, class B>
void require_same_shape(const char* who, const char* na, const A& a, const char* nb, const B& b) {
    if (a.rows() != b.rows() || a.cols() != b.cols())
        fail(who, std::string(na) + " is " + shape(a) + " but " + nb + " is " + shape(b) +
                      "; pass matrices of the same shape");
}
template <class X>
void require_nonempty(const char* who, const char* name, const X& x) {
    if (x.size() == 0) fail(who, std::string(name) + " is empty (" + shape(x) + "); pass at least one sample");
}
template <class X>
void require_vector(const char* who, const char* name, const X& x) {
    if (x.rows() != 1 && x.cols() != 1)
        fail(who, std::string(name) + " is " + shape(x) + "; pass a vector (N x 1 or 1 x N)");
}

// ---------------------------------------------------------------------------------------------
// Reading inputs

template <class T>
inline constexpr bool is_simd_scalar = std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
double to_double(const T& v) {
    static_assert(std::is_arithmetic_v<T>, "traincb metrics need real (arithmetic) scalars");
    return static_cast<double>(v);
}

/// Element (r, c) at p[r + c * ld]: consecutive rows are adjacent, read with vector loads.
template <class T>
struct ColAccess {
    const T* p;
    Index ld;
    template <class V>
    V rows_at(Index r, Index c) const noexcept {
        return V::load(p + r + c * ld);
    }
    double operator()(Index r, Index c) const noexcept { return static_cast<double>(p[r + c * ld]); }
};

/// Any expression, through Eigen's evaluator (which may evaluate a nested product once; plain
/// objects, maps, blocks and coefficient-wise expressions are read in place).
template <class X>
struct EvalAccess {
    Eigen::internal::evaluator<X> ev;
    explicit EvalAccess(const X& x) : ev(x) {}
    template <class V>
    V rows_at(Index r, Index c) const {
        return V::generate([&](int k) { return (*this)(r + k, c); });
    }
    double operator()(Index r, Index c) const { return to_double(ev.coeff(r, c)); }
};

template <class X>
inline constexpr bool has_pointer = (int(X::Flags) & Eigen::DirectAccessBit) != 0 && is_simd_scalar<typename X::Scalar>;

/// Whether consecutive rows of x are adjacent in memory.
template <class X>
bool rows_contiguous(const X& x) {
    if constexpr (has_pointer<X>)
        return x.rows() <= 1 || x.rowStride() == 1;
    else
        return false;
}

/// Calls f with the fastest accessor for x.
template <class X, class F>
decltype(auto) with_access(const X& x, F&& f) {
    if constexpr (has_pointer<X>) {
        using T = typename X::Scalar;
        if constexpr (!X::IsRowMajor && X::InnerStrideAtCompileTime == 1) {
            return f(ColAccess<T>{x.data(), x.colStride()});
        } else {
            if (rows_contiguous(x)) return f(ColAccess<T>{x.data(), x.colStride()});
            return f(EvalAccess<X>(x));
        }
    } else {
        return f(EvalAccess<X>(x));
    }
}

/// Element i of a vector (N x 1 or 1 x N), as a double: through its pointer and stride when it
/// has direct access, else through the evaluator.
template <class X, bool Direct = (int(X::Flags) & Eigen::DirectAccessBit) != 0>
struct VectorReader {
    EvalAccess<X> acc;
    bool column;
    explicit VectorReader(const X& x) : acc(x), column(x.cols() == 1) {}
    double operator()(Index i) const { return column ? acc(i, 0) : acc(0, i); }
};
template <class X>
struct VectorReader<X, true> {
    const typename X::Scalar* p;
    Index stride;
    explicit VectorReader(const X& x) : p(x.data()), stride(x.cols() == 1 ? x.rowStride() : x.colStride()) {}
    double operator()(Index i) const { return to_double(p[i * stride]); }
};

/// Whether v is a whole number in [0, limit), limit <= 2^63 (no call to trunc, which is a
/// library call without SSE4.1).
inline bool is_class_index(double v, double limit) noexcept {
    return v >= 0 && v < limit && static_cast<double>(static_cast<std::int64_t>(v)) == v;
}

/// Throws for label i of value v (out of line, so that read_label inlines into the row loops).
[[noreturn]] inline void bad_label(const char* who, const char* name, Index i, double v, Index num_classes) {
    fail(who, std::string(name) + "(" + std::to_string(i) + ") is " + number(v) +
                  "; class indices must be whole numbers in [0, " + std::to_string(num_classes) + ")");
}

/// Reads label i and checks that it is a whole number in [0, num_classes).
template <class R>
Index read_label(const R& labels, Index i, Index num_classes, const char* who, const char* name) {
    const double v = labels(i);
    if (!is_class_index(v, static_cast<double>(num_classes))) [[unlikely]]
        bad_label(who, name, i, v, num_classes);
    return static_cast<Index>(v);
}

// ---------------------------------------------------------------------------------------------
// Sums

/// Neumaier's compensated sum (for adding block sums and batch sums).
struct CompensatedSum {
    double sum = 0;
    double comp = 0;
    void add(double x) noexcept {
        const double t = sum + x;
        if (!std::isfinite(t)) {  // an infinity or NaN: its compensation would be inf - inf = NaN
            sum = t;
            comp = 0;
            return;
        }
        if (std::fabs(sum) >= std::fabs(x))
            comp += (sum - t) + x;
        else
            comp += (x - t) + sum;
        sum = t;
    }
    void add(const CompensatedSum& o) noexcept {
        add(o.sum);
        add(o.comp);
    }
    [[nodiscard]] double value() const noexcept { return sum + comp; }
};

/// What an elementwise or row-wise loop returns: a sum, and whether an input was invalid.
struct Total {
    CompensatedSum sum;
    bool bad = false;
};

/// The result of one block.
struct Partial {
    double sum = 0;
    bool bad = false;
};

// ---------------------------------------------------------------------------------------------
// Elementwise loops

/// A run of contiguous elements.
template <class T>
struct PtrLine {
    const T* p;
    template <class V>
    V get(Index i) const noexcept {
        return V::load(p + i);
    }
};
/// Row `fixed` (ByRow) or column `fixed` of any accessor.
template <class Acc, bool ByRow>
struct AccessLine {
    const Acc& acc;
    Index fixed;
    template <class V>
    V get(Index i) const {
        return V::generate([&](int k) { return ByRow ? acc(fixed, i + k) : acc(i + k, fixed); });
    }
};

template <class Op, class = void>
struct has_renorm : std::false_type {};
template <class Op>
struct has_renorm<Op, std::void_t<decltype(Op::renorm(std::declval<typename Op::State&>()))>> : std::true_type {};

/// Independent accumulators per loop (Op::kUnroll, else 4): cheap steps need several to hide the
/// latency of their additions; long steps (an exp each) have enough parallelism in one, and more
/// states would not fit in the registers.
template <class Op, class = void>
struct unroll_of : std::integral_constant<Index, 4> {};
template <class Op>
struct unroll_of<Op, std::void_t<decltype(Op::kUnroll)>> : std::integral_constant<Index, Op::kUnroll> {};

/// Runs Op over n element pairs (la.get(i), lb.get(i)), with vector type V and V1 for the tail.
template <template <class> class Op, class V = VD, class P, class LA, class LB>
void run_line(const LA& la, const LB& lb, Index n, const P& prm, Total& total) {
    constexpr Index W = V::size;
    constexpr Index U = unroll_of<Op<V>>::value;
    Index i = 0;
    while (i < n) {
        const Index end = std::min(n, i + kBlock);
        typename Op<V>::State st[U]{};
        int steps = 0;
        for (; i + U * W <= end; i += U * W) {
            for (Index u = 0; u < U; ++u)
                Op<V>::step(st[u], prm, la.template get<V>(i + u * W), lb.template get<V>(i + u * W));
            if constexpr (has_renorm<Op<V>>::value) {
                if (++steps == kRenorm) {
                    steps = 0;
                    for (auto& s : st) Op<V>::renorm(s);
                }
            }
        }
        typename Op<V1>::State tail{};
        for (; i < end; ++i) Op<V1>::step(tail, prm, la.template get<V1>(i), lb.template get<V1>(i));
        Partial part;
        for (const auto& s : st) Op<V>::finish(s, prm, part);
        Op<V1>::finish(tail, prm, part);
        total.sum.add(part.sum);
        total.bad = total.bad || part.bad;
    }
}

template <template <class> class Op, class = void>
struct float_lanes : std::false_type {};
template <template <class> class Op>
struct float_lanes<Op, std::enable_if_t<Op<V1>::kFloatLanes>> : std::true_type {};

/// Runs Op over all element pairs of two equal-shaped inputs, following their storage order.
/// Ops that only compare (kFloatLanes) run four floats per register on float pointers.
template <template <class> class Op, class P, class A, class B>
Total elementwise(const A& a, const B& b, const P& prm) {
    Total total;
    const Index rows = a.rows();
    const Index cols = a.cols();
    if constexpr (has_pointer<A> && has_pointer<B>) {
        using LA = PtrLine<typename A::Scalar>;
        using LB = PtrLine<typename B::Scalar>;
        constexpr bool floats = std::is_same_v<typename A::Scalar, float> && std::is_same_v<typename B::Scalar, float>;
        using V = std::conditional_t<floats && float_lanes<Op>::value, simd::VF, VD>;
        const auto* pa = a.data();
        const auto* pb = b.data();
        if (rows_contiguous(a) && rows_contiguous(b)) {
            if (cols == 1 || (a.colStride() == rows && b.colStride() == rows)) {
                run_line<Op, V>(LA{pa}, LB{pb}, rows * cols, prm, total);
            } else {
                for (Index c = 0; c < cols; ++c)
                    run_line<Op, V>(LA{pa + c * a.colStride()}, LB{pb + c * b.colStride()}, rows, prm, total);
            }
            return total;
        }
        const auto cols_contiguous = [](const auto& x) { return x.cols() <= 1 || x.colStride() == 1; };
        if (cols_contiguous(a) && cols_contiguous(b)) {
            if (rows == 1 || (a.rowStride() == cols && b.rowStride() == cols)) {
                run_line<Op, V>(LA{pa}, LB{pb}, rows * cols, prm, total);
            } else {
                for (Index r = 0; r < rows; ++r)
                    run_line<Op, V>(LA{pa + r * a.rowStride()}, LB{pb + r * b.rowStride()}, cols, prm, total);
            }
            return total;
        }
    }
    // Any other combination: coefficient access, in the first input's storage order.
    const EvalAccess<A> ea(a);
    const EvalAccess<B> eb(b);
    if (A::IsRowMajor && rows > 1 && cols > 1) {
        for (Index r = 0; r < rows; ++r)
            run_line<Op>(AccessLine<EvalAccess<A>, true>{ea, r}, AccessLine<EvalAccess<B>, true>{eb, r}, cols, prm,
                         total);
    } else {
        for (Index c = 0; c < cols; ++c)
            run_line<Op>(AccessLine<EvalAccess<A>, false>{ea, c}, AccessLine<EvalAccess<B>, false>{eb, c}, rows, prm,
                         total);
    }
    return total;
}

/// The first element of x (in column-major order) for which bad(value) holds.
template <class X, class Pred>
bool find_first(const X& x, Pred bad, Index& row, Index& col, double& value) {
    const EvalAccess<X> acc(x);
    for (Index c = 0; c < x.cols(); ++c)
        for (Index r = 0; r < x.rows(); ++r)
            if (bad(acc(r, c))) {
                row = r;
                col = c;
                value = acc(r, c);
                return true;
            }
    return false;
}

/// Whether bad() holds for some element of x.
template <class X, class Pred>
bool has_bad_target(const X& x, Pred bad) {
    Index r = 0, c = 0;
    double v = 0;
    return find_first(x, bad, r, c, v);
}

/// Throws for the first element of y_true that bad() rejects; `need` completes "... needs ".
template <class X, class Pred>
[[noreturn]] void report_bad_target(const char* who, const char* name, const X& x, Pred bad, const char* need) {
    Index r = 0, c = 0;
    double v = 0;
    if (find_first(x, bad, r, c, v))
        fail(who, std::string(name) + "(" + std::to_string(r) + ", " + std::to_string(c) + ") is " + number(v) + "; " +
                      need);
    fail(who, std::string(name) + " holds an invalid value; " + need);  // not reached
}

inline bool not_binary(double v) noexcept {
    return !(v == 0 || v == 1);
}
inline bool not_probability(double v) noexcept {
    return !(v >= 0 && v <= 1);
}

/// Clips to [eps, 1 - eps]; NaN stays NaN (both comparisons are false).
template <class V>
V clip_probability(V p) noexcept {
    return clamp(p, V::set1(kEps), V::set1(1.0 - kEps));
}

/// binary_accuracy: counts mismatches [(pred > threshold) != y_true]; y_true must be 0 or 1.
struct BinaryAccuracyParams {
    double threshold;
};
template <class V>
struct BinaryAccuracyOp {
    static constexpr bool kFloatLanes = true;  // needs threshold = floor_to_float(t) for float data
    using Mask = typename V::Mask;
    struct State {
        V mismatches = V::zero();
        Mask ok = ~mask_none(V::zero());
    };
    static void step(State& s, const BinaryAccuracyParams& p, V y, V q) noexcept {
        const Mask predicted1 = q > V::set1(p.threshold);  // NaN is never above the threshold
        s.mismatches = s.mismatches + ones(predicted1 ^ (y == V::set1(1.0)));
        s.ok = s.ok & (y * y == y);  // exactly for 0 and 1 (false for NaN)
    }
    static void finish(const State& s, const BinaryAccuracyParams&, Partial& out) noexcept {
        out.sum += s.mismatches.sum();
        out.bad = out.bad || !all(s.ok);
    }
};

struct NoParams {};

template <class V>
struct SquaredErrorOp {
    struct State {
        V acc = V::zero();
    };
    static void step(State& s, const NoParams&, V y, V q) noexcept {
        const V d = q - y;
        s.acc = s.acc + d * d;
    }
    static void finish(const State& s, const NoParams&, Partial& out) noexcept { out.sum += s.acc.sum(); }
};

template <class V>
struct AbsoluteErrorOp {
    struct State {
        V acc = V::zero();
    };
    static void step(State& s, const NoParams&, V y, V q) noexcept { s.acc = s.acc + abs(q - y); }
    static void finish(const State& s, const NoParams&, Partial& out) noexcept { out.sum += s.acc.sum(); }
};

/// Binary cross-entropy on probabilities. With hard targets the loss is -log(q), q = p or 1 - p:
/// the q are multiplied (exponents moved out every kRenorm steps) and logged once per block,
/// which is as accurate as logging each (the rounding of 1 - p dominates both) and ~10x faster.
/// Packets with a soft target use y log p + (1 - y) log(1 - p) directly (and check y in [0, 1];
/// hard packets are valid by construction). A NaN p makes the product NaN, caught at renorm.
template <class V>
struct BceProbabilityOp {
    using Mask = typename V::Mask;
    struct State {
        V prod = V::set1(1.0);
        V expo = V::zero();
        V lin = V::zero();
        Mask nan = mask_none(V::zero());
        Mask bad = mask_none(V::zero());
    };
    static void step(State& s, const NoParams&, V y, V q) noexcept {
        const V one = V::set1(1.0);
        const V p = clip_probability(q);
        const Mask y1 = y == one;
        if (all(y1 | (y == V::zero()))) {
            s.prod = s.prod * select(y1, p, one - p);
        } else {
            s.bad = s.bad | ~((y >= V::zero()) & (y <= one));
            s.lin = s.lin - (y * log(p) + (one - y) * log(one - p));
        }
    }
    static void renorm(State& s) noexcept {
        s.nan = s.nan | is_nan(s.prod);
        s.prod = split_exponent(s.prod, s.expo);
    }
    static void finish(const State& s, const NoParams&, Partial& out) noexcept {
        out.sum += s.lin.sum() - (s.expo.sum() * simd::kLn2 + log(s.prod).sum());
        if (any(s.nan)) out.sum += std::numeric_limits<double>::quiet_NaN();
        out.bad = out.bad || any(s.bad);
    }
};

/// Binary cross-entropy on logits: max(x, 0) - x y + log1p(exp(-|x|)). The log1p terms are
/// summed as the log of a product of (1 + e) (one log per block), except where e < 1e-4, where
/// 1 + e would round away e's digits and the series e - e^2/2 + e^3/3 - e^4/4 is exact instead.
/// Targets are checked through their range (lo, hi); a NaN target makes the sum NaN, and the
/// caller then looks for it.
template <class V>
struct BceLogitsOp {
    static constexpr Index kUnroll = 1;
    using Mask = typename V::Mask;
    struct State {
        V prod = V::set1(1.0);
        V expo = V::zero();
        V lin = V::zero();
        V lo = V::zero();
        V hi = V::zero();
        Mask nan = mask_none(V::zero());
    };
    static void step(State& s, const NoParams&, V y, V x) noexcept {
        const V one = V::set1(1.0);
        const V e = exp_nonpositive(neg_abs(x));
        const Mask small = e < V::set1(1e-4);
        s.lin = s.lin + (positive_part(x) - x * y);
        // |x| > 9.2 is rare in practice: the series is only evaluated for packets that need it.
        if (any(small)) [[unlikely]] {
            const V series =
                e * mul_add(e, mul_add(e, mul_add(e, V::set1(-0.25), V::set1(1.0 / 3)), V::set1(-0.5)), one);
            s.lin = s.lin + keep(small, series);
            s.prod = s.prod * select(small, one, one + e);  // a NaN x is never small: the product is NaN
        } else {
            s.prod = s.prod * (one + e);
        }
        s.lo = min_ignoring_nan(s.lo, y);
        s.hi = max_ignoring_nan(s.hi, y);
    }
    static void renorm(State& s) noexcept {
        s.nan = s.nan | is_nan(s.prod);
        s.prod = split_exponent(s.prod, s.expo);
    }
    static void finish(const State& s, const NoParams&, Partial& out) noexcept {
        out.sum += s.lin.sum() + (s.expo.sum() * simd::kLn2 + log(s.prod).sum());
        if (any(s.nan)) out.sum += std::numeric_limits<double>::quiet_NaN();
        out.bad = out.bad || any(s.lo < V::zero()) || any(s.hi > V::set1(1.0));
    }
};

// ---------------------------------------------------------------------------------------------
// Row-wise loops: SIMD lanes hold consecutive rows.

/// Runs Op over rows [0, n): Op<V> on packets of rows, Op<V1> on the last few. Ops that multiply
/// factors in [kEps, cols] (to log the product once) have their exponents moved out every
/// kRenorm steps; (2^31)^32 and 1e-7^32 are both in range, more classes renormalise every step.
template <template <class> class Op, class V = VD, class Ctx>
Total run_rows(Index n, const Ctx& ctx) {
    constexpr Index W = V::size;
    Total total;
    Index r = 0;
    [[maybe_unused]] const int renorm_every = ctx.cols < (Index{1} << 31) ? kRenorm : 1;
    while (r < n) {
        const Index end = std::min(n, r + kRowBlock);
        typename Op<V>::State st{};
        typename Op<V1>::State tail{};
        if constexpr (has_renorm<Op<V>>::value) {
            int steps = 0;
            for (; r + W <= end; r += W) {
                Op<V>::step(st, ctx, r);
                if (++steps == renorm_every) {
                    steps = 0;
                    Op<V>::renorm(st);
                }
            }
            for (; r < end; ++r) {
                Op<V1>::step(tail, ctx, r);
                Op<V1>::renorm(tail);
            }
        } else {
            for (; r + W <= end; r += W) Op<V>::step(st, ctx, r);
            for (; r < end; ++r) Op<V1>::step(tail, ctx, r);
        }
        Partial part;
        Op<V>::finish(st, part);
        Op<V1>::finish(tail, part);
        total.sum.add(part.sum);
    }
    return total;
}

/// Per lane, the first index of the largest value of rows r.. (NaN counts as the largest, as
/// numpy.argmax and torch.argmax have it).
template <class V, class Acc>
V argmax_rows(const Acc& x, Index r, Index cols) {
    V best = x.template rows_at<V>(r, 0);
    V idx = V::zero();
    for (Index c = 1; c < cols; ++c) {
        const V v = x.template rows_at<V>(r, c);
        const auto upd = not_le(v, best) & ~is_nan(best);  // v > best, or v is the first NaN
        best = select(upd, v, best);
        idx = select(upd, V::set1(static_cast<double>(c)), idx);
    }
    return idx;
}

/// Per lane, the largest value of rows r.. ignoring NaN after the first column (a NaN still
/// poisons the row's sum of exp, and a NaN first value poisons everything).
template <class V, class Acc>
V max_rows(const Acc& x, Index r, Index cols) {
    V m = x.template rows_at<V>(r, 0);
    for (Index c = 1; c < cols; ++c) m = max_ignoring_nan(m, x.template rows_at<V>(r, c));
    return m;
}

/// Per lane, the sum of the rows r.. (in double).
template <class V, class Acc>
V sum_rows(const Acc& x, Index r, Index cols) {
    V s = x.template rows_at<V>(r, 0);
    for (Index c = 1; c < cols; ++c) s = s + x.template rows_at<V>(r, c);
    return s;
}

/// Per lane, sum over the row of exp(x - m).
template <class V, class Acc>
V sum_exp_rows(const Acc& x, Index r, Index cols, V m) {
    V s0 = V::zero();
    V s1 = V::zero();
    Index c = 0;
    for (; c + 2 <= cols; c += 2) {
        s0 = s0 + exp_nonpositive(x.template rows_at<V>(r, c) - m);
        s1 = s1 + exp_nonpositive(x.template rows_at<V>(r, c + 1) - m);
    }
    if (c < cols) s0 = s0 + exp_nonpositive(x.template rows_at<V>(r, c) - m);
    return s0 + s1;
}

/// Reads the validated labels of rows r.. into idx and returns them as a vector.
template <class V, class Ctx>
V labels_of(const Ctx& ctx, Index r, Index (&idx)[V::size]) {
    for (int k = 0; k < V::size; ++k) idx[k] = read_label(ctx.labels, r + k, ctx.cols, ctx.who, ctx.labels_name);
    return V::generate([&](int k) { return static_cast<double>(idx[k]); });
}

template <class AT, class AP>
struct TwoMatrixCtx {
    const AT& t;  // y_true
    const AP& p;  // y_pred
    Index cols;
};
template <class L, class AP>
struct LabelsCtx {
    const L& labels;
    const AP& p;
    Index cols;
    const char* who;
    const char* labels_name;
};
template <class AT, class AP>
struct TopKCtx {
    const AT& t;
    const AP& p;
    Index cols;
    double k;
};

template <class V>
struct CategoricalAccuracyRows {
    struct State {
        V hits = V::zero();
    };
    template <class Ctx>
    static void step(State& s, const Ctx& c, Index r) {
        s.hits = s.hits + ones(argmax_rows<V>(c.t, r, c.cols) == argmax_rows<V>(c.p, r, c.cols));
    }
    static void finish(const State& s, Partial& out) noexcept { out.sum += s.hits.sum(); }
};

template <class V>
struct SparseAccuracyRows {
    struct State {
        V hits = V::zero();
    };
    template <class Ctx>
    static void step(State& s, const Ctx& c, Index r) {
        Index idx[V::size];
        const V labels = labels_of<V>(c, r, idx);
        s.hits = s.hits + ones(labels == argmax_rows<V>(c.p, r, c.cols));
    }
    static void finish(const State& s, Partial& out) noexcept { out.sum += s.hits.sum(); }
};

/// [argmax(y_true) is among the k largest y_pred]: fewer than k classes score strictly higher
/// than the target (ties count in, as tf.math.in_top_k); a NaN target score is never in the top k.
template <class V>
struct TopKRows {
    struct State {
        V hits = V::zero();
    };
    template <class Ctx>
    static void step(State& s, const Ctx& c, Index r) {
        const V target = argmax_rows<V>(c.t, r, c.cols);
        const V xt = V::generate([&](int k) { return c.p(r + k, static_cast<Index>(target.lane(k))); });
        V above = V::zero();
        for (Index j = 0; j < c.cols; ++j) above = above + ones(c.p.template rows_at<V>(r, j) > xt);
        s.hits = s.hits + ones((above < V::set1(c.k)) & ~is_nan(xt));
    }
    static void finish(const State& s, Partial& out) noexcept { out.sum += s.hits.sum(); }
};

/// A product of positive factors, logged once: log(prod) + expo ln 2. NaN factors are remembered
/// (split_exponent would turn a NaN product into a number).
template <class V>
struct LogProduct {
    using Mask = typename V::Mask;
    V prod = V::set1(1.0);
    V expo = V::zero();
    Mask nan = mask_none(V::zero());
    void renorm() noexcept {
        nan = nan | is_nan(prod);
        prod = split_exponent(prod, expo);
    }
    /// The sum of the logs of the factors (a NaN factor since the last renorm() makes prod NaN).
    [[nodiscard]] double log_sum() const noexcept {
        const double v = expo.sum() * simd::kLn2 + log(prod).sum();
        return any(nan) ? std::numeric_limits<double>::quiet_NaN() : v;
    }
};

/// Categorical cross-entropy on logits: sum_c y_c (lse - x_c) with lse = m + log(s), computed as
/// sum_c y_c (m - x_c) + (sum_c y_c) log(s), all terms non-negative for y >= 0 (no cancellation).
/// Terms with y_c == 0 are exactly 0, so a -inf logit of a non-target class is harmless.
/// Packets whose weights are all exactly 1 (one-hot targets) multiply s into a LogProduct
/// instead of logging it: the rounding of s dominates either way, and a log costs ten multiplies.
template <class V>
struct CceLogitsRows {
    struct State {
        V loss = V::zero();
        LogProduct<V> lse;
    };
    template <class Ctx>
    static void step(State& s, const Ctx& c, Index r) {
        const V m = max_rows<V>(c.p, r, c.cols);
        const V se = sum_exp_rows<V>(c.p, r, c.cols, m);
        V weight = V::zero();
        V acc = V::zero();
        for (Index j = 0; j < c.cols; ++j) {
            const V y = c.t.template rows_at<V>(r, j);
            const V x = c.p.template rows_at<V>(r, j);
            weight = weight + y;
            acc = acc + select(y == V::zero(), V::zero(), y * (m - x));
        }
        if (all(weight == V::set1(1.0))) {
            s.loss = s.loss + acc;
            s.lse.prod = s.lse.prod * se;
        } else {
            s.loss = s.loss + acc + weight * log(se);
        }
    }
    static void renorm(State& s) noexcept { s.lse.renorm(); }
    static void finish(const State& s, Partial& out) noexcept { out.sum += s.loss.sum() + s.lse.log_sum(); }
};

/// Categorical cross-entropy on probabilities: p = clip(x / sum(x)), -sum_c y_c log p_c; the log
/// is only taken for packets where some y_c != 0.
template <class V>
struct CceProbabilityRows {
    struct State {
        V loss = V::zero();
    };
    template <class Ctx>
    static void step(State& s, const Ctx& c, Index r) {
        const V total = sum_rows<V>(c.p, r, c.cols);
        V acc = V::zero();
        for (Index j = 0; j < c.cols; ++j) {
            const V y = c.t.template rows_at<V>(r, j);
            const auto nz = y != V::zero();
            if (!any(nz)) continue;
            const V p = clip_probability(c.p.template rows_at<V>(r, j) / total);
            acc = acc + select(nz, y * log(p), V::zero());
        }
        s.loss = s.loss - acc;
    }
    static void finish(const State& s, Partial& out) noexcept { out.sum += s.loss.sum(); }
};

/// Sparse categorical cross-entropy on logits: (m - x_t) + log(s), the logs of s (in [1, cols])
/// summed as the log of their product, as CceLogitsRows does for one-hot rows.
template <class V>
struct SparseCceLogitsRows {
    struct State {
        V loss = V::zero();
        LogProduct<V> lse;
    };
    template <class Ctx>
    static void step(State& s, const Ctx& c, Index r) {
        Index idx[V::size];
        (void)labels_of<V>(c, r, idx);
        const V m = max_rows<V>(c.p, r, c.cols);
        const V se = sum_exp_rows<V>(c.p, r, c.cols, m);
        const V xt = V::generate([&](int k) { return c.p(r + k, idx[k]); });
        s.loss = s.loss + (m - xt);
        s.lse.prod = s.lse.prod * se;
    }
    static void renorm(State& s) noexcept { s.lse.renorm(); }
    static void finish(const State& s, Partial& out) noexcept { out.sum += s.loss.sum() + s.lse.log_sum(); }
};

/// Sparse categorical cross-entropy on probabilities: -log(clip(x_t / sum(x))), the clipped
/// probabilities (in [1e-7, 1]) multiplied and logged once per renormalisation.
template <class V>
struct SparseCceProbabilityRows {
    struct State {
        LogProduct<V> p;
    };
    template <class Ctx>
    static void step(State& s, const Ctx& c, Index r) {
        Index idx[V::size];
        (void)labels_of<V>(c, r, idx);
        const V total = sum_rows<V>(c.p, r, c.cols);
        const V xt = V::generate([&](int k) { return c.p(r + k, idx[k]); });
        s.p.prod = s.p.prod * clip_probability(xt / total);
    }
    static void renorm(State& s) noexcept { s.p.renorm(); }
    static void finish(const State& s, Partial& out) noexcept { out.sum -= s.p.log_sum(); }
};

/// Calls f(row, label) for every row: N x 1 inputs hold label values (checked against
/// num_classes), wider ones are reduced by argmax.
template <class X, class F>
void for_each_true_label(const X& y, Index num_classes, const char* who, const char* name, F&& f) {
    if (y.cols() == 1) {
        const VectorReader<X> labels(y);
        for (Index i = 0; i < y.rows(); ++i) f(i, read_label(labels, i, num_classes, who, name));
        return;
    }
    with_access(y, [&](const auto& acc) {
        const Index n = y.rows();
        Index r = 0;
        for (; r + VD::size <= n; r += VD::size) {
            const VD idx = argmax_rows<VD>(acc, r, y.cols());
            for (int k = 0; k < VD::size; ++k) f(r + k, static_cast<Index>(idx.lane(k)));
        }
        for (; r < n; ++r) f(r, static_cast<Index>(argmax_rows<V1>(acc, r, y.cols()).v));
    });
}

/// Calls f(row, label) for predictions: N x 1 scores give score > threshold (NaN gives 0), wider
/// ones argmax.
template <class X, class F>
void for_each_predicted_label(const X& y, double threshold, F&& f) {
    if (y.cols() == 1) {
        const VectorReader<X> scores(y);
        for (Index i = 0; i < y.rows(); ++i) f(i, scores(i) > threshold ? Index{1} : Index{0});
        return;
    }
    with_access(y, [&](const auto& acc) {
        const Index n = y.rows();
        Index r = 0;
        for (; r + VD::size <= n; r += VD::size) {
            const VD idx = argmax_rows<VD>(acc, r, y.cols());
            for (int k = 0; k < VD::size; ++k) f(r + k, static_cast<Index>(idx.lane(k)));
        }
        for (; r < n; ++r) f(r, static_cast<Index>(argmax_rows<V1>(acc, r, y.cols()).v));
    });
}

template <class Acc>
inline constexpr bool is_float_columns = std::is_same_v<Acc, ColAccess<float>>;

/// Runs a comparing-and-counting row Op with float lanes when every matrix is a float column
/// accessor (and class indices are exact in float), else with double lanes.
template <template <class> class Op, class Ctx, class... Acc>
Total run_compare_rows(Index n, Index cols, const Ctx& ctx, const Acc&...) {
    if constexpr ((is_float_columns<Acc> && ...)) {
        if (cols < (Index{1} << 24)) return run_rows<Op, simd::VF>(n, ctx);
    }
    return run_rows<Op, VD>(n, ctx);
}

// ---------------------------------------------------------------------------------------------
// Class counts (precision, recall, F1)

/// Which of the three scores.
enum class Score { Precision, Recall, F1 };

/// Per-class counts: true positives, samples per true class, samples per predicted class.
struct ClassCountsView {
    const std::int64_t* tp;
    const std::int64_t* n_true;
    const std::int64_t* n_pred;
    Index classes;
};

inline double ratio_or_zero(double num, double den) noexcept {
    return den > 0 ? num / den : 0.0;
}

/// One class's score, 0 where its denominator is 0 (scikit-learn's zero_division result).
inline double class_score(Score s, std::int64_t tp, std::int64_t nt, std::int64_t np) noexcept {
    switch (s) {
        case Score::Precision:
            return ratio_or_zero(static_cast<double>(tp), static_cast<double>(np));
        case Score::Recall:
            return ratio_or_zero(static_cast<double>(tp), static_cast<double>(nt));
        case Score::F1:
            return ratio_or_zero(2.0 * static_cast<double>(tp), static_cast<double>(nt + np));
    }
    return 0.0;
}

/// Averages per scikit-learn: 0 Binary (class pos), 1 Micro, 2 Macro (classes present in either
/// vector), 3 Weighted (by true support).
inline double average_score(Score s, int average, const ClassCountsView& v, Index pos) noexcept {
    if (average == 0) return class_score(s, v.tp[pos], v.n_true[pos], v.n_pred[pos]);
    if (average == 1) {
        // Summed over classes, FP = FN = N - TP, so P = R = F1 = TP / N (the accuracy).
        std::int64_t tp = 0, n = 0;
        for (Index c = 0; c < v.classes; ++c) {
            tp += v.tp[c];
            n += v.n_true[c];
        }
        return ratio_or_zero(static_cast<double>(tp), static_cast<double>(n));
    }
    double acc = 0, weight = 0;
    for (Index c = 0; c < v.classes; ++c) {
        if (v.n_true[c] + v.n_pred[c] == 0) continue;
        const double w = average == 2 ? 1.0 : static_cast<double>(v.n_true[c]);
        acc += w * class_score(s, v.tp[c], v.n_true[c], v.n_pred[c]);
        weight += w;
    }
    return ratio_or_zero(acc, weight);
}

// ---------------------------------------------------------------------------------------------
// ROC AUC

/// The Mann-Whitney count over sorted positive and negative scores: the number of (positive,
/// negative) pairs ordered correctly, ties counted as half, divided by the number of pairs.
inline double mann_whitney_auc(const double* pos, Index n_pos, const double* neg, Index n_neg) noexcept {
    std::uint64_t less = 0, equal = 0;
    Index lo = 0, hi = 0;
    for (Index i = 0; i < n_pos; ++i) {
        const double p = pos[i];
        while (lo < n_neg && neg[lo] < p) ++lo;
        if (hi < lo) hi = lo;
        while (hi < n_neg && neg[hi] <= p) ++hi;
        less += static_cast<std::uint64_t>(lo);
        equal += static_cast<std::uint64_t>(hi - lo);
    }
    return (static_cast<double>(less) + 0.5 * static_cast<double>(equal)) /
           (static_cast<double>(n_pos) * static_cast<double>(n_neg));
}

}  // namespace traincb::inline v0::detail::metrics
