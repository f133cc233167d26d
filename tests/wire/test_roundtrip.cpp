// builder -> encoder -> reader for every codec: the records come back intact,
// and the encoder stores raw exactly when it should.
#include "wire_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::wire {
namespace {

using testing::build_frame;
using testing::capture_like;

struct CodecCase {
    const char* name;
    EncoderConfig cfg;
};

std::vector<CodecCase> codec_cases() {
    return {
        {"none", {.codec = Codec::None}},
        {"lz4", {.codec = Codec::Lz4, .lz4_acceleration = 1}},
        {"lz4-accel8", {.codec = Codec::Lz4, .lz4_acceleration = 8}},
        {"zstd1", {.codec = Codec::Zstd, .zstd_level = 1}},
        {"zstd3", {.codec = Codec::Zstd, .zstd_level = 3}},
        {"zstd-fast", {.codec = Codec::Zstd, .zstd_level = -5}},
        {"zstd9", {.codec = Codec::Zstd, .zstd_level = 9}},
    };
}

void expect_same(const FrameView& v, const std::vector<testing::Packet>& pkts, std::size_t n,
                 uint32_t snaplen) {
    EXPECT_EQ(v.info().packet_count, n);
    std::size_t i = 0;
    for (const Record& r : v) {
        ASSERT_LT(i, n);
        const auto& p = pkts[i];
        const auto cap = std::min<std::size_t>(p.bytes.size(), snaplen);
        EXPECT_EQ(r.caplen, cap);
        EXPECT_EQ(r.orig_len, p.bytes.size());
        EXPECT_EQ(r.timestamp_ns, p.meta.timestamp_ns);
        EXPECT_EQ(r.port, p.meta.port);
        EXPECT_EQ(r.queue, p.meta.queue);
        EXPECT_EQ(r.flags, p.meta.flags);
        ASSERT_EQ(r.data.size(), cap);
        EXPECT_TRUE(std::equal(r.data.begin(), r.data.end(), p.bytes.begin())) << "packet " << i;
        ++i;
    }
    EXPECT_EQ(i, n);
}

TEST(RoundTrip, EveryCodecAtEveryFrameSize) {
    const auto pkts = capture_like(3000, 11);
    for (uint32_t max : {4096u, 65536u, 262144u, 1u << 20}) {
        for (uint32_t snap : {2048u, 128u}) {
            std::size_t n = 0;
            const auto raw = build_frame(pkts, {.max_frame_bytes = max, .snaplen = snap}, n);
            ASSERT_GT(n, 0u);
            for (auto c : codec_cases()) {
                SCOPED_TRACE(std::string(c.name) + " frame " + std::to_string(max) + " snap " +
                             std::to_string(snap));
                c.cfg.max_raw_frame_bytes = max;
                c.cfg.min_compress_bytes = 1024;
                Sealed s;
                auto sealed = testing::seal_copy(raw, c.cfg, &s);
                ASSERT_FALSE(sealed.empty());
                // Capture-like data always shrinks, so every codec but none compresses.
                EXPECT_EQ(s.codec, c.cfg.codec);
                EXPECT_EQ(s.in_out_buffer, c.cfg.codec != Codec::None);
                if (c.cfg.codec != Codec::None) {
                    EXPECT_LT(sealed.size(), raw.size());
                }
                auto hdr = parse_header(sealed);
                ASSERT_TRUE(hdr.ok()) << to_string(hdr.error());
                EXPECT_EQ(hdr->frame_len(), sealed.size());
                EXPECT_EQ(hdr->stream_id, 42u);
                EXPECT_EQ(hdr->sequence, 7u);
                EXPECT_EQ(hdr->first_packet_index, 1000u);
                EXPECT_EQ(hdr->raw_len, raw.size() - kHeaderSize);
                FrameReader reader;
                std::vector<std::byte> scratch(hdr->raw_len);
                auto v = reader.open(sealed, scratch);
                ASSERT_TRUE(v.ok()) << to_string(v.error());
                expect_same(*v, pkts, n, snap);
            }
        }
    }
}

TEST(RoundTrip, IncompressibleFramesAreStoredRawAndFlagged) {
    // Large random packets: the few record-header bytes cannot pay for the
    // codecs' framing.
    std::vector<testing::Packet> pkts = capture_like(20, 12);
    std::mt19937_64 rng(13);
    for (auto& p : pkts) {
        p.bytes.resize(9000);
        for (auto& b : p.bytes)
            b = std::byte(static_cast<uint8_t>(rng()));
    }
    std::size_t n = 0;
    const auto raw = build_frame(pkts, {.max_frame_bytes = 1 << 20, .snaplen = 9000}, n);
    for (Codec c : {Codec::Lz4, Codec::Zstd}) {
        Sealed s;
        auto sealed = testing::seal_copy(raw, {.codec = c}, &s);
        EXPECT_FALSE(s.in_out_buffer) << codec_name(c);
        EXPECT_EQ(s.codec, Codec::None);
        auto hdr = parse_header(sealed);
        ASSERT_TRUE(hdr.ok());
        EXPECT_EQ(hdr->codec, Codec::None);
        EXPECT_EQ(hdr->flags, flag::kRawIncompressible);
        FrameReader reader;
        auto v = reader.open(sealed, {});
        ASSERT_TRUE(v.ok()) << to_string(v.error());
        expect_same(*v, pkts, n, 9000);
    }
}

TEST(RoundTrip, FramesBelowTheMinimumAreStoredRawAndFlagged) {
    const auto pkts = capture_like(3, 14);
    std::size_t n = 0;
    const auto raw = build_frame(pkts, {.max_frame_bytes = 1 << 20, .snaplen = 65535}, n);
    ASSERT_EQ(n, 3u);
    Sealed s;
    auto sealed = testing::seal_copy(
        raw, {.codec = Codec::Zstd, .min_compress_bytes = static_cast<uint32_t>(raw.size())}, &s);
    EXPECT_FALSE(s.in_out_buffer);
    auto hdr = parse_header(sealed);
    ASSERT_TRUE(hdr.ok());
    EXPECT_EQ(hdr->flags, flag::kRawBelowMinimum);
    FrameReader reader;
    EXPECT_TRUE(reader.open(sealed, {}).ok());
}

TEST(RoundTrip, SealInPlaceNeedsNoOutputBuffer) {
    const auto pkts = capture_like(50, 15);
    std::size_t n = 0;
    auto raw = build_frame(pkts, {.max_frame_bytes = 1 << 16, .snaplen = 2048}, n);
    FrameEncoder enc({.codec = Codec::None});
    auto s = enc.seal(raw, {});
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->frame.data(), raw.data());
    EXPECT_EQ(s->frame.size(), raw.size());
    FrameReader reader;
    auto v = reader.open(raw, {});
    ASSERT_TRUE(v.ok()) << to_string(v.error());
    expect_same(*v, pkts, n, 2048);
    // Uncompressed records are read where they are: no copy.
    EXPECT_EQ(v->payload().data(), raw.data() + kHeaderSize);
}

