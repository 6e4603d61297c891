#pragma once
/// @file mlp.hpp
/// A small dense multilayer perceptron trained with Adam: the user-supplied model of traincb's
/// examples. It is NOT part of the library. traincb drives any type with `train_batch(x, y)` and
/// `predict(x)`; this one also offers the optional members (`loss`, the learning rate and
/// `visit_state`), so every callback works with it.
///
///     traincb_examples::Mlp model({.inputs = 30,
///                                  .layers = {{16, Activation::Relu}, {1, Activation::Sigmoid}},
///                                  .loss = Loss::BinaryCrossentropy,
///                                  .learning_rate = 0.001,
///                                  .seed = 42});
///
/// Numbers follow Keras: Glorot-uniform kernels and zero biases, the Keras loss formulas (eps =
/// 1e-7 clipping) and `keras.optimizers.Adam`'s update, term for term. Training is single-threaded
/// and allocation-free once the buffers for a batch size exist; the same seed and the same batches
/// give bit-identical weights in the same binary (Eigen's SIMD kernels may round differently in
/// another build, so bits are not promised across compilers or instruction sets; the initial
/// weights are, because they come from std::mt19937_64, which the standard specifies exactly).
///
/// Data-parallel training (example_distributed): set_gradient_communicator() makes every
/// train_batch sum its gradients and its row count over the ranks before the Adam step, so that a
/// step on R ranks equals one process's step on the union of their rows (up to rounding) and every
/// rank applies the same update.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <traincb/communicator.hpp>
#include <traincb/errors.hpp>
#include <traincb/model.hpp>
#include <traincb/state.hpp>

#include "dataset.hpp"  // uniform01: the portable random numbers shared with the data helpers

namespace traincb_examples {

/// Activation of a dense layer. Softmax is allowed on the last layer only.
enum class Activation { Linear, Relu, Sigmoid, Softmax };

/// Training loss, as the Keras function of the same name.
enum class Loss {
    BinaryCrossentropy,             ///< sigmoid output; targets N x k in [0, 1]
    SparseCategoricalCrossentropy,  ///< softmax output; targets N x 1 integer labels stored as numbers
    MeanSquaredError,               ///< any output activation; targets N x k
};

/// One dense layer: `units` outputs followed by `activation`.
struct LayerSpec {
    Eigen::Index units = 0;                      ///< number of outputs (> 0)
    Activation activation = Activation::Linear;  ///< applied after the affine map
};

/// The architecture and optimiser settings of an Mlp (validated by the constructor).
struct MlpOptions {
    Eigen::Index inputs = 0;             ///< features per sample (> 0)
    std::vector<LayerSpec> layers{};     ///< hidden layers then the output layer (at least one)
    Loss loss = Loss::MeanSquaredError;  ///< loss minimised by train_batch and returned by loss()
    double learning_rate = 0.001;        ///< Adam's learning rate (Keras default)
    double beta_1 = 0.9;                 ///< Adam's first-moment decay (Keras default)
    double beta_2 = 0.999;               ///< Adam's second-moment decay (Keras default)
    double epsilon = 1e-7;               ///< Adam's epsilon (Keras default)
    std::uint64_t seed = 42;             ///< seeds std::mt19937_64 for the Glorot-uniform kernels
};

/// The lowercase Keras name of a loss ("binary_crossentropy", ...).
[[nodiscard]] inline const char* loss_name(Loss l) noexcept {
    switch (l) {
        case Loss::BinaryCrossentropy:
            return "binary_crossentropy";
        case Loss::SparseCategoricalCrossentropy:
            return "sparse_categorical_crossentropy";
        case Loss::MeanSquaredError:
            return "mean_squared_error";
    }
    return "?";
}

/// The lowercase Keras name of an activation ("relu", ...).
[[nodiscard]] inline const char* activation_name(Activation a) noexcept {
    switch (a) {
        case Activation::Linear:
            return "linear";
        case Activation::Relu:
            return "relu";
        case Activation::Sigmoid:
            return "sigmoid";
        case Activation::Softmax:
            return "softmax";
    }
    return "?";
}

/// A dense MLP over `Scalar` (double or float) trained with Adam; see the file comment.
template <class Scalar = double>
class BasicMlp {
    static_assert(std::is_floating_point_v<Scalar>, "traincb_examples::BasicMlp: Scalar must be float or double");

public:
    /// Column-major dynamic matrix of Scalar (rows = samples).
    using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
    /// Row vector of Scalar (a bias, one entry per unit).
    using RowVector = Eigen::Matrix<Scalar, 1, Eigen::Dynamic>;

