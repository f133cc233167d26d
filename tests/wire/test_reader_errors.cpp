// Every kind of malformed input yields its own WireError, and the reader
// never reads outside the frame (ASan runs this suite).
#include <memory>

#include "wire_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::wire {
namespace {

using testing::reseal;
using wire::load_le;
using wire::store_le;

constexpr uint32_t kFrame = 65536;

std::vector<std::byte> make(Codec codec, std::size_t packets = 100) {
    const auto pkts = testing::capture_like(packets, 21);
    std::size_t n = 0;
    const auto raw = testing::build_frame(pkts, {.max_frame_bytes = kFrame, .snaplen = 2048}, n);
    return testing::seal_copy(raw, {.codec = codec, .max_raw_frame_bytes = kFrame});
}

WireError open_error(const std::vector<std::byte>& f, const ReaderLimits& lim = {},
                     std::size_t scratch_len = kFrame) {
    // Exactly sized heap copies: any read past the frame or write past the
    // scratch buffer is an ASan error.
    std::unique_ptr<std::byte[]> frame(new std::byte[f.size()]);
    std::copy(f.begin(), f.end(), frame.get());
    std::unique_ptr<std::byte[]> scratch(new std::byte[scratch_len + 1]);
    FrameReader reader(lim);
    auto v = reader.open({frame.get(), f.size()}, {scratch.get(), scratch_len});
    return v.ok() ? WireError{} : v.error();
}

template <class T>
void set(std::vector<std::byte>& f, std::size_t off, T v) {
    store_le<T>(f.data() + off, v);
}

TEST(ReaderErrors, IntactFramesOpen) {
    for (Codec c : {Codec::None, Codec::Lz4, Codec::Zstd})
        EXPECT_EQ(open_error(make(c)), WireError{}) << codec_name(c);
}

TEST(ReaderErrors, Truncated) {
    auto f = make(Codec::Lz4);
    for (std::size_t n : {0u, 7u, 8u, 63u}) {
        std::vector<std::byte> part(f.begin(), f.begin() + static_cast<long>(n));
        EXPECT_EQ(open_error(part), WireError::Truncated) << n;
    }
    f.pop_back();
    EXPECT_EQ(open_error(f), WireError::Truncated);
}

TEST(ReaderErrors, BadMagic) {
    auto f = make(Codec::None);
    f[0] = std::byte{'X'};
    EXPECT_EQ(open_error(f), WireError::BadMagic);
}

TEST(ReaderErrors, BadHeaderSize) {
    auto f = make(Codec::None);
    f[offset::header_words] = std::byte{1};
    EXPECT_EQ(open_error(f), WireError::BadHeaderSize);
    // A well-formed header of another size (with its CRC in its last 4 bytes).
    auto g = make(Codec::None);
    g[offset::header_words] = std::byte{9};
    store_le<uint32_t>(g.data() + 68, simd::crc32c(g.data(), 68));
    EXPECT_EQ(open_error(g), WireError::BadHeaderSize);
}

TEST(ReaderErrors, HeaderCrcMismatch) {
    for (std::size_t at : {4u, 12u, 20u, 40u, 50u, 59u, 60u}) {
        auto f = make(Codec::Lz4);
        f[at] ^= std::byte{0x10};
        EXPECT_EQ(open_error(f), WireError::HeaderCrcMismatch) << "byte " << at;
    }
}

TEST(ReaderErrors, UnsupportedVersion) {
    auto f = make(Codec::None);
    f[offset::version] = std::byte{2};
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::UnsupportedVersion);
}

TEST(ReaderErrors, UnknownCodec) {
    auto f = make(Codec::None);
    f[offset::codec] = std::byte{3};
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::UnknownCodec);
}

TEST(ReaderErrors, UnsupportedFlagsButUnknownInformationalFlagsAreFine) {
    auto f = make(Codec::None);
    set<uint16_t>(f, offset::flags, 0x0400);  // bits 8 and 9 are defined (statistics, tunnels)
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::UnsupportedFlags);
    set<uint16_t>(f, offset::flags, 0x8000);
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::UnsupportedFlags);
    set<uint16_t>(f, offset::flags, 0x0080);
    reseal(f);
    EXPECT_EQ(open_error(f), WireError{});
}

TEST(ReaderErrors, FrameTooLarge) {
    auto f = make(Codec::Zstd);
    const auto raw = load_le<uint32_t>(f.data() + offset::raw_len);
    const auto stored = load_le<uint32_t>(f.data() + offset::stored_len);
    EXPECT_EQ(open_error(f, {.max_raw_len = raw - 8}), WireError::FrameTooLarge);
    EXPECT_EQ(open_error(f, {.max_stored_len = stored - 1}), WireError::FrameTooLarge);
    EXPECT_EQ(open_error(f, {.max_raw_len = raw, .max_stored_len = stored}), WireError{});
}

