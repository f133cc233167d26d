// Internet checksum: every implementation equals the 16-bit reference for
// every length and alignment, and the burst verifier classifies packets the
// way RFC 791/793/768/8200 say.
#include <cstring>

#include "impls.hpp"
#include "packets.hpp"
#include <gtest/gtest.h>

#include "sluice/simd/checksum.hpp"
#include "sluice/simd/reference.hpp"

namespace sluice::simd {
namespace {

using testing::available_levels;
using testing::random_bytes;
using testing::sum_impls;

constexpr std::size_t kMaxLen = 4096;
constexpr std::size_t kAlignments = 64;

TEST(Checksum, FoldKnownValues) {
    EXPECT_EQ(cksum_fold(0), 0);
    EXPECT_EQ(cksum_fold(0xffff), 0xffff);
    EXPECT_EQ(cksum_fold(0x10000), 1);
    EXPECT_EQ(cksum_fold(0x1fffe), 0xffff);
    EXPECT_EQ(cksum_fold(0xffffffffffffffffull), 0xffff);
    // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2
    // (big-endian words), i.e. 0xf2dd in little-endian word order.
    const uint8_t rfc[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        force_level(level);
        EXPECT_EQ(raw_cksum(rfc, sizeof rfc), 0xf2dd) << level_name(level);
    }
}

TEST(Checksum, EveryImplementationEveryLengthEveryAlignment) {
    const auto data = random_bytes(kMaxLen, 11);
    std::vector<uint16_t> ref(kMaxLen + 1);
    for (std::size_t n = 0; n <= kMaxLen; ++n)
        ref[n] = cksum_fold(reference::cksum_add(data.data(), n, 0));
    std::vector<uint8_t> buf(kMaxLen + kAlignments);
    for (const auto& impl : sum_impls()) {
        if (!impl.available) continue;
        int bad = 0;
        for (std::size_t a = 0; a < kAlignments; ++a) {
            std::memcpy(buf.data() + a, data.data(), kMaxLen);
            for (std::size_t n = 0; n <= kMaxLen; ++n) {
                const uint16_t got = cksum_fold(impl.fn(buf.data() + a, n, 0));
                if (got != ref[n] && ++bad <= 5)
                    ADD_FAILURE() << impl.name << " len " << n << " offset " << a;
            }
        }
        EXPECT_EQ(bad, 0) << impl.name;
    }
}

TEST(Checksum, EveryForcedLevelThroughThePublicApi) {
    const auto data = random_bytes(kMaxLen, 12);
    std::vector<uint16_t> ref(kMaxLen + 1);
    for (std::size_t n = 0; n <= kMaxLen; ++n)
        ref[n] = cksum_fold(reference::cksum_add(data.data(), n, 0));
    std::vector<uint8_t> buf(kMaxLen + kAlignments);
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        ASSERT_TRUE(force_level(level));
        for (std::size_t a = 0; a < kAlignments; ++a) {
            std::memcpy(buf.data() + a, data.data(), kMaxLen);
            for (std::size_t n = 0; n <= kMaxLen; ++n)
                ASSERT_EQ(raw_cksum(buf.data() + a, n), ref[n])
                    << level_name(level) << " len " << n << " offset " << a;
        }
    }
}

TEST(Checksum, ExtremesDoNotOverflowTheLanes) {
    // All 0xff maximises every vector lane, all zeros minimises the offset
    // lanes; 3 MiB crosses every block boundary of the vector kernels.
    for (uint8_t fill : {uint8_t{0xff}, uint8_t{0x00}, uint8_t{0x80}}) {
        const std::vector<uint8_t> data(3 * 1024 * 1024 + 33, fill);
        const uint16_t want = cksum_fold(reference::cksum_add(data.data(), data.size(), 0));
        for (const auto& impl : sum_impls()) {
            if (!impl.available) continue;
            EXPECT_EQ(cksum_fold(impl.fn(data.data(), data.size(), 0)), want)
                << impl.name << " fill " << int{fill};
            EXPECT_EQ(cksum_fold(impl.fn(data.data() + 1, data.size() - 1, 5)),
                      cksum_fold(reference::cksum_add(data.data() + 1, data.size() - 1, 5)))
                << impl.name;
        }
    }
}

TEST(Checksum, ZeroOnlyForZeroData) {
    // 0x0000 and 0xffff are both one's-complement zero; DPDK (and we) return 0
    // only when there was nothing but zeros.
    const std::vector<uint8_t> zeros(100, 0);
    const std::vector<uint8_t> ffs(100, 0xff);
    for (const auto& impl : sum_impls()) {
        if (!impl.available) continue;
        EXPECT_EQ(cksum_fold(impl.fn(zeros.data(), zeros.size(), 0)), 0) << impl.name;
        EXPECT_EQ(cksum_fold(impl.fn(ffs.data(), ffs.size(), 0)), 0xffff) << impl.name;
    }
}

TEST(Checksum, ChainsOnEvenSplits) {
    const auto data = random_bytes(3000, 13);
    const uint16_t whole = raw_cksum(data.data(), data.size());
    for (std::size_t split : {0u, 2u, 64u, 1000u, 2998u, 3000u})
        EXPECT_EQ(cksum_fold(cksum_add(data.data() + split, data.size() - split,
                                       cksum_add(data.data(), split))),
                  whole);
}

// ---- burst verification --------------------------------------------------------

using testing::make_packet;
using testing::PacketSpec;

struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
    uint32_t len;  // captured length (may be < bytes.size())
    ChecksumResult want;
};