    /// Builds the network and draws its initial weights from `options.seed`.
    /// @throws traincb::InvalidArgument for an empty architecture, a non-positive size, Softmax on
    /// a hidden layer, a loss that does not fit the output activation, or bad Adam settings.
    explicit BasicMlp(MlpOptions options) : options_(std::move(options)) {
        validate_options_();
        std::mt19937_64 rng(options_.seed);
        Eigen::Index fan_in = options_.inputs;
        layers_.reserve(options_.layers.size());
        for (std::size_t l = 0; l < options_.layers.size(); ++l) {
            const LayerSpec& spec = options_.layers[l];
            Layer layer;
            layer.activation = spec.activation;
            layer.weight.resize(fan_in, spec.units);
            // keras.initializers.GlorotUniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)),
            // drawn row by row (the row-major order of the Keras kernel [fan_in, fan_out]).
            const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + spec.units));
            for (Eigen::Index r = 0; r < fan_in; ++r)
                for (Eigen::Index c = 0; c < spec.units; ++c)
                    layer.weight(r, c) = static_cast<Scalar>(-limit + (limit - -limit) * uniform01(rng));
            layer.bias = RowVector::Zero(spec.units);
            layer.m_weight = Matrix::Zero(fan_in, spec.units);
            layer.v_weight = Matrix::Zero(fan_in, spec.units);
            layer.m_bias = RowVector::Zero(spec.units);
            layer.v_bias = RowVector::Zero(spec.units);
            layer.grad_weight = Matrix::Zero(fan_in, spec.units);
            layer.grad_bias = RowVector::Zero(spec.units);
            const std::string base = "dense" + std::to_string(l);
            layer.names = {base + ".weight",
                           base + ".bias",
                           "adam.m." + base + ".weight",
                           "adam.m." + base + ".bias",
                           "adam.v." + base + ".weight",
                           "adam.v." + base + ".bias"};
            layers_.push_back(std::move(layer));
            fan_in = spec.units;
        }
        learning_rate_ = options_.learning_rate;
        // Reserved so that adding a workspace never moves the others (train_batch hands out a
        // reference to a workspace's output buffer).
        workspaces_.reserve(kMaxWorkspaces);
    }

    /// One Adam step on a batch: forward, loss (mean over the batch), backward, update (with a
    /// gradient communicator of more than one rank, the gradient is the mean over every rank's
    /// rows: see set_gradient_communicator; the returned loss stays this rank's). Returns
    /// the loss and a reference to the model's own output buffer, holding the batch's predictions
    /// BEFORE the update; it stays valid until the next train_batch. Accepts matrices, blocks,
    /// maps and Refs without a copy. Allocates only when it meets a new batch size (buffers for
    /// the last few sizes are kept, so alternating full and tail batches allocates nothing).
    /// @throws traincb::InvalidArgument when x or y has the wrong shape or a label is invalid;
    /// the model is then unchanged.
    template <class DX, class DY>
    traincb::BatchResult<const Matrix&> train_batch(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) {
        Workspace& ws = gradients_(x, y);
        if (gradient_comm_ != nullptr && gradient_comm_->size() > 1) all_reduce_gradients_(x.rows());
        adam_step_();
        return {ws.loss, ws.a.back()};
    }

    /// Computes the batch loss and the gradients (weight_gradient(), bias_gradient()) WITHOUT
    /// updating anything: the hook for gradient checks. @throws as train_batch.
    template <class DX, class DY>
    double compute_gradients(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) {
        return gradients_(x, y).loss;
    }

    /// Forward pass: one output row per input row (allocates its result).
    /// @throws traincb::InvalidArgument when x does not have inputs() columns.
    template <class DX>
    [[nodiscard]] Matrix predict(const Eigen::MatrixBase<DX>& x) const {
        check_scalar_<DX>();
        check_x_(x, "predict");
        Workspace ws;
        size_workspace_(ws, x.rows());
        forward_(x, ws);
        return std::move(ws.a.back());
    }

    /// The configured loss of predictions, as Keras computes it (mean over the samples).
    /// @throws traincb::InvalidArgument when the shapes do not match or a label is invalid.
    template <class DT, class DP>
    [[nodiscard]] double loss(const Eigen::MatrixBase<DT>& y_true, const Eigen::MatrixBase<DP>& y_pred) const {
        if (y_pred.cols() != outputs())
            throw traincb::InvalidArgument("traincb: Mlp::loss: y_pred has " + std::to_string(y_pred.cols()) +
                                           " columns but the output layer has " + std::to_string(outputs()) +
                                           " units; pass predict(x) as y_pred");
        check_y_(y_true, y_pred.rows(), "loss");
        return loss_value_(y_true, y_pred);
    }

    /// Data-parallel training: from now on every train_batch is collective over `comm`'s ranks. It
    /// sums each rank's gradient times its row count, and the row counts, over the ranks
    /// (Communicator::sum), and steps with their quotient: the gradient of the mean loss over the
    /// union of the ranks' rows (up to rounding), the same on every rank when the reduction returns
    /// the same bits everywhere (MPI implementations do; example_distributed checks that the ranks'
    /// final weights are bit-equal), so ranks that start equal stay equal. Every rank must call
    /// train_batch equally often, with at least one row. Give the model its own communicator
    /// (e.g. a second traincb::MpiCommunicator), not the one in FitOptions::communicator, so that
    /// its sums never pair with traincb's collectives. nullptr (the default) or one rank: a
    /// single process, bit-identical to a model without it. The communicator must outlive training.
    void set_gradient_communicator(traincb::Communicator* comm) noexcept { gradient_comm_ = comm; }
    /// The communicator set by set_gradient_communicator (nullptr: none).
    [[nodiscard]] traincb::Communicator* gradient_communicator() const noexcept { return gradient_comm_; }

    /// Adam's current learning rate.
    [[nodiscard]] double learning_rate() const noexcept { return learning_rate_; }
    /// Sets Adam's learning rate (schedulers call this between batches).
    /// @throws traincb::InvalidArgument when lr is negative or not finite.
    void set_learning_rate(double lr) {
        if (!(lr >= 0) || !std::isfinite(lr))
            throw traincb::InvalidArgument("traincb: Mlp: learning rate " + std::to_string(lr) +
                                           " is invalid; pass a finite value >= 0");
        learning_rate_ = lr;
    }

    /// Visits every tensor needed to continue training bit-identically: the weights
    /// "dense<i>.weight" and "dense<i>.bias" (i from 0; the kernel is [inputs, units] as in Keras),
    /// and as training state Adam's moments "adam.m.<name>" and "adam.v.<name>", "adam.step"
    /// (int64, updates done) and "adam.learning_rate" (double).
    void visit_state(traincb::StateVisitor& v) {
        for (Layer& layer : layers_) {
            traincb::visit(v, layer.names[0], layer.weight);
            traincb::visit(v, layer.names[1], layer.bias);
        }
        for (Layer& layer : layers_) {
            traincb::visit_training_state(v, layer.names[2], layer.m_weight);
            traincb::visit_training_state(v, layer.names[3], layer.m_bias);
            traincb::visit_training_state(v, layer.names[4], layer.v_weight);
            traincb::visit_training_state(v, layer.names[5], layer.v_bias);
        }
        traincb::visit_training_state(v, "adam.step", step_);
        traincb::visit_training_state(v, "adam.learning_rate", learning_rate_);
    }

    /// Features per sample.
    [[nodiscard]] Eigen::Index inputs() const noexcept { return options_.inputs; }
    /// Units of the output layer.
    [[nodiscard]] Eigen::Index outputs() const noexcept { return options_.layers.back().units; }
    /// Number of dense layers.
    [[nodiscard]] std::size_t num_layers() const noexcept { return layers_.size(); }
    /// Adam updates done so far (Keras' `optimizer.iterations`).
    [[nodiscard]] std::int64_t step() const noexcept { return step_; }
    /// The options the model was built with (learning_rate is the initial one).
    [[nodiscard]] const MlpOptions& options() const noexcept { return options_; }
    /// Kernel of layer i, [fan_in, units]. Assumes i < num_layers().
    [[nodiscard]] Matrix& weight(std::size_t i) noexcept { return layers_[i].weight; }
    /// Kernel of layer i, [fan_in, units]. Assumes i < num_layers().
    [[nodiscard]] const Matrix& weight(std::size_t i) const noexcept { return layers_[i].weight; }
    /// Bias of layer i. Assumes i < num_layers().
    [[nodiscard]] RowVector& bias(std::size_t i) noexcept { return layers_[i].bias; }
    /// Bias of layer i. Assumes i < num_layers().
    [[nodiscard]] const RowVector& bias(std::size_t i) const noexcept { return layers_[i].bias; }
    /// d loss / d weight(i) from the last train_batch or compute_gradients.
    [[nodiscard]] const Matrix& weight_gradient(std::size_t i) const noexcept { return layers_[i].grad_weight; }
    /// d loss / d bias(i) from the last train_batch or compute_gradients.
    [[nodiscard]] const RowVector& bias_gradient(std::size_t i) const noexcept { return layers_[i].grad_bias; }

