// Tests for traincb/callbacks/learning_curve_report.hpp: the page is rewritten atomically after
// every epoch of a short run (and at the documented cadence of a long one), is well-formed, has one chart per metric
// with a point per finite value, marks the best / stopped epochs, learning-rate changes and checkpoints at the right
// epochs, escapes every key, is deterministic, and reports I/O errors naming the path. A last test renders a realistic
// report with headless Chromium (skipped when it is not installed). The resume tests (at the end)
// check that a run resumed through Trainer renders the same bytes as an uninterrupted one (also
// from a checkpoint in the version-1 layout), that the state takes its values from the History
// instead of storing them twice, and that a bad checkpointed state is refused with a clear error.
#include "catch.hpp"
#include "test_support.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/lambda_callback.hpp>
#include <traincb/callbacks/learning_curve_report.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/io/atomic_file.hpp>
#include <traincb/trainer.hpp>
#include <tuple>
#include <vector>

#include "checkpoint_test_support.hpp"
#include "checkpoint_v1.hpp"

namespace test_learning_curve_report {

namespace fs = std::filesystem;
using traincb::CallbackList;
using traincb::EarlyStopping;
using traincb::LearningCurveReport;
using traincb::Logs;

using traincb_test::read_bytes;
using traincb_test::TempDir;

namespace {

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// A fresh directory per test, removed afterwards.

std::vector<std::string> listing(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::size_t count_of(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + needle.size())) ++n;
    return n;
}

// ---- A small, strict markup checker (independent of the code under test) --------------------

struct Tag {
    std::string name;
    std::map<std::string, std::string> attrs;
    std::size_t begin = 0;  // offset of '<'
    std::size_t end = 0;    // offset after '>'
    int depth = 0;
    std::vector<std::string> ancestors;  // outermost first
};

struct Parsed {
    std::string error;  // empty when well-formed
    std::vector<Tag> tags;
    // Text between a start tag and its end tag, by the start tag's index in `tags`.
    std::map<std::size_t, std::string> inner;
};

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == ':';
}

// Checks that every element is closed in order (or self-closed with "/>"), that attribute
// values are double-quoted without a raw '<' or '"', that text holds no raw '<', and that
// <style> holds no '<' at all. Returns the tags with their attributes.
Parsed parse_markup(const std::string& s) {
    Parsed out;
    std::vector<std::size_t> stack;  // indices into out.tags
    std::size_t i = 0;
    auto fail = [&](const std::string& why) {
        out.error = why + " at offset " + std::to_string(i) + ": '" + s.substr(i, 60) + "'";
        return out;
    };
    while (i < s.size()) {
        if (s[i] != '<') {
            if (s[i] == '>') return fail("raw '>' in text");
            ++i;
            continue;
        }
        if (s.compare(i, 9, "<!DOCTYPE") == 0) {
            i = s.find('>', i) + 1;
            continue;
        }
        if (s.compare(i, 4, "<!--") == 0) return fail("comment (not expected)");
        if (s.compare(i, 2, "</") == 0) {
            std::size_t j = i + 2;
            while (j < s.size() && name_char(s[j])) ++j;
            const std::string name = s.substr(i + 2, j - i - 2);
            if (j >= s.size() || s[j] != '>') return fail("bad end tag");
            if (stack.empty()) return fail("end tag </" + name + "> with nothing open");
            const std::size_t open = stack.back();
            if (out.tags[open].name != name) return fail("</" + name + "> closes <" + out.tags[open].name + ">");
            out.inner[open] = s.substr(out.tags[open].end, i - out.tags[open].end);
            stack.pop_back();
            i = j + 1;
            continue;
        }
        Tag t;
        t.begin = i;
        std::size_t j = i + 1;
        while (j < s.size() && name_char(s[j])) ++j;
        t.name = s.substr(i + 1, j - i - 1);
        if (t.name.empty()) return fail("raw '<' in text");
        bool self_closed = false;
        for (;;) {
            while (j < s.size() && s[j] == ' ') ++j;
            if (j >= s.size()) return fail("unterminated tag");
            if (s[j] == '>') {
                ++j;
                break;
            }
            if (s.compare(j, 2, "/>") == 0) {
                self_closed = true;
                j += 2;
                break;
            }
            const std::size_t k = j;
            while (j < s.size() && name_char(s[j])) ++j;
            if (j == k) return fail("bad attribute name");
            const std::string an = s.substr(k, j - k);
            if (j + 1 >= s.size() || s[j] != '=' || s[j + 1] != '"') return fail("attribute not double-quoted");
            const std::size_t q = s.find('"', j + 2);
            if (q == std::string::npos) return fail("unterminated attribute");
            const std::string av = s.substr(j + 2, q - j - 2);
            if (av.find('<') != std::string::npos) return fail("raw '<' in attribute");
            t.attrs[an] = av;
            j = q + 1;
        }
        t.end = j;
        t.depth = static_cast<int>(stack.size());
        for (const std::size_t a : stack) t.ancestors.push_back(out.tags[a].name);
        out.tags.push_back(t);
        const bool is_void = t.name == "meta";  // the only HTML void element the page may use
        if (!self_closed && !is_void) stack.push_back(out.tags.size() - 1);
        i = j;
        if (t.name == "style") {  // raw text up to </style>, which must hold no '<'
            const std::size_t e = s.find("</style>", i);
            if (e == std::string::npos) return fail("unterminated <style>");
            if (s.substr(i, e - i).find('<') != std::string::npos) return fail("'<' inside <style>");
            i = e;
        }
    }
    if (!stack.empty()) {
        i = out.tags[stack.back()].begin;
        return fail("<" + out.tags[stack.back()].name + "> never closed");
    }
    return out;
}

// Tags named `name` whose class list contains `cls` ("" = any).
std::vector<Tag> find_tags(const Parsed& p, const std::string& name, const std::string& cls = "") {
    std::vector<Tag> out;
    for (const auto& t : p.tags) {
        if (t.name != name) continue;
        if (!cls.empty()) {
            const auto it = t.attrs.find("class");
            if (it == t.attrs.end()) continue;
            std::istringstream words(it->second);
            std::string w;
            bool has = false;
            while (words >> w) has = has || w == cls;
            if (!has) continue;
        }
        out.push_back(t);
    }
    return out;
}

std::string attr(const Tag& t, const std::string& a) {
    const auto it = t.attrs.find(a);
    return it == t.attrs.end() ? std::string("<none>") : it->second;
}

// Number of "x,y" pairs in a polyline's points attribute.
int point_pairs(const std::string& points) {
    std::istringstream in(points);
    std::string pair;
    int n = 0;
    while (in >> pair) {
        const auto comma = pair.find(',');
        REQUIRE(comma != std::string::npos);
        (void)std::stod(pair.substr(0, comma));
        (void)std::stod(pair.substr(comma + 1));
        ++n;
    }
    return n;
}

// The polyline of log key `key` (escaped as in the file) inside the chart of `metric`.
std::optional<Tag> polyline_of(const Parsed& p, const std::string& key) {
    for (const auto& t : find_tags(p, "polyline", "series"))
        if (attr(t, "data-key") == key) return t;
    return std::nullopt;
}

bool in_chart(const Tag& t) {
    return std::find(t.ancestors.begin(), t.ancestors.end(), "figure") != t.ancestors.end();
}

// The tags `name`.`cls` drawn inside the charts (not the swatches of the page's key).
std::vector<Tag> chart_tags(const Parsed& p, const std::string& name, const std::string& cls) {
    std::vector<Tag> out;
    for (const auto& t : find_tags(p, name, cls))
        if (in_chart(t)) out.push_back(t);
    return out;
}

// The data-epoch values of the tags `name`.`cls` inside the charts.
std::vector<std::string> epochs_of(const Parsed& p, const std::string& name, const std::string& cls) {
    std::vector<std::string> out;
    for (const auto& t : chart_tags(p, name, cls)) out.push_back(attr(t, "data-epoch"));
    return out;
}

Parsed parse_file(const fs::path& file) {
    REQUIRE(fs::exists(file));
    Parsed p = parse_markup(read_bytes(file));
    INFO(p.error);
    REQUIRE(p.error.empty());
    return p;
}

// Drives a run through CallbackList as a training loop would; stops when a callback asks.
// `after_epoch(e)` runs after each epoch's hooks (to inspect the file or add marks).
template <class F>
void drive(CallbackList& cbs, const std::vector<Logs>& epochs, F&& after_epoch, int total = 0) {
    cbs.set_params({.epochs = total > 0 ? total : static_cast<int>(epochs.size())});
    cbs.on_train_begin();
    for (int e = 0; e < static_cast<int>(epochs.size()); ++e) {
        cbs.on_epoch_begin(e);
        Logs logs = epochs[static_cast<std::size_t>(e)];
        cbs.on_epoch_end(e, logs);
        after_epoch(e);
        if (cbs.stop_requested()) break;
    }
    cbs.on_train_end();
}
void drive(CallbackList& cbs, const std::vector<Logs>& epochs) {
    drive(cbs, epochs, [](int) {});
}

