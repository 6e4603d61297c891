#pragma once
/// @file torch.hpp
/// traincb with LibTorch (PyTorch's C++ frontend): the only traincb header that includes
/// <torch/torch.h> (the umbrella header does not include it, and the core keeps no LibTorch
/// symbol). Link the CMake target traincb::torch. Two ways in:
///
///     // 1. Trainer drives a torch::nn module: TorchModel owns it, its optimizer and the loss.
///     traincb::TorchModel<torch::nn::Sequential, torch::optim::Adam> model(
///         net, torch::optim::AdamOptions(1e-3),
///         [](const torch::Tensor& out, const torch::Tensor& y) {
///             return torch::nn::functional::cross_entropy(out, y.squeeze(1).to(torch::kLong));
///         });
///     traincb::Trainer(model).fit(x, y, options, early_stopping, checkpoint, logger);
///
///     // 2. A hand-written torch loop feeds a CallbackList: TorchState exposes the module's and
///     // the optimizer's state and learning rate to the callbacks.
///     traincb::TorchState state(net, optimizer);
///     callbacks.set_model(state);
///     metric.update(traincb::as_eigen(labels), traincb::as_eigen(probabilities));
///
/// The state (checkpoints, restore_best_weights, resume) covers the module's parameters and
/// buffers (weights), the optimizer's per-parameter state and each param group's learning rate,
/// and the default CPU generator (training state). See docs/libtorch.md.

#include <torch/torch.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"
#include "traincb/model.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0 {

