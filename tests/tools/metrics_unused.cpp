// Compiled by tests/tools/check_metric_instantiations.cmake in the compiled mode with g++'s
// -fkeep-inline-functions (which emits every inline function the translation unit compiled, used or
// not): as it is, it includes metrics.hpp and uses no metric, and must compile none of the metrics'
// virtual functions; with TRAINCB_PROBE_USE_METRIC it constructs and destroys one, and must (the
// control: proof that the check sees them).
#include <traincb/metrics.hpp>

#if defined(TRAINCB_PROBE_USE_METRIC)
int main() {
    const traincb::metrics::Precision precision;
    return precision.name() == "precision" ? 0 : 1;
}
#else
int main() {}
#endif
