// Tests for the streaming metric objects of traincb/metrics.hpp: for random splits of the data
// into batches (including empty ones), result() equals the function on all of it (whose values
// test_metrics.cpp and test_metrics_layouts.cpp check against independent references); merge()
// of shards equals one object over everything; clone, reset, names, directions, option checks,
// and updates that throw leave the state unchanged; save_state / load_state continue bit-exactly,
// and every bad state is an error that changes nothing.
#include "catch.hpp"

#include <Eigen/Core>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <traincb/metrics.hpp>
#include <vector>

namespace test_metrics_streaming {

namespace {

namespace m = traincb::metrics;
using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::MatrixXf;
using Eigen::VectorXd;

bool close(double a, double b, double rel = 1e-12) {
    return std::fabs(a - b) <= rel * std::fabs(b);
}

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const traincb::InvalidArgument& e) {
        return e.what();
    }
    return "<no exception>";
}
bool has(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

struct Data {
    MatrixXd y_bin, p_bin, logits_bin, soft;  // N x 2 (binary, elementwise metrics)
    MatrixXd labels, onehot, probs, logits;   // N x 1 labels, N x C
    MatrixXd scores;                          // N x 1 in [0, 1]
};

Data make_data(Index n, Index c, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const auto f32 = [](double v) { return static_cast<double>(static_cast<float>(v)); };  // exact in float
    Data d;
    d.y_bin.resize(n, 2);
    d.p_bin.resize(n, 2);
    d.logits_bin.resize(n, 2);
    d.soft.resize(n, 2);
    for (Index i = 0; i < d.y_bin.size(); ++i) {
        d.y_bin.data()[i] = static_cast<double>(g() % 2);
        d.p_bin.data()[i] = f32(u(g));
        d.logits_bin.data()[i] = f32(8 * u(g) - 4);
        d.soft.data()[i] = f32(u(g));
    }
    d.labels.resize(n, 1);
    d.onehot = MatrixXd::Zero(n, c);
    d.probs.resize(n, c);
    d.logits.resize(n, c);
    d.scores.resize(n, 1);
    for (Index i = 0; i < n; ++i) {
        const auto l = static_cast<Index>(g() % static_cast<std::uint64_t>(c));
        d.labels(i, 0) = static_cast<double>(l);
        d.onehot(i, l) = 1;
        for (Index j = 0; j < c; ++j) {
            d.probs(i, j) = f32(u(g) + 0.01);
            d.logits(i, j) = f32(6 * u(g) - 3);
        }
        d.scores(i, 0) = static_cast<double>(g() % 16) / 16.0;  // ties
    }
    return d;
}

// Random batch boundaries over n rows, with some empty batches.
std::vector<Index> split(Index n, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::vector<Index> cuts{0};
    while (cuts.back() < n) cuts.push_back(std::min(n, cuts.back() + static_cast<Index>(g() % 40)));
    return cuts;
}

// Feeds rows of (t, p) to the object batch by batch, alternating between the templated update on
// blocks, the virtual double update, and (when `floats`) the virtual float update.
template <class Obj>
void feed(Obj& obj, const MatrixXd& t, const MatrixXd& p, std::uint64_t seed, bool floats = false) {
    const auto cuts = split(t.rows(), seed);
    for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
        const Index r = cuts[k], b = cuts[k + 1] - cuts[k];
        m::Metric& base = obj;
        if (floats) {
            const MatrixXf tf = t.middleRows(r, b).cast<float>(), pf = p.middleRows(r, b).cast<float>();
            if (k % 2 == 0)
                base.update(tf, pf);
            else
                obj.update(tf.array(), pf.array());
        } else if (k % 3 == 0) {
            obj.update(t.middleRows(r, b), p.middleRows(r, b));
        } else if (k % 3 == 1) {
            base.update(t.middleRows(r, b), p.middleRows(r, b));  // binds Ref<const MatrixXd> to the blocks
        } else {
            const MatrixXd tc = t.middleRows(r, b), pc = p.middleRows(r, b);
            base.update(tc, pc);
        }
    }
}

// Checks object == function(all) over double and float batches, and merge of three shards.
template <class Obj, class Fn>
void check_streaming(const Obj& proto, const MatrixXd& t, const MatrixXd& p, Fn&& fn) {
    const double want = fn(t, p);
    {
        Obj obj = proto;
        CHECK(std::isnan(obj.result()));  // before any update: NaN
        feed(obj, t, p, 1);
        INFO(obj.name() << ": " << obj.result() << " vs " << want);
        CHECK(close(obj.result(), want));
    }
    {
        Obj obj = proto;
        feed(obj, t, p, 2, true);
        const MatrixXf tf = t.cast<float>(), pf = p.cast<float>();
        CHECK(close(obj.result(), fn(tf, pf)));
    }
    {
        // Three shards, merged (one of them through the Metric interface and a clone).
        const Index a = t.rows() / 3, b = 2 * t.rows() / 3;
        Obj s1 = proto, s2 = proto, s3 = proto;
        feed(s1, t.topRows(a), p.topRows(a), 3);
        feed(s2, t.middleRows(a, b - a), p.middleRows(a, b - a), 4);
        feed(s3, t.bottomRows(t.rows() - b), p.bottomRows(t.rows() - b), 5);
        std::unique_ptr<m::Metric> c3 = s3.clone();
        s1.merge(s2);
        m::Metric& base = s1;
        base.merge(*c3);
        INFO(s1.name() << " merged: " << s1.result() << " vs " << want);
        CHECK(close(s1.result(), want));
        // reset forgets everything.
        s1.reset();
        CHECK(std::isnan(s1.result()));
        feed(s1, t, p, 6);
        CHECK(close(s1.result(), want));
    }
}

}  // namespace

