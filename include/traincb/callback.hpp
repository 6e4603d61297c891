#pragma once
/// @file callback.hpp
/// Callback (no-op virtual hooks, one Context per hook) and CallbackList (runs callbacks in order;
/// usable on its own in any hand-written training loop).

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

#include "traincb/communicator.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/hash.hpp"
#include "traincb/detail/rank_vote.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/direction.hpp"
#include "traincb/errors.hpp"
#include "traincb/interrupt.hpp"
#include "traincb/logs.hpp"
#include "traincb/model.hpp"
#include "traincb/state.hpp"
#include "traincb/train_params.hpp"

namespace traincb::inline v0 {

/// Which capabilities of the model (and of the driver of the run) a callback needs.
struct Capabilities {
    bool learning_rate = false;  ///< learning_rate() and set_learning_rate()
    bool state = false;          ///< visit_state()
    /// A driver that keeps snapshots and rolls back to them (Context::request_rollback): Trainer
    /// does; a hand-written loop declares it with CallbackList::set_rollback_support.
    bool rollback = false;
};

/// A callback's resumable state: JSON for scalars and counters, tensors for snapshots.
struct CallbackState {
    int version = 1;        ///< the callback's state format version
    nlohmann::json json{};  ///< counters, best values, options (for change detection)
    StateDict tensors{};    ///< e.g. EarlyStopping's best-weights snapshot

