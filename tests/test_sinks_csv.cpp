// Tests for traincb/sinks/csv.hpp: the exact bytes of Keras's CSVLogger format
// (docs/keras-semantics.md, "CSVLogger"), the deviations that fix its traps (no phantom val_
// columns, widening header, resume without duplicate rows), RFC 4180 quoting, and the I/O error
// paths.
#include "catch.hpp"
#include "file_faults.hpp"
#include "test_support.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/diagnostics.hpp>
#include <traincb/sinks/csv.hpp>
#include <vector>

namespace test_sinks_csv {

namespace fs = std::filesystem;
using traincb::Logs;
using traincb::sinks::CsvOptions;
using traincb::sinks::CsvSink;
using traincb::sinks::RunInfo;

using traincb_test::read_bytes;
using traincb_test::TempDir;
using traincb_test::WarningCapture;
using traincb_test::write_bytes;

namespace {

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// The files of `dir` (to check that no temporary file is left behind).
std::vector<std::string> listing(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Drives a run through CallbackList and MetricLogger, as a training loop would.
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

std::string python3() {
    return TRAINCB_PYTHON3;
}

// Runs `python3 -c script` and returns its stdout (empty python3: skip).
std::string run_python(const std::string& script, int* status = nullptr) {
    TempDir dir;
    const fs::path py = dir / "script.py";
    write_bytes(py, script);
    const std::string cmd = "\"" + python3() + "\" \"" + py.string() + "\" 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (const std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int st = ::pclose(p);
    if (status) *status = st;
    return out;
}

}  // namespace

TEST_CASE("CSV bytes of a small run: header, CRLF, NA, nan/inf, Python float repr") {
    TempDir dir;
    const auto path = dir / "log.csv";
    auto sink = std::make_shared<CsvSink>(CsvOptions{.path = path});
    run(sink, {{0, Logs{{"loss", 0.5}, {"accuracy", 0.1}}},
               {1, Logs{{"loss", 1e-05}, {"accuracy", 100.0}}},
               {2, Logs{{"loss", kNan}, {"accuracy", kInf}}},
               {3, Logs{{"loss", -kInf}}}});
    // Expected bytes written by hand from docs/keras-semantics.md, "CSVLogger": `epoch` then sorted
    // keys, 0-based epochs, str(float) (Python repr: 0.1, 1e-05, 100.0, nan, inf, -inf), NA for a
    // missing key, "\r\n" after every line (csv.excel dialect).
    REQUIRE(read_bytes(path) ==
            "epoch,accuracy,loss\r\n"
            "0,0.1,0.5\r\n"
            "1,100.0,1e-05\r\n"
            "2,inf,nan\r\n"
            "3,NA,-inf\r\n");
    REQUIRE(sink->columns() == std::vector<std::string>{"epoch", "accuracy", "loss"});
}

TEST_CASE("Numbers are Python's float repr") {
    using traincb::detail::format_python_float;
    // Each expectation is what CPython 3 prints for repr(x) (see docs/keras-semantics.md,
    // "CSVLogger": scientific when the exponent is < -4 or >= 16, at least 2 exponent digits, ".0"
    // on integral).
    REQUIRE(format_python_float(0.1) == "0.1");
    REQUIRE(format_python_float(0.1 + 0.2) == "0.30000000000000004");
    REQUIRE(format_python_float(100.0) == "100.0");
    REQUIRE(format_python_float(0.0) == "0.0");
    REQUIRE(format_python_float(-0.0) == "-0.0");
    REQUIRE(format_python_float(1e-05) == "1e-05");
    REQUIRE(format_python_float(1.5e-07) == "1.5e-07");
    REQUIRE(format_python_float(0.0001) == "0.0001");
    REQUIRE(format_python_float(0.00012345) == "0.00012345");
    REQUIRE(format_python_float(1e15) == "1000000000000000.0");
    REQUIRE(format_python_float(1e16) == "1e+16");
    REQUIRE(format_python_float(1.2345e16) == "1.2345e+16");
    REQUIRE(format_python_float(123456789.0) == "123456789.0");
    REQUIRE(format_python_float(-2.5) == "-2.5");
    REQUIRE(format_python_float(12345.678) == "12345.678");
    REQUIRE(format_python_float(1e300) == "1e+300");
    REQUIRE(format_python_float(5e-324) == "5e-324");
    REQUIRE(format_python_float(1.7976931348623157e308) == "1.7976931348623157e+308");
    REQUIRE(format_python_float(kNan) == "nan");
    REQUIRE(format_python_float(-kInf) == "-inf");
}

TEST_CASE("Numbers match Python's repr on random doubles of every magnitude") {
    if (python3().empty()) TRAINCB_SKIP("no python3 found at configure time");
    // The independent oracle: CPython's repr of the same bits (sent as float.hex text).
    std::mt19937_64 rng(42);
    std::vector<double> values;
    for (int i = 0; i < 400; ++i) {
        const double mant = std::uniform_real_distribution<double>(-10, 10)(rng);
        const int exp = std::uniform_int_distribution<int>(-30, 30)(rng);
        values.push_back(mant * std::pow(10.0, exp));
        values.push_back(std::round(mant * 1000) * std::pow(10.0, exp % 18));  // integral values too
    }
    std::string script = "xs = [";
    for (double v : values) {
        char hex[64];
        std::snprintf(hex, sizeof hex, "%a", v);
        script += "float.fromhex('" + std::string(hex) + "'),";
    }
    script += "]\nprint('\\n'.join(repr(x) for x in xs))\n";
    int status = 0;
    const std::string out = run_python(script, &status);
    REQUIRE(status == 0);
    std::istringstream lines(out);
    std::string line;
    std::size_t i = 0;
    for (; std::getline(lines, line) && i < values.size(); ++i) {
        INFO("value " << i);
        REQUIRE(traincb::detail::format_python_float(values[i]) == line);
    }
    REQUIRE(i == values.size());
}

TEST_CASE("A key that is not a bare CSV cell is quoted as RFC 4180") {
    TempDir dir;
    const auto path = dir / "log.csv";
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}),
        {{0, Logs{{"a,b", 1.0}, {"say \"hi\"", 2.0}, {"line\nbreak", 3.0}, {"cr\rkey", 4.0}}}});
    // Sorted keys: "a,b" < "cr\rkey" < "line\nbreak" < "say \"hi\"" (ASCII a < c < l < s); each holds a
    // separator, CR, LF or quote, so each is quoted, with the quote doubled.
    REQUIRE(read_bytes(path) ==
            "epoch,\"a,b\",\"cr\rkey\",\"line\nbreak\",\"say \"\"hi\"\"\"\r\n"
            "0,1.0,4.0,3.0,2.0\r\n");
}

