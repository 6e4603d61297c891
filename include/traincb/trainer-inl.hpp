#pragma once
// The bodies of traincb/trainer.hpp's non-template functions: included at the end of that header
// when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/trainer.hpp"

namespace traincb::inline v0 {
namespace detail {

TRAINCB_INLINE void epoch_permutation(std::vector<Eigen::Index>& idx, std::uint64_t seed, int epoch) {
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<Eigen::Index>(i);
    SplitMix64 rng{
        splitmix64_mix(splitmix64_mix(seed) + static_cast<std::uint64_t>(static_cast<std::uint32_t>(epoch)))};
    for (std::size_t i = idx.size(); i > 1; --i)
        std::swap(idx[i - 1], idx[static_cast<std::size_t>(bounded_random(rng, i))]);
}

TRAINCB_INLINE std::string shape(Eigen::Index r, Eigen::Index c) {
    return std::to_string(r) + "x" + std::to_string(c);
}

TRAINCB_INLINE nlohmann::json save_metric_states(const std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms,
                                                 std::map<std::string, StateDict, std::less<>>& tensors) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& m : ms) {
        nlohmann::json s;
        StateDict t;
        const bool saved = m->save_state_with_tensors(s, t);
        out[m->name()] = saved ? std::move(s) : nlohmann::json();
        if (saved && !t.empty()) tensors[m->name()] = std::move(t);
    }
    return out;
}

TRAINCB_INLINE std::string json_text(const nlohmann::json& j) {
    return j.dump();
}

TRAINCB_INLINE nlohmann::json FitCommon::skip_json(const std::vector<BatchIndex>& skip) {
    nlohmann::json a = nlohmann::json::array();
    for (const BatchIndex& i : skip) a.push_back({i.epoch, i.batch});
    return a;
}

TRAINCB_INLINE int FitCommon::checkpoint_world(const io::Checkpoint& c) {
    const auto it = c.fit_options.find("world_size");
    return it != c.fit_options.end() && it->is_number_integer() ? it->template get<int>() : 1;
}

TRAINCB_INLINE std::string FitCommon::list_invalid(const std::vector<InvalidCheckpointFile>& files) {
    std::string out;
    for (const InvalidCheckpointFile& f : files)
        out += detail::cat(out.empty() ? "" : "; ", "'", f.path.string(), "' (", f.reason, ")");
    return out;
}

TRAINCB_INLINE void FitCommon::warn_fallback(const std::filesystem::path& from,
                                             const std::vector<InvalidCheckpointFile>& invalid,
                                             const std::filesystem::path& used, const io::CheckpointPosition& pos) {
    const std::string where = pos.epoch_completed ? detail::cat("the end of epoch ", std::to_string(pos.epoch + 1))
                                                  : detail::cat("batch ", std::to_string(pos.batch), " of epoch ",
                                                                std::to_string(pos.epoch + 1));
    warn(detail::cat("traincb: Trainer::fit: resume_from '", from.string(), "': skipping ",
                     std::to_string(invalid.size()), " invalid checkpoint file", invalid.size() == 1 ? "" : "s", ": ",
                     list_invalid(invalid), "; resuming from '", used.string(), "' (", where,
                     "), the newest valid checkpoint"));
}

TRAINCB_INLINE std::vector<BatchIndex> FitCommon::checkpoint_skips(const io::Checkpoint& c,
                                                                   const std::filesystem::path& path) {
    std::vector<BatchIndex> out;
    const auto it = c.fit_options.find("skip_batches");
    if (it == c.fit_options.end()) return out;
    const auto bad = [&] {
        throw FormatError(detail::cat("traincb: Trainer::fit: resuming from '", path.string(),
                                      "': fit_options.skip_batches is ", detail::json_text(*it),
                                      ", expected [[epoch, batch], ...] with both >= 0"));
    };
    if (!it->is_array()) bad();
    for (const auto& e : *it) {
        if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number_integer()) bad();
        const auto epoch = e[0].get<std::int64_t>();
        const auto batch = e[1].get<std::int64_t>();
        if (epoch < 0 || epoch > std::numeric_limits<int>::max() || batch < 0) bad();
        out.push_back({static_cast<int>(epoch), batch});
    }
    return out;
}

