// End-to-end checks of what example_breast_cancer writes under --out DIR: history.csv is
// reproducible byte for byte for a seed, opens with the expected columns (in pandas when it is
// installed), and the TensorBoard event files decode (framing, CRCs, file version) to exactly the
// values of history.csv, rounded to float32 as TensorBoard's simple_value stores them, including
// the model's learning rate (which MetricLogger logs). A run stopped and continued with --resume
// writes the same history.csv and report.html, byte for byte, and its event files still agree.
// With one byte flipped in checkpoints/last.safetensors, --resume falls back to
// last.prev.safetensors and ends with the same files; with every checkpoint corrupted it fails
// without touching a file, and --resume --start-over runs afresh.
#include "catch.hpp"

#include <sys/wait.h>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tfevents_reader.hpp"

namespace test_example_outputs {

namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
    const fs::path d = fs::path(TRAINCB_BINARY_DIR) / "tests" / "example_outputs" / name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

int run(const std::string& cmd) {
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_example(const fs::path& out, const std::string& extra = "") {
    return run(std::string("\"") + TRAINCB_BREAST_CANCER_EXE + "\" --quiet --epochs 12 --patience 4 --out \"" +
               out.string() + "\" " + extra + " > \"" +
               (out.parent_path() / (out.filename().string() + ".log")).string() + "\" 2>&1");
}

struct Csv {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

Csv read_csv(const fs::path& p) {
    Csv csv;
    std::istringstream in(tfevents::read_bytes(p));
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::vector<std::string> cells;
        std::stringstream ls(line);
        std::string cell;
        while (std::getline(ls, cell, ',')) cells.push_back(cell);
        if (csv.header.empty())
            csv.header = cells;
        else
            csv.rows.push_back(cells);
    }
    return csv;
}

// Every column of DIR/history.csv against the TensorBoard runs under DIR/tensorboard: one point
// per row, at step = epoch, equal to the CSV's value as a float32. Returns the values compared.
std::size_t compare_tensorboard_with_csv(const fs::path& dir) {
    const Csv csv = read_csv(dir / "history.csv");
    REQUIRE_FALSE(csv.rows.empty());
    const auto train = tfevents::load_run(dir / "tensorboard" / "train");
    const auto validation = tfevents::load_run(dir / "tensorboard" / "validation");
    std::size_t compared = 0;
    for (std::size_t c = 1; c < csv.header.size(); ++c) {
        const std::string& key = csv.header[c];
        const bool val = key.rfind("val_", 0) == 0;
        const auto& run = val ? validation : train;
        const std::string tag = "epoch_" + (val ? key.substr(4) : key);
        INFO("column " << key << " -> tag " << tag);
        REQUIRE(run.count(tag) == 1);
        const auto& points = run.at(tag);
        REQUIRE(points.size() == csv.rows.size());
        for (std::size_t r = 0; r < csv.rows.size(); ++r) {
            const double v = std::stod(csv.rows[r][c]);
            CHECK(points[r].first == static_cast<std::int64_t>(r));
            // simple_value is a float32: the CSV's double, converted by the standard conversion.
            CHECK(points[r].second == static_cast<float>(v));
            ++compared;
        }
    }
    // Nothing in the event files that the CSV lacks.
    CHECK(train.size() + validation.size() == csv.header.size() - 1);
    return compared;
}

}  // namespace

TEST_CASE("example_breast_cancer: history.csv is identical for the same seed and has the expected columns") {
    const fs::path a = fresh_dir("a"), b = fresh_dir("b");
    REQUIRE(run_example(a / "run") == 0);
    REQUIRE(run_example(b / "run") == 0);
    const std::string ha = tfevents::read_bytes(a / "run" / "history.csv");
    REQUIRE_FALSE(ha.empty());
    CHECK(ha == tfevents::read_bytes(b / "run" / "history.csv"));
    const Csv csv = read_csv(a / "run" / "history.csv");
    // learning_rate: the model's (it exposes one), logged by MetricLogger; no callback changes it.
    CHECK(csv.header == std::vector<std::string>{"epoch", "accuracy", "auc", "learning_rate", "loss", "val_accuracy",
                                                 "val_auc", "val_loss"});
    REQUIRE_FALSE(csv.rows.empty());
    for (std::size_t i = 0; i < csv.rows.size(); ++i) {
        CHECK(csv.rows[i][0] == std::to_string(i));
        CHECK(csv.rows[i][3] == "0.001");  // the example's MlpOptions::learning_rate (Adam, constant)
    }

    const std::string py = TRAINCB_PYTHON3;
    if (py.empty() || run("\"" + py + "\" -c \"import pandas\" > /dev/null 2>&1") != 0)
        TRAINCB_SKIP("pandas is not installed: the pandas check was skipped (the columns were checked above)");
    const std::string script =
        "import pandas, sys; df = pandas.read_csv(sys.argv[1]); "
        "assert list(df.columns) == "
        "['epoch','accuracy','auc','learning_rate','loss','val_accuracy','val_auc','val_loss'], list(df.columns); "
        "assert all(str(t) in ('int64','float64') for t in df.dtypes), df.dtypes; "
        "assert list(df['epoch']) == list(range(len(df)))";
    CHECK(run("\"" + py + "\" -c \"" + script + "\" \"" + (a / "run" / "history.csv").string() + "\"") == 0);
}

TEST_CASE("example_breast_cancer: the TensorBoard event files decode to exactly the values of history.csv") {
    const fs::path d = fresh_dir("tb");
    REQUIRE(run_example(d / "run") == 0);
    const Csv csv = read_csv(d / "run" / "history.csv");
    // 7 columns: accuracy, auc, learning_rate, loss and the three val_ ones.
    CHECK(compare_tensorboard_with_csv(d / "run") == 7 * csv.rows.size());
    const auto train = tfevents::load_run(d / "run" / "tensorboard" / "train");
    REQUIRE(train.count("epoch_learning_rate") == 1);
    for (const auto& [step, value] : train.at("epoch_learning_rate")) CHECK(value == 0.001F);  // MlpOptions
}

TEST_CASE("example_breast_cancer: writes report.html with the curves and the checkpoint marks") {
    const fs::path d = fresh_dir("report");
    REQUIRE(run_example(d / "run") == 0);
    const std::string html = tfevents::read_bytes(d / "run" / "report.html");
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(html.find("<svg") != std::string::npos);
    CHECK(html.find("val_loss") != std::string::npos);
    CHECK(html.find("best.safetensors") != std::string::npos);  // a checkpoint save is marked
    CHECK(html.find("<script") == std::string::npos);           // self-contained, no JavaScript
}

TEST_CASE("example_breast_cancer: a run continued with --resume writes the same history.csv and report.html") {
    const fs::path d = fresh_dir("resume");
    REQUIRE(run_example(d / "straight") == 0);
    // 6 epochs, then --resume to the 12 of run_example: from last.safetensors of epoch 6.
    REQUIRE(run(std::string("\"") + TRAINCB_BREAST_CANCER_EXE + "\" --quiet --epochs 6 --patience 4 --out \"" +
                (d / "resumed").string() + "\" > \"" + (d / "first.log").string() + "\" 2>&1") == 0);
    REQUIRE(read_csv(d / "resumed" / "history.csv").rows.size() == 6);
    REQUIRE(run_example(d / "resumed", "--resume") == 0);
    const std::string straight = tfevents::read_bytes(d / "straight" / "report.html");
    const std::string resumed = tfevents::read_bytes(d / "resumed" / "report.html");
    REQUIRE_FALSE(straight.empty());
    CHECK(resumed == straight);  // the epochs and checkpoint marks before the resume are restored
    CHECK(tfevents::read_bytes(d / "resumed" / "history.csv") == tfevents::read_bytes(d / "straight" / "history.csv"));
    // Two event files per run now (a resumed run starts new ones); read as TensorBoard does, they
    // still hold exactly the CSV's values.
    CHECK(tfevents::event_files(d / "resumed" / "tensorboard" / "train").size() == 2);
    CHECK(compare_tensorboard_with_csv(d / "resumed") > 0);
}

namespace {

// Flips one byte in the middle of a file, as a user (or a disk) would.
void flip_middle_byte(const fs::path& p) {
    std::string b = tfevents::read_bytes(p);
    REQUIRE(b.size() > 2);
    b[b.size() / 2] = static_cast<char>(b[b.size() / 2] ^ 0x01);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << b;
}

// Every regular file under `dir`, with its bytes and modification time.
std::map<std::string, std::pair<std::string, fs::file_time_type>> snapshot(const fs::path& dir) {
    std::map<std::string, std::pair<std::string, fs::file_time_type>> s;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file())
            s[fs::relative(e.path(), dir).string()] = {tfevents::read_bytes(e.path()), fs::last_write_time(e.path())};
    return s;
}

}  // namespace

