// Tests for traincb/state.hpp's weight / training-state distinction: the kind a visitor sees for
// each way of visiting a tensor, FilteredStateVisitor, and the StateFilter of StateSnapshot,
// StateCollector and StateLoader. The expected kinds follow the rule of state.hpp: `visit` is a
// weight, `visit_training_state` (or an explicit StateKind::Training) is training state.
#include "catch.hpp"

#include <Eigen/Core>
#include <cstdint>
#include <map>
#include <string>
#include <traincb/state.hpp>
#include <vector>

namespace {

using traincb::StateFilter;
using traincb::StateKind;

// Every form of visit: Eigen matrices (column- and row-major), vectors, arrays and scalars, as
// weights and as training state.
struct Mixed {
    Eigen::MatrixXd w = Eigen::MatrixXd::Constant(2, 3, 1.5);
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> buffer =
        Eigen::MatrixXf::Constant(2, 2, 0.25f);
    Eigen::VectorXd moment = Eigen::VectorXd::Constant(3, -1.0);
    Eigen::ArrayXf velocity = Eigen::ArrayXf::Constant(2, 4.0f);
    double lr = 0.01;
    std::int64_t step = 7;
    std::int64_t seen = 3;  // a buffer counter, a weight
    void visit_state(traincb::StateVisitor& v) {
        traincb::visit(v, "w", w);
        traincb::visit(v, "buffer", buffer);
        traincb::visit_training_state(v, "moment", moment);
        traincb::visit(v, "velocity", velocity, StateKind::Training);
        traincb::visit_training_state(v, "lr", lr);
        traincb::visit_training_state(v, "step", step);
        traincb::visit(v, "seen", seen);
    }
};

// A user's visitor: records the kind of each tensor, in visiting order.
struct KindRecorder final : traincb::StateVisitor {
    std::vector<std::pair<std::string, StateKind>> seen;
    void visit(const traincb::TensorView& t) override { seen.emplace_back(std::string(t.name), t.kind); }
};

std::vector<std::string> names(const traincb::StateDict& d) {
    std::vector<std::string> out;
    for (const auto& t : d.tensors()) out.push_back(t.name);
    return out;
}

}  // namespace

TEST_CASE("state: a custom visitor sees each tensor's kind: visit is a weight, visit_training_state is not") {
    Mixed m;
    KindRecorder r;
    m.visit_state(r);
    const std::vector<std::pair<std::string, StateKind>> expected{
        {"w", StateKind::Weight},          {"buffer", StateKind::Weight}, {"moment", StateKind::Training},
        {"velocity", StateKind::Training}, {"lr", StateKind::Training},   {"step", StateKind::Training},
        {"seen", StateKind::Weight}};
    CHECK(r.seen == expected);
    CHECK(traincb::TensorView{}.kind == StateKind::Weight);  // a view made by hand is a weight
    CHECK(std::string(traincb::to_string(StateKind::Weight)) == "weight");
    CHECK(std::string(traincb::to_string(StateKind::Training)) == "training");
}

TEST_CASE("state: selects() and FilteredStateVisitor forward only the chosen kind") {
    CHECK(traincb::selects(StateFilter::All, StateKind::Weight));
    CHECK(traincb::selects(StateFilter::All, StateKind::Training));
    CHECK(traincb::selects(StateFilter::Weights, StateKind::Weight));
    CHECK_FALSE(traincb::selects(StateFilter::Weights, StateKind::Training));
    CHECK_FALSE(traincb::selects(StateFilter::Training, StateKind::Weight));
    CHECK(traincb::selects(StateFilter::Training, StateKind::Training));
    Mixed m;
    KindRecorder weights, training;
    traincb::FilteredStateVisitor fw(weights, StateFilter::Weights);
    traincb::FilteredStateVisitor ft(training, StateFilter::Training);
    m.visit_state(fw);
    m.visit_state(ft);
    CHECK(weights.seen.size() == 3);
    CHECK(training.seen.size() == 4);
    for (const auto& e : weights.seen) CHECK(e.second == StateKind::Weight);
    for (const auto& e : training.seen) CHECK(e.second == StateKind::Training);
}

