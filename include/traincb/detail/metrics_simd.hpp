#pragma once
/// @file detail/metrics_simd.hpp
/// The small SIMD layer under traincb's metrics: a 2-lane double vector on SSE2 (every x86-64
/// compiler), 4-lane double and 8-lane float vectors with FMA when the translation unit is compiled
/// with AVX2 and FMA, and a 1-lane scalar type with the same interface, used for loop tails and as
/// the portable fallback. Kernels are templates over the vector type, so each is written once.
///
/// Why not Eigen's packets: Eigen 3.4 does not vectorize float -> double casts, and its packet
/// exp/log on SSE2 measured no faster than glibc here; the metrics need both at memory speed.
/// Define TRAINCB_METRICS_NO_SIMD to force the scalar path (the tests build both).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__SSE2__) && !defined(TRAINCB_METRICS_NO_SIMD)
#include <emmintrin.h>
#define TRAINCB_METRICS_SSE2 1
#else
#define TRAINCB_METRICS_SSE2 0
#endif

// As Eigen does: the instruction set is chosen when the translation unit is compiled (-mavx2
// -mfma, or -march=native on a machine that has both), with no runtime dispatch.
#if TRAINCB_METRICS_SSE2 && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TRAINCB_METRICS_AVX2 1
#else
#define TRAINCB_METRICS_AVX2 0
#endif

namespace traincb::inline v0::detail::simd {

// fdlibm's split of ln 2: LN2_HI has 32 significant bits, so k * LN2_HI is exact for |k| < 2^21.
inline constexpr double kLn2Hi = 6.93147180369123816490e-01;
inline constexpr double kLn2Lo = 1.90821492927058770002e-10;
inline constexpr double kLog2e = 1.44269504088896338700e+00;
inline constexpr double kLn2 = 0.693147180559945309417232121458;
// exp(x) for x below this is returned as 0 (the true value is at most 2.5e-308).
inline constexpr double kExpLow = -708.0;

/// A one-lane mask.
struct M1 {
    bool m;
};

/// One double: the portable fallback and the tail of every vector loop.
struct V1 {
    static constexpr int size = 1;
    using Mask = M1;
    double v;
    static V1 zero() noexcept { return {0.0}; }
    static V1 set1(double x) noexcept { return {x}; }
    static V1 load(const double* p) noexcept { return {*p}; }
    static V1 load(const float* p) noexcept { return {static_cast<double>(*p)}; }
    /// Lane i is f(i).
    template <class F>
    static V1 generate(F&& f) {
        return {static_cast<double>(f(0))};
    }
    [[nodiscard]] double lane(int /*i*/) const noexcept { return v; }
    [[nodiscard]] double sum() const noexcept { return v; }
};

inline V1 operator+(V1 a, V1 b) noexcept {
    return {a.v + b.v};
}
inline V1 operator-(V1 a, V1 b) noexcept {
    return {a.v - b.v};
}
inline V1 operator*(V1 a, V1 b) noexcept {
    return {a.v * b.v};
}
inline V1 operator/(V1 a, V1 b) noexcept {
    return {a.v / b.v};
}
inline M1 operator<(V1 a, V1 b) noexcept {
    return {a.v < b.v};
}
inline M1 operator<=(V1 a, V1 b) noexcept {
    return {a.v <= b.v};
}
inline M1 operator>(V1 a, V1 b) noexcept {
    return {a.v > b.v};
}
inline M1 operator>=(V1 a, V1 b) noexcept {
    return {a.v >= b.v};
}
inline M1 operator==(V1 a, V1 b) noexcept {
    return {a.v == b.v};
}
inline M1 operator!=(V1 a, V1 b) noexcept {
    return {!(a.v == b.v)};
}
inline M1 is_nan(V1 a) noexcept {
    return {std::isnan(a.v)};
}
/// !(a <= b): true when a > b or either is NaN.
inline M1 not_le(V1 a, V1 b) noexcept {
    return {!(a.v <= b.v)};
}
inline M1 operator&(M1 a, M1 b) noexcept {
    return {a.m && b.m};
}
inline M1 operator|(M1 a, M1 b) noexcept {
    return {a.m || b.m};
}
inline M1 operator^(M1 a, M1 b) noexcept {
    return {a.m != b.m};
}
inline M1 operator~(M1 a) noexcept {
    return {!a.m};
}
inline M1 mask_none(V1 /*tag*/) noexcept {
    return {false};
}
inline bool any(M1 a) noexcept {
    return a.m;
}
inline bool all(M1 a) noexcept {
    return a.m;
}
/// m ? a : b, lane by lane.
inline V1 select(M1 m, V1 a, V1 b) noexcept {
    return m.m ? a : b;
}
/// 1.0 where m is set, else 0.0.
inline V1 ones(M1 m) noexcept {
    return {m.m ? 1.0 : 0.0};
}
/// a * b + c (rounded once where the vector type has FMA).
inline V1 mul_add(V1 a, V1 b, V1 c) noexcept {
    return {a.v * b.v + c.v};
}
inline V1 abs(V1 a) noexcept {
    return {std::fabs(a.v)};
}
/// -|a|.
inline V1 neg_abs(V1 a) noexcept {
    return {-std::fabs(a.v)};
}
/// max(a, 0), 0 for NaN.
inline V1 positive_part(V1 a) noexcept {
    return {a.v > 0 ? a.v : 0.0};
}
/// v where m is set, else 0.
inline V1 keep(M1 m, V1 v) noexcept {
    return {m.m ? v.v : 0.0};
}
/// q clamped to [lo, hi]; NaN stays NaN.
inline V1 clamp(V1 q, V1 lo, V1 hi) noexcept {
    return {q.v < lo.v ? lo.v : (q.v > hi.v ? hi.v : q.v)};
}
/// min(acc, v) and max(acc, v), ignoring a NaN v.
inline V1 min_ignoring_nan(V1 acc, V1 v) noexcept {
    return {v.v < acc.v ? v.v : acc.v};
}
inline V1 max_ignoring_nan(V1 acc, V1 v) noexcept {
    return {v.v > acc.v ? v.v : acc.v};
}
/// exp(x) for x <= 0 (or NaN).
inline V1 exp_nonpositive(V1 x) noexcept {
    return {x.v < kExpLow ? 0.0 : std::exp(x.v)};
}
/// Natural logarithm.
inline V1 log(V1 x) noexcept {
    return {std::log(x.v)};
}
/// For a positive, finite, normal x: returns m in [1, 2) and adds the binary exponent to e
/// (x = m * 2^e), so that long products stay in range and are logged once at the end.
inline V1 split_exponent(V1 x, V1& e) noexcept {
    int k = 0;
    const double m = std::frexp(x.v, &k);
    e.v += static_cast<double>(k - 1);
    return {2.0 * m};
}

#if TRAINCB_METRICS_SSE2

/// A two-lane mask (all bits set or clear per lane).
struct M2 {
    __m128d m;
};

/// Two doubles in an SSE2 register.
struct V2 {
    static constexpr int size = 2;
    using Mask = M2;
    __m128d v;
    static V2 zero() noexcept { return {_mm_setzero_pd()}; }
    static V2 set1(double x) noexcept { return {_mm_set1_pd(x)}; }
    static V2 load(const double* p) noexcept { return {_mm_loadu_pd(p)}; }
    // movq reads exactly two floats; __m128i is declared may_alias, so this is a legal access.
    static V2 load(const float* p) noexcept {
        return {_mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))))};
    }
    template <class F>
    static V2 generate(F&& f) {
        const double a = static_cast<double>(f(0));
        const double b = static_cast<double>(f(1));
        return {_mm_set_pd(b, a)};
    }
    [[nodiscard]] double lane(int i) const noexcept {
        return i == 0 ? _mm_cvtsd_f64(v) : _mm_cvtsd_f64(_mm_unpackhi_pd(v, v));
    }
    [[nodiscard]] double sum() const noexcept { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
};

