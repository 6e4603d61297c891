// The EarlyStopping vectors (tests/spec/early-stopping-vectors.json) over Open MPI ranks (run by
// ctest under mpirun at np 1 to 4; see tests/mpi.cmake): each vector's monitored values are
// computed by a metric whose rows are dealt unevenly over the ranks and merged with
// metrics::all_reduce, in a hand-written loop whose CallbackList votes over MpiCommunicator (see
// tests/es_vector_replay.hpp for the split and why the merged value is exactly the vector's). The
// expected outcomes are the vectors' own (independent of this code); every rank must reach them,
// and end with an EarlyStopping state byte-identical to rank 0's and to one process's replay of
// the plain values. Every rank runs every vector; assertions are CHECKs only, so no rank skips a
// collective.
#include <string>
#include <traincb/mpi.hpp>

#include "catch.hpp"
#include "es_vector_replay.hpp"

namespace ev = traincb_test::es_vectors;

TEST_CASE("every EarlyStopping vector stops every rank as one process, from metrics reduced over the ranks") {
    traincb::MpiCommunicator comm;
    // Every rank reads the same file: a failure is every rank's, so they skip the loop together.
    nlohmann::json vectors;
    std::string load_error;
    try {
        vectors = ev::load()["vectors"];
    } catch (const std::exception& e) {
        load_error = e.what();
    }
    CHECK(load_error == "");
    CHECK(vectors.size() >= 30);
    int replayed = 0;
    for (const auto& v : vectors) {
        const ev::Outcome one = ev::replay_vector(traincb::local_communicator(), v, ev::Source::Direct);
        const ev::Outcome got = ev::replay_vector(comm, v, ev::Source::Sharded);
        ev::check_outcome(v, got, one, comm.rank(), comm.size());
        ++replayed;
    }
    // Every rank replayed every vector (a rank that fell out of step would have thrown).
    std::vector<std::int64_t> counts{replayed, -replayed};
    comm.max_int64(counts);
    CHECK(counts[0] == -counts[1]);
    CHECK(counts[0] == static_cast<std::int64_t>(vectors.size()));
}
