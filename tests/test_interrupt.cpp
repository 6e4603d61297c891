// Tests for traincb/interrupt.hpp and the Trainer's graceful interruption: SIGINT/SIGTERM only set
// a flag under a SignalGuard (previous handlers come back after it), a second signal is not
// caught, and a signal raised inside a callback ends fit normally after that batch with
// EndKind::Interrupted and a checkpoint from which the run resumes bit-identically (training
// metrics of the interrupted epoch included).
#include "catch.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>

#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/interrupt.hpp>
#include <traincb/metrics.hpp>
#include <traincb/trainer.hpp>

#include "checkpoint_test_support.hpp"

namespace test_interrupt {

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::History;

namespace {

std::atomic<int> g_custom_calls{0};
void custom_handler(int) {
    g_custom_calls.fetch_add(1);
}

struct sigaction handler_of(int sig) {
    struct sigaction sa {};
    sigaction(sig, nullptr, &sa);
    return sa;
}

// Raises `sig` in on_train_batch_end at global step `at`, and records what the run did.
struct Raiser final : traincb::Callback {
    std::int64_t at = -1;
    int sig = SIGINT;
    std::vector<std::int64_t> steps;
    std::vector<int> epochs_ended;
    int interrupts = 0;
    traincb::TrainEnd end;
    void on_train_batch_end(traincb::Context& c) override {
        steps.push_back(c.global_step());
        if (c.global_step() != at) return;
        std::raise(sig);
    }
    void on_epoch_end(traincb::Context& c) override { epochs_ended.push_back(c.epoch()); }
    void on_interrupt(traincb::Context&) override { ++interrupts; }
    void on_train_end(traincb::Context& c) override { end = c.end(); }
};

// Calls request_interrupt at global step `at`; overrides no on_interrupt (nothing saves).
struct Requester final : traincb::Callback {
    std::int64_t at = -1;
    std::int64_t last_step = 0;
    void on_train_batch_end(traincb::Context& c) override {
        last_step = c.global_step();
        if (c.global_step() == at) traincb::request_interrupt();
    }
};

// Regression targets, or (binary) y > 0 as 0/1 targets for classification metrics.
struct Data {
    Eigen::MatrixXd x, y, xv, yv;
    explicit Data(bool binary = false) {
        make_data(64, x, y);  // 8 batches of 8
        Eigen::MatrixXd all_x, all_y;
        make_data(80, all_x, all_y);
        xv = all_x.bottomRows(16);
        yv = all_y.bottomRows(16);
        if (binary) {
            y = (y.array() > 0).cast<double>().matrix().eval();
            yv = (yv.array() > 0).cast<double>().matrix().eval();
        }
    }
};
const Data& data() {
    static const Data d;
    return d;
}
const Data& binary_data() {
    static const Data d(true);
    return d;
}

// With `with_metrics`: binary targets and training metrics of every kind of saved state.
struct Run {
    Net net{4, 5, 1};
    traincb::ModelCheckpoint mc;
    Raiser raiser;
    History history;
    bool with_metrics = false;
    explicit Run(const fs::path& dir, bool metrics = false)
        : mc({.filepath = dir / "best.safetensors", .save_best_only = true, .save_last = true}),
          with_metrics(metrics) {}
    History& fit(int epochs, fs::path resume = {}, fs::path interrupt_file = {}) {
        namespace m = traincb::metrics;
        traincb::Trainer trainer(net);
        const Data& d = with_metrics ? binary_data() : data();
        std::vector<std::shared_ptr<m::Metric>> metrics;
        if (with_metrics)
            metrics = {std::make_shared<m::BinaryAccuracy>(m::BinaryAccuracyOptions{.name = "accuracy"}),
                       std::make_shared<m::BinaryCrossentropy>(m::BinaryCrossentropyOptions{.from_logits = true}),
                       std::make_shared<m::F1Score>(), std::make_shared<m::RocAuc>()};
        history = trainer.fit(d.x, d.y,
                              {.epochs = epochs,
                               .batch_size = 8,
                               .seed = 4,
                               .validation_data = traincb::ValidationData<double>{d.xv, d.yv},
                               .metrics = std::move(metrics),
                               .resume_from = std::move(resume),
                               .handle_signals = true,
                               .interrupt_checkpoint = std::move(interrupt_file)},
                              mc, raiser);
        return history;
    }
};

}  // namespace

TEST_CASE("interrupt: a SignalGuard turns SIGINT and SIGTERM into a flag and reinstates the previous handlers") {
    traincb::clear_interrupt();
    struct sigaction custom {};
    custom.sa_handler = &custom_handler;
    sigemptyset(&custom.sa_mask);
    struct sigaction old_int {
    }, old_term{};
    REQUIRE(sigaction(SIGINT, &custom, &old_int) == 0);
    REQUIRE(sigaction(SIGTERM, &custom, &old_term) == 0);
    g_custom_calls = 0;
    {
        traincb::SignalGuard guard;
        std::raise(SIGINT);
        CHECK(traincb::interrupt_requested());
        CHECK(traincb::interrupt_signal() == SIGINT);
        CHECK(traincb::interrupt_signal_name(traincb::interrupt_signal()) == "SIGINT");
        traincb::clear_interrupt();
        CHECK(!traincb::interrupt_requested());
        {
            traincb::SignalGuard nested;
            std::raise(SIGTERM);
            CHECK(traincb::interrupt_signal() == SIGTERM);
            traincb::clear_interrupt();
        }
        std::raise(SIGTERM);  // the outer guard is still in force
        CHECK(traincb::interrupt_signal() == SIGTERM);
        traincb::clear_interrupt();
        CHECK(g_custom_calls == 0);
    }
    CHECK(handler_of(SIGINT).sa_handler == &custom_handler);
    CHECK(handler_of(SIGTERM).sa_handler == &custom_handler);
    std::raise(SIGINT);
    CHECK(g_custom_calls == 1);
    CHECK(!traincb::interrupt_requested());
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);

