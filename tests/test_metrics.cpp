// Tests for traincb/metrics.hpp: the functions against reference values, NaN semantics and every
// error path. Layouts, scalar types and expressions: test_metrics_layouts.cpp; streaming objects:
// test_metrics_streaming.cpp; allocations: test_metrics_alloc.cpp.
//
// Expected values come from hand derivations (shown) or from this numpy script (run with
// /usr/bin/python3, numpy 1.24), which re-implements Keras's numpy-backend formulas and
// scikit-learn's definitions independently of traincb; its AUC uses the trapezoid under the ROC
// curve (sklearn.metrics.roc_curve + auc), not the Mann-Whitney count traincb uses.
/*
import numpy as np
eps = 1e-7
def binary_accuracy(y, p, t=0.5): return np.mean((p > t).astype(float) == y)
def bce(y, p):
    p = np.clip(p, eps, 1 - eps); return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
def bce_logits(y, x): return np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
def cat_acc(Y, P): return np.mean(np.argmax(Y, 1) == np.argmax(P, 1))
def sparse_acc(l, P): return np.mean(l == np.argmax(P, 1))
def top_k(Y, P, k):  # tf.math.in_top_k: ties count in
    t = np.argmax(Y, 1); xt = P[np.arange(len(t)), t]
    return np.mean((P > xt[:, None]).sum(1) < k)
def cce(Y, P):
    P = P / P.sum(1, keepdims=True); P = np.clip(P, eps, 1 - eps); return np.mean(-(Y * np.log(P)).sum(1))
def log_softmax(X):
    m = X.max(1, keepdims=True); return X - m - np.log(np.exp(X - m).sum(1, keepdims=True))
def cce_logits(Y, X): return np.mean(-(Y * log_softmax(X)).sum(1))
def onehot(l, c): return np.eye(c)[l]
def prf(lt, lp, average, pos=1):
    labels = np.union1d(lt, lp)
    tp = np.array([np.sum((lt == c) & (lp == c)) for c in labels], float)
    pp = np.array([np.sum(lp == c) for c in labels], float)
    tt = np.array([np.sum(lt == c) for c in labels], float)
    div = lambda a, b: np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)
    if average == 'binary':
        i = list(labels).index(pos) if pos in labels else None
        if i is None: return 0.0, 0.0, 0.0
        tp, pp, tt = tp[i:i+1], pp[i:i+1], tt[i:i+1]
    if average == 'micro':
        tp, pp, tt = tp.sum(keepdims=True), pp.sum(keepdims=True), tt.sum(keepdims=True)
    P, R = div(tp, pp), div(tp, tt); F = div(2 * tp, pp + tt)
    if average == 'weighted': w = tt
    else: w = np.ones_like(tp)
    return tuple(float(np.sum(v * w) / np.sum(w)) for v in (P, R, F))
def roc_auc(y, s):  # trapezoid under the ROC curve (as sklearn.metrics.roc_curve + auc)
    o = np.argsort(-s, kind='mergesort'); y, s = y[o], s[o]
    d = np.where(np.diff(s))[0]; idx = np.r_[d, len(y) - 1]
    tps = np.cumsum(y)[idx]; fps = 1 + idx - tps
    tpr = np.r_[0, tps] / tps[-1]; fpr = np.r_[0, fps] / fps[-1]
    return float(np.trapz(tpr, fpr))
f = lambda v: repr(float(v))
y = np.array([1, 0, 1, 1, 0, 0, 1, 0], float)
p = np.array([0.9, 0.2, 0.4, 0.7, 0.6, 0.05, 0.5, 0.3])
x = np.array([2.0, -1.5, 0.3, -0.2, 4.0, -3.0, 0.0, 1.0])
ys = np.array([0.2, 0.9, 0.5, 1, 0, 0.3, 0.7, 0.1])
print('binary_accuracy', f(binary_accuracy(y, p)), f(binary_accuracy(y, p, 0.35)))
print('bce', f(bce(y, p)), 'bce_soft', f(bce(ys, p)), 'bce_logits', f(bce_logits(y, x)), 'bce_logits_soft',
f(bce_logits(ys, x))) ye = np.array([1, 0, 0, 1], float); pe = np.array([0.0, 1.0, 1e-9, 1 - 1e-9]) print('bce_clip',
f(bce(ye, pe))) xl = np.array([40.0, -40.0, 800.0, -30.0]); yl = np.array([1, 0, 1, 1], float) print('bce_logits_large',
f(bce_logits(yl, xl))) print('mse', f(np.mean((y - p) ** 2)), 'mae', f(np.mean(np.abs(y - p)))) P = np.array([[0.1, 0.6,
0.2, 0.1], [0.3, 0.3, 0.2, 0.2], [0.05, 0.05, 0.1, 0.8], [0.4, 0.1, 0.4, 0.1], [0.2, 0.5, 0.25, 0.05]]) * np.array([[1],
[2], [0.5], [1], [3]]) X = np.array([[1.0, 3.0, 0.5, -1.0], [0.2, 0.2, -0.3, 2.5], [-2.0, 0.0, 1.0, 4.0], [3.0,
-1.0, 3.0, 0.0], [0.5, 2.0, 1.0, -3.0]]) l = np.array([1, 0, 3, 2, 2]); Y = onehot(l, 4) Ysoft = np.array([[0.1, 0.7,
0.1, 0.1], [0.5, 0.5, 0, 0], [0, 0, 0.2, 0.8], [0.25, 0.25, 0.25, 0.25], [0, 0.3, 0.7, 0]]) print('cat_acc',
f(cat_acc(Y, P)), 'sparse_acc', f(sparse_acc(l, P)), 'cat_acc_logits', f(cat_acc(Y, X))) print('top_k k=1,2,3',
f(top_k(Y, P, 1)), f(top_k(Y, P, 2)), f(top_k(Y, P, 3))) print('cce', f(cce(Y, P)), 'cce_soft', f(cce(Ysoft, P)),
'cce_logits', f(cce_logits(Y, X)), 'cce_logits_soft', f(cce_logits(Ysoft, X))) lt = np.array([0, 1, 2, 2, 1, 0, 3, 3, 1,
2, 5]); lp = np.array([0, 2, 2, 1, 1, 0, 3, 0, 1, 2, 4]) for a in ('micro', 'macro', 'weighted'): print('prf', a,
*map(f, prf(lt, lp, a))) bt = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1]); bp = np.array([1, 0, 0, 1, 1, 0, 1, 1, 0])
print('prf binary pos1', *map(f, prf(bt, bp, 'binary', 1)), 'pos0', *map(f, prf(bt, bp, 'binary', 0)))
ya = np.array([0, 0, 1, 1, 0, 1, 1, 0]); sa = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.2])
print('auc', f(roc_auc(ya, sa)), 'auc_basic', f(roc_auc(y, p)))
print('bce_logits_tiny', f(bce_logits(np.array([1.0, 0.0]), np.array([40.0, -40.0]))), 'bce_logits_mid',
f(bce_logits(np.array([1.0, 0.0, 1.0]), np.array([12.0, -5.0, 9.5]))))

Output:
binary_accuracy 0.625 0.875
bce 0.4523594866931634 bce_soft 0.9237061757695941 bce_logits 0.9692476938056954 bce_logits_soft 1.4567476938056956
bce_clip 8.059047875610753
bce_logits_large 7.500000000000023
mse 0.1503125 mae 0.33125000000000004
cat_acc 0.6 sparse_acc 0.6 cat_acc_logits 0.4
top_k k=1,2,3 0.8 1.0 1.0
cce 0.8481054144800364 cce_soft 1.1219663059681066 cce_logits 1.0014520024632017 cce_logits_soft 1.5814520024632017
prf micro 0.6363636363636364 0.6363636363636364 0.6363636363636364
prf macro 0.5 0.47222222222222215 0.4666666666666666
prf weighted 0.6666666666666666 0.6363636363636364 0.6303030303030303
prf binary pos1 0.6 0.6 0.6 pos0 0.5 0.5 0.5
auc 0.8125 auc_basic 0.875
bce_logits_tiny 4.248354255291589e-18 bce_logits_mid 0.0022654472370750227
*/
#include "catch.hpp"

