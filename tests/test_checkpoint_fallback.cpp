// Checkpoints that survive corruption (docs/checkpoints.md, "The previous checkpoint" and "When
// no checkpoint is valid"): every full checkpoint written again and again under one name
// (ModelCheckpoint's last.safetensors, a literal full filepath, FitOptions::interrupt_checkpoint)
// keeps the version it replaces as <stem>.prev.safetensors; a corrupted latest (one flipped byte,
// truncated, empty, missing) falls back to it with a warning and the run still ends bit-identical
// (model, History, history.csv, report.html and the checkpoint files, byte for byte) to an
// uninterrupted one; when every checkpoint is invalid, fit throws NoValidCheckpointError naming
// each file and writes nothing (every file of the run directory keeps its bytes and mtime), and
// start_over_if_invalid starts a fresh run instead; an I/O failure (FileOps seam) at each step of
// the save of a new latest leaves a valid checkpoint whose predecessor is intact.
#include "catch.hpp"

#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/learning_curve_report.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/interrupt.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/tensorboard.hpp>
#include <traincb/trainer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "checkpoint_test_support.hpp"
#include "file_faults.hpp"

namespace test_checkpoint_fallback {

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::History;
using traincb::ModelCheckpoint;

namespace {

// Runs `fn` in on_epoch_commit, after the ModelCheckpoint before it in the list has written.
struct AfterCommit final : traincb::Callback {
    std::function<void(traincb::Context&)> fn;
    void on_epoch_commit(traincb::Context& c) override {
        if (fn) fn(c);
    }
};

// Calls request_interrupt at global step `at`.
struct Interrupter final : traincb::Callback {
    std::int64_t at = -1;
    void on_train_batch_end(traincb::Context& c) override {
        if (c.global_step() == at) traincb::request_interrupt();
    }
};

// The run directory of example_breast_cancer in small: ckpt/best.safetensors (weights of the best
// val_loss epoch), ckpt/last.safetensors and ckpt/last.prev.safetensors (full), history.csv,
// tensorboard/ and report.html. Fresh objects for each process's worth of training.
struct Rig {
    fs::path dir;
    Net net{4, 6, 1};
    traincb::EarlyStopping es{{.monitor = "val_loss", .patience = 3, .restore_best_weights = true}};
    ModelCheckpoint mc;
    AfterCommit after;
    traincb::LearningCurveReport report;
    traincb::MetricLogger logger;
    Crash crash;
    Interrupter interrupter;

    explicit Rig(fs::path d)
        : dir(made(std::move(d))),
          mc({.filepath = dir / "ckpt/best.safetensors",
              .save_best_only = true,
              .save_weights_only = true,
              .save_last = true}),
          report({.path = dir / "report.html", .title = "fallback", .early_stopping = &es}),
          logger({std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = dir / "history.csv"}),
                  std::make_shared<traincb::sinks::TensorBoardSink>(
                      traincb::sinks::TensorBoardOptions{.log_dir = dir / "tensorboard"})}) {}
    static fs::path made(fs::path d) {
        fs::create_directories(d);  // before the CsvSink, which checks its directory
        return d;
    }
    [[nodiscard]] fs::path ckpt() const { return dir / "ckpt"; }
    [[nodiscard]] fs::path last() const { return dir / "ckpt/last.safetensors"; }
    [[nodiscard]] fs::path prev() const { return dir / "ckpt/last.prev.safetensors"; }
    traincb::FitOptions<double> options(int epochs, fs::path resume = {}, bool start_over = false,
                                        fs::path interrupt_file = {}) const {
        return {.epochs = epochs,
                .batch_size = 8,
                .seed = 5,
                .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
                .resume_from = std::move(resume),
                .interrupt_checkpoint = std::move(interrupt_file),
                .start_over_if_invalid = start_over};
    }
    History fit(int epochs, fs::path resume = {}, bool start_over = false, fs::path interrupt_file = {}) {
        traincb::Trainer trainer(net);
        return trainer.fit(resume_data().x, resume_data().y,
                           options(epochs, std::move(resume), start_over, std::move(interrupt_file)), crash, es, mc,
                           after, report, interrupter, logger);
    }
};