TEST_CASE("mean-type metric objects equal their functions over any batches, shards and float input") {
    const Data d = make_data(301, 5, 42);
    check_streaming(m::BinaryAccuracy(), d.y_bin, d.p_bin,
                    [](const auto& t, const auto& p) { return m::binary_accuracy(t, p); });
    check_streaming(m::BinaryAccuracy({.threshold = 0.3}), d.y_bin, d.p_bin,
                    [](const auto& t, const auto& p) { return m::binary_accuracy(t, p, 0.3); });
    check_streaming(m::BinaryCrossentropy(), d.soft, d.p_bin,
                    [](const auto& t, const auto& p) { return m::binary_crossentropy(t, p); });
    check_streaming(m::BinaryCrossentropy({.from_logits = true}), d.y_bin, d.logits_bin,
                    [](const auto& t, const auto& p) { return m::binary_crossentropy(t, p, true); });
    check_streaming(m::MeanSquaredError(), d.soft, d.logits_bin,
                    [](const auto& t, const auto& p) { return m::mean_squared_error(t, p); });
    check_streaming(m::MeanAbsoluteError(), d.soft, d.logits_bin,
                    [](const auto& t, const auto& p) { return m::mean_absolute_error(t, p); });
    check_streaming(m::CategoricalAccuracy(), d.onehot, d.probs,
                    [](const auto& t, const auto& p) { return m::categorical_accuracy(t, p); });
    check_streaming(m::TopKCategoricalAccuracy({.k = 2}), d.onehot, d.probs,
                    [](const auto& t, const auto& p) { return m::top_k_categorical_accuracy(t, p, 2); });
    check_streaming(m::CategoricalCrossentropy(), d.onehot, d.probs,
                    [](const auto& t, const auto& p) { return m::categorical_crossentropy(t, p); });
    check_streaming(m::CategoricalCrossentropy({.from_logits = true}), d.onehot, d.logits,
                    [](const auto& t, const auto& p) { return m::categorical_crossentropy(t, p, true); });
    // Sparse metrics take y_true as an N x 1 matrix of class indices, as the Trainer passes it.
    check_streaming(m::SparseCategoricalAccuracy(), d.labels, d.logits,
                    [](const auto& t, const auto& p) { return m::sparse_categorical_accuracy(t, p); });
    check_streaming(m::SparseCategoricalCrossentropy(), d.labels, d.probs,
                    [](const auto& t, const auto& p) { return m::sparse_categorical_crossentropy(t, p); });
    check_streaming(m::SparseCategoricalCrossentropy({.from_logits = true}), d.labels, d.logits,
                    [](const auto& t, const auto& p) { return m::sparse_categorical_crossentropy(t, p, true); });
}

namespace {
// Labels predicted from y_pred as the objects take them: score > threshold, or argmax.
VectorXd predicted_labels(const MatrixXd& p, double threshold) {
    VectorXd out(p.rows());
    for (Index i = 0; i < p.rows(); ++i) {
        if (p.cols() == 1) {
            out(i) = p(i, 0) > threshold ? 1 : 0;
        } else {
            Index best = 0;
            for (Index j = 1; j < p.cols(); ++j)
                if (p(i, j) > p(i, best)) best = j;
            out(i) = static_cast<double>(best);
        }
    }
    return out;
}
}  // namespace

TEST_CASE("Precision, Recall and F1Score objects equal the functions on the predicted labels") {
    const Data d = make_data(257, 4, 7);
    using A = m::Average;
    // Multi-class: N x C predictions (argmax), y_true as N x 1 labels and as one-hot rows.
    for (const A avg : {A::Micro, A::Macro, A::Weighted}) {
        INFO("average " << m::to_string(avg));
        const m::ClassScoreOptions o{.average = avg, .num_classes = 4};
        const VectorXd lp = predicted_labels(d.probs, 0.5);
        const VectorXd lt = d.labels.col(0);
        check_streaming(m::Precision(o), d.labels, d.probs,
                        [&](const auto&, const auto&) { return m::precision(lt, lp, avg); });
        check_streaming(m::Recall(o), d.onehot, d.probs,
                        [&](const auto&, const auto&) { return m::recall(lt, lp, avg); });
        check_streaming(m::F1Score(o), d.labels, d.probs,
                        [&](const auto&, const auto&) { return m::f1_score(lt, lp, avg); });
    }
    // Binary: N x 1 scores thresholded (default 0.5 and 0.3), pos_label 1 and 0.
    const MatrixXd yb = d.y_bin.col(0);
    const VectorXd lt = yb.col(0);
    for (const double thr : {0.5, 0.3}) {
        for (const std::int64_t pos : {1, 0}) {
            INFO("threshold " << thr << ", pos_label " << pos);
            const m::ClassScoreOptions o{.pos_label = pos, .threshold = thr};
            const VectorXd lp = predicted_labels(d.scores, thr);
            check_streaming(m::Precision(o), yb, d.scores,
                            [&](const auto&, const auto&) { return m::precision(lt, lp, A::Binary, pos); });
            check_streaming(m::Recall(o), yb, d.scores,
                            [&](const auto&, const auto&) { return m::recall(lt, lp, A::Binary, pos); });
            check_streaming(m::F1Score(o), yb, d.scores,
                            [&](const auto&, const auto&) { return m::f1_score(lt, lp, A::Binary, pos); });
        }
    }
    // Binary with two-column (softmax) predictions: argmax.
    MatrixXd two(d.scores.rows(), 2);
    two.col(0) = 1 - d.scores.array();
    two.col(1) = d.scores;
    const VectorXd lp2 = predicted_labels(two, 0.5);
    check_streaming(m::F1Score(), yb, two, [&](const auto&, const auto&) { return m::f1_score(lt, lp2); });
}

