// Tests for resuming a run (FitOptions::resume_from, trainer.hpp with io/checkpoint.hpp): train N
// epochs straight versus train k epochs (or crash), then new model, trainer and callback objects
// resume to N: identical model tensors, History, EarlyStopping / ReduceLROnPlateau /
// ModelCheckpoint state and CSV bytes; the same from a mid-epoch checkpoint; a run that had
// stopped stays stopped; and every rule of resume_from (directories, missing files, weights
// files, changed options, missing callback states).
#include "catch.hpp"

#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/trainer.hpp>

#include "checkpoint_test_support.hpp"

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::History;
using traincb::ModelCheckpoint;

namespace {

struct Data {
    Eigen::MatrixXd x, y, xv, yv;
    Data() {
        make_data(64, x, y);  // 8 batches of 8
        Eigen::MatrixXd all_x, all_y;
        make_data(84, all_x, all_y);
        xv = all_x.bottomRows(20);
        yv = all_y.bottomRows(20);
    }
};
const Data& data() {
    static const Data d;
    return d;
}

// Throws at the end of epoch `at` (before any other callback's on_epoch_end: it comes first), or
// at global step `at_step` in on_train_batch_end: a crash that leaves the files as a kill would.
struct Crash final : traincb::Callback {
    int at = -1;
    std::int64_t at_step = -1;
    void on_epoch_end(traincb::Context& c) override {
        if (c.epoch() == at) throw std::runtime_error("crash");
    }
    void on_train_batch_end(traincb::Context& c) override {
        if (c.global_step() == at_step) throw std::runtime_error("crash");
    }
};

// Counts the batches a run trains.
struct BatchCount final : traincb::Callback {
    int batches = 0;
    void on_train_batch_end(traincb::Context&) override { ++batches; }
};

// Fresh objects for one process's worth of training, writing into `dir`. `best` keeps the two
// best epochs and last.safetensors, unless `mid_epoch`: then it saves full checkpoints every 3
// global steps; `steps` saves weights every 3 global steps.
struct Rig {
    fs::path dir;
    Net net{4, 6, 1};
    traincb::EarlyStopping es;
    traincb::ReduceLROnPlateau rlr{{.monitor = "val_loss", .factor = 0.5, .patience = 1, .min_delta = 0.0}};
    ModelCheckpoint best;
    ModelCheckpoint steps;
    traincb::MetricLogger logger;
    Crash crash;
    BatchCount count;

    static traincb::ModelCheckpointOptions best_options(const fs::path& dir, bool mid_epoch) {
        if (mid_epoch) return {.filepath = dir / "ckpt/b{epoch}-{batch}.safetensors", .save_freq = 3};
        return {.filepath = dir / "ckpt/e{epoch:02d}-{val_loss:.5f}.safetensors", .save_top_k = 2, .save_last = true};
    }
    explicit Rig(fs::path d, bool mid_epoch = false, int patience = 4)
        : dir(made(std::move(d))),
          es({.monitor = "val_loss", .patience = patience, .restore_best_weights = true}),
          best(best_options(dir, mid_epoch)),
          steps({.filepath = dir / "steps/s{epoch}-{batch}.safetensors", .save_weights_only = true, .save_freq = 3}),
          logger({std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = dir / "history.csv"})}) {
    }
    static fs::path made(fs::path d) {
        fs::create_directories(d);  // before the CsvSink, which checks its directory
        return d;
    }
    traincb::FitOptions<double> options(int epochs, fs::path resume = {}) const {
        return {.epochs = epochs,
                .batch_size = 8,
                .seed = 11,
                .validation_data = traincb::ValidationData<double>{data().xv, data().yv},
                .resume_from = std::move(resume)};
    }
    History fit(int epochs, fs::path resume = {}) {
        traincb::Trainer trainer(net);
        return trainer.fit(data().x, data().y, options(epochs, std::move(resume)), crash, es, rlr, best, steps, count,
                           logger);
    }
    // A callback's state with this rig's directory replaced by "<dir>", so two rigs compare.
    [[nodiscard]] nlohmann::json state(const traincb::Callback& cb) const {
        traincb::CallbackState s;
        cb.save_state(s);
        std::string text = s.json.dump();
        const std::string d = dir.string();
        for (std::size_t at = text.find(d); at != std::string::npos; at = text.find(d, at))
            text.replace(at, d.size(), "<dir>");
        return nlohmann::json::parse(text);
    }
    [[nodiscard]] traincb::StateDict es_snapshot() const {
        traincb::CallbackState s;
        es.save_state(s);
        return s.tensors;
    }
};