constexpr int kEpochs = 12;

// Every regular file under `dir`, with its bytes and modification time.
using Snapshot = std::map<std::string, std::pair<std::string, fs::file_time_type>>;
Snapshot snapshot(const fs::path& dir) {
    Snapshot s;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file())
            s[fs::relative(e.path(), dir).string()] = {read_bytes(e.path()), fs::last_write_time(e.path())};
    return s;
}

// What an uninterrupted run leaves, to compare with.
struct Outcome {
    History history;
    traincb::StateDict model;
    std::map<std::string, std::string> files;  // bytes by path relative to the run directory
};
const std::vector<std::string> kCompared = {"history.csv", "report.html", "ckpt/best.safetensors",
                                            "ckpt/last.safetensors", "ckpt/last.prev.safetensors"};
Outcome outcome(Rig& r, History h) {
    Outcome o{std::move(h), state_of(r.net), {}};
    for (const auto& f : kCompared) o.files[f] = read_bytes(r.dir / f);
    return o;
}
void require_same(Rig& r, const History& h, const Outcome& straight) {
    CHECK(same_history(h, straight.history));
    CHECK(same_state(state_of(r.net), straight.model));
    for (const auto& f : kCompared) {
        INFO(f);
        REQUIRE_FALSE(straight.files.at(f).empty());
        CHECK(read_bytes(r.dir / f) == straight.files.at(f));
    }
}

// The uninterrupted run, in `dir` (which is then emptied, so that the run under test writes the
// same paths: ModelCheckpoint's state records them).
Outcome straight_run(const fs::path& dir) {
    Rig r(dir);
    const History h = r.fit(kEpochs);
    REQUIRE(h.size() >= 6);  // long enough for a fallback in the middle
    Outcome o = outcome(r, h);
    fs::remove_all(dir);
    return o;
}

io::CheckpointPosition position_of(const fs::path& p) {
    return io::load_checkpoint(p).position;
}

void flip_byte(const fs::path& p, std::size_t at) {
    std::string b = read_bytes(p);
    REQUIRE(at < b.size());
    b[at] = static_cast<char>(b[at] ^ 0x10);
    write_bytes(p, b);
}

// The ways a latest checkpoint is damaged.
enum class Damage { FlippedDataByte, FlippedHeaderByte, Truncated, Empty, Missing };
const char* name_of(Damage d) {
    switch (d) {
        case Damage::FlippedDataByte:
            return "a flipped byte in the tensor data";
        case Damage::FlippedHeaderByte:
            return "a flipped byte in the JSON header";
        case Damage::Truncated:
            return "truncated to half";
        case Damage::Empty:
            return "zero-length";
        case Damage::Missing:
            return "missing";
    }
    return "";
}
void damage(const fs::path& p, Damage d) {
    const std::string b = read_bytes(p);
    REQUIRE(b.size() > 100);
    switch (d) {
        case Damage::FlippedDataByte:
            flip_byte(p, b.size() - 7);
            break;
        case Damage::FlippedHeaderByte:  // in the "traincb.state" document: its checksum no longer matches
            flip_byte(p, b.find("global_step"));
            break;
        case Damage::Truncated:
            write_bytes(p, b.substr(0, b.size() / 2));
            break;
        case Damage::Empty:
            write_bytes(p, "");
            break;
        case Damage::Missing:
            fs::remove(p);
            break;
    }
}

}  // namespace

TEST_CASE("fallback: save_last keeps the previous full checkpoint as last.prev.safetensors at every save") {
    TempDir tmp("fallback_keep");
    Rig r(tmp / "run");
    int commits = 0;
    r.after.fn = [&](traincb::Context& c) {
        // Right after each save: last is this epoch, last.prev the one before (from the second on).
        ++commits;
        CHECK(position_of(r.last()) == io::CheckpointPosition{c.epoch(), true, 8, 8LL * (c.epoch() + 1)});
        if (c.epoch() == 0) {
            CHECK(!fs::exists(r.prev()));
        } else {
            CHECK(position_of(r.prev()) == io::CheckpointPosition{c.epoch() - 1, true, 8, 8LL * c.epoch()});
        }
    };
    const History h = r.fit(5);
    CHECK(commits == static_cast<int>(h.size()));
    CHECK(names_in(r.ckpt()) == std::set<std::string>{"best.safetensors", "last.prev.safetensors", "last.safetensors"});
    CHECK(r.mc.last_model_path() == r.last());
    // best.safetensors (weights, best only) keeps no previous version.
    CHECK(io::load_checkpoint(r.ckpt() / "best.safetensors").kind == io::CheckpointKind::Weights);
}

