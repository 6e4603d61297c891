// Tests for traincb/sinks/tensorboard.hpp, traincb/detail/crc32c.hpp and
// traincb/detail/protobuf_wire.hpp. Expected bytes and check values come from
// docs/tensorboard-format.md ("the format page" below; its worked example equals protobuf's
// SerializeToString output and its CRC vectors come from the CRC catalogue and TensorBoard's own
// tests); decoded files are checked by a reader written here (it shares only the CRC, itself
// pinned to the format page's check values) and by tests/tools/decode_tfevents.py, an independent
// pure-Python decoder.
#include "catch.hpp"
#include "file_faults.hpp"
#include "test_support.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <traincb/callbacks/lambda_callback.hpp>
#include <traincb/callbacks/learning_rate_scheduler.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/detail/crc32c.hpp>
#include <traincb/detail/protobuf_wire.hpp>
#include <traincb/sinks/tensorboard.hpp>
#include <traincb/trainer.hpp>
#include <vector>

#include "tfevents_reader.hpp"
#include "trainer_test_models.hpp"

namespace test_tensorboard {

namespace fs = std::filesystem;
using traincb::Logs;
using traincb::sinks::RunInfo;
using traincb::sinks::TensorBoardSink;
using traincb::tensorboard::EventWriter;

using traincb_test::read_bytes;
using traincb_test::TempDir;
using traincb_test::WarningCapture;

namespace {

// ---- helpers ---------------------------------------------------------------------------------

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) s.push_back(static_cast<char>(b));
    return s;
}

