// tunnel::decapsulate on generated traffic (every tunnel sluice-pcapgen makes,
// checked against the same traffic unwrapped) and on hand-made headers that
// break each rule; cut at every length, it never reads past what it is given.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "sluice/tunnel/decap.hpp"

using namespace sluice::tunnel;

namespace {

using Bytes = std::vector<std::byte>;

std::string build_root() {
    const char* b = std::getenv("SLUICE_BUILD_ROOT");
    return b ? b : "build";
}

std::vector<Bytes> read_pcap(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<Bytes> out;
    uint32_t gh[6];
    if (!f.read(reinterpret_cast<char*>(gh), sizeof gh)) return out;
    uint32_t h[4];
    while (f.read(reinterpret_cast<char*>(h), sizeof h)) {
        Bytes b(h[2]);
        f.read(reinterpret_cast<char*>(b.data()), h[2]);
        out.push_back(std::move(b));
    }
    return out;
}

std::vector<Bytes> generate(const std::string& args) {
    const std::string path = "/tmp/decap-" + std::to_string(getpid()) + ".pcap";
    const std::string cmd = build_root() + "/tools/sluice-pcapgen --out " + path + " " + args;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto r = read_pcap(path);
    std::remove(path.c_str());
    return r;
}

unsigned get16(const Bytes& b, std::size_t at) {
    return static_cast<unsigned>(b[at]) << 8 | static_cast<unsigned>(b[at + 1]);
}

// The IP datagram of a plain Ethernet frame, without Ethernet padding.
Bytes ip_of(const Bytes& frame) {
    const std::size_t len =
        (static_cast<unsigned>(frame[14]) >> 4) == 6 ? 40 + get16(frame, 18) : get16(frame, 16);
    return Bytes(frame.begin() + 14, frame.begin() + 14 + static_cast<std::ptrdiff_t>(len));
}

// What "strip" writes of a tunnelled frame.
Bytes stripped(Bytes frame, const Decap& d) {
    put_inner_ethernet(frame.data(), d);
    return Bytes(frame.begin() + d.frame_offset(), frame.end());
}

struct Kind {
    const char* name;
    uint16_t layers;
    bool l3;  // the tunnel carries IP, not an Ethernet frame
};

class Generated : public ::testing::TestWithParam<Kind> {};

// Every record of a tunnelled capture peels to the packet the same seed
// writes without the tunnel: the same Ethernet frame, or (GRE, MPLS) the
// same IP datagram under the outer MACs.
TEST_P(Generated, PeelsToTheSameTrafficUnwrapped) {
    const std::string opts = "--packets 1500 --seed 21 --ipv6-percent 30 --jumbo-percent 2";
    const auto wrapped = generate(opts + " --tunnel " + GetParam().name);
    const auto plain = generate(opts);
    ASSERT_EQ(wrapped.size(), 1500u);
    ASSERT_EQ(plain.size(), wrapped.size());
    for (std::size_t i = 0; i < wrapped.size(); ++i) {
        const Decap d = decapsulate(wrapped[i].data(), wrapped[i].size());
        ASSERT_EQ(d.status, Status::Peeled) << i;
        EXPECT_EQ(d.layers, GetParam().layers) << i;
        const Bytes inner = stripped(wrapped[i], d);
        if (GetParam().l3) {
            ASSERT_NE(d.inner_ethertype, 0) << i;
            // The outer MACs, the inner EtherType, then the datagram (MPLS
            // frames may carry Ethernet padding after it).
            EXPECT_EQ(std::memcmp(inner.data(), wrapped[i].data(), 12), 0) << i;
            EXPECT_EQ(get16(inner, 12), get16(plain[i], 12)) << i;
            const Bytes ip = ip_of(plain[i]);
            ASSERT_GE(inner.size(), 14 + ip.size()) << i;
            EXPECT_EQ(Bytes(inner.begin() + 14, inner.begin() + 14 + static_cast<long>(ip.size())),
                      ip)
                << i;
        } else {
            EXPECT_EQ(inner, plain[i]) << i;
        }
        // Nothing is peeled from the unwrapped packet.
        EXPECT_EQ(decapsulate(plain[i].data(), plain[i].size()).status, Status::Plain) << i;
    }
}

INSTANTIATE_TEST_SUITE_P(
    EveryTunnel, Generated,
    ::testing::Values(Kind{"vlan", layer::kVlan, true}, Kind{"qinq", layer::kVlan, true},
                      Kind{"mpls", layer::kMpls, true}, Kind{"gre", layer::kGre, true},
                      Kind{"gre-key", layer::kGre, true}, Kind{"erspan2", layer::kErspan2, false},
                      Kind{"erspan3", layer::kErspan3, false}, Kind{"vxlan", layer::kVxlan, false},
                      Kind{"geneve", layer::kGeneve, false}),
    [](const auto& info) {
        std::string n = info.param.name;
        for (char& c : n)
            if (c == '-') c = '_';
        return n;
    });

// ERSPAN's fields as sluice-pcapgen writes them: type III carries a
// timestamp in the session's granularity and the direction.
TEST(Erspan, SessionAndTimestampAreRead) {
    for (const char* kind : {"erspan2", "erspan3"}) {
        const auto frames = generate(std::string("--packets 200 --seed 6 --tunnel ") + kind);
        ASSERT_EQ(frames.size(), 200u);
        for (const Bytes& f : frames) {
            const Decap d = decapsulate(f.data(), f.size());
            ASSERT_EQ(d.status, Status::Peeled);
            // ERSPAN session ids are 10 bits; pcapgen never uses 0.
            EXPECT_GT(d.erspan.session, 0);
            EXPECT_LT(d.erspan.session, 1024);
            // The header sits after the outer Ethernet, IPv4 and a GRE header
            // with a sequence number: 14 + 20 + 8.
            const uint32_t w0 = static_cast<uint32_t>(get16(f, 42)) << 16 | get16(f, 44);
            EXPECT_EQ(d.erspan.session, w0 & 0x3ff);
            if (std::string(kind) == "erspan2") {
                EXPECT_EQ(d.erspan.type, 2);
                EXPECT_GT(d.erspan.index, 0u);
            } else {
                EXPECT_EQ(d.erspan.type, 3);
                EXPECT_EQ(d.erspan.timestamp,
                          static_cast<uint32_t>(get16(f, 46)) << 16 | get16(f, 48));
                EXPECT_LE(d.erspan.granularity, 1);
            }
        }
    }
}

// A capture cut at every length: nothing is read past it (ASan watches), and
// a cut inside a tunnel header is reported as such.
TEST(Truncation, EveryPrefixOfEveryTunnel) {
    const auto frames = generate("--packets 400 --seed 12 --tunnel mix --ipv6-percent 20");
    ASSERT_EQ(frames.size(), 400u);
    for (const Bytes& f : frames) {
        const Decap whole = decapsulate(f.data(), f.size());
        ASSERT_EQ(whole.status, Status::Peeled);
        // Every tunnel header is whole from this length on: for an inner
        // Ethernet frame, with its header; after MPLS, with the first byte
        // (its version tells IPv4 from IPv6).
        const std::size_t whole_from = whole.inner_ethertype == 0 ? whole.inner_offset + 14u
                                       : (whole.layers & layer::kMpls) != 0
                                           ? whole.inner_offset + 1u
                                           : whole.inner_offset;
        for (std::size_t len = 0; len < f.size(); ++len) {
            // A copy of exactly `len` bytes on the heap: ASan sees any read past it.
            std::unique_ptr<std::byte[]> cut(new std::byte[len ? len : 1]);
            std::memcpy(cut.get(), f.data(), len);
            const Decap d = decapsulate(cut.get(), len);
            if (len >= whole_from) {
                EXPECT_EQ(d.status, Status::Peeled) << len;
                EXPECT_EQ(d.inner_offset, whole.inner_offset) << len;
            } else {
                EXPECT_NE(d.status, Status::Peeled) << len;
                EXPECT_NE(d.status, Status::Malformed) << len;
            }
        }
    }
}

// ---- hand-made headers ----------------------------------------------------------

Bytes ethernet(uint16_t type) {
    Bytes b(14);
    for (int i = 0; i < 12; ++i)
        b[i] = std::byte(i + 1);
    b[12] = std::byte(type >> 8);
    b[13] = std::byte(type & 0xff);
    return b;
}
void put(Bytes& b, std::initializer_list<int> bytes) {
    for (int x : bytes)
        b.push_back(std::byte(x));
}
// An outer IPv4 header (no options, not a fragment) carrying `proto`.
void ipv4(Bytes& b, int proto) {
    put(b, {0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2});
}
void udp(Bytes& b, int dport) {
    put(b, {0x12, 0x34, dport >> 8, dport & 0xff, 0, 0, 0, 0});
}
// An inner Ethernet frame with an IPv4 header and a few bytes.
void inner_frame(Bytes& b) {
    const Bytes e = ethernet(0x0800);
    b.insert(b.end(), e.begin(), e.end());
    ipv4(b, 6);
    put(b, {1, 2, 3, 4, 5, 6, 7, 8});
}

Decap run(const Bytes& b) {
    return decapsulate(b.data(), b.size());
}

TEST(Headers, GreReservedBitsAndVersions) {
    Bytes ok = ethernet(0x0800);
    ipv4(ok, 47);
    put(ok, {0x20, 0x00, 0x65, 0x58, 0, 0, 0, 7});  // key, Ethernet
    inner_frame(ok);
    EXPECT_EQ(run(ok).status, Status::Peeled);
    EXPECT_EQ(run(ok).inner_offset, 14 + 20 + 8);

    Bytes reserved = ok;
    reserved[34] = std::byte{0x40};  // the routing bit (RFC 1701), reserved since RFC 2784
    EXPECT_EQ(run(reserved).status, Status::Malformed);

    Bytes pptp = ok;
    pptp[35] = std::byte{0x01};  // version 1: PPTP's GRE, not a tunnel to peel
    EXPECT_EQ(run(pptp).status, Status::Plain);

    Bytes other = ok;
    other[36] = std::byte{0x88};  // PPP over GRE: left alone
    other[37] = std::byte{0x0b};
    EXPECT_EQ(run(other).status, Status::Plain);
}

TEST(Headers, VxlanNeedsItsIFlag) {
    Bytes b = ethernet(0x0800);
    ipv4(b, 17);
    udp(b, 4789);
    put(b, {0x08, 0, 0, 0, 0, 0, 42, 0});
    inner_frame(b);
    EXPECT_EQ(run(b).status, Status::Peeled);
    EXPECT_EQ(run(b).layers, layer::kVxlan);
    b[42] = std::byte{0};
    EXPECT_EQ(run(b).status, Status::Malformed);
}

TEST(Headers, GeneveVersionOptionsAndPayload) {
    Bytes b = ethernet(0x86dd);
    put(b, {0x60, 0, 0, 0, 0, 0, 17, 64});
    b.resize(b.size() + 32);  // addresses
    udp(b, 6081);
    put(b, {0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 0x01, 0x02, 0x80, 0x01});  // one 4-byte option word
    inner_frame(b);
    const Decap d = run(b);
    ASSERT_EQ(d.status, Status::Peeled);
    EXPECT_EQ(d.inner_offset, 14 + 40 + 8 + 12);

    Bytes version = b;
    version[62] = std::byte{0x41};  // version 1
    EXPECT_EQ(run(version).status, Status::Malformed);

    Bytes options = b;
    options[62] = std::byte{0x3f};  // 252 bytes of options: past the packet
    EXPECT_EQ(run(options).status, Status::Truncated);

    Bytes payload = b;
    payload[64] = std::byte{0x88};  // protocol 0x8847: not Ethernet, not IP
    payload[65] = std::byte{0x47};
    EXPECT_EQ(run(payload).status, Status::Unknown);
}

TEST(Headers, MplsStackAndPayload) {
    Bytes b = ethernet(0x8847);
    for (int i = 0; i < kMaxMplsLabels; ++i)
        put(b, {0, 0x10, i + 1 == kMaxMplsLabels ? 0x01 : 0x00, 64});
    ipv4(b, 6);
    EXPECT_EQ(run(b).status, Status::Peeled);
    EXPECT_EQ(run(b).inner_ethertype, 0x0800);

    Bytes deep = ethernet(0x8847);
    for (int i = 0; i <= kMaxMplsLabels; ++i)
        put(deep, {0, 0x10, i == kMaxMplsLabels ? 0x01 : 0x00, 64});
    ipv4(deep, 6);
    EXPECT_EQ(run(deep).status, Status::Malformed);

    Bytes pw = ethernet(0x8847);
    put(pw, {0, 0x10, 0x01, 64, 0, 0, 0, 0});  // a pseudowire control word: not IP
    EXPECT_EQ(run(pw).status, Status::Unknown);
}

TEST(Headers, VlanTagsAreBounded) {
    Bytes b = ethernet(0x88a8);
    for (int i = 0; i < kMaxVlanTags; ++i)
        put(b, {0, 10 + i, i + 1 == kMaxVlanTags ? 0x08 : 0x81, 0x00});
    ipv4(b, 6);
    const Decap d = run(b);
    ASSERT_EQ(d.status, Status::Peeled);
    EXPECT_EQ(d.inner_offset, 14 + 4 * kMaxVlanTags);
    const Bytes s = stripped(b, d);
    EXPECT_EQ(get16(s, 12), 0x0800u);
    EXPECT_EQ(s[14], std::byte{0x45});

    Bytes deep = ethernet(0x8100);
    for (int i = 0; i <= kMaxVlanTags; ++i)
        put(deep, {0, 10, i == kMaxVlanTags ? 0x08 : 0x81, 0x00});
    ipv4(deep, 6);
    EXPECT_EQ(run(deep).status, Status::Malformed);
}

TEST(Headers, ErspanVersionsAndFrameType) {
    Bytes b = ethernet(0x0800);
    ipv4(b, 47);
    put(b, {0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1});          // GRE: sequence, ERSPAN III
    put(b, {0x20, 0x05, 0x00, 0x2a});                      // Ver 2, VLAN 5, session 42
    put(b, {0x12, 0x34, 0x56, 0x78});                      // timestamp
    put(b, {0x00, 0x00, (3 << 4) >> 8, (3 << 4) | 0x0b});  // hw id 3, egress, gra 1, O
    put(b, {0, 0, 0, 0, 0, 0, 0, 0});                      // platform subheader
    inner_frame(b);
    const Decap d = run(b);
    ASSERT_EQ(d.status, Status::Peeled);
    EXPECT_EQ(d.inner_offset, 14 + 20 + 8 + 12 + 8);
    EXPECT_EQ(d.erspan.type, 3);
    EXPECT_EQ(d.erspan.session, 42);
    EXPECT_EQ(d.erspan.vlan, 5);
    EXPECT_EQ(d.erspan.timestamp, 0x12345678u);
    EXPECT_EQ(d.erspan.hardware_id, 3);
    EXPECT_TRUE(d.erspan.egress);
    EXPECT_EQ(d.erspan.granularity, 1);

    Bytes version = b;
    version[42] = std::byte{0x10};  // says type II inside a type III GRE protocol
    EXPECT_EQ(run(version).status, Status::Malformed);

    Bytes ip = b;
    ip[52] = std::byte{0x08};  // frame type 2: an IP packet, not an Ethernet frame
    EXPECT_EQ(run(ip).status, Status::Unknown);

    // Type I: no sequence number, no ERSPAN header.
    Bytes one = ethernet(0x0800);
    ipv4(one, 47);
    put(one, {0x00, 0x00, 0x88, 0xbe});
    inner_frame(one);
    const Decap d1 = run(one);
    ASSERT_EQ(d1.status, Status::Peeled);
    EXPECT_EQ(d1.erspan.type, 1);
    EXPECT_EQ(d1.inner_offset, 14 + 20 + 4);
}

TEST(Headers, FragmentsAndTunnelsInsideTunnels) {
    Bytes b = ethernet(0x0800);
    ipv4(b, 17);
    b[20] = std::byte{0x20};  // more fragments: no UDP header to trust
    udp(b, 4789);
    put(b, {0x08, 0, 0, 0, 0, 0, 42, 0});
    inner_frame(b);
    EXPECT_EQ(run(b).status, Status::Plain);

    // VXLAN inside GRE inside a VLAN: every layer peeled, the innermost frame found.
    Bytes n = ethernet(0x8100);
    put(n, {0, 7, 0x08, 0x00});
    ipv4(n, 47);
    put(n, {0x00, 0x00, 0x08, 0x00});  // GRE carrying IPv4
    ipv4(n, 17);
    udp(n, 4789);
    put(n, {0x08, 0, 0, 0, 0, 0, 42, 0});
    inner_frame(n);
    const Decap d = run(n);
    ASSERT_EQ(d.status, Status::Peeled);
    EXPECT_EQ(d.layers, layer::kVlan | layer::kGre | layer::kVxlan);
    EXPECT_EQ(d.inner_ethertype, 0);
    EXPECT_EQ(d.inner_offset, 18 + 20 + 4 + 20 + 8 + 8);

    // A tunnel nested deeper than kMaxLayers.
    Bytes deep = ethernet(0x0800);
    for (int i = 0; i <= kMaxLayers; ++i) {
        ipv4(deep, 47);
        put(deep, {0x00, 0x00, 0x08, 0x00});
    }
    ipv4(deep, 6);
    EXPECT_EQ(run(deep).status, Status::Malformed);
}

}  // namespace
