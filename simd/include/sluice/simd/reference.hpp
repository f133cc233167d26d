// Scalar references: the plainest correct code for each kernel, one bit or one
// word at a time. Tests compare every optimised implementation with these;
// nothing on a hot path should call them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::simd::reference {

// CRC-32C register update (no inversions), one bit at a time.
uint32_t crc32c_raw(const void* data, std::size_t len, uint32_t state);

// acc + the sum of 16-bit little-endian words (odd last byte as a low byte).
uint64_t cksum_add(const void* data, std::size_t len, uint64_t acc);

// Toeplitz hash, one input bit at a time: for every set input bit i (most
// significant bit of the first byte first), XOR in the 32 key bits starting
// at key bit i. key.size() must be >= input.size() + 4.
uint32_t toeplitz(std::span<const uint8_t> key, std::span<const std::byte> input);

}  // namespace sluice::simd::reference
