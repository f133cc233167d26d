// What travels beside each frame in JetStream: the message id JetStream
// recognises replays by, the Sluice-Frame header, and the stream position a
// consumer's reply subject carries.
#include <gtest/gtest.h>

#include "sluice/jetstream/frame_tag.hpp"

namespace sluice::jetstream {
namespace {

TEST(FrameTag, MessageIdsNameStreamSessionAndSequence) {
    std::array<char, kMaxTagText> b;
    const std::size_t n = format_msg_id(b, 7, 0x0123456789abcdefull, 42);
    EXPECT_EQ(std::string_view(b.data(), n), "7-0123456789abcdef-42");
    EXPECT_EQ(b[n], '\0');
    EXPECT_EQ(sequence_of_msg_id(b.data()), 42u);
    EXPECT_EQ(sequence_of_msg_id("nonsense"), std::nullopt);
    EXPECT_EQ(sequence_of_msg_id("7-abc-"), std::nullopt);
}

TEST(FrameTag, TheLargestValuesFit) {
    std::array<char, kMaxTagText> b;
    const std::size_t n = format_msg_id(b, UINT64_MAX, UINT64_MAX, UINT64_MAX);
    EXPECT_LT(n, kMaxTagText);
    EXPECT_EQ(sequence_of_msg_id(b.data()), UINT64_MAX);
    const std::size_t m = format_frame_tag(b, {UINT64_MAX, UINT64_MAX, UINT64_MAX});
    EXPECT_LT(m, kMaxTagText);
}

TEST(FrameTag, TagsRoundTripAndOnlyWellFormedOnesParse) {
    std::array<char, kMaxTagText> b;
    const FrameTag t{0xfeedull, 17, 12};
    format_frame_tag(b, t);
    EXPECT_STREQ(b.data(), "000000000000feed 17 12");
    const auto p = parse_frame_tag(b.data());
    ASSERT_TRUE(p);
    EXPECT_EQ(p->session_id, t.session_id);
    EXPECT_EQ(p->floor, 17u);
    EXPECT_EQ(p->gap_from, 12u);
    for (const char* bad : {"", "000000000000feed 17", "feed 17 12", "000000000000feed 17 12 1",
                            "000000000000feed x 12", "000000000000feed  17 12"})
        EXPECT_FALSE(parse_frame_tag(bad)) << bad;
}

TEST(FrameTag, StreamPositionsComeFromReplySubjects) {
    EXPECT_EQ(stream_sequence_of_reply("$JS.ACK.SLUICE.g_7.1.1400.1.1796598501479926610.100"),
              1400u);
    EXPECT_EQ(stream_sequence_of_reply(
                  "$JS.ACK.hub.ACCHASH.SLUICE.g_7.2.77.5.1796598501479926610.0.token"),
              77u);
    EXPECT_EQ(stream_sequence_of_reply("_INBOX.abc"), 0u);
    EXPECT_EQ(stream_sequence_of_reply(""), 0u);
    EXPECT_EQ(stream_sequence_of_reply("$JS.ACK.S.c.1.x.1.1.1"), 0u);
}

TEST(FrameTag, DeliveryNumbersComeFromReplySubjects) {
    EXPECT_EQ(consumer_sequence_of_reply("$JS.ACK.SLUICE.g_7.1.1400.31.1796598501479926610.100"),
              31u);
    EXPECT_EQ(consumer_sequence_of_reply(
                  "$JS.ACK.hub.ACCHASH.SLUICE.g_7.2.77.5.1796598501479926610.0.token"),
              5u);
    EXPECT_EQ(consumer_sequence_of_reply("_INBOX.abc"), 0u);
    EXPECT_EQ(consumer_sequence_of_reply("$JS.ACK.S.c.1.1.x.1.1"), 0u);
}

}  // namespace
}  // namespace sluice::jetstream
