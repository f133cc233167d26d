// Toeplitz: Microsoft's RSS verification vectors, every implementation equal
// to the bit-at-a-time reference, and the symmetric key's property.
#include <array>
#include <cstring>
#include <stdexcept>

#include "impls.hpp"
#include "toeplitz_tables.hpp"
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "sluice/simd/reference.hpp"
#include "sluice/simd/toeplitz.hpp"

namespace sluice::simd {
namespace {

using testing::available_levels;
using testing::random_bytes;

std::vector<std::byte> v4_tuple(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    std::vector<std::byte> t(12);
    inet_pton(AF_INET, src, t.data());
    inet_pton(AF_INET, dst, t.data() + 4);
    const uint16_t ports[2] = {htons(sport), htons(dport)};
    std::memcpy(t.data() + 8, ports, 4);
    return t;
}

std::vector<std::byte> v6_tuple(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    std::vector<std::byte> t(36);
    inet_pton(AF_INET6, src, t.data());
    inet_pton(AF_INET6, dst, t.data() + 16);
    const uint16_t ports[2] = {htons(sport), htons(dport)};
    std::memcpy(t.data() + 32, ports, 4);
    return t;
}

struct Vector {
    std::vector<std::byte> tuple;
    uint32_t with_ports, addresses_only;
};

// From Microsoft's "Verifying the RSS Hash Calculation" (default key).
std::vector<Vector> ms_vectors() {
    return {
        {v4_tuple("66.9.149.187", 2794, "161.142.100.80", 1766), 0x51ccc178, 0x323e8fc2},
        {v4_tuple("199.92.111.2", 14230, "65.69.140.83", 4739), 0xc626b0ea, 0xd718262a},
        {v4_tuple("24.19.198.95", 12898, "12.22.207.184", 38024), 0x5c2b394a, 0xd2d0a5de},
        {v4_tuple("38.27.205.30", 48228, "209.142.163.6", 2217), 0xafc7327f, 0x82989176},
        {v4_tuple("153.39.163.191", 44251, "202.188.127.2", 1303), 0x10e828a2, 0x5d1809c5},
        {v6_tuple("3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766), 0x40207d3d,
         0x2cc18cd5},
        {v6_tuple("3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739), 0xdde51bbf,
         0x0f0c461c},
        {v6_tuple("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024),
         0x02d1feef, 0x4b61e985},
    };
}

TEST(Toeplitz, MicrosoftVectorsAtEveryLevel) {
    const ToeplitzHash h(kDefaultRssKey);
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        ASSERT_TRUE(force_level(level));
        for (const auto& v : ms_vectors()) {
            const std::span<const std::byte> t(v.tuple);
            EXPECT_EQ(h.hash(t), v.with_ports) << level_name(level);
            EXPECT_EQ(h.hash(t.first(t.size() - 4)), v.addresses_only) << level_name(level);
            EXPECT_EQ(reference::toeplitz(kDefaultRssKey, t), v.with_ports);
        }
    }
}

TEST(Toeplitz, EveryImplementationEqualsTheReference) {
    const std::array<std::vector<uint8_t>, 4> keys = {
        std::vector<uint8_t>(kDefaultRssKey.begin(), kDefaultRssKey.end()),
        std::vector<uint8_t>(kSymmetricRssKey.begin(), kSymmetricRssKey.end()),
        random_bytes(52, 21),  // the length some NICs use
        random_bytes(8, 22),   // the shortest key: 4-byte inputs
    };
    for (const auto& key : keys) {
        const detail::ToeplitzTables t(key);
        const ToeplitzHash h(key);
        const std::size_t max = key.size() - 4;
        EXPECT_EQ(h.max_input_len(), max);
        for (uint64_t seed = 0; seed < 40; ++seed) {
            const auto in8 = random_bytes(max, 100 + seed);
            const auto* in = reinterpret_cast<const std::byte*>(in8.data());
            for (std::size_t n = 0; n <= max; ++n) {
                const uint32_t want = reference::toeplitz(key, {in, n});
                ASSERT_EQ(detail::toeplitz_table(t, in, n), want) << "table len " << n;
                ASSERT_EQ(detail::toeplitz_gfni_emulated(t, in, n), want)
                    << "gfni layout len " << n;
                if (cpu_features().gfni) {
                    ASSERT_EQ(detail::toeplitz_gfni(t, in, n), want) << "gfni len " << n;
                }
            }
            // Inputs longer than the key allows are cut at max_input_len().
            std::vector<std::byte> longer(in, in + max);
            longer.resize(max + 9, std::byte{0x5a});
            EXPECT_EQ(h.hash(longer), reference::toeplitz(key, {in, max}));
        }
    }
}

TEST(Toeplitz, BulkEqualsOneByOneAtEveryLevel) {
    const ToeplitzHash h(kDefaultRssKey);
    for (std::size_t len : {kIpv4TupleLen, kIpv6TupleLen, std::size_t{8}, std::size_t{1}}) {
        const auto data = random_bytes(len * 33, len);
        const auto* tuples = reinterpret_cast<const std::byte*>(data.data());
        for (Level level : available_levels()) {
            testing::LevelGuard guard;
            force_level(level);
            std::vector<uint32_t> out(33, 0);
            h.hash_bulk(tuples, len, out.size(), out.data());
            for (std::size_t i = 0; i < out.size(); ++i)
                ASSERT_EQ(out[i], reference::toeplitz(kDefaultRssKey, {tuples + i * len, len}))
                    << level_name(level) << " tuple " << i;
        }
    }
}

TEST(Toeplitz, SymmetricKeyHashesBothDirectionsAlike) {
    const ToeplitzHash h(kSymmetricRssKey);
    for (uint64_t seed = 0; seed < 100; ++seed) {
        const auto r = random_bytes(36, 200 + seed);
        std::vector<std::byte> a(12), b(12);
        std::memcpy(a.data(), r.data(), 12);
        std::memcpy(b.data(), r.data() + 4, 4);  // dst, src, dport, sport
        std::memcpy(b.data() + 4, r.data(), 4);
        std::memcpy(b.data() + 8, r.data() + 10, 2);
        std::memcpy(b.data() + 10, r.data() + 8, 2);
        EXPECT_EQ(h.hash(a), h.hash(b));
        std::vector<std::byte> c(36), d(36);
        std::memcpy(c.data(), r.data(), 36);
        std::memcpy(d.data(), r.data() + 16, 16);
        std::memcpy(d.data() + 16, r.data(), 16);
        std::memcpy(d.data() + 32, r.data() + 34, 2);
        std::memcpy(d.data() + 34, r.data() + 32, 2);
        EXPECT_EQ(h.hash(c), h.hash(d));
    }
}

TEST(Toeplitz, HashWordsTakesHostOrderWords) {
    const ToeplitzHash h(kDefaultRssKey);
    const auto v = ms_vectors()[0];
    uint32_t words[3];
    std::memcpy(words, v.tuple.data(), 12);
    for (auto& w : words)
        w = ntohl(w);
    EXPECT_EQ(h.hash_words(words, 3), v.with_ports);
    EXPECT_EQ(h.hash_words(words, 2), v.addresses_only);
}

TEST(Toeplitz, RejectsKeysOfUnusableLength) {
    const std::vector<uint8_t> short_key(7), long_key(65);
    EXPECT_THROW(ToeplitzHash{short_key}, std::invalid_argument);
    EXPECT_THROW(ToeplitzHash{long_key}, std::invalid_argument);
    try {
        ToeplitzHash{short_key};
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("8 to 64"), std::string::npos);
    }
}

}  // namespace
}  // namespace sluice::simd