TRAINCB_INLINE void FitCommon::load_callback_states(CallbackList& list, const io::Checkpoint& c,
                                                    const std::filesystem::path& path) {
    const std::string where = "traincb: Trainer::fit: resuming from '" + path.string() + "': ";
    const bool tells = list.context().comm().rank() == 0;  // every rank loads the same states
    std::set<std::string, std::less<>> used;
    for (std::size_t i = 0; i < list.size(); ++i) {
        Callback& cb = list[i];
        const std::string key = cb.state_key();
        if (key.empty()) continue;
        const auto it = c.callbacks.find(key);
        if (it == c.callbacks.end()) {
            if (tells)
                warn(where + "the checkpoint holds no state for callback '" + key + "' (" + cb.name() +
                     "); it starts fresh");
            continue;
        }
        cb.load_state(it->second, list.context());
        used.insert(key);
    }
    for (const auto& [key, state] : c.callbacks)
        if (!used.contains(key))
            if (tells)
                warn(where + "the checkpoint holds state for '" + key +
                     "', which no callback of this run has; it is ignored");
}

TRAINCB_INLINE void FitCommon::restore_train_metrics(std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms,
                                                     const io::Checkpoint& c, const std::filesystem::path& path,
                                                     int epoch, std::int64_t next_batch, std::int64_t steps) {
    if (ms.empty()) return;
    const std::string where = "traincb: Trainer::fit: resuming from '" + path.string() + "': ";
    std::string missed;
    const auto miss = [&](const ::traincb::metrics::Metric& m, const std::string& why) {
        missed += std::string(missed.empty() ? "" : "; ") + "'" + m.name() + "' (" + why + ")";
    };
    if (!c.train_metrics.is_object()) {
        for (const auto& m : ms)
            miss(*m, "the checkpoint holds no training metric states: it predates them, or its driver saves none");
    } else {
        for (auto& m : ms) {
            const auto it = c.train_metrics.find(m->name());
            if (it == c.train_metrics.end()) {
                miss(*m, "the checkpoint holds no state for it");
            } else if (it->is_null()) {
                miss(*m, "its class does not implement metrics::Metric::save_state and load_state");
            } else {
                try {
                    const StateDict none;
                    const auto t = c.train_metric_tensors.find(m->name());
                    m->load_state_with_tensors(*it, t != c.train_metric_tensors.end() ? t->second : none);
                } catch (const InvalidArgument& e) {  // another class or other options: the new ones win
                    miss(*m, e.what());
                } catch (const FormatError& e) {
                    throw FormatError(where + "the state of training metric '" + m->name() +
                                      "' is unusable: " + e.what());
                }
            }
        }
    }
    if (!missed.empty())
        warn(where + "resumed in the middle of epoch " + std::to_string(epoch + 1) + " (after batch " +
             std::to_string(next_batch) + " of " + std::to_string(steps) +
             "): the training loss is restored exactly, but these training metrics restart, so this epoch's "
             "values of them cover only the batches after the resume: " +
             missed);
}

TRAINCB_INLINE void FitCommon::print_epoch(int epoch, int epochs, const Logs& logs) {
    std::string line = "Epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
    for (const auto& [k, v] : logs) line += " - " + k + ": " + detail::format_double(v);
    std::cout << line << '\n';
}

template <class S>
void FitSteps<S>::prepare_validation(Run& r, bool model_has_loss) {
    const FitOptions<S>& opt = r.opt;
    if (opt.validation_data) {
        const auto& vd = *opt.validation_data;
        if (vd.x.cols() != r.x.cols() || vd.y.cols() != r.y.cols() || vd.x.rows() != vd.y.rows() || vd.x.rows() == 0)
            throw InvalidArgument("traincb: Trainer::fit: validation x is " + detail::shape(vd.x.rows(), vd.x.cols()) +
                                  " and validation y is " + detail::shape(vd.y.rows(), vd.y.cols()) +
                                  ", but training x is " + detail::shape(r.x.rows(), r.x.cols()) + " and y is " +
                                  detail::shape(r.y.rows(), r.y.cols()) +
                                  "; validation needs the same columns and as many x rows as y rows (at least one)");
        r.vx = &vd.x;
        r.vy = &vd.y;
    } else if (opt.validation_split > 0) {
        const auto n_val =
            static_cast<Eigen::Index>(std::floor(static_cast<double>(r.x.rows()) * opt.validation_split));
        r.n_train = r.x.rows() - n_val;
        if (n_val == 0 || r.n_train == 0)
            throw InvalidArgument("traincb: Trainer::fit: validation_split " +
                                  detail::format_double(opt.validation_split) + " of " + std::to_string(r.x.rows()) +
                                  " rows leaves " + std::to_string(r.n_train) + " training and " +
                                  std::to_string(n_val) + " validation rows; both need at least one");
        r.split_x = r.x.bottomRows(n_val);
        r.split_y = r.y.bottomRows(n_val);
        r.vx = &r.split_x;
        r.vy = &r.split_y;
    }
    r.has_val_loss = r.vx != nullptr && (opt.loss != nullptr || model_has_loss);
    if (r.comm != nullptr && r.vx != nullptr) {  // this rank's share of the validation rows
        const auto [begin, rows] = even_share(r.vx->rows(), r.world, r.rank);
        Matrix<S> sx = r.vx->middleRows(begin, rows);
        Matrix<S> sy = r.vy->middleRows(begin, rows);
        r.split_x = std::move(sx);
        r.split_y = std::move(sy);
        r.vx = &r.split_x;
        r.vy = &r.split_y;
    }
}

