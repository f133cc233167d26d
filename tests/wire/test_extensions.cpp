// The optional parts of version 1: interface statistics frames
// (flag::kStatistics) and records with tunnel metadata (flag::kRecordMeta).
// Both round-trip through every codec, keep their must-understand flag
// through sealing, and a reader that knows neither refuses them.
#include <memory>

#include "wire_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::wire {
namespace {

using testing::reseal;
using testing::seal_copy;
using wire::load_le;
using wire::store_le;

constexpr uint32_t kFrame = 65536;

struct Opened {
    std::vector<std::byte> frame, scratch;
    Result<FrameView> view = WireError::Truncated;
};

std::unique_ptr<Opened> open(std::vector<std::byte> f) {
    auto o = std::make_unique<Opened>();
    o->frame = std::move(f);
    o->scratch.resize(kFrame);
    FrameReader reader;
    o->view = reader.open(o->frame, o->scratch);
    return o;
}

InterfaceStatistics stats(uint16_t port, uint16_t queue, std::string_view text) {
    InterfaceStatistics s;
    s.port = port;
    s.queue = queue;
    s.start_ns = 1700000000ull * 1000000000ull;
    s.time_ns = s.start_ns + 5'000'000'000ull;
    s.received = 1000 + queue;
    s.nic_dropped = 7;
    s.accepted = 900;
    s.dropped = 3;
    s.delivered = 897;
    s.description = text;
    return s;
}

std::vector<std::byte> statistics_frame(uint64_t index = 500) {
    FrameBuilder b({.max_frame_bytes = kFrame, .snaplen = 2048});
    std::vector<std::byte> buf(kFrame);
    b.begin(buf, 42, 9, index);
    const std::string long_text(300, 'x');
    EXPECT_EQ(b.append_statistics(stats(0, 0, "port 0 (0000:3b:00.0, net_ice) queue 0")),
              AppendResult::Appended);
    EXPECT_EQ(b.append_statistics(stats(0, 1, "")), AppendResult::Appended);
    EXPECT_EQ(b.append_statistics(stats(3, 2, long_text)), AppendResult::Appended);
    // A frame holds statistics or packets, not both.
    const std::byte pkt[60]{};
    EXPECT_EQ(b.append({.timestamp_ns = 1}, std::span<const std::byte>(pkt)),
              AppendResult::FrameFull);
    auto f = b.finish();
    return {f.begin(), f.end()};
}

TEST(Statistics, RoundTripThroughEveryCodec) {
    for (Codec c : {Codec::None, Codec::Lz4, Codec::Zstd}) {
        auto raw = statistics_frame();
        EXPECT_EQ(load_le<uint16_t>(raw.data() + offset::flags), flag::kStatistics);
        auto o = open(
            seal_copy(raw, {.codec = c, .min_compress_bytes = 0, .max_raw_frame_bytes = kFrame}));
        ASSERT_TRUE(o->view.ok()) << to_string(o->view.error());
        const FrameView& v = *o->view;
        EXPECT_TRUE(v.is_statistics());
        EXPECT_TRUE(v.info().flags & flag::kStatistics) << codec_name(c);
        EXPECT_EQ(v.info().packet_count, 0u);
        EXPECT_EQ(v.info().first_packet_index, 500u);
        EXPECT_EQ(v.begin(), v.end()) << "no packet records in a statistics frame";
        std::vector<StatisticsEntry> got(v.statistics().begin(), v.statistics().end());
        ASSERT_EQ(got.size(), 3u);
        EXPECT_EQ(got[0].description, "port 0 (0000:3b:00.0, net_ice) queue 0");
        EXPECT_EQ(got[0].received, 1000u);
        EXPECT_EQ(got[0].nic_dropped, 7u);
        EXPECT_EQ(got[0].accepted, 900u);
        EXPECT_EQ(got[0].dropped, 3u);
        EXPECT_EQ(got[0].delivered, 897u);
        EXPECT_EQ(got[0].time_ns - got[0].start_ns, 5'000'000'000ull);
        EXPECT_EQ(got[1].queue, 1);
        EXPECT_EQ(got[1].description, "");
        EXPECT_EQ(got[2].port, 3);
        EXPECT_EQ(got[2].description.size(), kMaxStatisticsText);
    }
}

// The end-of-stream flag the builder sets survives sealing with every codec,
// stored raw or compressed.
TEST(Statistics, EndOfStreamSurvivesSealing) {
    for (Codec c : {Codec::None, Codec::Lz4, Codec::Zstd}) {
        for (uint32_t min : {0u, 1u << 20}) {
            FrameBuilder b({.max_frame_bytes = kFrame, .snaplen = 2048});
            std::vector<std::byte> buf(kFrame);
            b.begin(buf, 42, 9, 500);
            for (int i = 0; i < 20; ++i)
                ASSERT_EQ(b.append_statistics(stats(0, static_cast<uint16_t>(i), "x")),
                          AppendResult::Appended);
            b.add_flags(flag::kEndOfStream);
            auto f = b.finish();
            auto o = open(
                seal_copy({f.begin(), f.end()},
                          {.codec = c, .min_compress_bytes = min, .max_raw_frame_bytes = kFrame}));
            ASSERT_TRUE(o->view.ok()) << to_string(o->view.error());
            EXPECT_TRUE(o->view->info().flags & flag::kEndOfStream) << codec_name(c) << min;
            EXPECT_TRUE(o->view->is_statistics());
        }
    }
}

TEST(Statistics, MalformedEntriesAreRefused) {
    const auto good = seal_copy(statistics_frame(), {.codec = Codec::None});
    ASSERT_TRUE(open(good)->view.ok());
    auto error = [](std::vector<std::byte> f) {
        reseal(f);
        auto o = open(std::move(f));
        return o->view.ok() ? WireError{} : o->view.error();
    };
    const std::size_t e0 = kHeaderSize;
    {  // packets counted in a statistics frame
        auto f = good;
        store_le<uint32_t>(f.data() + offset::packet_count, 1);
        EXPECT_EQ(error(f), WireError::StatisticsInvalid);
    }
    {  // a description longer than allowed
        auto f = good;
        store_le<uint16_t>(f.data() + e0 + statistics_offset::text_len, 256);
        EXPECT_EQ(error(f), WireError::StatisticsInvalid);
    }
    {  // a description running past the payload
        auto f = good;
        store_le<uint16_t>(f.data() + e0 + statistics_offset::text_len, 255);
        EXPECT_NE(error(f), WireError{});
    }
    {  // reserved bytes
        auto f = good;
        store_le<uint16_t>(f.data() + e0 + statistics_offset::reserved, 1);
        EXPECT_EQ(error(f), WireError::StatisticsInvalid);
    }
    {  // padding after a description
        auto f = good;
        const std::size_t text = load_le<uint16_t>(f.data() + e0 + statistics_offset::text_len);
        f[e0 + kStatisticsEntrySize + text] = std::byte{1};
        EXPECT_EQ(error(f), WireError::StatisticsInvalid);
    }
    {  // a payload that ends inside an entry
        auto f = good;
        const uint32_t raw = load_le<uint32_t>(f.data() + offset::raw_len) - 8;
        store_le<uint32_t>(f.data() + offset::raw_len, raw);
        store_le<uint32_t>(f.data() + offset::stored_len, raw);
        f.resize(kHeaderSize + raw);
        EXPECT_EQ(error(f), WireError::StatisticsInvalid);
    }
}

TEST(TunnelMeta, RecordsWithAndWithoutMetadataRoundTrip) {
    const auto pkts = testing::capture_like(60, 3);
    FrameBuilder b({.max_frame_bytes = kFrame, .snaplen = 2048});
    std::vector<std::byte> buf(kFrame);
    b.begin(buf, 42, 1, 0);
    TunnelMeta m;
    m.kind = TunnelKind::Erspan3;
    m.bits = 0x3;
    m.session = 1023;
    m.timestamp = 0xdeadbeef;
    m.index = 17;
    m.vlan = 0x7123;
    std::size_t n = 0;
    for (std::size_t i = 0; i < pkts.size(); ++i) {
        RecordMeta meta = pkts[i].meta;
        if (i % 3 == 0) meta.tunnel = &m;
        if (b.append(meta, pkts[i].bytes) == AppendResult::FrameFull) break;
        ++n;
    }
    ASSERT_GT(n, 10u);
    auto f = b.finish();
    EXPECT_EQ(load_le<uint16_t>(f.data() + offset::flags), flag::kRecordMeta);
    for (Codec c : {Codec::None, Codec::Lz4, Codec::Zstd}) {
        auto o =
            open(seal_copy({f.begin(), f.end()},
                           {.codec = c, .min_compress_bytes = 0, .max_raw_frame_bytes = kFrame}));
        ASSERT_TRUE(o->view.ok()) << to_string(o->view.error());
        std::size_t i = 0;
        for (const Record& r : *o->view) {
            ASSERT_LT(i, n);
            EXPECT_EQ(r.has_tunnel, i % 3 == 0) << i;
            EXPECT_EQ((r.flags & record_flag::kTunnelMeta) != 0, i % 3 == 0) << i;
            EXPECT_TRUE(std::equal(r.data.begin(), r.data.end(), pkts[i].bytes.begin())) << i;
            EXPECT_EQ(r.data.size(), pkts[i].bytes.size()) << i;
            if (r.has_tunnel) {
                EXPECT_EQ(r.tunnel.kind, TunnelKind::Erspan3);
                EXPECT_EQ(r.tunnel.bits, 3);
                EXPECT_EQ(r.tunnel.session, 1023);
                EXPECT_EQ(r.tunnel.timestamp, 0xdeadbeefu);
                EXPECT_EQ(r.tunnel.index, 17u);
                EXPECT_EQ(r.tunnel.vlan, 0x7123);
            }
            ++i;
        }
        EXPECT_EQ(i, n);
    }
}

// Without flag::kRecordMeta the record flag is reserved: passed through, and
// the record is read without a metadata block (what older senders wrote).
TEST(TunnelMeta, TheRecordFlagMeansNothingWithoutTheFrameFlag) {
    const auto pkts = testing::capture_like(5, 4);
    FrameBuilder b({.max_frame_bytes = kFrame, .snaplen = 2048});
    std::vector<std::byte> buf(kFrame);
    b.begin(buf, 42, 1, 0);
    for (const auto& p : pkts) {
        RecordMeta meta = p.meta;
        meta.flags |= record_flag::kTunnelMeta;  // no block given: the builder clears it
        ASSERT_EQ(b.append(meta, p.bytes), AppendResult::Appended);
    }
    auto f = b.finish();
    std::vector<std::byte> raw(f.begin(), f.end());
    EXPECT_EQ(load_le<uint16_t>(raw.data() + offset::flags), 0);
    // Set the record flag by hand on the first record: still read as a plain record.
    const std::size_t flags_at = kHeaderSize + record_offset::flags;
    store_le<uint32_t>(raw.data() + flags_at,
                       load_le<uint32_t>(raw.data() + flags_at) | record_flag::kTunnelMeta);
    auto o = open(seal_copy(raw, {.codec = Codec::None}));
    ASSERT_TRUE(o->view.ok()) << to_string(o->view.error());
    const Record first = *o->view->begin();
    EXPECT_FALSE(first.has_tunnel);
    EXPECT_EQ(first.data.size(), pkts[0].bytes.size());
    EXPECT_TRUE(std::equal(first.data.begin(), first.data.end(), pkts[0].bytes.begin()));
}

TEST(TunnelMeta, ReservedBytesOfTheBlockMustBeZero) {
    const auto pkts = testing::capture_like(2, 5);
    FrameBuilder b({.max_frame_bytes = kFrame, .snaplen = 2048});
    std::vector<std::byte> buf(kFrame);
    b.begin(buf, 42, 1, 0);
    TunnelMeta m;
    RecordMeta meta = pkts[0].meta;
    meta.tunnel = &m;
    ASSERT_EQ(b.append(meta, pkts[0].bytes), AppendResult::Appended);
    auto f = b.finish();
    std::vector<std::byte> raw(f.begin(), f.end());
    store_le<uint16_t>(raw.data() + kHeaderSize + kRecordHeaderSize + tunnel_offset::reserved, 1);
    auto sealed = seal_copy(raw, {.codec = Codec::None});
    auto o = open(sealed);
    ASSERT_FALSE(o->view.ok());
    EXPECT_EQ(o->view.error(), WireError::RecordPaddingNotZero);
}

}  // namespace
}  // namespace sluice::wire
