// The collector's per-packet index work allocates nothing: once the pending
// list and the block buffers have grown to their size, packet(), commit()
// (blocks closing and their records written included) and rollback() run
// without a heap allocation.
#include "../count_allocations.hpp"
#include "index_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/index/writer.hpp"

namespace sluice::index {
namespace {

using namespace testing;

TEST(IndexNoAlloc, PacketsCommitsAndBlocksAfterWarmUp) {
    TempDir dir;
    const std::string path = dir.file("a.pcapng");
    std::vector<TestPacket> pk;
    for (uint32_t i = 0; i < 20000; ++i)
        pk.push_back(udp_packet(1'700'000'000'000'000'000ull + i, i % 3000, 0, 40 + i % 500));
    std::vector<std::vector<std::byte>> epbs;
    for (const auto& p : pk)
        epbs.push_back(epb(0, p.ts, p.frame));
    Writer w(BuildSettings{.block_bytes = 256 * 1024, .block_packets = 16384});
    ASSERT_TRUE(w.start(path, Compression::None, 28));
    uint64_t at = 28;
    auto batch = [&](std::size_t first, std::size_t n, bool commit) {
        uint64_t b = 0;
        for (std::size_t i = first; i < first + n; ++i) {
            b += epbs[i].size();
            w.packet(pk[i].ts, pk[i].frame, b);
        }
        if (!commit) {
            w.rollback();
            return;
        }
        ASSERT_TRUE(w.commit(at, at + b, b));
        at += b;
    };
    for (std::size_t i = 0; i < 10000; i += 250)
        batch(i, 250, true);  // several blocks: every buffer at its size
    t_counting = true;
    for (std::size_t i = 10000; i < 20000; i += 250) {
        batch(i, 250, false);
        batch(i, 250, true);
    }
    t_counting = false;
    EXPECT_EQ(g_allocs.load(std::memory_order_relaxed), 0);
    w.finish();
}

}  // namespace
}  // namespace sluice::index
