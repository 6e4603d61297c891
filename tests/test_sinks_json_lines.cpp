// Tests for traincb/sinks/json_lines.hpp: exact lines, null for NaN/inf, resume without duplicate
// lines, and the I/O error paths.
#include "catch.hpp"
#include "file_faults.hpp"
#include "test_support.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/sinks/json_lines.hpp>
#include <vector>

namespace test_sinks_json_lines {

namespace fs = std::filesystem;
using traincb::Logs;
using traincb::sinks::JsonLinesOptions;
using traincb::sinks::JsonLinesSink;
using traincb::sinks::RunInfo;

using traincb_test::read_bytes;
using traincb_test::TempDir;
using traincb_test::WarningCapture;
using traincb_test::write_bytes;

namespace {

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

void run(const std::shared_ptr<traincb::sinks::Sink>& sink, const std::vector<std::pair<int, Logs>>& epochs,
         traincb::TrainParams params = {}) {
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.set_params(std::move(params));
    cbs.on_train_begin();
    for (auto [e, logs] : epochs) {
        cbs.on_epoch_begin(e);
        cbs.on_epoch_end(e, logs);
    }
    cbs.on_train_end();
}

std::string run_python(const std::string& script, int* status) {
    TempDir dir;
    const fs::path py = dir / "script.py";
    write_bytes(py, script);
    const std::string cmd = std::string("\"") + TRAINCB_PYTHON3 + "\" \"" + py.string() + "\" 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (const std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    *status = ::pclose(p);
    return out;
}

}  // namespace

TEST_CASE("JSON lines: epoch first, then sorted keys, NaN and inf as null") {
    TempDir dir;
    const auto path = dir / "log.jsonl";
    run(std::make_shared<JsonLinesSink>(JsonLinesOptions{.path = path}),
        {{0, Logs{{"loss", 0.5}, {"accuracy", 0.1}}},
         {1, Logs{{"loss", 1e-05}, {"accuracy", 100.0}, {"val_loss", 0.25}}},
         {2, Logs{{"loss", kNan}, {"accuracy", kInf}}}});
    // Written by hand: compact JSON objects, one per line ending in "\n"; a key absent from an epoch
    // is absent from its line; JSON has no NaN/Infinity, so both are null (what pandas reads as NaN,
    // docs/sinks.md, JsonLinesSink).
    REQUIRE(read_bytes(path) ==
            "{\"epoch\":0,\"accuracy\":0.1,\"loss\":0.5}\n"
            "{\"epoch\":1,\"accuracy\":100.0,\"loss\":1e-05,\"val_loss\":0.25}\n"
            "{\"epoch\":2,\"accuracy\":null,\"loss\":null}\n");
}

TEST_CASE("JSON lines: keys are escaped as JSON strings") {
    TempDir dir;
    const auto path = dir / "log.jsonl";
    run(std::make_shared<JsonLinesSink>(JsonLinesOptions{.path = path}),
        {{0, Logs{{"say \"hi\"", 1.0}, {"tab\tkey", 2.0}, {"bad\xff", 3.0}}}});
    // '"' -> \", TAB -> \t; an invalid UTF-8 byte is replaced by U+FFFD instead of aborting the run.
    REQUIRE(read_bytes(path) == "{\"epoch\":0,\"bad\xEF\xBF\xBD\":3.0,\"say \\\"hi\\\"\":1.0,\"tab\\tkey\":2.0}\n");
}

TEST_CASE("JSON lines: a resumed run drops the lines of the epochs it re-runs and a cut-off last line") {
    TempDir dir;
    const auto path = dir / "log.jsonl";
    write_bytes(path,
                "{\"epoch\":0,\"loss\":5.0}\n"
                "{\"epoch\":1,\"loss\":4.0}\n"
                "{\"epoch\":2,\"loss\":3.0}\n"
                "{\"epoch\":3,\"lo");
    traincb::TrainParams params;
    params.initial_epoch = 2;
    params.resumed = true;
    run(std::make_shared<JsonLinesSink>(JsonLinesOptions{.path = path}), {{2, Logs{{"loss", 2.5}}}}, params);
    REQUIRE(read_bytes(path) == "{\"epoch\":0,\"loss\":5.0}\n{\"epoch\":1,\"loss\":4.0}\n{\"epoch\":2,\"loss\":2.5}\n");
}

TEST_CASE("JSON lines: append keeps earlier lines as they were, a fresh run truncates") {
    TempDir dir;
    const auto path = dir / "log.jsonl";
    write_bytes(path, "{\"loss\": 5.0, \"epoch\": 0}\n\n");
    traincb::TrainParams params;
    params.initial_epoch = 1;
    run(std::make_shared<JsonLinesSink>(JsonLinesOptions{.path = path, .append = true}), {{1, Logs{{"loss", 2.5}}}},
        params);
    REQUIRE(read_bytes(path) == "{\"loss\": 5.0, \"epoch\": 0}\n\n{\"epoch\":1,\"loss\":2.5}\n");
    run(std::make_shared<JsonLinesSink>(JsonLinesOptions{.path = path}), {});
    REQUIRE(read_bytes(path).empty());
}

TEST_CASE("JSON lines: append from an epoch the file already holds replaces those lines, with a warning") {
    TempDir dir;
    const auto path = dir / "log.jsonl";
    write_bytes(path, "{\"epoch\":0,\"loss\":5.0}\n{\"epoch\":1,\"loss\":4.0}\n");
    WarningCapture warnings;
    traincb::TrainParams params;
    params.initial_epoch = 1;
    run(std::make_shared<JsonLinesSink>(JsonLinesOptions{.path = path, .append = true}), {{1, Logs{{"loss", 2.5}}}},
        params);
    REQUIRE(read_bytes(path) == "{\"epoch\":0,\"loss\":5.0}\n{\"epoch\":1,\"loss\":2.5}\n");
    REQUIRE(warnings.messages.size() == 1);  // the one line of epoch 1 written above
    CHECK(warnings.messages[0].starts_with("traincb: JsonLinesSink: append: '" + path.string() +
                                           "' held 1 row of epochs >= 1"));
}

TEST_CASE("JSON lines: resuming into a file that is not a log throws FormatError naming the path and line") {
    TempDir dir;
    const auto path = dir / "log.jsonl";
    const RunInfo resumed{.params = {}, .resumed = true, .initial_epoch = 1};
    for (const std::string content : {"{\"epoch\":0}\nnot json\n", "{\"epoch\":0}\n[1,2]\n",
                                      "{\"epoch\":0}\n{\"epoch\":1.5}\n", "{\"epoch\":0}\n{\"loss\":1}\n"}) {
        INFO(content);
        write_bytes(path, content);
        JsonLinesSink sink(JsonLinesOptions{.path = path});
        try {
            sink.begin(resumed);
            FAIL("no exception");
        } catch (const traincb::FormatError& e) {
            REQUIRE(std::string(e.what()).find("traincb: JsonLinesSink: '" + path.string() + "' line 2 ") == 0);
        }
        REQUIRE(read_bytes(path) == content);
    }
}

TEST_CASE("JSON lines: I/O errors name the path (ENOTDIR, EISDIR at construction, ENOSPC at the write)") {
    TempDir dir;
    write_bytes(dir / "file", "x");
    try {
        JsonLinesSink sink(JsonLinesOptions{.path = dir / "file" / "log.jsonl"});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(ENOTDIR, std::generic_category()));
        REQUIRE(e.path() == dir / "file" / "log.jsonl");
    }
    try {
        JsonLinesSink sink(JsonLinesOptions{.path = dir.path});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(EISDIR, std::generic_category()));
    }
    REQUIRE_THROWS_AS(JsonLinesSink(JsonLinesOptions{}), traincb::InvalidArgument);

    if (!fs::exists("/dev/full")) return;
    JsonLinesSink full(JsonLinesOptions{.path = "/dev/full"});
    full.begin({});
    try {
        full.write_epoch(0, Logs{{"loss", 1.0}});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(ENOSPC, std::generic_category()));
        REQUIRE(std::string(e.what()).find("traincb: JsonLinesSink: cannot write '/dev/full'") == 0);
    }
}

