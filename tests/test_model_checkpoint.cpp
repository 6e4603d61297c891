// Tests for traincb/callbacks/model_checkpoint.hpp and its file-name templates
// (detail/path_template.hpp): formatting against Python's str.format, sanitising, save_best_only,
// NaN, initial_value_threshold, save_top_k bookkeeping and deletion, save_last, every_n_epochs,
// save_freq in global steps, the commit ordering, I/O failures, and its own resumable state.
#include "catch.hpp"

#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/trainer.hpp>

#include "checkpoint_test_support.hpp"

namespace test_model_checkpoint {

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::Logs;
using traincb::ModelCheckpoint;
using traincb::ModelCheckpointOptions;
using traincb::detail::PathTemplate;
using traincb::detail::TemplateValue;

namespace {

// Formats `tmpl` with epoch (an int) and the values `x`, `val_loss` (floats).
std::string fmt(const std::string& tmpl, std::int64_t epoch, double x) {
    const PathTemplate t(tmpl, "test", {"epoch", "batch"});
    return t.format(
        [&](const std::string& k) -> std::optional<TemplateValue> {
            if (k == "epoch") return TemplateValue(epoch);
            if (k == "x" || k == "val_loss") return TemplateValue(x);
            return std::nullopt;
        },
        [](const std::string& k) -> TemplateValue { throw std::runtime_error("missing " + k); });
}

const double kNaN = std::nan("");

// One epoch per val_loss value through a hand-driven CallbackList.
void run_epochs(Driver& d, const std::vector<double>& val_losses, int first_epoch = 0) {
    for (std::size_t i = 0; i < val_losses.size(); ++i)
        d.epoch(first_epoch + static_cast<int>(i), Logs{{"loss", 1.0}, {"val_loss", val_losses[i]}});
}

}  // namespace

// Expected strings are what Python 3's format() returns for the same value and spec (checked by
// hand against the Python documentation's format-spec rules).
TEST_CASE("ModelCheckpoint template: Python format specs for epoch and log values") {
    CHECK(fmt("m-{epoch:02d}", 3, 0) == "m-03");
    CHECK(fmt("m-{epoch}", 12, 0) == "m-12");
    CHECK(fmt("{epoch:5}", 7, 0) == "    7");
    CHECK(fmt("{epoch:<5}|", 7, 0) == "7    |");
    CHECK(fmt("{epoch:+d}", 7, 0) == "+7");
    CHECK(fmt("{epoch:.1f}", 3, 0) == "3.0");  // an int with a float type is converted
    CHECK(fmt("{x:.4f}", 0, 0.5) == "0.5000");
    CHECK(fmt("{val_loss:.4f}", 0, 0.123456) == "0.1235");
    CHECK(fmt("{x:.3e}", 0, 12345.678) == "1.235e+04");
    CHECK(fmt("{x:E}", 0, 1.0) == "1.000000E+00");
    CHECK(fmt("{x:g}", 0, 0.0001) == "0.0001");
    CHECK(fmt("{x:g}", 0, 0.00001) == "1e-05");
    CHECK(fmt("{x:.1%}", 0, 0.25) == "25.0%");
    CHECK(fmt("{x:>8.2f}", 0, 3.14159) == "    3.14");
    CHECK(fmt("{x:*<8.2f}", 0, 3.14159) == "3.14****");
    CHECK(fmt("{x:^9.1f}", 0, 2.5) == "   2.5   ");
    CHECK(fmt("{x:+.1f}", 0, 2.0) == "+2.0");
    CHECK(fmt("{x: .1f}", 0, 2.0) == " 2.0");
    CHECK(fmt("{x:08.3f}", 0, -1.5) == "-001.500");
    CHECK(fmt("{x:=+8.1f}", 0, 1.5) == "+    1.5");
    // No type: repr() without a precision; with one, 'g' that keeps a decimal in fixed notation.
    CHECK(fmt("{x}", 0, 0.1) == "0.1");
    CHECK(fmt("{x}", 0, 100.0) == "100.0");
    CHECK(fmt("{x}", 0, 0.00001) == "1e-05");
    CHECK(fmt("{x:.3}", 0, 2.0) == "2.0");
    CHECK(fmt("{x:.3}", 0, 1234.5) == "1.23e+03");
    CHECK(fmt("{x:.2f}", 0, kNaN) == "nan");
    CHECK(fmt("{x:.2f}", 0, std::numeric_limits<double>::infinity()) == "inf");
    CHECK(fmt("{x:.2f}", 0, -std::numeric_limits<double>::infinity()) == "-inf");
    CHECK(fmt("{{literal}}-{epoch}", 1, 0) == "{literal}-1");
}

TEST_CASE("ModelCheckpoint template: syntax errors are InvalidArgument at construction") {
    for (const std::string bad : {"m-{epoch", "m-epoch}", "m-{}", "{x:q}", "{x:,}", "{x:#x}", "{val_loss:d}",
                                  "{epoch:.2}", "{x!r}", "{x:.}", "{x:5.2fz}"}) {
        INFO(bad);
        CHECK_THROWS_AS(PathTemplate(bad, "test", {"epoch", "batch"}), traincb::InvalidArgument);
        CHECK_THROWS_AS(ModelCheckpoint({.filepath = bad + ".safetensors"}), traincb::InvalidArgument);
    }
    CHECK_THROWS_WITH(ModelCheckpoint({.filepath = "{val_loss:d}.safetensors"}),
                      Catch::Contains("only epoch, batch are integers"));
}

TEST_CASE("ModelCheckpoint template: values are sanitised so they never leave the target directory") {
    using traincb::detail::sanitize_file_name_part;
    CHECK(sanitize_file_name_part("../../etc/passwd") == "______etc_passwd");
    CHECK(sanitize_file_name_part("a\\b") == "a_b");
    CHECK(sanitize_file_name_part(std::string("x\ny\0z", 5)) == "x_y_z");
    CHECK(sanitize_file_name_part("\x7f") == "_");
    CHECK(sanitize_file_name_part(".") == "_");
    CHECK(sanitize_file_name_part("0.5") == "0.5");
    CHECK(sanitize_file_name_part("1...2") == "1___2");
    // A fill character can put '/' or '..' into a value: the file still lands in the directory.
    CHECK(fmt("{x:/>6.1f}", 0, 1.5) == "___1.5");
    CHECK(fmt("{x:.>6.1f}", 0, 1.5) == "___1.5");

    TempDir dir("mc_sanitize");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{val_loss:/>8.2f}.safetensors"});
    d.list.add(mc);
    d.begin();
    run_epochs(d, {0.5});
    CHECK(names_in(dir.path) == std::set<std::string>{"m-____0.50.safetensors"});
}

TEST_CASE("ModelCheckpoint: invalid options are rejected at construction, naming the value") {
    auto throws = [](ModelCheckpointOptions o, const std::string& text) {
        INFO(text);
        CHECK_THROWS_WITH(ModelCheckpoint(std::move(o)), Catch::Contains(text));
    };
    throws({.filepath = ""}, "filepath is empty");
    throws({.filepath = "model.ckpt"}, "must end in \".safetensors\"");
    throws({.filepath = "m.safetensors", .save_freq = -1}, "save_freq must be 0");
    throws({.filepath = "m.safetensors", .every_n_epochs = 0}, "every_n_epochs must be >= 1");
    throws({.filepath = "m.safetensors", .save_top_k = -2}, "save_top_k must be -1");
    throws({.filepath = "m.safetensors", .initial_value_threshold = kNaN}, "initial_value_threshold is NaN");
    throws({.filepath = "m-{batch}.safetensors"}, "uses {batch}");
    throws({.filepath = "m.safetensors", .monitor = "", .save_best_only = true}, "monitor is empty");
    throws({.filepath = "m.safetensors", .monitor = "val_loss", .save_best_only = true, .save_freq = 5},
           "is a validation key, but save_freq > 0");
    throws({.filepath = "{epoch}/m.safetensors", .save_last = true}, "must not contain {fields}");
    throws({.filepath = "d/last.safetensors", .save_last = true}, "is the file save_last writes");
    CHECK_NOTHROW(ModelCheckpoint({.filepath = "d/m-{epoch}.safetensors", .save_last = true}));
}

TEST_CASE("ModelCheckpoint: save_best_only saves improvements only, NaN is never best") {
    TempDir dir("mc_best");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{epoch:02d}.safetensors", .save_best_only = true});
    d.list.add(mc);
    d.begin();
    // Improvements (strict, min mode): 1.0 (first), 0.8, 0.7, 0.6; 0.9 and the plateau 0.7 do not.
    run_epochs(d, {1.0, 0.8, 0.9, 0.7, kNaN, 0.7, 0.6});
    CHECK(names_in(dir.path) ==
          std::set<std::string>{"m-01.safetensors", "m-02.safetensors", "m-04.safetensors", "m-07.safetensors"});
    CHECK(mc.best_model_path() == dir / "m-07.safetensors");
    CHECK(mc.best_score() == 0.6);
    const io::Checkpoint c = io::load_checkpoint(mc.best_model_path());
    CHECK(c.kind == io::CheckpointKind::Full);
    CHECK(c.position.epoch == 6);
    CHECK(same_state(c.model, state_of(net)));
}

TEST_CASE("ModelCheckpoint: a first NaN is not saved and does not freeze best") {
    TempDir dir("mc_nan");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{epoch}.safetensors", .save_best_only = true});
    d.list.add(mc);
    d.begin();
    run_epochs(d, {kNaN, 0.9});
    CHECK(names_in(dir.path) == std::set<std::string>{"m-2.safetensors"});
    CHECK(mc.best_score() == 0.9);
}

TEST_CASE("ModelCheckpoint: initial_value_threshold must be beaten first") {
    TempDir dir("mc_threshold");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc(
        {.filepath = dir / "m-{epoch}.safetensors", .save_best_only = true, .initial_value_threshold = 0.75});
    d.list.add(mc);
    d.begin();
    run_epochs(d, {1.0, 0.8, 0.75, 0.7, 0.72, 0.6});
    CHECK(names_in(dir.path) == std::set<std::string>{"m-4.safetensors", "m-6.safetensors"});

    TempDir dir2("mc_threshold_never");  // Keras cases 13-15: a threshold never beaten saves nothing
    Net net2(4, 3, 1);
    Driver d2(net2);
    ModelCheckpoint never(
        {.filepath = dir2 / "m-{epoch}.safetensors", .save_best_only = true, .initial_value_threshold = 0.1});
    d2.list.add(never);
    d2.begin();
    run_epochs(d2, {1.0, 0.5, 0.2});
    CHECK(names_in(dir2.path).empty());
    CHECK(never.best_model_path().empty());
    CHECK(never.best_score() == 0.1);
}

TEST_CASE("ModelCheckpoint: save_top_k keeps the k best files and deletes the ones that drop out") {
    TempDir dir("mc_topk");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{epoch}.safetensors", .save_top_k = 2});
    d.list.add(mc);
    d.begin();
    run_epochs(d, {0.5, 0.4});
    CHECK(names_in(dir.path) == std::set<std::string>{"m-1.safetensors", "m-2.safetensors"});
    run_epochs(d, {0.6}, 2);  // worse than both kept: not saved
    CHECK(names_in(dir.path) == std::set<std::string>{"m-1.safetensors", "m-2.safetensors"});
    run_epochs(d, {0.3}, 3);  // replaces the worst (0.5, epoch 1)
    CHECK(names_in(dir.path) == std::set<std::string>{"m-2.safetensors", "m-4.safetensors"});
    run_epochs(d, {0.4, kNaN, 0.35}, 4);  // a tie with the worst is not better; NaN never enters
    CHECK(names_in(dir.path) == std::set<std::string>{"m-4.safetensors", "m-7.safetensors"});
    REQUIRE(mc.kept().size() == 2);
    CHECK(mc.kept()[0] == traincb::KeptCheckpoint{dir / "m-4.safetensors", 0.3, 3, 4});
    CHECK(mc.kept()[1] == traincb::KeptCheckpoint{dir / "m-7.safetensors", 0.35, 6, 7});
    CHECK(mc.best_model_path() == dir / "m-4.safetensors");
    CHECK(mc.best_score() == 0.3);
}

TEST_CASE("ModelCheckpoint: save_top_k in max mode, and save_top_k 0 with save_last writes only last") {
    TempDir dir("mc_topk_max");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc(
        {.filepath = dir / "m-{epoch}.safetensors", .monitor = "val_acc", .mode = traincb::Mode::Max, .save_top_k = 1});
    ModelCheckpoint none({.filepath = dir / "sub/n-{epoch}.safetensors", .save_top_k = 0, .save_last = true});
    traincb::TrainParams p = d.list.context().params();
    p.log_keys.push_back("val_acc");
    d.list.set_params(p);
    d.list.add(mc);
    d.list.add(none);
    d.begin();
    for (int e = 0; e < 3; ++e) d.epoch(e, Logs{{"val_acc", e == 1 ? 0.9 : 0.5 + 0.1 * e}, {"val_loss", 1.0}});
    CHECK(names_in(dir.path) == std::set<std::string>{"m-2.safetensors", "sub"});
    // last.prev.safetensors: the version last.safetensors replaced (the predecessor a resume falls back to).
    CHECK(names_in(dir / "sub") == std::set<std::string>{"last.prev.safetensors", "last.safetensors"});
    CHECK(io::load_checkpoint(dir / "sub/last.safetensors").position.epoch == 2);
    CHECK(io::load_checkpoint(dir / "sub/last.prev.safetensors").position.epoch == 1);
}

TEST_CASE("ModelCheckpoint: the file a run resumed from is never deleted by save_top_k") {
    TempDir dir("mc_topk_resumed");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{epoch}.safetensors", .save_top_k = 1});
    d.list.add(mc);
    traincb::TrainParams p = d.list.context().params();
    p.resumed = true;
    p.resumed_from = dir / "m-1.safetensors";
    d.list.set_params(p);
    d.begin();
    run_epochs(d, {0.5, 0.4, 0.3});
    // m-1 dropped out of the top 1 but is the resume source; m-2 dropped out and was deleted.
    CHECK(names_in(dir.path) == std::set<std::string>{"m-1.safetensors", "m-3.safetensors"});
    REQUIRE(mc.kept().size() == 1);
    CHECK(mc.kept()[0].path == dir / "m-3.safetensors");
}

TEST_CASE("ModelCheckpoint: save_last writes a full last.safetensors every epoch, weights files hold the model only") {
    TempDir dir("mc_last");
    Net net(4, 3, 1);
    Driver d(net);
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 10});
    ModelCheckpoint mc(
        {.filepath = dir / "best.safetensors", .save_best_only = true, .save_weights_only = true, .save_last = true});
    d.list.add(mc);
    d.list.add(es);
    d.begin();
    run_epochs(d, {0.5, 0.6});
    // The best weights keep no previous version; last.safetensors does.
    CHECK(names_in(dir.path) == std::set<std::string>{"best.safetensors", "last.prev.safetensors", "last.safetensors"});
    const io::Checkpoint best = io::load_checkpoint(dir / "best.safetensors");
    CHECK(best.kind == io::CheckpointKind::Weights);
    CHECK(best.position.epoch == 0);
    CHECK(best.callbacks.empty());
    const io::Checkpoint last = io::load_checkpoint(dir / "last.safetensors");
    CHECK(last.kind == io::CheckpointKind::Full);
    CHECK(last.position.epoch == 1);
    CHECK(same_state(last.model, state_of(net)));
    CHECK(last.history.size() == 2);
    CHECK(mc.last_model_path() == dir / "last.safetensors");
}