// Everything two rigs must agree on after the same run.
void require_same_run(Rig& straight, const History& hs, Rig& resumed, const History& hr) {
    CHECK(same_state(state_of(resumed.net), state_of(straight.net)));
    CHECK(same_history(hr, hs));
    CHECK(hr.end.kind == hs.end.kind);
    CHECK(hr.end.reason == hs.end.reason);
    CHECK(resumed.state(resumed.es) == straight.state(straight.es));
    CHECK(same_state(resumed.es_snapshot(), straight.es_snapshot()));
    CHECK(resumed.state(resumed.rlr) == straight.state(straight.rlr));
    CHECK(resumed.state(resumed.best) == straight.state(straight.best));
    CHECK(slurp(resumed.dir / "history.csv") == slurp(straight.dir / "history.csv"));
    CHECK(names_in(resumed.dir / "ckpt") == names_in(straight.dir / "ckpt"));
    CHECK(names_in(resumed.dir / "steps") == names_in(straight.dir / "steps"));
}

}  // namespace

TEST_CASE("resume: k epochs, then new objects resume to N: bit-identical to N epochs straight") {
    TempDir tmp("resume_boundary");
    Rig straight(tmp / "a");
    const History hs = straight.fit(14);
    // The scenario must exercise the state: the run is long enough and the LR was reduced.
    REQUIRE(hs.size() >= 8);
    REQUIRE(!straight.rlr.reductions().empty());

    {
        Rig first(tmp / "b");
        (void)first.fit(5);
    }
    Warnings w;
    Rig resumed(tmp / "b");
    const History hr = resumed.fit(14, tmp / "b/ckpt");
    INFO(w.all());
    CHECK(w.any_contains("'epochs' changed since the checkpoint (was 5, now 14); the new value applies"));
    CHECK(resumed.count.batches == (static_cast<int>(hs.size()) - 5) * 8);
    require_same_run(straight, hs, resumed, hr);
    CHECK(hr.epoch.front() == 0);  // the returned History covers the whole run
}

TEST_CASE("resume: after a crash at an epoch end, resuming from the directory is bit-identical") {
    TempDir tmp("resume_crash");
    Rig straight(tmp / "a");
    const History hs = straight.fit(14);
    REQUIRE(hs.size() >= 8);
    {
        Rig crashing(tmp / "b");
        crashing.crash.at = 6;  // epoch 6 never ends: the newest checkpoint is from epoch 5
        CHECK_THROWS(crashing.fit(14));
    }
    Rig resumed(tmp / "b");
    const History hr = resumed.fit(14, tmp / "b/ckpt");
    CHECK(resumed.count.batches == (static_cast<int>(hs.size()) - 6) * 8);
    require_same_run(straight, hs, resumed, hr);
}

TEST_CASE("resume: from a mid-epoch checkpoint the loss and the weights continue exactly") {
    TempDir tmp("resume_mid");
    Rig straight(tmp / "a", true);
    const History hs = straight.fit(10);
    REQUIRE(hs.size() >= 6);
    {
        Rig crashing(tmp / "b", true);
        crashing.crash.at_step = 29;  // global step 27 = epoch 4, batch 3 is the newest checkpoint
        CHECK_THROWS(crashing.fit(10));
    }
    REQUIRE(io::find_latest_checkpoint(tmp / "b/ckpt") == tmp / "b/ckpt/b4-3.safetensors");
    const io::Checkpoint c = io::load_checkpoint(tmp / "b/ckpt/b4-3.safetensors");
    CHECK(c.position == io::CheckpointPosition{3, false, 3, 27});
    Rig resumed(tmp / "b", true);
    const History hr = resumed.fit(10, tmp / "b/ckpt");
    CHECK(resumed.count.batches == static_cast<int>(hs.size()) * 8 - 27);
    require_same_run(straight, hs, resumed, hr);
}

