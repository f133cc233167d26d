// Index records: round trips, a torn or damaged tail is ignored, and the
// block filter never forgets a key and rarely claims one it never saw.
#include <cstring>
#include <random>

#include "index_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/index/bloom.hpp"
#include "sluice/index/format.hpp"
#include "sluice/index/keys.hpp"
#include "sluice/index/pcapng.hpp"
#include "sluice/simd/cpu.hpp"

namespace sluice::index {
namespace {

std::vector<std::byte> sample_index(std::size_t blocks, std::vector<std::size_t>* block_ends) {
    std::vector<std::byte> out;
    append_header(out, {Compression::Zstd, 40});
    uint64_t at = 40;
    BloomAccumulator acc;
    for (std::size_t i = 0; i < blocks; ++i) {
        const auto idb = testing::idb();
        append_interface(out, uint32_t(i), idb);
        for (uint64_t k = 0; k < 100; ++k)
            acc.insert(key_port(uint16_t(i * 100 + k)));
        std::vector<std::byte> filter;
        BlockRecord b;
        b.data_start = at;
        b.data_end = at += 1000 + i;
        b.pcapng_bytes = 5000;
        b.min_ts_ns = 10 * i;
        b.max_ts_ns = 10 * i + 5;
        b.packets = 7;
        b.protocols.add(uint8_t(i));
        b.protocols.add(132);
        b.bloom_blocks = acc.fold_into(filter);
        acc.clear();
        b.bloom = filter;
        append_block(out, b);
        if (block_ends) block_ends->push_back(out.size());
    }
    return out;
}

TEST(Format, RecordsRoundTrip) {
    std::vector<std::size_t> ends;
    auto bytes = sample_index(5, &ends);
    append_finish(bytes, {40 + 5 * 1000 + 10, 35, 5, 0, 45});
    std::string error;
    const auto ix = parse_index(bytes, &error);
    ASSERT_TRUE(ix) << error;
    EXPECT_EQ(ix->header.compression, Compression::Zstd);
    EXPECT_EQ(ix->header.data_start, 40u);
    ASSERT_EQ(ix->blocks.size(), 5u);
    EXPECT_EQ(ix->interfaces.size(), 5u);
    EXPECT_EQ(ix->covered_end, 40u + 5 * 1000 + 10);
    ASSERT_TRUE(ix->finish);
    EXPECT_EQ(ix->finish->packets, 35u);
    EXPECT_EQ(ix->block_record_end, ends);
    for (std::size_t i = 0; i < 5; ++i) {
        const BlockRecord& b = ix->blocks[i];
        EXPECT_EQ(b.max_ts_ns, 10 * i + 5);
        EXPECT_TRUE(b.protocols.has(uint8_t(i)) && b.protocols.has(132));
        EXPECT_FALSE(b.protocols.has(uint8_t(i + 1)));
        for (uint64_t k = 0; k < 100; ++k)
            EXPECT_TRUE(
                bloom_may_contain(b.bloom.data(), b.bloom_blocks, key_port(uint16_t(i * 100 + k))));
    }
}

TEST(Format, ATornTailIsIgnoredAtEveryCut) {
    std::vector<std::size_t> ends;
    const auto bytes = sample_index(4, &ends);
    for (std::size_t n = 0; n <= bytes.size(); ++n) {
        std::vector<std::byte> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(n));
        const auto ix = parse_index(cut, nullptr);
        if (n < 40) {  // the header record is 40 bytes
            EXPECT_FALSE(ix) << n;
            continue;
        }
        ASSERT_TRUE(ix) << n;
        std::size_t whole = 0;
        while (whole < ends.size() && ends[whole] <= n)
            ++whole;
        EXPECT_EQ(ix->blocks.size(), whole) << n;
        EXPECT_EQ(ix->valid_bytes, whole ? ends[whole - 1] : 40) << n;
        // An interface record whose block never came does not count.
        EXPECT_EQ(ix->interfaces.size(), whole) << n;
        EXPECT_FALSE(ix->finish);
    }
}

TEST(Format, AFlippedBitEndsTheIndexAtItsRecord) {
    std::vector<std::size_t> ends;
    const auto bytes = sample_index(4, &ends);
    std::mt19937 rng(3);
    for (int i = 0; i < 2000; ++i) {
        auto damaged = bytes;
        const std::size_t at = 40 + rng() % (bytes.size() - 40);
        damaged[at] ^= std::byte(1u << (rng() % 8));
        const auto ix = parse_index(damaged, nullptr);
        ASSERT_TRUE(ix);
        std::size_t before = 0;  // blocks whose records end before the damage
        while (before < ends.size() && ends[before] <= at)
            ++before;
        EXPECT_EQ(ix->blocks.size(), before) << at;
    }
}

TEST(Format, AnInterfaceRecordMustHoldAWholeInterfaceBlock) {
    // A query writes the block out as it is: a damaged one would make its
    // output unreadable, so the index is not used (its data is read whole).
    const auto idb = testing::idb();
    ASSERT_TRUE(pcapng::parse_interface(idb));
    const auto damaged = [&](std::size_t at, uint32_t v) {
        auto b = idb;
        std::memcpy(b.data() + at, &v, 4);
        return b;
    };
    EXPECT_FALSE(pcapng::parse_interface(damaged(0, pcapng::kEnhancedPacketBlock)));
    EXPECT_FALSE(pcapng::parse_interface(damaged(4, uint32_t(idb.size() + 4))));
    EXPECT_FALSE(pcapng::parse_interface(damaged(idb.size() - 4, 0x1234)));
    auto odd = idb;
    odd.resize(idb.size() + 2);
    EXPECT_FALSE(pcapng::parse_interface(odd));
}

TEST(Format, NotAnIndexOrAnotherVersionSaysSo) {
    std::string error;
    EXPECT_FALSE(parse_index(std::vector<std::byte>(100, std::byte{7}), &error));
    EXPECT_NE(error.find("not a sluice index"), std::string::npos);
}

TEST(Format, BlocksMustBeContiguousAndAFinishLast) {
    auto bytes = sample_index(2, nullptr);
    BlockRecord b;
    b.data_start = 99999;  // not where the previous block ended
    b.data_end = 100000;
    append_block(bytes, b);
    const auto ix = parse_index(bytes, nullptr);
    ASSERT_TRUE(ix);
    EXPECT_EQ(ix->blocks.size(), 2u);

    auto f = sample_index(2, nullptr);
    append_finish(f, {40 + 1000 + 1001, 14, 2, 0, 15});
    auto more = f;
    const auto extra = sample_index(1, nullptr);
    more.insert(more.end(), extra.begin() + 40, extra.end());  // a block after the finish
    EXPECT_TRUE(parse_index(f, nullptr)->finish);
    EXPECT_FALSE(parse_index(more, nullptr)->finish);
}

std::array<std::byte, 16> addr(uint32_t i, uint8_t kind) {
    std::array<std::byte, 16> a{};
    a[0] = std::byte{0x20};
    a[1] = std::byte{kind};
    std::memcpy(a.data() + 12, &i, 4);
    return a;
}

class Bloom : public ::testing::TestWithParam<simd::Level> {
  protected:
    void SetUp() override {
        if (!simd::force_level(GetParam())) GTEST_SKIP() << "this CPU lacks the level";
    }
    void TearDown() override { simd::reset_level(); }
};

// Every implementation of the insertion builds the same filter.
TEST_P(Bloom, NoFalseNegativesAndFewFalsePositives) {
    for (uint32_t n : {1u, 10u, 300u, 3000u, BloomAccumulator::kCapacity}) {
        BloomAccumulator acc;
        for (uint32_t i = 0; i < n; ++i)
            acc.insert(key_addr6(addr(i, 1).data()));
        // The count of keys new to the filter is close to the distinct keys.
        EXPECT_GE(acc.keys(), n * 99 / 100) << n;
        EXPECT_LE(acc.keys(), n);
        std::vector<std::byte> f;
        const uint32_t blocks = acc.fold_into(f);
        ASSERT_EQ(f.size(), blocks * kBloomBlockBytes);
        for (uint32_t i = 0; i < n; ++i)
            ASSERT_TRUE(bloom_may_contain(f.data(), blocks, key_addr6(addr(i, 1).data())));
        uint32_t fp = 0;
        const uint32_t probes = 100000;
        for (uint32_t i = 0; i < probes; ++i)
            fp += bloom_may_contain(f.data(), blocks, key_addr6(addr(i, 2).data()));
        // The fold stops at a fill of kBloomMaxFill: about 0.45^8 expected.
        EXPECT_LT(double(fp) / probes, 0.01) << n << " keys, " << blocks << " blocks";
        // Size: a little over 2 bytes per key once the filter is folded.
        if (n >= 300) {
            EXPECT_LT(double(f.size()) / n, 3.5) << n;
        }
    }
    BloomAccumulator empty;
    std::vector<std::byte> f;
    EXPECT_EQ(empty.fold_into(f), 0u);
    EXPECT_FALSE(bloom_may_contain(f.data(), 0, key_port(1)));
}

TEST_P(Bloom, TheSameFilterAtEveryLevel) {
    auto build = [](simd::Level level) {
        EXPECT_TRUE(simd::force_level(level));
        BloomAccumulator acc;
        std::mt19937_64 rng(4);
        for (int i = 0; i < 3000; ++i) {
            const uint64_t k[3] = {rng(), rng(), rng()};
            acc.insert(std::span<const uint64_t>(k, 3));
        }
        std::vector<std::byte> f;
        acc.fold_into(f);
        return std::make_pair(f, acc.keys());
    };
    EXPECT_EQ(build(GetParam()), build(simd::Level::Scalar));
}

std::string level_test_name(const ::testing::TestParamInfo<simd::Level>& i) {
    std::string n(simd::level_name(i.param));
    std::erase(n, '.');  // "sse4.2": test names are alphanumeric
    return n;
}

INSTANTIATE_TEST_SUITE_P(Levels, Bloom,
                         ::testing::Values(simd::Level::Scalar, simd::Level::Sse42,
                                           simd::Level::Avx2),
                         level_test_name);

}  // namespace
}  // namespace sluice::index