TEST_CASE("RocAuc and ConfusionMatrix objects equal their functions") {
    const Data d = make_data(400, 3, 9);
    const MatrixXd yb = d.y_bin.col(0);
    check_streaming(m::RocAuc(), yb, d.scores, [](const auto& t, const auto& s) { return m::roc_auc(t, s); });
    m::RocAuc auc;
    auc.update(yb, d.scores);
    const double before = auc.result();
    auc.merge(auc);  // merging with itself duplicates every sample: the statistic is unchanged
    CHECK(auc.result() == before);
    auc.update(VectorXd::Zero(3), VectorXd::Constant(3, 0.5));  // an update after result() re-sorts
    const MatrixXd yall = (MatrixXd(yb.rows() * 2 + 3, 1) << yb, yb, VectorXd::Zero(3)).finished();
    const MatrixXd sall = (MatrixXd(yb.rows() * 2 + 3, 1) << d.scores, d.scores, VectorXd::Constant(3, 0.5)).finished();
    CHECK(close(auc.result(), m::roc_auc(yall, sall)));
    // One class so far, or a NaN score: NaN (the function would throw / return NaN).
    m::RocAuc one;
    one.update(VectorXd::Ones(3), VectorXd::Zero(3));
    CHECK(std::isnan(one.result()));
    one.update(VectorXd::Zero(1), VectorXd::Constant(1, std::nan("")));
    CHECK(std::isnan(one.result()));

    m::ConfusionMatrix cm({.num_classes = 3});
    const VectorXd lp = predicted_labels(d.probs, 0.5);
    const auto cuts = split(d.labels.rows(), 11);
    for (std::size_t k = 0; k + 1 < cuts.size(); ++k)
        cm.update(d.labels.col(0).segment(cuts[k], cuts[k + 1] - cuts[k]), lp.segment(cuts[k], cuts[k + 1] - cuts[k]));
    CHECK(cm.result() == m::confusion_matrix(d.labels.col(0), lp, 3));
    m::ConfusionMatrix other({.num_classes = 3});
    other.update(Eigen::VectorXi::Constant(2, 1), Eigen::VectorXi::Constant(2, 2));
    const m::CountMatrix before_merge = cm.result();
    cm.merge(other);
    CHECK(cm.result()(1, 2) == before_merge(1, 2) + 2);
    cm.reset();
    CHECK(cm.result() == m::CountMatrix::Zero(3, 3));
    CHECK(cm.options().num_classes == 3);
}

TEST_CASE("metric objects have Keras's default names, configurable names and directions") {
    using traincb::Direction;
    const std::vector<std::pair<std::unique_ptr<m::Metric>, std::pair<std::string, Direction>>> expect = [] {
        std::vector<std::pair<std::unique_ptr<m::Metric>, std::pair<std::string, Direction>>> v;
        v.emplace_back(std::make_unique<m::BinaryAccuracy>(), std::pair{"binary_accuracy", Direction::Max});
        v.emplace_back(std::make_unique<m::CategoricalAccuracy>(), std::pair{"categorical_accuracy", Direction::Max});
        v.emplace_back(std::make_unique<m::SparseCategoricalAccuracy>(),
                       std::pair{"sparse_categorical_accuracy", Direction::Max});
        v.emplace_back(std::make_unique<m::TopKCategoricalAccuracy>(),
                       std::pair{"top_k_categorical_accuracy", Direction::Max});
        v.emplace_back(std::make_unique<m::BinaryCrossentropy>(), std::pair{"binary_crossentropy", Direction::Min});
        v.emplace_back(std::make_unique<m::CategoricalCrossentropy>(),
                       std::pair{"categorical_crossentropy", Direction::Min});
        v.emplace_back(std::make_unique<m::SparseCategoricalCrossentropy>(),
                       std::pair{"sparse_categorical_crossentropy", Direction::Min});
        v.emplace_back(std::make_unique<m::MeanSquaredError>(), std::pair{"mean_squared_error", Direction::Min});
        v.emplace_back(std::make_unique<m::MeanAbsoluteError>(), std::pair{"mean_absolute_error", Direction::Min});
        v.emplace_back(std::make_unique<m::Precision>(), std::pair{"precision", Direction::Max});
        v.emplace_back(std::make_unique<m::Recall>(), std::pair{"recall", Direction::Max});
        v.emplace_back(std::make_unique<m::F1Score>(), std::pair{"f1_score", Direction::Max});
        v.emplace_back(std::make_unique<m::RocAuc>(), std::pair{"auc", Direction::Max});
        return v;
    }();
    for (const auto& [metric, nd] : expect) {
        CHECK(metric->name() == nd.first);
        CHECK(metric->direction() == nd.second);
        CHECK(std::isnan(metric->result()));  // documented: NaN before any update
        const auto copy = metric->clone();
        CHECK(copy->name() == nd.first);
    }
    CHECK(m::BinaryAccuracy({.name = "accuracy"}).name() == "accuracy");
    CHECK(m::SparseCategoricalAccuracy({.name = "accuracy"}).name() == "accuracy");
    CHECK(m::MeanSquaredError({.name = "mse"}).name() == "mse");
    CHECK(m::F1Score({.name = "f1"}).name() == "f1");
    CHECK(m::RocAuc({.name = "roc_auc"}).name() == "roc_auc");
}

TEST_CASE("clones are independent, empty batches change nothing, and means are O(1) counts") {
    m::MeanSquaredError mse;
    mse.update(VectorXd::Constant(2, 1.0), VectorXd::Constant(2, 3.0));  // squared error 4 each
    auto copy = mse.clone();
    copy->update(Eigen::MatrixXd::Constant(2, 1, 0.0), Eigen::MatrixXd::Constant(2, 1, 0.0));
    CHECK(mse.result() == 4.0);
    CHECK(copy->result() == 2.0);
    mse.update(VectorXd(0), VectorXd(0));
    CHECK(mse.result() == 4.0);
    CHECK(mse.count() == 2);
    m::SparseCategoricalAccuracy acc;
    acc.update(MatrixXd(0, 1), MatrixXd(0, 3));
    CHECK(std::isnan(acc.result()));
    CHECK(acc.count() == 0);
}

