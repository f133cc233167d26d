// Reading frames: parse_header() for stream framing, FrameReader to verify,
// decompress and walk the records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>

#include "sluice/wire/error.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::wire {

struct ReaderLimits {
    uint32_t max_raw_len = 64u << 20;     // largest payload after decompression
    uint32_t max_stored_len = 64u << 20;  // largest payload on the wire
    uint32_t max_caplen = kMaxSnaplen;    // largest record
};

struct FrameInfo {
    uint8_t version = 0;
    Codec codec = Codec::None;
    uint16_t flags = 0;
    uint32_t packet_count = 0;
    uint64_t stream_id = 0;
    uint64_t sequence = 0;
    uint64_t first_packet_index = 0;
    uint32_t raw_len = 0;
    uint32_t stored_len = 0;
    uint32_t payload_crc = 0;

    // Bytes of the whole frame on the wire: what a stream reader waits for.
    std::size_t frame_len() const { return kHeaderSize + stored_len; }
};

// Validates the header in the first bytes of `bytes`: length, magic, header
// CRC, version, codec, flags, and lengths against `limits`. Reads only the
// header; `bytes` may be just those kHeaderSize bytes.
Result<FrameInfo> parse_header(std::span<const std::byte> bytes, const ReaderLimits& limits = {});

struct Record {
    uint64_t timestamp_ns = 0;
    uint32_t caplen = 0;
    uint32_t orig_len = 0;
    uint16_t port = 0;
    uint16_t queue = 0;
    uint32_t flags = 0;
    std::span<const std::byte> data;  // caplen bytes
    bool has_tunnel = false;          // `tunnel` holds the record's tunnel metadata
    TunnelMeta tunnel;
};

// One entry of a statistics frame (flag::kStatistics); `description` points
// into the frame.
using StatisticsEntry = InterfaceStatistics;

// The records of a frame FrameReader::open() verified. Points into the
// caller's frame or scratch buffer: valid while those are.
class FrameView {
  public:
    class iterator {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = Record;
        using difference_type = std::ptrdiff_t;
        using pointer = const Record*;
        using reference = const Record&;

        iterator() = default;
        const Record& operator*() const { return rec_; }
        const Record* operator->() const { return &rec_; }
        iterator& operator++() {
            pos_ += record_size(rec_.caplen, rec_.has_tunnel);
            load();
            return *this;
        }
        iterator operator++(int) {
            iterator t = *this;
            ++*this;
            return t;
        }
        bool operator==(const iterator& o) const { return pos_ == o.pos_; }

      private:
        friend class FrameView;
        iterator(const std::byte* pos, const std::byte* end, bool meta)
            : pos_(pos), end_(end), meta_(meta) {
            load();
        }
        // Open() checked every record, so plain loads are in bounds here.
        void load() {
            if (pos_ == end_) return;
            using wire::load_le;
            rec_.timestamp_ns = load_le<uint64_t>(pos_ + record_offset::timestamp_ns);
            rec_.caplen = load_le<uint32_t>(pos_ + record_offset::caplen);
            rec_.orig_len = load_le<uint32_t>(pos_ + record_offset::orig_len);
            rec_.port = load_le<uint16_t>(pos_ + record_offset::port);
            rec_.queue = load_le<uint16_t>(pos_ + record_offset::queue);
            rec_.flags = load_le<uint32_t>(pos_ + record_offset::flags);
            rec_.has_tunnel = meta_ && (rec_.flags & record_flag::kTunnelMeta);
            const std::byte* data = pos_ + kRecordHeaderSize;
            if (rec_.has_tunnel) {
                rec_.tunnel = read_tunnel_meta(data);
                data += kTunnelMetaSize;
            }
            rec_.data = {data, rec_.caplen};
        }
        const std::byte* pos_ = nullptr;
        const std::byte* end_ = nullptr;
        bool meta_ = false;  // the frame has flag::kRecordMeta
        Record rec_;
    };

    // The entries of a statistics frame.
    class statistics_iterator {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = StatisticsEntry;
        using difference_type = std::ptrdiff_t;
        using pointer = const StatisticsEntry*;
        using reference = const StatisticsEntry&;

