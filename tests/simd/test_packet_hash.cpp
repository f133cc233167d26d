// The packet hash: every level computes the same value for every length and
// alignment, every byte and the length change it, and the key changes it
// (without the key, copies cannot be forged).
#include <cstring>
#include <memory>
#include <set>

#include "impls.hpp"
#include <gtest/gtest.h>

#include "sluice/simd/packet_hash.hpp"

namespace sluice::simd {
namespace {

using testing::available_levels;
using testing::LevelGuard;
using testing::random_bytes;

TEST(PacketHash, EveryLevelAgreesAtEveryLengthAndAlignment) {
    LevelGuard guard;
    const auto key = PacketHashKey::from_seed(42);
    const auto data = random_bytes(9100, 1);
    for (std::size_t len : {0, 1, 7, 8, 63, 64, 65, 127, 128, 129, 200, 1514, 9018}) {
        for (std::size_t align = 0; align < 8; ++align) {
            // An exactly sized heap copy: ASan sees a read past the end.
            std::unique_ptr<uint8_t[]> copy(new uint8_t[len + align + 1]);
            std::memcpy(copy.get() + align, data.data(), len);
            const uint64_t want = detail::packet_hash_scalar(copy.get() + align, len, key);
            for (Level l : available_levels()) {
                ASSERT_TRUE(force_level(l));
                EXPECT_EQ(packet_hash(copy.get() + align, len, key), want)
                    << level_name(l) << " len " << len << " align " << align;
            }
        }
    }
}

TEST(PacketHash, EveryByteTheLengthAndTheKeyMatter) {
    const auto key = PacketHashKey::from_seed(7);
    auto data = random_bytes(1514, 2);
    const uint64_t h = packet_hash(data.data(), data.size(), key);
    std::set<uint64_t> seen{h};
    for (std::size_t i = 0; i < data.size(); i += 37) {
        data[i] ^= 1;
        EXPECT_TRUE(seen.insert(packet_hash(data.data(), data.size(), key)).second) << i;
        data[i] ^= 1;
    }
    // Trailing zeros are not the same packet as a shorter one.
    std::vector<uint8_t> z(100, 0);
    EXPECT_NE(packet_hash(z.data(), 99, key), packet_hash(z.data(), 100, key));
    // Two 64-byte stripes swapped: a different packet.
    std::vector<uint8_t> swapped(data.begin(), data.begin() + 128);
    std::swap_ranges(swapped.begin(), swapped.begin() + 64, swapped.begin() + 64);
    EXPECT_NE(packet_hash(swapped.data(), 128, key), packet_hash(data.data(), 128, key));
    // Another key, another value.
    EXPECT_NE(packet_hash(data.data(), data.size(), PacketHashKey::from_seed(8)), h);
    EXPECT_NE(PacketHashKey::random().seed, PacketHashKey::random().seed);
}

TEST(PacketHash, NoCollisionsAmongManySimilarPackets) {
    const auto key = PacketHashKey::from_seed(9);
    // 200000 packets differing in a counter, as headers of one flow do.
    std::vector<uint8_t> p(64, 0xab);
    std::set<uint64_t> seen;
    for (uint32_t i = 0; i < 200000; ++i) {
        std::memcpy(p.data() + 38, &i, 4);
        seen.insert(packet_hash(p.data(), p.size(), key));
    }
    EXPECT_EQ(seen.size(), 200000u);
}

}  // namespace
}  // namespace sluice::simd