inline V2 operator+(V2 a, V2 b) noexcept {
    return {_mm_add_pd(a.v, b.v)};
}
inline V2 operator-(V2 a, V2 b) noexcept {
    return {_mm_sub_pd(a.v, b.v)};
}
inline V2 operator*(V2 a, V2 b) noexcept {
    return {_mm_mul_pd(a.v, b.v)};
}
inline V2 operator/(V2 a, V2 b) noexcept {
    return {_mm_div_pd(a.v, b.v)};
}
inline M2 operator<(V2 a, V2 b) noexcept {
    return {_mm_cmplt_pd(a.v, b.v)};
}
inline M2 operator<=(V2 a, V2 b) noexcept {
    return {_mm_cmple_pd(a.v, b.v)};
}
inline M2 operator>(V2 a, V2 b) noexcept {
    return {_mm_cmpgt_pd(a.v, b.v)};
}
inline M2 operator>=(V2 a, V2 b) noexcept {
    return {_mm_cmpge_pd(a.v, b.v)};
}
inline M2 operator==(V2 a, V2 b) noexcept {
    return {_mm_cmpeq_pd(a.v, b.v)};
}
inline M2 operator!=(V2 a, V2 b) noexcept {
    return {_mm_cmpneq_pd(a.v, b.v)};
}
inline M2 is_nan(V2 a) noexcept {
    return {_mm_cmpunord_pd(a.v, a.v)};
}
inline M2 not_le(V2 a, V2 b) noexcept {
    return {_mm_cmpnle_pd(a.v, b.v)};
}
inline M2 operator&(M2 a, M2 b) noexcept {
    return {_mm_and_pd(a.m, b.m)};
}
inline M2 operator|(M2 a, M2 b) noexcept {
    return {_mm_or_pd(a.m, b.m)};
}
inline M2 operator^(M2 a, M2 b) noexcept {
    return {_mm_xor_pd(a.m, b.m)};
}
inline M2 operator~(M2 a) noexcept {
    return {_mm_xor_pd(a.m, _mm_castsi128_pd(_mm_set1_epi32(-1)))};
}
inline M2 mask_none(V2 /*tag*/) noexcept {
    return {_mm_setzero_pd()};
}
inline bool any(M2 a) noexcept {
    return _mm_movemask_pd(a.m) != 0;
}
inline bool all(M2 a) noexcept {
    return _mm_movemask_pd(a.m) == 3;
}
inline V2 select(M2 m, V2 a, V2 b) noexcept {
    return {_mm_or_pd(_mm_and_pd(m.m, a.v), _mm_andnot_pd(m.m, b.v))};
}
inline V2 ones(M2 m) noexcept {
    return {_mm_and_pd(m.m, _mm_set1_pd(1.0))};
}
inline V2 mul_add(V2 a, V2 b, V2 c) noexcept {
    return {_mm_add_pd(_mm_mul_pd(a.v, b.v), c.v)};
}
inline V2 abs(V2 a) noexcept {
    return {_mm_andnot_pd(_mm_set1_pd(-0.0), a.v)};
}
inline V2 neg_abs(V2 a) noexcept {
    return {_mm_or_pd(_mm_set1_pd(-0.0), a.v)};
}
// maxpd/minpd return their second operand when either is NaN; the operand orders below rely on it.
inline V2 positive_part(V2 a) noexcept {
    return {_mm_max_pd(a.v, _mm_setzero_pd())};
}
inline V2 keep(M2 m, V2 v) noexcept {
    return {_mm_and_pd(m.m, v.v)};
}
inline V2 clamp(V2 q, V2 lo, V2 hi) noexcept {
    return {_mm_min_pd(hi.v, _mm_max_pd(lo.v, q.v))};
}
inline V2 min_ignoring_nan(V2 acc, V2 v) noexcept {
    return {_mm_min_pd(v.v, acc.v)};
}
inline V2 max_ignoring_nan(V2 acc, V2 v) noexcept {
    return {_mm_max_pd(v.v, acc.v)};
}