std::vector<Logs> simple_epochs(int n) {
    std::vector<Logs> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int e = 0; e < n; ++e)
        out.push_back({{"loss", 1.0 / (e + 1)},
                       {"val_loss", 1.2 / (e + 1) + 0.05 * e},
                       {"accuracy", 0.5 + 0.04 * e},
                       {"val_accuracy", 0.45 + 0.03 * e}});
    return out;
}

}  // namespace

TEST_CASE("the page exists after train begin and after each epoch, well-formed, one chart per metric") {
    TempDir dir;
    const fs::path file = dir / "report.html";
    LearningCurveReport report({.path = file, .title = "unit run"});
    CallbackList cbs{report};
    const auto epochs = simple_epochs(4);
    cbs.set_params({.epochs = 4});
    cbs.on_train_begin();
    {
        const Parsed p = parse_file(file);
        CHECK(find_tags(p, "figure", "chart").empty());
        CHECK(attr(find_tags(p, "p", "status").at(0), "data-status") == "waiting");
    }
    for (int e = 0; e < 4; ++e) {
        cbs.on_epoch_begin(e);
        Logs logs = epochs[static_cast<std::size_t>(e)];
        cbs.on_epoch_end(e, logs);
        CHECK(report.writes() == e + 2);  // one at train begin, one per epoch
        const Parsed p = parse_file(file);
        // html > body > main and the charts are inside <svg> inside <figure>.
        REQUIRE(find_tags(p, "html").size() == 1);
        REQUIRE(find_tags(p, "svg", "").size() >= 2);
        std::vector<std::string> metrics;
        for (const auto& f : find_tags(p, "figure", "chart")) metrics.push_back(attr(f, "data-metric"));
        // x and val_x share a chart: 4 keys -> 2 charts, loss first.
        CHECK(metrics == std::vector<std::string>{"loss", "accuracy"});
        for (const std::string key : {"loss", "val_loss", "accuracy", "val_accuracy"}) {
            const auto pl = polyline_of(p, key);
            REQUIRE(pl);
            CHECK(point_pairs(attr(*pl, "points")) == e + 1);
            CHECK(std::count(pl->ancestors.begin(), pl->ancestors.end(), "svg") == 1);
        }
        // The training and validation lines use different classes (colours), and each chart has a
        // legend naming both.
        CHECK(attr(*polyline_of(p, "loss"), "class") == "series s-train");
        CHECK(attr(*polyline_of(p, "val_loss"), "class") == "series s-val");
        CHECK(find_tags(p, "text", "legend").size() == 4);
        CHECK(attr(find_tags(p, "p", "status").at(0), "data-status") == "running");
    }
    cbs.on_train_end();
    const Parsed p = parse_file(file);
    CHECK(attr(find_tags(p, "p", "status").at(0), "data-status") == "completed");
    CHECK(find_tags(p, "line", "ev-stopped").empty());  // a completed run has no stop marker
    // Nothing but the report in the directory: no temporary file left behind.
    CHECK(listing(dir.path) == std::vector<std::string>{"report.html"});
    // A self-contained page: no script, no external resource.
    const std::string html = read_bytes(file);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("http://") == std::string::npos);
    CHECK(html.find("https://") == std::string::npos);
    CHECK(html.find("@import") == std::string::npos);
    CHECK(html.find("url(") == std::string::npos);
}

TEST_CASE("the final values table lists every key and the axis is labelled") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    CallbackList cbs{report};
    // Hand-picked values: last loss 0.25 at epoch 3 (1-based), min 0.25 @3, max 1 @1.
    drive(cbs, {{{"loss", 1.0}, {"mae", -2.0}}, {{"loss", 0.5}, {"mae", -4.5}}, {{"loss", 0.25}, {"mae", 3.0}}});
    const Parsed p = parse_file(dir / "r.html");
    std::map<std::string, std::vector<std::string>> rows;
    for (std::size_t i = 0; i < p.tags.size(); ++i) {
        if (p.tags[i].name != "tr" || !p.tags[i].attrs.count("data-key")) continue;
        std::vector<std::string> cells;
        for (std::size_t j = i + 1; j < p.tags.size() && p.tags[j].depth > p.tags[i].depth; ++j)
            if (p.tags[j].name == "td") cells.push_back(p.inner.at(j));
        rows[attr(p.tags[i], "data-key")] = cells;
    }
    REQUIRE(rows.size() == 2);
    // Cells: key, last, epoch, min, max.
    CHECK(rows["loss"].at(0) == "loss");
    CHECK(rows["loss"].at(1) == "0.25");
    CHECK(rows["loss"].at(2) == "3");
    CHECK(rows["loss"].at(3) == "0.25 <span class=\"at\">@3</span>");
    CHECK(rows["loss"].at(4) == "1 <span class=\"at\">@1</span>");
    CHECK(rows["mae"].at(1) == "3");
    CHECK(rows["mae"].at(3) == "-4.5 <span class=\"at\">@2</span>");
    CHECK(rows["mae"].at(4) == "3 <span class=\"at\">@3</span>");
    const std::string html = read_bytes(dir / "r.html");
    CHECK(count_of(html, ">epoch (from 1)</text>") == 2);
}

TEST_CASE("NaN and inf are skipped in the curves, flagged on the chart and spelled out in the table") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    CallbackList cbs{report};
    drive(cbs, {{{"loss", 1.0}, {"val_loss", 1.1}},
                {{"loss", 0.8}, {"val_loss", kNan}},
                {{"loss", 0.6}, {"val_loss", kInf}},
                {{"loss", 0.5}, {"val_loss", 0.9}},
                {{"loss", -kInf}, {"val_loss", kNan}}});
    const Parsed p = parse_file(dir / "r.html");
    // Finite values by hand: loss at epochs 0-3 (4), val_loss at epochs 0 and 3 (2).
    CHECK(point_pairs(attr(*polyline_of(p, "loss"), "points")) == 4);
    CHECK(attr(*polyline_of(p, "loss"), "data-points") == "4");
    CHECK(point_pairs(attr(*polyline_of(p, "val_loss"), "points")) == 2);
    std::vector<std::string> flagged;
    for (const auto& t : chart_tags(p, "path", "nonfinite"))
        flagged.push_back(attr(t, "data-key") + "@" + attr(t, "data-epoch"));
    std::sort(flagged.begin(), flagged.end());
    CHECK(flagged == std::vector<std::string>{"loss@4", "val_loss@1", "val_loss@2", "val_loss@4"});
    const std::string html = read_bytes(dir / "r.html");
    // The last values: loss -inf, val_loss nan, both marked as bad.
    CHECK(html.find("<td class=\"num bad\">-inf</td>") != std::string::npos);
    CHECK(html.find("<td class=\"num bad\">nan</td>") != std::string::npos);
    // The y range comes from the finite values only: no "nan"/"inf" coordinate or tick label.
    CHECK(html.find("\"nan") == std::string::npos);
    CHECK(html.find("\"inf") == std::string::npos);
    CHECK(html.find(">nan</text>") == std::string::npos);
}

TEST_CASE("a key that is all NaN gets a chart with an empty curve and no tick labels from NaN") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    CallbackList cbs{report};
    drive(cbs, {{{"loss", kNan}}, {{"loss", kNan}}});
    const Parsed p = parse_file(dir / "r.html");
    CHECK(point_pairs(attr(*polyline_of(p, "loss"), "points")) == 0);
    const std::string html = read_bytes(dir / "r.html");
    CHECK(html.find(">nan</text>") == std::string::npos);
}

