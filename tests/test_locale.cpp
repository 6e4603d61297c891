// Numbers in saved callback state, and in what the sinks write, do not depend on the C locale.
// Under a comma-decimal locale (de_DE.UTF-8), printf writes "0,123" and strtod/std::stod stop at
// the '.' of "0.123"; a checkpoint written by one process must still resume in another whatever
// either's locale, and a CSV log must stay a CSV log. Each test switches the process to
// de_DE.UTF-8 (building the locale with localedef into the build tree when the system lacks it;
// skipped when that is impossible) and back to "C" at its end.
#include "catch.hpp"
#include "test_support.hpp"

#include <stdlib.h>  // setenv
#include <unistd.h>

#include <Eigen/Core>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <locale>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/learning_curve_report.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/detail/strings.hpp>
#include <traincb/io/checkpoint.hpp>
#include <traincb/metrics.hpp>
#include <traincb/sinks/console.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/json_lines.hpp>
#include <vector>

namespace test_locale {

namespace fs = std::filesystem;
using traincb::CallbackList;
using traincb::Logs;
using traincb_test::read_bytes;
using traincb_test::TempDir;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// printf's "%.1f" of 0.5 in the C locale now in force.
std::string printf_half() {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f", 0.5);
    return buf;
}

// Switches the C locale (and the C++ global locale, when the library can build it) to
// de_DE.UTF-8 for its lifetime. When the system has no such locale, builds it with localedef
// into the build tree and points glibc at it with LOCPATH: no root needed, and the system's
// locale archive is left alone. `error` says why the switch was impossible.
struct CommaDecimalLocale {
    std::string error;

    CommaDecimalLocale() {
        if (!activate()) {
            build_locally();
            if (!activate())
                error =
                    "the de_DE.UTF-8 locale is not installed and localedef could not build it (install the "
                    "locales package, or run locale-gen for de_DE.UTF-8)";
        }
    }
    ~CommaDecimalLocale() {
        std::locale::global(std::locale::classic());
        std::setlocale(LC_ALL, "C");
    }
    CommaDecimalLocale(const CommaDecimalLocale&) = delete;
    CommaDecimalLocale& operator=(const CommaDecimalLocale&) = delete;

    static bool activate() {
        if (std::setlocale(LC_ALL, "de_DE.UTF-8") == nullptr) return false;
        try {
            std::locale::global(std::locale("de_DE.UTF-8"));  // also sets the C locale
        } catch (const std::runtime_error&) {
            std::setlocale(LC_ALL, "de_DE.UTF-8");  // the C++ library cannot: the C locale is what matters
        }
        return printf_half() == "0,5";
    }
    static void build_locally() {
        const fs::path dir = fs::path(TRAINCB_BINARY_DIR) / "tests" / "locales";
        const fs::path target = dir / "de_DE.UTF-8";
        if (!fs::exists(target / "LC_NUMERIC")) {
            std::error_code ec;
            fs::create_directories(dir, ec);
            // Built under a private name, then renamed: test processes may run at once.
            const fs::path tmp = dir / ("de_DE.UTF-8.tmp." + std::to_string(::getpid()));
            const std::string cmd = "localedef -i de_DE -f UTF-8 '" + tmp.string() + "' >/dev/null 2>&1";
            (void)std::system(cmd.c_str());  // exit status 1 for mere warnings: the files decide
            if (fs::exists(tmp / "LC_NUMERIC")) fs::rename(tmp, target, ec);
            fs::remove_all(tmp, ec);
        }
        ::setenv("LOCPATH", dir.c_str(), 1);
    }
};

#define REQUIRE_COMMA_LOCALE(guard) \
    if (!(guard).error.empty()) TRAINCB_SKIP((guard).error)

// A model with a learning rate, as ReduceLROnPlateau needs.
struct RateModel {
    double lr = 0.1;
    [[nodiscard]] double learning_rate() const { return lr; }
    void set_learning_rate(double v) { lr = v; }
};

// The bits of `v` equal those of `w` (NaN equals NaN).
bool same_bits(double v, double w) {
    return std::memcmp(&v, &w, sizeof v) == 0 || (std::isnan(v) && std::isnan(w));
}

}  // namespace

TEST_CASE("the comma-decimal locale really breaks printf and std::stod (the hazard guarded against)") {
    CommaDecimalLocale de;
    REQUIRE_COMMA_LOCALE(de);
    REQUIRE(printf_half() == "0,5");
    std::size_t used = 0;
    const double d = std::stod("0.123", &used);
    REQUIRE(used == 1);  // strtod stops at the '.': a reader built on it fails, or reads 0
    REQUIRE(d == 0.0);
}

