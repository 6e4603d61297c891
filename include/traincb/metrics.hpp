#pragma once
/// @file metrics.hpp
/// Metrics over Eigen, with the definitions of Keras (accuracies, cross-entropies, MSE, MAE) and
/// scikit-learn (confusion matrix, precision, recall, F1, ROC AUC). Each exists as a function over
/// whole arrays and as a streaming object (update / result / reset / merge) whose result after
/// any split into batches equals the function on all of it. A streaming object's state can be
/// saved and restored (save_state / load_state, as JSON), so that a run checkpointed in the middle
/// of an epoch resumes its training metrics bit-exactly.
///
/// Inputs: rows are samples. Any Eigen dense expression (Matrix, Array, Map, Block, Ref, an
/// unevaluated expression; float, double or integer; either storage order) is read in place,
/// never copied. Sums accumulate in double and every transcendental is evaluated in double, also
/// for float input; results are double. Bad input throws traincb::InvalidArgument (a
/// std::invalid_argument) naming the function, the argument and the shape or value at fault.
/// NaN predictions are not errors: they propagate into losses, a NaN score is never above a
/// threshold, and argmax takes the first NaN as the largest (as numpy.argmax).
///
/// Allocation: the scalar functions allocate nothing, except roc_auc (one buffer of N doubles,
/// for its sort) and precision / recall / f1_score with Average::Macro or Weighted when the
/// largest label is 256 or more (per-class counts: 24 bytes per class while labels are below 4N,
/// else 32 bytes per distinct label, at most 2N). An expression containing a matrix product is
/// evaluated once by Eigen, as any coefficient access of it would. Metric objects are not
/// thread-safe (not even const result() of RocAuc, which sorts lazily): use one per thread and
/// merge().

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/detail/metrics_kernels.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/direction.hpp"
#include "traincb/errors.hpp"
#include "traincb/metric.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0::metrics {

/// How precision, recall and F1 combine classes (scikit-learn's `average`).
enum class Average {
    Binary,   ///< the pos_label class only; labels must be 0 or 1
    Micro,    ///< from TP, FP, FN summed over classes (equals the accuracy)
    Macro,    ///< plain mean over the classes present in either vector
    Weighted  ///< mean weighted by each class's count among the true labels
};

/// "Binary", "Micro", "Macro" or "Weighted".
[[nodiscard]] constexpr const char* to_string(Average a) noexcept {
    switch (a) {
        case Average::Binary:
            return "Binary";
        case Average::Micro:
            return "Micro";
        case Average::Macro:
            return "Macro";
        case Average::Weighted:
            return "Weighted";
    }
    return "?";
}

/// A confusion matrix: 64-bit counts, row = true class, column = predicted class.
using CountMatrix = Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic>;

}  // namespace traincb::inline v0::metrics

