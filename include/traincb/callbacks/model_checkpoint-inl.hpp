#pragma once
// The bodies of traincb/callbacks/model_checkpoint.hpp's non-template functions: included at the
// end of that header when traincb is header-only, compiled once into traincb::compiled in the
// compiled mode (traincb/detail/config.hpp).
#include "traincb/callbacks/model_checkpoint.hpp"

namespace traincb::inline v0 {

TRAINCB_INLINE ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options) : opt_(std::move(options)) {
    auto bad = [](const std::string& what) { throw InvalidArgument("traincb: ModelCheckpoint: " + what); };
    const std::string text = opt_.filepath.string();
    if (text.empty()) bad("filepath is empty; pass a file name such as \"ckpt/model-{epoch:02d}.safetensors\"");
    if (!text.ends_with(".safetensors"))
        bad("filepath '" + text + "' must end in \".safetensors\" (the file format; resume looks for such files)");
    template_ = detail::PathTemplate(text, "traincb: ModelCheckpoint", {"epoch", "batch"});
    if (opt_.save_freq < 0)
        bad("save_freq must be 0 (each epoch) or a number of batches > 0, got " + std::to_string(opt_.save_freq));
    if (opt_.every_n_epochs < 1) bad("every_n_epochs must be >= 1, got " + std::to_string(opt_.every_n_epochs));
    if (opt_.save_top_k < -1)
        bad("save_top_k must be -1 (keep all), 0 or a number of files to keep, got " + std::to_string(opt_.save_top_k));
    if (opt_.initial_value_threshold && std::isnan(*opt_.initial_value_threshold))
        bad("initial_value_threshold is NaN; pass a number or leave it unset");
    validate_train_time_interval();
    if (template_.uses("batch") && !batch_saves())
        bad("filepath '" + text +
            "' uses {batch}, which exists only for batch saves; set save_freq > 0 (or train_time_interval)");
    if (needs_monitor() && opt_.monitor.empty())
        bad("monitor is empty, but save_best_only or save_top_k compares it; pass a log key such as \"val_loss\"");
    if (needs_monitor() && batch_saves() && opt_.strict && opt_.monitor.starts_with("val_"))
        bad("monitor '" + opt_.monitor + "' is a validation key, but " +
            (opt_.save_freq > 0 ? "save_freq > 0" : "train_time_interval") +
            " saves after batches, whose logs hold only training values; monitor a training key or save per "
            "epoch (save_freq = 0)");
    if (opt_.save_last) {
        if (!template_.directory_is_literal())
            bad("save_last writes last.safetensors beside the checkpoints, so the directory of filepath '" + text +
                "' must not contain {fields}");
        last_path_ = opt_.filepath.parent_path() / "last.safetensors";
        if (opt_.filepath.filename() == "last.safetensors")
            bad("filepath '" + text + "' is the file save_last writes; name the checkpoints otherwise");
        if (opt_.filepath.filename() == "last.prev.safetensors")
            bad("filepath '" + text +
                "' is the file save_last keeps the previous last.safetensors in; name the checkpoints otherwise");
        last_file_ = io::RotatingCheckpoint(last_path_);
    }
    // A full checkpoint written again and again under one name keeps its previous version too.
    if (template_.fields().empty() && !opt_.save_weights_only && !opt_.save_best_only && opt_.save_top_k == -1)
        main_file_ = io::RotatingCheckpoint(opt_.filepath);
    best_ = opt_.initial_value_threshold;
    if (!opt_.now_seconds)
        opt_.now_seconds = [] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
        };
    if (opt_.mode != Mode::Auto)
        dir_ = detail::resolve_mode("ModelCheckpoint", opt_.mode, opt_.monitor);
    else if (auto d = detail::direction_from_name(opt_.monitor))
        dir_ = *d;
}

TRAINCB_INLINE ModelCheckpoint::~ModelCheckpoint() {
    try {
        collect_background_save(true);
    } catch (const std::exception& e) {
        warn(detail::cat(e.what(), " (reported when the ModelCheckpoint was destroyed: no hook was left to raise it)"));
    } catch (...) {
        warn("traincb: ModelCheckpoint: a background save failed (reported when the ModelCheckpoint was destroyed)");
    }
}