TEST_CASE("the number codec writes and reads the same text under any locale") {
    // The texts are the shortest round-trip forms (Python's repr) of the doubles nearest the
    // literals; -0, the subnormal minimum and the largest double check the edges.
    struct Case {
        double v;
        const char* text;
    };
    const Case cases[] = {{0.123, "0.123"},
                          {0.1 + 0.2, "0.30000000000000004"},
                          {-0.0, "-0"},
                          {5e-324, "5e-324"},
                          {1.7976931348623157e308, "1.7976931348623157e+308"},
                          {1e-05, "1e-05"},
                          {kInf, "inf"},
                          {-kInf, "-inf"},
                          {kNaN, "nan"}};
    CommaDecimalLocale de;
    REQUIRE_COMMA_LOCALE(de);
    for (const Case& c : cases) {
        CAPTURE(c.text);
        REQUIRE(traincb::detail::format_double(c.v) == c.text);
        const auto back = traincb::detail::parse_double(c.text);
        REQUIRE(back.has_value());
        REQUIRE(same_bits(*back, c.v));
        // The checkpoint's reader of history values and ModelCheckpoint scores.
        REQUIRE(same_bits(traincb::detail::parse_json_double(nlohmann::json(c.text), "value", "test"), c.v));
    }
    // Not numbers: a comma decimal (what a locale-dependent writer would have produced), spaces, junk.
    for (const char* bad : {"0,123", " 0.5", "0.5 ", "", "1e999", "+1", "0.5x"}) {
        CAPTURE(bad);
        REQUIRE_FALSE(traincb::detail::parse_double(bad).has_value());
    }
    // Fixed notation for people (console, messages): printf's "%.4f" and "%.5f", with a point.
    REQUIRE(traincb::detail::format_fixed(0.123, 4) == "0.1230");
    REQUIRE(traincb::detail::format_fixed(0.3, 5) == "0.30000");
    REQUIRE(traincb::detail::format_fixed(1234.5, 1) == "1234.5");
}

TEST_CASE("an EarlyStopping state saved in the C locale resumes under de_DE, and one saved there too") {
    auto save = [] {
        traincb::EarlyStopping a({.monitor = "loss", .patience = 3});
        CallbackList la(a);
        la.on_train_begin();
        Logs e0{{"loss", 0.5}};
        la.on_epoch_end(0, e0);
        Logs e1{{"loss", 0.123}};
        la.on_epoch_end(1, e1);
        traincb::CallbackState st;
        a.save_state(st);
        st.json = nlohmann::json::parse(st.json.dump());  // through the checkpoint's JSON text
        return st;
    };
    auto load = [](const traincb::CallbackState& st) {
        traincb::EarlyStopping b({.monitor = "loss", .patience = 3});
        CallbackList lb(b);
        lb.on_train_begin();
        b.load_state(st, lb.context());
        REQUIRE(b.best().has_value());
        REQUIRE(*b.best() == 0.123);
        REQUIRE(b.best_epoch() == 1);
    };
    const traincb::CallbackState from_c = save();
    REQUIRE(from_c.json.at("best") == "0.123");
    CommaDecimalLocale de;
    REQUIRE_COMMA_LOCALE(de);
    load(from_c);  // was: FormatError "best '0.123' is not a number"
    const traincb::CallbackState from_de = save();
    REQUIRE(from_de.json == from_c.json);  // the same text, whatever the writer's locale
    load(from_de);
}