namespace detail {

template <class>
inline constexpr bool torch_dependent_false = false;

/// The traincb DType of a tensor. @throws InvalidArgument for a dtype traincb does not store.
[[nodiscard]] inline DType torch_dtype(const at::Tensor& t, std::string_view name) {
    switch (t.scalar_type()) {
        case at::kFloat:
            return DType::F32;
        case at::kDouble:
            return DType::F64;
        case at::kLong:
            return DType::I64;
        case at::kInt:
            return DType::I32;
        case at::kByte:
            return DType::U8;
        case at::kBool:
            return DType::Bool;
        case at::kHalf:
            return DType::F16;
        case at::kBFloat16:
            return DType::BF16;
        default:
            throw InvalidArgument(cat("traincb: torch state: tensor '", name, "' has dtype ",
                                      std::string(c10::toString(t.scalar_type())),
                                      ", which traincb does not store (float, double, half, bfloat16, int64, int32, "
                                      "uint8, bool); convert it with .to(...) in the module"));
    }
}

/// Visits one tensor with its own shape and dtype: in place when it is a contiguous CPU tensor,
/// else through a contiguous CPU copy that is written back after the visit.
inline void visit_torch_tensor(StateVisitor& v, const std::string& name, at::Tensor& t, StateKind kind) {
    if (!t.defined())
        throw LogicError(cat("traincb: torch state: tensor '", name, "' is undefined; it cannot be saved"));
    const DType dtype = torch_dtype(t, name);
    const at::IntArrayRef sizes = t.sizes();
    const std::span<const std::int64_t> shape(sizes.data(), sizes.size());
    if (t.device().is_cpu() && t.is_contiguous()) {
        visit(v, name, t.data_ptr(), dtype, shape, kind);
        return;
    }
    const torch::NoGradGuard no_grad;
    at::Tensor staged = t.to(at::kCPU).contiguous();  // a copy: t is not a contiguous CPU tensor
    visit(v, name, staged.data_ptr(), dtype, shape, kind);
    t.copy_(staged);
}

/// The key of a parameter in Optimizer::state(): the TensorImpl address as a string in LibTorch
/// 1.13, the address itself in later releases.
template <class Optimizer>
[[nodiscard]] auto torch_state_key(const at::Tensor& p) {
    using Map = std::remove_cvref_t<decltype(std::declval<Optimizer&>().state())>;
    using Key = typename Map::key_type;
    if constexpr (std::is_same_v<Key, std::string>)
        return c10::guts::to_string(p.unsafeGetTensorImpl());
    else
        return static_cast<Key>(p.unsafeGetTensorImpl());
}

/// The module's parameter names by tensor, so that optimizer state is named after its parameter.
class TorchParamNames {
public:
    explicit TorchParamNames(const torch::nn::Module& m) {
        for (const auto& item : m.named_parameters(/*recurse=*/true))
            names_.emplace(item.value().unsafeGetTensorImpl(), item.key());
    }
    /// The module's name of `p`, or "group<g>.param<i>" for a parameter the module does not own.
    [[nodiscard]] std::string of(const at::Tensor& p, std::size_t group, std::size_t index) const {
        const auto it = names_.find(p.unsafeGetTensorImpl());
        if (it != names_.end()) return it->second;
        return cat("group", std::to_string(group), ".param", std::to_string(index));
    }

private:
    std::unordered_map<const c10::TensorImpl*, std::string> names_{};
};

/// Adam and AdamW: step, exp_avg, exp_avg_sq and (amsgrad) max_exp_avg_sq per parameter. The
/// entries Optimizer::step() would create lazily are created here, as it would (step 0, zeros), so
/// every visit sees the same set of tensors before and after the first step.
template <class ParamState, class Options, class Optimizer>
void visit_adam_like_state(Optimizer& opt, const TorchParamNames& names, StateVisitor& v) {
    auto& state = opt.state();
    for (std::size_t g = 0; g < opt.param_groups().size(); ++g) {
        auto& group = opt.param_groups()[g];
        const bool amsgrad = static_cast<const Options&>(group.options()).amsgrad();
        for (std::size_t i = 0; i < group.params().size(); ++i) {
            const at::Tensor& p = group.params()[i];
            const auto key = torch_state_key<Optimizer>(p);
            auto it = state.find(key);
            if (it == state.end()) {
                auto s = std::make_unique<ParamState>();
                s->step(0);
                s->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
                s->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
                if (amsgrad) s->max_exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
                state[key] = std::move(s);
                it = state.find(key);
            }
            auto& s = static_cast<ParamState&>(*it->second);
            const std::string base = cat("optimizer.", names.of(p, g, i), ".");
            visit_training_state(v, base + "step", s.step());
            visit_torch_tensor(v, base + "exp_avg", s.exp_avg(), StateKind::Training);
            visit_torch_tensor(v, base + "exp_avg_sq", s.exp_avg_sq(), StateKind::Training);
            if (amsgrad) {
                if (!s.max_exp_avg_sq().defined()) s.max_exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
                visit_torch_tensor(v, base + "max_exp_avg_sq", s.max_exp_avg_sq(), StateKind::Training);
            }
        }
    }
}

/// SGD: with momentum, each parameter's momentum_buffer. SGD::step() creates it from the first
/// gradient (a clone, not a zero buffer updated), so its existence is state too: a missing buffer
/// is visited as zeros with momentum_buffer_set = 0, and loading a 0 removes it again.
template <class Optimizer>
void visit_sgd_state(Optimizer& opt, const TorchParamNames& names, StateVisitor& v) {
    auto& state = opt.state();
    for (std::size_t g = 0; g < opt.param_groups().size(); ++g) {
        auto& group = opt.param_groups()[g];
        if (static_cast<const torch::optim::SGDOptions&>(group.options()).momentum() == 0) continue;
        for (std::size_t i = 0; i < group.params().size(); ++i) {
            const at::Tensor& p = group.params()[i];
            const auto key = torch_state_key<Optimizer>(p);
            const auto it = state.find(key);
            const bool had = it != state.end();
            at::Tensor buffer = had ? static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer()
                                    : torch::zeros_like(p, at::MemoryFormat::Preserve);
            std::uint8_t set = had ? 1 : 0;
            const std::string base = cat("optimizer.", names.of(p, g, i), ".");
            visit_torch_tensor(v, base + "momentum_buffer", buffer, StateKind::Training);
            visit_training_state(v, base + "momentum_buffer_set", set);
            if (set != 0 && !had) {
                auto s = std::make_unique<torch::optim::SGDParamState>();
                s->momentum_buffer(buffer);
                state[key] = std::move(s);
            } else if (set == 0 && had) {
                state.erase(key);
            }
        }
    }
}

}  // namespace detail

/// How TorchModel and TorchState save an optimizer's state. Specialised for torch::optim::Adam,
/// AdamW and SGD; specialise it for another optimizer with `options_type` (its options class, with
/// which TorchModel constructs it) and `static void visit_state(Optimizer&, const
/// detail::TorchParamNames&, StateVisitor&)` visiting every per-parameter state tensor.
template <class Optimizer>
struct torch_optimizer_traits {
    static_assert(detail::torch_dependent_false<Optimizer>,
                  "traincb: TorchModel/TorchState: this optimizer is not supported (the compiler names it in "
                  "this error's instantiation context): its per-parameter state would not be saved, so "
                  "a resumed run would differ. Supported: torch::optim::Adam, torch::optim::AdamW, "
                  "torch::optim::SGD; for another, specialise traincb::torch_optimizer_traits (see traincb/torch.hpp)");
};