TRAINCB_INLINE std::string ModelCheckpoint::name() const {
    return "ModelCheckpoint";
}

TRAINCB_INLINE std::vector<std::string> ModelCheckpoint::required_keys() const {
    if (opt_.strict && needs_monitor()) return {opt_.monitor};
    return {};
}

TRAINCB_INLINE Capabilities ModelCheckpoint::required_capabilities() const {
    return {.learning_rate = false, .state = true};
}

TRAINCB_INLINE void ModelCheckpoint::on_train_begin(Context& ctx) {
    collect_background_save(true);
    if (train_time_interval_ > 0) {
        last_time_ = opt_.now_seconds();
        clock_started_ = true;
    }
    if (!dir_) {
        if (needs_monitor())
            dir_ = detail::resolve_mode("ModelCheckpoint", opt_.mode, opt_.monitor, ctx.params().metric_directions);
        else
            dir_ = detail::direction_from_name(opt_.monitor, ctx.params().metric_directions);
    }
    resumed_from_ = ctx.params().resumed_from;
    last_file_.begin_run(resumed_from_);
    main_file_.begin_run(resumed_from_);
    pending_.reset();
    to_delete_.clear();
    warned_missing_ = false;
    if (template_.directory_is_literal() && ctx.comm().is_primary()) {
        const std::filesystem::path dir = opt_.filepath.parent_path();
        (void)io::remove_stale_temp_files(dir.empty() ? std::filesystem::path(".") : dir);
    }
}

TRAINCB_INLINE void ModelCheckpoint::on_epoch_end(Context& ctx) {
    collect_background_save(false);
    if (batch_saves()) return;
    if ((ctx.epoch() + 1) % opt_.every_n_epochs != 0) return;
    decide(ctx, false);
}

TRAINCB_INLINE void ModelCheckpoint::on_epoch_commit(Context& ctx) {
    commit(ctx, true);
}

TRAINCB_INLINE void ModelCheckpoint::on_train_batch_end(Context& ctx) {
    collect_background_save(false);
    if (opt_.save_freq > 0) {
        if (ctx.global_step() % opt_.save_freq == 0) decide(ctx, true);
    } else if (train_time_interval_ > 0 && time_is_up()) {
        decide(ctx, true);
    }
}

TRAINCB_INLINE void ModelCheckpoint::on_train_batch_commit(Context& ctx) {
    if (pending_) commit(ctx, false);
}

TRAINCB_INLINE void ModelCheckpoint::on_interrupt(Context& ctx) {
    collect_background_save(true);
    if (!opt_.save_last || !ctx.comm().is_primary()) return;
    last_file_.save(io::encode_checkpoint(io::capture_checkpoint(ctx, io::CheckpointKind::Full)), "ModelCheckpoint");
    if (opt_.verbose > 0)
        std::cout << "Epoch " << ctx.epoch() + 1 << ": training interrupted, saved the full state to "
                  << last_path_.string() << '\n';
}

TRAINCB_INLINE void ModelCheckpoint::on_train_end(Context& ctx) {
    writer_.stop();  // waits for the save in flight; no thread outlives the run
    if (ctx.end().kind != EndKind::Exception && std::uncaught_exceptions() == 0) {
        collect_background_save(true);
        return;
    }
    try {
        collect_background_save(true);
    } catch (const std::exception& e) {
        warn(detail::cat(e.what(), "; reported as a warning because training is ending with another exception (",
                         ctx.end().reason, ")"));
    } catch (...) {
        warn(
            detail::cat("traincb: ModelCheckpoint: a background save failed; reported as a warning because "
                        "training is ending with another exception (",
                        ctx.end().reason, ")"));
    }
}

TRAINCB_INLINE std::string ModelCheckpoint::state_key() const {
    return opt_.id.empty() ? "ModelCheckpoint:" + opt_.filepath.filename().string() : opt_.id;
}

TRAINCB_INLINE void ModelCheckpoint::save_state(CallbackState& s) const {
    s.version = kStateVersion;
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& k : kept_)
        kept.push_back({{"path", k.path.string()},
                        {"score", k.score ? detail::json_double(*k.score) : nlohmann::json()},
                        {"epoch", k.epoch},
                        {"global_step", k.global_step}});
    s.json = {{"best", best_ ? detail::json_double(*best_) : nlohmann::json()},
              {"best_path", best_path_.string()},
              {"kept", std::move(kept)},
              {"options", options_json()}};
}