    /// Checks that this state has the format version `expected` that `component` reads.
    /// @throws FormatError naming the component, the state key and both versions.
    void require_version(int expected, std::string_view component, std::string_view key) const;
};

class CallbackList;

/// What the driver of a run knows beyond the callbacks, for checkpoints: the data order and the
/// running training loss. Trainer fills it; a hand-written loop may fill it too
/// (CallbackList::set_run_state) so that its checkpoints can resume it.
struct RunState {
    std::uint64_t seed = 0;  ///< the shuffling seed (the epoch permutation is a function of seed and epoch)
    /// The options that determine the data order and the run's length (epochs, batch_size,
    /// shuffle, samples, ...), as JSON, so a resumed run can name what changed.
    nlohmann::json fit_options = nlohmann::json::object();
    double loss_sum = 0;          ///< sample-weighted sum of the batch losses of the current epoch so far
    std::int64_t loss_count = 0;  ///< samples behind loss_sum
    /// The current epoch's training metric states, as a JSON object by log key (each value the
    /// JSON that metrics::Metric::save_state_with_tensors wrote, or null for a metric that saves
    /// none); the function adds each metric's tensors to its argument under the metric's log key.
    /// Called only when a mid-epoch checkpoint is taken, so the batch loop pays nothing; empty: no
    /// metric states are saved (a resumed epoch's training metrics then cover only the later
    /// batches).
    /// @throws whatever the driver's function throws
    std::function<nlohmann::json(std::map<std::string, StateDict, std::less<>>& tensors)> metric_states{};
    /// The mean loss of the batch that just ran (its own, not the epoch's running mean), set by the
    /// driver before on_train_batch_end (Trainer does; a hand-written loop may); unset: unknown.
    std::optional<double> batch_loss{};
};

/// The one argument of every hook. Which fields are meaningful depends on the hook:
/// epoch() in epoch, batch and test hooks; batch() in batch hooks; logs() in on_*_end hooks
/// (running epoch means in on_train_batch_end, unprefixed validation values in on_test_end, the
/// epoch's values in on_epoch_end, the last epoch's in on_train_end); end() in on_train_end.
class Context {
public:
    /// The 0-based absolute epoch (includes initial_epoch); -1 before the first epoch.
    [[nodiscard]] int epoch() const noexcept { return epoch_; }
    /// The 0-based batch index within the epoch; -1 outside batch hooks.
    [[nodiscard]] int batch() const noexcept { return batch_; }
    /// Batches completed in the whole run, across epochs and resumes (for save_freq etc.).
    [[nodiscard]] std::int64_t global_step() const noexcept { return global_step_; }
    /// The logs of this hook (writable: in on_epoch_end a key added here is seen by later
    /// callbacks, History and the loggers, as in Keras).
    [[nodiscard]] Logs& logs() noexcept { return logs_ ? *logs_ : empty_logs_; }
    /// The run's parameters.
    [[nodiscard]] const TrainParams& params() const noexcept { return params_; }
    /// The model's optional capabilities (learning rate, state).
    [[nodiscard]] ModelHandle& model() noexcept { return *model_; }
    /// The communicator for collective decisions (single-process identity by default).
    [[nodiscard]] Communicator& comm() noexcept { return *comm_; }
    /// Asks the driver to stop after this epoch (a request in a batch hook still completes the
    /// epoch's validation and on_epoch_end, as in Keras). The first request's source and reason
    /// are kept.
    void request_stop(std::string_view source, std::string_view reason);
    /// True once any callback on this rank asked to stop.
    [[nodiscard]] bool stop_requested() const noexcept { return stop_requested_; }
    /// Who asked to stop ("" when nobody did).
    [[nodiscard]] const std::string& stop_source() const noexcept { return stop_source_; }
    /// Why ("" when nobody did).
    [[nodiscard]] const std::string& stop_reason() const noexcept { return stop_reason_; }
    /// True when the driver keeps snapshots and can roll back to them (Trainer; see
    /// CallbackList::set_rollback_support): only then do request_snapshot and request_rollback work.
    [[nodiscard]] bool rollback_supported() const noexcept { return rollback_supported_; }
    /// Asks the driver to snapshot the training state (the model's state, the running loss and
    /// training metric states, the global step and the position) before the next batch that runs,
    /// before its on_train_batch_begin; a rollback returns there. The driver keeps one snapshot
    /// (each replaces the last) and forgets it when the epoch ends, so a callback that may roll back
    /// asks in on_epoch_begin too. Ignored by a driver without rollback support.
    void request_snapshot() noexcept { snapshot_requested_ = rollback_supported_; }
    /// True while a snapshot request waits for the driver.
    [[nodiscard]] bool snapshot_requested() const noexcept { return snapshot_requested_; }
    /// In on_train_batch_end: asks the driver to undo this batch: restore its snapshot, skip this
    /// batch from then on (FitOptions::skip_batches), and go on from the snapshot's batch. The rest
    /// of the list's on_train_batch_end hooks and every on_train_batch_commit are not run for the
    /// batch. The decision is the caller's to make collectively (Communicator::any), as every rank
    /// must roll back together. The first request's source and reason are kept.
    /// @throws LogicError when the driver has no rollback support (rollback_supported())
    void request_rollback(std::string_view source, std::string_view reason);
    /// True while a rollback request waits for the driver.
    [[nodiscard]] bool rollback_requested() const noexcept { return rollback_requested_; }
    /// Who asked for the pending rollback ("" when nobody did).
    [[nodiscard]] const std::string& rollback_source() const noexcept { return rollback_source_; }
    /// Why ("" when nobody did).
    [[nodiscard]] const std::string& rollback_reason() const noexcept { return rollback_reason_; }
    /// Reports `event` for the record: every callback's on_run_event runs with it (MetricLogger
    /// hands it to its sinks). An event whose position is unset (epoch -1, batch -1, global_step 0)
    /// gets this context's. @throws whatever an on_run_event throws (e.g. a sink's IoError)
    void report(RunEvent event);
    /// The event being reported (meaningful in on_run_event only).
    [[nodiscard]] const RunEvent& run_event() const noexcept { return event_ ? *event_ : empty_event_; }
    /// How training ended (meaningful in on_train_end only).
    [[nodiscard]] const TrainEnd& end() const noexcept { return end_; }
    /// The list running this hook: every callback of the run (ModelCheckpoint saves their states).
    [[nodiscard]] CallbackList& callbacks() const noexcept { return *list_; }
    /// The run's History so far (it includes the current epoch from on_epoch_commit on), or
    /// nullptr when the driver keeps none (CallbackList::set_history).
    [[nodiscard]] const History* history() const noexcept { return history_; }
    /// The driver's run state (seed, data-order options, running loss), or nullptr when the
    /// driver provides none (CallbackList::set_run_state).
    [[nodiscard]] const RunState* run_state() const noexcept { return run_state_; }

private:
    friend class CallbackList;
    CallbackList* list_ = nullptr;
    History* history_ = nullptr;
    const RunState* run_state_ = nullptr;
    int epoch_ = -1;
    int batch_ = -1;
    std::int64_t global_step_ = 0;
    Logs* logs_ = nullptr;
    Logs empty_logs_;
    TrainParams params_{};
    ModelHandle* model_ = nullptr;
    Communicator* comm_ = nullptr;
    bool stop_requested_ = false;
    std::string stop_source_{};
    std::string stop_reason_{};
    bool rollback_supported_ = false;
    bool snapshot_requested_ = false;
    bool rollback_requested_ = false;
    std::string rollback_source_{};
    std::string rollback_reason_{};
    const RunEvent* event_ = nullptr;
    RunEvent empty_event_{};
    TrainEnd end_;
};

/// Base of every callback: each hook is a no-op until overridden. A hook a callback does not
/// override is never called on the hot path (CallbackList detects overrides when the callback is
/// added with its own type).
class Callback {
public:
    Callback() = default;
    Callback(const Callback&) = default;
    Callback& operator=(const Callback&) = default;
    virtual ~Callback() = default;