/// torch::optim::Adam: step, exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq.
template <>
struct torch_optimizer_traits<torch::optim::Adam> {
    using options_type = torch::optim::AdamOptions;  ///< what TorchModel constructs it with
    /// Visits every parameter's state (created eagerly, as step() would).
    static void visit_state(torch::optim::Adam& o, const detail::TorchParamNames& n, StateVisitor& v) {
        detail::visit_adam_like_state<torch::optim::AdamParamState, torch::optim::AdamOptions>(o, n, v);
    }
};

/// torch::optim::AdamW: as Adam.
template <>
struct torch_optimizer_traits<torch::optim::AdamW> {
    using options_type = torch::optim::AdamWOptions;  ///< what TorchModel constructs it with
    /// Visits every parameter's state (created eagerly, as step() would).
    static void visit_state(torch::optim::AdamW& o, const detail::TorchParamNames& n, StateVisitor& v) {
        detail::visit_adam_like_state<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(o, n, v);
    }
};

/// torch::optim::SGD: with momentum, the momentum buffers (and whether each exists yet).
template <>
struct torch_optimizer_traits<torch::optim::SGD> {
    using options_type = torch::optim::SGDOptions;  ///< what TorchModel constructs it with
    /// Visits every parameter's momentum buffer.
    static void visit_state(torch::optim::SGD& o, const detail::TorchParamNames& n, StateVisitor& v) {
        detail::visit_sgd_state(o, n, v);
    }
};

