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
#include "traincb/distributed-inl.hpp"
#endif