TEST(RoundTrip, AStreamOfFramesParsesFrameByFrame) {
    // What a TCP receiver does: read a header, learn the frame length, read
    // the rest, open, repeat.
    const auto pkts = capture_like(5000, 16);
    std::vector<std::byte> stream;
    std::size_t at = 0, frames = 0;
    EncoderConfig cfg{.codec = Codec::Lz4, .max_raw_frame_bytes = 65536};
    while (at < pkts.size()) {
        std::vector<testing::Packet> rest(pkts.begin() + static_cast<long>(at), pkts.end());
        std::size_t n = 0;
        auto raw = build_frame(rest, {.max_frame_bytes = 65536, .snaplen = 2048}, n, frames);
        auto sealed = testing::seal_copy(raw, cfg);
        stream.insert(stream.end(), sealed.begin(), sealed.end());
        at += n;
        ++frames;
    }
    FrameReader reader;
    std::vector<std::byte> scratch(65536);
    std::size_t pos = 0, packets = 0;
    uint64_t seq = 0;
    while (pos < stream.size()) {
        auto hdr = parse_header(std::span<const std::byte>(stream).subspan(pos, kHeaderSize));
        ASSERT_TRUE(hdr.ok()) << to_string(hdr.error());
        EXPECT_EQ(hdr->sequence, seq++);
        auto v =
            reader.open(std::span<const std::byte>(stream).subspan(pos, hdr->frame_len()), scratch);
        ASSERT_TRUE(v.ok()) << to_string(v.error());
        for (const Record& r : *v) {
            EXPECT_EQ(r.timestamp_ns, pkts[packets].meta.timestamp_ns);
            ++packets;
        }
        pos += hdr->frame_len();
    }
    EXPECT_EQ(packets, pkts.size());
    EXPECT_EQ(seq, frames);
}

TEST(RoundTrip, JumboPacketsAcrossSegments) {
    std::vector<std::byte> jumbo(9018);
    for (std::size_t i = 0; i < jumbo.size(); ++i)
        jumbo[i] = std::byte(static_cast<uint8_t>(i % 251));
    FrameBuilder b({.max_frame_bytes = 1 << 16, .snaplen = 9018});
    std::vector<std::byte> buf(1 << 16);
    b.begin(buf, 0, 0, 0);
    // Five 2 KB mbufs, as net_pcap delivers jumbo frames.
    std::vector<Segment> segs;
    for (std::size_t at = 0; at < jumbo.size(); at += 2048)
        segs.push_back({jumbo.data() + at,
                        static_cast<uint32_t>(std::min<std::size_t>(2048, jumbo.size() - at))});
    while (b.append({.timestamp_ns = 1}, segs) == AppendResult::Appended) {
    }
    auto raw = b.finish();
    std::vector<std::byte> f(raw.begin(), raw.end());
    auto sealed = testing::seal_copy(f, {.codec = Codec::Zstd});
    FrameReader reader;
    std::vector<std::byte> scratch(1 << 16);
    auto v = reader.open(sealed, scratch);
    ASSERT_TRUE(v.ok()) << to_string(v.error());
    EXPECT_EQ(v->info().packet_count, 7u);
    for (const Record& r : *v)
        EXPECT_TRUE(std::equal(r.data.begin(), r.data.end(), jumbo.begin(), jumbo.end()));
}

}  // namespace
}  // namespace sluice::wire
