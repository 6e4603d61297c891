// Tests for traincb/io/safetensors.hpp and traincb/detail/hash.hpp: the golden bytes of the
// reference implementation, round trips of every dtype and shape, Eigen storage order, every
// validation of the reference loader, truncation, checksums, and numpy reading our files.
#include "catch.hpp"
#include "test_support.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <Eigen/Core>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <traincb/detail/hash.hpp>
#include <traincb/io/safetensors.hpp>
#include <vector>

namespace test_safetensors {

namespace fs = std::filesystem;
namespace io = traincb::io;
using traincb::DType;
using traincb::StateDict;
using traincb::Tensor;

using traincb_test::TempDir;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
    const auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int x : v) out.push_back(static_cast<std::byte>(x));
    return out;
}

template <class T>
std::vector<std::byte> le_bytes(std::initializer_list<T> values) {
    std::vector<std::byte> out(values.size() * sizeof(T));
    std::memcpy(out.data(), values.begin(), out.size());  // the machine is little-endian (state.hpp asserts it)
    return out;
}

// A file assembled by hand: 8-byte little-endian N, the header text, then `data`.
std::vector<std::byte> raw_file(std::string_view header, const std::vector<std::byte>& data = {}) {
    std::vector<std::byte> out;
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i, n >>= 8) out.push_back(static_cast<std::byte>(n & 0xFF));
    const auto h = bytes_of(header);
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

Tensor tensor(std::string name, DType dtype, std::vector<std::int64_t> shape, std::vector<std::byte> data) {
    return Tensor{std::move(name), dtype, std::move(shape), std::move(data)};
}

// The FormatError message of parsing `bytes` as 'ck.safetensors' (fails the test if none).
std::string parse_error(const std::vector<std::byte>& bytes) {
    try {
        (void)io::parse_safetensors(bytes, "ck.safetensors");
    } catch (const traincb::FormatError& e) {
        return e.what();
    }
    FAIL("parse_safetensors accepted the file");
    return {};
}

// True when parsing fails with the named check, in the documented message form.
bool fails_with(const std::vector<std::byte>& bytes, const std::string& check) {
    const std::string msg = parse_error(bytes);
    INFO(msg);
    return msg.rfind("traincb: safetensors: 'ck.safetensors': " + check, 0) == 0;
}

std::vector<std::byte> file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    const std::string s{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    return bytes_of(s);
}

}  // namespace

// ---- XXH64 ---------------------------------------------------------------------------------

TEST_CASE("XXH64 matches the published vectors and libxxhash") {
    // From the brief / xxHash documentation.
    REQUIRE(traincb::detail::xxh64(std::string_view("")) == 0xEF46DB3751D8E999ULL);
    REQUIRE(traincb::detail::xxh64(std::string_view("abc")) == 0x44BC2CF5AD770999ULL);
    // Computed independently with Debian's libxxhash 0.8.1 (XXH64 through Python ctypes) on the
    // bytes (i*131+7) mod 256, for seeds 0 and 0x9E3779B97F4A7C15; the lengths cover every tail
    // path (bytes, 4-byte word, 8-byte words) and the 32-byte stripe loop.
    struct Vec {
        std::size_t n;
        std::uint64_t seed0, seed1;
    };
    const Vec vectors[] = {
        {1, 0xA96C7F0CE858BBB7ULL, 0x585882422A6165E7ULL},   {3, 0xBED43740EE6332BBULL, 0x45FA1406538FA168ULL},
        {4, 0xFA212AE44B3BB23DULL, 0xA65107F22943365AULL},   {7, 0x2744460DD675D2C0ULL, 0xC9B637E2C4599DE2ULL},
        {8, 0x994B676B71CE94DDULL, 0xCE592D5F53E192ECULL},   {31, 0x6711D55E306B5D8FULL, 0x24C4E99AB0404B5EULL},
        {32, 0x07F7B8E3BC5D6E25ULL, 0x046E99BBDA1A814BULL},  {33, 0x09F85EEB4E1CBE9FULL, 0xD7FE2BFEE6E4CDEDULL},
        {63, 0xB7C9968C066CB6A5ULL, 0xBD457F9EA47180C8ULL},  {64, 0x50D4159A0411632EULL, 0xA768F350A8E4FCF6ULL},
        {100, 0x9DDADA11D3DC2D8FULL, 0x35546BD9A4779AE4ULL}, {1000, 0x0BF0BDBCC82EB373ULL, 0x3ECB5D7B5E7C64CFULL},
    };
    for (const Vec& v : vectors) {
        std::vector<std::byte> b(v.n);
        for (std::size_t i = 0; i < v.n; ++i) b[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
        INFO("length " << v.n);
        REQUIRE(traincb::detail::xxh64(b) == v.seed0);
        REQUIRE(traincb::detail::xxh64(b, 0x9E3779B97F4A7C15ULL) == v.seed1);
    }
}

TEST_CASE("XXH64 streaming gives the same hash for every way of splitting the input") {
    std::vector<std::byte> b(200);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
    const std::uint64_t whole = traincb::detail::xxh64(b);
    const std::span<const std::byte> s(b);
    for (std::size_t cut1 = 0; cut1 <= b.size(); cut1 += 3) {
        for (std::size_t cut2 = cut1; cut2 <= b.size(); cut2 += 29) {
            traincb::detail::Xxh64 h;
            h.update(s.subspan(0, cut1));
            h.update(s.subspan(cut1, cut2 - cut1));
            h.update(s.subspan(cut2));
            REQUIRE(h.digest() == whole);
        }
    }
    REQUIRE(traincb::detail::hex64(0x00AB0000000000CDULL) == "00ab0000000000cd");
}

// ---- golden bytes (docs/safetensors-format.md, from the reference's own unit tests) ---------

TEST_CASE("golden: an empty file without metadata is 16 bytes") {
    const auto expected = bytes_of({8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20});
    REQUIRE(io::serialize_safetensors(StateDict{}) == expected);
    const auto f = io::parse_safetensors(expected, "empty");
    REQUIRE(f.tensors.empty());
    REQUIRE(f.metadata.empty());
}

TEST_CASE("golden: an empty file with metadata framework=pt is 48 bytes") {
    std::vector<std::byte> expected = bytes_of({40, 0, 0, 0, 0, 0, 0, 0});
    const auto header = bytes_of(std::string_view(R"({"__metadata__":{"framework":"pt"}})"
                                                  "     "));
    expected.insert(expected.end(), header.begin(), header.end());
    REQUIRE(expected.size() == 48);
    REQUIRE(io::serialize_safetensors(StateDict{}, {{"framework", "pt"}}) == expected);
    const auto f = io::parse_safetensors(expected, "meta");
    REQUIRE(f.metadata == std::map<std::string, std::string>{{"framework", "pt"}});
}

TEST_CASE("golden: one F32 tensor 'attn.0' [1,2,3] = 0..5 is 96 bytes, header unpadded") {
    StateDict d;
    d.put(tensor("attn.0", DType::F32, {1, 2, 3}, le_bytes<float>({0, 1, 2, 3, 4, 5})));
    std::vector<std::byte> expected = bytes_of({64, 0, 0, 0, 0, 0, 0, 0});
    const auto header = bytes_of(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");
    REQUIRE(header.size() == 64);
    expected.insert(expected.end(), header.begin(), header.end());
    const auto data =
        bytes_of({0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40});
    expected.insert(expected.end(), data.begin(), data.end());
    REQUIRE(expected.size() == 96);
    REQUIRE(io::serialize_safetensors(d) == expected);
    const auto f = io::parse_safetensors(expected, "attn");
    REQUIRE(f.tensors == d);
}

TEST_CASE("golden: 'attn0' [1,1,2,3] has a 65-byte header padded with 7 spaces to 72") {
    StateDict d;
    d.put(tensor("attn0", DType::F32, {1, 1, 2, 3}, le_bytes<float>({0, 1, 2, 3, 4, 5})));
    std::vector<std::byte> expected = bytes_of({72, 0, 0, 0, 0, 0, 0, 0});
    const auto header = bytes_of(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})"
                                 "       ");
    REQUIRE(header.size() == 72);
    expected.insert(expected.end(), header.begin(), header.end());
    const auto data = le_bytes<float>({0, 1, 2, 3, 4, 5});
    expected.insert(expected.end(), data.begin(), data.end());
    REQUIRE(io::serialize_safetensors(d) == expected);
    REQUIRE(io::parse_safetensors(expected, "attn0").tensors == d);
}

