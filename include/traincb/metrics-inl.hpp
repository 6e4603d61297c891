#pragma once
// The bodies of traincb/metrics.hpp's non-template functions: included at the end of that header
// when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp). The metric classes' constructors are here too: a constructor's body
// needs the class's vtable, and with it every virtual function (update, merge, save_state, ...), so
// inline constructors made every translation unit that includes metrics.hpp compile them all.
#include "traincb/metrics.hpp"

namespace traincb::inline v0::detail::metrics {

TRAINCB_INLINE void check_name(const char* who, const std::string& name) {
    if (name.empty()) fail(who, "name is empty; pass the log key, e.g. .name = \"accuracy\"");
}

TRAINCB_INLINE nlohmann::json state_double(double v) {
    return format_double(v);
}

TRAINCB_INLINE std::string state_text(const nlohmann::json& v) {
    return v.is_string() ? v.get_ref<const std::string&>() : v.dump();
}

TRAINCB_INLINE nlohmann::json state_header(const char* who, nlohmann::json options) {
    const std::string_view w(who);
    return {
        {"kind", std::string(w.substr(w.find("::") + 2))}, {"version", kStateVersion}, {"options", std::move(options)}};
}

TRAINCB_INLINE void check_state_header(const StateReader& in, const char* who, const nlohmann::json& state,
                                       const nlohmann::json& options) {
    if (!state.is_object()) in.malformed("is " + state.dump() + ", not a JSON object");
    const std::string_view w(who);
    const std::string kind(w.substr(w.find("::") + 2));
    const nlohmann::json& k = in.field(state, "kind");
    if (!k.is_string()) in.malformed("has 'kind' = " + k.dump() + ", not a string");
    if (k.get_ref<const std::string&>() != kind)
        throw InvalidArgument("traincb: " + in.who + ": '" + in.name + "' is a metrics::" + kind +
                              " but the state was saved by a metrics::" + k.get_ref<const std::string&>() +
                              "; load it into a metric of the class that saved it");
    const nlohmann::json& v = in.field(state, "version");
    if (!v.is_number_integer()) in.malformed("has 'version' = " + v.dump() + ", not a whole number");
    if (v.get<std::int64_t>() != kStateVersion)
        throw FormatError("traincb: " + in.who + ": the state given to '" + in.name + "' has version " + v.dump() +
                          ", which this traincb does not read (it reads version " + std::to_string(kStateVersion) +
                          "); load it with the traincb that wrote it, or let the metric restart");
    const nlohmann::json& saved = in.field(state, "options");
    if (!saved.is_object()) in.malformed("has 'options' = " + saved.dump() + ", not a JSON object");
    std::string now_text, saved_text, fix;
    for (const auto& [key, now] : options.items()) {
        const auto it = saved.find(key);
        if (it == saved.end()) in.malformed("has no option '" + key + "'");
        if (*it == now) continue;
        const char* sep = now_text.empty() ? "" : ", ";
        now_text += sep + key + " " + state_text(now);
        saved_text += sep + key + " " + state_text(*it);
        fix += sep + ("." + key) + " = " + state_text(*it);
    }
    if (!now_text.empty())
        throw InvalidArgument("traincb: " + in.who + ": '" + in.name + "' has " + now_text +
                              " but the state was saved with " + saved_text + "; build the metric with " + fix +
                              " to load it");
}

[[noreturn]] TRAINCB_INLINE void StateReader::malformed(const std::string& what) const {
    throw FormatError("traincb: " + who + ": the state given to '" + name + "' " + what +
                      "; pass the JSON that save_state of the same class wrote");
}

TRAINCB_INLINE const nlohmann::json& StateReader::field(const nlohmann::json& j, const char* key) const {
    const auto it = j.find(key);
    if (it == j.end()) malformed(std::string("has no '") + key + "'");
    return *it;
}

TRAINCB_INLINE double StateReader::real(const nlohmann::json& v, const std::string& what) const {
    if (v.is_string()) {
        if (const auto d = parse_double(v.get_ref<const std::string&>())) return *d;
    }
    malformed("has " + what + " = " + v.dump() + ", not a number written as a string");
}

TRAINCB_INLINE std::int64_t StateReader::count(const nlohmann::json& v, const std::string& what) const {
    if (v.is_number_integer() && (v.is_number_unsigned() || v.get<std::int64_t>() >= 0)) {
        if (v.is_number_unsigned() &&
            v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            malformed("has " + what + " = " + v.dump() + ", beyond a 64-bit count");
        return v.get<std::int64_t>();
    }
    malformed("has " + what + " = " + v.dump() + ", not a whole number >= 0");
}

TRAINCB_INLINE const nlohmann::json& StateReader::array(const nlohmann::json& j, const char* key,
                                                        std::optional<std::size_t> size) const {
    const nlohmann::json& v = field(j, key);
    if (!v.is_array()) malformed(std::string("has '") + key + "' = " + v.dump() + ", not an array");
    if (size && v.size() != *size)
        malformed(std::string("has '") + key + "' with " + std::to_string(v.size()) + " entries, but " +
                  std::to_string(*size) + " are needed (a state of a metric with other options?)");
    return v;
}

}  // namespace traincb::inline v0::detail::metrics

namespace traincb::inline v0::metrics {

TRAINCB_INLINE BinaryAccuracy::BinaryAccuracy(BinaryAccuracyOptions options) : MeanMetric(std::move(options)) {
    if (std::isnan(opt_.threshold)) detail::metrics::fail(kWho, "threshold is nan; pass a number such as 0.5");
}

TRAINCB_INLINE CategoricalAccuracy::CategoricalAccuracy(CategoricalAccuracyOptions options)
    : MeanMetric(std::move(options)) {}

TRAINCB_INLINE SparseCategoricalAccuracy::SparseCategoricalAccuracy(SparseCategoricalAccuracyOptions options)
    : MeanMetric(std::move(options)) {}

TRAINCB_INLINE TopKCategoricalAccuracy::TopKCategoricalAccuracy(TopKCategoricalAccuracyOptions options)
    : MeanMetric(std::move(options)) {
    if (opt_.k < 1) detail::metrics::fail(kWho, "k is " + std::to_string(opt_.k) + "; pass k >= 1");
}

TRAINCB_INLINE BinaryCrossentropy::BinaryCrossentropy(BinaryCrossentropyOptions options)
    : MeanMetric(std::move(options)) {}

TRAINCB_INLINE CategoricalCrossentropy::CategoricalCrossentropy(CategoricalCrossentropyOptions options)
    : MeanMetric(std::move(options)) {}

TRAINCB_INLINE SparseCategoricalCrossentropy::SparseCategoricalCrossentropy(
    SparseCategoricalCrossentropyOptions options)
    : MeanMetric(std::move(options)) {}

TRAINCB_INLINE MeanSquaredError::MeanSquaredError(MeanSquaredErrorOptions options) : MeanMetric(std::move(options)) {}

TRAINCB_INLINE MeanAbsoluteError::MeanAbsoluteError(MeanAbsoluteErrorOptions options)
    : MeanMetric(std::move(options)) {}

TRAINCB_INLINE Precision::Precision(ClassScoreOptions options) : ClassScoreMetric(std::move(options), "precision") {}

TRAINCB_INLINE Recall::Recall(ClassScoreOptions options) : ClassScoreMetric(std::move(options), "recall") {}

TRAINCB_INLINE F1Score::F1Score(ClassScoreOptions options) : ClassScoreMetric(std::move(options), "f1_score") {}

TRAINCB_INLINE RocAuc::RocAuc(RocAucOptions options) : opt_(std::move(options)) {
    detail::metrics::check_name(kWho, opt_.name);
}

}  // namespace traincb::inline v0::metrics