TEST_CASE("ModelCheckpoint: every_n_epochs saves after epochs 2, 4, ... (1-based)") {
    TempDir dir("mc_every");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{epoch}.safetensors", .every_n_epochs = 2});
    d.list.add(mc);
    d.begin();
    run_epochs(d, {1, 1, 1, 1, 1});
    CHECK(names_in(dir.path) == std::set<std::string>{"m-2.safetensors", "m-4.safetensors"});
}

TEST_CASE("ModelCheckpoint: save_freq counts global steps across epochs, {batch} is 1-based") {
    TempDir dir("mc_freq");
    Net net(4, 3, 1);
    Eigen::MatrixXd x, y;
    make_data(32, x, y);  // 4 batches of 8 per epoch
    ModelCheckpoint mc({.filepath = dir / "s-{epoch}-{batch}.safetensors", .save_freq = 3});
    traincb::Trainer trainer(net);
    trainer.fit(x, y, {.epochs = 3, .batch_size = 8, .seed = 5}, mc);
    // Global steps 3, 6, 9, 12 are (epoch 1, batch 3), (2, 2), (3, 1), (3, 4), 1-based.
    CHECK(names_in(dir.path) ==
          std::set<std::string>{"s-1-3.safetensors", "s-2-2.safetensors", "s-3-1.safetensors", "s-3-4.safetensors"});
    const io::Checkpoint c = io::load_checkpoint(dir / "s-2-2.safetensors");
    CHECK(c.position == io::CheckpointPosition{1, false, 2, 6});
    CHECK(c.loss_count == 16);  // two batches of 8 samples
}