namespace detail {

/// The learning rate of param group 0.
template <class Optimizer>
[[nodiscard]] double torch_learning_rate(const Optimizer& opt) {
    if (opt.param_groups().empty())
        throw LogicError("traincb: torch: the optimizer has no param group, so no learning rate");
    return opt.param_groups().front().options().get_lr();
}

/// Sets the learning rate of every param group. @throws InvalidArgument unless lr is finite and > 0
template <class Optimizer>
void torch_set_learning_rate(Optimizer& opt, double lr) {
    if (!(lr > 0) || !std::isfinite(lr))
        throw InvalidArgument(cat("traincb: torch: learning rate ", std::to_string(lr),
                                  " is not a positive finite number; pass one > 0"));
    for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

/// The whole state of a module and its optimizer, in a fixed order: parameters and buffers under
/// their module names (weights), then per param group `optimizer.group<g>.lr`, the optimizer's
/// per-parameter state `optimizer.<param>.<entry>` and the default CPU generator `rng.cpu`
/// (training state).
template <class Optimizer>
void visit_torch_state(torch::nn::Module& module, Optimizer& opt, StateVisitor& v) {
    for (auto& item : module.named_parameters(/*recurse=*/true))
        visit_torch_tensor(v, item.key(), item.value(), StateKind::Weight);
    for (auto& item : module.named_buffers(/*recurse=*/true))
        visit_torch_tensor(v, item.key(), item.value(), StateKind::Weight);
    for (std::size_t g = 0; g < opt.param_groups().size(); ++g) {
        auto& options = opt.param_groups()[g].options();
        double lr = options.get_lr();  // get, visit, set back: a loading visitor changes it
        visit_training_state(v, cat("optimizer.group", std::to_string(g), ".lr"), lr);
        options.set_lr(lr);
    }
    torch_optimizer_traits<Optimizer>::visit_state(opt, TorchParamNames(module), v);
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    const std::lock_guard<std::mutex> lock(gen.mutex());
    at::Tensor rng = gen.get_state();
    visit_torch_tensor(v, "rng.cpu", rng, StateKind::Training);
    gen.set_state(rng);
}

/// The torch dtype of an Eigen scalar.
template <class Scalar>
[[nodiscard]] constexpr at::ScalarType torch_scalar_type() {
    if constexpr (std::is_same_v<Scalar, float>)
        return at::kFloat;
    else
        return at::kDouble;
}

/// A tensor view [rows, cols] of a column-major Eigen matrix (no copy; strides {1, rows}).
template <class Scalar>
[[nodiscard]] at::Tensor torch_view(const Matrix<Scalar>& m) {
    return torch::from_blob(const_cast<Scalar*>(m.data()), {m.rows(), m.cols()},
                            {1, std::max<Eigen::Index>(m.rows(), 1)},
                            torch::TensorOptions().dtype(torch_scalar_type<Scalar>()));
}

/// Copies a [n], [n, k] or [n, ...] tensor into a column-major Eigen matrix of n rows.
template <class Scalar>
void torch_to_eigen(const at::Tensor& t, Matrix<Scalar>& out) {
    at::Tensor c = t.detach();
    if (c.scalar_type() != torch_scalar_type<Scalar>()) c = c.to(torch_scalar_type<Scalar>());
    c = c.contiguous();
    const std::int64_t n = c.dim() == 0 ? 1 : c.size(0);
    const std::int64_t k = n == 0 ? 0 : c.numel() / n;
    out.resize(n, k);
    out = Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(c.data_ptr<Scalar>(),
                                                                                                   n, k);
}

}  // namespace detail

/// A zero-copy Eigen view of a contiguous CPU tensor of rank 1 ([n], viewed as n x 1) or 2
/// ([n, k], row-major as torch stores it), whose dtype is `Scalar` (float by default, or double).
/// The view aliases the tensor's memory: keep the tensor alive while it is used. Every traincb
/// metric takes it (Metric::update binds it to its Eigen::Ref; a row-major view with k > 1 columns
/// is copied there into a temporary, one allocation per call).
/// @throws InvalidArgument when the tensor is undefined, not on the CPU, not contiguous, of
/// another dtype, or of rank 0 or above 2 (the message says which and how to convert it)
template <class Scalar = float>
[[nodiscard]] Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> as_eigen(
    const at::Tensor& t) {
    static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                  "traincb: as_eigen<Scalar>: Scalar must be float or double");
    using detail::cat;
    const char* want = std::is_same_v<Scalar, float> ? "float (torch::kFloat32)" : "double (torch::kFloat64)";
    if (!t.defined()) throw InvalidArgument("traincb: as_eigen: the tensor is undefined; pass a tensor with data");
    if (!t.device().is_cpu())
        throw InvalidArgument(cat("traincb: as_eigen: the tensor is on ", t.device().str(),
                                  "; an Eigen view needs CPU memory: pass tensor.cpu()"));
    if (t.scalar_type() != detail::torch_scalar_type<Scalar>())
        throw InvalidArgument(cat("traincb: as_eigen<", std::is_same_v<Scalar, float> ? "float" : "double",
                                  ">: the tensor's dtype is ", std::string(c10::toString(t.scalar_type())), ", not ",
                                  want, "; convert it with tensor.to(",
                                  std::is_same_v<Scalar, float> ? "torch::kFloat32" : "torch::kFloat64",
                                  ") or call as_eigen<", std::is_same_v<Scalar, float> ? "double" : "float", ">"));
    if (t.dim() < 1 || t.dim() > 2)
        throw InvalidArgument(cat("traincb: as_eigen: the tensor has rank ", std::to_string(t.dim()), " (shape ",
                                  detail::shape_string(t.sizes()),
                                  "); an Eigen view is of rank 1 [n] or 2 [n, k]: reshape it first, e.g. "
                                  "tensor.reshape({n, -1})"));
    if (!t.is_contiguous())
        throw InvalidArgument(cat("traincb: as_eigen: the tensor of shape ", detail::shape_string(t.sizes()),
                                  " is not contiguous (a transpose or a strided slice); pass tensor.contiguous()"));
    const Eigen::Index rows = t.size(0);
    const Eigen::Index cols = t.dim() == 2 ? t.size(1) : 1;
    return {t.data_ptr<Scalar>(), rows, cols};
}

/// The loss of a TorchModel: (module output, target) -> a scalar tensor. The target is the
/// batch's y as a [n, k] tensor of the batch's dtype (class indices arrive as floating-point
/// numbers: convert them, e.g. `y.squeeze(1).to(torch::kLong)` for cross_entropy).
using TorchLoss = std::function<at::Tensor(const at::Tensor& output, const at::Tensor& target)>;