    /// Before the first epoch (after per-run state is reset).
    virtual void on_train_begin(Context&) {}
    /// After the last epoch, on every exit: completed, stopped, interrupted or exception.
    virtual void on_train_end(Context&) {}
    /// At the start of each epoch.
    virtual void on_epoch_begin(Context&) {}
    /// At the end of each epoch, with the epoch's logs (training means and val_* values).
    virtual void on_epoch_end(Context&) {}
    /// Before each training batch.
    virtual void on_train_batch_begin(Context&) {}
    /// After each training batch, with the running epoch means.
    virtual void on_train_batch_end(Context&) {}
    /// Before validation.
    virtual void on_test_begin(Context&) {}
    /// After validation, with the unprefixed validation values.
    virtual void on_test_end(Context&) {}
    /// After EVERY callback's on_epoch_end, before the History records the epoch and before any
    /// on_epoch_commit: undo a change made to the model for validation, so that every commit sees
    /// the model as training left it, whatever the order of the list (WeightAveraging puts the
    /// raw weights back here).
    virtual void on_before_epoch_commit(Context&) {}
    /// After EVERY callback's on_epoch_end (and after the epoch was recorded in the History): the
    /// place to persist state, since every callback has then decided on this epoch, whatever the
    /// order of the list. ModelCheckpoint writes its files here.
    virtual void on_epoch_commit(Context&) {}
    /// After every callback's on_train_batch_end: as on_epoch_commit, for batch-level saves.
    virtual void on_train_batch_commit(Context&) {}
    /// Training is being interrupted (SIGINT/SIGTERM, see interrupt.hpp): called after the last
    /// completed batch (ctx.batch() >= 0) or epoch (ctx.batch() == -1), before on_train_end, so
    /// that a checkpoint can be saved from which the run resumes.
    virtual void on_interrupt(Context&) {}
    /// A callback reported a RunEvent (Context::report), read with ctx.run_event(): MetricLogger
    /// hands it to its sinks. Runs inside the hook that reported it.
    virtual void on_run_event(Context&) {}

    /// A short name used in messages and as the source of stop requests ("EarlyStopping").
    [[nodiscard]] virtual std::string name() const { return "Callback"; }
    /// Log keys this callback needs in the epoch logs (checked before the first epoch).
    [[nodiscard]] virtual std::vector<std::string> required_keys() const { return {}; }
    /// Log keys this callback adds to the epoch logs (e.g. "learning_rate"), so that callbacks
    /// monitoring them pass the check before the first epoch.
    [[nodiscard]] virtual std::vector<std::string> provided_keys() const { return {}; }
    /// Model capabilities this callback needs (checked before the first epoch).
    [[nodiscard]] virtual Capabilities required_capabilities() const { return {}; }
    /// Whether CallbackList calls this callback's on_train_batch_end in the coming run; asked when
    /// the callback is added and at each on_train_begin. Return false when the hook has nothing to
    /// do (MetricLogger without a sink that wants batches): the callback then costs nothing per
    /// batch, and a driver builds no batch logs unless another callback needs them.
    [[nodiscard]] virtual bool wants_train_batch_end() const { return true; }

