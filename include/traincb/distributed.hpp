#pragma once
/// @file distributed.hpp
/// The collective side of data-parallel training, written against the Communicator seam only (no
/// MPI here: traincb/mpi.hpp provides the MPI communicator). metrics::all_reduce merges a metric's
/// sufficient statistics over every rank, so that its result() is the metric over all ranks' data,
/// never an average of per-rank results (wrong for uneven shards, F1 and AUC). See
/// docs/distributed.md.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "traincb/communicator.hpp"
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
[[nodiscard]] inline std::vector<std::byte> pack_metric_state(const nlohmann::json& state, const StateDict& tensors) {
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

/// The inverse of pack_metric_state. @throws FormatError on a malformed buffer.
inline void unpack_metric_state(std::span<const std::byte> in, nlohmann::json& state, StateDict& tensors) {
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

/// Merges `metric`'s accumulated state over every rank of `comm`: afterwards result() on every
/// rank is the metric over all ranks' data (counts exact; sums equal to the one-process value up to
/// rounding; RocAuc exact over all scores), and the state is bit-identical on every rank (each rank
/// folds the same states in rank order). Collective: every rank must call it, with a metric of the
/// same class and options. One all_gather of the serialised states.
/// @throws InvalidArgument when the metric keeps no saveable state (it must implement
/// save_state/load_state, as every built-in metric does) or another rank's metric is of another
/// class or options (naming it; thrown on every rank, so no rank is left waiting)
inline void all_reduce(Communicator& comm, Metric& metric) {
    nlohmann::json state;
    StateDict tensors;
    const bool saveable = metric.save_state_with_tensors(state, tensors);
    // Agree first on whether every rank can take part, so a rank never waits alone in all_gather.
    if (!comm.all(saveable))
        throw InvalidArgument(
            detail::cat("traincb: metrics::all_reduce: metric '", metric.name(),
                        "' keeps no saveable state on at least one rank; implement save_state and "
                        "load_state in its class (see docs/checkpoints.md) so its state can be merged"));
    if (comm.size() == 1) return;
    const std::vector<std::vector<std::byte>> all = comm.all_gather(detail::pack_metric_state(state, tensors));
    auto merged = metric.clone();
    merged->reset();
    auto part = metric.clone();
    std::string error;
    int error_rank = -1;
    for (std::size_t r = 0; r < all.size() && error_rank < 0; ++r) {
        try {
            nlohmann::json s;
            StateDict t;
            detail::unpack_metric_state(all[r], s, t);
            part->load_state_with_tensors(s, t);
            merged->merge(*part);
        } catch (const std::exception& e) {
            error = e.what();
            error_rank = static_cast<int>(r);
        }
    }
    // A mismatch is symmetric (options or class differ), so every rank finds one without another
    // vote; each names itself and the first rank whose state it could not take.
    if (error_rank >= 0)
        throw InvalidArgument(detail::cat("traincb: metrics::all_reduce: metric '", metric.name(),
                                          "' differs between rank ", std::to_string(comm.rank()), " and rank ",
                                          std::to_string(error_rank),
                                          "; every rank needs the same metric class and options (", error, ")"));
    metric.reset();
    metric.merge(*merged);
}

}  // namespace metrics
}  // namespace traincb::inline v0
