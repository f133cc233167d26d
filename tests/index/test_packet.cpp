// The packet parser: what it reads from well-formed frames, and that it
// reads nothing outside the captured bytes of hostile or cut-off ones.
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>

#include "index_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/index/keys.hpp"
#include "sluice/index/packet.hpp"
#include "sluice/tunnel/decap.hpp"

namespace sluice::index {
namespace {

using testing::eth;
using testing::Frame;

std::array<std::byte, 16> v4(uint32_t a) {
    std::array<std::byte, 16> r{};
    r[0] = std::byte(a >> 24), r[1] = std::byte(a >> 16), r[2] = std::byte(a >> 8),
    r[3] = std::byte(a);
    return r;
}

TEST(Packet, Ipv4TcpGivesAddressesPortsAndProtocol) {
    Frame f = eth();
    f.u16(0x0800).ipv4(6, 0x0a000001, 0xc0000201).ports(51000, 443).zeros(16);
    const PacketKeys k = parse_packet(f.data());
    EXPECT_TRUE(k.has(PacketKeys::kIpv4 | PacketKeys::kSrc | PacketKeys::kDst | PacketKeys::kSport |
                      PacketKeys::kDport));
    EXPECT_EQ(k.src, v4(0x0a000001));
    EXPECT_EQ(k.dst, v4(0xc0000201));
    EXPECT_EQ(k.proto, 6);
    EXPECT_EQ(k.sport, 51000);
    EXPECT_EQ(k.dport, 443);
    std::array<uint64_t, kMaxPacketKeys> keys;
    EXPECT_EQ(packet_key_hashes(k, keys), 4u);  // 2 addresses, 2 ports (the protocol: a bitmap)
    EXPECT_EQ(k.proto_count, 1);
}

TEST(Packet, VlanAndQinQAreSteppedOver) {
    for (uint16_t outer : {0x8100, 0x88a8, 0x9100}) {
        Frame f = eth();
        f.vlan(outer, 100).vlan(0x8100, 200).u16(0x0800).ipv4(17, 1, 2).ports(53, 5353);
        const PacketKeys k = parse_packet(f.data());
        EXPECT_EQ(k.vlan_tags, 2);
        EXPECT_TRUE(k.has(PacketKeys::kIpv4 | PacketKeys::kSport | PacketKeys::kDport));
        EXPECT_EQ(k.sport, 53);
        EXPECT_EQ(k.proto, 17);
    }
    // More tags than kMaxVlanTags: nothing past them is read.
    Frame f = eth();
    for (int i = 0; i < 20; ++i)
        f.vlan(0x8100, 1);
    f.u16(0x0800).ipv4(6, 1, 2).ports(1, 2);
    EXPECT_EQ(parse_packet(f.data()).flags, 0);
}

TEST(Packet, OnlyTheFirstFragmentHasPorts) {
    Frame first = eth();
    first.u16(0x0800).ipv4(17, 1, 2, 0x2000).ports(1000, 2000);  // MF, offset 0
    EXPECT_TRUE(parse_packet(first.data()).has(PacketKeys::kSport | PacketKeys::kDport));
    Frame later = eth();
    later.u16(0x0800).ipv4(17, 1, 2, 0x00b9).ports(1000, 2000);  // offset 185*8
    const PacketKeys k = parse_packet(later.data());
    EXPECT_TRUE(k.has(PacketKeys::kFragment | PacketKeys::kSrc | PacketKeys::kDst));
    EXPECT_FALSE(k.flags & (PacketKeys::kSport | PacketKeys::kDport));
    EXPECT_EQ(k.proto, 17);
}

TEST(Packet, Ipv4PortsAreWhereIhlSaysAsBpfReadsThem) {
    // IHL 15: ports at byte 60 of the IP header, past what is captured.
    Frame big = eth();
    big.u16(0x0800).ipv4(6, 1, 2, 0, 0x4f).ports(7, 8);
    const PacketKeys k = parse_packet(big.data());
    EXPECT_TRUE(k.has(PacketKeys::kSrc | PacketKeys::kDst));
    EXPECT_FALSE(k.flags & (PacketKeys::kSport | PacketKeys::kDport));
    // IHL 0: a compiled `port` filter reads "ports" at the IP header's start.
    Frame zero = eth();
    zero.u16(0x0800).ipv4(6, 1, 2, 0, 0x40);
    const PacketKeys z = parse_packet(zero.data());
    EXPECT_TRUE(z.has(PacketKeys::kSport | PacketKeys::kDport));
    EXPECT_EQ(z.sport, 0x4000);
    EXPECT_EQ(z.dport, 100);  // the total length field
}

TEST(Packet, Ipv6ExtensionHeadersAreWalkedAndBounded) {
    // Hop-by-hop, destination options, fragment (offset 0), then UDP.
    Frame f = eth();
    f.u16(0x86dd).ipv6(0, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
                       {0xfe, 0x80});
    f.u8(60).u8(0).zeros(6);            // hop-by-hop, 8 bytes
    f.u8(44).u8(1).zeros(14);           // destination options, 16 bytes
    f.u8(17).u8(0).u16(0x0001).u32(7);  // fragment, offset 0, M
    f.ports(5000, 6000).zeros(4);
    const PacketKeys k = parse_packet(f.data());
    EXPECT_TRUE(k.has(PacketKeys::kIpv6 | PacketKeys::kSrc | PacketKeys::kDst | PacketKeys::kSport |
                      PacketKeys::kDport));
    EXPECT_EQ(k.proto, 17);
    EXPECT_EQ(k.sport, 5000);
    EXPECT_EQ(k.dport, 6000);
    // The first next header counts too (`ip6 proto 0` matches it).
    ASSERT_GE(k.proto_count, 2);
    EXPECT_EQ(k.protos[0], 0);

    // A chain longer than kMaxIpv6ExtensionHeaders ends the walk: no ports.
    Frame chain = eth();
    chain.u16(0x86dd).ipv6(60, {1}, {2});
    for (int i = 0; i < 30; ++i)
        chain.u8(60).u8(0).zeros(6);
    chain.ports(1, 2);
    const PacketKeys c = parse_packet(chain.data());
    EXPECT_TRUE(c.has(PacketKeys::kSrc | PacketKeys::kDst));
    EXPECT_FALSE(c.flags & (PacketKeys::kSport | PacketKeys::kDport));

    // A header length pointing far past the capture: stops, reads nothing more.
    Frame huge = eth();
    huge.u16(0x86dd).ipv6(43, {1}, {2}).u8(6).u8(255).zeros(6).ports(1, 2);
    EXPECT_FALSE(parse_packet(huge.data()).flags & PacketKeys::kSport);

    // A later fragment: its protocol, no ports; and the byte after a
    // fragment header's own next header is what `ip6 proto` also tests.
    Frame frag = eth();
    frag.u16(0x86dd).ipv6(44, {1}, {2}).u8(6).u8(0).u16(0x0100).u32(9).ports(1, 2);
    const PacketKeys g = parse_packet(frag.data());
    EXPECT_TRUE(g.flags & PacketKeys::kFragment);
    EXPECT_EQ(g.proto, 6);
    EXPECT_FALSE(g.flags & PacketKeys::kSport);
}

TEST(Packet, ArpAddressesAreKeysAsHostMatchesThem) {
    Frame f = eth();
    f.u16(0x0806)
        .u16(1)
        .u16(0x0800)
        .u8(6)
        .u8(4)
        .u16(1)
        .zeros(6)
        .u32(0x0a000001)
        .zeros(6)
        .u32(0x0a000002);
    const PacketKeys k = parse_packet(f.data());
    EXPECT_TRUE(k.has(PacketKeys::kArp | PacketKeys::kSrc | PacketKeys::kDst));
    EXPECT_EQ(k.src, v4(0x0a000001));
    EXPECT_EQ(k.dst, v4(0x0a000002));
    std::array<uint64_t, kMaxPacketKeys> keys;
    EXPECT_EQ(packet_key_hashes(k, keys), 2u);  // no ports
    EXPECT_EQ(k.proto_count, 0);
}

TEST(Packet, EveryCutOfEveryKindReadsOnlyWhatIsCaptured) {
    // Each frame cut at every length, handed over in a buffer of exactly
    // that size (ASan reports a read past it); fields appear only once
    // wholly captured.
    std::vector<Frame> frames;
    {
        Frame f = eth();
        f.u16(0x0800).ipv4(6, 0x01020304, 0x05060708).ports(1, 2).zeros(20);
        frames.push_back(f);
    }
    {
        Frame f = eth();
        f.vlan(0x88a8, 1).vlan(0x8100, 2).u16(0x86dd).ipv6(0, {9}, {8});
        f.u8(43).u8(0).zeros(6).u8(44).u8(0).u8(0).u8(0).u32(0).u8(6).u8(0).u16(0).u32(0);
        f.ports(80, 8080).zeros(20);
        frames.push_back(f);
    }
    {
        Frame f = eth();
        f.u16(0x8035).zeros(28);
        frames.push_back(f);
    }
    for (const Frame& f : frames) {
        for (std::size_t n = 0; n <= f.size(); ++n) {
            const auto cut = f.cut(n);
            std::unique_ptr<std::byte[]> exact(new std::byte[n ? n : 1]);
            if (n) std::memcpy(exact.get(), cut.data(), n);
            const PacketKeys k = parse_packet({exact.get(), n});
            const PacketKeys whole = parse_packet(f.data());
            if (k.flags & PacketKeys::kSrc) {
                EXPECT_EQ(k.src, whole.src) << n;
            }
            if (k.flags & PacketKeys::kSport) {
                EXPECT_EQ(k.sport, whole.sport) << n;
            }
            if (k.flags & PacketKeys::kDport) {
                EXPECT_EQ(k.dport, whole.dport) << n;
            }
            EXPECT_EQ(k.flags & ~whole.flags, 0) << "a flag the whole frame lacks at " << n;
        }
    }
}

TEST(Packet, RandomBytesNeverReadOutsideTheBuffer) {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 200000; ++i) {
        const std::size_t n = rng() % 160;
        std::unique_ptr<std::byte[]> b(new std::byte[n ? n : 1]);
        for (std::size_t j = 0; j < n; ++j)
            b[j] = std::byte(rng());
        // Make the interesting EtherTypes common.
        if (n >= 14) {
            static const uint16_t types[] = {0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806};
            const uint16_t t = types[rng() % 5];
            b[12] = std::byte(t >> 8), b[13] = std::byte(t);
        }
        std::array<uint64_t, kMaxPacketKeys> keys;
        const PacketKeys k = parse_packet({b.get(), n});
        EXPECT_LE(packet_key_hashes(k, keys), kMaxPacketKeys);
    }
}

// A tunnelled packet's keys: the outer ones and the innermost packet's, for
// an inner Ethernet frame (VXLAN) and an inner IP packet (GRE, MPLS).
TEST(Keys, TunnelledPacketsGiveTheirInnerKeysToo) {
    auto has = [](const FrameKeys& k, uint64_t key) {
        return std::find(k.keys.begin(), k.keys.begin() + k.count, key) != k.keys.begin() + k.count;
    };
    const auto inner_src = v4(0x0a000009), inner_dst = v4(0x0a00000a);
    const auto outer_src = v4(0xc6336401);
    Frame vx = eth();
    vx.u16(0x0800).ipv4(17, 0xc6336401, 0xcb00710a).ports(40000, 4789).u16(8).u16(0);
    vx.bytes({0x08, 0, 0, 0, 0, 0, 42, 0});
    vx.ether(0x0800).ipv4(6, 0x0a000009, 0x0a00000a).ports(51000, 443).zeros(16);
    const FrameKeys a = frame_keys(vx.data());
    EXPECT_TRUE(has(a, key_addr4(outer_src.data())));
    EXPECT_TRUE(has(a, key_port(4789)));
    EXPECT_TRUE(has(a, key_addr4(inner_src.data())));
    EXPECT_TRUE(has(a, key_addr4(inner_dst.data())));
    EXPECT_TRUE(has(a, key_port(443)));
    EXPECT_EQ(a.proto_count, 2u);  // UDP outside, TCP inside

    Frame gre = eth();
    gre.u16(0x0800).ipv4(47, 0xc6336401, 0xcb00710a).u16(0).u16(0x0800);
    gre.ipv4(17, 0x0a000009, 0x0a00000a).ports(5353, 53).zeros(8);
    const FrameKeys b = frame_keys(gre.data());
    EXPECT_TRUE(has(b, key_addr4(inner_src.data())));
    EXPECT_TRUE(has(b, key_port(53)));

    Frame mpls = eth();
    mpls.u16(0x8847).u32(0x00010140);  // one label, bottom of stack
    mpls.ipv4(6, 0x0a000009, 0x0a00000a).ports(1, 2).zeros(16);
    const FrameKeys c = frame_keys(mpls.data());
    EXPECT_TRUE(has(c, key_addr4(inner_dst.data())));
    EXPECT_EQ(c.count, 4u);  // nothing outside: MPLS carries no addresses

    // A plain packet: its own keys only.
    Frame plain = eth();
    plain.u16(0x0800).ipv4(6, 0x0a000009, 0x0a00000a).ports(51000, 443).zeros(16);
    EXPECT_EQ(frame_keys(plain.data()).count, 4u);
}

// frame_keys() skips tunnel::decapsulate() for packets the parse shows to be
// plain: that shortcut must never skip a packet the walk would peel. Every
// kind of frame, cut at every length and with bytes of its headers changed
// at random, is checked against decapsulate() itself.
TEST(Keys, TheShortcutPastDecapsulationNeverSkipsATunnel) {
    std::vector<Frame> kinds;
    auto add = [&kinds](Frame f) { kinds.push_back(std::move(f)); };
    {
        Frame f = eth();  // VXLAN
        f.u16(0x0800).ipv4(17, 1, 2).ports(40000, 4789).u16(8).u16(0);
        f.bytes({0x08, 0, 0, 0, 0, 0, 42, 0}).ether(0x0800).ipv4(6, 3, 4).ports(1, 2).zeros(16);
        add(f);
    }
    {
        Frame f = eth();  // Geneve, Ethernet inside
        f.u16(0x0800).ipv4(17, 1, 2).ports(40000, 6081).u16(8).u16(0);
        f.bytes({0, 0, 0x65, 0x58, 0, 0, 42, 0}).ether(0x0800).ipv4(6, 3, 4).ports(1, 2).zeros(16);
        add(f);
    }
    {
        Frame f = eth();  // GRE, IPv4 inside
        f.u16(0x0800).ipv4(47, 1, 2).u16(0).u16(0x0800).ipv4(17, 3, 4).ports(5353, 53).zeros(8);
        add(f);
    }
    {
        Frame f = eth();  // IPv6, UDP to VXLAN's port
        f.u16(0x86dd).ipv6(17, {0x20, 1}, {0x20, 2}).ports(1, 4789).u16(8).u16(0);
        f.bytes({0x08, 0, 0, 0, 0, 0, 42, 0}).ether(0x0800).ipv4(6, 3, 4).ports(1, 2).zeros(16);
        add(f);
    }
    {
        Frame f = eth();  // IPv6, a hop-by-hop header, then GRE
        f.u16(0x86dd).ipv6(0, {0x20, 1}, {0x20, 2}).bytes({47, 0, 0, 0, 0, 0, 0, 0});
        f.u16(0).u16(0x0800).ipv4(6, 3, 4).ports(1, 2).zeros(16);
        add(f);
    }
    {
        Frame f = eth();  // tagged TCP
        f.vlan(0x8100, 7).u16(0x0800).ipv4(6, 1, 2).ports(1, 443).zeros(16);
        add(f);
    }
    {
        Frame f = eth();  // MPLS
        f.u16(0x8847).u32(0x00010140).ipv4(6, 3, 4).ports(1, 2).zeros(16);
        add(f);
    }
    {
        Frame f = eth();  // plain TCP, UDP, ICMP, IPv6 TCP, an IPv4 fragment
        f.u16(0x0800).ipv4(6, 1, 2).ports(51000, 443).zeros(16);
        add(f);
    }
    {
        Frame f = eth();
        f.u16(0x0800).ipv4(17, 1, 2).ports(5353, 53).u16(8).u16(0).zeros(8);
        add(f);
    }
    {
        Frame f = eth();
        f.u16(0x0800).ipv4(1, 1, 2).zeros(16);
        add(f);
    }
    {
        Frame f = eth();
        f.u16(0x86dd).ipv6(6, {0x20, 1}, {0x20, 2}).ports(1, 2).zeros(16);
        add(f);
    }
    {
        Frame f = eth();
        f.u16(0x0800).ipv4(17, 1, 2, 0x2000).ports(1, 4789).u16(8).u16(0).zeros(24);
        add(f);
    }

    std::mt19937 rng(7);
    uint64_t checked = 0, skipped = 0, peeled = 0;
    auto check = [&](const std::vector<std::byte>& frame) {
        const PacketKeys k = parse_packet(frame);
        const tunnel::Decap d = tunnel::decapsulate(frame.data(), frame.size());
        ++checked;
        peeled += d.peeled();
        if (may_hold_tunnel(k)) return;
        ++skipped;
        // Skipped: decapsulate() must find nothing at all (not even a
        // malformed or truncated tunnel it would count).
        ASSERT_EQ(d.status, tunnel::Status::Plain)
            << "proto " << int(k.proto) << " dport " << k.dport << " size " << frame.size();
    };
    for (const Frame& f : kinds) {
        for (std::size_t n = 0; n <= f.size(); ++n)
            check(f.cut(n));
        for (int i = 0; i < 20000; ++i) {
            std::vector<std::byte> m = f.data();
            const int changes = 1 + int(rng() % 3);
            for (int c = 0; c < changes; ++c) {
                // Mostly the outer headers (EtherType, IP, ports), sometimes anywhere.
                const std::size_t at = (rng() % 4)
                                           ? 12 + rng() % std::min<std::size_t>(50, m.size() - 12)
                                           : rng() % m.size();
                m[at] = std::byte(rng());
            }
            check(m);
        }
    }
    EXPECT_GT(skipped, checked / 10);  // the shortcut is taken...
    EXPECT_GT(peeled, checked / 10);   // ...and tunnels were there to miss
}

TEST(Keys, KindsKeepEqualValuesApart) {
    const auto a = v4(80);
    EXPECT_NE(key_port(80), key_addr4(a.data()));
    // An IPv4 address and its IPv4-mapped IPv6 form are different keys.
    std::array<std::byte, 16> mapped{};
    mapped[10] = mapped[11] = std::byte{0xff};
    std::memcpy(mapped.data() + 12, a.data(), 4);
    EXPECT_NE(key_addr4(a.data()), key_addr6(mapped.data()));
    // A packet to itself has each key once.
    Frame f = eth();
    f.u16(0x0800).ipv4(17, 0x0a000001, 0x0a000001).ports(53, 53);
    std::array<uint64_t, kMaxPacketKeys> keys;
    EXPECT_EQ(packet_key_hashes(parse_packet(f.data()), keys), 2u);
}

}  // namespace
}  // namespace sluice::index
