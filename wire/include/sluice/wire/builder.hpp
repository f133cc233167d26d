// FrameBuilder: appends captured packets (one or several segments each, e.g.
// an mbuf chain) as records into a frame buffer the caller owns.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "sluice/wire/format.hpp"
#include "sluice/wire/le.hpp"

namespace sluice::wire {

// One contiguous piece of a packet.
struct Segment {
    const std::byte* data = nullptr;
    uint32_t len = 0;
};

// Everything a record keeps besides the bytes.
struct RecordMeta {
    uint64_t timestamp_ns = 0;  // nanoseconds since the Unix epoch, UTC
    uint32_t orig_len = 0;      // length on the wire; 0 or less than the segments: their total
    uint16_t port = 0;
    uint16_t queue = 0;
    uint32_t flags = 0;  // record_flag bits
    // A tunnel metadata block for the record (record_flag::kTunnelMeta is set
    // and the frame gets flag::kRecordMeta), or none.
    const TunnelMeta* tunnel = nullptr;
};

struct BuilderLimits {
    uint32_t max_frame_bytes = 1u << 20;  // header + records, at most
    uint32_t snaplen = 65535;             // bytes kept per packet
};

enum class AppendResult : uint8_t {
    Appended,   // the record is in the frame
    FrameFull,  // nothing was written: finish() this frame and append to the next
};

class FrameBuilder {
  public:
    // Throws std::invalid_argument unless 1 <= snaplen <= kMaxSnaplen and
    // min_frame_bytes(snaplen) <= max_frame_bytes <= kMaxFrameBytes.
    explicit FrameBuilder(const BuilderLimits& limits);

    // Starts a frame in `buffer` (from a pool; the builder never owns memory).
    // The frame grows up to min(buffer.size(), max_frame_bytes); with
    // buffer.size() >= max_frame_bytes an empty frame always accepts one
    // packet of any length. A buffer below kHeaderSize holds nothing: every
    // append() says FrameFull and finish() returns an empty span.
    void begin(std::span<std::byte> buffer, uint64_t stream_id, uint64_t sequence,
               uint64_t first_packet_index);

    // Copies the packet made of `segments` (in order), keeping
    // min(total length, snaplen) bytes. Cost: one record header store and a
    // memcpy per segment; no allocation, no exception. Before begin() and
    // after finish(), says FrameFull.
    AppendResult append(const RecordMeta& meta, std::span<const Segment> segments);
    AppendResult append(const RecordMeta& meta, std::span<const std::byte> packet);

    // Appends one interface statistics entry (flag::kStatistics): a frame
    // holds either packets or statistics, so on a frame with packets this says
    // FrameFull, as append() does on a frame with statistics. A description
    // longer than kMaxStatisticsText is cut there.
    AppendResult append_statistics(const InterfaceStatistics& s);

    // Frame flags for finish() to write besides those the records need
    // (e.g. flag::kEndOfStream).
    void add_flags(uint16_t flags) { flags_ |= flags; }

    uint32_t packet_count() const { return count_; }
    std::size_t bytes() const { return used_; }  // header included
    bool empty() const { return count_ == 0; }
    bool active() const { return !buffer_.empty(); }
    const BuilderLimits& limits() const { return limits_; }

    // Writes the header of the raw (uncompressed) frame and returns it. The
    // CRCs are not computed yet: the frame is valid on the wire only after
    // FrameEncoder::seal(). The builder is then idle until the next begin()
    // (finish() on an idle builder returns an empty span).
    std::span<std::byte> finish();

  private:
    BuilderLimits limits_;
    std::span<std::byte> buffer_;
    std::size_t capacity_ = 0;
    std::size_t used_ = 0;
    uint32_t count_ = 0;
    uint16_t flags_ = 0;  // must-understand frame flags the records need
    uint64_t stream_id_ = 0, sequence_ = 0, first_packet_index_ = 0;
};

namespace detail {
// Writes the record header (and the tunnel block, if any); returns where the
// data goes.
inline std::byte* write_record_header(std::byte* rec, const RecordMeta& meta, uint32_t caplen,
                                      uint64_t total) {
    const auto orig = static_cast<uint32_t>(
        std::min<uint64_t>(std::max<uint64_t>(meta.orig_len, total), UINT32_MAX));
    store_le<uint64_t>(rec + record_offset::timestamp_ns, meta.timestamp_ns);
    store_le<uint32_t>(rec + record_offset::caplen, caplen);
    store_le<uint32_t>(rec + record_offset::orig_len, orig);
    store_le<uint16_t>(rec + record_offset::port, meta.port);
    store_le<uint16_t>(rec + record_offset::queue, meta.queue);
    if (!meta.tunnel) {
        store_le<uint32_t>(rec + record_offset::flags, meta.flags & ~record_flag::kTunnelMeta);
        return rec + kRecordHeaderSize;
    }
    store_le<uint32_t>(rec + record_offset::flags, meta.flags | record_flag::kTunnelMeta);
    std::byte* t = rec + kRecordHeaderSize;
    const TunnelMeta& m = *meta.tunnel;
    t[tunnel_offset::kind] = std::byte{static_cast<uint8_t>(m.kind)};
    t[tunnel_offset::bits] = std::byte{m.bits};
    store_le<uint16_t>(t + tunnel_offset::session, m.session);
    store_le<uint32_t>(t + tunnel_offset::timestamp, m.timestamp);
    store_le<uint32_t>(t + tunnel_offset::index, m.index);
    store_le<uint16_t>(t + tunnel_offset::vlan, m.vlan);
    store_le<uint16_t>(t + tunnel_offset::reserved, 0);
    return t + kTunnelMetaSize;
}
}  // namespace detail

// One contiguous packet: inline, it is the capture stage's per-packet call.
inline AppendResult FrameBuilder::append(const RecordMeta& meta,
                                         std::span<const std::byte> packet) {
    const uint32_t caplen =
        static_cast<uint32_t>(std::min<uint64_t>(packet.size(), limits_.snaplen));
    const std::size_t need = record_size(caplen, meta.tunnel != nullptr);
    // used_ <= capacity_ always (both 0 while idle): an idle builder reports
    // a full frame instead of writing anywhere.
    if (need > capacity_ - used_ || (flags_ & flag::kStatistics)) return AppendResult::FrameFull;
    std::byte* rec = buffer_.data() + used_;
    std::byte* dst = detail::write_record_header(rec, meta, caplen, packet.size());
    if (meta.tunnel) flags_ |= flag::kRecordMeta;
    // Zero the last word first: the copy overwrites its data part and the
    // padding stays zero (the reader checks it).
    if (caplen) store_le<uint64_t>(dst + round_up8(caplen) - 8, 0);
    std::memcpy(dst, packet.data(), caplen);
    used_ += need;
    ++count_;
    return AppendResult::Appended;
}

}  // namespace sluice::wire
