// Tests for resuming a run (FitOptions::resume_from, trainer.hpp with io/checkpoint.hpp): train N
// epochs straight versus train k epochs (or crash), then new model, trainer and callback objects
// resume to N: identical model tensors, History, EarlyStopping / ReduceLROnPlateau /
// ModelCheckpoint state and CSV bytes; the same from a mid-epoch checkpoint, training metrics
// included (and the warning naming a metric that cannot be restored); a run that had stopped
// stays stopped; and every rule of resume_from (directories, missing files, weights files,
// changed options, missing callback states).
#include "catch.hpp"

#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/trainer.hpp>

#include <map>
#include <memory>

#include "checkpoint_test_support.hpp"
#include "checkpoint_v1.hpp"

namespace test_resume {

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::History;
using traincb::ModelCheckpoint;

namespace {

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
                .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
                .resume_from = std::move(resume)};
    }
    History fit(int epochs, fs::path resume = {}) {
        traincb::Trainer trainer(net);
        return trainer.fit(resume_data().x, resume_data().y, options(epochs, std::move(resume)), crash, es, rlr, best,
                           steps, count, logger);
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
    CHECK(read_bytes(resumed.dir / "history.csv") == read_bytes(straight.dir / "history.csv"));
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

// An EarlyStopping with several monitors (docs/early-stopping-rules.md, "Several monitors"):
// each monitor's best, best_epoch and wait, and the primary's snapshot, come through the
// checkpoint, so a run crashed and resumed takes the same decisions as one that never stopped.
TEST_CASE("resume: EarlyStopping with several monitors resumes bit-identically") {
    struct MultiRig {
        fs::path dir;
        Net net{4, 6, 1};
        Crash crash;
        traincb::EarlyStopping es{
            {.patience = 3,
             .restore_best_weights = true,
             .monitors = {{.key = "val_loss", .min_delta = 1e-3}, {.key = "loss", .min_delta = 1e-2}}}};
        ModelCheckpoint ckpt;
        explicit MultiRig(const fs::path& d)
            : dir(d), ckpt({.filepath = d / "ckpt/e{epoch:02d}.safetensors", .save_top_k = -1}) {
            fs::create_directories(d);
        }
        History fit(int epochs, fs::path resume = {}) {
            traincb::Trainer trainer(net);
            const traincb::FitOptions<double> o{
                .epochs = epochs,
                .batch_size = 8,
                .seed = 11,
                .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
                .resume_from = std::move(resume)};
            return trainer.fit(resume_data().x, resume_data().y, o, crash, es, ckpt);
        }
    };
    TempDir tmp("resume_multi_monitor");
    MultiRig straight(tmp / "a");
    const History hs = straight.fit(60);
    // The scenario exercises the rule: loss is exhausted from epoch 7 while val_loss still
    // improves (best at 8), so the stop comes at 11, from val_loss; the monitors' best epochs differ.
    REQUIRE(hs.end.kind == traincb::EndKind::Stopped);
    REQUIRE(hs.end.reason == "patience");
    REQUIRE(straight.es.stopped_epoch() == 11);
    REQUIRE(straight.es.best_epoch("val_loss") == 8);
    REQUIRE(straight.es.best_epoch("loss") == 4);
    {
        MultiRig crashing(tmp / "b");
        crashing.crash.at = 6;  // the newest checkpoint is from epoch 5: both monitors have wait 1
        CHECK_THROWS(crashing.fit(60));
    }
    Warnings w;
    MultiRig resumed(tmp / "b");
    const History hr = resumed.fit(60, tmp / "b/ckpt");
    CHECK(w.all().empty());
    CHECK(hr.end.kind == hs.end.kind);
    CHECK(hr.end.reason == hs.end.reason);
    CHECK(same_history(hr, hs));
    CHECK(same_state(state_of(resumed.net), state_of(straight.net)));  // the primary's best epoch, restored
    traincb::CallbackState a, b;
    straight.es.save_state(a);
    resumed.es.save_state(b);
    CHECK(b.json == a.json);
    CHECK(same_state(b.tensors, a.tensors));
    CHECK(b.json.at("monitors").size() == 2);
}

namespace {

// Binary targets (y > 0 of the regression data), so that accuracy, AUC and precision apply; the
// model still fits them by least squares.
struct BinaryData {
    Eigen::MatrixXd x, y, xv, yv;
    BinaryData() {
        const auto binarize = [](const Eigen::MatrixXd& m) { return (m.array() > 0).cast<double>().matrix().eval(); };
        x = resume_data().x;
        y = binarize(resume_data().y);
        xv = resume_data().xv;
        yv = binarize(resume_data().yv);
    }
};
const BinaryData& binary_data() {
    static const BinaryData d;
    return d;
}

// A user-defined metric without saved state (the defaults of save_state / load_state): the mean of
// y_pred.
struct MeanPrediction final : traincb::metrics::Metric {
    double sum = 0;
    double n = 0;
    [[nodiscard]] std::string name() const override { return "mean_prediction"; }
    [[nodiscard]] traincb::Direction direction() const noexcept override { return traincb::Direction::Max; }
    void update(const Eigen::Ref<const Eigen::MatrixXd>&, const Eigen::Ref<const Eigen::MatrixXd>& p) override {
        sum += p.sum();
        n += static_cast<double>(p.size());
    }
    void update(const Eigen::Ref<const Eigen::MatrixXf>&, const Eigen::Ref<const Eigen::MatrixXf>& p) override {
        sum += static_cast<double>(p.sum());
        n += static_cast<double>(p.size());
    }
    [[nodiscard]] double result() const override { return sum / n; }
    void reset() override { sum = n = 0; }
    void merge(const traincb::metrics::Metric&) override {}
    [[nodiscard]] std::unique_ptr<traincb::metrics::Metric> clone() const override {
        return std::make_unique<MeanPrediction>(*this);
    }
};

// Every kind of built-in state (a compensated mean, per-class counts, every score) and, with
// `plain`, a metric that saves none.
std::vector<std::shared_ptr<traincb::metrics::Metric>> training_metrics(double threshold = 0.5, bool plain = false) {
    namespace m = traincb::metrics;
    std::vector<std::shared_ptr<m::Metric>> v{
        std::make_shared<m::BinaryAccuracy>(m::BinaryAccuracyOptions{.name = "accuracy", .threshold = threshold}),
        std::make_shared<m::MeanAbsoluteError>(), std::make_shared<m::Precision>(), std::make_shared<m::RocAuc>()};
    if (plain) v.push_back(std::make_shared<MeanPrediction>());
    return v;
}

// Records the logs of every epoch end and batch end (the running means), by global step.
struct LogRecorder final : traincb::Callback {
    std::map<int, traincb::Logs> epochs;
    std::map<std::int64_t, traincb::Logs> batches;
    void on_epoch_end(traincb::Context& c) override { epochs[c.epoch()] = c.logs(); }
    void on_train_batch_end(traincb::Context& c) override { batches[c.global_step()] = c.logs(); }
};

struct MetricRun {
    History history;
    traincb::StateDict model;
    LogRecorder logs;
};

// A run with training metrics and batch-level full checkpoints every 4 global steps in `dir`,
// crashing at `crash_step` (when >= 0), resuming from `resume` (when set).
// The seed gives batches for which every metric restarted at the resume differs from the
// straight run (a ratio such as the accuracy of the later batches alone can equal the epoch's).
MetricRun fit_with_metrics(const fs::path& dir, std::int64_t crash_step, fs::path resume,
                           std::vector<std::shared_ptr<traincb::metrics::Metric>> metrics) {
    Net net(4, 6, 1);
    ModelCheckpoint mc({.filepath = dir / "b{epoch}-{batch}.safetensors", .save_freq = 4});
    Crash crash;
    crash.at_step = crash_step;
    MetricRun run;
    traincb::Trainer trainer(net);
    run.history = trainer.fit(binary_data().x, binary_data().y,
                              {.epochs = 4,
                               .batch_size = 8,
                               .seed = 5,
                               .validation_data = traincb::ValidationData<double>{binary_data().xv, binary_data().yv},
                               .metrics = std::move(metrics),
                               .resume_from = std::move(resume)},
                              crash, mc, run.logs);
    run.model = state_of(net);
    return run;
}

bool same_logs(const traincb::Logs& a, const traincb::Logs& b) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a)
        if (!b.contains(k) || !same_bits(v, b.at(k))) return false;
    return true;
}

}  // namespace

