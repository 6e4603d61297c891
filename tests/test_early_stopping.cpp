// Tests for traincb/callbacks/early_stopping.hpp. The expected values of the vector test come from
// tests/spec/early-stopping-vectors.json (the worked cases of docs/early-stopping-rules.md, each
// naming its source); the other cases are derived by hand from the rules in that page.
#include "catch.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>

namespace {

using traincb::CallbackList;
using traincb::EarlyStopping;
using traincb::EarlyStoppingOptions;
using traincb::Logs;

// A model whose whole state is one number: the epoch whose end it was last set to.
struct TinyModel {
    double tag = -1;
    void visit_state(traincb::StateVisitor& v) { traincb::visit(v, "tag", tag); }
};
struct StatelessModel {};

double json_number(const nlohmann::json& v) {
    if (v.is_string()) {
        const auto s = v.get<std::string>();
        if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
        if (s == "Infinity") return std::numeric_limits<double>::infinity();
        if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
        FAIL("bad number string " << s);
    }
    return v.get<double>();
}

EarlyStoppingOptions options_from(const nlohmann::json& c) {
    EarlyStoppingOptions o;
    if (c.contains("monitor")) o.monitor = c["monitor"].get<std::string>();
    if (c.contains("mode")) o.mode = traincb::parse_mode(c["mode"].get<std::string>());
    if (c.contains("min_delta")) o.min_delta = c["min_delta"].get<double>();
    if (c.contains("min_delta_mode"))
        o.min_delta_mode = traincb::parse_delta_mode(c["min_delta_mode"].get<std::string>());
    if (c.contains("patience")) o.patience = c["patience"].get<int>();
    if (c.contains("baseline")) o.baseline = json_number(c["baseline"]);
    if (c.contains("start_from_epoch")) o.start_from_epoch = c["start_from_epoch"].get<int>();
    if (c.contains("restore_best_weights")) o.restore_best_weights = c["restore_best_weights"].get<bool>();
    if (c.contains("stopping_threshold")) o.stopping_threshold = json_number(c["stopping_threshold"]);
    if (c.contains("divergence_threshold")) o.divergence_threshold = json_number(c["divergence_threshold"]);
    if (c.contains("check_finite")) o.check_finite = c["check_finite"].get<bool>();
    return o;
}

nlohmann::json load_vectors() {
    std::ifstream in(std::string(TRAINCB_SPEC_DIR) + "/early-stopping-vectors.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
}

// Runs one vector through a CallbackList exactly as a training loop would, and returns the
// replay-style summary.
nlohmann::json run_vector(const nlohmann::json& v) {
    nlohmann::json out;
    std::unique_ptr<EarlyStopping> es;
    try {
        es = std::make_unique<EarlyStopping>(options_from(v["config"]));
    } catch (const std::invalid_argument& e) {
        return {{"error", std::string(e.what()).find("cannot infer") != std::string::npos ? "cannot_infer_mode"
                                                                                          : "invalid_argument"}};
    }
    TinyModel model;
    CallbackList cbs(*es);
    cbs.set_model(model);
    const int initial = v.value("initial_epoch", 0);
    const auto& hist = v["history"];
    cbs.set_params({.epochs = initial + static_cast<int>(hist.size()), .initial_epoch = initial});
    try {
        cbs.on_train_begin();
    } catch (const std::invalid_argument& e) {
        return {{"error", std::string(e.what()).find("cannot infer") != std::string::npos ? "cannot_infer_mode"
                                                                                          : "invalid_argument"}};
    }
    int epochs_run = 0;
    for (std::size_t i = 0; i < hist.size(); ++i) {
        const int epoch = initial + static_cast<int>(i);
        cbs.on_epoch_begin(epoch);
        model.tag = epoch;  // "training" this epoch leaves the model in state `epoch`
        Logs logs;
        for (const auto& [k, val] : hist[i].items()) logs.set(k, json_number(val));
        cbs.on_epoch_end(epoch, logs);
        ++epochs_run;
        if (cbs.stop_requested()) break;
    }
    cbs.on_train_end();
    out["mode"] = traincb::to_string(*es->direction());
    out["stopped_epoch"] = es->stopped_epoch() ? nlohmann::json(*es->stopped_epoch()) : nlohmann::json();
    out["stop_reason"] = es->stopped_epoch() ? nlohmann::json(traincb::to_string(es->stop_reason())) : nlohmann::json();
    out["best_epoch"] = es->best_epoch() ? nlohmann::json(*es->best_epoch()) : nlohmann::json();
    out["best"] = es->best() ? nlohmann::json(*es->best()) : nlohmann::json();
    out["wait"] = es->wait();
    out["epochs_run"] = epochs_run;
    out["restored_from_epoch"] =
        es->restored_from_epoch() ? nlohmann::json(*es->restored_from_epoch()) : nlohmann::json();
    if (es->restored_from_epoch()) {
        // The model really holds the best epoch's state.
        CHECK(model.tag == static_cast<double>(*es->restored_from_epoch()));
    }
    return out;
}

}  // namespace

TEST_CASE("EarlyStopping passes every vector of early-stopping-vectors.json") {
    const auto vectors = load_vectors()["vectors"];
    REQUIRE(vectors.size() >= 30);
    for (const auto& v : vectors) {
        INFO("vector " << v["name"].get<std::string>());
        const auto got = run_vector(v);
        const auto& exp = v["expected"];
        if (exp.contains("error")) {
            CHECK(got.value("error", "") == exp["error"].get<std::string>());
            continue;
        }
        REQUIRE_FALSE(got.contains("error"));
        for (const auto& key :
             {"mode", "stopped_epoch", "stop_reason", "best_epoch", "wait", "epochs_run", "restored_from_epoch"}) {
            INFO("field " << key << ": got " << got[key].dump() << ", expected " << exp[key].dump());
            CHECK(got[key] == exp[key]);
        }
        if (exp["best"].is_null()) {
            CHECK(got["best"].is_null());
        } else {
            CHECK(got["best"].get<double>() == json_number(exp["best"]));
        }
    }
}

TEST_CASE("EarlyStopping rejects invalid options at construction with a message naming the value") {
    auto msg_of = [](EarlyStoppingOptions o) {
        try {
            EarlyStopping es(std::move(o));
        } catch (const traincb::InvalidArgument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    CHECK(msg_of({.patience = -3}).find("patience must be >= 0, got -3") != std::string::npos);
    CHECK(msg_of({.min_delta = -0.1}).find("min_delta must be a finite number >= 0, got -0.1") != std::string::npos);
    CHECK(msg_of({.start_from_epoch = -1}).find("start_from_epoch") != std::string::npos);
    CHECK(msg_of({.monitor = ""}).find("monitor is empty") != std::string::npos);
    CHECK(msg_of({.baseline = std::nan("")}).find("baseline is NaN") != std::string::npos);
    CHECK_THROWS_WITH(traincb::parse_mode("minimum"), Catch::Contains("unknown mode 'minimum'"));
    CHECK_THROWS_WITH(traincb::parse_delta_mode("percent"), Catch::Contains("unknown min_delta_mode 'percent'"));
}

TEST_CASE("EarlyStopping: Auto mode on an unknown name fails at train begin, not at epoch 37") {
    EarlyStopping es({.monitor = "val_my_metric"});
    CallbackList cbs(es);
    CHECK_THROWS_WITH(cbs.on_train_begin(), Catch::Contains("cannot infer") && Catch::Contains("Mode::Max"));
}

TEST_CASE("EarlyStopping: Auto mode uses a metric object's declared direction") {
    EarlyStopping es({.monitor = "val_my_metric", .patience = 1});
    CallbackList cbs(es);
    cbs.set_params({.epochs = 3, .metric_directions = {{"val_my_metric", traincb::Direction::Max}}});
    cbs.on_train_begin();
    REQUIRE(es.direction() == traincb::Direction::Max);
}

TEST_CASE("EarlyStopping: a monitor typo under strict names the keys and the closest one") {
    EarlyStopping es({.monitor = "val_los", .mode = traincb::Mode::Min});
    CallbackList cbs(es);
    cbs.on_train_begin();
    cbs.on_epoch_begin(0);
    Logs logs{{"loss", 1.0}, {"val_loss", 2.0}};
    CHECK_THROWS_WITH(cbs.on_epoch_end(0, logs), Catch::Contains("val_los") &&
                                                     Catch::Contains("did you mean 'val_loss'") &&
                                                     Catch::Contains("available keys: loss, val_loss"));
}

TEST_CASE("EarlyStopping: the monitor is checked against the keys the driver will log, before epoch 1") {
    EarlyStopping es({.monitor = "val_acuracy", .mode = traincb::Mode::Max});
    CallbackList cbs(es);
    cbs.set_params({.epochs = 5, .has_validation = true, .log_keys = {"accuracy", "loss", "val_accuracy", "val_loss"}});
    CHECK_THROWS_WITH(cbs.on_train_begin(), Catch::Contains("did you mean 'val_accuracy'"));

    EarlyStopping es2({.monitor = "val_loss"});
    CallbackList cbs2(es2);
    cbs2.set_params({.epochs = 5, .has_validation = false, .log_keys = {"loss"}});
    CHECK_THROWS_WITH(cbs2.on_train_begin(), Catch::Contains("there is no validation data"));
}

TEST_CASE("EarlyStopping: strict = false warns once and skips epochs without the monitor") {
    std::vector<std::string> warnings;
    auto old = traincb::set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
    EarlyStopping es({.monitor = "val_los", .mode = traincb::Mode::Min, .patience = 1, .strict = false});
    CallbackList cbs(es);
    cbs.on_train_begin();
    for (int e = 0; e < 3; ++e) {
        Logs logs{{"loss", 1.0}, {"val_loss", 1.0}};
        cbs.on_epoch_end(e, logs);
    }
    traincb::set_warning_handler(old);
    CHECK(warnings.size() == 1);
    CHECK_FALSE(cbs.stop_requested());
    CHECK_FALSE(es.best().has_value());
}

TEST_CASE("EarlyStopping: epochs without validation are skipped and do not count towards patience") {
    EarlyStopping es({.monitor = "val_loss", .patience = 1});
    CallbackList cbs(es);
    cbs.on_train_begin();
    // validation every 2nd epoch: values 1.0 (epoch 1), 2.0 (epoch 3) -> stop at epoch 3 with wait 1.
    for (int e = 0; e < 4; ++e) {
        Logs logs{{"loss", 1.0}};
        if (e % 2 == 1) logs.set("val_loss", e == 1 ? 1.0 : 2.0);
        cbs.on_epoch_end(e, logs);
        if (e < 3) CHECK_FALSE(cbs.stop_requested());
    }
    CHECK(cbs.stop_requested());
    CHECK(es.stopped_epoch() == 3);
    CHECK(es.best_epoch() == 1);
}

TEST_CASE("EarlyStopping: restore_best_weights restores even when training ends with an exception") {
    TinyModel model;
    EarlyStopping es({.monitor = "loss", .patience = 10, .restore_best_weights = true});
    CallbackList cbs(es);
    cbs.set_model(model);
    cbs.on_train_begin();
    const double losses[] = {3.0, 1.0, 2.0};
    for (int e = 0; e < 3; ++e) {
        model.tag = e;
        Logs logs{{"loss", losses[e]}};
        cbs.on_epoch_end(e, logs);
    }
    model.tag = 99;
    cbs.on_train_end(std::make_exception_ptr(std::runtime_error("boom")));
    CHECK(model.tag == 1.0);
    CHECK(es.restored_from_epoch() == 1);
}

TEST_CASE("EarlyStopping: restore_best_weights without model state is an error before the first epoch") {
    StatelessModel model;
    EarlyStopping es({.monitor = "loss", .restore_best_weights = true});
    CallbackList cbs(es);
    cbs.set_model(model);
    CHECK_THROWS_WITH(cbs.on_train_begin(), Catch::Contains("visit_state"));
}

TEST_CASE("EarlyStopping: no snapshot is taken on epochs that do not improve") {
    struct CountingModel {
        int visits = 0;
        double w = 0;
        void visit_state(traincb::StateVisitor& v) {
            ++visits;
            traincb::visit(v, "w", w);
        }
    } model;
    EarlyStopping es({.monitor = "loss", .patience = 10, .restore_best_weights = true});
    CallbackList cbs(es);
    cbs.set_model(model);
    cbs.on_train_begin();
    const double losses[] = {3.0, 2.0, 2.5, 2.6, 1.0, 1.5};  // improvements at epochs 0, 1, 4
    for (int e = 0; e < 6; ++e) {
        Logs logs{{"loss", losses[e]}};
        cbs.on_epoch_end(e, logs);
    }
    CHECK(model.visits == 3);
}

TEST_CASE("EarlyStopping: per-run state is reset, so one instance serves a second run") {
    EarlyStopping es({.monitor = "loss", .patience = 1});
    CallbackList cbs(es);
    for (int run = 0; run < 2; ++run) {
        cbs.on_train_begin();
        const double losses[] = {1.0, 2.0};
        for (int e = 0; e < 2; ++e) {
            Logs logs{{"loss", losses[e] + run}};
            cbs.on_epoch_end(e, logs);
        }
        cbs.on_train_end();
        CHECK(es.best() == 1.0 + run);
        CHECK(es.stopped_epoch() == 1);
        CHECK(cbs.context().end().kind == traincb::EndKind::Stopped);
        CHECK(cbs.context().end().source == "EarlyStopping");
        CHECK(cbs.context().end().reason == "patience");
    }
}

TEST_CASE("EarlyStopping: state round-trips through save_state/load_state") {
    TinyModel model;
    EarlyStopping a({.monitor = "loss", .patience = 3, .restore_best_weights = true});
    CallbackList la(a);
    la.set_model(model);
    la.on_train_begin();
    const double losses[] = {3.0, 1.0, 2.0};
    for (int e = 0; e < 3; ++e) {
        model.tag = e;
        Logs logs{{"loss", losses[e]}};
        la.on_epoch_end(e, logs);
    }
    traincb::CallbackState st;
    a.save_state(st);

    EarlyStopping b({.monitor = "loss", .patience = 3, .restore_best_weights = true});
    CallbackList lb(b);
    lb.set_model(model);
    lb.on_train_begin();
    b.load_state(st, lb.context());
    CHECK(b.best() == 1.0);
    CHECK(b.best_epoch() == 1);
    CHECK(b.wait() == 1);
    model.tag = 42;
    lb.on_train_end();
    CHECK(model.tag == 1.0);  // the best snapshot came through the state
}

TEST_CASE("EarlyStopping: load_state rejects another state version, naming the key and both versions") {
    EarlyStopping a({.monitor = "loss", .patience = 3});
    CallbackList la(a);
    la.on_train_begin();
    Logs logs{{"loss", 1.0}};
    la.on_epoch_end(0, logs);
    traincb::CallbackState st;
    a.save_state(st);
    REQUIRE(st.version == 1);
    st.version = 2;  // a format this traincb does not read
    EarlyStopping b({.monitor = "loss", .patience = 3});
    CallbackList lb(b);
    lb.on_train_begin();
    try {
        b.load_state(st, lb.context());
        FAIL("load_state accepted version 2");
    } catch (const traincb::FormatError& e) {
        const std::string msg = e.what();
        CHECK(msg.starts_with("traincb: EarlyStopping: checkpointed state (key '" + a.state_key() + "')"));
        CHECK(msg.find("version 2 is not readable; this traincb reads version 1") != std::string::npos);
    }
    CHECK_FALSE(b.best().has_value());  // nothing was half-loaded
}

TEST_CASE("EarlyStopping: a malformed checkpointed state is a FormatError and loads nothing") {
    EarlyStopping a({.monitor = "loss", .patience = 3});
    CallbackList la(a);
    la.on_train_begin();
    for (int e = 0; e < 3; ++e) {
        Logs logs{{"loss", 3.0 - e}};
        la.on_epoch_end(e, logs);
    }
    traincb::CallbackState good;
    a.save_state(good);
    // Each corruption of one field; the state is otherwise what save_state wrote.
    const std::vector<std::pair<std::string, nlohmann::json>> bad = {
        {"best", "1.5x"},         {"best", 1.5},         {"wait", -1}, {"wait", "2"}, {"best_epoch", "one"},
        {"stop_reason", "bored"}, {"stopped_epoch", 2.5}};
    for (const auto& [key, value] : bad) {
        CAPTURE(key, value.dump());
        traincb::CallbackState st = good;
        st.json[key] = value;
        EarlyStopping b({.monitor = "loss", .patience = 3});
        CallbackList lb(b);
        lb.on_train_begin();
        try {
            b.load_state(st, lb.context());
            FAIL("load_state accepted a malformed state");
        } catch (const traincb::FormatError& e) {
            CHECK(std::string(e.what()).starts_with(
                "traincb: EarlyStopping: checkpointed state (key 'EarlyStopping:loss') is malformed"));
        }
        CHECK_FALSE(b.best().has_value());  // all or nothing
        CHECK(b.wait() == 0);
    }
    traincb::CallbackState missing = good;
    missing.json.erase("wait");
    EarlyStopping c({.monitor = "loss", .patience = 3});
    CallbackList lc(c);
    lc.on_train_begin();
    REQUIRE_THROWS_AS(c.load_state(missing, lc.context()), traincb::FormatError);
}

namespace {

// A model with one weight vector and the training state of an optimizer: a moment, the learning
// rate (which ReduceLROnPlateau lowers) and a step count.
struct OptimizedModel {
    Eigen::VectorXd w = Eigen::VectorXd::Zero(2);
    Eigen::VectorXd m = Eigen::VectorXd::Zero(2);
    double lr = 0.1;
    std::int64_t step = 0;
    [[nodiscard]] double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit_training_state(v, "m", m);
        traincb::visit_training_state(v, "lr", lr);
        traincb::visit_training_state(v, "step", step);
    }
    // One epoch of "training": the state then records the epoch it ended.
    void train_epoch(int e) {
        w.setConstant(e + 1.0);
        m.setConstant(10.0 * (e + 1));
        ++step;
    }
};

}  // namespace

TEST_CASE("EarlyStopping: restore_best_weights restores the weights, not a lowered learning rate or the optimizer") {
    OptimizedModel model;
    EarlyStopping es({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
    traincb::ReduceLROnPlateau rlr({.monitor = "val_loss", .factor = 0.5, .patience = 1});
    CallbackList cbs(es, rlr);
    cbs.set_model(model);
    cbs.on_train_begin();
    const double val_loss[] = {3.0, 1.0, 2.0, 2.0, 2.0, 2.0};  // best at epoch 1; stops at epoch 4
    int e = 0;
    for (; e < 6 && !cbs.stop_requested(); ++e) {
        cbs.on_epoch_begin(e);
        model.train_epoch(e);
        Logs logs{{"val_loss", val_loss[e]}};
        cbs.on_epoch_end(e, logs);
    }
    REQUIRE(es.stopped_epoch() == 4);
    REQUIRE(!rlr.reductions().empty());  // the learning rate was lowered after the best epoch
    REQUIRE(model.lr < 0.1);
    const double lowered = model.lr;
    cbs.on_train_end();
    CHECK(es.restored_from_epoch() == 1);
    CHECK(model.w == Eigen::VectorXd::Constant(2, 2.0));  // the weights of the end of epoch 1
    // The training state keeps its latest values (before, the whole state was rolled back to
    // epoch 1: lr 0.1, m 20, step 2).
    CHECK(model.lr == lowered);
    CHECK(model.m == Eigen::VectorXd::Constant(2, 50.0));
    CHECK(model.step == 5);
    // The snapshot, in memory and in the checkpointed state, holds the weights only.
    CHECK(es.best_state().size() == 1);
    CHECK(es.best_state().filter() == traincb::StateFilter::Weights);
    traincb::CallbackState st;
    es.save_state(st);
    REQUIRE(st.tensors.size() == 1);
    CHECK(st.tensors.tensors()[0].name == "w");
}

TEST_CASE("EarlyStopping: a checkpointed snapshot of every tensor (as traincb wrote it before) still loads") {
    // The state as an earlier traincb saved it: the JSON of version 1 and a snapshot of every
    // tensor the model visits, training state included.
    OptimizedModel old_model;
    old_model.train_epoch(1);  // w 2, m 20, step 1
    EarlyStopping a({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
    CallbackList la(a);
    la.set_model(old_model);
    la.on_train_begin();
    Logs logs{{"val_loss", 1.0}};
    la.on_epoch_end(1, logs);
    traincb::CallbackState st;
    a.save_state(st);
    traincb::StateSnapshot every;
    every.take([&](traincb::StateVisitor& v) { old_model.visit_state(v); });
    st.tensors = every.to_state_dict();
    REQUIRE(st.tensors.size() == 4);

    OptimizedModel model;
    model.train_epoch(6);  // w 7, m 70, step 1
    model.lr = 0.025;
    EarlyStopping b({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
    CallbackList lb(b);
    lb.set_model(model);
    lb.on_train_begin();
    b.load_state(st, lb.context());
    CHECK(b.best_epoch() == 1);
    lb.on_train_end();
    CHECK(b.restored_from_epoch() == 1);
    CHECK(model.w == Eigen::VectorXd::Constant(2, 2.0));   // the snapshot's weights
    CHECK(model.m == Eigen::VectorXd::Constant(2, 70.0));  // its training state is ignored
    CHECK(model.lr == 0.025);
}
