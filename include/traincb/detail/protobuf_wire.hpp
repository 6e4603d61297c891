#pragma once
/// @file detail/protobuf_wire.hpp
/// The few protobuf (proto3) wire-format encoders a TensorBoard event needs, so that traincb
/// writes event files without libprotobuf or generated code. Bytes are appended to a
/// std::string, as protobuf's own SerializeToString produces them. Callers write fields in
/// field-number order, as canonical serializers do, so the output is byte-identical to theirs.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace traincb::inline v0::detail::pb {

/// The wire types traincb writes (3 and 4, the deprecated groups, never).
enum class WireType : std::uint8_t {
    Varint = 0,  ///< int32, int64, uint64, bool, enum
    I64 = 1,     ///< fixed64, double
    Len = 2,     ///< string, bytes, sub-message, packed repeated
    I32 = 5,     ///< fixed32, float
};

/// Appends `value` as a base-128 varint: 7 bits per byte, low group first, MSB set on all but
/// the last byte (300 -> ac 02).
inline void put_varint(std::string& out, std::uint64_t value) {
    while (value >= 0x80U) {
        out.push_back(static_cast<char>((value & 0x7FU) | 0x80U));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

/// Number of bytes put_varint writes for `value`.
[[nodiscard]] constexpr std::size_t varint_size(std::uint64_t value) noexcept {
    std::size_t n = 1;
    while (value >= 0x80U) {
        value >>= 7;
        ++n;
    }
    return n;
}

/// Appends a field key: (field_number << 3) | wire_type, itself a varint.
inline void put_key(std::string& out, std::uint32_t field_number, WireType type) {
    put_varint(out, (static_cast<std::uint64_t>(field_number) << 3) | static_cast<std::uint64_t>(type));
}

/// Appends 4 bytes, little-endian whatever the host order.
inline void put_fixed32(std::string& out, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFU));
}

/// Appends 8 bytes, little-endian whatever the host order.
inline void put_fixed64(std::string& out, std::uint64_t value) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFU));
}

/// An int64 field (wire type VARINT). Negative values are not zigzagged: proto3 `int64` casts
/// them to uint64, so they always take 10 bytes (-1 -> ff ff ff ff ff ff ff ff ff 01).
inline void put_int64_field(std::string& out, std::uint32_t field_number, std::int64_t value) {
    put_key(out, field_number, WireType::Varint);
    put_varint(out, static_cast<std::uint64_t>(value));
}

/// An unsigned or enum field (wire type VARINT).
inline void put_uint64_field(std::string& out, std::uint32_t field_number, std::uint64_t value) {
    put_key(out, field_number, WireType::Varint);
    put_varint(out, value);
}

/// A double field: 8 bytes of IEEE-754 binary64, little-endian (wire type I64).
inline void put_double_field(std::string& out, std::uint32_t field_number, double value) {
    put_key(out, field_number, WireType::I64);
    put_fixed64(out, std::bit_cast<std::uint64_t>(value));
}

/// A float field: 4 bytes of IEEE-754 binary32, little-endian (wire type I32).
inline void put_float_field(std::string& out, std::uint32_t field_number, float value) {
    put_key(out, field_number, WireType::I32);
    put_fixed32(out, std::bit_cast<std::uint32_t>(value));
}

/// A string, bytes or already-serialized sub-message field: varint length, then the bytes.
inline void put_bytes_field(std::string& out, std::uint32_t field_number, std::string_view bytes) {
    put_key(out, field_number, WireType::Len);
    put_varint(out, bytes.size());
    out.append(bytes);
}

}  // namespace traincb::inline v0::detail::pb
