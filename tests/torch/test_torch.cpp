// traincb/torch.hpp: TorchModel, TorchState and as_eigen against LibTorch 1.13. Every LibTorch
// test lives in this one translation unit (each one that includes torch costs about a minute of
// compile time). Expected values come from LibTorch itself: a run that is saved and resumed must
// equal, bit for bit, the same run left alone; a restored weight must equal the snapshot taken of
// it; a view must alias the tensor's memory.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/callbacks/model_checkpoint.hpp>
#include <traincb/callbacks/reduce_lr_on_plateau.hpp>
#include <traincb/io/checkpoint.hpp>
#include <traincb/io/safetensors.hpp>
#include <traincb/metrics.hpp>
#include <traincb/torch.hpp>
#include <traincb/trainer.hpp>
#include <vector>

#include "catch.hpp"
#include "spawn_logged.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using traincb_test::read_bytes;
using traincb_test::TempDir;

namespace {

// A module with every kind of state: Linear weights, BatchNorm running statistics and its int64
// num_batches_tracked, and Dropout (which draws from the CPU generator).
torch::nn::Sequential small_net(std::uint64_t seed) {
    torch::manual_seed(seed);
    return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::BatchNorm1d(8), torch::nn::ReLU(),
                                 torch::nn::Dropout(0.3), torch::nn::Linear(8, 3));
}

traincb::TorchLoss cross_entropy() {
    return [](const torch::Tensor& out, const torch::Tensor& y) {
        return torch::nn::functional::cross_entropy(out, y.squeeze(1).to(torch::kLong));
    };
}

// A fixed data set: 24 rows of 4 features, 3 classes.
struct Data {
    Eigen::MatrixXf x, y;
};
Data make_data(int rows = 24) {
    std::mt19937 rng(7);
    std::normal_distribution<float> n(0.0F, 1.0F);
    Data d{Eigen::MatrixXf(rows, 4), Eigen::MatrixXf(rows, 1)};
    for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < 4; ++j) d.x(i, j) = n(rng);
        d.y(i, 0) = static_cast<float>(i % 3);
        d.x(i, i % 3) += 2.0F;  // learnable
    }
    return d;
}

// Every tensor of a state, as traincb collects it (names, dtypes, shapes, bytes).
template <class M>
traincb::StateDict collect(M& m, traincb::StateFilter filter = traincb::StateFilter::All) {
    traincb::StateDict d;
    traincb::StateCollector c(d, {}, filter);
    m.visit_state(c);
    return d;
}

template <class Optimizer>
void train_steps(torch::nn::Sequential& net, Optimizer& opt, const Data& d, int steps) {
    net->train();
    const torch::Tensor x =
        torch::from_blob(const_cast<float*>(d.x.data()), {d.x.rows(), d.x.cols()}, {1, d.x.rows()}, torch::kFloat32);
    const torch::Tensor y =
        torch::from_blob(const_cast<float*>(d.y.data()), {d.y.rows()}, torch::kFloat32).to(torch::kLong);
    for (int i = 0; i < steps; ++i) {
        opt.zero_grad();
        torch::nn::functional::cross_entropy(net->forward(x), y).backward();
        opt.step();
    }
}

// Saves the state of (net, opt) after `before` steps, runs `after` more steps, then loads the
// saved state into a differently initialised copy and runs the same `after` steps: both must end
// bit-identical (parameters, buffers, optimizer state, learning rate and generator). A state that
// missed something (Adam's moments, BatchNorm's statistics, the generator Dropout draws from)
// would make them differ.
template <class Optimizer, class Options>
void check_round_trip(const Options& options, const std::vector<std::string>& expected_names) {
    const Data d = make_data();
    torch::nn::Sequential a = small_net(1);
    Optimizer oa(a->parameters(), options);
    traincb::TorchState sa(a, oa);
    train_steps(a, oa, d, 3);
    sa.set_learning_rate(sa.learning_rate() * 0.5);  // as a scheduler would
    TempDir dir;
    const fs::path file = dir.path / "state.safetensors";
    traincb::io::save_safetensors(file, collect(sa));
    train_steps(a, oa, d, 4);
    const traincb::StateDict after_a = collect(sa);

    torch::nn::Sequential b = small_net(99);
    Optimizer ob(b->parameters(), options);
    traincb::TorchState sb(b, ob);
    const traincb::StateDict fresh_b = collect(sb);
    CHECK(fresh_b.size() == after_a.size());  // the same tensors before any step (created eagerly)
    const traincb::io::SafetensorsFile loaded = traincb::io::load_safetensors(file);
    traincb::StateLoader loader(loaded.tensors);
    sb.visit_state(loader);
    CHECK(sb.learning_rate() == sa.learning_rate());
    train_steps(b, ob, d, 4);
    const traincb::StateDict after_b = collect(sb);
    REQUIRE(after_b.size() == after_a.size());
    for (std::size_t i = 0; i < after_a.size(); ++i) {
        INFO(after_a.tensors()[i].name);
        CHECK(after_b.tensors()[i] == after_a.tensors()[i]);
    }
    for (const std::string& name : expected_names) {
        INFO(name);
        CHECK(after_a.find(name) != nullptr);
    }
}

}  // namespace

