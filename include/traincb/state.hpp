#pragma once
/// @file state.hpp
/// Model state: how a model exposes its named tensors so that traincb can snapshot them in memory
/// (EarlyStopping's restore_best_weights, WeightAveraging) and save them to disk (ModelCheckpoint).
/// One function serves both directions:
///
///     void visit_state(traincb::StateVisitor& v) {
///         traincb::visit(v, "dense1.weight", W1_);                  // a weight: any Eigen matrix or vector
///         traincb::visit_training_state(v, "adam.m.dense1", m1_);   // optimizer state
///         traincb::visit_training_state(v, "adam.step", step_);     // double, float or std::int64_t scalars
///     }
///
/// Each entry has a kind (StateKind): a tensor visited with `visit` is a weight (a parameter or a
/// buffer such as BatchNorm's running mean); one visited with `visit_training_state` is training
/// state (optimizer moments, step counts, the learning rate, RNG state). Checkpoints save both
/// kinds; restore_best_weights restores the weights only, as Keras does, so a learning rate that
/// ReduceLROnPlateau lowered and the optimizer's moments are not rolled back; WeightAveraging
/// averages the weights only. A model that marks nothing has weights only (what every tensor was
/// before the distinction).
///
/// A saving visitor reads the tensors; a loading visitor writes into them (shapes must match).
///
/// A framework's tensor (any rank, float16 and bfloat16 included) is visited through its raw
/// memory, keeping its shape in checkpoints:
///
///     const std::array<std::int64_t, 4> shape{out, in, kh, kw};
///     traincb::visit(v, "conv1.weight", conv_data, traincb::DType::F16, shape);  // dense, row-major

#include <Eigen/Core>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

namespace detail {
/// "[1,2,3]" for a shape (any range of integers: a std::vector, a std::span, a framework's sizes).
template <class Shape>
[[nodiscard]] std::string shape_string(const Shape& shape) {
    std::string s = "[";
    bool first = true;
    for (const auto d : shape) {
        if (!first) s += ',';
        first = false;
        s += std::to_string(d);
    }
    s += ']';
    return s;
}
}  // namespace detail

static_assert(std::endian::native == std::endian::little,
              "traincb: state and file formats assume a little-endian machine");

/// Element types a state tensor may have (the safetensors names are F32, F64, I64, I32, U8, BOOL,
/// F16, BF16). F16 (IEEE binary16) and BF16 (bfloat16) have no C++ scalar type: they come from the
/// raw `visit` overload, and half_to_float / bfloat16_to_float read their elements.
enum class DType : std::uint8_t { F32, F64, I64, I32, U8, Bool, F16, BF16 };

/// Bytes per element.
[[nodiscard]] constexpr std::size_t dtype_size(DType t) noexcept {
    switch (t) {
        case DType::F64:
        case DType::I64:
            return 8;
        case DType::F32:
        case DType::I32:
            return 4;
        case DType::F16:
        case DType::BF16:
            return 2;
        case DType::U8:
        case DType::Bool:
            return 1;
    }
    return 0;
}

/// The safetensors name of a dtype ("F32", ...).
[[nodiscard]] constexpr const char* dtype_name(DType t) noexcept {
    switch (t) {
        case DType::F32:
            return "F32";
        case DType::F64:
            return "F64";
        case DType::I64:
            return "I64";
        case DType::I32:
            return "I32";
        case DType::U8:
            return "U8";
        case DType::Bool:
            return "BOOL";
        case DType::F16:
            return "F16";
        case DType::BF16:
            return "BF16";
    }
    return "?";
}

/// The value of an IEEE 754 binary16 (float16, DType::F16) element given by its bits: exact for
/// every value (normal, subnormal, zero, infinity); a NaN stays a NaN with its payload.
[[nodiscard]] inline float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000U) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1FU;
    const std::uint32_t mantissa = h & 0x3FFU;
    if (exponent == 0x1FU) return std::bit_cast<float>(sign | 0x7F800000U | (mantissa << 13));  // inf, NaN
    if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112U) << 23) | (mantissa << 13));
    // Zero or subnormal: mantissa * 2^-24, exact in float (at most 10 significant bits).
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24F;
    return sign != 0 ? -magnitude : magnitude;
}