TEST_CASE("ModelCheckpoint: a missing monitor is an error under strict, else a warning and a save (Keras >= 3.10)") {
    TempDir dir("mc_missing");
    Net net(4, 3, 1);
    {
        Driver d(net);
        ModelCheckpoint mc({.filepath = dir / "a.safetensors", .monitor = "val_los", .save_best_only = true});
        d.list.add(mc);
        CHECK_THROWS_WITH(d.begin(), Catch::Contains("did you mean 'val_loss'?"));
    }
    {
        Driver d(net);  // without the pre-run check (no known log keys): the error comes at the epoch end
        d.list.set_params({});
        ModelCheckpoint mc({.filepath = dir / "a.safetensors",
                            .monitor = "val_los",
                            .mode = traincb::Mode::Min,
                            .save_best_only = true});
        d.list.add(mc);
        d.begin();
        CHECK_THROWS_WITH(d.epoch(0, Logs{{"loss", 1.0}, {"val_loss", 0.5}}),
                          Catch::Contains("did you mean 'val_loss'?"));
    }
    {
        Warnings w;
        Driver d(net);
        ModelCheckpoint mc({.filepath = dir / "b-{epoch}.safetensors",
                            .monitor = "val_los",
                            .mode = traincb::Mode::Min,
                            .save_best_only = true,
                            .strict = false});
        d.list.add(mc);
        d.begin();
        run_epochs(d, {0.5, 0.4});
        CHECK(names_in(dir.path) == std::set<std::string>{"b-1.safetensors", "b-2.safetensors"});
        CHECK(w.messages.size() == 1);  // once per run
        CHECK(w.any_contains("saving anyway"));
    }
}