namespace traincb::inline v0::detail::metrics {

/// A batch's contribution to a mean: the sum of the per-element (or per-row) values and their count.
struct Batch {
    double sum = 0;
    std::int64_t count = 0;
};

template <class T, class P>
void check_elementwise(const char* who, const char* nt, const T& t, const char* np, const P& p, bool allow_empty) {
    require_same_shape(who, nt, t, np, p);
    if (!allow_empty) require_nonempty(who, nt, t);
}

/// Checks y_true (N x C) against y_pred (N x C).
template <class T, class P>
void check_categorical(const char* who, const char* nt, const T& t, const char* np, const P& p, bool allow_empty) {
    require_same_shape(who, nt, t, np, p);
    if (t.rows() > 0 && t.cols() == 0) require_nonempty(who, np, p);
    if (!allow_empty) require_nonempty(who, nt, t);
}

/// Checks labels (a vector of N) against y_pred (N x C).
template <class L, class P>
void check_sparse(const char* who, const char* nl, const L& labels, const char* np, const P& p, bool allow_empty) {
    require_vector(who, nl, labels);
    if (labels.size() != p.rows())
        fail(who, std::string(nl) + " has " + std::to_string(labels.size()) + " elements but " + np + " has " +
                      std::to_string(p.rows()) + " rows (" + shape(p) + "); pass one class index per row");
    if (p.rows() > 0 && p.cols() == 0) require_nonempty(who, np, p);
    if (!allow_empty) require_nonempty(who, np, p);
}

template <class T, class P>
Batch binary_accuracy_batch(const char* who, const char* nt, const T& t, const char* np, const P& p, double threshold,
                            bool allow_empty) {
    check_elementwise(who, nt, t, np, p, allow_empty);
    // For float predictions an equivalent float threshold lets the loop compare in float lanes.
    const double thr = std::is_same_v<typename P::Scalar, float> ? simd::floor_to_float(threshold) : threshold;
    const Total total = elementwise<BinaryAccuracyOp>(t, p, BinaryAccuracyParams{thr});
    if (total.bad) report_bad_target(who, nt, t, not_binary, "binary targets must be 0 or 1");
    const auto n = static_cast<std::int64_t>(t.size());
    return {static_cast<double>(n) - total.sum.value(), n};
}

template <class T, class P>
Batch categorical_accuracy_batch(const char* who, const char* nt, const T& t, const char* np, const P& p,
                                 bool allow_empty) {
    check_categorical(who, nt, t, np, p, allow_empty);
    if (t.size() == 0) return {};
    return with_access(t, [&](const auto& at) {
        return with_access(p, [&](const auto& ap) {
            using Ctx = TwoMatrixCtx<std::decay_t<decltype(at)>, std::decay_t<decltype(ap)>>;
            const Total total =
                run_compare_rows<CategoricalAccuracyRows>(t.rows(), t.cols(), Ctx{at, ap, t.cols()}, at, ap);
            return Batch{total.sum.value(), static_cast<std::int64_t>(t.rows())};
        });
    });
}

template <class L, class P>
Batch sparse_categorical_accuracy_batch(const char* who, const char* nl, const L& labels, const char* np, const P& p,
                                        bool allow_empty) {
    check_sparse(who, nl, labels, np, p, allow_empty);
    if (p.size() == 0) return {};
    const VectorReader<L> lr(labels);
    return with_access(p, [&](const auto& ap) {
        using Ctx = LabelsCtx<VectorReader<L>, std::decay_t<decltype(ap)>>;
        const Total total =
            run_compare_rows<SparseAccuracyRows>(p.rows(), p.cols(), Ctx{lr, ap, p.cols(), who, nl}, ap);
        return Batch{total.sum.value(), static_cast<std::int64_t>(p.rows())};
    });
}

template <class T, class P>
Batch top_k_batch(const char* who, const char* nt, const T& t, const char* np, const P& p, int k, bool allow_empty) {
    check_categorical(who, nt, t, np, p, allow_empty);
    if (t.size() == 0) return {};
    return with_access(t, [&](const auto& at) {
        return with_access(p, [&](const auto& ap) {
            using Ctx = TopKCtx<std::decay_t<decltype(at)>, std::decay_t<decltype(ap)>>;
            const Total total =
                run_compare_rows<TopKRows>(t.rows(), t.cols(), Ctx{at, ap, t.cols(), static_cast<double>(k)}, at, ap);
            return Batch{total.sum.value(), static_cast<std::int64_t>(t.rows())};
        });
    });
}

template <class T, class P>
Batch binary_crossentropy_batch(const char* who, const char* nt, const T& t, const char* np, const P& p,
                                bool from_logits, bool allow_empty) {
    check_elementwise(who, nt, t, np, p, allow_empty);
    const Total total =
        from_logits ? elementwise<BceLogitsOp>(t, p, NoParams{}) : elementwise<BceProbabilityOp>(t, p, NoParams{});
    // A NaN target only shows as a NaN sum (which NaN predictions also give): look for it then.
    if (total.bad || (std::isnan(total.sum.value()) && has_bad_target(t, not_probability)))
        report_bad_target(who, nt, t, not_probability, "binary cross-entropy targets must be in [0, 1]");
    return {total.sum.value(), static_cast<std::int64_t>(t.size())};
}

template <class T, class P>
Batch categorical_crossentropy_batch(const char* who, const char* nt, const T& t, const char* np, const P& p,
                                     bool from_logits, bool allow_empty) {
    check_categorical(who, nt, t, np, p, allow_empty);
    if (t.size() == 0) return {};
    return with_access(t, [&](const auto& at) {
        return with_access(p, [&](const auto& ap) {
            using Ctx = TwoMatrixCtx<std::decay_t<decltype(at)>, std::decay_t<decltype(ap)>>;
            const Ctx ctx{at, ap, t.cols()};
            const Total total =
                from_logits ? run_rows<CceLogitsRows>(t.rows(), ctx) : run_rows<CceProbabilityRows>(t.rows(), ctx);
            return Batch{total.sum.value(), static_cast<std::int64_t>(t.rows())};
        });
    });
}

template <class L, class P>
Batch sparse_categorical_crossentropy_batch(const char* who, const char* nl, const L& labels, const char* np,
                                            const P& p, bool from_logits, bool allow_empty) {
    check_sparse(who, nl, labels, np, p, allow_empty);
    if (p.size() == 0) return {};
    const VectorReader<L> lr(labels);
    return with_access(p, [&](const auto& ap) {
        using Ctx = LabelsCtx<VectorReader<L>, std::decay_t<decltype(ap)>>;
        const Ctx ctx{lr, ap, p.cols(), who, nl};
        const Total total = from_logits ? run_rows<SparseCceLogitsRows>(p.rows(), ctx)
                                        : run_rows<SparseCceProbabilityRows>(p.rows(), ctx);
        return Batch{total.sum.value(), static_cast<std::int64_t>(p.rows())};
    });
}

template <class T, class P>
Batch squared_error_batch(const char* who, const char* nt, const T& t, const char* np, const P& p, bool allow_empty) {
    check_elementwise(who, nt, t, np, p, allow_empty);
    return {elementwise<SquaredErrorOp>(t, p, NoParams{}).sum.value(), static_cast<std::int64_t>(t.size())};
}

template <class T, class P>
Batch absolute_error_batch(const char* who, const char* nt, const T& t, const char* np, const P& p, bool allow_empty) {
    check_elementwise(who, nt, t, np, p, allow_empty);
    return {elementwise<AbsoluteErrorOp>(t, p, NoParams{}).sum.value(), static_cast<std::int64_t>(t.size())};
}

inline double mean_of(const Batch& b) noexcept {
    return b.sum / static_cast<double>(b.count);
}

/// Labels of the scikit-learn functions: whole numbers >= 0 (below 2^53, so exact in a double).
inline constexpr double kMaxLabel = 9007199254740992.0;

template <class R>
std::int64_t read_free_label(const R& labels, Index i, const char* who, const char* name, bool binary) {
    const double v = labels(i);
    if (!is_class_index(v, kMaxLabel))
        fail(who,
             std::string(name) + "(" + std::to_string(i) + ") is " + number(v) + "; labels must be whole numbers >= 0");
    if (binary && v > 1)
        fail(who, std::string(name) + "(" + std::to_string(i) + ") is " + number(v) +
                      " but average = Average::Binary needs labels 0 or 1; pass average = Average::Macro, "
                      "Average::Micro or Average::Weighted for more classes");
    return static_cast<std::int64_t>(v);
}

/// precision / recall / f1_score over two label vectors.
template <class A, class B>
double label_score(Score score, const char* who, const A& lt, const B& lp, traincb::metrics::Average average,
                   std::int64_t pos_label) {
    using traincb::metrics::Average;
    require_vector(who, "labels_true", lt);
    require_vector(who, "labels_pred", lp);
    if (lt.size() != lp.size())
        fail(who, "labels_true has " + std::to_string(lt.size()) + " elements but labels_pred has " +
                      std::to_string(lp.size()) + "; pass one predicted label per true label");
    require_nonempty(who, "labels_true", lt);
    const bool binary = average == Average::Binary;
    if (binary && pos_label != 0 && pos_label != 1)
        fail(who, "pos_label is " + std::to_string(pos_label) +
                      " but average = Average::Binary needs labels 0 or 1; pass pos_label = 0 or 1");
    const VectorReader<A> rt(lt);
    const VectorReader<B> rp(lp);
    const Index n = lt.size();
    std::int64_t max_label = 0;
    for (Index i = 0; i < n; ++i) {
        max_label = std::max(max_label, read_free_label(rt, i, who, "labels_true", binary));
        max_label = std::max(max_label, read_free_label(rp, i, who, "labels_pred", binary));
    }
    if (binary || average == Average::Micro) {
        // Counts for one class (Binary) or the number of agreements (Micro); no per-class storage.
        std::int64_t tp = 0, nt = 0, np = 0;
        for (Index i = 0; i < n; ++i) {
            const auto t = static_cast<std::int64_t>(rt(i));
            const auto p = static_cast<std::int64_t>(rp(i));
            if (binary) {
                tp += (t == pos_label && p == pos_label) ? 1 : 0;
                nt += t == pos_label ? 1 : 0;
                np += p == pos_label ? 1 : 0;
            } else {
                tp += t == p ? 1 : 0;
            }
        }
        if (!binary) return static_cast<double>(tp) / static_cast<double>(n);
        return class_score(score, tp, nt, np);
    }
    const int avg = average == Average::Macro ? 2 : 3;
    const auto classes = static_cast<Index>(max_label) + 1;
    constexpr Index kStack = 256;
    if (classes <= kStack) {
        std::array<std::int64_t, 3 * kStack> counts{};
        std::int64_t* tp = counts.data();
        std::int64_t* nt = tp + kStack;
        std::int64_t* np = nt + kStack;
        for (Index i = 0; i < n; ++i) {
            const auto t = static_cast<Index>(rt(i));
            const auto p = static_cast<Index>(rp(i));
            tp[t] += t == p ? 1 : 0;
            ++nt[t];
            ++np[p];
        }
        return average_score(score, avg, ClassCountsView{tp, nt, np, classes}, 0);
    }
    // Many classes: per-class counts on the heap, indexed by label value while the labels are
    // dense enough (classes <= 4N), else by rank among the distinct labels (O(N) memory).
    const bool dense = classes <= 4 * n;
    std::vector<double> distinct;
    if (!dense) {
        distinct.reserve(static_cast<std::size_t>(2 * n));
        for (Index i = 0; i < n; ++i) {
            distinct.push_back(rt(i));
            distinct.push_back(rp(i));
        }
        std::sort(distinct.begin(), distinct.end());
        distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    }
    const Index k = dense ? classes : static_cast<Index>(distinct.size());
    const auto slot = [&](double v) {
        return dense ? static_cast<Index>(v)
                     : static_cast<Index>(std::lower_bound(distinct.begin(), distinct.end(), v) - distinct.begin());
    };
    std::vector<std::int64_t> counts(static_cast<std::size_t>(3 * k), 0);
    std::int64_t* tp = counts.data();
    std::int64_t* nt = tp + k;
    std::int64_t* np = nt + k;
    for (Index i = 0; i < n; ++i) {
        const double vt = rt(i);
        const double vp = rp(i);
        const Index t = slot(vt);
        tp[t] += vt == vp ? 1 : 0;
        ++nt[t];
        ++np[slot(vp)];
    }
    return average_score(score, avg, ClassCountsView{tp, nt, np, k}, 0);
}

}  // namespace traincb::inline v0::detail::metrics

