// The end-to-end crash test of docs/checkpoints.md: example_breast_cancer is killed with SIGKILL at
// random moments, several times per run and including in the middle of checkpoint writes, and
// restarted with --resume each time until a run completes. Its final last.safetensors,
// last.prev.safetensors, best.safetensors, history.csv and report.html must equal, byte for byte, those of an
// uninterrupted run with the same seed (the report holds no timestamp or duration: everything in it
// is determined by the seed, and LearningCurveReport's checkpointed state restores the epochs and
// marks). After every kill, every .safetensors file in the checkpoint directory must load (atomic
// writes).
//
// Half of the runs are killed at a random moment; the other half the instant a temporary
// checkpoint file of that process appears (a write in progress), after skipping a random number
// of writes so the run still progresses. A 4 MB dummy tensor in each full checkpoint
// (--checkpoint-ballast-mb) makes each write last long enough to be hit. Set TRAINCB_CRASH_SEED to
// replay a failing sequence (the seed is printed on failure). The second test case does the same
// with --async-save (ModelCheckpoint's background saves) in the killed runs, against the same
// uninterrupted synchronous run.
#include "catch.hpp"
#include "spawn_logged.hpp"
#include "test_support.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <traincb/io/checkpoint.hpp>
#include <vector>

namespace test_crash_resume {

#ifndef TRAINCB_BREAST_CANCER_EXE
#define TRAINCB_BREAST_CANCER_EXE TRAINCB_BINARY_DIR "/examples/example_breast_cancer"
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using traincb_test::read_bytes;

namespace {

const std::vector<std::string> kArgs = {
    "--out", "run", "--quiet", "--seed", "3", "--epochs", "40", "--patience", "10", "--checkpoint-ballast-mb", "4"};

// Starts the example in `dir` with `args`; its stdout and stderr are appended to dir/log.txt.
pid_t spawn(const fs::path& dir, const std::vector<std::string>& args) {
    return traincb_test::spawn_logged(dir, TRAINCB_BREAST_CANCER_EXE, args);
}

// True when process `pid` has a temporary checkpoint file in `dir` (a write in progress).
bool writing(const fs::path& dir, pid_t pid) {
    const std::string mark = ".tmp." + std::to_string(pid) + ".";
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().find(mark) != std::string::npos) return true;
    return false;
}

int run_to_completion(const fs::path& dir, const std::vector<std::string>& args) {
    const pid_t pid = spawn(dir, args);
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return traincb_test::exit_code(status);
}

// The uninterrupted run uses kArgs; the killed ones add `extra` (with "--async-save", the killed
// runs save in the background and must still end with the synchronous run's bytes).
void crash_and_resume(const std::vector<std::string>& extra) {
    const fs::path exe = TRAINCB_BREAST_CANCER_EXE;
    REQUIRE(fs::exists(exe));  // built with the test (tests/crash_resume.cmake)
    const fs::path work = fs::path(TRAINCB_BINARY_DIR) / "crash_resume" /
                          (std::to_string(::getpid()) + (extra.empty() ? "" : "_" + extra.front().substr(2)));
    fs::remove_all(work);
    fs::create_directories(work / "clean");
    fs::create_directories(work / "crashy");

    // The reference: one uninterrupted run. Its duration scales the kill moments below, so that a
    // Release build (which runs the example many times faster) is killed as often as a Debug one.
    const auto clean_started = Clock::now();
    REQUIRE(run_to_completion(work / "clean", kArgs) == 0);
    const auto clean_ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - clean_started).count());

    std::uint64_t seed = std::random_device{}();
    if (const char* s = std::getenv("TRAINCB_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
    INFO("TRAINCB_CRASH_SEED=" << seed << " replays this sequence; logs in " << (work / "crashy/log.txt").string()
                               << "; the uninterrupted run took " << clean_ms << " ms");
    std::mt19937_64 rng(seed);
    std::vector<std::string> resume_args = kArgs;
    resume_args.insert(resume_args.end(), extra.begin(), extra.end());
    resume_args.emplace_back("--resume");
    const fs::path ckpt = work / "crashy/run/checkpoints";

    int kills = 0, kills_in_write = 0, runs = 0;
    const auto started = Clock::now();
    for (;;) {
        REQUIRE(runs < 400);
        REQUIRE(Clock::now() - started < std::chrono::seconds(150));
        ++runs;
        const pid_t pid = spawn(work / "crashy", resume_args);
        REQUIRE(pid > 0);
        const bool target_write = runs % 2 == 0;
        int writes_to_skip = std::uniform_int_distribution<int>(0, 3)(rng);
        const auto deadline = Clock::now() + std::chrono::milliseconds(std::uniform_int_distribution<int>(
                                                 std::max(5, clean_ms / 40), std::max(10, clean_ms / 5))(rng));
        const auto give_up = Clock::now() + std::chrono::seconds(3);  // kill anyway: a run must not outlive its turn
        bool was_writing = false;
        int status = 0;
        bool exited = false;
        for (;;) {
            const pid_t r = ::waitpid(pid, &status, WNOHANG);
            REQUIRE(r >= 0);
            if (r == pid) {
                exited = true;
                break;
            }
            const auto now = Clock::now();
            if (now >= give_up) break;
            if (target_write) {
                const bool w = writing(ckpt, pid);
                if (w && !was_writing) {
                    if (writes_to_skip == 0) break;
                    --writes_to_skip;
                }
                was_writing = w;
            } else if (now >= deadline) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        if (exited) {
            INFO(read_bytes(work / "crashy/log.txt"));
            REQUIRE(WIFEXITED(status));
            REQUIRE(WEXITSTATUS(status) == 0);
            break;
        }
        REQUIRE(::kill(pid, SIGKILL) == 0);
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status)) {  // it finished between the last poll and the kill
            INFO(read_bytes(work / "crashy/log.txt"));
            REQUIRE(WEXITSTATUS(status) == 0);
            break;
        }
        ++kills;
        if (writing(ckpt, pid)) ++kills_in_write;  // its temporary file outlived it: killed mid-write
        // Atomic replacement: whatever the moment of the kill, every checkpoint file is whole.
        std::error_code ec;
        for (fs::directory_iterator it(ckpt, ec), end; !ec && it != end; it.increment(ec)) {
            const fs::path p = it->path();
            if (p.extension() != ".safetensors" || p.filename().string().front() == '.') continue;
            INFO("after kill " << kills << ": " << p.string());
            CHECK_NOTHROW(traincb::io::load_checkpoint(p));
        }
    }
    INFO("runs " << runs << ", kills " << kills << ", of which during a checkpoint write " << kills_in_write);
    CHECK(kills >= 5);
    CHECK(kills_in_write >= 1);

    // last.prev.safetensors too: whichever process wrote it, it holds the epoch before the last.
    for (const char* f : {"run/history.csv", "run/report.html", "run/checkpoints/last.safetensors",
                          "run/checkpoints/last.prev.safetensors", "run/checkpoints/best.safetensors"}) {
        INFO(f);
        CHECK(read_bytes(work / "crashy" / f) == read_bytes(work / "clean" / f));
    }
    // The last run removed the temporary files its killed predecessors left behind.
    bool stale = false;
    for (const auto& e : fs::directory_iterator(ckpt))
        stale = stale || e.path().filename().string().find(".tmp.") != std::string::npos;
    CHECK(!stale);
    WARN("crash/resume" << (extra.empty() ? "" : " " + extra.front()) << ": " << runs << " runs, " << kills
                        << " SIGKILLs, " << kills_in_write << " during a checkpoint write");
    fs::remove_all(work);
}

}  // namespace

TEST_CASE("crash/resume: SIGKILL at random moments and during checkpoint writes, the resumed run ends bit-identical") {
    crash_and_resume({});
}

// A SIGKILL during a background write leaves the previous checkpoint valid (every file loads after
// every kill), resume picks the newest valid one, and the run ends with the bytes of the
// uninterrupted synchronous run.
TEST_CASE("crash/resume: with async_save, SIGKILLs during background writes, the resumed run ends bit-identical") {
    crash_and_resume({"--async-save"});
}

}  // namespace test_crash_resume