TEST_CASE("ModelCheckpoint: an unknown template key fails at the first save, listing the available keys") {
    TempDir dir("mc_key");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{val_acc:.2f}.safetensors"});
    d.list.add(mc);
    d.begin();
    try {
        run_epochs(d, {0.5});
        FAIL("no exception");
    } catch (const traincb::InvalidArgument& e) {
        const std::string what = e.what();
        CHECK(what.find("uses {val_acc}") != std::string::npos);
        CHECK(what.find("available keys: epoch, loss, val_loss") != std::string::npos);
    }
    CHECK(names_in(dir.path).empty());

    // A val_ key in an epoch without validation: that epoch is skipped, not an error.
    TempDir dir2("mc_key_val");
    Driver d2(net);
    ModelCheckpoint mc2({.filepath = dir2 / "m-{val_loss:.2f}.safetensors"});
    d2.list.add(mc2);
    d2.begin();
    d2.epoch(0, Logs{{"loss", 1.0}});
    d2.epoch(1, Logs{{"loss", 1.0}, {"val_loss", 0.25}});
    CHECK(names_in(dir2.path) == std::set<std::string>{"m-0.25.safetensors"});
}

TEST_CASE("ModelCheckpoint: Auto mode that cannot be resolved fails at train begin when the monitor is compared") {
    Net net(4, 3, 1);
    Driver d(net);
    traincb::TrainParams p = d.list.context().params();
    p.log_keys.push_back("val_custom");
    d.list.set_params(p);
    ModelCheckpoint mc({.filepath = "unused.safetensors", .monitor = "val_custom", .save_best_only = true});
    d.list.add(mc);
    CHECK_THROWS_WITH(d.begin(), Catch::Contains("cannot infer whether monitor 'val_custom'"));
}

