#pragma once
// The EarlyStopping vectors (tests/spec/early-stopping-vectors.json) replayed over data-parallel
// ranks: a hand-written loop drives a CallbackList with the ranks' Communicator and an
// EarlyStopping, and each epoch's monitored value is not handed to the ranks but computed by a
// metric whose rows are dealt unevenly over the ranks and merged with metrics::all_reduce. Shared
// by tests/mpi/test_mpi_es_vectors.cpp (Open MPI processes) and tests/test_data_parallel_vectors.cpp
// (threads as ranks). replay_vector asserts nothing (Catch2's assertions are not thread-safe): it
// returns what happened, and check_outcome asserts on it.
//
// Why the reduced value equals the vector's value v exactly: the epoch has kRows = 16 rows whose
// mean is the value. Their sum is s = 16 v, exact (a power-of-two scaling only changes the
// exponent; the vectors' values are far from overflow and underflow). s is cut into three
// bit-fields of its significand (truncate keeps the leading bits, the remainder is exact): three
// doubles of s's sign whose bits are disjoint parts of s's 53-bit significand, put in three rows;
// the other 13 rows are 0. Any partial sum of those rows, in any order, is s with some of its
// fields cleared, which is a double: so every addition is exact, whichever rank holds which row,
// in whatever order a rank adds its rows and all_reduce merges the ranks, and the mean is s / 16
// = v. A NaN or an infinity goes into one row with 0 in the others: NaN + 0 is NaN, inf + 0 is
// inf, and NaN / 16, inf / 16 are NaN, inf. The metric sums plainly: the built-in mean metrics
// use a compensated sum, whose compensation turns a +inf input into NaN.

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/communicator.hpp>
#include <traincb/distributed.hpp>
#include <traincb/metric.hpp>
#include <vector>

#include "catch.hpp"

