#pragma once
/// @file rank_vote.hpp
/// The packed vote that keeps the ranks of a data-parallel run in step (CallbackList, in
/// distributed mode). At the end of each hook every rank contributes one fixed-size array to one
/// Communicator::max_int64: which rank failed, which rank asked to stop, which signal arrived, and
/// a hash of where the rank is (hook, epoch, batch, and the log keys or configuration) together
/// with its negation, so that max(h) == -max(-h) holds exactly when every rank sent the same hash.

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "traincb/communicator.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0::detail {

/// Where the ranks meet: one value per hook of CallbackList that votes.
enum class SyncPoint : std::int64_t {
    TrainBegin = 1,
    EpochBegin,
    BatchBegin,
    BatchEnd,
    TestBegin,
    TestEnd,
    EpochEnd,
    Interrupt,
    TrainEnd,
};

/// The hook's name, for messages.
[[nodiscard]] constexpr std::string_view sync_point_name(SyncPoint p) noexcept {
    switch (p) {
        case SyncPoint::TrainBegin:
            return "on_train_begin";
        case SyncPoint::EpochBegin:
            return "on_epoch_begin";
        case SyncPoint::BatchBegin:
            return "on_train_batch_begin";
        case SyncPoint::BatchEnd:
            return "on_train_batch_end";
        case SyncPoint::TestBegin:
            return "on_test_begin";
        case SyncPoint::TestEnd:
            return "on_test_end";
        case SyncPoint::EpochEnd:
            return "on_epoch_end";
        case SyncPoint::Interrupt:
            return "on_interrupt";
        case SyncPoint::TrainEnd:
            return "on_train_end";
    }
    return "a hook";
}

/// The vote's slots.
struct RankVote {
    static constexpr std::size_t kFailed = 0;     ///< size - rank of the lowest failing rank; 0: none
    static constexpr std::size_t kStop = 1;       ///< size - rank of the lowest rank asking to stop; 0: none
    static constexpr std::size_t kInterrupt = 2;  ///< encode_signal of the highest pending signal; 0: none
    static constexpr std::size_t kHash = 3;       ///< where the rank is (62 bits)
    static constexpr std::size_t kNegHash = 4;    ///< its negation
    static constexpr std::size_t kSize = 5;
    using Array = std::array<std::int64_t, kSize>;
};

/// A rank number as a vote in which the lowest rank wins the maximum (0 stays "none").
[[nodiscard]] constexpr std::int64_t encode_rank(bool voted, int rank, int size) noexcept {
    return voted ? static_cast<std::int64_t>(size) - rank : 0;
}
/// The rank encode_rank() voted for.
[[nodiscard]] constexpr int decode_rank(std::int64_t v, int size) noexcept {
    return size - static_cast<int>(v);
}
/// A pending interrupt (interrupt_signal(): 0, -1 for request_interrupt, or a signal number) as a
/// vote value >= 0.
[[nodiscard]] constexpr std::int64_t encode_signal(int sig) noexcept {
    return sig == 0 ? 0 : sig + 2;
}
/// The interrupt encode_signal() voted for.
[[nodiscard]] constexpr int decode_signal(std::int64_t v) noexcept {
    return v == 0 ? 0 : static_cast<int>(v) - 2;
}

/// The message of a held exception, to send to the other ranks.
[[nodiscard]] inline std::string exception_message(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

/// A string's bytes, to send to other ranks.
[[nodiscard]] inline std::vector<std::byte> to_bytes(std::string_view s) {
    const auto* b = reinterpret_cast<const std::byte*>(s.data());
    return {b, b + s.size()};
}

/// The string other ranks sent as bytes.
[[nodiscard]] inline std::string from_bytes(const std::vector<std::byte>& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// After a vote found rank `failed` failing (the lowest that did): its message goes to every rank,
/// then every rank that failed (`error` set) rethrows its own exception and the others throw
/// RemoteRankError(failed, message). Collective.
[[noreturn]] inline void throw_agreed_failure(Communicator& comm, int failed, const std::exception_ptr& error) {
    std::vector<std::byte> msg;
    if (comm.rank() == failed) msg = to_bytes(exception_message(error));
    comm.broadcast_resize(msg, failed);
    if (error) std::rethrow_exception(error);
    throw RemoteRankError(failed, from_bytes(msg));
}

}  // namespace traincb::inline v0::detail