template <class S>
void FitSteps<S>::build_metrics_and_params(Run& r) {
    const FitOptions<S>& opt = r.opt;
    const bool has_val = r.vx != nullptr;
    if (opt.loss) r.val_loss_metric = opt.loss->clone();
    TrainParams& params = r.params;
    params.epochs = opt.epochs;
    params.initial_epoch = opt.initial_epoch;
    params.batch_size = opt.batch_size;
    params.samples = r.n_train;
    if (r.comm != nullptr && r.n_train < r.world)
        throw InvalidArgument(detail::cat("traincb: Trainer::fit: ", std::to_string(r.n_train),
                                          " training rows cannot be shared by ", std::to_string(r.world),
                                          " ranks; every rank needs at least one row per step: train on more "
                                          "rows or on fewer ranks"));
    params.steps_per_epoch = steps_from(r.n_train, 0, opt.batch_size, r.world);
    params.verbose = opt.verbose;
    params.has_validation = has_val;
    params.log_keys.push_back("loss");
    if (r.has_val_loss) params.log_keys.push_back("val_loss");
    for (const auto& m : opt.metrics) {
        if (!m) throw InvalidArgument("traincb: Trainer::fit: options.metrics holds a null pointer");
        const std::string key = m->name();
        for (const auto& k : params.log_keys)
            if (k == key || k == "val_" + key)
                throw InvalidArgument("traincb: Trainer::fit: two metrics log the key '" + key +
                                      "'; give one of them another name");
        r.train_metrics.push_back(m->clone());
        r.train_metrics.back()->reset();
        r.metric_keys.push_back(r.train_metrics.back()->name());
        params.log_keys.push_back(key);
        params.metric_directions.emplace_back(key, m->direction());
        if (has_val) {
            r.val_metrics.push_back(m->clone());
            params.log_keys.push_back("val_" + key);
            params.metric_directions.emplace_back("val_" + key, m->direction());
        }
    }
    std::sort(params.log_keys.begin(), params.log_keys.end());
}

template <class S>
void FitSteps<S>::record_run_state(Run& r) {
    const FitOptions<S>& opt = r.opt;
    r.run_state.seed = opt.seed;
    r.run_state.fit_options = {{"epochs", opt.epochs},
                               {"batch_size", opt.batch_size},
                               {"shuffle", opt.shuffle},
                               {"shuffle_order", detail::kShuffleOrder},
                               {"samples", static_cast<std::int64_t>(r.n_train)},
                               {"steps_per_epoch", r.params.steps_per_epoch},
                               {"validation_freq", opt.validation_freq},
                               {"has_validation", r.vx != nullptr}};
    if (r.comm != nullptr) r.run_state.fit_options["world_size"] = r.world;
    r.skip = opt.skip_batches;
    std::sort(r.skip.begin(), r.skip.end());
    r.skip.erase(std::unique(r.skip.begin(), r.skip.end()), r.skip.end());
    if (!r.skip.empty()) r.run_state.fit_options["skip_batches"] = skip_json(r.skip);
    // Metric states are gathered only when a mid-epoch checkpoint is taken, never per batch.
    if (!r.train_metrics.empty())
        r.run_state.metric_states = [&r](std::map<std::string, StateDict, std::less<>>& tensors) {
            return detail::save_metric_states(r.train_metrics, tensors);
        };
}

