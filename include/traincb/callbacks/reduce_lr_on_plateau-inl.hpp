#pragma once
// The bodies of traincb/callbacks/reduce_lr_on_plateau.hpp's non-template functions: included at
// the end of that header when traincb is header-only, compiled once into traincb::compiled in the
// compiled mode (traincb/detail/config.hpp).
#include "traincb/callbacks/reduce_lr_on_plateau.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options) : opt_(std::move(options)) {
    const std::string c = "traincb: ReduceLROnPlateau: ";
    if (opt_.monitor.empty())
        throw InvalidArgument(c + "monitor is empty; pass the log key to watch, e.g. .monitor = \"val_loss\"");
    if (!(opt_.factor > 0.0 && opt_.factor < 1.0))
        throw InvalidArgument(c + "factor = " + detail::format_double(opt_.factor) +
                              " would not reduce the learning rate; pass a factor in (0, 1), e.g. 0.1 or 0.5");
    if (opt_.patience < 0)
        throw InvalidArgument(c + "patience = " + std::to_string(opt_.patience) + " is negative; pass patience >= 0");
    if (opt_.cooldown < 0)
        throw InvalidArgument(c + "cooldown = " + std::to_string(opt_.cooldown) + " is negative; pass cooldown >= 0");
    if (!(opt_.min_delta >= 0.0) || std::isinf(opt_.min_delta))
        throw InvalidArgument(c + "min_delta = " + detail::format_double(opt_.min_delta) +
                              " is not a finite number >= 0; pass the margin as a non-negative number, "
                              "e.g. 1e-4 (Keras would silently take its absolute value)");
    if (!(opt_.min_lr >= 0.0) || std::isinf(opt_.min_lr))
        throw InvalidArgument(c + "min_lr = " + detail::format_double(opt_.min_lr) +
                              " is not a finite number >= 0; pass a floor >= 0, e.g. 0 or 1e-6");
    // Resolve now when the name alone decides, so that most errors surface here; a monitor
    // whose direction is declared by a metric object is resolved in on_train_begin.
    if (opt_.mode == Mode::Min)
        dir_ = Direction::Min;
    else if (opt_.mode == Mode::Max)
        dir_ = Direction::Max;
    else
        dir_ = detail::direction_from_name(opt_.monitor);
}

TRAINCB_INLINE void ReduceLROnPlateau::on_train_begin(Context& ctx) {
    check_model(ctx);
    if (opt_.mode == Mode::Auto)
        dir_ = detail::resolve_mode(name(), Mode::Auto, opt_.monitor, ctx.params().metric_directions);
    best_.reset();
    wait_ = 0;
    cooldown_counter_ = 0;
    warned_ = false;
    reductions_.clear();
}

TRAINCB_INLINE void ReduceLROnPlateau::on_epoch_end(Context& ctx) {
    check_model(ctx);
    Logs& logs = ctx.logs();
    const double lr = ctx.model().learning_rate();
    logs.set("learning_rate", lr);  // first, so the missing-key message lists it, as in Keras
    const double* value = logs.find(opt_.monitor);
    if (value == nullptr) {
        handle_missing(ctx);
        return;
    }
    // Unresolved only when on_train_begin was skipped: fail loudly rather than guess.
    if (!dir_) dir_ = detail::resolve_mode(name(), Mode::Auto, opt_.monitor, ctx.params().metric_directions);
    const double v = *value;
    if (cooldown_counter_ > 0) {  // before the improvement test, as in Keras
        --cooldown_counter_;
        wait_ = 0;
    }
    const bool improved = !std::isnan(v) && (!best_ || detail::better(*dir_, v, *best_, opt_.min_delta));
    if (improved) {  // best moves even during cooldown
        best_ = v;
        wait_ = 0;
    } else if (cooldown_counter_ == 0) {  // re-tested after the decrement: cooldown = 1 has no effect
        ++wait_;
        if (wait_ >= opt_.patience) {
            if (lr > opt_.min_lr) {
                const double new_lr = std::max(lr * opt_.factor, opt_.min_lr);
                ctx.model().set_learning_rate(new_lr);
                reductions_.push_back({ctx.epoch(), lr, new_lr});
                if (opt_.verbose > 0 && ctx.comm().is_primary())  // data-parallel: rank 0 prints
                    std::cout << "Epoch " << ctx.epoch() + 1 << ": ReduceLROnPlateau reducing learning rate to "
                              << detail::format_double(new_lr) << ".\n";
                cooldown_counter_ = opt_.cooldown;
                wait_ = 0;
            }
            // At the floor, wait is not reset and keeps growing (Keras).
        }
    }
}

TRAINCB_INLINE std::string ReduceLROnPlateau::name() const {
    return "ReduceLROnPlateau";
}

TRAINCB_INLINE std::vector<std::string> ReduceLROnPlateau::required_keys() const {
    if (opt_.strict) return {opt_.monitor};
    return {};
}

TRAINCB_INLINE Capabilities ReduceLROnPlateau::required_capabilities() const {
    return {.learning_rate = true, .state = false};
}