#include <Eigen/Core>
#include <cmath>
#include <limits>
#include <string>
#include <traincb/metrics.hpp>
#include <vector>

namespace test_metrics {

namespace m = traincb::metrics;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// |a - b| <= 1e-9 |b| (the required agreement for doubles).
bool close(double a, double b, double rel = 1e-9) {
    return std::fabs(a - b) <= rel * std::fabs(b);
}

VectorXd vec(std::initializer_list<double> v) {
    VectorXd out(static_cast<Eigen::Index>(v.size()));
    Eigen::Index i = 0;
    for (double x : v) out(i++) = x;
    return out;
}

MatrixXd mat(Eigen::Index rows, Eigen::Index cols, std::initializer_list<double> v) {
    MatrixXd out(rows, cols);
    auto it = v.begin();
    for (Eigen::Index r = 0; r < rows; ++r)
        for (Eigen::Index c = 0; c < cols; ++c) out(r, c) = *it++;
    return out;
}

// The message of the traincb::InvalidArgument that f throws ("<no exception>" otherwise).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const traincb::InvalidArgument& e) {
        const std::invalid_argument& base = e;  // it is a std::invalid_argument too
        return base.what();
    } catch (const std::exception& e) {
        return std::string("<other exception> ") + e.what();
    }
    return "<no exception>";
}

