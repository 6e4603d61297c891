#pragma once
// The bodies of traincb/callback.hpp's non-template functions: included at the end of that header
// when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/callback.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE void CallbackState::require_version(int expected, std::string_view component,
                                                   std::string_view key) const {
    if (version == expected) return;
    throw FormatError("traincb: " + std::string(component) + ": checkpointed state (key '" + std::string(key) +
                      "'): version " + std::to_string(version) + " is not readable; this traincb reads version " +
                      std::to_string(expected) + " (use the traincb version that wrote it)");
}

TRAINCB_INLINE void Context::request_stop(std::string_view source, std::string_view reason) {
    if (!stop_requested_) {
        stop_requested_ = true;
        stop_source_ = std::string(source);
        stop_reason_ = std::string(reason);
    }
}

TRAINCB_INLINE void Context::request_rollback(std::string_view source, std::string_view reason) {
    if (!rollback_supported_)
        throw LogicError(detail::cat("traincb: ", source,
                                     ": requested a rollback, but the driver of this run keeps no snapshots; "
                                     "use traincb::Trainer, or declare Capabilities::rollback in "
                                     "required_capabilities() so that such a loop is refused before it starts"));
    if (!rollback_requested_) {
        rollback_requested_ = true;
        rollback_source_ = std::string(source);
        rollback_reason_ = std::string(reason);
    }
}

// Context::report: fills the event's unset position, then CallbackList::report.
TRAINCB_INLINE void Context::report(RunEvent event) {
    if (event.epoch < 0 && event.batch < 0 && event.global_step == 0) {
        event.epoch = epoch_;
        event.batch = batch_;
        event.global_step = global_step_;
    }
    list_->report(event);
}

TRAINCB_INLINE CallbackList& CallbackList::add(CallbackList& other) {
    for (const auto& e : other.entries_) entries_.push_back(e);
    rebuild();
    return *this;
}

TRAINCB_INLINE void CallbackList::set_communicator(Communicator& comm) noexcept {
    ctx_.comm_ = &comm;
    distributed_ = comm.size() > 1;
}

TRAINCB_INLINE void CallbackList::validate() const {
    for (const auto& e : entries_) {
        const Capabilities need = e.cb->required_capabilities();
        if (need.learning_rate && !model().has_learning_rate())
            throw InvalidArgument("traincb: " + e.cb->name() +
                                  ": needs the model's learning rate, but the model has no "
                                  "learning_rate() const / set_learning_rate(double); add them or specialise "
                                  "traincb::model_traits" +
                                  no_model_hint());
        if (need.state && !model().has_state())
            throw InvalidArgument("traincb: " + e.cb->name() +
                                  ": needs the model's state, but the model has no "
                                  "visit_state(traincb::StateVisitor&); add it (see traincb/state.hpp) or "
                                  "specialise traincb::model_traits" +
                                  no_model_hint());
        if (need.rollback && !ctx_.rollback_supported_)
            throw InvalidArgument(detail::cat(
                "traincb: ", e.cb->name(),
                ": needs a driver that keeps snapshots and rolls back to them, but this loop does not "
                "(CallbackList::set_rollback_support was not called); train with traincb::Trainer, or choose an "
                "action that does not roll back"));
        if (ctx_.params_.log_keys.empty()) continue;
        std::vector<std::string> known = ctx_.params_.log_keys;
        for (const auto& other : entries_)
            for (auto& k : other.cb->provided_keys()) known.push_back(std::move(k));
        for (const auto& k : e.cb->required_keys()) {
            bool found = false;
            for (const auto& kk : known) found = found || kk == k;
            if (found) continue;
            std::string msg = "traincb: " + e.cb->name() + ": monitor '" + k +
                              "' will not be in the logs; the logged keys are: " + detail::join(known);
            bool any_val = false;
            for (const auto& kk : known) any_val = any_val || kk.starts_with("val_");
            if (k.starts_with("val_") && !ctx_.params_.has_validation && !any_val)
                msg +=
                    "; there is no validation data: pass validation_data or validation_split, "
                    "or monitor a training key";
            else if (auto c = detail::closest_match(k, known); !c.empty())
                msg += "; did you mean '" + c + "'?";
            throw InvalidArgument(msg);
        }
    }
    std::set<std::string> state_keys;
    for (const auto& e : entries_) {
        auto k = e.cb->state_key();
        if (k.empty()) continue;
        if (!state_keys.insert(k).second)
            throw InvalidArgument("traincb: CallbackList: two callbacks have the state key '" + k +
                                  "'; give one of them an explicit id so their checkpointed state cannot mix");
    }
}