std::vector<Case> cases() {
    std::vector<Case> v;
    auto add = [&](const char* name, std::vector<uint8_t> b, ChecksumResult want,
                   uint32_t caplen = 0) {
        const uint32_t len = caplen ? caplen : static_cast<uint32_t>(b.size());
        v.push_back({name, std::move(b), len, want});
    };
    constexpr auto G = Verdict::Good, B = Verdict::Bad, N = Verdict::None, T = Verdict::Truncated;
    for (std::size_t payload : {0u, 1u, 2u, 3u, 17u, 100u, 1400u, 8900u}) {
        add("v4 tcp", make_packet({.v6 = false, .proto = 6, .payload = payload}), {G, G, 6});
        add("v4 udp", make_packet({.v6 = false, .proto = 17, .payload = payload}), {G, G, 17});
        add("v6 tcp", make_packet({.v6 = true, .proto = 6, .payload = payload}), {N, G, 6});
        add("v6 udp", make_packet({.v6 = true, .proto = 17, .payload = payload}), {N, G, 17});
    }
    add("v4 options", make_packet({.proto = 6, .payload = 50, .ip_options = 12}), {G, G, 6});
    add("v6 ext headers", make_packet({.v6 = true, .proto = 17, .payload = 50, .v6_ext = 2}),
        {N, G, 17});
    add("vlan", make_packet({.proto = 6, .payload = 40, .vlans = 2}), {G, G, 6});

    auto corrupt = [](std::vector<uint8_t> b, std::size_t at) {
        b[at] ^= 0x01;
        return b;
    };
    // The TTL is not part of the pseudo-header: only the header checksum sees it.
    add("v4 bad ip header", corrupt(make_packet({.proto = 6, .payload = 40}), 14 + 8), {B, G, 6});
    add("v4 bad tcp payload", corrupt(make_packet({.proto = 6, .payload = 40}), 14 + 20 + 20 + 5),
        {G, B, 6});
    add("v4 bad udp payload", corrupt(make_packet({.proto = 17, .payload = 40}), 14 + 20 + 8 + 39),
        {G, B, 17});
    add("v6 bad tcp payload",
        corrupt(make_packet({.v6 = true, .proto = 6, .payload = 40}), 14 + 40 + 20), {N, B, 6});
    add("v6 bad address", corrupt(make_packet({.v6 = true, .proto = 17, .payload = 40}), 14 + 8),
        {N, B, 17});
    add("v4 udp without checksum", make_packet({.proto = 17, .payload = 30, .udp_zero = true}),
        {G, N, 17});
    add("v6 udp zero checksum",
        make_packet({.v6 = true, .proto = 17, .payload = 30, .udp_zero = true}), {N, B, 17});
    add("v4 fragment", make_packet({.proto = 6, .payload = 40, .fragment = true}), {G, N, 6});
    add("v4 icmp", make_packet({.proto = 1, .payload = 40}), {G, N, 1});
    add("v6 fragment header",
        make_packet({.v6 = true, .proto = 17, .payload = 40, .v6_frag = true}), {N, N, 44});
    {
        auto b = make_packet({.proto = 6, .payload = 400});
        const auto n = static_cast<uint32_t>(b.size());
        add("v4 truncated payload", b, {G, T, 6}, n - 1);
        add("v4 truncated header", b, {T, N, 0}, 14 + 19);
    }
    {
        auto b = make_packet({.v6 = true, .proto = 6, .payload = 400});
        add("v6 truncated", b, {N, T, 6}, 14 + 60);
        add("v6 truncated header", b, {T, N, 0}, 14 + 39);
    }
    {
        auto b = make_packet({.proto = 6, .payload = 40});
        b[14] = 0x44;  // IHL 4: malformed
        add("v4 ihl < 5", b, {B, N, 6});
    }
    {
        auto b = make_packet({.proto = 6, .payload = 40});
        b[14 + 2] = 0, b[14 + 3] = 10;  // total length below the header
        testing::fix_ipv4_header(b, 14);
        add("v4 total length < ihl", b, {G, B, 6});
    }
    add("arp", make_packet({.ethertype = 0x0806, .payload = 28}), {N, N, 0});
    add("empty", {}, {N, N, 0});
    return v;
}