TEST_CASE("metric objects reject bad options, foreign merges and bad batches without changing state") {
    CHECK(error_of([] { m::BinaryAccuracy({.name = ""}); }) ==
          "traincb: metrics::BinaryAccuracy: name is empty; pass the log key, e.g. .name = \"accuracy\"");
    CHECK(has(error_of([] { m::MeanAbsoluteError({.name = ""}); }), "metrics::MeanAbsoluteError: name is empty"));
    CHECK(has(error_of([] { m::RocAuc({.name = ""}); }), "metrics::RocAuc: name is empty"));
    CHECK(has(error_of([] { m::BinaryAccuracy({.threshold = std::nan("")}); }),
              "metrics::BinaryAccuracy: threshold is nan"));
    CHECK(error_of([] { m::TopKCategoricalAccuracy({.k = 0}); }) ==
          "traincb: metrics::TopKCategoricalAccuracy: k is 0; pass k >= 1");
    CHECK(has(error_of([] { m::Precision({.average = m::Average::Macro, .num_classes = 0}); }),
              "metrics::Precision: num_classes is 0; pass num_classes >= 1"));
    CHECK(has(error_of([] { m::Recall({.num_classes = 3}); }),
              "metrics::Recall: num_classes is 3 but average = Average::Binary needs 2 classes"));
    CHECK(has(error_of([] { m::F1Score({.pos_label = 2}); }),
              "metrics::F1Score: pos_label is 2 but average = Average::Binary needs labels 0 or 1"));
    CHECK(has(error_of([] { m::F1Score({.threshold = std::nan("")}); }), "metrics::F1Score: threshold is nan"));
    CHECK(has(error_of([] { m::ConfusionMatrix({.num_classes = 0}); }), "metrics::ConfusionMatrix: num_classes is 0"));

    // merge: another type, or other options.
    m::BinaryAccuracy acc({.name = "accuracy"});
    acc.update(VectorXd::Ones(2), VectorXd::Ones(2));
    m::MeanSquaredError mse;
    CHECK(error_of([&] { acc.merge(mse); }) ==
          "traincb: metrics::BinaryAccuracy::merge: cannot merge metric 'mean_squared_error' of another type into "
          "'accuracy'; merge objects of the same class");
    CHECK(has(error_of([&] { acc.merge(m::BinaryAccuracy({.name = "accuracy", .threshold = 0.7})); }),
              "their options differ"));
    CHECK(error_of([&] { acc.merge(m::BinaryAccuracy({.name = "other_name"})); }) ==
          "<no exception>");  // the name is only a log key
    CHECK(has(error_of([] {
                  m::F1Score a({.average = m::Average::Macro, .num_classes = 3}),
                      b({.average = m::Average::Micro, .num_classes = 3});
                  a.merge(b);
              }),
              "their options differ"));
    CHECK(has(error_of([] {
                  m::ConfusionMatrix a({.num_classes = 3}), b({.num_classes = 4});
                  a.merge(b);
              }),
              "metrics::ConfusionMatrix::merge: num_classes differ (3 and 4)"));
    CHECK(has(error_of([] {
                  m::RocAuc a;
                  m::Precision b;
                  a.merge(b);
              }),
              "metrics::RocAuc::merge: cannot merge metric 'precision'"));
    CHECK(acc.result() == 1.0);

    // Bad batches throw with the class's name and leave the state as it was.
    CHECK(has(error_of([&] { acc.update(VectorXd::Constant(3, 0.5), VectorXd::Ones(3)); }),
              "metrics::BinaryAccuracy: y_true(0, 0) is 0.5"));
    CHECK(has(error_of([&] { acc.update(VectorXd::Ones(3), VectorXd::Ones(2)); }),
              "metrics::BinaryAccuracy: y_true is 3x1 but y_pred is 2x1"));
    CHECK(acc.result() == 1.0);
    CHECK(acc.count() == 2);
    m::SparseCategoricalCrossentropy sce;
    CHECK(has(error_of([&] { sce.update(MatrixXd::Constant(2, 1, 3.0), MatrixXd::Zero(2, 3)); }),
              "metrics::SparseCategoricalCrossentropy: y_true(0) is 3; class indices must be whole numbers in [0, 3)"));
    CHECK(
        has(error_of([&] { sce.update(MatrixXd::Zero(2, 3), MatrixXd::Zero(2, 3)); }), "y_true is 2x3; pass a vector"));
    CHECK(sce.count() == 0);

    m::Precision prec({.average = m::Average::Macro, .num_classes = 3});
    prec.update(VectorXd::Zero(2), MatrixXd::Identity(2, 3));
    const double p0 = prec.result();
    CHECK(has(error_of([&] { prec.update((VectorXd(3) << 0, 1, 5).finished(), MatrixXd::Zero(3, 3)); }),
              "metrics::Precision: y_true(2) is 5; class indices must be whole numbers in [0, 3)"));
    CHECK(has(error_of([&] { prec.update(VectorXd::Zero(3), MatrixXd::Zero(2, 3)); }),
              "y_true is 3x1 but y_pred is 2x3"));
    CHECK(has(error_of([&] { prec.update(MatrixXd::Zero(2, 2), MatrixXd::Zero(2, 3)); }),
              "y_true is 2x2; pass N x 1 class indices or N x 3 one-hot rows"));
    CHECK(has(error_of([&] { prec.update(VectorXd::Zero(2), MatrixXd::Zero(2, 4)); }),
              "y_pred is 2x4; pass N x 1 scores or N x 3 class scores"));
    CHECK(prec.result() == p0);
    m::Precision one_class({.average = m::Average::Macro, .num_classes = 1});
    CHECK(has(error_of([&] { one_class.update(VectorXd::Zero(2), VectorXd::Zero(2)); }),
              "N x 1 scores predict classes 0 and 1 but num_classes is 1"));
    m::Recall binary;
    CHECK(has(error_of([&] { binary.update((VectorXd(2) << 1, 2).finished(), VectorXd::Zero(2)); }),
              "metrics::Recall: y_true(1) is 2"));

    m::RocAuc auc;
    auc.update(VectorXd::Ones(1), VectorXd::Ones(1));
    CHECK(has(error_of([&] { auc.update((VectorXd(2) << 0, 0.5).finished(), VectorXd::Zero(2)); }),
              "metrics::RocAuc: y_true(1) is 0.5"));
    CHECK(has(error_of([&] { auc.update(VectorXd::Zero(2), VectorXd::Zero(3)); }), "y_true is 2x1 but y_pred is 3x1"));
    auc.update(VectorXd::Zero(1), VectorXd::Zero(1));
    CHECK(auc.result() == 1.0);  // the rejected batches left nothing behind

    m::ConfusionMatrix cm({.num_classes = 2});
    CHECK(has(error_of([&] { cm.update((VectorXd(2) << 0, 1).finished(), (VectorXd(2) << 1, 2).finished()); }),
              "metrics::ConfusionMatrix: labels_pred(1) is 2; class indices must be whole numbers in [0, 2)"));
    CHECK(has(error_of([&] { cm.update(VectorXd::Zero(2), VectorXd::Zero(3)); }),
              "labels_true has 2 elements but labels_pred has 3"));
    CHECK(cm.result().sum() == 0);
}

