#pragma once
/// @file detail/hash.hpp
/// XXH64, a fast non-cryptographic 64-bit hash (Yann Collet's xxHash, 64-bit variant), written
/// from the published algorithm description. Used as the checksum of checkpoint tensor data: it
/// runs at several GB/s, so a checksum costs a small fraction of the write it protects, and any
/// tool with xxHash (Python's `xxhash`, `xxh64sum`) can verify a file independently.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace traincb::inline v0::detail {

/// Streaming XXH64: feed bytes with update() in any number of pieces, then digest().
class Xxh64 {
public:
    /// Starts a hash with the given seed (0 is the usual one).
    explicit Xxh64(std::uint64_t seed = 0) noexcept
        : acc_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1}, seed_(seed) {}

    /// Adds bytes; splitting the input differently never changes the result.
    void update(std::span<const std::byte> bytes) noexcept {
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
        std::size_t n = bytes.size();
        total_ += n;
        if (buffered_ != 0) {  // complete a partial stripe first
            const std::size_t take = n < kStripe - buffered_ ? n : kStripe - buffered_;
            std::memcpy(buffer_.data() + buffered_, p, take);
            buffered_ += take;
            p += take;
            n -= take;
            if (buffered_ < kStripe) return;
            consume_stripe(buffer_.data());
            buffered_ = 0;
        }
        // The hot loop: four independent lanes, so the multiplies pipeline.
        std::uint64_t a0 = acc_[0], a1 = acc_[1], a2 = acc_[2], a3 = acc_[3];
        while (n >= kStripe) {
            a0 = round(a0, load64(p));
            a1 = round(a1, load64(p + 8));
            a2 = round(a2, load64(p + 16));
            a3 = round(a3, load64(p + 24));
            p += kStripe;
            n -= kStripe;
        }
        acc_ = {a0, a1, a2, a3};
        if (n != 0) {
            std::memcpy(buffer_.data(), p, n);
            buffered_ = n;
        }
    }

    /// The hash of everything added so far (the state is unchanged, more bytes may follow).
    [[nodiscard]] std::uint64_t digest() const noexcept {
        std::uint64_t h = 0;
        if (total_ >= kStripe) {
            h = std::rotl(acc_[0], 1) + std::rotl(acc_[1], 7) + std::rotl(acc_[2], 12) + std::rotl(acc_[3], 18);
            for (std::uint64_t a : acc_) h = merge(h, a);
        } else {
            h = seed_ + kP5;
        }
        h += total_;
        const unsigned char* p = buffer_.data();
        std::size_t n = buffered_;
        for (; n >= 8; p += 8, n -= 8) h = std::rotl(h ^ round(0, load64(p)), 27) * kP1 + kP4;
        if (n >= 4) {
            h = std::rotl(h ^ (static_cast<std::uint64_t>(load32(p)) * kP1), 23) * kP2 + kP3;
            p += 4;
            n -= 4;
        }
        for (; n > 0; ++p, --n) h = std::rotl(h ^ (static_cast<std::uint64_t>(*p) * kP5), 11) * kP1;
        // Final avalanche: every input bit affects every output bit.
        h ^= h >> 33;
        h *= kP2;
        h ^= h >> 29;
        h *= kP3;
        h ^= h >> 32;
        return h;
    }

private:
    static constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ULL;
    static constexpr std::uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
    static constexpr std::uint64_t kP3 = 0x165667B19E3779F9ULL;
    static constexpr std::uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
    static constexpr std::uint64_t kP5 = 0x27D4EB2F165667C5ULL;
    static constexpr std::size_t kStripe = 32;

    static std::uint64_t load64(const unsigned char* p) noexcept {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        if constexpr (std::endian::native == std::endian::big) v = byteswap64(v);
        return v;
    }
    static std::uint32_t load32(const unsigned char* p) noexcept {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        if constexpr (std::endian::native == std::endian::big)
            v = static_cast<std::uint32_t>(byteswap64(static_cast<std::uint64_t>(v) << 32));
        return v;
    }
    static constexpr std::uint64_t byteswap64(std::uint64_t v) noexcept {
        std::uint64_t r = 0;
        for (int i = 0; i < 8; ++i) r = (r << 8) | ((v >> (8 * i)) & 0xFFU);
        return r;
    }
    static std::uint64_t round(std::uint64_t acc, std::uint64_t input) noexcept {
        return std::rotl(acc + input * kP2, 31) * kP1;
    }
    static std::uint64_t merge(std::uint64_t h, std::uint64_t acc) noexcept { return (h ^ round(0, acc)) * kP1 + kP4; }
    void consume_stripe(const unsigned char* p) noexcept {
        for (std::size_t i = 0; i < 4; ++i) acc_[i] = round(acc_[i], load64(p + 8 * i));
    }

    std::array<std::uint64_t, 4> acc_;
    std::array<unsigned char, kStripe> buffer_{};
    std::size_t buffered_ = 0;
    std::uint64_t total_ = 0;
    std::uint64_t seed_;
};

/// XXH64 of one buffer.
[[nodiscard]] inline std::uint64_t xxh64(std::span<const std::byte> bytes, std::uint64_t seed = 0) noexcept {
    Xxh64 h(seed);
    h.update(bytes);
    return h.digest();
}

/// XXH64 of a string's bytes.
[[nodiscard]] inline std::uint64_t xxh64(std::string_view text, std::uint64_t seed = 0) noexcept {
    return xxh64(std::as_bytes(std::span<const char>(text.data(), text.size())), seed);
}

/// 16 lowercase hex digits, most significant first (the form xxhsum prints).
[[nodiscard]] inline std::string hex64(std::uint64_t v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = kDigits[v & 0xFU];
    return s;
}

}  // namespace traincb::inline v0::detail
