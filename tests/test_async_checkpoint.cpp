// Tests for ModelCheckpoint's background saves (async_save, detail/async_checkpoint.hpp) and its
// time-triggered saves (train_time_interval): an async run writes the same bytes as a synchronous
// one; a failed background write raises IoError at a later hook on the training thread, naming
// the file and the OS error, or is a warning when training already ends with another exception;
// fit returns only once the last save is on disk; at most one save is in flight; the states are
// captured on the training thread; a run resumes bit-identically from async checkpoints; and the
// time interval saves at the batches a fake clock says, with its options validated.
#include "catch.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/trainer.hpp>

#include "checkpoint_test_support.hpp"

namespace test_async_checkpoint {

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::History;
using traincb::Logs;
using traincb::ModelCheckpoint;
using traincb::ModelCheckpointOptions;

namespace {

// Every file of `dir`, by name, with its bytes.
std::map<std::string, std::string> files_in(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = read_bytes(e.path());
    return out;
}

std::set<std::string> names_of(const std::map<std::string, std::string>& files) {
    std::set<std::string> out;
    for (const auto& kv : files) out.insert(kv.first);
    return out;
}

// A clock that a callback advances before each training batch by 0.5, 0.75, 0.25, 0.5, ... s.
struct FakeClock final : traincb::Callback {
    double now = 0.0;
    int batches = 0;
    int reads = 0;
    void on_train_batch_begin(traincb::Context&) override {
        static constexpr double kSteps[] = {0.5, 0.75, 0.25};
        now += kSteps[batches++ % 3];
    }
    std::function<double()> clock() {
        return [this] {
            ++reads;
            return now;
        };
    }
};

// A whole run with fixed seeds: EarlyStopping (its best weights are tensors in the checkpoint) and
// the ModelCheckpoint made by `options(dir)`, trained on 64 rows in batches of 8.
struct Run {
    Net net{4, 6, 1};
    traincb::EarlyStopping es{{.monitor = "val_loss", .patience = 3, .restore_best_weights = true}};
    FakeClock clock;
    std::optional<ModelCheckpoint> mc;
    Crash crash;
    History history;
    History fit(const ModelCheckpointOptions& o, int epochs, const fs::path& resume = {}) {
        ModelCheckpointOptions opt = o;
        if (opt.train_time_interval.count() > 0) opt.now_seconds = clock.clock();
        mc.emplace(opt);
        traincb::Trainer trainer(net);
        history = trainer.fit(resume_data().x, resume_data().y,
                              {.epochs = epochs,
                               .batch_size = 8,
                               .seed = 11,
                               .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
                               .resume_from = resume},
                              crash, clock, es, *mc);
        return history;
    }
};

// Runs `o` synchronously, then with async_save, in the same directory (ModelCheckpoint's state
// records the paths of its files, so the directory must be the same for the bytes to be), and
// checks that both leave the same files with the same bytes and the same ModelCheckpoint state.
void require_same_files(const fs::path& dir, ModelCheckpointOptions o, int epochs = 6) {
    o.async_save = false;
    Run sync;
    (void)sync.fit(o, epochs);
    const auto sync_files = files_in(dir);
    REQUIRE(sync_files.size() >= 2);
    fs::remove_all(dir);
    o.async_save = true;
    Run async;
    (void)async.fit(o, epochs);
    const auto async_files = files_in(dir);
    fs::remove_all(dir);
    CHECK(names_of(async_files) == names_of(sync_files));
    for (const auto& [name, bytes] : sync_files) {
        INFO(name);
        const auto it = async_files.find(name);
        REQUIRE(it != async_files.end());
        CHECK(it->second == bytes);
    }
    CHECK(async.mc->kept() == sync.mc->kept());
    CHECK(async.mc->best_score() == sync.mc->best_score());
    CHECK(async.mc->best_model_path() == sync.mc->best_model_path());
    CHECK(same_history(async.history, sync.history));
    CHECK(same_state(state_of(async.net), state_of(sync.net)));
}

// The FileOps seam with a gate: while armed, the first write of the file `match` (a name part)
// blocks until open() is called, and then fails with `err` when `err` != 0. Every open of a
// temporary file is recorded with the thread that made it.
struct Gate {
    static inline std::mutex m;
    static inline std::condition_variable cv;
    static inline bool is_open = true;
    static inline bool used = false;
    static inline int err = 0;
    static inline std::string match;
    static inline std::vector<std::thread::id> writer_threads;
    static void arm(std::string file, int fail_with) {
        const std::lock_guard lock(m);
        is_open = false;
        used = false;
        err = fail_with;
        match = std::move(file);
    }
    static void open() {
        {
            const std::lock_guard lock(m);
            is_open = true;
        }
        cv.notify_all();
    }
    static traincb::detail::FileOps ops() {
        traincb::detail::FileOps f = traincb::detail::system_file_ops();
        f.open = [](const char* p, int flags, mode_t mode) -> int {
            const int fd = ::open(p, flags, mode);
            const std::lock_guard lock(m);
            if (fd >= 0 && std::string_view(p).find(".tmp.") != std::string_view::npos) {
                writer_threads.push_back(std::this_thread::get_id());
                if (!match.empty() && std::string_view(p).find(match) != std::string_view::npos) gated_fds.insert(fd);
            }
            return fd;
        };
        f.write = [](int fd, const void* b, std::size_t n) -> ssize_t {
            std::unique_lock lock(m);
            if (gated_fds.count(fd) != 0 && !used) {
                used = true;
                cv.wait(lock, [] { return is_open; });
                if (err != 0) {
                    errno = err;
                    return -1;
                }
            }
            lock.unlock();
            return ::write(fd, b, n);
        };
        f.close = [](int fd) -> int {
            {
                const std::lock_guard lock(m);
                gated_fds.erase(fd);
            }
            return ::close(fd);
        };
        return f;
    }
    static inline std::set<int> gated_fds;
};
struct GateGuard {
    traincb::detail::ScopedFileOps ops{Gate::ops()};
    GateGuard() {
        const std::lock_guard lock(Gate::m);
        Gate::is_open = true;
        Gate::used = false;
        Gate::err = 0;
        Gate::match.clear();
        Gate::gated_fds.clear();
        Gate::writer_threads.clear();
    }
    GateGuard(const GateGuard&) = delete;
    GateGuard& operator=(const GateGuard&) = delete;
    ~GateGuard() { Gate::open(); }
};

// A callback whose state records which thread captured it and whether the gate was open then.
struct Spy final : traincb::Callback {
    struct Capture {
        std::thread::id thread;
        bool gate_open;
    };
    mutable std::mutex m;
    mutable std::vector<Capture> captures;
    [[nodiscard]] std::string state_key() const override { return "Spy"; }
    void save_state(traincb::CallbackState& s) const override {
        bool open = false;
        {
            const std::lock_guard lock(Gate::m);
            open = Gate::is_open;
        }
        const std::lock_guard lock(m);
        captures.push_back({std::this_thread::get_id(), open});
        s.json = {{"captures", captures.size()}};
    }
    [[nodiscard]] std::size_t count() const {
        const std::lock_guard lock(m);
        return captures.size();
    }
};

}  // namespace

TEST_CASE("async_save: the files are byte-identical to synchronous saves (top-k, last, weights, batch saves)") {
    TempDir tmp("async_same");
    SECTION("per-epoch full files, top 2 by val_loss, with last.safetensors") {
        require_same_files(
            tmp / "ck",
            {.filepath = tmp / "ck/e{epoch:02d}-{val_loss:.5f}.safetensors", .save_top_k = 2, .save_last = true});
    }
    SECTION("best-only weights files, with a full last.safetensors") {
        require_same_files(tmp / "ck", {.filepath = tmp / "ck/best.safetensors",
                                        .save_best_only = true,
                                        .save_weights_only = true,
                                        .save_last = true});
    }
    SECTION("batch saves every 3 global steps, mid-epoch state included") {
        require_same_files(tmp / "ck", {.filepath = tmp / "ck/b{epoch}-{batch}.safetensors", .save_freq = 3});
    }
    SECTION("time-triggered saves with a fake clock, top 2 by the training loss") {
        require_same_files(tmp / "ck", {.filepath = tmp / "ck/t{epoch}-{batch}.safetensors",
                                        .monitor = "loss",
                                        .save_top_k = 2,
                                        .save_last = true,
                                        .train_time_interval = std::chrono::duration<double>(1.0)});
    }
}

TEST_CASE("async_save: a failed background write raises IoError at the next hook, naming the file and the OS error") {
    TempDir dir("async_fail");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "best.safetensors", .save_best_only = true, .async_save = true});
    d.list.add(mc);
    d.begin();
    d.epoch(0, Logs{{"loss", 1.0}, {"val_loss", 0.5}});
    mc.wait_until_finished();
    const std::string before = read_bytes(dir / "best.safetensors");
    {
        GateGuard gate;
        Gate::arm("best.safetensors", ENOSPC);
        // The save of epoch 2 is handed over; the hook returns before the write fails.
        CHECK_NOTHROW(d.epoch(1, Logs{{"loss", 1.0}, {"val_loss", 0.4}}));
        CHECK(mc.best_score() == 0.4);  // decided, as a synchronous save decides before writing
        Gate::open();
        while (mc.saving()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        // The next hook of ModelCheckpoint (the first batch end of epoch 3) raises it.
        const std::string error = traincb_test::error_of([&] { d.epoch(2, Logs{{"loss", 1.0}, {"val_loss", 0.3}}); });
        CHECK(traincb_test::contains(error, "traincb: ModelCheckpoint: background save of epoch 2: cannot write '" +
                                                (dir / "best.safetensors").string() + "': No space left on device"));
    }
    // As after a failed synchronous save: the old file is intact, best and kept are rolled back.
    CHECK(read_bytes(dir / "best.safetensors") == before);
    CHECK(io::load_checkpoint(dir / "best.safetensors").position.epoch == 0);
    CHECK(mc.best_score() == 0.5);
    REQUIRE(mc.kept().size() == 1);
    CHECK(mc.kept()[0].epoch == 0);
    CHECK(names_in(dir.path) == std::set<std::string>{"best.safetensors"});
    d.end();  // nothing left to report
}

