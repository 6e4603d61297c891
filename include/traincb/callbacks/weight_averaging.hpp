#pragma once
/// @file callbacks/weight_averaging.hpp
/// WeightAveraging: an exponential moving average (EMA) or the uniform running mean (SWA) of the
/// model's weights (the tensors it visits as StateKind::Weight; never its training state), with
/// torch.optim.swa_utils.AveragedModel's convention: the average starts as a copy of the weights
/// after the first averaged step. With swap_for_validation, validation sees the average and
/// training continues from the raw weights; checkpoints always hold the raw weights in the model
/// and the average in this callback's state. After fit the model holds the average, unless
/// EarlyStopping restored the best epoch's weights. See docs/callbacks.md, "WeightAveraging".

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/callbacks/early_stopping.hpp"
#include "traincb/detail/config.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/errors.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0 {

/// How WeightAveraging averages the weights.
enum class AveragingMode {
    Ema,      ///< exponential moving average: avg = decay * avg + (1 - decay) * w
    Uniform,  ///< the arithmetic mean of the averaged steps' weights (stochastic weight averaging)
};

/// "ema" or "uniform".
[[nodiscard]] constexpr const char* to_string(AveragingMode m) noexcept {
    return m == AveragingMode::Ema ? "ema" : "uniform";
}

/// WeightAveraging's options. A step is averaged when, after it, the global step n (steps done
/// in the run, counted from 1, across resumes) and the absolute epoch e satisfy
/// n > start_step, e >= start_epoch and (n - start_step) % update_every == 0.
struct WeightAveragingOptions {
    AveragingMode mode = AveragingMode::Ema;  ///< Ema or Uniform
    double decay = 0.999;                     ///< EMA decay, in (0, 1) (ignored by Uniform, still checked)
    std::int64_t start_step = 0;              ///< >= 0; steps done before averaging may start
    int start_epoch = 0;                      ///< >= 0; absolute epochs before this one are not averaged
    std::int64_t update_every = 1;            ///< >= 1; average every update_every-th step
    bool swap_for_validation = true;          ///< validation (and on_epoch_end) sees the average
    std::string id{};                         ///< explicit state key ("" means "WeightAveraging")
};

/// Keeps an EMA or uniform average of the model's weights.
/// @code
/// traincb::WeightAveraging ema({.mode = traincb::AveragingMode::Ema, .decay = 0.999});
/// @endcode
class WeightAveraging final : public Callback {
public:
    /// @throws InvalidArgument for a decay outside (0, 1) or NaN, update_every < 1, or a negative
    /// start_step or start_epoch.
    explicit WeightAveraging(WeightAveragingOptions options = {});

    /// The options it was built with.
    [[nodiscard]] const WeightAveragingOptions& options() const noexcept { return opt_; }
    /// Steps averaged so far (0: no average yet, so nothing is swapped in).
    [[nodiscard]] std::int64_t averaged_steps() const noexcept { return n_; }
    /// True while the model holds the average for validation (from on_test_begin to
    /// on_before_epoch_commit).
    [[nodiscard]] bool swapped() const noexcept { return swapped_; }
    /// True when the step that brought the global step to `step` (counted from 1) in absolute epoch
    /// `epoch` is averaged.
    [[nodiscard]] bool averages_step(std::int64_t step, int epoch) const noexcept {
        return step > opt_.start_step && epoch >= opt_.start_epoch && (step - opt_.start_step) % opt_.update_every == 0;
    }
    /// The average as owned row-major tensors named as the model names its weights, in their
    /// dtypes (an F16 or BF16 weight's float average rounded to nearest, ties to even: what the
    /// model receives); empty before the first averaged step. Allocates: for inspection and
    /// export, not for every step.
    [[nodiscard]] StateDict average() const { return tensors(true); }
    /// Bytes held: the average and the buffer of the raw weights (each the size of the weights;
    /// the average of an F16 or BF16 weight is kept in float, twice its size).
    [[nodiscard]] std::size_t bytes() const noexcept {
        std::size_t n = 0;
        for (const Entry& e : entries_) n += e.avg.bytes() + e.raw.bytes();
        return n;
    }