TEST_CASE("torch state: Adam (with amsgrad) round-trips bit-identically, named after the parameters") {
    check_round_trip<torch::optim::Adam>(
        torch::optim::AdamOptions(0.01).amsgrad(true),
        {"0.weight", "1.running_mean", "1.num_batches_tracked", "optimizer.group0.lr", "optimizer.0.weight.step",
         "optimizer.0.weight.exp_avg", "optimizer.4.bias.exp_avg_sq", "optimizer.4.bias.max_exp_avg_sq", "rng.cpu"});
}

TEST_CASE("torch state: Adam without amsgrad round-trips and saves no max_exp_avg_sq") {
    check_round_trip<torch::optim::Adam>(torch::optim::AdamOptions(0.01), {"optimizer.0.weight.exp_avg_sq"});
    torch::nn::Sequential net = small_net(1);
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(0.01));
    traincb::TorchState st(net, opt);
    CHECK(collect(st).find("optimizer.0.weight.max_exp_avg_sq") == nullptr);
}

TEST_CASE("torch state: AdamW round-trips bit-identically") {
    check_round_trip<torch::optim::AdamW>(torch::optim::AdamWOptions(0.01).weight_decay(0.1),
                                          {"optimizer.0.weight.exp_avg", "optimizer.0.weight.step"});
}

TEST_CASE("torch state: SGD with momentum round-trips, including whether each buffer exists yet") {
    check_round_trip<torch::optim::SGD>(
        torch::optim::SGDOptions(0.05).momentum(0.9).dampening(0.1),
        {"optimizer.0.weight.momentum_buffer", "optimizer.0.weight.momentum_buffer_set"});
    // Saved before the first step, the buffers do not exist: loading that state into an optimizer
    // that has stepped removes them again, so the next step creates them from the gradient (as
    // SGD::step does) instead of updating a zero buffer (which differs with dampening).
    const Data d = make_data();
    torch::nn::Sequential a = small_net(3);
    torch::optim::SGD oa(a->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).dampening(0.5));
    traincb::TorchState sa(a, oa);
    const traincb::StateDict before = collect(sa);
    const traincb::Tensor* set = before.find("optimizer.0.weight.momentum_buffer_set");
    REQUIRE(set != nullptr);
    REQUIRE(set->data.size() == 1);
    CHECK(static_cast<int>(set->data[0]) == 0);
    CHECK(oa.state().empty());
    train_steps(a, oa, d, 2);
    CHECK(!oa.state().empty());
    traincb::StateLoader loader(before);
    sa.visit_state(loader);
    CHECK(oa.state().empty());
}

TEST_CASE("torch state: SGD without momentum has no per-parameter state") {
    check_round_trip<torch::optim::SGD>(torch::optim::SGDOptions(0.05), {"optimizer.group0.lr", "rng.cpu"});
    torch::nn::Sequential net = small_net(1);
    torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.05));
    traincb::TorchState st(net, opt);
    const traincb::StateDict d = collect(st);
    for (const traincb::Tensor& t : d.tensors()) CHECK(t.name.find("momentum") == std::string::npos);
}

