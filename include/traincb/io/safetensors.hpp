#pragma once
/// @file io/safetensors.hpp
/// Reading and writing the safetensors format (Hugging Face): an 8-byte little-endian header
/// length, a JSON header, then the row-major tensor bytes. The writer produces the same bytes as
/// the reference Python/Rust writer; the reader applies every check of the reference loader, in
/// its order, and names the failed one in its FormatError. The format, each check and the
/// writer's order are in docs/safetensors-format.md.
///
///     traincb::StateDict d;
///     traincb::io::put_tensor(d, "dense.weight", W);       // any Eigen expression, stored row-major
///     traincb::io::save_safetensors("model.safetensors", d, {{"format", "pt"}}, {.checksum = true});
///     auto f = traincb::io::load_safetensors("model.safetensors");
///     Eigen::MatrixXd W2;
///     traincb::io::get_tensor(f.tensors, "dense.weight", W2);

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "traincb/detail/config.hpp"
#include "traincb/detail/hash.hpp"
#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"
#include "traincb/io/atomic_file.hpp"
#include "traincb/state.hpp"

namespace traincb::inline v0::io {

/// How save_safetensors / serialize_safetensors write a file.
struct SaveOptions {
    /// Store an XXH64 of the tensor bytes under metadata key "traincb.checksum" (as
    /// "xxh64:<16 hex digits>"); load_safetensors then verifies it and rejects a corrupted file.
    bool checksum = false;
    /// save_safetensors only: when not empty, the file being replaced is first renamed to this
    /// path, so its old version stays on disk (AtomicFile::commit_keeping_previous).
    std::filesystem::path keep_previous{};
};

/// A parsed safetensors file.
struct SafetensorsFile {
    StateDict tensors;                            ///< in file (data offset) order
    std::map<std::string, std::string> metadata;  ///< the "__metadata__" map (empty when absent)
};

/// The metadata key holding the checksum written by SaveOptions::checksum.
inline constexpr std::string_view kChecksumKey = "traincb.checksum";

/// The reference's limit on the JSON header size (MAX_HEADER_SIZE).
inline constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

}  // namespace traincb::inline v0::io