    /// A stable key identifying this callback's state in a checkpoint; "" for a stateless one.
    [[nodiscard]] virtual std::string state_key() const { return {}; }
    /// Writes the state needed to resume exactly.
    virtual void save_state(CallbackState&) const {}
    /// Restores the state written by save_state (called after on_train_begin of a resumed run).
    virtual void load_state(const CallbackState&, Context&) {}
};

namespace detail {
/// Bit per hook, to skip callbacks that do not override a hook.
enum HookBit : unsigned {
    kTrainBegin = 1U << 0,
    kTrainEnd = 1U << 1,
    kEpochBegin = 1U << 2,
    kEpochEnd = 1U << 3,
    kBatchBegin = 1U << 4,
    kBatchEnd = 1U << 5,
    kTestBegin = 1U << 6,
    kTestEnd = 1U << 7,
    kEpochCommit = 1U << 8,
    kBatchCommit = 1U << 9,
    kInterrupt = 1U << 10,
    kBeforeCommit = 1U << 11,
    kRunEvent = 1U << 12,
    kAllHooks = 0x1FFFU,
};
using HookPtr = void (Callback::*)(Context&);
/// The hooks that C overrides (a member pointer still of type `void (Callback::*)` means "not").
template <class C>
constexpr unsigned hook_mask() {
    unsigned m = 0;
    if constexpr (!std::is_same_v<decltype(&C::on_train_begin), HookPtr>) m |= kTrainBegin;
    if constexpr (!std::is_same_v<decltype(&C::on_train_end), HookPtr>) m |= kTrainEnd;
    if constexpr (!std::is_same_v<decltype(&C::on_epoch_begin), HookPtr>) m |= kEpochBegin;
    if constexpr (!std::is_same_v<decltype(&C::on_epoch_end), HookPtr>) m |= kEpochEnd;
    if constexpr (!std::is_same_v<decltype(&C::on_train_batch_begin), HookPtr>) m |= kBatchBegin;
    if constexpr (!std::is_same_v<decltype(&C::on_train_batch_end), HookPtr>) m |= kBatchEnd;
    if constexpr (!std::is_same_v<decltype(&C::on_test_begin), HookPtr>) m |= kTestBegin;
    if constexpr (!std::is_same_v<decltype(&C::on_test_end), HookPtr>) m |= kTestEnd;
    if constexpr (!std::is_same_v<decltype(&C::on_epoch_commit), HookPtr>) m |= kEpochCommit;
    if constexpr (!std::is_same_v<decltype(&C::on_train_batch_commit), HookPtr>) m |= kBatchCommit;
    if constexpr (!std::is_same_v<decltype(&C::on_interrupt), HookPtr>) m |= kInterrupt;
    if constexpr (!std::is_same_v<decltype(&C::on_before_epoch_commit), HookPtr>) m |= kBeforeCommit;
    if constexpr (!std::is_same_v<decltype(&C::on_run_event), HookPtr>) m |= kRunEvent;
    return m;
}
/// A callback that needs the learning-rate capability declares
/// `static constexpr bool requires_learning_rate = true;` so Trainer can reject it at compile time.
template <class C>
constexpr bool requires_learning_rate() {
    if constexpr (requires { C::requires_learning_rate; })
        return C::requires_learning_rate;
    else
        return false;
}
}  // namespace detail

/// Runs callbacks in the order they were added. Drive it from your own loop:
///
///     traincb::CallbackList cbs{early_stopping, logger};
///     cbs.set_model(model);                       // optional: capabilities for callbacks
///     cbs.set_params({.epochs = 100});
///     cbs.on_train_begin();
///     for (int e = 0; e < 100 && !cbs.stop_requested(); ++e) {
///         cbs.on_epoch_begin(e);
///         ... train, fill logs ...
///         cbs.on_epoch_end(e, logs);
///     }
///     cbs.on_train_end();
class CallbackList {
public:
    CallbackList() = default;
    /// Adds each argument (a callback by reference, a shared_ptr, or another CallbackList).
    template <class... Cbs>
    requires(sizeof...(Cbs) > 0) explicit CallbackList(Cbs&&... cbs) { (add(std::forward<Cbs>(cbs)), ...); }
    CallbackList(const CallbackList&) = delete;
    CallbackList& operator=(const CallbackList&) = delete;
    CallbackList(CallbackList&&) = delete;
    CallbackList& operator=(CallbackList&&) = delete;
    ~CallbackList() = default;

