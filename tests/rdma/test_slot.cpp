// A ring slot's bytes as the listener hands them over (no device needed):
// the frame must fill exactly what the write carried, belong to the
// connection's stream and be the frame the immediate announced.
#include "../session/session_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/rdma/slot.hpp"

namespace sluice::rdma {
namespace {

using session::CloseCause;
using session::testing::make_frame;

struct SlotFixture {
    wire::FrameReader reader{wire::ReaderLimits{1 << 20, 1 << 20, wire::kMaxSnaplen}};
    std::vector<std::byte> scratch = std::vector<std::byte>(1 << 20);
    SlotVerdict open(std::span<const std::byte> written, uint64_t seq, uint64_t stream = 5) {
        return open_slot(written, static_cast<uint16_t>(seq & 0xffff), stream, reader, scratch,
                         "10.0.0.2:4791");
    }
};

TEST(Slot, AFrameIsReadFromExactlyTheBytesItsWriteCarried) {
    SlotFixture fx;
    const auto f = make_frame(5, 70000, 4, 100, 12);
    const SlotVerdict v = fx.open(f, 70000);
    ASSERT_TRUE(v.ok) << v.why;
    EXPECT_EQ(v.frame.info().sequence, 70000u);
    EXPECT_EQ(v.frame.info().packet_count, 4u);
}

TEST(Slot, AHeaderClaimingMoreOrLessThanTheWriteCarriedIsRefusedWithoutReadingPastIt) {
    SlotFixture fx;
    const auto f = make_frame(5, 1, 20, 100);
    // The write carried the first half; the header claims it all. (Reading
    // by the header's length would run past this buffer: ASan would see it.)
    const std::vector<std::byte> half(f.begin(), f.begin() + f.size() / 2);
    SlotVerdict v = fx.open(half, 1);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.cause, CloseCause::BadFrame);
    EXPECT_NE(v.why.find("claims"), std::string::npos) << v.why;
    EXPECT_NE(v.why.find("stream 5 from 10.0.0.2:4791"), std::string::npos) << v.why;
    std::vector<std::byte> longer(f);
    longer.resize(f.size() + 64);
    v = fx.open(longer, 1);
    EXPECT_FALSE(v.ok);
    EXPECT_NE(v.why.find("claims"), std::string::npos) << v.why;
    v = fx.open(std::span<const std::byte>(f).first(4), 1);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.cause, CloseCause::BadFrame);
}

TEST(Slot, AnotherStreamOrAnotherSequenceThanAnnouncedIsRefused) {
    SlotFixture fx;
    const auto f = make_frame(5, 300, 2, 64);
    SlotVerdict v = fx.open(f, 300, 6);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.cause, CloseCause::Protocol);
    EXPECT_NE(v.why.find("a frame of stream 5"), std::string::npos) << v.why;
    v = fx.open(f, 301);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.cause, CloseCause::Protocol);
    EXPECT_NE(v.why.find("not the one its write announced"), std::string::npos) << v.why;
}

TEST(Slot, ACorruptedPayloadIsABadFrame) {
    SlotFixture fx;
    auto f = make_frame(5, 2, 3, 64);
    f.back() ^= std::byte{1};
    const SlotVerdict v = fx.open(f, 2);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.cause, CloseCause::BadFrame);
}

}  // namespace
}  // namespace sluice::rdma