TEST_CASE("best and stopped epochs come from the EarlyStopping given in the options") {
    TempDir dir;
    EarlyStopping es({.monitor = "val_loss", .patience = 3});
    LearningCurveReport report({.path = dir / "r.html", .early_stopping = &es});
    CallbackList cbs{es, report};
    // val_loss falls to its minimum 0.6 at epoch 2, then rises: by docs/early-stopping-rules.md,
    // wait reaches patience 3 at epoch 5, which is where it stops. Epoch 6 never runs.
    const std::vector<double> val = {1.0, 0.8, 0.6, 0.7, 0.75, 0.9, 0.1};
    std::vector<Logs> epochs;
    epochs.reserve(val.size());
    for (double v : val) epochs.push_back({{"loss", 0.5}, {"val_loss", v}});
    drive(cbs, epochs);
    REQUIRE(es.best_epoch() == 2);
    REQUIRE(es.stopped_epoch() == 5);
    const Parsed p = parse_file(dir / "r.html");
    const std::size_t charts = find_tags(p, "figure", "chart").size();
    REQUIRE(charts == 1);
    CHECK(epochs_of(p, "line", "ev-best") == std::vector<std::string>{"2"});
    CHECK(epochs_of(p, "line", "ev-stopped") == std::vector<std::string>{"5"});
    CHECK(epochs_of(p, "circle", "best-ring") == std::vector<std::string>{"2"});
    // The labels say the 1-based epoch, as Keras prints it.
    const std::string html = read_bytes(dir / "r.html");
    CHECK(html.find(">best 3</text>") != std::string::npos);
    CHECK(html.find(">stopped 6</text>") != std::string::npos);
    // The stop reason from ctx.end(): kind, source and reason.
    const Tag status = find_tags(p, "p", "status").at(0);
    CHECK(attr(status, "data-status") == "stopped");
    CHECK(attr(status, "data-source") == "EarlyStopping");
    CHECK(attr(status, "data-reason") == "patience");
    CHECK(html.find("training stopped by EarlyStopping: patience") != std::string::npos);
    CHECK(point_pairs(attr(*polyline_of(p, "val_loss"), "points")) == 6);
}

TEST_CASE("without EarlyStopping the best epoch is the monitored metric's best value") {
    TempDir dir;
    // Hand-derived: val_loss is lowest (0.4) at epoch 1; val_accuracy highest (0.9) at epoch 2;
    // a tie (0.4 again at epoch 3) keeps the first.
    const std::vector<Logs> epochs = {{{"loss", 1.0}, {"val_loss", 0.7}, {"val_accuracy", 0.5}},
                                      {{"loss", 0.9}, {"val_loss", 0.4}, {"val_accuracy", 0.8}},
                                      {{"loss", 0.8}, {"val_loss", 0.5}, {"val_accuracy", 0.9}},
                                      {{"loss", 0.7}, {"val_loss", 0.4}, {"val_accuracy", 0.7}}};
    SECTION("auto: val_loss, minimised") {
        LearningCurveReport report({.path = dir / "r.html"});
        CallbackList cbs{report};
        drive(cbs, epochs);
        const Parsed p = parse_file(dir / "r.html");
        CHECK(epochs_of(p, "line", "ev-best").size() == find_tags(p, "figure", "chart").size());
        CHECK(epochs_of(p, "line", "ev-best").at(0) == "1");
        CHECK(epochs_of(p, "circle", "best-ring") == std::vector<std::string>{"1"});
        CHECK(find_tags(p, "line", "ev-stopped").empty());
    }
    SECTION("an explicit maximised monitor") {
        LearningCurveReport report({.path = dir / "r.html", .monitor = "val_accuracy"});
        CallbackList cbs{report};
        drive(cbs, epochs);
        CHECK(epochs_of(parse_file(dir / "r.html"), "circle", "best-ring") == std::vector<std::string>{"2"});
    }
    SECTION("only a training loss: loss is monitored") {
        LearningCurveReport report({.path = dir / "r.html"});
        CallbackList cbs{report};
        drive(cbs, {{{"loss", 0.3}}, {{"loss", 0.2}}, {{"loss", 0.25}}});
        CHECK(epochs_of(parse_file(dir / "r.html"), "circle", "best-ring") == std::vector<std::string>{"1"});
    }
    SECTION("a monitor whose direction cannot be inferred fails at train begin, Mode::Max fixes it") {
        LearningCurveReport report({.path = dir / "r.html", .monitor = "score"});
        CallbackList cbs{report};
        try {
            cbs.on_train_begin();
            FAIL("expected InvalidArgument");
        } catch (const traincb::InvalidArgument& e) {
            CHECK(std::string(e.what()).starts_with("traincb: LearningCurveReport: "));
            CHECK(std::string(e.what()).find("'score'") != std::string::npos);
        }
        LearningCurveReport fixed({.path = dir / "r.html", .monitor = "score", .mode = traincb::Mode::Max});
        CallbackList cbs2{fixed};
        drive(cbs2, {{{"score", 1.0}}, {{"score", 3.0}}, {{"score", 2.0}}});
        CHECK(epochs_of(parse_file(dir / "r.html"), "circle", "best-ring") == std::vector<std::string>{"1"});
    }
}

TEST_CASE("a stop requested by another callback, and an exception, are marked at the last epoch") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    CallbackList cbs{report};
    SECTION("a stop request") {
        cbs.on_train_begin();
        for (int e = 0; e < 3; ++e) {
            cbs.on_epoch_begin(e);
            Logs logs{{"loss", 1.0 - 0.1 * e}};
            cbs.on_epoch_end(e, logs);
        }
        cbs.context().request_stop("TerminateOnNaN", "non_finite_loss");
        cbs.on_train_end();
        const Parsed p = parse_file(dir / "r.html");
        CHECK(epochs_of(p, "line", "ev-stopped") == std::vector<std::string>{"2"});
        CHECK(attr(find_tags(p, "p", "status").at(0), "data-source") == "TerminateOnNaN");
        CHECK(attr(find_tags(p, "p", "status").at(0), "data-reason") == "non_finite_loss");
    }
    SECTION("an exception, whose message is escaped") {
        cbs.on_train_begin();
        cbs.on_epoch_begin(0);
        Logs logs{{"loss", 1.0}};
        cbs.on_epoch_end(0, logs);
        cbs.on_train_end(std::make_exception_ptr(std::runtime_error("bad <batch> & \"shape\"")));
        const Parsed p = parse_file(dir / "r.html");
        const Tag status = find_tags(p, "p", "status").at(0);
        CHECK(attr(status, "data-status") == "exception");
        CHECK(attr(status, "data-reason") == "bad &lt;batch&gt; &amp; &quot;shape&quot;");
        CHECK(epochs_of(p, "line", "ev-stopped") == std::vector<std::string>{"0"});
        CHECK(read_bytes(dir / "r.html").find(">exception 1</text>") != std::string::npos);
    }
}

TEST_CASE("learning-rate changes are marked at the first epoch with the new rate, and charted") {
    TempDir dir;
    // Changes by hand: 0.1 -> 0.01 at epoch 2, 0.01 -> 0.001 at epoch 4; epoch 3 repeats 0.01.
    const std::vector<double> lr = {0.1, 0.1, 0.01, 0.01, 0.001};
    std::vector<Logs> epochs;
    for (std::size_t e = 0; e < lr.size(); ++e)
        epochs.push_back({{"loss", 1.0 / static_cast<double>(e + 1)}, {"val_loss", 1.0}, {"learning_rate", lr[e]}});
    SECTION("drawn on every chart") {
        LearningCurveReport report({.path = dir / "r.html"});
        CallbackList cbs{report};
        drive(cbs, epochs);
        const Parsed p = parse_file(dir / "r.html");
        std::vector<std::string> metrics;
        for (const auto& f : find_tags(p, "figure", "chart")) metrics.push_back(attr(f, "data-metric"));
        CHECK(metrics == std::vector<std::string>{"loss", "learning_rate"});  // the rate's own chart, last
        CHECK(point_pairs(attr(*polyline_of(p, "learning_rate"), "points")) == 5);
        CHECK(attr(*polyline_of(p, "learning_rate"), "class") == "series s-lr");
        CHECK(epochs_of(p, "line", "ev-lr") == std::vector<std::string>{"2", "4", "2", "4"});
        const std::string html = read_bytes(dir / "r.html");
        CHECK(count_of(html, ">lr \xE2\x86\x92 0.01</text>") == 2);
        CHECK(count_of(html, ">lr \xE2\x86\x92 0.001</text>") == 2);
        CHECK(html.find("0.1 \xE2\x86\x92 0.01") != std::string::npos);  // events table: old -> new
    }
    SECTION("beyond max_lr_markers, only the learning-rate chart shows them") {
        LearningCurveReport report({.path = dir / "r.html", .max_lr_markers = 1});
        CallbackList cbs{report};
        drive(cbs, epochs);
        const Parsed p = parse_file(dir / "r.html");
        CHECK(find_tags(p, "line", "ev-lr").empty());
        CHECK(point_pairs(attr(*polyline_of(p, "learning_rate"), "points")) == 5);
        // One summary row in the events table, at the first change: 2 changes, 0.1 -> 0.001.
        CHECK(read_bytes(dir / "r.html")
                  .find("<tr data-epoch=\"2\"><td class=\"num\">3</td><td><span class=\"tag t-lr\">"
                        "</span>learning rate</td><td class=\"detail\">2 changes, 0.1 \xE2\x86\x92 "
                        "0.001 (see its chart)</td></tr>") != std::string::npos);
    }
}

