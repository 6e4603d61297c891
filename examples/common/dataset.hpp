#pragma once
/// @file dataset.hpp
/// Data helpers shared by traincb's examples: a numeric CSV loader, a standardiser, a stratified
/// train/validation/test split, row selection, the location of examples/data, and portable random
/// numbers.
///
/// Random numbers: std::uniform_real_distribution, std::uniform_int_distribution and
/// std::shuffle are implemented differently by libstdc++, libc++ and MSVC, so the same seed would
/// give different data and splits on different machines. std::mt19937_64 itself is specified
/// exactly by the standard, so everything here draws raw 64-bit words from it and turns them into
/// numbers with the explicit arithmetic below: same seed, same bits everywhere.

#include <Eigen/Core>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if !(defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L)
#include <locale>
#include <sstream>
#endif

#include <traincb/errors.hpp>

namespace traincb_examples {

// ---------------------------------------------------------------------------------------------
// Portable random numbers
// ---------------------------------------------------------------------------------------------

namespace detail {
template <class Rng>
constexpr void require_full_64_bit_engine() {
    static_assert(Rng::min() == 0 && Rng::max() == std::numeric_limits<std::uint64_t>::max(),
                  "traincb_examples: pass a generator of full 64-bit words, e.g. std::mt19937_64");
}
}  // namespace detail

/// A double uniform in [0, 1): the top 53 bits of one 64-bit draw times 2^-53 (every value is a
/// multiple of 2^-53; the same bits on every platform).
template <class Rng>
[[nodiscard]] double uniform01(Rng& rng) {
    detail::require_full_64_bit_engine<Rng>();
    return static_cast<double>(static_cast<std::uint64_t>(rng()) >> 11) * 0x1.0p-53;
}

/// An integer uniform in [0, n), without modulo bias: draws below 2^64 mod n are rejected, so
/// the accepted range is a whole number of copies of [0, n). n == 0 returns 0 without a draw.
template <class Rng>
[[nodiscard]] std::uint64_t uniform_index(Rng& rng, std::uint64_t n) {
    detail::require_full_64_bit_engine<Rng>();
    if (n == 0) return 0;
    const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n, in unsigned arithmetic
    for (;;) {
        const auto r = static_cast<std::uint64_t>(rng());
        if (r >= threshold) return r % n;
    }
}

/// Fisher-Yates shuffle driven by uniform_index (std::shuffle differs between standard libraries).
template <class T, class Rng>
void shuffle(std::span<T> items, Rng& rng) {
    for (std::size_t i = items.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(uniform_index(rng, i));
        using std::swap;
        swap(items[i - 1], items[j]);
    }
}

/// A rows x cols matrix of uniform01 values, filled row by row (numpy's rand(rows, cols) order).
template <class Rng>
[[nodiscard]] Eigen::MatrixXd uniform_matrix(Eigen::Index rows, Eigen::Index cols, Rng& rng) {
    Eigen::MatrixXd m(rows, cols);
    for (Eigen::Index r = 0; r < rows; ++r)
        for (Eigen::Index c = 0; c < cols; ++c) m(r, c) = uniform01(rng);
    return m;
}

/// A rows x 1 matrix of labels 0 or 1, each the top bit of one 64-bit draw (a fair coin).
template <class Rng>
[[nodiscard]] Eigen::MatrixXd random_binary_labels(Eigen::Index rows, Rng& rng) {
    detail::require_full_64_bit_engine<Rng>();
    Eigen::MatrixXd y(rows, 1);
    for (Eigen::Index r = 0; r < rows; ++r) y(r, 0) = static_cast<double>(static_cast<std::uint64_t>(rng()) >> 63);
    return y;
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

/// A labelled data set: one row per sample.
struct Dataset {
    Eigen::MatrixXd features{};                ///< samples x features
    Eigen::MatrixXd labels{};                  ///< samples x 1 (the CSV's last column)
    std::vector<std::string> feature_names{};  ///< header names of the feature columns
    std::string label_name{};                  ///< header name of the label column
};

namespace detail {
inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

inline std::vector<std::string_view> split_commas(std::string_view line) {
    std::vector<std::string_view> out;
    for (;;) {
        const auto comma = line.find(',');
        out.push_back(trim(line.substr(0, comma)));
        if (comma == std::string_view::npos) return out;
        line.remove_prefix(comma + 1);
    }
}

// Parses the whole of `s` as a finite double, independent of the C locale.
inline bool parse_double(std::string_view s, double& out) {
    if (s.empty()) return false;
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size()) return false;
#else
    std::istringstream in{std::string(s)};
    in.imbue(std::locale::classic());
    in >> out;
    if (!in || in.peek() != std::char_traits<char>::eof()) return false;
#endif
    return std::isfinite(out);
}
}  // namespace detail

/// Reads a numeric CSV: one header row, then one sample per row, the label in the last column.
/// Fields are plain numbers (no quoting; spaces around a field are ignored); blank lines are
/// skipped; a UTF-8 byte-order mark and Windows line ends are accepted.
/// @throws traincb::IoError when the file cannot be opened; traincb::FormatError naming the file,
/// line and column for an empty file, a header with fewer than 2 columns, a row with the wrong
/// number of fields, a field that is not a finite number, or no data rows.
[[nodiscard]] inline Dataset load_csv(const std::filesystem::path& path) {
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::error_code ec;
        const int err = !std::filesystem::exists(path, ec) ? ENOENT : (errno != 0 ? errno : EIO);
        throw traincb::IoError("load_csv", "cannot open", path, err);
    }
    const std::string where = "traincb: load_csv: '" + path.string() + "' ";
    std::string line;
    if (!std::getline(in, line))
        throw traincb::FormatError(where + "is empty; expected a header row and one sample per row");
    if (line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    Dataset data;
    // Owned copies: the views split_commas returns point into `line`, which the next getline reuses.
    std::vector<std::string> header;
    for (const auto field : detail::split_commas(line)) header.emplace_back(field);
    if (header.size() < 2)
        throw traincb::FormatError(where + "line 1: the header has " + std::to_string(header.size()) +
                                   " column; expected at least one feature column and the label column");
    const std::size_t ncols = header.size();
    for (std::size_t c = 0; c + 1 < ncols; ++c) data.feature_names.emplace_back(header[c]);
    data.label_name = header.back();

    std::vector<double> values;  // row-major
    std::size_t line_no = 1;
    std::size_t nrows = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (detail::trim(line).empty()) continue;
        const auto fields = detail::split_commas(line);
        if (fields.size() != ncols)
            throw traincb::FormatError(where + "line " + std::to_string(line_no) + ": " +
                                       std::to_string(fields.size()) + " fields but the header has " +
                                       std::to_string(ncols) + "; every row needs one value per header column");
        for (std::size_t c = 0; c < ncols; ++c) {
            double v = 0;
            if (!detail::parse_double(fields[c], v))
                throw traincb::FormatError(where + "line " + std::to_string(line_no) + ", column " +
                                           std::to_string(c + 1) + " ('" + header[c] + "'): '" +
                                           std::string(fields[c]) + "' is not a finite number");
            values.push_back(v);
        }
        ++nrows;
    }
    if (in.bad()) throw traincb::IoError("load_csv", "cannot read", path, EIO);
    if (nrows == 0) throw traincb::FormatError(where + "has a header but no data rows");

    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const RowMajor> all(values.data(), static_cast<Eigen::Index>(nrows),
                                         static_cast<Eigen::Index>(ncols));
    data.features = all.leftCols(static_cast<Eigen::Index>(ncols) - 1);
    data.labels = all.rightCols(1);
    return data;
}

