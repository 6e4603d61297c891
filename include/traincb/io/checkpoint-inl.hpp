#pragma once
// The bodies of traincb/io/checkpoint.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/io/checkpoint.hpp"

namespace traincb::inline v0::detail {

TRAINCB_INLINE nlohmann::json json_double(double v) {
    return format_double(v);
}

TRAINCB_INLINE double parse_json_double(const nlohmann::json& j, std::string_view what, std::string_view source) {
    if (j.is_string()) {
        if (const auto v = parse_double(j.get_ref<const std::string&>())) return *v;
    }
    throw FormatError("traincb: checkpoint: '" + std::string(source) + "': " + std::string(what) +
                      " is not a number written as a string: " + j.dump());
}

TRAINCB_INLINE void checkpoint_error(std::string_view source, const std::string& why) {
    throw FormatError("traincb: checkpoint: '" + std::string(source) + "': " + why);
}

TRAINCB_INLINE std::string text_checksum(std::string_view text) {
    std::string out = "xxh64:";  // not `"xxh64:" + hex64(...)`: g++ 12 -O2 warns falsely there (-Wrestrict)
    out += hex64(xxh64(text));
    return out;
}

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::io {

TRAINCB_INLINE Checkpoint capture_checkpoint_without_model(Context& ctx, CheckpointKind kind) {
    if (!ctx.model().has_state())
        throw InvalidArgument(
            "traincb: checkpoint: the model has no visit_state(traincb::StateVisitor&), so there is nothing to "
            "save; add it (see traincb/state.hpp) or specialise traincb::model_traits");
    Checkpoint c;
    c.kind = kind;
    c.version = version_string;
    c.position.epoch = ctx.epoch();
    c.position.epoch_completed = ctx.batch() < 0;
    c.position.batch = ctx.batch() >= 0 ? ctx.batch() + 1 : ctx.params().steps_per_epoch;
    c.position.global_step = ctx.global_step();
    if (const RunState* rs = ctx.run_state()) {
        c.seed = rs->seed;
        c.fit_options = rs->fit_options;
        if (!c.position.epoch_completed) {
            c.loss_sum = rs->loss_sum;
            c.loss_count = rs->loss_count;
            if (kind == CheckpointKind::Full && rs->metric_states)
                c.train_metrics = rs->metric_states(c.train_metric_tensors);
        }
    }
    if (kind == CheckpointKind::Weights) return c;
    c.stopped = ctx.stop_requested();
    c.stop_source = ctx.stop_source();
    c.stop_reason = ctx.stop_reason();
    const CallbackList& list = ctx.callbacks();
    for (std::size_t i = 0; i < list.size(); ++i) {
        const Callback& cb = list[i];
        std::string key = cb.state_key();
        if (key.empty()) continue;
        CallbackState s;
        cb.save_state(s);
        c.callbacks.insert_or_assign(std::move(key), std::move(s));
    }
    if (const History* h = ctx.history()) {
        c.history.epoch = h->epoch;
        c.history.history = h->history;
    }
    return c;
}

TRAINCB_INLINE Checkpoint capture_checkpoint(Context& ctx, CheckpointKind kind) {
    Checkpoint c = capture_checkpoint_without_model(ctx, kind);
    StateCollector collector(c.model);
    ctx.model().visit_state(collector);
    return c;
}

TRAINCB_INLINE nlohmann::json checkpoint_state_json(const Checkpoint& c) {
    nlohmann::json j = nlohmann::json::object();
    j["format_version"] = c.kind == CheckpointKind::Full ? kCheckpointFormatVersion : 1;
    j["epoch"] = c.position.epoch;
    j["epoch_completed"] = c.position.epoch_completed;
    j["batch"] = c.position.batch;
    j["global_step"] = c.position.global_step;
    j["seed"] = c.seed;
    j["fit_options"] = c.fit_options;
    if (c.kind == CheckpointKind::Weights) return j;
    if (!c.position.epoch_completed) j["loss"] = {{"sum", detail::json_double(c.loss_sum)}, {"count", c.loss_count}};
    // An optional field (no format version bump): a reader that predates it resumes the metrics
    // from the next batch, as it always did.
    if (!c.position.epoch_completed && !c.train_metrics.is_null()) j["train_metrics"] = c.train_metrics;
    j["stop"] = c.stopped ? nlohmann::json{{"source", c.stop_source}, {"reason", c.stop_reason}} : nlohmann::json();
    nlohmann::json cbs = nlohmann::json::object();
    for (const auto& [key, s] : c.callbacks) cbs[key] = {{"version", s.version}, {"json", s.json}};
    j["callbacks"] = std::move(cbs);
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& [key, col] : c.history.history) keys.push_back(key);
    j["history"] = {{"epochs", c.history.epoch.size()}, {"keys", std::move(keys)}};
    return j;
}

TRAINCB_INLINE SafetensorsFile encode_checkpoint(Checkpoint c) {
    SafetensorsFile f;
    const std::string state = checkpoint_state_json(c).dump();
    f.metadata = {{"format", "pt"},
                  {std::string(detail::kVersionKey), c.version.empty() ? std::string(version_string) : c.version},
                  {std::string(detail::kKindKey), to_string(c.kind)},
                  {std::string(detail::kStateKey), state},
                  {std::string(detail::kStateChecksumKey), detail::text_checksum(state)}};
    auto& out = f.tensors.tensors();
    out.reserve(c.model.size());
    for (Tensor& t : c.model.tensors()) {
        t.name.insert(0, detail::kModelPrefix);
        out.push_back(std::move(t));
    }
    if (c.kind == CheckpointKind::Weights) return f;
    const auto move_under = [&out](std::string_view prefix, const std::string& key, StateDict& d) {
        for (Tensor& t : d.tensors()) {
            t.name.insert(0, std::string(prefix) + key + "/");
            out.push_back(std::move(t));
        }
    };
    for (auto& [key, s] : c.callbacks) {
        if (key.empty())
            throw InvalidArgument("traincb: checkpoint: a callback state has an empty key; give the callback an id");
        move_under(detail::kCallbacksPrefix, key, s.tensors);
    }
    if (!c.position.epoch_completed && !c.train_metrics.is_null())
        for (auto& [key, d] : c.train_metric_tensors) move_under(detail::kTrainMetricsPrefix, key, d);
    // The History as tensors: its text form cost O(epochs) of formatting and escaping per save.
    const std::vector<std::int64_t> epochs(c.history.epoch.begin(), c.history.epoch.end());
    out.push_back(vector_tensor<std::int64_t>(std::string(detail::kHistoryEpochTensor), epochs));
    for (const auto& [key, col] : c.history.history) {
        if (col.size() != epochs.size())
            throw InvalidArgument("traincb: checkpoint: history column '" + key + "' has " +
                                  std::to_string(col.size()) + " values for " + std::to_string(epochs.size()) +
                                  " recorded epochs; record epochs with History::record");
        out.push_back(vector_tensor<double>(std::string(detail::kHistoryValuesPrefix) + key, col));
    }
    return f;
}

TRAINCB_INLINE void save_checkpoint_file(const std::filesystem::path& path, const SafetensorsFile& file,
                                         std::string_view component, const std::filesystem::path& keep_previous) {
    detail::os::FileStatus st;
    // rename() over a directory would fail too, but only after writing the whole file.
    if (detail::os::status(path, st) == 0 && st.type == detail::os::FileType::Directory)
        throw IoError(std::string(component), "cannot write the checkpoint", path, EISDIR);
    save_safetensors(path, file.tensors, file.metadata, SaveOptions{.checksum = true, .keep_previous = keep_previous},
                     component);
}

TRAINCB_INLINE void save_checkpoint(const std::filesystem::path& path, Checkpoint c, std::string_view component) {
    save_checkpoint_file(path, encode_checkpoint(std::move(c)), component);
}

TRAINCB_INLINE Checkpoint detail_ckpt::decode_metadata(const std::map<std::string, std::string>& metadata,
                                                       std::string_view source, HistoryLayout* layout) {
    using traincb::detail::checkpoint_error;
    auto meta = [&](std::string_view key) -> const std::string& {
        const auto it = metadata.find(std::string(key));
        if (it == metadata.end())
            checkpoint_error(source, "the metadata has no '" + std::string(key) +
                                         "'; this is not a checkpoint written by traincb (load plain safetensors "
                                         "files with traincb::io::load_safetensors)");
        return it->second;
    };
    (void)meta(kChecksumKey);  // present, hence verified by the loader: an unchecked file is refused
    Checkpoint c;
    const std::string& kind = meta(detail::kKindKey);
    if (kind == "full")
        c.kind = CheckpointKind::Full;
    else if (kind == "weights")
        c.kind = CheckpointKind::Weights;
    else
        checkpoint_error(source, "'traincb.kind' is '" + kind + "', expected 'full' or 'weights'");
    c.version = meta(detail::kVersionKey);
    const std::string& state = meta(detail::kStateKey);
    const std::string& sum = meta(detail::kStateChecksumKey);
    if (sum != detail::text_checksum(state))
        checkpoint_error(source, "checksum mismatch: 'traincb.state' hashes to " + detail::text_checksum(state) +
                                     " but the file records " + sum +
                                     "; the file is corrupted, resume from another checkpoint");
    try {
        const nlohmann::json j = nlohmann::json::parse(state);
        if (!j.is_object()) checkpoint_error(source, "'traincb.state' is not a JSON object");
        const int fv = j.at("format_version").get<int>();
        if (fv < kCheckpointMinFormatVersion || fv > kCheckpointFormatVersion)
            checkpoint_error(source, "state format version " + std::to_string(fv) +
                                         " is not readable by this traincb (" + version_string + ", reads versions " +
                                         std::to_string(kCheckpointMinFormatVersion) + " to " +
                                         std::to_string(kCheckpointFormatVersion) + ")");
        c.position.epoch = j.at("epoch").get<int>();
        c.position.epoch_completed = j.at("epoch_completed").get<bool>();
        c.position.batch = j.at("batch").get<std::int64_t>();
        c.position.global_step = j.at("global_step").get<std::int64_t>();
        if (c.position.epoch < -1 || c.position.batch < 0 || c.position.global_step < 0)
            checkpoint_error(source, "the position (epoch " + std::to_string(c.position.epoch) + ", batch " +
                                         std::to_string(c.position.batch) + ", global step " +
                                         std::to_string(c.position.global_step) + ") is out of range");
        c.seed = j.at("seed").get<std::uint64_t>();
        c.fit_options = j.at("fit_options");
        if (!c.fit_options.is_object()) checkpoint_error(source, "'fit_options' is not a JSON object");
        if (c.kind == CheckpointKind::Weights) return c;
        if (const auto it = j.find("loss"); it != j.end()) {
            c.loss_sum = detail::parse_json_double(it->at("sum"), "loss.sum", source);
            c.loss_count = it->at("count").get<std::int64_t>();
        }
        if (const auto it = j.find("train_metrics"); it != j.end() && !it->is_null()) {
            if (!it->is_object())
                checkpoint_error(source, "'train_metrics' is " + std::string(it->type_name()) +
                                             ", expected an object of metric states by log key");
            for (const auto& [key, state] : it->items())
                if (!state.is_object() && !state.is_null())
                    checkpoint_error(source, "'train_metrics' holds " + std::string(state.type_name()) + " for '" +
                                                 key + "', expected a metric state (an object) or null");
            c.train_metrics = *it;
        }
        const auto& stop = j.at("stop");
        if (!stop.is_null()) {
            c.stopped = true;
            c.stop_source = stop.at("source").get<std::string>();
            c.stop_reason = stop.at("reason").get<std::string>();
        }
        for (const auto& [key, v] : j.at("callbacks").items()) {
            CallbackState s;
            s.version = v.at("version").get<int>();
            s.json = v.at("json");
            c.callbacks.emplace(key, std::move(s));
        }
        const auto& h = j.at("history");
        if (fv == 1) {  // the History as JSON: epoch indices and every value as a string
            c.history.epoch = h.at("epoch").get<std::vector<int>>();
            for (const auto& [key, col] : h.at("values").items()) {
                if (!col.is_array() || col.size() != c.history.epoch.size())
                    checkpoint_error(source, "history column '" + key + "' does not hold one value per recorded epoch");
                auto& out = c.history.history[key];
                out.reserve(col.size());
                for (const auto& v : col)
                    out.push_back(detail::parse_json_double(v, "history value of '" + key + "'", source));
            }
        } else {  // the History in tensors: their count and keys here
            const auto& n = h.at("epochs");
            if (!n.is_number_integer() || (!n.is_number_unsigned() && n.get<std::int64_t>() < 0))
                checkpoint_error(source, "'history.epochs' is " + n.dump() + ", expected a count of epochs");
            HistoryLayout l{.in_tensors = true, .epochs = n.get<std::size_t>(), .keys = {}};
            l.keys = h.at("keys").get<std::vector<std::string>>();
            const std::set<std::string_view> unique(l.keys.begin(), l.keys.end());
            if (unique.size() != l.keys.size()) checkpoint_error(source, "'history.keys' names a key twice");
            if (layout != nullptr) *layout = std::move(l);
        }
    } catch (const nlohmann::json::exception& e) {
        checkpoint_error(source, std::string("'traincb.state' is malformed (") + e.what() + ")");
    }
    return c;
}

TRAINCB_INLINE Checkpoint decode_checkpoint_metadata(const std::map<std::string, std::string>& metadata,
                                                     std::string_view source) {
    return detail_ckpt::decode_metadata(metadata, source, nullptr);
}

TRAINCB_INLINE Checkpoint decode_checkpoint(SafetensorsFile&& f, std::string_view source) {
    using traincb::detail::checkpoint_error;
    detail_ckpt::HistoryLayout history;
    Checkpoint c = detail_ckpt::decode_metadata(f.metadata, source, &history);
    const bool full = c.kind == CheckpointKind::Full;
    // Each metric state (not null) may own tensors.
    if (full && c.train_metrics.is_object())
        for (const auto& [key, state] : c.train_metrics.items())
            if (!state.is_null()) c.train_metric_tensors[key];
    std::map<std::string, std::optional<Tensor>, std::less<>> columns;
    for (const std::string& key : history.keys) columns[key];
    std::optional<Tensor> epochs;
    // The tensor `t`, whose name starts with `prefix`, moved to the state whose key prefixes the
    // rest of its name (the longest such key: a key may itself contain '/').
    const auto move_to_owner = [&](Tensor& t, std::string_view prefix, auto& owners, auto member, const char* what) {
        std::size_t len = 0;
        auto* owner = detail::longest_owner(owners, std::string_view(t.name).substr(prefix.size()), len);
        if (owner == nullptr)
            checkpoint_error(source, "tensor '" + t.name + "' belongs to no " + what + " recorded in 'traincb.state'");
        t.name.erase(0, prefix.size() + len + 1);
        member(*owner).tensors().push_back(std::move(t));
    };
    for (Tensor& t : f.tensors.tensors()) {
        const std::string_view name = t.name;
        if (name.starts_with(detail::kModelPrefix)) {
            t.name.erase(0, detail::kModelPrefix.size());
            c.model.tensors().push_back(std::move(t));
        } else if (!full) {
            // A weights checkpoint holds nothing else of traincb's.
        } else if (name.starts_with(detail::kCallbacksPrefix)) {
            move_to_owner(
                t, detail::kCallbacksPrefix, c.callbacks, [](CallbackState& s) -> StateDict& { return s.tensors; },
                "callback state");
        } else if (name.starts_with(detail::kTrainMetricsPrefix)) {
            move_to_owner(
                t, detail::kTrainMetricsPrefix, c.train_metric_tensors, [](StateDict& d) -> StateDict& { return d; },
                "training metric state");
        } else if (history.in_tensors && name == detail::kHistoryEpochTensor) {
            epochs = std::move(t);
        } else if (history.in_tensors && name.starts_with(detail::kHistoryValuesPrefix)) {
            const auto it = columns.find(name.substr(detail::kHistoryValuesPrefix.size()));
            if (it == columns.end())
                checkpoint_error(source, "tensor '" + t.name + "' is not a key listed in 'history.keys'");
            it->second = std::move(t);
        }
        // Other tensors are not traincb's: kept out of the way (a later format may add some).
    }
    std::erase_if(c.train_metric_tensors, [](const auto& e) { return e.second.empty(); });
    if (history.in_tensors) {
        const auto missing = [&](const std::string& name) {
            checkpoint_error(source, "the History tensor '" + name + "' is missing");
        };
        const auto malformed = [&](const Tensor& t, const char* want) {
            checkpoint_error(source, "the History tensor '" + t.name + "' is " + dtype_name(t.dtype) + " " +
                                         traincb::detail::shape_string(t.shape) + ", expected " + want + " [" +
                                         std::to_string(history.epochs) + "] (one value per recorded epoch)");
        };
        if (!epochs) missing(std::string(detail::kHistoryEpochTensor));
        std::vector<std::int64_t> e;
        if (!read_vector_tensor(*epochs, history.epochs, e)) malformed(*epochs, "I64");
        c.history.epoch.reserve(e.size());
        for (const std::int64_t v : e) {
            if (v < 0 || v > std::numeric_limits<int>::max())
                checkpoint_error(source, "the History tensor '" + epochs->name + "' holds epoch " + std::to_string(v));
            c.history.epoch.push_back(static_cast<int>(v));
        }
        for (auto& [key, t] : columns) {
            if (!t) missing(std::string(detail::kHistoryValuesPrefix) + key);
            if (!read_vector_tensor(*t, history.epochs, c.history.history[key])) malformed(*t, "F64");
        }
    }
    if (c.model.empty()) checkpoint_error(source, "the file holds no 'model/' tensor");
    return c;
}

TRAINCB_INLINE Checkpoint parse_checkpoint(std::span<const std::byte> bytes, std::string_view source) {
    return decode_checkpoint(parse_safetensors(bytes, source), source);
}

TRAINCB_INLINE Checkpoint load_checkpoint(const std::filesystem::path& path, std::string_view component) {
    return decode_checkpoint(load_safetensors(path, component), path.string());
}

TRAINCB_INLINE void restore_model(const Checkpoint& c, ModelHandle& model) {
    StateLoader loader(c.model);
    model.visit_state(loader);
}

namespace detail_ckpt {

TRAINCB_INLINE Header read_header(const std::filesystem::path& path) {
    traincb::detail::FileReader in(path, "checkpoint");
    const std::string source = path.string();
    std::array<std::byte, 8> prefix{};
    const std::size_t got = in.read(prefix);
    const std::uint64_t n = traincb::detail::safetensors_header_size(std::span(prefix).first(got), in.size(), source);
    std::vector<std::byte> header(static_cast<std::size_t>(n));
    if (in.read(header) != header.size()) throw FormatError("traincb: checkpoint: '" + source + "': the file shrank");
    const traincb::detail::SafetensorsLayout layout =
        traincb::detail::parse_safetensors_header(header, in.size(), source);
    const Checkpoint c = decode_checkpoint_metadata(layout.metadata, source);
    return {c.kind, c.position};
}

TRAINCB_INLINE std::string reason_of(const Error& e, const std::filesystem::path& path) {
    std::string what = e.what();
    const std::string mark = traincb::detail::cat("'", path.string(), "': ");
    constexpr std::string_view kPrefix = "traincb: ";
    const std::size_t component_end = what.find(": ", kPrefix.size());
    if (!what.starts_with(kPrefix) || component_end == std::string::npos ||
        what.compare(component_end + 2, mark.size(), mark) != 0)
        return what;  // not "traincb: <component>: '<path>': <why>" (an IoError: "cannot open '<path>': ...")
    return what.substr(component_end + 2 + mark.size());
}

TRAINCB_INLINE bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
    if (a.empty() || b.empty()) return false;
    std::error_code ec;
    if (std::filesystem::equivalent(a, b, ec)) return true;
    return std::filesystem::absolute(a, ec).lexically_normal() == std::filesystem::absolute(b, ec).lexically_normal();
}

TRAINCB_INLINE CheckpointScan scan(const std::filesystem::path& dir, Checkpoint* loaded) {
    namespace fs = std::filesystem;
    CheckpointScan out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return out;
    struct Candidate {
        fs::path path;
        CheckpointPosition pos;
    };
    std::vector<Candidate> found;
    fs::directory_iterator it(dir, ec);
    if (ec) throw IoError("checkpoint", "cannot list", dir, ec);
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) throw IoError("checkpoint", "cannot list", dir, ec);
        const fs::path& p = it->path();
        const std::string name = p.filename().string();
        if (name.empty() || name.front() == '.' || p.extension() != ".safetensors") continue;
        std::error_code fe;
        if (!it->is_regular_file(fe)) continue;
        try {
            const Header h = read_header(p);
            if (h.kind == CheckpointKind::Full) found.push_back({p, h.position});
        } catch (const Error& e) {
            out.invalid.push_back({p, reason_of(e, p)});
        }
    }
    // Newest first. Among equal positions (ModelCheckpoint writes its file and last.safetensors
    // from the same moment) last.safetensors wins: save_top_k never deletes the file a run resumed
    // from, and last is not subject to it. Then name order, so the listing order never decides.
    std::sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
        if (a.pos.global_step != b.pos.global_step) return a.pos.global_step > b.pos.global_step;
        if (a.pos.epoch_completed != b.pos.epoch_completed) return a.pos.epoch_completed;
        if (a.pos.epoch != b.pos.epoch) return a.pos.epoch > b.pos.epoch;
        const bool a_last = a.path.filename() == "last.safetensors", b_last = b.path.filename() == "last.safetensors";
        if (a_last != b_last) return a_last;
        return a.path < b.path;
    });
    for (const Candidate& c : found) {
        try {
            Checkpoint ckpt = load_checkpoint(c.path);  // the tensor checksum is checked only with the data
            if (loaded != nullptr) *loaded = std::move(ckpt);
            out.latest = c.path;
            break;
        } catch (const Error& e) {
            out.invalid.push_back({c.path, reason_of(e, c.path)});
        }
    }
    std::sort(out.invalid.begin(), out.invalid.end(),
              [](const InvalidCheckpointFile& a, const InvalidCheckpointFile& b) { return a.path < b.path; });
    return out;
}

}  // namespace detail_ckpt

