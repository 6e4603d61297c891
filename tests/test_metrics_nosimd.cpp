// The layout tests of test_metrics_layouts.cpp on the portable scalar path (no SSE2 kernels), so
// that the fallback used on other architectures is checked on every CI machine too.
#define TRAINCB_METRICS_NO_SIMD 1
#include "test_metrics_layouts.cpp"  // NOLINT(bugprone-suspicious-include): the same tests again

static_assert(traincb::detail::simd::VD::size == 1, "TRAINCB_METRICS_NO_SIMD selects the one-lane path");
