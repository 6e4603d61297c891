// Tests for the examples' shared utilities: examples/common/dataset.hpp (CSV loader,
// Standardizer, stratified split, take_rows, data files, portable random numbers) and
// examples/common/cli.hpp (flag parser, JSON summary line).
#include "catch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/cli.hpp"
#include "common/dataset.hpp"

namespace test_example_utils {

namespace te = traincb_examples;
namespace fs = std::filesystem;

namespace {

const fs::path kDataDir = fs::path(TRAINCB_SOURCE_DIR) / "examples" / "data";

// A file under a per-process temporary directory, removed with the fixture.
struct TempFile {
    fs::path path;
    TempFile(const std::string& name, const std::string& content) {
        const fs::path dir = fs::temp_directory_path() / ("traincb_test_example_utils_" + std::to_string(::getpid()));
        fs::create_directories(dir);
        path = dir / name;
        std::ofstream(path, std::ios::binary) << content;
    }
    ~TempFile() {
        std::error_code ec;
        fs::remove(path, ec);
        fs::remove(path.parent_path(), ec);  // only succeeds once empty
    }
};

// The message of the FormatError load_csv throws, or "no exception".
std::string csv_error(const std::string& name, const std::string& content) {
    TempFile f(name, content);
    try {
        (void)te::load_csv(f.path);
    } catch (const traincb::FormatError& e) {
        return e.what();
    }
    return "no exception";
}

// A generator that returns scripted 64-bit words, so the number arithmetic can be checked by hand.
struct ScriptedEngine {
    using result_type = std::uint64_t;
    std::vector<std::uint64_t> words;
    std::size_t next = 0;
    static constexpr result_type min() { return 0; }
    static constexpr result_type max() { return std::numeric_limits<std::uint64_t>::max(); }
    result_type operator()() { return words.at(next++); }
};

std::map<double, int> class_counts(const Eigen::MatrixXd& labels, const std::vector<Eigen::Index>& idx) {
    std::map<double, int> counts;
    for (auto i : idx) ++counts[labels(i, 0)];
    return counts;
}

// Parses `args` (argv[0] is added) with `cli`.
te::ParseResult parse(const te::Cli& cli, std::vector<const char*> args) {
    args.insert(args.begin(), "prog");
    return cli.parse(static_cast<int>(args.size()), args.data());
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// CSV
// ------------------------------------------------------------------------------------------------

TEST_CASE("load_csv reads the breast cancer data set: 569 x 30, 212 malignant and 357 benign") {
    const te::Dataset d = te::load_csv(kDataDir / "breast_cancer.csv");
    REQUIRE(d.features.rows() == 569);
    REQUIRE(d.features.cols() == 30);
    REQUIRE(d.labels.rows() == 569);
    REQUIRE(d.labels.cols() == 1);
    REQUIRE(d.feature_names.size() == 30);
    REQUIRE(d.feature_names.front() == "mean_radius");
    REQUIRE(d.feature_names.back() == "worst_fractal_dimension");
    REQUIRE(d.label_name == "malignant");
    // Counts from examples/data/README.md; cells read from the file by eye (first and last rows).
    REQUIRE((d.labels.array() == 1).count() == 212);
    REQUIRE((d.labels.array() == 0).count() == 357);
    REQUIRE(d.features(0, 0) == 17.99);
    REQUIRE(d.features(0, 1) == 10.38);
    REQUIRE(d.labels(0, 0) == 1);
    REQUIRE(d.features(568, 0) == 7.76);
    REQUIRE(d.features(568, 1) == 24.54);
    REQUIRE(d.features(568, 29) == 0.07039);
    REQUIRE(d.labels(568, 0) == 0);
}

TEST_CASE("load_csv reads the digits data set: 1797 x 64 integer pixels, ten classes") {
    const te::Dataset d = te::load_csv(kDataDir / "digits.csv");
    REQUIRE(d.features.rows() == 1797);
    REQUIRE(d.features.cols() == 64);
    REQUIRE(d.label_name == "digit");
    REQUIRE(d.features.minCoeff() == 0);
    REQUIRE(d.features.maxCoeff() == 16);
    REQUIRE((d.features.array() == d.features.array().floor()).all());
    // Class counts of the UCI test set as shipped with scikit-learn (also counted with awk).
    const std::vector<int> expected = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
    for (int k = 0; k < 10; ++k) REQUIRE((d.labels.array() == k).count() == expected[static_cast<std::size_t>(k)]);
    REQUIRE(d.features(0, 2) == 5);
    REQUIRE(d.labels(0, 0) == 0);
    REQUIRE(d.labels(1796, 0) == 8);
}

TEST_CASE("load_csv accepts CRLF line ends, a byte-order mark, spaces around fields and blank lines") {
    TempFile f("ok.csv",
               "\xEF\xBB\xBF"
               "a,b,label\r\n1, 2.5 ,0\r\n\r\n-3,4e2,1\r\n\n");
    const te::Dataset d = te::load_csv(f.path);
    REQUIRE(d.feature_names == std::vector<std::string>{"a", "b"});
    REQUIRE(d.label_name == "label");
    REQUIRE(d.features.rows() == 2);
    REQUIRE(d.features(0, 1) == 2.5);
    REQUIRE(d.features(1, 0) == -3);
    REQUIRE(d.features(1, 1) == 400);
    REQUIRE(d.labels(1, 0) == 1);
}

TEST_CASE("load_csv names the file, line and column of a malformed row") {
    std::string msg = csv_error("fields.csv", "a,b,label\n1,2,0\n1,2\n");
    INFO(msg);
    REQUIRE(msg.find("fields.csv") != std::string::npos);
    REQUIRE(msg.find("line 3: 2 fields but the header has 3") != std::string::npos);

    msg = csv_error("number.csv", "a,b,label\n1,x1,0\n");
    REQUIRE(msg.find("number.csv") != std::string::npos);
    REQUIRE(msg.find("line 2, column 2 ('b'): 'x1' is not a finite number") != std::string::npos);

    REQUIRE(csv_error("nan.csv", "a,label\nnan,0\n").find("'nan' is not a finite number") != std::string::npos);
    REQUIRE(csv_error("empty_field.csv", "a,label\n,0\n").find("line 2, column 1") != std::string::npos);
    REQUIRE(csv_error("trailing.csv", "a,label\n1.5x,0\n").find("'1.5x'") != std::string::npos);
    REQUIRE(csv_error("empty.csv", "").find("is empty") != std::string::npos);
    REQUIRE(csv_error("header_only.csv", "a,label\n").find("no data rows") != std::string::npos);
    REQUIRE(csv_error("one_column.csv", "label\n1\n").find("at least one feature column") != std::string::npos);
    REQUIRE(csv_error("good.csv", "a,label\n1,0\n") == "no exception");
}

TEST_CASE("load_csv of a missing file is an IoError naming the path") {
    const fs::path missing = kDataDir / "no_such_file.csv";
    try {
        (void)te::load_csv(missing);
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(e.path() == missing);
        REQUIRE(std::string(e.what()).find("no_such_file.csv") != std::string::npos);
        REQUIRE(e.code() == std::errc::no_such_file_or_directory);
    }
}

TEST_CASE("data_dir falls back to examples/data and data_file reports a missing data set") {
#ifdef TRAINCB_EXAMPLES_DATA_DIR
    REQUIRE(te::data_dir() == fs::path(TRAINCB_EXAMPLES_DATA_DIR));
#else
    REQUIRE(te::data_dir() == fs::path("examples/data"));
#endif
    try {
        (void)te::data_file("definitely_missing.csv");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        REQUIRE(std::string(e.what()).find("definitely_missing.csv") != std::string::npos);
        REQUIRE(std::string(e.what()).find("TRAINCB_EXAMPLES_DATA_DIR") != std::string::npos);
    }
}

// ------------------------------------------------------------------------------------------------
// Standardizer
// ------------------------------------------------------------------------------------------------

TEST_CASE("Standardizer: population mean and deviation, constant columns centred but unscaled") {
    Eigen::MatrixXd x(4, 2);
    x << 1, 5, 2, 5, 3, 5, 4, 5;
    te::Standardizer s(x);
    // Hand values: mean 2.5; population variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
    REQUIRE(s.mean()(0) == 2.5);
    REQUIRE(s.scale()(0) == Approx(std::sqrt(1.25)).epsilon(1e-15));
    REQUIRE(s.mean()(1) == 5);
    REQUIRE(s.scale()(1) == 1);
    const Eigen::MatrixXd z = s.transform(x);
    REQUIRE(z(0, 0) == Approx(-1.5 / std::sqrt(1.25)).epsilon(1e-15));
    REQUIRE(z(3, 0) == Approx(1.5 / std::sqrt(1.25)).epsilon(1e-15));
    REQUIRE(z.col(1).isZero(0));
    // Applied to other rows with the training statistics.
    Eigen::MatrixXd other(1, 2);
    other << 6, 7;
    const Eigen::MatrixXd zo = s.transform(other);
    REQUIRE(zo(0, 0) == Approx(3.5 / std::sqrt(1.25)).epsilon(1e-15));
    REQUIRE(zo(0, 1) == 2);
    // A constant non-representable value: the mean may differ from it by rounding, yet the
    // column is still detected as constant.
    Eigen::MatrixXd c = Eigen::MatrixXd::Constant(7, 1, 0.1);
    te::Standardizer sc(c);
    REQUIRE(sc.scale()(0) == 1);
}

TEST_CASE("Standardizer on the breast cancer data matches an independent computation") {
    const te::Dataset d = te::load_csv(kDataDir / "breast_cancer.csv");
    te::Standardizer s;
    REQUIRE_FALSE(s.fitted());
    const Eigen::MatrixXd z = s.fit_transform(d.features);
    REQUIRE(s.fitted());
    // Python math.fsum over the column (exact summation), population deviation.
    REQUIRE(s.mean()(0) == Approx(14.127291739894552).epsilon(1e-14));
    REQUIRE(s.scale()(0) == Approx(3.520950760711062).epsilon(1e-13));
    REQUIRE(s.mean()(3) == Approx(654.8891036906855).epsilon(1e-14));
    REQUIRE(s.scale()(3) == Approx(351.60475406323).epsilon(1e-12));
    REQUIRE(z(0, 0) == Approx(1.0970639814699839).epsilon(1e-12));
    for (Eigen::Index c = 0; c < z.cols(); ++c) {
        REQUIRE(std::abs(z.col(c).mean()) < 1e-12);
        REQUIRE(std::sqrt(z.col(c).squaredNorm() / static_cast<double>(z.rows())) == Approx(1).epsilon(1e-12));
    }
}

TEST_CASE("Standardizer leaves the digits' all-zero pixel columns at zero") {
    const te::Dataset d = te::load_csv(kDataDir / "digits.csv");
    const Eigen::MatrixXd z = te::Standardizer(d.features).transform(d.features);
    REQUIRE(z.col(0).isZero(0));  // pixel_0 is 0 in every image (checked with awk)
    REQUIRE(z.allFinite());
}

TEST_CASE("Standardizer rejects misuse") {
    te::Standardizer s;
    REQUIRE_THROWS_AS(s.transform(Eigen::MatrixXd::Zero(2, 2)), traincb::LogicError);
    REQUIRE_THROWS_AS(s.fit(Eigen::MatrixXd(0, 3)), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(s.fit(Eigen::MatrixXd(3, 0)), traincb::InvalidArgument);
    s.fit(Eigen::MatrixXd::Random(3, 2));
    try {
        (void)s.transform(Eigen::MatrixXd::Zero(2, 3));
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        REQUIRE(std::string(e.what()).find("x has 3 columns but the standardizer was fitted on 2") !=
                std::string::npos);
    }
}

// ------------------------------------------------------------------------------------------------
// Splits and rows
// ------------------------------------------------------------------------------------------------

TEST_CASE("stratified_split keeps each class's proportion and partitions the rows") {
    Eigen::MatrixXd y(150, 1);
    for (Eigen::Index i = 0; i < 150; ++i) y(i, 0) = i < 100 ? 0 : 1;
    const te::Split s = te::stratified_split(y, {.train = 0.6, .val = 0.2, .test = 0.2}, 7);
    // 100 zeros -> 60/20/20, 50 ones -> 30/10/10 (exact products, no rounding).
    REQUIRE(class_counts(y, s.train) == std::map<double, int>{{0, 60}, {1, 30}});
    REQUIRE(class_counts(y, s.val) == std::map<double, int>{{0, 20}, {1, 10}});
    REQUIRE(class_counts(y, s.test) == std::map<double, int>{{0, 20}, {1, 10}});
    std::set<Eigen::Index> all(s.train.begin(), s.train.end());
    all.insert(s.val.begin(), s.val.end());
    all.insert(s.test.begin(), s.test.end());
    REQUIRE(all.size() == 150);
    REQUIRE(*all.begin() == 0);
    REQUIRE(*all.rbegin() == 149);
    // Parts are shuffled: the ones are not all at the end of the training part.
    bool interleaved = false;
    for (std::size_t i = 0; i + 1 < s.train.size(); ++i)
        interleaved |= y(s.train[i], 0) == 1 && y(s.train[i + 1], 0) == 0;
    REQUIRE(interleaved);
}

TEST_CASE("stratified_split is deterministic for a seed and rounds each class") {
    const te::Dataset d = te::load_csv(kDataDir / "breast_cancer.csv");
    const te::Split a = te::stratified_split(d.labels, {.train = 0.7, .val = 0.15, .test = 0.15}, 42);
    const te::Split b = te::stratified_split(d.labels, {.train = 0.7, .val = 0.15, .test = 0.15}, 42);
    const te::Split c = te::stratified_split(d.labels, {.train = 0.7, .val = 0.15, .test = 0.15}, 43);
    REQUIRE(a.train == b.train);
    REQUIRE(a.val == b.val);
    REQUIRE(a.test == b.test);
    REQUIRE(a.train != c.train);
    // 212 malignant: round(148.4) = 148, round(31.8) = 32, rest 32;
    // 357 benign:   round(249.9) = 250, round(53.55) = 54, rest 53.
    REQUIRE(class_counts(d.labels, a.train) == std::map<double, int>{{0, 250}, {1, 148}});
    REQUIRE(class_counts(d.labels, a.val) == std::map<double, int>{{0, 54}, {1, 32}});
    REQUIRE(class_counts(d.labels, a.test) == std::map<double, int>{{0, 53}, {1, 32}});
}

TEST_CASE("stratified_split edge cases: no test part, a row-vector of labels, a one-sample class") {
    Eigen::RowVectorXd y(7);
    y << 0, 0, 0, 1, 1, 1, 2;
    const te::Split s = te::stratified_split(y, {.train = 0.5, .val = 0.5, .test = 0}, 1);
    REQUIRE(s.test.empty());
    REQUIRE(s.train.size() + s.val.size() == 7);
    const te::Split t = te::stratified_split(y, {.train = 1, .val = 0, .test = 0}, 1);
    REQUIRE(t.train.size() == 7);
}

TEST_CASE("stratified_split rejects bad fractions and labels") {
    Eigen::MatrixXd y = Eigen::MatrixXd::Zero(4, 1);
    REQUIRE_THROWS_AS(te::stratified_split(y, {.train = 0.5, .val = 0.2, .test = 0.2}, 1), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(te::stratified_split(y, {.train = 1.2, .val = -0.2, .test = 0}, 1), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(te::stratified_split(y, {.train = std::nan(""), .val = 0, .test = 0}, 1),
                      traincb::InvalidArgument);
    REQUIRE_THROWS_AS(te::stratified_split(Eigen::MatrixXd::Zero(4, 2), {}, 1), traincb::InvalidArgument);
    y(2, 0) = std::nan("");
    try {
        (void)te::stratified_split(y, {}, 1);
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        REQUIRE(std::string(e.what()).find("label 2 is NaN") != std::string::npos);
    }
}

TEST_CASE("take_rows selects rows in order and checks the indices") {
    Eigen::MatrixXd m(3, 2);
    m << 1, 2, 3, 4, 5, 6;
    const std::vector<Eigen::Index> idx = {2, 0, 2};
    const Eigen::MatrixXd r = te::take_rows(m, idx);
    Eigen::MatrixXd expected(3, 2);
    expected << 5, 6, 1, 2, 5, 6;
    REQUIRE(r == expected);
    REQUIRE(te::take_rows(m, std::vector<Eigen::Index>{}).rows() == 0);
    REQUIRE_THROWS_AS(te::take_rows(m, std::vector<Eigen::Index>{3}), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(te::take_rows(m, std::vector<Eigen::Index>{-1}), traincb::InvalidArgument);
}

// ------------------------------------------------------------------------------------------------
// Random numbers
// ------------------------------------------------------------------------------------------------

TEST_CASE("uniform01 maps the top 53 bits of a word to [0, 1)") {
    ScriptedEngine e{{0, std::numeric_limits<std::uint64_t>::max(), std::uint64_t{1} << 63, 2047}, 0};
    REQUIRE(te::uniform01(e) == 0.0);
    REQUIRE(te::uniform01(e) == 1.0 - 0x1.0p-53);  // largest value, still below 1
    REQUIRE(te::uniform01(e) == 0.5);
    REQUIRE(te::uniform01(e) == 0.0);  // the low 11 bits are dropped
}

TEST_CASE("uniform_index rejects the biased low words and reduces the rest modulo n") {
    // 2^64 mod 3 = 1 (2^even = 1 mod 3), so word 0 is rejected and 5 gives 5 mod 3 = 2.
    ScriptedEngine e{{0, 5, 7}, 0};
    REQUIRE(te::uniform_index(e, 3) == 2);
    REQUIRE(e.next == 2);
    // A power of two has no bias: nothing is rejected, 7 mod 4 = 3.
    REQUIRE(te::uniform_index(e, 4) == 3);
    REQUIRE(te::uniform_index(e, 0) == 0);  // no draw
    REQUIRE(e.next == 3);
}

TEST_CASE("shuffle is Fisher-Yates from the last element down") {
    // n = 3: word 4 -> j = 4 mod 3 = 1, swap(v[2], v[1]); n = 2: word 6 -> j = 0, swap(v[1], v[0]).
    ScriptedEngine e{{4, 6}, 0};
    std::vector<char> v = {'a', 'b', 'c'};
    te::shuffle(std::span<char>(v), e);
    REQUIRE(v == std::vector<char>{'c', 'a', 'b'});
    // A real generator gives a permutation.
    std::mt19937_64 rng(1);
    std::vector<int> w(100);
    for (int i = 0; i < 100; ++i) w[static_cast<std::size_t>(i)] = i;
    te::shuffle(std::span<int>(w), rng);
    std::vector<int> sorted = w;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> identity(100);
    for (int i = 0; i < 100; ++i) identity[static_cast<std::size_t>(i)] = i;
    REQUIRE(sorted == identity);  // a permutation
    REQUIRE(w != identity);       // that moved something
}

TEST_CASE("uniform_matrix fills row by row and random_binary_labels uses the top bit") {
    ScriptedEngine e{{0, std::uint64_t{1} << 63, std::uint64_t{1} << 62, 0}, 0};
    const Eigen::MatrixXd m = te::uniform_matrix(2, 2, e);
    REQUIRE(m(0, 0) == 0.0);
    REQUIRE(m(0, 1) == 0.5);
    REQUIRE(m(1, 0) == 0.25);
    REQUIRE(m(1, 1) == 0.0);
    ScriptedEngine b{{std::uint64_t{1} << 63, (std::uint64_t{1} << 63) - 1, std::numeric_limits<std::uint64_t>::max()},
                     0};
    const Eigen::MatrixXd y = te::random_binary_labels(3, b);
    REQUIRE(y.cols() == 1);
    REQUIRE(y(0, 0) == 1);
    REQUIRE(y(1, 0) == 0);
    REQUIRE(y(2, 0) == 1);
    // Reproducible from a seed.
    std::mt19937_64 r1(9), r2(9);
    REQUIRE(te::uniform_matrix(5, 3, r1) == te::uniform_matrix(5, 3, r2));
}

// ------------------------------------------------------------------------------------------------
// CLI
// ------------------------------------------------------------------------------------------------

namespace {
struct Flags {
    int epochs = 100;
    double lr = 0.001;
    std::string out = "runs/demo";
    bool json = false;
    te::Cli cli{"demo", "Trains a demo model."};
    Flags() {
        cli.flag("epochs", epochs, "maximum number of epochs")
            .flag("lr", lr, "learning rate")
            .flag("out", out, "output directory")
            .flag("json", json, "print a JSON summary last");
    }
};
}  // namespace

TEST_CASE("Cli parses --flag value and --flag=value of every type") {
    Flags f;
    const auto r = parse(f.cli, {"--epochs", "7", "--lr=0.5", "--out", "x/y", "--json"});
    REQUIRE(r.status == te::ParseStatus::Ok);
    REQUIRE(r.message.empty());
    REQUIRE(f.epochs == 7);
    REQUIRE(f.lr == 0.5);
    REQUIRE(f.out == "x/y");
    REQUIRE(f.json);

    Flags g;
    REQUIRE(parse(g.cli, {"--epochs=1", "--lr", "-2e-3", "--json=false", "--epochs", "3", "--out="}).status ==
            te::ParseStatus::Ok);
    REQUIRE(g.epochs == 3);  // the later occurrence wins
    REQUIRE(g.lr == -0.002);
    REQUIRE_FALSE(g.json);
    REQUIRE(g.out.empty());

    Flags h;
    REQUIRE(parse(h.cli, {}).status == te::ParseStatus::Ok);
    REQUIRE(h.epochs == 100);  // defaults untouched
}

TEST_CASE("Cli --help and -h return the usage with types and defaults") {
    Flags f;
    for (const char* flag : {"--help", "-h"}) {
        const auto r = parse(f.cli, {"--epochs", "3", flag, "--bogus"});  // help wins over errors
        REQUIRE(r.status == te::ParseStatus::Help);
        INFO(r.message);
        REQUIRE(r.message.rfind("usage: demo [flags]", 0) == 0);
        REQUIRE(r.message.find("Trains a demo model.") != std::string::npos);
        REQUIRE(r.message.find("--epochs <int>") != std::string::npos);
        REQUIRE(r.message.find("(default: 100)") != std::string::npos);
        REQUIRE(r.message.find("--lr <number>") != std::string::npos);
        REQUIRE(r.message.find("(default: 0.001)") != std::string::npos);
        REQUIRE(r.message.find("(default: \"runs/demo\")") != std::string::npos);
        REQUIRE(r.message.find("--json ") != std::string::npos);
        REQUIRE(r.message.find("--help, -h") != std::string::npos);
    }
    std::ostringstream out, err;
    REQUIRE(te::Cli::report(parse(f.cli, {"--help"}), out, err) == 0);
    REQUIRE(out.str() == f.cli.usage());
    REQUIRE(err.str().empty());
}

TEST_CASE("Cli errors: unknown flag, bad or missing value, stray argument, exit code 2") {
    Flags f;
    auto error_of = [&](std::vector<const char*> args) {
        const auto r = parse(f.cli, std::move(args));
        REQUIRE(r.status == te::ParseStatus::Error);
        return r.message;
    };
    REQUIRE(error_of({"--x"}) == "error: unknown flag '--x' (see --help)");
    REQUIRE(error_of({"--x=1"}) == "error: unknown flag '--x' (see --help)");
    REQUIRE(error_of({"-x"}) == "error: unknown flag '-x' (see --help)");
    REQUIRE(error_of({"--"}) == "error: unknown flag '--' (see --help)");
    REQUIRE(error_of({"--epochs", "abc"}) == "error: invalid value 'abc' for '--epochs': expected int (see --help)");
    REQUIRE(error_of({"--epochs=1.5"}).find("invalid value '1.5' for '--epochs'") != std::string::npos);
    REQUIRE(error_of({"--epochs=99999999999"}).find("invalid value '99999999999'") != std::string::npos);
    REQUIRE(error_of({"--epochs="}).find("invalid value ''") != std::string::npos);
    REQUIRE(error_of({"--lr", "nan"}).find("expected number") != std::string::npos);
    REQUIRE(error_of({"--lr", "1e"}).find("invalid value '1e'") != std::string::npos);
    REQUIRE(error_of({"--lr"}) == "error: flag '--lr' needs a value (number) (see --help)");
    REQUIRE(error_of({"--json=maybe"}).find("invalid value 'maybe' for switch '--json'") != std::string::npos);
    REQUIRE(error_of({"data.csv"}).find("unexpected argument 'data.csv'") != std::string::npos);

    std::ostringstream out, err;
    REQUIRE(te::Cli::report(parse(f.cli, {"--x"}), out, err) == 2);
    REQUIRE(err.str() == "error: unknown flag '--x' (see --help)\n");
    REQUIRE(out.str().empty());
    REQUIRE_FALSE(te::Cli::report(parse(f.cli, {"--epochs=2"}), out, err).has_value());
}

TEST_CASE("Cli rejects invalid or duplicate flag declarations") {
    int a = 0;
    te::Cli cli("p", "");
    cli.flag("a", a, "first");
    REQUIRE_THROWS_AS(cli.flag("a", a, "again"), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(cli.flag("", a, "empty"), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(cli.flag("--b", a, "dashes"), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(cli.flag("b=c", a, "equals"), traincb::InvalidArgument);
    REQUIRE_THROWS_AS(cli.flag("help", a, "reserved"), traincb::InvalidArgument);
    REQUIRE(cli.usage().find("usage: p [flags]\n\nflags:\n") == 0);  // no description paragraph
}

TEST_CASE("print_json_summary prints one compact line") {
    nlohmann::json j = {{"epochs", 3}, {"val_loss", 0.25}, {"name", "run\nA"}, {"bad", std::nan("")}};
    std::ostringstream out;
    te::print_json_summary(j, out);
    const std::string s = out.str();
    REQUIRE(s.back() == '\n');
    REQUIRE(s.find('\n') == s.size() - 1);  // the string's newline is escaped
    REQUIRE(nlohmann::json::parse(s)["epochs"] == 3);
    REQUIRE(nlohmann::json::parse(s)["bad"].is_null());
    REQUIRE(s.find(": ") == std::string::npos);  // compact
    std::ostringstream out2;
    REQUIRE_NOTHROW(te::print_json_summary(nlohmann::json{{"k", std::string("\xff")}}, out2));
    REQUIRE(out2.str().find('\n') == out2.str().size() - 1);
}

TEST_CASE("prepare_split: standardises every part with the training rows' statistics only") {
    const te::Dataset data = te::load_csv(kDataDir / "breast_cancer.csv");
    const auto p = te::prepare_split(data, {.train = 0.6, .val = 0.2, .test = 0.2}, 5);
    REQUIRE(p.x.rows() + p.xv.rows() + p.xt.rows() == 569);
    REQUIRE(p.y.rows() == p.x.rows());
    REQUIRE(p.yv.rows() == p.xv.rows());
    REQUIRE(p.yt.rows() == p.xt.rows());
    // Training columns are centred (mean 0) and scaled (population sd 1); the other parts are not
    // refitted, so their column means are not all 0 (the scaler saw only training rows).
    const Eigen::RowVectorXd mean = p.x.colwise().mean();
    CHECK(mean.cwiseAbs().maxCoeff() < 1e-12);
    const Eigen::RowVectorXd sd = ((p.x.rowwise() - mean).array().square().colwise().mean()).sqrt();
    CHECK((sd.array() - 1.0).abs().maxCoeff() < 1e-12);
    CHECK(p.xv.colwise().mean().cwiseAbs().maxCoeff() > 1e-3);
    // Same seed, same split (the split is deterministic).
    const auto q = te::prepare_split(data, {.train = 0.6, .val = 0.2, .test = 0.2}, 5);
    CHECK(q.xt == p.xt);
}

}  // namespace test_example_utils
