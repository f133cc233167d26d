// A keyed 64-bit hash of a byte string, for telling packets apart
// (capture.dedup): equal strings hash equal; telling two different strings
// to collide needs the key, which is random per process, so traffic cannot be
// crafted to make sluice drop packets as copies of others.
//
// Multiply-accumulate over 64-byte stripes in eight 64-bit lanes (the shape
// of XXH3's long loop): each lane adds the product of the two 32-bit halves of
// its data word XORed with a key word that moves on with every stripe, and
// its neighbour's data word. The lanes map onto AVX2 and AVX-512 registers
// one to one, so every level computes the same value (tests check it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "sluice/simd/detail/dispatch.hpp"

namespace sluice::simd {

struct PacketHashKey {
    std::array<uint64_t, 8> lanes{};  // one per lane
    uint64_t step = 0;                // added to every lane's key word per stripe (odd)
    uint64_t seed = 0;                // mixed into the final value

    // A key from the operating system's random source (getrandom); a fixed
    // one for tests and benchmarks from `seed`.
    static PacketHashKey random();
    static PacketHashKey from_seed(uint64_t seed);
};

// Cost: ~0.1-0.3 cycles per byte plus ~10 ns (docs/simd.md, "Packet hash").
inline uint64_t packet_hash(const void* data, std::size_t len, const PacketHashKey& key) {
    return detail::kernels().packet_hash(data, len, key);
}

}  // namespace sluice::simd