/// exp(x) for x <= 0 (or NaN), within about 1 ulp: x = k ln2 + r with |r| <= ln2/2 (fdlibm's
/// reduction), e^r by its Taylor series to degree 13 (truncation below 5e-18) evaluated by
/// Estrin's scheme (depth 4 instead of Horner's 13: the loops are latency-bound), times 2^k built
/// in the exponent bits. No division, no table. exp(x) for x < -708 is flushed to 0 (whatever the
/// reduction computed for it is masked away); a NaN runs through the arithmetic and stays NaN.
inline V2 exp_nonpositive(V2 x_in) noexcept {
    const __m128d x = x_in.v;
    // k = round(x / ln2) by the 1.5 * 2^52 trick: the sum's low mantissa bits hold k itself.
    const __m128d magic = _mm_set1_pd(6755399441055744.0);
    const __m128d shifted = _mm_add_pd(_mm_mul_pd(x, _mm_set1_pd(kLog2e)), magic);
    const __m128d k = _mm_sub_pd(shifted, magic);
    const __m128d r = _mm_sub_pd(_mm_sub_pd(x, _mm_mul_pd(k, _mm_set1_pd(kLn2Hi))), _mm_mul_pd(k, _mm_set1_pd(kLn2Lo)));
    const auto c = [](double v) { return _mm_set1_pd(v); };
    const auto madd = [](__m128d a, __m128d b, __m128d d) { return _mm_add_pd(_mm_mul_pd(a, b), d); };
    const __m128d r2 = _mm_mul_pd(r, r);
    const __m128d r4 = _mm_mul_pd(r2, r2);
    const __m128d r8 = _mm_mul_pd(r4, r4);
    const __m128d q0 = _mm_add_pd(r, c(1.0));
    const __m128d q1 = madd(r, c(1.0 / 6), c(1.0 / 2));
    const __m128d q2 = madd(r, c(1.0 / 120), c(1.0 / 24));
    const __m128d q3 = madd(r, c(1.0 / 5040), c(1.0 / 720));
    const __m128d q4 = madd(r, c(1.0 / 362880), c(1.0 / 40320));
    const __m128d q5 = madd(r, c(1.0 / 39916800), c(1.0 / 3628800));
    const __m128d q6 = madd(r, c(1.0 / 6227020800.0), c(1.0 / 479001600));
    const __m128d o0 = madd(q1, r2, q0);
    const __m128d o1 = madd(q3, r2, q2);
    const __m128d o2 = madd(q5, r2, q4);
    const __m128d p = madd(madd(q6, r4, o2), r8, madd(o1, r4, o0));
    // 2^k: (k + 1023) << 52; the shift drops the magic constant's high bits. k >= -1021 wherever
    // the result is kept, so the biased exponent is >= 2.
    const __m128i two_k = _mm_slli_epi64(_mm_add_epi64(_mm_castpd_si128(shifted), _mm_set1_epi64x(1023)), 52);
    const __m128d y = _mm_mul_pd(p, _mm_castsi128_pd(two_k));
    return {_mm_andnot_pd(_mm_cmplt_pd(x, _mm_set1_pd(kExpLow)), y)};
}

