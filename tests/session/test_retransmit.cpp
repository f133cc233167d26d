// RetransmitBuffer: the bound, acknowledgement, reclaim order, partial sends,
// rewinding for a replay, resume points, and MSG_ZEROCOPY gating.
#include "session_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/session/retransmit.hpp"

namespace sluice::session {
namespace {

using testing::make_frame;

struct Frames {
    std::vector<std::vector<std::byte>> f;
    explicit Frames(int n, uint32_t packets = 2) {
        for (int i = 0; i < n; ++i)
            f.push_back(make_frame(1, 100 + i, packets, 64, 1000 + i * packets));
    }
};

std::size_t unsent_bytes(const RetransmitBuffer& b) {
    iovec iov[64];
    const int n = b.fill_iov(iov, 64);
    std::size_t t = 0;
    for (int i = 0; i < n; ++i)
        t += iov[i].iov_len;
    return t;
}

TEST(RetransmitBuffer, HoldsUpToItsCapacity) {
    Frames fr(4);
    RetransmitBuffer b(3);
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(b.push(fr.f[i], 100 + i, &fr.f[i]));
    EXPECT_TRUE(b.full());
    EXPECT_FALSE(b.push(fr.f[3], 103, &fr.f[3]));
    EXPECT_EQ(b.held(), 3u);
    EXPECT_EQ(b.unsent(), 3u);
}

TEST(RetransmitBuffer, AcknowledgesOnlyWhatWasSentAndReclaimsInOrder) {
    Frames fr(4);
    RetransmitBuffer b(4);
    for (int i = 0; i < 4; ++i)
        b.push(fr.f[i], 100 + i, &fr.f[i]);
    const auto a = b.advance(fr.f[0].size() + fr.f[1].size());
    EXPECT_EQ(a.frames, 2u);
    EXPECT_EQ(b.acknowledge(101), 1u);
    EXPECT_EQ(b.acknowledge(101), 0u) << "cumulative: the same ACK twice frees nothing";
    EXPECT_EQ(b.acknowledge(102), 1u);
    void* out[8];
    EXPECT_EQ(b.reclaim(std::span<void*>(out, 1)), 1u);
    EXPECT_EQ(out[0], &fr.f[0]);
    EXPECT_EQ(b.reclaim(out), 1u);
    EXPECT_EQ(out[0], &fr.f[1]);
    EXPECT_EQ(b.reclaim(out), 0u);
    EXPECT_EQ(b.held(), 2u);
}

TEST(RetransmitBuffer, IovecsResumeInsideAPartlySentFrame) {
    Frames fr(2);
    RetransmitBuffer b(4);
    b.push(fr.f[0], 100, nullptr);
    b.push(fr.f[1], 101, nullptr);
    const std::size_t total = fr.f[0].size() + fr.f[1].size();
    EXPECT_EQ(unsent_bytes(b), total);
    EXPECT_EQ(b.advance(10).frames, 0u);
    EXPECT_TRUE(b.partially_sent());
    iovec iov[4];
    ASSERT_EQ(b.fill_iov(iov, 4), 2);
    EXPECT_EQ(iov[0].iov_base, fr.f[0].data() + 10);
    EXPECT_EQ(iov[0].iov_len, fr.f[0].size() - 10);
    EXPECT_EQ(iov[1].iov_base, fr.f[1].data());
    EXPECT_EQ(b.fill_iov(iov, 1), 1) << "bounded by the caller's array";
    // An ACK can never skip a frame that is partly on the wire.
    EXPECT_EQ(b.acknowledge(200), 0u);
    EXPECT_EQ(b.advance(total - 10).frames, 2u);
    EXPECT_FALSE(b.partially_sent());
    EXPECT_EQ(b.acknowledge(200), 2u);
}

TEST(RetransmitBuffer, RewindReplaysTheUnacknowledgedAndCountsRetransmissions) {
    Frames fr(3);
    RetransmitBuffer b(4);
    for (int i = 0; i < 3; ++i)
        b.push(fr.f[i], 100 + i, nullptr);
    b.advance(fr.f[0].size() + fr.f[1].size() + 5);
    b.acknowledge(101);
    b.rewind();  // connection lost
    EXPECT_FALSE(b.partially_sent());
    EXPECT_EQ(b.unsent(), 2u);
    EXPECT_EQ(unsent_bytes(b), fr.f[1].size() + fr.f[2].size());
    const auto a = b.advance(fr.f[1].size() + fr.f[2].size());
    EXPECT_EQ(a.frames, 2u);
    EXPECT_EQ(a.retransmitted, 1u) << "frame 101 went out before; 102 only partly, never whole";
}

TEST(RetransmitBuffer, AResumePointBeyondWhatWasSentSkipsThoseFrames) {
    Frames fr(4);
    RetransmitBuffer b(4);
    for (int i = 0; i < 4; ++i)
        b.push(fr.f[i], 100 + i, nullptr);
    EXPECT_EQ(b.acknowledge(102), 2u);
    EXPECT_EQ(b.unsent(), 2u);
    iovec iov[4];
    ASSERT_EQ(b.fill_iov(iov, 4), 2);
    EXPECT_EQ(iov[0].iov_base, fr.f[2].data());
}

TEST(RetransmitBuffer, PositionIsTheOldestUnacknowledgedFrame) {
    Frames fr(3, 5);
    RetransmitBuffer b(4);
    EXPECT_FALSE(b.position().known);
    for (int i = 0; i < 3; ++i)
        b.push(fr.f[i], 100 + i, nullptr);
    auto p = b.position();
    EXPECT_TRUE(p.known);
    EXPECT_EQ(p.sequence, 100u);
    EXPECT_EQ(p.packet_index, 1000u);
    b.advance(fr.f[0].size());
    b.acknowledge(101);
    p = b.position();
    EXPECT_EQ(p.sequence, 101u);
    EXPECT_EQ(p.packet_index, 1005u);
    b.advance(fr.f[1].size() + fr.f[2].size());
    b.acknowledge(103);
    p = b.position();  // everything acknowledged: the frame after the last
    EXPECT_EQ(p.sequence, 103u);
    EXPECT_EQ(p.packet_index, 1015u);
}

TEST(RetransmitBuffer, ZerocopyFramesWaitForTheKernel) {
    Frames fr(3);
    RetransmitBuffer b(4);
    for (int i = 0; i < 3; ++i)
        b.push(fr.f[i], 100 + i, &fr.f[i]);
    b.advance(fr.f[0].size(), 1);
    b.advance(fr.f[1].size() + fr.f[2].size(), 2);
    b.acknowledge(103);
    void* out[4];
    EXPECT_EQ(b.reclaim(out), 0u) << "acknowledged, but the kernel may still read the pages";
    b.zerocopy_done(1);
    EXPECT_EQ(b.reclaim(out), 1u);
    b.zerocopy_done(2);
    EXPECT_EQ(b.reclaim(out), 2u);

    RetransmitBuffer c(2);
    c.push(fr.f[0], 100, &fr.f[0]);
    c.advance(fr.f[0].size(), 1);
    c.acknowledge(101);
    c.zerocopy_forget();  // the socket was reset
    EXPECT_EQ(c.reclaim(out), 1u);
}

// JetStream acknowledges each frame on its own, in any order: a frame is
// released only when every frame before it is stored too.
TEST(RetransmitBuffer, FramesStoredOutOfOrderAreReleasedInOrder) {
    Frames fr(4);
    RetransmitBuffer b(4);
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(b.push(fr.f[i], 100 + i, &fr.f[i]));
    for (int i = 0; i < 4; ++i) {
        const auto f = b.next_unsent();
        EXPECT_EQ(f.sequence, 100u + i);
        EXPECT_EQ(f.bytes.size(), fr.f[i].size());
        b.advance(f.bytes.size());
    }
    EXPECT_EQ(b.stored_prefix_end(), 100u);
    EXPECT_TRUE(b.mark_stored(101));
    EXPECT_TRUE(b.mark_stored(103));
    EXPECT_FALSE(b.mark_stored(104)) << "never pushed";
    EXPECT_EQ(b.stored_prefix_end(), 100u);
    EXPECT_TRUE(b.mark_stored(100));
    EXPECT_EQ(b.stored_prefix_end(), 102u);
    EXPECT_EQ(b.acknowledge(b.stored_prefix_end()), 2u);
    EXPECT_FALSE(b.mark_stored(100)) << "already acknowledged";
    b.rewind();  // a new connection: marks are facts about the peer, kept
    EXPECT_TRUE(b.mark_stored(102));
    EXPECT_EQ(b.stored_prefix_end(), 104u) << "all stored: the position after the last push";
}

TEST(RetransmitBuffer, EachFrameSaysWhichFramesBeforeItWereDropped) {
    Frames fr(3);
    RetransmitBuffer b(4);
    ASSERT_TRUE(b.push(fr.f[0], 100, &fr.f[0]));
    ASSERT_TRUE(b.push(fr.f[1], 101, &fr.f[1]));
    ASSERT_TRUE(b.push(fr.f[2], 105, &fr.f[2]));  // 102..104 dropped by the owner
    EXPECT_EQ(b.next_unsent().gap_from, 100u);
    b.advance(fr.f[0].size());
    EXPECT_EQ(b.next_unsent().gap_from, 101u);
    b.advance(fr.f[1].size());
    EXPECT_EQ(b.next_unsent().gap_from, 102u);
}

}  // namespace
}  // namespace sluice::session
