// Rank-0 I/O in data-parallel training, with threads as ranks (tests/thread_communicator.hpp):
// every rank runs its own ModelCheckpoint (best-only with top-k and save_last; an async
// weights-only top-k one), MetricLogger (CSV, JSON lines, TensorBoard and memory sinks) and
// LearningCurveReport through a hand-driven CallbackList with identical logs, all pointed at one
// directory. The directory must then hold exactly what a single-process run of the same loop
// writes (the reference: the same code with the default single-process communicator), every
// rank's callback state must be byte-identical to rank 0's, ranks > 0 whose directory is missing
// or read-only must not fail, and a write failure on rank 0 must throw there (IoError), and, through
// CallbackList's vote at the end of the hook, on every other rank (RemoteRankError).
#include "catch.hpp"

#include <unistd.h>

#include <cstddef>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <traincb/callback.hpp>
#include <traincb/callbacks/learning_curve_report.hpp>
#include <traincb/callbacks/metric_logger.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/errors.hpp>
#include <traincb/sinks/csv.hpp>
#include <traincb/sinks/json_lines.hpp>
#include <traincb/sinks/memory.hpp>
#include <traincb/sinks/tensorboard.hpp>
#include <vector>

#include "checkpoint_test_support.hpp"
#include "thread_communicator.hpp"

namespace test_distributed_io {

namespace {

namespace fs = std::filesystem;
using traincb::Logs;
using traincb_test::read_bytes;
using traincb_test::TempDir;
using traincb_test::ThreadCommunicator;
using traincb_test::ThreadGroup;
using traincb_test::write_bytes;

constexpr int kRanks = 3;

// val_loss per epoch. By hand: best-only saves at epochs 1, 2, 4 and 6 (1-based: each beats every
// earlier value), and top-2 keeps the last two of them, best-04 and best-06. The top-2 weights-only
// checkpoint saves every epoch (each value beats the worse of the two kept) and keeps the two
// lowest values, 0.6 (epoch 4) and 0.5 (epoch 6).
const std::vector<double> kValLoss = {0.9, 0.7, 0.8, 0.6, 0.65, 0.5};

// Every file and directory under `root`, relative, sorted.
std::set<std::string> tree(const fs::path& root) {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root))
        out.insert(fs::relative(e.path(), root).generic_string() + (e.is_directory() ? "/" : ""));
    return out;
}

// The only file in `dir` (empty when there is not exactly one).
fs::path only_file(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    return files.size() == 1 ? files.front() : fs::path();
}

// A callback's save_state as bytes: the version, the JSON document and every tensor.
std::string state_bytes(const traincb::Callback& cb) {
    traincb::CallbackState s;
    cb.save_state(s);
    std::string out = std::to_string(s.version) + "\n" + s.json.dump() + "\n";
    for (const auto& t : s.tensors.tensors()) {
        out += t.name + " " + std::to_string(static_cast<int>(t.dtype)) + " " + std::to_string(t.shape.size()) + "\n";
        for (const auto d : t.shape) out += std::to_string(d) + " ";
        out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
        out += "\n";
    }
    return out;
}

// What one rank saw and kept.
struct RankResult {
    std::string checkpoint_state, async_state, logger_state, report_state;
    std::vector<std::string> kept;  // file names of the best-only checkpoint's kept list
    std::optional<double> best;
    std::vector<std::pair<int, Logs>> memory_rows;
    int report_writes = -1;
    std::exception_ptr error;
};