TEST_CASE("writer order: dtype alignment descending as the reference enum, then name, metadata first") {
    StateDict d;  // inserted in an order unrelated to the expected one
    d.put(tensor("y", DType::Bool, {2}, bytes_of({1, 0})));
    d.put(tensor("b", DType::F32, {2}, le_bytes<float>({1.5F, -2.0F})));
    d.put(tensor("z", DType::U8, {3}, bytes_of({7, 8, 9})));
    d.put(tensor("c", DType::I64, {}, le_bytes<std::int64_t>({-3})));
    d.put(tensor("x", DType::I32, {1}, le_bytes<std::int32_t>({42})));
    d.put(tensor("a2", DType::F64, {1}, le_bytes<double>({0.25})));
    d.put(tensor("a1", DType::F64, {0, 3}, {}));
    d.put(tensor("d", DType::F16, {2}, le_bytes<std::uint16_t>({0x3C00, 0xC000})));
    d.put(tensor("e", DType::BF16, {1, 1, 1}, le_bytes<std::uint16_t>({0x3F80})));
    // Hand derivation from the reference prepare(), which sorts by its Dtype enum (BOOL, U8, ...,
    // F16, BF16, I32, U32, F32, F64, I64, U64) descending, then by name: I64 > F64 > F32 > I32 >
    // BF16 > F16 > U8 > BOOL (so BF16 "e" precedes F16 "d" despite its name); offsets back to
    // back: c [0,8], a1 [8,8] (empty), a2 [8,16], b [16,24], x [24,28], e [28,30], d [30,34],
    // z [34,37], y [37,39].
    const std::string header = R"({"__metadata__":{"epoch":"3","format":"pt"},)"
                               R"("c":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
                               R"("a1":{"dtype":"F64","shape":[0,3],"data_offsets":[8,8]},)"
                               R"("a2":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
                               R"("x":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},)"
                               R"("e":{"dtype":"BF16","shape":[1,1,1],"data_offsets":[28,30]},)"
                               R"("d":{"dtype":"F16","shape":[2],"data_offsets":[30,34]},)"
                               R"("z":{"dtype":"U8","shape":[3],"data_offsets":[34,37]},)"
                               R"("y":{"dtype":"BOOL","shape":[2],"data_offsets":[37,39]}})";
    std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
    std::vector<std::byte> data;
    for (const char* n : {"c", "a1", "a2", "b", "x", "e", "d", "z", "y"}) {
        const auto& t = d.find(n)->data;
        data.insert(data.end(), t.begin(), t.end());
    }
    const auto expected = raw_file(padded, data);
    REQUIRE(io::serialize_safetensors(d, {{"format", "pt"}, {"epoch", "3"}}) == expected);
    // Every tensor starts at a multiple of its element size (8-aligned buffer start).
    REQUIRE((8 + padded.size()) % 8 == 0);
}

// ---- round trips ---------------------------------------------------------------------------

TEST_CASE("round trip of every dtype and shape, in memory and through a file") {
    StateDict d;
    d.put(tensor("f32.matrix", DType::F32, {2, 3}, le_bytes<float>({1, -2, 3.5F, NAN, INFINITY, -0.0F})));
    d.put(tensor("f64.vector", DType::F64, {4}, le_bytes<double>({1e-300, -1e300, 0.1, 2})));
    d.put(tensor("f64.scalar", DType::F64, {}, le_bytes<double>({3.25})));
    d.put(tensor("f64.empty", DType::F64, {0}, {}));
    d.put(tensor("f32.empty2d", DType::F32, {3, 0}, {}));
    d.put(tensor("i64.rank3", DType::I64, {2, 1, 2},
                 le_bytes<std::int64_t>(
                     {std::numeric_limits<std::int64_t>::min(), -1, 0, std::numeric_limits<std::int64_t>::max()})));
    d.put(tensor("i32.vector", DType::I32, {3}, le_bytes<std::int32_t>({-7, 0, 2147483647})));
    d.put(tensor("u8.matrix", DType::U8, {2, 2}, bytes_of({0, 255, 128, 1})));
    d.put(tensor("bool.vector", DType::Bool, {3}, bytes_of({1, 0, 1})));
    d.put(tensor("bool.scalar", DType::Bool, {}, bytes_of({0})));
    d.put(tensor("unicode.名前", DType::U8, {1}, bytes_of({5})));
    // float16 1, -2, 65504, the smallest subnormal, -0, inf, NaN, 0.5 (IEEE 754 binary16 patterns).
    d.put(tensor("f16.rank4", DType::F16, {2, 1, 2, 2},
                 le_bytes<std::uint16_t>({0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x7E00, 0x3800})));
    // bfloat16 1, -2, the largest finite value, NaN.
    d.put(tensor("bf16.matrix", DType::BF16, {2, 2}, le_bytes<std::uint16_t>({0x3F80, 0xC000, 0x7F7F, 0x7FC0})));
    d.put(tensor("bf16.scalar", DType::BF16, {}, le_bytes<std::uint16_t>({0x4049})));
    const std::map<std::string, std::string> meta{{"format", "pt"}, {"traincb.state", R"({"epoch":3})"}};

    const auto bytes = io::serialize_safetensors(d, meta);
    const auto f = io::parse_safetensors(bytes, "mem");
    REQUIRE(f.metadata == meta);
    REQUIRE(f.tensors.size() == d.size());
    for (const Tensor& t : d.tensors()) {
        INFO(t.name);
        const Tensor* back = f.tensors.find(t.name);
        REQUIRE(back != nullptr);
        REQUIRE(*back == t);  // bytes compared, so NaN and -0 round-trip exactly
    }

    TempDir tmp("roundtrip");
    const fs::path p = tmp.path / "sub" / "state.safetensors";
    io::save_safetensors(p, d, meta);
    REQUIRE(file_bytes(p) == bytes);  // the streaming writer produces the same bytes
    const auto g = io::load_safetensors(p);
    REQUIRE(g.metadata == meta);
    REQUIRE(g.tensors == f.tensors);
}