namespace traincb::inline v0::metrics {

/// Mean over all elements of [(y_pred > threshold) == y_true] (Keras binary_accuracy); y_true must
/// be 0 or 1; a NaN prediction counts as 0. @throws InvalidArgument for different shapes, empty
/// input, a target other than 0 or 1, or a NaN threshold
template <class A, class B>
[[nodiscard]] double binary_accuracy(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred,
                                     double threshold = 0.5) {
    namespace d = ::traincb::detail::metrics;
    constexpr const char* who = "metrics::binary_accuracy";
    if (std::isnan(threshold)) d::fail(who, "threshold is nan; pass a number such as 0.5");
    return d::mean_of(
        d::binary_accuracy_batch(who, "y_true", y_true.derived(), "y_pred", y_pred.derived(), threshold, false));
}

/// Mean over rows of [argmax(y_true_i) == argmax(y_pred_i)], ties to the first index, NaN as the
/// largest (numpy.argmax). @throws InvalidArgument for different shapes or empty input
template <class A, class B>
[[nodiscard]] double categorical_accuracy(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred) {
    namespace d = ::traincb::detail::metrics;
    return d::mean_of(d::categorical_accuracy_batch("metrics::categorical_accuracy", "y_true", y_true.derived(),
                                                    "y_pred", y_pred.derived(), false));
}

/// Mean over rows of [labels_i == argmax(y_pred_i)]. @throws InvalidArgument when labels is not a
/// vector with one entry per row of y_pred, for empty input, or for a label that is not a whole
/// number in [0, C)
template <class L, class B>
[[nodiscard]] double sparse_categorical_accuracy(const Eigen::DenseBase<L>& labels, const Eigen::DenseBase<B>& y_pred) {
    namespace d = ::traincb::detail::metrics;
    return d::mean_of(d::sparse_categorical_accuracy_batch("metrics::sparse_categorical_accuracy", "labels",
                                                           labels.derived(), "y_pred", y_pred.derived(), false));
}

/// Mean over rows of [argmax(y_true_i) is among the k largest y_pred_i] (ties count in, as
/// tf.math.in_top_k; a NaN target score is never in). @throws InvalidArgument for different
/// shapes, empty input or k < 1
template <class A, class B>
[[nodiscard]] double top_k_categorical_accuracy(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred,
                                                int k = 5) {
    namespace d = ::traincb::detail::metrics;
    constexpr const char* who = "metrics::top_k_categorical_accuracy";
    if (k < 1) d::fail(who, "k is " + std::to_string(k) + "; pass k >= 1");
    return d::mean_of(d::top_k_batch(who, "y_true", y_true.derived(), "y_pred", y_pred.derived(), k, false));
}

/// Mean over all elements of -(y log p + (1 - y) log(1 - p)), p = clip(y_pred, 1e-7, 1 - 1e-7); with
/// from_logits, of max(x, 0) - x y + log1p(exp(-|x|)). y_true may be soft, in [0, 1].
/// @throws InvalidArgument for different shapes, empty input or a target outside [0, 1]
template <class A, class B>
[[nodiscard]] double binary_crossentropy(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred,
                                         bool from_logits = false) {
    namespace d = ::traincb::detail::metrics;
    return d::mean_of(d::binary_crossentropy_batch("metrics::binary_crossentropy", "y_true", y_true.derived(), "y_pred",
                                                   y_pred.derived(), from_logits, false));
}

/// Mean over rows of -sum_c y_c log(clip(p_c / sum(p))), or with from_logits of
/// sum_c y_c (logsumexp(x) - x_c), computed stably; terms with y_c == 0 are 0.
/// @throws InvalidArgument for different shapes or empty input
template <class A, class B>
[[nodiscard]] double categorical_crossentropy(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred,
                                              bool from_logits = false) {
    namespace d = ::traincb::detail::metrics;
    return d::mean_of(d::categorical_crossentropy_batch("metrics::categorical_crossentropy", "y_true", y_true.derived(),
                                                        "y_pred", y_pred.derived(), from_logits, false));
}

/// categorical_crossentropy with y the one-hot rows of labels. @throws InvalidArgument when labels
/// is not a vector with one entry per row of y_pred, for empty input, or for a label that is not a
/// whole number in [0, C)
template <class L, class B>
[[nodiscard]] double sparse_categorical_crossentropy(const Eigen::DenseBase<L>& labels,
                                                     const Eigen::DenseBase<B>& y_pred, bool from_logits = false) {
    namespace d = ::traincb::detail::metrics;
    return d::mean_of(d::sparse_categorical_crossentropy_batch("metrics::sparse_categorical_crossentropy", "labels",
                                                               labels.derived(), "y_pred", y_pred.derived(),
                                                               from_logits, false));
}

/// Mean over all elements of (y_true - y_pred)^2. @throws InvalidArgument for different shapes or empty input
template <class A, class B>
[[nodiscard]] double mean_squared_error(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred) {
    namespace d = ::traincb::detail::metrics;
    return d::mean_of(d::squared_error_batch("metrics::mean_squared_error", "y_true", y_true.derived(), "y_pred",
                                             y_pred.derived(), false));
}

/// Mean over all elements of |y_true - y_pred|. @throws InvalidArgument for different shapes or empty input
template <class A, class B>
[[nodiscard]] double mean_absolute_error(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred) {
    namespace d = ::traincb::detail::metrics;
    return d::mean_of(d::absolute_error_batch("metrics::mean_absolute_error", "y_true", y_true.derived(), "y_pred",
                                              y_pred.derived(), false));
}

/// num_classes x num_classes counts, row = true class, column = predicted class (allocates only the
/// result). @throws InvalidArgument for num_classes < 1, vectors of different lengths, empty input
/// or a label that is not a whole number in [0, num_classes)
template <class A, class B>
[[nodiscard]] CountMatrix confusion_matrix(const Eigen::DenseBase<A>& labels_true,
                                           const Eigen::DenseBase<B>& labels_pred, Eigen::Index num_classes) {
    namespace d = ::traincb::detail::metrics;
    constexpr const char* who = "metrics::confusion_matrix";
    const auto& lt = labels_true.derived();
    const auto& lp = labels_pred.derived();
    if (num_classes < 1) d::fail(who, "num_classes is " + std::to_string(num_classes) + "; pass num_classes >= 1");
    d::require_vector(who, "labels_true", lt);
    d::require_vector(who, "labels_pred", lp);
    if (lt.size() != lp.size())
        d::fail(who, "labels_true has " + std::to_string(lt.size()) + " elements but labels_pred has " +
                         std::to_string(lp.size()) + "; pass one predicted label per true label");
    d::require_nonempty(who, "labels_true", lt);
    const d::VectorReader<A> rt(lt);
    const d::VectorReader<B> rp(lp);
    CountMatrix m = CountMatrix::Zero(num_classes, num_classes);
    for (Eigen::Index i = 0; i < lt.size(); ++i)
        ++m(d::read_label(rt, i, num_classes, who, "labels_true"),
            d::read_label(rp, i, num_classes, who, "labels_pred"));
    return m;
}

/// TP / (TP + FP) per scikit-learn (0 where TP + FP = 0). Labels are whole numbers >= 0.
/// @throws InvalidArgument for vectors of different lengths, empty input, a label that is not a
/// whole number >= 0, or (Binary) a label or pos_label other than 0 and 1
template <class A, class B>
[[nodiscard]] double precision(const Eigen::DenseBase<A>& labels_true, const Eigen::DenseBase<B>& labels_pred,
                               Average average = Average::Binary, std::int64_t pos_label = 1) {
    namespace d = ::traincb::detail::metrics;
    return d::label_score(d::Score::Precision, "metrics::precision", labels_true.derived(), labels_pred.derived(),
                          average, pos_label);
}

/// TP / (TP + FN) per scikit-learn (0 where TP + FN = 0). @throws InvalidArgument as precision()
template <class A, class B>
[[nodiscard]] double recall(const Eigen::DenseBase<A>& labels_true, const Eigen::DenseBase<B>& labels_pred,
                            Average average = Average::Binary, std::int64_t pos_label = 1) {
    namespace d = ::traincb::detail::metrics;
    return d::label_score(d::Score::Recall, "metrics::recall", labels_true.derived(), labels_pred.derived(), average,
                          pos_label);
}

/// 2TP / (2TP + FP + FN) per scikit-learn (0 where the denominator is 0); Macro and Weighted
/// average the per-class F1. @throws InvalidArgument as precision()
template <class A, class B>
[[nodiscard]] double f1_score(const Eigen::DenseBase<A>& labels_true, const Eigen::DenseBase<B>& labels_pred,
                              Average average = Average::Binary, std::int64_t pos_label = 1) {
    namespace d = ::traincb::detail::metrics;
    return d::label_score(d::Score::F1, "metrics::f1_score", labels_true.derived(), labels_pred.derived(), average,
                          pos_label);
}

/// Area under the ROC curve, ties counted as half (the Mann-Whitney statistic, as scikit-learn's
/// roc_auc_score); NaN if a score is NaN. Allocates one buffer of N doubles for the sort
/// (O(N log N) time). @throws InvalidArgument for vectors of different lengths, empty input, a
/// target other than 0 or 1, or targets of one class only
template <class A, class B>
[[nodiscard]] double roc_auc(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& scores) {
    namespace d = ::traincb::detail::metrics;
    constexpr const char* who = "metrics::roc_auc";
    const auto& t = y_true.derived();
    const auto& s = scores.derived();
    d::require_vector(who, "y_true", t);
    d::require_vector(who, "scores", s);
    if (t.size() != s.size())
        d::fail(who, "y_true has " + std::to_string(t.size()) + " elements but scores has " + std::to_string(s.size()) +
                         "; pass one score per target");
    d::require_nonempty(who, "y_true", t);
    const d::VectorReader<A> rt(t);
    const d::VectorReader<B> rs(s);
    const Eigen::Index n = t.size();
    Eigen::Index n_pos = 0;
    bool nan = false;
    for (Eigen::Index i = 0; i < n; ++i) {
        const double v = rt(i);
        if (d::not_binary(v))
            d::fail(who, "y_true(" + std::to_string(i) + ") is " + d::number(v) + "; ROC AUC targets must be 0 or 1");
        n_pos += v == 1 ? 1 : 0;
        nan = nan || std::isnan(rs(i));
    }
    if (n_pos == 0 || n_pos == n)
        d::fail(who, "y_true holds only class " + std::string(n_pos == 0 ? "0" : "1") + " (" + std::to_string(n) +
                         " samples); ROC AUC is undefined with one class; pass samples of both classes");
    if (nan) return std::numeric_limits<double>::quiet_NaN();
    const std::unique_ptr<double[]> buf(new double[static_cast<std::size_t>(n)]);  // filled below
    double* pos = buf.get();
    double* neg = buf.get() + n_pos;
    Eigen::Index ip = 0, in = 0;
    for (Eigen::Index i = 0; i < n; ++i) {
        if (rt(i) == 1)
            pos[ip++] = rs(i);
        else
            neg[in++] = rs(i);
    }
    std::sort(pos, pos + n_pos);
    std::sort(neg, neg + (n - n_pos));
    return d::mann_whitney_auc(pos, n_pos, neg, n - n_pos);
}

}  // namespace traincb::inline v0::metrics