TEST_CASE("Another separator, a separator that fits inside a cell is refused") {
    TempDir dir;
    const auto path = dir / "log.tsv";
    run(std::make_shared<CsvSink>(CsvOptions{.path = path, .separator = '\t'}),
        {{0, Logs{{"loss", 0.25}, {"a\tb", 1.0}}}});
    REQUIRE(read_bytes(path) == "epoch\t\"a\tb\"\tloss\r\n0\t1.0\t0.25\r\n");

    for (char bad : {'"', '\n', '\r', '.', '-', '+', 'e', 'N', '5', '\0'}) {
        INFO("separator " << static_cast<int>(bad));
        REQUIRE_THROWS_AS(CsvSink(CsvOptions{.path = dir / "x.csv", .separator = bad}), traincb::InvalidArgument);
    }
    REQUIRE_THROWS_AS(CsvSink(CsvOptions{}), traincb::InvalidArgument);
}

TEST_CASE("No phantom val_ columns when the run has no validation") {
    TempDir dir;
    const auto path = dir / "log.csv";
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}),
        {{0, Logs{{"loss", 0.5}, {"accuracy", 0.75}}}, {1, Logs{{"loss", 0.25}, {"accuracy", 0.875}}}});
    // Keras would write "epoch,accuracy,loss,val_accuracy,val_loss" with NA columns (keras-team/keras#21173).
    REQUIRE(read_bytes(path) == "epoch,accuracy,loss\r\n0,0.75,0.5\r\n1,0.875,0.25\r\n");
}

