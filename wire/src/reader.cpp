#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStaticDCtx: no allocation after construction
#include "sluice/wire/reader.hpp"

#include <stdexcept>

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "sluice/simd/crc32c.hpp"

namespace sluice::wire {

using wire::load_le;
using wire::round_up8;

Result<FrameInfo> parse_header(std::span<const std::byte> b, const ReaderLimits& limits) {
    if (b.size() < 8) return WireError::Truncated;
    if (load_le<uint32_t>(b.data() + offset::magic) != kMagic) return WireError::BadMagic;
    // Every version keeps magic, version, header_words in place and the CRC
    // in the header's last 4 bytes, so integrity is checked before the
    // version: a corrupted version byte reads as corruption, not as a newer
    // sender.
    const std::size_t words = static_cast<uint8_t>(b[offset::header_words]);
    if (words < 2) return WireError::BadHeaderSize;
    const std::size_t hsize = words * 8;
    if (b.size() < hsize) return WireError::Truncated;
    if (simd::crc32c(b.data(), hsize - 4) != load_le<uint32_t>(b.data() + hsize - 4))
        return WireError::HeaderCrcMismatch;
    FrameInfo info;
    info.version = static_cast<uint8_t>(b[offset::version]);
    if (info.version != kVersion) return WireError::UnsupportedVersion;
    if (hsize != kHeaderSize) return WireError::BadHeaderSize;
    const uint8_t codec = static_cast<uint8_t>(b[offset::codec]);
    if (codec >= kCodecCount) return WireError::UnknownCodec;
    info.codec = static_cast<Codec>(codec);
    info.flags = load_le<uint16_t>(b.data() + offset::flags);
    if (info.flags & ~flag::kInformationalMask & ~flag::kKnownRequired)
        return WireError::UnsupportedFlags;
    info.packet_count = load_le<uint32_t>(b.data() + offset::packet_count);
    info.stream_id = load_le<uint64_t>(b.data() + offset::stream_id);
    info.sequence = load_le<uint64_t>(b.data() + offset::sequence);
    info.first_packet_index = load_le<uint64_t>(b.data() + offset::first_packet_index);
    info.raw_len = load_le<uint32_t>(b.data() + offset::raw_len);
    info.stored_len = load_le<uint32_t>(b.data() + offset::stored_len);
    info.payload_crc = load_le<uint32_t>(b.data() + offset::payload_crc);
    if (info.raw_len > limits.max_raw_len || info.stored_len > limits.max_stored_len)
        return WireError::FrameTooLarge;
    if (info.raw_len % 8 != 0) return WireError::BadLength;
    if (info.codec == Codec::None ? info.stored_len != info.raw_len
                                  : info.stored_len >= info.raw_len || info.stored_len == 0)
        return WireError::BadLength;
    if (uint64_t{info.packet_count} * kRecordHeaderSize > info.raw_len) return WireError::BadLength;
    // The receiver's next expected values (sequence + 1, index + count) must
    // exist: a wrap would make every later frame look new (or old) again.
    if (info.sequence == UINT64_MAX || info.first_packet_index > UINT64_MAX - info.packet_count)
        return WireError::CounterOverflow;
    return info;
}

struct FrameReader::State {
    ReaderLimits limits;
    std::unique_ptr<std::byte[]> zstd_workspace;
    ZSTD_DCtx* zstd = nullptr;  // lives in zstd_workspace
};

FrameReader::FrameReader(const ReaderLimits& limits) : s_(std::make_unique<State>()) {
    s_->limits = limits;
    const std::size_t ws = ZSTD_estimateDCtxSize();
    s_->zstd_workspace = std::make_unique<std::byte[]>(ws);
    s_->zstd = ZSTD_initStaticDCtx(s_->zstd_workspace.get(), ws);
    if (!s_->zstd) throw std::runtime_error("zstd rejected its workspace (library mismatch?)");
}

FrameReader::~FrameReader() = default;
FrameReader::FrameReader(FrameReader&&) noexcept = default;
FrameReader& FrameReader::operator=(FrameReader&&) noexcept = default;

const ReaderLimits& FrameReader::limits() const {
    return s_->limits;
}

namespace {

// The last `pad` bytes before `end` are zero: one load and a mask of the
// 8-byte word they end.
bool padding_zero(const std::byte* end, std::size_t pad) {
    if (pad == 0) return true;
    return load_le<uint64_t>(end - 8) >> (64 - 8 * pad) == 0;
}

// Checks every entry of a statistics payload: bounds, text length, reserved
// bytes and padding.
WireError check_statistics(std::span<const std::byte> p, uint32_t count) {
    if (count != 0) return WireError::StatisticsInvalid;
    std::size_t pos = 0;
    while (pos < p.size()) {
        if (p.size() - pos < kStatisticsEntrySize) return WireError::StatisticsInvalid;
        const std::byte* e = p.data() + pos;
        const uint16_t text = load_le<uint16_t>(e + statistics_offset::text_len);
        if (text > kMaxStatisticsText || load_le<uint16_t>(e + statistics_offset::reserved) != 0)
            return WireError::StatisticsInvalid;
        const std::size_t size = statistics_entry_size(text);
        if (size > p.size() - pos) return WireError::StatisticsInvalid;
        if (!padding_zero(e + size, size - kStatisticsEntrySize - text))
            return WireError::StatisticsInvalid;
        pos += size;
    }
    return WireError{};
}

// Checks every record of a raw payload: bounds, lengths, padding, count.
// With `meta` (flag::kRecordMeta), a record flagged kTunnelMeta holds a
// tunnel metadata block whose reserved bytes must be zero.
WireError check_records(std::span<const std::byte> p, uint32_t count, const ReaderLimits& lim,
                        bool meta) {
    std::size_t pos = 0;
    uint32_t n = 0;
    while (pos < p.size()) {
        if (p.size() - pos < kRecordHeaderSize) return WireError::RecordTruncated;
        const std::byte* r = p.data() + pos;
        const uint32_t caplen = load_le<uint32_t>(r + record_offset::caplen);
        const uint32_t orig = load_le<uint32_t>(r + record_offset::orig_len);
        if (caplen > orig || caplen > lim.max_caplen) return WireError::RecordLengthInvalid;
        const bool tunnel =
            meta && (load_le<uint32_t>(r + record_offset::flags) & record_flag::kTunnelMeta);
        const std::size_t size = record_size(caplen, tunnel);
        if (size > p.size() - pos) return WireError::RecordTruncated;
        // The padding is the top (size - 24 - caplen) bytes of the record's
        // last 8-byte word: one load and a mask instead of a byte loop.
        const std::size_t extra = tunnel ? kTunnelMetaSize : 0;
        if (!padding_zero(r + size, size - kRecordHeaderSize - extra - caplen))
            return WireError::RecordPaddingNotZero;
        if (tunnel && load_le<uint16_t>(r + kRecordHeaderSize + tunnel_offset::reserved) != 0)
            return WireError::RecordPaddingNotZero;
        if (++n > count) return WireError::PacketCountMismatch;
        pos += size;
    }
    return n == count ? WireError{} : WireError::PacketCountMismatch;
}

}  // namespace

Result<FrameView> FrameReader::open(std::span<const std::byte> frame,
                                    std::span<std::byte> scratch) {
    auto hdr = parse_header(frame, s_->limits);
    if (!hdr) return hdr.error();
    const FrameInfo& info = *hdr;
    if (frame.size() < info.frame_len()) return WireError::Truncated;
    const std::span<const std::byte> stored = frame.subspan(kHeaderSize, info.stored_len);
    const auto crc_ok = [&] {
        return simd::crc32c(stored.data(), stored.size()) == info.payload_crc;
    };

    std::span<const std::byte> payload = stored;
    if (info.codec == Codec::None) {
        if (!crc_ok()) return WireError::PayloadCrcMismatch;
    } else {
        if (scratch.size() < info.raw_len) return WireError::ScratchTooSmall;
        // Decompressed first, checked after: the decoder's reads of the
        // stored bytes from memory overlap with its work, and the CRC then
        // reads them from the cache (docs/performance.md, "wire"). Both
        // decoders are safe on any input (the CRC is no authentication: a
        // hostile peer sends valid ones), and a frame that fails either way
        // is reported as the reader's check order says: a payload whose CRC
        // is wrong is PayloadCrcMismatch, whatever the decoder made of it.
        WireError decoded{};
        if (info.codec == Codec::Lz4) {
            const int r = LZ4_decompress_safe(reinterpret_cast<const char*>(stored.data()),
                                              reinterpret_cast<char*>(scratch.data()),
                                              static_cast<int>(stored.size()),
                                              static_cast<int>(info.raw_len));
            if (r < 0)
                decoded = WireError::DecompressFailed;
            else if (static_cast<uint32_t>(r) != info.raw_len)
                decoded = WireError::DecompressedSizeMismatch;
        } else {
            const std::size_t r = ZSTD_decompressDCtx(s_->zstd, scratch.data(), info.raw_len,
                                                      stored.data(), stored.size());
            if (ZSTD_isError(r))
                decoded = ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall
                              ? WireError::DecompressedSizeMismatch
                              : WireError::DecompressFailed;
            else if (r != info.raw_len)
                decoded = WireError::DecompressedSizeMismatch;
        }
        if (!crc_ok()) return WireError::PayloadCrcMismatch;
        if (decoded != WireError{}) return decoded;
        payload = scratch.first(info.raw_len);
    }
    const WireError e = (info.flags & flag::kStatistics)
                            ? check_statistics(payload, info.packet_count)
                            : check_records(payload, info.packet_count, s_->limits,
                                            (info.flags & flag::kRecordMeta) != 0);
    if (e != WireError{}) return e;
    return FrameView(info, payload);
}

}  // namespace sluice::wire
