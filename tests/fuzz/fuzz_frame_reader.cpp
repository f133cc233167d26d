// libFuzzer target: FrameReader on arbitrary bytes.
//
// Input: one mode byte, then the frame. Mode bit 0 recomputes the header CRC
// and bit 1 the payload CRC before reading, so mutations reach the codecs
// and the record walk instead of stopping at a CRC mismatch; bit 2 reads
// with tight limits; bit 3 gives a decompression buffer one byte short.
//
// Beyond "no crash, no out-of-bounds access" (ASan + UBSan), every accepted
// frame must satisfy the format's invariants, and rebuilding its records with
// FrameBuilder must give the same payload bytes: the reader accepts exactly
// the canonical encoding. A violation traps.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "sluice/simd/crc32c.hpp"
#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice::wire;

void fix_crcs(std::byte* f, std::size_t n, uint8_t mode) {
    if (n < 8) return;
    if (mode & 2 && n >= kHeaderSize) {
        const std::size_t stored = load_le<uint32_t>(f + offset::stored_len);
        const std::size_t avail = std::min(stored, n - kHeaderSize);
        store_le<uint32_t>(f + offset::payload_crc, sluice::simd::crc32c(f + kHeaderSize, avail));
    }
    if (mode & 1) {
        const std::size_t hsize = std::size_t{static_cast<uint8_t>(f[offset::header_words])} * 8;
        if (hsize >= 8 && hsize <= n)
            store_le<uint32_t>(f + hsize - 4, sluice::simd::crc32c(f, hsize - 4));
    }
}

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// Rebuilds the records with FrameBuilder, seals with LZ4, reads back.
void rebuild_and_compare(const FrameView& v) {
    const FrameInfo& info = v.info();
    if (info.packet_count == 0 || info.raw_len > (1u << 20)) return;
    uint32_t snap = 1;
    for (const Record& r : v) {
        snap = std::max(snap, r.caplen);
        // A reserved tunnel-metadata bit outside a kRecordMeta frame: the
        // builder never writes one, so the bytes cannot be rebuilt.
        if ((r.flags & record_flag::kTunnelMeta) && !r.has_tunnel) return;
    }
    const uint32_t max = static_cast<uint32_t>(kHeaderSize + info.raw_len);
    FrameBuilder b({.max_frame_bytes = max, .snaplen = snap});
    auto buf = std::make_unique<std::byte[]>(max);
    b.begin({buf.get(), max}, info.stream_id, info.sequence, info.first_packet_index);
    for (const Record& r : v) {
        RecordMeta m{r.timestamp_ns, r.orig_len, r.port, r.queue, r.flags};
        if (r.has_tunnel) m.tunnel = &r.tunnel;
        check(b.append(m, r.data) == AppendResult::Appended);
    }
    auto raw = b.finish();
    check(raw.size() == max);
    check(std::memcmp(raw.data() + kHeaderSize, v.payload().data(), info.raw_len) == 0);

    static FrameEncoder enc({.codec = Codec::Lz4,
                             .min_compress_bytes = 0,
                             .max_raw_frame_bytes = (1u << 20) + kHeaderSize});
    auto out = std::make_unique<std::byte[]>(FrameEncoder::max_sealed_size(max));
    auto sealed = enc.seal(raw, {out.get(), FrameEncoder::max_sealed_size(max)});
    check(sealed.ok());
    static FrameReader reader;
    auto scratch = std::make_unique<std::byte[]>(info.raw_len);
    auto again = reader.open(sealed->frame, {scratch.get(), info.raw_len});
    check(again.ok());
    check(again->info().packet_count == info.packet_count);
    check(std::memcmp(again->payload().data(), v.payload().data(), info.raw_len) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    const std::size_t n = size - 1;
    // Exactly sized copies: any access outside the frame is an ASan report.
    auto frame = std::make_unique<std::byte[]>(n ? n : 1);
    std::memcpy(frame.get(), data + 1, n);
    fix_crcs(frame.get(), n, mode);

    static const ReaderLimits loose{};
    static const ReaderLimits tight{
        .max_raw_len = 1 << 16, .max_stored_len = 1 << 16, .max_caplen = 2048};
    static FrameReader loose_reader(loose), tight_reader(tight);
    const bool use_tight = mode & 4;
    const ReaderLimits& lim = use_tight ? tight : loose;
    FrameReader& reader = use_tight ? tight_reader : loose_reader;

    const std::span<const std::byte> bytes(frame.get(), n);
    auto hdr = parse_header(bytes, lim);
    std::size_t scratch_len = 0;
    if (hdr) {
        check(hdr->raw_len <= lim.max_raw_len && hdr->stored_len <= lim.max_stored_len);
        check(hdr->raw_len % 8 == 0);
        scratch_len = hdr->raw_len;
        if (mode & 8 && scratch_len) --scratch_len;
    }
    auto scratch = std::make_unique<std::byte[]>(scratch_len ? scratch_len : 1);
    auto v = reader.open(bytes, {scratch.get(), scratch_len});
    if (!v) {
        check(!to_string(v.error()).empty());
        return 0;
    }
    check(hdr.ok());
    const FrameInfo& info = v->info();
    check(info.frame_len() <= n);
    check(v->payload().size() == info.raw_len);
    uint64_t count = 0, bytes_seen = 0;
    uint8_t sink = 0;
    for (const Record& r : *v) {
        check(r.caplen <= r.orig_len && r.caplen <= lim.max_caplen);
        check(r.data.size() == r.caplen);
        for (std::byte b : r.data)
            sink ^= static_cast<uint8_t>(b);
        bytes_seen += record_size(r.caplen);
        ++count;
    }
    check(count == info.packet_count);
    check(bytes_seen == info.raw_len);
    asm volatile("" : : "r"(sink));
    rebuild_and_compare(*v);
    return 0;
}