TRAINCB_INLINE void CallbackList::on_train_begin() {
    std::exception_ptr first;
    try {
        validate();
    } catch (...) {
        if (!distributed_) throw;
        first = std::current_exception();
    }
    rebuild();  // wants_train_batch_end() may have changed since the callbacks were added
    ctx_.stop_requested_ = false;
    ctx_.stop_source_.clear();
    ctx_.stop_reason_.clear();
    ctx_.snapshot_requested_ = ctx_.rollback_requested_ = false;
    ctx_.rollback_source_.clear();
    ctx_.rollback_reason_.clear();
    ctx_.end_ = {};
    ctx_.epoch_ = -1;
    ctx_.batch_ = -1;
    ctx_.logs_ = nullptr;
    last_logs_.clear();
    stop_agreed_ = false;
    agreed_interrupt_ = 0;
    if (!distributed_) {
        for (Callback* cb : train_begin_) cb->on_train_begin(ctx_);
        return;
    }
    if (!first) run_all(train_begin_, first, [this](Callback* cb) { cb->on_train_begin(ctx_); });
    detail::Xxh64 h;
    for (const std::string& line : config_lines()) {
        h.update(std::as_bytes(std::span(line)));
        h.update(std::as_bytes(std::span("\n", 1)));
    }
    sync(detail::SyncPoint::TrainBegin, first, h.digest());
}

TRAINCB_INLINE void CallbackList::on_epoch_begin(int epoch) {
    ctx_.epoch_ = epoch;
    ctx_.batch_ = -1;
    ctx_.logs_ = nullptr;
    if (!distributed_) {
        for (Callback* cb : epoch_begin_) cb->on_epoch_begin(ctx_);
        return;
    }
    if (epoch_begin_.empty()) return;
    std::exception_ptr first;
    run_all(epoch_begin_, first, [this](Callback* cb) { cb->on_epoch_begin(ctx_); });
    sync(detail::SyncPoint::EpochBegin, first, 0);
}

TRAINCB_INLINE void CallbackList::on_train_batch_begin(int batch) {
    ctx_.batch_ = batch;
    ctx_.logs_ = nullptr;
    ctx_.rollback_requested_ = false;
    if (!distributed_) {
        for (Callback* cb : batch_begin_) cb->on_train_batch_begin(ctx_);
        return;
    }
    if (batch_begin_.empty()) return;
    std::exception_ptr first;
    run_all(batch_begin_, first, [this](Callback* cb) { cb->on_train_batch_begin(ctx_); });
    sync(detail::SyncPoint::BatchBegin, first, 0);
}

TRAINCB_INLINE void CallbackList::on_train_batch_end(int batch, Logs& logs) {
    ctx_.batch_ = batch;
    ++ctx_.global_step_;
    ctx_.logs_ = &logs;
    if (!distributed_) {
        for (Callback* cb : batch_end_) {
            cb->on_train_batch_end(ctx_);
            if (ctx_.rollback_requested_) return;
        }
        for (Callback* cb : batch_commit_) cb->on_train_batch_commit(ctx_);
        return;
    }
    std::exception_ptr first;
    bool rolled_back = false;
    for (Callback* cb : batch_end_) {
        run_one(first, [&] { cb->on_train_batch_end(ctx_); });
        if ((rolled_back = ctx_.rollback_requested_)) break;
    }
    if (!rolled_back) run_all(batch_commit_, first, [this](Callback* cb) { cb->on_train_batch_commit(ctx_); });
    sync(detail::SyncPoint::BatchEnd, first, 0);
}

TRAINCB_INLINE void CallbackList::on_train_batch_end(int batch) {
    on_train_batch_end(batch, scratch_);
}

