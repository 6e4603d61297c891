// Tests for traincb/io/checkpoint.hpp: the file layout of docs/checkpoints.md (tensor names,
// metadata keys, the "traincb.state" document, the History as tensors), round trips, checkpoints
// of format version 1 (History as JSON) still loading, a training metric state too large for a
// JSON header, checksums, crash safety on I/O failures, find_latest_checkpoint and the removal of
// stale temporary files; numpy reads the file with the snippet of docs/checkpoints.md.
#include "catch.hpp"

#include <sys/wait.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/io/checkpoint.hpp>
#include <traincb/metrics.hpp>
#include <traincb/version.hpp>

#include "checkpoint_test_support.hpp"
#include "checkpoint_v1.hpp"

namespace test_checkpoint {

using namespace ckpt_test;
namespace io = traincb::io;
using traincb::Logs;

namespace {

// A stateful callback with a versioned JSON state and a tensor.
struct Counter final : traincb::Callback {
    int epochs_seen = 0;
    Eigen::MatrixXd memory = Eigen::MatrixXd::Zero(2, 3);
    void on_epoch_end(traincb::Context& c) override {
        ++epochs_seen;
        memory(1, 2) += c.epoch() + 0.5;
    }
    [[nodiscard]] std::string state_key() const override { return "Counter"; }
    void save_state(traincb::CallbackState& s) const override {
        s.version = 3;
        s.json = {{"epochs_seen", epochs_seen}};
        io::put_tensor(s.tensors, "memory", memory);
    }
    void load_state(const traincb::CallbackState& s, traincb::Context&) override {
        epochs_seen = s.json.at("epochs_seen").get<int>();
        io::get_tensor(s.tensors, "memory", memory);
    }
};

// Three epochs driven by hand with EarlyStopping (restore_best_weights: a snapshot tensor state)
// and Counter; the third epoch has no "extra" key, so the History holds a NaN there.
struct SmallRun {
    Net net{4, 3, 1};
    traincb::EarlyStopping es{{.monitor = "val_loss", .patience = 5, .restore_best_weights = true}};
    Counter counter;
    Driver d{net};
    SmallRun() {
        d.list.add(es);
        d.list.add(counter);
        d.begin();
        d.epoch(0, Logs{{"loss", 0.9}, {"val_loss", 0.5}, {"extra", 1.0}});
        d.epoch(1, Logs{{"loss", 0.8}, {"val_loss", 0.4}, {"extra", 2.0}});
        d.epoch(2, Logs{{"loss", 0.7}, {"val_loss", 0.45}});
    }
    io::Checkpoint capture(io::CheckpointKind kind = io::CheckpointKind::Full) {
        return io::capture_checkpoint(d.list.context(), kind);
    }
};

// The row-major bytes of a column-major matrix, built element by element (independently of the
// library's conversion).
std::vector<std::byte> row_major_bytes(const Eigen::MatrixXd& m) {
    std::vector<std::byte> out;
    for (Eigen::Index r = 0; r < m.rows(); ++r)
        for (Eigen::Index c = 0; c < m.cols(); ++c) {
            const double v = m(r, c);
            const auto* p = reinterpret_cast<const std::byte*>(&v);
            out.insert(out.end(), p, p + sizeof v);
        }
    return out;
}

// The little-endian bytes of `values`, element by element.
template <class T>
std::vector<std::byte> bytes_of(std::initializer_list<T> values) {
    std::vector<std::byte> out;
    for (const T v : values) {
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        out.insert(out.end(), p, p + sizeof v);
    }
    return out;
}

std::set<std::string> tensor_names(const traincb::StateDict& d) {
    std::set<std::string> s;
    for (const auto& t : d.tensors()) s.insert(t.name);
    return s;
}

// A framework-style model visited with the raw overload: a rank-4 F32 conv kernel [2,3,2,2], an
// F16 bias [3] and a rank-3 BF16 optimizer moment (training state).
struct ConvNet {
    std::vector<float> kernel = std::vector<float>(24);
    std::vector<std::uint16_t> bias = std::vector<std::uint16_t>(3);
    std::vector<std::uint16_t> moment = std::vector<std::uint16_t>(12);
    explicit ConvNet(float seed) {
        for (std::size_t i = 0; i < kernel.size(); ++i) kernel[i] = seed * static_cast<float>(i) - 1.0f / 3.0f;
        for (std::size_t i = 0; i < bias.size(); ++i) bias[i] = traincb::float_to_half(seed + static_cast<float>(i));
        for (std::size_t i = 0; i < moment.size(); ++i)
            moment[i] = traincb::float_to_bfloat16(seed * 0.1f * static_cast<float>(i));
    }
    void visit_state(traincb::StateVisitor& v) {
        const std::array<std::int64_t, 4> kernel_shape{2, 3, 2, 2};
        const std::array<std::int64_t, 1> bias_shape{3};
        const std::array<std::int64_t, 3> moment_shape{2, 3, 2};
        traincb::visit(v, "conv.weight", kernel.data(), traincb::DType::F32, kernel_shape);
        traincb::visit(v, "conv.bias", bias.data(), traincb::DType::F16, bias_shape);
        traincb::visit_training_state(v, "adam.m.conv", moment.data(), traincb::DType::BF16, moment_shape);
    }
};

io::Checkpoint at_position(Net& net, int epoch, bool completed, std::int64_t batch, std::int64_t step,
                           io::CheckpointKind kind = io::CheckpointKind::Full) {
    io::Checkpoint c;
    c.kind = kind;
    c.position = {epoch, completed, batch, step};
    c.model = state_of(net);
    return c;
}

}  // namespace

TEST_CASE("checkpoint: the file holds model/ and callbacks/<key>/ tensors and the documented metadata") {
    TempDir dir("ckpt_layout");
    SmallRun run;
    const fs::path path = dir / "c.safetensors";
    io::save_checkpoint(path, run.capture());

    const io::SafetensorsFile raw = io::load_safetensors(path);
    // Names from the contract of docs/checkpoints.md: the model under "model/", each stateful
    // callback's tensors under "callbacks/<state_key>/" (EarlyStopping's snapshot uses the
    // model's names and holds its weights only, not the "opt." training state), the History
    // under "history/".
    const std::set<std::string> expected{"model/w1",
                                         "model/w2",
                                         "model/b",
                                         "model/opt.v1",
                                         "model/opt.v2",
                                         "model/opt.lr",
                                         "model/opt.steps",
                                         "callbacks/Counter/memory",
                                         "callbacks/EarlyStopping:val_loss/w1",
                                         "callbacks/EarlyStopping:val_loss/w2",
                                         "callbacks/EarlyStopping:val_loss/b",
                                         "history/epoch",
                                         "history/values/extra",
                                         "history/values/loss",
                                         "history/values/val_loss"};
    CHECK(tensor_names(raw.tensors) == expected);
    const traincb::Tensor* w1 = raw.tensors.find("model/w1");
    REQUIRE(w1 != nullptr);
    CHECK(w1->dtype == traincb::DType::F64);
    CHECK(w1->shape == std::vector<std::int64_t>{4, 3});
    CHECK(w1->data == row_major_bytes(run.net.w1));
    const traincb::Tensor* steps = raw.tensors.find("model/opt.steps");
    REQUIRE(steps != nullptr);
    CHECK(steps->dtype == traincb::DType::I64);
    CHECK(steps->shape.empty());  // a scalar is rank 0
    CHECK(io::get_scalar<std::int64_t>(*steps) == 3);

    const auto& meta = raw.metadata;
    CHECK(meta.at("format") == "pt");
    CHECK(meta.at("traincb.version") == traincb::version_string);
    CHECK(meta.at("traincb.kind") == "full");
    CHECK(meta.at("traincb.checksum").starts_with("xxh64:"));
    const std::string& state = meta.at("traincb.state");
    CHECK(meta.at("traincb.state.checksum") == "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(state)));

    const nlohmann::json j = nlohmann::json::parse(state);
    CHECK(j.at("format_version") == 2);
    CHECK(j.at("epoch") == 2);
    CHECK(j.at("epoch_completed") == true);
    CHECK(j.at("batch") == 1);        // steps_per_epoch of the Driver
    CHECK(j.at("global_step") == 3);  // one batch per epoch
    CHECK(!j.contains("loss"));       // a running loss only for mid-epoch checkpoints
    CHECK(j.at("stop").is_null());
    CHECK(j.at("callbacks").at("Counter") == nlohmann::json{{"version", 3}, {"json", {{"epochs_seen", 3}}}});
    CHECK(j.at("callbacks").at("EarlyStopping:val_loss").at("json").at("best") == "0.4");
    // The History: its size and keys in the state, its values in tensors (the values logged by
    // SmallRun; "extra" was not logged in the third epoch, so the History holds NaN there).
    CHECK(j.at("history") == nlohmann::json{{"epochs", 3}, {"keys", {"extra", "loss", "val_loss"}}});
    const traincb::Tensor* epochs = raw.tensors.find("history/epoch");
    REQUIRE(epochs != nullptr);
    CHECK(epochs->dtype == traincb::DType::I64);
    CHECK(epochs->shape == std::vector<std::int64_t>{3});
    CHECK(epochs->data == bytes_of<std::int64_t>({0, 1, 2}));
    const traincb::Tensor* val_loss = raw.tensors.find("history/values/val_loss");
    REQUIRE(val_loss != nullptr);
    CHECK(val_loss->dtype == traincb::DType::F64);
    CHECK(val_loss->shape == std::vector<std::int64_t>{3});
    CHECK(val_loss->data == bytes_of<double>({0.5, 0.4, 0.45}));
    const std::vector<double> extra = ckpt_v1::doubles_of(*raw.tensors.find("history/values/extra"));
    REQUIRE(extra.size() == 3);
    CHECK(extra[0] == 1.0);
    CHECK(extra[1] == 2.0);
    CHECK(std::isnan(extra[2]));
    // The state document no longer grows with the epochs: no value of the History is in it.
    CHECK(state.find("0.45") == std::string::npos);
}

TEST_CASE("checkpoint: load_checkpoint returns exactly what was captured") {
    TempDir dir("ckpt_roundtrip");
    SmallRun run;
    const io::Checkpoint before = run.capture();
    const fs::path path = dir / "c.safetensors";
    io::save_checkpoint(path, before);
    const io::Checkpoint after = io::load_checkpoint(path);
    CHECK(after.kind == io::CheckpointKind::Full);
    CHECK(after.version == traincb::version_string);
    CHECK(after.position == before.position);
    CHECK(after.seed == before.seed);
    CHECK(same_state(after.model, state_of(run.net)));
    CHECK(after.callbacks.size() == 2);
    for (const auto& [key, s] : before.callbacks) {
        INFO(key);
        REQUIRE(after.callbacks.count(key) == 1);
        CHECK(after.callbacks.at(key).version == s.version);
        CHECK(after.callbacks.at(key).json == s.json);
        CHECK(same_state(after.callbacks.at(key).tensors, s.tensors));
    }
    CHECK(same_history(after.history, run.d.history));
    CHECK(std::isnan(after.history.at("extra")[2]));

    // The restored callback state equals the saved one.
    Counter fresh;
    fresh.load_state(after.callbacks.at("Counter"), run.d.list.context());
    CHECK(fresh.epochs_seen == 3);
    CHECK(fresh.memory == run.counter.memory);
}

TEST_CASE("checkpoint: a file of format version 1 (the History as JSON) loads to the same checkpoint") {
    TempDir dir("ckpt_v1");
    SmallRun run;
    io::save_checkpoint(dir / "new.safetensors", run.capture());
    ckpt_v1::write_as_v1(dir / "new.safetensors", dir / "old.safetensors");
    // The rewritten file has the old layout: version 1, the History's values as strings in the
    // state, no "history/" tensor.
    const io::SafetensorsFile raw = io::load_safetensors(dir / "old.safetensors");
    const nlohmann::json j = nlohmann::json::parse(raw.metadata.at("traincb.state"));
    REQUIRE(j.at("format_version") == 1);
    REQUIRE(j.at("history").at("values").at("val_loss") == nlohmann::json{"0.5", "0.4", "0.45"});
    REQUIRE(j.at("history").at("values").at("extra") == nlohmann::json{"1", "2", "nan"});
    for (const auto& t : raw.tensors.tensors()) REQUIRE_FALSE(t.name.starts_with("history/"));

    const io::Checkpoint now = io::load_checkpoint(dir / "new.safetensors");
    const io::Checkpoint old = io::load_checkpoint(dir / "old.safetensors");
    CHECK(old.position == now.position);
    CHECK(same_history(old.history, run.d.history));
    CHECK(same_history(old.history, now.history));
    CHECK(same_state(old.model, now.model));
    REQUIRE(old.callbacks.size() == now.callbacks.size());
    for (const auto& [key, s] : now.callbacks) {
        INFO(key);
        CHECK(old.callbacks.at(key).json == s.json);
        CHECK(same_state(old.callbacks.at(key).tensors, s.tensors));
    }
    // Saved again, it is written in the current layout, byte for byte as the original.
    io::save_checkpoint(dir / "again.safetensors", old);
    CHECK(read_bytes(dir / "again.safetensors") == read_bytes(dir / "new.safetensors"));
}

TEST_CASE("checkpoint: missing, misshapen or unlisted History tensors are FormatErrors naming them") {
    TempDir dir("ckpt_history_bad");
    SmallRun run;
    const fs::path good = dir / "good.safetensors";
    io::save_checkpoint(good, run.capture());
    const fs::path bad = dir / "bad.safetensors";
    // The file with `edit` applied to its tensors (the state and its checksum unchanged).
    const auto edited = [&](const std::function<void(traincb::StateDict&)>& edit) {
        io::SafetensorsFile f = io::load_safetensors(good);
        edit(f.tensors);
        io::save_safetensors(bad, f.tensors, f.metadata, io::SaveOptions{.checksum = true});
        return bad;
    };
    const std::string where = "traincb: checkpoint: '" + bad.string() + "': ";
    CHECK_THROWS_MATCHES(io::load_checkpoint(edited([](traincb::StateDict& d) {
                             std::erase_if(d.tensors(), [](const auto& t) { return t.name == "history/values/loss"; });
                         })),
                         traincb::FormatError,
                         Catch::Message(where + "the History tensor 'history/values/loss' is missing"));
    // A tensor put into the file (replacing one of the same name), and the error it causes.
    const std::vector<std::pair<traincb::Tensor, std::string>> cases = {
        {traincb::vector_tensor<std::int64_t>("history/epoch", std::vector<std::int64_t>{0, 1}),
         "the History tensor 'history/epoch' is I64 [2], expected I64 [3] (one value per recorded epoch)"},
        {traincb::vector_tensor<float>("history/values/val_loss", std::vector<float>{1, 2, 3}),
         "the History tensor 'history/values/val_loss' is F32 [3], expected F64 [3] (one value per recorded epoch)"},
        {traincb::vector_tensor<double>("history/values/other", std::vector<double>{1, 2, 3}),
         "tensor 'history/values/other' is not a key listed in 'history.keys'"},
    };
    for (const auto& [bad, message] : cases) {
        INFO(message);
        const traincb::Tensor& tensor = bad;  // clang 14 cannot capture a structured binding
        CHECK_THROWS_MATCHES(io::load_checkpoint(edited([&](traincb::StateDict& d) { d.put(tensor); })),
                             traincb::FormatError, Catch::Message(where + message));
    }
    CHECK(same_history(io::load_checkpoint(good).history, run.d.history));
}

TEST_CASE("checkpoint: a training metric state too large for a JSON header (RocAuc, 5 million scores) round-trips") {
    TempDir dir("ckpt_big_metric");
    // m positives scored (j + 0.5) / (3m) and m negatives scored k / (3m), j, k in [0, m): a
    // positive outranks the negatives k <= j, so (Mann-Whitney, no ties) the AUC is
    // sum_j (j + 1) / m^2 = (m + 1) / (2m).
    constexpr Eigen::Index m = 2'500'000;
    Eigen::VectorXd y(2 * m), p(2 * m);
    for (Eigen::Index j = 0; j < m; ++j) {
        y(2 * j) = 1;
        p(2 * j) = (static_cast<double>(j) + 0.5) / (3.0 * m);
        y(2 * j + 1) = 0;
        p(2 * j + 1) = static_cast<double>(j) / (3.0 * m);
    }
    traincb::metrics::RocAuc auc;
    auc.update(y, p);
    // As JSON (the form of save_state, which checkpoints used) each score is its shortest
    // round-trip decimal between quotes and after a comma, each quote escaped once more inside the
    // metadata string: 5 bytes besides the digits, and the header would exceed the limit.
    std::uint64_t json_bytes = 0;
    for (Eigen::Index i = 0; i < p.size(); ++i) {
        char buf[64];
        json_bytes += static_cast<std::uint64_t>(std::to_chars(buf, buf + sizeof buf, p(i)).ptr - buf) + 5;
    }
    REQUIRE(json_bytes > io::kMaxHeaderSize);

    Net net(4, 3, 1);
    Driver d(net);
    traincb::RunState rs;
    rs.metric_states = [&auc](std::map<std::string, traincb::StateDict, std::less<>>& tensors) {
        nlohmann::json s;
        (void)auc.save_state_with_tensors(s, tensors["auc"]);
        return nlohmann::json{{"auc", std::move(s)}};
    };
    d.list.set_run_state(&rs);
    d.begin();
    d.list.on_epoch_begin(0);
    d.list.on_train_batch_begin(0);
    Logs bl{{"loss", 1.0}};
    d.list.on_train_batch_end(0, bl);  // mid-epoch: the metric states are saved
    const fs::path path = dir / "big.safetensors";
    io::save_checkpoint(path, io::capture_checkpoint(d.list.context(), io::CheckpointKind::Full));

    // The header stays small: the scores are tensor data.
    std::array<unsigned char, 8> head{};
    std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(head.data()), head.size());
    std::uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = header << 8U | head[static_cast<std::size_t>(i)];
    CHECK(header < 4096);
    const io::Checkpoint c = io::load_checkpoint(path);
    REQUIRE(c.train_metrics.at("auc").at("positive_count") == m);
    REQUIRE(c.train_metric_tensors.count("auc") == 1);
    traincb::metrics::RocAuc back;
    back.load_state_with_tensors(c.train_metrics.at("auc"), c.train_metric_tensors.at("auc"));
    // Every score came back, bit for bit (the state saved again is the same)...
    nlohmann::json s1, s2;
    traincb::StateDict t1, t2;
    REQUIRE(auc.save_state_with_tensors(s1, t1));
    REQUIRE(back.save_state_with_tensors(s2, t2));
    CHECK(s1 == s2);
    REQUIRE(t1.size() == 2);
    REQUIRE(t2.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        const traincb::Tensor &a = t1.tensors()[i], &b = t2.tensors()[i];
        CHECK(a.name == b.name);
        CHECK(a.shape == std::vector<std::int64_t>{m});
        CHECK(b.shape == a.shape);
        CHECK(std::memcmp(a.data.data(), b.data.data(), a.data.size()) == 0);  // (memcmp: fast in Debug too)
    }
    // ... and the AUC is the one derived above.
    CHECK(back.result() == Approx((m + 1.0) / (2.0 * m)).epsilon(1e-12));
}

TEST_CASE("checkpoint: a mid-epoch checkpoint records the batch position and the running loss exactly") {
    TempDir dir("ckpt_mid");
    Net net(4, 3, 1);
    Driver d(net);
    traincb::RunState rs;
    rs.seed = 0xFFFF'FFFF'FFFF'FFFFULL;  // the whole uint64 range survives
    rs.fit_options = {{"batch_size", 7}};
    rs.loss_sum = 0.1 + 0.2;  // 0.30000000000000004: must come back bit for bit
    rs.loss_count = 21;
    d.list.set_run_state(&rs);
    d.begin();
    d.list.on_epoch_begin(4);
    d.list.on_train_batch_begin(2);
    Logs bl{{"loss", 1.0}};
    d.list.set_global_step(40);
    d.list.on_train_batch_end(2, bl);  // batch index 2: three batches of epoch 4 done
    const fs::path path = dir / "mid.safetensors";
    io::save_checkpoint(path, io::capture_checkpoint(d.list.context(), io::CheckpointKind::Full));
    const io::Checkpoint c = io::load_checkpoint(path);
    CHECK(c.position == io::CheckpointPosition{4, false, 3, 41});
    CHECK(c.position.next_epoch() == 4);
    CHECK(c.position.next_batch() == 3);
    CHECK(c.seed == 0xFFFF'FFFF'FFFF'FFFFULL);
    CHECK(c.fit_options == nlohmann::json{{"batch_size", 7}});
    CHECK(same_bits(c.loss_sum, 0.1 + 0.2));
    CHECK(c.loss_count == 21);
}

TEST_CASE("checkpoint: a weights checkpoint holds the model state only") {
    TempDir dir("ckpt_weights");
    SmallRun run;
    const fs::path path = dir / "w.safetensors";
    io::save_checkpoint(path, run.capture(io::CheckpointKind::Weights));
    const io::SafetensorsFile raw = io::load_safetensors(path);
    for (const auto& t : raw.tensors.tensors()) CHECK(t.name.starts_with("model/"));
    CHECK(raw.metadata.at("traincb.kind") == "weights");
    const nlohmann::json j = nlohmann::json::parse(raw.metadata.at("traincb.state"));
    CHECK(j.at("format_version") == 1);  // the layout of weights files did not change
    CHECK(!j.contains("callbacks"));
    CHECK(!j.contains("history"));
    const io::Checkpoint c = io::load_checkpoint(path);
    CHECK(c.kind == io::CheckpointKind::Weights);
    CHECK(c.callbacks.empty());
    CHECK(same_state(c.model, state_of(run.net)));
}

TEST_CASE("checkpoint: a rank-4 tensor keeps its shape [2,3,2,2] in the file; F16 and BF16 round-trip bit for bit") {
    TempDir dir("ckpt_rank4");
    ConvNet net(0.75f);
    io::Checkpoint c;
    c.kind = io::CheckpointKind::Weights;
    c.position = {3, true, 0, 12};
    traincb::StateCollector collector(c.model);
    net.visit_state(collector);
    const fs::path path = dir / "conv.safetensors";
    io::save_checkpoint(path, c);

    // The header as any safetensors reader sees it: the JSON after the 8-byte length.
    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.size() > 8);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < 8; ++i)
        n |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, static_cast<std::size_t>(n)));
    CHECK(header.at("model/conv.weight").at("dtype") == "F32");
    CHECK(header.at("model/conv.weight").at("shape") == nlohmann::json::array({2, 3, 2, 2}));
    CHECK(header.at("model/conv.bias").at("dtype") == "F16");
    CHECK(header.at("model/conv.bias").at("shape") == nlohmann::json::array({3}));
    CHECK(header.at("model/adam.m.conv").at("dtype") == "BF16");
    CHECK(header.at("model/adam.m.conv").at("shape") == nlohmann::json::array({2, 3, 2}));
    // The kernel's bytes in the file are the model's (already row-major), bit for bit.
    const auto offsets = header.at("model/conv.weight").at("data_offsets").get<std::vector<std::size_t>>();
    REQUIRE(offsets.size() == 2);
    REQUIRE(offsets[1] - offsets[0] == 24 * sizeof(float));
    CHECK(std::memcmp(bytes.data() + 8 + n + offsets[0], net.kernel.data(), 24 * sizeof(float)) == 0);

    // Loading restores every bit into a model of the same architecture.
    ConvNet other(-2.0f);
    io::load_weights(path, other);
    CHECK(other.kernel == net.kernel);
    CHECK(other.bias == net.bias);
    CHECK(other.moment == net.moment);
    const io::Checkpoint back = io::load_checkpoint(path);
    const traincb::Tensor* kernel = back.model.find("conv.weight");  // load_checkpoint drops the "model/" prefix
    REQUIRE(kernel != nullptr);
    CHECK(kernel->shape == std::vector<std::int64_t>{2, 3, 2, 2});

    // A model whose kernel has another shape (same element count) is refused, naming both shapes.
    struct Reshaped {
        std::vector<float> kernel = std::vector<float>(24);
        void visit_state(traincb::StateVisitor& v) {
            const std::array<std::int64_t, 4> shape{3, 2, 2, 2};
            traincb::visit(v, "conv.weight", kernel.data(), traincb::DType::F32, shape);
        }
    } reshaped;
    try {
        io::load_weights(path, reshaped);
        FAIL("a [2,3,2,2] kernel loaded into a [3,2,2,2] one");
    } catch (const traincb::FormatError& e) {
        CHECK(std::string(e.what()).find("is F32 [2,3,2,2] in the file but F32 [3,2,2,2] in the model") !=
              std::string::npos);
    }
}

