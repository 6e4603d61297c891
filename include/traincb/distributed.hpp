#pragma once
/// @file distributed.hpp
/// The collective side of data-parallel training, written against the Communicator seam only (no
/// MPI here: traincb/mpi.hpp provides the MPI communicator). metrics::all_reduce merges a metric's
/// sufficient statistics over every rank, so that its result() is the metric over all ranks' data,
/// never an average of per-rank results (wrong for uneven shards, F1 and AUC). See
/// docs/distributed.md.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "traincb/communicator.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"
#include "traincb/metric.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0 {
namespace detail {

/// Appends integers and byte strings to a buffer: the wire form of a metric state between ranks
/// (the same machine architecture on every rank: little-endian, checked in state.hpp).
class BytesWriter {
public:
    /// Appends a 64-bit integer.
    void u64(std::uint64_t v) { raw(&v, sizeof v); }
    /// Appends a length-prefixed byte string.
    void str(std::string_view s) {
        u64(s.size());
        raw(s.data(), s.size());
    }
    /// Appends `n` raw bytes.
    void raw(const void* p, std::size_t n) {
        const auto* b = static_cast<const std::byte*>(p);
        out_.insert(out_.end(), b, b + n);
    }
    /// The bytes written so far.
    [[nodiscard]] std::vector<std::byte>& bytes() noexcept { return out_; }

private:
    std::vector<std::byte> out_{};
};

/// Reads what BytesWriter wrote. @throws FormatError when the buffer ends early.
class BytesReader {
public:
    /// Reads from `in`, which must outlive the reader.
    explicit BytesReader(std::span<const std::byte> in) : in_(in) {}
    /// Reads a 64-bit integer.
    [[nodiscard]] std::uint64_t u64() {
        std::uint64_t v = 0;
        raw(&v, sizeof v);
        return v;
    }
    /// Reads a length-prefixed byte string.
    [[nodiscard]] std::string str() {
        const std::uint64_t n = u64();
        need(n);
        std::string s(reinterpret_cast<const char*>(in_.data() + pos_), static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }
    /// Reads `n` raw bytes into `p`.
    void raw(void* p, std::size_t n) {
        need(n);
        if (n > 0) std::memcpy(p, in_.data() + pos_, n);
        pos_ += n;
    }
    /// True when every byte was read.
    [[nodiscard]] bool done() const noexcept { return pos_ == in_.size(); }

private:
    void need(std::uint64_t n) const {
        if (n > in_.size() - pos_)
            throw FormatError("traincb: distributed: a rank sent a truncated metric state (" +
                              std::to_string(in_.size()) + " bytes); every rank must run the same traincb version");
    }
    std::span<const std::byte> in_;
    std::size_t pos_ = 0;
};

/// Serialises a metric's saved state (JSON object plus tensors) into bytes.
[[nodiscard]] TRAINCB_INLINE std::vector<std::byte> pack_metric_state(const nlohmann::json& state,
                                                                      const StateDict& tensors);

/// The inverse of pack_metric_state. @throws FormatError on a malformed buffer.
TRAINCB_INLINE void unpack_metric_state(std::span<const std::byte> in, nlohmann::json& state, StateDict& tensors);

}  // namespace detail

namespace metrics {

/// Merges several metrics' states over every rank of `comm` in one all_gather, and sums `sums`
/// and `counts` element-wise over the ranks in the same exchange (each rank adds them in rank
/// order, so the results are bit-identical on every rank). Afterwards each metric is as
/// all_reduce(comm, metric) leaves it. Collective: every rank passes as many metrics, of the same
/// classes and options, in the same order, and spans of the same sizes. Trainer reduces an
/// epoch's training loss, training and validation metrics and val_loss with one such call.
/// @throws InvalidArgument on every rank when a metric keeps no saveable state on some rank, or
/// the ranks' metrics or span sizes differ (naming the rank)
TRAINCB_INLINE void all_reduce(Communicator& comm, std::span<Metric* const> ms, std::span<double> sums = {},
                               std::span<std::int64_t> counts = {});

/// Merges `metric`'s accumulated state over every rank of `comm`: afterwards result() on every
/// rank is the metric over all ranks' data (counts exact; sums equal to the one-process value up to
/// rounding; RocAuc exact over all scores), and the state is bit-identical on every rank (each rank
/// folds the same states in rank order). Collective: every rank must call it, with a metric of the
/// same class and options. One all_gather of the serialised states.
/// @throws InvalidArgument when the metric keeps no saveable state (it must implement
/// save_state/load_state, as every built-in metric does) or another rank's metric is of another
/// class or options (naming it; thrown on every rank, so no rank is left waiting)
inline void all_reduce(Communicator& comm, Metric& metric) {
    const std::array<Metric*, 1> one{&metric};
    all_reduce(comm, std::span<Metric* const>(one));
}
}  // namespace metrics
}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
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
#endif  // TRAINCB_DEFINITIONS
