// FrameBuilder: segments, snap length, the frame-full contract, limits.
#include <random>
#include <stdexcept>

#include "wire_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::wire {
namespace {

using testing::capture_like;

std::vector<Record> read_all(std::span<std::byte> raw_frame) {
    std::vector<std::byte> f(raw_frame.begin(), raw_frame.end());
    FrameEncoder enc({.codec = Codec::None});
    std::vector<std::byte> none;
    EXPECT_TRUE(enc.seal(f, none).ok());
    FrameReader reader;
    static std::vector<std::byte> keep;  // the records point into it
    keep = f;
    auto v = reader.open(keep, {});
    EXPECT_TRUE(v.ok()) << to_string(v.error());
    if (!v) return {};
    return {v->begin(), v->end()};
}

TEST(FrameBuilder, MultiSegmentPacketsEqualTheirConcatenation) {
    const auto pkts = capture_like(200, 1);
    std::mt19937_64 rng(2);
    FrameBuilder b({.max_frame_bytes = 1 << 20, .snaplen = 65535});
    std::vector<std::byte> buf(1 << 20);
    b.begin(buf, 1, 1, 0);
    for (const auto& p : pkts) {
        // Split at random points, with some empty segments, as an mbuf chain
        // with odd data_len values would be.
        std::vector<Segment> segs;
        std::size_t at = 0;
        while (at < p.bytes.size()) {
            const std::size_t n = std::min<std::size_t>(p.bytes.size() - at, rng() % 300);
            segs.push_back({p.bytes.data() + at, static_cast<uint32_t>(n)});
            at += n;
        }
        ASSERT_EQ(b.append(p.meta, segs), AppendResult::Appended);
    }
    EXPECT_EQ(b.packet_count(), 200u);
    const auto recs = read_all(b.finish());
    ASSERT_EQ(recs.size(), pkts.size());
    for (std::size_t i = 0; i < pkts.size(); ++i) {
        EXPECT_EQ(recs[i].caplen, pkts[i].bytes.size());
        EXPECT_EQ(recs[i].orig_len, pkts[i].bytes.size());
        EXPECT_TRUE(std::equal(recs[i].data.begin(), recs[i].data.end(), pkts[i].bytes.begin()))
            << "packet " << i;
        EXPECT_EQ(recs[i].timestamp_ns, pkts[i].meta.timestamp_ns);
        EXPECT_EQ(recs[i].port, pkts[i].meta.port);
        EXPECT_EQ(recs[i].queue, pkts[i].meta.queue);
        EXPECT_EQ(recs[i].flags, pkts[i].meta.flags);
    }
}

TEST(FrameBuilder, SnapLengthCutsAcrossSegmentsAndKeepsTheOriginalLength) {
    std::vector<std::byte> pkt(1000);
    for (std::size_t i = 0; i < pkt.size(); ++i)
        pkt[i] = std::byte(static_cast<uint8_t>(i * 13));
    for (uint32_t snap : {1u, 7u, 8u, 64u, 96u, 250u, 999u, 1000u, 1001u}) {
        FrameBuilder b({.max_frame_bytes = 4096, .snaplen = snap});
        std::vector<std::byte> buf(4096);
        b.begin(buf, 0, 0, 0);
        const Segment segs[3] = {{pkt.data(), 90}, {pkt.data() + 90, 10}, {pkt.data() + 100, 900}};
        ASSERT_EQ(b.append({.orig_len = 1500}, segs), AppendResult::Appended);
        ASSERT_EQ(b.append({}, std::span<const std::byte>(pkt)), AppendResult::Appended);
        const auto recs = read_all(b.finish());
        ASSERT_EQ(recs.size(), 2u);
        const uint32_t cap = std::min(snap, 1000u);
        EXPECT_EQ(recs[0].caplen, cap);
        EXPECT_EQ(recs[0].orig_len, 1500u);  // the wire length given by the caller
        EXPECT_EQ(recs[1].orig_len, 1000u);  // none given: the segments' total
        for (const auto& r : recs)
            EXPECT_TRUE(std::equal(r.data.begin(), r.data.end(), pkt.begin())) << snap;
    }
}

TEST(FrameBuilder, FullFrameWritesNothingAndTheNextFrameTakesThePacket) {
    const auto pkts = capture_like(2000, 3);
    const BuilderLimits lim{.max_frame_bytes = 16384, .snaplen = 2048};
    FrameBuilder b(lim);
    std::vector<std::byte> buf(lim.max_frame_bytes, std::byte{0xee});
    b.begin(buf, 9, 0, 0);
    std::size_t frames = 0, total = 0;
    uint64_t seq = 0, first = 0;
    for (std::size_t i = 0; i < pkts.size(); ++i) {
        const std::size_t before = b.bytes();
        const auto snapshot = buf;
        if (b.append(pkts[i].meta, pkts[i].bytes) == AppendResult::FrameFull) {
            EXPECT_EQ(b.bytes(), before);
            EXPECT_TRUE(std::equal(buf.begin() + before, buf.end(), snapshot.begin() + before))
                << "a full frame must not be written to";
            EXPECT_GT(before + record_size(static_cast<uint32_t>(pkts[i].bytes.size())),
                      lim.max_frame_bytes);
            const auto recs = read_all(b.finish());
            total += recs.size();
            ++frames;
            first += recs.size();
            b.begin(buf, 9, ++seq, first);
            ASSERT_EQ(b.append(pkts[i].meta, pkts[i].bytes), AppendResult::Appended)
                << "an empty frame takes any packet up to the snap length";
        }
    }
    total += read_all(b.finish()).size();
    EXPECT_EQ(total, pkts.size());
    EXPECT_GT(frames, 10u);
}

TEST(FrameBuilder, AnEmptyFrameAtTheMinimumSizeTakesOneSnaplenPacket) {
    for (uint32_t snap : {1u, 60u, 1518u, 9018u, 65535u, kMaxSnaplen}) {
        const auto max = static_cast<uint32_t>(min_frame_bytes(snap));
        FrameBuilder b({.max_frame_bytes = max, .snaplen = snap});
        std::vector<std::byte> buf(max), pkt(snap + 100, std::byte{1});
        b.begin(buf, 0, 0, 0);
        ASSERT_EQ(b.append({}, std::span<const std::byte>(pkt)), AppendResult::Appended) << snap;
        EXPECT_EQ(b.bytes(), max);
        EXPECT_EQ(b.append({}, std::span<const std::byte>(pkt).first(0)), AppendResult::FrameFull);
    }
}

TEST(FrameBuilder, TheSmallerOfBufferAndLimitBoundsTheFrame) {
    FrameBuilder b({.max_frame_bytes = 8192, .snaplen = 1500});
    std::vector<std::byte> small(1000), pkt(100);
    b.begin(small, 0, 0, 0);
    int n = 0;
    while (b.append({}, std::span<const std::byte>(pkt)) == AppendResult::Appended)
        ++n;
    EXPECT_EQ(n, (1000 - 64) / 128);
    EXPECT_LE(b.finish().size(), 1000u);
}

TEST(FrameBuilder, ZeroLengthPacketsAndEmptyFrames) {
    FrameBuilder b({.max_frame_bytes = 1024, .snaplen = 100});
    std::vector<std::byte> buf(1024);
    b.begin(buf, 0, 0, 0);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.finish().size(), kHeaderSize);  // an empty frame is valid
    b.begin(buf, 0, 0, 0);
    ASSERT_EQ(b.append({}, std::span<const Segment>()), AppendResult::Appended);
    const auto recs = read_all(b.finish());
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].caplen, 0u);
}

