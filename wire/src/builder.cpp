#include "sluice/wire/builder.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sluice::wire {

using wire::round_up8;
using wire::store_le;

FrameBuilder::FrameBuilder(const BuilderLimits& limits) : limits_(limits) {
    if (limits.snaplen == 0 || limits.snaplen > kMaxSnaplen)
        throw std::invalid_argument("snap length " + std::to_string(limits.snaplen) +
                                    " is out of range: give 1 to " + std::to_string(kMaxSnaplen));
    if (limits.max_frame_bytes < min_frame_bytes(limits.snaplen))
        throw std::invalid_argument(
            "max frame size " + std::to_string(limits.max_frame_bytes) +
            " cannot hold one packet of the snap length " + std::to_string(limits.snaplen) +
            ": raise it to at least " + std::to_string(min_frame_bytes(limits.snaplen)) +
            " (64-byte header + 24-byte record header + snap length rounded up to 8)");
    if (limits.max_frame_bytes > kMaxFrameBytes)
        throw std::invalid_argument("max frame size " + std::to_string(limits.max_frame_bytes) +
                                    " is above the format's limit of " +
                                    std::to_string(kMaxFrameBytes) + " bytes: lower it");
}

void FrameBuilder::begin(std::span<std::byte> buffer, uint64_t stream_id, uint64_t sequence,
                         uint64_t first_packet_index) {
    count_ = 0;
    flags_ = 0;
    if (buffer.size() < kHeaderSize) {  // cannot even hold a header: a frame that takes nothing
        buffer_ = {};
        capacity_ = used_ = 0;
        return;
    }
    buffer_ = buffer;
    // Keep the capacity a multiple of 8 so that a frame is always whole records.
    capacity_ = std::min<std::size_t>(buffer.size(), limits_.max_frame_bytes) & ~std::size_t{7};
    used_ = kHeaderSize;
    stream_id_ = stream_id;
    sequence_ = sequence;
    first_packet_index_ = first_packet_index;
}

AppendResult FrameBuilder::append(const RecordMeta& meta, std::span<const Segment> segments) {
    // used_ <= capacity_ always (both 0 while idle), so an idle builder
    // reports a full frame instead of writing anywhere.
    uint64_t total = 0;
    for (const Segment& s : segments)
        total += s.len;
    const uint32_t caplen = static_cast<uint32_t>(std::min<uint64_t>(total, limits_.snaplen));
    const std::size_t need = record_size(caplen, meta.tunnel != nullptr);
    if (need > capacity_ - used_ || (flags_ & flag::kStatistics)) return AppendResult::FrameFull;

    std::byte* rec = buffer_.data() + used_;
    std::byte* dst = detail::write_record_header(rec, meta, caplen, total);
    if (meta.tunnel) flags_ |= flag::kRecordMeta;
    // Zero the last word first: the copy overwrites its data part and the
    // padding stays zero (the reader checks it).
    if (caplen) store_le<uint64_t>(dst + round_up8(caplen) - 8, 0);
    std::size_t left = caplen;
    for (const Segment& s : segments) {
        if (left == 0) break;
        const std::size_t n = std::min<std::size_t>(s.len, left);
        std::memcpy(dst, s.data, n);
        dst += n;
        left -= n;
    }
    used_ += need;
    ++count_;
    return AppendResult::Appended;
}

AppendResult FrameBuilder::append_statistics(const InterfaceStatistics& st) {
    const std::size_t text = std::min(st.description.size(), kMaxStatisticsText);
    const std::size_t need = statistics_entry_size(text);
    if (need > capacity_ - used_ || (count_ != 0)) return AppendResult::FrameFull;
    std::byte* e = buffer_.data() + used_;
    namespace o = statistics_offset;
    store_le<uint16_t>(e + o::port, st.port);
    store_le<uint16_t>(e + o::queue, st.queue);
    store_le<uint16_t>(e + o::text_len, static_cast<uint16_t>(text));
    store_le<uint16_t>(e + o::reserved, 0);
    store_le<uint64_t>(e + o::start_ns, st.start_ns);
    store_le<uint64_t>(e + o::time_ns, st.time_ns);
    store_le<uint64_t>(e + o::received, st.received);
    store_le<uint64_t>(e + o::nic_dropped, st.nic_dropped);
    store_le<uint64_t>(e + o::accepted, st.accepted);
    store_le<uint64_t>(e + o::dropped, st.dropped);
    store_le<uint64_t>(e + o::delivered, st.delivered);
    std::byte* t = e + kStatisticsEntrySize;
    if (text) {
        store_le<uint64_t>(t + round_up8(text) - 8, 0);
        std::memcpy(t, st.description.data(), text);
    }
    used_ += need;
    flags_ |= flag::kStatistics;
    return AppendResult::Appended;
}

std::span<std::byte> FrameBuilder::finish() {
    if (!active()) return {};
    std::byte* h = buffer_.data();
    std::memset(h, 0, kHeaderSize);
    store_le<uint32_t>(h + offset::magic, kMagic);
    h[offset::version] = std::byte{kVersion};
    h[offset::header_words] = std::byte{kHeaderSize / 8};
    h[offset::codec] = std::byte{static_cast<uint8_t>(Codec::None)};
    store_le<uint16_t>(h + offset::flags, flags_);
    store_le<uint32_t>(h + offset::packet_count, count_);
    store_le<uint64_t>(h + offset::stream_id, stream_id_);
    store_le<uint64_t>(h + offset::sequence, sequence_);
    store_le<uint64_t>(h + offset::first_packet_index, first_packet_index_);
    const auto payload = static_cast<uint32_t>(used_ - kHeaderSize);
    store_le<uint32_t>(h + offset::raw_len, payload);
    store_le<uint32_t>(h + offset::stored_len, payload);
    const std::span<std::byte> frame = buffer_.first(used_);
    buffer_ = {};
    capacity_ = used_ = 0;
    count_ = 0;
    flags_ = 0;
    return frame;
}

}  // namespace sluice::wire
