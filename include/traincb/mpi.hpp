#pragma once
/// @file mpi.hpp
/// traincb over MPI: the only traincb header that includes <mpi.h> (the umbrella header does
/// not include it, and the core keeps no MPI symbol). Link the CMake target traincb::mpi.
///
///     int main(int argc, char** argv) {
///         traincb::MpiSession session(argc, argv);  // MPI_Init ... MPI_Finalize, or MPI_Abort
///         traincb::MpiCommunicator comm;            // a private duplicate of MPI_COMM_WORLD
///         ...
///     }
///
/// See docs/distributed.md.

// The C API only: Open MPI's and MPICH's deprecated C++ bindings would need another library.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "traincb/communicator.hpp"
#include "traincb/distributed.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

namespace detail {
/// Throws LogicError naming the MPI call when it did not return MPI_SUCCESS (Open MPI's default
/// error handler aborts the job first; this covers communicators set to MPI_ERRORS_RETURN).
inline void mpi_check(int rc, const char* call) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw LogicError(
        detail::cat("traincb: MpiCommunicator: ", call, " failed: ", std::string(text, static_cast<std::size_t>(len))));
}

/// An element count as MPI's int. @throws InvalidArgument beyond INT_MAX.
[[nodiscard]] inline int mpi_count(std::size_t n, const char* what) {
    if (n > static_cast<std::size_t>(INT_MAX))
        throw InvalidArgument(detail::cat("traincb: MpiCommunicator: ", what, " of ", std::to_string(n),
                                          " elements exceeds MPI's int count; split it"));
    return static_cast<int>(n);
}
}  // namespace detail

/// MPI for the lifetime of a scope: initialises MPI (MPI_THREAD_FUNNELED) unless it already is,
/// and at scope end finalises it (only if this session initialised it), or, when the scope is left
/// by an exception, calls MPI_Abort instead: finalising while other ranks wait in a collective
/// hangs them (measured with Open MPI 4.1), aborting ends the job within seconds.
class MpiSession {
public:
    /// @throws LogicError when MPI cannot be initialised
    MpiSession(int& argc, char**& argv) : uncaught_(std::uncaught_exceptions()) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (initialized) return;
        int provided = 0;
        detail::mpi_check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        owns_ = true;
    }
    /// Initialises MPI without command-line arguments.
    MpiSession() : uncaught_(std::uncaught_exceptions()) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (initialized) return;
        int provided = 0;
        detail::mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        owns_ = true;
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
    /// MPI_Finalize on a normal exit (when this session initialised MPI); MPI_Abort(MPI_COMM_WORLD, 1)
    /// when destroyed by an exception in flight.
    ~MpiSession() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized) return;
        if (std::uncaught_exceptions() > uncaught_) {
            MPI_Abort(MPI_COMM_WORLD, 1);
            return;
        }
        if (owns_) MPI_Finalize();
    }
    /// This process's rank in MPI_COMM_WORLD.
    [[nodiscard]] static int world_rank() {
        int r = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
        return r;
    }
    /// The number of processes in MPI_COMM_WORLD.
    [[nodiscard]] static int world_size() {
        int s = 1;
        MPI_Comm_size(MPI_COMM_WORLD, &s);
        return s;
    }
    /// Ends every rank now (MPI_Abort on MPI_COMM_WORLD) with `code`.
    [[noreturn]] static void abort(int code) {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::terminate();  // not reached
    }

private:
    int uncaught_ = 0;
    bool owns_ = false;
};