TEST_CASE("A key first logged in a later epoch widens the header, earlier rows get NA") {
    TempDir dir;
    const auto path = dir / "log.csv";
    auto sink = std::make_shared<CsvSink>(CsvOptions{.path = path});
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.on_train_begin();
    Logs e0{{"loss", 0.5}};
    cbs.on_epoch_end(0, e0);
    REQUIRE(read_bytes(path) == "epoch,loss\r\n0,0.5\r\n");
    Logs e1{{"loss", 0.25}, {"val_loss", 0.375}, {"learning_rate", 0.001}};
    cbs.on_epoch_end(1, e1);
    // Rewritten with the new columns in sorted place (learning_rate < loss < val_loss).
    REQUIRE(read_bytes(path) == "epoch,learning_rate,loss,val_loss\r\n0,NA,0.5,NA\r\n1,0.001,0.25,0.375\r\n");
    Logs e2{{"loss", 0.125}};
    cbs.on_epoch_end(2, e2);  // appended to the rewritten file
    cbs.on_train_end();
    REQUIRE(read_bytes(path) ==
            "epoch,learning_rate,loss,val_loss\r\n0,NA,0.5,NA\r\n1,0.001,0.25,0.375\r\n2,NA,0.125,NA\r\n");
    REQUIRE(listing(dir.path) == std::vector<std::string>{"log.csv"});  // no temporary file left
}

TEST_CASE("Declared TrainParams::log_keys are columns from the first row, so no rewrite is needed") {
    TempDir dir;
    const auto path = dir / "log.csv";
    traincb::TrainParams params;
    params.log_keys = {"loss", "val_loss"};
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}),
        {{0, Logs{{"loss", 0.5}}}, {1, Logs{{"loss", 0.25}, {"val_loss", 0.75}}}}, params);
    REQUIRE(read_bytes(path) == "epoch,loss,val_loss\r\n0,0.5,NA\r\n1,0.25,0.75\r\n");
}

TEST_CASE("A fresh run truncates an existing file, zero epochs leave it empty, as Keras") {
    TempDir dir;
    const auto path = dir / "log.csv";
    write_bytes(path, "old content\n");
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}), {});
    REQUIRE(fs::exists(path));
    REQUIRE(read_bytes(path).empty());
}

TEST_CASE("A resumed run drops the rows of the epochs it re-runs, then appends") {
    TempDir dir;
    const auto path = dir / "log.csv";
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}),
        {{0, Logs{{"loss", 5.0}}}, {1, Logs{{"loss", 4.0}}}, {2, Logs{{"loss", 3.0}}}, {3, Logs{{"loss", 2.0}}}});
    // The checkpoint was from epoch 1 (the run crashed after logging epoch 3): resume at 2.
    traincb::TrainParams params;
    params.epochs = 5;
    params.initial_epoch = 2;
    params.resumed = true;
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}),
        {{2, Logs{{"loss", 2.5}}}, {3, Logs{{"loss", 1.5}}}, {4, Logs{{"loss", 1.0}}}}, params);
    REQUIRE(read_bytes(path) == "epoch,loss\r\n0,5.0\r\n1,4.0\r\n2,2.5\r\n3,1.5\r\n4,1.0\r\n");
    REQUIRE(listing(dir.path) == std::vector<std::string>{"log.csv"});
}

TEST_CASE("append keeps an existing file's header and earlier rows, and widens it for a new key") {
    TempDir dir;
    const auto path = dir / "log.csv";
    // A file as Keras writes it (with its phantom val_ column), even with "\n" line ends.
    write_bytes(path, "epoch,loss,val_loss\n0,0.5,NA\n1,0.25,NA\n");
    traincb::TrainParams params;
    params.initial_epoch = 2;
    run(std::make_shared<CsvSink>(CsvOptions{.path = path, .append = true}),
        {{2, Logs{{"loss", 0.125}, {"accuracy", 0.5}}}}, params);
    // The header stays; accuracy is added in sorted place; earlier rows are rewritten with NA.
    REQUIRE(read_bytes(path) == "epoch,accuracy,loss,val_loss\r\n0,NA,0.5,NA\r\n1,NA,0.25,NA\r\n2,0.5,0.125,NA\r\n");
}