// ---------------------------------------------------------------------------------------------
// Standardizer
// ---------------------------------------------------------------------------------------------

/// Rescales each column to mean 0 and standard deviation 1, with statistics fitted on training
/// rows only (so validation and test rows do not leak into them), as scikit-learn's
/// StandardScaler: population standard deviation (divide by n). A constant column (all values
/// equal in the fitted rows) gets scale 1: it is centred but left unscaled, instead of dividing
/// by zero.
class Standardizer {
public:
    /// An unfitted standardizer; call fit() before transform().
    Standardizer() = default;
    /// Fits on the rows of x. @throws traincb::InvalidArgument as fit().
    template <class Derived>
    explicit Standardizer(const Eigen::MatrixBase<Derived>& x) {
        fit(x);
    }

    /// Computes each column's mean and scale from the rows of x.
    /// @throws traincb::InvalidArgument when x has no rows or no columns.
    template <class Derived>
    void fit(const Eigen::MatrixBase<Derived>& x) {
        if (x.rows() == 0 || x.cols() == 0)
            throw traincb::InvalidArgument("traincb: Standardizer::fit: x is " + std::to_string(x.rows()) + " x " +
                                           std::to_string(x.cols()) + "; pass at least one row and one column");
        const auto n = static_cast<double>(x.rows());
        mean_.resize(x.cols());
        scale_.resize(x.cols());
        for (Eigen::Index c = 0; c < x.cols(); ++c) {
            double sum = 0;
            double lo = static_cast<double>(x(0, c));
            double hi = lo;
            for (Eigen::Index r = 0; r < x.rows(); ++r) {
                const auto v = static_cast<double>(x(r, c));
                sum += v;
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
            const double mean = sum / n;
            double ss = 0;  // two passes: the one-pass formula loses precision for large means
            for (Eigen::Index r = 0; r < x.rows(); ++r) {
                const double d = static_cast<double>(x(r, c)) - mean;
                ss += d * d;
            }
            const double sd = std::sqrt(ss / n);
            mean_(c) = mean;
            scale_(c) = (lo == hi || !(sd > 0)) ? 1.0 : sd;
        }
    }

    /// (x - mean) / scale, column by column.
    /// @throws traincb::LogicError before fit(); traincb::InvalidArgument when the column count differs.
    template <class Derived>
    [[nodiscard]] Eigen::MatrixXd transform(const Eigen::MatrixBase<Derived>& x) const {
        if (!fitted())
            throw traincb::LogicError(
                "traincb: Standardizer::transform: called before fit(); fit on the training rows first");
        if (x.cols() != mean_.size())
            throw traincb::InvalidArgument("traincb: Standardizer::transform: x has " + std::to_string(x.cols()) +
                                           " columns but the standardizer was fitted on " +
                                           std::to_string(mean_.size()));
        Eigen::MatrixXd out = x.template cast<double>();
        out.rowwise() -= mean_;
        out.array().rowwise() /= scale_.array();
        return out;
    }

    /// fit(x) then transform(x). @throws as fit().
    template <class Derived>
    [[nodiscard]] Eigen::MatrixXd fit_transform(const Eigen::MatrixBase<Derived>& x) {
        fit(x);
        return transform(x);
    }

    /// True once fit() succeeded.
    [[nodiscard]] bool fitted() const noexcept { return mean_.size() > 0; }
    /// Per-column means of the fitted rows.
    [[nodiscard]] const Eigen::RowVectorXd& mean() const noexcept { return mean_; }
    /// Per-column divisors: the population standard deviation, or 1 for a constant column.
    [[nodiscard]] const Eigen::RowVectorXd& scale() const noexcept { return scale_; }

private:
    Eigen::RowVectorXd mean_{};
    Eigen::RowVectorXd scale_{};
};

// ---------------------------------------------------------------------------------------------
// Splits and row selection
// ---------------------------------------------------------------------------------------------

/// Fractions of each class that go to each part; they must be >= 0 and sum to 1.
struct SplitFractions {
    double train = 0.7;  ///< training rows
    double val = 0.15;   ///< validation rows
    double test = 0.15;  ///< held-out test rows
};

/// Row indices of a three-way split.
struct Split {
    std::vector<Eigen::Index> train{};  ///< training rows, shuffled
    std::vector<Eigen::Index> val{};    ///< validation rows, shuffled
    std::vector<Eigen::Index> test{};   ///< test rows, shuffled
};

/// Splits row indices so that each class keeps its proportion in every part: per class (in
/// ascending label order), the class's rows are shuffled, the first round(train * n_c) go to
/// train, the next round(val * n_c) to val (capped at what is left) and the rest to test. Each
/// part is then shuffled so that classes are interleaved. Deterministic for a seed
/// (std::mt19937_64 and the portable shuffle above).
/// @throws traincb::InvalidArgument when labels is not a vector, a label is NaN, or the fractions
/// are negative or do not sum to 1 (within 1e-9).
template <class Derived>
[[nodiscard]] Split stratified_split(const Eigen::DenseBase<Derived>& labels, const SplitFractions& fractions,
                                     std::uint64_t seed) {
    const SplitFractions& f = fractions;
    if (labels.rows() != 1 && labels.cols() != 1)
        throw traincb::InvalidArgument("traincb: stratified_split: labels is " + std::to_string(labels.rows()) + " x " +
                                       std::to_string(labels.cols()) + "; pass one label per row (N x 1)");
    if (!(f.train >= 0 && f.val >= 0 && f.test >= 0) || !(std::abs(f.train + f.val + f.test - 1.0) <= 1e-9))
        throw traincb::InvalidArgument("traincb: stratified_split: fractions {train " + std::to_string(f.train) +
                                       ", val " + std::to_string(f.val) + ", test " + std::to_string(f.test) +
                                       "} must be >= 0 and sum to 1");
    std::map<double, std::vector<Eigen::Index>> by_class;
    for (Eigen::Index i = 0; i < labels.size(); ++i) {
        const auto v = static_cast<double>(labels.cols() == 1 ? labels(i, 0) : labels(0, i));
        if (std::isnan(v))
            throw traincb::InvalidArgument("traincb: stratified_split: label " + std::to_string(i) +
                                           " is NaN; every row needs a class label");
        by_class[v].push_back(i);
    }
    std::mt19937_64 rng(seed);
    Split out;
    for (auto& [label, rows] : by_class) {
        shuffle(std::span<Eigen::Index>(rows), rng);
        const std::size_t n = rows.size();
        const auto n_train =
            std::min<std::size_t>(n, static_cast<std::size_t>(std::llround(f.train * static_cast<double>(n))));
        const auto n_val =
            std::min<std::size_t>(n - n_train, static_cast<std::size_t>(std::llround(f.val * static_cast<double>(n))));
        // A zero test fraction sends every remaining row to validation, so no row is lost.
        const std::size_t val_end = f.test == 0 ? n : n_train + n_val;
        out.train.insert(out.train.end(), rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n_train));
        out.val.insert(out.val.end(), rows.begin() + static_cast<std::ptrdiff_t>(n_train),
                       rows.begin() + static_cast<std::ptrdiff_t>(val_end));
        out.test.insert(out.test.end(), rows.begin() + static_cast<std::ptrdiff_t>(val_end), rows.end());
    }
    shuffle(std::span<Eigen::Index>(out.train), rng);
    shuffle(std::span<Eigen::Index>(out.val), rng);
    shuffle(std::span<Eigen::Index>(out.test), rng);
    return out;
}