/// The binary16 (DType::F16) bits nearest to `f`, ties to even (as numpy's float16 and torch's
/// half conversions): magnitudes from 65520 up become infinity, those up to 2^-25 a signed zero,
/// those below 2^-14 subnormals; a NaN stays a (quiet) NaN.
[[nodiscard]] inline std::uint16_t float_to_half(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000U);
    const std::uint32_t magnitude = x & 0x7FFFFFFFU;
    if (magnitude > 0x7F800000U)  // NaN: keep the top of the payload, set the quiet bit
        return static_cast<std::uint16_t>(sign | 0x7E00U | ((magnitude >> 13) & 0x3FFU));
    if (magnitude >= 0x477FF000U) return static_cast<std::uint16_t>(sign | 0x7C00U);  // >= 65520: inf
    if (magnitude >= 0x38800000U) {                                                   // >= 2^-14: a normal half
        // Rebias the exponent (127 -> 15), then round the 23-bit mantissa to 10 bits, ties to
        // even; a carry out of the mantissa correctly bumps the exponent.
        const std::uint32_t rebiased = magnitude - (112U << 23);
        return static_cast<std::uint16_t>(sign | ((rebiased + 0xFFFU + ((rebiased >> 13) & 1U)) >> 13));
    }
    if (magnitude <= 0x33000000U) return sign;  // <= 2^-25 (half the smallest subnormal): ties to zero
    // A subnormal half: the value in units of 2^-24, rounded to nearest, ties to even.
    const std::uint32_t exponent = magnitude >> 23;                         // 102 .. 112
    const std::uint32_t significand = (magnitude & 0x7FFFFFU) | 0x800000U;  // value = significand * 2^(exponent-150)
    const std::uint32_t shift = 126U - exponent;                            // 14 .. 24
    std::uint32_t q = significand >> shift;
    const std::uint32_t rest = significand & ((1U << shift) - 1U);
    const std::uint32_t half = 1U << (shift - 1U);
    if (rest > half || (rest == half && (q & 1U) != 0)) ++q;  // q == 0x400 is the smallest normal
    return static_cast<std::uint16_t>(sign | q);
}

/// The value of a bfloat16 (DType::BF16) element given by its bits (the top half of a float: exact).
[[nodiscard]] inline float bfloat16_to_float(std::uint16_t b) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

/// The bfloat16 (DType::BF16) bits nearest to `f`, ties to even (as torch's bfloat16 conversion);
/// a NaN stays a (quiet) NaN, finite values beyond the largest bfloat16 become infinity.
[[nodiscard]] inline std::uint16_t float_to_bfloat16(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if ((x & 0x7FFFFFFFU) > 0x7F800000U) return static_cast<std::uint16_t>((x >> 16) | 0x0040U);  // quiet NaN
    return static_cast<std::uint16_t>((x + 0x7FFFU + ((x >> 16) & 1U)) >> 16);
}

/// The DType of a C++ scalar type.
template <class T>
[[nodiscard]] constexpr DType dtype_of() noexcept {
    if constexpr (std::is_same_v<T, float>)
        return DType::F32;
    else if constexpr (std::is_same_v<T, double>)
        return DType::F64;
    else if constexpr (std::is_same_v<T, std::int64_t>)
        return DType::I64;
    else if constexpr (std::is_same_v<T, std::int32_t>)
        return DType::I32;
    else if constexpr (std::is_same_v<T, std::uint8_t>)
        return DType::U8;
    else if constexpr (std::is_same_v<T, bool>) {
        static_assert(sizeof(bool) == 1, "traincb: bool tensors need sizeof(bool) == 1");
        return DType::Bool;
    } else {
        static_assert(sizeof(T) == 0, "traincb: state tensors must be float, double, int64, int32, uint8 or bool");
        return DType::F32;
    }
}