TEST_CASE("a tensor larger than the read chunk loads and verifies through a file") {
    // 5 MiB + 3 floats: crosses the 4 MiB chunk boundary of the reader and hasher.
    const std::size_t n = (std::size_t{5} << 20) / 4 + 3;
    std::vector<std::byte> data(n * 4);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
    StateDict d;
    d.put(tensor("big", DType::F32, {static_cast<std::int64_t>(n)}, data));
    d.put(tensor("small", DType::U8, {1}, bytes_of({9})));
    TempDir tmp("big");
    io::save_safetensors(tmp.path / "big.safetensors", d, {}, {.checksum = true});
    const auto f = io::load_safetensors(tmp.path / "big.safetensors");
    REQUIRE(f.tensors.find("big")->data == data);
    REQUIRE(f.tensors.find("small")->data == bytes_of({9}));
}

TEST_CASE("BOOL bytes other than 0/1 load as 1 (a C++ bool must never hold another value)") {
    const auto bytes = raw_file(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", bytes_of({0, 2, 255}));
    const auto f = io::parse_safetensors(bytes, "bools");
    REQUIRE(f.tensors.find("m")->data == bytes_of({0, 1, 1}));
}

// ---- Eigen ---------------------------------------------------------------------------------

TEST_CASE("Eigen: a column-major matrix is stored row-major with shape [rows, cols]") {
    Eigen::MatrixXd m(2, 3);   // column-major by default
    m << 0, 1, 2, 10, 11, 12;  // m(r, c) = 10 r + c
    StateDict d;
    io::put_tensor(d, "w", m);
    const Tensor& t = *d.find("w");
    REQUIRE(t.dtype == DType::F64);
    REQUIRE(t.shape == std::vector<std::int64_t>{2, 3});
    // numpy's C order walks rows first: 0 1 2 10 11 12 (hand derivation).
    REQUIRE(t.data == le_bytes<double>({0, 1, 2, 10, 11, 12}));

    Eigen::MatrixXd back;
    io::get_tensor(t, back);
    REQUIRE(back == m);
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> back_rm;
    io::get_tensor(t, back_rm);
    REQUIRE(back_rm == m);
    Eigen::Matrix<double, 2, 3> fixed;
    io::get_tensor(t, fixed);
    REQUIRE(fixed == m);
    Eigen::ArrayXXd arr;
    io::get_tensor(t, arr);
    REQUIRE(arr.matrix() == m);
}

TEST_CASE("Eigen: row-major input, blocks, strided maps and expressions pack correctly") {
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm(2, 2);
    rm << 1, 2, 3, 4;
    REQUIRE(io::make_tensor("rm", rm).data == le_bytes<float>({1, 2, 3, 4}));

    Eigen::MatrixXf big(4, 4);
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) big(r, c) = static_cast<float>(10 * r + c);
    const Tensor blk = io::make_tensor("blk", big.block(1, 2, 2, 2));
    REQUIRE(blk.shape == std::vector<std::int64_t>{2, 2});
    REQUIRE(blk.data == le_bytes<float>({12, 13, 22, 23}));

    const Tensor tr = io::make_tensor("tr", big.topLeftCorner(2, 3).transpose());
    REQUIRE(tr.shape == std::vector<std::int64_t>{3, 2});
    REQUIRE(tr.data == le_bytes<float>({0, 10, 1, 11, 2, 12}));

    const Tensor col = io::make_tensor("col", big.col(1));  // a strided vector view
    REQUIRE(col.shape == std::vector<std::int64_t>{4});
    REQUIRE(col.data == le_bytes<float>({1, 11, 21, 31}));

    Eigen::ArrayXXi a(2, 2);
    a << 1, 2, 3, 4;
    const Tensor at = io::make_tensor("arr", a * 2);
    REQUIRE(at.dtype == DType::I32);
    REQUIRE(at.data == le_bytes<std::int32_t>({2, 4, 6, 8}));
}

TEST_CASE("Eigen: vectors are [n], 1x1 and scalars are [], and read back into any fitting type") {
    Eigen::VectorXd v(3);
    v << 1, 2, 3;
    Eigen::RowVectorXf rv(2);
    rv << 4, 5;
    Eigen::Matrix<double, 1, 1> one;
    one << 7;
    StateDict d;
    io::put_tensor(d, "v", v);
    io::put_tensor(d, "rv", rv);
    io::put_tensor(d, "one", one);
    io::put_tensor(d, "step", std::int64_t{12});
    io::put_tensor(d, "flag", true);
    REQUIRE(d.find("v")->shape == std::vector<std::int64_t>{3});
    REQUIRE(d.find("rv")->shape == std::vector<std::int64_t>{2});
    REQUIRE(d.find("one")->shape.empty());
    REQUIRE(d.find("step")->shape.empty());
    REQUIRE(d.find("step")->dtype == DType::I64);
    REQUIRE(d.find("flag")->dtype == DType::Bool);

    const auto f = io::parse_safetensors(io::serialize_safetensors(d), "eigen");
    Eigen::VectorXd v2;
    io::get_tensor(f.tensors, "v", v2);
    REQUIRE(v2 == v);
    Eigen::RowVectorXd as_row;  // [n] into a row vector: 1 x n
    io::get_tensor(f.tensors, "v", as_row);
    REQUIRE(as_row.transpose() == v);
    Eigen::MatrixXd as_matrix;  // [n] into a matrix: n x 1
    io::get_tensor(f.tensors, "v", as_matrix);
    REQUIRE(as_matrix.rows() == 3);
    REQUIRE(as_matrix.cols() == 1);
    Eigen::RowVectorXf rv2;
    io::get_tensor(f.tensors, "rv", rv2);
    REQUIRE(rv2 == rv);
    Eigen::VectorXf rv_as_col;
    io::get_tensor(f.tensors, "rv", rv_as_col);
    REQUIRE(rv_as_col == rv.transpose());
    Eigen::Matrix<double, 1, 1> one2;
    io::get_tensor(f.tensors, "one", one2);
    REQUIRE(one2(0, 0) == 7);
    Eigen::MatrixXd one3;
    io::get_tensor(f.tensors, "one", one3);
    REQUIRE((one3.rows() == 1 && one3.cols() == 1 && one3(0, 0) == 7));
    REQUIRE(io::get_scalar<double>(*f.tensors.find("one")) == 7);
    REQUIRE(io::get_scalar<std::int64_t>(*f.tensors.find("step")) == 12);
    REQUIRE(io::get_scalar<bool>(*f.tensors.find("flag")));

    // [n,1] and [1,n] also fit a vector (what other tools write for a bias).
    const Tensor col2d = tensor("c", DType::F64, {3, 1}, le_bytes<double>({1, 2, 3}));
    const Tensor row2d = tensor("r", DType::F64, {1, 3}, le_bytes<double>({1, 2, 3}));
    Eigen::VectorXd c1, c2;
    io::get_tensor(col2d, c1);
    io::get_tensor(row2d, c2);
    REQUIRE(c1 == v);
    REQUIRE(c2 == v);
}