namespace traincb_test::es_vectors {

/// Rows per epoch (a power of two, so that the mean of the split is exact; see the file comment).
inline constexpr int kRows = 16;
/// Batches per epoch (rows 0-7, rows 8-15): every rank runs both, with however many rows it has.
inline constexpr int kBatches = 2;

/// The vectors file. Throws std::runtime_error when it cannot be read.
inline nlohmann::json load(const std::string& file = "early-stopping-vectors.json") {
    std::ifstream in(std::string(TRAINCB_SPEC_DIR) + "/" + file);
    if (!in.good()) throw std::runtime_error("cannot read " + std::string(TRAINCB_SPEC_DIR) + "/" + file);
    return nlohmann::json::parse(in);
}

/// A vector's number: a JSON number, or "NaN", "Infinity", "-Infinity".
inline double number(const nlohmann::json& v) {
    if (v.is_string()) {
        const auto s = v.get<std::string>();
        if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
        if (s == "Infinity") return std::numeric_limits<double>::infinity();
        if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
        throw std::runtime_error("bad number string " + s);
    }
    return v.get<double>();
}

/// A vector's configuration as options (test_early_stopping.cpp reads both vector files with it).
inline traincb::EarlyStoppingOptions options_from(const nlohmann::json& c) {
    traincb::EarlyStoppingOptions o;
    if (c.contains("monitor")) o.monitor = c["monitor"].get<std::string>();
    if (c.contains("mode")) o.mode = traincb::parse_mode(c["mode"].get<std::string>());
    if (c.contains("min_delta")) o.min_delta = c["min_delta"].get<double>();
    if (c.contains("min_delta_mode"))
        o.min_delta_mode = traincb::parse_delta_mode(c["min_delta_mode"].get<std::string>());
    if (c.contains("patience")) o.patience = c["patience"].get<int>();
    if (c.contains("baseline")) o.baseline = number(c["baseline"]);
    if (c.contains("start_from_epoch")) o.start_from_epoch = c["start_from_epoch"].get<int>();
    if (c.contains("restore_best_weights")) o.restore_best_weights = c["restore_best_weights"].get<bool>();
    if (c.contains("stopping_threshold")) o.stopping_threshold = number(c["stopping_threshold"]);
    if (c.contains("divergence_threshold")) o.divergence_threshold = number(c["divergence_threshold"]);
    if (c.contains("check_finite")) o.check_finite = c["check_finite"].get<bool>();
    if (c.contains("strict")) o.strict = c["strict"].get<bool>();
    if (c.contains("monitors"))  // the multi-monitor vectors (early-stopping-multi-vectors.json)
        for (const auto& m : c["monitors"])
            o.monitors.push_back({.key = m["key"].get<std::string>(),
                                  .mode = traincb::parse_mode(m.value("mode", "auto")),
                                  .min_delta = m.contains("min_delta") ? number(m["min_delta"]) : 0.0});
    return o;
}

/// The vectors' error kind of an exception's message (a rank that did not fail itself gets
/// RemoteRankError, whose message holds the failing rank's).
inline std::string error_kind(const std::string& what) {
    if (what.find("cannot infer") != std::string::npos) return "cannot_infer_mode";
    if (what.find("is not in the logs") != std::string::npos) return "missing_key";
    return "invalid_argument";
}

/// The mean of y_pred's first column, summed plainly in row order (see the file comment), with
/// an exact state (the sum's bits) so that all_reduce can merge it.
class SplitMean final : public traincb::metrics::Metric {
public:
    explicit SplitMean(std::string name) : name_(std::move(name)) {}
    [[nodiscard]] std::string name() const override { return name_; }
    [[nodiscard]] traincb::Direction direction() const noexcept override { return traincb::Direction::Min; }
    void update(const Eigen::Ref<const Eigen::MatrixXd>& y_true,
                const Eigen::Ref<const Eigen::MatrixXd>& y_pred) override {
        (void)y_true;
        for (Eigen::Index i = 0; i < y_pred.rows(); ++i) sum_ += y_pred(i, 0);
        count_ += y_pred.rows();
    }
    void update(const Eigen::Ref<const Eigen::MatrixXf>& y_true,
                const Eigen::Ref<const Eigen::MatrixXf>& y_pred) override {
        (void)y_true;
        for (Eigen::Index i = 0; i < y_pred.rows(); ++i) sum_ += static_cast<double>(y_pred(i, 0));
        count_ += y_pred.rows();
    }
    [[nodiscard]] double result() const override {
        return count_ == 0 ? std::numeric_limits<double>::quiet_NaN() : sum_ / static_cast<double>(count_);
    }
    void reset() override {
        sum_ = 0;
        count_ = 0;
    }
    void merge(const Metric& other) override {
        const auto* o = dynamic_cast<const SplitMean*>(&other);
        if (o == nullptr) throw traincb::InvalidArgument("SplitMean::merge: another class");
        sum_ += o->sum_;
        count_ += o->count_;
    }
    [[nodiscard]] std::unique_ptr<Metric> clone() const override { return std::make_unique<SplitMean>(*this); }
    bool save_state(nlohmann::json& state) const override {
        state = {{"kind", "SplitMean"}, {"sum_bits", std::bit_cast<std::uint64_t>(sum_)}, {"count", count_}};
        return true;
    }
    void load_state(const nlohmann::json& state) override {
        if (state.value("kind", "") != "SplitMean") throw traincb::InvalidArgument("SplitMean::load_state: kind");
        sum_ = std::bit_cast<double>(state.at("sum_bits").get<std::uint64_t>());
        count_ = state.at("count").get<std::int64_t>();
    }

private:
    std::string name_;
    double sum_ = 0;
    std::int64_t count_ = 0;
};

/// `x` with the low `bits` bits of its significand cleared: the leading bits, of x's sign.
inline double truncate(double x, int bits) {
    const std::uint64_t mask = ~((std::uint64_t{1} << static_cast<unsigned>(bits)) - 1U);
    return std::bit_cast<double>(std::bit_cast<std::uint64_t>(x) & mask);
}

/// The kRows values of an epoch whose mean is exactly `v` (see the file comment).
inline std::array<double, kRows> epoch_rows(double v) {
    std::array<double, kRows> rows{};
    const double s = v * kRows;
    if (!std::isfinite(s)) {
        rows[8] = s;
        return rows;
    }
    const double hi = truncate(s, 35);  // s's leading 18 bits
    const double rest = s - hi;         // exact: s's other bits
    const double mid = truncate(rest, 35);
    rows[3] = hi;
    rows[8] = mid;
    rows[13] = rest - mid;  // exact: rest's other bits
    return rows;
}

/// The rank that holds row `row` of `epoch` among `size` ranks: uneven shares that move each
/// epoch (some ranks hold none of the three nonzero rows, some more than one).
inline int owner(int row, int epoch, int size) {
    return ((row * 7 + epoch) % 5) % size;
}

/// A model whose whole state is one number: the epoch whose end it was last set to.
struct TinyModel {
    double tag = -1;
    void visit_state(traincb::StateVisitor& v) { traincb::visit(v, "tag", tag); }
};

/// What one rank saw replaying one vector.
struct Outcome {
    nlohmann::json summary;     ///< the replay summary (as test_early_stopping.cpp), or {"error": kind}
    std::string state;          ///< EarlyStopping::save_state's JSON, dumped ("" after an error)
    std::string error;          ///< the message of the exception the loop ended with, if any
    bool remote_error = false;  ///< that exception was a RemoteRankError (another rank failed first)
    bool in_hook = false;       ///< that exception left a hook (not EarlyStopping's constructor)
    /// Epochs whose reduced value was not the vector's value bit for bit (NaN for NaN).
    std::vector<std::string> value_mismatches;
    double model_tag = -1;                   ///< the model's state at the end
    std::int64_t epochs_run = 0;             ///< epochs whose on_epoch_end ran
    bool stopped_by_vote = false;            ///< stop_requested() ended the loop
    std::string agreed_stop;                 ///< the context's stop source and reason after the run
    std::vector<std::string> all_states;     ///< every rank's `state`, in rank order (gathered)
    std::vector<std::string> all_summaries;  ///< every rank's summary, dumped, in rank order
};

/// Where the epoch's monitored values come from.
enum class Source {
    Sharded,  ///< SplitMean metrics over the ranks' rows, merged with metrics::all_reduce
    Direct,   ///< the vector's numbers, as one process's loop would log them
};

inline nlohmann::json opt_json(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
}
inline nlohmann::json opt_json(const std::optional<int>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
}

inline std::string as_string(const std::vector<std::byte>& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Replays vector `v` on this rank of `comm` (every rank calls it, with the same vector). Asserts
/// nothing; collective: ends with one all_gather of each rank's state and summary.
inline Outcome replay_vector(traincb::Communicator& comm, const nlohmann::json& v, Source source) {
    Outcome out;
    std::unique_ptr<traincb::EarlyStopping> es;
    try {
        es = std::make_unique<traincb::EarlyStopping>(options_from(v["config"]));
    } catch (const std::invalid_argument& e) {
        out.error = e.what();
        out.summary = {{"error", error_kind(out.error)}};
    }
    TinyModel model;
    const auto& hist = v["history"];
    const int initial = v.value("initial_epoch", 0);
    if (es) {
        traincb::CallbackList list(*es);
        list.set_model(model);
        list.set_communicator(comm);
        list.set_params({.epochs = initial + static_cast<int>(hist.size()), .initial_epoch = initial});
        try {
            list.on_train_begin();
            for (std::size_t i = 0; i < hist.size(); ++i) {
                const int epoch = initial + static_cast<int>(i);
                list.on_epoch_begin(epoch);
                // One SplitMean per logged key, fed this rank's rows batch by batch.
                std::vector<std::unique_ptr<SplitMean>> metrics;
                std::vector<std::array<double, kRows>> rows;
                for (const auto& [key, val] : hist[i].items()) {
                    metrics.push_back(std::make_unique<SplitMean>(key));
                    rows.push_back(epoch_rows(number(val)));
                }
                for (int b = 0; b < kBatches; ++b) {
                    list.on_train_batch_begin(b);
                    for (std::size_t k = 0; k < metrics.size(); ++k) {
                        std::vector<double> mine;
                        for (int r = b * kRows / kBatches; r < (b + 1) * kRows / kBatches; ++r)
                            if (owner(r, epoch, comm.size()) == comm.rank())
                                mine.push_back(rows[k][static_cast<std::size_t>(r)]);
                        const Eigen::Map<const Eigen::MatrixXd> p(mine.data(), static_cast<Eigen::Index>(mine.size()),
                                                                  1);
                        metrics[k]->update(Eigen::MatrixXd::Zero(p.rows(), 1), p);
                    }
                    list.on_train_batch_end(b);
                }
                model.tag = epoch;  // "training" this epoch leaves the model in state `epoch`
                traincb::Logs logs;
                if (source == Source::Sharded) {
                    std::vector<traincb::metrics::Metric*> ms;
                    for (auto& m : metrics) ms.push_back(m.get());
                    traincb::metrics::all_reduce(comm, std::span<traincb::metrics::Metric* const>(ms));
                    for (const auto& m : metrics) logs.set(m->name(), m->result());
                    for (const auto& [key, val] : hist[i].items()) {
                        const double want = number(val);
                        const double got = *logs.find(key);
                        const bool same = std::isnan(want)
                                              ? std::isnan(got)
                                              : std::bit_cast<std::uint64_t>(got) == std::bit_cast<std::uint64_t>(want);
                        if (!same)
                            out.value_mismatches.push_back(
                                traincb::detail::cat("epoch ", std::to_string(epoch), " ", key, ": reduced ",
                                                     traincb::detail::format_double(got), ", vector ",
                                                     traincb::detail::format_double(want)));
                    }
                } else {
                    for (const auto& [key, val] : hist[i].items()) logs.set(key, number(val));
                }
                list.on_epoch_end(epoch, logs);
                ++out.epochs_run;
                if (list.stop_requested()) {
                    out.stopped_by_vote = true;
                    break;
                }
            }
            list.on_train_end();
        } catch (const std::exception& e) {
            out.error = e.what();
            out.remote_error = dynamic_cast<const traincb::RemoteRankError*>(&e) != nullptr;
            out.in_hook = true;
            out.summary = {{"error", error_kind(out.error)}};
            list.on_train_end(std::current_exception());
        }
        out.agreed_stop = list.context().stop_source() + ": " + list.context().stop_reason();
    }
    if (es && out.error.empty()) {
        out.summary = {{"mode", traincb::to_string(*es->direction())},
                       {"stopped_epoch", opt_json(es->stopped_epoch())},
                       {"stop_reason",
                        es->stopped_epoch() ? nlohmann::json(traincb::to_string(es->stop_reason())) : nlohmann::json()},
                       {"best_epoch", opt_json(es->best_epoch())},
                       {"best", opt_json(es->best())},
                       {"wait", es->wait()},
                       {"epochs_run", out.epochs_run},
                       {"restored_from_epoch", opt_json(es->restored_from_epoch())}};
        traincb::CallbackState s;
        es->save_state(s);
        out.state = s.json.dump();
    }
    out.model_tag = model.tag;
    const std::string mine = out.state + '\n' + out.summary.dump();
    for (const auto& b : comm.all_gather(std::as_bytes(std::span<const char>(mine.data(), mine.size())))) {
        const std::string s = as_string(b);
        const std::size_t nl = s.find('\n');
        out.all_states.push_back(s.substr(0, nl));
        out.all_summaries.push_back(s.substr(nl + 1));
    }
    return out;
}

/// `best` of a vector: null, a number, or "NaN"/"Infinity"/"-Infinity"; compared exactly.
inline void check_best(const nlohmann::json& got, const nlohmann::json& exp) {
    INFO("best: got " << got.dump() << ", expected " << exp.dump());
    if (exp.is_null()) {
        CHECK(got.is_null());
    } else {
        CHECK(got.is_number());
        if (got.is_number()) CHECK(got.get<double>() == number(exp));
    }
}

/// Asserts what rank `rank` of `size` saw replaying vector `v` (`got`) against the vector's
/// expected outcome, against one process's replay of the same vector (`one`: Source::Direct on
/// one rank), and against every other rank (byte-identical EarlyStopping state and summary).
/// CHECKs only: it runs between collectives.
inline void check_outcome(const nlohmann::json& v, const Outcome& got, const Outcome& one, int rank, int size) {
    INFO("vector " << v["name"].get<std::string>() << ", rank " << rank << " of " << size);
    const auto& exp = v["expected"];
    std::string mismatches;
    for (const std::string& m : got.value_mismatches) mismatches += m + "; ";
    CHECK(mismatches == "");
    CHECK(got.all_states.size() == static_cast<std::size_t>(size));
    for (std::size_t r = 0; r < got.all_states.size(); ++r) {
        INFO("against rank " << r);
        CHECK(got.all_states[r] == got.all_states.front());
        CHECK(got.all_summaries[r] == got.all_summaries.front());
    }
    CHECK(got.state == one.state);  // one process's EarlyStopping ends in the same state, byte for byte
    if (exp.contains("error")) {
        CHECK(got.summary.value("error", "") == exp["error"].get<std::string>());
        CHECK(got.epochs_run == 0);
        // An error in a hook is every rank's here (the same options everywhere): after the vote
        // every failing rank throws its own exception, so each reads as itself (only a rank that
        // did not fail would get a RemoteRankError). The constructor's is thrown by each rank
        // alone, before any collective.
        CHECK(got.in_hook == one.in_hook);
        CHECK_FALSE(got.remote_error);
        return;
    }
    CHECK(got.error.empty());
    for (const char* key :
         {"mode", "stopped_epoch", "stop_reason", "best_epoch", "wait", "epochs_run", "restored_from_epoch"}) {
        INFO("field " << key << ": got " << got.summary[key].dump() << ", expected " << exp[key].dump());
        CHECK(got.summary[key] == exp[key]);
    }
    check_best(got.summary["best"], exp["best"]);
    CHECK(got.stopped_by_vote == !exp["stopped_epoch"].is_null());
    CHECK(got.agreed_stop == (exp["stopped_epoch"].is_null()
                                  ? std::string(": ")
                                  : "EarlyStopping: " + exp["stop_reason"].get<std::string>()));
    // The model holds the restored epoch's state, or the last epoch's.
    const double tag = exp["restored_from_epoch"].is_null()
                           ? static_cast<double>(v.value("initial_epoch", 0) + exp["epochs_run"].get<int>() - 1)
                           : exp["restored_from_epoch"].get<double>();
    CHECK(got.model_tag == tag);
}

}  // namespace traincb_test::es_vectors
