// Index keys: each value a query can look a block up by, hashed to 64 bits
// with its kind, so that port 80 and protocol 80 are different keys. The
// hash is part of the index format (docs/query.md, "Keys"): changing it
// changes kFormatVersion.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "sluice/index/packet.hpp"

namespace sluice::index {

enum class KeyKind : uint8_t { Addr4 = 1, Addr6 = 2, Port = 3, Proto = 4, Flow = 5 };

// murmur3's 64-bit finaliser: every input bit reaches every output bit.
constexpr uint64_t fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

constexpr uint64_t key_seed(KeyKind k) {
    return uint64_t(k) * 0x9e3779b97f4a7c15ull;
}

// Big-endian loads: the key of an address does not depend on the host.
inline uint64_t load_be(const std::byte* p, std::size_t n) {
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = v << 8 | uint64_t(p[i]);
    return v;
}

inline uint64_t key_addr4(const std::byte* a) {
    return fmix64(key_seed(KeyKind::Addr4) ^ load_be(a, 4));
}
inline uint64_t key_addr6(const std::byte* a) {
    return fmix64(fmix64(key_seed(KeyKind::Addr6) ^ load_be(a, 8)) ^ load_be(a + 8, 8));
}
constexpr uint64_t key_port(uint16_t port) {
    return fmix64(key_seed(KeyKind::Port) ^ port);
}
constexpr uint64_t key_proto(uint8_t proto) {
    return fmix64(key_seed(KeyKind::Proto) ^ proto);
}

// An endpoint of a flow: the address as 16 bytes (IPv4 mapped into IPv6,
// ::ffff:a.b.c.d) and the port.
struct Endpoint {
    uint64_t hi = 0, lo = 0;
    uint16_t port = 0;
    auto operator<=>(const Endpoint&) const = default;
};
Endpoint endpoint(const std::byte* addr, std::size_t addr_size, uint16_t port);

// The flow of a TCP, UDP or SCTP packet, the same in both directions.
uint64_t key_flow(uint8_t proto, Endpoint a, Endpoint b);

inline constexpr std::size_t kMaxPacketKeys = 8;

// The keys of one packet (addresses, ports, protocols, flow); at most
// kMaxPacketKeys. Returns how many were written.
std::size_t packet_key_hashes(const PacketKeys& k, std::array<uint64_t, kMaxPacketKeys>& out);

}  // namespace sluice::index
