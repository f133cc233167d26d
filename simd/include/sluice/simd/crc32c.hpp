// CRC-32C (Castagnoli): the checksum of every sluice frame.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sluice/simd/detail/dispatch.hpp"

namespace sluice::simd {

// Standard CRC-32C as iSCSI, SCTP and ext4 use it (reflected polynomial
// 0x82F63B78, initial value and final XOR 0xFFFFFFFF): crc32c("123456789", 9)
// == 0xE3069283. Chainable: crc32c(b, nb, crc32c(a, na)) == crc32c(a + b).
// Cost on the development machine: ~0.1 cycle/byte from 1 KiB up (docs/simd.md).
inline uint32_t crc32c(const void* data, std::size_t len, uint32_t crc = 0) {
    return ~detail::kernels().crc32c(data, len, ~crc);
}

// The CRC register update alone, without the inversions at either end: equal to
// DPDK's rte_hash_crc(data, len, state). crc32c(d, n, c) == ~crc32c_raw(d, n, ~c).
inline uint32_t crc32c_raw(const void* data, std::size_t len, uint32_t state) {
    return detail::kernels().crc32c(data, len, state);
}

}  // namespace sluice::simd