TEST_CASE("append from epoch 0 replaces every row (the run owns the epochs from initial_epoch on), with a warning") {
    TempDir dir;
    const auto path = dir / "log.csv";
    write_bytes(path, "epoch,loss\r\n0,0.5\r\n1,0.25\r\n");
    WarningCapture warnings;
    run(std::make_shared<CsvSink>(CsvOptions{.path = path, .append = true}), {{0, Logs{{"loss", 9.0}}}});
    REQUIRE(read_bytes(path) == "epoch,loss\r\n0,9.0\r\n");
    // Dropping rows of a file the user asked to append to is never silent: the two rows counted above.
    REQUIRE(warnings.messages.size() == 1);
    CHECK(warnings.messages[0].starts_with("traincb: CsvSink: append: '" + path.string() +
                                           "' held 2 rows of epochs >= 0, which this run logs again"));
}

TEST_CASE("append warns only when it replaces rows, and a resume replaces them silently") {
    TempDir dir;
    const auto path = dir / "log.csv";
    write_bytes(path, "epoch,loss\r\n0,0.5\r\n1,0.25\r\n");
    WarningCapture warnings;
    traincb::TrainParams params;
    params.initial_epoch = 2;  // continues after the rows it holds: nothing replaced
    run(std::make_shared<CsvSink>(CsvOptions{.path = path, .append = true}), {{2, Logs{{"loss", 0.125}}}}, params);
    REQUIRE(read_bytes(path) == "epoch,loss\r\n0,0.5\r\n1,0.25\r\n2,0.125\r\n");
    params.initial_epoch = 1;
    params.resumed = true;  // a resume re-runs epochs 1 and 2 by design
    run(std::make_shared<CsvSink>(CsvOptions{.path = path, .append = true}), {{1, Logs{{"loss", 0.375}}}}, params);
    REQUIRE(read_bytes(path) == "epoch,loss\r\n0,0.5\r\n1,0.375\r\n");
    CHECK(warnings.messages.empty());
}

TEST_CASE("Resume drops a last row cut off by a crash, and starts afresh after a cut-off header") {
    TempDir dir;
    const auto path = dir / "log.csv";
    traincb::TrainParams params;
    params.initial_epoch = 2;
    params.resumed = true;
    write_bytes(path, "epoch,loss\r\n0,0.5\r\n1,0.2");
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}), {{2, Logs{{"loss", 0.125}}}}, params);
    REQUIRE(read_bytes(path) == "epoch,loss\r\n0,0.5\r\n2,0.125\r\n");

    write_bytes(path, "epoch,lo");
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}), {{2, Logs{{"loss", 0.125}}}}, params);
    REQUIRE(read_bytes(path) == "epoch,loss\r\n2,0.125\r\n");
}

TEST_CASE("Resume keeps quoted cells intact when it rewrites the file") {
    TempDir dir;
    const auto path = dir / "log.csv";
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}), {{0, Logs{{"a,b", 1.0}}}, {1, Logs{{"a,b", 2.0}}}});
    traincb::TrainParams params;
    params.initial_epoch = 1;
    params.resumed = true;
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}), {{1, Logs{{"a,b", 3.0}}}}, params);
    REQUIRE(read_bytes(path) == "epoch,\"a,b\"\r\n0,1.0\r\n1,3.0\r\n");
}

TEST_CASE("Resuming into a file that is not a CSV log throws FormatError naming the path") {
    TempDir dir;
    const auto path = dir / "log.csv";
    const RunInfo resumed{.params = {}, .resumed = true, .initial_epoch = 1};
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"loss,epoch\r\n0.5,0\r\n", "'epoch'"},
        {"epoch,loss\r\n0,0.5,7\r\n", "3 fields"},
        {"epoch,loss\r\nzero,0.5\r\n", "'zero'"},
        {"epoch,loss\r\n\"0\"x,0.5\r\n", "closing quote"},
    };
    for (const auto& [content, needle] : bad) {
        INFO(content);
        write_bytes(path, content);
        CsvSink sink(CsvOptions{.path = path});
        try {
            sink.begin(resumed);
            FAIL("no exception");
        } catch (const traincb::FormatError& e) {
            const std::string msg = e.what();
            REQUIRE(msg.find("traincb: CsvSink: '" + path.string() + "'") == 0);
            REQUIRE(msg.find(needle) != std::string::npos);
        }
        REQUIRE(read_bytes(path) == content);  // left untouched
    }
}