TEST_CASE("a Trainer-style list of metrics updates through the interface with float and double batches") {
    std::vector<std::unique_ptr<m::Metric>> ms;
    ms.push_back(std::make_unique<m::BinaryAccuracy>(m::BinaryAccuracyOptions{.name = "accuracy"}));
    ms.push_back(std::make_unique<m::BinaryCrossentropy>());
    ms.push_back(std::make_unique<m::RocAuc>());
    ms.push_back(std::make_unique<m::Precision>());
    const MatrixXf y = (MatrixXf(4, 1) << 1, 0, 1, 0).finished();
    const MatrixXf p = (MatrixXf(4, 1) << 0.9f, 0.2f, 0.4f, 0.1f).finished();
    for (auto& metric : ms) {
        metric->update(y.topRows(2), p.topRows(2));
        metric->update(y.bottomRows(2), p.bottomRows(2));
    }
    // Hand: accuracy 3/4; AUC: positives 0.9, 0.4 outrank both negatives 0.2, 0.1 -> 1; precision:
    // predicted positive only 0.9 (a true 1) -> 1.
    CHECK(ms[0]->result() == 0.75);
    CHECK(close(ms[1]->result(), m::binary_crossentropy(y, p)));
    CHECK(ms[2]->result() == 1.0);
    CHECK(ms[3]->result() == 1.0);
}

// ---------------------------------------------------------------------------------------------
// Saved state (save_state / load_state): what a checkpoint taken in the middle of an epoch keeps.

namespace {

template <class F>
std::string format_error_of(F&& f) {
    try {
        f();
    } catch (const traincb::FormatError& e) {
        return e.what();
    }
    return "<no FormatError>";
}

// The batches of `cuts` from `from` to `to` (indices into cuts), through the Metric interface.
void feed_range(m::Metric& obj, const MatrixXd& t, const MatrixXd& p, const std::vector<Index>& cuts, std::size_t from,
                std::size_t to) {
    for (std::size_t k = from; k < to; ++k)
        obj.update(t.middleRows(cuts[k], cuts[k + 1] - cuts[k]), p.middleRows(cuts[k], cuts[k + 1] - cuts[k]));
}

// One object fed every batch, versus one fed the first half of the batches, saved (through JSON
// text, as a checkpoint stores it), loaded into a fresh clone of `proto`, and fed the rest: the
// results are the same bits. The reference is the same computation without the interruption, so
// any rounding of a saved double, or a forgotten accumulator (e.g. the compensation term of a
// compensated sum), shows.
void check_state_round_trip(const m::Metric& proto, const MatrixXd& t, const MatrixXd& p, std::uint64_t seed) {
    INFO(proto.name());
    const auto cuts = split(t.rows(), seed);
    const std::size_t batches = cuts.size() - 1, half = batches / 2;
    REQUIRE(half >= 2);
    const auto straight = proto.clone();
    feed_range(*straight, t, p, cuts, 0, batches);

    const auto first = proto.clone();
    feed_range(*first, t, p, cuts, 0, half);
    nlohmann::json state;
    REQUIRE(first->save_state(state));
    const std::string text = state.dump();
    const auto resumed = proto.clone();
    resumed->update(t.topRows(3), p.topRows(3));  // loading replaces whatever was accumulated
    resumed->load_state(nlohmann::json::parse(text));
    const double at_save = first->result(), loaded = resumed->result();
    CHECK(std::memcmp(&at_save, &loaded, sizeof at_save) == 0);
    feed_range(*resumed, t, p, cuts, half, batches);
    const double want = straight->result(), got = resumed->result();
    CHECK(std::memcmp(&want, &got, sizeof want) == 0);  // the same bits (also for a NaN result)
    if (!std::isnan(want)) CHECK(got == want);

    // The state of an object that saw nothing restores "nothing yet" (NaN).
    nlohmann::json empty;
    REQUIRE(proto.clone()->save_state(empty));
    resumed->load_state(empty);
    CHECK(std::isnan(resumed->result()));

    // The same through the form checkpoints use: JSON (as text) plus tensors.
    nlohmann::json json;
    traincb::StateDict tensors;
    REQUIRE(first->save_state_with_tensors(json, tensors));
    const auto resumed2 = proto.clone();
    resumed2->load_state_with_tensors(nlohmann::json::parse(json.dump()), tensors);
    feed_range(*resumed2, t, p, cuts, half, batches);
    const double got2 = resumed2->result();
    CHECK(std::memcmp(&want, &got2, sizeof want) == 0);
}

}  // namespace