std::string hex(std::string_view s) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (char c : s) {
        const auto b = static_cast<unsigned char>(c);
        if (!out.empty()) out += ' ';
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A clock that starts at 1700000000.0 and advances by 0.25 s per reading, so every wall time is
// known and all files are created "in the same second" (the hard case for name ordering).
traincb::tensorboard::Clock stepping_clock() {
    auto t = std::make_shared<double>(1700000000.0);
    return [t] {
        const double now = *t;
        *t += 0.25;
        return now;
    };
}

traincb::tensorboard::Clock fixed_clock(double t) {
    return [t] { return t; };
}

using tfevents::Event;
using tfevents::event_files;
using tfevents::load_run;
using tfevents::parse_event;
using tfevents::read_events;
using tfevents::Series;

// The float32 an in-range double becomes: the standard conversion, not the code under test.
float f32(double v) {
    return static_cast<float>(v);
}

bool has_python() {
    return !std::string_view(TRAINCB_PYTHON3).empty();
}

// Runs tests/tools/decode_tfevents.py on `logdir` and returns its JSON (with `status`: its exit
// code, and its output as a JSON string). Call only when has_python().
nlohmann::json python_decode(const fs::path& logdir, std::string_view flags = "", int* status = nullptr) {
    const std::string python = TRAINCB_PYTHON3;
    const std::string cmd = "'" + python + "' '" TRAINCB_SOURCE_DIR "/tests/tools/decode_tfevents.py' " +
                            std::string(flags) + " '" + logdir.string() + "'" + (status ? " 2>&1" : "");
    FILE* pipe = ::popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string out;
    char buf[4096];
    while (const std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
    const int rc = ::pclose(pipe);
    const int exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (status) {
        *status = exit_code;
        return nlohmann::json(out);
    }
    INFO(out);
    REQUIRE(exit_code == 0);
    return nlohmann::json::parse(out);
}

// Restores RLIMIT_FSIZE and SIGXFSZ on scope exit; while active, files cannot grow past `limit`
// bytes and a write beyond fails with EFBIG (root included: the way to make writes fail here).
struct FileSizeLimit {
    rlimit old{};
    void (*old_handler)(int) = nullptr;
    explicit FileSizeLimit(rlim_t limit) {
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
        old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit lim = old;
        lim.rlim_cur = limit;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
    }
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;
};

// The format page's worked example: the two records, with wall_time 1700000000.0.
const std::string spec_scalar_event =
    bytes({0x09, 0x00, 0x00, 0x00, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x10, 0x03, 0x2a, 0x0d,
           0x0a, 0x0b, 0x0a, 0x04, 0x6c, 0x6f, 0x73, 0x73, 0x15, 0x00, 0x00, 0x00, 0x3f});
const std::string spec_scalar_record = bytes({0x1a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x9b, 0xd8, 0x2d}) +
                                       spec_scalar_event + bytes({0x35, 0xf1, 0x32, 0xef});
const std::string spec_file_version_record =
    bytes({0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa3, 0x7f, 0x4b, 0x22,
           0x09, 0x00, 0x00, 0x00, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x1a, 0x0d}) +
    "brain.Event:2" + bytes({0xec, 0xed, 0x8f, 0x9d});

}  // namespace

// ---- CRC-32C -------------------------------------------------------------------------------------

TEST_CASE("crc32c matches the documented Castagnoli check values") {
    using traincb::detail::crc32c;
    using traincb::detail::masked_crc32c;
    // Format page, "TFRecord framing" (the CRC catalogue's check value, iSCSI's 32 zero bytes,
    // the masked vector of TensorBoard's Rust loader).
    REQUIRE(crc32c(std::string_view("123456789")) == 0xE3069283U);
    const std::vector<unsigned char> zeros(32, 0);
    REQUIRE(crc32c(zeros) == 0x8A9136AAU);
    REQUIRE(masked_crc32c(std::string_view("\x1a\x11"
                                           "CRC test, one two")) == 0x5794D08AU);
    // Format page, "TFRecord framing": the table TensorBoard's Python code starts with.
    REQUIRE(traincb::detail::crc32c_table[0] == 0x00000000U);
    REQUIRE(traincb::detail::crc32c_table[1] == 0xF26B8303U);
    REQUIRE(traincb::detail::crc32c_table[2] == 0xE13B70F7U);
    // Format page, worked example: raw and masked CRC of the 8 length bytes of a 26-byte record,
    // and of its payload.
    const std::string length_bytes = bytes({0x1a, 0, 0, 0, 0, 0, 0, 0});
    REQUIRE(crc32c(length_bytes) == 0xD81D45AAU);
    REQUIRE(masked_crc32c(length_bytes) == 0x2DD89B12U);
    REQUIRE(crc32c(spec_scalar_event) == 0x032EA658U);
    REQUIRE(masked_crc32c(spec_scalar_event) == 0xEF32F135U);
    // The mask is a bijection (rotate + add).
    for (std::uint32_t v : {0U, 1U, 0xE3069283U, 0xFFFFFFFFU, 0x80000000U}) {
        REQUIRE(traincb::detail::unmask_crc32c(traincb::detail::mask_crc32c(v)) == v);
    }
    // Not zlib's CRC-32, whose check value for "123456789" is 0xCBF43926.
    REQUIRE(crc32c(std::string_view("123456789")) != 0xCBF43926U);
}

// ---- protobuf wire -------------------------------------------------------------------------------

TEST_CASE("protobuf varints, fixed-width fields and int64 negatives follow the wire format") {
    namespace pb = traincb::detail::pb;
    auto varint = [](std::uint64_t v) {
        std::string s;
        pb::put_varint(s, v);
        REQUIRE(s.size() == pb::varint_size(v));
        return s;
    };
    // Hand derivations from the rule "7 bits per byte, low group first, MSB = more".
    REQUIRE(varint(0) == bytes({0x00}));
    REQUIRE(varint(1) == bytes({0x01}));
    REQUIRE(varint(127) == bytes({0x7f}));
    REQUIRE(varint(128) == bytes({0x80, 0x01}));
    REQUIRE(varint(300) == bytes({0xac, 0x02}));  // format page, "Protobuf wire encoding"
    REQUIRE(varint(std::numeric_limits<std::uint64_t>::max()) ==
            bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));

    std::string s;
    pb::put_int64_field(s, 2, -1);  // -1 -> ff*9 01, not zigzag (format page)
    REQUIRE(s == bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
    s.clear();
    pb::put_int64_field(s, 2, 3);
    REQUIRE(s == bytes({0x10, 0x03}));

    s.clear();
    pb::put_double_field(s, 1, 1700000000.0);  // worked example
    REQUIRE(s == bytes({0x09, 0x00, 0x00, 0x00, 0x40, 0xfc, 0x54, 0xd9, 0x41}));
    s.clear();
    pb::put_float_field(s, 2, 0.5F);  // worked example: key 0x15, 0.5f = 0x3f000000 LE
    REQUIRE(s == bytes({0x15, 0x00, 0x00, 0x00, 0x3f}));
    s.clear();
    pb::put_fixed32(s, 0x01020304U);
    pb::put_fixed64(s, 0x0102030405060708ULL);
    REQUIRE(s == bytes({4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1}));
    s.clear();
    pb::put_bytes_field(s, 1, "loss");  // worked example
    REQUIRE(s == bytes({0x0a, 0x04, 0x6c, 0x6f, 0x73, 0x73}));
    s.clear();
    pb::put_key(s, 16, pb::WireType::Len);  // (16 << 3) | 2 = 130 needs two bytes
    REQUIRE(s == bytes({0x82, 0x01}));
}

// ---- events, byte-exact ------------------------------------------------------------------------

TEST_CASE("the scalar, file_version and SessionLog START events are the documented bytes") {
    namespace tb = traincb::detail::tb;
    std::string event;
    tb::encode_scalar_event(event, 1700000000.0, 3, "loss", 0.5F);
    REQUIRE(hex(event) == hex(spec_scalar_event));
    std::string record;
    tb::append_record(record, event);
    REQUIRE(hex(record) == hex(spec_scalar_record));

    event.clear();
    tb::encode_file_version_event(event, 1700000000.0, "");
    record.clear();
    tb::append_record(record, event);
    REQUIRE(hex(record) == hex(spec_file_version_record));

    // With source_metadata (field 10, key 0x52) = SourceMetadata{writer (field 1) = "traincb"}.
    event.clear();
    tb::encode_file_version_event(event, 1700000000.0, "traincb");
    REQUIRE(hex(event) == hex(spec_file_version_record.substr(12, 24) + bytes({0x52, 0x09, 0x0a, 0x07}) + "traincb"));

    // Worked example: SessionLog START at step 5 = 09 <double> 10 05 3a 02 08 01.
    event.clear();
    tb::encode_session_start_event(event, 1700000000.0, 5);
    REQUIRE(hex(event) == hex(spec_scalar_event.substr(0, 9) + bytes({0x10, 0x05, 0x3a, 0x02, 0x08, 0x01})));

    // proto3 omits a zero step, as SerializeToString does; simple_value 0 is in a oneof, so kept.
    event.clear();
    tb::encode_scalar_event(event, 1700000000.0, 0, "a", 0.0F);
    REQUIRE(hex(event) == hex(spec_scalar_event.substr(0, 9) +
                              bytes({0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 'a', 0x15, 0x00, 0x00, 0x00, 0x00})));
    // A negative step is a 10-byte varint.
    event.clear();
    tb::encode_session_start_event(event, 1700000000.0, -1);
    REQUIRE(hex(event) == hex(spec_scalar_event.substr(0, 9) + bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                                      0xff, 0xff, 0x01, 0x3a, 0x02, 0x08, 0x01})));
}