TEST_CASE("JSON lines: a path that became unusable after construction throws IoError at begin") {
    TempDir dir;
    fs::create_directory(dir / "sub");
    JsonLinesSink sink(JsonLinesOptions{.path = dir / "sub" / "log.jsonl"});
    fs::remove(dir / "sub");
    write_bytes(dir / "sub", "now a file");
    REQUIRE_THROWS_AS(sink.begin({}), traincb::IoError);
    REQUIRE_THROWS_AS(sink.begin(RunInfo{.params = {}, .resumed = true, .initial_epoch = 0}), traincb::IoError);
}

TEST_CASE("JSON lines: misuse (write before begin, a key named epoch)") {
    TempDir dir;
    JsonLinesSink sink(JsonLinesOptions{.path = dir / "log.jsonl"});
    REQUIRE_THROWS_AS(sink.write_epoch(0, Logs{{"loss", 1.0}}), traincb::LogicError);
    sink.begin({});
    REQUIRE_THROWS_AS(sink.write_epoch(0, Logs{{"epoch", 1.0}}), traincb::InvalidArgument);
}

TEST_CASE("JSON lines: Python reads every line back (pandas when installed)") {
    if (std::string(TRAINCB_PYTHON3).empty()) TRAINCB_SKIP("no python3 found at configure time");
    TempDir dir;
    const auto path = dir / "log.jsonl";
    run(std::make_shared<JsonLinesSink>(JsonLinesOptions{.path = path}),
        {{0, Logs{{"loss", 0.5}}}, {1, Logs{{"loss", kNan}, {"val_loss", 100.0}}}});
    int status = 0;
    (void)run_python("import pandas\n", &status);
    if (status == 0) {
        const std::string out = run_python(
            "import pandas as pd\n"
            "df = pd.read_json(r'''" +
                path.string() +
                "''', lines=True)\n"
                "print(list(df.columns), df.to_dict('list'))\n",
            &status);
        REQUIRE(status == 0);
        REQUIRE(out ==
                "['epoch', 'loss', 'val_loss'] {'epoch': [0, 1], 'loss': [0.5, nan], 'val_loss': [nan, 100.0]}\n");
    } else {
        const std::string out = run_python(
            "import json\n"
            "for line in open(r'''" +
                path.string() + "'''): print(json.loads(line))\n",
            &status);
        REQUIRE(status == 0);
        REQUIRE(out == "{'epoch': 0, 'loss': 0.5}\n{'epoch': 1, 'loss': None, 'val_loss': 100.0}\n");
    }
}