        statistics_iterator() = default;
        const StatisticsEntry& operator*() const { return e_; }
        const StatisticsEntry* operator->() const { return &e_; }
        statistics_iterator& operator++() {
            pos_ += statistics_entry_size(e_.description.size());
            load();
            return *this;
        }
        bool operator==(const statistics_iterator& o) const { return pos_ == o.pos_; }

      private:
        friend class FrameView;
        statistics_iterator(const std::byte* pos, const std::byte* end) : pos_(pos), end_(end) {
            load();
        }
        void load() {
            if (pos_ != end_) e_ = read_statistics_entry(pos_);
        }
        const std::byte* pos_ = nullptr;
        const std::byte* end_ = nullptr;
        StatisticsEntry e_;
    };
    struct StatisticsRange {
        statistics_iterator b, e;
        statistics_iterator begin() const { return b; }
        statistics_iterator end() const { return e; }
    };

    FrameView() = default;
    FrameView(const FrameInfo& info, std::span<const std::byte> payload)
        : info_(info), payload_(payload) {}

    const FrameInfo& info() const { return info_; }
    std::span<const std::byte> payload() const { return payload_; }  // the raw records
    bool is_statistics() const { return (info_.flags & flag::kStatistics) != 0; }
    // The packet records (none in a statistics frame).
    iterator begin() const {
        const std::byte* end = payload_.data() + payload_.size();
        return {is_statistics() ? end : payload_.data(), end, has_meta()};
    }
    iterator end() const {
        const std::byte* end = payload_.data() + payload_.size();
        return {end, end, has_meta()};
    }
    // The interface statistics entries (none in a frame of packets).
    StatisticsRange statistics() const {
        const std::byte* end = payload_.data() + payload_.size();
        return {{is_statistics() ? payload_.data() : end, end}, {end, end}};
    }

  private:
    bool has_meta() const { return (info_.flags & flag::kRecordMeta) != 0; }
    static TunnelMeta read_tunnel_meta(const std::byte* t) {
        TunnelMeta m;
        m.kind = static_cast<TunnelKind>(t[tunnel_offset::kind]);
        m.bits = static_cast<uint8_t>(t[tunnel_offset::bits]);
        m.session = load_le<uint16_t>(t + tunnel_offset::session);
        m.timestamp = load_le<uint32_t>(t + tunnel_offset::timestamp);
        m.index = load_le<uint32_t>(t + tunnel_offset::index);
        m.vlan = load_le<uint16_t>(t + tunnel_offset::vlan);
        return m;
    }
    static StatisticsEntry read_statistics_entry(const std::byte* e) {
        namespace o = statistics_offset;
        StatisticsEntry s;
        s.port = load_le<uint16_t>(e + o::port);
        s.queue = load_le<uint16_t>(e + o::queue);
        const uint16_t text = load_le<uint16_t>(e + o::text_len);
        s.start_ns = load_le<uint64_t>(e + o::start_ns);
        s.time_ns = load_le<uint64_t>(e + o::time_ns);
        s.received = load_le<uint64_t>(e + o::received);
        s.nic_dropped = load_le<uint64_t>(e + o::nic_dropped);
        s.accepted = load_le<uint64_t>(e + o::accepted);
        s.dropped = load_le<uint64_t>(e + o::dropped);
        s.delivered = load_le<uint64_t>(e + o::delivered);
        s.description = {reinterpret_cast<const char*>(e + kStatisticsEntrySize), text};
        return s;
    }

    FrameInfo info_;
    std::span<const std::byte> payload_;
};

class FrameReader {
  public:
    // Allocates the decompression state here and never again.
    explicit FrameReader(const ReaderLimits& limits = {});
    ~FrameReader();
    FrameReader(FrameReader&&) noexcept;
    FrameReader& operator=(FrameReader&&) noexcept;

    const ReaderLimits& limits() const;

    // Verifies one frame starting at frame[0] (bytes after frame_len() are
    // ignored): the header, then the payload CRC, and only then decompresses
    // into `scratch` (needs info.raw_len bytes; unused for uncompressed
    // frames, whose records stay in `frame`) and checks every record's bounds.
    // Nothing is read outside `frame` and nothing written outside `scratch`.
    Result<FrameView> open(std::span<const std::byte> frame, std::span<std::byte> scratch);

  private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace sluice::wire