TEST_CASE("resume: mid-epoch, the training metrics continue exactly: History and logs bit-identical") {
    TempDir tmp("resume_mid_metrics");
    const MetricRun straight = fit_with_metrics(tmp / "a", -1, {}, training_metrics());
    // newest checkpoint: global step 20 = epoch 2 (0-based), batch 4 of 8
    CHECK_THROWS(fit_with_metrics(tmp / "b", 22, {}, training_metrics()));
    REQUIRE(io::find_latest_checkpoint(tmp / "b") == tmp / "b/b3-4.safetensors");
    const io::Checkpoint c = io::load_checkpoint(tmp / "b/b3-4.safetensors");
    REQUIRE(c.train_metrics.is_object());
    CHECK(c.train_metrics.size() == 4);
    CHECK(c.train_metrics.at("accuracy").at("kind") == "BinaryAccuracy");
    // RocAuc's scores are tensors, their counts in the JSON: 4 batches of 8 samples so far.
    CHECK(c.train_metrics.at("auc").at("positive_count").get<int>() +
              c.train_metrics.at("auc").at("negative_count").get<int>() ==
          32);
    CHECK(c.train_metric_tensors.at("auc").size() == 2);

    Warnings w;
    const MetricRun resumed = fit_with_metrics(tmp / "b", -1, tmp / "b", training_metrics());
    INFO(w.all());
    CHECK(w.messages.empty());
    CHECK(same_state(resumed.model, straight.model));
    CHECK(same_history(resumed.history, straight.history));
    for (const char* key : {"accuracy", "mean_absolute_error", "precision", "auc", "loss"}) {
        INFO(key);
        CHECK(resumed.history.at(key) == straight.history.at(key));  // including epoch 3, the resumed one
    }
    // The epoch logs of the epochs run after the resume, and the running values of every batch.
    REQUIRE(resumed.logs.epochs.size() == 2);
    for (const auto& [epoch, logs] : resumed.logs.epochs) {
        INFO("epoch " << epoch);
        CHECK(same_logs(logs, straight.logs.epochs.at(epoch)));
    }
    REQUIRE(resumed.logs.batches.size() == 12);
    for (const auto& [step, logs] : resumed.logs.batches) {
        INFO("global step " << step);
        CHECK(same_logs(logs, straight.logs.batches.at(step)));
    }
}

