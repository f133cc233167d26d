#include "sluice/index/packet.hpp"

#include <algorithm>
#include <cstring>

#include "sluice/index/keys.hpp"
#include "sluice/tunnel/decap.hpp"

namespace sluice::index {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kSctp = 132;
constexpr uint8_t kIpv6HopByHop = 0, kIpv6Routing = 43, kIpv6Fragment = 44, kIpv6Esp = 50,
                  kIpv6Ah = 51, kIpv6NoNext = 59, kIpv6DestOpts = 60, kIpv6Mobility = 135,
                  kIpv6Hip = 139, kIpv6Shim6 = 140;

// A bounded view: every read checks the captured length first.
struct Bytes {
    const uint8_t* p;
    std::size_t n;
    bool has(std::size_t off, std::size_t len) const { return off <= n && len <= n - off; }
    uint8_t u8(std::size_t off) const { return p[off]; }
    uint16_t u16(std::size_t off) const { return uint16_t(p[off] << 8 | p[off + 1]); }
};

bool ports_carrier(uint8_t proto) {
    return proto == kTcp || proto == kUdp || proto == kSctp;
}

void add_proto(PacketKeys& k, uint8_t proto) {
    for (uint8_t i = 0; i < k.proto_count; ++i)
        if (k.protos[i] == proto) return;
    if (k.proto_count < k.protos.size()) k.protos[k.proto_count++] = proto;
}

void read_ports(PacketKeys& k, const Bytes& b, std::size_t at) {
    if (b.has(at, 2)) {
        k.sport = b.u16(at);
        k.flags |= PacketKeys::kSport;
    }
    if (b.has(at + 2, 2)) {
        k.dport = b.u16(at + 2);
        k.flags |= PacketKeys::kDport;
    }
}

void copy_address(std::array<std::byte, 16>& to, const Bytes& b, std::size_t at, std::size_t n) {
    std::memcpy(to.data(), b.p + at, n);
}

void parse_ipv4(PacketKeys& k, const Bytes& b, std::size_t l3) {
    k.flags |= PacketKeys::kIpv4;
    // BPF trusts the EtherType and reads at fixed offsets: so does this.
    if (b.has(l3 + 12, 4)) {
        copy_address(k.src, b, l3 + 12, 4);
        k.flags |= PacketKeys::kSrc;
    }
    if (b.has(l3 + 16, 4)) {
        copy_address(k.dst, b, l3 + 16, 4);
        k.flags |= PacketKeys::kDst;
    }
    if (!b.has(l3 + 9, 1)) return;
    k.proto = b.u8(l3 + 9);
    add_proto(k, k.proto);
    if (!b.has(l3 + 6, 2)) return;
    if (b.u16(l3 + 6) & 0x1fff) {
        k.flags |= PacketKeys::kFragment;
        return;
    }
    // 4 * IHL, even below 20: a compiled `port` filter reads the ports there.
    if (ports_carrier(k.proto)) read_ports(k, b, l3 + 4u * (b.u8(l3) & 0x0f));
}

void parse_ipv6(PacketKeys& k, const Bytes& b, std::size_t l3) {
    k.flags |= PacketKeys::kIpv6;
    if (b.has(l3 + 8, 16)) {
        copy_address(k.src, b, l3 + 8, 16);
        k.flags |= PacketKeys::kSrc;
    }
    if (b.has(l3 + 24, 16)) {
        copy_address(k.dst, b, l3 + 24, 16);
        k.flags |= PacketKeys::kDst;
    }
    if (!b.has(l3 + 6, 1)) return;
    uint8_t next = b.u8(l3 + 6);
    add_proto(k, next);
    // `ip6 proto N` (and `tcp`, `udp`) also matches N after a fragment header.
    if (next == kIpv6Fragment && b.has(l3 + 40, 1)) add_proto(k, b.u8(l3 + 40));
    std::size_t at = l3 + 40;
    for (int i = 0; i < kMaxIpv6ExtensionHeaders; ++i) {
        switch (next) {
            case kIpv6HopByHop:
            case kIpv6Routing:
            case kIpv6DestOpts:
            case kIpv6Mobility:
            case kIpv6Hip:
            case kIpv6Shim6:
                if (!b.has(at, 2)) return;
                next = b.u8(at);
                at += 8u + 8u * b.u8(at + 1);
                continue;
            case kIpv6Ah:  // length in 4-byte units, minus 2
                if (!b.has(at, 2)) return;
                next = b.u8(at);
                at += 4u * (b.u8(at + 1) + 2u);
                continue;
            case kIpv6Fragment:
                if (!b.has(at, 4)) return;
                next = b.u8(at);
                if (b.u16(at + 2) & 0xfff8) {  // offset: not the first fragment
                    k.proto = next;
                    add_proto(k, next);
                    k.flags |= PacketKeys::kFragment;
                    return;
                }
                at += 8;
                continue;
            case kIpv6Esp:  // encrypted, or nothing: no transport header to read
            case kIpv6NoNext:
                k.proto = next;
                add_proto(k, next);
                return;
            default:
                k.proto = next;
                add_proto(k, next);
                if (ports_carrier(next)) read_ports(k, b, at);
                return;
        }
    }
    // More extension headers than anyone sends: stop; what is known stays.
}

void parse_arp(PacketKeys& k, const Bytes& b, std::size_t l3) {
    // `host` tests the sender and target protocol addresses at the offsets
    // Ethernet/IPv4 ARP puts them, whatever the header's lengths say.
    k.flags |= PacketKeys::kArp;
    if (b.has(l3 + 14, 4)) {
        copy_address(k.src, b, l3 + 14, 4);
        k.flags |= PacketKeys::kSrc;
    }
    if (b.has(l3 + 24, 4)) {
        copy_address(k.dst, b, l3 + 24, 4);
        k.flags |= PacketKeys::kDst;
    }
}

}  // namespace