TEST_CASE(
    "fallback: a damaged last.safetensors falls back to last.prev with a warning, and the run ends bit-identical") {
    TempDir tmp("fallback_latest");
    const fs::path dir = tmp / "run";
    const Outcome straight = straight_run(dir);
    const Damage d =
        GENERATE(Damage::FlippedDataByte, Damage::FlippedHeaderByte, Damage::Truncated, Damage::Empty, Damage::Missing);
    const bool finished = GENERATE(true, false);
    INFO(name_of(d) << (finished ? ", after the run finished" : ", after a crash at the end of epoch 5"));
    {
        Rig first(dir);
        if (finished) {
            (void)first.fit(kEpochs);
        } else {
            first.crash.at = 5;  // epoch 5 never ends: last is epoch 4, history.csv has rows 0..4
            CHECK_THROWS(first.fit(kEpochs));
        }
    }
    const io::CheckpointPosition prev_pos = position_of(dir / "ckpt/last.prev.safetensors");
    const std::string prev_bytes = read_bytes(dir / "ckpt/last.prev.safetensors");
    damage(dir / "ckpt/last.safetensors", d);

    Warnings w;
    Rig resumed(dir);
    bool first_commit = true;
    resumed.after.fn = [&](traincb::Context&) {
        // The first save of the resumed run replaces the damaged file without keeping it: the file
        // resumed from stays as the predecessor.
        if (!first_commit) return;
        first_commit = false;
        CHECK(read_bytes(resumed.prev()) == prev_bytes);
        CHECK_NOTHROW(io::load_checkpoint(resumed.last()));
    };
    const History h = resumed.fit(kEpochs, resumed.ckpt());
    INFO(w.all());
    if (d == Damage::Missing) {
        // Not corruption: the directory simply has last.prev as its newest checkpoint.
        CHECK_FALSE(w.any_contains("invalid"));
    } else {
        CHECK(w.any_contains("skipping 1 invalid checkpoint file: '" + resumed.last().string() + "' ("));
        CHECK(w.any_contains("; resuming from '" + resumed.prev().string() + "' (the end of epoch " +
                             std::to_string(prev_pos.epoch + 1) + "), the newest valid checkpoint"));
    }
    CHECK(h.epoch.front() == 0);
    require_same(resumed, h, straight);
}

TEST_CASE("fallback: the damage is named with the failed check") {
    TempDir tmp("fallback_reason");
    Rig r(tmp / "run");
    (void)r.fit(3);
    const std::string good = read_bytes(r.last());
    const auto reason_for = [&](Damage d) {
        write_bytes(r.last(), good);
        damage(r.last(), d);
        const io::CheckpointScan s = io::scan_checkpoints(r.ckpt());
        CHECK(s.latest == r.prev());
        REQUIRE(s.invalid.size() == 1);
        CHECK(s.invalid[0].path == r.last());
        return s.invalid[0].reason;
    };
    CHECK_THAT(reason_for(Damage::FlippedDataByte), Catch::StartsWith("checksum mismatch: the tensor data hashes to"));
    CHECK_THAT(reason_for(Damage::Truncated), Catch::Contains("the file is truncated"));
    CHECK_THAT(reason_for(Damage::Empty), Catch::StartsWith("HeaderTooSmall"));
}