/// What a state tensor is to training.
enum class StateKind : std::uint8_t {
    Weight,    ///< a parameter or buffer: restored by restore_best_weights, averaged by WeightAveraging
    Training,  ///< optimizer state, step counts, learning rate, RNG state: saved and resumed, never rolled back
};

/// Which state tensors an operation covers.
enum class StateFilter : std::uint8_t {
    All,       ///< every tensor (checkpoints, full snapshots)
    Weights,   ///< StateKind::Weight only
    Training,  ///< StateKind::Training only
};

/// True when `filter` covers a tensor of kind `kind`.
[[nodiscard]] constexpr bool selects(StateFilter filter, StateKind kind) noexcept {
    switch (filter) {
        case StateFilter::All:
            return true;
        case StateFilter::Weights:
            return kind == StateKind::Weight;
        case StateFilter::Training:
            return kind == StateKind::Training;
    }
    return true;
}

/// "weight" or "training".
[[nodiscard]] constexpr const char* to_string(StateKind k) noexcept {
    return k == StateKind::Weight ? "weight" : "training";
}

/// A non-owning view of one tensor of a model's state, in the model's own memory and layout.
struct TensorView {
    std::string_view name{};             ///< unique within the model, e.g. "dense1.weight"
    DType dtype = DType::F64;            ///< element type of `data`
    void* data = nullptr;                ///< rows*cols elements, densely packed
    std::int64_t rows = 1;               ///< for rank 1, the length is rows*cols; for rank 0, rows = cols = 1
    std::int64_t cols = 1;               ///< the Eigen object's cols()
    int rank = 2;                        ///< 0 (scalar), 1 (vector), 2 (matrix), or more (see `dims`)
    bool row_major = false;              ///< storage order of `data` (Eigen's default is column-major)
    StateKind kind = StateKind::Weight;  ///< a weight, or training state (visit_training_state)
    /// rank > 2: the full shape (data row-major and dense); rows = dims[0], cols = product of the rest
    std::span<const std::int64_t> dims{};

    /// Number of elements.
    [[nodiscard]] std::int64_t size() const noexcept { return rows * cols; }
    /// Number of bytes.
    [[nodiscard]] std::size_t bytes() const noexcept { return static_cast<std::size_t>(size()) * dtype_size(dtype); }
    /// The logical shape (row-major convention: [rows, cols], [n] or []; `dims` when rank > 2).
    [[nodiscard]] std::vector<std::int64_t> shape() const {
        if (rank > 2) return {dims.begin(), dims.end()};
        if (rank == 0) return {};
        if (rank == 1) return {rows * cols};
        return {rows, cols};
    }
};

/// Receives each tensor of a model's state in turn. Implemented by traincb's snapshot, restore,
/// save and load visitors; a model only calls `visit(...)` on it.
class StateVisitor {
public:
    StateVisitor() = default;
    StateVisitor(const StateVisitor&) = delete;
    StateVisitor& operator=(const StateVisitor&) = delete;
    virtual ~StateVisitor() = default;
    /// Called once per tensor. A loading visitor writes into `t.data` (shape already checked).
    virtual void visit(const TensorView& t) = 0;
};

/// Visits an Eigen matrix, vector or array (a plain object, so that its memory is dense) as a
/// weight, or as `kind`.
template <class Derived>
void visit(StateVisitor& v, std::string_view name, Eigen::PlainObjectBase<Derived>& m,
           StateKind kind = StateKind::Weight) {
    using Scalar = typename Derived::Scalar;
    TensorView t;
    t.name = name;
    t.dtype = dtype_of<Scalar>();
    t.data = m.data();
    t.rows = m.rows();
    t.cols = m.cols();
    t.rank = (Derived::ColsAtCompileTime == 1 || Derived::RowsAtCompileTime == 1) ? 1 : 2;
    t.row_major = Derived::IsRowMajor;
    t.kind = kind;
    v.visit(t);
}

/// Visits a scalar as a rank-0 tensor: a weight, or `kind` (a step counter or a learning rate is
/// training state: prefer visit_training_state for those).
template <class T>
requires std::is_arithmetic_v<T>
void visit(StateVisitor& v, std::string_view name, T& value, StateKind kind = StateKind::Weight) {
    TensorView t;
    t.name = name;
    t.dtype = dtype_of<T>();
    t.data = &value;
    t.rank = 0;
    t.kind = kind;
    v.visit(t);
}