TEST(ReaderErrors, BadLength) {
    {  // raw length not a multiple of 8
        auto f = make(Codec::Lz4);
        set<uint32_t>(f, offset::raw_len, load_le<uint32_t>(f.data() + offset::raw_len) + 3);
        reseal(f);
        EXPECT_EQ(open_error(f), WireError::BadLength);
    }
    {  // uncompressed, stored != raw
        auto f = make(Codec::None);
        set<uint32_t>(f, offset::stored_len, load_le<uint32_t>(f.data() + offset::raw_len) - 8);
        reseal(f);
        EXPECT_EQ(open_error(f), WireError::BadLength);
    }
    {  // compressed but not smaller
        auto f = make(Codec::Lz4);
        set<uint32_t>(f, offset::raw_len, load_le<uint32_t>(f.data() + offset::stored_len) & ~7u);
        reseal(f);
        EXPECT_EQ(open_error(f), WireError::BadLength);
    }
    {  // more packets than record headers could fit
        auto f = make(Codec::None, 2);
        set<uint32_t>(f, offset::packet_count, 100000);
        reseal(f);
        EXPECT_EQ(open_error(f), WireError::BadLength);
    }
}

TEST(ReaderErrors, CounterOverflow) {
    // Sequence 2^64-1 would make the receiver's next expected sequence 0:
    // every later frame a duplicate, or every replay new again.
    auto f = make(Codec::None, 3);
    set<uint64_t>(f, offset::sequence, UINT64_MAX);
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::CounterOverflow);
    set<uint64_t>(f, offset::sequence, UINT64_MAX - 1);  // the last one there is
    reseal(f);
    EXPECT_EQ(open_error(f), WireError{});
    // Packet indexes that would pass 2^64 within the frame.
    set<uint64_t>(f, offset::first_packet_index, UINT64_MAX - 1);
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::CounterOverflow);
    set<uint64_t>(f, offset::first_packet_index, UINT64_MAX - 3);
    reseal(f);
    EXPECT_EQ(open_error(f), WireError{});
}

TEST(ReaderErrors, PayloadCrcMismatch) {
    for (Codec c : {Codec::None, Codec::Lz4, Codec::Zstd}) {
        auto f = make(c);
        f[kHeaderSize + 100] ^= std::byte{1};
        EXPECT_EQ(open_error(f), WireError::PayloadCrcMismatch) << codec_name(c);
        auto g = make(c);
        g.back() ^= std::byte{0x80};
        EXPECT_EQ(open_error(g), WireError::PayloadCrcMismatch) << codec_name(c);
        // A compressed payload is decoded before its CRC is checked: one the
        // decoder also rejects is still reported by the check order, as a
        // CRC mismatch, not as a decompression failure.
        if (c == Codec::None) continue;
        auto h = make(c);
        for (std::size_t i = 0; i < 16; ++i)
            h[kHeaderSize + i] = std::byte{0xff};
        EXPECT_EQ(open_error(h), WireError::PayloadCrcMismatch) << codec_name(c);
    }
}

TEST(ReaderErrors, ScratchTooSmall) {
    auto f = make(Codec::Lz4);
    const auto raw = load_le<uint32_t>(f.data() + offset::raw_len);
    EXPECT_EQ(open_error(f, {}, raw - 1), WireError::ScratchTooSmall);
    EXPECT_EQ(open_error(f, {}, raw), WireError{});
    // Uncompressed frames need no scratch at all.
    EXPECT_EQ(open_error(make(Codec::None), {}, 0), WireError{});
}

TEST(ReaderErrors, DecompressFailed) {
    for (Codec c : {Codec::Lz4, Codec::Zstd}) {
        auto f = make(c);
        // Garbage where the compressed stream starts.
        for (std::size_t i = 0; i < 16; ++i)
            f[kHeaderSize + i] = std::byte{0xff};
        reseal(f);
        EXPECT_EQ(open_error(f), WireError::DecompressFailed) << codec_name(c);
    }
}

TEST(ReaderErrors, DecompressedSizeMismatch) {
    for (Codec c : {Codec::Lz4, Codec::Zstd}) {
        for (int delta : {-8, 8}) {
            auto f = make(c);
            set<uint32_t>(
                f, offset::raw_len,
                load_le<uint32_t>(f.data() + offset::raw_len) + static_cast<uint32_t>(delta));
            reseal(f);
            const WireError e = open_error(f);
            // LZ4 reports a too-small output as a failure of the stream.
            if (c == Codec::Lz4 && delta < 0) {
                EXPECT_EQ(e, WireError::DecompressFailed);
            } else {
                EXPECT_EQ(e, WireError::DecompressedSizeMismatch) << codec_name(c) << delta;
            }
        }
    }
}

// For the record checks: an uncompressed frame, its first record at 64.
constexpr std::size_t kRec = kHeaderSize;

