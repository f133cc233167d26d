// The byte layout the specification (docs/wire-protocol.md) promises.
#include <set>
#include <string>

#include "wire_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::wire {
namespace {

TEST(Format, SizeRelation) {
    EXPECT_EQ(kHeaderSize, 64u);
    EXPECT_EQ(kRecordHeaderSize, 24u);
    EXPECT_EQ(record_size(0), 24u);
    EXPECT_EQ(record_size(1), 32u);
    EXPECT_EQ(record_size(8), 32u);
    EXPECT_EQ(record_size(9), 40u);
    EXPECT_EQ(min_frame_bytes(65535), 64u + 24u + 65536u);
    EXPECT_EQ(min_frame_bytes(1518), 64u + 24u + 1520u);
}

TEST(Format, HeaderBytesOfAFinishedFrame) {
    FrameBuilder b({.max_frame_bytes = 4096, .snaplen = 1500});
    std::vector<std::byte> buf(4096);
    b.begin(buf, 0x1122334455667788ull, 0x0102030405060708ull, 0xa0a1a2a3a4a5a6a7ull);
    const std::byte pkt[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
    ASSERT_EQ(
        b.append({.timestamp_ns = 0x99, .orig_len = 60, .port = 5, .queue = 6, .flags = 9}, pkt),
        AppendResult::Appended);
    auto f = b.finish();
    ASSERT_EQ(f.size(), 64u + 32u);
    auto u8 = [&](std::size_t i) { return static_cast<unsigned>(f[i]); };
    EXPECT_EQ(u8(0), 'S');
    EXPECT_EQ(u8(1), 'L');
    EXPECT_EQ(u8(2), 'C');
    EXPECT_EQ(u8(3), 'F');
    EXPECT_EQ(u8(4), 1u);      // version
    EXPECT_EQ(u8(5), 8u);      // header words
    EXPECT_EQ(u8(6), 0u);      // codec none
    EXPECT_EQ(u8(12), 1u);     // packet count, little-endian
    EXPECT_EQ(u8(16), 0x88u);  // stream id, little-endian
    EXPECT_EQ(u8(23), 0x11u);
    EXPECT_EQ(u8(24), 0x08u);  // sequence
    EXPECT_EQ(u8(32), 0xa7u);  // first packet index
    EXPECT_EQ(u8(40), 32u);    // raw length
    EXPECT_EQ(u8(44), 32u);    // stored length
    // The record.
    EXPECT_EQ(u8(64), 0x99u);     // timestamp
    EXPECT_EQ(u8(64 + 8), 3u);    // caplen
    EXPECT_EQ(u8(64 + 12), 60u);  // orig_len
    EXPECT_EQ(u8(64 + 16), 5u);   // port
    EXPECT_EQ(u8(64 + 18), 6u);   // queue
    EXPECT_EQ(u8(64 + 20), 9u);   // flags
    EXPECT_EQ(u8(64 + 24), 1u);   // data
    EXPECT_EQ(u8(64 + 26), 3u);
    for (std::size_t i = 64 + 27; i < 96; ++i)
        EXPECT_EQ(u8(i), 0u) << "padding byte " << i;
}

TEST(Format, CodecNames) {
    for (uint8_t i = 0; i < kCodecCount; ++i)
        EXPECT_EQ(parse_codec(codec_name(static_cast<Codec>(i))), static_cast<Codec>(i));
    EXPECT_EQ(parse_codec("gzip"), std::nullopt);
}

TEST(Format, EveryErrorHasItsOwnMessage) {
    std::set<std::string> seen;
    for (int i = 1; i <= kWireErrorCount; ++i) {
        const auto msg = std::string(to_string(static_cast<WireError>(i)));
        EXPECT_GT(msg.size(), 20u) << i;
        EXPECT_NE(msg, "unknown wire error") << i;
        EXPECT_TRUE(seen.insert(msg).second) << "duplicate message for error " << i;
    }
}

}  // namespace
}  // namespace sluice::wire