namespace impl {
// The exponent field of positive doubles as doubles (exact), and their mantissas in [1, 2).
inline __m128d exponent_of(__m128i bits) noexcept {
    const __m128i magic = _mm_set1_epi64x(0x4330000000000000LL);  // 2^52
    const __m128d e = _mm_castsi128_pd(_mm_or_si128(_mm_srli_epi64(bits, 52), magic));
    return _mm_sub_pd(e, _mm_set1_pd(4503599627370496.0 + 1023.0));
}
inline __m128d mantissa_of(__m128i bits) noexcept {
    const __m128i mant = _mm_and_si128(bits, _mm_set1_epi64x(0x000FFFFFFFFFFFFFLL));
    return _mm_castsi128_pd(_mm_or_si128(mant, _mm_set1_epi64x(0x3FF0000000000000LL)));
}
}  // namespace impl

/// Natural logarithm within about 1 ulp (fdlibm's e_log.c, vectorized): x = 2^k m with m in
/// [sqrt(2)/2, sqrt(2)), f = m - 1, s = f / (2 + f), log(1 + f) = 2 atanh(s) by a degree-14
/// polynomial in s. Zero gives -inf, +inf gives +inf, negative and NaN give NaN.
inline V2 log(V2 x_in) noexcept {
    const __m128d tiny = _mm_cmplt_pd(x_in.v, _mm_set1_pd(2.2250738585072014e-308));
    const __m128d x = _mm_or_pd(_mm_and_pd(tiny, _mm_mul_pd(x_in.v, _mm_set1_pd(18014398509481984.0))),
                                _mm_andnot_pd(tiny, x_in.v));  // subnormals scaled by 2^54
    const __m128i bits = _mm_castpd_si128(x);
    __m128d k = _mm_sub_pd(impl::exponent_of(bits), _mm_and_pd(tiny, _mm_set1_pd(54.0)));
    __m128d m = impl::mantissa_of(bits);
    const __m128d big = _mm_cmpgt_pd(m, _mm_set1_pd(1.4142135623730951));
    m = _mm_or_pd(_mm_and_pd(big, _mm_mul_pd(m, _mm_set1_pd(0.5))), _mm_andnot_pd(big, m));
    k = _mm_add_pd(k, _mm_and_pd(big, _mm_set1_pd(1.0)));
    const __m128d f = _mm_sub_pd(m, _mm_set1_pd(1.0));
    const __m128d s = _mm_div_pd(f, _mm_add_pd(_mm_set1_pd(2.0), f));
    const __m128d z = _mm_mul_pd(s, s);
    const __m128d w = _mm_mul_pd(z, z);
    const auto c = [](double v) { return _mm_set1_pd(v); };
    const __m128d t1 = _mm_mul_pd(
        w,
        _mm_add_pd(c(3.999999999940941908e-01),
                   _mm_mul_pd(w, _mm_add_pd(c(2.222219843214978396e-01), _mm_mul_pd(w, c(1.531383769920937332e-01))))));
    const __m128d t2 = _mm_mul_pd(
        z,
        _mm_add_pd(c(6.666666666666735130e-01),
                   _mm_mul_pd(w, _mm_add_pd(c(2.857142874366239149e-01),
                                            _mm_mul_pd(w, _mm_add_pd(c(1.818357216161805012e-01),
                                                                     _mm_mul_pd(w, c(1.479819860511658591e-01))))))));
    const __m128d R = _mm_add_pd(t2, t1);
    const __m128d hfsq = _mm_mul_pd(_mm_mul_pd(c(0.5), f), f);
    // k*ln2_hi - ((hfsq - (s*(hfsq+R) + k*ln2_lo)) - f)
    const __m128d inner = _mm_add_pd(_mm_mul_pd(s, _mm_add_pd(hfsq, R)), _mm_mul_pd(k, c(kLn2Lo)));
    __m128d y = _mm_sub_pd(_mm_mul_pd(k, c(kLn2Hi)), _mm_sub_pd(_mm_sub_pd(hfsq, inner), f));
    // Special values: +inf -> +inf, 0 -> -inf, negative or NaN -> NaN.
    const __m128d inf = c(HUGE_VAL);
    const __m128d is_inf = _mm_cmpeq_pd(x_in.v, inf);
    const __m128d is_zero = _mm_cmpeq_pd(x_in.v, _mm_setzero_pd());
    const __m128d is_bad = _mm_cmpnge_pd(x_in.v, _mm_setzero_pd());  // x < 0 or NaN
    y = _mm_or_pd(_mm_and_pd(is_inf, inf), _mm_andnot_pd(is_inf, y));
    y = _mm_or_pd(_mm_and_pd(is_bad, c(std::numeric_limits<double>::quiet_NaN())), _mm_andnot_pd(is_bad, y));
    y = _mm_or_pd(_mm_and_pd(is_zero, c(-HUGE_VAL)), _mm_andnot_pd(is_zero, y));
    return {y};
}

/// For positive, finite, normal lanes: returns m in [1, 2) and adds the exponent to e.
inline V2 split_exponent(V2 x, V2& e) noexcept {
    const __m128i bits = _mm_castpd_si128(x.v);
    e.v = _mm_add_pd(e.v, impl::exponent_of(bits));
    return {impl::mantissa_of(bits)};
}

