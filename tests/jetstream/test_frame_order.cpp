// FrameOrder: frames of one stream back in sequence order as a collector
// reads them from JetStream, waiting for a late frame only while it may
// still come (docs/scale-out.md, "Order").
#include <gtest/gtest.h>

#include "sluice/jetstream/frame_order.hpp"

namespace sluice::jetstream {
namespace {

struct Out {
    std::vector<uint64_t> written;    // sequences handed to the writer
    std::vector<uint64_t> discarded;  // copies to free
};

class Order {
  public:
    explicit Order(std::size_t max = 16, bool known = true, uint64_t next = 0) : o_(max) {
        o_.reset(known, next);
    }
    // A frame read at the next JetStream position.
    Order& read(uint64_t seq, uint64_t floor, uint64_t gap_from) {
        o_.offer({seq, floor, gap_from, ++position_, nullptr, false});
        while (auto it = o_.next())
            (it->discard ? out.discarded : out.written).push_back(it->sequence);
        return *this;
    }
    // Published with nothing outstanding before it and nothing dropped.
    Order& read(uint64_t seq) { return read(seq, seq, seq); }
    FrameOrder& fo() { return o_; }
    uint64_t position() const { return position_; }
    Out out;

  private:
    FrameOrder o_;
    uint64_t position_ = 0;
};

using V = std::vector<uint64_t>;

TEST(FrameOrder, FramesInOrderPassStraightThrough) {
    Order o;
    o.read(0).read(1).read(2);
    EXPECT_EQ(o.out.written, (V{0, 1, 2}));
    EXPECT_EQ(o.fo().waiting(), 0u);
    EXPECT_EQ(o.fo().settled_position(), 3u);
}

// The publish of 3 was lost while 4 and 5 were stored; the sender published
// 3 again after its timeout (and 4, 5, which JetStream recognised).
TEST(FrameOrder, ALateFrameIsWaitedForAndTheOthersFollowIt) {
    Order o;
    o.read(0).read(1).read(2);
    o.read(4, 3, 4).read(5, 3, 5);  // floor 3: frame 3 was not yet stored
    EXPECT_EQ(o.out.written, (V{0, 1, 2}));
    EXPECT_EQ(o.fo().waiting(), 2u);
    EXPECT_EQ(o.fo().settled_position(), 3u) << "a new owner must read 4 and 5 again";
    o.read(3, 3, 3);
    EXPECT_EQ(o.out.written, (V{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(o.fo().settled_position(), 6u);
    EXPECT_EQ(o.fo().forced(), 0u);
}

TEST(FrameOrder, FramesTheSenderDroppedAreNotWaitedFor) {
    Order o;
    o.read(0).read(1);
    o.read(5, 2, 2);  // 2, 3, 4 dropped at the sender (its buffer was full)
    EXPECT_EQ(o.out.written, (V{0, 1, 5}));
    EXPECT_EQ(o.fo().waiting(), 0u);
}

// A frame stored before a later one was published sits before it in
// JetStream; not read by then, it is gone (the stream's limits removed it).
TEST(FrameOrder, FramesBelowTheFloorAreNotWaitedFor) {
    Order o(16, true, 10);
    o.read(12, 12, 12);
    EXPECT_EQ(o.out.written, (V{12}));
}

TEST(FrameOrder, AFloorSeenLaterEndsTheWait) {
    Order o;
    o.read(0);
    o.read(2, 1, 2);  // 1 might still come
    EXPECT_EQ(o.fo().waiting(), 1u);
    o.read(3, 2, 3);  // published after 1 was stored: 1 is gone
    EXPECT_EQ(o.out.written, (V{0, 2, 3}));
}

TEST(FrameOrder, ADropBeforeALateFrameStillWaitsForTheLateOne) {
    Order o;
    o.read(0);
    // 1 published (lost), 2 dropped, 3 published: 1 is still to come.
    o.read(3, 1, 2);
    EXPECT_EQ(o.out.written, (V{0}));
    o.read(1, 1, 1);
    EXPECT_EQ(o.out.written, (V{0, 1, 3}));
}

TEST(FrameOrder, CopiesOfAWaitingFrameAreFreedNotWritten) {
    Order o;
    o.read(0);
    o.read(2, 1, 2).read(2, 1, 2);  // redelivered before 1 came
    EXPECT_EQ(o.out.discarded, (V{2}));
    o.read(1, 1, 1);
    EXPECT_EQ(o.out.written, (V{0, 1, 2}));
}

TEST(FrameOrder, DuplicatesGoToTheWriterWhichDiscardsThem) {
    Order o;
    o.read(0).read(1).read(1).read(0);
    EXPECT_EQ(o.out.written, (V{0, 1, 1, 0}));
}

TEST(FrameOrder, PastItsRoomTheOldestWaitingFrameGoesOutAndIsCounted) {
    Order o(2);
    o.read(0);
    o.read(2, 1, 2).read(3, 1, 3);
    EXPECT_EQ(o.fo().waiting(), 2u);
    o.read(4, 1, 4);
    EXPECT_EQ(o.out.written, (V{0, 2, 3, 4}));
    EXPECT_EQ(o.fo().forced(), 1u);
}

TEST(FrameOrder, AnUnknownStartIsTheFirstFrame) {
    Order o(16, false);
    o.read(40).read(41);
    EXPECT_EQ(o.out.written, (V{40, 41}));
}

TEST(FrameOrder, ReleaseAllEndsASessionsWait) {
    Order o;
    o.read(0);
    o.read(5, 1, 5);
    o.fo().release_all();
    while (auto it = o.fo().next())
        o.out.written.push_back(it->sequence);
    EXPECT_EQ(o.out.written, (V{0, 5}));
    EXPECT_EQ(o.fo().settled_position(), o.position());
}

TEST(FrameOrder, SkippedMessagesMoveTheSettledPosition) {
    Order o;
    o.read(0);
    o.fo().skip(7);
    EXPECT_EQ(o.fo().settled_position(), 7u);
}

}  // namespace
}  // namespace sluice::jetstream