    /// Adds a callback owned by the caller (it must outlive the list's use).
    template <class C>
    requires std::derived_from<C, Callback> CallbackList& add(C& cb) {
        // The static type's overrides are known only when it is the dynamic type.
        const unsigned mask = typeid(cb) == typeid(C) ? detail::hook_mask<C>() : detail::kAllHooks;
        entries_.push_back({&cb, nullptr, mask});
        rebuild();
        return *this;
    }
    /// Adds a shared callback (kept alive by the list). @throws InvalidArgument for a null pointer
    template <class C>
    requires std::derived_from<C, Callback> CallbackList& add(std::shared_ptr<C> cb) {
        if (!cb) throw InvalidArgument("traincb: CallbackList: add() got a null shared_ptr; pass a callback");
        const unsigned mask = typeid(*cb) == typeid(C) ? detail::hook_mask<C>() : detail::kAllHooks;
        Callback* raw = cb.get();
        entries_.push_back({raw, std::shared_ptr<Callback>(std::move(cb)), mask});
        rebuild();
        return *this;
    }
    /// Adds every callback of another list (by reference to the same objects).
    CallbackList& add(CallbackList& other);

    /// Attaches a model so callbacks can reach its capabilities (learning rate, state).
    template <class M>
    void set_model(M& model) {
        owned_model_ = std::make_unique<detail::ModelHandleFor<M>>(model);
        ctx_.model_ = owned_model_.get();
    }
    /// Attaches an existing model handle (kept by the caller).
    void set_model_handle(ModelHandle& h) noexcept { ctx_.model_ = &h; }
    /// Sets the run's parameters (epochs, batch size, known log keys, ...).
    void set_params(TrainParams p) { ctx_.params_ = std::move(p); }
    /// Uses `comm` for collective decisions instead of the single-process identity. With more than
    /// one rank the list runs in data-parallel mode (docs/distributed.md): every hook runs every
    /// callback with their exceptions held, then the ranks vote once (a failure, a stop request, a
    /// pending signal, and where each rank is), so that every rank throws at the same hook (a
    /// failing rank its own exception, the others RemoteRankError naming the lowest failing rank),
    /// stops at the same epoch and is
    /// interrupted at the same batch. on_train_batch_end, on_epoch_end, on_train_begin and
    /// on_train_end always vote; the other hooks vote when some callback overrides them. Every
    /// rank must call the same hooks in the same order (a rank out of step is a LogicError on
    /// every rank, naming where each rank is), and callbacks must not call collectives themselves
    /// except where every rank is sure to reach them.
    void set_communicator(Communicator& comm) noexcept;
    /// True when the communicator has more than one rank (data-parallel mode).
    [[nodiscard]] bool distributed() const noexcept { return distributed_; }
    /// The interruption a driver acts on after a hook: interrupt_signal() (0: none); in
    /// data-parallel mode, the one the ranks agreed on at the last vote, so that a signal to any
    /// rank interrupts every rank at the same batch.
    [[nodiscard]] int interrupt_to_handle() const noexcept {
        return distributed_ ? agreed_interrupt_ : interrupt_signal();
    }
    /// Sets the global step (batches done so far), e.g. after resuming.
    void set_global_step(std::int64_t s) noexcept { ctx_.global_step_ = s; }
    /// Records each epoch's logs into `h` at on_epoch_end, after every callback's on_epoch_end and
    /// before on_epoch_commit (so a checkpoint holds the History up to its epoch); nullptr stops it.
    void set_history(History* h) noexcept { ctx_.history_ = h; }
    /// Publishes the driver's run state to callbacks (kept by the caller); nullptr for none.
    void set_run_state(const RunState* s) noexcept { ctx_.run_state_ = s; }
    /// Declares that the driver keeps snapshots and acts on rollback requests (Trainer does): it
    /// takes a snapshot before a batch when take_snapshot_request() is true, and after a batch
    /// whose on_train_batch_end asked (take_rollback_request()), restores it and skips the batch.
    void set_rollback_support(bool on) noexcept {
        ctx_.rollback_supported_ = on;
        if (!on) ctx_.snapshot_requested_ = ctx_.rollback_requested_ = false;
    }
    /// For the driver: true (once) when a callback asked for a snapshot since the last call.
    [[nodiscard]] bool take_snapshot_request() noexcept { return std::exchange(ctx_.snapshot_requested_, false); }
    /// For the driver, after on_train_batch_end: true (once) when a callback asked to roll the
    /// batch back (the source and reason stay readable in the context until the next batch).
    [[nodiscard]] bool take_rollback_request() noexcept { return std::exchange(ctx_.rollback_requested_, false); }