TEST_CASE("resume: mid-epoch, the training metrics of the resumed epoch cover the later batches only (warned)") {
    TempDir tmp("resume_mid_metrics");
    auto fit = [&](const fs::path& dir, int epochs, std::int64_t crash_step, fs::path resume) {
        Net net(4, 6, 1);
        ModelCheckpoint mc({.filepath = dir / "b{epoch}-{batch}.safetensors", .save_freq = 4});
        Crash crash;
        crash.at_step = crash_step;
        traincb::Trainer trainer(net);
        History h = trainer.fit(data().x, data().y,
                                {.epochs = epochs,
                                 .batch_size = 8,
                                 .seed = 3,
                                 .validation_data = traincb::ValidationData<double>{data().xv, data().yv},
                                 .metrics = {std::make_shared<traincb::metrics::MeanAbsoluteError>()},
                                 .resume_from = std::move(resume)},
                                crash, mc);
        return std::make_pair(h, state_of(net));
    };
    const auto [hs, ms] = fit(tmp / "a", 4, -1, {});
    CHECK_THROWS(fit(tmp / "b", 4, 22, {}));  // newest checkpoint: global step 20 = epoch 2, batch 4
    Warnings w;
    const auto [hr, mr] = fit(tmp / "b", 4, -1, tmp / "b");
    CHECK(w.messages.size() == 1);
    CHECK(w.any_contains("resumed in the middle of epoch 3 (after batch 4 of 8)"));
    CHECK(same_state(mr, ms));
    CHECK(hr.at("loss") == hs.at("loss"));
    CHECK(hr.at("val_loss") == hs.at("val_loss"));
    CHECK(hr.at("val_mean_absolute_error") == hs.at("val_mean_absolute_error"));
    const auto& mae_s = hs.at("mean_absolute_error");
    const auto& mae_r = hr.at("mean_absolute_error");
    CHECK(mae_r[0] == mae_s[0]);
    CHECK(mae_r[1] == mae_s[1]);
    CHECK(mae_r[2] != mae_s[2]);  // the resumed epoch: batches 5..8 only
    CHECK(mae_r[3] == mae_s[3]);
}

TEST_CASE("resume: a checkpoint of a stopped run ends the same way, training nothing more") {
    TempDir tmp("resume_stopped");
    Rig straight(tmp / "a", false, 1);
    const History hs = straight.fit(60);
    REQUIRE(hs.end.kind == traincb::EndKind::Stopped);
    REQUIRE(hs.size() < 60);
    fs::copy(tmp / "a", tmp / "b", fs::copy_options::recursive);  // as if killed right after the last save
    Warnings w;  // none expected: the state keys do not depend on the directory
    Rig resumed(tmp / "b", false, 1);
    const History hr = resumed.fit(60, tmp / "b/ckpt/last.safetensors");
    CHECK(resumed.count.batches == 0);
    CHECK(hr.end.kind == traincb::EndKind::Stopped);
    CHECK(hr.end.source == "EarlyStopping");
    CHECK(hr.end.reason == "patience");
    CHECK(same_state(state_of(resumed.net), state_of(straight.net)));  // best weights restored from the snapshot
    CHECK(same_history(hr, hs));
    CHECK(slurp(tmp / "b/history.csv") == slurp(tmp / "a/history.csv"));
    CHECK(w.all().empty());
}

TEST_CASE("resume: save_freq keeps its global-step rhythm across a resume") {
    TempDir tmp("resume_rhythm");
    Rig straight(tmp / "a");
    REQUIRE(straight.fit(5).size() == 5);
    {
        Rig crashing(tmp / "b");
        crashing.crash.at = 2;
        CHECK_THROWS(crashing.fit(5));
    }
    Rig resumed(tmp / "b");
    (void)resumed.fit(5, tmp / "b/ckpt");
    // Global steps 3, 6, ..., 39 of 40: the same files whether or not the run was interrupted.
    const auto names = names_in(tmp / "a/steps");
    CHECK(names.size() == 13);
    CHECK(names.count("s1-3.safetensors") == 1);
    CHECK(names.count("s5-7.safetensors") == 1);
    CHECK(names_in(tmp / "b/steps") == names);
}

TEST_CASE("resume: resume_from rules for directories, missing paths and weights files") {
    TempDir tmp("resume_rules");
    Rig fresh(tmp / "fresh");
    const History hf = fresh.fit(3);
    {
        INFO("an empty directory starts a fresh run, with a warning");
        fs::create_directories(tmp / "empty/ckpt");
        Warnings w;
        Rig r(tmp / "empty");
        const History h = r.fit(3, tmp / "empty/ckpt");
        CHECK(w.any_contains("holds no valid checkpoint yet; starting a fresh run"));
        CHECK(same_history(h, hf));
    }
    {
        INFO("a missing directory (no .safetensors extension) starts a fresh run, with a warning");
        Warnings w;
        Rig r(tmp / "missing");
        const History h = r.fit(3, tmp / "missing/ckpt");
        CHECK(w.any_contains("does not exist yet (taken as a checkpoint directory); starting a fresh run"));
        CHECK(same_history(h, hf));
    }
    {
        INFO("a missing .safetensors file is an IoError");
        Rig r(tmp / "nofile");
        CHECK_THROWS_AS(r.fit(3, tmp / "nofile/last.safetensors"), traincb::IoError);
    }
    {
        INFO("a weights file cannot resume a run");
        Rig r(tmp / "weights");
        const auto weights = *names_in(tmp / "fresh/steps").begin();
        CHECK_THROWS_WITH(r.fit(3, tmp / "fresh/steps" / weights), Catch::Contains("weights-only checkpoint"));
    }
    {
        INFO("a corrupted file is a FormatError");
        Rig r(tmp / "corrupt");
        std::string bytes = slurp(tmp / "fresh/ckpt/last.safetensors");
        bytes.back() = static_cast<char>(bytes.back() ^ 1);
        spit(tmp / "corrupt/c.safetensors", bytes);
        CHECK_THROWS_AS(r.fit(3, tmp / "corrupt/c.safetensors"), traincb::FormatError);
    }
}

