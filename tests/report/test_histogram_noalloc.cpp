// Recording into a LatencyHistogram and reading its percentiles allocate
// nothing: sluice-send counts every acknowledged frame with it.
#include "../count_allocations.hpp"
#include <gtest/gtest.h>

#include "sluice/report/histogram.hpp"

namespace {

TEST(LatencyHistogramNoAlloc, RecordAndPercentilesDoNotAllocate) {
    static sluice::report::LatencyHistogram h;  // 30 KB: not on the stack
    g_allocs = 0;
    t_counting = true;
    uint64_t sum = 0;
    for (uint64_t i = 1; i < 1'000'000; ++i)
        h.record(i * 977);
    sum += h.percentile(0.5) + h.percentile(0.999) + h.max();
    t_counting = false;
    EXPECT_EQ(g_allocs.load(), 0);
    EXPECT_GT(sum, 0u);
}

}  // namespace