TRAINCB_INLINE std::vector<std::string> ReduceLROnPlateau::provided_keys() const {
    return {"learning_rate"};
}

TRAINCB_INLINE std::string ReduceLROnPlateau::state_key() const {
    return opt_.id.empty() ? "ReduceLROnPlateau:" + opt_.monitor : opt_.id;
}

TRAINCB_INLINE void ReduceLROnPlateau::save_state(CallbackState& state) const {
    state.version = kStateVersion;
    nlohmann::json j;
    j["monitor"] = opt_.monitor;
    j["mode"] = dir_ ? nlohmann::json(to_string(*dir_)) : nlohmann::json(nullptr);
    if (!best_)
        j["best"] = nullptr;
    else if (std::isinf(*best_))
        j["best"] = detail::format_double(*best_);  // "inf" or "-inf": JSON has no infinities
    else
        j["best"] = *best_;
    j["wait"] = wait_;
    j["cooldown_counter"] = cooldown_counter_;
    state.json = std::move(j);
}

TRAINCB_INLINE void ReduceLROnPlateau::load_state(const CallbackState& state, Context&) {
    const std::string c = "traincb: ReduceLROnPlateau: checkpointed state (key '" + state_key() + "'): ";
    state.require_version(kStateVersion, "ReduceLROnPlateau", state_key());
    const nlohmann::json& j = state.json;
    if (!j.is_object()) throw FormatError(c + "expected a JSON object, got " + j.dump());
    auto field = [&](const char* key) -> const nlohmann::json& {
        auto it = j.find(key);
        if (it == j.end()) throw FormatError(c + "the field '" + key + "' is missing");
        return *it;
    };
    const auto& monitor = field("monitor");
    if (!monitor.is_string()) throw FormatError(c + "'monitor' must be a string, got " + monitor.dump());
    if (monitor.get<std::string>() != opt_.monitor)
        throw InvalidArgument(c + "it was saved for monitor '" + monitor.get<std::string>() +
                              "', but this callback monitors '" + opt_.monitor +
                              "'; give this callback another id, or start it afresh");
    const auto& mode = field("mode");
    if (!mode.is_null() && !mode.is_string()) throw FormatError(c + "'mode' must be a string, got " + mode.dump());
    if (mode.is_string() && dir_ && mode.get<std::string>() != to_string(*dir_))
        throw InvalidArgument(c + "it was saved in mode '" + mode.get<std::string>() + "', but this callback " +
                              "runs in mode '" + to_string(*dir_) + "'; pass the same mode, or start it afresh");
    std::optional<double> best;
    const auto& b = field("best");
    const std::optional<double> inf =
        b.is_string() ? detail::parse_double(b.get_ref<const std::string&>()) : std::nullopt;
    if (b.is_number())
        best = b.get<double>();
    else if (inf && std::isinf(*inf))
        best = *inf;
    else if (!b.is_null())
        throw FormatError(c + "'best' must be a number, \"inf\", \"-inf\" or null, got " + b.dump());
    auto count = [&](const char* key) {
        const auto& n = field(key);
        if (!n.is_number_integer() || n.get<long long>() < 0 || n.get<long long>() > std::numeric_limits<int>::max())
            throw FormatError(c + "'" + key + "' must be an integer >= 0, got " + n.dump());
        return static_cast<int>(n.get<long long>());
    };
    const int wait = count("wait");
    const int cooldown_counter = count("cooldown_counter");
    best_ = best;
    wait_ = wait;
    cooldown_counter_ = cooldown_counter;
}

TRAINCB_INLINE void ReduceLROnPlateau::check_model(Context& ctx) const {
    if (ctx.model().has_learning_rate()) return;
    throw InvalidArgument(
        "traincb: ReduceLROnPlateau: needs the model's learning rate, but the model has no learning_rate() "
        "const / set_learning_rate(double); add them or specialise traincb::model_traits" +
        std::string(ctx.model().attached() ? "" : " (no model is attached: call CallbackList::set_model)"));
}

TRAINCB_INLINE void ReduceLROnPlateau::handle_missing(Context& ctx) {
    const Logs& logs = ctx.logs();
    if (opt_.monitor.starts_with("val_")) {
        bool has_val = false;
        for (const auto& kv : logs) has_val = has_val || kv.first.starts_with("val_");
        if (!has_val) return;  // an epoch without validation: nothing to compare, nothing counted
    }
    const auto keys = logs.keys();
    std::string msg = "traincb: ReduceLROnPlateau: monitor '" + opt_.monitor +
                      "' is not in the logs at the end of epoch " + std::to_string(ctx.epoch() + 1) +
                      "; available keys: " + detail::join(keys);
    if (auto m = detail::closest_match(opt_.monitor, keys); !m.empty()) msg += "; did you mean '" + m + "'?";
    if (opt_.strict)
        throw InvalidArgument(msg +
                              "; fix the monitor name, or pass .strict = false to skip such epochs with a "
                              "warning");
    if (!warned_) {
        warned_ = true;
        warn(msg + "; epochs without it are skipped (warned once per run)");
    }
}

}  // namespace traincb::inline v0