    /// "WeightAveraging".
    [[nodiscard]] TRAINCB_INLINE std::string name() const override;
    /// Model state (checked before epoch 1).
    [[nodiscard]] TRAINCB_INLINE Capabilities required_capabilities() const override;
    /// The explicit id, else "WeightAveraging".
    [[nodiscard]] TRAINCB_INLINE std::string state_key() const override;

    /// Forgets any average and sizes the buffers for the model's weights (the only allocations).
    /// @throws InvalidArgument when the model has no state, visits no weight, or another
    /// WeightAveraging is in the list.
    TRAINCB_INLINE void on_train_begin(Context& ctx) override;
    /// Puts the raw weights back if a loop validated without ending the epoch.
    TRAINCB_INLINE void on_epoch_begin(Context& ctx) override;
    /// Puts the raw weights back if a loop validated in the middle of the epoch, before training
    /// goes on.
    TRAINCB_INLINE void on_train_batch_begin(Context& ctx) override;
    /// Averages the weights after an averaged step. @throws LogicError when the batch was trained
    /// while the average was swapped in (a loop that validated mid-epoch without calling
    /// on_train_batch_begin).
    TRAINCB_INLINE void on_train_batch_end(Context& ctx) override;
    /// With swap_for_validation and an average, puts it into the model (the raw weights are kept).
    TRAINCB_INLINE void on_test_begin(Context& ctx) override;
    /// Puts the raw weights back after every callback's on_epoch_end, before any checkpoint.
    TRAINCB_INLINE void on_before_epoch_commit(Context& ctx) override;
    /// Leaves the average in the model, on every exit, unless EarlyStopping restored the best
    /// epoch's weights (those win: they are what validation scored).
    TRAINCB_INLINE void on_train_end(Context& ctx) override;

    /// Writes the number of averaged steps and the options (version 1), and the average as tensors
    /// named as the model's weights (that of an F16 or BF16 weight as its F32 accumulator, so that
    /// a resumed run averages on from the same floats). Warns when called while the average is swapped in (the
    /// model's tensors then hold the average, not the raw weights).
    TRAINCB_INLINE void save_state(CallbackState& s) const override;
    /// Restores what save_state wrote. Changed options win, with a warning.
    /// @throws FormatError for another version, a malformed state, or an average that does not
    /// fit the model's weights, naming the state key
    TRAINCB_INLINE void load_state(const CallbackState& s, Context& ctx) override;

private:
    static constexpr int kStateVersion = 1;

    // True for the 16-bit float dtypes, whose average is accumulated in float.
    static constexpr bool is_half(DType t) noexcept { return t == DType::F16 || t == DType::BF16; }
    // The value of a 16-bit float element of dtype `t`, and the nearest bits (ties to even).
    static float half_value(DType t, std::uint16_t bits) noexcept {
        return t == DType::F16 ? half_to_float(bits) : bfloat16_to_float(bits);
    }
    static std::uint16_t half_bits(DType t, float value) noexcept {
        return t == DType::F16 ? float_to_half(value) : float_to_bfloat16(value);
    }
    // Element i of a model's 16-bit float tensor (copied: the framework's half type is not ours).
    static std::uint16_t half_at(const void* data, std::size_t i) noexcept {
        std::uint16_t b = 0;
        std::memcpy(&b, static_cast<const std::byte*>(data) + 2 * i, 2);
        return b;
    }

    // Typed storage, so that the arithmetic reads and writes real float and double objects;
    // resizing keeps the capacity, so a second run of the same model allocates nothing. An
    // average's buffer (`accumulate`) holds an F16 or BF16 weight as floats.
    struct Buffer {
        DType dtype = DType::F64;
        bool floats = false;  // f32 holds the values: an F32 weight, or an F16/BF16 average
        std::vector<double> f64{};
        std::vector<float> f32{};
        std::vector<std::byte> other{};
        void resize(DType t, std::size_t count, std::size_t bytes, bool accumulate);
        [[nodiscard]] void* data() noexcept {
            if (dtype == DType::F64) return f64.data();
            if (floats) return f32.data();
            return other.data();
        }
        [[nodiscard]] const void* data() const noexcept { return const_cast<Buffer*>(this)->data(); }
        [[nodiscard]] std::size_t bytes() const noexcept {
            return f64.size() * sizeof(double) + f32.size() * sizeof(float) + other.size();
        }
    };
    // One weight tensor: its name, its layout in the model, the average and the raw weights kept
    // while the average is swapped in.
    struct Entry {
        std::string name{};
        detail::TensorLayout layout{};  // dtype and shape
        Buffer avg{}, raw{};
    };