/// A four-lane float mask.
struct M4F {
    __m128 m;
};

/// Four floats: for the kernels that only compare and count (argmax, thresholds), where float
/// inputs lose nothing by staying float and twice the rows fit in a register. Counts held in its
/// lanes are exact up to 2^24 (the row and element blocks are far smaller).
struct V4F {
    static constexpr int size = 4;
    using Mask = M4F;
    __m128 v;
    static V4F zero() noexcept { return {_mm_setzero_ps()}; }
    static V4F set1(double x) noexcept { return {_mm_set1_ps(static_cast<float>(x))}; }
    static V4F load(const float* p) noexcept { return {_mm_loadu_ps(p)}; }
    template <class F>
    static V4F generate(F&& f) {
        const auto a = static_cast<float>(f(0));
        const auto b = static_cast<float>(f(1));
        const auto c = static_cast<float>(f(2));
        const auto d = static_cast<float>(f(3));
        return {_mm_set_ps(d, c, b, a)};
    }
    [[nodiscard]] double lane(int i) const noexcept {
        alignas(16) float out[4];
        _mm_store_ps(out, v);
        return static_cast<double>(out[i]);
    }
    [[nodiscard]] double sum() const noexcept {
        alignas(16) float out[4];
        _mm_store_ps(out, v);
        return (static_cast<double>(out[0]) + static_cast<double>(out[1])) +
               (static_cast<double>(out[2]) + static_cast<double>(out[3]));
    }
};

inline V4F operator+(V4F a, V4F b) noexcept {
    return {_mm_add_ps(a.v, b.v)};
}
inline V4F operator-(V4F a, V4F b) noexcept {
    return {_mm_sub_ps(a.v, b.v)};
}
inline V4F operator*(V4F a, V4F b) noexcept {
    return {_mm_mul_ps(a.v, b.v)};
}
inline M4F operator<(V4F a, V4F b) noexcept {
    return {_mm_cmplt_ps(a.v, b.v)};
}
inline M4F operator>(V4F a, V4F b) noexcept {
    return {_mm_cmpgt_ps(a.v, b.v)};
}
inline M4F operator==(V4F a, V4F b) noexcept {
    return {_mm_cmpeq_ps(a.v, b.v)};
}
inline M4F is_nan(V4F a) noexcept {
    return {_mm_cmpunord_ps(a.v, a.v)};
}
inline M4F not_le(V4F a, V4F b) noexcept {
    return {_mm_cmpnle_ps(a.v, b.v)};
}
inline M4F operator&(M4F a, M4F b) noexcept {
    return {_mm_and_ps(a.m, b.m)};
}
inline M4F operator|(M4F a, M4F b) noexcept {
    return {_mm_or_ps(a.m, b.m)};
}
inline M4F operator^(M4F a, M4F b) noexcept {
    return {_mm_xor_ps(a.m, b.m)};
}
inline M4F operator~(M4F a) noexcept {
    return {_mm_xor_ps(a.m, _mm_castsi128_ps(_mm_set1_epi32(-1)))};
}
inline M4F mask_none(V4F /*tag*/) noexcept {
    return {_mm_setzero_ps()};
}
inline bool any(M4F a) noexcept {
    return _mm_movemask_ps(a.m) != 0;
}
inline bool all(M4F a) noexcept {
    return _mm_movemask_ps(a.m) == 15;
}
inline V4F select(M4F m, V4F a, V4F b) noexcept {
    return {_mm_or_ps(_mm_and_ps(m.m, a.v), _mm_andnot_ps(m.m, b.v))};
}
inline V4F ones(M4F m) noexcept {
    return {_mm_and_ps(m.m, _mm_set1_ps(1.0f))};
}

#if TRAINCB_METRICS_AVX2

/// A four-lane double mask (all bits set or clear per lane).
struct M4D {
    __m256d m;
};