TEST_CASE("fallback: when every checkpoint is invalid, fit throws NoValidCheckpointError and writes nothing") {
    TempDir tmp("fallback_none");
    const fs::path dir = tmp / "run";
    {
        Rig first(dir);
        (void)first.fit(4);
    }
    damage(dir / "ckpt/last.safetensors", Damage::FlippedDataByte);
    damage(dir / "ckpt/last.prev.safetensors", Damage::Truncated);
    // A valid weights file (best.safetensors) cannot resume a run and does not count.
    const Snapshot before = snapshot(dir);
    REQUIRE(before.count("history.csv") == 1);
    REQUIRE(before.count("report.html") == 1);
    REQUIRE(before.size() >= 7);  // tensorboard event files too

    for (const fs::path& from : {dir / "ckpt", dir / "ckpt/last.safetensors"}) {
        INFO("resume_from " << from.string());
        Rig r(dir);
        Warnings w;
        std::string message;
        std::vector<traincb::InvalidCheckpointFile> files;
        try {
            (void)r.fit(kEpochs, from);
        } catch (const traincb::NoValidCheckpointError& e) {
            message = e.what();
            files = e.files();
        }
        INFO(message);
        CHECK_THAT(message, Catch::StartsWith("traincb: Trainer::fit: resume_from '" + from.string() +
                                              "': every checkpoint file is invalid: '"));
        CHECK_THAT(message, Catch::Contains("'" + (dir / "ckpt/last.safetensors").string() +
                                            "' (checksum mismatch: the tensor data hashes to"));
        CHECK_THAT(message, Catch::Contains("'" + (dir / "ckpt/last.prev.safetensors").string() + "' ("));
        CHECK_THAT(message, Catch::Contains("Nothing was written"));
        CHECK_THAT(message, Catch::Contains("start_over_if_invalid"));
        REQUIRE(files.size() == 2);
        CHECK(files[0].path == dir / "ckpt/last.prev.safetensors");
        CHECK(files[1].path == dir / "ckpt/last.safetensors");
        CHECK_THAT(files[1].reason, Catch::StartsWith("checksum mismatch"));
        CHECK(w.messages.empty());
        // Not a byte and not a timestamp changed, and no file appeared.
        CHECK(snapshot(dir) == before);
    }
    // It is a FormatError too.
    Rig r(dir);
    CHECK_THROWS_AS(r.fit(kEpochs, dir / "ckpt"), traincb::FormatError);
    CHECK(snapshot(dir) == before);
}

TEST_CASE("fallback: start_over_if_invalid starts a fresh run over invalid checkpoints, with a warning") {
    TempDir tmp("fallback_start_over");
    const fs::path dir = tmp / "run";
    const Outcome straight = straight_run(dir);
    {
        Rig first(dir);
        (void)first.fit(4);
    }
    damage(dir / "ckpt/last.safetensors", Damage::Empty);
    damage(dir / "ckpt/last.prev.safetensors", Damage::FlippedHeaderByte);
    Warnings w;
    Rig r(dir);
    const History h = r.fit(kEpochs, r.ckpt(), true);
    INFO(w.all());
    CHECK(w.any_contains("every checkpoint file is invalid: '" + r.prev().string() + "' ("));
    CHECK(w.any_contains("'" + r.last().string() + "' (HeaderTooSmall"));
    CHECK(w.any_contains("starting a fresh run, as start_over_if_invalid asks"));
    // A fresh run from epoch 0, whose files are those of an uninterrupted run.
    require_same(r, h, straight);
}

TEST_CASE("fallback: a directory without any full checkpoint still starts a fresh run, not an error") {
    TempDir tmp("fallback_fresh");
    Rig first(tmp / "a");
    (void)first.fit(2);
    // Only a weights file: a run killed after best.safetensors and before its first last.safetensors.
    fs::create_directories(tmp / "b/ckpt");
    fs::copy_file(first.ckpt() / "best.safetensors", tmp / "b/ckpt/best.safetensors");
    Warnings w;
    Rig r(tmp / "b");
    const History h = r.fit(2, r.ckpt());
    CHECK(w.any_contains("holds no full checkpoint yet; starting a fresh run"));
    CHECK(h.epoch == std::vector<int>{0, 1});
    CHECK(same_state(state_of(r.net), state_of(first.net)));  // trained as the fresh run was
}