TEST_CASE("every built-in metric saves and restores its state bit-exactly") {
    const Data d = make_data(301, 4, 17);
    const MatrixXd yb = d.y_bin.col(0);
    MatrixXd logits_nan = d.logits_bin;
    logits_nan(7, 1) = std::nan("");  // a NaN sum must travel too ("nan")
    const std::vector<std::pair<std::unique_ptr<m::Metric>, std::pair<const MatrixXd*, const MatrixXd*>>> cases = [&] {
        std::vector<std::pair<std::unique_ptr<m::Metric>, std::pair<const MatrixXd*, const MatrixXd*>>> v;
        const auto add = [&](std::unique_ptr<m::Metric> metric, const MatrixXd& t, const MatrixXd& p) {
            v.emplace_back(std::move(metric), std::pair{&t, &p});
        };
        add(std::make_unique<m::BinaryAccuracy>(m::BinaryAccuracyOptions{.threshold = 0.3}), d.y_bin, d.p_bin);
        add(std::make_unique<m::CategoricalAccuracy>(), d.onehot, d.probs);
        add(std::make_unique<m::SparseCategoricalAccuracy>(), d.labels, d.logits);
        add(std::make_unique<m::TopKCategoricalAccuracy>(m::TopKCategoricalAccuracyOptions{.k = 2}), d.onehot, d.probs);
        add(std::make_unique<m::BinaryCrossentropy>(), d.soft, d.p_bin);
        add(std::make_unique<m::BinaryCrossentropy>(m::BinaryCrossentropyOptions{.from_logits = true}), d.y_bin,
            d.logits_bin);
        add(std::make_unique<m::CategoricalCrossentropy>(), d.onehot, d.probs);
        add(std::make_unique<m::CategoricalCrossentropy>(m::CategoricalCrossentropyOptions{.from_logits = true}),
            d.onehot, d.logits);
        add(std::make_unique<m::SparseCategoricalCrossentropy>(), d.labels, d.probs);
        add(std::make_unique<m::MeanSquaredError>(), d.soft, d.logits_bin);
        add(std::make_unique<m::MeanAbsoluteError>(), d.soft, d.logits_bin);
        add(std::make_unique<m::MeanAbsoluteError>(m::MeanAbsoluteErrorOptions{.name = "mae_nan"}), d.soft, logits_nan);
        add(std::make_unique<m::Precision>(m::ClassScoreOptions{.average = m::Average::Macro, .num_classes = 4}),
            d.labels, d.probs);
        add(std::make_unique<m::Recall>(m::ClassScoreOptions{.average = m::Average::Weighted, .num_classes = 4}),
            d.onehot, d.probs);
        add(std::make_unique<m::F1Score>(m::ClassScoreOptions{.pos_label = 0, .threshold = 0.4}), yb, d.scores);
        add(std::make_unique<m::RocAuc>(), yb, d.scores);
        return v;
    }();
    for (const auto& [metric, tp] : cases) check_state_round_trip(*metric, *tp.first, *tp.second, 5);

    // RocAuc with a NaN score: NaN before and after the round trip.
    m::RocAuc auc;
    auc.update((VectorXd(3) << 0, 1, 1).finished(), (VectorXd(3) << 0.2, std::nan(""), 0.7).finished());
    nlohmann::json s;
    REQUIRE(auc.save_state(s));
    m::RocAuc back;
    back.load_state(nlohmann::json::parse(s.dump()));
    CHECK(std::isnan(back.result()));
}

TEST_CASE("a saved metric state records its kind, version and options, doubles as round-trip strings") {
    // Expected documents written by hand from the definitions: 3 elements, predictions 0.5 above
    // threshold 0.3 against targets 1 -> 3 correct; Macro precision counts per class.
    m::BinaryAccuracy acc({.name = "accuracy", .threshold = 0.3});
    acc.update(VectorXd::Ones(3), VectorXd::Constant(3, 0.5));
    nlohmann::json s;
    REQUIRE(acc.save_state(s));
    CHECK(s == nlohmann::json::parse(R"({"kind": "BinaryAccuracy", "version": 1, "options": {"threshold": "0.3"},
                                         "sum": "3", "compensation": "0", "count": 3})"));
    m::Precision prec({.average = m::Average::Macro, .num_classes = 3});
    prec.update(VectorXd::Zero(2), MatrixXd::Identity(2, 3));  // true 0, 0; predicted 0, 1
    REQUIRE(prec.save_state(s));
    CHECK(s == nlohmann::json::parse(R"({"kind": "Precision", "version": 1,
        "options": {"average": "Macro", "pos_label": 1, "num_classes": 3, "threshold": "0.5"},
        "counts": [1, 0, 0, 2, 0, 0, 1, 1, 0], "samples": 2})"));
}

namespace {
// A user-defined metric that keeps the defaults of save_state / load_state.
struct Plain final : m::Metric {
    double sum = 0;
    [[nodiscard]] std::string name() const override { return "plain"; }
    [[nodiscard]] traincb::Direction direction() const noexcept override { return traincb::Direction::Min; }
    void update(const Eigen::Ref<const MatrixXd>& t, const Eigen::Ref<const MatrixXd>&) override { sum += t.sum(); }
    void update(const Eigen::Ref<const MatrixXf>& t, const Eigen::Ref<const MatrixXf>&) override { sum += t.sum(); }
    [[nodiscard]] double result() const override { return sum; }
    void reset() override { sum = 0; }
    void merge(const m::Metric&) override {}
    [[nodiscard]] std::unique_ptr<m::Metric> clone() const override { return std::make_unique<Plain>(*this); }
};
}  // namespace

namespace {
// A user-defined metric with a JSON state only (save_state / load_state): the largest |y_pred|.
struct MaxPrediction final : m::Metric {
    double max = 0;
    [[nodiscard]] std::string name() const override { return "max_prediction"; }
    [[nodiscard]] traincb::Direction direction() const noexcept override { return traincb::Direction::Min; }
    void update(const Eigen::Ref<const MatrixXd>&, const Eigen::Ref<const MatrixXd>& p) override {
        max = std::max(max, p.cwiseAbs().maxCoeff());
    }
    void update(const Eigen::Ref<const MatrixXf>&, const Eigen::Ref<const MatrixXf>& p) override {
        max = std::max(max, static_cast<double>(p.cwiseAbs().maxCoeff()));
    }
    [[nodiscard]] double result() const override { return max; }
    void reset() override { max = 0; }
    void merge(const m::Metric&) override {}
    [[nodiscard]] std::unique_ptr<m::Metric> clone() const override { return std::make_unique<MaxPrediction>(*this); }
    bool save_state(nlohmann::json& state) const override {
        state = {{"max", max}};
        return true;
    }
    void load_state(const nlohmann::json& state) override { max = state.at("max").get<double>(); }
};
}  // namespace

