// Reconnect delays: exponential, capped, with equal jitter.
#include <set>

#include <gtest/gtest.h>

#include "sluice/session/backoff.hpp"

namespace sluice::session {
namespace {

TEST(Backoff, DoublesFromMinimumToMaximumWithEqualJitter) {
    Backoff b(100, 1000, 42);
    const uint64_t ms = 1'000'000;
    const uint64_t ceilings[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (uint64_t c : ceilings) {
        const uint64_t d = b.next_delay_ns();
        EXPECT_GE(d, c * ms / 2);
        EXPECT_LE(d, c * ms);
    }
    b.reset();
    EXPECT_LE(b.next_delay_ns(), 100 * ms);
}

TEST(Backoff, TheSeedFixesTheJitterAndJitterVaries) {
    Backoff a(100, 100000, 7), b(100, 100000, 7), c(100, 100000, 8);
    bool differs = false;
    std::set<uint64_t> seen;
    for (int i = 0; i < 10; ++i) {
        const uint64_t x = a.next_delay_ns();
        EXPECT_EQ(x, b.next_delay_ns());
        differs |= x != c.next_delay_ns();
    }
    EXPECT_TRUE(differs);
    Backoff flat(100, 100, 1);
    for (int i = 0; i < 50; ++i)
        seen.insert(flat.next_delay_ns());
    EXPECT_GT(seen.size(), 10u) << "two senders that failed together spread out";
}

}  // namespace
}  // namespace sluice::session