TEST_CASE("mark() adds checkpoint and custom markers on every chart and in the events table") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    CallbackList cbs{report};
    drive(cbs, simple_epochs(5), [&](int e) {
        if (e == 1) report.mark(1, "checkpoint", "ckpt/epoch_002.safetensors");
        if (e == 3) report.mark(3, "checkpoint", "ckpt/epoch_004.safetensors");
        if (e == 4) report.mark(2, "My Note!", "data reshuffled");
    });
    CHECK(report.marks().size() == 3);
    const Parsed p = parse_file(dir / "r.html");
    // Two charts (loss, accuracy), each with both checkpoint markers.
    CHECK(epochs_of(p, "path", "mark-checkpoint") == std::vector<std::string>{"1", "3", "1", "3"});
    CHECK(epochs_of(p, "path", "mark-my-note") == std::vector<std::string>{"2", "2"});
    std::vector<std::string> rows;
    for (const auto& t : find_tags(p, "tr"))
        if (t.attrs.count("data-epoch")) rows.push_back(attr(t, "data-epoch"));
    // Events table, in epoch order: the marks at 1, 2, 3 and the best val_loss at 4 (1.2/(e+1) +
    // 0.05e is 1.2, 0.65, 0.5, 0.45, 0.44 for e = 0..4: lowest at the last epoch).
    CHECK(rows == std::vector<std::string>{"1", "2", "3", "4"});
    const std::string html = read_bytes(dir / "r.html");
    CHECK(html.find("ckpt/epoch_004.safetensors") != std::string::npos);
    CHECK(html.find(">My Note!</td>") != std::string::npos);
    CHECK(html.find("<dt>checkpoints</dt><dd>2</dd>") != std::string::npos);
}

TEST_CASE("mark() rejects a negative epoch and an empty kind") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    CHECK_THROWS_AS(report.mark(-1, "checkpoint", "x"), traincb::InvalidArgument);
    CHECK_THROWS_AS(report.mark(0, "", "x"), traincb::InvalidArgument);
    try {
        report.mark(-1, "checkpoint", "x");
    } catch (const traincb::InvalidArgument& e) {
        CHECK(std::string(e.what()).starts_with("traincb: LearningCurveReport: mark() got epoch -1"));
    }
    CHECK(report.marks().empty());
}

TEST_CASE("keys, title, labels and reasons are escaped in HTML and SVG") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html", .title = "run <b>&'1'"});
    CallbackList cbs{report};
    drive(cbs, {{{"a<b&\"c\"", 1.0}, {"val_a<b&\"c\"", 2.0}}, {{"a<b&\"c\"", 0.5}, {"val_a<b&\"c\"", 1.5}}},
          [&](int e) {
              if (e == 1) report.mark(1, "checkpoint", "</svg><script>alert(1)</script>");
          });
    const std::string html = read_bytes(dir / "r.html");
    const Parsed p = parse_markup(html);
    INFO(p.error);
    REQUIRE(p.error.empty());
    CHECK(html.find("a<b") == std::string::npos);
    CHECK(html.find("<script>") == std::string::npos);
    CHECK(html.find("<b>") == std::string::npos);
    const std::string esc = "a&lt;b&amp;&quot;c&quot;";
    REQUIRE(find_tags(p, "figure", "chart").size() == 1);  // the two keys still pair up
    CHECK(attr(find_tags(p, "figure", "chart").at(0), "data-metric") == esc);
    CHECK(polyline_of(p, esc).has_value());
    CHECK(polyline_of(p, "val_" + esc).has_value());
    CHECK(html.find("<title>run &lt;b&gt;&amp;&#39;1&#39;</title>") != std::string::npos);
    CHECK(html.find("&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
}

TEST_CASE("the same run gives the same bytes") {
    TempDir a;
    TempDir b;
    for (const auto& d : {&a, &b}) {
        EarlyStopping es({.monitor = "val_loss", .patience = 2});
        LearningCurveReport report({.path = *d / "r.html", .early_stopping = &es});
        CallbackList cbs{es, report};
        drive(cbs, simple_epochs(8), [&](int e) {
            if (e == 2) report.mark(2, "checkpoint", "c.safetensors");
        });
    }
    const std::string x = read_bytes(a / "r.html");
    CHECK(x.size() > 1000);
    CHECK(x == read_bytes(b / "r.html"));
}

TEST_CASE("a long run rewrites the page at the documented cadence, marks and the end always, same final bytes") {
    TempDir dir;
    std::vector<Logs> epochs;
    for (int e = 0; e < 250; ++e) epochs.push_back({{"loss", 1.0 / (e + 1)}, {"val_loss", 1.0 / (e + 2)}});
    // Epochs after whose end the page was written (0-based), by counting writes().
    const auto written = [&](LearningCurveReport& report, const std::function<void(int)>& after) {
        CallbackList cbs{report};
        std::vector<int> at;
        drive(cbs, epochs, [&](int e) {
            if (report.writes() > static_cast<int>(at.size()) + 1) at.push_back(e);
            after(e);
        });
        return at;
    };
    // Adaptive, from the rule in LearningCurveReportOptions::write_every: after each of the first
    // 100 epochs; then whenever ceil(n / 100) epochs (n recorded) have passed since the last
    // write: every 2nd epoch (n = 102, 104, ..., 152); a mark added after the hooks of n = 152 is
    // written at n = 153, and the count restarts there (n = 155, 157, ..., 199); from n = 201 on
    // every 3rd epoch since the last write (n = 202, 205, ..., 250).
    LearningCurveReport adaptive({.path = dir / "adaptive.html"});
    const std::vector<int> at = written(adaptive, [&](int e) {
        if (e == 151) adaptive.mark(e, "checkpoint", "c.safetensors");
    });
    std::vector<int> want;
    for (int n = 1; n <= 100; ++n) want.push_back(n - 1);
    for (int n = 102; n <= 152; n += 2) want.push_back(n - 1);
    want.push_back(153 - 1);
    for (int n = 155; n <= 199; n += 2) want.push_back(n - 1);
    for (int n = 202; n <= 250; n += 3) want.push_back(n - 1);
    CHECK(at == want);
    CHECK(adaptive.writes() == 1 + static_cast<int>(want.size()) + 1);  // plus train begin and train end

    // A fixed interval: every 40th epoch (n = 40, 80, ..., 240).
    LearningCurveReport fixed({.path = dir / "fixed.html", .write_every = 40});
    CHECK(written(fixed, [](int) {}) == std::vector<int>{39, 79, 119, 159, 199, 239});
    // Whatever the cadence, the final page is the one of a report written after every epoch.
    LearningCurveReport every({.path = dir / "every.html", .write_every = 1});
    CHECK(written(every, [&](int e) {
              if (e == 151) every.mark(e, "checkpoint", "c.safetensors");
          }).size() == 250);
    CHECK(read_bytes(dir / "adaptive.html") == read_bytes(dir / "every.html"));
    CHECK(read_bytes(dir / "fixed.html") != read_bytes(dir / "every.html"));  // no mark there
    LearningCurveReport fixed_marked({.path = dir / "fixed_marked.html", .write_every = 40});
    (void)written(fixed_marked, [&](int e) {
        if (e == 151) fixed_marked.mark(e, "checkpoint", "c.safetensors");
    });
    CHECK(read_bytes(dir / "fixed_marked.html") == read_bytes(dir / "every.html"));
}

TEST_CASE("a single epoch, hundreds of epochs, very different scales and negative values") {
    TempDir dir;
    SECTION("a single epoch") {
        LearningCurveReport report({.path = dir / "r.html"});
        CallbackList cbs{report};
        drive(cbs, {{{"loss", 0.5}, {"val_loss", 0.5}}});
        const Parsed p = parse_file(dir / "r.html");
        CHECK(point_pairs(attr(*polyline_of(p, "loss"), "points")) == 1);
        CHECK(find_tags(p, "circle").size() >= 2);  // a lone point is still visible as a dot
        std::vector<std::string> xt;
        for (std::size_t i = 0; i < p.tags.size(); ++i)
            if (p.tags[i].name == "text" && attr(p.tags[i], "class") == "xtick") xt.push_back(p.inner.at(i));
        CHECK(xt == std::vector<std::string>{"1"});
        // One value 0.5: the axis opens around it, 10% each side (0.45..0.55), on round ticks.
        std::vector<double> yt;
        for (std::size_t i = 0; i < p.tags.size(); ++i)
            if (p.tags[i].name == "text" && attr(p.tags[i], "class") == "ytick") yt.push_back(std::stod(p.inner.at(i)));
        REQUIRE(!yt.empty());
        CHECK(yt.front() <= 0.45);
        CHECK(yt.back() >= 0.55);
    }
    SECTION("hundreds of epochs, all points kept") {
        // 200 rewrites: skip the disk flushes (durability is test_atomic_file's business) so the
        // test costs CPU time only.
        auto ops = traincb::detail::system_file_ops();
        ops.fsync = [](int) { return 0; };
        traincb::detail::ScopedFileOps no_flush(ops);
        LearningCurveReport report({.path = dir / "r.html"});
        CallbackList cbs{report};
        std::vector<Logs> epochs;
        epochs.reserve(200);
        for (int e = 0; e < 200; ++e)
            epochs.push_back({{"loss", std::exp(-e / 50.0)}, {"val_loss", std::exp(-e / 60.0)}});
        drive(cbs, epochs);
        const Parsed p = parse_file(dir / "r.html");
        CHECK(point_pairs(attr(*polyline_of(p, "loss"), "points")) == 200);
        CHECK(point_pairs(attr(*polyline_of(p, "val_loss"), "points")) == 200);
        CHECK(find_tags(p, "g", "dots").empty());  // no per-point dots on long runs
    }
    SECTION("each chart has its own y range; negative values") {
        LearningCurveReport report({.path = dir / "r.html"});
        CallbackList cbs{report};
        // loss around 1e-6, reward between -5000 and -1000: independent ranges.
        drive(cbs, {{{"loss", 3e-6}, {"reward", -5000.0}},
                    {{"loss", 2e-6}, {"reward", -3000.0}},
                    {{"loss", 1e-6}, {"reward", -1000.0}}});
        const Parsed p = parse_file(dir / "r.html");
        std::map<std::string, std::vector<double>> ticks;
        std::string chart;
        for (std::size_t i = 0; i < p.tags.size(); ++i) {
            if (p.tags[i].name == "figure") chart = attr(p.tags[i], "data-metric");
            if (p.tags[i].name == "text" && attr(p.tags[i], "class") == "ytick")
                ticks[chart].push_back(std::stod(p.inner.at(i)));
        }
        for (const auto& [name, lo, hi] : {std::tuple{"loss", 1e-6, 3e-6}, std::tuple{"reward", -5000.0, -1000.0}}) {
            INFO(name);
            const auto& t = ticks[name];
            REQUIRE(t.size() >= 3);
            CHECK(t.front() <= lo);
            CHECK(t.back() >= hi);
            CHECK(t.back() - t.front() <= 2 * (hi - lo));  // fitted to its own data, not a shared range
        }
    }
}

TEST_CASE("nice axis ticks (hand-derived)") {
    namespace L = traincb::detail::lcr;
    // [0.23, 0.87]: range 0.64, /5 = 0.128 -> step 0.1; snapped to 0.2..0.9.
    auto a = L::value_axis(0.23, 0.87);
    CHECK(a.labels == std::vector<std::string>{"0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"});
    CHECK(a.lo == Approx(0.2));
    CHECK(a.hi == Approx(0.9));
    // [-3, 7]: range 10, /5 = 2 -> step 2; -4..8.
    CHECK(L::value_axis(-3, 7).labels == std::vector<std::string>{"-4", "-2", "0", "2", "4", "6", "8"});
    // [1e-5, 1e-4]: /5 = 1.8e-5 -> step 2e-5; 0..1e-4 in exponent form below 1e-3.
    CHECK(L::value_axis(1e-5, 1e-4).labels ==
          std::vector<std::string>{"0", "2e-05", "4e-05", "6e-05", "8e-05", "0.0001"});
    // [0, 2.5e6]: /5 = 5e5 -> step 5e5; large values in exponent form.
    CHECK(L::value_axis(0, 2.5e6).labels ==
          std::vector<std::string>{"0", "5e+05", "1e+06", "1.5e+06", "2e+06", "2.5e+06"});
    // All zero: opened to [-1, 1]; /5 = 0.4 -> step 0.5.
    CHECK(L::value_axis(0, 0).labels == std::vector<std::string>{"-1.0", "-0.5", "0.0", "0.5", "1.0"});
    // Epochs 1..30: 29/8 = 3.6 -> step 5.
    CHECK(L::epoch_axis(1, 30).labels == std::vector<std::string>{"5", "10", "15", "20", "25", "30"});
    // Epochs 1..4: 3/8 < 1 -> step 1.
    CHECK(L::epoch_axis(1, 4).labels == std::vector<std::string>{"1", "2", "3", "4"});
}

TEST_CASE("keys added to the last epoch's logs by later callbacks appear at train end") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    struct AddsKey final : traincb::Callback {
        void on_epoch_end(traincb::Context& ctx) override { ctx.logs().set("late_key", 7.0); }
    } adds;
    CallbackList cbs{report, adds};  // the report runs first and does not see late_key per epoch
    drive(cbs, {{{"loss", 1.0}}, {{"loss", 0.5}}});
    const Parsed p = parse_file(dir / "r.html");
    bool found = false;
    for (const auto& t : find_tags(p, "tr")) found = found || attr(t, "data-key") == "late_key";
    CHECK(found);
}