template <class S>
std::filesystem::path FitSteps<S>::find_resume_on_rank0(Run& r, io::Checkpoint& out) {
    detail::BytesWriter w;
    std::exception_ptr error;
    std::filesystem::path path;
    if (r.rank == 0) {
        try {
            path = find_resume_checkpoint(r.opt, out);
            std::vector<std::byte> file;
            if (!path.empty()) file = io::read_file(path, "Trainer");
            w.u64(path.empty() ? 0 : 1);
            w.str(path.string());
            w.u64(file.size());
            w.raw(file.data(), file.size());
        } catch (...) {
            error = std::current_exception();
            w = detail::BytesWriter();
            w.u64(2);
            w.str(detail::exception_message(error));
        }
    }
    std::vector<std::byte> bytes = std::move(w.bytes());
    r.comm->broadcast_resize(bytes, 0);
    if (r.rank == 0) {
        if (error) std::rethrow_exception(error);
        return path;
    }
    detail::BytesReader in(bytes);
    const std::uint64_t status = in.u64();
    std::string text = in.str();
    if (status == 2) throw RemoteRankError(0, text);
    if (status == 0) return {};
    std::vector<std::byte> file(static_cast<std::size_t>(in.u64()));
    in.raw(file.data(), file.size());
    out = io::parse_checkpoint(file, text);
    return text;
}

template <class S>
void FitSteps<S>::allocate_buffers(Run& r) {
    const Eigen::Index bs = std::min<Eigen::Index>(r.opt.batch_size, r.n_train);
    r.end_label = r.params.steps_per_epoch;
    const Eigen::Index tail = batch_rows(r, r.end_label - 1).second;
    r.xb.resize(bs, r.x.cols());
    r.yb.resize(bs, r.y.cols());
    r.xt.resize(tail, r.x.cols());
    r.yt.resize(tail, r.y.cols());
    r.idx.resize(static_cast<std::size_t>(r.n_train));
    for (std::size_t i = 0; i < r.idx.size(); ++i) r.idx[i] = static_cast<Eigen::Index>(i);
    r.batch_logs.set("loss", 0.0);
    for (const auto& key : r.metric_keys) r.batch_logs.set(key, 0.0);
}

template <class S>
void FitSteps<S>::install_signal_guard(const Run& r, std::optional<SignalGuard>& guard) {
    guard.emplace();
    if (!r.list.handles_interrupt() && r.opt.interrupt_checkpoint.empty())
        warn(
            "traincb: Trainer::fit: handle_signals is set but nothing saves a checkpoint on interruption; "
            "set FitOptions::interrupt_checkpoint or use a ModelCheckpoint with save_last = true");
}

template <class S>
void FitSteps<S>::restore_callbacks(Run& r) {
    if (!r.resume) return;
    load_callback_states(r.list, *r.resume, r.params.resumed_from);
    if (r.resume->stopped) {
        r.list.context().request_stop(r.resume->stop_source, r.resume->stop_reason);
        r.resumed_stopped = true;
    }
}

template <class S>
std::int64_t FitSteps<S>::begin_epoch(Run& r, int epoch, bool resumes_mid_epoch) {
    if (r.opt.shuffle) detail::epoch_permutation(r.idx, r.opt.seed, epoch);
    for (auto& m : r.train_metrics) m->reset();
    std::int64_t first_batch = 0;
    r.offset = 0;
    r.label_base = 0;
    r.end_label = r.params.steps_per_epoch;
    if (r.run_state.fit_options.contains("epoch_offset")) {  // the previous epoch was a resharded one
        r.run_state.fit_options.erase("epoch_offset");
        r.run_state.fit_options.erase("label_base");
    }
    if (resumes_mid_epoch) {
        const io::Checkpoint& c = *r.resume;
        if (checkpoint_world(c) != r.world) reshard_resumed_epoch(r, c);
        first_batch = r.resumed_stopped ? r.end_label : c.position.next_batch();
        r.list.on_epoch_resume(epoch);
        restore_running_values(r, c, epoch);
    } else {
        r.list.on_epoch_begin(epoch);
        r.run_state.loss_sum = 0;
        r.run_state.loss_count = 0;
    }
    return first_batch;
}

template <class S>
void FitSteps<S>::add_skip(Run& r, BatchIndex i) {
    const auto at = std::lower_bound(r.skip.begin(), r.skip.end(), i);
    if (at != r.skip.end() && *at == i) return;
    r.skip.insert(at, i);
    r.run_state.fit_options["skip_batches"] = skip_json(r.skip);
}

