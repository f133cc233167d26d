// Software RSS without EAL: the tuple taken from each kind of frame, the
// hash a NIC would compute for it (Microsoft's RSS verification vectors),
// the symmetric key, and the redirection table.
#include <array>
#include <cstring>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/dataplane/soft_rss.hpp"

using sluice::dataplane::rss_tuple;
using sluice::dataplane::SoftRss;

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}

// Ethernet (with `vlans` 802.1Q tags) + IPv4 + 8 bytes of L4 header.
std::vector<std::byte> ipv4(std::array<int, 4> src, std::array<int, 4> dst, int proto, int sport,
                            int dport, int vlans = 0, int frag = 0) {
    std::vector<std::byte> f(12, std::byte{0x02});
    for (int i = 0; i < vlans; ++i) {
        auto tag = bytes({0x81, 0x00, 0x00, 0x10 + i});
        f.insert(f.end(), tag.begin(), tag.end());
    }
    auto rest = bytes({0x08,
                       0x00,
                       0x45,
                       0,
                       0,
                       48,
                       0,
                       1,
                       (frag >> 8) & 0xff,
                       frag & 0xff,
                       64,
                       proto,
                       0,
                       0,
                       src[0],
                       src[1],
                       src[2],
                       src[3],
                       dst[0],
                       dst[1],
                       dst[2],
                       dst[3],
                       sport >> 8,
                       sport & 0xff,
                       dport >> 8,
                       dport & 0xff,
                       0,
                       0,
                       0,
                       0});
    f.insert(f.end(), rest.begin(), rest.end());
    f.resize(f.size() + 20);
    return f;
}

std::vector<std::byte> ipv6(const std::array<int, 16>& src, const std::array<int, 16>& dst,
                            int next, int sport, int dport) {
    std::vector<std::byte> f(12, std::byte{0x02});
    auto head = bytes({0x86, 0xdd, 0x60, 0, 0, 0, 0, 28, next, 64});
    f.insert(f.end(), head.begin(), head.end());
    for (int b : src)
        f.push_back(static_cast<std::byte>(b));
    for (int b : dst)
        f.push_back(static_cast<std::byte>(b));
    auto ports = bytes({sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 0, 0, 0});
    f.insert(f.end(), ports.begin(), ports.end());
    f.resize(f.size() + 20);
    return f;
}

constexpr std::array<int, 16> kV6Src = {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff,
                                        0,    0,    0,    0,    0,    0,    0,    7};
constexpr std::array<int, 16> kV6Dst = {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03,
                                        0,    0,    0,    0,    0,    0,    0,    1};

TEST(SoftRss, TupleOfEachKindOfFrame) {
    std::byte t[36];
    auto tcp = ipv4({66, 9, 149, 187}, {161, 142, 100, 80}, 6, 2794, 1766);
    ASSERT_EQ(rss_tuple(tcp.data(), tcp.size(), t), 12u);
    EXPECT_EQ(std::memcmp(t, tcp.data() + 26, 8), 0);      // addresses
    EXPECT_EQ(std::memcmp(t + 8, tcp.data() + 34, 4), 0);  // ports
    auto udp2 = ipv4({1, 2, 3, 4}, {5, 6, 7, 8}, 17, 53, 53, 2);
    EXPECT_EQ(rss_tuple(udp2.data(), udp2.size(), t), 12u);  // behind two VLAN tags
    auto icmp = ipv4({1, 2, 3, 4}, {5, 6, 7, 8}, 1, 0, 0);
    EXPECT_EQ(rss_tuple(icmp.data(), icmp.size(), t), 8u);
    auto fragment = ipv4({1, 2, 3, 4}, {5, 6, 7, 8}, 6, 1, 2, 0, 0x2000);  // more fragments
    EXPECT_EQ(rss_tuple(fragment.data(), fragment.size(), t), 8u);
    auto later = ipv4({1, 2, 3, 4}, {5, 6, 7, 8}, 17, 1, 2, 0, 0x0010);  // offset 128
    EXPECT_EQ(rss_tuple(later.data(), later.size(), t), 8u);
    auto v6 = ipv6(kV6Src, kV6Dst, 6, 2794, 1766);
    EXPECT_EQ(rss_tuple(v6.data(), v6.size(), t), 36u);
    auto v6other = ipv6(kV6Src, kV6Dst, 58, 0, 0);  // ICMPv6
    EXPECT_EQ(rss_tuple(v6other.data(), v6other.size(), t), 32u);
    auto arp = bytes({2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0x08, 0x06, 0, 1});
    EXPECT_EQ(rss_tuple(arp.data(), arp.size(), t), 0u);
    // Every prefix of a frame: never a read past its end (ASan), at most what fits.
    for (std::size_t len = 0; len <= tcp.size(); ++len) {
        std::vector<std::byte> cut(tcp.begin(), tcp.begin() + static_cast<std::ptrdiff_t>(len));
        const std::size_t n = rss_tuple(cut.data(), cut.size(), t);
        EXPECT_TRUE(n == 0 || n == 8 || n == 12) << len;
        if (len < 34) {
            EXPECT_EQ(n, 0u) << len;
        }
    }
}