TEST_CASE("the tensor form of metric states: RocAuc's scores in tensors, JSON-only metrics unchanged") {
    // Five samples: positives scored 0.8, 0.35, 0.9 and negatives 0.1, 0.4; of the 6 pairs, all
    // but (0.35, 0.4) are ordered, so the AUC is 5/6.
    m::RocAuc auc;
    auc.update((VectorXd(5) << 0, 1, 1, 0, 1).finished(), (VectorXd(5) << 0.1, 0.8, 0.35, 0.4, 0.9).finished());
    REQUIRE(close(auc.result(), 5.0 / 6.0));
    nlohmann::json state;
    traincb::StateDict tensors;
    REQUIRE(auc.save_state_with_tensors(state, tensors));
    // The JSON holds the header and the counts; the scores are F64 tensors.
    CHECK(state == nlohmann::json{{"kind", "RocAuc"},
                                  {"version", 1},
                                  {"options", nlohmann::json::object()},
                                  {"positive_count", 3},
                                  {"negative_count", 2}});
    REQUIRE(tensors.size() == 2);
    std::vector<double> pos, neg;
    REQUIRE(traincb::read_vector_tensor(*tensors.find("positives"), 3, pos));
    REQUIRE(traincb::read_vector_tensor(*tensors.find("negatives"), 2, neg));
    std::sort(pos.begin(), pos.end());  // their order does not matter to the statistic
    CHECK(pos == std::vector<double>{0.35, 0.8, 0.9});
    CHECK(neg == std::vector<double>{0.1, 0.4});

    m::RocAuc back;
    back.load_state_with_tensors(state, tensors);
    CHECK(back.result() == auc.result());
    {
        INFO("the JSON form (checkpoints of earlier versions) loads through the tensor entry point too");
        nlohmann::json json_form;
        REQUIRE(auc.save_state(json_form));
        m::RocAuc from_json;
        from_json.load_state_with_tensors(json_form, traincb::StateDict{});
        CHECK(from_json.result() == auc.result());
    }
    {
        INFO("a missing or misshapen tensor is a FormatError, and nothing changes");
        m::RocAuc target;
        target.update((VectorXd(2) << 0, 1).finished(), (VectorXd(2) << 0.7, 0.2).finished());  // AUC 0
        const std::string who = "traincb: metrics::RocAuc::load_state: the state given to 'auc' ";
        traincb::StateDict missing = tensors;
        std::erase_if(missing.tensors(), [](const traincb::Tensor& t) { return t.name == "negatives"; });
        CHECK(format_error_of([&] { target.load_state_with_tensors(state, missing); }) ==
              who +
                  "names 2 scores in tensor 'negatives', which is missing; pass the JSON that save_state of the "
                  "same class wrote");
        traincb::StateDict short_one = tensors;
        short_one.put(traincb::vector_tensor<double>("positives", std::vector<double>{0.8, 0.35}));
        CHECK(has(format_error_of([&] { target.load_state_with_tensors(state, short_one); }),
                  "has tensor 'positives' of F64 16 bytes, but positive_count = 3 needs F64 [3]"));
        nlohmann::json no_count = state;
        no_count.erase("positive_count");
        CHECK(has(format_error_of([&] { target.load_state_with_tensors(no_count, tensors); }),
                  "has no 'positive_count'"));
        CHECK(target.result() == 0.0);
    }
    {
        INFO("a metric whose state is JSON only is saved and loaded as before, with no tensor");
        MaxPrediction a;
        a.update(VectorXd::Zero(2), (VectorXd(2) << -3.5, 2.0).finished());
        nlohmann::json j1, j2;
        traincb::StateDict none;
        REQUIRE(a.save_state_with_tensors(j1, none));
        REQUIRE(a.save_state(j2));
        CHECK(j1 == j2);
        CHECK(none.empty());
        MaxPrediction b;
        b.load_state_with_tensors(j1, none);
        CHECK(b.result() == 3.5);
    }
    {
        INFO("a metric without saveable state: nothing saved, loading is an InvalidArgument");
        Plain plain;
        nlohmann::json untouched = "as before";
        traincb::StateDict none;
        CHECK_FALSE(plain.save_state_with_tensors(untouched, none));
        CHECK(untouched == "as before");
        CHECK(has(error_of([&] { plain.load_state_with_tensors(state, none); }), "metric 'plain' cannot restore"));
    }
}