TRAINCB_INLINE void ModelCheckpoint::load_state(const CallbackState& s, Context&) {
    const std::string c = "traincb: ModelCheckpoint: checkpointed state (key '" + state_key() + "'): ";
    s.require_version(kStateVersion, "ModelCheckpoint", state_key());
    try {
        const nlohmann::json& j = s.json;
        bool comparable = true;
        const nlohmann::json now = options_json();
        if (const auto it = j.find("options"); it != j.end())
            for (const auto& [key, value] : now.items()) {
                const auto old = it->find(key);
                if (old == it->end() || *old == value) continue;
                warn(c + "option '" + key + "' changed since the checkpoint (was " + old->dump() + ", now " +
                     value.dump() + "); the new value applies");
                if (key == "monitor" || key == "mode") comparable = false;
            }
        std::vector<KeptCheckpoint> kept;
        for (const auto& e : j.at("kept")) {
            KeptCheckpoint k;
            k.path = e.at("path").get<std::string>();
            if (!e.at("score").is_null() && comparable)
                k.score = detail::parse_json_double(e.at("score"), "ModelCheckpoint score", state_key());
            k.epoch = e.at("epoch").get<int>();
            k.global_step = e.at("global_step").get<std::int64_t>();
            kept.push_back(std::move(k));
        }
        if (comparable) {  // parsed in full before anything is assigned: all or nothing
            std::optional<double> best = j.at("best").is_null()
                                             ? std::nullopt
                                             : std::optional<double>(detail::parse_json_double(
                                                   j.at("best"), "ModelCheckpoint best", state_key()));
            std::string best_path = j.at("best_path").get<std::string>();
            best_ = best;
            best_path_ = std::move(best_path);
        }
        kept_ = std::move(kept);
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(c + "malformed (" + e.what() + ")");
    }
}

TRAINCB_INLINE void ModelCheckpoint::validate_train_time_interval() {
    const double s = opt_.train_time_interval.count();
    const auto bad = [](const std::string& what) { throw InvalidArgument("traincb: ModelCheckpoint: " + what); };
    if (!(s >= 0.0) || !std::isfinite(s))
        bad(detail::cat("train_time_interval must be a finite number of seconds >= 0 (0: off), got ",
                        detail::format_double(s), " s"));
    if (s > 0.0 && opt_.save_freq > 0)
        bad(detail::cat("train_time_interval (", detail::format_double(s), " s) and save_freq (",
                        std::to_string(opt_.save_freq),
                        ") are mutually exclusive, as in Lightning: save after an interval of time or after a "
                        "number of batches; set one of them to 0"));
    if (s > 0.0 && opt_.every_n_epochs != 1)
        bad(detail::cat("train_time_interval (", detail::format_double(s), " s) and every_n_epochs (",
                        std::to_string(opt_.every_n_epochs),
                        ") are mutually exclusive, as in Lightning: time-triggered saves replace the per-epoch "
                        "ones; leave every_n_epochs at 1 or set train_time_interval to 0"));
    train_time_interval_ = s;
}

TRAINCB_INLINE bool ModelCheckpoint::time_is_up() {
    const double t = opt_.now_seconds();
    if (!clock_started_) {  // a list driven without on_train_begin
        clock_started_ = true;
        last_time_ = t;
        return false;
    }
    if (t - last_time_ < train_time_interval_) return false;
    last_time_ = t;
    return true;
}

TRAINCB_INLINE nlohmann::json ModelCheckpoint::options_json() const {
    // The file name only: the directory may move between runs (see state_key).
    nlohmann::json j = {{"filename", opt_.filepath.filename().string()},
                        {"monitor", opt_.monitor},
                        {"mode", opt_.mode == Mode::Auto  ? "auto"
                                 : opt_.mode == Mode::Min ? "min"
                                                          : "max"},
                        {"save_best_only", opt_.save_best_only},
                        {"save_weights_only", opt_.save_weights_only},
                        {"save_freq", opt_.save_freq},
                        {"every_n_epochs", opt_.every_n_epochs},
                        {"save_top_k", opt_.save_top_k},
                        {"save_last", opt_.save_last}};
    // Only when set, so that the state of a run without it is as before.
    if (train_time_interval_ > 0) j["train_time_interval"] = detail::json_double(train_time_interval_);
    return j;
}