template <class S>
void FitSteps<S>::share_running_values(Run& r) {
    std::array<std::byte, 16> mine{};
    std::memcpy(mine.data(), &r.run_state.loss_sum, 8);
    std::memcpy(mine.data() + 8, &r.run_state.loss_count, 8);
    const std::vector<std::vector<std::byte>> all = r.comm->all_gather(mine);
    nlohmann::json losses = nlohmann::json::array();
    for (const auto& b : all) {
        double sum = 0;
        std::int64_t count = 0;
        std::memcpy(&sum, b.data(), 8);
        std::memcpy(&count, b.data() + 8, 8);
        losses.push_back({detail::json_double(sum), count});
    }
    r.run_state.fit_options["rank_losses"] = std::move(losses);
    std::vector<::traincb::metrics::Metric*> ms;
    for (const auto& m : r.train_metrics) ms.push_back(m.get());
    ::traincb::metrics::all_reduce(*r.comm, ms);
}

template <class S>
void FitSteps<S>::reshard_resumed_epoch(Run& r, const io::Checkpoint& c) {
    const auto& fo = c.fit_options;
    const auto offset0 = fo.contains("epoch_offset") ? fo.at("epoch_offset").get<std::int64_t>() : 0;
    const auto label0 = fo.contains("label_base") ? fo.at("label_base").get<std::int64_t>() : 0;
    const std::int64_t next = c.position.next_batch();
    r.offset = static_cast<Eigen::Index>(offset0 + (next - label0) * checkpoint_world(c) * r.opt.batch_size);
    r.label_base = next;
    if (r.n_train - r.offset < r.world)
        throw InvalidArgument(detail::cat("traincb: Trainer::fit: resuming from '", r.params.resumed_from.string(),
                                          "': the rest of epoch ", std::to_string(c.position.epoch + 1), " (",
                                          std::to_string(r.n_train - r.offset), " rows) cannot be shared by ",
                                          std::to_string(r.world),
                                          " ranks; resume on the number of ranks that wrote the checkpoint (",
                                          std::to_string(checkpoint_world(c)), ") or on fewer ranks"));
    r.end_label = r.label_base + steps_from(r.n_train, r.offset, r.opt.batch_size, r.world);
    r.run_state.fit_options["epoch_offset"] = static_cast<std::int64_t>(r.offset);
    r.run_state.fit_options["label_base"] = r.label_base;
}

template <class S>
void FitSteps<S>::restore_running_values(Run& r, const io::Checkpoint& c, int epoch) {
    const int was = checkpoint_world(c);
    const std::int64_t next = c.position.next_batch();
    const auto losses = c.fit_options.find("rank_losses");
    r.run_state.loss_sum = 0;
    r.run_state.loss_count = 0;
    if (was > 1 && losses == c.fit_options.end()) {
        if (r.rank == 0)
            warn(detail::cat("traincb: Trainer::fit: resuming from '", r.params.resumed_from.string(),
                             "': it was saved in the middle of epoch ", std::to_string(epoch + 1), " by ",
                             std::to_string(was),
                             " ranks between their votes (a batch save_freq), so it holds rank 0's running values "
                             "only; this epoch's training loss and metrics cover the batches after the resume"));
        return;
    }
    if (r.rank == 0)
        restore_train_metrics(r.train_metrics, c, r.params.resumed_from, epoch, next, r.params.steps_per_epoch);
    if (was == 1) {
        if (r.rank == 0) {
            r.run_state.loss_sum = c.loss_sum;
            r.run_state.loss_count = c.loss_count;
        }
        return;
    }
    const std::string source = r.params.resumed_from.string();
    const auto read = [&](std::size_t i, double& sum, std::int64_t& count) {
        const nlohmann::json& e = losses->at(i);
        sum = detail::parse_json_double(e.at(0), "fit_options.rank_losses", source);
        count = e.at(1).get<std::int64_t>();
    };
    if (was == r.world) {
        read(static_cast<std::size_t>(r.rank), r.run_state.loss_sum, r.run_state.loss_count);
    } else if (r.rank == 0) {
        for (std::size_t i = 0; i < losses->size(); ++i) {
            double sum = 0;
            std::int64_t count = 0;
            read(i, sum, count);
            r.run_state.loss_sum += sum;
            r.run_state.loss_count += count;
        }
    }
}

