// Streaming through RdmaSender on real verbs (submit, poll, reclaim, credits,
// completions) allocates nothing: malloc and friends are replaced in this
// program to count calls made on the test's thread while it streams. The
// handshake (control path) is left out of the count.
#include <atomic>

#include "testbed_testing.hpp"

#include "sluice/rdma/sender.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/tcp/sender.hpp"

// clang-format off: after every other header (it defines posix_memalign,
// which <mm_malloc.h> declares differently)
#include "../count_allocations.hpp"
// clang-format on

namespace sluice::rdma {
namespace {

TEST(RdmaSenderNoAlloc, StreamingAllocatesNothing) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = 7820;
    CollectorProcess col(d, port, {"--rdma-slots", "4"});  // few slots: credit stalls too
    const auto pk = packets(3000, 21);
    const FrameSet fs = make_frames(7, pk, 10);
    // Frames in one registered region, as a frame pool.
    std::size_t total = 0;
    for (const auto& f : fs.frames)
        total += (f.size() + 63) & ~std::size_t{63};
    std::vector<std::byte> arena(total);
    std::vector<std::span<const std::byte>> frames;
    std::size_t at = 0;
    for (const auto& f : fs.frames) {
        std::memcpy(arena.data() + at, f.data(), f.size());
        frames.emplace_back(arena.data() + at, f.size());
        at += (f.size() + 63) & ~std::size_t{63};
    }
    SenderConfig c;
    c.host = env_or("RXE0_IP", "10.10.0.1");
    c.source = env_or("RXE1_IP", "10.10.0.2");
    c.port = port;
    c.stream_id = 7;
    c.key.resize(kKey.size());
    std::memcpy(c.key.data(), kKey.data(), kKey.size());
    c.retransmit_frames = 8;
    c.signal_interval = 4;
    c.queue_depth = 16;
    RdmaSender tx(c);
    tx.register_memory(arena.data(), arena.size());
    void* done[32];
    const uint64_t deadline = session::monotonic_ns() + 60'000'000'000ull;
    while (tx.state() != SenderState::Streaming && session::monotonic_ns() < deadline)
        tx.poll(session::monotonic_ns());
    ASSERT_EQ(tx.state(), SenderState::Streaming) << tx.stats().last_error.get();

    t_counting = true;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        while (tx.submit(frames[i], i, const_cast<std::byte*>(frames[i].data())) ==
               SubmitResult::Full) {
            tx.poll(session::monotonic_ns());
            tx.reclaim(done);
        }
        tx.poll(session::monotonic_ns());
        tx.reclaim(done);
    }
    while (!tx.all_acknowledged() && session::monotonic_ns() < deadline) {
        tx.poll(session::monotonic_ns());
        tx.reclaim(done);
    }
    t_counting = false;
    ASSERT_TRUE(tx.all_acknowledged()) << tx.stats().last_error.get();
    EXPECT_EQ(tx.stats().connects.get(), 1u);  // one connection: nothing was set up again
    EXPECT_GT(tx.rdma_stats().credit_stalls.get(), 0u);
    EXPECT_EQ(g_allocs.load(std::memory_order_relaxed), 0);
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    expect_exact(d, 7, pk);
}

}  // namespace
}  // namespace sluice::rdma