TEST_CASE(
    "ModelCheckpoint: a full checkpoint of epoch E holds every callback's state after epoch E, whatever the order") {
    TempDir dir("mc_order");
    Net net(4, 3, 1);
    Driver d(net);
    // The checkpoint comes FIRST: EarlyStopping's on_epoch_end runs after it.
    ModelCheckpoint a({.filepath = dir / "a-{epoch}.safetensors"});
    ModelCheckpoint b({.filepath = dir / "b-{epoch}.safetensors", .save_top_k = 1});
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 10});
    d.list.add(a);
    d.list.add(b);
    d.list.add(es);
    d.begin();
    run_epochs(d, {0.5, 0.7, 0.4});
    const io::Checkpoint c = io::load_checkpoint(dir / "a-3.safetensors");
    traincb::CallbackState es_now, b_now;
    es.save_state(es_now);
    b.save_state(b_now);
    CHECK(c.callbacks.at("EarlyStopping:val_loss").json == es_now.json);
    CHECK(c.callbacks.at("EarlyStopping:val_loss").json.at("best") == "0.4");  // epoch 3's value
    // b decided (and recorded b-3) in on_epoch_end, before a wrote its file.
    CHECK(c.callbacks.at(b.state_key()).json == b_now.json);
    CHECK(c.callbacks.at(b.state_key()).json.at("kept").at(0).at("path") == (dir / "b-3.safetensors").string());
    CHECK(c.history.size() == 3);  // and the History includes epoch 3
}