    // Visits the model's weights in order, checking each against its entry.
    struct WeightVisitor : StateVisitor {
        explicit WeightVisitor(WeightAveraging& s) : self(s) {}
        // The entry of weight view `v`, or nullptr for training state.
        Entry* next(const TensorView& v);
        void finish() const {
            if (index != self.entries_.size()) changed("(a weight no longer visited)");
        }
        [[noreturn]] static void changed(std::string_view name);
        WeightAveraging& self;
        std::size_t index = 0;
    };

    // The average's update after an averaged step (the first one copies the weights).
    struct Updater final : WeightVisitor {
        using WeightVisitor::WeightVisitor;
        TRAINCB_INLINE void visit(const TensorView& v) override;
    };

    // Swaps in (raw <- model, model <- average) or out (model <- raw).
    struct Swapper final : WeightVisitor {
        Swapper(WeightAveraging& s, bool in) : WeightVisitor(s), swap_in(in) {}
        TRAINCB_INLINE void visit(const TensorView& v) override;
        // Writes an F16/BF16 weight's float average into `data`, rounded to nearest, ties to even.
        static void write_rounded(const Entry& e, void* data) noexcept;
        // True when the model's tensor `v` still holds what swapping in wrote.
        static bool holds_average(const Entry& e, const TensorView& v) noexcept;
        bool swap_in;
    };

    // Records the layout of each weight and sizes its buffers.
    struct Sizer final : StateVisitor {
        explicit Sizer(WeightAveraging& s) : self(s) {}
        TRAINCB_INLINE void visit(const TensorView& v) override;
        WeightAveraging& self;
        std::size_t index = 0;
    };

    // One update of `count` averaged values; w(i) is the weight's element i as a T.
    template <class T, class Weight>
    void average(T* avg, std::size_t count, Weight w) const noexcept {
        if (opt_.mode == AveragingMode::Ema) {
            const T d = static_cast<T>(opt_.decay);
            const T e = static_cast<T>(1.0 - opt_.decay);
            for (std::size_t i = 0; i < count; ++i) avg[i] = d * avg[i] + e * w(i);
        } else {
            const T k = static_cast<T>(n_ + 1);  // the running mean of n_ + 1 values
            for (std::size_t i = 0; i < count; ++i) avg[i] += (w(i) - avg[i]) / k;
        }
    }

    // The average as tensors: an F16/BF16 weight's `rounded` to its dtype, else its F32
    // accumulator (the checkpointed state).
    [[nodiscard]] StateDict tensors(bool rounded) const;

    // Sizes the buffers for the model's weights.
    void prepare(ModelHandle& model);

    void swap_out(ModelHandle& model);

    void warn_changed(const std::string& weight);

    // True when an EarlyStopping of the list has already restored its best weights at this
    // on_train_end (one that comes later in the list restores after this callback anyway).
    static bool early_stopping_restored(Context& ctx);

    [[nodiscard]] nlohmann::json options_json() const;