TEST_CASE("example_breast_cancer: --resume falls back from a corrupted last.safetensors and ends bit-identical") {
    const fs::path d = fresh_dir("fallback");
    const fs::path run_dir = d / "run";
    REQUIRE(run_example(run_dir) == 0);
    // The uninterrupted run's files (the checkpoints record their paths: the resumed run uses the same directory).
    std::map<std::string, std::string> straight;
    for (const char* f : {"history.csv", "report.html", "checkpoints/last.safetensors",
                          "checkpoints/last.prev.safetensors", "checkpoints/best.safetensors"})
        straight[f] = tfevents::read_bytes(run_dir / f);
    flip_middle_byte(run_dir / "checkpoints/last.safetensors");
    REQUIRE(run_example(run_dir, "--resume") == 0);
    const std::string log = tfevents::read_bytes(d / "run.log");
    INFO(log);
    CHECK(log.find("skipping 1 invalid checkpoint file: '" + (run_dir / "checkpoints/last.safetensors").string() +
                   "' (checksum mismatch") != std::string::npos);
    CHECK(log.find("resuming from '" + (run_dir / "checkpoints/last.prev.safetensors").string() + "'") !=
          std::string::npos);
    for (const auto& [f, bytes] : straight) {
        INFO(f);
        REQUIRE_FALSE(bytes.empty());
        CHECK(tfevents::read_bytes(run_dir / f) == bytes);
    }
}