TEST_CASE("ModelCheckpoint: an I/O failure raises IoError, leaves earlier files intact and rolls back best and kept") {
    TempDir dir("mc_iofail");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "best.safetensors", .save_best_only = true});
    d.list.add(mc);
    d.begin();
    run_epochs(d, {0.5});
    const std::string before = read_bytes(dir / "best.safetensors");
    {
        InjectFault fault(Op::Write, 0, ENOSPC);
        try {
            run_epochs(d, {0.4}, 1);
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            CHECK(std::string(e.what()).find("traincb: ModelCheckpoint:") == 0);
            CHECK(std::string(e.what()).find((dir / "best.safetensors").string()) != std::string::npos);
            CHECK(std::string(e.what()).find("No space left on device") != std::string::npos);
        }
    }
    CHECK(read_bytes(dir / "best.safetensors") == before);
    CHECK(io::load_checkpoint(dir / "best.safetensors").position.epoch == 0);
    CHECK(mc.best_score() == 0.5);
    CHECK(mc.kept().size() == 1);
    CHECK(names_in(dir.path) == std::set<std::string>{"best.safetensors"});

    // A target that is a directory.
    TempDir dir2("mc_isdir");
    fs::create_directories(dir2 / "m-1.safetensors");
    Driver d2(net);
    ModelCheckpoint mc2({.filepath = dir2 / "m-{epoch}.safetensors"});
    d2.list.add(mc2);
    d2.begin();
    CHECK_THROWS_WITH(run_epochs(d2, {0.5}), Catch::Contains("Is a directory"));
    CHECK(mc2.kept().empty());

    // A missing parent directory is created.
    TempDir dir3("mc_mkdir");
    Driver d3(net);
    ModelCheckpoint mc3({.filepath = dir3 / "x/y/m.safetensors"});
    d3.list.add(mc3);
    d3.begin();
    run_epochs(d3, {0.5});
    CHECK(fs::exists(dir3 / "x/y/m.safetensors"));
}