    traincb::request_interrupt();
    CHECK(traincb::interrupt_signal() == -1);
    CHECK(traincb::interrupt_signal_name(-1) == "request_interrupt");
    traincb::clear_interrupt();
}

TEST_CASE("interrupt: a second signal while the first is pending gets the default action (Ctrl-C twice kills)") {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        traincb::SignalGuard guard;
        std::raise(SIGINT);  // graceful: only the flag
        if (!traincb::interrupt_requested()) ::_exit(3);
        std::raise(SIGINT);  // not caught: the process dies of SIGINT
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGINT);
}

TEST_CASE("interrupt: SIGINT in a batch ends fit after that batch with a checkpoint, resuming is bit-identical") {
    TempDir dir("interrupt_mid");
    Run straight(dir / "a");
    const History& hs = straight.fit(5);
    REQUIRE(hs.size() == 5);

    const struct sigaction before = handler_of(SIGINT);
    Run interrupted(dir / "b");
    interrupted.raiser.at = 19;  // epoch 2 (0-based), batch 2: mid-epoch
    const History& hi = interrupted.fit(5, {}, dir / "b/interrupt.safetensors");
    CHECK(hi.end.kind == traincb::EndKind::Interrupted);
    CHECK(hi.end.source == "signal");
    CHECK(hi.end.reason == "SIGINT");
    CHECK(interrupted.raiser.end.kind == traincb::EndKind::Interrupted);  // on_train_end saw it too
    CHECK(interrupted.raiser.steps.back() == 19);                         // that batch finished, no other began
    CHECK(interrupted.raiser.epochs_ended == std::vector<int>{0, 1});     // epoch 2 did not end
    CHECK(interrupted.raiser.interrupts == 1);
    CHECK(hi.size() == 2);
    CHECK(!traincb::interrupt_requested());                     // handled: the flag is cleared
    CHECK(handler_of(SIGINT).sa_handler == before.sa_handler);  // the guard is gone

    // last.safetensors (save_last) and the interrupt_checkpoint hold the interrupted position.
    for (const char* name : {"b/last.safetensors", "b/interrupt.safetensors"}) {
        INFO(name);
        const io::Checkpoint c = io::load_checkpoint(dir / name);
        CHECK(c.position == io::CheckpointPosition{2, false, 3, 19});
        CHECK(same_state(c.model, state_of(interrupted.net)));
    }

    for (const char* from : {"b", "b/interrupt.safetensors"}) {
        INFO(from);
        Run resumed(dir / "c");
        const History& hr = resumed.fit(5, dir / from);
        CHECK(hr.end.kind == traincb::EndKind::Completed);
        CHECK(resumed.raiser.steps.front() == 20);
        CHECK(same_history(hr, hs));
        CHECK(same_state(state_of(resumed.net), state_of(straight.net)));
    }
}