TEST_CASE("resume: checkpoints in the version-1 layout (History and metric states as JSON) resume bit-identically") {
    TempDir tmp("resume_v1");
    {
        INFO("an epoch-boundary checkpoint");
        Rig straight(tmp / "a");
        const History hs = straight.fit(14);
        REQUIRE(hs.size() >= 8);
        {
            Rig first(tmp / "b");
            (void)first.fit(5);
        }
        const fs::path last = tmp / "b/ckpt/last.safetensors";
        ckpt_v1::write_as_v1(last, last);
        REQUIRE(nlohmann::json::parse(io::load_safetensors(last).metadata.at("traincb.state"))
                    .at("history")
                    .at("values")
                    .at("val_loss")
                    .size() == 5);
        Rig resumed(tmp / "b");
        const History hr = resumed.fit(14, last);
        require_same_run(straight, hs, resumed, hr);
        // What the resumed run wrote is in the current layout again.
        CHECK(nlohmann::json::parse(io::load_safetensors(last).metadata.at("traincb.state")).at("format_version") == 2);
    }
    {
        INFO("a mid-epoch checkpoint with training metric states, RocAuc's scores as JSON arrays");
        const MetricRun straight = fit_with_metrics(tmp / "m_a", -1, {}, training_metrics());
        CHECK_THROWS(fit_with_metrics(tmp / "m_b", 22, {}, training_metrics()));
        const fs::path ckpt = tmp / "m_b/b3-4.safetensors";
        ckpt_v1::write_as_v1(ckpt, ckpt);
        const io::Checkpoint old = io::load_checkpoint(ckpt);
        REQUIRE(old.train_metrics.at("auc").at("positives").size() +
                    old.train_metrics.at("auc").at("negatives").size() ==
                32);
        REQUIRE(old.train_metric_tensors.empty());
        Warnings w;
        const MetricRun resumed = fit_with_metrics(tmp / "m_b", -1, ckpt, training_metrics());
        INFO(w.all());
        CHECK(w.messages.empty());  // every metric restored
        CHECK(same_state(resumed.model, straight.model));
        CHECK(same_history(resumed.history, straight.history));
        for (const auto& [epoch, logs] : resumed.logs.epochs) {
            INFO("epoch " << epoch);
            CHECK(same_logs(logs, straight.logs.epochs.at(epoch)));
        }
    }
}

