// Tests for traincb/distributed.hpp through the in-process ThreadCommunicator (tests/
// thread_communicator.hpp): metrics::all_reduce over uneven shards equals one process over all
// the data (the reference is the same metric class fed every row in one process; its own values
// are checked against independent references in test_metrics.cpp), is bit-identical on every rank,
// and differs from the mean of per-rank results; a metric that cannot be merged fails on every
// rank, never leaving one waiting. Also the ThreadCommunicator's own collectives and time limit,
// and RemoteRankError.
#include "catch.hpp"

#include <Eigen/Core>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <traincb/distributed.hpp>
#include <traincb/metrics.hpp>
#include <vector>

#include "thread_communicator.hpp"

namespace test_distributed {

namespace {

namespace m = traincb::metrics;
using traincb_test::ThreadCommunicator;
using traincb_test::ThreadGroup;

// 1001 rows of a binary problem: labels and scores from SplitMix64 (portable, fixed seed), with
// scores correlated with the label so AUC and F1 are neither 0.5 nor 1.
struct Data {
    Eigen::MatrixXd y, p;
};

Data make_data(int n) {
    Data d{Eigen::MatrixXd(n, 1), Eigen::MatrixXd(n, 1)};
    std::uint64_t s = 12345;
    auto next = [&s] {
        std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
    };
    for (int i = 0; i < n; ++i) {
        const double label = next() < 0.4 ? 1.0 : 0.0;
        d.y(i) = label;
        d.p(i) = std::clamp(0.35 * label + 0.65 * next(), 1e-6, 1 - 1e-6);
    }
    return d;
}

// Rows i with i % size == rank (round robin: 1001 rows over 3 ranks is 334, 334, 333).
Data shard(const Data& all, int rank, int size) {
    std::vector<Eigen::Index> rows;
    for (Eigen::Index i = rank; i < all.y.rows(); i += size) rows.push_back(i);
    Data d{Eigen::MatrixXd(static_cast<Eigen::Index>(rows.size()), 1),
           Eigen::MatrixXd(static_cast<Eigen::Index>(rows.size()), 1)};
    for (std::size_t k = 0; k < rows.size(); ++k) {
        d.y(static_cast<Eigen::Index>(k)) = all.y(rows[k]);
        d.p(static_cast<Eigen::Index>(k)) = all.p(rows[k]);
    }
    return d;
}

// Feeds `d` in batches of 50 rows, as a training loop would.
void feed(m::Metric& metric, const Data& d) {
    for (Eigen::Index b = 0; b < d.y.rows(); b += 50) {
        const Eigen::Index n = std::min<Eigen::Index>(50, d.y.rows() - b);
        metric.update(d.y.middleRows(b, n), d.p.middleRows(b, n));
    }
}

struct Outcome {
    double reference = 0;         // one process over all rows
    std::vector<double> reduced;  // result() after all_reduce, per rank
    std::vector<double> local;    // result() before all_reduce, per rank
};

Outcome reduce_over(int ranks, const std::function<std::unique_ptr<m::Metric>()>& make) {
    const Data all = make_data(1001);
    Outcome o;
    auto ref = make();
    feed(*ref, all);
    o.reference = ref->result();
    o.reduced.assign(static_cast<std::size_t>(ranks), 0);
    o.local.assign(static_cast<std::size_t>(ranks), 0);
    ThreadGroup group(ranks);
    group.run([&](ThreadCommunicator& comm) {
        auto metric = make();
        feed(*metric, shard(all, comm.rank(), comm.size()));
        o.local[static_cast<std::size_t>(comm.rank())] = metric->result();
        m::all_reduce(comm, *metric);
        o.reduced[static_cast<std::size_t>(comm.rank())] = metric->result();
    });
    return o;
}

double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
}

}  // namespace

