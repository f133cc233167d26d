// Private to simd/: a prepared Toeplitz key (see toeplitz.cpp for the math).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sluice::simd::detail {

struct ToeplitzTables {
    explicit ToeplitzTables(std::span<const uint8_t> key);

    std::vector<uint8_t> key;
    std::size_t max_len = 0;                       // key.size() - 4
    std::vector<std::array<uint32_t, 256>> bytes;  // [input byte position][byte value]
    std::vector<uint64_t> gfni;                    // M[d], d = 0 .. max_len + 2, zero padded
};

uint32_t toeplitz_gfni_emulated(const ToeplitzTables& t, const std::byte* in, std::size_t len);

}  // namespace sluice::simd::detail