TEST_CASE("ModelCheckpoint: its state round-trips, a changed option is named in a warning") {
    TempDir dir("mc_state");
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint mc({.filepath = dir / "m-{epoch}.safetensors", .save_top_k = 2});
    d.list.add(mc);
    d.begin();
    run_epochs(d, {0.5, 0.3, 0.4});
    traincb::CallbackState s;
    mc.save_state(s);

    ModelCheckpoint again({.filepath = dir / "m-{epoch}.safetensors", .save_top_k = 2});
    again.load_state(s, d.list.context());
    CHECK(again.kept() == mc.kept());
    CHECK(again.best_score() == mc.best_score());
    CHECK(again.best_model_path() == mc.best_model_path());

    Warnings w;
    ModelCheckpoint changed({.filepath = dir / "m-{epoch}.safetensors", .save_top_k = 3, .id = "x"});
    changed.load_state(s, d.list.context());
    CHECK(w.any_contains("option 'save_top_k' changed since the checkpoint (was 2, now 3)"));
    CHECK(changed.kept() == mc.kept());

    traincb::CallbackState v2 = s;
    v2.version = 2;
    CHECK_THROWS_AS(again.load_state(v2, d.list.context()), traincb::FormatError);

    // A malformed field is a FormatError and changes nothing (all or nothing).
    for (const char* field : {"best_path", "kept", "best"}) {
        CAPTURE(field);
        traincb::CallbackState bad = s;
        bad.json[field] = nlohmann::json::array({1, 2});
        ModelCheckpoint fresh({.filepath = dir / "m-{epoch}.safetensors", .save_top_k = 2, .id = "x"});
        CHECK_THROWS_AS(fresh.load_state(bad, d.list.context()), traincb::FormatError);
        CHECK(fresh.kept().empty());
        CHECK_FALSE(fresh.best_score().has_value());
        CHECK(fresh.best_model_path().empty());
    }
    CHECK(mc.state_key() == "ModelCheckpoint:m-{epoch}.safetensors");  // the directory is left out
    CHECK(ModelCheckpoint({.filepath = "other/dir/m-{epoch}.safetensors"}).state_key() == mc.state_key());
}

TEST_CASE("ModelCheckpoint: two checkpoints with the same file name template need distinct ids") {
    Net net(4, 3, 1);
    Driver d(net);
    ModelCheckpoint a({.filepath = "a/x.safetensors"});
    ModelCheckpoint b({.filepath = "b/x.safetensors"});
    d.list.add(a);
    d.list.add(b);
    CHECK_THROWS_WITH(d.begin(), Catch::Contains("two callbacks have the state key"));
}

TEST_CASE("ModelCheckpoint: save_best_only with batch saves compares the running training loss from the first batch") {
    // Keras resolves the direction only at the first epoch end and fails (TypeError) on a second
    // batch-level comparison before it; here the direction is known before the first batch.
    TempDir dir("mc_batch_best");
    Net net(4, 3, 1);
    Eigen::MatrixXd x, y;
    make_data(32, x, y);  // 4 batches of 8 per epoch
    ModelCheckpoint mc(
        {.filepath = dir / "s-{epoch}-{batch}.safetensors", .monitor = "loss", .save_best_only = true, .save_freq = 1});
    traincb::Trainer trainer(net);
    trainer.fit(x, y, {.epochs = 3, .batch_size = 8, .seed = 5}, mc);
    REQUIRE(mc.kept().size() >= 2);
    // Each save improved strictly on the previous one, and each file exists with its position.
    for (std::size_t i = 0; i < mc.kept().size(); ++i) {
        const traincb::KeptCheckpoint& k = mc.kept()[i];
        INFO(k.path.string());
        REQUIRE(k.score.has_value());
        if (i > 0) CHECK(*k.score < *mc.kept()[i - 1].score);
        CHECK(io::load_checkpoint(k.path).position.global_step == k.global_step);
    }
    CHECK(mc.best_score() == mc.kept().back().score);
    CHECK(names_in(dir.path).size() == mc.kept().size());
}

}  // namespace test_model_checkpoint