TEST_CASE("all_reduce of count metrics over uneven shards equals one process exactly", "[distributed]") {
    const std::vector<std::pair<std::string, std::function<std::unique_ptr<m::Metric>()>>> cases = {
        {"accuracy", [] { return std::make_unique<m::BinaryAccuracy>(); }},
        {"f1", [] { return std::make_unique<m::F1Score>(); }},
        {"precision", [] { return std::make_unique<m::Precision>(); }},
        {"auc", [] { return std::make_unique<m::RocAuc>(); }},
    };
    for (const auto& [name, make] : cases) {
        for (int ranks : {1, 2, 3, 4}) {
            INFO(name << " over " << ranks << " ranks");
            const Outcome o = reduce_over(ranks, make);
            for (double r : o.reduced)
                CHECK(std::bit_cast<std::uint64_t>(r) == std::bit_cast<std::uint64_t>(o.reference));
        }
    }
}

TEST_CASE("all_reduce of sum metrics equals one process within 1e-12 and is bit-identical on every rank",
          "[distributed]") {
    const std::vector<std::function<std::unique_ptr<m::Metric>()>> cases = {
        [] { return std::make_unique<m::BinaryCrossentropy>(); },
        [] { return std::make_unique<m::MeanSquaredError>(); },
        [] { return std::make_unique<m::MeanAbsoluteError>(); },
    };
    for (const auto& make : cases) {
        const Outcome o = reduce_over(3, make);
        INFO(make()->name());
        CHECK(std::fabs(o.reduced[0] - o.reference) <= 1e-12 * std::fabs(o.reference));
        for (double r : o.reduced) CHECK(std::bit_cast<std::uint64_t>(r) == std::bit_cast<std::uint64_t>(o.reduced[0]));
    }
}

TEST_CASE("all_reduce is not the mean of per-rank results (what Horovod computes)", "[distributed]") {
    // With 3 uneven shards, the mean of per-rank F1 and AUC misses the global value: the reason
    // the reduction merges sufficient statistics.
    for (auto make : std::vector<std::function<std::unique_ptr<m::Metric>()>>{
             [] { return std::make_unique<m::F1Score>(); }, [] { return std::make_unique<m::RocAuc>(); }}) {
        const Outcome o = reduce_over(3, make);
        INFO(make()->name() << ": mean of per-rank " << mean(o.local) << ", global " << o.reference);
        CHECK(std::fabs(mean(o.local) - o.reference) > 1e-6);
        CHECK(o.reduced[0] == o.reference);
    }
}

TEST_CASE("all_reduce of a metric without saveable state fails on every rank", "[distributed]") {
    // A user-defined metric that does not implement save_state.
    struct Plain final : m::Metric {
        [[nodiscard]] std::string name() const override { return "plain"; }
        [[nodiscard]] traincb::Direction direction() const noexcept override { return traincb::Direction::Max; }
        void update(const Eigen::Ref<const Eigen::MatrixXd>&, const Eigen::Ref<const Eigen::MatrixXd>&) override {}
        void update(const Eigen::Ref<const Eigen::MatrixXf>&, const Eigen::Ref<const Eigen::MatrixXf>&) override {}
        [[nodiscard]] double result() const override { return 0; }
        void reset() override {}
        void merge(const m::Metric&) override {}
        [[nodiscard]] std::unique_ptr<m::Metric> clone() const override { return std::make_unique<Plain>(); }
    };
    std::atomic<int> thrown{0};
    std::mutex mu;
    std::string message;
    ThreadGroup group(3, std::chrono::seconds(20));
    group.run([&](ThreadCommunicator& comm) {
        Plain p;
        try {
            m::all_reduce(comm, p);
        } catch (const traincb::InvalidArgument& e) {
            ++thrown;
            std::lock_guard lock(mu);
            message = e.what();
        }
        comm.barrier();  // the ranks are still in step afterwards
    });
    CHECK(thrown == 3);
    CHECK_THAT(message,
               Catch::Contains("metrics::all_reduce") && Catch::Contains("'plain'") && Catch::Contains("save_state"));
}

