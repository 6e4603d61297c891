#pragma once
/// @file metric.hpp
/// The interface of a streaming metric, metrics::Metric, on its own: what Trainer and the
/// callbacks need of a metric object, without the metric kernels of metrics.hpp (which defines
/// every built-in metric and includes this header). Its state functions take nlohmann::json by
/// reference, so this header needs only nlohmann/json_fwd.hpp.

#include <Eigen/Core>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "traincb/direction.hpp"
#include "traincb/errors.hpp"

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
};

}  // namespace traincb::inline v0::metrics