TEST_CASE("resume: a metric that cannot be restored restarts at the resume, named in one warning") {
    TempDir tmp("resume_mid_metrics_warn");
    const MetricRun straight = fit_with_metrics(tmp / "a", -1, {}, training_metrics(0.5, true));
    CHECK_THROWS(fit_with_metrics(tmp / "b", 22, {}, training_metrics(0.5, true)));
    const fs::path ckpt = tmp / "b/b3-4.safetensors";
    const std::string where =
        "resumed in the middle of epoch 3 (after batch 4 of 8): the training loss is restored "
        "exactly, but these training metrics restart, so this epoch's values of them cover only "
        "the batches after the resume: ";
    // The values of the resumed epoch (index 2) differ when a metric restarted there, as the
    // batches before the resume are missing from it; the other epochs are untouched.
    const auto restarted = [&](const History& h, const char* key) {
        const auto &r = h.at(key), &s = straight.history.at(key);
        return r[0] == s[0] && r[1] == s[1] && r[2] != s[2] && r[3] == s[3];
    };
    {
        INFO("a user-defined metric without saved state: only it restarts");
        REQUIRE(io::load_checkpoint(ckpt).train_metrics.at("mean_prediction").is_null());
        Warnings w;
        const MetricRun r = fit_with_metrics(tmp / "b", -1, ckpt, training_metrics(0.5, true));
        INFO(w.all());
        REQUIRE(w.messages.size() == 1);
        CHECK(w.any_contains(where + "'mean_prediction' (its class does not implement metrics::Metric::save_state and "
                                     "load_state)"));
        CHECK(restarted(r.history, "mean_prediction"));
        CHECK(r.history.at("accuracy") == straight.history.at("accuracy"));
        CHECK(r.history.at("auc") == straight.history.at("auc"));
        CHECK(r.history.at("loss") == straight.history.at("loss"));
        CHECK(same_state(r.model, straight.model));
    }
    {
        INFO("a checkpoint written before metric states were saved: every metric restarts");
        io::Checkpoint old = io::load_checkpoint(ckpt);
        old.train_metrics = nullptr;  // the file then has no "train_metrics", as older files
        io::save_checkpoint(tmp / "old/old.safetensors", old);
        Warnings w;
        const MetricRun r = fit_with_metrics(tmp / "old", -1, tmp / "old/old.safetensors", training_metrics(0.5, true));
        INFO(w.all());
        REQUIRE(w.messages.size() == 1);
        CHECK(w.any_contains(where + "'accuracy' (the checkpoint holds no training metric states: it predates them, "
                                     "or its driver saves none); 'mean_absolute_error' ("));
        for (const char* key : {"accuracy", "mean_absolute_error", "auc", "mean_prediction"}) {
            INFO(key);
            CHECK(restarted(r.history, key));
        }
        CHECK(r.history.at("loss") == straight.history.at("loss"));  // the loss is exact all the same
        CHECK(r.history.at("val_accuracy") == straight.history.at("val_accuracy"));
        CHECK(same_state(r.model, straight.model));
    }
    {
        INFO("a metric with other options (the new ones win) or one the checkpoint does not know");
        auto metrics = training_metrics(0.25, false);
        metrics.push_back(std::make_shared<traincb::metrics::MeanSquaredError>());
        Warnings w;
        const MetricRun r = fit_with_metrics(tmp / "c", -1, ckpt, metrics);
        INFO(w.all());
        CHECK(w.messages.size() == 1);
        CHECK(w.any_contains(where +
                             "'accuracy' (traincb: metrics::BinaryAccuracy::load_state: 'accuracy' has threshold 0.25 "
                             "but the state was saved with threshold 0.5; build the metric with .threshold = 0.5 to "
                             "load it); 'mean_squared_error' (the checkpoint holds no state for it)"));
        CHECK(r.history.at("auc") == straight.history.at("auc"));  // the others are restored
        CHECK(r.history.at("mean_absolute_error") == straight.history.at("mean_absolute_error"));
    }
}