TEST_CASE("torch state: tensors keep their shape and dtype in safetensors (conv weights, half buffers)") {
    struct NetImpl : torch::nn::Module {
        torch::nn::Conv2d conv{nullptr};
        torch::Tensor half;
        NetImpl() {
            conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, {4, 5})));
            half = register_buffer("half", torch::arange(6, torch::kFloat32).reshape({2, 3}).to(torch::kHalf));
        }
    };
    torch::manual_seed(5);
    auto net = std::make_shared<NetImpl>();
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(0.01));
    traincb::TorchState st(*net, opt);
    TempDir dir;
    traincb::io::save_safetensors(dir.path / "s.safetensors", collect(st));
    const traincb::io::SafetensorsFile f = traincb::io::load_safetensors(dir.path / "s.safetensors");
    const traincb::Tensor* w = f.tensors.find("conv.weight");
    REQUIRE(w != nullptr);
    CHECK(w->shape == std::vector<std::int64_t>{3, 2, 4, 5});
    CHECK(w->dtype == traincb::DType::F32);
    CHECK(std::memcmp(w->data.data(), net->conv->weight.data_ptr(), w->data.size()) == 0);
    const traincb::Tensor* m = f.tensors.find("optimizer.conv.weight.exp_avg");
    REQUIRE(m != nullptr);
    CHECK(m->shape == std::vector<std::int64_t>{3, 2, 4, 5});
    const traincb::Tensor* h = f.tensors.find("half");
    REQUIRE(h != nullptr);
    CHECK(h->dtype == traincb::DType::F16);
    CHECK(h->shape == std::vector<std::int64_t>{2, 3});
    // float16 of 0..5: 0x0000, 0x3C00 (1), 0x4000 (2), 0x4200 (3), 0x4400 (4), 0x4500 (5)
    // (IEEE 754 binary16 encodings).
    const std::vector<std::uint16_t> want{0x0000, 0x3C00, 0x4000, 0x4200, 0x4400, 0x4500};
    REQUIRE(h->data.size() == 12);
    CHECK(std::memcmp(h->data.data(), want.data(), 12) == 0);
    // Loading writes back into the module's own tensors.
    torch::NoGradGuard no_grad;
    net->conv->weight.zero_();
    net->half.zero_();
    traincb::StateLoader loader(f.tensors);
    st.visit_state(loader);
    CHECK(std::memcmp(w->data.data(), net->conv->weight.data_ptr(), w->data.size()) == 0);
    CHECK(net->half[1][2].item<float>() == 5.0F);
}

TEST_CASE("torch state: a non-contiguous parameter is saved and loaded through a copy") {
    torch::manual_seed(2);
    torch::nn::Linear lin(3, 2);
    torch::optim::SGD opt(lin->parameters(), torch::optim::SGDOptions(0.1));
    {
        torch::NoGradGuard no_grad;
        lin->weight.set_data(torch::arange(6, torch::kFloat32).reshape({3, 2}).t());  // [2, 3], strides {1, 2}
    }
    REQUIRE(!lin->weight.is_contiguous());
    traincb::TorchState st(lin, opt);
    const traincb::StateDict d = collect(st);
    const traincb::Tensor* w = d.find("weight");
    REQUIRE(w != nullptr);
    // Row-major [2, 3] of the transposed arange: 0 2 4 / 1 3 5.
    const std::vector<float> want{0, 2, 4, 1, 3, 5};
    CHECK(std::memcmp(w->data.data(), want.data(), 24) == 0);
    traincb::StateDict changed = d;
    for (traincb::Tensor& t : changed.tensors())
        if (t.name == "weight") std::memset(t.data.data(), 0, t.data.size());
    traincb::StateLoader loader(changed);
    st.visit_state(loader);
    CHECK(lin->weight.abs().sum().item<float>() == 0.0F);
}

TEST_CASE("torch state: optimizer state of a tensor the module does not own is named by group and position") {
    torch::nn::Sequential net = small_net(1);
    torch::Tensor extra = torch::zeros({2, 2}, torch::requires_grad());
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(0.01));
    opt.add_param_group(torch::optim::OptimizerParamGroup({extra}, std::make_unique<torch::optim::AdamOptions>(0.5)));
    traincb::TorchState st(net, opt);
    const traincb::StateDict d = collect(st);
    CHECK(d.find("optimizer.group1.param0.exp_avg") != nullptr);
    CHECK(d.find("optimizer.group1.lr") != nullptr);
    CHECK(d.find("optimizer.0.weight.exp_avg") != nullptr);
}