/// A torch::nn module, its optimizer and a loss as a traincb model, for Trainer (float or double
/// batches; a batch of another dtype than the module's parameters is converted on the way in and
/// out). `Module` is a module holder (torch::nn::Sequential, or a TORCH_MODULE of your own) whose
/// forward takes one tensor; `Optimizer` is torch::optim::Adam, AdamW or SGD (another is a compile
/// error naming it). The optimizer is built over the module's parameters, so its state is named
/// after them.
///
/// - train_batch: train mode, zero_grad, forward, loss, backward, step; the batch's outputs feed the
///   training metrics without a second forward pass.
/// - predict: eval mode, no gradient; the module's outputs (logits, if the module ends there).
/// - loss: the loss function on (predictions, targets), no gradient: `val_loss`.
/// - learning_rate / set_learning_rate: param group 0 / every param group.
/// - visit_state: parameters and buffers (weights), optimizer state, learning rates and the CPU
///   generator (training state); see docs/libtorch.md.
///
/// The input batch reaches the module as a contiguous row-major [n, d] tensor (one copy of
/// traincb's column-major batch, as a torch loop's index_select makes one); a module that needs
/// another shape (a convolution's [n, c, h, w]) calls `x.view(...)` in its forward.
template <class Module, class Optimizer>
class TorchModel {
    using Traits = torch_optimizer_traits<Optimizer>;

public:
    /// The optimizer's options class (torch::optim::AdamOptions for Adam, ...).
    using OptimizerOptions = typename Traits::options_type;

    /// Takes the module, builds `Optimizer(module->parameters(), options)` and keeps the loss.
    /// @throws InvalidArgument when the module is empty or has no parameters, or `loss` is empty
    /// (train_batch and loss throw InvalidArgument when the loss function returns anything but one
    /// number)
    TorchModel(Module module, const OptimizerOptions& options, TorchLoss loss)
        : module_(std::move(module)), optimizer_(checked_parameters(module_), options), loss_(std::move(loss)) {
        if (!loss_) throw InvalidArgument("traincb: TorchModel: the loss function is empty; pass a callable");
        param_type_ = module_->parameters().front().scalar_type();
    }
    TorchModel(const TorchModel&) = delete;
    TorchModel& operator=(const TorchModel&) = delete;

    /// The module (a shared holder).
    [[nodiscard]] Module& module() noexcept { return module_; }
    /// The optimizer.
    [[nodiscard]] Optimizer& optimizer() noexcept { return optimizer_; }

    /// One optimisation step on a float batch: returns the mean loss and the batch's outputs.
    BatchResult<const Matrix<float>&> train_batch(const Matrix<float>& x, const Matrix<float>& y) {
        return {step(x, y, out_f_), out_f_};
    }
    /// One optimisation step on a double batch: returns the mean loss and the batch's outputs.
    BatchResult<const Matrix<double>&> train_batch(const Matrix<double>& x, const Matrix<double>& y) {
        return {step(x, y, out_d_), out_d_};
    }
    /// The module's outputs for `x` (eval mode, no gradient), rows = samples.
    [[nodiscard]] Matrix<float> predict(const Matrix<float>& x) { return forward_eval(x); }
    /// The module's outputs for `x` (eval mode, no gradient), rows = samples.
    [[nodiscard]] Matrix<double> predict(const Matrix<double>& x) { return forward_eval(x); }
    /// The loss of predictions against targets (no gradient).
    [[nodiscard]] double loss(const Matrix<float>& y_true, const Matrix<float>& y_pred) {
        return eval_loss(y_true, y_pred);
    }
    /// The loss of predictions against targets (no gradient).
    [[nodiscard]] double loss(const Matrix<double>& y_true, const Matrix<double>& y_pred) {
        return eval_loss(y_true, y_pred);
    }

    /// The learning rate of param group 0.
    [[nodiscard]] double learning_rate() const { return detail::torch_learning_rate(optimizer_); }
    /// Sets the learning rate of every param group. @throws InvalidArgument unless lr > 0 and finite
    void set_learning_rate(double lr) { detail::torch_set_learning_rate(optimizer_, lr); }
    /// Visits the module's, the optimizer's and the CPU generator's state (see the class comment).
    void visit_state(StateVisitor& v) { detail::visit_torch_state(*module_, optimizer_, v); }

private:
    static std::vector<at::Tensor> checked_parameters(Module& m) {
        if (m.is_empty())
            throw InvalidArgument(
                "traincb: TorchModel: the module holder is empty (nullptr); pass a constructed module");
        std::vector<at::Tensor> ps = m->parameters();
        if (ps.empty())
            throw InvalidArgument("traincb: TorchModel: the module has no parameters, so there is nothing to train");
        return ps;
    }