TEST_CASE("fallback: resume_from a file falls back to its previous version when it is invalid or missing") {
    TempDir tmp("fallback_file");
    const fs::path dir = tmp / "run";
    const Outcome straight = straight_run(dir);
    const Damage d = GENERATE(Damage::FlippedDataByte, Damage::Missing);
    INFO(name_of(d));
    {
        Rig first(dir);
        first.crash.at = 6;
        CHECK_THROWS(first.fit(kEpochs));
    }
    damage(dir / "ckpt/last.safetensors", d);
    Warnings w;
    Rig r(dir);
    const History h = r.fit(kEpochs, r.last());
    INFO(w.all());
    CHECK(w.any_contains("resume_from '" + r.last().string() + "': skipping 1 invalid checkpoint file: '" +
                         r.last().string() + "' (" +
                         (d == Damage::Missing ? std::string("the file does not exist") : "checksum mismatch")));
    CHECK(w.any_contains("resuming from '" + r.prev().string() + "' (the end of epoch 5)"));
    require_same(r, h, straight);

    // Without a previous version, a missing file stays an IoError and an invalid one a FormatError.
    damage(dir / "ckpt/last.safetensors", Damage::Missing);
    fs::remove(dir / "ckpt/last.prev.safetensors");
    Rig missing(dir);
    CHECK_THROWS_AS(missing.fit(kEpochs, missing.last()), traincb::IoError);
}

TEST_CASE("fallback: a fresh run never keeps an earlier run's checkpoint as its predecessor") {
    TempDir tmp("fallback_other_run");
    {
        Rig old(tmp / "run");
        (void)old.fit(6);
    }
    Rig r(tmp / "run");
    std::vector<std::set<std::string>> names;
    r.after.fn = [&](traincb::Context& c) {
        names.push_back(names_in(r.ckpt()));
        if (c.epoch() == 0) {
            // The old run's last.prev (epoch 4) would outrank this run's epoch 0 on a resume.
            CHECK(!fs::exists(r.prev()));
            CHECK(io::find_latest_checkpoint(r.ckpt()) == r.last());
        } else {
            CHECK(position_of(r.prev()).epoch == c.epoch() - 1);
        }
    };
    (void)r.fit(3);  // not resumed
    REQUIRE(names.size() == 3);
    CHECK(names[0] == std::set<std::string>{"best.safetensors", "last.safetensors"});
    CHECK(position_of(r.last()).epoch == 2);
}

TEST_CASE("fallback: a literal full filepath keeps its previous version; weights and best-only files do not") {
    TempDir tmp("fallback_main");
    Net net(4, 6, 1);
    ModelCheckpoint full({.filepath = tmp / "model.safetensors"});
    ModelCheckpoint weights({.filepath = tmp / "w/model.safetensors", .save_weights_only = true, .id = "w"});
    ModelCheckpoint best({.filepath = tmp / "b/model.safetensors", .save_best_only = true, .id = "b"});
    traincb::Trainer trainer(net);
    (void)trainer.fit(resume_data().x, resume_data().y,
                      {.epochs = 3,
                       .batch_size = 8,
                       .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv}},
                      full, weights, best);
    CHECK(position_of(tmp / "model.safetensors").epoch == 2);
    CHECK(position_of(tmp / "model.prev.safetensors").epoch == 1);
    CHECK(names_in(tmp / "w") == std::set<std::string>{"model.safetensors"});
    CHECK(names_in(tmp / "b") == std::set<std::string>{"model.safetensors"});
    CHECK_THROWS_WITH(ModelCheckpoint({.filepath = tmp / "last.prev.safetensors", .save_last = true}),
                      Catch::Contains("is the file save_last keeps the previous last.safetensors in"));
}