TEST_CASE("EventWriter with an injected clock writes exactly the documented file") {
    TempDir dir;
    fs::path path;
    {
        EventWriter w(dir.path / "run",
                      {.filename_suffix = ".v2", .writer_name = "", .clock = fixed_clock(1700000000.0)});
        w.add_scalar("loss", 3, 0.5);
        path = w.path();
        REQUIRE(w.is_open());
        w.close();
        REQUIRE_FALSE(w.is_open());
        w.close();  // idempotent
    }
    REQUIRE(read_file(path) == spec_file_version_record + spec_scalar_record);
    if (has_python()) {  // the independent decoder reads these bytes as the format page says
        REQUIRE(python_decode(dir.path) == nlohmann::json::parse(R"({"run": {"loss": [[3, 0.5]]}})"));
    }

    // events.out.tfevents.<10-digit secs>.<host>.<pid>.<counter><suffix>
    char host[256] = {};
    REQUIRE(::gethostname(host, sizeof host - 1) == 0);
    const std::regex re(R"(events\.out\.tfevents\.(\d{10})\.(.+)\.(\d+)\.(\d+)\.v2)");
    std::smatch m;
    const std::string name = path.filename().string();
    REQUIRE(std::regex_match(name, m, re));
    REQUIRE(m[1] == "1700000000");
    REQUIRE(m[2] == std::string(host));
    REQUIRE(m[3] == std::to_string(::getpid()));
    REQUIRE(path.parent_path() == dir.path / "run");
}

TEST_CASE("EventWriter's default first event names the writer, and wall times come from the clock") {
    TempDir dir;
    fs::path path;
    {
        EventWriter w(dir.path, {.clock = stepping_clock()});
        w.add_scalar("a", 7, 1.0 / 3.0);          // wall time from the clock: 1700000000.25
        w.add_scalar("b", 8, 2.0, 1600000000.5);  // explicit wall time
        w.add_session_start(9);                   // 1700000000.5
        REQUIRE(w.now() == 1700000000.75);
        path = w.path();
    }  // the destructor flushes
    const auto events = read_events(path);
    REQUIRE(events.size() == 4);
    REQUIRE(events[0].file_version == "brain.Event:2");
    REQUIRE(events[0].writer == "traincb");
    REQUIRE(events[0].wall_time == 1700000000.0);
    REQUIRE(events[1].wall_time == 1700000000.25);
    REQUIRE(events[1].step == 7);
    REQUIRE(events[1].values == std::vector<std::pair<std::string, float>>{{"a", f32(1.0 / 3.0)}});
    REQUIRE(events[2].wall_time == 1600000000.5);
    REQUIRE(events[3].session_status == 1);
    REQUIRE(events[3].step == 9);
    REQUIRE(events[3].wall_time == 1700000000.5);
}

TEST_CASE("values are rounded to float32 as IEEE does, including beyond FLT_MAX") {
    using traincb::detail::tb::to_float32;
    constexpr float flt_max = std::numeric_limits<float>::max();
    constexpr float inf = std::numeric_limits<float>::infinity();
    REQUIRE(to_float32(0.1) == 0.1F);
    REQUIRE(to_float32(-2.5) == -2.5F);
    REQUIRE(std::isnan(to_float32(std::nan(""))));
    REQUIRE(to_float32(std::numeric_limits<double>::infinity()) == inf);
    REQUIRE(to_float32(-std::numeric_limits<double>::infinity()) == -inf);
    REQUIRE(to_float32(1e300) == inf);
    REQUIRE(to_float32(-1e300) == -inf);
    // FLT_MAX = 2^128 - 2^104; halfway to 2^128 is 2^128 - 2^103: just below rounds down,
    // the tie rounds to even (2^128 = inf).
    REQUIRE(to_float32(0x1.fffffe8p+127) == flt_max);
    REQUIRE(to_float32(-0x1.fffffe8p+127) == -flt_max);
    REQUIRE(to_float32(0x1.ffffffp+127) == inf);
    // 2^-149 is the smallest float subnormal; 1e-46 is below half of it and flushes to 0.
    REQUIRE(to_float32(0x1p-149) == std::bit_cast<float>(1U));
    REQUIRE(to_float32(1e-46) == 0.0F);
}