TEST_CASE("async_save: a failure still in flight is raised by the next save, which waits for it") {
    TempDir dir("async_fail_next");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{epoch}.safetensors", .async_save = true});
    d.list.add(mc);
    d.begin();
    GateGuard gate;
    Gate::arm("m-1.safetensors", EACCES);
    d.epoch(0, Logs{{"loss", 1.0}, {"val_loss", 0.5}});
    // The write is still blocked: the batch hooks of epoch 2 pass, its save waits and raises.
    std::thread opener([] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        Gate::open();
    });
    const std::string error = traincb_test::error_of([&] { d.epoch(1, Logs{{"loss", 1.0}, {"val_loss", 0.4}}); });
    opener.join();
    CHECK(traincb_test::contains(error, "background save of epoch 1: cannot write '" +
                                            (dir / "m-1.safetensors").string() + "': Permission denied"));
    CHECK(mc.kept().empty());  // epoch 1's file was never written; epoch 2's save was dropped
    CHECK(names_in(dir.path).empty());
}

TEST_CASE("async_save: fit returns once the last save is on disk, on every exit") {
    TempDir tmp("async_wait");
    SECTION("completed") {
        GateGuard gate;
        Gate::arm("m-3.safetensors", 0);  // the save of the last epoch waits for the opener
        std::thread opener([] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            Gate::open();
        });
        Run run;
        (void)run.fit({.filepath = tmp / "ck/m-{epoch}.safetensors", .save_last = true, .async_save = true}, 3);
        opener.join();
        // Complete once fit has returned, as is last.safetensors, written after it (through the
        // same RotatingCheckpoint as a synchronous save: its predecessor is the epoch before).
        CHECK(io::load_checkpoint(tmp / "ck/m-3.safetensors").position.epoch == 2);
        CHECK(io::load_checkpoint(tmp / "ck/last.safetensors").position.epoch == 2);
        CHECK(io::load_checkpoint(tmp / "ck/last.prev.safetensors").position.epoch == 1);
        CHECK(names_in(tmp / "ck") == std::set<std::string>{"m-1.safetensors", "m-2.safetensors", "m-3.safetensors",
                                                            "last.safetensors", "last.prev.safetensors"});
    }
    SECTION("an exception in training") {
        GateGuard gate;
        Gate::arm("m-2.safetensors", 0);
        Run run;
        run.crash.at = 2;  // epoch 3 never ends; the save of epoch 2 is in flight
        std::thread opener([] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            Gate::open();
        });
        CHECK_THROWS_WITH(run.fit({.filepath = tmp / "ck/m-{epoch}.safetensors", .async_save = true}, 5), "crash");
        opener.join();
        CHECK(io::load_checkpoint(tmp / "ck/m-2.safetensors").position.epoch == 1);
        CHECK(run.mc->kept().size() == 2);
    }
}