TEST_CASE("refresh_seconds adds a reload while training and drops it from the final page") {
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html", .refresh_seconds = 5});
    CallbackList cbs{report};
    drive(cbs, simple_epochs(2), [&](int) {
        CHECK(read_bytes(dir / "r.html").find("<meta http-equiv=\"refresh\" content=\"5\"/>") != std::string::npos);
    });
    CHECK(read_bytes(dir / "r.html").find("http-equiv") == std::string::npos);
}

TEST_CASE("bad options throw InvalidArgument at construction") {
    TempDir dir;
    auto message = [](const traincb::LearningCurveReportOptions& o) {
        try {
            LearningCurveReport r(o);
        } catch (const traincb::InvalidArgument& e) {
            return std::string(e.what());
        }
        return std::string("no throw");
    };
    CHECK(message({.path = ""}).starts_with("traincb: LearningCurveReport: path is empty"));
    CHECK(message({.path = dir.path / "sub/"}).find("names a directory") != std::string::npos);
    CHECK(message({.path = dir / "r.html", .learning_rate_key = ""}).find("learning_rate_key is empty") !=
          std::string::npos);
    CHECK(message({.path = dir / "r.html", .max_lr_markers = -1}).find("max_lr_markers must be >= 0, got -1") !=
          std::string::npos);
    CHECK(message({.path = dir / "r.html", .refresh_seconds = -2}).find("refresh_seconds must be >= 0") !=
          std::string::npos);
    CHECK(message({.path = dir / "r.html", .write_every = -1}) ==
          "traincb: LearningCurveReport: write_every must be >= 0 (0 = adaptive), got -1");
    CHECK(listing(dir.path).empty());  // construction writes nothing
}

TEST_CASE("an unwritable path raises IoError naming it, at construction or at the first write") {
    TempDir dir;
    { std::ofstream(dir / "afile") << "x"; }
    SECTION("the parent is a regular file: at construction") {
        const fs::path target = dir / "afile" / "report.html";
        try {
            LearningCurveReport r({.path = target});
            FAIL("expected IoError");
        } catch (const traincb::IoError& e) {
            CHECK(e.path() == target);
            CHECK(e.code() == std::error_code(ENOTDIR, std::generic_category()));
            CHECK(std::string(e.what()).starts_with("traincb: LearningCurveReport: "));
            CHECK(std::string(e.what()).find("'" + target.string() + "'") != std::string::npos);
        }
    }
    SECTION("a deeper ancestor is a regular file") {
        const fs::path target = dir / "afile" / "a" / "b" / "report.html";
        CHECK_THROWS_AS(LearningCurveReport({.path = target}), traincb::IoError);
    }
    SECTION("the path is a directory") {
        fs::create_directory(dir / "adir");
        try {
            LearningCurveReport r({.path = dir / "adir"});
            FAIL("expected IoError");
        } catch (const traincb::IoError& e) {
            CHECK(e.path() == dir / "adir");
            CHECK(e.code() == std::error_code(EISDIR, std::generic_category()));
        }
    }
    SECTION("the directory turns into a file after construction: at the first write") {
        const fs::path target = dir / "later" / "report.html";
        LearningCurveReport report({.path = target});  // "later" does not exist yet: fine
        { std::ofstream(dir / "later") << "x"; }
        CallbackList cbs{report};
        try {
            cbs.on_train_begin();
            FAIL("expected IoError");
        } catch (const traincb::IoError& e) {
            CHECK(e.path() == target);
            CHECK(std::string(e.what()).find("'" + target.string() + "'") != std::string::npos);
            CHECK(std::string(e.what()).find("Not a directory") != std::string::npos);
        }
    }
    SECTION("missing directories are created") {
        const fs::path target = dir / "x" / "y" / "report.html";
        LearningCurveReport report({.path = target});
        CallbackList cbs{report};
        drive(cbs, simple_epochs(1));
        CHECK(fs::is_regular_file(target));
        CHECK(listing(dir / "x" / "y") == std::vector<std::string>{"report.html"});
    }
}