namespace traincb::inline v0::detail {

/// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF),
/// the same rule as Rust's `str::from_utf8`, which the reference loader applies to the header.
[[nodiscard]] TRAINCB_INLINE bool is_valid_utf8(std::string_view s) noexcept;

/// One dtype name of the format, with its size in bits and the traincb DType it maps to.
struct SafetensorsDtype {
    std::string_view name;
    unsigned bits;
    std::optional<DType> dtype;  ///< nullopt: valid safetensors, but traincb does not load it
};

/// Every dtype the reference defines (docs/safetensors-format.md); a name outside this list is not
/// a valid file.
inline constexpr std::array<SafetensorsDtype, 22> kSafetensorsDtypes{{
    {"BOOL", 8, DType::Bool},         {"U8", 8, DType::U8},         {"I8", 8, std::nullopt},
    {"I16", 16, std::nullopt},        {"U16", 16, std::nullopt},    {"F16", 16, DType::F16},
    {"BF16", 16, DType::BF16},        {"I32", 32, DType::I32},      {"U32", 32, std::nullopt},
    {"F32", 32, DType::F32},          {"F64", 64, DType::F64},      {"I64", 64, DType::I64},
    {"U64", 64, std::nullopt},        {"C64", 64, std::nullopt},    {"F4", 4, std::nullopt},
    {"F6_E2M3", 6, std::nullopt},     {"F6_E3M2", 6, std::nullopt}, {"F8_E5M2", 8, std::nullopt},
    {"F8_E4M3", 8, std::nullopt},     {"F8_E8M0", 8, std::nullopt}, {"F8_E4M3FNUZ", 8, std::nullopt},
    {"F8_E5M2FNUZ", 8, std::nullopt},
}};

/// The position of a dtype in the reference writer's sort (its `Dtype` enum order, by alignment):
/// higher is written first. Equivalent to element size descending, with I64 before F64, F32
/// before I32, BF16 before F16 and U8 before BOOL, which makes our files byte-identical to
/// Python's.
[[nodiscard]] constexpr int safetensors_write_rank(DType t) noexcept {
    switch (t) {
        case DType::I64:
            return 7;
        case DType::F64:
            return 6;
        case DType::F32:
            return 5;
        case DType::I32:
            return 4;
        case DType::BF16:
            return 3;
        case DType::F16:
            return 2;
        case DType::U8:
            return 1;
        case DType::Bool:
            return 0;
    }
    return 0;
}

/// Throws the FormatError of a failed check: "traincb: safetensors: '<source>': <Check>: <why>".
[[noreturn]] TRAINCB_INLINE void safetensors_error(std::string_view source, std::string_view check,
                                                   const std::string& why);

/// The writer's plan: the 8-byte length and padded header, and the tensors in data order.
struct SafetensorsPlan {
    std::string head;                  ///< 8-byte little-endian N, then the N-byte header
    std::vector<const Tensor*> order;  ///< tensors in offset order
    /// Where in `head` the checksum's 16 hex digits go (npos without a checksum). The plan holds
    /// zeros there: the writer hashes the data while writing it and fills them in at the end, so
    /// the tensors are read from memory once, not once to hash and once to write.
    std::size_t checksum_at = std::string::npos;
};

/// The bytes a plan's checksum placeholder receives: XXH64 as 16 lowercase hex digits.
[[nodiscard]] TRAINCB_INLINE std::string checksum_digits(const Xxh64& hash);

/// How many bytes of tensor data to write and then hash at a time: small enough that the chunk
/// write() just copied is still in the core's L2 cache for the hash, large enough that the
/// system calls cost little (512 MiB is 512 writes).
inline constexpr std::size_t kSaveChunk = std::size_t{1} << 20;

/// Validates `dict` and builds the header exactly as the reference writer does
/// (docs/safetensors-format.md, "The order the writer uses"), with the checksum's digits left as
/// zeros at `checksum_at` when options.checksum is set.
/// @throws InvalidArgument for a tensor whose bytes do not match its shape, duplicate or reserved
/// names, invalid UTF-8, or a header above 100 MB
[[nodiscard]] TRAINCB_INLINE SafetensorsPlan plan_safetensors(const StateDict& dict,
                                                              const std::map<std::string, std::string>& metadata,
                                                              const io::SaveOptions& options);

/// One tensor entry of a parsed header.
struct SafetensorsEntry {
    std::string name;
    const SafetensorsDtype* dtype = nullptr;
    std::vector<std::uint64_t> shape;
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
};

/// A parsed and validated header.
struct SafetensorsLayout {
    std::uint64_t header_size = 0;          ///< N
    std::vector<SafetensorsEntry> entries;  ///< sorted by data offsets
    std::map<std::string, std::string> metadata;
};

/// Checks the 8-byte length prefix against the file size (checks 1-3 of docs/safetensors-format.md)
/// and returns N.
[[nodiscard]] TRAINCB_INLINE std::uint64_t safetensors_header_size(std::span<const std::byte> prefix,
                                                                   std::uint64_t file_size, std::string_view source);

/// Parses and validates the header (checks 4-10 of docs/safetensors-format.md, in order).
/// `file_size` is the size of the whole file.
[[nodiscard]] TRAINCB_INLINE SafetensorsLayout parse_safetensors_header(std::span<const std::byte> header,
                                                                        std::uint64_t file_size,
                                                                        std::string_view source);

/// Builds the tensors of a validated layout; `fill(span)` must deliver the data buffer in order.
template <class Fill>
[[nodiscard]] io::SafetensorsFile read_safetensors_data(SafetensorsLayout& layout, std::string_view source,
                                                        Fill&& fill) {
    // traincb's own limits, checked before any data is read.
    for (const auto& e : layout.entries) {
        if (!e.dtype->dtype)
            safetensors_error(source, "UnsupportedDtype",
                              "tensor '" + e.name + "' has dtype " + std::string(e.dtype->name) +
                                  ", which is valid safetensors but traincb only loads F32, F64, I64, I32, F16, BF16, "
                                  "U8 and BOOL; convert the tensor before loading it");
        std::uint64_t n = 1;
        for (std::uint64_t dim : e.shape) {
            constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
            if (dim > kMax || (dim != 0 && n > kMax / dim))
                safetensors_error(source, "UnsupportedShape",
                                  "tensor '" + e.name + "' shape " + shape_string(e.shape) +
                                      " has dimensions beyond the 63-bit range traincb supports");
            if (dim != 0) n *= dim;
        }
    }
    std::optional<std::uint64_t> expected;
    if (const auto it = layout.metadata.find(std::string(io::kChecksumKey)); it != layout.metadata.end()) {
        const std::string& v = it->second;
        const auto colon = v.find(':');
        if (colon == std::string::npos || v.substr(0, colon) != "xxh64")
            safetensors_error(source, "checksum mismatch",
                              "metadata '" + std::string(io::kChecksumKey) + "' is '" + v +
                                  "', an unsupported checksum (traincb writes 'xxh64:<16 hex digits>')");
        std::uint64_t h = 0;
        const char* first = v.data() + colon + 1;
        const char* last = v.data() + v.size();
        const auto r = std::from_chars(first, last, h, 16);
        if (last - first != 16 || r.ec != std::errc{} || r.ptr != last)
            safetensors_error(
                source, "checksum mismatch",
                "metadata '" + std::string(io::kChecksumKey) + "' is '" + v + "', not 'xxh64:<16 hex digits>'");
        expected = h;
    }

    io::SafetensorsFile out;
    out.metadata = std::move(layout.metadata);
    auto& tensors = out.tensors.tensors();
    tensors.reserve(layout.entries.size());
    Xxh64 hash;
    // Hash each chunk right after it arrives, while it is still in cache.
    constexpr std::size_t kChunk = std::size_t{4} << 20;
    for (auto& e : layout.entries) {
        Tensor t;
        t.name = std::move(e.name);
        t.dtype = *e.dtype->dtype;
        t.shape.assign(e.shape.begin(), e.shape.end());
        t.data.resize(static_cast<std::size_t>(e.end - e.begin));
        for (std::size_t off = 0; off < t.data.size(); off += kChunk) {
            const std::span<std::byte> chunk(t.data.data() + off, std::min(kChunk, t.data.size() - off));
            fill(chunk);
            if (expected) hash.update(chunk);
        }
        // A bool byte other than 0/1 is undefined behaviour once read as a C++ bool.
        if (t.dtype == DType::Bool)
            for (std::byte& b : t.data) b = b == std::byte{0} ? std::byte{0} : std::byte{1};
        tensors.push_back(std::move(t));
    }
    if (expected && hash.digest() != *expected)
        safetensors_error(source, "checksum mismatch",
                          "the tensor data hashes to xxh64:" + hex64(hash.digest()) + " but the file records xxh64:" +
                              hex64(*expected) + "; the file is corrupted, restore it from another copy");
    return out;
}

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::io {

/// The bytes of a safetensors file holding `dict` (sorted and laid out as the reference writer
/// does, so the output matches Python's `save_file` byte for byte).
/// @throws InvalidArgument for an inconsistent tensor, a duplicate or reserved name, invalid UTF-8
[[nodiscard]] TRAINCB_INLINE std::vector<std::byte> serialize_safetensors(
    const StateDict& dict, const std::map<std::string, std::string>& metadata = {}, const SaveOptions& options = {});

/// Writes `dict` to `path` crash-safely (temporary file, fsync, rename; see AtomicFile), streaming
/// each tensor's bytes without assembling the file in memory; the checksum is computed in the same
/// pass and written into the header before the fsync.
/// @throws InvalidArgument as serialize_safetensors @throws IoError naming the path (the previous
/// file is then left intact)
TRAINCB_INLINE void save_safetensors(const std::filesystem::path& path, const StateDict& dict,
                                     const std::map<std::string, std::string>& metadata = {},
                                     const SaveOptions& options = {}, std::string_view component = "safetensors");

/// Parses a whole safetensors file held in memory; `source_name` names it in error messages.
/// @throws FormatError "traincb: safetensors: '<source>': <Check>: ..." where Check is the
/// reference's name of the failed validation (HeaderTooSmall, ..., MetadataIncompleteBuffer),
/// UnsupportedDtype, UnsupportedShape or "checksum mismatch"
[[nodiscard]] TRAINCB_INLINE SafetensorsFile parse_safetensors(std::span<const std::byte> bytes,
                                                               std::string_view source_name = "(memory)");

/// Reads and parses a safetensors file, reading each tensor straight into its buffer.
/// @throws IoError (missing, unreadable) @throws FormatError as parse_safetensors
[[nodiscard]] TRAINCB_INLINE SafetensorsFile load_safetensors(const std::filesystem::path& path,
                                                              std::string_view component = "safetensors");

// ---- Eigen <-> tensor helpers (shape convention of docs/safetensors-format.md) -------------

/// An owned row-major tensor holding `m`: shape [n] for a vector type (one compile-time
/// dimension is 1), [] for a compile-time 1x1, else [rows, cols]. Column-major and strided
/// inputs are packed in row-major order, so numpy sees the same matrix.
template <class Derived>
[[nodiscard]] Tensor make_tensor(std::string name, const Eigen::DenseBase<Derived>& m) {
    using Scalar = typename Derived::Scalar;
    constexpr bool kScalar = Derived::RowsAtCompileTime == 1 && Derived::ColsAtCompileTime == 1;
    constexpr bool kVector = Derived::RowsAtCompileTime == 1 || Derived::ColsAtCompileTime == 1;
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype_of<Scalar>();
    if constexpr (kScalar)
        t.shape = {};
    else if constexpr (kVector)
        t.shape = {static_cast<std::int64_t>(m.size())};
    else
        t.shape = {static_cast<std::int64_t>(m.rows()), static_cast<std::int64_t>(m.cols())};
    t.data.resize(static_cast<std::size_t>(m.size()) * sizeof(Scalar));
    if (t.data.empty()) return t;
    if constexpr (std::is_base_of_v<Eigen::PlainObjectBase<Derived>, Derived> && (kVector || Derived::IsRowMajor)) {
        std::memcpy(t.data.data(), m.derived().data(), t.data.size());  // already packed row-major
    } else {
        const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m.derived().matrix();
        std::memcpy(t.data.data(), rm.data(), t.data.size());
    }
    return t;
}

/// An owned rank-0 tensor (shape []) holding a scalar.
template <class T>
requires std::is_arithmetic_v<T>
[[nodiscard]] Tensor make_tensor(std::string name, T value) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype_of<T>();
    t.data.resize(sizeof(T));
    std::memcpy(t.data.data(), &value, sizeof(T));
    return t;
}

/// Adds (or replaces) `name` in `dict`: an Eigen expression (see make_tensor) or a scalar.
template <class Value>
void put_tensor(StateDict& dict, std::string name, const Value& value) {
    dict.put(make_tensor(std::move(name), value));
}

/// Copies `t` into an Eigen matrix, vector or array, resizing dynamic dimensions. Shape [r, c]
/// gives r x c; [n] gives n x 1 (1 x n for a row-vector type); [] gives 1 x 1. A vector type also
/// accepts [n,1] and [1,n].
/// @throws FormatError when the dtype differs from the Scalar type or the shape does not fit
template <class Derived>
void get_tensor(const Tensor& t, Eigen::PlainObjectBase<Derived>& out) {
    using Scalar = typename Derived::Scalar;
    auto mismatch = [&](const std::string& why) {
        throw FormatError("traincb: safetensors: tensor '" + t.name + "' is " + dtype_name(t.dtype) + " " +
                          detail::shape_string(t.shape) + ", " + why);
    };
    if (t.dtype != dtype_of<Scalar>())
        mismatch(std::string("but the destination holds ") + dtype_name(dtype_of<Scalar>()) +
                 "; read it into a matrix of the file's type");
    std::int64_t rows = 1, cols = 1;
    if (t.shape.size() == 1) {
        rows = t.shape[0];
        if constexpr (Derived::RowsAtCompileTime == 1) std::swap(rows, cols);
    } else if (t.shape.size() == 2) {
        rows = t.shape[0];
        cols = t.shape[1];
        if constexpr (Derived::ColsAtCompileTime == 1 && Derived::RowsAtCompileTime != 1)
            if (rows == 1) std::swap(rows, cols);
        if constexpr (Derived::RowsAtCompileTime == 1 && Derived::ColsAtCompileTime != 1)
            if (cols == 1) std::swap(rows, cols);
    } else if (t.shape.size() > 2) {
        mismatch("which has more than 2 dimensions and does not fit an Eigen matrix");
    }
    if (rows < 0 || cols < 0 || static_cast<std::size_t>(rows * cols) * sizeof(Scalar) != t.data.size())
        mismatch("but holds " + std::to_string(t.data.size()) + " bytes");
    if ((Derived::RowsAtCompileTime != Eigen::Dynamic && rows != Derived::RowsAtCompileTime) ||
        (Derived::ColsAtCompileTime != Eigen::Dynamic && cols != Derived::ColsAtCompileTime) ||
        (Derived::MaxRowsAtCompileTime != Eigen::Dynamic && rows > Derived::MaxRowsAtCompileTime) ||
        (Derived::MaxColsAtCompileTime != Eigen::Dynamic && cols > Derived::MaxColsAtCompileTime))
        mismatch("which does not fit a destination of " + std::to_string(Derived::RowsAtCompileTime) + " x " +
                 std::to_string(Derived::ColsAtCompileTime) + " (-1 = dynamic)");
    out.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
    if (t.data.empty()) return;
    if constexpr (std::is_same_v<Scalar, bool>) {
        // Any nonzero byte is true; copying a byte like 2 into a bool would be undefined.
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t c = 0; c < cols; ++c)
                out(r, c) = t.data[static_cast<std::size_t>(r * cols + c)] != std::byte{0};
    } else if (Derived::IsRowMajor || rows == 1 || cols == 1) {
        std::memcpy(out.data(), t.data.data(), t.data.size());
    } else {
        Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm(rows, cols);
        std::memcpy(rm.data(), t.data.data(), t.data.size());
        out.derived().matrix() = rm;  // the assignment converts the storage order (also for Arrays)
    }
}