TEST_CASE("state: a weights-only snapshot restores the weights and leaves the training state alone") {
    Mixed m;
    const auto visit = [&m](traincb::StateVisitor& v) { m.visit_state(v); };
    traincb::StateSnapshot s;
    s.take(visit, StateFilter::Weights);
    CHECK(s.filter() == StateFilter::Weights);
    CHECK(s.size() == 3);
    CHECK(s.bytes() == 6 * sizeof(double) + 4 * sizeof(float) + sizeof(std::int64_t));
    CHECK(names(s.to_state_dict()) == std::vector<std::string>{"w", "buffer", "seen"});

    const Mixed taken = m;
    m.w.setConstant(9.0);
    m.buffer.setConstant(9.0f);
    m.seen = 9;
    m.moment.setConstant(9.0);
    m.velocity.setConstant(9.0f);
    m.lr = 9.0;
    m.step = 9;
    s.restore(visit);
    CHECK(m.w == taken.w);
    CHECK(m.buffer == taken.buffer);
    CHECK(m.seen == taken.seen);
    CHECK(m.moment == Eigen::VectorXd::Constant(3, 9.0));  // training state untouched
    CHECK((m.velocity == 9.0f).all());
    CHECK(m.lr == 9.0);
    CHECK(m.step == 9);

    // The default covers every tensor, as before.
    traincb::StateSnapshot all;
    all.take(visit);
    CHECK(all.filter() == StateFilter::All);
    CHECK(all.size() == 7);
    // The same buffers serve a weights-only snapshot afterwards: it shrinks to the weights.
    all.take(visit, StateFilter::Weights);
    CHECK(all.size() == 3);
}

TEST_CASE("state: from_state_dict with a filter reads the selected tensors and ignores the others") {
    Mixed m;
    const auto visit = [&m](traincb::StateVisitor& v) { m.visit_state(v); };
    traincb::StateDict d;
    traincb::StateCollector everything(d);
    m.visit_state(everything);
    REQUIRE(d.size() == 7);
    // Weights only: a dict holding the training state too (as an earlier EarlyStopping saved) loads.
    traincb::StateSnapshot s;
    s.from_state_dict(d, "", visit, StateFilter::Weights);
    CHECK(s.size() == 3);
    // A dict holding only the weights loads with the filter, and fails without it.
    traincb::StateDict weights_only;
    traincb::StateCollector wc(weights_only, "", StateFilter::Weights);
    m.visit_state(wc);
    CHECK(names(weights_only) == std::vector<std::string>{"w", "buffer", "seen"});
    CHECK_NOTHROW(s.from_state_dict(weights_only, "", visit, StateFilter::Weights));
    traincb::StateSnapshot strict;
    CHECK_THROWS_AS(strict.from_state_dict(weights_only, "", visit), traincb::FormatError);
}

TEST_CASE("state: StateCollector and StateLoader honour a filter") {
    Mixed src;
    src.w.setConstant(2.0);
    src.lr = 0.5;
    traincb::StateDict training;
    traincb::StateCollector tc(training, "opt/", StateFilter::Training);
    src.visit_state(tc);
    CHECK(names(training) == std::vector<std::string>{"opt/moment", "opt/velocity", "opt/lr", "opt/step"});

    traincb::StateDict all;
    traincb::StateCollector ac(all);
    src.visit_state(ac);
    Mixed dst;
    traincb::StateLoader weights_loader(all, "", StateFilter::Weights);
    dst.visit_state(weights_loader);
    CHECK(dst.w == src.w);
    CHECK(dst.lr == 0.01);  // not loaded
    // A loader of the training state alone needs no weight tensor.
    traincb::StateLoader training_loader(training, "opt/", StateFilter::Training);
    dst.visit_state(training_loader);
    CHECK(dst.lr == 0.5);
}