    /// The shared context (read it after a hook to see stop requests etc.).
    [[nodiscard]] Context& context() noexcept { return ctx_; }
    /// Number of callbacks.
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    /// The i-th callback.
    [[nodiscard]] Callback& operator[](std::size_t i) const noexcept { return *entries_[i].cb; }
    /// True when some callback overrides on_train_batch_end (and wants it called, see
    /// Callback::wants_train_batch_end) or on_train_batch_commit (the driver can skip building
    /// batch logs otherwise).
    [[nodiscard]] bool wants_batch_logs() const noexcept { return !batch_end_.empty() || !batch_commit_.empty(); }
    /// True when some callback overrides on_interrupt (e.g. a ModelCheckpoint that saves then).
    [[nodiscard]] bool handles_interrupt() const noexcept { return !interrupt_.empty(); }

    /// Checks, before the first epoch, that every callback's capabilities and keys are available.
    /// @throws InvalidArgument naming the callback, the missing key (with the closest known key)
    /// or the missing model member.
    void validate() const;

    /// Starts a run: resets the stop request and the context, asks each callback again whether it
    /// wants on_train_batch_end, then calls on_train_begin. In data-parallel mode the ranks then
    /// check that they run the same callbacks with the same options, parameters and data-order
    /// options (a LogicError on every rank names what differs).
    /// @throws InvalidArgument from validate() when a callback's needs cannot be met.
    void on_train_begin();
    /// Starts epoch `epoch` (0-based, absolute).
    void on_epoch_begin(int epoch);
    /// Before training batch `batch` (0-based within the epoch). A rollback request made outside
    /// on_train_batch_end is dropped here.
    void on_train_batch_begin(int batch);
    /// After training batch `batch`, with the running epoch means; counts one global step. Then
    /// runs every on_train_batch_commit. Once a callback asks to roll the batch back
    /// (Context::request_rollback), the later callbacks' on_train_batch_end and every commit are
    /// not run: the batch is being undone. In data-parallel mode the ranks vote after every batch
    /// (even with no callback), so that a stop request or a signal on any rank is acted on by
    /// every rank after the same batch.
    void on_train_batch_end(int batch, Logs& logs);
    /// After training batch `batch`, for loops that keep no batch logs.
    void on_train_batch_end(int batch);
    /// Before validation.
    void on_test_begin();
    /// After validation, with the unprefixed validation values.
    void on_test_end(Logs& logs);
    /// Continues epoch `epoch` from the middle (a resumed run): no hook runs, since the epoch's
    /// on_epoch_begin ran in the run that wrote the checkpoint and its effects are in the
    /// restored state.
    void on_epoch_resume(int epoch) noexcept {
        ctx_.epoch_ = epoch;
        ctx_.batch_ = -1;
        ctx_.logs_ = nullptr;
    }
    /// Ends epoch `epoch`; callbacks may add keys to `logs` (seen by later callbacks). Then runs
    /// every on_before_epoch_commit, records the logs in the History (set_history) and runs every
    /// on_epoch_commit. In data-parallel mode the ranks then vote, checking that their logs hold
    /// the same keys.
    void on_epoch_end(int epoch, Logs& logs);
    /// Training is being interrupted after the last completed batch (`batch` >= 0, 0-based within
    /// `epoch`) or epoch (`batch` == -1): runs every on_interrupt (checkpoints are saved there).
    void on_interrupt(int epoch, int batch);
    /// True (on every rank) once any callback asked to stop. In data-parallel mode this is the
    /// request the ranks agreed on at the last vote: no collective here, so a driver may ask after
    /// every batch for free.
    [[nodiscard]] bool stop_requested() const noexcept { return ctx_.stop_requested_; }
    /// Runs every on_run_event with `event` (see Context::report, which fills its position).
    /// Events may be reported on one rank only, so this never votes; an exception it throws from
    /// within a hook is held and voted on with that hook's.
    /// @throws the first exception of an on_run_event, after every one ran
    void report(const RunEvent& event);