bool has(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// The script's inputs.
const VectorXd y = vec({1, 0, 1, 1, 0, 0, 1, 0});
const VectorXd p = vec({0.9, 0.2, 0.4, 0.7, 0.6, 0.05, 0.5, 0.3});
const VectorXd x = vec({2.0, -1.5, 0.3, -0.2, 4.0, -3.0, 0.0, 1.0});
const VectorXd ys = vec({0.2, 0.9, 0.5, 1, 0, 0.3, 0.7, 0.1});

MatrixXd cat_probs() {
    MatrixXd P = mat(
        5, 4, {0.1, 0.6, 0.2, 0.1, 0.3, 0.3, 0.2, 0.2, 0.05, 0.05, 0.1, 0.8, 0.4, 0.1, 0.4, 0.1, 0.2, 0.5, 0.25, 0.05});
    const double scale[] = {1, 2, 0.5, 1, 3};  // rows that do not sum to 1: the loss normalises them
    for (Eigen::Index r = 0; r < 5; ++r) P.row(r) *= scale[r];
    return P;
}
const MatrixXd X = mat(
    5, 4, {1.0, 3.0, 0.5, -1.0, 0.2, 0.2, -0.3, 2.5, -2.0, 0.0, 1.0, 4.0, 3.0, -1.0, 3.0, 0.0, 0.5, 2.0, 1.0, -3.0});
const VectorXd labels = vec({1, 0, 3, 2, 2});
MatrixXd onehot(const VectorXd& l, Eigen::Index c) {
    MatrixXd out = MatrixXd::Zero(l.size(), c);
    for (Eigen::Index i = 0; i < l.size(); ++i) out(i, static_cast<Eigen::Index>(l(i))) = 1;
    return out;
}
const MatrixXd Ysoft =
    mat(5, 4, {0.1, 0.7, 0.1, 0.1, 0.5, 0.5, 0, 0, 0, 0, 0.2, 0.8, 0.25, 0.25, 0.25, 0.25, 0, 0.3, 0.7, 0});

}  // namespace

TEST_CASE("binary_accuracy matches Keras, with a prediction equal to the threshold counted as 0") {
    // Hand: predictions > 0.5 are 1,0,0,1,1,0,0,0 (0.5 is not above 0.5) vs y 1,0,1,1,0,0,1,0: 5 of 8.
    CHECK(m::binary_accuracy(y, p) == 0.625);
    CHECK(m::binary_accuracy(y, p, 0.35) == 0.875);  // script
    // Two-column targets: the mean over all elements (Keras averages the last axis, then rows).
    const MatrixXd y2 = mat(2, 2, {1, 0, 0, 1});
    const MatrixXd p2 = mat(2, 2, {0.7, 0.8, 0.1, 0.2});
    CHECK(m::binary_accuracy(y2, p2) == 0.5);
}

TEST_CASE("binary_accuracy compares float predictions with a double threshold exactly") {
    // 0.3 lies between two floats: 0.3f = 0.300000011920929 is above it, the float below
    // (0.29999998) is not. Float data run four per register against an equivalent float
    // threshold; the count must be the one of the double comparison. 40 elements reach the
    // vector loop (16 per step) and the scalar tail.
    const float at = 0.3f;
    const float below = std::nextafter(at, 0.0f);
    const float above = std::nextafter(at, 1.0f);
    Eigen::VectorXf q(40), yt(40);
    for (Eigen::Index i = 0; i < 40; ++i) {
        q(i) = i % 3 == 0 ? at : i % 3 == 1 ? below : above;
        yt(i) = 1;
    }
    // Hand: above 0.3 are 'at' (i % 3 == 0: 14 of 40) and 'above' (i % 3 == 2: 13 of 40).
    CHECK(m::binary_accuracy(yt, q, 0.3) == 27.0 / 40);
    CHECK(m::binary_accuracy(yt.cast<double>(), q.cast<double>(), 0.3) == 27.0 / 40);
    // A threshold exactly on a float: equal is not above.
    CHECK(m::binary_accuracy(yt, q, static_cast<double>(at)) == 13.0 / 40);
    // Thresholds beyond the float range.
    CHECK(m::binary_accuracy(yt, q, 1e300) == 0.0);
    CHECK(m::binary_accuracy(yt, q, -1e300) == 1.0);
}

TEST_CASE("binary_crossentropy matches Keras for probabilities, soft targets and logits") {
    CHECK(close(m::binary_crossentropy(y, p), 0.4523594866931634));         // script: bce
    CHECK(close(m::binary_crossentropy(ys, p), 0.9237061757695941));        // script: bce_soft
    CHECK(close(m::binary_crossentropy(y, x, true), 0.9692476938056954));   // script: bce_logits
    CHECK(close(m::binary_crossentropy(ys, x, true), 1.4567476938056956));  // script: bce_logits_soft
    // Clipping to [1e-7, 1 - 1e-7]: script bce_clip.
    CHECK(close(m::binary_crossentropy(vec({1, 0, 0, 1}), vec({0.0, 1.0, 1e-9, 1 - 1e-9})), 8.059047875610753));
    // p = 1 is clipped to the double nearest 1 - 1e-7; numpy: -np.log(np.clip(1.0, 1e-7, 1 - 1e-7))
    // = 1.0000000494736474e-07 (the rounding of 1 - 1e-7 already moves the 9th digit).
    CHECK(close(m::binary_crossentropy(vec({1}), vec({1.0})), 1.0000000494736474e-07));
    // Large logits: script bce_logits_large; tiny losses keep their digits (script bce_logits_tiny:
    // log1p(exp(-40)) for both samples), and the series / product boundary (script bce_logits_mid).
    CHECK(close(m::binary_crossentropy(vec({1, 0, 1, 1}), vec({40.0, -40.0, 800.0, -30.0}), true), 7.500000000000023));
    CHECK(close(m::binary_crossentropy(vec({1, 0}), vec({40.0, -40.0}), true), 4.248354255291589e-18));
    CHECK(close(m::binary_crossentropy(vec({1, 0, 1}), vec({12.0, -5.0, 9.5}), true), 0.0022654472370750227));
}

