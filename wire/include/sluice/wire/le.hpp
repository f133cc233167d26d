// Little-endian loads and stores at any alignment: the one set every format
// of sluice uses (frames, transport messages, state files, pcapng).
// memcpy compiles to a single mov on x86 and keeps the reads defined for any
// byte offset; the byte order is fixed by the format, so hosts of the other
// order would swap here.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::wire {

static_assert(std::endian::native == std::endian::little,
              "sluice::wire reads and writes little-endian fields with plain loads");

template <class T>
inline T load_le(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class T>
inline void store_le(std::byte* p, T v) {
    std::memcpy(p, &v, sizeof v);
}

constexpr uint64_t round_up8(uint64_t n) {
    return (n + 7) & ~uint64_t{7};
}

}  // namespace sluice::wire