TEST_CASE("A path whose parent is a regular file throws IoError (ENOTDIR) at construction, a missing one at begin") {
    TempDir dir;
    write_bytes(dir / "file", "x");
    const auto path = dir / "file" / "log.csv";
    try {
        CsvSink sink(CsvOptions{.path = path});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(ENOTDIR, std::generic_category()));
        REQUIRE(e.path() == path);
        REQUIRE(std::string(e.what()).find("traincb: CsvSink: ") == 0);
        REQUIRE(std::string(e.what()).find(path.string()) != std::string::npos);
    }
    // A missing directory is not an error at construction (a sink is built on every rank of a
    // data-parallel run, and another rank's directory may not exist): begin() fails on it.
    CsvSink missing(CsvOptions{.path = dir / "missing" / "log.csv"});
    REQUIRE(!fs::exists(dir / "missing"));
    try {
        missing.begin({});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(ENOENT, std::generic_category()));
        REQUIRE(e.path() == dir / "missing" / "log.csv");
    }
    // Neither is a path whose nearest existing ancestor is the regular file: ENOTDIR.
    REQUIRE_THROWS_AS(CsvSink(CsvOptions{.path = dir / "file" / "a" / "b" / "log.csv"}), traincb::IoError);
}

TEST_CASE("A path that is a directory throws IoError (EISDIR) at construction") {
    TempDir dir;
    try {
        CsvSink sink(CsvOptions{.path = dir.path});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(EISDIR, std::generic_category()));
        REQUIRE(std::string(e.what()).find(dir.path.string()) != std::string::npos);
    }
}

TEST_CASE("A path that became unusable after construction throws IoError at begin") {
    TempDir dir;
    fs::create_directory(dir / "sub");
    const auto path = dir / "sub" / "log.csv";
    auto sink = std::make_shared<CsvSink>(CsvOptions{.path = path});
    fs::remove(dir / "sub");
    write_bytes(dir / "sub", "now a file");
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    try {
        cbs.on_train_begin();
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(ENOTDIR, std::generic_category()));
        REQUIRE(e.path() == path);
    }
    // A resumed run stats the path first: the same error.
    const RunInfo resumed{.params = {}, .resumed = true, .initial_epoch = 1};
    REQUIRE_THROWS_AS(sink->begin(resumed), traincb::IoError);
}

TEST_CASE("A full disk (/dev/full) throws IoError ENOSPC at the write") {
    if (!fs::exists("/dev/full")) TRAINCB_SKIP("no /dev/full on this system");
    auto sink = std::make_shared<CsvSink>(CsvOptions{.path = "/dev/full"});
    traincb::MetricLogger logger({sink});
    traincb::CallbackList cbs{logger};
    cbs.on_train_begin();  // opening works: the disk is "full", not missing
    Logs logs{{"loss", 0.5}};
    try {
        cbs.on_epoch_end(0, logs);
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.code() == std::error_code(ENOSPC, std::generic_category()));
        REQUIRE(std::string(e.what()) == "traincb: CsvSink: cannot write '/dev/full': " + e.code().message());
    }
    // A resumed or appending run does not try to read the device back.
    const RunInfo resumed{.params = {}, .resumed = true, .initial_epoch = 3};
    sink->begin(resumed);
    REQUIRE_THROWS_AS(sink->write_epoch(3, logs), traincb::IoError);
}

TEST_CASE("On a file that cannot be rewritten (/dev/null) a new key is warned about and left out") {
    std::vector<std::string> warnings;
    auto previous = traincb::set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
    CsvSink sink(CsvOptions{.path = "/dev/null"});
    sink.begin({});
    sink.write_epoch(0, Logs{{"loss", 0.5}});
    sink.write_epoch(1, Logs{{"loss", 0.5}, {"lr", 0.1}});
    sink.write_epoch(2, Logs{{"loss", 0.5}, {"lr", 0.1}});
    sink.end({});
    traincb::set_warning_handler(previous);
    REQUIRE(warnings.size() == 1);  // once per key
    REQUIRE(warnings[0].find("'lr'") != std::string::npos);
    REQUIRE(sink.columns() == std::vector<std::string>{"epoch", "loss"});
}