TEST_CASE("mean_squared_error and mean_absolute_error are means over all elements") {
    CHECK(close(m::mean_squared_error(y, p), 0.1503125));             // script: mse
    CHECK(close(m::mean_absolute_error(y, p), 0.33125000000000004));  // script: mae
    // Hand: errors 1, -2, 3, 0 -> squares 1, 4, 9, 0 (mean 3.5), absolutes 1, 2, 3, 0 (mean 1.5).
    const MatrixXd a = mat(2, 2, {1, 2, 3, 4});
    const MatrixXd b = mat(2, 2, {0, 4, 0, 4});
    CHECK(m::mean_squared_error(a, b) == 3.5);
    CHECK(m::mean_absolute_error(a, b) == 1.5);
}

TEST_CASE("categorical and sparse categorical accuracy: argmax, ties to the first index") {
    const MatrixXd P = cat_probs();
    const MatrixXd Y = onehot(labels, 4);
    CHECK(m::categorical_accuracy(Y, P) == 0.6);              // script: cat_acc
    CHECK(m::sparse_categorical_accuracy(labels, P) == 0.6);  // script: sparse_acc
    CHECK(m::categorical_accuracy(Y, X) == 0.4);              // script: cat_acc_logits
    // Hand: row 3 of P ties classes 0 and 2 (0.4 each); the first (0) wins, so label 2 misses
    // and label 0 hits.
    CHECK(m::sparse_categorical_accuracy(vec({0}), P.row(3)) == 1.0);
    CHECK(m::sparse_categorical_accuracy(vec({2}), P.row(3)) == 0.0);
    // A single class: argmax is always 0.
    CHECK(m::sparse_categorical_accuracy(vec({0, 0}), mat(2, 1, {0.3, 0.9})) == 1.0);
}

TEST_CASE("top_k_categorical_accuracy counts ties in, as tf.math.in_top_k") {
    const MatrixXd P = cat_probs();
    const MatrixXd Y = onehot(labels, 4);
    // script: top_k k=1,2,3 -> 0.8, 1, 1. With k = 1 row 3 (label 2, tied with class 0) is a hit,
    // unlike categorical_accuracy's first-index argmax (0.6).
    CHECK(m::top_k_categorical_accuracy(Y, P, 1) == 0.8);
    CHECK(m::top_k_categorical_accuracy(Y, P, 2) == 1.0);
    CHECK(m::top_k_categorical_accuracy(Y, P, 3) == 1.0);
    CHECK(m::top_k_categorical_accuracy(Y, P) == 1.0);  // k = 5 > 4 classes: always in
}

TEST_CASE("categorical_crossentropy and sparse_categorical_crossentropy match Keras") {
    const MatrixXd P = cat_probs();
    const MatrixXd Y = onehot(labels, 4);
    CHECK(close(m::categorical_crossentropy(Y, P), 0.8481054144800364));              // script: cce
    CHECK(close(m::sparse_categorical_crossentropy(labels, P), 0.8481054144800364));  // same, one-hot
    CHECK(close(m::categorical_crossentropy(Ysoft, P), 1.1219663059681066));          // script: cce_soft
    CHECK(close(m::categorical_crossentropy(Y, X, true), 1.0014520024632017));        // script: cce_logits
    CHECK(close(m::sparse_categorical_crossentropy(labels, X, true), 1.0014520024632017));
    CHECK(close(m::categorical_crossentropy(Ysoft, X, true), 1.5814520024632017));  // script: cce_logits_soft
    // Hand: logits (0, 0) with label 0: log 2. Logits (1000, 0): stable, loss log(1 + e^-1000) = 0
    // for label 0 and 1000 for label 1 (a naive exp would overflow).
    CHECK(close(m::sparse_categorical_crossentropy(vec({0}), mat(1, 2, {0, 0}), true), std::log(2.0)));
    CHECK(m::sparse_categorical_crossentropy(vec({0}), mat(1, 2, {1000, 0}), true) == 0.0);
    CHECK(m::sparse_categorical_crossentropy(vec({1}), mat(1, 2, {1000, 0}), true) == 1000.0);
    // Hand: a probability row (0, 1) with label 0 is clipped to 1e-7: loss -log(1e-7).
    CHECK(close(m::sparse_categorical_crossentropy(vec({0}), mat(1, 2, {0, 1})), -std::log(1e-7)));
    // A -inf logit of a class that is not the target contributes exp(-inf) = 0.
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(close(m::sparse_categorical_crossentropy(vec({0}), mat(1, 3, {0, 0, -inf}), true), std::log(2.0)));
    CHECK(close(m::categorical_crossentropy(mat(1, 3, {1, 0, 0}), mat(1, 3, {0, 0, -inf}), true), std::log(2.0)));
}