TEST_CASE("resume: changed options are named, a mid-epoch checkpoint refuses another data order") {
    TempDir tmp("resume_changed");
    {
        Rig r(tmp / "a");
        r.crash.at_step = 13;  // in epoch 1: the newest full checkpoint is last.safetensors of epoch 0
        CHECK_THROWS(r.fit(4));
    }
    // A full mid-epoch checkpoint to test with (the position is all that matters here).
    io::Checkpoint c = io::load_checkpoint(tmp / "a/ckpt/last.safetensors");
    c.position = {2, false, 3, 19};
    io::save_checkpoint(tmp / "mid.safetensors", c);

    Net net(4, 6, 1);
    traincb::Trainer trainer(net);
    traincb::FitOptions<double> o{.epochs = 4,
                                  .batch_size = 16,
                                  .seed = 11,
                                  .validation_data = traincb::ValidationData<double>{data().xv, data().yv},
                                  .resume_from = tmp / "mid.safetensors"};
    {
        Warnings w;
        CHECK_THROWS_WITH(trainer.fit(data().x, data().y, o),
                          Catch::Contains("batch_size, steps_per_epoch changed since"));
        CHECK(w.any_contains("'batch_size' changed since the checkpoint (was 8, now 16)"));
    }
    {
        INFO("an epoch-boundary checkpoint continues with the new batch size, with a warning");
        Warnings w;
        o.resume_from = tmp / "a/ckpt/last.safetensors";
        o.initial_epoch = 1;
        const History h = trainer.fit(data().x, data().y, o);
        CHECK(w.any_contains("'batch_size' changed since the checkpoint (was 8, now 16); the new value applies"));
        CHECK(w.any_contains("'seed'") == false);
        CHECK(w.any_contains("initial_epoch 1 is ignored") == false);
        CHECK(w.any_contains("has no state for") == false);
        // No callback in this fit: every saved state is reported as unused.
        CHECK(w.any_contains("holds state for 'EarlyStopping:val_loss', which no callback of this run has"));
        CHECK(h.size() == 4);
    }
    {
        INFO("a callback whose key is not in the checkpoint starts fresh, named in a warning");
        Warnings w;
        traincb::EarlyStopping other({.monitor = "loss", .patience = 3});
        o.initial_epoch = 0;
        (void)trainer.fit(data().x, data().y, o, other);
        CHECK(w.any_contains(
            "the checkpoint holds no state for callback 'EarlyStopping:loss' (EarlyStopping); it starts fresh"));
    }
    {
        INFO("initial_epoch other than the checkpoint's is ignored, with a warning");
        Warnings w;
        o.initial_epoch = 3;
        (void)trainer.fit(data().x, data().y, o);
        CHECK(w.any_contains(
            "initial_epoch 3 is ignored; the run continues where the checkpoint left off (initial_epoch 1)"));
    }
}

TEST_CASE("resume: a model without visit_state cannot resume") {
    struct Plain {
        Eigen::MatrixXd w = Eigen::MatrixXd::Zero(4, 1);
        double train_batch(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
            const Eigen::MatrixXd e = x * w - y;
            w -= 0.1 * x.transpose() * e / static_cast<double>(x.rows());
            return e.squaredNorm() / static_cast<double>(e.size());
        }
        Eigen::MatrixXd predict(const Eigen::MatrixXd& x) const { return x * w; }
    } plain;
    traincb::Trainer trainer(plain);
    CHECK_THROWS_WITH(trainer.fit(data().x, data().y, {.epochs = 1, .resume_from = "somewhere"}),
                      Catch::Contains("resume_from is set, but the model has no visit_state"));
}
