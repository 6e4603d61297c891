// Tests for the traincb-replay tool (examples/traincb_replay.cpp): every vector of
// tests/spec/early-stopping-vectors.json, written out as a CSV history, must give the expected JSON
// (docs/early-stopping-rules.md, "The replay tool"), and every kind of bad input must fail cleanly.
#include "catch.hpp"

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

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

}  // namespace

TEST_CASE("traincb-replay reproduces every vector of early-stopping-vectors.json") {
    std::ifstream in(std::string(TRAINCB_SPEC_DIR) + "/early-stopping-vectors.json");
    const auto vectors = nlohmann::json::parse(in)["vectors"];
    REQUIRE(vectors.size() >= 30);
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
        if (exp["best"].is_string()) {
            exp["best"] = cell(exp["best"]);  // the tool writes "nan"/"inf"/"-inf"
        }
        CHECK(got == exp);
    }
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