TRAINCB_INLINE bool ModelCheckpoint::has_val_keys(const Logs& logs) {
    for (const auto& kv : logs)
        if (kv.first.starts_with("val_")) return true;
    return false;
}

TRAINCB_INLINE std::optional<std::filesystem::path> ModelCheckpoint::format_path(Context& ctx, bool batch_save) const {
    const Logs& logs = ctx.logs();
    bool skip = false;
    std::string p = template_.format(
        [&](const std::string& key) -> std::optional<detail::TemplateValue> {
            if (key == "epoch") return detail::TemplateValue(static_cast<std::int64_t>(ctx.epoch()) + 1);
            if (key == "batch" && batch_save) return detail::TemplateValue(static_cast<std::int64_t>(ctx.batch()) + 1);
            if (const double* v = logs.find(key)) return detail::TemplateValue(*v);
            return std::nullopt;
        },
        [&](const std::string& key) -> detail::TemplateValue {
            if (key.starts_with("val_") && !batch_save && !has_val_keys(logs)) {
                skip = true;  // an epoch without validation: nothing to name the file with
                return 0.0;
            }
            std::vector<std::string> keys{"epoch"};
            if (batch_save) keys.emplace_back("batch");
            for (const auto& kv : logs) keys.push_back(kv.first);
            std::string msg = "traincb: ModelCheckpoint: filepath '" + template_.text() + "' uses {" + key +
                              "}, which is not available " + (batch_save ? "after a batch" : "at this epoch's end") +
                              "; available keys: " + detail::join(keys);
            if (auto m = detail::closest_match(key, keys); !m.empty()) msg += "; did you mean '" + m + "'?";
            if (batch_save && key.starts_with("val_")) msg += " (batch logs hold training values only)";
            throw InvalidArgument(msg);
        });
    if (skip) return std::nullopt;
    return std::filesystem::path(std::move(p));
}

TRAINCB_INLINE std::string ModelCheckpoint::num(const std::optional<double>& v) {
    if (!v) return "None";
    return detail::format_fixed(*v, 5);  // Keras's "%.5f", with '.' whatever the locale
}

TRAINCB_INLINE bool ModelCheckpoint::is_resumed_from(const std::filesystem::path& p) const {
    if (resumed_from_.empty()) return false;
    std::error_code ec;
    if (std::filesystem::equivalent(p, resumed_from_, ec)) return true;
    return std::filesystem::absolute(p, ec).lexically_normal() ==
           std::filesystem::absolute(resumed_from_, ec).lexically_normal();
}

