// Tests of traincb/mpi.hpp with real MPI processes (run by ctest under mpirun at np 1 to 4; see
// tests/mpi.cmake). Every rank runs every case; assertions are CHECKs, never a rank-local REQUIRE
// before a collective (that would skip the collective and pair the others with the next one).
#include <mpi.h>

#include <Eigen/Core>
#include <bit>
#include <cstdint>
#include <traincb/metrics.hpp>
#include <traincb/mpi.hpp>
#include <vector>

#include "catch.hpp"

namespace m = traincb::metrics;

TEST_CASE("MpiCommunicator works on its own duplicate of the communicator") {
    traincb::MpiCommunicator comm;
    int cmp = MPI_UNEQUAL;
    MPI_Comm_compare(comm.native(), MPI_COMM_WORLD, &cmp);
    CHECK(cmp == MPI_CONGRUENT);  // same group, different context: never MPI_IDENT
    CHECK(comm.size() == traincb::MpiSession::world_size());
    CHECK(comm.rank() == traincb::MpiSession::world_rank());
}

TEST_CASE("MpiCommunicator collectives") {
    traincb::MpiCommunicator comm;
    const int r = comm.rank();
    const int n = comm.size();
    CHECK(comm.any(r == n - 1));
    CHECK_FALSE(comm.any(false));
    CHECK(comm.all(true));
    CHECK(comm.all(r != 0) == (n == 0));
    std::vector<double> d{1.0 * r, 0.5};
    comm.sum(d);
    CHECK(d[0] == n * (n - 1) / 2.0);
    CHECK(d[1] == 0.5 * n);
    std::vector<std::int64_t> i{r, -r};
    comm.sum_int64(i);
    CHECK(i[0] == n * (n - 1) / 2);
    std::vector<std::int64_t> mx{r, -r};
    comm.max_int64(mx);
    CHECK(mx == std::vector<std::int64_t>{n - 1, 0});
    std::vector<std::byte> b(static_cast<std::size_t>(r + 1), std::byte{static_cast<unsigned char>(r)});
    comm.broadcast_resize(b, n - 1);
    CHECK(b == std::vector<std::byte>(static_cast<std::size_t>(n), std::byte{static_cast<unsigned char>(n - 1)}));
    const std::vector<std::byte> mine(static_cast<std::size_t>(r), std::byte{7});
    const auto all = comm.all_gather(mine);
    CHECK(all.size() == static_cast<std::size_t>(n));
    for (std::size_t k = 0; k < all.size(); ++k) CHECK(all[k] == std::vector<std::byte>(k, std::byte{7}));
    comm.barrier();
}

TEST_CASE("traincb's collectives never pair with the user's on the original communicator") {
    // A user's gradient allreduce is in flight on MPI_COMM_WORLD (nonblocking) while traincb votes,
    // and rank 0 posts the two in the other order. On one shared communicator, collectives pair by
    // order, so rank 0's vote would meet the others' gradient sum and both results would be
    // wrong; on traincb's duplicate each pairs with its own.
    traincb::MpiCommunicator comm;
    double user = 1.0;
    bool voted = false;
    MPI_Request req = MPI_REQUEST_NULL;
    if (comm.rank() == 0) {
        voted = comm.any(true);
        MPI_Iallreduce(MPI_IN_PLACE, &user, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req);
    } else {
        MPI_Iallreduce(MPI_IN_PLACE, &user, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req);
        voted = comm.any(false);
    }
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    CHECK(voted);
    CHECK(user == static_cast<double>(comm.size()));
}

TEST_CASE("metrics::all_reduce over MPI equals one process over all rows") {
    traincb::MpiCommunicator comm;
    // 1001 rows dealt round robin (uneven shards at np 2, 3 and 4); every rank also computes the
    // one-process reference over all rows.
    const int rows = 1001;
    Eigen::MatrixXd y(rows, 1), p(rows, 1);
    for (int i = 0; i < rows; ++i) {
        y(i) = (i * 7919) % 5 < 2 ? 1.0 : 0.0;
        p(i) = 0.05 + 0.9 * (((i * 104729) % 1000) / 1000.0) * (y(i) > 0 ? 0.8 : 1.0) + (y(i) > 0 ? 0.15 : 0.0);
    }
    std::vector<int> mine;
    for (int i = comm.rank(); i < rows; i += comm.size()) mine.push_back(i);
    Eigen::MatrixXd ys(static_cast<Eigen::Index>(mine.size()), 1), ps(static_cast<Eigen::Index>(mine.size()), 1);
    for (std::size_t k = 0; k < mine.size(); ++k) {
        ys(static_cast<Eigen::Index>(k)) = y(mine[k]);
        ps(static_cast<Eigen::Index>(k)) = p(mine[k]);
    }
    auto check = [&](m::Metric&& local, m::Metric&& whole, bool exact) {
        local.update(ys, ps);
        whole.update(y, p);
        m::all_reduce(comm, local);
        INFO(local.name() << " at np " << comm.size() << ": " << local.result() << " vs " << whole.result());
        if (exact)
            CHECK(std::bit_cast<std::uint64_t>(local.result()) == std::bit_cast<std::uint64_t>(whole.result()));
        else
            CHECK(std::abs(local.result() - whole.result()) <= 1e-12 * std::abs(whole.result()));
        // Bit-identical on every rank: the minimum and maximum of the bits agree.
        std::vector<std::int64_t> bits{std::bit_cast<std::int64_t>(local.result()),
                                       -std::bit_cast<std::int64_t>(local.result())};
        comm.max_int64(bits);
        CHECK(bits[0] == -bits[1]);
    };
    check(m::BinaryAccuracy(), m::BinaryAccuracy(), true);
    check(m::F1Score(), m::F1Score(), true);
    check(m::RocAuc(), m::RocAuc(), true);
    check(m::BinaryCrossentropy(), m::BinaryCrossentropy(), false);
}