TEST(FrameBuilder, AnIdleBuilderOrATinyBufferTakesNothing) {
    FrameBuilder b({.max_frame_bytes = 1024, .snaplen = 100});
    std::vector<std::byte> pkt(10);
    EXPECT_EQ(b.append({}, std::span<const std::byte>(pkt)), AppendResult::FrameFull);
    EXPECT_TRUE(b.finish().empty());
    std::vector<std::byte> tiny(kHeaderSize - 1, std::byte{0x55});
    b.begin(tiny, 0, 0, 0);
    EXPECT_EQ(b.append({}, std::span<const std::byte>(pkt)), AppendResult::FrameFull);
    EXPECT_TRUE(b.finish().empty());
    for (std::byte x : tiny)
        EXPECT_EQ(x, std::byte{0x55});
    std::vector<std::byte> buf(1024);
    b.begin(buf, 0, 0, 0);
    EXPECT_EQ(b.append({}, std::span<const std::byte>(pkt)), AppendResult::Appended);
    EXPECT_EQ(b.finish().size(), kHeaderSize + record_size(10));
    EXPECT_EQ(b.append({}, std::span<const std::byte>(pkt)), AppendResult::FrameFull);
}

TEST(FrameBuilder, RejectsLimitsThatCannotHoldOnePacket) {
    EXPECT_THROW(FrameBuilder({.max_frame_bytes = 1 << 20, .snaplen = 0}), std::invalid_argument);
    EXPECT_THROW(FrameBuilder({.max_frame_bytes = 1 << 20, .snaplen = kMaxSnaplen + 1}),
                 std::invalid_argument);
    EXPECT_THROW(FrameBuilder({.max_frame_bytes = 1600, .snaplen = 1518}), std::invalid_argument);
    EXPECT_NO_THROW(FrameBuilder({.max_frame_bytes = 1608, .snaplen = 1518}));
    EXPECT_THROW(FrameBuilder({.max_frame_bytes = kMaxFrameBytes + 8, .snaplen = 1518}),
                 std::invalid_argument);
    try {
        FrameBuilder({.max_frame_bytes = 1600, .snaplen = 1518});
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("at least 1608"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace sluice::wire