// One rank's run: its own callbacks writing under `dir`, driven by hand with identical logs.
// `comm` is null for the single-process reference run.
RankResult run_rank(const fs::path& dir, ThreadCommunicator* comm) {
    RankResult r;
    try {
        ckpt_test::Net net(4, 3, 1);
        traincb::ModelCheckpoint best({.filepath = dir / "best-{epoch:02d}.safetensors",
                                       .monitor = "val_loss",
                                       .save_best_only = true,
                                       .save_top_k = 2,
                                       .save_last = true});
        traincb::ModelCheckpoint weights({.filepath = dir / "weights" / "w-{epoch:02d}.safetensors",
                                          .monitor = "val_loss",
                                          .save_weights_only = true,
                                          .save_top_k = 2,
                                          .async_save = true});
        auto memory = std::make_shared<traincb::sinks::MemorySink>();
        traincb::MetricLogger logger(
            {std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = dir / "log.csv"}),
             std::make_shared<traincb::sinks::JsonLinesSink>(
                 traincb::sinks::JsonLinesOptions{.path = dir / "log.jsonl"}),
             std::make_shared<traincb::sinks::TensorBoardSink>(
                 traincb::sinks::TensorBoardOptions{.log_dir = dir / "tb", .clock = [] { return 1700000000.0; }}),
             memory});
        traincb::LearningCurveReport report({.path = dir / "report.html", .monitor = "val_loss"});
        traincb::CallbackList list{best, weights, logger, report};
        if (comm != nullptr) list.set_communicator(*comm);
        list.set_model(net);
        list.set_params({.epochs = static_cast<int>(kValLoss.size()), .steps_per_epoch = 1, .has_validation = true});
        list.on_train_begin();
        for (std::size_t e = 0; e < kValLoss.size(); ++e) {
            const int epoch = static_cast<int>(e);
            list.on_epoch_begin(epoch);
            net.lr *= 0.5;  // a model change between saves, the same on every rank
            Logs logs{{"loss", 1.0 + kValLoss[e]}, {"val_loss", kValLoss[e]}};
            list.on_epoch_end(epoch, logs);
        }
        list.on_train_end();
        r.checkpoint_state = state_bytes(best);
        r.async_state = state_bytes(weights);
        r.logger_state = state_bytes(logger);
        r.report_state = state_bytes(report);
        for (const auto& k : best.kept()) r.kept.push_back(k.path.filename().string());
        r.best = best.best_score();
        r.memory_rows = memory->rows();
        r.report_writes = report.writes();
    } catch (...) {
        r.error = std::current_exception();
    }
    return r;
}

std::string what_of(const std::exception_ptr& e) {
    if (!e) return "no exception";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    }
    return "unknown exception";
}

// Runs kRanks ranks, rank r writing under dirs[r].
std::vector<RankResult> run_group(const std::vector<fs::path>& dirs) {
    std::vector<RankResult> results(kRanks);
    ThreadGroup group(kRanks);
    group.run([&](ThreadCommunicator& comm) {
        const auto r = static_cast<std::size_t>(comm.rank());
        results[r] = run_rank(dirs[r], &comm);
    });
    return results;
}

// The files of the reference run (the same for the distributed run's directory).
const std::set<std::string> kExpectedTree = {"best-04.safetensors",
                                             "best-06.safetensors",
                                             "last.prev.safetensors",
                                             "last.safetensors",
                                             "log.csv",
                                             "log.jsonl",
                                             "report.html",
                                             "tb/",
                                             "tb/train/",
                                             "tb/validation/",
                                             "weights/",
                                             "weights/w-04.safetensors",
                                             "weights/w-06.safetensors"};

// The directory tree without the TensorBoard event files (their names hold a process-wide counter).
std::set<std::string> tree_without_events(const fs::path& root) {
    std::set<std::string> out;
    for (const auto& p : tree(root))
        if (!p.starts_with("tb/train/events") && !p.starts_with("tb/validation/events")) out.insert(p);
    return out;
}

// Compares `dir` with the reference directory `ref`: the same files, the same log bytes.
void require_same_output(const fs::path& ref, const fs::path& dir) {
    REQUIRE(tree_without_events(ref) == kExpectedTree);
    REQUIRE(tree_without_events(dir) == kExpectedTree);
    REQUIRE(tree(dir).size() == tree(ref).size());  // one event file per TensorBoard run, as in ref
    for (const char* f : {"log.csv", "log.jsonl", "report.html"}) {
        INFO(f);
        REQUIRE(!read_bytes(ref / f).empty());
        REQUIRE(read_bytes(dir / f) == read_bytes(ref / f));
    }
    for (const char* run : {"tb/train", "tb/validation"}) {
        INFO(run);
        const fs::path a = only_file(ref / run);
        const fs::path b = only_file(dir / run);
        REQUIRE(!a.empty());
        REQUIRE(!b.empty());
        REQUIRE(read_bytes(b) == read_bytes(a));  // the same clock: the same bytes
    }
}

// A directory that a rank > 0 cannot write: read-only, unless the tests run as root (who can
// write it anyway); then a path that does not exist.
fs::path unwritable_dir(const TempDir& tmp) {
    const fs::path ro = tmp / "readonly";
    fs::create_directory(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    if (::access(ro.c_str(), W_OK) != 0) return ro;
    return tmp / "missing-instead-of-readonly" / "run";
}

}  // namespace