TEST_CASE("async_save: a write failure while training ends with another exception is a warning, not a replacement") {
    TempDir tmp("async_exc");
    GateGuard gate;
    Gate::arm("m-2.safetensors", ENOSPC);
    Warnings w;
    Run run;
    // The save of epoch 2 blocks; the crash at the first batch end of epoch 3 opens the gate (that
    // write then fails) and throws: on_train_end waits for the save and reports its failure.
    struct OpenThenCrash final : traincb::Callback {
        void on_train_batch_end(traincb::Context& c) override {
            if (c.epoch() != 2) return;
            Gate::open();
            throw std::runtime_error("crash at epoch 3");
        }
    } crash;
    traincb::Trainer trainer(run.net);
    ModelCheckpoint mc({.filepath = tmp / "m-{epoch}.safetensors", .async_save = true});
    CHECK_THROWS_WITH(
        trainer.fit(resume_data().x, resume_data().y, {.epochs = 5, .batch_size = 8, .seed = 11}, crash, mc),
        "crash at epoch 3");
    INFO(w.all());
    CHECK(w.any_contains("traincb: ModelCheckpoint: background save of epoch 2: cannot write '" +
                         (tmp / "m-2.safetensors").string() + "': No space left on device"));
    CHECK(w.any_contains("reported as a warning because training is ending with another exception (crash at epoch 3)"));
    CHECK(names_in(tmp.path) == std::set<std::string>{"m-1.safetensors"});
}