// ---------------------------------------------------------------------------------------------
// Streaming objects

namespace traincb::inline v0::detail::metrics {

/// A weighted mean's state: the compensated sum and the count.
struct MeanState {
    CompensatedSum sum;
    std::int64_t count = 0;
    void add(const Batch& b) noexcept {
        if (b.count == 0) return;
        sum.add(b.sum);
        count += b.count;
    }
    void merge(const MeanState& o) noexcept {
        sum.add(o.sum);
        count += o.count;
    }
    [[nodiscard]] double result() const noexcept {
        return count == 0 ? std::numeric_limits<double>::quiet_NaN() : sum.value() / static_cast<double>(count);
    }
};

TRAINCB_INLINE void check_name(const char* who, const std::string& name);

/// The version of the states the built-in metrics write (save_state) and read (load_state).
inline constexpr int kStateVersion = 1;

/// A double in a state: the shortest decimal that round-trips, or "nan" / "inf" / "-inf" (JSON
/// has no NaN), as the checkpoint writes every double.
[[nodiscard]] TRAINCB_INLINE nlohmann::json state_double(double v);

/// How a JSON value of a state reads in a message: a string as itself, anything else dumped.
[[nodiscard]] TRAINCB_INLINE std::string state_text(const nlohmann::json& v);

/// Reads the fields of a state given to load_state; each failure is a FormatError naming the
/// class, the metric and the field.
struct StateReader {
    std::string who;   // "metrics::Precision::load_state"
    std::string name;  // the metric's name (log key)

    [[noreturn]] TRAINCB_INLINE void malformed(const std::string& what) const;
    [[nodiscard]] TRAINCB_INLINE const nlohmann::json& field(const nlohmann::json& j, const char* key) const;
    [[nodiscard]] TRAINCB_INLINE double real(const nlohmann::json& v, const std::string& what) const;
    [[nodiscard]] TRAINCB_INLINE std::int64_t count(const nlohmann::json& v, const std::string& what) const;
    [[nodiscard]] TRAINCB_INLINE const nlohmann::json& array(const nlohmann::json& j, const char* key,
                                                             std::optional<std::size_t> size = std::nullopt) const;
};

/// The state header every built-in metric writes: {"kind", "version", "options"}.
[[nodiscard]] TRAINCB_INLINE nlohmann::json state_header(const char* who, nlohmann::json options);

/// Checks a state's kind, version and options against the metric loading it.
/// @throws FormatError for a malformed header or an unknown version; InvalidArgument for another
/// kind or other options
TRAINCB_INLINE void check_state_header(const StateReader& in, const char* who, const nlohmann::json& state,
                                       const nlohmann::json& options);

}  // namespace traincb::inline v0::detail::metrics