TEST_CASE("Misuse: write before begin or after end, a key named epoch") {
    TempDir dir;
    CsvSink sink(CsvOptions{.path = dir / "log.csv"});
    REQUIRE_THROWS_AS(sink.write_epoch(0, Logs{{"loss", 1.0}}), traincb::LogicError);
    sink.begin({});
    REQUIRE_THROWS_AS(sink.write_epoch(0, Logs{{"epoch", 1.0}}), traincb::InvalidArgument);
    sink.end({});
    REQUIRE_THROWS_AS(sink.write_epoch(0, Logs{{"loss", 1.0}}), traincb::LogicError);  // closed by end()
}

TEST_CASE("Python reads the CSV back with the expected columns and values") {
    if (python3().empty()) TRAINCB_SKIP("no python3 found at configure time");
    TempDir dir;
    const auto path = dir / "log.csv";
    traincb::TrainParams params;
    params.log_keys = {"loss", "val_loss"};
    run(std::make_shared<CsvSink>(CsvOptions{.path = path}),
        {{0, Logs{{"loss", 0.5}, {"a,\"b\"", 1.0}}}, {1, Logs{{"loss", kNan}, {"val_loss", 100.0}}}}, params);
    int status = 0;
    const std::string probe = run_python("import pandas\n", &status);
    std::string script;
    if (status == 0) {
        // pandas: every column float64 (the ".0" on integral values), NA and nan as NaN.
        script =
            "import pandas as pd\n"
            "df = pd.read_csv(r'''" +
            path.string() +
            "''')\n"
            "print(list(df.columns))\n"
            "print([str(t) for t in df.dtypes])\n"
            "print(df.to_dict('list'))\n";
        const std::string out = run_python(script, &status);
        REQUIRE(status == 0);
        REQUIRE(out ==
                "['epoch', 'a,\"b\"', 'loss', 'val_loss']\n"
                "['int64', 'float64', 'float64', 'float64']\n"
                "{'epoch': [0, 1], 'a,\"b\"': [1.0, nan], 'loss': [0.5, nan], 'val_loss': [nan, 100.0]}\n");
    } else {
        // The csv module (pandas is not installed): the same cells, quotes undone.
        script =
            "import csv\n"
            "with open(r'''" +
            path.string() +
            "''', newline='') as f:\n"
            "    for row in csv.reader(f): print(row)\n";
        const std::string out = run_python(script, &status);
        REQUIRE(status == 0);
        REQUIRE(out ==
                "['epoch', 'a,\"b\"', 'loss', 'val_loss']\n"
                "['0', '1.0', '0.5', 'NA']\n"
                "['1', 'NA', 'nan', '100.0']\n");
    }
}

// ---- failures through the file seam (traincb/detail/os.hpp) --------------------------------------

namespace {
namespace tf = traincb_test::faults;

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return static_cast<unsigned>(st.st_mode) & 07777U;
}

void check_io_error(const traincb::IoError& e, const fs::path& path, int err) {
    const std::string msg = e.what();
    INFO(msg);
    REQUIRE(msg.starts_with("traincb: CsvSink: "));
    REQUIRE(msg.find("'" + path.string() + "'") != std::string::npos);
    REQUIRE(msg.ends_with(std::strerror(err)));
    REQUIRE(e.path() == path);
}

// A fresh log in a temporary directory with one row (epoch 0) written.
struct OneRowLog {
    TempDir dir;
    fs::path path = dir / "log.csv";
    CsvSink sink{CsvOptions{.path = path}};
    std::string before;
    OneRowLog() {
        sink.begin({});
        sink.write_epoch(0, Logs{{"loss", 0.5}});
        before = read_bytes(path);
    }
};
}  // namespace