TRAINCB_INLINE void ModelCheckpoint::decide(Context& ctx, bool batch_save) {
    // A list driven without on_train_begin resolves the direction here, failing loudly.
    if (needs_monitor() && !dir_)
        dir_ = detail::resolve_mode("ModelCheckpoint", opt_.mode, opt_.monitor, ctx.params().metric_directions);
    const std::optional<std::filesystem::path> path = format_path(ctx, batch_save);
    if (!path) return;
    const Logs& logs = ctx.logs();
    const double* pv = opt_.monitor.empty() ? nullptr : logs.find(opt_.monitor);
    const std::string epoch_str = "Epoch " + std::to_string(ctx.epoch() + 1) + ": ";
    const bool verbose = opt_.verbose > 0 && ctx.comm().is_primary();
    std::optional<double> score;
    if (pv != nullptr) score = *pv;
    if (needs_monitor()) {
        if (pv == nullptr) {
            if (!batch_save && opt_.monitor.starts_with("val_") && !has_val_keys(logs))
                return;  // an epoch without validation: nothing to compare
            std::string msg = logs.missing_key_message("ModelCheckpoint", opt_.monitor);
            if (opt_.strict) throw InvalidArgument(msg + " (set strict = false to save anyway, as Keras >= 3.10)");
            if (!warned_missing_) {
                warned_missing_ = true;
                warn(msg + "; saving anyway, as Keras >= 3.10 does (warned once per run)");
            }
        } else if (std::isnan(*pv)) {
            if (verbose) std::cout << epoch_str << opt_.monitor << " is NaN, which is never best; not saving\n";
            return;
        } else {
            const bool improved = !best_ || detail::better(*dir_, *pv, *best_, 0.0);
            if (opt_.save_best_only && !improved) {
                if (verbose) std::cout << epoch_str << opt_.monitor << " did not improve from " << num(best_) << '\n';
                return;
            }
            if (opt_.save_top_k == 0) return;
            if (opt_.save_top_k > 0) {
                const KeptCheckpoint* worst = worst_scored(*path);
                if (worst != nullptr && scored_count(*path) >= static_cast<std::size_t>(opt_.save_top_k) &&
                    !detail::better(*dir_, *pv, *worst->score, 0.0)) {
                    if (verbose)
                        std::cout << epoch_str << opt_.monitor << " (" << num(score) << ") is not in the top "
                                  << opt_.save_top_k << '\n';
                    return;
                }
            }
            if (verbose && opt_.save_best_only)
                std::cout << epoch_str << opt_.monitor << " improved from " << num(best_) << " to " << num(score)
                          << ", saving model to " << path->string() << '\n';
        }
    }
    Pending p{*path, best_, best_path_, kept_};
    if (score && !std::isnan(*score) && dir_.has_value() && (!best_ || detail::better(*dir_, *score, *best_, 0.0))) {
        best_ = score;
        best_path_ = *path;
    } else if (best_path_ == *path) {
        best_path_.clear();  // overwritten by a worse model
    }
    std::erase_if(kept_, [&](const KeptCheckpoint& k) { return k.path == *path; });
    KeptCheckpoint k;
    k.path = *path;
    if (score && !std::isnan(*score)) k.score = score;
    k.epoch = ctx.epoch();
    k.global_step = ctx.global_step();
    kept_.push_back(std::move(k));
    if (opt_.save_top_k > 0)
        while (scored_count({}) > static_cast<std::size_t>(opt_.save_top_k)) {
            const KeptCheckpoint* worst = worst_scored({});
            const std::filesystem::path gone = worst->path;
            if (!is_resumed_from(gone) && gone != *path) to_delete_.push_back(gone);
            if (best_path_ == gone) best_path_.clear();
            std::erase_if(kept_, [&](const KeptCheckpoint& e) { return e.path == gone; });
        }
    pending_ = std::move(p);
}

TRAINCB_INLINE std::size_t ModelCheckpoint::scored_count(const std::filesystem::path& except) const {
    std::size_t n = 0;
    for (const auto& k : kept_) n += (k.score && k.path != except) ? 1U : 0U;
    return n;
}

TRAINCB_INLINE const KeptCheckpoint* ModelCheckpoint::worst_scored(const std::filesystem::path& except) const {
    const KeptCheckpoint* w = nullptr;
    for (const auto& k : kept_) {
        if (!k.score || k.path == except) continue;
        if (w == nullptr || detail::better(*dir_, *w->score, *k.score, 0.0)) w = &k;
    }
    return w;
}

TRAINCB_INLINE void ModelCheckpoint::commit(Context& ctx, bool epoch_end) {
    if (!ctx.comm().is_primary()) {
        // Another rank of a data-parallel run: the decision (best, kept) is taken, rank 0
        // writes the files.
        pending_.reset();
        to_delete_.clear();
        return;
    }
    if (opt_.async_save) {
        commit_async(ctx, epoch_end);
        return;
    }
    std::optional<io::SafetensorsFile> full;
    if (pending_) {
        Pending p = std::move(*pending_);
        pending_.reset();
        const auto kind = opt_.save_weights_only ? io::CheckpointKind::Weights : io::CheckpointKind::Full;
        if (opt_.verbose > 0 && !opt_.save_best_only)
            std::cout << "Epoch " << ctx.epoch() + 1 << ": saving model to " << p.path.string() << '\n';
        try {
            io::SafetensorsFile file = io::encode_checkpoint(io::capture_checkpoint(ctx, kind));
            if (!main_file_.path().empty())
                main_file_.save(file, "ModelCheckpoint");
            else
                io::save_checkpoint_file(p.path, file, "ModelCheckpoint");
            if (kind == io::CheckpointKind::Full) full = std::move(file);
        } catch (...) {
            best_ = p.old_best;
            best_path_ = p.old_best_path;
            kept_ = std::move(p.old_kept);
            to_delete_.clear();
            throw;
        }
        if (opt_.verbose > 0)
            std::cout << "Epoch " << ctx.epoch() + 1 << ": finished saving model to " << p.path.string() << '\n';
        for (const auto& gone : to_delete_) {
            std::error_code ec;
            std::filesystem::remove(gone, ec);
            if (ec)
                warn("traincb: ModelCheckpoint: cannot delete '" + gone.string() + "', which dropped out of the top " +
                     std::to_string(opt_.save_top_k) + ": " + ec.message());
        }
        to_delete_.clear();
        if (!epoch_end && !opt_.save_last) return;
    }
    if (!opt_.save_last) return;
    if (!full) full = io::encode_checkpoint(io::capture_checkpoint(ctx, io::CheckpointKind::Full));
    last_file_.save(*full, "ModelCheckpoint");
}

