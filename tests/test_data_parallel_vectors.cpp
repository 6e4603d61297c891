// The EarlyStopping vectors (tests/spec/early-stopping-vectors.json) over three threads as ranks
// (tests/thread_communicator.hpp), so the replay of tests/mpi/test_mpi_es_vectors.cpp also runs
// in the normal test program and under ASan/UBSan: each vector's monitored values are computed by
// a metric whose rows are dealt unevenly over the ranks and merged with metrics::all_reduce, in a
// hand-written loop whose CallbackList votes over the ranks (tests/es_vector_replay.hpp). The
// expected outcomes are the vectors' own; the expected number of collectives is derived from the
// contract in CallbackList::set_communicator's documentation.
#include "catch.hpp"

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "es_vector_replay.hpp"
#include "thread_communicator.hpp"

namespace test_data_parallel_vectors {

namespace ev = traincb_test::es_vectors;

TEST_CASE("every EarlyStopping vector stops three thread ranks as one process, from metrics reduced over the ranks",
          "[data_parallel]") {
    const auto vectors = ev::load()["vectors"];
    REQUIRE(vectors.size() >= 30);
    constexpr int world = 3;
    for (const auto& v : vectors) {
        const ev::Outcome one = ev::replay_vector(traincb::local_communicator(), v, ev::Source::Direct);
        std::mutex m;
        std::vector<ev::Outcome> got(world);
        std::vector<std::int64_t> collectives(world);
        traincb_test::ThreadGroup group(world);
        group.run([&](traincb_test::ThreadCommunicator& comm) {
            ev::Outcome o = ev::replay_vector(comm, v, ev::Source::Sharded);
            const std::lock_guard<std::mutex> lock(m);
            got[static_cast<std::size_t>(comm.rank())] = std::move(o);
            collectives[static_cast<std::size_t>(comm.rank())] = comm.collectives();
        });
        INFO("vector " << v["name"].get<std::string>());
        for (int r = 0; r < world; ++r) ev::check_outcome(v, got[static_cast<std::size_t>(r)], one, r, world);
        // Collectives per rank, from the contract: one vote at on_train_begin, at each
        // on_train_batch_end and on_epoch_end, and at on_train_end (EarlyStopping overrides neither
        // on_epoch_begin nor on_train_batch_begin, so those do not vote); one broadcast of the stop's
        // source and reason at the vote that first agrees on it; one all_gather per epoch for the
        // metrics; and the replay's final all_gather of the states. A failing on_train_begin: its
        // vote, the failing rank's message broadcast, the final all_gather. A constructor's error:
        // the final all_gather only.
        const ev::Outcome& g = got.front();
        std::int64_t want = 1;
        if (!g.error.empty()) {
            want += g.in_hook ? 2 : 0;
        } else {
            want += 1 + g.epochs_run * (ev::kBatches + 1 + 1) + (g.stopped_by_vote ? 1 : 0) + 1;
        }
        for (int r = 0; r < world; ++r) CHECK(collectives[static_cast<std::size_t>(r)] == want);
    }
}

}  // namespace test_data_parallel_vectors
