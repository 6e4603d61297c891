#pragma once
// The bodies of traincb/state.hpp's non-template functions: included at the end of that header when
// traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/state.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE void visit(StateVisitor& v, std::string_view name, void* data, DType dtype,
                          std::span<const std::int64_t> shape, StateKind kind) {
    auto fail = [&](const std::string& what, const std::string& fix) {
        std::string msg = "traincb: state: tensor '";
        msg.append(name).append("' of shape ").append(detail::shape_string(shape)).append(" ").append(what);
        msg.append("; ").append(fix);
        throw InvalidArgument(msg);
    };
    std::int64_t count = 1;
    for (const std::int64_t d : shape) {
        if (d < 0) fail("has a negative dimension", "pass the tensor's sizes, each >= 0");
        if (d != 0 && count > std::numeric_limits<std::int64_t>::max() / d)
            fail("has more elements than fit in 63 bits", "pass the tensor's real sizes");
        count *= d;
    }
    if (data == nullptr && count != 0) {
        std::string what = "has a null data pointer for ";
        what.append(std::to_string(count)).append(" elements");
        fail(what,
             "pass the address of its first element (a framework tensor must be allocated, dense and row-major, "
             "e.g. contiguous() in torch)");
    }
    TensorView t;
    t.name = name;
    t.dtype = dtype;
    t.data = data;
    t.rank = static_cast<int>(shape.size());
    t.row_major = true;
    t.kind = kind;
    if (shape.size() == 1) {
        t.rows = shape[0];
    } else if (shape.size() == 2) {
        t.rows = shape[0];
        t.cols = shape[1];
    } else if (shape.size() > 2) {
        t.rows = shape[0];
        t.cols = 1;
        for (std::size_t i = 1; i < shape.size(); ++i) t.cols *= shape[i];
        t.dims = shape;
    }
    v.visit(t);
}

TRAINCB_INLINE Tensor to_tensor(const TensorView& v) {
    Tensor t;
    t.name = std::string(v.name);
    t.dtype = v.dtype;
    t.shape = v.shape();
    const std::size_t es = dtype_size(v.dtype);
    t.data.resize(v.bytes());
    if (v.rank < 2 || v.row_major || v.rows == 1 || v.cols == 1) {
        if (!t.data.empty()) std::memcpy(t.data.data(), v.data, t.data.size());
        return t;
    }
    const auto* src = static_cast<const std::byte*>(v.data);
    for (std::int64_t r = 0; r < v.rows; ++r)
        for (std::int64_t c = 0; c < v.cols; ++c)
            std::memcpy(t.data.data() + static_cast<std::size_t>(r * v.cols + c) * es,
                        src + static_cast<std::size_t>(c * v.rows + r) * es, es);
    return t;
}

TRAINCB_INLINE void from_tensor(const Tensor& t, const TensorView& v) {
    const auto vs = v.shape();
    // A scalar may be stored as [] or [1], and a vector as [n] or [n,1]/[1,n]: accept any shape
    // with the same element count and the same dims once 1s are dropped.
    auto squeeze = [](std::vector<std::int64_t> s) {
        std::erase(s, 1);
        return s;
    };
    if (t.dtype != v.dtype || squeeze(t.shape) != squeeze(vs)) {
        throw FormatError("traincb: state: tensor '" + t.name + "' is " + dtype_name(t.dtype) + " " +
                          detail::shape_string(t.shape) + " in the file but " + dtype_name(v.dtype) + " " +
                          detail::shape_string(vs) +
                          " in the model; the checkpoint was written by a different architecture");
    }
    const std::size_t es = dtype_size(v.dtype);
    if (v.rank < 2 || v.row_major || v.rows == 1 || v.cols == 1) {
        if (!t.data.empty()) std::memcpy(v.data, t.data.data(), t.data.size());
        return;
    }
    auto* dst = static_cast<std::byte*>(v.data);
    for (std::int64_t r = 0; r < v.rows; ++r)
        for (std::int64_t c = 0; c < v.cols; ++c)
            std::memcpy(dst + static_cast<std::size_t>(c * v.rows + r) * es,
                        t.data.data() + static_cast<std::size_t>(r * v.cols + c) * es, es);
}

TRAINCB_INLINE void StateDict::put(Tensor t) {
    for (auto& e : tensors_)
        if (e.name == t.name) {
            e = std::move(t);
            return;
        }
    tensors_.push_back(std::move(t));
}

TRAINCB_INLINE void StateCollector::visit(const TensorView& v) {
    if (!selects(filter_, v.kind)) return;
    Tensor t = to_tensor(v);
    t.name = prefix_ + t.name;
    out_.put(std::move(t));
}

TRAINCB_INLINE void StateLoader::visit(const TensorView& v) {
    if (!selects(filter_, v.kind)) return;
    const std::string key = prefix_ + std::string(v.name);
    const Tensor* t = in_.find(key);
    if (t == nullptr)
        throw FormatError("traincb: state: the checkpoint has no tensor '" + key +
                          "' that the model expects; it was written by a different model");
    Tensor named = *t;
    from_tensor(named, v);
}

namespace detail {

TRAINCB_INLINE void TensorLayout::assign(const TensorView& v) {
    view_ = v;
    view_.name = {};
    view_.data = nullptr;
    view_.dims = {};
    dims_.assign(v.dims.begin(), v.dims.end());
}

}  // namespace detail

TRAINCB_INLINE StateDict StateSnapshot::to_state_dict(const std::string& prefix) const {
    StateDict d;
    for (const auto& e : entries_) {
        Tensor t = to_tensor(e.layout.view(e.name, const_cast<std::byte*>(e.bytes.data())));
        t.name = prefix + e.name;
        d.put(std::move(t));
    }
    return d;
}

TRAINCB_INLINE void StateSnapshot::Taker::visit(const TensorView& v) {
    if (!selects(self.filter_, v.kind)) return;
    if (index == self.entries_.size()) self.entries_.emplace_back();
    Entry& e = self.entries_[index++];
    if (e.name != v.name) e.name = std::string(v.name);
    e.layout.assign(v);
    e.bytes.resize(v.bytes());
    if (!e.bytes.empty()) std::memcpy(e.bytes.data(), v.data, e.bytes.size());
}

TRAINCB_INLINE void StateSnapshot::Restorer::visit(const TensorView& v) {
    if (!selects(self.filter_, v.kind)) return;
    if (index >= self.entries_.size() || self.entries_[index].name != v.name ||
        self.entries_[index].bytes.size() != v.bytes())
        throw LogicError("traincb: StateSnapshot: the model's tensor '" + std::string(v.name) +
                         "' does not match the snapshot (the model changed shape since it was taken)");
    const Entry& e = self.entries_[index++];
    if (!e.bytes.empty()) std::memcpy(v.data, e.bytes.data(), e.bytes.size());
}

}  // namespace traincb::inline v0