TEST_CASE("Eigen: bool and integer matrices round-trip") {
    Eigen::Matrix<bool, Eigen::Dynamic, Eigen::Dynamic> b(2, 2);
    b << true, false, false, true;
    Eigen::Matrix<std::uint8_t, 2, 3> u;
    u << 1, 2, 3, 4, 5, 6;
    StateDict d;
    io::put_tensor(d, "b", b);
    io::put_tensor(d, "u", u);
    REQUIRE(d.find("b")->data == bytes_of({1, 0, 0, 1}));
    REQUIRE(d.find("u")->data == bytes_of({1, 2, 3, 4, 5, 6}));
    const auto f = io::parse_safetensors(io::serialize_safetensors(d), "ints");
    Eigen::Matrix<bool, Eigen::Dynamic, Eigen::Dynamic> b2;
    Eigen::Matrix<std::uint8_t, 2, 3> u2;
    io::get_tensor(f.tensors, "b", b2);
    io::get_tensor(f.tensors, "u", u2);
    REQUIRE(b2 == b);
    REQUIRE(u2 == u);
}

TEST_CASE("Eigen: reading a tensor that does not fit throws FormatError naming it") {
    const Tensor m = tensor("w", DType::F64, {2, 3}, le_bytes<double>({1, 2, 3, 4, 5, 6}));
    auto message = [](auto&& fn) -> std::string {
        try {
            fn();
        } catch (const traincb::FormatError& e) {
            return e.what();
        }
        return "no exception";
    };
    Eigen::MatrixXf wrong_type;
    const std::string m1 = message([&] { io::get_tensor(m, wrong_type); });
    REQUIRE(m1.find("'w' is F64 [2,3]") != std::string::npos);
    REQUIRE(m1.find("F32") != std::string::npos);
    Eigen::Matrix<double, 3, 2> wrong_fixed;
    REQUIRE(message([&] { io::get_tensor(m, wrong_fixed); }).find("does not fit") != std::string::npos);
    Eigen::VectorXd vec;
    REQUIRE(message([&] { io::get_tensor(m, vec); }).find("does not fit") != std::string::npos);
    const Tensor r3 = tensor("r3", DType::F64, {1, 1, 2}, le_bytes<double>({1, 2}));
    Eigen::MatrixXd any;
    REQUIRE(message([&] { io::get_tensor(r3, any); }).find("more than 2 dimensions") != std::string::npos);
    const Tensor inconsistent = tensor("bad", DType::F64, {2}, le_bytes<double>({1}));
    REQUIRE(message([&] { io::get_tensor(inconsistent, any); }).find("holds 8 bytes") != std::string::npos);
    REQUIRE(message([&] { (void)io::get_scalar<double>(m); }).find("not a single F64") != std::string::npos);
    REQUIRE(message([&] { (void)io::get_scalar<float>(m); }).find("not a single F32") != std::string::npos);

    StateDict d;
    d.put(m);
    const std::string missing = message([&] { io::get_tensor(d, "v", any); });
    REQUIRE(missing.find("no tensor 'v'") != std::string::npos);
    REQUIRE(missing.find("did you mean 'w'") != std::string::npos);
}

// ---- writer validation ---------------------------------------------------------------------

TEST_CASE("the writer rejects inconsistent tensors, duplicate or reserved names, invalid UTF-8") {
    auto rejects = [](const StateDict& d, const std::string& needle,
                      const std::map<std::string, std::string>& meta = {}) {
        try {
            (void)io::serialize_safetensors(d, meta);
        } catch (const traincb::InvalidArgument& e) {
            INFO(e.what());
            return std::string(e.what()).find(needle) != std::string::npos;
        }
        return false;
    };
    StateDict size_mismatch;
    size_mismatch.put(tensor("w", DType::F32, {2, 2}, le_bytes<float>({1, 2, 3})));
    REQUIRE(rejects(size_mismatch, "tensor 'w' (F32 [2,2]) needs 4 x 4 bytes but holds 12"));
    StateDict negative;
    negative.put(tensor("w", DType::F32, {-1}, {}));
    REQUIRE(rejects(negative, "negative dimension"));
    StateDict overflow;
    overflow.put(tensor("w", DType::F32, {1LL << 62, 1LL << 62}, {}));
    REQUIRE(rejects(overflow, "overflows"));
    StateDict dup;  // StateDict::put replaces, but tensors() is mutable
    dup.tensors().push_back(tensor("w", DType::F32, {1}, le_bytes<float>({1})));
    dup.tensors().push_back(tensor("w", DType::F64, {1}, le_bytes<double>({1})));
    REQUIRE(rejects(dup, "two tensors are named 'w'"));
    StateDict reserved;
    reserved.put(tensor("__metadata__", DType::U8, {1}, bytes_of({1})));
    REQUIRE(rejects(reserved, "'__metadata__'"));
    StateDict bad_name;
    bad_name.put(tensor("bad\xFF", DType::U8, {1}, bytes_of({1})));
    REQUIRE(rejects(bad_name, "not valid UTF-8"));
    REQUIRE(rejects(StateDict{}, "not valid UTF-8", {{"k", "v\xC0\xAF"}}));
}

// ---- reader validation: every check of docs/safetensors-format.md, in order ----------------

TEST_CASE("HeaderTooSmall: fewer than 8 bytes") {
    for (std::size_t n = 0; n < 8; ++n) REQUIRE(fails_with(std::vector<std::byte>(n), "HeaderTooSmall"));
}

TEST_CASE("HeaderTooLarge: N above 100,000,000") {
    auto with_n = [](std::uint64_t n) {
        std::vector<std::byte> b(64, std::byte{' '});
        for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xFF);
        return b;
    };
    REQUIRE(fails_with(with_n(100'000'001), "HeaderTooLarge"));
    REQUIRE(fails_with(with_n(std::numeric_limits<std::uint64_t>::max()), "HeaderTooLarge"));
    // Exactly the limit is allowed by this check (then fails on length, the next check).
    REQUIRE(fails_with(with_n(100'000'000), "InvalidHeaderLength"));
}

TEST_CASE("InvalidHeaderLength: N runs past the end of the file") {
    auto f = raw_file("{}      ");
    f[0] = std::byte{9};  // 9 header bytes claimed, 8 present
    REQUIRE(fails_with(f, "InvalidHeaderLength"));
}

TEST_CASE("InvalidHeader: the header is not UTF-8") {
    REQUIRE(fails_with(raw_file("{\"a\xFF\":1}"), "InvalidHeader:"));
    REQUIRE(fails_with(raw_file("{\"\xC0\xAF\":1}"), "InvalidHeader:"));          // overlong '/'
    REQUIRE(fails_with(raw_file("{\"\xED\xA0\x80\":1}"), "InvalidHeader:"));      // UTF-16 surrogate
    REQUIRE(fails_with(raw_file("{\"\xF4\x90\x80\x80\":1}"), "InvalidHeader:"));  // above U+10FFFF
    REQUIRE(fails_with(raw_file("{\"\xE2\x82\":1}"), "InvalidHeader:"));          // truncated sequence
}