TRAINCB_INLINE void CallbackList::on_test_begin() {
    ctx_.batch_ = -1;
    ctx_.logs_ = nullptr;
    if (!distributed_) {
        for (Callback* cb : test_begin_) cb->on_test_begin(ctx_);
        return;
    }
    if (test_begin_.empty()) return;
    std::exception_ptr first;
    run_all(test_begin_, first, [this](Callback* cb) { cb->on_test_begin(ctx_); });
    sync(detail::SyncPoint::TestBegin, first, 0);
}

TRAINCB_INLINE void CallbackList::on_test_end(Logs& logs) {
    ctx_.batch_ = -1;
    ctx_.logs_ = &logs;
    if (!distributed_) {
        for (Callback* cb : test_end_) cb->on_test_end(ctx_);
        return;
    }
    if (test_end_.empty()) return;
    std::exception_ptr first;
    run_all(test_end_, first, [this](Callback* cb) { cb->on_test_end(ctx_); });
    sync(detail::SyncPoint::TestEnd, first, keys_hash(logs));
}

TRAINCB_INLINE void CallbackList::on_epoch_end(int epoch, Logs& logs) {
    ctx_.epoch_ = epoch;
    ctx_.batch_ = -1;
    ctx_.logs_ = &logs;
    if (!distributed_) {
        for (Callback* cb : epoch_end_) cb->on_epoch_end(ctx_);
        for (Callback* cb : before_commit_) cb->on_before_epoch_commit(ctx_);
        last_logs_ = logs;
        if (ctx_.history_ != nullptr) ctx_.history_->record(epoch, logs);
        for (Callback* cb : epoch_commit_) cb->on_epoch_commit(ctx_);
        return;
    }
    std::exception_ptr first;
    run_all(epoch_end_, first, [this](Callback* cb) { cb->on_epoch_end(ctx_); });
    run_all(before_commit_, first, [this](Callback* cb) { cb->on_before_epoch_commit(ctx_); });
    last_logs_ = logs;
    if (ctx_.history_ != nullptr) ctx_.history_->record(epoch, logs);
    run_all(epoch_commit_, first, [this](Callback* cb) { cb->on_epoch_commit(ctx_); });
    sync(detail::SyncPoint::EpochEnd, first, keys_hash(logs));
}

TRAINCB_INLINE void CallbackList::on_interrupt(int epoch, int batch) {
    ctx_.epoch_ = epoch;
    ctx_.batch_ = batch;
    if (!distributed_) {
        for (Callback* cb : interrupt_) cb->on_interrupt(ctx_);
        return;
    }
    if (interrupt_.empty()) return;
    std::exception_ptr first;
    run_all(interrupt_, first, [this](Callback* cb) { cb->on_interrupt(ctx_); });
    sync(detail::SyncPoint::Interrupt, first, 0);
}

TRAINCB_INLINE void CallbackList::report(const RunEvent& event) {
    const RunEvent* outer = std::exchange(ctx_.event_, &event);
    std::exception_ptr first;
    for (Callback* cb : run_event_) {
        try {
            cb->on_run_event(ctx_);
        } catch (...) {
            if (!first) first = std::current_exception();
        }
    }
    ctx_.event_ = outer;
    if (first) std::rethrow_exception(first);
}

TRAINCB_INLINE void CallbackList::on_train_end() {
    TrainEnd end;
    if (ctx_.stop_requested_) {
        end.kind = EndKind::Stopped;
        end.source = ctx_.stop_source_;
        end.reason = ctx_.stop_reason_;
    }
    on_train_end(std::move(end));
}

TRAINCB_INLINE void CallbackList::on_train_end(TrainEnd end) {
    ctx_.end_ = std::move(end);
    ctx_.batch_ = -1;
    ctx_.logs_ = &last_logs_;
    std::exception_ptr first;
    run_all(train_end_, first, [this](Callback* cb) { cb->on_train_end(ctx_); });
    if (distributed_) sync(detail::SyncPoint::TrainEnd, first, 0);
    if (first) std::rethrow_exception(first);
}