template <class S>
void FitSteps<S>::save_interrupt_checkpoint(Run& r) {
    clear_interrupt();
    if (r.opt.interrupt_checkpoint.empty()) return;
    on_rank0(r, [&r] {
        io::RotatingCheckpoint file(r.opt.interrupt_checkpoint);
        file.begin_run(r.params.resumed_from);
        file.save(io::encode_checkpoint(io::capture_checkpoint(r.list.context(), io::CheckpointKind::Full)), "Trainer");
    });
}

template <class S>
History FitSteps<S>::finish(Run& r, bool guarded) {
    if (r.interrupted_by != 0) {
        TrainEnd end;
        end.kind = EndKind::Interrupted;
        end.source = "signal";
        end.reason = interrupt_signal_name(r.interrupted_by);
        r.list.on_train_end(std::move(end));
    } else {
        r.list.on_train_end();
    }
    // A signal that arrived after the last check belongs to this fit, not to the next one.
    if (guarded) clear_interrupt();
    r.history.end = r.list.context().end();
    return std::move(r.history);
}

template <class S>
std::filesystem::path FitSteps<S>::find_resume_checkpoint(const FitOptions<S>& opt, io::Checkpoint& out) {
    namespace fs = std::filesystem;
    const fs::path& p = opt.resume_from;
    std::error_code ec;
    const fs::file_status st = fs::status(p, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) throw IoError("Trainer", "cannot resume from", p, ec);
    if (fs::is_directory(st)) {
        io::CheckpointScan found = io::detail_ckpt::scan(p, &out);
        if (found.latest) {
            if (!found.invalid.empty()) warn_fallback(p, found.invalid, *found.latest, out.position);
            return *found.latest;
        }
        if (found.invalid.empty()) {
            warn("traincb: Trainer::fit: resume_from '" + p.string() +
                 "' holds no full checkpoint yet; starting a fresh run");
            return {};
        }
        return no_valid_checkpoint(opt, std::move(found.invalid));
    }
    std::vector<InvalidCheckpointFile> invalid;
    if (fs::exists(st)) {
        try {
            out = io::load_checkpoint(p, "Trainer");
            return p;
        } catch (const FormatError& e) {
            invalid.push_back({p, io::detail_ckpt::reason_of(e, p)});
        }
    } else if (p.extension() != ".safetensors") {
        warn("traincb: Trainer::fit: resume_from '" + p.string() +
             "' does not exist yet (taken as a checkpoint directory); starting a fresh run");
        return {};
    }
    // An invalid file, or a missing one (a kill between the two renames of a rotating save):
    // its previous version, if there is one.
    fs::path previous = io::previous_checkpoint_path(p);
    if (!fs::exists(previous, ec)) {
        if (invalid.empty()) throw IoError("Trainer", "cannot resume from", p, ENOENT);
        return no_valid_checkpoint(opt, std::move(invalid));
    }
    try {
        out = io::load_checkpoint(previous, "Trainer");
    } catch (const Error& e) {
        invalid.push_back({previous, io::detail_ckpt::reason_of(e, previous)});
        return no_valid_checkpoint(opt, std::move(invalid));
    }
    if (invalid.empty()) invalid.push_back({p, "the file does not exist"});
    warn_fallback(p, invalid, previous, out.position);
    return previous;
}

template <class S>
std::filesystem::path FitSteps<S>::no_valid_checkpoint(const FitOptions<S>& opt,
                                                       std::vector<InvalidCheckpointFile> invalid) {
    std::sort(invalid.begin(), invalid.end(),
              [](const InvalidCheckpointFile& a, const InvalidCheckpointFile& b) { return a.path < b.path; });
    const std::string head =
        detail::cat("traincb: Trainer::fit: resume_from '", opt.resume_from.string(),
                    "': ", invalid.size() == 1 ? "the checkpoint file is" : "every checkpoint file is",
                    " invalid: ", list_invalid(invalid));
    if (opt.start_over_if_invalid) {
        warn(head + "; starting a fresh run, as start_over_if_invalid asks (it will overwrite them)");
        return {};
    }
    throw NoValidCheckpointError(head +
                                     ". Nothing was written. Restore a valid checkpoint, resume from another one, "
                                     "or set FitOptions::start_over_if_invalid to start a fresh run over them",
                                 std::move(invalid));
}