TEST_CASE("confusion_matrix: row = true class, column = predicted class, 64-bit counts") {
    const VectorXd lt = vec({0, 1, 2, 2, 1, 0, 3, 3, 1, 2});
    const VectorXd lp = vec({0, 2, 2, 1, 1, 0, 3, 0, 1, 2});
    const m::CountMatrix cm = m::confusion_matrix(lt, lp, 5);
    // Hand count of (true, predicted) pairs.
    m::CountMatrix expected = m::CountMatrix::Zero(5, 5);
    expected(0, 0) = 2;
    expected(1, 1) = 2;
    expected(1, 2) = 1;
    expected(2, 2) = 2;
    expected(2, 1) = 1;
    expected(3, 3) = 1;
    expected(3, 0) = 1;
    CHECK(cm == expected);
    static_assert(std::is_same_v<m::CountMatrix::Scalar, std::int64_t>);
    CHECK(m::confusion_matrix(vec({0}), vec({0}), 1)(0, 0) == 1);
}

TEST_CASE("precision, recall and f1_score match scikit-learn for every average") {
    const VectorXd lt = vec({0, 1, 2, 2, 1, 0, 3, 3, 1, 2, 5});
    const VectorXd lp = vec({0, 2, 2, 1, 1, 0, 3, 0, 1, 2, 4});
    using A = m::Average;
    // script: prf micro / macro / weighted (class 4 only predicted, class 5 only true: both count
    // in the macro mean with score 0; label 4 has weight 0 in the weighted mean).
    CHECK(close(m::precision(lt, lp, A::Micro), 0.6363636363636364));
    CHECK(close(m::recall(lt, lp, A::Micro), 0.6363636363636364));
    CHECK(close(m::f1_score(lt, lp, A::Micro), 0.6363636363636364));
    CHECK(close(m::precision(lt, lp, A::Macro), 0.5));
    CHECK(close(m::recall(lt, lp, A::Macro), 0.47222222222222215));
    CHECK(close(m::f1_score(lt, lp, A::Macro), 0.4666666666666666));
    CHECK(close(m::precision(lt, lp, A::Weighted), 0.6666666666666666));
    CHECK(close(m::recall(lt, lp, A::Weighted), 0.6363636363636364));
    CHECK(close(m::f1_score(lt, lp, A::Weighted), 0.6303030303030303));
    // script: prf binary pos1 / pos0.
    const VectorXd bt = vec({1, 0, 1, 1, 0, 0, 1, 0, 1});
    const VectorXd bp = vec({1, 0, 0, 1, 1, 0, 1, 1, 0});
    CHECK(close(m::precision(bt, bp), 0.6));
    CHECK(close(m::recall(bt, bp), 0.6));
    CHECK(close(m::f1_score(bt, bp), 0.6));
    CHECK(close(m::precision(bt, bp, A::Binary, 0), 0.5));
    CHECK(close(m::recall(bt, bp, A::Binary, 0), 0.5));
    CHECK(close(m::f1_score(bt, bp, A::Binary, 0), 0.5));
    // Hand: no positive predicted or present -> every denominator is 0 -> 0 (zero_division).
    CHECK(m::precision(vec({0, 0}), vec({0, 0})) == 0.0);
    CHECK(m::recall(vec({0, 0}), vec({0, 0})) == 0.0);
    CHECK(m::f1_score(vec({0, 0}), vec({0, 0})) == 0.0);
}

TEST_CASE("precision with many classes and sparse labels counts only the classes present") {
    using A = m::Average;
    // Hand: labels 0, 300, 100000 (above the on-stack class table). True 0,300,100000,300 vs
    // predicted 0,300,300,300: class 0 P=R=1; class 300 P=2/3, R=1; class 100000 P=R=0.
    const VectorXd lt = vec({0, 300, 100000, 300});
    const VectorXd lp = vec({0, 300, 300, 300});
    CHECK(close(m::precision(lt, lp, A::Macro), (1 + 2.0 / 3 + 0) / 3));
    CHECK(close(m::recall(lt, lp, A::Macro), (1 + 1 + 0) / 3.0));
    CHECK(close(m::recall(lt, lp, A::Weighted), (1 * 1 + 2 * 1 + 1 * 0) / 4.0));
    // Dense many-class path (max label 400 <= 4N): same definition.
    VectorXd a(200), b(200);
    for (Eigen::Index i = 0; i < 200; ++i) {
        a(i) = static_cast<double>(2 * i);
        b(i) = static_cast<double>(i % 2 == 0 ? 2 * i : 2 * i + 1);
    }
    // 100 classes hit (P = R = F1 = 1), 100 true classes missed, 100 predicted classes wrong: the
    // macro mean over the 300 classes present is 100/300.
    CHECK(close(m::f1_score(a, b, A::Macro), 1.0 / 3));
    CHECK(close(m::precision(a, b, A::Weighted), 0.5));  // support 1 each: 100 of 200 classes score 1
}