    WeightAveragingOptions opt_;
    std::vector<Entry> entries_{};
    std::int64_t n_ = 0;
    bool swapped_ = false;
    bool warned_changed_ = false;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
// Definitions: inline here, or compiled once into traincb::compiled (traincb/detail/config.hpp).
namespace traincb::inline v0 {

TRAINCB_INLINE WeightAveraging::WeightAveraging(WeightAveragingOptions options) : opt_(std::move(options)) {
    auto bad = [](const std::string& what) { throw InvalidArgument(detail::cat("traincb: WeightAveraging: ", what)); };
    if (!(opt_.decay > 0 && opt_.decay < 1))
        bad(detail::cat("decay must be in (0, 1), got ", detail::format_double(opt_.decay),
                        "; pass e.g. 0.999 (the weight of the old average at each update)"));
    if (opt_.update_every < 1)
        bad(detail::cat("update_every must be >= 1, got ", std::to_string(opt_.update_every),
                        "; pass 1 to average after every step"));
    if (opt_.start_step < 0)
        bad(detail::cat("start_step must be >= 0, got ", std::to_string(opt_.start_step),
                        "; pass 0 to average from the first step"));
    if (opt_.start_epoch < 0)
        bad(detail::cat("start_epoch must be >= 0, got ", std::to_string(opt_.start_epoch),
                        "; pass 0 to average from the first epoch"));
}

TRAINCB_INLINE std::string WeightAveraging::name() const {
    return "WeightAveraging";
}

TRAINCB_INLINE Capabilities WeightAveraging::required_capabilities() const {
    return {.learning_rate = false, .state = true};
}

TRAINCB_INLINE std::string WeightAveraging::state_key() const {
    return opt_.id.empty() ? "WeightAveraging" : opt_.id;
}

TRAINCB_INLINE void WeightAveraging::on_train_begin(Context& ctx) {
    n_ = 0;
    swapped_ = false;
    warned_changed_ = false;
    if (!ctx.model().has_state())
        throw InvalidArgument(
            "traincb: WeightAveraging: needs the model's state, but the model has no "
            "visit_state(traincb::StateVisitor&); add it (see traincb/state.hpp) or specialise "
            "traincb::model_traits");
    const CallbackList& list = ctx.callbacks();
    for (std::size_t i = 0; i < list.size(); ++i)
        if (&list[i] != this && dynamic_cast<const WeightAveraging*>(&list[i]) != nullptr)
            throw InvalidArgument(
                "traincb: WeightAveraging: the callback list holds two WeightAveraging callbacks; both would swap "
                "their average into the model and put the wrong weights back; use one per run");
    prepare(ctx.model());
    if (entries_.empty())
        throw InvalidArgument(
            "traincb: WeightAveraging: the model visits no weight (every tensor is marked as training state), "
            "so there is nothing to average; visit the weights with traincb::visit (see traincb/state.hpp)");
}

TRAINCB_INLINE void WeightAveraging::on_epoch_begin(Context& ctx) {
    swap_out(ctx.model());
}

TRAINCB_INLINE void WeightAveraging::on_train_batch_begin(Context& ctx) {
    swap_out(ctx.model());
}

TRAINCB_INLINE void WeightAveraging::on_train_batch_end(Context& ctx) {
    if (swapped_)
        throw LogicError(
            "traincb: WeightAveraging: a batch was trained while the averaged weights were in the model (after "
            "on_test_begin); call on_train_batch_begin before each batch, or on_epoch_end after validation, so "
            "that training continues from the raw weights");
    if (!averages_step(ctx.global_step(), ctx.epoch())) return;
    Updater u(*this);
    ctx.model().visit_state(u);
    u.finish();
    ++n_;
}

TRAINCB_INLINE void WeightAveraging::on_test_begin(Context& ctx) {
    if (!opt_.swap_for_validation || n_ == 0 || swapped_) return;
    Swapper s(*this, true);
    ctx.model().visit_state(s);
    s.finish();
    swapped_ = true;
}

TRAINCB_INLINE void WeightAveraging::on_before_epoch_commit(Context& ctx) {
    swap_out(ctx.model());
}

TRAINCB_INLINE void WeightAveraging::on_train_end(Context& ctx) {
    if (n_ == 0) {
        if (ctx.end().kind != EndKind::Exception)
            warn(
                "traincb: WeightAveraging: no step was averaged (start_step or start_epoch lies beyond the "
                "run), so the model keeps its trained weights");
        return;
    }
    if (swapped_) {  // training ended during validation: the average is already in
        swapped_ = false;
        return;
    }
    if (early_stopping_restored(ctx)) return;
    Swapper s(*this, true);
    ctx.model().visit_state(s);
    s.finish();
}

TRAINCB_INLINE void WeightAveraging::save_state(CallbackState& s) const {
    if (swapped_)
        warn(
            "traincb: WeightAveraging: a checkpoint is being taken while the averaged weights are in the model "
            "(between on_test_begin and on_before_epoch_commit): its model tensors hold the average, not the raw "
            "weights; save checkpoints in on_epoch_commit");
    s.version = kStateVersion;
    s.json = {{"averaged_steps", n_}, {"options", options_json()}};
    s.tensors = tensors(false);
}

TRAINCB_INLINE void WeightAveraging::load_state(const CallbackState& s, Context& ctx) {
    s.require_version(kStateVersion, "WeightAveraging", state_key());
    std::int64_t n = 0;
    try {
        const auto& v = s.json.at("averaged_steps");
        if (!v.is_number_integer())
            throw std::invalid_argument(detail::cat("averaged_steps ", v.dump(), " is not an integer"));
        n = v.get<std::int64_t>();
        if (n < 0) throw std::invalid_argument(detail::cat("averaged_steps ", std::to_string(n), " < 0"));
    } catch (const std::exception& e) {
        throw FormatError(detail::cat("traincb: WeightAveraging: checkpointed state (key '", state_key(),
                                      "') is malformed (", e.what(),
                                      "); it was not written by this traincb: resume from another checkpoint"));
    }
    swap_out(ctx.model());
    prepare(ctx.model());
    if (n > 0) {
        try {
            for (Entry& e : entries_) {
                const Tensor* t = s.tensors.find(e.name);
                if (t == nullptr) throw FormatError(detail::cat("the average of weight '", e.name, "' is missing"));
                TensorView v = e.layout.view(e.name, e.avg.data());
                if (is_half(v.dtype)) v.dtype = DType::F32;  // its float accumulator
                from_tensor(*t, v);
            }
        } catch (const FormatError& e) {
            n_ = 0;
            throw FormatError(detail::cat("traincb: WeightAveraging: checkpointed state (key '", state_key(),
                                          "') does not fit the model: ", e.what()));
        }
    }
    n_ = n;
    const auto it = s.json.find("options");
    if (it != s.json.end() && *it != options_json())
        warn(detail::cat("traincb: WeightAveraging: options changed since the checkpoint (was ", it->dump(), ", now ",
                         options_json().dump(), "); the new options apply to the loaded average"));
}

TRAINCB_INLINE void WeightAveraging::Buffer::resize(DType t, std::size_t count, std::size_t bytes, bool accumulate) {
    dtype = t;
    floats = t == DType::F32 || (accumulate && is_half(t));
    f64.resize(t == DType::F64 ? count : 0);
    f32.resize(floats ? count : 0);
    other.resize(t == DType::F64 || floats ? 0 : bytes);
}

TRAINCB_INLINE WeightAveraging::Entry* WeightAveraging::WeightVisitor::next(const TensorView& v) {
    if (v.kind != StateKind::Weight) return nullptr;
    if (index >= self.entries_.size() || self.entries_[index].name != v.name ||
        self.entries_[index].layout.dtype() != v.dtype || self.entries_[index].layout.size() != v.size())
        changed(v.name);
    return &self.entries_[index++];
}

TRAINCB_INLINE void WeightAveraging::WeightVisitor::changed(std::string_view name) {
    throw LogicError(detail::cat("traincb: WeightAveraging: the model's weight '", name,
                                 "' does not match the one seen at on_train_begin; the model's weights must "
                                 "keep their names, dtypes and shapes during training"));
}

TRAINCB_INLINE void WeightAveraging::Updater::visit(const TensorView& v) {
    Entry* e = next(v);
    if (e == nullptr) return;
    const auto count = static_cast<std::size_t>(v.size());
    if (is_half(v.dtype)) {
        // Accumulated in float; the model receives the average rounded (see Swapper).
        float* avg = e->avg.f32.data();
        const DType t = v.dtype;
        const void* w = v.data;
        if (self.n_ == 0) {
            for (std::size_t i = 0; i < count; ++i) avg[i] = half_value(t, half_at(w, i));
        } else {
            self.average(avg, count, [t, w](std::size_t i) { return half_value(t, half_at(w, i)); });
        }
    } else if (self.n_ == 0 || (v.dtype != DType::F64 && v.dtype != DType::F32)) {
        // The first average is a copy; integer and bool weights are not averaged: the
        // average holds their latest value.
        if (v.bytes() > 0) std::memcpy(e->avg.data(), v.data, v.bytes());
    } else if (v.dtype == DType::F64) {
        const auto* w = static_cast<const double*>(v.data);
        self.average(e->avg.f64.data(), count, [w](std::size_t i) { return w[i]; });
    } else {
        const auto* w = static_cast<const float*>(v.data);
        self.average(e->avg.f32.data(), count, [w](std::size_t i) { return w[i]; });
    }
}

TRAINCB_INLINE void WeightAveraging::Swapper::visit(const TensorView& v) {
    Entry* e = next(v);
    if (e == nullptr || v.bytes() == 0) return;
    if (swap_in) {
        std::memcpy(e->raw.data(), v.data, v.bytes());
        if (is_half(v.dtype))
            write_rounded(*e, v.data);
        else
            std::memcpy(v.data, e->avg.data(), v.bytes());
    } else {
        if (!holds_average(*e, v)) self.warn_changed(e->name);
        std::memcpy(v.data, e->raw.data(), v.bytes());
    }
}

TRAINCB_INLINE void WeightAveraging::Swapper::write_rounded(const Entry& e, void* data) noexcept {
    const DType t = e.layout.dtype();
    auto* out = static_cast<std::byte*>(data);
    for (std::size_t i = 0; i < e.avg.f32.size(); ++i) {
        const std::uint16_t b = half_bits(t, e.avg.f32[i]);
        std::memcpy(out + 2 * i, &b, 2);
    }
}

TRAINCB_INLINE bool WeightAveraging::Swapper::holds_average(const Entry& e, const TensorView& v) noexcept {
    if (!is_half(v.dtype)) return std::memcmp(v.data, e.avg.data(), v.bytes()) == 0;
    for (std::size_t i = 0; i < e.avg.f32.size(); ++i)
        if (half_at(v.data, i) != half_bits(v.dtype, e.avg.f32[i])) return false;
    return true;
}

TRAINCB_INLINE void WeightAveraging::Sizer::visit(const TensorView& v) {
    if (v.kind != StateKind::Weight) return;
    if (index == self.entries_.size()) self.entries_.emplace_back();
    Entry& e = self.entries_[index++];
    if (e.name != v.name) e.name = std::string(v.name);
    e.layout.assign(v);
    const auto count = static_cast<std::size_t>(v.size());
    e.avg.resize(v.dtype, count, v.bytes(), true);
    e.raw.resize(v.dtype, count, v.bytes(), false);
}

TRAINCB_INLINE StateDict WeightAveraging::tensors(bool rounded) const {
    StateDict d;
    if (n_ == 0) return d;
    std::vector<std::byte> bits;
    for (const Entry& e : entries_) {
        TensorView v = e.layout.view(e.name, const_cast<void*>(e.avg.data()));
        if (is_half(v.dtype) && rounded) {
            bits.resize(v.bytes());
            Swapper::write_rounded(e, bits.data());
            v.data = bits.data();
        } else if (is_half(v.dtype)) {
            v.dtype = DType::F32;
        }
        d.put(to_tensor(v));
    }
    return d;
}

TRAINCB_INLINE void WeightAveraging::prepare(ModelHandle& model) {
    Sizer s(*this);
    model.visit_state(s);
    entries_.resize(s.index);
}

TRAINCB_INLINE void WeightAveraging::swap_out(ModelHandle& model) {
    if (!swapped_) return;
    Swapper s(*this, false);
    model.visit_state(s);
    s.finish();
    swapped_ = false;
}

TRAINCB_INLINE void WeightAveraging::warn_changed(const std::string& weight) {
    if (warned_changed_) return;
    warned_changed_ = true;
    warn(detail::cat("traincb: WeightAveraging: the weight '", weight,
                     "' changed while the averaged weights were in the model (from on_test_begin to the end of "
                     "on_epoch_end), and the raw weights put back overwrite the change; if it is training state "
                     "(a learning rate, an optimizer moment, a step count), visit it with "
                     "traincb::visit_training_state"));
}

TRAINCB_INLINE bool WeightAveraging::early_stopping_restored(Context& ctx) {
    const CallbackList& list = ctx.callbacks();
    for (std::size_t i = 0; i < list.size(); ++i)
        if (const auto* es = dynamic_cast<const EarlyStopping*>(&list[i]); es && es->restored_from_epoch()) return true;
    return false;
}

TRAINCB_INLINE nlohmann::json WeightAveraging::options_json() const {
    return {{"mode", to_string(opt_.mode)},      {"decay", detail::format_double(opt_.decay)},
            {"start_step", opt_.start_step},     {"start_epoch", opt_.start_epoch},
            {"update_every", opt_.update_every}, {"swap_for_validation", opt_.swap_for_validation}};
}

}  // namespace traincb::inline v0
#endif  // TRAINCB_DEFINITIONS