    /// Ends the run. With no argument, the end is "stopped" when a stop was requested and
    /// "completed" otherwise. Every callback's on_train_end runs even if an earlier one throws;
    /// the first such exception is rethrown afterwards (in data-parallel mode, after the vote).
    void on_train_end();
    /// Ends the run with an explicit reason (e.g. an exception caught by the driver).
    void on_train_end(TrainEnd end);
    /// Ends the run because `error` escaped the loop: on_train_end sees kind Exception and
    /// the exception's message. Exceptions thrown by on_train_end itself are swallowed here so the
    /// original one can propagate (the caller rethrows it). In data-parallel mode no vote is taken
    /// (the ranks are already failing together, or one is failing alone: see MpiSession).
    void on_train_end(const std::exception_ptr& error) noexcept;

private:
    struct Entry {
        Callback* cb;
        std::shared_ptr<Callback> owner;
        unsigned mask;
    };
    // Runs f(cb) for each callback, holding the first exception (the others are dropped).
    template <class F>
    static void run_all(const std::vector<Callback*>& cbs, std::exception_ptr& first, F&& f) {
        for (Callback* cb : cbs) run_one(first, [&] { f(cb); });
    }
    template <class F>
    static void run_one(std::exception_ptr& first, F&& f) {
        try {
            f();
        } catch (...) {
            if (!first) first = std::current_exception();
        }
    }

    // A hash of the keys of `logs` (the values may differ in rounding; the keys may not).
    static std::uint64_t keys_hash(const Logs& logs) noexcept;

    // What every rank must agree on before the first epoch, one line per item: the run's
    // parameters and data-order options, and each callback with its hooks and options.
    [[nodiscard]] std::vector<std::string> config_lines() const;

    // Where this rank is, for the message when the ranks are out of step.
    [[nodiscard]] std::vector<std::string> where_lines(detail::SyncPoint p) const;

    // The ranks are not at the same place: every rank learns where each one is and throws the
    // same LogicError, naming the first difference from rank 0.
    [[noreturn]] void throw_out_of_step(detail::SyncPoint p) const;

    // The vote at the end of a hook in data-parallel mode (see set_communicator): throws on every
    // rank when one failed, or when the ranks are out of step; agrees on a stop request (with the
    // lowest requesting rank's source and reason) and on a pending interruption.
    void sync(detail::SyncPoint p, const std::exception_ptr& error, std::uint64_t extra);

    [[nodiscard]] const ModelHandle& model() const noexcept { return *ctx_.model_; }
    [[nodiscard]] std::string no_model_hint() const;
    void rebuild();

    std::vector<Entry> entries_{};
    std::vector<Callback*> train_begin_, train_end_, epoch_begin_, epoch_end_, batch_begin_, batch_end_, test_begin_,
        test_end_, epoch_commit_, batch_commit_, interrupt_, before_commit_, run_event_;
    ModelHandle null_model_;
    std::unique_ptr<ModelHandle> owned_model_{};
    Context ctx_ = make_context();
    Logs last_logs_;
    Logs scratch_;
    bool distributed_ = false;  // the communicator has more than one rank
    bool stop_agreed_ = false;  // a vote agreed on a stop request (its source and reason are rank 0's)
    int agreed_interrupt_ = 0;  // the interruption a vote agreed on (interrupt_signal()'s values)

    Context make_context();
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/callback-inl.hpp"
#endif