private:
    // Few distinct batch sizes occur (full batches, the tail batch, maybe an evaluation size);
    // keeping buffers for each avoids reallocating when they alternate.
    static constexpr std::size_t kMaxWorkspaces = 4;

    struct Layer {
        Activation activation = Activation::Linear;
        Matrix weight, m_weight, v_weight, grad_weight;
        RowVector bias, m_bias, v_bias, grad_bias;
        std::vector<std::string> names;  // built once so visit_state allocates nothing
    };
    // Per-batch-size buffers: pre-activations z, activations a, and d loss / d z.
    struct Workspace {
        Eigen::Index rows = -1;
        std::uint64_t last_used = 0;
        double loss = 0;
        std::vector<Matrix> z, a, dz;
    };

    [[noreturn]] static void fail_(const std::string& what) { throw traincb::InvalidArgument("traincb: Mlp: " + what); }

    void validate_options_() const {
        const MlpOptions& o = options_;
        if (o.inputs <= 0) fail_("inputs is " + std::to_string(o.inputs) + "; pass the number of features (> 0)");
        if (o.layers.empty()) fail_("layers is empty; pass at least the output layer, e.g. {{1, Activation::Sigmoid}}");
        for (std::size_t l = 0; l < o.layers.size(); ++l) {
            const LayerSpec& s = o.layers[l];
            const std::string where = "layer " + std::to_string(l);
            if (s.units <= 0) fail_(where + " has " + std::to_string(s.units) + " units; pass a positive count");
            if (s.activation == Activation::Softmax && l + 1 != o.layers.size())
                fail_(where + " uses softmax, which is supported on the output layer only; use relu or sigmoid");
            if (s.activation == Activation::Softmax && s.units < 2)
                fail_(where + " is a softmax over 1 unit, which always outputs 1; use sigmoid for one output");
        }
        const Activation out = o.layers.back().activation;
        if (o.loss == Loss::BinaryCrossentropy && out != Activation::Sigmoid)
            fail_(std::string("binary_crossentropy needs a sigmoid output layer, not ") + activation_name(out));
        if (o.loss == Loss::SparseCategoricalCrossentropy && out != Activation::Softmax)
            fail_(std::string("sparse_categorical_crossentropy needs a softmax output layer, not ") +
                  activation_name(out));
        if (!(o.learning_rate >= 0) || !std::isfinite(o.learning_rate))
            fail_("learning_rate " + std::to_string(o.learning_rate) + " is invalid; pass a finite value >= 0");
        if (!(o.beta_1 >= 0 && o.beta_1 < 1) || !(o.beta_2 >= 0 && o.beta_2 < 1))
            fail_("beta_1 " + std::to_string(o.beta_1) + " and beta_2 " + std::to_string(o.beta_2) +
                  " must both be in [0, 1)");
        if (!(o.epsilon > 0) || !std::isfinite(o.epsilon))
            fail_("epsilon " + std::to_string(o.epsilon) + " must be finite and > 0");
    }

    template <class D>
    static constexpr void check_scalar_() {
        static_assert(std::is_same_v<typename D::Scalar, Scalar>,
                      "traincb_examples::BasicMlp: the data's scalar type must match the model's (cast it first)");
    }

    template <class DX>
    void check_x_(const Eigen::MatrixBase<DX>& x, const char* fn) const {
        if (x.cols() != inputs())
            fail_(std::string(fn) + ": x has " + std::to_string(x.cols()) + " columns but the model has " +
                  std::to_string(inputs()) + " inputs; pass one row per sample with " + std::to_string(inputs()) +
                  " features");
    }

    // Throws unless y fits `rows` samples of the configured loss (labels checked for sparse CCE).
    template <class DY>
    void check_y_(const Eigen::MatrixBase<DY>& y, Eigen::Index rows, const char* fn) const {
        const std::string where = std::string(fn) + ": ";
        if (y.rows() != rows)
            fail_(where + "y has " + std::to_string(y.rows()) + " rows but there are " + std::to_string(rows) +
                  " samples; pass one target row per sample");
        if (options_.loss == Loss::SparseCategoricalCrossentropy) {
            if (y.cols() != 1)
                fail_(where + "y has " + std::to_string(y.cols()) +
                      " columns; sparse_categorical_crossentropy takes N x 1 integer class labels");
            for (Eigen::Index r = 0; r < y.rows(); ++r) {
                const Scalar v = y(r, 0);
                if (!(v >= 0 && v < static_cast<Scalar>(outputs()) && v == std::floor(v)))
                    fail_(where + "label " + std::to_string(static_cast<double>(v)) + " in row " + std::to_string(r) +
                          " is not a class index in [0, " + std::to_string(outputs()) + ")");
            }
        } else if (y.cols() != outputs()) {
            fail_(where + "y has " + std::to_string(y.cols()) + " columns but the output layer has " +
                  std::to_string(outputs()) + " units");
        }
    }

    void size_workspace_(Workspace& ws, Eigen::Index rows) const {
        ws.rows = rows;
        ws.z.resize(layers_.size());
        ws.a.resize(layers_.size());
        ws.dz.resize(layers_.size());
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const Eigen::Index units = layers_[l].weight.cols();
            ws.z[l].resize(rows, units);
            ws.a[l].resize(rows, units);
            ws.dz[l].resize(rows, units);
        }
    }

    // The buffers for `rows`: reused when that size was seen recently, else the least recently
    // used slot is resized (the only allocation train_batch does).
    Workspace& workspace_for_(Eigen::Index rows) {
        ++clock_;
        for (Workspace& w : workspaces_)
            if (w.rows == rows) {
                w.last_used = clock_;
                return w;
            }
        Workspace* slot = nullptr;
        if (workspaces_.size() < kMaxWorkspaces) {
            slot = &workspaces_.emplace_back();
        } else {
            slot = &*std::min_element(workspaces_.begin(), workspaces_.end(),
                                      [](const Workspace& a, const Workspace& b) { return a.last_used < b.last_used; });
        }
        size_workspace_(*slot, rows);
        slot->last_used = clock_;
        return *slot;
    }

    template <class DX>
    void forward_(const Eigen::MatrixBase<DX>& x, Workspace& ws) const {
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const Layer& layer = layers_[l];
            if (l == 0)
                ws.z[0].noalias() = x * layer.weight;
            else
                ws.z[l].noalias() = ws.a[l - 1] * layer.weight;
            ws.z[l].rowwise() += layer.bias;
            activate_(layer.activation, ws.z[l], ws.a[l]);
        }
    }

    static void activate_(Activation act, const Matrix& z, Matrix& a) {
        switch (act) {
            case Activation::Linear:
                a = z;
                return;
            case Activation::Relu:
                a = z.cwiseMax(Scalar(0));
                return;
            case Activation::Sigmoid:
                for (Eigen::Index i = 0; i < z.size(); ++i) a.data()[i] = sigmoid_(z.data()[i]);
                return;
            case Activation::Softmax:
                // Row-wise, shifted by the row maximum so exp never overflows.
                for (Eigen::Index r = 0; r < z.rows(); ++r) {
                    Scalar mx = z(r, 0);
                    for (Eigen::Index c = 1; c < z.cols(); ++c) mx = std::max(mx, z(r, c));
                    Scalar sum = 0;
                    for (Eigen::Index c = 0; c < z.cols(); ++c) {
                        a(r, c) = std::exp(z(r, c) - mx);
                        sum += a(r, c);
                    }
                    for (Eigen::Index c = 0; c < z.cols(); ++c) a(r, c) /= sum;
                }
                return;
        }
    }

    static Scalar sigmoid_(Scalar z) {
        // Two branches so exp never overflows for large |z|.
        if (z >= 0) return Scalar(1) / (Scalar(1) + std::exp(-z));
        const Scalar e = std::exp(z);
        return e / (Scalar(1) + e);
    }

    // g <- g * d activation / d z, i.e. from d loss / d a to d loss / d z, in place.
    static void backprop_activation_(Activation act, const Matrix& z, const Matrix& a, Matrix& g) {
        switch (act) {
            case Activation::Linear:
                return;
            case Activation::Relu:
                for (Eigen::Index i = 0; i < g.size(); ++i)
                    if (!(z.data()[i] > 0)) g.data()[i] = 0;
                return;
            case Activation::Sigmoid:
                for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] *= a.data()[i] * (Scalar(1) - a.data()[i]);
                return;
            case Activation::Softmax:
                // Jacobian-vector product per row: dz = s * (g - <g, s>).
                for (Eigen::Index r = 0; r < g.rows(); ++r) {
                    Scalar dot = 0;
                    for (Eigen::Index c = 0; c < g.cols(); ++c) dot += g(r, c) * a(r, c);
                    for (Eigen::Index c = 0; c < g.cols(); ++c) g(r, c) = a(r, c) * (g(r, c) - dot);
                }
                return;
        }
    }

    // The Keras loss formulas (keras/src/losses/losses.py with the numpy backend's ops), reduced
    // with "sum_over_batch_size": the mean over all samples (and over the outputs of each sample).
    template <class DT, class DP>
    double loss_value_(const Eigen::MatrixBase<DT>& y, const Eigen::MatrixBase<DP>& p) const {
        const Eigen::Index n = p.rows();
        if (n == 0) return 0.0;
        constexpr double eps = 1e-7;  // keras.backend.epsilon()
        double sum = 0;
        switch (options_.loss) {
            case Loss::BinaryCrossentropy:
                for (Eigen::Index c = 0; c < p.cols(); ++c)
                    for (Eigen::Index r = 0; r < n; ++r) {
                        const double q = std::clamp(static_cast<double>(p(r, c)), eps, 1.0 - eps);
                        const double t = static_cast<double>(y(r, c));
                        double bce = t * std::log(q);
                        bce += (1.0 - t) * std::log(1.0 - q);
                        sum -= bce;
                    }
                return sum / static_cast<double>(n * p.cols());
            case Loss::SparseCategoricalCrossentropy:
                for (Eigen::Index r = 0; r < n; ++r) {
                    // Keras renormalises each row, then clips, then takes -log of the label's entry.
                    double row_sum = 0;
                    for (Eigen::Index c = 0; c < p.cols(); ++c) row_sum += static_cast<double>(p(r, c));
                    const auto label = static_cast<Eigen::Index>(y(r, 0));
                    const double q = std::clamp(static_cast<double>(p(r, label)) / row_sum, eps, 1.0 - eps);
                    sum -= std::log(q);
                }
                return sum / static_cast<double>(n);
            case Loss::MeanSquaredError:
                for (Eigen::Index c = 0; c < p.cols(); ++c)
                    for (Eigen::Index r = 0; r < n; ++r) {
                        const double d = static_cast<double>(y(r, c)) - static_cast<double>(p(r, c));
                        sum += d * d;
                    }
                return sum / static_cast<double>(n * p.cols());
        }
        return 0.0;
    }

    // d loss / d z of the output layer, into ws.dz.back().
    template <class DY>
    void output_gradient_(const Eigen::MatrixBase<DY>& y, Workspace& ws) const {
        const Matrix& p = ws.a.back();
        Matrix& g = ws.dz.back();
        const auto n = static_cast<Scalar>(p.rows());
        const auto count = static_cast<Scalar>(p.rows() * p.cols());
        switch (options_.loss) {
            case Loss::BinaryCrossentropy:
                // Sigmoid and cross-entropy fused: d/dz = (p - y) / count. This is the exact
                // gradient of the unclipped loss (as TensorFlow's Keras, which computes BCE from
                // the sigmoid's logits), so saturated outputs still learn.
                g.noalias() = (p - y) / count;
                return;
            case Loss::SparseCategoricalCrossentropy:
                // Softmax and cross-entropy fused: d/dz = (p - onehot(y)) / n.
                g = p;
                for (Eigen::Index r = 0; r < p.rows(); ++r) g(r, static_cast<Eigen::Index>(y(r, 0))) -= Scalar(1);
                g /= n;
                return;
            case Loss::MeanSquaredError:
                g.noalias() = (p - y) * (Scalar(2) / count);
                backprop_activation_(layers_.back().activation, ws.z.back(), p, g);
                return;
        }
    }

    template <class DX, class DY>
    Workspace& gradients_(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) {
        check_scalar_<DX>();
        check_scalar_<DY>();
        check_x_(x, "train_batch");
        if (x.rows() == 0) fail_("train_batch: x has no rows; pass at least one sample");
        check_y_(y, x.rows(), "train_batch");
        Workspace& ws = workspace_for_(x.rows());
        forward_(x, ws);
        ws.loss = loss_value_(y, ws.a.back());
        output_gradient_(y, ws);
        for (std::size_t l = layers_.size(); l-- > 0;) {
            Layer& layer = layers_[l];
            if (l == 0)
                layer.grad_weight.noalias() = x.transpose() * ws.dz[0];
            else
                layer.grad_weight.noalias() = ws.a[l - 1].transpose() * ws.dz[l];
            layer.grad_bias = ws.dz[l].colwise().sum();
            if (l == 0) break;
            ws.dz[l - 1].noalias() = ws.dz[l] * layer.weight.transpose();
            backprop_activation_(layers_[l - 1].activation, ws.z[l - 1], ws.a[l - 1], ws.dz[l - 1]);
        }
        return ws;
    }

    // Data-parallel: replaces each gradient (a mean over this rank's `rows`) by the mean over every
    // rank's rows: sum(gradient * rows) / sum(rows), summed in double in one Communicator::sum.
    // The buffer is sized once, so a step allocates nothing here.
    void all_reduce_gradients_(Eigen::Index rows) {
        std::size_t n = 1;
        for (const Layer& layer : layers_)
            n += static_cast<std::size_t>(layer.grad_weight.size() + layer.grad_bias.size());
        reduce_buffer_.resize(n);
        const auto r = static_cast<double>(rows);
        std::size_t k = 0;
        auto pack = [&](const Scalar* g, Eigen::Index size) {
            for (Eigen::Index i = 0; i < size; ++i) reduce_buffer_[k++] = static_cast<double>(g[i]) * r;
        };
        for (const Layer& layer : layers_) {
            pack(layer.grad_weight.data(), layer.grad_weight.size());
            pack(layer.grad_bias.data(), layer.grad_bias.size());
        }
        reduce_buffer_[k] = r;
        gradient_comm_->sum(reduce_buffer_);
        const double total = reduce_buffer_[k];
        k = 0;
        auto unpack = [&](Scalar* g, Eigen::Index size) {
            for (Eigen::Index i = 0; i < size; ++i) g[i] = static_cast<Scalar>(reduce_buffer_[k++] / total);
        };
        for (Layer& layer : layers_) {
            unpack(layer.grad_weight.data(), layer.grad_weight.size());
            unpack(layer.grad_bias.data(), layer.grad_bias.size());
        }
    }

    // keras.optimizers.Adam.update_step, term for term and in the same order:
    //   alpha = lr * sqrt(1 - b2^t) / (1 - b1^t),  t = iterations + 1
    //   m += (g - m) * (1 - b1);  v += (g^2 - v) * (1 - b2);  p -= (m * alpha) / (sqrt(v) + eps)
    void adam_step_() {
        const auto t = static_cast<Scalar>(step_ + 1);
        const auto b1 = static_cast<Scalar>(options_.beta_1);
        const auto b2 = static_cast<Scalar>(options_.beta_2);
        const Scalar b1_power = std::pow(b1, t);
        const Scalar b2_power = std::pow(b2, t);
        const Scalar alpha =
            static_cast<Scalar>(learning_rate_) * std::sqrt(Scalar(1) - b2_power) / (Scalar(1) - b1_power);
        // Keras multiplies by the Python float (1 - beta), rounded once to the variable's dtype.
        const auto one_minus_b1 = static_cast<Scalar>(1.0 - options_.beta_1);
        const auto one_minus_b2 = static_cast<Scalar>(1.0 - options_.beta_2);
        const auto eps = static_cast<Scalar>(options_.epsilon);
        auto update = [&](Scalar* p, Scalar* m, Scalar* v, const Scalar* g, Eigen::Index size) {
            for (Eigen::Index i = 0; i < size; ++i) {
                m[i] += (g[i] - m[i]) * one_minus_b1;
                v[i] += (g[i] * g[i] - v[i]) * one_minus_b2;
                p[i] -= (m[i] * alpha) / (std::sqrt(v[i]) + eps);
            }
        };
        for (Layer& layer : layers_) {
            update(layer.weight.data(), layer.m_weight.data(), layer.v_weight.data(), layer.grad_weight.data(),
                   layer.weight.size());
            update(layer.bias.data(), layer.m_bias.data(), layer.v_bias.data(), layer.grad_bias.data(),
                   layer.bias.size());
        }
        ++step_;
    }

    MlpOptions options_;
    std::vector<Layer> layers_{};
    std::vector<Workspace> workspaces_{};
    std::uint64_t clock_ = 0;
    std::int64_t step_ = 0;
    double learning_rate_ = 0.001;
    traincb::Communicator* gradient_comm_ = nullptr;  // see set_gradient_communicator
    std::vector<double> reduce_buffer_{};             // the gradients and the row count, summed over the ranks
};

/// The MLP over double that the examples use.
using Mlp = BasicMlp<double>;

}  // namespace traincb_examples