/// Four doubles in an AVX register (the kernels' double vector when compiled with AVX2 and FMA).
struct V4D {
    static constexpr int size = 4;
    using Mask = M4D;
    __m256d v;
    static V4D zero() noexcept { return {_mm256_setzero_pd()}; }
    static V4D set1(double x) noexcept { return {_mm256_set1_pd(x)}; }
    static V4D load(const double* p) noexcept { return {_mm256_loadu_pd(p)}; }
    static V4D load(const float* p) noexcept { return {_mm256_cvtps_pd(_mm_loadu_ps(p))}; }
    template <class F>
    static V4D generate(F&& f) {
        const double a = static_cast<double>(f(0));
        const double b = static_cast<double>(f(1));
        const double c = static_cast<double>(f(2));
        const double d = static_cast<double>(f(3));
        return {_mm256_set_pd(d, c, b, a)};
    }
    [[nodiscard]] double lane(int i) const noexcept {
        alignas(32) double out[4];
        _mm256_store_pd(out, v);
        return out[i];
    }
    [[nodiscard]] double sum() const noexcept {
        const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
};

inline V4D operator+(V4D a, V4D b) noexcept {
    return {_mm256_add_pd(a.v, b.v)};
}
inline V4D operator-(V4D a, V4D b) noexcept {
    return {_mm256_sub_pd(a.v, b.v)};
}
inline V4D operator*(V4D a, V4D b) noexcept {
    return {_mm256_mul_pd(a.v, b.v)};
}
inline V4D operator/(V4D a, V4D b) noexcept {
    return {_mm256_div_pd(a.v, b.v)};
}
// The predicates match SSE2's cmp*pd: ordered and false for NaN, except != and not_le.
inline M4D operator<(V4D a, V4D b) noexcept {
    return {_mm256_cmp_pd(a.v, b.v, _CMP_LT_OQ)};
}
inline M4D operator<=(V4D a, V4D b) noexcept {
    return {_mm256_cmp_pd(a.v, b.v, _CMP_LE_OQ)};
}
inline M4D operator>(V4D a, V4D b) noexcept {
    return {_mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ)};
}
inline M4D operator>=(V4D a, V4D b) noexcept {
    return {_mm256_cmp_pd(a.v, b.v, _CMP_GE_OQ)};
}
inline M4D operator==(V4D a, V4D b) noexcept {
    return {_mm256_cmp_pd(a.v, b.v, _CMP_EQ_OQ)};
}
inline M4D operator!=(V4D a, V4D b) noexcept {
    return {_mm256_cmp_pd(a.v, b.v, _CMP_NEQ_UQ)};
}
inline M4D is_nan(V4D a) noexcept {
    return {_mm256_cmp_pd(a.v, a.v, _CMP_UNORD_Q)};
}
inline M4D not_le(V4D a, V4D b) noexcept {
    return {_mm256_cmp_pd(a.v, b.v, _CMP_NLE_UQ)};
}
inline M4D operator&(M4D a, M4D b) noexcept {
    return {_mm256_and_pd(a.m, b.m)};
}
inline M4D operator|(M4D a, M4D b) noexcept {
    return {_mm256_or_pd(a.m, b.m)};
}
inline M4D operator^(M4D a, M4D b) noexcept {
    return {_mm256_xor_pd(a.m, b.m)};
}
inline M4D operator~(M4D a) noexcept {
    return {_mm256_xor_pd(a.m, _mm256_castsi256_pd(_mm256_set1_epi32(-1)))};
}
inline M4D mask_none(V4D /*tag*/) noexcept {
    return {_mm256_setzero_pd()};
}
inline bool any(M4D a) noexcept {
    return _mm256_movemask_pd(a.m) != 0;
}
inline bool all(M4D a) noexcept {
    return _mm256_movemask_pd(a.m) == 15;
}
inline V4D select(M4D m, V4D a, V4D b) noexcept {
    return {_mm256_blendv_pd(b.v, a.v, m.m)};
}
inline V4D ones(M4D m) noexcept {
    return {_mm256_and_pd(m.m, _mm256_set1_pd(1.0))};
}
inline V4D abs(V4D a) noexcept {
    return {_mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v)};
}
inline V4D neg_abs(V4D a) noexcept {
    return {_mm256_or_pd(_mm256_set1_pd(-0.0), a.v)};
}
// vmaxpd/vminpd return their second operand when either is NaN, as SSE2's: same operand orders.
inline V4D positive_part(V4D a) noexcept {
    return {_mm256_max_pd(a.v, _mm256_setzero_pd())};
}
inline V4D keep(M4D m, V4D v) noexcept {
    return {_mm256_and_pd(m.m, v.v)};
}
inline V4D clamp(V4D q, V4D lo, V4D hi) noexcept {
    return {_mm256_min_pd(hi.v, _mm256_max_pd(lo.v, q.v))};
}
inline V4D min_ignoring_nan(V4D acc, V4D v) noexcept {
    return {_mm256_min_pd(v.v, acc.v)};
}
inline V4D max_ignoring_nan(V4D acc, V4D v) noexcept {
    return {_mm256_max_pd(v.v, acc.v)};
}
/// a * b + c with one rounding.
inline V4D mul_add(V4D a, V4D b, V4D c) noexcept {
    return {_mm256_fmadd_pd(a.v, b.v, c.v)};
}