namespace traincb::inline v0::detail {

/// What every concrete metric shares: the templated update (any expression, no copy) beside the
/// two virtual ones, name(), direction(), clone(), and merge() and copy_state_from() with their
/// type and options check.
/// Self provides kWho, kDirection, options(), accumulate(t, p), same_options(o), merge_state(o).
template <class Self>
class MetricImpl : public ::traincb::metrics::Metric {
public:
    ~MetricImpl() override;  // defined below the class
    /// Accumulates a batch given as any Eigen expressions (read in place). @throws InvalidArgument
    /// for bad shapes or values (the state is then unchanged)
    template <class A, class B>
    void update(const Eigen::DenseBase<A>& y_true, const Eigen::DenseBase<B>& y_pred) {
        self().accumulate(y_true.derived(), y_pred.derived());
    }
    void update(const Eigen::Ref<const Eigen::MatrixXd>& y_true,
                const Eigen::Ref<const Eigen::MatrixXd>& y_pred) override {
        self().accumulate(y_true, y_pred);
    }
    void update(const Eigen::Ref<const Eigen::MatrixXf>& y_true,
                const Eigen::Ref<const Eigen::MatrixXf>& y_pred) override {
        self().accumulate(y_true, y_pred);
    }
    [[nodiscard]] std::string name() const override { return self().options().name; }
    [[nodiscard]] Direction direction() const noexcept override { return Self::kDirection; }
    [[nodiscard]] std::unique_ptr<::traincb::metrics::Metric> clone() const override {
        return std::make_unique<Self>(self());
    }
    void merge(const ::traincb::metrics::Metric& other) override {
        const auto* o = dynamic_cast<const Self*>(&other);
        const auto who = [] { return std::string(Self::kWho) + "::merge"; };
        if (o == nullptr)
            metrics::fail(who().c_str(), "cannot merge metric '" + other.name() + "' of another type into '" + name() +
                                             "'; merge objects of the same class");
        if (!self().same_options(*o))
            metrics::fail(who().c_str(), "cannot merge '" + other.name() + "' into '" + name() +
                                             "': their options differ; merge objects built with the same options");
        self().merge_state(*o);
    }
    /// Makes this object an exact copy of `other` (options, name and state) by copy assignment:
    /// vectors and strings keep their storage when it is large enough.
    /// @throws InvalidArgument for a metric of another type
    bool copy_state_from(const ::traincb::metrics::Metric& other) override {
        if (&other == this) return true;
        const auto* o = dynamic_cast<const Self*>(&other);
        if (o == nullptr)
            metrics::fail(cat(Self::kWho, "::copy_state_from").c_str(),
                          cat("cannot copy the state of metric '", other.name(), "' of another type into '", name(),
                              "'; copy from an object of the same class"));
        self() = *o;
        return true;
    }
    /// Writes {"kind", "version", "options", accumulators}; always returns true.
    bool save_state(nlohmann::json& state) const override {
        nlohmann::json j = metrics::state_header(Self::kWho, self().state_options());
        self().save_accumulators(j);
        state = std::move(j);
        return true;
    }
    /// @throws InvalidArgument for a state of another class or other options; FormatError for a
    /// malformed one or an unknown version (the state is then unchanged)
    void load_state(const nlohmann::json& state) override {
        const metrics::StateReader in{traincb::detail::cat(Self::kWho, "::load_state"), name()};
        metrics::check_state_header(in, Self::kWho, state, self().state_options());
        self().load_accumulators(state, in);  // parses everything before assigning anything
    }
    /// The JSON of save_state, with a class's bulk data (if it has any) as tensors instead.
    bool save_state_with_tensors(nlohmann::json& state, StateDict& tensors) const override {
        if constexpr (requires { self().save_bulk(state, tensors); }) {
            nlohmann::json j = metrics::state_header(Self::kWho, self().state_options());
            self().save_bulk(j, tensors);
            state = std::move(j);
            return true;
        } else {
            return save_state(state);
        }
    }
    /// Loads what save_state_with_tensors or save_state wrote.
    /// @throws as load_state; FormatError for a missing or malformed tensor
    void load_state_with_tensors(const nlohmann::json& state, const StateDict& tensors) override {
        if constexpr (requires(const metrics::StateReader& in) { self().load_bulk(state, tensors, in); }) {
            const metrics::StateReader in{traincb::detail::cat(Self::kWho, "::load_state"), name()};
            metrics::check_state_header(in, Self::kWho, state, self().state_options());
            self().load_bulk(state, tensors, in);
        } else {
            load_state(state);
        }
    }

private:
    Self& self() noexcept { return static_cast<Self&>(*this); }
    const Self& self() const noexcept { return static_cast<const Self&>(*this); }
};

// Out of the class: clang instantiates every virtual function of a class template whose destructor
// is defined in the class (even implicitly), wherever the template is instantiated, so each metric
// class's declaration alone would compile its whole implementation.
template <class Self>
MetricImpl<Self>::~MetricImpl() = default;

/// A metric that is a weighted mean (accuracies, cross-entropies, MSE, MAE): result() is O(1).
template <class Self, class Options>
class MeanMetric : public MetricImpl<Self> {
public:
    [[nodiscard]] double result() const override { return state_.result(); }
    void reset() override { state_ = {}; }
    /// The options given at construction.
    [[nodiscard]] const Options& options() const noexcept { return opt_; }
    /// The number of elements (or rows) accumulated so far.
    [[nodiscard]] std::int64_t count() const noexcept { return state_.count; }

protected:
    explicit MeanMetric(Options options) : opt_(std::move(options)) { metrics::check_name(Self::kWho, opt_.name); }

private:
    friend class MetricImpl<Self>;
    template <class A, class B>
    void accumulate(const A& t, const B& p) {
        state_.add(static_cast<const Self&>(*this).batch(t, p));
    }
    [[nodiscard]] bool same_options(const Self& o) const {
        Options a = opt_;
        a.name = o.opt_.name;
        return a == o.opt_;
    }
    void merge_state(const Self& o) noexcept { state_.merge(o.state_); }
    // The compensated sum travels whole (sum and compensation): the next add() then rounds as
    // it would have without the save.
    void save_accumulators(nlohmann::json& j) const {
        j["sum"] = metrics::state_double(state_.sum.sum);
        j["compensation"] = metrics::state_double(state_.sum.comp);
        j["count"] = state_.count;
    }
    void load_accumulators(const nlohmann::json& j, const metrics::StateReader& in) {
        metrics::MeanState s;
        s.sum.sum = in.real(in.field(j, "sum"), "'sum'");
        s.sum.comp = in.real(in.field(j, "compensation"), "'compensation'");
        s.count = in.count(in.field(j, "count"), "'count'");
        state_ = s;
    }

protected:
    // The options a state depends on (all but the name); classes with options hide this.
    [[nodiscard]] nlohmann::json state_options() const { return nlohmann::json::object(); }

    Options opt_;
    metrics::MeanState state_;
};

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::metrics {

/// Options of BinaryAccuracy.
struct BinaryAccuracyOptions {
    std::string name = "binary_accuracy";  ///< the log key
    double threshold = 0.5;                ///< a prediction above it counts as 1
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const BinaryAccuracyOptions&) const = default;
};

/// Streaming binary_accuracy (Keras BinaryAccuracy); direction Max.
class BinaryAccuracy final : public detail::MeanMetric<BinaryAccuracy, BinaryAccuracyOptions> {
public:
    /// @throws InvalidArgument for an empty name or a NaN threshold
    TRAINCB_INLINE explicit BinaryAccuracy(BinaryAccuracyOptions options = {});

private:
    friend class detail::MetricImpl<BinaryAccuracy>;
    friend class detail::MeanMetric<BinaryAccuracy, BinaryAccuracyOptions>;
    static constexpr const char* kWho = "metrics::BinaryAccuracy";
    static constexpr Direction kDirection = Direction::Max;
    [[nodiscard]] nlohmann::json state_options() const {
        return {{"threshold", detail::metrics::state_double(opt_.threshold)}};
    }
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::binary_accuracy_batch(kWho, "y_true", t, "y_pred", p, opt_.threshold, true);
    }
};

/// Options of CategoricalAccuracy.
struct CategoricalAccuracyOptions {
    std::string name = "categorical_accuracy";  ///< the log key
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const CategoricalAccuracyOptions&) const = default;
};

/// Streaming categorical_accuracy (y_true one-hot N x C); direction Max.
class CategoricalAccuracy final : public detail::MeanMetric<CategoricalAccuracy, CategoricalAccuracyOptions> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit CategoricalAccuracy(CategoricalAccuracyOptions options = {});

private:
    friend class detail::MetricImpl<CategoricalAccuracy>;
    friend class detail::MeanMetric<CategoricalAccuracy, CategoricalAccuracyOptions>;
    static constexpr const char* kWho = "metrics::CategoricalAccuracy";
    static constexpr Direction kDirection = Direction::Max;
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::categorical_accuracy_batch(kWho, "y_true", t, "y_pred", p, true);
    }
};

/// Options of SparseCategoricalAccuracy.
struct SparseCategoricalAccuracyOptions {
    std::string name = "sparse_categorical_accuracy";  ///< the log key
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const SparseCategoricalAccuracyOptions&) const = default;
};

/// Streaming sparse_categorical_accuracy (y_true an N x 1 matrix of class indices); direction Max.
class SparseCategoricalAccuracy final
    : public detail::MeanMetric<SparseCategoricalAccuracy, SparseCategoricalAccuracyOptions> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit SparseCategoricalAccuracy(SparseCategoricalAccuracyOptions options = {});

private:
    friend class detail::MetricImpl<SparseCategoricalAccuracy>;
    friend class detail::MeanMetric<SparseCategoricalAccuracy, SparseCategoricalAccuracyOptions>;
    static constexpr const char* kWho = "metrics::SparseCategoricalAccuracy";
    static constexpr Direction kDirection = Direction::Max;
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::sparse_categorical_accuracy_batch(kWho, "y_true", t, "y_pred", p, true);
    }
};

/// Options of TopKCategoricalAccuracy.
struct TopKCategoricalAccuracyOptions {
    std::string name = "top_k_categorical_accuracy";  ///< the log key
    int k = 5;                                        ///< >= 1
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const TopKCategoricalAccuracyOptions&) const = default;
};

/// Streaming top_k_categorical_accuracy; direction Max.
class TopKCategoricalAccuracy final
    : public detail::MeanMetric<TopKCategoricalAccuracy, TopKCategoricalAccuracyOptions> {
public:
    /// @throws InvalidArgument for an empty name or k < 1
    TRAINCB_INLINE explicit TopKCategoricalAccuracy(TopKCategoricalAccuracyOptions options = {});

private:
    friend class detail::MetricImpl<TopKCategoricalAccuracy>;
    friend class detail::MeanMetric<TopKCategoricalAccuracy, TopKCategoricalAccuracyOptions>;
    static constexpr const char* kWho = "metrics::TopKCategoricalAccuracy";
    static constexpr Direction kDirection = Direction::Max;
    [[nodiscard]] nlohmann::json state_options() const { return {{"k", opt_.k}}; }
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::top_k_batch(kWho, "y_true", t, "y_pred", p, opt_.k, true);
    }
};

