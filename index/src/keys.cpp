#include "sluice/index/keys.hpp"

#include <utility>

namespace sluice::index {

Endpoint endpoint(const std::byte* addr, std::size_t addr_size, uint16_t port) {
    Endpoint e;
    if (addr_size == 16) {
        e.hi = load_be(addr, 8);
        e.lo = load_be(addr + 8, 8);
    } else {
        e.lo = 0x0000ffff00000000ull | load_be(addr, 4);
    }
    e.port = port;
    return e;
}

uint64_t key_flow(uint8_t proto, Endpoint a, Endpoint b) {
    if (b < a) std::swap(a, b);
    uint64_t h = fmix64(key_seed(KeyKind::Flow) ^ proto);
    h = fmix64(h ^ a.hi);
    h = fmix64(h ^ a.lo);
    h = fmix64(h ^ a.port);
    h = fmix64(h ^ b.hi);
    h = fmix64(h ^ b.lo);
    return fmix64(h ^ b.port);
}

std::size_t packet_key_hashes(const PacketKeys& k, std::array<uint64_t, kMaxPacketKeys>& out) {
    std::size_t n = 0;
    const bool v6 = k.flags & PacketKeys::kIpv6;
    if (k.flags & PacketKeys::kSrc)
        out[n++] = v6 ? key_addr6(k.src.data()) : key_addr4(k.src.data());
    if ((k.flags & PacketKeys::kDst) && !(k.has(PacketKeys::kSrc) && k.src == k.dst))
        out[n++] = v6 ? key_addr6(k.dst.data()) : key_addr4(k.dst.data());
    for (uint8_t i = 0; i < k.proto_count; ++i)
        out[n++] = key_proto(k.protos[i]);
    if (k.flags & PacketKeys::kSport) out[n++] = key_port(k.sport);
    if ((k.flags & PacketKeys::kDport) && !(k.has(PacketKeys::kSport) && k.sport == k.dport))
        out[n++] = key_port(k.dport);
    if (k.has(PacketKeys::kSrc | PacketKeys::kDst | PacketKeys::kSport | PacketKeys::kDport) &&
        !(k.flags & PacketKeys::kArp)) {
        const std::size_t as = k.address_size();
        out[n++] = key_flow(k.proto, endpoint(k.src.data(), as, k.sport),
                            endpoint(k.dst.data(), as, k.dport));
    }
    return n;
}

}  // namespace sluice::index