// ---- failures through the file seam (traincb/detail/os.hpp) --------------------------------------

TEST_CASE("JSON lines: a line write that fails midway is cut back, and the error names the file") {
    namespace tf = traincb_test::faults;
    TempDir dir;
    const auto path = dir / "h.jsonl";
    JsonLinesSink sink(JsonLinesOptions{.path = path});
    sink.begin({});
    sink.write_epoch(0, Logs{{"loss", 0.5}});
    const std::string before = read_bytes(path);
    REQUIRE(before == "{\"epoch\":0,\"loss\":0.5}\n");
    {
        tf::FaultGuard guard;
        tf::Faults::max_write = 4;
        tf::FaultGuard::fail(tf::kWrite, 2, ENOSPC);  // 8 bytes of the line got through
        try {
            sink.write_epoch(1, Logs{{"loss", 0.25}});
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            REQUIRE(std::string(e.what()) ==
                    "traincb: JsonLinesSink: cannot write '" + path.string() + "': " + std::strerror(ENOSPC));
            REQUIRE(e.path() == path);
        }
    }
    REQUIRE(read_bytes(path) == before);
    sink.write_epoch(1, Logs{{"loss", 0.25}});
    sink.end({});
    REQUIRE(read_bytes(path) == before + "{\"epoch\":1,\"loss\":0.25}\n");
}

TEST_CASE("JSON lines: a failed resume rewrite leaves the file intact, a rewrite keeps its permission bits") {
    namespace tf = traincb_test::faults;
    TempDir dir;
    const auto path = dir / "h.jsonl";
    const std::string before = "{\"epoch\":0,\"loss\":5}\n{\"epoch\":1,\"loss\":4}\n";
    write_bytes(path, before);
    // 0640 differs from every default mode a new file could get (0666 less a umask of 002 or 022).
    REQUIRE(::chmod(path.c_str(), 0640) == 0);
    const RunInfo resume{.params = {}, .resumed = true, .initial_epoch = 1};  // drops epoch 1
    {
        JsonLinesSink sink(JsonLinesOptions{.path = path});
        tf::FaultGuard guard;
        tf::FaultGuard::fail(tf::kFsync, 0, EIO);
        try {
            sink.begin(resume);
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            REQUIRE(std::string(e.what()) ==
                    "traincb: JsonLinesSink: cannot flush '" + path.string() + "': " + std::strerror(EIO));
        }
    }
    REQUIRE(read_bytes(path) == before);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
    REQUIRE(names == std::vector<std::string>{"h.jsonl"});
    JsonLinesSink sink(JsonLinesOptions{.path = path});
    sink.begin(resume);
    sink.end({});
    REQUIRE(read_bytes(path) == "{\"epoch\":0,\"loss\":5}\n");
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    REQUIRE((st.st_mode & 07777) == 0640);
}

}  // namespace test_sinks_json_lines
