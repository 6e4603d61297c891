// Tests for traincb/callbacks/early_stopping.hpp. The expected values of the vector tests come from
// tests/spec/early-stopping-vectors.json and tests/spec/early-stopping-multi-vectors.json (the
// worked cases of docs/early-stopping-rules.md, each naming its source; the multi-monitor ones
// computed by the independent Python reference tests/spec/multi_monitor_reference.py, which a
// test below runs); the other cases are derived by hand from the rules in that page.
#include "catch.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>

#include "es_vector_replay.hpp"

namespace test_early_stopping {

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

// A vector's number ("NaN", "Infinity" and "-Infinity" included) and configuration: shared with
// the data-parallel replays of the same vectors (es_vector_replay.hpp).
constexpr auto& json_number = traincb_test::es_vectors::number;
using traincb_test::es_vectors::options_from;

nlohmann::json load_vectors(const std::string& file = "early-stopping-vectors.json") {
    std::ifstream in(std::string(TRAINCB_SPEC_DIR) + "/" + file);
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
}

// The vectors' error kind of an InvalidArgument.
std::string error_kind(const std::invalid_argument& e) {
    const std::string what = e.what();
    if (what.find("cannot infer") != std::string::npos) return "cannot_infer_mode";
    if (what.find("is not in the logs") != std::string::npos) return "missing_key";
    return "invalid_argument";
}

// Runs one vector through a CallbackList exactly as a training loop would, and returns the
// replay-style summary.
nlohmann::json run_vector(const nlohmann::json& v) {
    nlohmann::json out;
    std::unique_ptr<EarlyStopping> es;
    try {
        es = std::make_unique<EarlyStopping>(options_from(v["config"]));
    } catch (const std::invalid_argument& e) {
        return {{"error", error_kind(e)}};
    }
    TinyModel model;
    CallbackList cbs(*es);
    cbs.set_model(model);
    const int initial = v.value("initial_epoch", 0);
    const auto& hist = v["history"];
    cbs.set_params({.epochs = initial + static_cast<int>(hist.size()), .initial_epoch = initial});
    try {
        cbs.on_train_begin();
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
        out["epochs_run"] = epochs_run;
    } catch (const std::invalid_argument& e) {
        return {{"error", error_kind(e)}};
    }
    cbs.on_train_end();
    out["mode"] = traincb::to_string(*es->direction());
    out["stopped_epoch"] = es->stopped_epoch() ? nlohmann::json(*es->stopped_epoch()) : nlohmann::json();
    out["stop_reason"] = es->stopped_epoch() ? nlohmann::json(traincb::to_string(es->stop_reason())) : nlohmann::json();
    out["best_epoch"] = es->best_epoch() ? nlohmann::json(*es->best_epoch()) : nlohmann::json();
    out["best"] = es->best() ? nlohmann::json(*es->best()) : nlohmann::json();
    out["wait"] = es->wait();
    out["restored_from_epoch"] =
        es->restored_from_epoch() ? nlohmann::json(*es->restored_from_epoch()) : nlohmann::json();
    if (es->monitor_keys().size() > 1) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& key : es->monitor_keys())
            list.push_back(
                {{"key", key},
                 {"mode", traincb::to_string(*es->direction(key))},
                 {"best_epoch", es->best_epoch(key) ? nlohmann::json(*es->best_epoch(key)) : nlohmann::json()},
                 {"best", es->best(key) ? nlohmann::json(*es->best(key)) : nlohmann::json()},
                 {"wait", es->wait(key)}});
        out["monitors"] = list;
    }
    if (es->restored_from_epoch()) {
        // The model really holds the best epoch's state.
        CHECK(model.tag == static_cast<double>(*es->restored_from_epoch()));
    }
    return out;
}