TEST_CASE("Rank-0 I/O: np 3 writes exactly the files of a single-process run, and every rank keeps the same state") {
    TempDir tmp("dist_io");
    const fs::path ref = tmp / "ref";
    const fs::path shared = tmp / "shared";
    fs::create_directory(ref);
    fs::create_directory(shared);

    const RankResult single = run_rank(ref, nullptr);
    INFO(what_of(single.error));
    REQUIRE(!single.error);
    const std::vector<RankResult> ranks = run_group({shared, shared, shared});
    for (int r = 0; r < kRanks; ++r) {
        INFO("rank " << r << ": " << what_of(ranks[static_cast<std::size_t>(r)].error));
        REQUIRE(!ranks[static_cast<std::size_t>(r)].error);
    }

    require_same_output(ref, shared);
    // The reference's decisions, from the values by hand (see kValLoss).
    REQUIRE(single.kept == std::vector<std::string>{"best-04.safetensors", "best-06.safetensors"});
    REQUIRE(single.best == 0.5);
    REQUIRE(single.memory_rows.size() == kValLoss.size());

    const RankResult& r0 = ranks[0];
    REQUIRE(r0.kept == single.kept);
    REQUIRE((r0.memory_rows == single.memory_rows));
    REQUIRE(r0.report_writes == single.report_writes);
    REQUIRE(!r0.checkpoint_state.empty());
    REQUIRE(!r0.report_state.empty());
    for (std::size_t r = 1; r < kRanks; ++r) {
        INFO("rank " << r);
        const RankResult& x = ranks[r];
        REQUIRE(x.checkpoint_state == r0.checkpoint_state);
        REQUIRE(x.async_state == r0.async_state);
        REQUIRE(x.logger_state == r0.logger_state);
        REQUIRE(x.report_state == r0.report_state);
        REQUIRE(x.kept == r0.kept);
        REQUIRE(x.best == r0.best);
        REQUIRE((x.memory_rows == r0.memory_rows));  // a MemorySink records on every rank
        REQUIRE(x.report_writes == 0);               // only rank 0 wrote the page
    }
}

TEST_CASE("Rank-0 I/O: ranks > 0 whose directory is missing or read-only run without any error") {
    TempDir tmp("dist_io_dirs");
    const fs::path ref = tmp / "ref";
    const fs::path dir0 = tmp / "rank0";
    fs::create_directory(ref);
    fs::create_directory(dir0);
    const RankResult single = run_rank(ref, nullptr);
    REQUIRE(!single.error);

    const fs::path missing = tmp / "missing" / "run";
    const fs::path unwritable = unwritable_dir(tmp);
    const std::vector<RankResult> ranks = run_group({dir0, missing, unwritable});
    for (int r = 0; r < kRanks; ++r) {
        INFO("rank " << r << ": " << what_of(ranks[static_cast<std::size_t>(r)].error));
        REQUIRE(!ranks[static_cast<std::size_t>(r)].error);
    }
    require_same_output(ref, dir0);
    // Nothing was created for ranks > 0.
    REQUIRE(!fs::exists(tmp / "missing"));
    if (fs::exists(unwritable)) REQUIRE(tree(unwritable).empty());
    // Their state is rank 0's (the paths in it differ by the directory only).
    for (std::size_t r = 1; r < kRanks; ++r) {
        INFO("rank " << r);
        REQUIRE(ranks[r].kept == ranks[0].kept);
        REQUIRE(ranks[r].best == ranks[0].best);
        REQUIRE(ranks[r].report_state == ranks[0].report_state);
        REQUIRE((ranks[r].memory_rows == ranks[0].memory_rows));
    }
    fs::permissions(tmp / "readonly", fs::perms::owner_all);  // for TempDir's cleanup
}