/// exp(x) for x <= 0 (or NaN), within about 1 ulp: V2's algorithm with fused multiply-adds (the
/// reduction r = x - k ln2_hi - k ln2_lo and the polynomial each round once per step, not twice).
inline V4D exp_nonpositive(V4D x_in) noexcept {
    const __m256d x = x_in.v;
    const auto c = [](double v) { return _mm256_set1_pd(v); };
    const __m256d magic = c(6755399441055744.0);
    const __m256d shifted = _mm256_fmadd_pd(x, c(kLog2e), magic);
    const __m256d k = _mm256_sub_pd(shifted, magic);
    // k ln2_hi is exact, so the first step is exact; the second rounds once.
    const __m256d r = _mm256_fnmadd_pd(k, c(kLn2Lo), _mm256_fnmadd_pd(k, c(kLn2Hi), x));
    const __m256d r2 = _mm256_mul_pd(r, r);
    const __m256d r4 = _mm256_mul_pd(r2, r2);
    const __m256d r8 = _mm256_mul_pd(r4, r4);
    const __m256d q0 = _mm256_add_pd(r, c(1.0));
    const __m256d q1 = _mm256_fmadd_pd(r, c(1.0 / 6), c(1.0 / 2));
    const __m256d q2 = _mm256_fmadd_pd(r, c(1.0 / 120), c(1.0 / 24));
    const __m256d q3 = _mm256_fmadd_pd(r, c(1.0 / 5040), c(1.0 / 720));
    const __m256d q4 = _mm256_fmadd_pd(r, c(1.0 / 362880), c(1.0 / 40320));
    const __m256d q5 = _mm256_fmadd_pd(r, c(1.0 / 39916800), c(1.0 / 3628800));
    const __m256d q6 = _mm256_fmadd_pd(r, c(1.0 / 6227020800.0), c(1.0 / 479001600));
    const __m256d o0 = _mm256_fmadd_pd(q1, r2, q0);
    const __m256d o1 = _mm256_fmadd_pd(q3, r2, q2);
    const __m256d o2 = _mm256_fmadd_pd(q5, r2, q4);
    const __m256d p = _mm256_fmadd_pd(_mm256_fmadd_pd(q6, r4, o2), r8, _mm256_fmadd_pd(o1, r4, o0));
    const __m256i two_k =
        _mm256_slli_epi64(_mm256_add_epi64(_mm256_castpd_si256(shifted), _mm256_set1_epi64x(1023)), 52);
    const __m256d y = _mm256_mul_pd(p, _mm256_castsi256_pd(two_k));
    return {_mm256_andnot_pd(_mm256_cmp_pd(x, c(kExpLow), _CMP_LT_OQ), y)};
}

namespace impl {
inline __m256d exponent_of(__m256i bits) noexcept {
    const __m256i magic = _mm256_set1_epi64x(0x4330000000000000LL);  // 2^52
    const __m256d e = _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(bits, 52), magic));
    return _mm256_sub_pd(e, _mm256_set1_pd(4503599627370496.0 + 1023.0));
}
inline __m256d mantissa_of(__m256i bits) noexcept {
    const __m256i mant = _mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFLL));
    return _mm256_castsi256_pd(_mm256_or_si256(mant, _mm256_set1_epi64x(0x3FF0000000000000LL)));
}
}  // namespace impl

/// Natural logarithm within about 1 ulp: V2's fdlibm algorithm, its polynomial with fused
/// multiply-adds.
inline V4D log(V4D x_in) noexcept {
    const auto c = [](double v) { return _mm256_set1_pd(v); };
    const __m256d tiny = _mm256_cmp_pd(x_in.v, c(2.2250738585072014e-308), _CMP_LT_OQ);
    const __m256d x = _mm256_blendv_pd(x_in.v, _mm256_mul_pd(x_in.v, c(18014398509481984.0)), tiny);
    const __m256i bits = _mm256_castpd_si256(x);
    __m256d k = _mm256_sub_pd(impl::exponent_of(bits), _mm256_and_pd(tiny, c(54.0)));
    __m256d m = impl::mantissa_of(bits);
    const __m256d big = _mm256_cmp_pd(m, c(1.4142135623730951), _CMP_GT_OQ);
    m = _mm256_blendv_pd(m, _mm256_mul_pd(m, c(0.5)), big);
    k = _mm256_add_pd(k, _mm256_and_pd(big, c(1.0)));
    const __m256d f = _mm256_sub_pd(m, c(1.0));
    const __m256d s = _mm256_div_pd(f, _mm256_add_pd(c(2.0), f));
    const __m256d z = _mm256_mul_pd(s, s);
    const __m256d w = _mm256_mul_pd(z, z);
    const __m256d t1 = _mm256_mul_pd(
        w, _mm256_fmadd_pd(w, _mm256_fmadd_pd(w, c(1.531383769920937332e-01), c(2.222219843214978396e-01)),
                           c(3.999999999940941908e-01)));
    const __m256d t2 = _mm256_mul_pd(
        z,
        _mm256_fmadd_pd(w,
                        _mm256_fmadd_pd(w, _mm256_fmadd_pd(w, c(1.479819860511658591e-01), c(1.818357216161805012e-01)),
                                        c(2.857142874366239149e-01)),
                        c(6.666666666666735130e-01)));
    const __m256d R = _mm256_add_pd(t2, t1);
    const __m256d hfsq = _mm256_mul_pd(_mm256_mul_pd(c(0.5), f), f);
    const __m256d inner = _mm256_fmadd_pd(s, _mm256_add_pd(hfsq, R), _mm256_mul_pd(k, c(kLn2Lo)));
    __m256d y = _mm256_fmsub_pd(k, c(kLn2Hi), _mm256_sub_pd(_mm256_sub_pd(hfsq, inner), f));
    const __m256d inf = c(HUGE_VAL);
    const __m256d zero = _mm256_setzero_pd();
    y = _mm256_blendv_pd(y, inf, _mm256_cmp_pd(x_in.v, inf, _CMP_EQ_OQ));
    y = _mm256_blendv_pd(y, c(std::numeric_limits<double>::quiet_NaN()), _mm256_cmp_pd(x_in.v, zero, _CMP_NGE_UQ));
    y = _mm256_blendv_pd(y, c(-HUGE_VAL), _mm256_cmp_pd(x_in.v, zero, _CMP_EQ_OQ));
    return {y};
}