// Microsoft's "Verifying the RSS hash calculation" vectors, default key.
TEST(SoftRss, HashesAsANicDoes) {
    const SoftRss rss(4, false);
    auto a = ipv4({66, 9, 149, 187}, {161, 142, 100, 80}, 6, 2794, 1766);
    EXPECT_EQ(rss.hash(a.data(), a.size()), 0x51ccc178u);
    auto a_ip = ipv4({66, 9, 149, 187}, {161, 142, 100, 80}, 1, 0, 0);
    EXPECT_EQ(rss.hash(a_ip.data(), a_ip.size()), 0x323e8fc2u);
    auto b = ipv4({199, 92, 111, 2}, {65, 69, 140, 83}, 17, 14230, 4739);
    EXPECT_EQ(rss.hash(b.data(), b.size()), 0xc626b0eau);
    auto v6 = ipv6(kV6Src, kV6Dst, 6, 2794, 1766);
    EXPECT_EQ(rss.hash(v6.data(), v6.size()), 0x40207d3du);
    auto v6ip = ipv6(kV6Src, kV6Dst, 58, 0, 0);
    EXPECT_EQ(rss.hash(v6ip.data(), v6ip.size()), 0x2cc18cd5u);
    auto arp = bytes({2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0x08, 0x06, 0, 1});
    EXPECT_EQ(rss.hash(arp.data(), arp.size()), 0u);
    EXPECT_EQ(rss.queue_of_hash(0), 0u);  // frames without a tuple go to queue 0
}

TEST(SoftRss, SymmetricKeyKeepsBothDirectionsTogether) {
    const SoftRss sym(8, true);
    const SoftRss plain(8, false);
    int differ = 0;
    for (int i = 0; i < 200; ++i) {
        auto fwd = ipv4({10, 0, i, 1}, {192, 168, 1, i}, i % 2 ? 6 : 17, 1024 + i * 7, 80 + i);
        auto rev = ipv4({192, 168, 1, i}, {10, 0, i, 1}, i % 2 ? 6 : 17, 80 + i, 1024 + i * 7);
        EXPECT_EQ(sym.hash(fwd.data(), fwd.size()), sym.hash(rev.data(), rev.size())) << i;
        differ += plain.hash(fwd.data(), fwd.size()) != plain.hash(rev.data(), rev.size());
    }
    EXPECT_GT(differ, 150);  // the default key is not symmetric
}

TEST(SoftRss, TableDealsHashesRoundRobin) {
    for (uint16_t queues : {1, 2, 3, 5, 64}) {
        const SoftRss rss(queues, false);
        std::map<uint16_t, int> count;
        for (uint32_t h = 0; h < SoftRss::kTableSize; ++h) {
            EXPECT_EQ(rss.queue_of_hash(h), h % queues);
            EXPECT_EQ(rss.queue_of_hash(h + 7 * SoftRss::kTableSize), h % queues);
            ++count[rss.queue_of_hash(h)];
        }
        EXPECT_EQ(count.size(), queues);
    }
}

}  // namespace