TEST_CASE("interrupt: SIGINT mid-epoch with training metrics: the resumed run's History is bit-identical") {
    TempDir dir("interrupt_mid_metrics");
    Run straight(dir / "a", true);
    const History& hs = straight.fit(4);
    REQUIRE(hs.size() == 4);
    REQUIRE(hs.history.count("accuracy") == 1);

    Run interrupted(dir / "b", true);
    interrupted.raiser.at = 13;  // epoch 1 (0-based), after batch 5 of 8
    const History& hi = interrupted.fit(4, {}, dir / "b/interrupt.safetensors");
    REQUIRE(hi.end.kind == traincb::EndKind::Interrupted);
    for (const char* name : {"b/last.safetensors", "b/interrupt.safetensors"}) {
        INFO(name);
        const io::Checkpoint c = io::load_checkpoint(dir / name);
        CHECK(c.position == io::CheckpointPosition{1, false, 5, 13});
        REQUIRE(c.train_metrics.is_object());
        // 5 batches of 8 samples of epoch 1 so far: the counts behind each state.
        CHECK(c.train_metrics.at("accuracy").at("count") == 40);
        CHECK(c.train_metrics.at("f1_score").at("samples") == 40);
    }
    for (const char* from : {"b", "b/interrupt.safetensors"}) {
        INFO(from);
        Warnings w;
        Run resumed(dir / "c", true);
        const History& hr = resumed.fit(4, dir / from);
        INFO(w.all());
        CHECK(w.messages.empty());  // every metric restored: no "restart" warning
        CHECK(hr.end.kind == traincb::EndKind::Completed);
        CHECK(resumed.raiser.steps.front() == 14);
        CHECK(same_history(hr, hs));
        for (const char* key : {"loss", "accuracy", "binary_crossentropy", "f1_score", "auc"}) {
            INFO(key);
            CHECK(hr.at(key) == hs.at(key));  // epoch 1, the interrupted one, included
        }
        CHECK(same_state(state_of(resumed.net), state_of(straight.net)));
    }
}

TEST_CASE("interrupt: a signal in an epoch's last batch lets the epoch finish, SIGTERM works as SIGINT") {
    TempDir dir("interrupt_last");
    Run run(dir.path);
    run.raiser.at = 16;  // the last batch of epoch 1
    run.raiser.sig = SIGTERM;
    const History& h = run.fit(5);
    CHECK(h.end.kind == traincb::EndKind::Interrupted);
    CHECK(h.end.reason == "SIGTERM");
    CHECK(run.raiser.epochs_ended == std::vector<int>{0, 1});  // validation and on_epoch_end of epoch 1 ran
    CHECK(h.size() == 2);
    const io::Checkpoint c = io::load_checkpoint(dir / "last.safetensors");
    CHECK(c.position == io::CheckpointPosition{1, true, 8, 16});  // an epoch-boundary checkpoint
}

TEST_CASE("interrupt: request_interrupt works without a signal, with nothing to save, fit warns at start") {
    TempDir dir("interrupt_request");
    Net net(4, 5, 1);
    Requester requester;
    requester.at = 3;
    Warnings w;
    traincb::Trainer trainer(net);
    const History h =
        trainer.fit(data().x, data().y, {.epochs = 3, .batch_size = 8, .handle_signals = true}, requester);
    CHECK(w.any_contains("handle_signals is set but nothing saves a checkpoint on interruption"));
    CHECK(h.end.kind == traincb::EndKind::Interrupted);
    CHECK(h.end.reason == "request_interrupt");
    CHECK(requester.last_step == 3);

    // Without handle_signals, a pending request (e.g. from a user's own SignalGuard) still counts.
    Requester r2;
    r2.at = 2;
    const History h2 = trainer.fit(data().x, data().y,
                                   {.epochs = 3, .batch_size = 8, .interrupt_checkpoint = dir / "i.safetensors"}, r2);
    CHECK(h2.end.kind == traincb::EndKind::Interrupted);
    CHECK(io::load_checkpoint(dir / "i.safetensors").position.global_step == 2);
    CHECK(!traincb::interrupt_requested());
}

}  // namespace test_interrupt