TEST_CASE("roc_auc is the Mann-Whitney statistic with ties counted as half") {
    CHECK(m::roc_auc(vec({0, 0, 1, 1, 0, 1, 1, 0}), vec({0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.2})) ==
          0.8125);                     // script: auc
    CHECK(m::roc_auc(y, p) == 0.875);  // script: auc_basic
    // Hand: all scores equal -> every pair tied -> 0.5; perfectly separated -> 1; reversed -> 0.
    CHECK(m::roc_auc(vec({0, 1, 0, 1}), vec({0.3, 0.3, 0.3, 0.3})) == 0.5);
    CHECK(m::roc_auc(vec({0, 0, 1}), vec({0.1, 0.2, 0.9})) == 1.0);
    CHECK(m::roc_auc(vec({1, 1, 0}), vec({0.1, 0.2, 0.9})) == 0.0);
}

TEST_CASE("a NaN prediction propagates into losses and is never above a threshold") {
    // binary_accuracy: NaN predicts 0, which matches y = 0 and misses y = 1.
    CHECK(m::binary_accuracy(vec({0, 1}), vec({kNaN, kNaN})) == 0.5);
    CHECK(std::isnan(m::binary_crossentropy(vec({0, 1}), vec({0.5, kNaN}))));
    CHECK(std::isnan(m::binary_crossentropy(vec({0, 1}), vec({0.5, kNaN}), true)));
    CHECK(std::isnan(m::mean_squared_error(vec({0, 1}), vec({0.5, kNaN}))));
    CHECK(std::isnan(m::mean_absolute_error(vec({0, 1}), vec({0.5, kNaN}))));
    // Long inputs: a NaN in the SIMD part and in the scalar tail.
    VectorXd t = VectorXd::Zero(1001);
    VectorXd q = VectorXd::Constant(1001, 0.25);
    q(500) = kNaN;
    CHECK(std::isnan(m::binary_crossentropy(t, q)));
    CHECK(std::isnan(m::binary_crossentropy(t, q, true)));
    q(500) = 0.25;
    q(1000) = kNaN;
    CHECK(std::isnan(m::binary_crossentropy(t, q)));
    CHECK(m::binary_accuracy(t, q) == 1.0);  // NaN -> 0 == y
    // Categorical losses: a NaN anywhere in the row.
    CHECK(std::isnan(m::sparse_categorical_crossentropy(vec({0, 1}), mat(2, 3, {0.2, 0.3, 0.5, 0.1, 0.2, kNaN}))));
    CHECK(
        std::isnan(m::sparse_categorical_crossentropy(vec({0, 1}), mat(2, 3, {0.2, 0.3, 0.5, kNaN, 0.2, 0.1}), true)));
    CHECK(std::isnan(m::categorical_crossentropy(mat(1, 3, {0, 1, 0}), mat(1, 3, {kNaN, 0.2, 0.1}))));
    CHECK(std::isnan(m::categorical_crossentropy(mat(1, 3, {0, 1, 0}), mat(1, 3, {0.3, 0.2, kNaN}), true)));
    // argmax treats NaN as the largest, first one wins (numpy.argmax).
    CHECK(m::sparse_categorical_accuracy(vec({1}), mat(1, 3, {0.1, kNaN, 0.5})) == 1.0);
    CHECK(m::sparse_categorical_accuracy(vec({1}), mat(1, 3, {kNaN, 0.9, kNaN})) == 0.0);
    CHECK(m::sparse_categorical_accuracy(vec({0}), mat(1, 3, {kNaN, 0.9, kNaN})) == 1.0);
    // top-k: a NaN target score is never in the top k; a NaN elsewhere never ranks above it.
    CHECK(m::top_k_categorical_accuracy(mat(1, 3, {1, 0, 0}), mat(1, 3, {kNaN, 0.2, 0.1}), 3) == 0.0);
    CHECK(m::top_k_categorical_accuracy(mat(1, 3, {1, 0, 0}), mat(1, 3, {0.3, kNaN, kNaN}), 1) == 1.0);
    // roc_auc: NaN.
    CHECK(std::isnan(m::roc_auc(vec({0, 1}), vec({0.2, kNaN}))));
}