TRAINCB_INLINE CheckpointScan scan_checkpoints(const std::filesystem::path& dir) {
    return detail_ckpt::scan(dir, nullptr);
}

TRAINCB_INLINE std::optional<std::filesystem::path> find_latest_checkpoint(const std::filesystem::path& dir) {
    CheckpointScan found = scan_checkpoints(dir);
    for (const InvalidCheckpointFile& f : found.invalid)
        warn("traincb: checkpoint: skipping invalid checkpoint '" + f.path.string() + "': " + f.reason);
    return found.latest;
}

TRAINCB_INLINE std::filesystem::path previous_checkpoint_path(const std::filesystem::path& path) {
    std::filesystem::path p = path;
    if (path.extension() == ".safetensors")
        p.replace_filename(path.stem().string() + ".prev.safetensors");
    else
        p.replace_filename(path.filename().string() + ".prev");
    return p;
}

TRAINCB_INLINE void RotatingCheckpoint::begin_run(std::filesystem::path resumed_from) {
    ours_ = detail_ckpt::same_file(path_, resumed_from);
    resumed_from_ = std::move(resumed_from);
}

TRAINCB_INLINE void RotatingCheckpoint::save(const SafetensorsFile& file, std::string_view component) {
    if (ours_) {
        save_checkpoint_file(path_, file, component, previous_);
    } else {
        if (!detail_ckpt::same_file(previous_, resumed_from_))
            if (const int err = detail::os::remove_file(previous_); err != 0 && err != ENOENT)
                throw IoError(std::string(component), "cannot remove the stale previous checkpoint", previous_, err);
        save_checkpoint_file(path_, file, component);
    }
    ours_ = true;
}

TRAINCB_INLINE std::size_t remove_stale_temp_files(const std::filesystem::path& dir) noexcept {
    namespace fs = std::filesystem;
    std::size_t removed = 0;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) return 0;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) break;
        try {
            const std::string name = it->path().filename().string();
            constexpr std::string_view kMark = ".safetensors.tmp.";
            const std::size_t m = name.find(kMark);
            if (name.empty() || name.front() != '.' || m == std::string::npos) continue;
            const std::size_t pid_begin = m + kMark.size();
            const std::size_t pid_end = name.find('.', pid_begin);
            if (pid_end == std::string::npos) continue;
            long pid = 0;
            const auto r = std::from_chars(name.data() + pid_begin, name.data() + pid_end, pid);
            if (r.ec != std::errc{} || r.ptr != name.data() + pid_end || pid <= 0) continue;
            if (pid == detail::os::current_pid()) continue;
            if (!detail::os::process_is_gone(pid)) continue;  // alive, or not ours to judge
            std::error_code re;
            if (fs::remove(it->path(), re)) ++removed;
        } catch (...) {
            // a name that cannot be converted: not one of ours
        }
    }
    return removed;
}

}  // namespace traincb::inline v0::io
