#pragma once
// The bodies of traincb/callbacks/early_stopping.hpp's non-template functions: included at the end
// of that header when traincb is header-only, compiled once into traincb::compiled in the compiled
// mode (traincb/detail/config.hpp).
#include "traincb/callbacks/early_stopping.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE Mode parse_mode(std::string_view s) {
    if (s == "auto") return Mode::Auto;
    if (s == "min") return Mode::Min;
    if (s == "max") return Mode::Max;
    throw InvalidArgument("traincb: EarlyStopping: unknown mode '" + std::string(s) + "'; use auto, min or max");
}

TRAINCB_INLINE DeltaMode parse_delta_mode(std::string_view s) {
    if (s == "abs" || s == "absolute") return DeltaMode::Absolute;
    if (s == "rel" || s == "relative") return DeltaMode::Relative;
    throw InvalidArgument("traincb: EarlyStopping: unknown min_delta_mode '" + std::string(s) + "'; use abs or rel");
}

TRAINCB_INLINE EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : opt_(std::move(options)) {
    auto bad = [](const std::string& what) { throw InvalidArgument("traincb: EarlyStopping: " + what); };
    if (!opt_.monitors.empty()) check_monitors(bad);
    if (opt_.monitor.empty()) bad("monitor is empty; pass the log key to watch, e.g. \"val_loss\"");
    if (opt_.patience < 0) bad("patience must be >= 0, got " + std::to_string(opt_.patience) + "; pass 0 or more");
    if (!(opt_.min_delta >= 0) || std::isinf(opt_.min_delta))
        bad("min_delta must be a finite number >= 0, got " + detail::format_double(opt_.min_delta) +
            "; Keras silently takes abs(), traincb asks you to pass the margin itself");
    if (opt_.start_from_epoch < 0) bad("start_from_epoch must be >= 0, got " + std::to_string(opt_.start_from_epoch));
    if (opt_.baseline && std::isnan(*opt_.baseline)) bad("baseline is NaN; pass a number or leave it unset");
    if (opt_.stopping_threshold && std::isnan(*opt_.stopping_threshold))
        bad("stopping_threshold is NaN; pass a number or leave it unset");
    if (opt_.divergence_threshold && std::isnan(*opt_.divergence_threshold))
        bad("divergence_threshold is NaN; pass a number or leave it unset");
    if (opt_.monitors.empty()) monitors_.push_back({.spec = {opt_.monitor, opt_.mode, opt_.min_delta}});
    for (const MonitorSpec& m : opt_.monitors) monitors_.push_back({.spec = m});
    for (Tracker& t : monitors_) {
        if (t.spec.mode != Mode::Auto)
            t.dir = detail::resolve_mode("EarlyStopping", t.spec.mode, t.spec.key);
        else if (auto d = detail::direction_from_name(t.spec.key))
            t.dir = *d;
    }
    values_.resize(monitors_.size());
}

TRAINCB_INLINE std::vector<std::string> EarlyStopping::monitor_keys() const {
    std::vector<std::string> keys;
    keys.reserve(monitors_.size());
    for (const Tracker& t : monitors_) keys.push_back(t.spec.key);
    return keys;
}

TRAINCB_INLINE std::string EarlyStopping::name() const {
    return "EarlyStopping";
}

TRAINCB_INLINE std::vector<std::string> EarlyStopping::required_keys() const {
    if (!opt_.strict) return {};
    return monitor_keys();
}

TRAINCB_INLINE Capabilities EarlyStopping::required_capabilities() const {
    return {.learning_rate = false, .state = opt_.restore_best_weights};
}

TRAINCB_INLINE void EarlyStopping::on_train_begin(Context& ctx) {
    reset();
    resolve(ctx.params().metric_directions);
    if (opt_.restore_best_weights && !ctx.model().has_state())
        throw InvalidArgument(
            "traincb: EarlyStopping: restore_best_weights needs the model's state, but the model has no "
            "visit_state(traincb::StateVisitor&); add it (see traincb/state.hpp) or specialise "
            "traincb::model_traits, or set restore_best_weights = false");
}