TEST_CASE("a failed rewrite leaves the previous page intact and no temporary file") {
    TempDir dir;
    const fs::path file = dir / "r.html";
    LearningCurveReport report({.path = file});
    CallbackList cbs{report};
    cbs.on_train_begin();
    cbs.on_epoch_begin(0);
    Logs logs{{"loss", 1.0}};
    cbs.on_epoch_end(0, logs);
    const std::string before = read_bytes(file);
    REQUIRE(before.find("data-key=\"loss\"") != std::string::npos);
    {
        // Every rename fails with EXDEV: the new page never replaces the old one.
        auto ops = traincb::detail::system_file_ops();
        ops.rename = [](const char*, const char*) {
            errno = EXDEV;
            return -1;
        };
        traincb::detail::ScopedFileOps scoped(ops);
        cbs.on_epoch_begin(1);
        Logs l2{{"loss", 0.5}};
        try {
            cbs.on_epoch_end(1, l2);
            FAIL("expected IoError");
        } catch (const traincb::IoError& e) {
            CHECK(e.path() == file);
            CHECK(e.code() == std::error_code(EXDEV, std::generic_category()));
        }
    }
    CHECK(read_bytes(file) == before);
    CHECK(listing(dir.path) == std::vector<std::string>{"r.html"});
    CHECK(report.writes() == 2);
}

// ---- Rendering in a real browser ----------------------------------------------------------------

namespace {

// ~30 epochs of realistic curves: loss falling, val_loss U-shaped (lowest at epoch 15, 1-based),
// accuracy rising, the learning rate cut tenfold from epoch 20, EarlyStopping (patience 10)
// stopping at epoch 25, and two checkpoint saves.
void write_demo_report(const fs::path& file, EarlyStopping& es) {
    LearningCurveReport report({.path = file, .title = "mnist-mlp \xC2\xB7 run 7", .early_stopping = &es});
    CallbackList cbs{es, report};
    std::vector<Logs> epochs;
    for (int e = 0; e < 30; ++e) {
        const double t = e;
        const double wiggle = 0.0009 * std::sin(1.7 * t);
        // Left of epoch 14 (0-based) a parabola falling to 0.35, right of it a gentler rise: the
        // wiggle (< 0.001) is smaller than either side's step away from the minimum (>= 0.0018).
        const double val = e <= 14 ? 0.35 + 0.9 * (1 - t / 14) * (1 - t / 14) : 0.35 + 0.0018 * (t - 14) * (t - 14);
        epochs.push_back({{"loss", 0.22 + 0.95 * std::exp(-t / 7) + 0.004 * std::sin(2.3 * t)},
                          {"val_loss", val + wiggle},
                          {"accuracy", 0.97 - 0.55 * std::exp(-t / 5.5)},
                          {"val_accuracy", 0.915 - 0.5 * std::exp(-t / 5) - 0.0006 * std::max(0.0, t - 14) * (t - 14)},
                          {"learning_rate", e < 19 ? 1e-3 : 1e-4}});
    }
    drive(
        cbs, epochs,
        [&](int e) {
            if (e == 9) report.mark(9, "checkpoint", "ckpt/epoch_010-val_loss_0.4003.safetensors");
            if (e == 14) report.mark(14, "checkpoint", "ckpt/epoch_015-val_loss_0.3491.safetensors");
        },
        30);
}

bool chromium_installed() {
    return std::system("command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1") == 0;
}

}  // namespace

TEST_CASE("the demo report marks best 15, stopped 25, lr change 20 and two checkpoints") {
    TempDir dir;
    EarlyStopping es({.monitor = "val_loss", .patience = 10});
    write_demo_report(dir / "r.html", es);
    REQUIRE(es.best_epoch() == 14);     // by construction of val_loss (see write_demo_report)
    REQUIRE(es.stopped_epoch() == 24);  // 14 + patience 10
    const Parsed p = parse_file(dir / "r.html");
    CHECK(find_tags(p, "figure", "chart").size() == 3);  // loss, accuracy, learning_rate
    CHECK(epochs_of(p, "line", "ev-best") == std::vector<std::string>(3, "14"));
    CHECK(epochs_of(p, "line", "ev-stopped") == std::vector<std::string>(3, "24"));
    CHECK(epochs_of(p, "line", "ev-lr") == std::vector<std::string>(3, "19"));
    CHECK(epochs_of(p, "path", "mark-checkpoint").size() == 6);
    CHECK(point_pairs(attr(*polyline_of(p, "val_loss"), "points")) == 25);
}

TEST_CASE("headless Chromium renders the report (screenshot)") {
    if (!chromium_installed()) TRAINCB_SKIP("chromium is not installed (apt-get install chromium)");
    // Kept in the build tree so a person can look at it: build/<dir>/learning_curve_report/.
    const fs::path out = fs::path(TRAINCB_BINARY_DIR) / "learning_curve_report";
    fs::create_directories(out);
    const fs::path html = out / "report.html";
    const fs::path png = out / "report.png";
    EarlyStopping es({.monitor = "val_loss", .patience = 10});
    write_demo_report(html, es);
    fs::remove(png);
    const std::string cmd = "bash '" + std::string(TRAINCB_SOURCE_DIR) + "/tests/tools/screenshot_report.sh' '" +
                            html.string() + "' '" + png.string() + "' 1200x1600";
    const int rc = std::system(cmd.c_str());
    REQUIRE(rc == 0);
    const std::string bytes = read_bytes(png);
    REQUIRE(bytes.size() > 24);
    CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
    // IHDR: width and height, big-endian, at offsets 16 and 20.
    auto be32 = [&](std::size_t at) {
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
        return v;
    };
    CHECK(be32(16) == 1200);
    CHECK(be32(20) == 1600);
    // A blank 1200x1600 page compresses to a few KB; charts, text and tables make it far larger.
    CHECK(bytes.size() > std::size_t{40} * 1024);
}

// ---- resuming (state_key / save_state / load_state) -------------------------------------------

namespace {

using ckpt_test::Crash;
using ckpt_test::resume_data;

// One process's worth of objects writing into `dir`: EarlyStopping (best and stopped markers),
// ReduceLROnPlateau (learning_rate in the logs: rate-change markers), ModelCheckpoint (last
// .safetensors each epoch, or with `mid_epoch` a full checkpoint every 3 global steps) whose saves
// are marked on the report as example_breast_cancer does, and the report.
struct Rig {
    fs::path dir;
    ckpt_test::Net net{4, 6, 1};
    Crash crash;
    EarlyStopping es{{.monitor = "val_loss", .patience = 4}};
    traincb::ReduceLROnPlateau rlr{{.monitor = "val_loss", .factor = 0.5, .patience = 1, .min_delta = 0.0}};
    traincb::ModelCheckpoint ckpt;
    LearningCurveReport report;
    traincb::LambdaCallback marks{{.on_epoch_end = [this](traincb::Context& ctx) {
        for (const auto& k : ckpt.kept())
            if (k.epoch == ctx.epoch()) report.mark(ctx.epoch(), "checkpoint", k.path.filename().string());
    }}};

    Rig(const fs::path& d, bool mid_epoch, const std::string& report_id = "")
        : dir(d),
          ckpt(mid_epoch ? traincb::ModelCheckpointOptions{.filepath = d / "ckpt/b{epoch}-{batch}.safetensors",
                                                           .save_freq = 3}
                         : traincb::ModelCheckpointOptions{.filepath = d / "ckpt/e{epoch:02d}.safetensors",
                                                           .save_top_k = 2,
                                                           .save_last = true}),
          report({.path = d / "report.html", .title = "resume", .early_stopping = &es, .id = report_id}) {}

