// Tests for traincb/metrics.hpp over every kind of input: float and double, column- and row-major,
// Arrays, Blocks, Maps with outer and inner strides, Refs, unevaluated and product expressions,
// integer labels; sizes that exercise the SIMD tails, the block boundaries (4096 elements, 1024
// rows) and one class. Each metric is compared with a naive reference written here straight from
// the definitions (plain loops, std::log / std::exp / std::log1p, one element at a time), which
// shares no code with traincb. All data are exactly representable in float, so every layout
// holds the same numbers and the same reference applies, to 1e-9 relative.
//
// test_metrics_nosimd.cpp includes this file with TRAINCB_METRICS_NO_SIMD defined, to run the same
// checks on the portable scalar path.
#include "catch.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <traincb/metrics.hpp>
#include <vector>

namespace test_metrics_layouts {

namespace {

namespace m = traincb::metrics;
using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// ---- The reference: the definitions, one element at a time ----
namespace ref {
constexpr double eps = 1e-7;
double clip(double p) {
    return p < eps ? eps : (p > 1 - eps ? 1 - eps : p);
}
Index argmax(const MatrixXd& x, Index r) {
    Index best = 0;
    for (Index c = 1; c < x.cols(); ++c)
        if (x(r, c) > x(r, best)) best = c;
    return best;
}
double binary_accuracy(const MatrixXd& y, const MatrixXd& p, double t) {
    double hits = 0;
    for (Index i = 0; i < y.size(); ++i) hits += ((p.data()[i] > t ? 1.0 : 0.0) == y.data()[i]) ? 1 : 0;
    return hits / static_cast<double>(y.size());
}
double bce(const MatrixXd& y, const MatrixXd& p) {
    double s = 0;
    for (Index i = 0; i < y.size(); ++i) {
        const double q = clip(p.data()[i]);
        const double t = y.data()[i];
        s += -(t * std::log(q) + (1 - t) * std::log(1 - q));
    }
    return s / static_cast<double>(y.size());
}
double bce_logits(const MatrixXd& y, const MatrixXd& x) {
    double s = 0;
    for (Index i = 0; i < y.size(); ++i) {
        const double v = x.data()[i];
        s += std::max(v, 0.0) - v * y.data()[i] + std::log1p(std::exp(-std::fabs(v)));
    }
    return s / static_cast<double>(y.size());
}
double mse(const MatrixXd& y, const MatrixXd& p) {
    double s = 0;
    for (Index i = 0; i < y.size(); ++i) s += (y.data()[i] - p.data()[i]) * (y.data()[i] - p.data()[i]);
    return s / static_cast<double>(y.size());
}
double mae(const MatrixXd& y, const MatrixXd& p) {
    double s = 0;
    for (Index i = 0; i < y.size(); ++i) s += std::fabs(y.data()[i] - p.data()[i]);
    return s / static_cast<double>(y.size());
}
double categorical_accuracy(const MatrixXd& y, const MatrixXd& p) {
    double hits = 0;
    for (Index r = 0; r < y.rows(); ++r) hits += argmax(y, r) == argmax(p, r) ? 1 : 0;
    return hits / static_cast<double>(y.rows());
}
double top_k(const MatrixXd& y, const MatrixXd& p, int k) {
    double hits = 0;
    for (Index r = 0; r < y.rows(); ++r) {
        const double xt = p(r, argmax(y, r));
        int above = 0;
        for (Index c = 0; c < p.cols(); ++c) above += p(r, c) > xt ? 1 : 0;
        hits += above < k ? 1 : 0;
    }
    return hits / static_cast<double>(y.rows());
}
double cce(const MatrixXd& y, const MatrixXd& p) {
    double s = 0;
    for (Index r = 0; r < y.rows(); ++r) {
        double total = 0;
        for (Index c = 0; c < p.cols(); ++c) total += p(r, c);
        for (Index c = 0; c < p.cols(); ++c)
            if (y(r, c) != 0) s -= y(r, c) * std::log(clip(p(r, c) / total));
    }
    return s / static_cast<double>(y.rows());
}
double cce_logits(const MatrixXd& y, const MatrixXd& x) {
    double s = 0;
    for (Index r = 0; r < y.rows(); ++r) {
        double mx = x(r, 0);
        for (Index c = 1; c < x.cols(); ++c) mx = std::max(mx, x(r, c));
        double se = 0;
        for (Index c = 0; c < x.cols(); ++c) se += std::exp(x(r, c) - mx);
        const double lse = mx + std::log(se);
        for (Index c = 0; c < x.cols(); ++c)
            if (y(r, c) != 0) s += y(r, c) * (lse - x(r, c));
    }
    return s / static_cast<double>(y.rows());
}
MatrixXd onehot(const VectorXd& l, Index c) {
    MatrixXd out = MatrixXd::Zero(l.size(), c);
    for (Index i = 0; i < l.size(); ++i) out(i, static_cast<Index>(l(i))) = 1;
    return out;
}
struct Counts {
    std::vector<double> tp, nt, np;
};
// scikit-learn: P = TP/(TP+FP), R = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN), 0 on a zero denominator.
double score(int which, double tp, double nt, double np) {
    const double num = which == 2 ? 2 * tp : tp;
    const double den = which == 0 ? np : which == 1 ? nt : nt + np;
    return den > 0 ? num / den : 0.0;
}
double prf(int which, const VectorXd& lt, const VectorXd& lp, m::Average avg, int pos) {
    Index classes = 0;
    for (Index i = 0; i < lt.size(); ++i)
        classes = std::max({classes, static_cast<Index>(lt(i)) + 1, static_cast<Index>(lp(i)) + 1});
    std::vector<double> tp(static_cast<std::size_t>(classes)), nt(tp), np(tp);
    for (Index i = 0; i < lt.size(); ++i) {
        const auto t = static_cast<std::size_t>(lt(i));
        const auto p = static_cast<std::size_t>(lp(i));
        tp[t] += t == p ? 1 : 0;
        nt[t] += 1;
        np[p] += 1;
    }
    if (avg == m::Average::Binary) {
        const auto c = static_cast<std::size_t>(pos);
        return c < tp.size() ? score(which, tp[c], nt[c], np[c]) : 0.0;
    }
    if (avg == m::Average::Micro) {
        double stp = 0, snt = 0, snp = 0;
        for (std::size_t c = 0; c < tp.size(); ++c) {
            stp += tp[c];
            snt += nt[c];
            snp += np[c];
        }
        return score(which, stp, snt, snp);
    }
    double acc = 0, w = 0;
    for (std::size_t c = 0; c < tp.size(); ++c) {
        if (nt[c] + np[c] == 0) continue;
        const double wc = avg == m::Average::Macro ? 1.0 : nt[c];
        acc += wc * score(which, tp[c], nt[c], np[c]);
        w += wc;
    }
    return acc / w;
}
// AUC as the probability that a random positive outranks a random negative (ties half), by
// comparing every pair: O(N^2), nothing in common with the sort-based count.
double auc(const VectorXd& y, const VectorXd& s) {
    double num = 0, pairs = 0;
    for (Index i = 0; i < y.size(); ++i)
        for (Index j = 0; j < y.size(); ++j)
            if (y(i) == 1 && y(j) == 0) {
                num += s(i) > s(j) ? 1.0 : (s(i) == s(j) ? 0.5 : 0.0);
                pairs += 1;
            }
    return num / pairs;
}
}  // namespace ref

bool close(double a, double b) {
    return std::fabs(a - b) <= 1e-9 * std::fabs(b) || (std::isnan(a) && std::isnan(b));
}

// ---- Data: every value is exact in float ----
float f32(double v) {
    return static_cast<float>(v);
}

MatrixXd uniform(Index r, Index c, std::uint64_t seed, double lo, double hi) {
    std::mt19937_64 g(seed);
    std::uniform_real_distribution<double> u(lo, hi);
    MatrixXd out(r, c);
    for (Index i = 0; i < out.size(); ++i) out.data()[i] = f32(u(g));
    return out;
}
MatrixXd bits(Index r, Index c, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    MatrixXd out(r, c);
    for (Index i = 0; i < out.size(); ++i) out.data()[i] = static_cast<double>(g() % 2);
    return out;
}
VectorXd classes(Index n, Index c, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    VectorXd out(n);
    for (Index i = 0; i < n; ++i) out(i) = static_cast<double>(g() % static_cast<std::uint64_t>(c));
    return out;
}
// Probabilities with ties (values on a grid of 1/8) so that argmax tie-breaking is exercised.
MatrixXd grid(Index r, Index c, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    MatrixXd out(r, c);
    for (Index i = 0; i < out.size(); ++i) out.data()[i] = static_cast<double>(g() % 8 + 1) / 8.0;
    return out;
}

// ---- The layouts ----

// A few layouts for the cross product of two inputs.
template <class F>
void core_layouts(const MatrixXd& m0, F&& f) {
    f("col-major double", m0);
    const RowMatD rm = m0;
    f("row-major double", rm);
    const Eigen::MatrixXf mf = m0.cast<float>();
    f("col-major float", mf);
    f("unevaluated expression", (m0.array() * 1.0).matrix());
}

// The others, each paired with a column-major double.
template <class F>
void more_layouts(const MatrixXd& m0, F&& f) {
    const Index rows = m0.rows(), cols = m0.cols();
    const RowMatF rmf = m0.cast<float>();
    f("row-major float", rmf);
    const Eigen::ArrayXXd arr = m0.array();
    f("array", arr);
    MatrixXd big = MatrixXd::Constant(rows + 3, cols + 2, 777.0);
    big.block(2, 1, rows, cols) = m0;
    f("block of a column-major matrix", big.block(2, 1, rows, cols));
    const Eigen::Map<const MatrixXd, 0, Eigen::OuterStride<>> padded(big.data() + 2 + big.rows(), rows, cols,
                                                                     Eigen::OuterStride<>(big.rows()));
    f("map with outer stride", padded);
    std::vector<double> buf(static_cast<std::size_t>(2 * m0.size() + 1), 555.0);
    for (Index c = 0; c < cols; ++c)
        for (Index r = 0; r < rows; ++r) buf[static_cast<std::size_t>(2 * (r + c * rows))] = m0(r, c);
    const Eigen::Map<const MatrixXd, 0, Eigen::Stride<Eigen::Dynamic, 2>> strided(
        buf.data(), rows, cols, Eigen::Stride<Eigen::Dynamic, 2>(2 * rows, 2));
    f("map with inner stride 2", strided);
    const RowMatD bigr = big;
    f("block of a row-major matrix", bigr.block(2, 1, rows, cols));
    Eigen::MatrixXf bigf = big.cast<float>();
    f("block of a float matrix", bigf.block(2, 1, rows, cols));
    const Eigen::Ref<const MatrixXd> r(m0);
    f("Ref", r);
    f("product expression", m0 * MatrixXd::Identity(cols, cols));
    const Eigen::MatrixXf mf = m0.cast<float>();
    f("cast expression", mf.cast<double>());
    const RowMatD t = m0.transpose();
    f("transpose of a row-major matrix", t.transpose());
}

// Label vectors in every form (values are class indices).
template <class F>
void label_layouts(const VectorXd& l, F&& f) {
    f("VectorXd", l);
    const Eigen::VectorXi li = l.cast<int>();
    f("VectorXi", li);
    const Eigen::MatrixXf lf = l.cast<float>();
    f("N x 1 float matrix", lf);
    const Eigen::RowVectorXd row = l.transpose();
    f("row vector", row);
    const Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> l64 = l.cast<std::int64_t>();
    f("int64 vector", l64);
    MatrixXd big = MatrixXd::Constant(l.size() + 1, 3, 9.0);
    big.col(1).tail(l.size()) = l;
    f("column block", big.col(1).tail(l.size()));
    f("expression", li.cast<double>());
    const RowMatD bigr = big;
    f("column of a row-major matrix", bigr.col(1).tail(l.size()));
}

#define TRAINCB_CHECK_CLOSE(got, want)        \
    do {                                      \
        const double g_ = (got);              \
        const double w_ = (want);             \
        INFO("got " << g_ << " want " << w_); \
        CHECK(close(g_, w_));                 \
    } while (0)

// Runs fn(t, p) for core x core layouts and for every other layout of each input.
template <class Fn>
void over_pairs(const MatrixXd& t, const MatrixXd& p, double want, Fn&& fn) {
    core_layouts(t, [&](const char* tn, const auto& tv) {
        core_layouts(p, [&](const char* pn, const auto& pv) {
            INFO("y_true: " << tn << ", y_pred: " << pn);
            TRAINCB_CHECK_CLOSE(fn(tv, pv), want);
        });
    });
    more_layouts(t, [&](const char* tn, const auto& tv) {
        INFO("y_true: " << tn);
        TRAINCB_CHECK_CLOSE(fn(tv, p), want);
    });
    more_layouts(p, [&](const char* pn, const auto& pv) {
        INFO("y_pred: " << pn);
        TRAINCB_CHECK_CLOSE(fn(t, pv), want);
    });
}

template <class Fn>
void over_labels(const VectorXd& l, const MatrixXd& p, double want, Fn&& fn) {
    label_layouts(l, [&](const char* ln, const auto& lv) {
        core_layouts(p, [&](const char* pn, const auto& pv) {
            INFO("labels: " << ln << ", y_pred: " << pn);
            TRAINCB_CHECK_CLOSE(fn(lv, pv), want);
        });
    });
    more_layouts(p, [&](const char* pn, const auto& pv) {
        INFO("y_pred: " << pn);
        TRAINCB_CHECK_CLOSE(fn(l, pv), want);
    });
}

// Shapes: SIMD tails (1, 3, 37), more than one elementwise block (5000), several columns, a row.
const std::vector<std::pair<Index, Index>> kElementwiseShapes = {{1, 1}, {3, 1}, {37, 1},  {5000, 1},
                                                                 {7, 3}, {1, 9}, {1500, 3}};
// Row-wise: tails, one class, more than one row block (1100 > 1024), many classes.
const std::vector<std::pair<Index, Index>> kCategoricalShapes = {{1, 3}, {5, 1}, {37, 4}, {1100, 3}, {6, 300}};

}  // namespace

TEST_CASE("elementwise metrics equal the reference for every layout and scalar type") {
    std::uint64_t seed = 1;
    for (const auto& [rows, cols] : kElementwiseShapes) {
        INFO("shape " << rows << "x" << cols);
        const MatrixXd y = bits(rows, cols, seed++);
        const MatrixXd soft = uniform(rows, cols, seed++, 0.0, 1.0);
        const MatrixXd p = uniform(rows, cols, seed++, 0.0, 1.0);
        const MatrixXd x = uniform(rows, cols, seed++, -12.0, 12.0);
        over_pairs(y, p, ref::binary_accuracy(y, p, 0.5),
                   [](const auto& a, const auto& b) { return m::binary_accuracy(a, b); });
        over_pairs(y, p, ref::binary_accuracy(y, p, 0.25),
                   [](const auto& a, const auto& b) { return m::binary_accuracy(a, b, 0.25); });
        over_pairs(y, p, ref::bce(y, p), [](const auto& a, const auto& b) { return m::binary_crossentropy(a, b); });
        over_pairs(soft, p, ref::bce(soft, p),
                   [](const auto& a, const auto& b) { return m::binary_crossentropy(a, b); });
        over_pairs(y, x, ref::bce_logits(y, x),
                   [](const auto& a, const auto& b) { return m::binary_crossentropy(a, b, true); });
        over_pairs(soft, x, ref::bce_logits(soft, x),
                   [](const auto& a, const auto& b) { return m::binary_crossentropy(a, b, true); });
        over_pairs(soft, x, ref::mse(soft, x),
                   [](const auto& a, const auto& b) { return m::mean_squared_error(a, b); });
        over_pairs(soft, x, ref::mae(soft, x),
                   [](const auto& a, const auto& b) { return m::mean_absolute_error(a, b); });
    }
}

TEST_CASE("binary cross-entropy mixing hard and soft targets in one input equals the reference") {
    // Soft targets scattered among hard ones, so SIMD packets of both kinds and mixed packets occur.
    MatrixXd y = bits(4001, 1, 11);
    const MatrixXd soft = uniform(4001, 1, 12, 0.0, 1.0);
    for (Index i = 0; i < y.size(); i += 7) y(i) = soft(i);
    const MatrixXd p = uniform(4001, 1, 13, -0.1, 1.1);  // also outside [0, 1]: clipped
    TRAINCB_CHECK_CLOSE(m::binary_crossentropy(y, p), ref::bce(y, p));
    const Eigen::MatrixXf yf = y.cast<float>(), pf = p.cast<float>();
    TRAINCB_CHECK_CLOSE(m::binary_crossentropy(yf, pf), ref::bce(y, p));
}

TEST_CASE("categorical metrics equal the reference for every layout and scalar type") {
    std::uint64_t seed = 100;
    for (const auto& [rows, cols] : kCategoricalShapes) {
        INFO("shape " << rows << "x" << cols);
        const VectorXd l = classes(rows, cols, seed++);
        const MatrixXd y = ref::onehot(l, cols);
        const MatrixXd soft = uniform(rows, cols, seed++, 0.0, 1.0);
        const MatrixXd p = grid(rows, cols, seed++);
        const MatrixXd x = uniform(rows, cols, seed++, -20.0, 20.0);
        over_pairs(y, p, ref::categorical_accuracy(y, p),
                   [](const auto& a, const auto& b) { return m::categorical_accuracy(a, b); });
        over_pairs(soft, p, ref::categorical_accuracy(soft, p),
                   [](const auto& a, const auto& b) { return m::categorical_accuracy(a, b); });
        for (int k : {1, 2, 5})
            over_pairs(y, p, ref::top_k(y, p, k),
                       [k](const auto& a, const auto& b) { return m::top_k_categorical_accuracy(a, b, k); });
        over_pairs(y, p, ref::cce(y, p),
                   [](const auto& a, const auto& b) { return m::categorical_crossentropy(a, b); });
        over_pairs(soft, p, ref::cce(soft, p),
                   [](const auto& a, const auto& b) { return m::categorical_crossentropy(a, b); });
        over_pairs(y, x, ref::cce_logits(y, x),
                   [](const auto& a, const auto& b) { return m::categorical_crossentropy(a, b, true); });
        over_pairs(soft, x, ref::cce_logits(soft, x),
                   [](const auto& a, const auto& b) { return m::categorical_crossentropy(a, b, true); });
        over_labels(l, p, ref::categorical_accuracy(y, p),
                    [](const auto& a, const auto& b) { return m::sparse_categorical_accuracy(a, b); });
        over_labels(l, p, ref::cce(y, p),
                    [](const auto& a, const auto& b) { return m::sparse_categorical_crossentropy(a, b); });
        over_labels(l, x, ref::cce_logits(y, x),
                    [](const auto& a, const auto& b) { return m::sparse_categorical_crossentropy(a, b, true); });
    }
}

TEST_CASE("label metrics equal the reference for every label layout") {
    std::uint64_t seed = 200;
    for (const Index n : {Index{1}, Index{9}, Index{600}}) {
        for (const Index c : {Index{2}, Index{5}}) {
            INFO("n " << n << ", classes " << c);
            const VectorXd lt = classes(n, c, seed++);
            const VectorXd lp = classes(n, c, seed++);
            using A = m::Average;
            const A avgs[] = {A::Binary, A::Micro, A::Macro, A::Weighted};
            for (const A avg : avgs) {
                if (avg == A::Binary && c != 2) continue;
                for (int which = 0; which < 3; ++which) {
                    const double want = ref::prf(which, lt, lp, avg, 1);
                    const auto fn = [&](const auto& a, const auto& b) {
                        return which == 0   ? m::precision(a, b, avg)
                               : which == 1 ? m::recall(a, b, avg)
                                            : m::f1_score(a, b, avg);
                    };
                    label_layouts(lt, [&](const char* an, const auto& av) {
                        INFO("labels_true: " << an << ", average " << m::to_string(avg) << ", score " << which);
                        TRAINCB_CHECK_CLOSE(fn(av, lp), want);
                    });
                    label_layouts(lp, [&](const char* bn, const auto& bv) {
                        INFO("labels_pred: " << bn << ", average " << m::to_string(avg) << ", score " << which);
                        TRAINCB_CHECK_CLOSE(fn(lt, bv), want);
                    });
                }
            }
            m::CountMatrix want = m::CountMatrix::Zero(c, c);
            for (Index i = 0; i < n; ++i) ++want(static_cast<Index>(lt(i)), static_cast<Index>(lp(i)));
            label_layouts(lt, [&](const char* an, const auto& av) {
                label_layouts(lp, [&](const char* bn, const auto& bv) {
                    INFO(an << " / " << bn);
                    CHECK(m::confusion_matrix(av, bv, c) == want);
                });
            });
        }
    }
}

TEST_CASE("roc_auc equals the all-pairs reference for every layout") {
    for (const Index n : {Index{2}, Index{3}, Index{50}, Index{701}}) {
        VectorXd y = bits(n, 1, static_cast<std::uint64_t>(300 + n));
        y(0) = 0;
        y(1) = 1;
        const VectorXd s = grid(n, 1, static_cast<std::uint64_t>(400 + n));  // many ties
        const double want = ref::auc(y, s);
        label_layouts(y, [&](const char* yn, const auto& yv) {
            INFO("y_true: " << yn << ", n " << n);
            TRAINCB_CHECK_CLOSE(m::roc_auc(yv, s), want);
        });
        more_layouts(MatrixXd(s), [&](const char* sn, const auto& sv) {
            INFO("scores: " << sn << ", n " << n);
            TRAINCB_CHECK_CLOSE(m::roc_auc(y, sv), want);
        });
        const Eigen::VectorXf sf = s.cast<float>();
        TRAINCB_CHECK_CLOSE(m::roc_auc(y, sf), want);
    }
}

TEST_CASE("the vector exp and log agree with the C library") {
    // The SIMD kernels' own transcendental functions (detail), against std::exp / std::log, at
    // whatever width the build selected (2 lanes with SSE2, 4 with AVX2): each lane draws from the
    // four input kinds in turn, so every kind meets every lane.
    namespace simd = traincb::detail::simd;
    constexpr int kLanes = simd::VD::size;
    std::mt19937_64 g(5);
    std::uniform_real_distribution<double> ux(-745.0, 0.0), ue(-300.0, 300.0), u01(0, 1), uh(-0.5, 0.5);
    double worst_exp = 0, worst_log = 0;
    for (int i = 0; i < 20000; ++i) {
        double xs[kLanes];
        double ys[kLanes];
        for (int k = 0; k < kLanes; ++k) {
            switch ((i + k) % 4) {
                case 0:
                    xs[k] = ux(g);
                    ys[k] = std::pow(10.0, ue(g));
                    break;
                case 1:
                    xs[k] = -std::ldexp(u01(g), -static_cast<int>(g() % 60));
                    ys[k] = 1 + uh(g);
                    break;
                case 2:
                    xs[k] = ux(g) / 100;
                    ys[k] = std::ldexp(1 + u01(g), -1074 + static_cast<int>(g() % 60));
                    break;
                default:
                    xs[k] = -u01(g);
                    ys[k] = std::sqrt(2.0) * (1 + uh(g) / 1000);
                    break;
            }
        }
        const simd::VD e = simd::exp_nonpositive(simd::VD::load(xs));
        const simd::VD lg = simd::log(simd::VD::load(ys));
        for (int k = 0; k < kLanes; ++k) {
            const double want_e = xs[k] < -708 ? 0.0 : std::exp(xs[k]);
            if (want_e != 0)
                worst_exp = std::max(worst_exp, std::fabs(e.lane(k) - want_e) / want_e);
            else
                CHECK(e.lane(k) == 0.0);
            worst_log = std::max(worst_log, std::fabs(lg.lane(k) - std::log(ys[k])) / std::fabs(std::log(ys[k])));
        }
    }
    CHECK(worst_exp < 5e-16);  // about 2 ulp
    CHECK(worst_log < 5e-16);
    const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
    // Special values, each in every lane position beside the others, so no lane's result leaks.
    const double log_in[] = {0.0, inf, -1.0, nan, 4.9406564584124654e-324, 1e-310, 1.0, 2.0};
    const double exp_in[] = {nan, -inf, 0.0, -708.5};
    for (int shift = 0; shift < 8; ++shift) {
        double a[kLanes];
        double b[kLanes];
        for (int k = 0; k < kLanes; ++k) {
            a[k] = log_in[(shift + k) % 8];
            b[k] = exp_in[(shift + k) % 4];
        }
        const simd::VD la = simd::log(simd::VD::load(a));
        const simd::VD eb = simd::exp_nonpositive(simd::VD::load(b));
        for (int k = 0; k < kLanes; ++k) {
            CAPTURE(shift, k, a[k], b[k]);
            const double got = la.lane(k), want = std::log(a[k]);
            if (std::isnan(want))
                CHECK(std::isnan(got));
            else if (a[k] == 1e-310)
                CHECK(std::fabs(got - want) <= 5e-16 * std::fabs(want));
            else
                CHECK(got == want);  // -inf, inf, the smallest subnormal, 0 and log 2 exactly
            const double ge = eb.lane(k);
            if (std::isnan(b[k]))
                CHECK(std::isnan(ge));
            else
                CHECK(ge == (b[k] == 0.0 ? 1.0 : 0.0));  // exp(0) = 1; exp(-inf) and exp(-708.5) flush to 0
        }
    }
}

}  // namespace test_metrics_layouts