template <class S>
void FitSteps<S>::check_resume(const io::Checkpoint& c, const std::filesystem::path& path, const RunState& now,
                               const FitOptions<S>& opt, int rank) {
    const std::string where = "traincb: Trainer::fit: resuming from '" + path.string() + "': ";
    const auto say = [rank](const std::string& m) {  // every rank reads the same checkpoint: rank 0 tells
        if (rank == 0) warn(m);
    };
    if (c.kind != io::CheckpointKind::Full)
        throw InvalidArgument(where +
                              "it is a weights-only checkpoint, which cannot resume a run; resume from a full "
                              "checkpoint (ModelCheckpoint without save_weights_only, or its last.safetensors), "
                              "or load the weights with traincb::io::load_weights and train afresh");
    std::vector<std::string> order_changed;
    for (const auto& [key, value] : now.fit_options.items()) {
        const auto it = c.fit_options.find(key);
        if (key == "shuffle_order" || key == "skip_batches" || key == "world_size" || it == c.fit_options.end() ||
            *it == value)
            continue;
        if (key == "steps_per_epoch" && checkpoint_world(c) != now.fit_options.value("world_size", 1))
            continue;  // follows from the number of ranks (below)
        say(where + "'" + key + "' changed since the checkpoint (was " + detail::json_text(*it) + ", now " +
            detail::json_text(value) + "); the new value applies");
        if (key == "batch_size" || key == "shuffle" || key == "samples" || key == "steps_per_epoch")
            order_changed.push_back(key);
    }
    if (c.seed != now.seed) {
        say(where + "'seed' changed since the checkpoint (was " + std::to_string(c.seed) + ", now " +
            std::to_string(now.seed) + "); the new value applies, so the batches differ from the original run's");
        if (opt.shuffle) order_changed.emplace_back("seed");
    }
    check_shuffle_order(c, where, now, opt, rank);
    if (const int was = checkpoint_world(c), is = now.fit_options.value("world_size", 1); was != is && rank == 0)
        warn(detail::cat(where, "it was written by ", std::to_string(was), " rank", was == 1 ? "" : "s",
                         " and this run has ", std::to_string(is),
                         "; training continues from the same epoch and global sample position, the rows dealt out "
                         "over ",
                         std::to_string(is), " rank", is == 1 ? "" : "s",
                         " (steps per epoch and the batches each rank sees differ from the original run's)"));
    if (!c.position.epoch_completed && !order_changed.empty())
        throw InvalidArgument(where + "it was taken in the middle of epoch " + std::to_string(c.position.epoch + 1) +
                              ", and " + detail::join(order_changed) +
                              " changed since, so the rest of that epoch's batches cannot be determined; pass "
                              "the checkpoint's values, or resume from an epoch-boundary checkpoint");
    if (opt.initial_epoch != 0 && opt.initial_epoch != c.position.next_epoch())
        say(where + "initial_epoch " + std::to_string(opt.initial_epoch) +
            " is ignored; the run continues where the checkpoint left off (initial_epoch " +
            std::to_string(c.position.next_epoch()) + ")");
}

template <class S>
void FitSteps<S>::check_shuffle_order(const io::Checkpoint& c, const std::string& where, const RunState& now,
                                      const FitOptions<S>& opt, int rank) {
    const auto shuffled = c.fit_options.find("shuffle");
    if (!opt.shuffle || shuffled == c.fit_options.end() || *shuffled != true) return;
    const auto it = c.fit_options.find("shuffle_order");
    const nlohmann::json was = it == c.fit_options.end() ? nlohmann::json(1) : *it;
    const nlohmann::json& is = now.fit_options.at("shuffle_order");
    if (was == is) return;
    const std::string orders = "shuffle order " + detail::json_text(was) +
                               (it == c.fit_options.end() ? " (no 'shuffle_order' recorded)" : "") +
                               ", this traincb's is " + detail::json_text(is);
    if (!c.position.epoch_completed)
        throw InvalidArgument(where + "it was taken in the middle of epoch " + std::to_string(c.position.epoch + 1) +
                              " by a traincb (" + c.version + ") that shuffles the rows in another order (" + orders +
                              "), so the rest of that epoch's batches cannot be determined; resume from an "
                              "epoch-boundary checkpoint (one saved at an epoch end), or finish the run with "
                              "the traincb version that wrote it");
    if (rank == 0)
        warn(where + "it was written by a traincb (" + c.version + ") that shuffles the rows in another order (" +
             orders +
             "); the next epochs are shuffled in this traincb's order, so their batches differ from the "
             "ones the original run would have drawn");
}