/// Visits `data`, a dense ROW-MAJOR tensor of any rank (`shape` empty = scalar) and dtype `dtype`
/// (F16/BF16 included), e.g. a framework's tensor: a conv weight [out, in, kh, kw] keeps its
/// shape in checkpoints. Ranks 0 to 2 are seen as the ordinary views (row-major); a higher rank
/// as [shape[0], product of the rest] with `TensorView::dims` holding the full shape. `shape`
/// must stay valid during the call only (traincb keeps copies).
/// @throws InvalidArgument when a dimension is negative, the element count overflows, or `data`
/// is null while the tensor has elements (naming the tensor and its shape)
TRAINCB_INLINE void visit(StateVisitor& v, std::string_view name, void* data, DType dtype,
                          std::span<const std::int64_t> shape, StateKind kind = StateKind::Weight);

/// Visits an Eigen matrix, vector or array of training state (an optimizer's moments, ...).
template <class Derived>
void visit_training_state(StateVisitor& v, std::string_view name, Eigen::PlainObjectBase<Derived>& m) {
    visit(v, name, m, StateKind::Training);
}

/// Visits a scalar of training state (a step counter, the learning rate, an RNG word, ...).
template <class T>
requires std::is_arithmetic_v<T>
void visit_training_state(StateVisitor& v, std::string_view name, T& value) {
    visit(v, name, value, StateKind::Training);
}

/// Visits a dense row-major tensor of any rank and dtype as training state (a framework
/// optimizer's moments, ...): the raw `visit` overload with StateKind::Training.
/// @throws InvalidArgument as that overload
inline void visit_training_state(StateVisitor& v, std::string_view name, void* data, DType dtype,
                                 std::span<const std::int64_t> shape) {
    visit(v, name, data, dtype, shape, StateKind::Training);
}

/// Forwards to another visitor only the tensors a filter selects (e.g. the weights alone).
class FilteredStateVisitor final : public StateVisitor {
public:
    /// Forwards to `inner` each tensor `filter` selects.
    FilteredStateVisitor(StateVisitor& inner, StateFilter filter) noexcept : inner_(inner), filter_(filter) {}
    /// Forwards `t` when selected.
    void visit(const TensorView& t) override {
        if (selects(filter_, t.kind)) inner_.visit(t);
    }

private:
    StateVisitor& inner_;
    StateFilter filter_;
};

/// An owned tensor: a name, a dtype, a logical shape and densely packed ROW-MAJOR bytes (the
/// safetensors layout, which numpy and torch read directly).
struct Tensor {
    std::string name{};                 ///< the key in the checkpoint file, e.g. "model/dense1.weight"
    DType dtype = DType::F64;           ///< element type of `data`
    std::vector<std::int64_t> shape{};  ///< [] = scalar
    std::vector<std::byte> data{};      ///< row-major, little-endian

