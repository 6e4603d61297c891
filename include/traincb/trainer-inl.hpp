#pragma once
// The bodies of traincb/trainer.hpp's non-template functions: included at the end of that header
// when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/trainer.hpp"

namespace traincb::inline v0 {
namespace detail {

TRAINCB_INLINE void epoch_permutation(std::vector<Eigen::Index>& idx, std::uint64_t seed, int epoch) {
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<Eigen::Index>(i);
    SplitMix64 rng{
        splitmix64_mix(splitmix64_mix(seed) + static_cast<std::uint64_t>(static_cast<std::uint32_t>(epoch)))};
    for (std::size_t i = idx.size(); i > 1; --i)
        std::swap(idx[i - 1], idx[static_cast<std::size_t>(bounded_random(rng, i))]);
}

TRAINCB_INLINE std::string shape(Eigen::Index r, Eigen::Index c) {
    return std::to_string(r) + "x" + std::to_string(c);
}

TRAINCB_INLINE nlohmann::json save_metric_states(const std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms,
                                                 std::map<std::string, StateDict, std::less<>>& tensors) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& m : ms) {
        nlohmann::json s;
        StateDict t;
        const bool saved = m->save_state_with_tensors(s, t);
        out[m->name()] = saved ? std::move(s) : nlohmann::json();
        if (saved && !t.empty()) tensors[m->name()] = std::move(t);
    }
    return out;
}

TRAINCB_INLINE std::string json_text(const nlohmann::json& j) {
    return j.dump();
}

}  // namespace detail
}  // namespace traincb::inline v0