TEST_CASE("InvalidHeaderDeserialization: not JSON, or not the header's shape") {
    const char* headers[] = {
        "",                                                                              // empty
        "not json",                                                                      //
        "[]",                                                                            // not an object
        "{} x",                                                                          // trailing garbage
        "{/*c*/}",                                                                       // comments
        "\xEF\xBB\xBF{}",                                                                // byte order mark
        R"({"__metadata__":{"epoch":3}})",                                               // non-string value
        R"({"__metadata__":{"a":{"b":"c"}}})",                                           // nested value
        R"({"__metadata__":"pt"})",                                                      // not a map
        R"({"t":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})",                     // unknown dtype
        R"({"t":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})",                     // names are case-sensitive
        R"({"t":{"shape":[1],"data_offsets":[0,4]}})",                                   // missing dtype
        R"({"t":{"dtype":"F32","data_offsets":[0,4]}})",                                 // missing shape
        R"({"t":{"dtype":"F32","shape":[1]}})",                                          // missing offsets
        R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",                    // negative dim
        R"({"t":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})",                   // float dim
        R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})",                   // three offsets
        R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-0,4]}})",                    // negative zero
        R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}})",  // > u64
        R"({"t":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})",                   // nested array
        R"({"t":[1]})",                                                                  // entry not an object
        R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
        R"({"t":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})",  // duplicate field
    };
    for (const char* h : headers) {
        INFO(h);
        REQUIRE(fails_with(raw_file(h, std::vector<std::byte>(8)), "InvalidHeaderDeserialization"));
    }
}

TEST_CASE("the reader accepts what the reference accepts") {
    // Leading whitespace (reference test_whitespace_leading_padded_header), a null __metadata__,
    // extra fields in an entry (serde ignores them), an empty tensor, entries out of offset order.
    const auto f1 = io::parse_safetensors(raw_file("\t\n{}"), "ws");
    REQUIRE(f1.tensors.empty());
    const auto f2 = io::parse_safetensors(raw_file(R"({"__metadata__":null})"), "null");
    REQUIRE(f2.metadata.empty());
    const auto f3 =
        io::parse_safetensors(raw_file(R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},)"
                                       R"("e":{"dtype":"F32","shape":[0],"data_offsets":[1,1],"extra":true},)"
                                       R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                                       bytes_of({10, 20})),
                              "order");
    REQUIRE(f3.tensors.size() == 3);
    REQUIRE(f3.tensors.tensors()[0].name == "a");  // loaded in offset order
    REQUIRE(f3.tensors.find("a")->data == bytes_of({10}));
    REQUIRE(f3.tensors.find("b")->data == bytes_of({20}));
    REQUIRE(f3.tensors.find("e")->data.empty());
}

TEST_CASE("InvalidOffset: the entries must tile the buffer from 0") {
    const std::vector<std::byte> data(8);
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data),
                       "InvalidOffset(t)"));  // does not start at 0
    REQUIRE(fails_with(raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})",
                                data),
                       "InvalidOffset(b)"));  // gap
    REQUIRE(fails_with(raw_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                                data),
                       "InvalidOffset(b)"));  // overlap
    REQUIRE(fails_with(raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                R"("v":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})",
                                data),
                       "InvalidOffset(v)"));  // end before begin (begin itself is right)
}

TEST_CASE("ValidationOverflow: the element or bit count overflows 64 bits") {
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}})"),
                       "ValidationOverflow"));
    // 2^61 elements fit, but 2^61 x 64 bits do not.
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})"),
                       "ValidationOverflow"));
}

TEST_CASE("MisalignedSlice: sub-byte dtypes must fill whole bytes") {
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", bytes_of({0, 0})),
                       "MisalignedSlice"));
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F6_E2M3","shape":[1],"data_offsets":[0,1]}})", bytes_of({0})),
                       "MisalignedSlice"));
}

TEST_CASE("TensorInvalidInfo: the byte span must equal shape x dtype size") {
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", bytes_of({0, 0, 0, 0})),
                       "TensorInvalidInfo"));
    // F4 x 2 = 1 byte: aligned, so the size check is what fails for a 2-byte span.
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F4","shape":[2],"data_offsets":[0,2]}})", bytes_of({0, 0})),
                       "TensorInvalidInfo"));
}

TEST_CASE("MetadataIncompleteBuffer: trailing bytes or missing data") {
    const std::string h = R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    REQUIRE(fails_with(raw_file(h, bytes_of({0, 0, 0, 0, 9})), "MetadataIncompleteBuffer"));
    REQUIRE(fails_with(raw_file(h, bytes_of({0, 0, 0})), "MetadataIncompleteBuffer"));
    const std::string msg = parse_error(raw_file(h, bytes_of({0, 0, 0})));
    REQUIRE(msg.find("truncated") != std::string::npos);
    REQUIRE(fails_with(raw_file("{}", bytes_of({1})), "MetadataIncompleteBuffer"));
}

TEST_CASE("valid but unsupported dtypes are refused with a clear message") {
    for (const char* dt : {"U16", "I16", "U64", "I8", "C64", "F8_E4M3"}) {
        INFO(dt);
        const std::string bytes = std::string(dt) == "C64" || std::string(dt) == "U64"      ? "8"
                                  : std::string(dt) == "I8" || std::string(dt) == "F8_E4M3" ? "1"
                                                                                            : "2";
        const auto f =
            raw_file(std::string(R"({"t":{"dtype":")") + dt + R"(","shape":[1],"data_offsets":[0,)" + bytes + "]}}",
                     std::vector<std::byte>(std::stoul(bytes)));
        const std::string msg = parse_error(f);
        REQUIRE(msg.rfind(
                    "traincb: safetensors: 'ck.safetensors': UnsupportedDtype: tensor 't' has dtype " + std::string(dt),
                    0) == 0);
        REQUIRE(msg.find("only loads F32, F64, I64, I32, F16, BF16, U8 and BOOL") != std::string::npos);
    }
    // A shape whose dimensions do not fit traincb's int64 shape (valid in the format: 0 elements).
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"U8","shape":[0,18446744073709551615],"data_offsets":[0,0]}})"),
                       "UnsupportedShape"));
}

