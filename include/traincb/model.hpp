#pragma once
/// @file model.hpp
/// The model contract. traincb drives any type through `model_traits<Model>`, whose default
/// forwards to members:
///
/// | required | signature |
/// |---|---|
/// | one optimisation step | `train_batch(x, y)` returning the batch loss (arithmetic), or an object with `.loss` and
/// `.outputs` (so training metrics need no second forward pass) | | forward pass | `predict(x)` returning an Eigen
/// matrix, rows = samples |
///
/// | optional (detected at compile time) | signature |
/// |---|---|
/// | loss for `val_loss` | `loss(y_true, y_pred)` returning the mean loss |
/// | learning rate (schedulers) | `learning_rate() const` and `set_learning_rate(double)` |
/// | state (checkpoints, restore_best_weights) | `visit_state(traincb::StateVisitor&)` (see state.hpp) |
///
/// A type you cannot change is adapted by specialising `traincb::model_traits<YourModel>` with the
/// same static functions (see README, "Adapting a model you cannot change").

#include <Eigen/Core>
#include <concepts>
#include <type_traits>
#include <utility>

#include "traincb/state.hpp"

namespace traincb::inline v0 {

/// The dense matrix type traincb hands to models: rows are samples, column-major.
template <class Scalar>
using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;

/// How traincb reaches a model. Specialise it for a type you cannot change; the primary template
/// forwards each function to the member of the same name, when that member exists.
template <class M>
struct model_traits {
    /// One optimisation step on a batch.
    template <class X, class Y>
    requires requires(M& m, const X& x, const Y& y) { m.train_batch(x, y); }
    static decltype(auto) train_batch(M& m, const X& x, const Y& y) { return m.train_batch(x, y); }
    /// Forward pass.
    template <class X>
    requires requires(M& m, const X& x) { m.predict(x); }
    static decltype(auto) predict(M& m, const X& x) { return m.predict(x); }
    /// Mean loss of predictions (optional).
    template <class Yt, class Yp>
    requires requires(M& m, const Yt& yt, const Yp& yp) { m.loss(yt, yp); }
    static double loss(M& m, const Yt& y_true, const Yp& y_pred) { return static_cast<double>(m.loss(y_true, y_pred)); }
    /// Current learning rate (optional).
    static double learning_rate(const M& m) requires requires(const M& cm) { cm.learning_rate(); }
    { return static_cast<double>(m.learning_rate()); }
    /// Sets the learning rate (optional).
    static void set_learning_rate(M& m, double lr) requires requires(M& mm, double v) { mm.set_learning_rate(v); }
    { m.set_learning_rate(lr); }
    /// Visits every tensor of the model's state (optional).
    static void visit_state(M& m, StateVisitor& v) requires requires(M& mm, StateVisitor& vv) { mm.visit_state(vv); }
    { m.visit_state(v); }
};

/// The loss and outputs of one train step, for models that return both. `Outputs` may be a
/// matrix or a const reference to the model's own buffer (no allocation per batch):
/// `return traincb::BatchResult<const Eigen::MatrixXd&>{loss, out_};`
template <class Outputs>
struct BatchResult {
    double loss = 0;    ///< mean loss of the batch
    Outputs outputs{};  ///< the batch's predictions (rows = samples)
};

/// `train_batch(x, y)` is callable on the model.
template <class M, class Scalar = double>
concept HasTrainBatch = requires(M& m, const Matrix<Scalar>& x, const Matrix<Scalar>& y) {
    model_traits<M>::train_batch(m, x, y);
};
/// `predict(x)` is callable on the model.
template <class M, class Scalar = double>
concept HasPredict = requires(M& m, const Matrix<Scalar>& x) {
    model_traits<M>::predict(m, x);
};
/// The model has a `loss(y_true, y_pred)`.
template <class M, class Scalar = double>
concept HasLoss = requires(M& m, const Matrix<Scalar>& y) {
    model_traits<M>::loss(m, y, y);
};
/// The model exposes its learning rate.
template <class M>
concept HasLearningRate = requires(M& m, const M& cm, double lr) {
    { model_traits<M>::learning_rate(cm) } -> std::convertible_to<double>;
    model_traits<M>::set_learning_rate(m, lr);
};
/// The model exposes its state tensors.
template <class M>
concept HasState = requires(M& m, StateVisitor& v) {
    model_traits<M>::visit_state(m, v);
};
/// What Trainer<M> requires.
template <class M, class Scalar = double>
concept Model = HasTrainBatch<M, Scalar> && HasPredict<M, Scalar>;

namespace detail {
template <class R>
concept LossAndOutputs = requires(const R& r) {
    { r.loss } -> std::convertible_to<double>;
    r.outputs;
};
template <class R>
[[nodiscard]] double batch_loss(const R& r) {
    if constexpr (std::is_arithmetic_v<std::remove_cvref_t<R>>) {
        return static_cast<double>(r);
    } else {
        static_assert(LossAndOutputs<R>,
                      "traincb: train_batch(x, y) must return the batch loss (a number) or an object with "
                      "members `loss` and `outputs` (e.g. traincb::BatchResult<const Eigen::MatrixXd&>)");
        return static_cast<double>(r.loss);
    }
}
}  // namespace detail

/// Type-erased handle to a model's optional capabilities, reachable from every callback context.
/// The default (no model attached) has no capability.
class ModelHandle {
public:
    ModelHandle() = default;
    ModelHandle(const ModelHandle&) = delete;
    ModelHandle& operator=(const ModelHandle&) = delete;
    virtual ~ModelHandle() = default;
    /// True when a model is attached at all.
    [[nodiscard]] virtual bool attached() const noexcept { return false; }
    /// True when the model exposes learning_rate()/set_learning_rate().
    [[nodiscard]] virtual bool has_learning_rate() const noexcept { return false; }
    /// The current learning rate. @throws LogicError when the model has none.
    [[nodiscard]] virtual double learning_rate() const { throw missing("learning_rate() const"); }
    /// Sets the learning rate. @throws LogicError when the model has none.
    virtual void set_learning_rate(double) { throw missing("set_learning_rate(double)"); }
    /// True when the model exposes visit_state().
    [[nodiscard]] virtual bool has_state() const noexcept { return false; }
    /// Visits the model's state. @throws LogicError when the model has none.
    virtual void visit_state(StateVisitor&) { throw missing("visit_state(traincb::StateVisitor&)"); }

protected:
    [[nodiscard]] LogicError missing(const char* member) const {
        return LogicError(
            std::string("traincb: model: ") +
            (attached() ? "the model has no " : "no model is attached (CallbackList::set_model), so no ") + member +
            "; add that member or specialise traincb::model_traits for the model type");
    }
};

namespace detail {
/// The ModelHandle of a concrete model type: each capability the type has is forwarded.
template <class M>
class ModelHandleFor final : public ModelHandle {
public:
    explicit ModelHandleFor(M& m) : m_(&m) {}
    [[nodiscard]] bool attached() const noexcept override { return true; }
    [[nodiscard]] bool has_learning_rate() const noexcept override { return HasLearningRate<M>; }
    [[nodiscard]] double learning_rate() const override {
        if constexpr (HasLearningRate<M>)
            return model_traits<M>::learning_rate(*m_);
        else
            throw missing("learning_rate() const");
    }
    void set_learning_rate(double lr) override {
        if constexpr (HasLearningRate<M>)
            model_traits<M>::set_learning_rate(*m_, lr);
        else
            throw missing("set_learning_rate(double)");
    }
    [[nodiscard]] bool has_state() const noexcept override { return HasState<M>; }
    void visit_state(StateVisitor& v) override {
        if constexpr (HasState<M>)
            model_traits<M>::visit_state(*m_, v);
        else
            throw missing("visit_state(traincb::StateVisitor&)");
    }

private:
    M* m_;
};
}  // namespace detail

}  // namespace traincb::inline v0