TEST_CASE("A row write that fails midway is cut back: the file keeps its whole rows, the error names it") {
    OneRowLog log;
    auto& [dir, path, sink, before] = log;
    REQUIRE(before == "epoch,loss\r\n0,0.5\r\n");
    {
        tf::FaultGuard guard;
        tf::Faults::max_write = 2;                    // "1," reaches the file...
        tf::FaultGuard::fail(tf::kWrite, 1, ENOSPC);  // ...then the disk is full
        try {
            sink.write_epoch(1, Logs{{"loss", 0.25}});
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            check_io_error(e, path, ENOSPC);
            REQUIRE(std::string(e.what()).find("cannot write") != std::string::npos);
        }
    }
    REQUIRE(read_bytes(path) == before);
    // Space is back: the row is written again, right after the last whole row.
    sink.write_epoch(1, Logs{{"loss", 0.25}});
    sink.end({});
    REQUIRE(read_bytes(path) == before + "1,0.25\r\n");
}

TEST_CASE("A failed widening rewrite leaves the previous file intact and no temporary file") {
    struct Case {
        const char* what;
        tf::Op op;
        int call;
        int err;
    };
    // The rewrite: read the old file (open 0), create the temporary file (open 1), chmod it to the
    // old file's mode, write, fsync, close, rename.
    const Case cases[] = {
        {"no room for the temporary file", tf::kOpen, 1, ENOSPC},
        {"chmod of the temporary file", tf::kFchmod, 0, EPERM},
        {"write of the new content", tf::kWrite, 0, EIO},
        {"fsync", tf::kFsync, 0, EIO},
        {"rename over the log", tf::kRename, 0, EACCES},
    };
    for (const Case& c : cases) {
        SECTION(c.what) {
            OneRowLog log;
            auto& [dir, path, sink, before] = log;
            tf::FaultGuard guard;
            tf::FaultGuard::fail(c.op, c.call, c.err);
            try {
                sink.write_epoch(1, Logs{{"loss", 0.25}, {"val_loss", 0.75}});  // a new key: rewrite
                FAIL("no exception");
            } catch (const traincb::IoError& e) {
                check_io_error(e, path, c.err);
            }
            REQUIRE(read_bytes(path) == before);
            REQUIRE(listing(dir.path) == std::vector<std::string>{"log.csv"});
        }
    }
}

TEST_CASE("A failed resume rewrite leaves the previous file intact and names it") {
    TempDir dir;
    const auto path = dir / "log.csv";
    const std::string before = "epoch,loss\r\n0,5.0\r\n1,4.0\r\n2,3.0\r\n";
    write_bytes(path, before);
    CsvSink sink(CsvOptions{.path = path});
    tf::FaultGuard guard;
    tf::FaultGuard::fail(tf::kRename, 0, EROFS);
    try {
        sink.begin(RunInfo{.params = {}, .resumed = true, .initial_epoch = 1});  // drops epochs 1 and 2
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        check_io_error(e, path, EROFS);
    }
    REQUIRE(read_bytes(path) == before);
    REQUIRE(listing(dir.path) == std::vector<std::string>{"log.csv"});
}

TEST_CASE("Rewrites keep the log file's permission bits (resume and widening)") {
    TempDir dir;
    const auto path = dir / "log.csv";
    write_bytes(path, "epoch,loss\r\n0,5.0\r\n1,4.0\r\n");
    // 0640 differs from every default mode a new file could get (0666 less a umask of 002 or 022).
    REQUIRE(::chmod(path.c_str(), 0640) == 0);
    CsvSink sink(CsvOptions{.path = path});
    sink.begin(RunInfo{.params = {}, .resumed = true, .initial_epoch = 1});  // rewrite: drops epoch 1
    REQUIRE(read_bytes(path) == "epoch,loss\r\n0,5.0\r\n");
    REQUIRE(mode_of(path) == 0640U);
    REQUIRE(::chmod(path.c_str(), 0604) == 0);              // changed while the run goes on
    sink.write_epoch(1, Logs{{"loss", 4.5}, {"lr", 0.1}});  // a new key: rewrite
    sink.end({});
    REQUIRE(read_bytes(path) == "epoch,loss,lr\r\n0,5.0,NA\r\n1,4.5,0.1\r\n");
    REQUIRE(mode_of(path) == 0604U);
}

}  // namespace test_sinks_csv