TEST_CASE("bad metric states are errors naming the class, the metric and the fix, and change nothing") {
    m::BinaryAccuracy acc({.name = "accuracy"});
    acc.update(VectorXd::Ones(4), VectorXd::Constant(4, 0.7));
    nlohmann::json good;
    REQUIRE(acc.save_state(good));
    m::BinaryAccuracy target({.name = "accuracy"});
    target.update(VectorXd::Ones(2), VectorXd::Zero(2));  // result 0: must survive every failed load
    const auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
        nlohmann::json j = good;
        edit(j);
        return j;
    };
    const std::string who = "traincb: metrics::BinaryAccuracy::load_state: ";
    const std::string tail = "; pass the JSON that save_state of the same class wrote";

    CHECK(format_error_of([&] { target.load_state(nlohmann::json::array()); }) ==
          who + "the state given to 'accuracy' is [], not a JSON object" + tail);
    CHECK(format_error_of([&] { target.load_state(edited([](auto& j) { j.erase("kind"); })); }) ==
          who + "the state given to 'accuracy' has no 'kind'" + tail);
    CHECK(format_error_of([&] { target.load_state(edited([](auto& j) { j["kind"] = 3; })); }) ==
          who + "the state given to 'accuracy' has 'kind' = 3, not a string" + tail);
    CHECK(error_of([&] { target.load_state(edited([](auto& j) { j["kind"] = "MeanSquaredError"; })); }) ==
          who +
              "'accuracy' is a metrics::BinaryAccuracy but the state was saved by a metrics::MeanSquaredError; load "
              "it into a metric of the class that saved it");
    CHECK(format_error_of([&] { target.load_state(edited([](auto& j) { j["version"] = 2; })); }) ==
          who +
              "the state given to 'accuracy' has version 2, which this traincb does not read (it reads version 1); "
              "load it with the traincb that wrote it, or let the metric restart");
    CHECK(has(format_error_of([&] { target.load_state(edited([](auto& j) { j["version"] = "1"; })); }),
              "has 'version' = \"1\", not a whole number"));
    CHECK(has(format_error_of([&] { target.load_state(edited([](auto& j) { j.erase("options"); })); }),
              "has no 'options'"));
    CHECK(has(format_error_of([&] { target.load_state(edited([](auto& j) { j["options"].erase("threshold"); })); }),
              "has no option 'threshold'"));
    CHECK(error_of([&] { m::BinaryAccuracy({.name = "accuracy", .threshold = 0.25}).load_state(good); }) ==
          who +
              "'accuracy' has threshold 0.25 but the state was saved with threshold 0.5; build the metric with "
              ".threshold = 0.5 to load it");
    CHECK(has(format_error_of([&] { target.load_state(edited([](auto& j) { j["sum"] = 4.0; })); }),
              "the state given to 'accuracy' has 'sum' = 4.0, not a number written as a string"));
    CHECK(has(format_error_of([&] { target.load_state(edited([](auto& j) { j["compensation"] = "0x"; })); }),
              "has 'compensation' = \"0x\", not a number written as a string"));
    CHECK(has(format_error_of([&] { target.load_state(edited([](auto& j) { j["count"] = -1; })); }),
              "has 'count' = -1, not a whole number >= 0"));
    CHECK(
        has(format_error_of([&] { target.load_state(edited([](auto& j) { j.erase("count"); })); }), "has no 'count'"));
    CHECK(target.result() == 0.0);
    CHECK(target.count() == 2);

    // Options of the other classes: each differing option is named with both values.
    nlohmann::json s;
    REQUIRE(m::TopKCategoricalAccuracy({.k = 2}).save_state(s));
    CHECK(has(error_of([&] { m::TopKCategoricalAccuracy({.k = 3}).load_state(s); }),
              "has k 3 but the state was saved with k 2; build the metric with .k = 2 to load it"));
    REQUIRE(m::CategoricalCrossentropy({.from_logits = true}).save_state(s));
    CHECK(has(error_of([&] { m::CategoricalCrossentropy().load_state(s); }),
              "has from_logits false but the state was saved with from_logits true"));
    m::Precision prec({.average = m::Average::Macro, .num_classes = 3});
    prec.update(VectorXd::Zero(2), MatrixXd::Identity(2, 3));
    REQUIRE(prec.save_state(s));
    CHECK(error_of([&] { m::Precision({.average = m::Average::Macro, .num_classes = 4}).load_state(s); }) ==
          "traincb: metrics::Precision::load_state: 'precision' has num_classes 4 but the state was saved with "
          "num_classes 3; build the metric with .num_classes = 3 to load it");
    CHECK(has(error_of([&] { m::Precision().load_state(s); }),
              "has average Binary, num_classes 2 but the state was saved with average Macro, num_classes 3; build "
              "the metric with .average = Macro, .num_classes = 3 to load it"));
    CHECK(has(error_of([&] { m::Recall({.average = m::Average::Macro, .num_classes = 3}).load_state(s); }),
              "'recall' is a metrics::Recall but the state was saved by a metrics::Precision"));
    m::Precision ptarget({.average = m::Average::Macro, .num_classes = 3});
    nlohmann::json bad = s;
    bad["counts"].push_back(0);
    CHECK(has(format_error_of([&] { ptarget.load_state(bad); }),
              "traincb: metrics::Precision::load_state: the state given to 'precision' has 'counts' with 10 entries, "
              "but 9 are needed"));
    bad = s;
    bad["counts"][0] = 5;  // more true positives of class 0 than true class-0 samples
    CHECK(has(format_error_of([&] { ptarget.load_state(bad); }), "has counts that do not fit 'samples' = 2"));
    bad = s;
    bad["samples"] = 3;
    CHECK(has(format_error_of([&] { ptarget.load_state(bad); }), "has counts that do not fit 'samples' = 3"));
    bad = s;
    bad["counts"][4] = "1";
    CHECK(has(format_error_of([&] { ptarget.load_state(bad); }), "has 'counts'[4] = \"1\", not a whole number >= 0"));
    CHECK(std::isnan(ptarget.result()));

    m::RocAuc auc;
    auc.update((VectorXd(2) << 0, 1).finished(), (VectorXd(2) << 0.1, 0.9).finished());
    REQUIRE(auc.save_state(s));
    bad = s;
    bad["positives"] = "0.9";
    m::RocAuc atarget;
    CHECK(
        has(format_error_of([&] { atarget.load_state(bad); }),
            "traincb: metrics::RocAuc::load_state: the state given to 'auc' has 'positives' = \"0.9\", not an array"));
    bad = s;
    bad["negatives"][0] = nullptr;
    CHECK(has(format_error_of([&] { atarget.load_state(bad); }),
              "has 'negatives'[0] = null, not a number written as a string"));
    CHECK(std::isnan(atarget.result()));

    // A user-defined metric keeps the defaults: no state to save, and loading one is an error.
    Plain plain;
    nlohmann::json untouched = "as before";
    CHECK_FALSE(plain.save_state(untouched));
    CHECK(untouched == "as before");
    CHECK(error_of([&] { plain.load_state(good); }) ==
          "traincb: metrics::Metric::load_state: metric 'plain' cannot restore a saved state; override save_state "
          "and load_state in its class (see docs/checkpoints.md), or let it restart");
}

TEST_CASE("a mean over an infinite value is infinite, streamed or merged, not NaN") {
    // IEEE arithmetic, as numpy computes it: mean(|[inf, 1] - 0|) = inf; with -inf as well, NaN.
    namespace m = traincb::metrics;
    Eigen::MatrixXd y(2, 1), p(2, 1);
    y << std::numeric_limits<double>::infinity(), 1.0;
    p << 0.0, 0.0;
    m::MeanAbsoluteError mae;
    mae.update(y, p);
    CHECK(mae.result() == std::numeric_limits<double>::infinity());
    m::MeanAbsoluteError part, merged;
    part.update(y.topRows(1), p.topRows(1));
    merged.update(y.bottomRows(1), p.bottomRows(1));
    merged.merge(part);
    CHECK(merged.result() == std::numeric_limits<double>::infinity());
    m::MeanSquaredError mse;
    Eigen::MatrixXd both(2, 1);
    both << std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity();
    mse.update(both, Eigen::MatrixXd::Zero(2, 1));
    CHECK(mse.result() == std::numeric_limits<double>::infinity());  // squares: inf + inf
    m::MeanAbsoluteError undefined;                                  // |inf - inf| is NaN, and so is the mean
    const Eigen::MatrixXd same = y;
    undefined.update(y, same);
    CHECK(std::isnan(undefined.result()));
}

}  // namespace test_metrics_streaming
