#pragma once
/// @file detail/rollback.hpp
/// The Trainer's rollback snapshot (Context::request_snapshot / request_rollback): everything a
/// batch changes, copied into buffers that are reused from one snapshot to the next, so that a
/// snapshot per batch allocates nothing once they are sized.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "traincb/callback.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/metric.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0::detail {

/// The training state before one batch: the model's state tensors (all of them: weights and
/// optimizer state), its learning rate, the running loss, the training metrics' states, the global
/// step, and the position (epoch, batch) it was taken at.
class RollbackSnapshot {
public:
    /// True when a snapshot was taken in `epoch` (a rollback never crosses an epoch's end).
    [[nodiscard]] bool valid_for(int epoch) const noexcept { return taken_ && epoch_ == epoch; }
    /// The batch it was taken before (0-based within its epoch).
    [[nodiscard]] std::int64_t batch() const noexcept { return batch_; }
    /// The global step when it was taken.
    [[nodiscard]] std::int64_t global_step() const noexcept { return global_step_; }
    /// Forgets the snapshot (keeps every buffer).
    void reset() noexcept { taken_ = false; }

    /// Copies the state before batch `batch` of `epoch`. `visit_model(StateVisitor&)` visits the
    /// model's state; `lr` is its learning rate, when it has one.
    template <class VisitFn>
    void take(VisitFn&& visit_model, std::optional<double> lr, const RunState& rs,
              const std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms, std::int64_t global_step, int epoch,
              std::int64_t batch) {
        model_.take(visit_model);
        lr_ = lr;
        loss_sum_ = rs.loss_sum;
        loss_count_ = rs.loss_count;
        take_metrics(ms);
        global_step_ = global_step;
        epoch_ = epoch;
        batch_ = batch;
        taken_ = true;
    }

    /// Writes the snapshot back: the model's state (and learning rate through `set_lr`, when it
    /// has one), the running loss into `rs`, and the training metrics' states.
    /// @throws LogicError when none was taken or the model changed shape since
    template <class VisitFn, class SetLr>
    void restore(VisitFn&& visit_model, SetLr&& set_lr, RunState& rs,
                 const std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms) const {
        model_.restore(visit_model);
        if (lr_) set_lr(*lr_);
        rs.loss_sum = loss_sum_;
        rs.loss_count = loss_count_;
        for (std::size_t i = 0; i < ms.size(); ++i) {
            const MetricCopy& c = metrics_[i];
            ::traincb::metrics::Metric& m = *ms[i];
            if (c.how == How::Copy) {
                (void)m.copy_state_from(*c.copy);
            } else if (c.how == How::Json) {
                m.load_state_with_tensors(c.json, c.tensors);
            } else {
                m.reset();
            }
        }
    }

private:
    enum class How { Copy, Json, Restart };
    struct MetricCopy {
        std::unique_ptr<::traincb::metrics::Metric> copy;  // a clone whose state is overwritten at each snapshot
        How how = How::Copy;
        nlohmann::json json;  // a metric without copy_state_from: its saved state
        StateDict tensors;
    };

    // Each metric is copied by copy_state_from into a clone made once (no allocation for the
    // built-in metrics); a metric without it is saved as JSON (which allocates), and one that saves
    // no state restarts at a rollback, with one warning naming it.
    void take_metrics(const std::vector<std::unique_ptr<::traincb::metrics::Metric>>& ms) {
        if (metrics_.size() != ms.size()) {
            metrics_.clear();
            for (const auto& m : ms) metrics_.push_back({m->clone(), How::Copy, {}, {}});
        }
        for (std::size_t i = 0; i < ms.size(); ++i) {
            MetricCopy& c = metrics_[i];
            const ::traincb::metrics::Metric& m = *ms[i];
            if (c.how == How::Copy && c.copy->copy_state_from(m)) continue;
            c.tensors.clear();
            if (m.save_state_with_tensors(c.json, c.tensors)) {
                c.how = How::Json;
                continue;
            }
            if (c.how != How::Restart)
                warn(cat("traincb: Trainer::fit: training metric '", m.name(),
                         "' implements neither copy_state_from nor save_state, so a rollback cannot restore it: it "
                         "restarts at each rollback, and its value for such an epoch covers only the batches after "
                         "the rollback; implement metrics::Metric::copy_state_from"));
            c.how = How::Restart;
        }
    }

    StateSnapshot model_{};
    std::optional<double> lr_{};
    double loss_sum_ = 0;
    std::int64_t loss_count_ = 0;
    std::vector<MetricCopy> metrics_{};
    std::int64_t global_step_ = 0;
    int epoch_ = -1;
    std::int64_t batch_ = 0;
    bool taken_ = false;
};

}  // namespace traincb::inline v0::detail