/// The tensor named `name` of `dict`, copied into `out` (see get_tensor(const Tensor&, ...)).
/// @throws FormatError when the tensor is missing (naming the closest name) or does not fit
template <class Derived>
void get_tensor(const StateDict& dict, std::string_view name, Eigen::PlainObjectBase<Derived>& out) {
    const Tensor* t = dict.find(name);
    if (t == nullptr) {
        std::vector<std::string_view> names;
        for (const auto& e : dict.tensors()) names.emplace_back(e.name);
        const std::string close = detail::closest_match(name, names);
        throw FormatError("traincb: safetensors: no tensor '" + std::string(name) + "'" +
                          (close.empty() ? "" : " (did you mean '" + close + "'?)") +
                          "; the tensors are: " + detail::join(names));
    }
    get_tensor(*t, out);
}

/// The value of a one-element tensor (shape [], [1], [1,1], ...).
/// @throws FormatError when the dtype differs from T or the tensor has more than one element
template <class T>
requires std::is_arithmetic_v<T>
[[nodiscard]] T get_scalar(const Tensor& t) {
    if (t.dtype != dtype_of<T>() || t.data.size() != sizeof(T))
        throw FormatError("traincb: safetensors: tensor '" + t.name + "' is " + dtype_name(t.dtype) + " " +
                          detail::shape_string(t.shape) + ", not a single " + dtype_name(dtype_of<T>()) + " value");
    if constexpr (std::is_same_v<T, bool>) {
        return t.data[0] != std::byte{0};
    } else {
        T v;
        std::memcpy(&v, t.data.data(), sizeof(T));
        return v;
    }
}

}  // namespace traincb::inline v0::io

#if TRAINCB_DEFINITIONS
#include "traincb/io/safetensors-inl.hpp"
#endif
