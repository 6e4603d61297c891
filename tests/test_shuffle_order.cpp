// The Trainer's shuffle order (detail::epoch_permutation, order 2: SplitMix64 and Lemire's bounded
// draw) against worked values, and how a resumed run treats a checkpoint written with the first
// order (one without "shuffle_order" in its fit_options): from an epoch boundary it continues in
// the new order with a warning; from the middle of an epoch it refuses, saying what to do.
#include "catch.hpp"

#include <cstdint>
#include <limits>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/trainer.hpp>
#include <vector>

#include "checkpoint_test_support.hpp"

namespace test_shuffle_order {

using namespace ckpt_test;
namespace io = traincb::io;
namespace detail = traincb::detail;

// The expected numbers below come from the published algorithms, computed in Python with
// arbitrary-precision integers (so no 64-bit arithmetic of this library is involved):
//
//   M = 2**64 - 1
//   def mix(z):
//       z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
//       z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
//       return z ^ (z >> 31)
//   def perm(seed, epoch, n):
//       state = mix((mix(seed) + epoch) & M)
//       def rng():
//           nonlocal state
//           state = (state + 0x9E3779B97F4A7C15) & M
//           return mix(state)
//       idx = list(range(n))
//       for i in range(n, 1, -1):
//           while True:
//               p = rng() * i
//               if (p & M) >= 2**64 % i: break
//           j = p >> 64
//           idx[i - 1], idx[j] = idx[j], idx[i - 1]
//       return idx

TEST_CASE("shuffle order: SplitMix64 gives the reference generator's numbers") {
    // splitmix64.c (prng.di.unimi.it) seeded with 1234567: its first five outputs.
    detail::SplitMix64 g{1234567};
    CHECK(g() == 6457827717110365317ULL);
    CHECK(g() == 3203168211198807973ULL);
    CHECK(g() == 9817491932198370423ULL);
    CHECK(g() == 4593380528125082431ULL);
    CHECK(g() == 16408922859458223821ULL);
}

TEST_CASE("shuffle order: the 64x64 -> 128-bit product, native and portable") {
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    struct Case {
        std::uint64_t a, b, hi, lo;
    };
    // (2^64 - 1)^2 = 2^128 - 2^65 + 1; 2^32 * 2^32 = 2^64; (2^63 + 1) * 3 = 2^64 + 2^63 + 3.
    const Case cases[] = {{max, max, max - 1, 1},
                          {1ULL << 32, 1ULL << 32, 1, 0},
                          {(1ULL << 63) + 1, 3, 1, (1ULL << 63) + 3},
                          {0, max, 0, 0},
                          {123456789, 987654321, 0, 121932631112635269ULL}};
    for (const Case& c : cases) {
        std::uint64_t lo = 0, lo_p = 0;
        CHECK(detail::mul_64x64(c.a, c.b, lo) == c.hi);
        CHECK(lo == c.lo);
        CHECK(detail::mul_64x64_portable(c.a, c.b, lo_p) == c.hi);
        CHECK(lo_p == c.lo);
    }
}

TEST_CASE("shuffle order: the bounded draw takes the high word and rejects the biased low words") {
    // A generator replaying fixed words.
    struct Replay {
        std::vector<std::uint64_t> words;
        std::size_t next = 0;
        std::uint64_t operator()() { return words.at(next++); }
    };
    // bound 3: 2^64 mod 3 = 1, so a product whose low word is 0 (the word 0) is rejected; the
    // word 2^63 gives 3 * 2^63 = 2^64 + 2^63: high word 1, low word 2^63, accepted.
    Replay r{{0, 1ULL << 63}};
    CHECK(detail::bounded_random(r, 3) == 1);
    CHECK(r.next == 2);
    // bound 4 divides 2^64: nothing is rejected; the high word is the top two bits of the word.
    Replay q{{0, 0xC000000000000000ULL}};
    CHECK(detail::bounded_random(q, 4) == 0);
    CHECK(detail::bounded_random(q, 4) == 3);
    CHECK(q.next == 2);
}

TEST_CASE("shuffle order: epoch_permutation gives the worked permutations") {
    const auto perm = [](std::uint64_t seed, int epoch, std::size_t n) {
        std::vector<Eigen::Index> idx(n);
        detail::epoch_permutation(idx, seed, epoch);
        return idx;
    };
    // perm(3, 0, 10), perm(7, 5, 12) and perm(2**64 - 1, 2**31 - 1, 7) of the Python above.
    CHECK(perm(3, 0, 10) == std::vector<Eigen::Index>{5, 0, 4, 7, 6, 3, 9, 2, 8, 1});
    CHECK(perm(7, 5, 12) == std::vector<Eigen::Index>{10, 6, 4, 9, 1, 8, 11, 7, 5, 0, 3, 2});
    CHECK(perm(std::numeric_limits<std::uint64_t>::max(), std::numeric_limits<int>::max(), 7) ==
          std::vector<Eigen::Index>{5, 6, 0, 1, 2, 4, 3});
    CHECK(perm(3, 0, 1) == std::vector<Eigen::Index>{0});
    CHECK(perm(3, 0, 0).empty());
}

namespace {

using traincb::ModelCheckpoint;

// The newest full checkpoint in `dir`.
fs::path latest(const fs::path& dir) {
    const auto p = io::find_latest_checkpoint(dir);
    REQUIRE(p.has_value());
    return *p;
}

// Fits a fresh Net on the resume data (batches of 8, 8 per epoch) with a ModelCheckpoint saving a
// full checkpoint every `save_freq` global steps (0: at each epoch end) into `dir`.
struct OrderRun {
    Net net{4, 6, 1};
    traincb::History history;
    OrderRun(const fs::path& dir, int epochs, bool shuffle, std::int64_t save_freq, const fs::path& resume = {}) {
        ModelCheckpoint ckpt(
            {.filepath = dir / (save_freq > 0 ? "b{epoch}-{batch}.safetensors" : "e{epoch}.safetensors"),
             .save_freq = save_freq});
        traincb::Trainer trainer(net);
        history = trainer.fit(resume_data().x, resume_data().y,
                              {.epochs = epochs,
                               .batch_size = 8,
                               .shuffle = shuffle,
                               .seed = 11,
                               .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
                               .resume_from = resume},
                              ckpt);
    }
};
// A copy of the checkpoint at `from` as the first shuffle order wrote it: no "shuffle_order".
fs::path as_order_1(const fs::path& from, const fs::path& to) {
    io::Checkpoint c = io::load_checkpoint(from);
    REQUIRE(c.fit_options.at("shuffle_order") == detail::kShuffleOrder);
    c.fit_options.erase("shuffle_order");
    io::save_checkpoint(to, c);
    return to;
}

}  // namespace

TEST_CASE("shuffle order: an epoch-boundary checkpoint of the first order resumes in the new order, warning") {
    TempDir tmp("order_boundary");
    { OrderRun first(tmp / "a", 2, true, 0); }
    const fs::path current = latest(tmp / "a");
    REQUIRE(io::load_checkpoint(current).position == io::CheckpointPosition{1, true, 8, 16});  // end of epoch 2
    const fs::path old = as_order_1(current, tmp / "old.safetensors");
    Warnings w_current;
    OrderRun from_current(tmp / "b", 5, true, 0, current);
    CHECK_FALSE(w_current.any_contains("another order"));
    Warnings w_old;
    OrderRun from_old(tmp / "c", 5, true, 0, old);
    INFO(w_old.all());
    CHECK(w_old.any_contains("resuming from '" + old.string() + "': it was written by a traincb"));
    CHECK(w_old.any_contains(
        "that shuffles the rows in another order (shuffle order 1 (no 'shuffle_order' recorded), this traincb's is "
        "2); the next epochs are shuffled in this traincb's order"));
    // Epochs 2..4 ran in the new order: the same run as from the checkpoint that records it.
    CHECK(from_old.history.size() == 5);
    CHECK(same_history(from_old.history, from_current.history));
    CHECK(same_state(state_of(from_old.net), state_of(from_current.net)));
}

TEST_CASE("shuffle order: a mid-epoch checkpoint of the first order is refused, saying what to do") {
    TempDir tmp("order_mid");
    Warnings quiet;  // 'epochs' changed since the checkpoint
    { OrderRun first(tmp / "a", 2, true, 3); }
    const fs::path current = latest(tmp / "a");
    // Global step 15: the second epoch after its 7th batch.
    REQUIRE(io::load_checkpoint(current).position == io::CheckpointPosition{1, false, 7, 15});
    const fs::path old = as_order_1(current, tmp / "old.safetensors");
    Net net(4, 6, 1);
    const traincb::FitOptions<double> o{
        .epochs = 3,
        .batch_size = 8,
        .seed = 11,
        .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
        .resume_from = old};
    traincb::Trainer trainer(net);
    CHECK_THROWS_AS(trainer.fit(resume_data().x, resume_data().y, o), traincb::InvalidArgument);
    CHECK_THROWS_WITH(
        trainer.fit(resume_data().x, resume_data().y, o),
        Catch::StartsWith("traincb: Trainer::fit: resuming from '" + old.string() +
                          "': it was taken in the middle of epoch 2 by a traincb (" + traincb::version_string +
                          ") that shuffles the rows in another order (shuffle order 1 (no 'shuffle_order' "
                          "recorded), this traincb's is 2), so the rest of that epoch's batches cannot be "
                          "determined; resume from an epoch-boundary checkpoint (one saved at an epoch end), or "
                          "finish the run with the traincb version that wrote it"));
    // The same checkpoint with its order recorded resumes.
    OrderRun resumed(tmp / "b", 3, true, 3, current);
    CHECK(resumed.history.size() == 3);
}

TEST_CASE("shuffle order: a mid-epoch checkpoint of the first order of an unshuffled run resumes exactly") {
    // Without shuffling the order is 0..n-1 in every version: nothing to refuse or warn about.
    TempDir tmp("order_unshuffled");
    OrderRun straight(tmp / "s", 3, false, 3);
    { OrderRun first(tmp / "a", 2, false, 3); }
    const fs::path mid = latest(tmp / "a");
    REQUIRE(!io::load_checkpoint(mid).position.epoch_completed);
    const fs::path old = as_order_1(mid, tmp / "old.safetensors");
    Warnings w;
    OrderRun resumed(tmp / "b", 3, false, 3, old);
    INFO(w.all());
    CHECK_FALSE(w.any_contains("another order"));
    CHECK(same_history(resumed.history, straight.history));
    CHECK(same_state(state_of(resumed.net), state_of(straight.net)));
}

}  // namespace test_shuffle_order