    /// Number of elements (product of the shape; 1 for a scalar).
    [[nodiscard]] std::int64_t numel() const noexcept {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    friend bool operator==(const Tensor&, const Tensor&) = default;
};

/// Copies a view into an owned row-major tensor (transposing a column-major matrix).
[[nodiscard]] TRAINCB_INLINE Tensor to_tensor(const TensorView& v);

/// Copies an owned row-major tensor into a view of the same dtype and element count.
/// @throws FormatError when the dtype or shape differ (the message names both).
TRAINCB_INLINE void from_tensor(const Tensor& t, const TensorView& v);

/// An ordered collection of owned tensors (what a checkpoint file holds).
class StateDict {
public:
    /// Adds or replaces a tensor.
    void put(Tensor t);
    /// The tensor named `name`, or nullptr.
    [[nodiscard]] const Tensor* find(std::string_view name) const noexcept {
        for (const auto& e : tensors_)
            if (e.name == name) return &e;
        return nullptr;
    }
    /// All tensors in insertion order.
    [[nodiscard]] const std::vector<Tensor>& tensors() const noexcept { return tensors_; }
    /// Mutable access to all tensors.
    [[nodiscard]] std::vector<Tensor>& tensors() noexcept { return tensors_; }
    /// Number of tensors.
    [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }
    /// True when empty.
    [[nodiscard]] bool empty() const noexcept { return tensors_.empty(); }
    /// Removes every tensor.
    void clear() noexcept { tensors_.clear(); }
    friend bool operator==(const StateDict&, const StateDict&) = default;

private:
    std::vector<Tensor> tensors_{};
};

/// An owned rank-1 tensor (shape [n]) holding a copy of `values`: how traincb stores bulk data
/// such as the History's columns and RocAuc's scores in a checkpoint.
template <class T>
[[nodiscard]] Tensor vector_tensor(std::string name, std::span<const T> values) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype_of<T>();
    t.shape = {static_cast<std::int64_t>(values.size())};
    t.data.resize(values.size_bytes());
    if (!values.empty()) std::memcpy(t.data.data(), values.data(), values.size_bytes());
    return t;
}

/// The elements of `t` when it is a rank-1 tensor of T's dtype holding `n` elements; false (and
/// `out` untouched) otherwise, so that the caller names what it expected in its own error.
template <class T>
[[nodiscard]] bool read_vector_tensor(const Tensor& t, std::size_t n, std::vector<T>& out) {
    if (t.dtype != dtype_of<T>() || t.shape.size() != 1 || t.shape[0] < 0 ||
        static_cast<std::uint64_t>(t.shape[0]) != n || t.data.size() != n * sizeof(T))
        return false;
    std::vector<T> v(n);
    if (n > 0) std::memcpy(v.data(), t.data.data(), t.data.size());
    out = std::move(v);
    return true;
}

/// Collects a model's state into a StateDict (row-major copies).
class StateCollector final : public StateVisitor {
public:
    /// @param out receives one tensor per visited view that `filter` selects; `prefix` is
    /// prepended to each name.
    explicit StateCollector(StateDict& out, std::string prefix = {}, StateFilter filter = StateFilter::All)
        : out_(out), prefix_(std::move(prefix)), filter_(filter) {}
    /// Copies `v` (row-major) into the StateDict as prefix + name, replacing a tensor of that name.
    TRAINCB_INLINE void visit(const TensorView& v) override;

private:
    StateDict& out_;
    std::string prefix_{};
    StateFilter filter_ = StateFilter::All;
};

/// Loads a StateDict into a model's tensors. Every tensor the model visits that the filter selects
/// must be present (with StateFilter::Weights, the weights of a checkpoint go into a model whose
/// optimizer state stays as it is).
class StateLoader final : public StateVisitor {
public:
    /// @param in the tensors to load; `prefix` is prepended to each visited name when looking up;
    /// tensors that `filter` does not select are left untouched.
    explicit StateLoader(const StateDict& in, std::string prefix = {}, StateFilter filter = StateFilter::All)
        : in_(in), prefix_(std::move(prefix)), filter_(filter) {}
    /// @throws FormatError when a tensor is missing or its shape/dtype differ.
    TRAINCB_INLINE void visit(const TensorView& v) override;

private:
    const StateDict& in_;
    std::string prefix_{};
    StateFilter filter_ = StateFilter::All;
};

namespace detail {

/// The layout of a TensorView (dtype, shape, storage order, kind) kept beyond the visit that
/// passed it: the view's `dims` (rank > 2) point into the visitor's caller, so they are copied
/// here and views() re-point them. Name and data are not kept.
class TensorLayout {
public:
    /// Records `v`'s layout (reusing the dims' buffer: no allocation once sized).
    void assign(const TensorView& v);
    /// A view of `data` named `name` with the recorded layout (valid while this layout lives).
    [[nodiscard]] TensorView view(std::string_view name, void* data) const noexcept {
        TensorView v = view_;
        v.name = name;
        v.data = data;
        v.dims = dims_;
        return v;
    }
    /// The recorded dtype.
    [[nodiscard]] DType dtype() const noexcept { return view_.dtype; }
    /// Number of elements.
    [[nodiscard]] std::int64_t size() const noexcept { return view_.size(); }
    /// Number of bytes.
    [[nodiscard]] std::size_t bytes() const noexcept { return view_.bytes(); }

private:
    TensorView view_{};                 // name, data and dims unset
    std::vector<std::int64_t> dims_{};  // the full shape of a rank > 2 view
};

}  // namespace detail