PacketKeys parse_packet(std::span<const std::byte> frame) {
    PacketKeys k;
    const Bytes b{reinterpret_cast<const uint8_t*>(frame.data()), frame.size()};
    std::size_t type_at = 12;
    for (int tags = 0;; ++tags) {
        if (!b.has(type_at, 2)) return k;
        const uint16_t type = b.u16(type_at);
        if (type == 0x8100 || type == 0x88a8 || type == 0x9100) {
            if (tags == kMaxVlanTags) return k;
            ++k.vlan_tags;
            type_at += 4;
            continue;
        }
        const std::size_t l3 = type_at + 2;
        if (type == kEtherTypeIpv4)
            parse_ipv4(k, b, l3);
        else if (type == kEtherTypeIpv6)
            parse_ipv6(k, b, l3);
        else if (type == kEtherTypeArp || type == kEtherTypeRarp)
            parse_arp(k, b, l3);
        return k;
    }
}

bool may_hold_tunnel(const PacketKeys& k) {
    return !k.ip() || k.vlan_tags != 0 ||
           tunnel::ip_may_carry_tunnel(k.proto, k.has(PacketKeys::kDport) ? int{k.dport} : -1);
}

FrameKeys frame_keys(std::span<const std::byte> frame) {
    FrameKeys f;
    auto add = [&f](const PacketKeys& k) {
        std::array<uint64_t, kMaxPacketKeys> keys;
        const std::size_t n = packet_key_hashes(k, keys);
        for (std::size_t i = 0; i < n; ++i)
            f.keys[f.count++] = keys[i];
        for (std::size_t i = 0; i < k.proto_count; ++i)
            f.protos[f.proto_count++] = k.protos[i];
    };
    const PacketKeys outer = parse_packet(frame);
    add(outer);
    if (!may_hold_tunnel(outer)) return f;
    const tunnel::Decap d = tunnel::decapsulate(frame.data(), frame.size());
    if (!d.peeled()) return f;
    if (d.inner_ethertype == 0) {
        add(parse_packet(frame.subspan(d.inner_offset)));
        return f;
    }
    // An EtherType payload (IP in GRE or MPLS, or under tags): its headers
    // behind an Ethernet header of their own, in a copy (the frame is not ours).
    std::array<std::byte, 256> head{};
    const std::size_t n = std::min(frame.size() - d.inner_offset, head.size() - 14);
    head[12] = static_cast<std::byte>(d.inner_ethertype >> 8);
    head[13] = static_cast<std::byte>(d.inner_ethertype & 0xff);
    std::memcpy(head.data() + 14, frame.data() + d.inner_offset, n);
    add(parse_packet({head.data(), 14 + n}));
    return f;
}

}  // namespace sluice::index
