#include "tunnels.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "checksum.hpp"
#include "packets.hpp"

namespace sluice::pcapgen {
namespace {

TunnelPath make_path(Rng& rng, Tunnel kind, uint8_t index) {
    TunnelPath p;
    p.kind = kind;
    p.index = index;
    p.ttl = rng.chance(50) ? 64 : 255;
    switch (kind) {
        case Tunnel::Erspan2:
        case Tunnel::Erspan3:
            p.id = 1 + rng.below(1023);  // 10-bit session id
            break;
        case Tunnel::GreKey:
            p.id = static_cast<uint32_t>(rng.next());
            break;
        default:
            p.id = 1 + rng.below((1u << 24) - 1);  // 24-bit VNI, 0 left out
            break;
    }
    p.vlan = static_cast<uint16_t>(2 + rng.below(4000));
    p.outer_vlan = static_cast<uint16_t>(2 + rng.below(4000));
    p.nlabels = static_cast<uint8_t>(1 + rng.below(3));
    for (auto& l : p.labels)
        l = 16 + rng.below((1u << 20) - 16);  // labels 0-15 are reserved
    p.gre_seq = rng.chance(50);
    p.geneve_option = rng.chance(50);
    p.hw_id = static_cast<uint8_t>(rng.below(64));
    p.gra = static_cast<uint8_t>(rng.below(2));
    p.egress = rng.chance(50);
    p.seq = static_cast<uint32_t>(rng.below(1000));
    p.ip_id = static_cast<uint16_t>(rng.next());
    return p;
}

// The inner packet's IP datagram without Ethernet header or padding.
std::pair<const uint8_t*, size_t> inner_ip(const Bytes& inner) {
    const uint8_t* ip = inner.data() + 14;
    const size_t len = inner[12] == 0x86 ? 40u + get16(ip + 4) : get16(ip + 2);
    return {ip, len};
}

void put_outer_ethernet(uint8_t* p, const TunnelPath& t, uint16_t type) {
    const uint8_t dst[6] = {0x02, 0x00, 0x5e, 0x00, 0x01, t.index};
    const uint8_t src[6] = {0x02, 0x00, 0x5e, 0x00, 0x02, t.index};
    std::memcpy(p, dst, 6);
    std::memcpy(p + 6, src, 6);
    put16(p + 12, type);
}

// ERSPAN III timestamp in the session's granularity: 100 us or 100 ns ticks.
uint32_t erspan_timestamp(const TunnelPath& t, uint64_t t_ns) {
    return static_cast<uint32_t>(t.gra == 0 ? t_ns / 100000 : t_ns / 100);
}

}  // namespace

std::vector<TunnelPath> make_paths(Rng& rng, Tunnel kind) {
    constexpr Tunnel kAll[] = {Tunnel::Erspan2, Tunnel::Erspan3, Tunnel::Gre,
                               Tunnel::GreKey,  Tunnel::Vxlan,   Tunnel::Geneve,
                               Tunnel::Mpls,    Tunnel::Vlan,    Tunnel::QinQ};
    std::vector<TunnelPath> paths;
    if (kind == Tunnel::None) return paths;
    const size_t n = kind == Tunnel::Mix ? 2 * std::size(kAll) : 4;
    for (size_t i = 0; i < n; ++i)
        paths.push_back(make_path(rng, kind == Tunnel::Mix ? kAll[i % std::size(kAll)] : kind,
                                  static_cast<uint8_t>(i)));
    return paths;
}

Encapsulated encapsulate(TunnelPath& t, uint16_t entropy_port, const Bytes& inner, uint64_t t_ns) {
    Encapsulated e;
    Bytes& out = e.frame;
    const uint16_t inner_type = static_cast<uint16_t>(inner[12] << 8 | inner[13]);
    switch (t.kind) {
        case Tunnel::Vlan:
        case Tunnel::QinQ: {
            out.assign(inner.begin(), inner.begin() + 12);
            e.header_begin = 12;
            if (t.kind == Tunnel::QinQ) append16(out, 0x88a8), append16(out, t.outer_vlan);
            append16(out, 0x8100);
            append16(out, static_cast<uint16_t>((t.index & 7) << 13 | t.vlan));
            e.header_end = out.size() + 2;  // the tag ends with the inner EtherType
            out.insert(out.end(), inner.begin() + 12, inner.end());
            return e;
        }
        case Tunnel::Mpls: {
            out.resize(14);
            put_outer_ethernet(out.data(), t, 0x8847);
            e.header_begin = 14;
            for (uint8_t i = 0; i < t.nlabels; ++i)
                append32(out, t.labels[i] << 12 | (i + 1 == t.nlabels ? 0x100u : 0u) | t.ttl);
            e.header_end = out.size();
            const auto [ip, len] = inner_ip(inner);
            out.insert(out.end(), ip, ip + len);
            out.resize(std::max(out.size(), kEthernetMin));
            return e;
        }
        default:
            break;
    }

    const bool udp = t.kind == Tunnel::Vxlan || t.kind == Tunnel::Geneve;
    out.resize(14 + 20);
    put_outer_ethernet(out.data(), t, 0x0800);
    if (udp) out.resize(out.size() + 8);
    e.header_begin = out.size();
    const bool l3 = t.kind == Tunnel::Gre || t.kind == Tunnel::GreKey;
    switch (t.kind) {
        case Tunnel::Gre:
            append16(out, 0), append16(out, inner_type);
            break;
        case Tunnel::GreKey:
            append16(out, t.gre_seq ? 0x3000 : 0x2000), append16(out, inner_type);
            append32(out, t.id);
            if (t.gre_seq) append32(out, t.seq++);
            break;
        case Tunnel::Erspan2:
            append16(out, 0x1000), append16(out, 0x88be), append32(out, t.seq++);
            // Ver 1, no VLAN, COS 0, untagged original, not truncated; port index.
            append32(out, 1u << 28 | t.id);
            append32(out, t.index + 1u);
            break;
        case Tunnel::Erspan3:
            append16(out, 0x1000), append16(out, 0x22eb), append32(out, t.seq++);
            append32(out, 2u << 28 | t.id);  // Ver 2, no VLAN, COS 0, BSO 0, not truncated
            append32(out, erspan_timestamp(t, t_ns));
            // SGT 0, Ethernet frame (P 0, FT 0), switch id, direction, granularity, no subheader
            append32(out, static_cast<uint32_t>(t.hw_id) << 4 | (t.egress ? 8u : 0u) |
                              static_cast<uint32_t>(t.gra) << 1);
            break;
        case Tunnel::Vxlan:
            append32(out, 0x08000000), append32(out, t.id << 8);
            break;
        case Tunnel::Geneve:
            // Protocol type: Ethernet; an OVN option carries the logical ports.
            append16(out, t.geneve_option ? 0x0240 : 0), append16(out, 0x6558);  // opt len 2, C
            append32(out, t.id << 8);
            if (t.geneve_option) {
                append16(out, 0x0102), out.push_back(0x80), out.push_back(1);
                append32(out, (entropy_port & 0x7fffu) << 16 | t.index);
            }
            break;
        default:
            break;
    }
    e.header_end = out.size();
    if (l3) {
        const auto [ip, len] = inner_ip(inner);
        out.insert(out.end(), ip, ip + len);
    } else {
        out.insert(out.end(), inner.begin(), inner.end());
    }

    uint8_t* ip = &out[14];
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(out.size() - 14));
    put16(ip + 4, t.ip_id++);
    put16(ip + 6, 0x4000);  // DF
    ip[8] = t.ttl;
    ip[9] = udp ? 17 : 47;
    const uint8_t src[4] = {198, 51, 100, static_cast<uint8_t>(1 + t.index)};
    const uint8_t dst[4] = {203, 0, 113, static_cast<uint8_t>(10 + t.index % 3)};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    put16(ip + 10, fold(sum16(ip, 20)));
    if (udp) {
        uint8_t* u = ip + 20;
        const size_t ulen = out.size() - 34;
        // The source port carries the inner flow's hash, for ECMP.
        put16(u, entropy_port);
        put16(u + 2, t.kind == Tunnel::Vxlan ? 4789 : 6081);
        put16(u + 4, static_cast<uint16_t>(ulen));
        uint16_t ck = fold(sum16(u, ulen, sum16(ip + 12, 8) + 17 + static_cast<uint32_t>(ulen)));
        put16(u + 6, ck ? ck : 0xffff);
    }
    return e;
}

}  // namespace sluice::pcapgen