TRAINCB_INLINE void ModelCheckpoint::commit_async(Context& ctx, bool epoch_end) {
    const bool had_pending = pending_.has_value();
    const bool write_last = opt_.save_last && (epoch_end || had_pending);
    if (!had_pending && !write_last) return;
    collect_background_save(true);
    detail::CheckpointJob job;
    job.component = "ModelCheckpoint";
    InFlight f;
    f.epoch = ctx.epoch();
    const auto kind = opt_.save_weights_only ? io::CheckpointKind::Weights : io::CheckpointKind::Full;
    if (had_pending) {
        Pending p = std::move(*pending_);
        pending_.reset();
        if (opt_.verbose > 0 && !opt_.save_best_only)
            std::cout << "Epoch " << ctx.epoch() + 1 << ": saving model to " << p.path.string() << '\n';
        job.writes.push_back({p.path, kind, main_file_.path().empty() ? nullptr : &main_file_});
        job.delete_after = 1;
        job.to_delete = std::exchange(to_delete_, {});
        job.delete_reason = "which dropped out of the top " + std::to_string(opt_.save_top_k);
        f.rollback = std::move(p);
    }
    if (write_last) job.writes.push_back({last_path_, io::CheckpointKind::Full, &last_file_});
    const bool any_full = kind == io::CheckpointKind::Full || write_last;
    try {
        job.state = io::capture_checkpoint_without_model(ctx, any_full ? io::CheckpointKind::Full : kind);
        writer_.submit(ctx.model(), std::move(job));
    } catch (...) {
        if (f.rollback) roll_back(*f.rollback);
        throw;
    }
    in_flight_ = std::move(f);
}

TRAINCB_INLINE void ModelCheckpoint::collect_background_save(bool wait) {
    if (!writer_.pending() || (!wait && !writer_.finished())) return;
    detail::CheckpointJobResult r = writer_.take_result();
    InFlight f = std::move(*in_flight_);
    in_flight_.reset();
    for (const auto& w : r.warnings) warn(w);
    if (r.error) {
        if (f.rollback && r.written == 0) roll_back(*f.rollback);
        pending_.reset();
        to_delete_.clear();
        raise_background_error(r.error, f.epoch);
    }
    if (opt_.verbose > 0 && f.rollback)
        std::cout << "Epoch " << f.epoch + 1 << ": finished saving model to " << f.rollback->path.string() << '\n';
}

TRAINCB_INLINE void ModelCheckpoint::roll_back(Pending& p) {
    best_ = p.old_best;
    best_path_ = std::move(p.old_best_path);
    kept_ = std::move(p.old_kept);
    to_delete_.clear();
}

TRAINCB_INLINE void ModelCheckpoint::raise_background_error(const std::exception_ptr& error, int epoch) {
    try {
        std::rethrow_exception(error);
    } catch (const IoError& e) {
        const std::string what = e.what();
        const std::string prefix = "traincb: ModelCheckpoint: ";
        const std::size_t at = what.find(detail::cat(" '", e.path().string(), "'"));
        if (!what.starts_with(prefix) || at == std::string::npos || at <= prefix.size()) throw;
        throw IoError("ModelCheckpoint",
                      detail::cat("background save of epoch ", std::to_string(epoch + 1), ": ",
                                  what.substr(prefix.size(), at - prefix.size())),
                      e.path(), e.code());
    }
}

}  // namespace traincb::inline v0
