#pragma once
/// @file metric.hpp
/// The interface of a streaming metric, metrics::Metric, on its own: what Trainer and the
/// callbacks need of a metric object, without the metric kernels of metrics.hpp (which defines
/// every built-in metric and includes this header). Its state functions take nlohmann::json by
/// reference and bulk state as a StateDict (state.hpp), so this header needs only
/// nlohmann/json_fwd.hpp of the JSON library.

#include <Eigen/Core>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "traincb/direction.hpp"
#include "traincb/errors.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0::metrics {

/// A streaming metric: accumulates batches with update() and reports result(); the Trainer uses it
/// through this interface.
class Metric {
public:
    virtual ~Metric() = default;
    /// The log key (e.g. "accuracy"); configurable per object.
    [[nodiscard]] virtual std::string name() const = 0;
    /// Whether the metric improves going down or up (traincb/direction.hpp: traincb::Direction).
    [[nodiscard]] virtual Direction direction() const noexcept = 0;
    /// Accumulates one batch (rows are samples). @throws InvalidArgument for bad shapes or values
    virtual void update(const Eigen::Ref<const Eigen::MatrixXd>& y_true,
                        const Eigen::Ref<const Eigen::MatrixXd>& y_pred) = 0;
    /// Accumulates one batch of floats. @throws InvalidArgument for bad shapes or values
    virtual void update(const Eigen::Ref<const Eigen::MatrixXf>& y_true,
                        const Eigen::Ref<const Eigen::MatrixXf>& y_pred) = 0;
    /// The metric over everything accumulated since construction or reset(); NaN before any data.
    [[nodiscard]] virtual double result() const = 0;
    /// Forgets all accumulated data.
    virtual void reset() = 0;
    /// Adds another object's accumulated state (same concrete type and options) into this one. @throws InvalidArgument
    /// otherwise.
    virtual void merge(const Metric& other) = 0;
    /// A copy with the same options and state.
    [[nodiscard]] virtual std::unique_ptr<Metric> clone() const = 0;
    /// Makes this object an exact copy of `other`, an object of the same class (normally a clone of
    /// this one: same options), accumulated state included, reusing this object's storage: how
    /// Trainer snapshots the training metrics for a rollback without allocating once the storage
    /// is sized. Returns false and changes nothing when the class does not implement it (the
    /// default; Trainer then falls back to save_state_with_tensors and load_state_with_tensors).
    /// @throws InvalidArgument when `other` is of another class
    virtual bool copy_state_from(const Metric& other) {
        (void)other;
        return false;
    }
    /// Writes the accumulated state into `state` (a JSON object: kind, version, the options the
    /// state depends on, the accumulators; doubles as round-trip strings), so that load_state
    /// continues bit-exactly. Returns false and writes nothing when the class keeps no saveable
    /// state: the default, so a user-defined metric that does not override it still works, and a
    /// run resumed in the middle of an epoch warns that its value covers the later batches only.
    /// @throws nothing of its own (std::bad_alloc)
    virtual bool save_state(nlohmann::json& state) const {
        (void)state;
        return false;
    }
    /// Replaces the accumulated state with one that save_state of the same class and options
    /// wrote (all or nothing: on a throw the state is unchanged).
    /// @throws InvalidArgument when the state is of another class or other options (naming the
    /// option and both values), or when the class does not override it (the default);
    /// FormatError when the state is malformed (a missing field, a wrong type, a wrong size) or of
    /// an unknown version
    virtual void load_state(const nlohmann::json& state) {
        (void)state;
        throw InvalidArgument("traincb: metrics::Metric::load_state: metric '" + name() +
                              "' cannot restore a saved state; override save_state and load_state in its class (see "
                              "docs/checkpoints.md), or let it restart");
    }
    /// Writes the accumulated state as a JSON object (small fields) plus named tensors (bulk
    /// data, e.g. RocAuc's scores: a checkpoint stores tensors as raw bytes, outside the
    /// safetensors header and its 100 MB limit). This is what checkpoints call. The default calls
    /// save_state(state) and adds no tensor, so a metric that implements only the JSON form is
    /// saved as before. Returns false (and writes nothing) when the class keeps no saveable state.
    /// @throws nothing of its own (std::bad_alloc)
    virtual bool save_state_with_tensors(nlohmann::json& state, StateDict& tensors) const {
        (void)tensors;
        return save_state(state);
    }
    /// Replaces the accumulated state with what save_state_with_tensors wrote (all or nothing).
    /// The default calls load_state(state) and ignores `tensors`. A built-in metric also accepts
    /// the pure JSON form of save_state here (checkpoints written before its bulk data moved to
    /// tensors).
    /// @throws as load_state; FormatError also when a tensor the state names is missing or has
    /// another dtype or size
    virtual void load_state_with_tensors(const nlohmann::json& state, const StateDict& tensors) {
        (void)tensors;
        load_state(state);
    }
};

}  // namespace traincb::inline v0::metrics