TRAINCB_INLINE void CallbackList::on_train_end(const std::exception_ptr& error) noexcept {
    TrainEnd end;
    end.kind = EndKind::Exception;
    end.exception = error;
    try {
        if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
        end.reason = e.what();
    } catch (...) {
        end.reason = "unknown exception";
    }
    ctx_.end_ = std::move(end);
    ctx_.batch_ = -1;
    ctx_.logs_ = &last_logs_;
    std::exception_ptr ignored;  // the original exception is the one the user needs to see
    run_all(train_end_, ignored, [this](Callback* cb) { cb->on_train_end(ctx_); });
}

TRAINCB_INLINE std::uint64_t CallbackList::keys_hash(const Logs& logs) noexcept {
    detail::Xxh64 h;
    for (const auto& [key, value] : logs) {
        h.update(std::as_bytes(std::span(key)));
        h.update(std::as_bytes(std::span("\n", 1)));
    }
    return h.digest();
}

TRAINCB_INLINE std::vector<std::string> CallbackList::config_lines() const {
    const TrainParams& p = ctx_.params_;
    std::vector<std::string> lines;
    lines.push_back(detail::cat("callbacks: ", std::to_string(entries_.size())));
    lines.push_back(detail::cat("params: epochs ", std::to_string(p.epochs), ", batch_size ",
                                std::to_string(p.batch_size), ", samples ", std::to_string(p.samples),
                                ", steps_per_epoch ", std::to_string(p.steps_per_epoch), ", validation ",
                                p.has_validation ? "yes" : "no"));
    lines.push_back(detail::cat("log keys: ", detail::join(p.log_keys)));
    if (ctx_.run_state_ != nullptr)
        lines.push_back(detail::cat("data order: seed ", std::to_string(ctx_.run_state_->seed), ", ",
                                    ctx_.run_state_->fit_options.dump()));
    for (const Entry& e : entries_) {
        std::string line = detail::cat("callback ", e.cb->name(), " (hooks ", std::to_string(e.mask));
        const std::string key = e.cb->state_key();
        if (!key.empty()) {
            line += detail::cat(", state key '", key, "'");
            CallbackState s;
            e.cb->save_state(s);
            if (const auto it = s.json.find("options"); it != s.json.end())
                line += detail::cat(", options ", it->dump());
        }
        const std::vector<std::string> keys = e.cb->required_keys();
        if (!keys.empty()) line += detail::cat(", monitors ", detail::join(keys));
        lines.push_back(line + ")");
    }
    return lines;
}

TRAINCB_INLINE std::vector<std::string> CallbackList::where_lines(detail::SyncPoint p) const {
    if (p == detail::SyncPoint::TrainBegin) return config_lines();
    std::string line(detail::sync_point_name(p));
    if (ctx_.epoch_ >= 0) line += detail::cat(" of epoch ", std::to_string(ctx_.epoch_ + 1));
    if (ctx_.batch_ >= 0) line += detail::cat(", batch ", std::to_string(ctx_.batch_));
    if (ctx_.logs_ != nullptr && (p == detail::SyncPoint::EpochEnd || p == detail::SyncPoint::TestEnd)) {
        std::vector<std::string> keys;
        for (const auto& [key, value] : *ctx_.logs_) keys.push_back(key);
        line += detail::cat(" with log keys ", detail::join(keys));
    }
    return {line};
}

TRAINCB_INLINE void CallbackList::throw_out_of_step(detail::SyncPoint p) const {
    Communicator& comm = *ctx_.comm_;
    std::string mine;
    for (const std::string& line : where_lines(p)) mine += line + '\n';
    const std::vector<std::vector<std::byte>> all = comm.all_gather(detail::to_bytes(mine));
    const auto lines_of = [](const std::string& s) {
        std::vector<std::string> out;
        std::size_t from = 0;
        for (std::size_t nl = s.find('\n'); nl != std::string::npos; nl = s.find('\n', from = nl + 1))
            out.push_back(s.substr(from, nl - from));
        return out;
    };
    const std::vector<std::string> first = lines_of(detail::from_bytes(all.front()));
    std::string msg;
    for (std::size_t r = 1; r < all.size() && msg.empty(); ++r) {
        const std::vector<std::string> other = lines_of(detail::from_bytes(all[r]));
        for (std::size_t i = 0; i < std::max(first.size(), other.size()) && msg.empty(); ++i) {
            const std::string a = i < first.size() ? first[i] : "(nothing)";
            const std::string b = i < other.size() ? other[i] : "(nothing)";
            if (a != b) msg = detail::cat("rank 0 has '", a, "' where rank ", std::to_string(r), " has '", b, "'");
        }
    }
    if (msg.empty()) msg = "the ranks differ in a way their descriptions do not show";
    throw LogicError(detail::cat("traincb: CallbackList: the ranks are not in step at ", detail::sync_point_name(p),
                                 ": ", msg,
                                 ". Every rank must run the same callbacks with the same options and data, and "
                                 "call the same hooks in the same order (the same number of batches per epoch)"));
}