inline V4D split_exponent(V4D x, V4D& e) noexcept {
    const __m256i bits = _mm256_castpd_si256(x.v);
    e.v = _mm256_add_pd(e.v, impl::exponent_of(bits));
    return {impl::mantissa_of(bits)};
}

/// An eight-lane float mask.
struct M8F {
    __m256 m;
};

/// Eight floats: V4F's role (comparing and counting float data) at AVX width.
struct V8F {
    static constexpr int size = 8;
    using Mask = M8F;
    __m256 v;
    static V8F zero() noexcept { return {_mm256_setzero_ps()}; }
    static V8F set1(double x) noexcept { return {_mm256_set1_ps(static_cast<float>(x))}; }
    static V8F load(const float* p) noexcept { return {_mm256_loadu_ps(p)}; }
    template <class F>
    static V8F generate(F&& f) {
        alignas(32) float in[8];
        for (int i = 0; i < 8; ++i) in[i] = static_cast<float>(f(i));
        return {_mm256_load_ps(in)};
    }
    [[nodiscard]] double lane(int i) const noexcept {
        alignas(32) float out[8];
        _mm256_store_ps(out, v);
        return static_cast<double>(out[i]);
    }
    [[nodiscard]] double sum() const noexcept {
        // Lanes hold counts below 2^24: the float sums are exact.
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        return V4D{_mm256_add_pd(lo, hi)}.sum();
    }
};

inline V8F operator+(V8F a, V8F b) noexcept {
    return {_mm256_add_ps(a.v, b.v)};
}
inline V8F operator-(V8F a, V8F b) noexcept {
    return {_mm256_sub_ps(a.v, b.v)};
}
inline V8F operator*(V8F a, V8F b) noexcept {
    return {_mm256_mul_ps(a.v, b.v)};
}
inline M8F operator<(V8F a, V8F b) noexcept {
    return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)};
}
inline M8F operator>(V8F a, V8F b) noexcept {
    return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)};
}
inline M8F operator==(V8F a, V8F b) noexcept {
    return {_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ)};
}
inline M8F is_nan(V8F a) noexcept {
    return {_mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q)};
}
inline M8F not_le(V8F a, V8F b) noexcept {
    return {_mm256_cmp_ps(a.v, b.v, _CMP_NLE_UQ)};
}
inline M8F operator&(M8F a, M8F b) noexcept {
    return {_mm256_and_ps(a.m, b.m)};
}
inline M8F operator|(M8F a, M8F b) noexcept {
    return {_mm256_or_ps(a.m, b.m)};
}
inline M8F operator^(M8F a, M8F b) noexcept {
    return {_mm256_xor_ps(a.m, b.m)};
}
inline M8F operator~(M8F a) noexcept {
    return {_mm256_xor_ps(a.m, _mm256_castsi256_ps(_mm256_set1_epi32(-1)))};
}
inline M8F mask_none(V8F /*tag*/) noexcept {
    return {_mm256_setzero_ps()};
}
inline bool any(M8F a) noexcept {
    return _mm256_movemask_ps(a.m) != 0;
}
inline bool all(M8F a) noexcept {
    return _mm256_movemask_ps(a.m) == 255;
}
inline V8F select(M8F m, V8F a, V8F b) noexcept {
    return {_mm256_blendv_ps(b.v, a.v, m.m)};
}
inline V8F ones(M8F m) noexcept {
    return {_mm256_and_ps(m.m, _mm256_set1_ps(1.0f))};
}

/// The widest vector type available.
using VD = V4D;
/// The vector type for comparing and counting float data.
using VF = V8F;
#else
/// The widest vector type available.
using VD = V2;
/// The vector type for comparing and counting float data.
using VF = V4F;
#endif
#else
/// The widest vector type available.
using VD = V1;
/// The vector type for comparing and counting float data.
using VF = V1;
#endif

/// A float threshold equivalent to x for float data: q > x exactly when q > floor_to_float(x)
/// (the largest float not above x; the ends of the float range handled without overflow).
inline double floor_to_float(double x) noexcept {
    constexpr auto max_f = static_cast<double>(std::numeric_limits<float>::max());
    constexpr double inf = std::numeric_limits<double>::infinity();
    if (x == inf) return inf;
    if (x >= max_f) return max_f;  // only +inf floats exceed x
    if (x < -max_f) return -inf;   // every float but -inf exceeds x
    auto f = static_cast<float>(x);
    if (static_cast<double>(f) > x) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
    return static_cast<double>(f);
}

}  // namespace traincb::inline v0::detail::simd
