#pragma once
/// @file detail/async_checkpoint.hpp
/// The background writer behind ModelCheckpoint's async_save (docs/checkpoints.md, "Background
/// saves"). The training thread captures a save and hands it over; one background thread encodes,
/// writes (through io/atomic_file.hpp: temporary file, fsync, rename, directory fsync) and deletes
/// the files that dropped out of the top k; the owner collects the outcome on its own thread.
///
/// Ownership moves with the job, so nothing is shared while it runs: submit() copies the model's
/// tensors into a snapshot kept from save to save (a memcpy per tensor, no allocation once its
/// buffers are sized) and takes the rest of the save (an io::Checkpoint without the model, already
/// captured by the owner, so it holds copies of the callbacks' states, the History and the run
/// state). The background thread reads only the job and the snapshot, and the training thread
/// touches neither until the job has ended. At most one job exists at a time: submit() requires
/// the previous one's outcome to have been collected.

#include <atomic>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/detail/os.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/checkpoint.hpp"
#include "traincb/model.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0::detail {

/// One file a background job writes.
struct CheckpointWrite {
    std::filesystem::path path{};                        ///< the target
    io::CheckpointKind kind = io::CheckpointKind::Full;  ///< full or weights
    /// When set, the file is written through it (keeping the version it replaces, as a
    /// synchronous save of that file does); it must outlive the job and see no other use meanwhile.
    io::RotatingCheckpoint* rotating = nullptr;
};

/// A save captured on the training thread: everything the background thread needs, owned.
struct CheckpointJob {
    std::vector<CheckpointWrite> writes{};  ///< in order; the first failure skips the rest
    /// The checkpoint without the model's tensors (io::capture_checkpoint_without_model), Full
    /// when a write is full; a weights write uses its position, seed and data-order options.
    io::Checkpoint state{};
    std::size_t delete_after = 0;  ///< the deletions run once this many writes succeeded (as a synchronous save)
    std::vector<std::filesystem::path> to_delete{};  ///< removed after the first `delete_after` writes
    std::string delete_reason{};                     ///< why they go, for the warning when one cannot
    std::string component = "checkpoint";            ///< starts messages ("ModelCheckpoint")
};

/// How a job ended.
struct CheckpointJobResult {
    std::exception_ptr error{};           ///< the failure that stopped it (nullptr: every write succeeded)
    std::size_t written = 0;              ///< writes that succeeded before it
    std::vector<std::string> warnings{};  ///< files that could not be deleted
};

/// Runs one checkpoint job at a time on a background thread (see the file comment). Not
/// thread-safe itself: one owner thread calls every member.
class AsyncCheckpointWriter {
public:
    AsyncCheckpointWriter() = default;
    /// A copy starts with no job and no thread (the job belongs to the original).
    AsyncCheckpointWriter(const AsyncCheckpointWriter&) noexcept {}
    /// Keeps this writer's own job and thread.
    AsyncCheckpointWriter& operator=(const AsyncCheckpointWriter&) noexcept { return *this; }
    /// Waits for the job in flight and ends the thread. An outcome never collected is not lost:
    /// its error (and its warnings) go to traincb::warn.
    ~AsyncCheckpointWriter();

    /// Copies the model's tensors into the snapshot and hands `job` to the background thread
    /// (started on first use). @throws LogicError when a job's outcome was not collected yet;
    /// whatever the model's visit_state or starting a thread throws (nothing is then submitted)
    void submit(ModelHandle& model, CheckpointJob job);

    /// True from submit() until take_result().
    [[nodiscard]] bool pending() const noexcept { return submitted_; }
    /// True when the job has ended and its outcome waits for take_result(); never blocks.
    [[nodiscard]] bool finished() const noexcept { return submitted_ && done_.load(std::memory_order_acquire); }
    /// Blocks until the job (if any) has ended.
    void wait();
    /// Waits for the job, then returns its outcome (empty when none was submitted) and frees its
    /// state; the snapshot's buffers stay for the next save.
    CheckpointJobResult take_result();
    /// Waits for the job in flight, then ends the background thread (the next submit() starts
    /// another); the outcome stays for take_result().
    void stop() noexcept;
    /// The bytes of the model's state held by the snapshot (0 before the first save).
    [[nodiscard]] std::size_t snapshot_bytes() const noexcept { return snapshot_.bytes(); }

private:
    void run();

    // The background thread's work: the same encoding and writes as a synchronous save.
    CheckpointJobResult execute() noexcept;
    void delete_files(CheckpointJobResult& r) const;
    // The weights checkpoint of a capture, without the model: what a synchronous weights capture
    // holds besides it.
    [[nodiscard]] static io::Checkpoint weights_only(const io::Checkpoint& s);

