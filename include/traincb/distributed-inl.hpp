#pragma once
// The bodies of traincb/distributed.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/distributed.hpp"

namespace traincb::inline v0 {
namespace detail {

TRAINCB_INLINE std::vector<std::byte> pack_metric_state(const nlohmann::json& state, const StateDict& tensors) {
    BytesWriter w;
    w.str(state.dump());
    w.u64(tensors.size());
    for (const Tensor& t : tensors.tensors()) {
        w.str(t.name);
        w.u64(static_cast<std::uint64_t>(t.dtype));
        w.u64(t.shape.size());
        for (std::int64_t d : t.shape) w.u64(static_cast<std::uint64_t>(d));
        w.u64(t.data.size());
        w.raw(t.data.data(), t.data.size());
    }
    return std::move(w.bytes());
}

TRAINCB_INLINE void unpack_metric_state(std::span<const std::byte> in, nlohmann::json& state, StateDict& tensors) {
    BytesReader r(in);
    state = nlohmann::json::parse(r.str());
    const std::uint64_t n = r.u64();
    tensors.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
        Tensor t;
        t.name = r.str();
        t.dtype = static_cast<DType>(r.u64());
        const std::uint64_t rank = r.u64();
        if (rank > 8) throw FormatError("traincb: distributed: a rank sent a tensor of rank " + std::to_string(rank));
        for (std::uint64_t k = 0; k < rank; ++k) t.shape.push_back(static_cast<std::int64_t>(r.u64()));
        t.data.resize(static_cast<std::size_t>(r.u64()));
        r.raw(t.data.data(), t.data.size());
        tensors.put(std::move(t));
    }
    if (!r.done()) throw FormatError("traincb: distributed: a rank sent trailing bytes after a metric state");
}

}  // namespace detail

namespace metrics {

TRAINCB_INLINE void all_reduce(Communicator& comm, std::span<Metric* const> ms, std::span<double> sums,
                               std::span<std::int64_t> counts) {
    detail::BytesWriter w;
    w.u64(ms.size());
    for (Metric* m : ms) {
        nlohmann::json state;
        StateDict tensors;
        const bool saveable = m->save_state_with_tensors(state, tensors);
        w.u64(saveable ? 1 : 0);
        if (saveable) {
            const std::vector<std::byte> packed = detail::pack_metric_state(state, tensors);
            w.u64(packed.size());
            w.raw(packed.data(), packed.size());
        }
    }
    w.u64(sums.size());
    w.raw(sums.data(), sums.size_bytes());
    w.u64(counts.size());
    w.raw(counts.data(), counts.size_bytes());
    const std::vector<std::vector<std::byte>> all = comm.all_gather(w.bytes());
    std::vector<std::unique_ptr<Metric>> merged, part;
    for (Metric* m : ms) {
        merged.push_back(m->clone());
        merged.back()->reset();
        part.push_back(m->clone());
    }
    std::vector<double> sum(sums.size(), 0.0);
    std::vector<std::int64_t> count(counts.size(), 0);
    for (std::size_t r = 0; r < all.size(); ++r) {
        const std::string from = detail::cat("rank ", std::to_string(r));
        const auto bad = [&](const std::string& why) {
            throw InvalidArgument(detail::cat("traincb: metrics::all_reduce: ", why, " (", from, " against rank ",
                                              std::to_string(comm.rank()),
                                              "); every rank needs the same metric class and options for each "
                                              "metric, in the same order"));
        };
        detail::BytesReader in(all[r]);
        if (in.u64() != ms.size()) bad("the ranks reduce different numbers of metrics");
        for (std::size_t i = 0; i < ms.size(); ++i) {
            if (in.u64() == 0)
                throw InvalidArgument(detail::cat(
                    "traincb: metrics::all_reduce: metric '", ms[i]->name(), "' keeps no saveable state on ", from,
                    "; implement save_state and load_state in its class (see docs/checkpoints.md) "
                    "so its state can be merged"));
            std::vector<std::byte> packed(static_cast<std::size_t>(in.u64()));
            in.raw(packed.data(), packed.size());
            try {
                nlohmann::json s;
                StateDict t;
                detail::unpack_metric_state(packed, s, t);
                part[i]->load_state_with_tensors(s, t);
                merged[i]->merge(*part[i]);
            } catch (const std::exception& e) {
                bad(detail::cat("metric '", ms[i]->name(), "' differs: ", e.what()));
            }
        }
        if (in.u64() != sums.size()) bad("the ranks sum different numbers of values");
        for (double& s : sum) {
            double x = 0;
            in.raw(&x, sizeof x);
            s += x;
        }
        if (in.u64() != counts.size()) bad("the ranks sum different numbers of counts");
        for (std::int64_t& c : count) {
            std::int64_t x = 0;
            in.raw(&x, sizeof x);
            c += x;
        }
    }
    for (std::size_t i = 0; i < ms.size(); ++i) {
        ms[i]->reset();
        ms[i]->merge(*merged[i]);
    }
    // Element loops bounded by the caller's spans: std::copy here made g++ 12 -O3 warn (-Wnonnull)
    // that memmove may get the null data() of an empty span (it cannot see sum.size() == sums.size()).
    for (std::size_t i = 0; i < sums.size(); ++i) sums[i] = sum[i];
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = count[i];
}

}  // namespace metrics
}  // namespace traincb::inline v0
