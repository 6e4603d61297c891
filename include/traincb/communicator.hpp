#pragma once
/// @file communicator.hpp
/// The seam for data-parallel training. Every collective decision (stop, save, change the
/// learning rate) and every metric reduction passes through one Communicator reachable from the
/// callback context, so no rank decides alone from its own numbers. The default is the identity
/// for a single process; an MPI implementation overrides these functions.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace traincb::inline v0 {

/// Collective operations across the processes of one training run.
class Communicator {
public:
    Communicator() = default;
    Communicator(const Communicator&) = delete;
    Communicator& operator=(const Communicator&) = delete;
    virtual ~Communicator() = default;
    /// This process's rank, 0-based.
    [[nodiscard]] virtual int rank() const noexcept { return 0; }
    /// Number of processes.
    [[nodiscard]] virtual int size() const noexcept { return 1; }
    /// True on every rank when `local` is true on any rank (used for stop requests).
    [[nodiscard]] virtual bool any(bool local) { return local; }
    /// True on every rank when `local` is true on all ranks.
    [[nodiscard]] virtual bool all(bool local) { return local; }
    /// Element-wise sum over ranks, in place (used to merge metric counts and sums).
    virtual void sum(std::span<double> values) { (void)values; }
    /// Copies `bytes` from `root` to every rank (used so all ranks act on rank 0's decision).
    virtual void broadcast(std::span<std::byte> bytes, int root) {
        (void)bytes;
        (void)root;
    }
    /// Element-wise sum of integers over ranks, in place (exact: counts, sample numbers).
    virtual void sum_int64(std::span<std::int64_t> values) { (void)values; }
    /// Element-wise maximum over ranks, in place (packed votes: a flag, a failing rank, a hash).
    virtual void max_int64(std::span<std::int64_t> values) { (void)values; }
    /// Copies `bytes` from `root` to every rank, resizing the receivers' vectors (a serialised
    /// state whose size only the root knows).
    virtual void broadcast_resize(std::vector<std::byte>& bytes, int root) {
        (void)bytes;
        (void)root;
    }
    /// Every rank's `mine`, in rank order, on every rank (sizes may differ between ranks).
    [[nodiscard]] virtual std::vector<std::vector<std::byte>> all_gather(std::span<const std::byte> mine) {
        return {std::vector<std::byte>(mine.begin(), mine.end())};
    }
    /// Returns when every rank has called it.
    virtual void barrier() {}
    /// True on the rank that writes files (rank 0).
    [[nodiscard]] bool is_primary() const noexcept { return rank() == 0; }
};

/// The single-process communicator (every operation is the identity).
[[nodiscard]] inline Communicator& local_communicator() noexcept {
    static Communicator c;
    return c;
}

}  // namespace traincb::inline v0
