// The kernels give DPDK's answers: rte_hash_crc, rte_raw_cksum,
// rte_ipv4_cksum, rte_ipv4/6_udptcp_cksum and rte_softrss. These are DPDK's
// inline header functions; no EAL is started. Not in the 'asan' suite: DPDK's
// rte_hash_crc reads through misaligned uint64_t pointers, which UBSan flags.
#include <cstring>

#include "impls.hpp"
#include "packets.hpp"
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_thash.h>

#include "sluice/simd/checksum.hpp"
#include "sluice/simd/crc32c.hpp"
#include "sluice/simd/toeplitz.hpp"

namespace sluice::simd {
namespace {

using testing::available_levels;
using testing::random_bytes;

TEST(DpdkEqual, HashCrc) {
    const auto data = random_bytes(4096 + 64, 31);
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        ASSERT_TRUE(force_level(level));
        for (std::size_t a : {0u, 1u, 3u, 8u, 13u}) {
            for (std::size_t n = 0; n <= 4096; ++n) {
                const uint32_t init = static_cast<uint32_t>(n * 2654435761u);
                ASSERT_EQ(crc32c_raw(data.data() + a, n, init),
                          rte_hash_crc(data.data() + a, static_cast<uint32_t>(n), init))
                    << level_name(level) << " len " << n << " offset " << a;
            }
        }
    }
}

TEST(DpdkEqual, RawCksum) {
    auto data = random_bytes(4096 + 64, 32);
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        ASSERT_TRUE(force_level(level));
        for (std::size_t a : {0u, 1u, 2u, 7u}) {
            for (std::size_t n = 0; n <= 4096; ++n)
                ASSERT_EQ(raw_cksum(data.data() + a, n), rte_raw_cksum(data.data() + a, n))
                    << level_name(level) << " len " << n << " offset " << a;
        }
        const std::vector<uint8_t> zeros(1000, 0), ffs(1000, 0xff);
        EXPECT_EQ(raw_cksum(zeros.data(), 1000), rte_raw_cksum(zeros.data(), 1000));
        EXPECT_EQ(raw_cksum(ffs.data(), 1000), rte_raw_cksum(ffs.data(), 1000));
    }
}

TEST(DpdkEqual, Ipv4AndL4Checksums) {
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        ASSERT_TRUE(force_level(level));
        for (uint64_t seed = 0; seed < 300; ++seed) {
            const bool v6 = seed % 3 == 0;
            const uint8_t proto = seed % 2 ? 6 : 17;
            auto b = testing::make_packet(
                {.v6 = v6, .proto = proto, .payload = seed * 7 % 1500, .seed = seed});
            if (seed % 5 == 0) b[b.size() - 1] ^= 0x40;  // some with a wrong checksum
            if (seed % 7 == 0) {                         // some with the field zeroed
                const std::size_t l4 = 14 + (v6 ? 40 : 20);
                b[l4 + (proto == 6 ? 16 : 6)] = b[l4 + (proto == 6 ? 17 : 7)] = 0;
            }
            uint8_t* ip = b.data() + 14;
            uint8_t* l4 = ip + (v6 ? 40 : 20);
            ChecksumResult r;
            const PacketView view{reinterpret_cast<const std::byte*>(b.data()),
                                  static_cast<uint32_t>(b.size()), 14};
            verify_checksums({&view, 1}, {&r, 1});
            if (!v6) {
                const auto* h = reinterpret_cast<const rte_ipv4_hdr*>(ip);
                EXPECT_EQ(ipv4_header_cksum(ip), rte_ipv4_cksum(h));
                EXPECT_EQ(ipv4_udptcp_cksum(ip, l4), rte_ipv4_udptcp_cksum(h, l4)) << seed;
                const bool dpdk_ok = rte_ipv4_udptcp_cksum_verify(h, l4) == 0;
                if (r.l4 != Verdict::None) {  // UDP without checksum: DPDK has no such case
                    EXPECT_EQ(r.l4 == Verdict::Good, dpdk_ok) << seed;
                }
                EXPECT_EQ(r.ip == Verdict::Good, rte_ipv4_cksum(h) == 0);
            } else {
                const auto* h = reinterpret_cast<const rte_ipv6_hdr*>(ip);
                EXPECT_EQ(ipv6_udptcp_cksum(ip, l4), rte_ipv6_udptcp_cksum(h, l4)) << seed;
                EXPECT_EQ(r.l4 == Verdict::Good, rte_ipv6_udptcp_cksum_verify(h, l4) == 0) << seed;
            }
        }
    }
}

TEST(DpdkEqual, SoftRss) {
    const std::vector<std::vector<uint8_t>> keys = {
        {kDefaultRssKey.begin(), kDefaultRssKey.end()},
        {kSymmetricRssKey.begin(), kSymmetricRssKey.end()},
        random_bytes(40, 41),
        random_bytes(52, 42),
    };
    for (const auto& key : keys) {
        const ToeplitzHash h(key);
        for (Level level : available_levels()) {
            testing::LevelGuard guard;
            ASSERT_TRUE(force_level(level));
            for (uint64_t seed = 0; seed < 200; ++seed) {
                const auto r = random_bytes(36, 1000 + seed);
                uint32_t words[9];
                std::memcpy(words, r.data(), 36);
                for (uint32_t n : {1u, 2u, 3u, 8u, 9u}) {
                    // DPDK's reads key words j and j + 1: n words need 4n + 4 key bytes.
                    if (4 * n + 4 > key.size()) continue;
                    EXPECT_EQ(h.hash_words(words, n), rte_softrss(words, n, key.data()))
                        << level_name(level) << " words " << n;
                    // The byte form of the same tuple (network order) agrees.
                    uint32_t be[9];
                    for (uint32_t i = 0; i < n; ++i)
                        be[i] = htonl(words[i]);
                    EXPECT_EQ(h.hash({reinterpret_cast<const std::byte*>(be), 4 * n}),
                              rte_softrss(words, n, key.data()));
                }
            }
        }
    }
}

}  // namespace
}  // namespace sluice::simd
