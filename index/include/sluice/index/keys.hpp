// Index keys: the addresses and ports a query can look a block up by, each
// hashed to 64 bits with its kind, so that port 80 and the address 0.0.0.80
// are different keys. (Protocols, 256 values, go into an exact bitmap per
// block instead.) The hash is part of the index format (docs/query.md,
// "Keys"): changing it changes kFormatVersion.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "sluice/index/packet.hpp"

namespace sluice::index {

enum class KeyKind : uint8_t { Addr4 = 1, Addr6 = 2, Port = 3 };

// murmur3's 64-bit finaliser: every input bit reaches every output bit.
constexpr uint64_t fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

// A key: its kind and value words folded by multiplication, then finalised
// once (one multiply per word, not a finaliser per word: this runs for every
// packet the collector writes).
constexpr uint64_t kKeyMultiplier = 0x9e3779b97f4a7c15ull;
constexpr uint64_t key_start(KeyKind k) {
    return uint64_t(k) * kKeyMultiplier;
}
constexpr uint64_t key_word(uint64_t h, uint64_t w) {
    return (h ^ w) * kKeyMultiplier;
}

// Big-endian loads: the key of an address does not depend on the host.
inline uint64_t load_be(const std::byte* p, std::size_t n) {
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = v << 8 | uint64_t(p[i]);
    return v;
}

// A value narrower than 64 bits needs no multiply before the finaliser:
// the kinds' seeds differ above bit 32, and fmix64 is a bijection.
inline uint64_t key_addr4(const std::byte* a) {
    return fmix64(key_start(KeyKind::Addr4) ^ load_be(a, 4));
}
inline uint64_t key_addr6(const std::byte* a) {
    return fmix64(key_word(key_start(KeyKind::Addr6), load_be(a, 8)) ^ load_be(a + 8, 8));
}
constexpr uint64_t key_port(uint16_t port) {
    return fmix64(key_start(KeyKind::Port) ^ port);
}

inline constexpr std::size_t kMaxPacketKeys = 4;

// The keys of one packet: its addresses and ports, each once. Returns how
// many were written.
inline std::size_t packet_key_hashes(const PacketKeys& k,
                                     std::array<uint64_t, kMaxPacketKeys>& out) {
    std::size_t n = 0;
    const bool v6 = k.flags & PacketKeys::kIpv6;
    const bool src = k.flags & PacketKeys::kSrc, dst = k.flags & PacketKeys::kDst;
    if (src) out[n++] = v6 ? key_addr6(k.src.data()) : key_addr4(k.src.data());
    if (dst && !(src && k.src == k.dst))
        out[n++] = v6 ? key_addr6(k.dst.data()) : key_addr4(k.dst.data());
    const bool sp = k.flags & PacketKeys::kSport, dp = k.flags & PacketKeys::kDport;
    if (sp) out[n++] = key_port(k.sport);
    if (dp && !(sp && k.sport == k.dport)) out[n++] = key_port(k.dport);
    return n;
}

// The keys of a frame as the index records them: its packet's and, when the
// packet travels in tunnels or tags sluice peels (tunnel::decapsulate), its
// innermost packet's too, so that a query by an inner address or port
// finds the block (capture.decap = "match" writes such packets whole).
struct FrameKeys {
    std::array<uint64_t, 2 * kMaxPacketKeys> keys{};
    std::size_t count = 0;
    std::array<uint8_t, 6> protos{};
    std::size_t proto_count = 0;
};
FrameKeys frame_keys(std::span<const std::byte> frame);

}  // namespace sluice::index