TEST_CASE("F16 and BF16 tensors of a file written by another writer load with their shapes and bits") {
    // A minimal independent writer: the header text by hand (tensors in name order, not the
    // reference's dtype order, no padding: readers accept both), then the little-endian bits.
    // Values: float16 1.0 = 0x3C00, 65504 = 0x7BFF, 2^-24 = 0x0001, -2.0 = 0xC000, 0.5 = 0x3800,
    // 0.333251953125 = 0x3555 (IEEE 754 binary16); bfloat16 1.0 = 0x3F80, -3.140625 = 0xC049.
    const std::string h = R"({"a.half":{"dtype":"F16","shape":[2,1,3],"data_offsets":[0,12]},)"
                          R"("b.bf16":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]}})";
    const auto bytes = raw_file(
        h, bytes_of({0x00, 0x3C, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0xC0, 0x00, 0x38, 0x55, 0x35, 0x80, 0x3F, 0x49, 0xC0}));
    const auto f = io::parse_safetensors(bytes, "other.safetensors");
    const Tensor* a = f.tensors.find("a.half");
    const Tensor* b = f.tensors.find("b.bf16");
    REQUIRE(a != nullptr);
    REQUIRE(b != nullptr);
    CHECK(a->dtype == DType::F16);
    CHECK(a->shape == std::vector<std::int64_t>{2, 1, 3});
    std::vector<float> got;
    for (std::size_t i = 0; i < a->data.size(); i += 2) {
        std::uint16_t bits = 0;
        std::memcpy(&bits, a->data.data() + i, 2);
        got.push_back(traincb::half_to_float(bits));
    }
    CHECK(got == std::vector<float>{1.0f, 65504.0f, std::ldexp(1.0f, -24), -2.0f, 0.5f, 0.333251953125f});
    CHECK(b->dtype == DType::BF16);
    CHECK(b->shape == std::vector<std::int64_t>{2});
    CHECK(b->data == bytes_of({0x80, 0x3F, 0x49, 0xC0}));
    std::uint16_t second = 0;
    std::memcpy(&second, b->data.data() + 2, 2);
    CHECK(traincb::bfloat16_to_float(second) == -3.140625f);
    // Writing it again gives the reference's order (BF16 before F16) with the same tensors.
    const auto again = io::parse_safetensors(io::serialize_safetensors(f.tensors), "again");
    CHECK(again.tensors.tensors().front().name == "b.bf16");
    CHECK(*again.tensors.find("a.half") == *a);
    CHECK(*again.tensors.find("b.bf16") == *b);
    // An F16 size that does not match its shape is the reference's TensorInvalidInfo.
    REQUIRE(fails_with(raw_file(R"({"t":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}})", bytes_of({0, 0, 0, 0})),
                       "TensorInvalidInfo"));
}

TEST_CASE("truncating a valid file at any byte gives a FormatError, never a crash") {
    StateDict d;
    d.put(tensor("w", DType::F32, {2, 2}, le_bytes<float>({1, 2, 3, 4})));
    d.put(tensor("s", DType::I64, {}, le_bytes<std::int64_t>({5})));
    d.put(tensor("b", DType::Bool, {2}, bytes_of({1, 0})));
    const auto full = io::serialize_safetensors(d, {{"format", "pt"}}, {.checksum = true});
    REQUIRE(io::parse_safetensors(full, "full").tensors.size() == 3);
    for (std::size_t n = 0; n < full.size(); ++n) {
        INFO("truncated to " << n << " of " << full.size() << " bytes");
        const std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        REQUIRE_THROWS_AS(io::parse_safetensors(cut, "cut"), traincb::FormatError);
    }
    auto longer = full;
    longer.push_back(std::byte{0});
    REQUIRE(fails_with(longer, "MetadataIncompleteBuffer"));
}

// ---- checksums -----------------------------------------------------------------------------

TEST_CASE("checksum: written as xxh64 of the tensor bytes, verified on load, flipped bytes caught") {
    StateDict d;
    d.put(tensor("w", DType::F64, {2}, le_bytes<double>({1.5, -2})));
    d.put(tensor("n", DType::U8, {3}, bytes_of({1, 2, 3})));
    TempDir tmp("checksum");
    const fs::path p = tmp.path / "ck.safetensors";
    io::save_safetensors(p, d, {{"format", "pt"}}, {.checksum = true});
    const auto f = io::load_safetensors(p);
    // The buffer is w then n (F64 before U8); the hash is over exactly those bytes.
    std::vector<std::byte> buffer = le_bytes<double>({1.5, -2});
    buffer.push_back(std::byte{1});
    buffer.push_back(std::byte{2});
    buffer.push_back(std::byte{3});
    REQUIRE(f.metadata.at("traincb.checksum") == "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(buffer)));
    REQUIRE(f.metadata.at("format") == "pt");

    const auto good = file_bytes(p);
    const std::size_t data_start = good.size() - buffer.size();
    for (std::size_t pos : {data_start, data_start + 7, good.size() - 1}) {
        auto bad = good;
        bad[pos] ^= std::byte{0x01};
        std::ofstream(p, std::ios::binary | std::ios::trunc)
            .write(reinterpret_cast<const char*>(bad.data()), static_cast<std::streamsize>(bad.size()));
        try {
            (void)io::load_safetensors(p);
            FAIL("corruption not detected");
        } catch (const traincb::FormatError& e) {
            const std::string msg = e.what();
            INFO(msg);
            REQUIRE(msg.rfind("traincb: safetensors: '" + p.string() + "': checksum mismatch", 0) == 0);
        }
        REQUIRE(fails_with(bad, "checksum mismatch"));
    }
}

TEST_CASE("checksum: malformed or unknown values are refused, stale ones never written") {
    const std::string entry = R"("t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
    for (const char* value :
         {"xxh64:123", "xxh64:zzzzzzzzzzzzzzzz", "sha1:0000000000000000", "nothing", "xxh64:0123456789abcdef0"}) {
        INFO(value);
        const auto f = raw_file(std::string(R"({"__metadata__":{"traincb.checksum":")") + value + "\"}," + entry + "}",
                                bytes_of({1}));
        REQUIRE(fails_with(f, "checksum mismatch"));
    }
    // Uppercase hex is accepted (from_chars reads both).
    const std::string upper = "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(bytes_of({1})));
    std::string upper_caps = upper;
    for (std::size_t i = 6; i < upper_caps.size(); ++i)
        upper_caps[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper_caps[i])));
    REQUIRE_NOTHROW(io::parse_safetensors(
        raw_file(R"({"__metadata__":{"traincb.checksum":")" + upper_caps + "\"}," + entry + "}", bytes_of({1}))));

    // Metadata copied from a loaded file carries its checksum: re-saving changed data must not
    // keep it (without checksum it is dropped, with checksum it is recomputed).
    StateDict d;
    d.put(tensor("t", DType::U8, {1}, bytes_of({2})));
    const std::map<std::string, std::string> stale{{"traincb.checksum", upper}, {"k", "v"}};
    const auto without = io::parse_safetensors(io::serialize_safetensors(d, stale));
    REQUIRE(without.metadata == std::map<std::string, std::string>{{"k", "v"}});
    const auto with = io::parse_safetensors(io::serialize_safetensors(d, stale, {.checksum = true}));
    REQUIRE(with.metadata.at("traincb.checksum") ==
            "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(bytes_of({2}))));
}

// ---- files ---------------------------------------------------------------------------------

TEST_CASE("load_safetensors: I/O errors name the path, format errors name the file") {
    TempDir tmp("loaderr");
    try {
        (void)io::load_safetensors(tmp.path / "missing.safetensors", "ModelCheckpoint");
        FAIL("no exception");
    } catch (const traincb::IoError& e) {
        const std::string msg = e.what();
        REQUIRE(msg.rfind("traincb: ModelCheckpoint: cannot open '" + (tmp.path / "missing.safetensors").string(), 0) ==
                0);
        REQUIRE(e.code() == std::error_code(ENOENT, std::generic_category()));
    }
    REQUIRE_THROWS_AS(io::load_safetensors(tmp.path), traincb::IoError);
    const fs::path p = tmp.path / "short.safetensors";
    std::ofstream(p, std::ios::binary) << "abc";
    try {
        (void)io::load_safetensors(p);
        FAIL("no exception");
    } catch (const traincb::FormatError& e) {
        REQUIRE(std::string(e.what()).rfind("traincb: safetensors: '" + p.string() + "': HeaderTooSmall: ", 0) == 0);
    }
    // Truncated data through the file reader (not only the in-memory parser).
    StateDict d;
    d.put(tensor("w", DType::F32, {4}, le_bytes<float>({1, 2, 3, 4})));
    auto bytes = io::serialize_safetensors(d);
    bytes.resize(bytes.size() - 2);
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    try {
        (void)io::load_safetensors(p);
        FAIL("no exception");
    } catch (const traincb::FormatError& e) {
        REQUIRE(std::string(e.what()).find("MetadataIncompleteBuffer") != std::string::npos);
    }
}