TEST_CASE("torch state: a dtype traincb does not store is rejected, naming the tensor") {
    struct NetImpl : torch::nn::Module {
        torch::nn::Linear lin{nullptr};
        NetImpl() {
            lin = register_module("lin", torch::nn::Linear(2, 2));
            register_buffer("phase", torch::zeros({2}, torch::kComplexFloat));
        }
    };
    auto net = std::make_shared<NetImpl>();
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(0.01));
    traincb::TorchState st(*net, opt);
    traincb::StateDict d;
    traincb::StateCollector c(d);
    CHECK_THROWS_WITH(st.visit_state(c), Catch::Matchers::Contains("tensor 'phase' has dtype ComplexFloat"));
}

TEST_CASE("torch: TorchModel through Trainer, float and double batches, with validation metrics") {
    const Data d = make_data(60);
    for (const bool as_double : {false, true}) {
        INFO((as_double ? "double" : "float") << " batches");
        traincb::TorchModel<torch::nn::Sequential, torch::optim::Adam> model(
            small_net(4), torch::optim::AdamOptions(0.02), cross_entropy());
        static_assert(traincb::Model<decltype(model), float> && traincb::Model<decltype(model), double>);
        static_assert(traincb::HasState<decltype(model)> && traincb::HasLearningRate<decltype(model)> &&
                      traincb::HasLoss<decltype(model), float>);
        traincb::Trainer trainer(model);
        auto options = [](auto scalar) {
            using S = decltype(scalar);
            return traincb::FitOptions<S>{.epochs = 25,
                                          .batch_size = 8,
                                          .seed = 3,
                                          .validation_split = 0.25,
                                          .metrics = {std::make_shared<traincb::metrics::SparseCategoricalAccuracy>(
                                              traincb::metrics::SparseCategoricalAccuracyOptions{.name = "accuracy"})}};
        };
        const traincb::History h = as_double ? trainer.fit(Eigen::MatrixXd(d.x.cast<double>()),
                                                           Eigen::MatrixXd(d.y.cast<double>()), options(0.0))
                                             : trainer.fit(d.x, d.y, options(0.0F));
        REQUIRE(h.size() == 25);
        const std::vector<double>& loss = h.at("loss");
        CHECK(loss.back() < loss.front() * 0.5);  // it learns
        CHECK(h.at("val_accuracy").back() > 0.8);
        // predict and loss agree with torch on the same module: the mean cross-entropy of the logits.
        const Eigen::MatrixXf logits = model.predict(d.x);
        REQUIRE(logits.rows() == d.x.rows());
        REQUIRE(logits.cols() == 3);
        const torch::Tensor t_logits = torch::from_blob(const_cast<float*>(logits.data()), {logits.rows(), 3},
                                                        {1, logits.rows()}, torch::kFloat32);
        const torch::Tensor t_y = torch::from_blob(const_cast<float*>(d.y.data()), {d.y.rows()}, torch::kFloat32);
        const double want = torch::nn::functional::cross_entropy(t_logits, t_y.to(torch::kLong)).item<double>();
        CHECK(model.loss(d.y, logits) == Approx(want).epsilon(1e-6));
        CHECK(!model.module()->is_training());  // predict left it in eval mode
    }
}