// `best` of a vector: null, a number, or "NaN"/"Infinity"/"-Infinity"; compared exactly.
void check_best(const nlohmann::json& got, const nlohmann::json& exp) {
    INFO("best: got " << got.dump() << ", expected " << exp.dump());
    if (exp.is_null()) {
        CHECK(got.is_null());
    } else {
        REQUIRE(got.is_number());
        CHECK(got.get<double>() == json_number(exp));
    }
}

void check_vectors(const nlohmann::json& vectors) {
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
        check_best(got["best"], exp["best"]);
        CHECK(got.contains("monitors") == exp.contains("monitors"));
        if (!exp.contains("monitors") || !got.contains("monitors")) continue;
        REQUIRE(got["monitors"].size() == exp["monitors"].size());
        for (std::size_t i = 0; i < exp["monitors"].size(); ++i) {
            const auto& g = got["monitors"][i];
            const auto& e = exp["monitors"][i];
            INFO("monitor " << e["key"].get<std::string>());
            for (const auto& key : {"key", "mode", "best_epoch", "wait"}) {
                INFO("field " << key << ": got " << g[key].dump() << ", expected " << e[key].dump());
                CHECK(g[key] == e[key]);
            }
            check_best(g["best"], e["best"]);
        }
    }
}

}  // namespace

TEST_CASE("EarlyStopping passes every vector of early-stopping-vectors.json") {
    const auto vectors = load_vectors()["vectors"];
    REQUIRE(vectors.size() >= 30);
    check_vectors(vectors);
}

TEST_CASE("EarlyStopping passes every vector of early-stopping-multi-vectors.json") {
    const auto vectors = load_vectors("early-stopping-multi-vectors.json")["vectors"];
    REQUIRE(vectors.size() >= 25);
    check_vectors(vectors);
}