TEST_CASE("elementwise metrics reject different shapes, empty input and bad targets") {
    const VectorXd y4 = vec({1, 0, 1, 0});
    const VectorXd p5 = vec({1, 0, 1, 0, 1});
    std::string e = error_of([&] { (void)m::binary_accuracy(y4, p5); });
    CHECK(e == "traincb: metrics::binary_accuracy: y_true is 4x1 but y_pred is 5x1; pass matrices of the same shape");
    CHECK(has(error_of([&] { (void)m::binary_crossentropy(y4, p5); }),
              "metrics::binary_crossentropy: y_true is 4x1 but y_pred is 5x1"));
    CHECK(has(error_of([&] { (void)m::mean_squared_error(y4, p5); }),
              "metrics::mean_squared_error: y_true is 4x1 but y_pred is 5x1"));
    CHECK(has(error_of([&] { (void)m::mean_absolute_error(y4, p5); }), "metrics::mean_absolute_error: y_true is 4x1"));
    CHECK(has(error_of([&] { (void)m::mean_absolute_error(y4, y4.transpose()); }), "y_true is 4x1 but y_pred is 1x4"));
    const VectorXd empty(0);
    for (const auto& msg : {error_of([&] { (void)m::binary_accuracy(empty, empty); }),
                            error_of([&] { (void)m::binary_crossentropy(empty, empty); }),
                            error_of([&] { (void)m::mean_squared_error(empty, empty); }),
                            error_of([&] { (void)m::mean_absolute_error(empty, empty); })})
        CHECK(has(msg, "y_true is empty (0x1); pass at least one sample"));
    // Targets: 0 or 1 for accuracy, [0, 1] for cross-entropy; the message names the element.
    e = error_of([&] { (void)m::binary_accuracy(vec({1, 0, 0.5}), vec({1, 0, 1})); });
    CHECK(e == "traincb: metrics::binary_accuracy: y_true(2, 0) is 0.5; binary targets must be 0 or 1");
    CHECK(has(error_of([&] { (void)m::binary_accuracy(vec({2, 0}), vec({1, 0})); }), "y_true(0, 0) is 2"));
    CHECK(has(error_of([&] { (void)m::binary_accuracy(vec({kNaN, 0}), vec({1, 0})); }), "y_true(0, 0) is nan"));
    e = error_of([&] { (void)m::binary_crossentropy(vec({1, 1.5}), vec({0.5, 0.5})); });
    CHECK(e ==
          "traincb: metrics::binary_crossentropy: y_true(1, 0) is 1.5; binary cross-entropy targets must be in [0, 1]");
    CHECK(has(error_of([&] {
                  (void)m::binary_crossentropy(vec({-0.1, 1}), vec({0.5, 0.5}), true);
              }),
              "y_true(0, 0) is -0.1"));
    CHECK(has(error_of([&] { (void)m::binary_crossentropy(vec({kNaN}), vec({0.5})); }), "y_true(0, 0) is nan"));
    // A bad target deep in a long input (SIMD part) is found too.
    VectorXd t = VectorXd::Zero(5000);
    t(4321) = 3;
    CHECK(has(error_of([&] { (void)m::binary_accuracy(t, VectorXd::Zero(5000)); }), "y_true(4321, 0) is 3"));
    CHECK(has(error_of([&] { (void)m::binary_crossentropy(t, VectorXd::Zero(5000)); }), "y_true(4321, 0) is 3"));
    CHECK(has(error_of([&] { (void)m::binary_accuracy(y4, y4, kNaN); }), "threshold is nan"));
}

TEST_CASE("categorical metrics reject different shapes, empty input, bad labels and k < 1") {
    const MatrixXd P = cat_probs();
    const MatrixXd Y = onehot(labels, 4);
    CHECK(error_of([&] { (void)m::categorical_accuracy(Y.leftCols(3), P); }) ==
          "traincb: metrics::categorical_accuracy: y_true is 5x3 but y_pred is 5x4; pass matrices of the same shape");
    CHECK(has(error_of([&] { (void)m::categorical_crossentropy(Y.topRows(4), P); }),
              "metrics::categorical_crossentropy: y_true is 4x4 but y_pred is 5x4"));
    CHECK(has(error_of([&] { (void)m::top_k_categorical_accuracy(Y.topRows(4), P); }),
              "y_true is 4x4 but y_pred is 5x4"));
    const MatrixXd e0(0, 4), e1(3, 0);
    CHECK(has(error_of([&] { (void)m::categorical_accuracy(e0, e0); }), "y_true is empty (0x4)"));
    CHECK(has(error_of([&] { (void)m::categorical_accuracy(e1, e1); }), "is empty (3x0)"));
    CHECK(has(error_of([&] { (void)m::categorical_crossentropy(e0, e0); }), "y_true is empty (0x4)"));
    CHECK(has(error_of([&] { (void)m::categorical_crossentropy(e1, e1, true); }), "is empty (3x0)"));
    CHECK(has(error_of([&] { (void)m::top_k_categorical_accuracy(e0, e0); }), "is empty"));
    CHECK(error_of([&] { (void)m::top_k_categorical_accuracy(Y, P, 0); }) ==
          "traincb: metrics::top_k_categorical_accuracy: k is 0; pass k >= 1");
    // Sparse: labels must be a vector with one entry per row of whole numbers in [0, C).
    for (const char* fn : {"sparse_categorical_accuracy", "sparse_categorical_crossentropy"}) {
        const bool acc = std::string(fn) == "sparse_categorical_accuracy";
        auto call = [&](const auto& l, const auto& pred) {
            return error_of([&] {
                if (acc)
                    (void)m::sparse_categorical_accuracy(l, pred);
                else
                    (void)m::sparse_categorical_crossentropy(l, pred, true);
            });
        };
        INFO(fn);
        CHECK(call(Y, P) == std::string("traincb: metrics::") + fn + ": labels is 5x4; pass a vector (N x 1 or 1 x N)");
        CHECK(call(vec({1, 0, 3, 2}), P) ==
              std::string("traincb: metrics::") + fn +
                  ": labels has 4 elements but y_pred has 5 rows (5x4); pass one class index per row");
        CHECK(has(call(VectorXd(0), MatrixXd(0, 4)), "y_pred is empty (0x4)"));
        CHECK(has(call(vec({1, 2}), MatrixXd(2, 0)), "y_pred is empty (2x0)"));
        CHECK(call(vec({1, 0, 2.5, 2, 2}), P) ==
              std::string("traincb: metrics::") + fn +
                  ": labels(2) is 2.5; class indices must be whole numbers in [0, 4)");
        CHECK(has(call(vec({1, 0, 3, 4, 2}), P), "labels(3) is 4; class indices must be whole numbers in [0, 4)"));
        CHECK(has(call(vec({1, -1, 3, 3, 2}), P), "labels(1) is -1;"));
        CHECK(has(call(vec({1, 0, 3, 3, kNaN}), P), "labels(4) is nan;"));
        // Row vectors of labels are vectors too.
        CHECK(call(labels.transpose(), P) == "<no exception>");
    }
    // Integer labels out of range.
    Eigen::VectorXi li(2);
    li << 0, 7;
    CHECK(has(error_of([&] { (void)m::sparse_categorical_accuracy(li, P.topRows(2)); }),
              "labels(1) is 7; class indices must be whole numbers in [0, 4)"));
}