TEST_CASE("torch: TorchModel rejects an empty module, a module without parameters and an empty loss") {
    using Model = traincb::TorchModel<torch::nn::Sequential, torch::optim::Adam>;
    CHECK_THROWS_WITH(Model(torch::nn::Sequential(nullptr), torch::optim::AdamOptions(), cross_entropy()),
                      Catch::Matchers::Contains("the module holder is empty"));
    CHECK_THROWS_WITH(Model(torch::nn::Sequential(torch::nn::ReLU()), torch::optim::AdamOptions(), cross_entropy()),
                      Catch::Matchers::Contains("the module has no parameters"));
    CHECK_THROWS_WITH(Model(small_net(1), torch::optim::AdamOptions(), traincb::TorchLoss{}),
                      Catch::Matchers::Contains("the loss function is empty"));
    Model m(small_net(1), torch::optim::AdamOptions(0.01), cross_entropy());
    CHECK_THROWS_WITH(m.set_learning_rate(-1.0), Catch::Matchers::Contains("is not a positive finite number"));
    // A loss function that forgets to reduce: named with its shape, before backward() fails on it.
    const Data d = make_data();
    Model unreduced(small_net(1), torch::optim::AdamOptions(0.01),
                    [](const torch::Tensor& out, const torch::Tensor& y) {
                        return torch::nn::functional::cross_entropy(
                            out, y.squeeze(1).to(torch::kLong),
                            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
                    });
    CHECK_THROWS_WITH(unreduced.train_batch(d.x, d.y),
                      Catch::Matchers::Contains("the loss function returned a tensor of shape [24]"));
    CHECK_THROWS_WITH(unreduced.loss(d.y, m.predict(d.x)), Catch::Matchers::Contains("shape [24]"));
    torch::nn::Sequential empty(nullptr);
    torch::optim::Adam opt(small_net(1)->parameters(), torch::optim::AdamOptions(0.01));
    CHECK_THROWS_WITH(traincb::TorchState(empty, opt), Catch::Matchers::Contains("the module holder is empty"));
    m.set_learning_rate(0.25);
    for (const auto& g : m.optimizer().param_groups()) CHECK(g.options().get_lr() == 0.25);
}

// Keras semantics (docs/libtorch.md): restore_best_weights rolls back the weights, never the
// learning rate ReduceLROnPlateau lowered nor Adam's moments.
TEST_CASE("torch: restore_best_weights restores the weights but not the learning rate or the optimizer") {
    const Data d = make_data();
    torch::nn::Sequential net = small_net(6);
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(0.01));
    traincb::TorchState state(net, opt);
    traincb::EarlyStopping es({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
    traincb::ReduceLROnPlateau rlr({.monitor = "val_loss", .factor = 0.5, .patience = 1});
    traincb::CallbackList callbacks(es, rlr);
    callbacks.set_model(state);
    callbacks.set_params({.epochs = 10, .has_validation = true, .log_keys = {"loss", "val_loss"}});
    callbacks.on_train_begin();
    traincb::StateDict best_weights;
    const std::vector<double> val_loss{1.0, 2.0, 3.0, 4.0, 5.0};
    int epoch = 0;
    for (; epoch < 10 && !callbacks.stop_requested(); ++epoch) {
        callbacks.on_epoch_begin(epoch);
        train_steps(net, opt, d, 2);
        if (epoch == 0) best_weights = collect(state, traincb::StateFilter::Weights);
        traincb::Logs logs;
        logs.set("loss", 1.0);
        logs.set("val_loss", val_loss.at(static_cast<std::size_t>(epoch)));
        callbacks.on_epoch_end(epoch, logs);
    }
    REQUIRE(epoch == 4);  // patience 3 after the best epoch 0
    const traincb::StateDict moments_before = collect(state, traincb::StateFilter::Training);
    const double lr_before = state.learning_rate();
    CHECK(lr_before < 0.01);  // lowered by ReduceLROnPlateau
    callbacks.on_train_end();
    const traincb::StateDict weights_after = collect(state, traincb::StateFilter::Weights);
    REQUIRE(weights_after.size() == best_weights.size());
    for (std::size_t i = 0; i < best_weights.size(); ++i) {
        INFO(best_weights.tensors()[i].name);
        CHECK(weights_after.tensors()[i] == best_weights.tensors()[i]);
    }
    CHECK(state.learning_rate() == lr_before);
    CHECK(collect(state, traincb::StateFilter::Training) == moments_before);
}

// A run checkpointed after epoch 3 and resumed in a new process-like setting (a new module built
// from another seed, a generator reseeded) ends bit-identical to the uninterrupted run.
TEST_CASE("torch: a Trainer run resumed from its checkpoint ends bit-identical to an uninterrupted one") {
    const Data d = make_data(48);
    TempDir dir;
    auto fit = [&](std::uint64_t init_seed, int epochs, const fs::path& ckpt_dir, bool resume) {
        traincb::TorchModel<torch::nn::Sequential, torch::optim::Adam> model(
            small_net(init_seed), torch::optim::AdamOptions(0.01).amsgrad(true), cross_entropy());
        traincb::ReduceLROnPlateau rlr({.monitor = "loss", .factor = 0.5, .patience = 0, .min_delta = 0.5});
        traincb::ModelCheckpoint ckpt({.filepath = ckpt_dir / "last.safetensors"});
        traincb::Trainer trainer(model);
        traincb::History h = trainer.fit(d.x, d.y,
                                         traincb::FitOptions<float>{.epochs = epochs,
                                                                    .batch_size = 8,
                                                                    .seed = 11,
                                                                    .validation_split = 0.25,
                                                                    .resume_from = resume ? ckpt_dir : fs::path()},
                                         rlr, ckpt);
        return std::pair{h, collect(model)};
    };
    fs::create_directories(dir.path / "straight");
    fs::create_directories(dir.path / "resumed");
    const auto [h_straight, s_straight] = fit(1, 6, dir.path / "straight", false);
    (void)fit(1, 3, dir.path / "resumed", false);
    const auto [h_resumed, s_resumed] = fit(77, 6, dir.path / "resumed", true);
    CHECK(h_resumed.at("val_loss") == h_straight.at("val_loss"));
    CHECK(h_resumed.at("loss") == h_straight.at("loss"));
    REQUIRE(s_resumed.size() == s_straight.size());
    for (std::size_t i = 0; i < s_straight.size(); ++i) {
        INFO(s_straight.tensors()[i].name);
        CHECK(s_resumed.tensors()[i] == s_straight.tensors()[i]);
    }
    // The files: the same tensors (model, callbacks, history) and the same metadata once the
    // directory names, which ModelCheckpoint records in its kept list, are made equal.
    const auto resumed = traincb::io::load_safetensors(dir.path / "resumed/last.safetensors");
    const auto straight = traincb::io::load_safetensors(dir.path / "straight/last.safetensors");
    CHECK(resumed.tensors == straight.tensors);
    REQUIRE(resumed.metadata.size() == straight.metadata.size());
    for (const auto& [key, value] : straight.metadata) {
        INFO(key);
        std::string other = resumed.metadata.at(key);
        for (std::size_t at = other.find("/resumed/"); at != std::string::npos; at = other.find("/resumed/", at))
            other.replace(at, 9, "/straight/");
        if (key != "traincb.state.checksum") CHECK(other == value);
    }
}

TEST_CASE("as_eigen: zero-copy views of contiguous CPU float and double tensors of rank 1 and 2") {
    const torch::Tensor m = torch::arange(6, torch::kFloat32).reshape({2, 3});
    const auto v = traincb::as_eigen(m);
    CHECK(v.data() == m.data_ptr<float>());
    REQUIRE(v.rows() == 2);
    REQUIRE(v.cols() == 3);
    CHECK(v(1, 2) == 5.0F);
    CHECK(v(0, 1) == 1.0F);
    const torch::Tensor r = torch::arange(4, torch::kFloat64);
    const auto w = traincb::as_eigen<double>(r);
    CHECK(w.data() == r.data_ptr<double>());
    CHECK(w.rows() == 4);
    CHECK(w.cols() == 1);
    CHECK(w(3, 0) == 3.0);
    const torch::Tensor empty = torch::zeros({0, 3}, torch::kFloat32);
    CHECK(traincb::as_eigen(empty).rows() == 0);
    // Every traincb metric takes the views: accuracy of logits against labels, computed by hand
    // below (argmax of rows 0..3 is 2, 0, 1, 1; labels 2, 0, 1, 0: 3 of 4 right).
    const torch::Tensor logits =
        torch::tensor({0.1F, 0.2F, 0.9F, 0.8F, 0.1F, 0.1F, 0.2F, 0.7F, 0.1F, 0.3F, 0.6F, 0.1F}).reshape({4, 3});
    const torch::Tensor labels = torch::tensor({2.0F, 0.0F, 1.0F, 0.0F});
    traincb::metrics::SparseCategoricalAccuracy acc;
    acc.update(traincb::as_eigen(labels), traincb::as_eigen(logits));
    CHECK(acc.result() == 0.75);
    CHECK(traincb::metrics::sparse_categorical_accuracy(traincb::as_eigen(labels), traincb::as_eigen(logits)) == 0.75);
}

TEST_CASE("as_eigen: every other tensor is rejected with what to do") {
    using Catch::Matchers::Contains;
    CHECK_THROWS_WITH(traincb::as_eigen(torch::Tensor()), Contains("the tensor is undefined"));
    CHECK_THROWS_WITH(traincb::as_eigen(torch::tensor(1.0F)), Contains("rank 0"));
    CHECK_THROWS_WITH(traincb::as_eigen(torch::zeros({2, 3, 4})), Contains("rank 3 (shape [2,3,4])"));
    CHECK_THROWS_WITH(traincb::as_eigen(torch::zeros({2, 3}).t()), Contains("is not contiguous"));
    CHECK_THROWS_WITH(traincb::as_eigen(torch::zeros({2, 3}, torch::kFloat64)),
                      Contains("dtype is Double, not float") && Contains("as_eigen<double>"));
    CHECK_THROWS_WITH(traincb::as_eigen<double>(torch::zeros({2, 3})), Contains("dtype is Float, not double"));
    CHECK_THROWS_WITH(traincb::as_eigen(torch::zeros({2}, torch::kLong)), Contains("dtype is Long"));
    CHECK_THROWS_WITH(traincb::as_eigen(torch::zeros({2}, torch::kHalf)), Contains("dtype is Half"));
    // A CUDA tensor ("an Eigen view needs CPU memory") cannot be made on Debian's CPU-only LibTorch.
}

// ---------------------------------------------------------------------------------------------
// example_torch killed with SIGKILL at random moments, resumed until it completes: last.safetensors
// and history.csv must equal an uninterrupted run's, byte for byte.
// ---------------------------------------------------------------------------------------------

#ifdef TRAINCB_TORCH_EXAMPLE_EXE
namespace {

const std::vector<std::string> kTorchArgs = {"--out", "run",        "--quiet", "--seed",           "4", "--epochs",
                                             "14",    "--patience", "50",      "--epoch-delay-ms", "40"};

pid_t spawn_example(const fs::path& dir, const std::vector<std::string>& args) {
    return traincb_test::spawn_logged(dir, TRAINCB_TORCH_EXAMPLE_EXE, args);
}

int wait_exit(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return traincb_test::exit_code(status);
}

}  // namespace

TEST_CASE("example_torch: SIGKILL at random moments, each run resumed, ends bit-identical to an uninterrupted run") {
    using Clock = std::chrono::steady_clock;
    const fs::path work = fs::path(TRAINCB_BINARY_DIR) / "torch_crash" / std::to_string(::getpid());
    fs::remove_all(work);
    fs::create_directories(work / "clean");
    fs::create_directories(work / "crashy");
    const auto clean_started = Clock::now();
    REQUIRE(wait_exit(spawn_example(work / "clean", kTorchArgs)) == 0);
    const auto clean_ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - clean_started).count());

    std::uint64_t seed = std::random_device{}();
    if (const char* s = std::getenv("TRAINCB_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
    INFO("TRAINCB_CRASH_SEED=" << seed << " replays this sequence; logs in " << (work / "crashy/log.txt").string()
                               << "; the uninterrupted run took " << clean_ms << " ms");
    std::mt19937_64 rng(seed);
    std::vector<std::string> args = kTorchArgs;
    args.emplace_back("--resume");
    int kills = 0, runs = 0;
    for (;;) {
        REQUIRE(runs < 60);
        ++runs;
        const pid_t pid = spawn_example(work / "crashy", args);
        REQUIRE(pid > 0);
        // Somewhere in the run, startup (loading LibTorch) included, so that kills land before the
        // first checkpoint, in the middle of epochs and during writes; the first three runs are
        // killed in the first half of a run's time, so that every test kills at least three.
        const int longest = runs <= 3 ? clean_ms / 2 : clean_ms;
        const auto wait = std::chrono::milliseconds(
            std::uniform_int_distribution<int>(std::max(5, clean_ms / 10), std::max(10, longest))(rng));
        std::this_thread::sleep_for(wait);
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        REQUIRE(r >= 0);
        int code = 0;
        if (r == 0) {
            REQUIRE(::kill(pid, SIGKILL) == 0);
            code = wait_exit(pid);
            if (code == 128 + SIGKILL) {
                ++kills;
                continue;
            }
        } else {
            code = traincb_test::exit_code(status);
        }
        INFO(read_bytes(work / "crashy/log.txt"));
        REQUIRE(code == 0);  // it completed
        break;
    }
    INFO("runs " << runs << ", kills " << kills);
    CHECK(kills >= 3);
    for (const char* f : {"run/history.csv", "run/checkpoints/last.safetensors", "run/checkpoints/best.safetensors"}) {
        INFO(f);
        CHECK(read_bytes(work / "crashy" / f) == read_bytes(work / "clean" / f));
    }
    WARN("example_torch crash/resume: " << runs << " runs, " << kills << " SIGKILLs");
    fs::remove_all(work);
}
#endif