TEST_CASE("fallback: the interrupt checkpoint keeps its previous version and falls back to it") {
    TempDir tmp("fallback_interrupt");
    const fs::path file = tmp / "run/interrupted.safetensors";
    const fs::path previous = tmp / "run/interrupted.prev.safetensors";
    CHECK(io::previous_checkpoint_path(file) == previous);
    {
        Rig r(tmp / "run");
        r.interrupter.at = 11;
        const History h = r.fit(kEpochs, {}, false, file);
        REQUIRE(h.end.kind == traincb::EndKind::Interrupted);
    }
    CHECK(position_of(file).global_step == 11);
    CHECK(!fs::exists(previous));
    {
        // Resumed from it, and interrupted again: the file it resumed from becomes the previous version.
        Rig r(tmp / "run");
        r.interrupter.at = 19;
        const History h = r.fit(kEpochs, file, false, file);
        REQUIRE(h.end.kind == traincb::EndKind::Interrupted);
    }
    CHECK(position_of(file).global_step == 19);
    CHECK(position_of(previous).global_step == 11);
    damage(file, Damage::Truncated);
    {
        Warnings w;
        Rig r(tmp / "run");
        r.interrupter.at = 12;
        const History h = r.fit(kEpochs, file, false, file);
        REQUIRE(h.end.kind == traincb::EndKind::Interrupted);
        CHECK(w.any_contains("resuming from '" + previous.string() + "' (batch 3 of epoch 2)"));
    }
    // Resumed from the previous version: the damaged file is replaced, not kept.
    CHECK(position_of(file).global_step == 12);
    CHECK(position_of(previous).global_step == 11);
}

TEST_CASE("fallback: an I/O failure at any step of saving a new latest leaves the predecessor valid") {
    namespace ff = traincb_test::faults;
    TempDir tmp("fallback_faults");
    Net net(4, 3, 1);
    // Three versions, told apart by their global step.
    const auto version = [&](std::int64_t step) {
        io::Checkpoint c;
        c.position = {static_cast<int>(step), true, 1, step};
        c.model = state_of(net);
        return io::encode_checkpoint(std::move(c));
    };
    const fs::path last = tmp / "last.safetensors";
    const fs::path prev = tmp / "last.prev.safetensors";
    const auto step_of = [](const fs::path& p) -> std::int64_t {
        return fs::exists(p) ? io::load_checkpoint(p).position.global_step : -1;
    };
    struct Case {
        ff::Op op;
        int call;
    };
    int failures = 0;
    // The calls of a save: open (temporary file), open/fadvise/close (dropping the old version's
    // cached pages: failures ignored), write, pwrite (the checksum), fsync, close, rename (last ->
    // last.prev), rename (temporary -> last), open/fsync/close (the directory).
    for (const Case f :
         {Case{ff::kOpen, 0}, Case{ff::kWrite, 0}, Case{ff::kPwrite, 0}, Case{ff::kFsync, 0}, Case{ff::kFsync, 1},
          Case{ff::kClose, 0}, Case{ff::kClose, 1}, Case{ff::kRename, 0}, Case{ff::kRename, 1}}) {
        INFO("operation " << f.op << " fails at call " << f.call);
        fs::remove(last);
        fs::remove(prev);
        io::RotatingCheckpoint file(last);
        file.begin_run({});
        file.save(version(1), "test");
        file.save(version(2), "test");
        REQUIRE(step_of(last) == 2);
        REQUIRE(step_of(prev) == 1);
        bool threw = false;
        {
            ff::FaultGuard guard;
            ff::FaultGuard::fail(f.op, f.call, EIO);
            try {
                file.save(version(3), "test");
            } catch (const traincb::IoError& e) {
                threw = true;
                CHECK_THAT(e.what(), Catch::Contains(last.string()));
            }
        }
        failures += threw ? 1 : 0;
        // No temporary file is left, and every file left is whole.
        CHECK(names_in(tmp.path).size() <= 2);
        for (const auto& n : names_in(tmp.path)) CHECK(n.front() != '.');
        const io::CheckpointScan s = io::scan_checkpoints(tmp.path);
        CHECK(s.invalid.empty());
        REQUIRE(s.latest.has_value());
        const std::int64_t newest = step_of(*s.latest);
        if (newest == 3) {
            // The new latest got in place (only the directory flush failed): its predecessor is version 2.
            CHECK(*s.latest == last);
            CHECK(step_of(prev) == 2);
        } else {
            // The save failed: version 2 is the newest, whole at its name (renamed back) or at last.prev.
            CHECK(threw);
            CHECK(newest == 2);
        }
        // The next save works and keeps the newest valid version as its predecessor.
        file.save(version(4), "test");
        CHECK(step_of(last) == 4);
        CHECK(step_of(prev) == newest);
    }
    CHECK(failures >= 7);
}