TRAINCB_INLINE void EarlyStopping::on_epoch_end(Context& ctx) {
    const Logs& logs = ctx.logs();
    bool any = false;
    for (std::size_t i = 0; i < monitors_.size(); ++i) {
        const double* pv = logs.find(monitors_[i].spec.key);
        values_[i] = pv ? std::optional<double>(*pv) : std::nullopt;
        any = any || pv != nullptr;
    }
    // Every missing monitor is handled (under strict: thrown) before anything changes.
    for (std::size_t i = 0; i < monitors_.size(); ++i)
        if (!values_[i]) handle_missing(logs, monitors_[i]);
    if (!any) return;
    // The first monitored epoch with a direction still unset (a list driven without
    // on_train_begin) resolves it here, failing loudly rather than guessing.
    resolve(ctx.params().metric_directions);
    const int epoch = ctx.epoch();
    Decision d = decide(values_, epoch);
    if (d.improved && opt_.restore_best_weights) {
        ModelHandle& m = ctx.model();
        snapshot_.take([&m](StateVisitor& v) { m.visit_state(v); }, StateFilter::Weights);
    }
    if (d.stop != StopReason::None) ctx.request_stop(name(), to_string(d.stop));
}

TRAINCB_INLINE void EarlyStopping::on_train_end(Context& ctx) {
    const bool verbose = opt_.verbose > 0 && ctx.comm().is_primary();  // data-parallel: rank 0 prints
    if (verbose && stopped_epoch_)
        std::cout << "Epoch " << (*stopped_epoch_ + 1) << ": early stopping (" << to_string(reason_) << ")\n";
    if (opt_.restore_best_weights && snapshot_.has_value() && best_epoch()) {
        if (verbose)
            std::cout << "Restoring model weights from the end of the best epoch: " << (*best_epoch() + 1) << ".\n";
        ModelHandle& m = ctx.model();
        snapshot_.restore([&m](StateVisitor& v) { m.visit_state(v); });
        restored_from_ = best_epoch();
    }
}

TRAINCB_INLINE EarlyStopping::Decision EarlyStopping::decide(double v, int epoch) {
    if (monitors_.size() != 1)
        throw InvalidArgument(
            detail::cat("traincb: EarlyStopping: decide(value, epoch) feeds one monitor, but there are ",
                        std::to_string(monitors_.size()), "; pass one value per monitor"));
    const std::optional<double> one[] = {v};
    return decide(std::span<const std::optional<double>>(one), epoch);
}

TRAINCB_INLINE EarlyStopping::Decision EarlyStopping::decide(std::span<const std::optional<double>> values, int epoch) {
    if (values.size() != monitors_.size())
        throw InvalidArgument(detail::cat("traincb: EarlyStopping: decide got ", std::to_string(values.size()),
                                          " values for ", std::to_string(monitors_.size()),
                                          " monitors; pass one per monitor, nullopt for one not logged"));
    Decision d;
    if (epoch < opt_.start_from_epoch) return d;
    bool any = false, non_finite = false, exhausted = true;
    for (std::size_t i = 0; i < monitors_.size(); ++i) {
        Tracker& t = monitors_[i];
        if (values[i]) {
            any = true;
            const bool improved = update(t, *values[i], epoch, i == 0);
            if (i == 0) d.improved = improved;
            non_finite = non_finite || !std::isfinite(*values[i]);
        }
        exhausted = exhausted && t.wait >= std::max(opt_.patience, 1);
    }
    if (!any) return d;
    // The thresholds are numbers on the primary's scale: they apply to the primary only.
    const std::optional<double>& v = values[0];
    const Direction dir = *monitors_.front().dir;
    if (opt_.check_finite && non_finite)
        d.stop = StopReason::NonFiniteMetric;
    else if (v && opt_.stopping_threshold && detail::better(dir, *v, *opt_.stopping_threshold, 0.0))
        d.stop = StopReason::StoppingThreshold;
    else if (v && opt_.divergence_threshold && detail::worse(dir, *v, *opt_.divergence_threshold))
        d.stop = StopReason::DivergenceThreshold;
    else if (exhausted)
        d.stop = StopReason::PatienceExhausted;
    if (d.stop != StopReason::None) {
        stopped_epoch_ = epoch;
        reason_ = d.stop;
    }
    return d;
}

TRAINCB_INLINE void EarlyStopping::resolve(const std::vector<std::pair<std::string, Direction>>& declared) {
    for (Tracker& t : monitors_)
        if (!t.dir) t.dir = detail::resolve_mode("EarlyStopping", t.spec.mode, t.spec.key, declared);
}

TRAINCB_INLINE void EarlyStopping::reset() noexcept {
    for (Tracker& t : monitors_) {
        t.best.reset();
        t.best_epoch.reset();
        t.wait = 0;
        t.warned_missing = false;
    }
    stopped_epoch_.reset();
    restored_from_.reset();
    reason_ = StopReason::None;
    snapshot_.reset();
}

TRAINCB_INLINE std::string EarlyStopping::state_key() const {
    return opt_.id.empty() ? detail::cat("EarlyStopping:", detail::join(monitor_keys(), "+")) : opt_.id;
}