TRAINCB_INLINE void CallbackList::sync(detail::SyncPoint p, const std::exception_ptr& error, std::uint64_t extra) {
    using V = detail::RankVote;
    Communicator& comm = *ctx_.comm_;
    const int rank = comm.rank();
    const int size = comm.size();
    const std::array<std::uint64_t, 3> where{static_cast<std::uint64_t>(p), static_cast<std::uint64_t>(ctx_.epoch_),
                                             static_cast<std::uint64_t>(ctx_.batch_)};
    const auto h62 = static_cast<std::int64_t>(detail::xxh64(std::as_bytes(std::span(where)), extra) >> 2U);
    V::Array v{};
    v[V::kFailed] = detail::encode_rank(error != nullptr, rank, size);
    v[V::kStop] = detail::encode_rank(ctx_.stop_requested_, rank, size);
    v[V::kInterrupt] = detail::encode_signal(interrupt_signal());
    v[V::kHash] = h62;
    v[V::kNegHash] = -h62;
    comm.max_int64(v);
    if (v[V::kHash] != -v[V::kNegHash]) throw_out_of_step(p);
    if (v[V::kFailed] != 0) detail::throw_agreed_failure(comm, detail::decode_rank(v[V::kFailed], size), error);
    if (v[V::kStop] != 0 && !stop_agreed_) {
        const int who = detail::decode_rank(v[V::kStop], size);
        std::vector<std::byte> why;
        if (rank == who)
            why = detail::to_bytes(detail::cat(ctx_.stop_source_, std::string(1, '\0'), ctx_.stop_reason_));
        comm.broadcast_resize(why, who);
        const std::string s = detail::from_bytes(why);
        const std::size_t nul = s.find('\0');
        ctx_.stop_requested_ = true;
        ctx_.stop_source_ = s.substr(0, nul);
        ctx_.stop_reason_ = nul == std::string::npos ? std::string() : s.substr(nul + 1);
        stop_agreed_ = true;
    }
    if (const int sig = detail::decode_signal(v[V::kInterrupt]); sig != 0 && agreed_interrupt_ == 0) {
        agreed_interrupt_ = sig;
        detail::adopt_interrupt(sig);
    }
}

TRAINCB_INLINE std::string CallbackList::no_model_hint() const {
    return model().attached() ? "" : " (no model is attached: call CallbackList::set_model)";
}

TRAINCB_INLINE void CallbackList::rebuild() {
    auto fill = [&](std::vector<Callback*>& v, unsigned bit) {
        v.clear();
        for (const auto& e : entries_)
            if (e.mask & bit) v.push_back(e.cb);
    };
    fill(train_begin_, detail::kTrainBegin);
    fill(train_end_, detail::kTrainEnd);
    fill(epoch_begin_, detail::kEpochBegin);
    fill(epoch_end_, detail::kEpochEnd);
    fill(batch_begin_, detail::kBatchBegin);
    fill(batch_end_, detail::kBatchEnd);
    std::erase_if(batch_end_, [](const Callback* cb) { return !cb->wants_train_batch_end(); });
    fill(test_begin_, detail::kTestBegin);
    fill(test_end_, detail::kTestEnd);
    fill(epoch_commit_, detail::kEpochCommit);
    fill(batch_commit_, detail::kBatchCommit);
    fill(interrupt_, detail::kInterrupt);
    fill(before_commit_, detail::kBeforeCommit);
    fill(run_event_, detail::kRunEvent);
}

TRAINCB_INLINE Context CallbackList::make_context() {
    Context c;
    c.model_ = &null_model_;
    c.comm_ = &local_communicator();
    c.list_ = this;
    return c;
}

}  // namespace traincb::inline v0