TEST_CASE("Rank-0 I/O: a write failure on rank 0 throws IoError on rank 0, RemoteRankError on the others") {
    TempDir tmp("dist_io_fail");
    const fs::path dir0 = tmp / "rank0";
    const fs::path others = tmp / "others";
    fs::create_directory(dir0);
    fs::create_directory(others);

    // One list per component, so that each one's failure is seen (a list stops at the first), and
    // the hook each rank threw from.
    struct Failure {
        std::exception_ptr error;
        std::string hook;
    };
    struct Outcome {
        Failure checkpoint, async_checkpoint, logger, report;
    };
    std::vector<Outcome> outcomes(kRanks);
    ThreadGroup group(kRanks);
    group.run([&](ThreadCommunicator& comm) {
        const bool primary = comm.rank() == 0;
        const fs::path dir = primary ? dir0 : others;
        ckpt_test::Net net(4, 3, 1);
        traincb::ModelCheckpoint ckpt({.filepath = dir / "ckpt" / "m-{epoch:02d}.safetensors", .save_last = true});
        traincb::ModelCheckpoint async_ckpt(
            {.filepath = dir / "async" / "a-{epoch:02d}.safetensors", .save_weights_only = true, .async_save = true});
        traincb::MetricLogger logger(
            {std::make_shared<traincb::sinks::CsvSink>(traincb::sinks::CsvOptions{.path = dir / "log.csv"})});
        traincb::LearningCurveReport report({.path = dir / "report.html"});
        if (primary) {  // after construction, rank 0's directory becomes a regular file
            fs::remove_all(dir0);
            write_bytes(dir0, "not a directory");
        }
        const auto drive = [&](traincb::Callback& cb) -> Failure {
            std::string hook = "on_train_begin";
            try {
                traincb::CallbackList list{cb};
                list.set_communicator(comm);
                list.set_model(net);
                list.set_params({.epochs = 2, .steps_per_epoch = 1});
                list.on_train_begin();
                for (int e = 0; e < 2; ++e) {
                    hook = "on_epoch_begin " + std::to_string(e);
                    list.on_epoch_begin(e);
                    Logs logs{{"loss", 1.0 - 0.1 * e}};
                    hook = "on_epoch_end " + std::to_string(e);
                    list.on_epoch_end(e, logs);
                }
                hook = "on_train_end";
                list.on_train_end();
            } catch (...) {
                return {std::current_exception(), hook};
            }
            return {nullptr, "none"};
        };
        Outcome& o = outcomes[static_cast<std::size_t>(comm.rank())];
        o.checkpoint = drive(ckpt);
        o.async_checkpoint = drive(async_ckpt);
        o.logger = drive(logger);
        o.report = drive(report);
    });

    // Rank 0: the IoError of its own write; the others: RemoteRankError naming rank 0 and carrying
    // its message, from the same hook (the vote at the end of every hook).
    const auto check = [&](Failure Outcome::*component, const char* what, const char* hook0) {
        const Failure& f0 = outcomes[0].*component;
        INFO(what << ", rank 0 at " << f0.hook << ": " << what_of(f0.error));
        REQUIRE(f0.error);
        REQUIRE(f0.hook == hook0);
        std::string message0;
        try {
            std::rethrow_exception(f0.error);
        } catch (const traincb::IoError& x) {
            REQUIRE(x.path().string().starts_with(dir0.string()));
            REQUIRE(x.code() == std::error_code(ENOTDIR, std::generic_category()));
            message0 = x.what();
        } catch (...) {
            FAIL("not an IoError");
        }
        for (std::size_t r = 1; r < kRanks; ++r) {
            const Failure& f = outcomes[r].*component;
            INFO("rank " << r << " at " << f.hook << ": " << what_of(f.error));
            REQUIRE(f.error);
            REQUIRE(f.hook == f0.hook);
            try {
                std::rethrow_exception(f.error);
            } catch (const traincb::RemoteRankError& x) {
                REQUIRE(x.rank() == 0);
                REQUIRE(std::string(x.what()) == "traincb: rank 0 failed: " + message0);
            } catch (...) {
                FAIL("not a RemoteRankError");
            }
        }
    };
    check(&Outcome::checkpoint, "ModelCheckpoint", "on_epoch_end 0");  // commits after on_epoch_end
    // The background save fails after the hook that started it: raised at a later hook.
    const std::string async_hook = outcomes[0].async_checkpoint.hook;
    INFO("async failure at " << async_hook);
    REQUIRE((async_hook == "on_epoch_end 0" || async_hook == "on_epoch_end 1" || async_hook == "on_train_end"));
    check(&Outcome::async_checkpoint, "ModelCheckpoint (async_save)", async_hook.c_str());
    check(&Outcome::logger, "MetricLogger", "on_train_begin");
    check(&Outcome::report, "LearningCurveReport", "on_train_begin");
    REQUIRE(tree(others).empty());  // ranks > 0 wrote nothing
}

}  // namespace test_distributed_io