TEST_CASE("ReduceLROnPlateau, LearningCurveReport and metric states round-trip under de_DE") {
    TempDir dir("locale");
    // Saved in the C locale.
    traincb::ReduceLROnPlateau plateau_a({.monitor = "val_loss", .patience = 5});
    traincb::ReduceLROnPlateau plateau_inf({.monitor = "val_loss", .patience = 5});
    traincb::LearningCurveReport report_a({.path = dir / "a.html"});
    traincb::metrics::MeanSquaredError mse_a({.name = "mse"});
    RateModel model;
    {
        CallbackList cbs{plateau_a, report_a};
        cbs.set_model(model);
        cbs.set_params({.epochs = 5});
        cbs.on_train_begin();
        const Logs epochs[] = {{{"loss", 0.5}, {"val_loss", 0.7}},
                               {{"loss", 0.123}, {"val_loss", 0.30000000000000004}}};
        for (int e = 0; e < 2; ++e) {
            cbs.on_epoch_begin(e);
            Logs logs = epochs[e];
            cbs.on_epoch_end(e, logs);
        }
        CallbackList inf_cbs{plateau_inf};
        inf_cbs.set_model(model);
        inf_cbs.on_train_begin();
        Logs minus_inf{{"val_loss", -kInf}};
        inf_cbs.on_epoch_end(0, minus_inf);
    }
    Eigen::MatrixXd y_true(3, 1), y_pred(3, 1);
    y_true << 0.1, 0.2, 0.3;
    y_pred << 0.15, 0.123, 0.7;
    mse_a.update(y_true, y_pred);
    traincb::CallbackState plateau_state, inf_state, report_state;
    plateau_a.save_state(plateau_state);
    plateau_inf.save_state(inf_state);
    report_a.save_state(report_state);
    nlohmann::json mse_state;
    REQUIRE(mse_a.save_state(mse_state));

    CommaDecimalLocale de;
    REQUIRE_COMMA_LOCALE(de);
    traincb::ReduceLROnPlateau plateau_b({.monitor = "val_loss", .patience = 5});
    traincb::LearningCurveReport report_b({.path = dir / "b.html"});
    CallbackList cbs{plateau_b, report_b};
    cbs.set_model(model);
    cbs.set_params({.epochs = 5, .initial_epoch = 2, .resumed = true});
    cbs.on_train_begin();
    plateau_state.json = nlohmann::json::parse(plateau_state.json.dump());  // through the checkpoint's JSON text
    plateau_b.load_state(plateau_state, cbs.context());
    REQUIRE(plateau_b.best() == plateau_a.best());
    plateau_b.load_state(inf_state, cbs.context());
    REQUIRE(plateau_b.best() == -kInf);
    report_state.json = nlohmann::json::parse(report_state.json.dump());
    report_b.load_state(report_state, cbs.context());
    REQUIRE(report_b.render() == report_a.render());  // every value came back, and prints the same
    traincb::metrics::MeanSquaredError mse_b({.name = "mse"});
    mse_b.load_state(nlohmann::json::parse(mse_state.dump()));
    REQUIRE(same_bits(mse_b.result(), mse_a.result()));
    // And a state saved under de_DE is the one saved in the C locale.
    nlohmann::json mse_again;
    REQUIRE(mse_b.save_state(mse_again));
    REQUIRE(mse_again == mse_state);
}

TEST_CASE("the CSV, JSON-lines and console sinks write '.' decimals under de_DE") {
    CommaDecimalLocale de;
    REQUIRE_COMMA_LOCALE(de);
    TempDir dir("locale_sinks");
    std::ostringstream console;
    double t = 0;
    auto csv = std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = dir / "h.csv"});
    auto jsonl =
        std::make_shared<traincb::sinks::JsonLinesSink>(traincb::sinks::JsonLinesOptions{.path = dir / "h.jsonl"});
    auto con = std::make_shared<traincb::sinks::ConsoleSink>(traincb::sinks::ConsoleOptions{
        .out = &console, .style = traincb::sinks::ConsoleStyle::Lines, .clock = [&t] { return t += 0.25; }});
    traincb::MetricLogger logger({csv, jsonl, con});
    CallbackList cbs{logger};
    cbs.set_params({.epochs = 1});
    cbs.on_train_begin();
    cbs.on_epoch_begin(0);
    Logs logs{{"loss", 0.123}, {"learning_rate", 1e-04}};
    cbs.on_epoch_end(0, logs);
    cbs.on_train_end();
    // Keras's formats: CSV = Python's repr, JSON = shortest round trip, console = "%.4f" ("%.4e"
    // below 1e-3) as printf writes them in the C locale.
    REQUIRE(read_bytes(dir / "h.csv") == "epoch,learning_rate,loss\r\n0,0.0001,0.123\r\n");
    REQUIRE(read_bytes(dir / "h.jsonl") == "{\"epoch\":0,\"learning_rate\":0.0001,\"loss\":0.123}\n");
    const std::string line = console.str();
    INFO(line);
    REQUIRE(line.find("s - loss: 0.1230 - learning_rate: 1.0000e-04") != std::string::npos);
    REQUIRE(line.find(',') == std::string::npos);  // the epoch time too ("0.25s", not "0,25s")
}

}  // namespace test_locale