TEST_CASE("EarlyStopping: the independent Python reference agrees with both vector files") {
    // tests/spec/multi_monitor_reference.py implements the rules from their text; --check
    // recomputes every vector of both files and fails on any difference.
    if (std::string(TRAINCB_PYTHON3).empty()) TRAINCB_SKIP("no python3 found at configure time");
    const std::string cmd =
        std::string("\"") + TRAINCB_PYTHON3 + "\" \"" + TRAINCB_SPEC_DIR + "/multi_monitor_reference.py\" --check 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    const int status = ::pclose(p);
    INFO(out);
    CHECK(status == 0);
    CHECK(out.find(" vectors agree with the reference") != std::string::npos);
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

// ---- Several monitors (docs/early-stopping-rules.md, "Several monitors") ----

namespace {

using traincb::MonitorSpec;

// Feeds one epoch's logs through a list and returns whether it asked to stop.
bool feed(CallbackList& cbs, int epoch, Logs logs) {
    cbs.on_epoch_begin(epoch);
    cbs.on_epoch_end(epoch, logs);
    return cbs.stop_requested();
}

EarlyStoppingOptions two_monitors(int patience = 2) {
    return {.patience = patience, .monitors = {{.key = "val_loss"}, {.key = "val_accuracy", .min_delta = 0.01}}};
}

}  // namespace

TEST_CASE("EarlyStopping, several monitors: conflicting or bad settings are rejected at construction") {
    auto msg_of = [](EarlyStoppingOptions o) {
        try {
            EarlyStopping es(std::move(o));
        } catch (const traincb::InvalidArgument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    const std::vector<MonitorSpec> two = {{.key = "val_loss"}, {.key = "val_accuracy"}};
    CHECK(msg_of({.monitor = "loss", .monitors = two}) ==
          "traincb: EarlyStopping: monitor 'loss' and monitors are both set; put 'loss' first in monitors (the first "
          "one is the primary) and leave monitor unset");
    CHECK(msg_of({.mode = traincb::Mode::Min, .monitors = two})
              .starts_with("traincb: EarlyStopping: mode is set together with monitors; set each monitor's own"));
    CHECK(msg_of({.min_delta = 0.5, .monitors = two})
              .starts_with("traincb: EarlyStopping: min_delta 0.5 is set together with monitors"));
    CHECK(msg_of({.monitors = {{.key = "val_loss"}, {.key = ""}}})
              .starts_with("traincb: EarlyStopping: monitors[1] has an empty key"));
    CHECK(msg_of({.monitors = {{.key = "val_loss"}, {.key = "val_accuracy"}, {.key = "val_loss"}}}) ==
          "traincb: EarlyStopping: monitors[2]: 'val_loss' is also monitors[0]; list each key once");
    CHECK(msg_of({.monitors = {{.key = "val_loss"}, {.key = "val_accuracy", .min_delta = -0.01}}})
              .starts_with("traincb: EarlyStopping: monitors[1] ('val_accuracy'): min_delta must be a finite number "
                           ">= 0, got -0.01"));
    CHECK(msg_of({.monitors = {{.key = "val_loss", .min_delta = std::nan("")}}}).find("got nan") != std::string::npos);
    CHECK(msg_of({.monitors = {{.key = "val_loss", .min_delta = HUGE_VAL}}}).find("got inf") != std::string::npos);
    // The options every monitor shares are still checked.
    CHECK(msg_of({.patience = -1, .monitors = two}).find("patience must be >= 0") != std::string::npos);
    // Valid: two monitors, or one (which is the single monitor).
    CHECK(msg_of({.monitors = two}) == "no exception");
    CHECK(msg_of({.monitors = {{.key = "val_loss"}}}) == "no exception");
}

TEST_CASE("EarlyStopping, several monitors: accessors per monitor, the primary's by default") {
    EarlyStopping es(two_monitors(3));
    CHECK(es.monitor_keys() == std::vector<std::string>{"val_loss", "val_accuracy"});
    CHECK(es.required_keys() == std::vector<std::string>{"val_loss", "val_accuracy"});
    CallbackList cbs(es);
    cbs.on_train_begin();
    // val_loss: best 0.5 at epoch 1; val_accuracy: 0.7 at 0, 0.705 (within its 0.01), 0.8 at 2.
    const double loss[] = {1.0, 0.5, 0.6};
    const double acc[] = {0.7, 0.705, 0.8};
    for (int e = 0; e < 3; ++e) CHECK_FALSE(feed(cbs, e, {{"val_loss", loss[e]}, {"val_accuracy", acc[e]}}));
    CHECK(es.best() == 0.5);
    CHECK(es.best_epoch() == 1);
    CHECK(es.direction() == traincb::Direction::Min);
    CHECK(es.best("val_loss") == 0.5);
    CHECK(es.best_epoch("val_loss") == 1);
    CHECK(es.wait("val_loss") == 1);
    CHECK(es.best("val_accuracy") == 0.8);
    CHECK(es.best_epoch("val_accuracy") == 2);
    CHECK(es.wait("val_accuracy") == 0);
    CHECK(es.direction("val_accuracy") == traincb::Direction::Max);
    CHECK(es.wait() == 0);  // the smallest wait: val_accuracy improved this epoch
    CHECK_THROWS_WITH(es.best("val_acc"),
                      "traincb: EarlyStopping: 'val_acc' is not monitored; the monitors are: "
                      "val_loss, val_accuracy");
    // decide(value, epoch) is for one monitor; the span form needs one value per monitor.
    CHECK_THROWS_WITH(es.decide(0.1, 3), Catch::Contains("feeds one monitor, but there are 2"));
    const std::optional<double> one[] = {0.1};
    CHECK_THROWS_WITH(es.decide(std::span<const std::optional<double>>(one), 3),
                      Catch::Contains("decide got 1 values for 2 monitors"));
    CHECK(es.best() == 0.5);  // neither call changed anything
}

TEST_CASE("EarlyStopping, several monitors: a missing secondary under strict is an error before anything changes") {
    EarlyStopping es(two_monitors(1));
    CallbackList cbs(es);
    cbs.set_params({.epochs = 5, .has_validation = true, .log_keys = {"loss", "val_acc", "val_loss"}});
    // Checked before the first epoch against the keys the driver will log.
    CHECK_THROWS_WITH(cbs.on_train_begin(), Catch::Contains("monitor 'val_accuracy' will not be in the logs") &&
                                                Catch::Contains("the logged keys are: loss, val_acc, val_loss"));

    EarlyStopping es2(two_monitors(1));
    CallbackList cbs2(es2);
    cbs2.on_train_begin();
    CHECK_FALSE(feed(cbs2, 0, {{"val_loss", 1.0}, {"val_accuracy", 0.5}}));
    // Epoch 1 has validation but no val_accuracy: an error naming it; val_loss's 0.5 is not taken.
    CHECK_THROWS_WITH(
        feed(cbs2, 1, {{"val_loss", 0.5}, {"val_acc", 0.6}}),
        Catch::Contains("'val_accuracy' is not in the logs") && Catch::Contains("available keys: val_acc, val_loss"));
    CHECK(es2.best() == 1.0);
    CHECK(es2.best_epoch() == 0);
    CHECK(es2.wait("val_loss") == 0);
}

TEST_CASE("EarlyStopping, several monitors: strict = false warns once per monitor and skips only that monitor") {
    std::vector<std::string> warnings;
    auto old = traincb::set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
    EarlyStopping es({.patience = 1,
                      .strict = false,
                      .monitors = {{.key = "loss"}, {.key = "val_los", .mode = traincb::Mode::Min}}});
    CallbackList cbs(es);
    cbs.on_train_begin();
    bool stopped = false;
    // loss stalls from epoch 1, but the misspelt monitor is never seen: its wait stays 0, so it
    // holds the patience stop back (the rule: every monitor must be exhausted).
    for (int e = 0; e < 4; ++e) stopped = stopped || feed(cbs, e, {{"loss", 1.0}, {"val_loss", 1.0}});
    traincb::set_warning_handler(old);
    CHECK_FALSE(stopped);
    CHECK(es.wait("loss") == 3);
    CHECK(es.wait("val_los") == 0);
    CHECK_FALSE(es.best("val_los").has_value());
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("'val_los' is not in the logs") != std::string::npos);
    CHECK(warnings[0].find("this monitor skips the epoch") != std::string::npos);
}

TEST_CASE("EarlyStopping, several monitors: restore_best_weights restores the primary's best epoch") {
    TinyModel model;
    EarlyStopping es(
        {.patience = 10, .restore_best_weights = true, .monitors = {{.key = "val_loss"}, {.key = "val_accuracy"}}});
    CallbackList cbs(es);
    cbs.set_model(model);
    cbs.on_train_begin();
    // val_loss is best at epoch 1, val_accuracy at epoch 3.
    const double loss[] = {1.0, 0.4, 0.6, 0.7};
    const double acc[] = {0.5, 0.6, 0.7, 0.9};
    for (int e = 0; e < 4; ++e) {
        model.tag = e;
        (void)feed(cbs, e, {{"val_loss", loss[e]}, {"val_accuracy", acc[e]}});
    }
    model.tag = 99;
    cbs.on_train_end();
    CHECK(es.restored_from_epoch() == 1);
    CHECK(model.tag == 1.0);
}

TEST_CASE("EarlyStopping: the state key of one monitor is unchanged; several monitors join their keys") {
    CHECK(EarlyStopping({.monitor = "loss"}).state_key() == "EarlyStopping:loss");
    CHECK(EarlyStopping().state_key() == "EarlyStopping:val_loss");
    CHECK(EarlyStopping({.monitors = {{.key = "loss"}}}).state_key() == "EarlyStopping:loss");
    CHECK(EarlyStopping(two_monitors()).state_key() == "EarlyStopping:val_loss+val_accuracy");
    CHECK(EarlyStopping(
              {.id = "es",
               .monitors = {{.key = "a", .mode = traincb::Mode::Min}, {.key = "b", .mode = traincb::Mode::Min}}})
              .state_key() == "es");
}

TEST_CASE("EarlyStopping: a one-monitor state is written exactly as before several monitors existed") {
    // The golden text is what save_state wrote before `monitors` was added, for this run.
    EarlyStopping es({.monitor = "val_loss",
                      .mode = traincb::Mode::Min,
                      .min_delta = 0.01,
                      .patience = 3,
                      .baseline = 2.0,
                      .stopping_threshold = 0.1});
    CallbackList cbs(es);
    cbs.on_train_begin();
    const double v[] = {3.0, 1.5, 1.6, 1.2, 1.3};
    for (int e = 0; e < 5; ++e) (void)feed(cbs, e, {{"loss", 1.0}, {"val_loss", v[e]}});
    traincb::CallbackState s;
    es.save_state(s);
    CHECK(s.version == 1);
    CHECK(s.json.dump() ==
          R"({"best":"1.2","best_epoch":3,"options":{"baseline":"2","check_finite":true,"divergence_threshold":null,)"
          R"("min_delta":"0.01","min_delta_mode":"abs","mode":"min","monitor":"val_loss","patience":3,)"
          R"("restore_best_weights":false,"start_from_epoch":0,"stopping_threshold":"0.1"},"stop_reason":"",)"
          R"("stopped_epoch":null,"wait":1})");
    // A list of one monitor is the same instance in every respect.
    EarlyStopping one({.min_delta_mode = traincb::DeltaMode::Absolute,
                       .patience = 3,
                       .baseline = 2.0,
                       .stopping_threshold = 0.1,
                       .monitors = {{.key = "val_loss", .mode = traincb::Mode::Min, .min_delta = 0.01}}});
    CallbackList cbs1(one);
    cbs1.on_train_begin();
    for (int e = 0; e < 5; ++e) (void)feed(cbs1, e, {{"loss", 1.0}, {"val_loss", v[e]}});
    traincb::CallbackState s1;
    one.save_state(s1);
    CHECK(s1.json == s.json);
    CHECK(one.state_key() == es.state_key());
}

TEST_CASE("EarlyStopping, several monitors: save/load mid-run resumes bit-identically") {
    // val_loss and val_accuracy (min_delta 0.01) over 12 epochs; a run saved after epoch k and
    // resumed by a new instance must take the same decisions and end in the same state.
    const double loss[] = {1.0, 0.8, 0.85, 0.7, 0.75, 0.76, 0.77, 0.71, 0.78, 0.79, 0.8, 0.81};
    const double acc[] = {0.5, 0.6, 0.65, 0.655, 0.7, 0.69, 0.705, 0.72, 0.715, 0.7, 0.7, 0.7};
    auto opts = [] {
        return EarlyStoppingOptions{.patience = 3,
                                    .restore_best_weights = true,
                                    .monitors = {{.key = "val_loss"}, {.key = "val_accuracy", .min_delta = 0.01}}};
    };
    TinyModel m_straight;
    EarlyStopping straight(opts());
    CallbackList ls(straight);
    ls.set_model(m_straight);
    ls.on_train_begin();
    std::vector<int> stop_straight;
    int e = 0;
    for (; e < 12; ++e) {
        m_straight.tag = e;
        if (feed(ls, e, {{"val_loss", loss[e]}, {"val_accuracy", acc[e]}})) break;
    }
    const int stopped_at = e;
    REQUIRE(stopped_at < 12);  // the scenario stops (for patience), so the state decides something
    REQUIRE(straight.stop_reason() == traincb::StopReason::PatienceExhausted);
    REQUIRE(straight.best_epoch("val_loss") != straight.best_epoch("val_accuracy"));

    for (int k = 1; k < stopped_at; ++k) {
        INFO("saved after epoch " << k - 1);
        TinyModel model;
        traincb::CallbackState saved;
        {
            EarlyStopping first(opts());
            CallbackList l1(first);
            l1.set_model(model);
            l1.on_train_begin();
            for (int i = 0; i < k; ++i) {
                model.tag = i;
                REQUIRE_FALSE(feed(l1, i, {{"val_loss", loss[i]}, {"val_accuracy", acc[i]}}));
            }
            first.save_state(saved);
        }
        // Through the checkpoint's text form, as a file would carry it.
        saved.json = nlohmann::json::parse(saved.json.dump());
        EarlyStopping resumed(opts());
        CallbackList l2(resumed);
        l2.set_model(model);
        l2.on_train_begin();
        resumed.load_state(saved, l2.context());
        int i = k;
        for (; i < 12; ++i) {
            model.tag = i;
            if (feed(l2, i, {{"val_loss", loss[i]}, {"val_accuracy", acc[i]}})) break;
        }
        CHECK(i == stopped_at);
        traincb::CallbackState a, b;
        straight.save_state(a);
        resumed.save_state(b);
        CHECK(a.json == b.json);
        CHECK(a.tensors.size() == b.tensors.size());
        l2.on_train_end();
        CHECK(model.tag == static_cast<double>(*straight.best_epoch()));  // the snapshot came through the state
    }
}

TEST_CASE("EarlyStopping, several monitors: the saved state holds each monitor, and loads by key") {
    EarlyStopping a(two_monitors(5));
    CallbackList la(a);
    la.on_train_begin();
    (void)feed(la, 0, {{"val_loss", 1.0}, {"val_accuracy", 0.5}});
    (void)feed(la, 1, {{"val_loss", 0.9}, {"val_accuracy", 0.4}});
    traincb::CallbackState s;
    a.save_state(s);
    CHECK(s.json.at("monitors") ==
          nlohmann::json::parse(R"([{"key":"val_loss","best":"0.9","best_epoch":1,"wait":0},)"
                                R"({"key":"val_accuracy","best":"0.5","best_epoch":0,"wait":1}])"));
    CHECK(s.json.at("options").at("monitors") ==
          nlohmann::json::parse(R"([{"key":"val_loss","mode":"auto","min_delta":"0"},)"
                                R"({"key":"val_accuracy","mode":"auto","min_delta":"0.01"}])"));
    CHECK(s.json.at("best") == "0.9");
    CHECK(s.json.at("wait") == 0);

    // The monitors in another order (same id): each takes its own key's values, with a warning
    // that the options changed.
    std::vector<std::string> warnings;
    auto old = traincb::set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
    EarlyStopping b({.patience = 5,
                     .id = "EarlyStopping:val_loss+val_accuracy",
                     .monitors = {{.key = "val_accuracy", .min_delta = 0.01}, {.key = "val_loss"}, {.key = "loss"}}});
    CallbackList lb(b);
    lb.on_train_begin();
    b.load_state(s, lb.context());
    traincb::set_warning_handler(old);
    CHECK(b.best() == 0.5);
    CHECK(b.best_epoch() == 0);
    CHECK(b.wait("val_accuracy") == 1);
    CHECK(b.best("val_loss") == 0.9);
    CHECK_FALSE(b.best("loss").has_value());
    REQUIRE(warnings.size() == 2);
    CHECK(warnings[0].find("options changed since the checkpoint") != std::string::npos);
    CHECK(warnings[1] ==
          "traincb: EarlyStopping: the checkpointed state (key 'EarlyStopping:val_loss+val_accuracy') "
          "has no values for monitor loss; it starts fresh");
}

TEST_CASE("EarlyStopping: an old one-monitor state loads into one monitor, and by key into several") {
    // Written by save_state before several monitors existed (see the golden text above).
    traincb::CallbackState old_state;
    old_state.version = 1;
    old_state.json = nlohmann::json::parse(
        R"({"best":"1.2","best_epoch":3,"options":{"baseline":"2","check_finite":true,"divergence_threshold":null,)"
        R"("min_delta":"0.01","min_delta_mode":"abs","mode":"min","monitor":"val_loss","patience":3,)"
        R"("restore_best_weights":false,"start_from_epoch":0,"stopping_threshold":"0.1"},"stop_reason":"",)"
        R"("stopped_epoch":null,"wait":1})");
    {
        std::vector<std::string> warnings;
        auto old = traincb::set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
        EarlyStopping es({.monitor = "val_loss",
                          .mode = traincb::Mode::Min,
                          .min_delta = 0.01,
                          .patience = 3,
                          .baseline = 2.0,
                          .stopping_threshold = 0.1});
        CallbackList l(es);
        l.on_train_begin();
        es.load_state(old_state, l.context());
        traincb::set_warning_handler(old);
        CHECK(es.best() == 1.2);
        CHECK(es.best_epoch() == 3);
        CHECK(es.wait() == 1);
        CHECK(warnings.empty());
    }
    {
        std::vector<std::string> warnings;
        auto old = traincb::set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
        EarlyStopping es({.patience = 3,
                          .id = "EarlyStopping:val_loss",
                          .monitors = {{.key = "val_accuracy", .mode = traincb::Mode::Max}, {.key = "val_loss"}}});
        CallbackList l(es);
        l.on_train_begin();
        es.load_state(old_state, l.context());
        traincb::set_warning_handler(old);
        CHECK(es.best("val_loss") == 1.2);  // matched by the saved options.monitor
        CHECK(es.best_epoch("val_loss") == 3);
        CHECK(es.wait("val_loss") == 1);
        CHECK_FALSE(es.best("val_accuracy").has_value());
        CHECK(es.wait("val_accuracy") == 0);
        REQUIRE(warnings.size() == 2);
        CHECK(warnings[1].find("has no values for monitor val_accuracy; it starts fresh") != std::string::npos);
    }
}

TEST_CASE("EarlyStopping, several monitors: a malformed per-monitor state is a FormatError and loads nothing") {
    EarlyStopping a(two_monitors(5));
    CallbackList la(a);
    la.on_train_begin();
    (void)feed(la, 0, {{"val_loss", 1.0}, {"val_accuracy", 0.5}});
    traincb::CallbackState good;
    a.save_state(good);
    const std::vector<nlohmann::json> bad = {
        nlohmann::json::object(),
        nlohmann::json::parse(R"([{"key":"val_loss","best":"x","best_epoch":0,"wait":0}])"),
        nlohmann::json::parse(R"([{"key":"val_loss","best":"1","best_epoch":0,"wait":-2}])"),
        nlohmann::json::parse(R"([{"key":"val_loss","best":"1","best_epoch":0}])"),
        nlohmann::json::parse(R"([{"best":"1","best_epoch":0,"wait":0}])"),
        nlohmann::json::parse(R"([{"key":3,"best":"1","best_epoch":0,"wait":0}])"),
        nlohmann::json::parse(R"([{"key":"val_loss","best":"1","best_epoch":0.5,"wait":0}])")};
    for (const auto& monitors : bad) {
        CAPTURE(monitors.dump());
        traincb::CallbackState st = good;
        st.json["monitors"] = monitors;
        EarlyStopping b(two_monitors(5));
        CallbackList lb(b);
        lb.on_train_begin();
        CHECK_THROWS_WITH(b.load_state(st, lb.context()),
                          Catch::StartsWith("traincb: EarlyStopping: checkpointed state (key "
                                            "'EarlyStopping:val_loss+val_accuracy') is malformed"));
        CHECK_FALSE(b.best().has_value());  // all or nothing
        CHECK_FALSE(b.best("val_accuracy").has_value());
    }
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

}  // namespace test_early_stopping