/// An in-memory snapshot of a model's state in the model's own layout: taking and restoring it
/// is a memcpy per tensor, and buffers are reused between snapshots (no allocation once sized).
/// A snapshot covers every tensor, or only those a StateFilter selects (EarlyStopping keeps the
/// weights only); restore() writes back exactly what take() copied.
class StateSnapshot {
public:
    /// True once a snapshot was taken.
    [[nodiscard]] bool has_value() const noexcept { return taken_; }
    /// The filter of the last take() or from_state_dict().
    [[nodiscard]] StateFilter filter() const noexcept { return filter_; }
    /// Number of tensors held.
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    /// Forgets the snapshot (keeps the buffers).
    void reset() noexcept { taken_ = false; }
    /// Total bytes held.
    [[nodiscard]] std::size_t bytes() const noexcept {
        std::size_t n = 0;
        for (const auto& e : entries_) n += e.bytes.size();
        return n;
    }

    /// Copies every tensor the model visits that `filter` selects. `visit_fn(StateVisitor&)` calls
    /// the model's visit_state.
    template <class VisitFn>
    void take(VisitFn&& visit_fn, StateFilter filter = StateFilter::All) {
        filter_ = filter;
        Taker taker(*this);
        visit_fn(static_cast<StateVisitor&>(taker));
        entries_.resize(taker.index);
        taken_ = true;
    }
    /// Writes the snapshot back into the model: the tensors the filter of take() selected; the
    /// others keep their values. @throws LogicError if none was taken or the model's tensors
    /// changed shape since.
    template <class VisitFn>
    void restore(VisitFn&& visit_fn) const {
        if (!taken_) throw LogicError("traincb: StateSnapshot: restore() called before take()");
        Restorer r(*this);
        visit_fn(static_cast<StateVisitor&>(r));
    }
    /// The snapshot as owned row-major tensors (for saving EarlyStopping's best state).
    [[nodiscard]] StateDict to_state_dict(const std::string& prefix = {}) const;
    /// Fills the snapshot from owned tensors, using the model's views for layout: one tensor per
    /// tensor the model visits that `filter` selects (others in `d` are ignored).
    /// @throws FormatError when such a tensor is missing from `d` or its dtype or shape differ.
    template <class VisitFn>
    void from_state_dict(const StateDict& d, const std::string& prefix, VisitFn&& visit_fn,
                         StateFilter filter = StateFilter::All) {
        take(visit_fn, filter);  // sizes the buffers and records layouts
        for (auto& e : entries_) {
            const Tensor* t = d.find(prefix + e.name);
            if (!t) throw FormatError("traincb: state: snapshot tensor '" + prefix + e.name + "' missing");
            from_tensor(*t, e.layout.view(e.name, e.bytes.data()));
        }
    }

private:
    struct Entry {
        std::string name;
        detail::TensorLayout layout;  // dtype and shape; data is not kept
        std::vector<std::byte> bytes;
    };
    struct Taker final : StateVisitor {
        explicit Taker(StateSnapshot& s) : self(s) {}
        TRAINCB_INLINE void visit(const TensorView& v) override;
        StateSnapshot& self;
        std::size_t index = 0;
    };
    struct Restorer final : StateVisitor {
        explicit Restorer(const StateSnapshot& s) : self(s) {}
        TRAINCB_INLINE void visit(const TensorView& v) override;
        const StateSnapshot& self;
        std::size_t index = 0;
    };
    std::vector<Entry> entries_{};
    StateFilter filter_ = StateFilter::All;
    bool taken_ = false;
};

}  // namespace traincb::inline v0

#if TRAINCB_DEFINITIONS
#include "traincb/state-inl.hpp"
#endif