/// Options of BinaryCrossentropy.
struct BinaryCrossentropyOptions {
    std::string name = "binary_crossentropy";  ///< the log key
    bool from_logits = false;                  ///< y_pred holds logits rather than probabilities
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const BinaryCrossentropyOptions&) const = default;
};

/// Streaming binary_crossentropy; direction Min.
class BinaryCrossentropy final : public detail::MeanMetric<BinaryCrossentropy, BinaryCrossentropyOptions> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit BinaryCrossentropy(BinaryCrossentropyOptions options = {});

private:
    friend class detail::MetricImpl<BinaryCrossentropy>;
    friend class detail::MeanMetric<BinaryCrossentropy, BinaryCrossentropyOptions>;
    static constexpr const char* kWho = "metrics::BinaryCrossentropy";
    static constexpr Direction kDirection = Direction::Min;
    [[nodiscard]] nlohmann::json state_options() const { return {{"from_logits", opt_.from_logits}}; }
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::binary_crossentropy_batch(kWho, "y_true", t, "y_pred", p, opt_.from_logits, true);
    }
};

/// Options of CategoricalCrossentropy.
struct CategoricalCrossentropyOptions {
    std::string name = "categorical_crossentropy";  ///< the log key
    bool from_logits = false;                       ///< y_pred holds logits rather than probabilities
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const CategoricalCrossentropyOptions&) const = default;
};

/// Streaming categorical_crossentropy; direction Min.
class CategoricalCrossentropy final
    : public detail::MeanMetric<CategoricalCrossentropy, CategoricalCrossentropyOptions> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit CategoricalCrossentropy(CategoricalCrossentropyOptions options = {});

private:
    friend class detail::MetricImpl<CategoricalCrossentropy>;
    friend class detail::MeanMetric<CategoricalCrossentropy, CategoricalCrossentropyOptions>;
    static constexpr const char* kWho = "metrics::CategoricalCrossentropy";
    static constexpr Direction kDirection = Direction::Min;
    [[nodiscard]] nlohmann::json state_options() const { return {{"from_logits", opt_.from_logits}}; }
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::categorical_crossentropy_batch(kWho, "y_true", t, "y_pred", p, opt_.from_logits, true);
    }
};

/// Options of SparseCategoricalCrossentropy.
struct SparseCategoricalCrossentropyOptions {
    std::string name = "sparse_categorical_crossentropy";  ///< the log key
    bool from_logits = false;                              ///< y_pred holds logits rather than probabilities
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const SparseCategoricalCrossentropyOptions&) const = default;
};

/// Streaming sparse_categorical_crossentropy (y_true an N x 1 matrix of class indices); direction Min.
class SparseCategoricalCrossentropy final
    : public detail::MeanMetric<SparseCategoricalCrossentropy, SparseCategoricalCrossentropyOptions> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions options = {});

private:
    friend class detail::MetricImpl<SparseCategoricalCrossentropy>;
    friend class detail::MeanMetric<SparseCategoricalCrossentropy, SparseCategoricalCrossentropyOptions>;
    static constexpr const char* kWho = "metrics::SparseCategoricalCrossentropy";
    static constexpr Direction kDirection = Direction::Min;
    [[nodiscard]] nlohmann::json state_options() const { return {{"from_logits", opt_.from_logits}}; }
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::sparse_categorical_crossentropy_batch(kWho, "y_true", t, "y_pred", p, opt_.from_logits,
                                                                      true);
    }
};

/// Options of MeanSquaredError.
struct MeanSquaredErrorOptions {
    std::string name = "mean_squared_error";  ///< the log key
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const MeanSquaredErrorOptions&) const = default;
};

/// Streaming mean_squared_error; direction Min.
class MeanSquaredError final : public detail::MeanMetric<MeanSquaredError, MeanSquaredErrorOptions> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit MeanSquaredError(MeanSquaredErrorOptions options = {});

private:
    friend class detail::MetricImpl<MeanSquaredError>;
    friend class detail::MeanMetric<MeanSquaredError, MeanSquaredErrorOptions>;
    static constexpr const char* kWho = "metrics::MeanSquaredError";
    static constexpr Direction kDirection = Direction::Min;
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::squared_error_batch(kWho, "y_true", t, "y_pred", p, true);
    }
};

/// Options of MeanAbsoluteError.
struct MeanAbsoluteErrorOptions {
    std::string name = "mean_absolute_error";  ///< the log key
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const MeanAbsoluteErrorOptions&) const = default;
};

/// Streaming mean_absolute_error; direction Min.
class MeanAbsoluteError final : public detail::MeanMetric<MeanAbsoluteError, MeanAbsoluteErrorOptions> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit MeanAbsoluteError(MeanAbsoluteErrorOptions options = {});

private:
    friend class detail::MetricImpl<MeanAbsoluteError>;
    friend class detail::MeanMetric<MeanAbsoluteError, MeanAbsoluteErrorOptions>;
    static constexpr const char* kWho = "metrics::MeanAbsoluteError";
    static constexpr Direction kDirection = Direction::Min;
    template <class A, class B>
    detail::metrics::Batch batch(const A& t, const B& p) const {
        return detail::metrics::absolute_error_batch(kWho, "y_true", t, "y_pred", p, true);
    }
};

/// Options of Precision, Recall and F1Score.
struct ClassScoreOptions {
    std::string name{};                 ///< the log key; empty gives "precision", "recall" or "f1_score"
    Average average = Average::Binary;  ///< how classes combine
    std::int64_t pos_label = 1;         ///< the positive class for Average::Binary (0 or 1)
    Eigen::Index num_classes = 2;       ///< classes for the other averages (labels in [0, num_classes))
    double threshold = 0.5;             ///< N x 1 scores above it predict class 1
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const ClassScoreOptions&) const = default;
};

/// Streaming confusion matrix over label vectors (not a Metric: its result is a matrix).
struct ConfusionMatrixOptions {
    Eigen::Index num_classes = 2;  ///< >= 1; labels in [0, num_classes)
};

/// Accumulates confusion_matrix over batches of (labels_true, labels_pred).
class ConfusionMatrix {
public:
    /// @throws InvalidArgument for num_classes < 1
    explicit ConfusionMatrix(ConfusionMatrixOptions options = {}) : opt_(options) {
        if (opt_.num_classes < 1)
            detail::metrics::fail(kWho,
                                  "num_classes is " + std::to_string(opt_.num_classes) + "; pass num_classes >= 1");
        counts_ = CountMatrix::Zero(opt_.num_classes, opt_.num_classes);
    }
    /// Adds a batch of label vectors (empty batches are allowed). @throws InvalidArgument as
    /// confusion_matrix(); the counts are then unchanged
    template <class A, class B>
    void update(const Eigen::DenseBase<A>& labels_true, const Eigen::DenseBase<B>& labels_pred) {
        namespace d = ::traincb::detail::metrics;
        const auto& lt = labels_true.derived();
        const auto& lp = labels_pred.derived();
        d::require_vector(kWho, "labels_true", lt);
        d::require_vector(kWho, "labels_pred", lp);
        if (lt.size() != lp.size())
            d::fail(kWho, "labels_true has " + std::to_string(lt.size()) + " elements but labels_pred has " +
                              std::to_string(lp.size()) + "; pass one predicted label per true label");
        const d::VectorReader<A> rt(lt);
        const d::VectorReader<B> rp(lp);
        for (Eigen::Index i = 0; i < lt.size(); ++i) {  // validate first: all or nothing
            (void)d::read_label(rt, i, opt_.num_classes, kWho, "labels_true");
            (void)d::read_label(rp, i, opt_.num_classes, kWho, "labels_pred");
        }
        for (Eigen::Index i = 0; i < lt.size(); ++i)
            ++counts_(static_cast<Eigen::Index>(rt(i)), static_cast<Eigen::Index>(rp(i)));
    }
    /// The counts so far.
    [[nodiscard]] const CountMatrix& result() const noexcept { return counts_; }
    /// Zeroes the counts.
    void reset() { counts_.setZero(); }
    /// Adds other's counts. @throws InvalidArgument when num_classes differ
    void merge(const ConfusionMatrix& other) {
        if (other.opt_.num_classes != opt_.num_classes)
            detail::metrics::fail("metrics::ConfusionMatrix::merge",
                                  "num_classes differ (" + std::to_string(opt_.num_classes) + " and " +
                                      std::to_string(other.opt_.num_classes) +
                                      "); merge objects built with the same options");
        counts_ += other.counts_;
    }
    /// The options given at construction.
    [[nodiscard]] const ConfusionMatrixOptions& options() const noexcept { return opt_; }

private:
    static constexpr const char* kWho = "metrics::ConfusionMatrix";
    ConfusionMatrixOptions opt_;
    CountMatrix counts_;
};

}  // namespace traincb::inline v0::metrics