    // The batch as a contiguous row-major [n, d] tensor of the parameters' dtype: one copy of the
    // batch (as a torch loop's index_select makes), after which every module takes it and
    // matrix products run on contiguous operands (measured: a strided {1, n} view made an
    // epoch of example_torch's model about 10% slower, in BLAS).
    template <class Scalar>
    at::Tensor input(const Matrix<Scalar>& x) const {
        if (param_type_ == detail::torch_scalar_type<Scalar>()) {
            at::Tensor t = at::empty({x.rows(), x.cols()}, at::TensorOptions().dtype(param_type_));
            Eigen::Map<Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(t.data_ptr<Scalar>(),
                                                                                               x.rows(), x.cols()) = x;
            return t;
        }
        return detail::torch_view(x).to(param_type_).contiguous();
    }

    template <class Scalar>
    double step(const Matrix<Scalar>& x, const Matrix<Scalar>& y, Matrix<Scalar>& out) {
        if (!module_->is_training()) module_->train();
        optimizer_.zero_grad();
        const at::Tensor output = module_->forward(input(x));
        const at::Tensor target = detail::torch_view(y);
        at::Tensor l = loss_(output, target);
        check_loss(l);
        l.backward();
        optimizer_.step();
        detail::torch_to_eigen(output, out);
        return l.item<double>();
    }

    template <class Scalar>
    Matrix<Scalar> forward_eval(const Matrix<Scalar>& x) {
        if (module_->is_training()) module_->eval();
        const torch::NoGradGuard no_grad;
        Matrix<Scalar> out;
        detail::torch_to_eigen(module_->forward(input(x)), out);
        return out;
    }

    template <class Scalar>
    double eval_loss(const Matrix<Scalar>& y_true, const Matrix<Scalar>& y_pred) {
        const torch::NoGradGuard no_grad;
        const at::Tensor l = loss_(detail::torch_view(y_pred), detail::torch_view(y_true));
        check_loss(l);
        return l.item<double>();
    }

    // The loss function must give one number: the batch's mean loss.
    static void check_loss(const at::Tensor& l) {
        if (!l.defined())
            throw InvalidArgument(
                "traincb: TorchModel: the loss function returned an undefined tensor; return the "
                "batch's mean loss as a scalar tensor");
        if (l.numel() != 1)
            throw InvalidArgument(detail::cat("traincb: TorchModel: the loss function returned a tensor of shape ",
                                              detail::shape_string(l.sizes()),
                                              "; return the batch's mean loss as one number (e.g. reduce it with "
                                              ".mean())"));
    }

    Module module_;
    Optimizer optimizer_;
    TorchLoss loss_;
    at::ScalarType param_type_ = at::kFloat;
    Matrix<float> out_f_{};
    Matrix<double> out_d_{};
};

/// The state and learning rate of a module and its optimizer, for a hand-written torch loop:
/// `callbacks.set_model(state)` lets EarlyStopping's restore_best_weights, ModelCheckpoint, resume
/// and the learning-rate callbacks work on them. It refers to both (keep them alive) and saves
/// what TorchModel saves (see docs/libtorch.md).
///
///     traincb::TorchState state(net, optimizer);   // net: a module holder or a torch::nn::Module
template <class Optimizer>
class TorchState {
    static_assert(sizeof(torch_optimizer_traits<Optimizer>) > 0);  // unsupported: the traits name it

public:
    /// Refers to `module` (a module holder, e.g. torch::nn::Sequential, or a torch::nn::Module)
    /// and `optimizer`.
    /// @throws InvalidArgument when the module holder is empty
    template <class ModuleOrHolder>
    TorchState(ModuleOrHolder& module, Optimizer& optimizer) : optimizer_(&optimizer) {
        if constexpr (std::is_base_of_v<torch::nn::Module, ModuleOrHolder>) {
            module_ = &module;
        } else {
            if (module.is_empty())
                throw InvalidArgument(
                    "traincb: TorchState: the module holder is empty (nullptr); pass a constructed module");
            module_ = module.get();
        }
    }

    /// The learning rate of param group 0.
    [[nodiscard]] double learning_rate() const { return detail::torch_learning_rate(*optimizer_); }
    /// Sets the learning rate of every param group. @throws InvalidArgument unless lr > 0 and finite
    void set_learning_rate(double lr) { detail::torch_set_learning_rate(*optimizer_, lr); }
    /// Visits the module's, the optimizer's and the CPU generator's state.
    void visit_state(StateVisitor& v) { detail::visit_torch_state(*module_, *optimizer_, v); }

private:
    torch::nn::Module* module_ = nullptr;
    Optimizer* optimizer_;
};

}  // namespace traincb::inline v0