namespace {
// Renames through the FileOps seam; the renames numbered `fail_from` and `fail_to` (0-based) fail.
struct FailRenames {
    static inline int calls = 0;
    static inline int fail_from = -1, fail_to = -1;
    static int rename(const char* from, const char* to) {
        const int n = calls++;
        if (n >= fail_from && n <= fail_to) {
            errno = EIO;
            return -1;
        }
        return ::rename(from, to);
    }
};
}  // namespace

TEST_CASE("fallback: a kill between the two renames of a save leaves the old latest whole at last.prev") {
    TempDir tmp("fallback_renames");
    Net net(4, 3, 1);
    const auto version = [&](std::int64_t step) {
        io::Checkpoint c;
        c.position = {static_cast<int>(step), true, 1, step};
        c.model = state_of(net);
        return io::encode_checkpoint(std::move(c));
    };
    const fs::path last = tmp / "last.safetensors";
    const fs::path prev = tmp / "last.prev.safetensors";
    io::RotatingCheckpoint file(last);
    file.begin_run({});
    file.save(version(1), "test");
    file.save(version(2), "test");
    {
        // last -> last.prev succeeds; temp -> last fails, and so does the rename back: as if the
        // process had died between the two renames.
        traincb::detail::FileOps ops = traincb::detail::system_file_ops();
        ops.rename = &FailRenames::rename;
        FailRenames::calls = 0;
        FailRenames::fail_from = 1;
        FailRenames::fail_to = 2;
        traincb::detail::ScopedFileOps scoped(ops);
        CHECK_THROWS_WITH(file.save(version(3), "test"), Catch::Contains("cannot replace '" + last.string() + "'"));
        CHECK(FailRenames::calls == 3);
    }
    CHECK(names_in(tmp.path) == std::set<std::string>{"last.prev.safetensors"});
    CHECK(io::load_checkpoint(prev).position.global_step == 2);
    CHECK(io::find_latest_checkpoint(tmp.path) == prev);
    // The next save puts a new latest in place and keeps version 2 as its predecessor.
    file.save(version(4), "test");
    CHECK(io::load_checkpoint(last).position.global_step == 4);
    CHECK(io::load_checkpoint(prev).position.global_step == 2);
}

TEST_CASE("fallback: a save of last.safetensors that dies between its renames resumes bit-identically") {
    TempDir tmp("fallback_kill_window");
    const fs::path dir = tmp / "run";
    const Outcome straight = straight_run(dir);
    // The third save of last.safetensors (epoch 2) renames the old one to last.prev, then fails to
    // put the new one in place and to rename the old one back: what a kill in between leaves.
    static fs::path target;
    static int saves = 0;
    static bool failing = false;
    target = dir / "ckpt/last.safetensors";
    saves = 0;
    failing = false;
    traincb::detail::FileOps ops = traincb::detail::system_file_ops();
    ops.rename = [](const char* from, const char* to) -> int {
        if (fs::path(to) == target) {
            const bool from_temp = fs::path(from).filename().string().front() == '.';
            if (from_temp && ++saves == 3) failing = true;
            if (failing) {
                errno = EIO;
                return -1;
            }
        }
        return ::rename(from, to);
    };
    {
        traincb::detail::ScopedFileOps scoped(ops);
        Rig first(dir);
        CHECK_THROWS_AS(first.fit(kEpochs), traincb::IoError);
    }
    CHECK(!fs::exists(dir / "ckpt/last.safetensors"));
    CHECK(position_of(dir / "ckpt/last.prev.safetensors").epoch == 1);
    Warnings w;
    Rig r(dir);
    const History h = r.fit(kEpochs, r.ckpt());
    INFO(w.all());
    require_same(r, h, straight);
}

}  // namespace test_checkpoint_fallback