    // Owner thread only.
    bool submitted_ = false;
    std::thread thread_{};
    // Handed over with the job (see the file comment).
    StateSnapshot snapshot_{};
    CheckpointJob job_{};
    CheckpointJobResult result_{};
    // Shared, under mutex_.
    std::mutex mutex_{};
    std::condition_variable cv_{};
    bool queued_ = false;
    bool quit_ = false;
    std::atomic<bool> done_{false};  // also written under mutex_; read without it by finished()
};

}  // namespace traincb::inline v0::detail

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0::detail {

TRAINCB_INLINE AsyncCheckpointWriter::~AsyncCheckpointWriter() {
    stop();
    if (!submitted_) return;
    CheckpointJobResult r = take_result();
    for (const auto& w : r.warnings) warn(w);
    if (!r.error) return;
    try {
        std::rethrow_exception(r.error);
    } catch (const std::exception& e) {
        warn(std::string(e.what()) + " (a background save failed after the last hook that could report it)");
    } catch (...) {
        warn("traincb: checkpoint: a background save failed after the last hook that could report it");
    }
}

TRAINCB_INLINE void AsyncCheckpointWriter::submit(ModelHandle& model, CheckpointJob job) {
    if (submitted_)
        throw LogicError("traincb: " + job.component +
                         ": a background save was submitted before the previous one's outcome was collected");
    if (!thread_.joinable()) {
        quit_ = false;
        thread_ = std::thread([this] { run(); });
    }
    snapshot_.take([&model](StateVisitor& v) { model.visit_state(v); });
    job_ = std::move(job);
    {
        const std::lock_guard lock(mutex_);
        queued_ = true;
        done_.store(false, std::memory_order_relaxed);
    }
    submitted_ = true;
    cv_.notify_all();
}

TRAINCB_INLINE void AsyncCheckpointWriter::wait() {
    if (!submitted_) return;
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return !queued_; });
}

TRAINCB_INLINE CheckpointJobResult AsyncCheckpointWriter::take_result() {
    if (!submitted_) return {};
    wait();
    submitted_ = false;
    done_.store(false, std::memory_order_relaxed);
    job_ = CheckpointJob{};
    return std::exchange(result_, CheckpointJobResult{});
}

TRAINCB_INLINE void AsyncCheckpointWriter::stop() noexcept {
    if (!thread_.joinable()) return;
    {
        const std::lock_guard lock(mutex_);
        quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

TRAINCB_INLINE void AsyncCheckpointWriter::run() {
    (void)os::make_current_thread_batch();  // a hint: its wake-up should not preempt training
    std::unique_lock lock(mutex_);
    for (;;) {
        cv_.wait(lock, [this] { return queued_ || quit_; });
        if (!queued_) return;  // asked to quit, with no job left to run
        lock.unlock();
        CheckpointJobResult r = execute();
        lock.lock();
        result_ = std::move(r);
        queued_ = false;
        done_.store(true, std::memory_order_release);
        cv_.notify_all();
    }
}

TRAINCB_INLINE CheckpointJobResult AsyncCheckpointWriter::execute() noexcept {
    CheckpointJobResult r;
    try {
        const io::Checkpoint weights_header = weights_only(job_.state);  // before the state moves
        std::optional<io::SafetensorsFile> full;                         // encoded once, written to every full target
        for (const CheckpointWrite& w : job_.writes) {
            if (r.written == job_.delete_after) delete_files(r);
            if (w.kind == io::CheckpointKind::Full) {
                if (!full) {
                    io::Checkpoint c = std::move(job_.state);
                    c.model = snapshot_.to_state_dict();
                    full = io::encode_checkpoint(std::move(c));
                }
                if (w.rotating != nullptr)
                    w.rotating->save(*full, job_.component);
                else
                    io::save_checkpoint_file(w.path, *full, job_.component);
            } else {
                io::Checkpoint c = weights_header;
                c.model = snapshot_.to_state_dict();
                io::save_checkpoint_file(w.path, io::encode_checkpoint(std::move(c)), job_.component);
            }
            ++r.written;
        }
        if (r.written == job_.delete_after) delete_files(r);
    } catch (...) {
        r.error = std::current_exception();
    }
    return r;
}

TRAINCB_INLINE void AsyncCheckpointWriter::delete_files(CheckpointJobResult& r) const {
    for (const auto& gone : job_.to_delete) {
        std::error_code ec;
        std::filesystem::remove(gone, ec);
        if (ec)
            r.warnings.push_back(cat("traincb: ", job_.component, ": cannot delete '", gone.string(), "', ",
                                     job_.delete_reason, ": ", ec.message()));
    }
}

TRAINCB_INLINE io::Checkpoint AsyncCheckpointWriter::weights_only(const io::Checkpoint& s) {
    io::Checkpoint c;
    c.kind = io::CheckpointKind::Weights;
    c.version = s.version;
    c.position = s.position;
    c.seed = s.seed;
    c.fit_options = s.fit_options;
    c.loss_sum = s.loss_sum;
    c.loss_count = s.loss_count;
    return c;
}

}  // namespace traincb::inline v0::detail
#endif  // TRAINCB_DEFINITIONS