/// A traincb::Communicator over MPI. It works on its own duplicate of the communicator it is given
/// (MPI_Comm_dup), so traincb's collectives can never pair with the user's gradient allreduces on
/// the original. Construct it after MpiSession and destroy it before (declare it after).
class MpiCommunicator final : public Communicator {
public:
    /// Duplicates `comm` (default MPI_COMM_WORLD). @throws LogicError when MPI is not initialised
    explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (!initialized)
            throw LogicError(
                "traincb: MpiCommunicator: MPI is not initialised; create a traincb::MpiSession (or call MPI_Init) "
                "first");
        detail::mpi_check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
    }
    /// Frees the duplicate (unless MPI was already finalised).
    ~MpiCommunicator() override {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Comm_free(&comm_);
    }
    /// The duplicate communicator traincb uses.
    [[nodiscard]] MPI_Comm native() const noexcept { return comm_; }

    /// This process's rank in the communicator.
    [[nodiscard]] int rank() const noexcept override { return rank_; }
    /// Number of processes in the communicator.
    [[nodiscard]] int size() const noexcept override { return size_; }
    /// True on every rank when `local` is true on any rank (MPI_LOR).
    [[nodiscard]] bool any(bool local) override {
        int v = local ? 1 : 0;
        detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LOR, comm_), "MPI_Allreduce");
        return v != 0;
    }
    /// True on every rank when `local` is true on every rank (MPI_LAND).
    [[nodiscard]] bool all(bool local) override {
        int v = local ? 1 : 0;
        detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LAND, comm_), "MPI_Allreduce");
        return v != 0;
    }
    /// Element-wise MPI_SUM of doubles, in place.
    void sum(std::span<double> values) override {
        detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, values.data(), detail::mpi_count(values.size(), "sum"),
                                        MPI_DOUBLE, MPI_SUM, comm_),
                          "MPI_Allreduce");
    }
    /// Element-wise MPI_SUM of 64-bit integers, in place.
    void sum_int64(std::span<std::int64_t> values) override {
        detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, values.data(), detail::mpi_count(values.size(), "sum_int64"),
                                        MPI_INT64_T, MPI_SUM, comm_),
                          "MPI_Allreduce");
    }
    /// Element-wise MPI_MAX of 64-bit integers, in place.
    void max_int64(std::span<std::int64_t> values) override {
        detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, values.data(), detail::mpi_count(values.size(), "max_int64"),
                                        MPI_INT64_T, MPI_MAX, comm_),
                          "MPI_Allreduce");
    }
    /// MPI_Bcast of `bytes` (the same size on every rank) from `root`.
    void broadcast(std::span<std::byte> bytes, int root) override {
        detail::mpi_check(MPI_Bcast(bytes.data(), detail::mpi_count(bytes.size(), "broadcast"), MPI_BYTE, root, comm_),
                          "MPI_Bcast");
    }
    /// The size, then the bytes, from `root`; receivers are resized.
    void broadcast_resize(std::vector<std::byte>& bytes, int root) override {
        std::uint64_t n = bytes.size();
        detail::mpi_check(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm_), "MPI_Bcast");
        bytes.resize(static_cast<std::size_t>(n));
        broadcast(bytes, root);
    }
    /// MPI_Allgather of the sizes, then MPI_Allgatherv of the bytes.
    [[nodiscard]] std::vector<std::vector<std::byte>> all_gather(std::span<const std::byte> mine) override {
        const int count = detail::mpi_count(mine.size(), "all_gather");
        std::vector<int> counts(static_cast<std::size_t>(size_));
        detail::mpi_check(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_), "MPI_Allgather");
        std::vector<int> displs(counts.size());
        std::size_t total = 0;
        for (std::size_t r = 0; r < counts.size(); ++r) {
            displs[r] = detail::mpi_count(total, "all_gather");
            total += static_cast<std::size_t>(counts[r]);
        }
        (void)detail::mpi_count(total, "all_gather");
        std::vector<std::byte> flat(total);
        detail::mpi_check(
            MPI_Allgatherv(mine.data(), count, MPI_BYTE, flat.data(), counts.data(), displs.data(), MPI_BYTE, comm_),
            "MPI_Allgatherv");
        std::vector<std::vector<std::byte>> out(counts.size());
        for (std::size_t r = 0; r < counts.size(); ++r)
            out[r].assign(flat.begin() + displs[r], flat.begin() + displs[r] + counts[r]);
        return out;
    }
    /// MPI_Barrier.
    void barrier() override { detail::mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }

private:
    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0;
    int size_ = 1;
};

}  // namespace traincb::inline v0