TEST_CASE("tags must be non-empty UTF-8") {
    TempDir dir;
    EventWriter w(dir.path, {.clock = fixed_clock(1700000000.0)});
    REQUIRE_THROWS_AS(w.add_scalar("", 0, 1.0), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(w.add_scalar("bad\xff", 0, 1.0), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(w.add_scalar("\xc0\xaf", 0, 1.0), traincb::InvalidArgument);      // overlong '/'
    REQUIRE_THROWS_AS(w.add_scalar("\xed\xa0\x80", 0, 1.0), traincb::InvalidArgument);  // surrogate
    REQUIRE_THROWS_AS(w.add_scalar("\xe2\x82", 0, 1.0), traincb::InvalidArgument);      // truncated
    w.add_scalar("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80", 0, 1.0);                  // é € 😀
    w.close();
    const auto events = read_events(w.path());
    REQUIRE(events.size() == 2);
    REQUIRE(events[1].values.at(0).first == "caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80");
}

TEST_CASE("EventWriter rejects bad options and use after close") {
    TempDir dir;
    REQUIRE_THROWS_AS(EventWriter(""), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(EventWriter(dir.path, {.filename_suffix = "a/b"}), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(EventWriter(dir.path, {.writer_name = "\xff"}), traincb::InvalidArgument);
    EventWriter w(dir.path);
    w.close();
    REQUIRE_THROWS_AS(w.add_scalar("x", 0, 1.0), traincb::LogicError);
    REQUIRE_THROWS_AS(w.add_session_start(0), traincb::LogicError);
    REQUIRE_THROWS_AS(w.flush(), traincb::LogicError);
    // A moved-from writer is closed; the target owns the file.
    EventWriter a(dir.path);
    EventWriter b(std::move(a));
    REQUIRE_FALSE(a.is_open());  // NOLINT(bugprone-use-after-move,clang-analyzer-cplusplus.Move): documented state
    REQUIRE(b.is_open());
    b.add_scalar("x", 1, 2.0);
    EventWriter c(dir.path);
    const fs::path c_path = c.path();
    c = std::move(b);  // closes c's file first
    REQUIRE(read_events(c_path).size() == 1);
    c.close();
    REQUIRE(read_events(c.path()).size() == 2);
}

// ---- file names ----------------------------------------------------------------------------------

TEST_CASE("event file names sort in creation order, even within one second") {
    TempDir dir;
    // Twelve writers in the same second: the counter goes 9 -> 10, which would sort before 9 if
    // the writer did not raise the timestamp.
    std::vector<std::string> created;
    for (int i = 0; i < 12; ++i) {
        EventWriter w(dir.path, {.clock = fixed_clock(1700000000.5)});
        created.push_back(w.path().filename().string());
    }
    std::vector<std::string> sorted = created;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(sorted == created);
    std::set<std::string> unique(created.begin(), created.end());
    REQUIRE(unique.size() == created.size());

    // A clock that went backwards (or a file from a skewed machine) still sorts before the new file.
    { std::ofstream(dir.path / "events.out.tfevents.1800000000.zzz.1.0"); }
    EventWriter late(dir.path, {.clock = fixed_clock(1700000000.0)});
    REQUIRE(late.path().filename().string().starts_with("events.out.tfevents.1800000001."));
    REQUIRE(event_files(dir.path).back() == late.path());
}

TEST_CASE("a foreign event file name that sorts last is reported, not silently ignored") {
    TempDir dir;
    { std::ofstream(dir.path / "zzz.tfevents.custom"); }
    WarningCapture warnings;
    EventWriter w(dir.path, {.clock = fixed_clock(1700000000.0)});
    REQUIRE(warnings.messages.size() == 1);
    REQUIRE(warnings.messages[0].find("zzz.tfevents.custom") != std::string::npos);
    REQUIRE(warnings.messages[0].starts_with("traincb: TensorBoard: "));
}

// ---- the sink ------------------------------------------------------------------------------------

namespace {

// Three epochs of Keras-style logs, with values that float32 cannot hold exactly.
std::vector<Logs> three_epochs() {
    return {
        Logs{
            {"loss", 0.1}, {"accuracy", 1.0 / 3.0}, {"learning_rate", 1e-3}, {"val_loss", 0.2}, {"val_accuracy", 0.25}},
        Logs{{"loss", 0.07},
             {"accuracy", 2.0 / 3.0},
             {"learning_rate", 5e-4},
             {"val_loss", 0.15},
             {"val_accuracy", 0.5}},
        Logs{{"loss", std::nan("")},
             {"accuracy", 0.9},
             {"learning_rate", 2.5e-4},
             {"val_loss", 1e300},
             {"val_accuracy", 0.75}},
    };
}

RunInfo run_info(int epochs, bool has_validation, bool resumed = false, int initial_epoch = 0) {
    RunInfo info;
    info.params.epochs = epochs;
    info.params.initial_epoch = initial_epoch;
    info.params.has_validation = has_validation;
    info.params.resumed = resumed;
    info.resumed = resumed;
    info.initial_epoch = initial_epoch;
    return info;
}

// The float32 that `v` becomes (non-finite and out-of-range per IEEE, derived by hand).
float expected_f32(double v) {
    if (std::isnan(v)) return std::numeric_limits<float>::quiet_NaN();
    if (v == 1e300) return std::numeric_limits<float>::infinity();
    return f32(v);
}

bool same_float(float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || a == b;
}

}  // namespace

TEST_CASE("TensorBoardSink writes Keras's layout: train and validation runs, epoch_ tags, step = epoch") {
    TempDir dir;
    const auto epochs = three_epochs();
    {
        TensorBoardSink sink({.log_dir = dir.path / "logs", .clock = stepping_clock()});
        REQUIRE_FALSE(sink.wants_batches());
        sink.begin(run_info(3, true));
        REQUIRE(fs::exists(sink.validation_file()));  // has_validation: opened at begin
        for (int e = 0; e < 3; ++e) {
            sink.write_epoch(e, epochs[static_cast<std::size_t>(e)]);
            // Flushed at every epoch end: the file already holds the epoch.
            REQUIRE(load_run(dir.path / "logs" / "train").at("epoch_loss").size() == static_cast<std::size_t>(e + 1));
        }
        sink.end({});
        REQUIRE(sink.train_file().empty());
    }
    // Exactly two runs, each with exactly one file.
    std::set<std::string> runs;
    for (const auto& entry : fs::directory_iterator(dir.path / "logs")) runs.insert(entry.path().filename().string());
    REQUIRE(runs == std::set<std::string>{"train", "validation"});
    REQUIRE(event_files(dir.path / "logs" / "train").size() == 1);
    REQUIRE(event_files(dir.path / "logs" / "validation").size() == 1);

    const Series train = load_run(dir.path / "logs" / "train");
    const Series val = load_run(dir.path / "logs" / "validation");
    const std::map<std::string, std::pair<const Series*, std::string>> where = {
        {"loss", {&train, "epoch_loss"}},
        {"accuracy", {&train, "epoch_accuracy"}},
        {"learning_rate", {&train, "epoch_learning_rate"}},
        {"val_loss", {&val, "epoch_loss"}},
        {"val_accuracy", {&val, "epoch_accuracy"}},
    };
    REQUIRE(train.size() == 3);
    REQUIRE(val.size() == 2);
    for (const auto& [key, loc] : where) {
        const auto& points = loc.first->at(loc.second);
        REQUIRE(points.size() == 3);
        for (std::size_t e = 0; e < 3; ++e) {
            INFO(key << " epoch " << e);
            REQUIRE(points[e].first == static_cast<std::int64_t>(e));
            REQUIRE(same_float(points[e].second, expected_f32(epochs[e].at(key))));
        }
    }

    // Wall times come from the clock; one reading per epoch, shared by the epoch's values.
    const auto events = read_events(event_files(dir.path / "logs" / "train").front());
    REQUIRE(events.front().writer == "traincb");
    REQUIRE(events.size() == 1 + 3 * 3);
    REQUIRE(events[1].wall_time == events[3].wall_time);
    REQUIRE(events[4].wall_time > events[1].wall_time);
}

TEST_CASE("an independent Python decoder reads the sink's files back to the float32 values logged") {
    if (!has_python()) TRAINCB_SKIP("TRAINCB_PYTHON3 is empty: no python3 to run tests/tools/decode_tfevents.py");
    TempDir dir;
    const auto epochs = three_epochs();
    {
        TensorBoardSink sink({.log_dir = dir.path, .filename_suffix = ".traincb", .clock = fixed_clock(1.7e9)});
        sink.begin(run_info(3, false));
        REQUIRE(sink.validation_file().empty());  // opened lazily at the first val_ key
        for (int e = 0; e < 3; ++e) sink.write_epoch(e, epochs[static_cast<std::size_t>(e)]);
        sink.end({});
    }
    const nlohmann::json j = python_decode(dir.path);
    REQUIRE(j.size() == 2);
    auto check = [&](const std::string& run, const std::string& tag, const std::string& key) {
        const auto& points = j.at(run).at(tag);
        REQUIRE(points.size() == 3);
        for (std::size_t e = 0; e < 3; ++e) {
            INFO(run << "/" << tag << " epoch " << e);
            REQUIRE(points[e][0].get<std::int64_t>() == static_cast<std::int64_t>(e));
            const float want = expected_f32(epochs[e].at(key));
            if (std::isnan(want)) {
                REQUIRE(points[e][1] == "NaN");
            } else if (std::isinf(want)) {
                REQUIRE(points[e][1] == "Infinity");
            } else {
                // Python prints the float32 widened to double with repr: parses back exactly.
                REQUIRE(points[e][1].get<double>() == static_cast<double>(want));
            }
        }
    };
    check("train", "epoch_loss", "loss");
    check("train", "epoch_accuracy", "accuracy");
    check("train", "epoch_learning_rate", "learning_rate");
    check("validation", "epoch_loss", "val_loss");
    check("validation", "epoch_accuracy", "val_accuracy");
    REQUIRE(j.at("train").size() == 3);
    REQUIRE(j.at("validation").size() == 2);
}

TEST_CASE("the Python decoder rejects a file whose CRC does not match") {
    if (!has_python()) TRAINCB_SKIP("TRAINCB_PYTHON3 is empty: no python3 to run tests/tools/decode_tfevents.py");
    TempDir dir;
    fs::path path;
    {
        EventWriter w(dir.path / "run", {.clock = fixed_clock(1700000000.0)});
        w.add_scalar("loss", 1, 0.5);
        path = w.path();
    }
    std::string data = read_file(path);
    data[data.size() - 6] = static_cast<char>(data[data.size() - 6] ^ 0x01);  // a payload byte
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
    int status = 0;
    const std::string out = python_decode(dir.path, "", &status).get<std::string>();
    INFO(out);
    REQUIRE(status == 1);
    REQUIRE(out.find("bad data CRC") != std::string::npos);
}

TEST_CASE("log_batches writes batch_ scalars at the global step, every update_freq steps") {
    TempDir dir;
    {
        TensorBoardSink sink({.log_dir = dir.path, .log_batches = true, .update_freq = 2, .clock = stepping_clock()});
        REQUIRE(sink.wants_batches());
        sink.begin(run_info(2, false));
        std::int64_t global = 0;
        for (int e = 0; e < 2; ++e) {
            for (int b = 0; b < 3; ++b) {
                ++global;
                sink.write_batch({.epoch = e, .batch = b, .steps_per_epoch = 3, .global_step = global},
                                 Logs{{"loss", 1.0 / static_cast<double>(global)}});
            }
            sink.write_epoch(e, Logs{{"loss", 0.5 / (e + 1)}});
        }
        sink.end({});
    }
    const Series train = load_run(dir.path / "train");
    // Global steps 1..6; update_freq 2 keeps 2, 4, 6 (Keras: step % update_freq == 0).
    REQUIRE(train.at("batch_loss") ==
            std::vector<std::pair<std::int64_t, float>>{{2, f32(1.0 / 2)}, {4, f32(1.0 / 4)}, {6, f32(1.0 / 6)}});
    REQUIRE(train.at("epoch_loss") == std::vector<std::pair<std::int64_t, float>>{{0, 0.5F}, {1, 0.25F}});
    REQUIRE_FALSE(fs::exists(dir.path / "validation"));

    if (has_python()) {  // the independent decoder agrees (its own test reports a skip)
        const auto decoded = python_decode(dir.path);
        REQUIRE(decoded.at("train").at("batch_loss").size() == 3);
        REQUIRE(decoded.at("train").at("batch_loss")[1][0] == 4);
        REQUIRE(decoded.at("train").at("batch_loss")[1][1].get<double>() == static_cast<double>(f32(0.25)));
    }
}

TEST_CASE("a resumed run starts a new file with a SessionLog START at the resume step") {
    TempDir dir;
    auto logs = [](int epoch, double base) { return Logs{{"loss", base + epoch}, {"val_loss", base + epoch + 0.5}}; };
    TensorBoardSink sink({.log_dir = dir.path, .clock = stepping_clock()});
    // Run 1 runs epochs 0..3, but the checkpoint it leaves is at the end of epoch 1.
    sink.begin(run_info(4, true));
    for (int e = 0; e < 4; ++e) sink.write_epoch(e, logs(e, 10.0));
    sink.end({});
    const fs::path first_train = event_files(dir.path / "train").at(0);
    // Run 2 resumes at epoch 2 (same sink object: begin() after end() opens new files).
    sink.begin(run_info(5, true, /*resumed=*/true, /*initial_epoch=*/2));
    for (int e = 2; e < 5; ++e) sink.write_epoch(e, logs(e, 100.0));
    sink.end({});

    for (const char* run : {"train", "validation"}) {
        INFO(run);
        const auto files = event_files(dir.path / run);
        REQUIRE(files.size() == 2);
        const auto second = read_events(files[1]);
        REQUIRE(second.at(0).file_version == "brain.Event:2");
        REQUIRE(second.at(1).session_status == 1);
        REQUIRE(second.at(1).step == 2);
        // No START in the first run's file.
        for (const Event& e : read_events(files[0])) REQUIRE(e.session_status == -1);
    }
    REQUIRE(event_files(dir.path / "train").at(0) == first_train);  // the old file sorts first
    // As the legacy loader sees it: epochs 0-1 from run 1, 2-4 from run 2.
    const auto expect = [](double off) {
        return std::vector<std::pair<std::int64_t, float>>{{0, f32(10.0 + off)},
                                                           {1, f32(11.0 + off)},
                                                           {2, f32(102.0 + off)},
                                                           {3, f32(103.0 + off)},
                                                           {4, f32(104.0 + off)}};
    };
    REQUIRE(load_run(dir.path / "train").at("epoch_loss") == expect(0.0));
    REQUIRE(load_run(dir.path / "validation").at("epoch_loss") == expect(0.5));

    if (has_python()) {
        const auto decoded = python_decode(dir.path, "--session-logs");
        // The raw files hold both runs' points (7 = 4 + 3) and one START at step 2.
        REQUIRE(decoded.at("train").at("epoch_loss").size() == 7);
        REQUIRE(decoded.at("validation").at("__session_log__") == nlohmann::json::parse("[[2, 1]]"));
    }
}

TEST_CASE("with log_batches, a resumed train run's START is at the first batch's global step") {
    TempDir dir;
    const std::int64_t spe = 4;
    auto run = [&](TensorBoardSink& sink, int from, int to, double base) {
        for (int e = from; e < to; ++e) {
            for (int b = 0; b < spe; ++b) {
                const std::int64_t g = e * spe + b + 1;
                sink.write_batch({.epoch = e, .batch = b, .steps_per_epoch = spe, .global_step = g},
                                 Logs{{"loss", base + static_cast<double>(g)}});
            }
            sink.write_epoch(e, Logs{{"loss", base + e}, {"val_loss", base + e}});
        }
    };
    {
        TensorBoardSink sink({.log_dir = dir.path, .log_batches = true, .clock = stepping_clock()});
        sink.begin(run_info(3, true));
        run(sink, 0, 3, 0.0);  // global steps 1..12, epochs 0..2
        sink.end({});
    }
    {
        TensorBoardSink sink({.log_dir = dir.path, .log_batches = true, .clock = stepping_clock()});
        sink.begin(run_info(3, true, true, 1));  // resume at epoch 1: global steps 5.. again
        run(sink, 1, 3, 1000.0);
        sink.end({});
    }
    const auto files = event_files(dir.path / "train");
    REQUIRE(files.size() == 2);
    const auto second = read_events(files[1]);
    REQUIRE(second.at(1).session_status == 1);
    REQUIRE(second.at(1).step == 5);                                                   // the first resumed batch
    REQUIRE(read_events(event_files(dir.path / "validation").at(1)).at(1).step == 1);  // the epoch

    const Series train = load_run(dir.path / "train");
    const auto& batches = train.at("batch_loss");
    REQUIRE(batches.size() == 12);  // 1..4 from run 1, 5..12 from run 2, no duplicate
    for (std::size_t i = 0; i < 12; ++i) {
        const auto g = static_cast<std::int64_t>(i + 1);
        REQUIRE(batches[i].first == g);
        REQUIRE(batches[i].second == f32((g <= 4 ? 0.0 : 1000.0) + static_cast<double>(g)));
    }
    REQUIRE(load_run(dir.path / "validation").at("epoch_loss") ==
            std::vector<std::pair<std::int64_t, float>>{{0, 0.0F}, {1, 1001.0F}, {2, 1002.0F}});
}

// ---- errors ---------------------------------------------------------------------------------------

TEST_CASE("an unwritable log dir raises IoError naming the path and the OS error") {
    TempDir dir;
    { std::ofstream(dir.path / "file") << "not a directory"; }
    const fs::path bad = dir.path / "file" / "logs";  // tests run as root: a file parent is what fails
    try {
        TensorBoardSink sink({.log_dir = bad});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        const std::string msg = e.what();
        INFO(msg);
        REQUIRE(msg.starts_with("traincb: TensorBoardSink: cannot create log_dir '"));
        REQUIRE(msg.find(bad.string()) != std::string::npos);
        REQUIRE(e.code() == std::errc::not_a_directory);
        REQUIRE(msg.find(e.code().message()) != std::string::npos);
    }
    try {
        EventWriter w(bad / "train");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(std::string(e.what()).starts_with("traincb: TensorBoard: cannot create directory '"));
        REQUIRE(e.path() == bad / "train");
        REQUIRE(e.code() == std::errc::not_a_directory);
    }
    // The log dir itself is a regular file.
    REQUIRE_THROWS_AS(TensorBoardSink({.log_dir = dir.path / "file"}), traincb::IoError);
    REQUIRE_THROWS_AS(EventWriter(dir.path / "file"), traincb::IoError);
}

TEST_CASE("a directory where no file can be created raises IoError at open") {
    // /proc/self is a directory in which even root cannot create files (Linux).
    if (!fs::is_directory("/proc/self")) TRAINCB_SKIP("no /proc/self");
    try {
        EventWriter w("/proc/self", {.clock = fixed_clock(1700000000.0)});
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        const std::string msg = e.what();
        INFO(msg);
        REQUIRE(msg.starts_with("traincb: TensorBoard: cannot create '/proc/self/events.out.tfevents.1700000000."));
        REQUIRE(e.code().value() != 0);
    }
}

TEST_CASE("a failed write raises IoError and cuts the file back to whole records") {
    TempDir dir;
    EventWriter w(dir.path, {.clock = fixed_clock(1700000000.0)});
    const auto header_size = fs::file_size(w.path());
    {
        const FileSizeLimit limit(header_size + 60);  // room for one record and a torn half
        for (int i = 0; i < 5; ++i) w.add_scalar("loss", i, 0.5);
        try {
            w.flush();
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            const std::string msg = e.what();
            INFO(msg);
            REQUIRE(msg.starts_with("traincb: TensorBoard: cannot write '" + w.path().string() + "'"));
            REQUIRE(e.code().value() == EFBIG);
        }
    }
    REQUIRE(fs::file_size(w.path()) == header_size);
    // The writer still works, and the next record follows the header directly (no hole).
    w.add_scalar("loss", 7, 0.25);
    w.close();
    const auto events = read_events(w.path());
    REQUIRE(events.size() == 2);
    REQUIRE(events[1].step == 7);
}

TEST_CASE("a write failing through the file seam is cut back to whole records and names the file") {
    namespace tf = traincb_test::faults;
    TempDir dir;
    EventWriter w(dir.path, {.clock = fixed_clock(1700000000.0)});
    const auto header_size = fs::file_size(w.path());
    const std::string header = read_bytes(w.path());
    {
        tf::FaultGuard guard;
        tf::Faults::max_write = 7;                 // a record takes several write calls...
        tf::FaultGuard::fail(tf::kWrite, 3, EIO);  // ...and the fourth one fails mid-record
        for (int i = 0; i < 3; ++i) w.add_scalar("loss", i, 0.5);
        try {
            w.flush();
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            REQUIRE(std::string(e.what()) ==
                    "traincb: TensorBoard: cannot write '" + w.path().string() + "': " + std::strerror(EIO));
            REQUIRE(e.path() == w.path());
        }
        REQUIRE(tf::Faults::calls[tf::kFtruncate] == 1);
    }
    REQUIRE(fs::file_size(w.path()) == header_size);  // the 21 bytes that got through are cut off
    REQUIRE(read_bytes(w.path()) == header);
    w.add_scalar("loss", 7, 0.25);
    w.close();
    const auto events = read_events(w.path());
    REQUIRE(events.size() == 2);
    REQUIRE(events[1].step == 7);
}

TEST_CASE("an event file that cannot be created through the file seam leaves no file behind") {
    namespace tf = traincb_test::faults;
    TempDir dir;
    {
        tf::FaultGuard guard;
        tf::FaultGuard::fail(tf::kOpen, 0, EACCES);
        try {
            EventWriter w(dir.path, {.clock = fixed_clock(1700000000.0)});
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            REQUIRE(std::string(e.what()).starts_with("traincb: TensorBoard: cannot create '" + dir.path.string() +
                                                      "/events.out.tfevents.1700000000."));
            REQUIRE(e.code() == std::errc::permission_denied);
        }
    }
    {
        // The file is made, but its first record cannot be written: it is removed again.
        tf::FaultGuard guard;
        tf::FaultGuard::fail(tf::kWrite, 0, ENOSPC);
        REQUIRE_THROWS_AS(EventWriter(dir.path, {.clock = fixed_clock(1700000000.0)}), traincb::IoError);
    }
    REQUIRE(fs::is_empty(dir.path));
}

TEST_CASE("a write failing in the destructor is reported as a warning") {
    TempDir dir;
    WarningCapture warnings;
    fs::path path;
    {
        EventWriter w(dir.path, {.clock = fixed_clock(1700000000.0)});
        path = w.path();
        w.add_scalar("loss", 1, 0.5);
        const FileSizeLimit limit(fs::file_size(path));  // no room for the pending record
        // Locals die in reverse order: `dying` (owning the file) goes before the limit is lifted.
        const EventWriter dying = std::move(w);
    }
    REQUIRE(warnings.messages.size() == 1);
    REQUIRE(warnings.messages[0].find("cannot write '" + path.string() + "'") != std::string::npos);
    REQUIRE(read_events(path).size() == 1);
}

TEST_CASE("TensorBoardSink propagates write failures from write_epoch and end") {
    TempDir dir;
    TensorBoardSink sink({.log_dir = dir.path, .log_batches = true, .clock = fixed_clock(1700000000.0)});
    sink.begin(run_info(1, false));
    const auto size = fs::file_size(sink.train_file());
    {
        const FileSizeLimit limit(size);
        REQUIRE_THROWS_AS(sink.write_epoch(0, Logs{{"loss", 1.0}}), traincb::IoError);
        sink.write_batch({.epoch = 0, .batch = 0, .steps_per_epoch = 1, .global_step = 1}, Logs{{"loss", 1.0}});
        REQUIRE_THROWS_AS(sink.flush(), traincb::IoError);
        sink.write_batch({.epoch = 0, .batch = 0, .steps_per_epoch = 1, .global_step = 1}, Logs{{"loss", 1.0}});
        REQUIRE_THROWS_AS(sink.end({}), traincb::IoError);
    }
    REQUIRE(sink.train_file().empty());  // closed even though the last write failed
}

TEST_CASE("TensorBoardSink validates its options and its call order") {
    TempDir dir;
    REQUIRE_THROWS_AS(TensorBoardSink({.log_dir = ""}), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(TensorBoardSink({.log_dir = dir.path, .update_freq = 0}), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(TensorBoardSink({.log_dir = dir.path, .filename_suffix = "x/y"}), traincb::InvalidArgument);
    try {
        TensorBoardSink sink({.log_dir = dir.path, .update_freq = -3});
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        REQUIRE(std::string(e.what()).find("update_freq = -3") != std::string::npos);
    }
    TensorBoardSink sink({.log_dir = dir.path});
    REQUIRE_THROWS_AS(sink.write_epoch(0, Logs{{"loss", 1.0}}), traincb::LogicError);
    REQUIRE_THROWS_AS(sink.write_batch({}, Logs{{"loss", 1.0}}), traincb::LogicError);
    sink.flush();  // nothing open: nothing to do
    sink.end({});  // idempotent outside a run
    REQUIRE_FALSE(fs::exists(dir.path / "train"));
}

// ---- the learning rate through Trainer (Keras's TensorBoard logs train/epoch_learning_rate) ----

namespace {

// Trains `model` for 3 epochs on test_models' data (with validation) through Trainer, with an
// MetricLogger holding one TensorBoardSink added last, and returns the train run's points.
template <class Model, class... Callbacks>
Series fit_and_load(const fs::path& log_dir, Model& model, bool log_lr, Callbacks&... callbacks) {
    Eigen::MatrixXd x, y, xv, yv;
    test_models::make_data(32, x, y);
    test_models::make_data(8, xv, yv);
    traincb::MetricLogger logger({std::make_shared<TensorBoardSink>(
        traincb::sinks::TensorBoardOptions{.log_dir = log_dir, .clock = fixed_clock(1.0)})});
    logger.log_learning_rate(log_lr);
    traincb::Trainer trainer(model);
    const traincb::History h =
        trainer.fit(x, y, {.epochs = 3, .batch_size = 8, .validation_data = traincb::ValidationData<double>{xv, yv}},
                    callbacks..., logger);
    REQUIRE(h.size() == 3);
    return load_run(log_dir / "train");
}

// The (step, value) points of `lr(epoch)` for epochs 0..2, as float32 (simple_value).
template <class F>
std::vector<std::pair<std::int64_t, float>> per_epoch(F lr) {
    std::vector<std::pair<std::int64_t, float>> out;
    for (int e = 0; e < 3; ++e) out.emplace_back(e, f32(lr(e)));
    return out;
}

}  // namespace

TEST_CASE("Trainer: a model that exposes its learning rate gets train/epoch_learning_rate every epoch") {
    TempDir dir;
    test_models::Linear model(2, 1);  // lr = 0.05 (trainer_test_models.hpp), never changed here
    const Series train = fit_and_load(dir.path / "logs", model, true);
    REQUIRE(train.count("epoch_learning_rate") == 1);
    REQUIRE(train.at("epoch_learning_rate") == per_epoch([](int) { return 0.05; }));
    REQUIRE(train.at("epoch_loss").size() == 3);
    // Only training values in the train run: the rate is not a validation value.
    REQUIRE(load_run(dir.path / "logs" / "validation").count("epoch_learning_rate") == 0);
}

TEST_CASE("Trainer: a rate set per epoch is logged as the one that epoch trained with") {
    auto schedule = [](int epoch, double) { return 0.1 / (epoch + 1); };  // epoch 0, 1, 2: 0.1, 0.05, 0.0333
    SECTION("by a LearningRateScheduler (which logs learning_rate itself)") {
        TempDir dir;
        test_models::Linear model(2, 1);
        traincb::LearningRateScheduler scheduler(schedule);
        const Series train = fit_and_load(dir.path / "logs", model, true, scheduler);
        REQUIRE(train.at("epoch_learning_rate") == per_epoch([&](int e) { return schedule(e, 0); }));
    }
    SECTION("by a callback that logs nothing and moves the rate again after the epoch") {
        TempDir dir;
        test_models::Linear model(2, 1);
        traincb::LambdaCallback rate(
            {.on_epoch_begin = [&](traincb::Context& ctx) { ctx.model().set_learning_rate(schedule(ctx.epoch(), 0)); },
             .on_epoch_end = [](traincb::Context& ctx) { ctx.model().set_learning_rate(9.0); }});
        const Series train = fit_and_load(dir.path / "logs", model, true, rate);
        REQUIRE(train.at("epoch_learning_rate") == per_epoch([&](int e) { return schedule(e, 0); }));
    }
}

TEST_CASE("Trainer: ReduceLROnPlateau's logged learning_rate wins over the logger's reading") {
    TempDir dir;
    test_models::Linear model(2, 1);
    // Moves the rate to 0.3 + epoch after the logger read it at epoch begin (before validation):
    // ReduceLROnPlateau logs the rate at epoch end (docs/keras-semantics.md, ReduceLROnPlateau,
    // step 2), which is then 0.3 + epoch, while the logger's own reading was 0.05 at epoch 0 and
    // 0.3 + epoch - 1 after.
    traincb::LambdaCallback moves(
        {.on_test_begin = [](traincb::Context& ctx) { ctx.model().set_learning_rate(0.3 + ctx.epoch()); }});
    traincb::ReduceLROnPlateau plateau({.monitor = "val_loss", .patience = 100});
    const Series train = fit_and_load(dir.path / "logs", model, true, moves, plateau);
    REQUIRE(train.at("epoch_learning_rate") == per_epoch([](int e) { return 0.3 + e; }));
}

TEST_CASE("Trainer: no epoch_learning_rate for a model without a rate, or with log_learning_rate(false)") {
    {
        TempDir dir;
        test_models::Minimal model;  // train_batch and predict only
        const Series train = fit_and_load(dir.path / "logs", model, true);
        REQUIRE(train.count("epoch_learning_rate") == 0);
        REQUIRE(train.at("epoch_loss").size() == 3);
    }
    {
        TempDir dir;
        test_models::Linear model(2, 1);
        const Series train = fit_and_load(dir.path / "logs", model, false);
        REQUIRE(train.count("epoch_learning_rate") == 0);
        REQUIRE(train.at("epoch_loss").size() == 3);
    }
}

}  // namespace test_tensorboard