    traincb::History fit(int epochs, const fs::path& resume = {}) {
        traincb::Trainer trainer(net);
        return trainer.fit(resume_data().x, resume_data().y,
                           {.epochs = epochs,
                            .batch_size = 8,
                            .seed = 11,
                            .validation_data = traincb::ValidationData<double>{resume_data().xv, resume_data().yv},
                            .resume_from = resume},
                           crash, es, rlr, ckpt, marks, report);
    }
    [[nodiscard]] std::string html() const { return read_bytes(dir / "report.html"); }
};

// The message of the FormatError that load_state throws for `state`, or "" when none is thrown.
std::string load_error(LearningCurveReport& report, const traincb::CallbackState& state) {
    CallbackList cbs{report};
    try {
        report.load_state(state, cbs.context());
    } catch (const traincb::FormatError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("resume: a run crashed at an epoch end and resumed through Trainer renders the same bytes") {
    ckpt_test::TempDir tmp("lcr_resume");
    fs::create_directories(tmp / "a");
    fs::create_directories(tmp / "b");
    Rig straight(tmp / "a", false);
    const traincb::History hs = straight.fit(14);
    // The scenario exercises every part of the state: enough epochs, a rate change (a column
    // and a marker), checkpoint marks before and after the crash epoch.
    REQUIRE(hs.size() >= 8);
    REQUIRE_FALSE(straight.rlr.reductions().empty());
    REQUIRE(straight.rlr.reductions().front().epoch < 6);
    REQUIRE(straight.report.marks().size() >= 2);
    REQUIRE(straight.report.marks().front().epoch < 6);
    {
        Rig crashing(tmp / "b", false);
        crashing.crash.at = 6;  // epoch 6 never ends: last.safetensors is from epoch 5
        CHECK_THROWS(crashing.fit(14));
    }
    Rig resumed(tmp / "b", false);
    const traincb::History hr = resumed.fit(14, tmp / "b/ckpt");
    REQUIRE(hr.size() == hs.size());
    CHECK(resumed.report.epochs() == straight.report.epochs());
    CHECK(resumed.report.marks().size() == straight.report.marks().size());
    const std::string html = resumed.html();
    CHECK(html == straight.html());
    CHECK(html.find("data-epoch=\"0\"") != std::string::npos);  // the events before the resume are there

    // Sensitivity: a report whose state is not restored (renamed: it "starts fresh", warned)
    // lacks the epochs before the resume, so the comparison above can fail.
    ckpt_test::TempDir tmp2("lcr_resume_fresh");
    {
        Rig crashing(tmp2.path, false, "before");
        crashing.crash.at = 6;
        CHECK_THROWS(crashing.fit(14));
    }
    ckpt_test::Warnings w;
    Rig fresh(tmp2.path, false, "after");
    (void)fresh.fit(14, tmp2 / "ckpt");
    CHECK(w.any_contains("no state for callback 'after'"));
    CHECK(fresh.report.epochs().front() == 6);
    CHECK(fresh.html() != straight.html());
}

TEST_CASE("resume: from a checkpoint in the version-1 layout (History and report state as JSON), the same bytes") {
    ckpt_test::TempDir tmp("lcr_resume_v1");
    fs::create_directories(tmp / "a");
    fs::create_directories(tmp / "b");
    Rig straight(tmp / "a", false);
    (void)straight.fit(14);
    {
        Rig crashing(tmp / "b", false);
        crashing.crash.at = 6;
        CHECK_THROWS(crashing.fit(14));
    }
    const fs::path last = tmp / "b/ckpt/last.safetensors";
    {
        // As written now: the report's values are the History's (every key logged every epoch),
        // so its state holds only their keys and the marks, and no tensor.
        const traincb::io::Checkpoint c = traincb::io::load_checkpoint(last);
        const traincb::CallbackState& now = c.callbacks.at("LearningCurveReport");
        CHECK(now.version == 2);
        CHECK(now.tensors.empty());
        CHECK(now.json.at("columns").empty());
        CHECK(now.json.at("history").at("keys") == nlohmann::json{"learning_rate", "loss", "val_loss"});
    }
    ckpt_v1::write_as_v1(last, last);
    const nlohmann::json state =
        nlohmann::json::parse(traincb::io::load_safetensors(last).metadata.at("traincb.state"));
    REQUIRE(state.at("format_version") == 1);
    REQUIRE(state.at("callbacks").at("LearningCurveReport").at("version") == 1);
    REQUIRE(state.at("callbacks").at("LearningCurveReport").at("json").at("epochs").size() == 6);
    Rig resumed(tmp / "b", false);
    (void)resumed.fit(14, last);
    CHECK(resumed.report.epochs() == straight.report.epochs());
    CHECK(resumed.html() == straight.html());
}

TEST_CASE("resume: from a mid-epoch checkpoint the report renders the same bytes") {
    ckpt_test::TempDir tmp("lcr_resume_mid");
    fs::create_directories(tmp / "a");
    fs::create_directories(tmp / "b");
    Rig straight(tmp / "a", true);
    const traincb::History hs = straight.fit(10);
    REQUIRE(hs.size() >= 6);
    {
        Rig crashing(tmp / "b", true);
        crashing.crash.at_step = 29;  // the newest checkpoint is at global step 27: epoch 3, batch 2
        CHECK_THROWS(crashing.fit(10));
    }
    REQUIRE(traincb::io::find_latest_checkpoint(tmp / "b/ckpt") == tmp / "b/ckpt/b4-3.safetensors");
    ckpt_test::Warnings w;  // the mid-epoch resume warns about training metrics (there are none)
    Rig resumed(tmp / "b", true);
    (void)resumed.fit(10, tmp / "b/ckpt");
    CHECK(resumed.report.epochs() == straight.report.epochs());
    CHECK(resumed.html() == straight.html());
}

TEST_CASE("resume: the state round-trips NaN, infinities, missing values and marks exactly") {
    TempDir dir;
    LearningCurveReport a({.path = dir / "a.html"});
    CHECK(a.state_key() == "LearningCurveReport");
    CHECK(LearningCurveReport({.path = dir / "x.html", .id = "mine"}).state_key() == "mine");
    {
        CallbackList cbs{a};
        cbs.set_params({.epochs = 5});
        cbs.on_train_begin();
        std::vector<Logs> epochs = {{{"loss", 1.0}, {"val_loss", kNan}},
                                    {{"loss", 0.1 + 0.2}, {"val_loss", kInf}, {"extra", -kInf}},
                                    {{"loss", 5e-324}, {"val_loss", -0.0}},
                                    {{"loss", 1.7976931348623157e308}, {"val_loss", 0.25}}};
        for (int e = 0; e < 4; ++e) {
            cbs.on_epoch_begin(e);
            cbs.on_epoch_end(e, epochs[static_cast<std::size_t>(e)]);
            if (e == 1) a.mark(e, "checkpoint", "e<1>&\"q\".safetensors");
        }
        a.mark(3, "note", "");
    }
    traincb::CallbackState state;
    a.save_state(state);
    CHECK(state.version == 2);
    // Without a History (this CallbackList has none) every column and the epochs are tensors.
    CHECK(state.json.at("history").is_null());
    CHECK(state.json.at("rows") == 4);
    CHECK(state.json.at("columns") == nlohmann::json{"extra", "loss", "val_loss"});
    CHECK(state.tensors.size() == 7);
    // Survives the checkpoint's own JSON text round trip.
    state.json = nlohmann::json::parse(state.json.dump());

    LearningCurveReport b({.path = dir / "b.html"});
    CallbackList cbs{b};
    cbs.set_params({.epochs = 5});
    cbs.on_train_begin();
    const int writes = b.writes();
    b.load_state(state, cbs.context());
    CHECK(b.writes() == writes + 1);  // the page is rewritten at once
    CHECK(b.epochs() == a.epochs());
    REQUIRE(b.marks().size() == 2);
    CHECK(b.marks()[0].label == "e<1>&\"q\".safetensors");
    CHECK(b.marks()[1].kind == "note");
    CHECK(b.render() == a.render());
    CHECK(read_bytes(dir / "b.html") == b.render());
    traincb::CallbackState again;
    b.save_state(again);
    CHECK(again.json == state.json);
    CHECK(again.tensors == state.tensors);
    // The key missing in three epochs stays missing there (present 0), not zero; NaN stays NaN.
    std::vector<std::uint8_t> present;
    REQUIRE(traincb::read_vector_tensor(*state.tensors.find("present/extra"), 4, present));
    CHECK(present == std::vector<std::uint8_t>{0, 1, 0, 0});
    std::vector<double> values;
    REQUIRE(traincb::read_vector_tensor(*state.tensors.find("values/extra"), 4, values));
    CHECK(values[1] == -kInf);
    REQUIRE(traincb::read_vector_tensor(*state.tensors.find("values/val_loss"), 4, values));
    CHECK(std::isnan(values[0]));
    CHECK(std::signbit(values[2]));  // -0.0
    std::vector<std::int64_t> epochs;
    REQUIRE(traincb::read_vector_tensor(*state.tensors.find("epochs"), 4, epochs));
    CHECK(epochs == std::vector<std::int64_t>{0, 1, 2, 3});
}

TEST_CASE("resume: with a History the state stores no value twice, only what the History lacks") {
    TempDir dir;
    LearningCurveReport a({.path = dir / "a.html"});
    traincb::History history;
    // A callback after the report changes "loss" in epoch 2 after the report recorded it, and
    // "val_loss" is logged every other epoch: the History differs from the report for those two.
    traincb::LambdaCallback later({.on_epoch_end = [](traincb::Context& ctx) {
        if (ctx.epoch() == 2) ctx.logs().set("loss", 9.0);
    }});
    {
        CallbackList cbs{a, later};
        cbs.set_history(&history);
        cbs.set_params({.epochs = 6});
        cbs.on_train_begin();
        for (int e = 0; e < 5; ++e) {
            cbs.on_epoch_begin(e);
            Logs logs{{"loss", 1.0 / (e + 1)}, {"accuracy", 0.5 + 0.1 * e}};
            if (e % 2 == 1) logs.set("val_loss", 0.3 * e);
            cbs.on_epoch_end(e, logs);
        }
        a.mark(3, "checkpoint", "c.safetensors");
    }
    traincb::CallbackState state;
    a.save_state(state);
    CHECK(state.version == 2);
    CHECK(state.json.at("rows") == 5);
    CHECK(state.json.at("history") == nlohmann::json{{"offset", 0}, {"keys", {"accuracy"}}});
    CHECK(state.json.at("columns") == nlohmann::json{"loss", "val_loss"});
    CHECK(state.tensors.size() == 4);  // values and present of those two; no "epochs"
    CHECK(state.tensors.find("values/accuracy") == nullptr);
    std::vector<double> loss;
    REQUIRE(traincb::read_vector_tensor(*state.tensors.find("values/loss"), 5, loss));
    CHECK(loss[2] == 1.0 / 3);  // what the report drew, not the History's 9

    // Loaded with the History of the same run (as Trainer restores it), it renders the same page.
    LearningCurveReport b({.path = dir / "b.html"});
    traincb::History restored = history;
    CallbackList cbs{b};
    cbs.set_history(&restored);
    cbs.set_params({.epochs = 6});
    cbs.on_train_begin();
    b.load_state(state, cbs.context());
    CHECK(b.render() == a.render());
    CHECK(b.epochs() == std::vector<int>{0, 1, 2, 3, 4});
    traincb::CallbackState again;
    b.save_state(again);
    CHECK(again.json == state.json);
    CHECK(again.tensors == state.tensors);

    // Without the History it refers to, the state cannot be loaded.
    LearningCurveReport c({.path = dir / "c.html"});
    CallbackList alone{c};
    alone.on_train_begin();
    CHECK(load_error(c, state).find(
              "it takes its 5 epochs from the run's History (from row 0), which is not available") !=
          std::string::npos);
}

TEST_CASE("resume: a state of another version or a malformed one is refused, the report unchanged") {
    TempDir dir;
    LearningCurveReport good({.path = dir / "good.html"});
    {
        CallbackList cbs{good};
        cbs.on_train_begin();
        Logs l{{"loss", 0.5}};
        cbs.on_epoch_end(0, l);
        good.mark(0, "checkpoint", "c.safetensors");
    }
    traincb::CallbackState valid;  // version 2, without a History: the columns in tensors
    good.save_state(valid);
    REQUIRE(valid.version == 2);
    // Version 1, as earlier traincb versions wrote it: everything in JSON.
    traincb::CallbackState valid1;
    valid1.version = 1;
    valid1.json = nlohmann::json::parse(R"({"epochs": [0], "columns": {"loss": ["0.5"]},
        "marks": [{"epoch": 0, "kind": "checkpoint", "label": "c.safetensors"}]})");

    LearningCurveReport report({.path = dir / "r.html", .id = "rep"});
    {
        CallbackList cbs{report};
        cbs.on_train_begin();
        Logs l{{"loss", 9.0}};
        cbs.on_epoch_end(7, l);
    }
    const std::string before = report.render();
    auto with = [](traincb::CallbackState s, const std::function<void(nlohmann::json&)>& edit) {
        edit(s.json);
        return s;
    };
    auto with_tensor = [&](const traincb::Tensor& t) {
        traincb::CallbackState s = valid;
        s.tensors.put(t);
        return s;
    };
    traincb::CallbackState v3 = valid;
    v3.version = 3;
    const std::string prefix = "traincb: LearningCurveReport: checkpointed state (key 'rep'): ";
    const std::vector<std::pair<traincb::CallbackState, std::string>> cases = {
        {v3, "version 3 is not readable; this traincb reads versions 1 and 2"},
        {with(valid, [](nlohmann::json& j) { j = nlohmann::json::array(); }), "expected a JSON object"},
        {with(valid1, [](nlohmann::json& j) { j.erase("epochs"); }), "the field 'epochs' is missing"},
        {with(valid1, [](nlohmann::json& j) { j["marks"] = 3; }), "'marks' must be an array, got 3"},
        {with(valid1, [](nlohmann::json& j) { j["columns"] = nlohmann::json::array(); }),
         "'columns' must be an object"},
        {with(valid1, [](nlohmann::json& j) { j["epochs"][0] = -1; }), "an entry of 'epochs' must be an epoch"},
        {with(valid1, [](nlohmann::json& j) { j["epochs"][0] = "0"; }), "an entry of 'epochs' must be an epoch"},
        {with(valid1, [](nlohmann::json& j) { j["columns"]["loss"] = nlohmann::json::array(); }),
         "column 'loss' must be an array of 1 values"},
        {with(valid1, [](nlohmann::json& j) { j["columns"]["loss"][0] = 0.5; }), "column 'loss' holds 0.5"},
        {with(valid1, [](nlohmann::json& j) { j["columns"]["loss"][0] = "0.5x"; }), "column 'loss' holds \"0.5x\""},
        {with(valid1, [](nlohmann::json& j) { j["marks"][0].erase("kind"); }), "a mark must be"},
        {with(valid, [](nlohmann::json& j) { j["marks"][0]["kind"] = ""; }), "a mark must be"},
        {with(valid, [](nlohmann::json& j) { j["marks"][0]["epoch"] = -2; }), "a mark's 'epoch' must be an epoch"},
        {with(valid, [](nlohmann::json& j) { j.erase("rows"); }),
         "'rows' must be a count (an integer >= 0), got nothing"},
        {with(valid, [](nlohmann::json& j) { j["rows"] = 2; }),
         "the tensor 'epochs' is I64 of 8 bytes, expected I64 [2] (one value per epoch)"},
        {with(valid, [](nlohmann::json& j) { j.erase("history"); }), "the field 'history' is missing"},
        {with(valid, [](nlohmann::json& j) { j["history"] = 1; }), "'history' must be an object or null, got 1"},
        {with(valid,
              [](nlohmann::json& j) {
                  j["history"] = {{"offset", 0}, {"keys", nlohmann::json::array()}};
              }),
         "it takes its 1 epochs from the run's History (from row 0), which is not available"},
        {with(valid,
              [](nlohmann::json& j) {
                  j["columns"] = {"loss", "acc"};
              }),
         "the tensor 'values/acc' is missing"},
        {with(valid, [](nlohmann::json& j) { j["columns"] = {3}; }), "'columns' holds 3, not a key"},
        {with_tensor(traincb::vector_tensor<float>("values/loss", std::vector<float>{0.5F})),
         "the tensor 'values/loss' is F32 of 4 bytes, expected F64 [1]"},
        {with_tensor(traincb::vector_tensor<std::int64_t>("epochs", std::vector<std::int64_t>{-3})),
         "an entry of tensor 'epochs' must be an epoch (an integer >= 0), got -3"},
    };
    for (const auto& [state, expected] : cases) {
        INFO(expected);
        const std::string msg = load_error(report, state);
        INFO(msg);
        CHECK(msg.rfind(prefix, 0) == 0);
        CHECK(msg.find(expected) != std::string::npos);
        CHECK(report.render() == before);  // nothing half-loaded
    }
    CHECK(load_error(report, valid).empty());
    const std::string loaded = report.render();
    CHECK(loaded != before);
    // The version-1 form loads to the same report.
    CHECK(load_error(report, valid1).empty());
    CHECK(report.render() == loaded);
}

TEST_CASE("resume: two reports in one run need distinct ids") {
    TempDir dir;
    LearningCurveReport a({.path = dir / "a.html"});
    LearningCurveReport b({.path = dir / "b.html"});
    CallbackList same{a, b};
    REQUIRE_THROWS_AS(same.on_train_begin(), traincb::InvalidArgument);
    LearningCurveReport c({.path = dir / "c.html", .id = "second"});
    CallbackList distinct{a, c};
    REQUIRE_NOTHROW(distinct.on_train_begin());
}

TEST_CASE("an axis whose rounded-out ticks would overflow near DBL_MAX labels its ends only") {
    // nice_step(1.797e308, 5) = 5e307 and ceil(1.797e308 / 5e307) * 5e307 = 2e308 = inf: the
    // domain falls back to [min, max], labelled with 3 significant digits.
    const double big = std::numeric_limits<double>::max();
    const auto a = traincb::detail::lcr::value_axis(0.0, big);
    CHECK(a.lo == 0.0);
    CHECK(a.hi == big);
    CHECK(a.labels == std::vector<std::string>{"0", "1.8e+308"});
    // And the page drawn from such values has no NaN coordinate.
    TempDir dir;
    LearningCurveReport report({.path = dir / "r.html"});
    CallbackList cbs{report};
    const std::vector<Logs> epochs = {{{"loss", 0.0}}, {{"loss", big}}};
    drive(cbs, epochs);
    const std::string html = read_bytes(dir / "r.html");
    CHECK(html.find("nan\"") == std::string::npos);
    CHECK(html.find(">1.8e+308<") != std::string::npos);
}

}  // namespace test_learning_curve_report
