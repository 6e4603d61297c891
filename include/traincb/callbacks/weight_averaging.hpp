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
#include "traincb/callbacks/weight_averaging-inl.hpp"
#endif
