// sluice-pcapgen's byte buffers: big-endian fields written into and appended
// to them, and random bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "rng.hpp"

namespace sluice::pcapgen {

using Bytes = std::vector<uint8_t>;

inline void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
inline uint16_t get16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
inline void append16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
inline void append32(Bytes& b, uint32_t v) {
    append16(b, static_cast<uint16_t>(v >> 16));
    append16(b, static_cast<uint16_t>(v));
}
inline void append(Bytes& b, std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
}

// Random bytes, written byte by byte so that the file does not depend on the
// host's byte order.
inline void append_random(Rng& rng, Bytes& b, size_t n) {
    while (n) {
        uint64_t r = rng.next();
        for (int k = 0; k < 8 && n; ++k, --n, r >>= 8)
            b.push_back(static_cast<uint8_t>(r));
    }
}

}  // namespace sluice::pcapgen