namespace {
// Which file operation fails in the next save (index into the sequence of calls of that kind).
struct SaveFault {
    static inline std::string op;
    static inline int err = 0;
    static bool hit(const char* name) {
        if (op != name) return false;
        errno = err;
        return true;
    }
};
}  // namespace

// Counts the pwrite calls of a save (the checksum is filled in after the data).
struct PwriteCount {
    static inline int calls = 0;
};

TEST_CASE("save_safetensors streams the same bytes serialize_safetensors builds, chunks and checksum included") {
    // Tensors below, at and above the writer's 1 MiB hash-and-write chunk, in three dtypes, so
    // the hash runs over many chunks and pieces; serialize_safetensors hashes the whole buffer in
    // one pass, and the expected checksum is XXH64 of the concatenated data in one call.
    const std::size_t chunk = traincb::detail::kSaveChunk;
    auto pattern = [](std::size_t n, unsigned salt) {
        std::vector<std::byte> v(n);
        for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + salt) % 251);
        return v;
    };
    StateDict d;
    d.put(tensor("big", DType::F64, {static_cast<std::int64_t>((2 * chunk + 24) / 8)}, pattern(2 * chunk + 24, 1)));
    d.put(tensor("exact", DType::F32, {static_cast<std::int64_t>(chunk / 4)}, pattern(chunk, 2)));
    d.put(tensor("bias", DType::F32, {5}, pattern(20, 3)));
    d.put(tensor("flags", DType::U8, {3}, pattern(3, 4)));
    d.put(tensor("empty", DType::I64, {0}, {}));
    std::vector<std::byte> data;  // the buffer in file order: F64, I64, F32 by name, U8
    for (const char* name : {"big", "empty", "bias", "exact", "flags"}) {
        const auto& t = d.find(name)->data;
        data.insert(data.end(), t.begin(), t.end());
    }
    const std::map<std::string, std::string> meta{{"format", "pt"}};
    TempDir tmp("stream");
    for (const bool checksum : {true, false}) {
        INFO("checksum " << checksum);
        const fs::path p = tmp.path / "s.safetensors";
        traincb::detail::FileOps ops = traincb::detail::system_file_ops();
        ops.pwrite = [](int fd, const void* b, std::size_t n, off_t off) -> ssize_t {
            ++PwriteCount::calls;
            return ::pwrite(fd, b, n, off);
        };
        PwriteCount::calls = 0;
        {
            traincb::detail::ScopedFileOps guard(ops);
            io::save_safetensors(p, d, meta, {.checksum = checksum});
        }
        const auto bytes = file_bytes(p);
        REQUIRE(bytes == io::serialize_safetensors(d, meta, {.checksum = checksum}));
        REQUIRE(std::equal(data.begin(), data.end(), bytes.end() - static_cast<std::ptrdiff_t>(data.size())));
        const auto f = io::load_safetensors(p);
        if (checksum) {
            REQUIRE(PwriteCount::calls == 1);  // the 16 digits, once
            REQUIRE(f.metadata.at("traincb.checksum") ==
                    "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(data)));
        } else {
            REQUIRE(PwriteCount::calls == 0);
            REQUIRE(f.metadata.count("traincb.checksum") == 0);
        }
        REQUIRE(f.tensors.size() == d.size());  // loaded in file order, so compared by name
        for (const Tensor& t : d.tensors()) REQUIRE(*f.tensors.find(t.name) == t);
    }
}

TEST_CASE("the checksum lands in its own metadata entry even when other text imitates it") {
    // A metadata value and a tensor name that spell the checksum entry's opening: the writer must
    // fill in the real entry and leave these alone.
    const std::string fake = R"("traincb.checksum":"xxh64:)";
    StateDict d;
    d.put(tensor("traincb.checksum", DType::U8, {2}, bytes_of({7, 8})));
    d.put(tensor(fake, DType::U8, {1}, bytes_of({9})));
    const std::map<std::string, std::string> meta{{"a", fake + "0000000000000000\""}, {fake, "x"}, {"z", fake}};
    TempDir tmp("imitate");
    const fs::path p = tmp.path / "i.safetensors";
    io::save_safetensors(p, d, meta, {.checksum = true});
    const auto f = io::load_safetensors(p);  // verifies the checksum
    // Both are U8, ordered by name: the fake name starts with '"' (0x22), before 't'.
    std::vector<std::byte> data = bytes_of({9, 7, 8});
    REQUIRE(f.metadata.at("traincb.checksum") == "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(data)));
    for (const auto& [k, v] : meta) REQUIRE(f.metadata.at(k) == v);
    REQUIRE(f.tensors.size() == d.size());
    for (const Tensor& t : d.tensors()) REQUIRE(*f.tensors.find(t.name) == t);
    REQUIRE(file_bytes(p) == io::serialize_safetensors(d, meta, {.checksum = true}));
}

TEST_CASE("save_safetensors: a failure at any step leaves the previous checkpoint loadable") {
    TempDir tmp("savefail");
    const fs::path p = tmp.path / "ck.safetensors";
    StateDict old;
    old.put(tensor("w", DType::F64, {2}, le_bytes<double>({1, 2})));
    io::save_safetensors(p, old, {}, {.checksum = true});

    StateDict next;
    next.put(tensor("w", DType::F64, {2}, le_bytes<double>({3, 4})));
    traincb::detail::FileOps ops = traincb::detail::system_file_ops();
    ops.open = [](const char* path, int flags, mode_t mode) -> int {
        return (flags & O_CREAT) != 0 && SaveFault::hit("open") ? -1 : ::open(path, flags, mode);
    };
    ops.write = [](int fd, const void* b, std::size_t n) -> ssize_t {
        return SaveFault::hit("write") ? -1 : ::write(fd, b, n);
    };
    ops.fsync = [](int fd) -> int { return SaveFault::hit("fsync") ? -1 : ::fsync(fd); };
    ops.close = [](int fd) -> int {
        const int rc = ::close(fd);
        return SaveFault::hit("close") ? -1 : rc;
    };
    ops.rename = [](const char* a, const char* b) -> int { return SaveFault::hit("rename") ? -1 : ::rename(a, b); };
    // pwrite fills in the checksum once the data is written.
    ops.pwrite = [](int fd, const void* b, std::size_t n, off_t off) -> ssize_t {
        return SaveFault::hit("pwrite") ? -1 : ::pwrite(fd, b, n, off);
    };
    const std::pair<const char*, int> faults[] = {{"open", EACCES}, {"write", ENOSPC}, {"pwrite", EIO},
                                                  {"fsync", EIO},   {"close", EIO},    {"rename", EROFS}};
    for (const auto& [op, err] : faults) {
        INFO(op);
        traincb::detail::ScopedFileOps guard(ops);
        SaveFault::op = op;
        SaveFault::err = err;
        try {
            io::save_safetensors(p, next, {}, {.checksum = true}, "ModelCheckpoint");
            FAIL("no exception");
        } catch (const traincb::IoError& e) {
            const std::string msg = e.what();
            INFO(msg);
            REQUIRE(msg.rfind("traincb: ModelCheckpoint: ", 0) == 0);
            REQUIRE(msg.find("'" + p.string() + "'") != std::string::npos);
            REQUIRE(e.code() == std::error_code(err, std::generic_category()));
        }
        SaveFault::op.clear();
        REQUIRE(io::load_safetensors(p).tensors == old);  // intact, and its checksum verifies
        REQUIRE(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()) == 1);
    }
    // An invalid state is refused before anything touches the disk.
    StateDict invalid;
    invalid.put(tensor("w", DType::F64, {3}, le_bytes<double>({1})));
    REQUIRE_THROWS_AS(io::save_safetensors(p, invalid), traincb::InvalidArgument);
    REQUIRE(io::load_safetensors(p).tensors == old);
    io::save_safetensors(p, next);
    REQUIRE(io::load_safetensors(p).tensors == next);
}