namespace traincb::inline v0::detail {

/// Precision, Recall, F1Score: per-class counts (TP, true support, predicted support) of labels
/// taken from the predictions: N x 1 scores give score > threshold, N x C give argmax. y_true is
/// N x 1 class indices or N x C one-hot (argmax). result() is O(classes).
template <class Self, metrics::Score kScore>
class ClassScoreMetric : public MetricImpl<Self> {
public:
    [[nodiscard]] double result() const override {
        if (n_ == 0) return std::numeric_limits<double>::quiet_NaN();
        const int avg = static_cast<int>(opt_.average);
        return metrics::average_score(kScore, avg, view(), static_cast<Eigen::Index>(opt_.pos_label));
    }
    void reset() override {
        std::fill(counts_.begin(), counts_.end(), 0);
        n_ = 0;
    }
    /// The options given at construction (name filled in).
    [[nodiscard]] const ::traincb::metrics::ClassScoreOptions& options() const noexcept { return opt_; }

protected:
    ClassScoreMetric(::traincb::metrics::ClassScoreOptions options, const char* default_name)
        : opt_(std::move(options)) {
        using ::traincb::metrics::Average;
        if (opt_.name.empty()) opt_.name = default_name;
        if (std::isnan(opt_.threshold)) metrics::fail(Self::kWho, "threshold is nan; pass a number such as 0.5");
        if (opt_.num_classes < 1)
            metrics::fail(Self::kWho, "num_classes is " + std::to_string(opt_.num_classes) + "; pass num_classes >= 1");
        if (opt_.average == Average::Binary) {
            if (opt_.num_classes != 2)
                metrics::fail(Self::kWho, "num_classes is " + std::to_string(opt_.num_classes) +
                                              " but average = Average::Binary needs 2 classes; pass average = "
                                              "Average::Macro, Average::Micro or Average::Weighted");
            if (opt_.pos_label != 0 && opt_.pos_label != 1)
                metrics::fail(Self::kWho,
                              "pos_label is " + std::to_string(opt_.pos_label) +
                                  " but average = Average::Binary needs labels 0 or 1; pass pos_label = 0 or 1");
        }
        counts_.assign(static_cast<std::size_t>(3 * opt_.num_classes), 0);
    }

private:
    friend class MetricImpl<Self>;
    static constexpr Eigen::Index kChunk = 256;

    [[nodiscard]] metrics::ClassCountsView view() const noexcept {
        const Eigen::Index k = opt_.num_classes;
        return {counts_.data(), counts_.data() + k, counts_.data() + 2 * k, k};
    }

