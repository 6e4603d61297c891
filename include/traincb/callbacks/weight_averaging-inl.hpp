#pragma once
// The bodies of traincb/callbacks/weight_averaging.hpp's non-template functions: included at the
// end of that header when traincb is header-only, compiled once into traincb::compiled in the
// compiled mode (traincb/detail/config.hpp).
#include "traincb/callbacks/weight_averaging.hpp"

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