template <class S>
void FitSteps<S>::validate_options(const FitOptions<S>& o) {
    auto bad = [](const std::string& m) { throw InvalidArgument("traincb: Trainer::fit: " + m); };
    if (o.batch_size < 1) bad("batch_size must be >= 1, got " + std::to_string(o.batch_size));
    if (o.epochs < 0) bad("epochs must be >= 0, got " + std::to_string(o.epochs));
    if (o.initial_epoch < 0) bad("initial_epoch must be >= 0, got " + std::to_string(o.initial_epoch));
    if (o.epochs < o.initial_epoch)
        bad("epochs (" + std::to_string(o.epochs) + ") is less than initial_epoch (" + std::to_string(o.initial_epoch) +
            "); epochs is the absolute index to stop at, as in Keras");
    if (!(o.validation_split >= 0 && o.validation_split < 1))
        bad("validation_split must be in [0, 1), got " + detail::format_double(o.validation_split));
    if (o.validation_split > 0 && o.validation_data) bad("pass either validation_data or validation_split, not both");
    if (o.validation_freq < 1) bad("validation_freq must be >= 1, got " + std::to_string(o.validation_freq));
    for (const BatchIndex& i : o.skip_batches)
        if (i.epoch < 0 || i.batch < 0)
            bad(detail::cat("skip_batches holds {.epoch = ", std::to_string(i.epoch), ", .batch = ",
                            std::to_string(i.batch), "}; epochs and batches are 0-based, so both must be >= 0"));
}

TRAINCB_INLINE void FitCommon::check_shapes(Eigen::Index xr, Eigen::Index xc, Eigen::Index yr, Eigen::Index yc) {
    if (xr != yr)
        throw InvalidArgument("traincb: Trainer::fit: x has " + detail::shape(xr, xc) + " but y has " +
                              detail::shape(yr, yc) + "; rows are samples, so both need the same number of rows");
    if (xr == 0 || xc == 0 || yc == 0)
        throw InvalidArgument("traincb: Trainer::fit: x is " + detail::shape(xr, xc) + " and y is " +
                              detail::shape(yr, yc) + "; pass non-empty data");
}

TRAINCB_INLINE void FitCommon::bad_prediction(Eigen::Index rows, Eigen::Index cols, Eigen::Index expected) {
    throw InvalidArgument("traincb: Trainer::fit: predict(x) returned " + detail::shape(rows, cols) + " for " +
                          std::to_string(expected) + " validation rows; it must return one row per sample");
}

template <class S>
FitRun<S>::~FitRun() = default;

template <class S>
bool FitSteps<S>::open_resume(Run& r) {
    io::Checkpoint loaded;
    const std::filesystem::path path =
        r.comm != nullptr ? find_resume_on_rank0(r, loaded) : find_resume_checkpoint(r.opt, loaded);
    if (path.empty()) return false;
    r.resume = std::move(loaded);
    check_resume(*r.resume, path, r.run_state, r.opt, r.rank);
    for (const BatchIndex& i : checkpoint_skips(*r.resume, path)) add_skip(r, i);
    r.first_epoch = r.resume->position.next_epoch();
    r.params.resumed = true;
    r.params.initial_epoch = r.first_epoch;
    r.params.resumed_from = path;
    r.history.epoch = std::move(r.resume->history.epoch);
    r.history.history = std::move(r.resume->history.history);
    return true;
}

template <class S>
void FitSteps<S>::begin_rollback(Run& r, int epoch, std::int64_t b) {
    const Context& ctx = r.list.context();
    if (!r.snapshot.valid_for(epoch))
        throw LogicError(detail::cat("traincb: Trainer::fit: ", ctx.rollback_source(), " asked to roll back batch ",
                                     std::to_string(b), " of epoch ", std::to_string(epoch + 1),
                                     ", but no snapshot was taken in this epoch; call "
                                     "Context::request_snapshot() in on_epoch_begin (and as often as a rollback "
                                     "should reach back)"));
    add_skip(r, BatchIndex{epoch, b});
}

#if defined(TRAINCB_COMPILED)
// The compiled mode's single instantiation of the model-independent steps (see trainer.hpp).
template struct FitRun<float>;
template struct FitRun<double>;
template struct FitSteps<float>;
template struct FitSteps<double>;
#endif

}  // namespace detail
}  // namespace traincb::inline v0