bool same(const ChecksumResult& a, const ChecksumResult& b) {
    return a.ip == b.ip && a.l4 == b.l4 && a.l4_proto == b.l4_proto;
}

std::string show(const ChecksumResult& r) {
    return "{ip " + std::to_string(int(r.ip)) + ", l4 " + std::to_string(int(r.l4)) + ", proto " +
           std::to_string(int(r.l4_proto)) + "}";
}

TEST(VerifyChecksums, ClassifiesEveryCaseAtEveryImplementation) {
    const auto cs = cases();
    std::vector<PacketView> views;
    for (const auto& c : cs) {
        const auto* d = reinterpret_cast<const std::byte*>(c.bytes.data());
        views.push_back({d, c.len, l3_offset_ethernet(d, c.len)});
        if (views.back().l3_offset == 0) views.back().l3_offset = static_cast<uint16_t>(c.len);
    }
    for (const auto& impl : testing::verify_impls()) {
        if (!impl.available) continue;
        std::vector<ChecksumResult> out(views.size());
        impl.fn(views.data(), views.size(), out.data());
        for (std::size_t i = 0; i < cs.size(); ++i)
            EXPECT_TRUE(same(out[i], cs[i].want))
                << impl.name << ": " << cs[i].name << " (case " << i << "): got " << show(out[i])
                << " want " << show(cs[i].want);
    }
}

TEST(VerifyChecksums, EveryForcedLevelThroughThePublicApi) {
    const auto cs = cases();
    std::vector<PacketView> views;
    for (const auto& c : cs) {
        const auto* d = reinterpret_cast<const std::byte*>(c.bytes.data());
        const uint16_t l3 = l3_offset_ethernet(d, c.len);
        views.push_back({d, c.len, l3 ? l3 : static_cast<uint16_t>(c.len)});
    }
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        force_level(level);
        std::vector<ChecksumResult> out(views.size());
        verify_checksums(views, out);
        for (std::size_t i = 0; i < cs.size(); ++i)
            EXPECT_TRUE(same(out[i], cs[i].want)) << level_name(level) << ": " << cs[i].name;
    }
}

TEST(VerifyChecksums, RandomCorruptionIsAlwaysCaught) {
    // Flipping any single bit of the IP header or the L4 segment (except the
    // fields the verifier does not cover: none for TCP) must turn Good to Bad
    // or change the classification.
    const auto good = make_packet({.proto = 6, .payload = 64});
    for (std::size_t byte = 14; byte < good.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            auto b = good;
            b[byte] ^= static_cast<uint8_t>(1u << bit);
            const PacketView v{reinterpret_cast<const std::byte*>(b.data()),
                               static_cast<uint32_t>(b.size()), 14};
            ChecksumResult r;
            verify_checksums({&v, 1}, {&r, 1});
            EXPECT_FALSE(r.ip == Verdict::Good && r.l4 == Verdict::Good)
                << "byte " << byte << " bit " << bit;
        }
    }
}

TEST(VerifyChecksums, NeverReadsPastTheCapturedLength) {
    // Every prefix of a packet, copied into an exactly-sized heap buffer so
    // ASan catches any over-read.
    for (bool v6 : {false, true}) {
        const auto full = make_packet({.v6 = v6, .proto = 17, .payload = 90, .v6_ext = v6 ? 1 : 0});
        for (std::size_t n = 0; n <= full.size(); ++n) {
            std::unique_ptr<uint8_t[]> b(new uint8_t[n ? n : 1]);
            std::memcpy(b.get(), full.data(), n);
            const PacketView v{reinterpret_cast<const std::byte*>(b.get()),
                               static_cast<uint32_t>(n), 14};
            ChecksumResult r;
            verify_checksums({&v, 1}, {&r, 1});
            if (n == full.size()) {
                EXPECT_EQ(r.l4, Verdict::Good);
            } else {
                EXPECT_NE(r.l4, Verdict::Good) << n;
            }
        }
    }
}

TEST(L3Offset, Ethernet) {
    auto off = [](std::vector<uint8_t> b) {
        return l3_offset_ethernet(reinterpret_cast<const std::byte*>(b.data()), b.size());
    };
    EXPECT_EQ(off(make_packet({.proto = 6, .payload = 1})), 14);
    EXPECT_EQ(off(make_packet({.v6 = true, .proto = 6, .payload = 1})), 14);
    EXPECT_EQ(off(make_packet({.proto = 6, .payload = 1, .vlans = 1})), 18);
    EXPECT_EQ(off(make_packet({.proto = 6, .payload = 1, .vlans = 2})), 22);
    EXPECT_EQ(off(make_packet({.ethertype = 0x0806, .payload = 28})), 0);
    EXPECT_EQ(off({1, 2, 3}), 0);
}

}  // namespace
}  // namespace sluice::simd
