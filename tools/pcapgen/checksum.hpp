// sluice-pcapgen's Internet checksum (RFC 1071), for IPv4 headers and for TCP
// and UDP over their pseudo-headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::pcapgen {

// Adds the big-endian 16-bit words of `p` to `acc`; an odd last byte is padded.
inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0) {
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) acc += static_cast<uint32_t>(p[n - 1] << 8);
    return acc;
}
// The checksum of a sum16 total: its ones' complement folded into 16 bits.
inline uint16_t fold(uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(~acc);
}

}  // namespace sluice::pcapgen