TEST_CASE(
    "example_breast_cancer: with every checkpoint corrupted --resume fails writing nothing, --start-over restarts") {
    const fs::path d = fresh_dir("no_valid");
    const fs::path run_dir = d / "run";
    REQUIRE(run_example(run_dir) == 0);
    const std::string history = tfevents::read_bytes(run_dir / "history.csv");
    flip_middle_byte(run_dir / "checkpoints/last.safetensors");
    flip_middle_byte(run_dir / "checkpoints/last.prev.safetensors");
    const auto before = snapshot(run_dir);
    REQUIRE(run_example(run_dir, "--resume") == 1);
    {
        const std::string log = tfevents::read_bytes(d / "run.log");
        INFO(log);
        CHECK(log.find("every checkpoint file is invalid") != std::string::npos);
        // Built with append: g++ 12 -O3 warns falsely on "literal" + std::string (GCC bug 105329).
        auto quoted = [](const fs::path& p) {
            std::string q(1, '\'');
            q.append(p.string()).append("' (checksum mismatch");
            return q;
        };
        CHECK(log.find(quoted(run_dir / "checkpoints/last.safetensors")) != std::string::npos);
        CHECK(log.find(quoted(run_dir / "checkpoints/last.prev.safetensors")) != std::string::npos);
        CHECK(log.find("--resume --start-over") != std::string::npos);
    }
    CHECK(snapshot(run_dir) == before);  // history.csv, checkpoints, tensorboard/, report.html untouched

    REQUIRE(run_example(run_dir, "--resume --start-over") == 0);
    const std::string log = tfevents::read_bytes(d / "run.log");
    INFO(log);
    CHECK(log.find("starting a fresh run, as start_over_if_invalid asks") != std::string::npos);
    CHECK(tfevents::read_bytes(run_dir / "history.csv") == history);  // a whole fresh run, from epoch 1
}

}  // namespace test_example_outputs