TEST_CASE(
    "async_save: at most one save in flight; the next one waits, and states are captured on the training thread") {
    TempDir dir("async_one");
    Net net(4, 3, 1);
    Driver d(net);
    Spy spy;
    ModelCheckpoint mc({.filepath = dir / "m-{epoch}.safetensors", .async_save = true});
    d.list.add(spy);
    d.list.add(mc);
    d.begin();
    GateGuard gate;
    Gate::arm("m-1.safetensors", 0);
    d.epoch(0, Logs{{"loss", 1.0}, {"val_loss", 0.5}});
    REQUIRE(spy.count() == 1);
    CHECK(mc.saving());
    // Epoch 2 on another thread (the training thread from now on): its save must wait for the
    // blocked one before capturing anything.
    std::thread::id training;
    std::string error;
    std::thread t([&] {
        training = std::this_thread::get_id();
        error = traincb_test::error_of([&] { d.epoch(1, Logs{{"loss", 1.0}, {"val_loss", 0.4}}); });
    });
    // A save that did not wait would capture (a second Spy state) now, with the gate closed.
    for (int i = 0; i < 100 && spy.count() == 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    Gate::open();
    t.join();
    CHECK(error == "no exception");
    d.end();
    REQUIRE(spy.count() == 2);
    CHECK(spy.captures[0].thread == std::this_thread::get_id());
    CHECK(spy.captures[1].thread == training);
    CHECK(spy.captures[1].gate_open);  // captured only once the first save could finish
    CHECK(io::load_checkpoint(dir / "m-1.safetensors").position.epoch == 0);
    CHECK(io::load_checkpoint(dir / "m-2.safetensors").position.epoch == 1);
    // Both files were written by a thread that is neither of the training threads.
    REQUIRE(Gate::writer_threads.size() == 2);
    for (const auto& id : Gate::writer_threads) {
        CHECK(id != std::this_thread::get_id());
        CHECK(id != training);
    }
}

TEST_CASE("async_save: a failure nobody collected is a warning when the callback is destroyed") {
    TempDir dir("async_dtor");
    Net net(4, 3, 1);
    Warnings w;
    {
        GateGuard gate;  // outlives the callback, whose destructor waits for the write
        Driver d(net);
        ModelCheckpoint mc({.filepath = dir / "m.safetensors", .async_save = true});
        d.list.add(mc);
        d.begin();
        Gate::arm("m.safetensors", EIO);
        d.epoch(0, Logs{{"loss", 1.0}, {"val_loss", 0.5}});
        Gate::open();
        // No on_train_end: the destructor waits for the save and reports its failure.
    }
    INFO(w.all());
    CHECK(w.any_contains("background save of epoch 1: cannot write '" + (dir / "m.safetensors").string() +
                         "': Input/output error"));
}

TEST_CASE("async_save: a run crashed mid-way resumes from its async checkpoints bit-identically") {
    TempDir tmp("async_resume");
    const ModelCheckpointOptions o{
        .filepath = tmp / "ck/e{epoch:02d}.safetensors", .save_top_k = 2, .save_last = true, .async_save = true};
    Run straight;
    ModelCheckpointOptions so = o;
    so.filepath = tmp / "straight/e{epoch:02d}.safetensors";
    so.async_save = false;
    const History hs = straight.fit(so, 10);
    REQUIRE(hs.size() >= 6);
    {
        Run crashing;
        crashing.crash.at = 4;  // epoch 5 never ends
        CHECK_THROWS(crashing.fit(o, 10));
    }
    Run resumed;
    const History hr = resumed.fit(o, 10, tmp / "ck");
    CHECK(same_state(state_of(resumed.net), state_of(straight.net)));
    CHECK(same_history(hr, hs));
    CHECK(hr.epoch.front() == 0);
    traincb::CallbackState a, b;
    resumed.es.save_state(a);
    straight.es.save_state(b);
    CHECK(a.json == b.json);
    CHECK(same_state(a.tensors, b.tensors));
    CHECK(names_in(tmp / "ck") == names_in(tmp / "straight"));
    // The last checkpoints hold the same state (only the paths in ModelCheckpoint's differ).
    const io::Checkpoint la = io::load_checkpoint(tmp / "ck/last.safetensors");
    const io::Checkpoint lb = io::load_checkpoint(tmp / "straight/last.safetensors");
    CHECK(la.position == lb.position);
    CHECK(same_state(la.model, lb.model));
}

TEST_CASE("train_time_interval: saves when the interval has passed at a batch end, across epochs, not per epoch") {
    TempDir tmp("time_interval");
    // Batch ends at global steps 1, 2, 3, ... read the clock at 0.5, 1.25, 1.5, 2, 2.75, 3, 3.5,
    // 4.25, ... (the FakeClock's steps, a cycle of 1.5 s every 3 batches); with 1 s and the clock
    // started at 0 by on_train_begin: step 2 (1.25 >= 1), then 5 (2.75 - 1.25 = 1.5), 8 (4.25 -
    // 2.75), and every 3 steps after: 11, 14, 17, 20, 23. With 8 batches per epoch these are
    // (epoch, batch) (1, 2), (1, 5), (1, 8), (2, 3), (2, 6), (3, 1), (3, 4), (3, 7), 1-based: the
    // interval runs across epoch ends (14 -> 17 spans one), and no epoch end saves.
    Run run;
    (void)run.fit(
        {.filepath = tmp / "t-{epoch}-{batch}.safetensors", .train_time_interval = std::chrono::duration<double>(1.0)},
        3);
    CHECK(names_in(tmp.path) == std::set<std::string>{"t-1-2.safetensors", "t-1-5.safetensors", "t-1-8.safetensors",
                                                      "t-2-3.safetensors", "t-2-6.safetensors", "t-3-1.safetensors",
                                                      "t-3-4.safetensors", "t-3-7.safetensors"});
    CHECK(run.clock.reads == 1 + 24);  // on_train_begin, then each of the 24 batch ends
    // A batch save: the position is mid-epoch.
    CHECK(io::load_checkpoint(tmp / "t-3-1.safetensors").position == io::CheckpointPosition{2, false, 1, 17});
}

TEST_CASE("train_time_interval: invalid values and combinations are rejected at construction") {
    auto throws = [](ModelCheckpointOptions o, const std::string& text) {
        INFO(text);
        CHECK_THROWS_AS(ModelCheckpoint(o), traincb::InvalidArgument);
        CHECK_THROWS_WITH(ModelCheckpoint(std::move(o)), Catch::Contains(text));
    };
    using secs = std::chrono::duration<double>;
    throws({.filepath = "m.safetensors", .train_time_interval = secs(-1.0)},
           "train_time_interval must be a finite number of seconds >= 0 (0: off), got -1 s");
    throws({.filepath = "m.safetensors", .train_time_interval = secs(std::nan(""))}, "got nan s");
    throws({.filepath = "m.safetensors", .train_time_interval = secs(HUGE_VAL)}, "got inf s");
    throws({.filepath = "m.safetensors", .save_freq = 10, .train_time_interval = secs(60)},
           "train_time_interval (60 s) and save_freq (10) are mutually exclusive");
    throws({.filepath = "m.safetensors", .every_n_epochs = 2, .train_time_interval = secs(60)},
           "train_time_interval (60 s) and every_n_epochs (2) are mutually exclusive");
    throws({.filepath = "m.safetensors", .save_best_only = true, .train_time_interval = secs(60)},
           "monitor 'val_loss' is a validation key, but train_time_interval saves after batches");
    throws({.filepath = "m-{batch}.safetensors"}, "set save_freq > 0 (or train_time_interval)");
    CHECK_NOTHROW(
        ModelCheckpoint({.filepath = "m-{batch}.safetensors", .train_time_interval = std::chrono::minutes(30)}));
    CHECK_NOTHROW(ModelCheckpoint({.filepath = "m.safetensors", .train_time_interval = secs(0)}));
}

}  // namespace test_async_checkpoint
