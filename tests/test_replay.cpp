// Tests for the traincb-replay tool (examples/traincb_replay.cpp): every vector of
// tests/spec/early-stopping-vectors.json and tests/spec/early-stopping-multi-vectors.json, written
// out as a CSV history, must give the expected JSON (docs/early-stopping-rules.md, "The replay
// tool"); the output of one --monitor is byte for byte what it was before several monitors
// existed; and every kind of bad input must fail cleanly.
#include "catch.hpp"

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace test_replay {

namespace {

struct Result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

Result run_replay(const std::string& args) {
    const auto dir = std::filesystem::temp_directory_path();
    const auto err_path = dir / ("traincb_replay_err_" + std::to_string(::getpid()));
    const std::string cmd = std::string("\"") + TRAINCB_REPLAY_EXE + "\" " + args + " 2>\"" + err_path.string() + "\"";
    Result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream e(err_path);
    r.err.assign(std::istreambuf_iterator<char>(e), {});
    std::filesystem::remove(err_path);
    return r;
}

std::string cell(const nlohmann::json& v) {
    if (v.is_string()) {
        const auto s = v.get<std::string>();
        if (s == "NaN") return "nan";
        if (s == "Infinity") return "inf";
        if (s == "-Infinity") return "-inf";
        return s;
    }
    return v.dump();  // nlohmann writes the shortest round-trip form
}

std::filesystem::path write_file(const std::string& name, const std::string& text) {
    const auto path =
        std::filesystem::temp_directory_path() / ("traincb_replay_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

// Writes a vector's history as a CSV with an epoch column (absolute epochs) and NA for absent keys.
std::string history_csv(const nlohmann::json& v, const char* eol = "\n") {
    std::set<std::string> keys;
    for (const auto& row : v["history"])
        for (const auto& [k, _] : row.items()) keys.insert(k);
    std::string csv = "epoch";
    for (const auto& k : keys) csv += "," + k;
    csv += eol;
    const int initial = v.value("initial_epoch", 0);
    int e = initial;
    for (const auto& row : v["history"]) {
        csv += std::to_string(e++);
        for (const auto& k : keys) {
            csv += ',';
            csv += row.contains(k) ? cell(row[k]) : std::string("NA");
        }
        csv += eol;
    }
    return csv;
}

std::string flags(const nlohmann::json& c) {
    std::string f;
    auto num = [](const nlohmann::json& x) { return cell(x); };
    if (c.contains("monitor")) f += " --monitor " + c["monitor"].get<std::string>();
    // Several monitors: --monitor KEY:MODE[:MIN_DELTA] each (both flag forms, alternately).
    if (c.contains("monitors")) {
        int i = 0;
        for (const auto& m : c["monitors"]) {
            f += (i++ % 2) ? " --monitor=" : " --monitor ";
            f += "\"" + m["key"].get<std::string>() + ":" + m.value("mode", "auto");
            if (m.contains("min_delta")) f += ":" + num(m["min_delta"]);
            f += "\"";
        }
    }
    if (c.contains("mode")) f += " --mode " + c["mode"].get<std::string>();
    if (c.contains("patience")) f += " --patience " + c["patience"].dump();
    if (c.contains("min_delta")) f += " --min-delta " + num(c["min_delta"]);
    if (c.contains("min_delta_mode")) f += " --min-delta-mode " + c["min_delta_mode"].get<std::string>();
    if (c.contains("baseline")) f += " --baseline " + num(c["baseline"]);
    if (c.contains("start_from_epoch")) f += " --start-from-epoch " + c["start_from_epoch"].dump();
    if (c.contains("stopping_threshold")) f += " --stopping-threshold " + num(c["stopping_threshold"]);
    if (c.contains("divergence_threshold")) f += " --divergence-threshold=" + num(c["divergence_threshold"]);
    if (c.contains("check_finite"))
        f += std::string(" --check-finite ") + (c["check_finite"].get<bool>() ? "true" : "false");
    if (c.value("restore_best_weights", false)) f += " --restore-best-weights";
    return f;
}

// The tool writes a non-finite best as "nan"/"inf"/"-inf", the vectors as "NaN"/"Infinity"/...
void tool_spelling(nlohmann::json& best) {
    if (best.is_string()) best = cell(best);
}

nlohmann::json load_vectors(const std::string& file) {
    std::ifstream in(std::string(TRAINCB_SPEC_DIR) + "/" + file);
    REQUIRE(in.good());
    return nlohmann::json::parse(in)["vectors"];
}

void check_vectors(const nlohmann::json& vectors) {
    int i = 0;
    for (const auto& v : vectors) {
        INFO("vector " << v["name"].get<std::string>());
        // Alternate line endings: both \n and \r\n must be accepted.
        const auto path = write_file("v.csv", history_csv(v, (i++ % 2) ? "\r\n" : "\n"));
        const auto r = run_replay("--history \"" + path.string() + "\"" + flags(v["config"]));
        std::filesystem::remove(path);
        INFO("stdout: " << r.out << " stderr: " << r.err);
        if (v["expected"].contains("error")) {
            CHECK(r.exit_code != 0);
            CHECK(r.out.empty());
            CHECK_FALSE(r.err.empty());
            continue;
        }
        REQUIRE(r.exit_code == 0);
        const auto got = nlohmann::json::parse(r.out);
        auto exp = v["expected"];
        tool_spelling(exp["best"]);
        if (exp.contains("monitors"))
            for (auto& m : exp["monitors"]) tool_spelling(m["best"]);
        CHECK(got == exp);
    }
}

}  // namespace

TEST_CASE("traincb-replay reproduces every vector of early-stopping-vectors.json") {
    const auto vectors = load_vectors("early-stopping-vectors.json");
    REQUIRE(vectors.size() >= 30);
    check_vectors(vectors);
}

TEST_CASE("traincb-replay reproduces every vector of early-stopping-multi-vectors.json") {
    const auto vectors = load_vectors("early-stopping-multi-vectors.json");
    REQUIRE(vectors.size() >= 25);
    check_vectors(vectors);
}

TEST_CASE("traincb-replay: one --monitor prints byte for byte what it printed before several monitors") {
    // The golden lines are the output of traincb-replay before --monitor could be repeated.
    const auto path = write_file("golden.csv", "loss,val_loss\n1,1.0\n1,NA\n1,0.9\n1,0.95\n1,\n1,0.96\n");
    const auto ninf = write_file("golden_ninf.csv", "epoch,val_loss\n0,-inf\n1,2\n");
    const std::string h = "--history \"" + path.string() + "\"";
    const auto a = run_replay(h + " --patience 2 --restore-best-weights");
    CHECK(a.out ==
          "{\"mode\":\"min\",\"stopped_epoch\":5,\"stop_reason\":\"patience\",\"best_epoch\":2,\"best\":0.9,\"wait\":2,"
          "\"epochs_run\":6,\"restored_from_epoch\":2}\n");
    const auto b = run_replay(h + " --monitor loss --mode min --min-delta 0.5");
    const std::string golden_b =
        "{\"mode\":\"min\",\"stopped_epoch\":1,\"stop_reason\":\"patience\",\"best_epoch\":0,\"best\":1.0,\"wait\":1,"
        "\"epochs_run\":2,\"restored_from_epoch\":null}\n";
    CHECK(b.out == golden_b);
    const auto c = run_replay("--history \"" + ninf.string() + "\" --check-finite false --patience 1");
    CHECK(c.out ==
          "{\"mode\":\"min\",\"stopped_epoch\":1,\"stop_reason\":\"patience\",\"best_epoch\":0,\"best\":\"-inf\","
          "\"wait\":1,\"epochs_run\":2,\"restored_from_epoch\":null}\n");
    // One monitor in the KEY:MODE:MIN_DELTA form is the same monitor, with the same output.
    CHECK(run_replay(h + " --monitor loss:min:0.5").out == golden_b);
    std::filesystem::remove(path);
    std::filesystem::remove(ninf);
}

TEST_CASE("traincb-replay: several monitors print the primary's fields and each monitor's") {
    // loss stalls from epoch 1 (best 1.0 at 0); val_accuracy improves at 1 and 3, then stalls.
    // patience 2: loss is exhausted from epoch 2, val_accuracy at epoch 5: stop there.
    const auto path = write_file("multi.csv",
                                 "epoch,loss,val_accuracy\n0,1.0,0.5\n1,1.0,0.6\n2,1.1,0.55\n3,1.2,0.7\n"
                                 "4,1.0,0.7\n5,1.0,0.69\n6,0.1,0.99\n");
    const auto r = run_replay("--history \"" + path.string() +
                              "\" --monitor loss --monitor val_accuracy:max --patience 2 --restore-best-weights");
    std::filesystem::remove(path);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out ==
          "{\"mode\":\"min\",\"stopped_epoch\":5,\"stop_reason\":\"patience\",\"best_epoch\":0,\"best\":1.0,\"wait\":2,"
          "\"epochs_run\":6,\"restored_from_epoch\":0,\"monitors\":["
          "{\"key\":\"loss\",\"mode\":\"min\",\"best_epoch\":0,\"best\":1.0,\"wait\":5},"
          "{\"key\":\"val_accuracy\",\"mode\":\"max\",\"best_epoch\":3,\"best\":0.7,\"wait\":2}]}\n");
}

TEST_CASE("traincb-replay uses the row index when there is no epoch column and skips NA cells") {
    // val_loss 1.0, NA, 0.9, 0.95, 0.96 with patience 2: best 0.9 at row 2, stops at row 4.
    const auto path = write_file("noepoch.csv", "loss,val_loss\n1,1.0\n1,NA\n1,0.9\n1,0.95\n1,\n1,0.96\n");
    const auto r = run_replay("--history " + path.string() + " --patience 2");
    std::filesystem::remove(path);
    REQUIRE(r.exit_code == 0);
    const auto got = nlohmann::json::parse(r.out);
    CHECK(got["best_epoch"] == 2);
    CHECK(got["stopped_epoch"] == 5);
    CHECK(got["epochs_run"] == 6);
    CHECK(got["wait"] == 2);
}

TEST_CASE("traincb-replay rejects bad input with a message naming the option or the line") {
    const auto good = write_file("good.csv", "epoch,loss,val_loss,my_metric\n0,1,1,2\n1,1,0.5,3\n");
    const auto bad_num = write_file("badnum.csv", "epoch,val_loss\n0,1.0\n1,0.5x\n");
    const auto bad_cells = write_file("badcells.csv", "epoch,val_loss\n0,1.0\n1,0.5,3\n");
    struct Case {
        std::string args;
        std::string expect_in_err;
    };
    const Case cases[] = {
        {"--history " + good.string() + " --monitor val_acc --mode max", "no column 'val_acc'"},
        {"--history " + good.string() + " --monitor val_los", "did you mean 'val_loss'"},
        {"--history " + good.string() + " --mode minimum", "--mode"},
        {"--history " + good.string() + " --min-delta -0.5", "min_delta"},
        {"--history " + good.string() + " --patience -1", "patience"},
        {"--history " + good.string() + " --start-from-epoch -2", "start_from_epoch"},
        {"--history " + good.string() + " --monitor my_metric", "cannot infer"},
        {"--history " + bad_num.string(), ":3:"},
        {"--history " + bad_cells.string(), ":3: 3 cells, but the header has 2"},
        {"--history " + good.string() + " --patience x", "--patience: 'x' is not an integer"},
        {"--history " + good.string() + " --bogus 1", "unknown option '--bogus'"},
        {"--history /nonexistent/h.csv", "cannot open"},
        {"--patience 1", "--history"},
        {"--history " + good.string() + " --check-finite maybe", "--check-finite"},
        // Several monitors.
        {"--history " + good.string() + " --monitor val_loss --monitor loss --mode min",
         "--mode: each monitor has its own"},
        {"--history " + good.string() + " --monitor val_loss:min --min-delta 0.1",
         "--min-delta: each monitor has its own"},
        {"--history " + good.string() + " --monitor val_loss:minimum", "--monitor val_loss:minimum: "},
        {"--history " + good.string() + " --monitor val_loss:min:x", "--monitor val_loss:min:x: 'x' is not a number"},
        {"--history " + good.string() + " --monitor val_loss:min:0:1", "expected KEY[:auto|min|max[:MIN_DELTA]]"},
        {"--history " + good.string() + " --monitor val_loss --monitor loss:min:-1",
         "monitors[1] ('loss'): min_delta must be a finite number >= 0"},
        {"--history " + good.string() + " --monitor val_loss --monitor val_loss:min", "list each key once"},
        {"--history " + good.string() + " --monitor val_loss --monitor :max", "monitors[1] has an empty key"},
        {"--history " + good.string() + " --monitor val_loss --monitor val_los:min", "did you mean 'val_loss'"},
        {"--history " + good.string() + " --monitor val_loss --monitor my_metric", "cannot infer"},
    };
    for (const auto& c : cases) {
        INFO(c.args);
        const auto r = run_replay(c.args);
        CHECK(r.exit_code != 0);
        CHECK(r.out.empty());
        CHECK(r.err.find(c.expect_in_err) != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    for (const auto& p : {good, bad_num, bad_cells}) std::filesystem::remove(p);
    const auto help = run_replay("--help");
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("usage: traincb-replay") != std::string::npos);
}

}  // namespace test_replay
