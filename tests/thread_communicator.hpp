#pragma once
// An in-process Communicator over threads: N threads play N ranks, so the collective logic of
// data-parallel training runs in the normal test program and under ASan/UBSan without mpirun.
// Every collective is one exchange: each rank deposits its bytes, the last to arrive publishes
// all of them, every rank reads. It never hangs a test: a wait longer than the group's timeout,
// or a rank that left with an exception, makes every waiting rank throw.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "traincb/communicator.hpp"

namespace traincb_test {

class ThreadGroup;

/// One rank's view of a ThreadGroup.
class ThreadCommunicator final : public traincb::Communicator {
public:
    ThreadCommunicator(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
    [[nodiscard]] int rank() const noexcept override { return rank_; }
    [[nodiscard]] int size() const noexcept override;
    [[nodiscard]] bool any(bool local) override;
    [[nodiscard]] bool all(bool local) override;
    void sum(std::span<double> values) override;
    void broadcast(std::span<std::byte> bytes, int root) override;
    void sum_int64(std::span<std::int64_t> values) override;
    void max_int64(std::span<std::int64_t> values) override;
    void broadcast_resize(std::vector<std::byte>& bytes, int root) override;
    [[nodiscard]] std::vector<std::vector<std::byte>> all_gather(std::span<const std::byte> mine) override;
    void barrier() override;
    /// Collectives this rank has taken part in.
    [[nodiscard]] std::int64_t collectives() const noexcept { return collectives_; }

private:
    template <class T>
    std::vector<std::vector<T>> gather_as(std::span<const T> mine);
    ThreadGroup& group_;
    int rank_;
    std::int64_t collectives_ = 0;
};

/// N ranks as N threads. run(f) calls f(ThreadCommunicator&) on each and rethrows the lowest
/// rank's exception, if any.
class ThreadGroup {
public:
    explicit ThreadGroup(int size, std::chrono::milliseconds timeout = std::chrono::seconds(30))
        : size_(size), timeout_(timeout), slots_(static_cast<std::size_t>(size)) {}

    [[nodiscard]] int size() const noexcept { return size_; }

    /// Runs f on `size` threads, one per rank; returns when all have finished. An exception that
    /// leaves f aborts the group (ranks waiting in a collective throw) and is rethrown here: the
    /// exception of the rank that failed first (the cause, not the other ranks' aborts).
    void run(const std::function<void(ThreadCommunicator&)>& f) {
        std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size_));
        std::vector<std::thread> threads;
        for (int r = 0; r < size_; ++r)
            threads.emplace_back([this, r, &f, &errors] {
                ThreadCommunicator comm(*this, r);
                try {
                    f(comm);
                } catch (...) {
                    errors[static_cast<std::size_t>(r)] = std::current_exception();
                    abort(r, "rank " + std::to_string(r) + " left with an exception");
                }
            });
        for (auto& t : threads) t.join();
        if (first_failed_ >= 0) std::rethrow_exception(errors[static_cast<std::size_t>(first_failed_)]);
    }

    /// Every rank's bytes, in rank order. @throws std::runtime_error when the group was aborted
    /// or a rank did not arrive within the timeout.
    std::vector<std::vector<std::byte>> exchange(int rank, std::span<const std::byte> mine) {
        std::unique_lock lock(m_);
        if (aborted_) throw std::runtime_error("ThreadGroup: aborted: " + why_);
        slots_[static_cast<std::size_t>(rank)].assign(mine.begin(), mine.end());
        const std::uint64_t gen = generation_;
        if (++arrived_ == size_) {
            published_ = slots_;
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
        } else if (!cv_.wait_for(lock, timeout_, [&] { return generation_ != gen || aborted_; })) {
            aborted_ = true;
            why_ = "rank " + std::to_string(rank) + " waited longer than the timeout in a collective";
            cv_.notify_all();
        }
        if (generation_ == gen) throw std::runtime_error("ThreadGroup: aborted: " + why_);
        return published_;
    }

private:
    void abort(int rank, const std::string& why) {
        std::lock_guard lock(m_);
        if (first_failed_ < 0) first_failed_ = rank;
        if (!aborted_) why_ = why;
        aborted_ = true;
        cv_.notify_all();
    }
    int size_;
    std::chrono::milliseconds timeout_;
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<std::vector<std::byte>> slots_;
    std::vector<std::vector<std::byte>> published_;
    int arrived_ = 0;
    std::uint64_t generation_ = 0;
    bool aborted_ = false;
    int first_failed_ = -1;
    std::string why_;
};

inline int ThreadCommunicator::size() const noexcept {
    return group_.size();
}

template <class T>
std::vector<std::vector<T>> ThreadCommunicator::gather_as(std::span<const T> mine) {
    ++collectives_;
    auto raw = group_.exchange(rank_, std::as_bytes(mine));
    std::vector<std::vector<T>> out(raw.size());
    for (std::size_t r = 0; r < raw.size(); ++r) {
        out[r].resize(raw[r].size() / sizeof(T));
        if (!raw[r].empty()) std::memcpy(out[r].data(), raw[r].data(), raw[r].size());
    }
    return out;
}

inline bool ThreadCommunicator::any(bool local) {
    const std::int64_t v = local ? 1 : 0;
    for (const auto& r : gather_as(std::span<const std::int64_t>(&v, 1)))
        if (r.at(0) != 0) return true;
    return false;
}

inline bool ThreadCommunicator::all(bool local) {
    const std::int64_t v = local ? 1 : 0;
    for (const auto& r : gather_as(std::span<const std::int64_t>(&v, 1)))
        if (r.at(0) == 0) return false;
    return true;
}

inline void ThreadCommunicator::sum(std::span<double> values) {
    // Folded in rank order on every rank, so every rank gets the same bits.
    auto all = gather_as(std::span<const double>(values));
    for (std::size_t i = 0; i < values.size(); ++i) {
        double s = 0;
        for (const auto& r : all) s += r.at(i);
        values[i] = s;
    }
}

inline void ThreadCommunicator::sum_int64(std::span<std::int64_t> values) {
    auto all = gather_as(std::span<const std::int64_t>(values));
    for (std::size_t i = 0; i < values.size(); ++i) {
        std::int64_t s = 0;
        for (const auto& r : all) s += r.at(i);
        values[i] = s;
    }
}

inline void ThreadCommunicator::max_int64(std::span<std::int64_t> values) {
    auto all = gather_as(std::span<const std::int64_t>(values));
    for (std::size_t i = 0; i < values.size(); ++i) {
        std::int64_t m = all.at(0).at(i);
        for (const auto& r : all) m = std::max(m, r.at(i));
        values[i] = m;
    }
}

inline void ThreadCommunicator::broadcast(std::span<std::byte> bytes, int root) {
    auto all = gather_as(std::span<const std::byte>(bytes));
    const auto& src = all.at(static_cast<std::size_t>(root));
    if (src.size() != bytes.size()) throw std::logic_error("ThreadCommunicator::broadcast: sizes differ between ranks");
    if (!src.empty()) std::memcpy(bytes.data(), src.data(), src.size());
}

inline void ThreadCommunicator::broadcast_resize(std::vector<std::byte>& bytes, int root) {
    auto all = gather_as(std::span<const std::byte>(bytes));
    bytes = all.at(static_cast<std::size_t>(root));
}

inline std::vector<std::vector<std::byte>> ThreadCommunicator::all_gather(std::span<const std::byte> mine) {
    return gather_as(mine);
}

inline void ThreadCommunicator::barrier() {
    (void)gather_as(std::span<const std::byte>());
}

}  // namespace traincb_test