TEST_CASE("all_reduce of metrics with different options fails on every rank, naming the rank", "[distributed]") {
    std::atomic<int> thrown{0};
    std::mutex mu;
    std::vector<std::string> messages;
    ThreadGroup group(3, std::chrono::seconds(20));
    group.run([&](ThreadCommunicator& comm) {
        m::ClassScoreOptions o;
        if (comm.rank() == 2) o.threshold = 0.7;
        m::F1Score f1(o);
        f1.update(Eigen::MatrixXd::Ones(2, 1), Eigen::MatrixXd::Constant(2, 1, 0.6));
        try {
            m::all_reduce(comm, f1);
        } catch (const traincb::InvalidArgument& e) {
            ++thrown;
            std::lock_guard lock(mu);
            messages.emplace_back(e.what());
        }
        comm.barrier();
    });
    CHECK(thrown == 3);
    // Each rank names itself and the first rank it cannot merge; every message involves rank 2.
    for (const auto& msg : messages)
        CHECK_THAT(msg, Catch::Contains("rank 2") && Catch::Contains("same metric class and options"));
}

TEST_CASE("ThreadCommunicator collectives", "[distributed]") {
    ThreadGroup group(4);
    group.run([](ThreadCommunicator& comm) {
        const int r = comm.rank();
        CHECK(comm.size() == 4);
        CHECK(comm.any(r == 3));
        CHECK_FALSE(comm.any(false));
        CHECK_FALSE(comm.all(r != 1));
        CHECK(comm.all(true));
        std::vector<double> d{1.0 * r, 0.5};
        comm.sum(d);
        CHECK(d == std::vector<double>{6.0, 2.0});
        std::vector<std::int64_t> i{r, -r};
        comm.sum_int64(i);
        CHECK(i == std::vector<std::int64_t>{6, -6});
        std::vector<std::int64_t> mx{r, -r};
        comm.max_int64(mx);
        CHECK(mx == std::vector<std::int64_t>{3, 0});
        std::vector<std::byte> b(static_cast<std::size_t>(r + 1), std::byte{static_cast<unsigned char>(r)});
        comm.broadcast_resize(b, 2);
        CHECK(b == std::vector<std::byte>(3, std::byte{2}));
        std::vector<std::byte> fixed{std::byte{static_cast<unsigned char>(r)}};
        comm.broadcast(fixed, 1);
        CHECK(fixed[0] == std::byte{1});
        const std::vector<std::byte> mine(static_cast<std::size_t>(r), std::byte{7});
        const auto all = comm.all_gather(mine);
        REQUIRE(all.size() == 4);
        for (std::size_t k = 0; k < 4; ++k) CHECK(all[k].size() == k);
        comm.barrier();
    });
}

TEST_CASE("ThreadGroup never hangs: a rank that fails or never arrives ends the others' waits", "[distributed]") {
    SECTION("a rank that throws before a collective: its exception is the one rethrown") {
        ThreadGroup group(3, std::chrono::seconds(20));
        CHECK_THROWS_WITH(group.run([](ThreadCommunicator& comm) {
            if (comm.rank() == 1) throw std::runtime_error("rank one failed");
            comm.barrier();
        }),
                          "rank one failed");
    }
    SECTION("a rank that returns early: the others time out") {
        ThreadGroup group(2, std::chrono::milliseconds(200));
        CHECK_THROWS_WITH(group.run([](ThreadCommunicator& comm) {
            if (comm.rank() == 0) comm.barrier();
        }),
                          Catch::Contains("timeout"));
    }
}

TEST_CASE("RemoteRankError names the failing rank and carries its message", "[distributed]") {
    const traincb::RemoteRankError e(2, "traincb: CsvSink: cannot write 'h.csv': No space left on device");
    CHECK(e.rank() == 2);
    CHECK(std::string(e.what()) ==
          "traincb: rank 2 failed: traincb: CsvSink: cannot write 'h.csv': No space left on device");
    const traincb::Error& base = e;
    CHECK(std::string(base.what()) == e.what());
}

}  // namespace test_distributed
