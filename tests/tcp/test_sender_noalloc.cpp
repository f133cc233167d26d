// Streaming through TcpSender (submit, poll, reclaim, partial writes, ACKs)
// allocates nothing: malloc and friends are replaced in this program to count
// calls made inside the sender. Not in the 'asan' suite, whose runtime owns
// malloc.
#include <atomic>

#include "tcp_testing.hpp"
#include <gtest/gtest.h>

// clang-format off: after every other header (it defines posix_memalign,
// which <mm_malloc.h> declares differently)
#include "../count_allocations.hpp"
// clang-format on

namespace sluice::tcp {
namespace {

TEST(TcpSenderNoAlloc, StreamingAllocatesNothing) {
    testing::FakeCollector fc;
    SenderConfig cfg;
    cfg.port = fc.port();
    cfg.stream_id = 7;
    cfg.retransmit_frames = 4;
    cfg.sndbuf_bytes = 4096;  // partial writes on every frame
    TcpSender tx(cfg);
    std::vector<std::vector<std::byte>> f;
    for (int i = 0; i < 64; ++i)
        f.push_back(testing::make_frame(7, i, 100, 200, i * 100));
    uint64_t now = 1;
    // Warm up: connect and handshake (libcrypto allocates there), one frame.
    tx.submit(f[0], 0, &f[0]);
    ASSERT_TRUE(testing::drive(tx, fc, now, [&] { return tx.all_acknowledged(); }));
    void* done[8];
    tx.reclaim(done);

    std::size_t next = 1;
    long allocs = 0;
    for (int round = 0; round < 200000 && !(next == f.size() && tx.all_acknowledged()); ++round) {
        now += 50'000;
        t_counting = true;
        if (next < f.size() && tx.submit(f[next], next, &f[next]) == SubmitResult::Accepted) ++next;
        tx.poll(now);
        tx.reclaim(done);
        t_counting = false;
        allocs = g_allocs.load(std::memory_order_relaxed);  // same thread: see note()
        fc.pump();
    }
    ASSERT_EQ(fc.sequences.size(), f.size());
    EXPECT_EQ(allocs, 0);
    EXPECT_EQ(tx.stats().connects.get(), 1u);
}

}  // namespace
}  // namespace sluice::tcp
