// LatencyHistogram: every value lands in a bucket that holds it, buckets are
// at most 1/64 of their values wide, percentiles come out within that.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/report/histogram.hpp"

namespace sluice::report {
namespace {

using H = LatencyHistogram;

TEST(LatencyHistogram, ExactBelow128AndBucketsHoldTheirValues) {
    for (uint64_t v = 0; v < 128; ++v) {
        EXPECT_EQ(H::index_of(v), v);
        EXPECT_EQ(H::lowest_in(v), v);
        EXPECT_EQ(H::highest_in(v), v);
    }
    std::mt19937_64 rng(7);
    std::vector<uint64_t> values = {128, 129, 255, 256, 1'000'000, UINT64_MAX, UINT64_MAX / 2};
    for (int i = 0; i < 100000; ++i)
        values.push_back(rng() >> (rng() % 64));
    for (uint64_t v : values) {
        const std::size_t i = H::index_of(v);
        ASSERT_LT(i, H::kBuckets) << v;
        ASSERT_LE(H::lowest_in(i), v) << v;
        ASSERT_GE(H::highest_in(i), v) << v;
        // 1/64 of the value at most: 2 significant digits and then some.
        ASSERT_LE(H::highest_in(i) - H::lowest_in(i), H::lowest_in(i) / 64) << v;
        if (i + 1 < H::kBuckets) {
            ASSERT_EQ(H::highest_in(i) + 1, H::lowest_in(i + 1)) << v;
        }
    }
    EXPECT_EQ(H::index_of(UINT64_MAX), H::kBuckets - 1);
}

TEST(LatencyHistogram, PercentilesOfAKnownDistribution) {
    H h;
    EXPECT_EQ(h.percentile(0.5), 0u);
    std::vector<uint64_t> v;
    std::mt19937_64 rng(11);
    for (int i = 0; i < 200000; ++i)
        v.push_back(1000 + rng() % 9'000'000);  // 1 us .. 9 ms
    v.push_back(250'000'000);                   // one outlier
    for (uint64_t x : v)
        h.record(x);
    std::sort(v.begin(), v.end());
    EXPECT_EQ(h.count(), v.size());
    EXPECT_EQ(h.max(), 250'000'000u);
    EXPECT_EQ(h.min(), v.front());
    for (double q : {0.5, 0.9, 0.99, 0.999}) {
        const uint64_t exact = v[std::size_t(q * double(v.size()) + 0.999999) - 1];
        const uint64_t got = h.percentile(q);
        EXPECT_GE(got, exact) << q;
        EXPECT_LE(got, exact + exact / 64) << q;
    }
    EXPECT_EQ(h.percentile(1.0), 250'000'000u);
    h.reset();
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.percentile(0.99), 0u);
}

}  // namespace
}  // namespace sluice::report