TEST_CASE("checkpoint: restore_model and load_weights put the saved state back") {
    TempDir dir("ckpt_restore");
    SmallRun run;
    const traincb::StateDict saved = state_of(run.net);
    const fs::path path = dir / "w.safetensors";
    io::save_checkpoint(path, run.capture(io::CheckpointKind::Weights));
    Net other(4, 3, 1);
    other.lr = 9.0;
    other.steps = 77;
    io::load_weights(path, other);
    CHECK(same_state(state_of(other), saved));

    Net wrong(4, 2, 1);  // another architecture
    CHECK_THROWS_AS(io::load_weights(path, wrong), traincb::FormatError);
}

TEST_CASE("checkpoint: a truncated or corrupted file is a FormatError naming the file and the check") {
    TempDir dir("ckpt_corrupt");
    SmallRun run;
    const fs::path good = dir / "good.safetensors";
    io::save_checkpoint(good, run.capture());
    const std::string bytes = read_bytes(good);
    const fs::path bad = dir / "bad.safetensors";

    for (std::size_t len :
         {std::size_t{0}, std::size_t{7}, std::size_t{8}, std::size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
        INFO("truncated to " << len);
        write_bytes(bad, bytes.substr(0, len));
        try {
            (void)io::load_checkpoint(bad);
            FAIL("no exception");
        } catch (const traincb::FormatError& e) {
            CHECK(std::string(e.what()).find("bad.safetensors") != std::string::npos);
        }
    }
    {
        INFO("one flipped bit in the last tensor byte");
        std::string b = bytes;
        b.back() = static_cast<char>(b.back() ^ 0x01);
        write_bytes(bad, b);
        CHECK_THROWS_WITH(io::load_checkpoint(bad), Catch::Contains("checksum mismatch"));
    }
    {
        INFO("one changed digit in traincb.state (same length, valid JSON)");
        std::string b = bytes;
        const std::size_t at = b.find("\\\"global_step\\\":3");
        REQUIRE(at != std::string::npos);
        b[at + std::string("\\\"global_step\\\":").size()] = '4';
        write_bytes(bad, b);
        CHECK_THROWS_WITH(io::load_checkpoint(bad), Catch::Contains("checksum mismatch: 'traincb.state'"));
    }
    {
        INFO("a plain safetensors file is not a checkpoint");
        traincb::StateDict d;
        io::put_tensor(d, "model/w", Eigen::MatrixXd::Ones(2, 2));
        io::save_safetensors(bad, d, {{"format", "pt"}});
        CHECK_THROWS_WITH(io::load_checkpoint(bad), Catch::Contains("not a checkpoint written by traincb"));
    }
    {
        INFO("an unknown kind");
        traincb::StateDict d;
        io::put_tensor(d, "model/w", Eigen::MatrixXd::Ones(2, 2));
        const std::string state = R"({"format_version":1})";
        io::save_safetensors(
            bad, d,
            {{"traincb.kind", "everything"},
             {"traincb.version", "0.1.0"},
             {"traincb.state", state},
             {"traincb.state.checksum", "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(state))}},
            {.checksum = true});
        CHECK_THROWS_WITH(io::load_checkpoint(bad), Catch::Contains("'traincb.kind' is 'everything'"));
    }
    {
        INFO("a state document with a missing field");
        traincb::StateDict d;
        io::put_tensor(d, "model/w", Eigen::MatrixXd::Ones(2, 2));
        const std::string state = R"({"format_version":1,"epoch":0})";
        io::save_safetensors(
            bad, d,
            {{"traincb.kind", "full"},
             {"traincb.version", "0.1.0"},
             {"traincb.state", state},
             {"traincb.state.checksum", "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(state))}},
            {.checksum = true});
        CHECK_THROWS_WITH(io::load_checkpoint(bad), Catch::Contains("'traincb.state' is malformed"));
    }
    CHECK_THROWS_AS(io::load_checkpoint(dir / "missing.safetensors"), traincb::IoError);
    CHECK_THROWS_AS(io::load_checkpoint(dir.path), traincb::IoError);
    CHECK(io::load_checkpoint(good).position.global_step == 3);  // the original is untouched
}

TEST_CASE("checkpoint: every I/O failure raises IoError naming the path and the OS error, earlier files intact") {
    TempDir dir("ckpt_iofail");
    SmallRun run;
    const fs::path path = dir / "c.safetensors";
    io::save_checkpoint(path, run.capture());
    const std::string original = read_bytes(path);
    run.d.epoch(3, Logs{{"loss", 0.6}, {"val_loss", 0.3}});  // a newer state to fail to write

    struct Case {
        Op op;
        int nth;
        int err;
        const char* text;
    };
    // The OS texts are strerror's (glibc) for each errno.
    for (const Case& c :
         {Case{Op::Write, 0, ENOSPC, "No space left on device"}, Case{Op::Fsync, 0, EIO, "Input/output error"},
          Case{Op::Open, 0, EACCES, "Permission denied"}, Case{Op::Rename, 0, EIO, "Input/output error"}}) {
        INFO(c.text);
        {
            InjectFault fault(c.op, c.nth, c.err);
            try {
                io::save_checkpoint(path, run.capture(), "ModelCheckpoint");
                FAIL("no exception");
            } catch (const traincb::IoError& e) {
                const std::string what = e.what();
                CHECK(what.find("traincb: ModelCheckpoint:") == 0);
                CHECK(what.find(path.string()) != std::string::npos);
                CHECK(what.find(c.text) != std::string::npos);
                CHECK(e.code().value() == c.err);
            }
        }
        CHECK(read_bytes(path) == original);
        CHECK(io::load_checkpoint(path).position.global_step == 3);
        CHECK(names_in(dir.path) == std::set<std::string>{"c.safetensors"});  // no temporary file left
    }
    {
        INFO("a missing parent directory that cannot be created");
        InjectFault fault(Op::Mkdir, 0, EACCES);
        CHECK_THROWS_AS(io::save_checkpoint(dir / "sub/c.safetensors", run.capture()), traincb::IoError);
    }
    {
        INFO("a path that is a directory");
        fs::create_directories(dir / "adir.safetensors");
        CHECK_THROWS_WITH(io::save_checkpoint(dir / "adir.safetensors", run.capture()),
                          Catch::Contains("Is a directory"));
        CHECK(fs::is_directory(dir / "adir.safetensors"));
    }
    // A missing parent directory is created.
    io::save_checkpoint(dir / "a/b/c.safetensors", run.capture());
    CHECK(io::load_checkpoint(dir / "a/b/c.safetensors").position.global_step == 4);
}

TEST_CASE(
    "checkpoint: find_latest_checkpoint picks the furthest position, not the newest file, and skips invalid ones") {
    TempDir dir("ckpt_latest");
    Net net(4, 3, 1);
    Warnings warnings;
    CHECK(!io::find_latest_checkpoint(dir.path).has_value());
    CHECK(!io::find_latest_checkpoint(dir / "does_not_exist").has_value());

    io::save_checkpoint(dir / "a.safetensors", at_position(net, 5, true, 10, 60));
    io::save_checkpoint(dir / "m.safetensors", at_position(net, 5, false, 4, 54));
    io::save_checkpoint(dir / "z.safetensors", at_position(net, 2, true, 10, 30));
    // The oldest position is the newest file: modification times must not decide.
    fs::last_write_time(dir / "a.safetensors", fs::file_time_type::clock::now() - std::chrono::hours(2));
    fs::last_write_time(dir / "z.safetensors", fs::file_time_type::clock::now() + std::chrono::hours(1));
    CHECK(io::find_latest_checkpoint(dir.path) == dir / "a.safetensors");

    // Same global step: an ended epoch is further than a batch checkpoint; equal positions go by name.
    io::save_checkpoint(dir / "b_mid.safetensors", at_position(net, 6, false, 10, 60));
    io::save_checkpoint(dir / "c.safetensors", at_position(net, 5, true, 10, 60));
    CHECK(io::find_latest_checkpoint(dir.path) == dir / "a.safetensors");

    // Weights files cannot resume a run; temporary and foreign files are not checkpoints.
    io::save_checkpoint(dir / "w.safetensors", at_position(net, 50, true, 10, 500, io::CheckpointKind::Weights));
    write_bytes(dir / ".a.safetensors.tmp.123.abcdef", "half a file");
    write_bytes(dir / "notes.txt", "hello");
    CHECK(io::find_latest_checkpoint(dir.path) == dir / "a.safetensors");
    CHECK(warnings.messages.empty());

    // Newer but invalid: a truncated header, and a corrupted tensor (found only when loading the data).
    io::save_checkpoint(dir / "t.safetensors", at_position(net, 9, true, 10, 100));
    const std::string t = read_bytes(dir / "t.safetensors");
    write_bytes(dir / "t.safetensors", t.substr(0, 20));
    io::save_checkpoint(dir / "x.safetensors", at_position(net, 8, true, 10, 90));
    std::string x = read_bytes(dir / "x.safetensors");
    x.back() = static_cast<char>(x.back() ^ 0x40);
    write_bytes(dir / "x.safetensors", x);
    CHECK(io::find_latest_checkpoint(dir.path) == dir / "a.safetensors");
    INFO(warnings.all());
    CHECK(warnings.messages.size() == 2);
    CHECK(warnings.any_contains("skipping invalid checkpoint '" + (dir / "t.safetensors").string() + "'"));
    CHECK(warnings.any_contains("skipping invalid checkpoint '" + (dir / "x.safetensors").string() + "'"));
    CHECK(warnings.any_contains("checksum mismatch"));
}

TEST_CASE("checkpoint: remove_stale_temp_files removes only the temporary files of dead processes") {
    TempDir dir("ckpt_stale");
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);  // reaped: the pid is free now
    const std::string dead = ".last.safetensors.tmp." + std::to_string(child) + ".0123456789ab";
    const std::string mine = ".last.safetensors.tmp." + std::to_string(::getpid()) + ".0123456789ab";
    const std::string init = ".last.safetensors.tmp.1.0123456789ab";  // pid 1 always exists
    for (const auto& n : {dead, mine, init, std::string("last.safetensors"), std::string(".hidden")})
        write_bytes(dir / n, "x");
    CHECK(io::remove_stale_temp_files(dir.path) == 1);
    CHECK(names_in(dir.path) == std::set<std::string>{mine, init, "last.safetensors", ".hidden"});
    CHECK(io::remove_stale_temp_files(dir / "missing") == 0);
}

TEST_CASE("checkpoint: numpy reads a traincb checkpoint with the snippet of docs/checkpoints.md") {
    const std::string python = TRAINCB_PYTHON3;
    if (python.empty()) TRAINCB_SKIP("no python3 on this machine");
    if (std::system((python + " -c 'import numpy' 2>/dev/null").c_str()) != 0) TRAINCB_SKIP("python3 has no numpy");

    // The ```python block of the docs, verbatim, then checks printed for C++ to compare.
    const std::string doc = read_bytes(fs::path(TRAINCB_SOURCE_DIR) / "docs" / "checkpoints.md");
    const std::size_t b = doc.find("```python\n");
    REQUIRE(b != std::string::npos);
    const std::size_t e = doc.find("```", b + 10);
    REQUIRE(e != std::string::npos);
    TempDir dir("ckpt_numpy");
    SmallRun run;
    const fs::path path = dir / "last.safetensors";
    io::save_checkpoint(path, run.capture());
    write_bytes(dir / "read.py", doc.substr(b + 10, e - b - 10) +
                                     "\nimport sys\n"
                                     "tensors, meta, state = load_checkpoint(sys.argv[1])\n"
                                     "w1 = tensors['model/w1']\n"
                                     "print(w1.shape[0], w1.shape[1], w1.dtype)\n"
                                     "print(' '.join(repr(float(v)) for v in w1.ravel()))\n"
                                     "print(int(tensors['model/opt.steps']), state['epoch'], meta['traincb.kind'])\n");
    const std::string out_file = (dir / "out.txt").string();
    REQUIRE(std::system((python + " " + (dir / "read.py").string() + " " + path.string() + " > " + out_file).c_str()) ==
            0);
    std::istringstream out(read_bytes(out_file));
    int rows = 0, cols = 0;
    std::string dtype;
    out >> rows >> cols >> dtype;
    CHECK(rows == 4);
    CHECK(cols == 3);
    CHECK(dtype == "float64");
    // numpy's C-order ravel of the [4, 3] tensor is the model's w1 read row by row; repr() round-trips.
    for (Eigen::Index r = 0; r < 4; ++r)
        for (Eigen::Index c = 0; c < 3; ++c) {
            std::string v;
            out >> v;
            CHECK(std::stod(v) == run.net.w1(r, c));
        }
    std::int64_t steps = 0;
    int epoch = 0;
    std::string kind;
    out >> steps >> epoch >> kind;
    CHECK(steps == 3);
    CHECK(epoch == 2);
    CHECK(kind == "full");
}

}  // namespace test_checkpoint
