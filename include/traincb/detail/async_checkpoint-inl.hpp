#pragma once
// The bodies of traincb/detail/async_checkpoint.hpp's non-template functions: included at the end
// of that header when traincb is header-only, compiled once into traincb::compiled in the compiled
// mode (traincb/detail/config.hpp).
#include "traincb/detail/async_checkpoint.hpp"

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