TEST_CASE("checkpoint: training metric states round-trip, a malformed one is a FormatError") {
    TempDir tmp("resume_metric_states_format");
    CHECK_THROWS(fit_with_metrics(tmp / "a", 22, {}, training_metrics()));
    const fs::path ckpt = tmp / "a/b3-4.safetensors";
    const io::Checkpoint c = io::load_checkpoint(ckpt);
    {
        INFO("what a file holds is what was captured, and is re-saved unchanged");
        io::save_checkpoint(tmp / "copy.safetensors", c);
        CHECK(io::load_checkpoint(tmp / "copy.safetensors").train_metrics == c.train_metrics);
    }
    {
        INFO("an epoch-boundary checkpoint holds none (metrics restart every epoch)");
        io::Checkpoint boundary = c;
        boundary.position = {2, true, 8, 24};
        io::save_checkpoint(tmp / "boundary.safetensors", boundary);
        CHECK(io::load_checkpoint(tmp / "boundary.safetensors").train_metrics.is_null());
    }
    {
        INFO("'train_metrics' must be an object of objects or nulls");
        io::Checkpoint bad = c;
        bad.train_metrics = nlohmann::json::array();
        io::save_checkpoint(tmp / "bad1.safetensors", bad);
        CHECK_THROWS_MATCHES(io::load_checkpoint(tmp / "bad1.safetensors"), traincb::FormatError,
                             Catch::Message("traincb: checkpoint: '" + (tmp / "bad1.safetensors").string() +
                                            "': 'train_metrics' is array, expected an object of metric states by log "
                                            "key"));
        bad.train_metrics = {{"accuracy", 1}};
        io::save_checkpoint(tmp / "bad2.safetensors", bad);
        CHECK_THROWS_WITH(io::load_checkpoint(tmp / "bad2.safetensors"),
                          Catch::Contains("'train_metrics' holds number for 'accuracy', expected a metric state (an "
                                          "object) or null"));
    }
    {
        INFO("a malformed state of one metric stops the resume with a FormatError naming it");
        io::Checkpoint bad = c;
        bad.train_metrics["accuracy"]["count"] = -4;
        io::save_checkpoint(tmp / "bad3/bad3.safetensors", bad);
        CHECK_THROWS_MATCHES(
            fit_with_metrics(tmp / "bad3", -1, tmp / "bad3/bad3.safetensors", training_metrics()), traincb::FormatError,
            Catch::Message("traincb: Trainer::fit: resuming from '" + (tmp / "bad3/bad3.safetensors").string() +
                           "': the state of training metric 'accuracy' is unusable: traincb: "
                           "metrics::BinaryAccuracy::load_state: the state given to 'accuracy' has 'count' = -4, not "
                           "a whole number >= 0; pass the JSON that save_state of the same class wrote"));
    }
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
    CHECK(read_bytes(tmp / "b/history.csv") == read_bytes(tmp / "a/history.csv"));
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
        CHECK(w.any_contains("holds no full checkpoint yet; starting a fresh run"));
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
        std::string bytes = read_bytes(tmp / "fresh/ckpt/last.safetensors");
        bytes.back() = static_cast<char>(bytes.back() ^ 1);
        write_bytes(tmp / "corrupt/c.safetensors", bytes);
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
    traincb::FitOptions<double> o{
        .epochs = 4,
        .batch_size = 16,
        .seed = 11,
        .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
        .resume_from = tmp / "mid.safetensors"};
    {
        Warnings w;
        CHECK_THROWS_WITH(trainer.fit(resume_data().x, resume_data().y, o),
                          Catch::Contains("batch_size, steps_per_epoch changed since"));
        CHECK(w.any_contains("'batch_size' changed since the checkpoint (was 8, now 16)"));
    }
    {
        INFO("an epoch-boundary checkpoint continues with the new batch size, with a warning");
        Warnings w;
        o.resume_from = tmp / "a/ckpt/last.safetensors";
        o.initial_epoch = 1;
        const History h = trainer.fit(resume_data().x, resume_data().y, o);
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
        (void)trainer.fit(resume_data().x, resume_data().y, o, other);
        CHECK(w.any_contains(
            "the checkpoint holds no state for callback 'EarlyStopping:loss' (EarlyStopping); it starts fresh"));
    }
    {
        INFO("initial_epoch other than the checkpoint's is ignored, with a warning");
        Warnings w;
        o.initial_epoch = 3;
        (void)trainer.fit(resume_data().x, resume_data().y, o);
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
    CHECK_THROWS_WITH(trainer.fit(resume_data().x, resume_data().y, {.epochs = 1, .resume_from = "somewhere"}),
                      Catch::Contains("resume_from is set, but the model has no visit_state"));
}

}  // namespace test_resume
