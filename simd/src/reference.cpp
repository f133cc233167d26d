#include "sluice/simd/reference.hpp"

namespace sluice::simd::reference {

uint32_t crc32c_raw(const void* data, std::size_t len, uint32_t state) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (std::size_t i = 0; i < len; ++i) {
        state ^= p[i];
        for (int b = 0; b < 8; ++b)
            state = (state >> 1) ^ ((state & 1u) ? 0x82F63B78u : 0u);
    }
    return state;
}

uint64_t cksum_add(const void* data, std::size_t len, uint64_t acc) {
    const auto* p = static_cast<const uint8_t*>(data);
    std::size_t i = 0;
    for (; i + 1 < len; i += 2)
        acc += static_cast<uint64_t>(p[i]) | static_cast<uint64_t>(p[i + 1]) << 8;
    if (i < len) acc += p[i];
    return acc;
}

uint32_t toeplitz(std::span<const uint8_t> key, std::span<const std::byte> input) {
    auto key_bit = [&](std::size_t n) -> uint32_t {
        return n / 8 < key.size() ? (key[n / 8] >> (7 - n % 8)) & 1u : 0u;
    };
    uint32_t hash = 0;
    for (std::size_t i = 0; i < input.size() * 8; ++i) {
        if (!((static_cast<uint8_t>(input[i / 8]) >> (7 - i % 8)) & 1u)) continue;
        uint32_t window = 0;
        for (std::size_t k = 0; k < 32; ++k)
            window = window << 1 | key_bit(i + k);
        hash ^= window;
    }
    return hash;
}

}  // namespace sluice::simd::reference