/// The rows of m listed in idx, in that order (indices may repeat).
/// @throws traincb::InvalidArgument when an index is outside [0, m.rows()).
template <class Derived>
[[nodiscard]] Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic> take_rows(
    const Eigen::DenseBase<Derived>& m, std::span<const Eigen::Index> idx) {
    Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic> out(static_cast<Eigen::Index>(idx.size()),
                                                                                m.cols());
    for (std::size_t i = 0; i < idx.size(); ++i) {
        if (idx[i] < 0 || idx[i] >= m.rows())
            throw traincb::InvalidArgument("traincb: take_rows: index " + std::to_string(idx[i]) + " at position " +
                                           std::to_string(i) + " is outside [0, " + std::to_string(m.rows()) + ")");
        out.row(static_cast<Eigen::Index>(i)) = m.row(idx[i]);
    }
    return out;
}

/// A data set split three ways, features standardised with the training rows' statistics.
struct PreparedSplit {
    Eigen::MatrixXd x{}, y{};    ///< training features and labels (N x 1)
    Eigen::MatrixXd xv{}, yv{};  ///< validation
    Eigen::MatrixXd xt{}, yt{};  ///< held-out test
};

/// stratified_split, then a Standardizer fitted on the training rows only and applied to all
/// three parts (so no statistic of the validation or test rows leaks into training).
/// @throws as stratified_split and Standardizer.
[[nodiscard]] inline PreparedSplit prepare_split(const Dataset& data, const SplitFractions& fractions,
                                                 std::uint64_t seed) {
    const Split split = stratified_split(data.labels, fractions, seed);
    const Standardizer scaler(take_rows(data.features, split.train));
    PreparedSplit p;
    p.x = scaler.transform(take_rows(data.features, split.train));
    p.y = take_rows(data.labels, split.train);
    p.xv = scaler.transform(take_rows(data.features, split.val));
    p.yv = take_rows(data.labels, split.val);
    p.xt = scaler.transform(take_rows(data.features, split.test));
    p.yt = take_rows(data.labels, split.test);
    return p;
}

// ---------------------------------------------------------------------------------------------
// Data files
// ---------------------------------------------------------------------------------------------

/// The directory holding the examples' data sets: TRAINCB_EXAMPLES_DATA_DIR when the build
/// defines it (the absolute path of examples/data), else "examples/data" relative to the
/// working directory (running from the source root).
[[nodiscard]] inline std::filesystem::path data_dir() {
#ifdef TRAINCB_EXAMPLES_DATA_DIR
    return std::filesystem::path(TRAINCB_EXAMPLES_DATA_DIR);
#else
    return std::filesystem::path("examples/data");
#endif
}

/// data_dir() / name, checked to exist.
/// @throws traincb::IoError (ENOENT) when the file is not there, naming the path tried.
[[nodiscard]] inline std::filesystem::path data_file(std::string_view name) {
    std::filesystem::path p = data_dir() / std::filesystem::path(name);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec))
        throw traincb::IoError(
            "data_file", "cannot find the data set (build with TRAINCB_EXAMPLES_DATA_DIR or run from the source root)",
            p, ENOENT);
    return p;
}

}  // namespace traincb_examples