TEST_CASE("confusion_matrix, precision, recall, f1_score and roc_auc reject bad input") {
    const VectorXd a = vec({0, 1, 1});
    const VectorXd b = vec({0, 1});
    CHECK(error_of([&] { (void)m::confusion_matrix(a, a, 0); }) ==
          "traincb: metrics::confusion_matrix: num_classes is 0; pass num_classes >= 1");
    CHECK(error_of([&] { (void)m::confusion_matrix(a, b, 2); }) ==
          "traincb: metrics::confusion_matrix: labels_true has 3 elements but labels_pred has 2; pass one predicted "
          "label per true label");
    CHECK(has(error_of([&] { (void)m::confusion_matrix(MatrixXd::Zero(2, 2), b, 2); }),
              "labels_true is 2x2; pass a vector"));
    CHECK(has(error_of([&] { (void)m::confusion_matrix(VectorXd(0), VectorXd(0), 2); }), "labels_true is empty (0x1)"));
    CHECK(has(error_of([&] {
                  (void)m::confusion_matrix(a, vec({0, 2, 1}), 2);
              }),
              "labels_pred(1) is 2; class indices must be whole numbers in [0, 2)"));
    CHECK(has(error_of([&] { (void)m::confusion_matrix(vec({0, 0.5, 1}), a, 2); }), "labels_true(1) is 0.5"));
    for (int which = 0; which < 3; ++which) {
        auto call = [&](const VectorXd& t, const VectorXd& pr, m::Average avg = m::Average::Binary,
                        std::int64_t pos = 1) {
            return error_of([&] {
                if (which == 0) (void)m::precision(t, pr, avg, pos);
                if (which == 1) (void)m::recall(t, pr, avg, pos);
                if (which == 2) (void)m::f1_score(t, pr, avg, pos);
            });
        };
        const std::string fn = which == 0 ? "metrics::precision" : which == 1 ? "metrics::recall" : "metrics::f1_score";
        INFO(fn);
        CHECK(has(call(a, b), fn + ": labels_true has 3 elements but labels_pred has 2"));
        CHECK(has(call(VectorXd(0), VectorXd(0)), fn + ": labels_true is empty"));
        CHECK(
            has(call(vec({0, 1.5}), b, m::Average::Macro), "labels_true(1) is 1.5; labels must be whole numbers >= 0"));
        CHECK(has(call(b, vec({-1, 0}), m::Average::Micro), "labels_pred(0) is -1; labels must be whole numbers >= 0"));
        CHECK(has(call(b, vec({0, kNaN}), m::Average::Weighted), "labels_pred(1) is nan"));
        CHECK(has(call(vec({0, 2}), b), "labels_true(1) is 2 but average = Average::Binary needs labels 0 or 1"));
        CHECK(
            has(call(b, b, m::Average::Binary, 2), "pos_label is 2 but average = Average::Binary needs labels 0 or 1"));
        CHECK(call(vec({0, 2}), b, m::Average::Macro) == "<no exception>");
    }
    CHECK(error_of([&] {
              (void)m::roc_auc(vec({0, 0, 0}), vec({0.1, 0.2, 0.3}));
          }) ==
          "traincb: metrics::roc_auc: y_true holds only class 0 (3 samples); ROC AUC is undefined with one class; pass "
          "samples of both classes");
    CHECK(has(error_of([&] {
                  (void)m::roc_auc(vec({1, 1}), vec({0.1, 0.2}));
              }),
              "y_true holds only class 1 (2 samples)"));
    CHECK(has(error_of([&] {
                  (void)m::roc_auc(vec({1, 0.5}), vec({0.1, 0.2}));
              }),
              "y_true(1) is 0.5; ROC AUC targets must be 0 or 1"));
    CHECK(has(error_of([&] { (void)m::roc_auc(a, b); }), "y_true has 3 elements but scores has 2"));
    CHECK(has(error_of([&] { (void)m::roc_auc(VectorXd(0), VectorXd(0)); }), "y_true is empty"));
    CHECK(has(error_of([&] { (void)m::roc_auc(MatrixXd::Zero(2, 2), b); }), "y_true is 2x2; pass a vector"));
}

}  // namespace test_metrics