    template <class A, class B>
    void accumulate(const A& t, const B& p) {
        namespace d = metrics;
        const char* who = Self::kWho;
        const Eigen::Index k = opt_.num_classes;
        if (t.rows() != p.rows())
            d::fail(who,
                    "y_true is " + d::shape(t) + " but y_pred is " + d::shape(p) + "; pass one row per sample in both");
        if (t.cols() != 1 && t.cols() != k)
            d::fail(who, "y_true is " + d::shape(t) + "; pass N x 1 class indices or N x " + std::to_string(k) +
                             " one-hot rows (num_classes is " + std::to_string(k) + ")");
        if (p.cols() != 1 && p.cols() != k)
            d::fail(who, "y_pred is " + d::shape(p) + "; pass N x 1 scores or N x " + std::to_string(k) +
                             " class scores (num_classes is " + std::to_string(k) + ")");
        if (p.cols() == 1 && k < 2)
            d::fail(who, "y_pred is " + d::shape(p) + ": N x 1 scores predict classes 0 and 1 but num_classes is " +
                             std::to_string(k) + "; pass num_classes >= 2");
        if (t.cols() == 1) {  // validate every label before counting anything: all or nothing
            const d::VectorReader<A> labels(t);
            for (Eigen::Index i = 0; i < t.rows(); ++i) (void)d::read_label(labels, i, k, who, "y_true");
        }
        // Pair the true and predicted labels chunk by chunk (no buffer proportional to N).
        std::int64_t* tp = counts_.data();
        std::int64_t* nt = tp + k;
        std::int64_t* np = nt + k;
        Eigen::Index buf_t[kChunk];
        Eigen::Index buf_p[kChunk];
        for (Eigen::Index r0 = 0; r0 < t.rows(); r0 += kChunk) {
            const Eigen::Index m = std::min(kChunk, t.rows() - r0);
            const auto tb = t.middleRows(r0, m);
            const auto pb = p.middleRows(r0, m);
            d::for_each_true_label(tb, k, who, "y_true", [&](Eigen::Index i, Eigen::Index label) { buf_t[i] = label; });
            d::for_each_predicted_label(pb, opt_.threshold,
                                        [&](Eigen::Index i, Eigen::Index label) { buf_p[i] = label; });
            for (Eigen::Index i = 0; i < m; ++i) {
                tp[buf_t[i]] += buf_t[i] == buf_p[i] ? 1 : 0;
                ++nt[buf_t[i]];
                ++np[buf_p[i]];
            }
        }
        n_ += t.rows();
    }
    [[nodiscard]] bool same_options(const Self& o) const {
        auto a = opt_;
        a.name = o.opt_.name;
        return a == o.opt_;
    }
    void merge_state(const Self& o) noexcept {
        for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
        n_ += o.n_;
    }
    [[nodiscard]] nlohmann::json state_options() const {
        return {{"average", ::traincb::metrics::to_string(opt_.average)},
                {"pos_label", opt_.pos_label},
                {"num_classes", opt_.num_classes},
                {"threshold", metrics::state_double(opt_.threshold)}};
    }
    void save_accumulators(nlohmann::json& j) const {
        j["counts"] = counts_;  // tp[k], n_true[k], n_pred[k]
        j["samples"] = n_;
    }
    void load_accumulators(const nlohmann::json& j, const metrics::StateReader& in) {
        const auto k = static_cast<std::size_t>(opt_.num_classes);
        const nlohmann::json& arr = in.array(j, "counts", 3 * k);
        std::vector<std::int64_t> counts(arr.size());
        for (std::size_t i = 0; i < arr.size(); ++i)
            counts[i] = in.count(arr[i], "'counts'[" + std::to_string(i) + "]");
        const std::int64_t n = in.count(in.field(j, "samples"), "'samples'");
        // Every sample has one true and one predicted label, and a true positive is both.
        std::int64_t n_true = 0, n_pred = 0;
        bool consistent = true;
        for (std::size_t c = 0; c < k; ++c) {
            n_true += counts[k + c];
            n_pred += counts[2 * k + c];
            consistent = consistent && counts[c] <= counts[k + c] && counts[c] <= counts[2 * k + c];
        }
        if (!consistent || n_true != n || n_pred != n)
            in.malformed("has counts that do not fit 'samples' = " + std::to_string(n) +
                         " (per class: true positives <= true and predicted counts, which each sum to 'samples')");
        counts_ = std::move(counts);
        n_ = n;
    }

protected:
    ::traincb::metrics::ClassScoreOptions opt_;
    std::vector<std::int64_t> counts_;  // tp[k], n_true[k], n_pred[k]
    std::int64_t n_ = 0;
};

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::metrics {

/// Streaming precision (scikit-learn definitions, see ClassScoreOptions); default name
/// "precision"; direction Max; NaN before any data.
class Precision final : public detail::ClassScoreMetric<Precision, detail::metrics::Score::Precision> {
public:
    /// @throws InvalidArgument for a NaN threshold, num_classes < 1, or Binary with num_classes != 2
    /// or pos_label not 0 or 1
    TRAINCB_INLINE explicit Precision(ClassScoreOptions options = {});

private:
    friend class detail::MetricImpl<Precision>;
    friend class detail::ClassScoreMetric<Precision, detail::metrics::Score::Precision>;
    static constexpr const char* kWho = "metrics::Precision";
    static constexpr Direction kDirection = Direction::Max;
};

/// Streaming recall; default name "recall"; direction Max; NaN before any data.
class Recall final : public detail::ClassScoreMetric<Recall, detail::metrics::Score::Recall> {
public:
    /// @throws InvalidArgument as Precision's constructor
    TRAINCB_INLINE explicit Recall(ClassScoreOptions options = {});

private:
    friend class detail::MetricImpl<Recall>;
    friend class detail::ClassScoreMetric<Recall, detail::metrics::Score::Recall>;
    static constexpr const char* kWho = "metrics::Recall";
    static constexpr Direction kDirection = Direction::Max;
};

/// Streaming F1 score; default name "f1_score"; direction Max; NaN before any data.
class F1Score final : public detail::ClassScoreMetric<F1Score, detail::metrics::Score::F1> {
public:
    /// @throws InvalidArgument as Precision's constructor
    TRAINCB_INLINE explicit F1Score(ClassScoreOptions options = {});

private:
    friend class detail::MetricImpl<F1Score>;
    friend class detail::ClassScoreMetric<F1Score, detail::metrics::Score::F1>;
    static constexpr const char* kWho = "metrics::F1Score";
    static constexpr Direction kDirection = Direction::Max;
};

/// Options of RocAuc.
struct RocAucOptions {
    std::string name = "auc";  ///< the log key (Keras's AUC default)
    /// Member-wise equality (merge() requires equal options, the name aside).
    bool operator==(const RocAucOptions&) const = default;
};

/// Streaming exact ROC AUC (roc_auc on all accumulated scores; not Keras's thresholded
/// approximation). Keeps every score (8 bytes per sample); result() sorts them once per change,
/// O(N log N). result() is NaN before both classes have been seen and if any score is NaN.
/// Direction Max. y_true and y_pred are N x 1 (or vectors).
class RocAuc final : public detail::MetricImpl<RocAuc> {
public:
    /// @throws InvalidArgument for an empty name
    TRAINCB_INLINE explicit RocAuc(RocAucOptions options = {});
    /// The exact AUC of every score so far (sorted once per change); NaN before both classes
    /// were seen or after a NaN score.
    [[nodiscard]] double result() const override {
        if (nan_ || pos_.empty() || neg_.empty()) return std::numeric_limits<double>::quiet_NaN();
        if (!sorted_) {
            std::sort(pos_.begin(), pos_.end());
            std::sort(neg_.begin(), neg_.end());
            sorted_ = true;
        }
        return detail::metrics::mann_whitney_auc(pos_.data(), static_cast<Eigen::Index>(pos_.size()), neg_.data(),
                                                 static_cast<Eigen::Index>(neg_.size()));
    }
    /// Forgets every score.
    void reset() override {
        pos_.clear();
        neg_.clear();
        nan_ = false;
        sorted_ = true;
    }
    /// The options given at construction.
    [[nodiscard]] const RocAucOptions& options() const noexcept { return opt_; }

private:
    friend class detail::MetricImpl<RocAuc>;
    static constexpr const char* kWho = "metrics::RocAuc";
    static constexpr Direction kDirection = Direction::Max;

    template <class A, class B>
    void accumulate(const A& t, const B& p) {
        namespace d = ::traincb::detail::metrics;
        d::require_vector(kWho, "y_true", t);
        d::require_vector(kWho, "y_pred", p);
        if (t.size() != p.size())
            d::fail(kWho, "y_true is " + d::shape(t) + " but y_pred is " + d::shape(p) + "; pass one score per target");
        const d::VectorReader<A> rt(t);
        const d::VectorReader<B> rp(p);
        for (Eigen::Index i = 0; i < t.size(); ++i)  // validate first: all or nothing
            if (d::not_binary(rt(i)))
                d::fail(kWho, "y_true(" + std::to_string(i) + ") is " + d::number(rt(i)) +
                                  "; ROC AUC targets must be 0 or 1");
        for (Eigen::Index i = 0; i < t.size(); ++i) {
            const double s = rp(i);
            nan_ = nan_ || std::isnan(s);
            (rt(i) == 1 ? pos_ : neg_).push_back(s);
        }
        if (t.size() > 0) sorted_ = false;
    }
    [[nodiscard]] bool same_options(const RocAuc&) const noexcept { return true; }
    void merge_state(const RocAuc& o) {
        const std::vector<double> pos = o.pos_, neg = o.neg_;  // copies: o may be *this
        pos_.insert(pos_.end(), pos.begin(), pos.end());
        neg_.insert(neg_.end(), neg.begin(), neg.end());
        nan_ = nan_ || o.nan_;
        sorted_ = false;
    }
    [[nodiscard]] nlohmann::json state_options() const { return nlohmann::json::object(); }
    // Every score, as a round-trip string: the statistic depends only on the sorted scores, so
    // their order in the state does not matter.
    void save_accumulators(nlohmann::json& j) const {
        const auto scores = [](const std::vector<double>& v) {
            nlohmann::json a = nlohmann::json::array();
            for (double x : v) a.push_back(detail::metrics::state_double(x));
            return a;
        };
        j["positives"] = scores(pos_);
        j["negatives"] = scores(neg_);
    }
    void load_accumulators(const nlohmann::json& j, const detail::metrics::StateReader& in) {
        const auto scores = [&](const char* key) {
            const nlohmann::json& a = in.array(j, key);
            std::vector<double> v;
            v.reserve(a.size());
            for (std::size_t i = 0; i < a.size(); ++i)
                v.push_back(in.real(a[i], traincb::detail::cat("'", key, "'[", std::to_string(i), "]")));
            return v;
        };
        std::vector<double> pos = scores("positives");
        assign(std::move(pos), scores("negatives"));
    }
    // In checkpoints the scores are two F64 tensors, "positives" and "negatives" (raw bytes: a
    // few million scores would push a JSON header past the safetensors limit of 100 MB), and the
    // JSON holds their counts.
    void save_bulk(nlohmann::json& j, StateDict& tensors) const {
        j["positive_count"] = pos_.size();
        j["negative_count"] = neg_.size();
        tensors.put(vector_tensor<double>("positives", pos_));
        tensors.put(vector_tensor<double>("negatives", neg_));
    }
    void load_bulk(const nlohmann::json& j, const StateDict& tensors, const detail::metrics::StateReader& in) {
        if (j.contains("positives")) return load_accumulators(j, in);  // the JSON form of save_state
        const auto scores = [&](const char* key, const char* count_key) {
            const auto n =
                static_cast<std::size_t>(in.count(in.field(j, count_key), "'" + std::string(count_key) + "'"));
            const Tensor* t = tensors.find(key);
            if (t == nullptr)
                in.malformed("names " + std::to_string(n) + " scores in tensor '" + key + "', which is missing");
            std::vector<double> v;
            if (!read_vector_tensor(*t, n, v))
                in.malformed("has tensor '" + std::string(key) + "' of " + dtype_name(t->dtype) + " " +
                             std::to_string(t->data.size()) + " bytes, but " + count_key + " = " + std::to_string(n) +
                             " needs F64 [" + std::to_string(n) + "]");
            return v;
        };
        std::vector<double> pos = scores("positives", "positive_count");
        assign(std::move(pos), scores("negatives", "negative_count"));
    }
    void assign(std::vector<double> pos, std::vector<double> neg) noexcept {
        bool nan = false;
        for (const double x : pos) nan = nan || std::isnan(x);
        for (const double x : neg) nan = nan || std::isnan(x);
        pos_ = std::move(pos);
        neg_ = std::move(neg);
        nan_ = nan;
        sorted_ = pos_.empty() && neg_.empty();
    }

    RocAucOptions opt_;
    mutable std::vector<double> pos_, neg_;  // sorted lazily by result()
    bool nan_ = false;
    mutable bool sorted_ = true;
};

}  // namespace traincb::inline v0::metrics

#if TRAINCB_DEFINITIONS
#include "traincb/metrics-inl.hpp"
#endif