TRAINCB_INLINE void EarlyStopping::save_state(CallbackState& s) const {
    s.version = 1;
    auto opt = [](const std::optional<double>& v) {
        return v ? nlohmann::json(detail::format_double(*v)) : nlohmann::json();
    };
    auto opt_int = [](const std::optional<int>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    s.json = {{"best", opt(best())},
              {"best_epoch", opt_int(best_epoch())},
              {"wait", wait()},
              {"stopped_epoch", stopped_epoch_ ? nlohmann::json(*stopped_epoch_) : nlohmann::json()},
              {"stop_reason", to_string(reason_)},
              {"options", options_json()}};
    if (monitors_.size() > 1) {
        nlohmann::json ms = nlohmann::json::array();
        for (const Tracker& t : monitors_)
            ms.push_back(
                {{"key", t.spec.key}, {"best", opt(t.best)}, {"best_epoch", opt_int(t.best_epoch)}, {"wait", t.wait}});
        s.json["monitors"] = std::move(ms);
    }
    if (snapshot_.has_value()) s.tensors = snapshot_.to_state_dict();
}

TRAINCB_INLINE void EarlyStopping::load_state(const CallbackState& s, Context& ctx) {
    s.require_version(1, "EarlyStopping", state_key());
    const auto& j = s.json;
    std::optional<double> best;
    std::optional<int> best_epoch, stopped_epoch;
    int wait = 0;
    StopReason reason = StopReason::None;
    struct Saved {
        std::string key;
        std::optional<double> best;
        std::optional<int> best_epoch;
        int wait = 0;
    };
    std::vector<Saved> saved;
    try {
        auto num = [](const nlohmann::json& v) -> std::optional<double> {
            if (v.is_null()) return std::nullopt;
            const std::string text = v.get<std::string>();  // format_double's round-trip text
            const std::optional<double> d = detail::parse_double(text);
            if (!d) throw std::invalid_argument("best '" + text + "' is not a number");
            return *d;
        };
        auto integer = [](const nlohmann::json& v, const char* what) -> int {
            if (!v.is_number_integer())
                throw std::invalid_argument(std::string(what) + " " + v.dump() + " is not an integer");
            return v.get<int>();
        };
        auto epoch = [&integer](const nlohmann::json& v, const char* what) -> std::optional<int> {
            if (v.is_null()) return std::nullopt;
            return integer(v, what);
        };
        best = num(j.at("best"));
        best_epoch = epoch(j.at("best_epoch"), "best_epoch");
        stopped_epoch = epoch(j.at("stopped_epoch"), "stopped_epoch");
        wait = integer(j.at("wait"), "wait");
        const std::string r = j.at("stop_reason").get<std::string>();
        bool known = r == to_string(StopReason::None);
        for (auto k : {StopReason::PatienceExhausted, StopReason::StoppingThreshold, StopReason::DivergenceThreshold,
                       StopReason::NonFiniteMetric})
            if (r == to_string(k)) {
                reason = k;
                known = true;
            }
        if (!known) throw std::invalid_argument("unknown stop_reason '" + r + "'");
        if (wait < 0) throw std::invalid_argument("wait " + std::to_string(wait) + " < 0");
        if (j.contains("monitors")) {
            const nlohmann::json& ms = j.at("monitors");
            if (!ms.is_array()) throw std::invalid_argument(detail::cat("monitors ", ms.dump(), " is not an array"));
            for (const nlohmann::json& m : ms) {
                Saved e{m.at("key").get<std::string>(), num(m.at("best")), epoch(m.at("best_epoch"), "best_epoch"),
                        integer(m.at("wait"), "wait")};
                if (e.wait < 0) throw std::invalid_argument(detail::cat("wait ", std::to_string(e.wait), " < 0"));
                saved.push_back(std::move(e));
            }
        } else {
            // One monitor's state (every state written before several monitors existed).
            const nlohmann::json* o = j.contains("options") ? &j.at("options") : nullptr;
            std::string key = o && o->contains("monitor") ? o->at("monitor").get<std::string>() : std::string();
            saved.push_back({std::move(key), best, best_epoch, wait});
        }
    } catch (const std::exception& e) {
        throw FormatError("traincb: EarlyStopping: checkpointed state (key '" + state_key() + "') is malformed (" +
                          e.what() + "); it was not written by this traincb: resume from another checkpoint");
    }
    std::vector<Tracker> next = monitors_;
    std::vector<std::string> fresh;
    for (std::size_t i = 0; i < next.size(); ++i) {
        Tracker& t = next[i];
        const Saved* found = next.size() == 1 && saved.size() == 1 ? &saved.front() : nullptr;
        for (const Saved& e : saved)
            if (!found && (e.key == t.spec.key || (i == 0 && e.key.empty()))) found = &e;
        t.best = found ? found->best : std::nullopt;
        t.best_epoch = found ? found->best_epoch : std::nullopt;
        t.wait = found ? found->wait : 0;
        if (!found) fresh.push_back(t.spec.key);
    }
    if (!s.tensors.empty() && opt_.restore_best_weights && ctx.model().has_state()) {
        ModelHandle& m = ctx.model();
        snapshot_.from_state_dict(
            s.tensors, "", [&m](StateVisitor& v) { m.visit_state(v); }, StateFilter::Weights);
    }
    monitors_ = std::move(next);
    stopped_epoch_ = stopped_epoch;
    reason_ = reason;
    if (j.contains("options") && j.at("options") != options_json())
        warn("traincb: EarlyStopping: options changed since the checkpoint (was " + j.at("options").dump() + ", now " +
             options_json().dump() + "); the new options apply");
    if (!fresh.empty())
        warn(detail::cat("traincb: EarlyStopping: the checkpointed state (key '", state_key(),
                         "') has no values for monitor ", detail::join(fresh), "; it starts fresh"));
}

TRAINCB_INLINE const EarlyStopping::Tracker& EarlyStopping::tracker(std::string_view key) const {
    for (const Tracker& t : monitors_)
        if (t.spec.key == key) return t;
    throw InvalidArgument(detail::cat("traincb: EarlyStopping: '", key,
                                      "' is not monitored; the monitors are: ", detail::join(monitor_keys())));
}

TRAINCB_INLINE bool EarlyStopping::update(Tracker& t, double v, int epoch, bool primary) {
    const Direction dir = *t.dir;
    const bool improved = !std::isnan(v) && (!t.best || detail::better(dir, v, *t.best, margin(t, *t.best)));
    if (improved) {
        t.best = v;
        t.best_epoch = epoch;
    }
    const bool beats_baseline = !primary || !opt_.baseline ||
                                (!std::isnan(v) && detail::better(dir, v, *opt_.baseline, margin(t, *opt_.baseline)));
    if (improved && beats_baseline)
        t.wait = 0;
    else
        ++t.wait;
    return improved;
}

TRAINCB_INLINE nlohmann::json EarlyStopping::options_json() const {
    auto opt = [](const std::optional<double>& v) {
        return v ? nlohmann::json(detail::format_double(*v)) : nlohmann::json();
    };
    auto mode_name = [](Mode m) { return m == Mode::Auto ? "auto" : m == Mode::Min ? "min" : "max"; };
    const MonitorSpec& primary = monitors_.front().spec;
    nlohmann::json j = {{"monitor", primary.key},
                        {"mode", mode_name(primary.mode)},
                        {"min_delta", detail::format_double(primary.min_delta)},
                        {"min_delta_mode", opt_.min_delta_mode == DeltaMode::Absolute ? "abs" : "rel"},
                        {"patience", opt_.patience},
                        {"baseline", opt(opt_.baseline)},
                        {"start_from_epoch", opt_.start_from_epoch},
                        {"restore_best_weights", opt_.restore_best_weights},
                        {"stopping_threshold", opt(opt_.stopping_threshold)},
                        {"divergence_threshold", opt(opt_.divergence_threshold)},
                        {"check_finite", opt_.check_finite}};
    if (monitors_.size() > 1) {
        nlohmann::json ms = nlohmann::json::array();
        for (const Tracker& t : monitors_)
            ms.push_back({{"key", t.spec.key},
                          {"mode", mode_name(t.spec.mode)},
                          {"min_delta", detail::format_double(t.spec.min_delta)}});
        j["monitors"] = std::move(ms);
    }
    return j;
}

TRAINCB_INLINE void EarlyStopping::handle_missing(const Logs& logs, Tracker& t) {
    if (t.spec.key.starts_with("val_")) {
        bool any_val = false;
        for (const auto& kv : logs) any_val = any_val || kv.first.starts_with("val_");
        if (!any_val) return;  // an epoch without validation: skipped, not counted
    }
    const std::string msg = logs.missing_key_message("EarlyStopping", t.spec.key);
    if (opt_.strict) throw InvalidArgument(msg + " (set strict = false to skip such epochs with a warning)");
    if (!t.warned_missing) {
        t.warned_missing = true;
        warn(msg + (monitors_.size() == 1 ? "; the epoch is skipped" : "; this monitor skips the epoch"));
    }
}

}  // namespace traincb::inline v0