TEST(ReaderErrors, RecordTruncated) {
    auto f = make(Codec::None, 3);
    // The last record claims more data than is left.
    std::size_t pos = kRec;
    for (int i = 0; i < 2; ++i)
        pos += record_size(load_le<uint32_t>(f.data() + pos + record_offset::caplen));
    set<uint32_t>(f, pos + record_offset::caplen, 4000);
    set<uint32_t>(f, pos + record_offset::orig_len, 4000);
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::RecordTruncated);
    // The payload ends inside a record header.
    auto g = make(Codec::None, 3);
    set<uint32_t>(g, offset::packet_count, 4);
    const uint32_t raw = load_le<uint32_t>(g.data() + offset::raw_len);
    g.insert(g.end(), 16, std::byte{0});
    set<uint32_t>(g, offset::raw_len, raw + 16);
    set<uint32_t>(g, offset::stored_len, raw + 16);
    reseal(g);
    EXPECT_EQ(open_error(g), WireError::RecordTruncated);
}

TEST(ReaderErrors, RecordLengthInvalid) {
    auto f = make(Codec::None, 3);
    set<uint32_t>(f, kRec + record_offset::orig_len,
                  load_le<uint32_t>(f.data() + kRec + record_offset::caplen) - 1);
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::RecordLengthInvalid);
    auto g = make(Codec::None, 3);
    const uint32_t cap = load_le<uint32_t>(g.data() + kRec + record_offset::caplen);
    EXPECT_EQ(open_error(g, {.max_caplen = cap - 1}), WireError::RecordLengthInvalid);
}

TEST(ReaderErrors, RecordPaddingNotZero) {
    auto f = make(Codec::None, 50);
    std::size_t pos = kRec;
    for (;;) {
        const uint32_t cap = load_le<uint32_t>(f.data() + pos + record_offset::caplen);
        if (cap % 8 != 0) {
            f[pos + kRecordHeaderSize + cap] = std::byte{1};
            break;
        }
        pos += record_size(cap);
    }
    reseal(f);
    EXPECT_EQ(open_error(f), WireError::RecordPaddingNotZero);
}

TEST(ReaderErrors, PacketCountMismatch) {
    for (int delta : {-1, 1}) {
        auto f = make(Codec::None, 10);
        set<uint32_t>(f, offset::packet_count, static_cast<uint32_t>(10 + delta));
        reseal(f);
        EXPECT_EQ(open_error(f), WireError::PacketCountMismatch) << delta;
    }
}

TEST(EncoderErrors, NotAFinishedFrameBufferTooSmallFrameTooLarge) {
    const auto pkts = testing::capture_like(100, 22);
    std::size_t n = 0;
    auto raw = testing::build_frame(pkts, {.max_frame_bytes = kFrame, .snaplen = 2048}, n);
    FrameEncoder enc({.codec = Codec::Lz4, .max_raw_frame_bytes = kFrame});
    std::vector<std::byte> out(FrameEncoder::max_sealed_size(raw.size()));

    auto junk = raw;
    junk[0] = std::byte{0};
    EXPECT_EQ(enc.seal(junk, out).error(), WireError::NotAFinishedFrame);
    auto cut = raw;
    cut.pop_back();
    EXPECT_EQ(enc.seal(cut, out).error(), WireError::NotAFinishedFrame);
    auto compressed = testing::seal_copy(raw, {.codec = Codec::Lz4});
    EXPECT_EQ(enc.seal(compressed, out).error(), WireError::NotAFinishedFrame);

    std::vector<std::byte> small(out.size() - 1);
    EXPECT_EQ(enc.seal(raw, small).error(), WireError::BufferTooSmall);

    FrameEncoder tiny({.codec = Codec::Lz4, .max_raw_frame_bytes = 4096});
    EXPECT_EQ(tiny.seal(raw, out).error(), WireError::FrameTooLarge);

    EXPECT_TRUE(enc.seal(raw, out).ok());
}

TEST(EncoderErrors, RejectsBadConfiguration) {
    EXPECT_THROW(FrameEncoder({.codec = Codec::Lz4, .lz4_acceleration = 0}), std::invalid_argument);
    EXPECT_THROW(FrameEncoder({.codec = Codec::Zstd, .zstd_level = 0}), std::invalid_argument);
    EXPECT_THROW(FrameEncoder({.codec = Codec::Zstd, .zstd_level = 99}), std::invalid_argument);
    EXPECT_THROW(FrameEncoder({.codec = static_cast<Codec>(9)}), std::invalid_argument);
    EXPECT_THROW(FrameEncoder({.codec = Codec::None, .max_raw_frame_bytes = 10}),
                 std::invalid_argument);
}

TEST(ReaderErrors, EveryTruncationOfEveryCodecIsRejectedWithoutOverreading) {
    for (Codec c : {Codec::None, Codec::Lz4, Codec::Zstd}) {
        const auto f = make(c, 20);
        for (std::size_t n = 0; n < f.size(); n += 1 + n / 64) {
            std::vector<std::byte> part(f.begin(), f.begin() + static_cast<long>(n));
            EXPECT_EQ(open_error(part), WireError::Truncated) << codec_name(c) << " " << n;
        }
    }
}

}  // namespace
}  // namespace sluice::wire