// ---- numpy reads our files -----------------------------------------------------------------

TEST_CASE("numpy (json + struct + numpy.frombuffer) reads our file with the right values") {
    const std::string python = TRAINCB_PYTHON3;
    if (python.empty()) TRAINCB_SKIP("no python3 found at configure time");
    if (std::system(("'" + python + "' -c 'import numpy' >/dev/null 2>&1").c_str()) != 0)
        TRAINCB_SKIP("python3 has no numpy");
    TempDir tmp("numpy");
    Eigen::MatrixXf w(2, 3);  // column-major in C++; numpy must see the same rows
    w << 1.5F, -2, 3, 4, 5.25F, -6;
    Eigen::VectorXd b(3);
    b << 0.1, -1e300, 3;
    StateDict d;
    io::put_tensor(d, "dense.weight", w);
    io::put_tensor(d, "dense.bias", b);
    io::put_tensor(d, "step", std::int64_t{-42});
    d.put(tensor("counts", DType::I64, {2, 2}, le_bytes<std::int64_t>({1, -2, 3, 1LL << 40})));
    // float16 from traincb's own conversion; numpy decodes it (np.float16) independently.
    std::vector<std::byte> halves;
    for (const float v : {0.5f, -1.5f, 65504.0f, std::ldexp(1.0f, -24), 0.1f, 1e5f}) {
        const std::uint16_t h = traincb::float_to_half(v);
        halves.push_back(static_cast<std::byte>(h & 0xFF));
        halves.push_back(static_cast<std::byte>(h >> 8));
    }
    d.put(tensor("conv.half", DType::F16, {1, 2, 3, 1}, halves));
    d.put(tensor("bias.bf16", DType::BF16, {2},
                 le_bytes<std::uint16_t>({traincb::float_to_bfloat16(1.0f), traincb::float_to_bfloat16(-3.14159f)})));
    const fs::path file = tmp.path / "model.safetensors";
    io::save_safetensors(file, d, {{"format", "pt"}}, {.checksum = true});

    // The reader follows the format only: no safetensors package. It checks the layout rules,
    // then prints every tensor's shape and values (repr of Python floats round-trips exactly).
    const fs::path script = tmp.path / "read.py";
    std::ofstream(script) << R"PY(
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert raw[8:9] == b"{" and n % 8 == 0
header = json.loads(raw[8:8 + n].decode("utf-8"))
meta = header.pop("__metadata__")
assert list(json.loads(raw[8:8 + n].decode("utf-8")).keys())[0] == "__metadata__"
buf = raw[8 + n:]
types = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "F16": "<f2", "BF16": "<u2"}
out = {"metadata": meta}
end = 0
for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
    b, e = info["data_offsets"]
    assert b == end and b % np.dtype(types[info["dtype"]]).itemsize == 0
    end = e
    a = np.frombuffer(buf[b:e], dtype=types[info["dtype"]]).reshape(info["shape"])
    if info["dtype"] == "BF16":  # numpy has no bfloat16: the top half of a float32
        a = (a.astype("<u4") << 16).view("<f4")
    out[name] = {"dtype": info["dtype"], "shape": list(a.shape), "values": [repr(v) for v in a.ravel(order="C").tolist()]}
assert end == len(buf)
print(json.dumps(out))
)PY";
    const std::string cmd = "'" + python + "' '" + script.string() + "' '" + file.string() + "'";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string text;
    char buf[4096];
    while (const std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) text.append(buf, n);
    REQUIRE(::pclose(pipe) == 0);
    const auto out = nlohmann::json::parse(text);

    REQUIRE(out["metadata"]["format"] == "pt");
    REQUIRE(out["metadata"]["traincb.checksum"].get<std::string>().rfind("xxh64:", 0) == 0);
    auto values = [&](const char* name) {
        std::vector<std::string> v;
        for (const auto& x : out[name]["values"]) v.push_back(x.get<std::string>());
        return v;
    };
    // Expected reprs: the literals above as Python prints them (float32 values widened to double).
    REQUIRE(out["dense.weight"]["dtype"] == "F32");
    REQUIRE(out["dense.weight"]["shape"] == nlohmann::json::array({2, 3}));
    REQUIRE(values("dense.weight") == std::vector<std::string>{"1.5", "-2.0", "3.0", "4.0", "5.25", "-6.0"});
    REQUIRE(out["dense.bias"]["shape"] == nlohmann::json::array({3}));
    REQUIRE(values("dense.bias") == std::vector<std::string>{"0.1", "-1e+300", "3.0"});
    REQUIRE(out["step"]["shape"] == nlohmann::json::array());
    REQUIRE(values("step") == std::vector<std::string>{"-42"});
    REQUIRE(out["counts"]["shape"] == nlohmann::json::array({2, 2}));
    REQUIRE(values("counts") == std::vector<std::string>{"1", "-2", "3", "1099511627776"});
    // float16 as numpy decodes it: 0.1 is 0.0999755859375 in float16, 1e5 overflows to inf,
    // 2^-24 is the smallest subnormal; bfloat16's -3.14159 is -3.140625.
    REQUIRE(out["conv.half"]["dtype"] == "F16");
    REQUIRE(out["conv.half"]["shape"] == nlohmann::json::array({1, 2, 3, 1}));
    REQUIRE(values("conv.half") ==
            std::vector<std::string>{"0.5", "-1.5", "65504.0", "5.960464477539063e-08", "0.0999755859375", "inf"});
    REQUIRE(out["bias.bf16"]["shape"] == nlohmann::json::array({2}));
    REQUIRE(values("bias.bf16") == std::vector<std::string>{"1.0", "-3.140625"});
}

}  // namespace test_safetensors
