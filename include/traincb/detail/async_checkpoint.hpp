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
#include "traincb/detail/async_checkpoint-inl.hpp"
#endif
