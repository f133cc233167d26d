// The filter analysis and the time formats. The analysis is checked for
// soundness the hard way: for packets of every shape (tagged, fragmented,
// extension headers, ARP, cut short, random bytes) and filters of every
// kind, whenever libpcap's compiled filter accepts a packet, a block holding
// only that packet's keys must be a candidate.
#include <random>

#include "index_testing.hpp"
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include "sluice/index/bloom.hpp"
#include "sluice/index/keys.hpp"
#include "sluice/index/predicate.hpp"
#include "sluice/index/timefmt.hpp"

namespace sluice::index {
namespace {

using testing::eth;
using testing::Frame;

struct Compiled {
    explicit Compiled(const std::string& filter) {
        pcap_t* p = pcap_open_dead(DLT_EN10MB, 262144);
        ok = pcap_compile(p, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0;
        pcap_close(p);
    }
    ~Compiled() {
        if (ok) pcap_freecode(&prog);
    }
    bool accepts(const std::vector<std::byte>& d) const {
        pcap_pkthdr h{};
        h.caplen = h.len = uint32_t(d.size());
        return pcap_offline_filter(&prog, &h, reinterpret_cast<const u_char*>(d.data())) != 0;
    }
    bpf_program prog{};
    bool ok = false;
};

// A block record whose filter holds exactly these packets' keys.
struct OneBlock {
    explicit OneBlock(const std::vector<std::byte>& packet) {
        std::array<uint64_t, kMaxPacketKeys> keys;
        const PacketKeys k = parse_packet(packet);
        const std::size_t n = packet_key_hashes(k, keys);
        BloomAccumulator acc;
        for (std::size_t i = 0; i < n; ++i)
            acc.insert(keys[i]);
        for (uint8_t i = 0; i < k.proto_count; ++i)
            r.protocols.add(k.protos[i]);
        r.bloom_blocks = acc.fold_into(filter);
        r.bloom = filter;
        r.packets = 1;
    }
    std::vector<std::byte> filter;
    BlockRecord r;
};

Predicate predicate(const std::string& f) {
    Compiled c(f);
    EXPECT_TRUE(c.ok) << f;
    return Predicate::from_bpf(c.prog);
}

std::vector<std::string> names(const Predicate& p) {
    std::vector<std::string> out;
    for (const auto& alt : p.alternatives()) {
        std::string s;
        for (const auto& k : alt)
            s += (s.empty() ? "" : " & ") + k.name;
        out.push_back(s);
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(Predicate, KeysComeFromTheProgram) {
    EXPECT_EQ(names(predicate("host 10.0.0.1")), std::vector<std::string>{"host 10.0.0.1"});
    EXPECT_EQ(names(predicate("ip6 host 2001:db8::1")),
              std::vector<std::string>{"host 2001:db8::1"});
    // tcp port 80: IPv4 and IPv6, source or destination: protocol and port.
    for (const auto& alt : names(predicate("tcp port 80")))
        EXPECT_TRUE(alt.find("proto 6") != std::string::npos &&
                    alt.find("port 80") != std::string::npos)
            << alt;
    // A flow: both addresses, both ports, the protocol, on every path.
    const Predicate flow =
        predicate("tcp and host 10.0.0.1 and host 10.0.0.2 and port 1000 and port 80");
    ASSERT_FALSE(flow.alternatives().empty());
    for (const auto& alt : flow.alternatives()) {
        std::vector<std::string> n;
        for (const auto& k : alt)
            n.push_back(k.name);
        std::sort(n.begin(), n.end());
        EXPECT_EQ(n, (std::vector<std::string>{"host 10.0.0.1", "host 10.0.0.2", "port 1000",
                                               "port 80", "proto 6"}));
    }
    EXPECT_TRUE(predicate("vlan and host 10.0.0.1").narrows());
    EXPECT_EQ(names(predicate("vlan and host 10.0.0.1")),
              std::vector<std::string>{"host 10.0.0.1"});
}

TEST(Predicate, WhatTheIndexCannotTellNarrowsNothing) {
    for (const char* f : {"", "not host 10.0.0.1", "len > 100", "ether host 1:2:3:4:5:6",
                          "host 10.0.0.1 or len > 1000", "net 10.0.0.0/8",
                          "ip proto 6 or ether proto 0x88cc", "ip6 protochain 6"}) {
        EXPECT_FALSE(predicate(f).narrows()) << f;
    }
    // libpcap's tcp[] accessor checks the protocol first: that much is known.
    EXPECT_EQ(names(predicate("tcp[13] & 2 != 0")), std::vector<std::string>{"proto 6"});
    // A program that accepts nothing: no block is a candidate.
    bpf_insn reject{BPF_RET | BPF_K, 0, 0, 0};
    const bpf_program none_prog{1, &reject};
    const Predicate none = Predicate::from_bpf(none_prog);
    EXPECT_TRUE(none.narrows());
    OneBlock b(eth().u16(0x0800).ipv4(6, 1, 2).ports(1, 2).data());
    EXPECT_FALSE(none.may_match(b.r));
}

TEST(Predicate, ABlockWithoutTheKeyIsNotACandidate) {
    const Predicate p = predicate("host 10.0.0.1 and port 53");
    Frame hit = eth();
    hit.u16(0x0800).ipv4(17, 0x0a000001, 0x0a000002).ports(53, 5353);
    Frame miss = eth();
    miss.u16(0x0800).ipv4(17, 0x0a000003, 0x0a000002).ports(53, 5353);
    EXPECT_TRUE(p.may_match(OneBlock(hit.data()).r));
    EXPECT_FALSE(p.may_match(OneBlock(miss.data()).r));
    // A block of packets the parser cannot read is always a candidate.
    OneBlock opaque(miss.data());
    opaque.r.flags |= block_flag::kOpaque;
    EXPECT_TRUE(p.may_match(opaque.r));
}

// Packets of every shape the parser meets, with fields drawn from small
// sets so that filters hit them.
std::vector<std::byte> random_packet(std::mt19937_64& rng) {
    auto pick = [&](std::initializer_list<uint32_t> v) { return *(v.begin() + rng() % v.size()); };
    Frame f = eth();
    const int tags = pick({0, 0, 0, 1, 2});
    for (int i = 0; i < tags; ++i)
        f.u16(uint16_t(pick({0x8100, 0x88a8, 0x9100}))).u16(uint16_t(pick({100, 101, 200})));
    const uint32_t a = pick({0x0a000001, 0x0a000002, 0xc0000201}),
                   b = pick({0x0a000001, 0x0a000002, 0xc0000201});
    const uint16_t sp = uint16_t(pick({53, 80, 443, 1000})),
                   dp = uint16_t(pick({53, 80, 443, 1000}));
    switch (rng() % 6) {
        case 0:
        case 1: {
            const uint8_t proto = uint8_t(pick({6, 17, 132, 1}));
            const uint16_t frag = uint16_t(pick({0x4000, 0x2000, 0x0005, 0x0000}));
            const uint8_t ihl = uint8_t(pick({0x45, 0x45, 0x46, 0x40, 0x4f}));
            f.u16(0x0800).ipv4(proto, a, b, frag, ihl);
            if ((ihl & 0xf) == 6) f.u32(0);
            f.ports(sp, dp).zeros(16);
            break;
        }
        case 2: {
            const uint8_t next = uint8_t(pick({6, 17, 0, 44, 58}));
            f.u16(0x86dd).ipv6(
                next,
                {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, uint8_t(pick({1, 2}))},
                {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, uint8_t(pick({1, 2}))});
            if (next == 0) f.u8(uint8_t(pick({6, 17, 44}))).u8(0).zeros(6);
            if (next == 44)
                f.u8(uint8_t(pick({6, 17}))).u8(0).u16(uint16_t(pick({0, 1, 0x100}))).u32(1);
            f.ports(sp, dp).zeros(16);
            break;
        }
        case 3:
            f.u16(uint16_t(pick({0x0806, 0x8035}))).u16(1).u16(0x0800).u8(6).u8(4).u16(1);
            f.zeros(6).u32(a).zeros(6).u32(b);
            break;
        case 4:
            f.u16(0x0800).ipv4(6, a, b).ports(sp, dp).zeros(16);
            break;
        default: {  // random bytes behind a plausible EtherType
            f.u16(uint16_t(pick({0x0800, 0x86dd, 0x0806})));
            for (int i = 0; i < 60; ++i)
                f.u8(uint8_t(rng()));
            break;
        }
    }
    // Cut some short anywhere.
    if (rng() % 4 == 0) return f.cut(rng() % (f.size() + 1));
    return f.data();
}

TEST(Predicate, NeverDropsABlockHoldingAPacketTheFilterAccepts) {
    const std::vector<std::string> filters = {
        "host 10.0.0.1",
        "src host 10.0.0.2",
        "dst host 192.0.2.1",
        "ip host 10.0.0.1",
        "arp host 10.0.0.2",
        "rarp host 10.0.0.1",
        "host 2001:db8::1",
        "ip6 dst host 2001:db8::2",
        "port 53",
        "src port 80",
        "tcp port 443",
        "udp dst port 1000",
        "sctp port 53",
        "portrange 50-90",
        "tcp",
        "udp",
        "sctp",
        "icmp",
        "ip6 proto 44",
        "ip proto 17",
        "vlan and host 10.0.0.1",
        "vlan 100 and port 80",
        "vlan and vlan and udp",
        "host 10.0.0.1 and port 53",
        "host 10.0.0.1 or port 443",
        "host 10.0.0.1 and host 10.0.0.2 and port 53 and port 80",
        "src host 10.0.0.1 and dst host 192.0.2.1 and src port 1000 and dst port 443",
        "ip6 and host 2001:db8::1 and host 2001:db8::2 and port 53 and port 443",
        "(tcp or udp) and not port 443",
        "ip[6:2] & 0x1fff != 0 and host 10.0.0.2",
        "net 10.0.0.0/31 and udp",
        "host 10.0.0.1 and (port 53 or tcp)",
        "greater 60 and udp",
    };
    std::mt19937_64 rng(11);
    std::vector<std::vector<std::byte>> packets;
    for (int i = 0; i < 6000; ++i)
        packets.push_back(random_packet(rng));
    std::vector<OneBlock> blocks;
    for (const auto& p : packets)
        blocks.emplace_back(p);
    for (const auto& f : filters) {
        Compiled c(f);
        ASSERT_TRUE(c.ok) << f;
        const Predicate pred = Predicate::from_bpf(c.prog);
        std::size_t accepted = 0, dropped = 0;
        for (std::size_t i = 0; i < packets.size(); ++i) {
            const bool match = pred.may_match(blocks[i].r);
            if (c.accepts(packets[i])) {
                ++accepted;
                ASSERT_TRUE(match) << "filter '" << f << "' accepts packet " << i
                                   << " but its block is not a candidate";
            } else {
                dropped += !match;
            }
        }
        EXPECT_GT(accepted, 0u) << f << ": the packets should exercise it";
        // And it is worth something: most non-matching blocks are dropped
        // when the filter names a key.
        if (pred.narrows()) {
            EXPECT_GT(dropped, 0u) << f;
        }
    }
}

TEST(Time, ParsesRfc3339AndUnixSeconds) {
    const uint64_t t = 1715695320ull * 1'000'000'000u;
    EXPECT_EQ(parse_time("2024-05-14T14:02:00Z"), t);
    EXPECT_EQ(parse_time("2024-05-14t14:02:00z"), t);
    EXPECT_EQ(parse_time("2024-05-14 16:02:00+02:00"), t);
    EXPECT_EQ(parse_time("2024-05-14T11:32:00-02:30"), t);
    EXPECT_EQ(parse_time("2024-05-14T14:02:00.5Z"), t + 500'000'000);
    EXPECT_EQ(parse_time("2024-05-14T14:02:00.000000001Z"), t + 1);
    EXPECT_EQ(parse_time("1715695320"), t);
    EXPECT_EQ(parse_time("1715695320.25"), t + 250'000'000);
    EXPECT_EQ(parse_time("1970-01-01T00:00:00Z"), 0u);
    EXPECT_EQ(parse_time("2024-02-29T00:00:00Z"), 1709164800ull * 1'000'000'000u);
    for (const char* bad :
         {"", "yesterday", "2024-05-14", "2024-05-14T14:02:00", "2024-05-14T14:02Z",
          "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-05-14T24:00:00Z",
          "2024-05-14T14:60:00Z", "2024-05-14T14:02:60Z", "2024-05-14T14:02:00.Z",
          "2024-05-14T14:02:00.1234567890Z", "2024-05-14T14:02:00+2:00", "1715695320.", "-5",
          "1715695320.5.5", "1969-12-31T23:59:59Z", "2024-05-14T14:02:00Z "}) {
        EXPECT_FALSE(parse_time(bad)) << bad;
    }
}

TEST(Time, FormatsRfc3339WithNanoseconds) {
    EXPECT_EQ(format_time(1715695320ull * 1'000'000'000u + 5), "2024-05-14T14:02:00.000000005Z");
    EXPECT_EQ(format_time(0), "1970-01-01T00:00:00.000000000Z");
    std::mt19937_64 rng(2);
    for (int i = 0; i < 10000; ++i) {
        const uint64_t ns = rng() % (4102444800ull * 1'000'000'000u);  // before 2100
        EXPECT_EQ(parse_time(format_time(ns)), ns);
    }
}

}  // namespace
}  // namespace sluice::index
