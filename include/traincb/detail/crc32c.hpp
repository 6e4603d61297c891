#pragma once
/// @file detail/crc32c.hpp
/// CRC-32C (Castagnoli) and LevelDB's masked form, as TFRecord framing uses them.
/// Not zlib's CRC-32 (polynomial 0xEDB88320): a TensorBoard file checksummed with that one is
/// rejected as corrupt. Byte-at-a-time with a table built at compile time: scalar logs are
/// small, so speed does not matter and no dependency or CPU dispatch is worth it.

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace traincb::inline v0::detail {

/// The reflected Castagnoli polynomial (normal form 0x1EDC6F41).
inline constexpr std::uint32_t crc32c_polynomial = 0x82F63B78U;

/// The 256-entry lookup table, generated at compile time by the bitwise LSB-first algorithm.
inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1U) ? (c >> 1) ^ crc32c_polynomial : c >> 1;
        table[i] = c;
    }
    return table;
}();

// Entry [1] is the value the TensorBoard Python table starts with; it identifies Castagnoli.
static_assert(crc32c_table[1] == 0xF26B8303U, "CRC-32C table must be the Castagnoli one");

/// CRC-32C of `data` (init 0xFFFFFFFF, final XOR 0xFFFFFFFF, as iSCSI and SSE4.2).
[[nodiscard]] constexpr std::uint32_t crc32c(std::span<const unsigned char> data) noexcept {
    std::uint32_t crc = 0xFFFFFFFFU;
    for (const unsigned char b : data) crc = crc32c_table[(crc ^ b) & 0xFFU] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFU;
}

/// CRC-32C of the bytes of `data`.
[[nodiscard]] constexpr std::uint32_t crc32c(std::string_view data) noexcept {
    std::uint32_t crc = 0xFFFFFFFFU;
    for (const char ch : data) crc = crc32c_table[(crc ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFU;
}

/// LevelDB's mask: rotate right by 15, then add 0xA282EAD8 (mod 2^32). Stops a CRC of data that
/// itself contains CRCs from being trivially predictable.
[[nodiscard]] constexpr std::uint32_t mask_crc32c(std::uint32_t crc) noexcept {
    return ((crc >> 15) | (crc << 17)) + 0xA282EAD8U;
}

/// The inverse of mask_crc32c, for readers.
[[nodiscard]] constexpr std::uint32_t unmask_crc32c(std::uint32_t masked) noexcept {
    const std::uint32_t rot = masked - 0xA282EAD8U;
    return (rot >> 17) | (rot << 15);
}

/// masked_crc32c(data) = mask_crc32c(crc32c(data)), the checksum stored in TFRecords.
[[nodiscard]] constexpr std::uint32_t masked_crc32c(std::span<const unsigned char> data) noexcept {
    return mask_crc32c(crc32c(data));
}

/// masked_crc32c of the bytes of `data`.
[[nodiscard]] constexpr std::uint32_t masked_crc32c(std::string_view data) noexcept {
    return mask_crc32c(crc32c(data));
}

// The check value of the CRC catalogue, verified at compile time.
static_assert(crc32c(std::string_view("123456789")) == 0xE3069283U);

}  // namespace traincb::inline v0::detail
