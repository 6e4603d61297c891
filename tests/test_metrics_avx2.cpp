// The metric tests of test_metrics.cpp (reference values, NaN semantics, error paths) and of
// test_metrics_layouts.cpp (every layout, SIMD tails and block boundaries, against naive
// references) again, compiled with -mavx2 -mfma (tests/CMakeLists.txt adds the flags where the
// compiler accepts them), so that the 4-double and 8-float kernels (and the 4-lane exp and log)
// meet the same references to the same tolerances as the SSE2 ones.
//
// The machine running the tests may lack AVX2 or FMA: every test case is wrapped so that its first
// action, before any code of the case runs, is a CPU check (__builtin_cpu_supports) that skips it.
// Nothing AVX2 runs before that check: this file's static initialisation (the included files'
// test data, Catch's registrations) is scalar code (VEX-encoded, as all code of this translation
// unit, so a CPU without even AVX is out of scope).

#include "catch.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <traincb/metrics.hpp>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)

static_assert(traincb::detail::simd::VD::size == 4 && traincb::detail::simd::VF::size == 8,
              "-mavx2 -mfma selects the 4-double and 8-float kernels");

namespace traincb_avx2 {
inline bool cpu_has_avx2_fma() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
}  // namespace traincb_avx2

// TEST_CASE(...) { body } becomes a registered case that checks the CPU, then calls body.
#define TRAINCB_AVX2_CASE(body, ...)                                                       \
    static void body();                                                                    \
    INTERNAL_CATCH_TESTCASE(__VA_ARGS__) {                                                 \
        if (!traincb_avx2::cpu_has_avx2_fma()) TRAINCB_SKIP("this CPU lacks AVX2 or FMA"); \
        body();                                                                            \
    }                                                                                      \
    static void body()
#undef TEST_CASE
#define TEST_CASE(...) TRAINCB_AVX2_CASE(INTERNAL_CATCH_UNIQUE_NAME(traincb_avx2_case_), __VA_ARGS__)

// Each file in its own namespace: both define helpers of the same names (close, ...).
namespace traincb_avx2_basic {
#include "test_metrics.cpp"  // NOLINT(bugprone-suspicious-include): the same tests again
}  // namespace traincb_avx2_basic
namespace traincb_avx2_layouts {
#include "test_metrics_layouts.cpp"  // NOLINT(bugprone-suspicious-include): the same tests again
}  // namespace traincb_avx2_layouts

#else

TEST_CASE("the AVX2 metric kernels are tested where the compiler accepts -mavx2 -mfma") {
    TRAINCB_SKIP("compiled without -mavx2 -mfma (the compiler does not accept them)");
}

#endif
