// The sluice frame format, byte for byte (docs/wire-protocol.md is the
// specification; this header is its code form). A frame is a fixed 64-byte
// little-endian header followed by a payload of packet records, stored raw
// or compressed as a whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "sluice/wire/le.hpp"

namespace sluice::wire {

// ---- header ---------------------------------------------------------------------
inline constexpr uint32_t kMagic = 0x46434c53;  // the bytes "SLCF" read little-endian
inline constexpr uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 64;

// Field offsets within the header. Every version keeps magic, version and
// header_words where they are and the header CRC in the header's last 4 bytes.
namespace offset {
inline constexpr std::size_t magic = 0;                // u32
inline constexpr std::size_t version = 4;              // u8
inline constexpr std::size_t header_words = 5;         // u8: header size / 8 (8 in version 1)
inline constexpr std::size_t codec = 6;                // u8: Codec of the stored payload
inline constexpr std::size_t reserved0 = 7;            // u8: 0
inline constexpr std::size_t flags = 8;                // u16: FrameFlags
inline constexpr std::size_t reserved1 = 10;           // u16: 0
inline constexpr std::size_t packet_count = 12;        // u32
inline constexpr std::size_t stream_id = 16;           // u64
inline constexpr std::size_t sequence = 24;            // u64
inline constexpr std::size_t first_packet_index = 32;  // u64
inline constexpr std::size_t raw_len = 40;             // u32: payload bytes before compression
inline constexpr std::size_t stored_len = 44;          // u32: payload bytes after the header
inline constexpr std::size_t payload_crc = 48;         // u32: CRC-32C of the stored payload
inline constexpr std::size_t reserved2 = 52;           // u64: 0
inline constexpr std::size_t header_crc = 60;          // u32: CRC-32C of bytes 0..59
}  // namespace offset
static_assert(offset::header_crc + 4 == kHeaderSize, "the header CRC ends the header");
static_assert(offset::stream_id % 8 == 0 && offset::sequence % 8 == 0 &&
                  offset::first_packet_index % 8 == 0,
              "64-bit fields are naturally aligned within the header");

enum class Codec : uint8_t { None = 0, Lz4 = 1, Zstd = 2 };
inline constexpr uint8_t kCodecCount = 3;

std::string_view codec_name(Codec c);                // "none", "lz4", "zstd"
std::optional<Codec> parse_codec(std::string_view);  // the names above

// Header flags. Bits 0-7 are informational: a reader ignores the ones it does
// not know. Bits 8-15 change how the frame must be read: a reader rejects a
// frame carrying one it does not know (WireError::UnsupportedFlags).
namespace flag {
inline constexpr uint16_t kRawIncompressible = 1u << 0;  // compression was tried and did not shrink
inline constexpr uint16_t kRawBelowMinimum = 1u << 1;    // smaller than the encoder's minimum
// The sender's last frame of the stream: it drains and stops (a collector
// closes its accounts of the stream's interfaces).
inline constexpr uint16_t kEndOfStream = 1u << 2;
inline constexpr uint16_t kInformationalMask = 0x00ff;
// The payload is interface statistics entries, not packet records
// (packet_count 0): the sender's counters of each capture interface.
inline constexpr uint16_t kStatistics = 1u << 8;
// Records may carry a tunnel metadata block (record_flag::kTunnelMeta).
inline constexpr uint16_t kRecordMeta = 1u << 9;
inline constexpr uint16_t kKnownRequired = kStatistics | kRecordMeta;
}  // namespace flag

// ---- records --------------------------------------------------------------------
// Each record: this header, then caplen bytes of packet, then zeros up to a
// multiple of 8. Records start 8-byte aligned relative to the frame.
inline constexpr std::size_t kRecordHeaderSize = 24;
namespace record_offset {
inline constexpr std::size_t timestamp_ns = 0;  // u64: nanoseconds since the Unix epoch, UTC
inline constexpr std::size_t caplen = 8;        // u32: packet bytes in this record
inline constexpr std::size_t orig_len = 12;     // u32: packet length on the wire (>= caplen)
inline constexpr std::size_t port = 16;         // u16: capture port
inline constexpr std::size_t queue = 18;        // u16: receive queue
inline constexpr std::size_t flags = 20;        // u32: RecordFlags
}  // namespace record_offset
static_assert(record_offset::flags + 4 == kRecordHeaderSize);
static_assert(kHeaderSize % 8 == 0 && kRecordHeaderSize % 8 == 0);

// Record flags. Bits 0-3 carry the checksum verdicts of simd::verify_checksums
// (0 not checked, 1 good, 2 bad, 3 truncated); other bits are reserved,
// written 0 and passed through by readers.
namespace record_flag {
inline constexpr uint32_t kIpChecksumShift = 0;    // 2 bits
inline constexpr uint32_t kL4ChecksumShift = 2;    // 2 bits
inline constexpr uint32_t kFcsIncluded = 1u << 4;  // the data ends with the 4-byte Ethernet FCS
// In a frame with flag::kRecordMeta: a kTunnelMetaSize-byte block follows the
// record header, before the data (the record is that much longer). Elsewhere
// reserved.
inline constexpr uint32_t kTunnelMeta = 1u << 5;
// The data is the packet inside the tunnel it arrived in (capture.decap =
// "strip"); orig_len is the inner packet's length.
inline constexpr uint32_t kDecapsulated = 1u << 6;
}  // namespace record_flag

// ---- tunnel metadata (record_flag::kTunnelMeta) ---------------------------------
// What a stripped tunnel said about the packet it carried: ERSPAN's session,
// original timestamp and direction.
inline constexpr std::size_t kTunnelMetaSize = 16;
namespace tunnel_offset {
inline constexpr std::size_t kind = 0;       // u8: TunnelKind
inline constexpr std::size_t bits = 1;       // u8: ERSPAN III: bit 0 egress, bits 1-2 granularity
inline constexpr std::size_t session = 2;    // u16: ERSPAN session id (10 bits)
inline constexpr std::size_t timestamp = 4;  // u32: ERSPAN III timestamp, in granularity units
inline constexpr std::size_t index = 8;      // u32: ERSPAN II port index; III hardware id
inline constexpr std::size_t vlan = 12;      // u16: original VLAN (12 bits) | COS << 12
inline constexpr std::size_t reserved = 14;  // u16: 0
}  // namespace tunnel_offset
static_assert(tunnel_offset::reserved + 2 == kTunnelMetaSize);

enum class TunnelKind : uint8_t { Erspan1 = 1, Erspan2 = 2, Erspan3 = 3 };

struct TunnelMeta {
    TunnelKind kind = TunnelKind::Erspan2;
    uint8_t bits = 0;
    uint16_t session = 0;
    uint32_t timestamp = 0;
    uint32_t index = 0;
    uint16_t vlan = 0;
};

// ---- interface statistics (flag::kStatistics) -----------------------------------
// Each entry: this header, then text_len bytes of description (UTF-8), then
// zeros up to a multiple of 8. Counters count from start_ns on.
inline constexpr std::size_t kStatisticsEntrySize = 64;
inline constexpr std::size_t kMaxStatisticsText = 255;
namespace statistics_offset {
inline constexpr std::size_t port = 0;          // u16
inline constexpr std::size_t queue = 2;         // u16
inline constexpr std::size_t text_len = 4;      // u16: description bytes after the entry
inline constexpr std::size_t reserved = 6;      // u16: 0
inline constexpr std::size_t start_ns = 8;      // u64: when counting began (UTC ns)
inline constexpr std::size_t time_ns = 16;      // u64: when the counters were read
inline constexpr std::size_t received = 24;     // u64: packets the interface handed to sluice
inline constexpr std::size_t nic_dropped = 32;  // u64: packets the NIC dropped (no room, no mbuf)
inline constexpr std::size_t accepted = 40;     // u64: packets the capture filter kept
inline constexpr std::size_t dropped = 48;      // u64: packets sluice lost after receiving them
inline constexpr std::size_t delivered = 56;    // u64: packets written into frames
}  // namespace statistics_offset
static_assert(statistics_offset::delivered + 8 == kStatisticsEntrySize);

struct InterfaceStatistics {
    uint16_t port = 0;
    uint16_t queue = 0;
    uint64_t start_ns = 0;
    uint64_t time_ns = 0;
    uint64_t received = 0;
    uint64_t nic_dropped = 0;
    uint64_t accepted = 0;
    uint64_t dropped = 0;
    uint64_t delivered = 0;
    std::string_view description;  // at most kMaxStatisticsText bytes
};

// ---- sizes ----------------------------------------------------------------------
// Largest snap length a frame may be built with (pcapng's common maximum).
inline constexpr uint32_t kMaxSnaplen = 262144;
// Largest raw frame (header + records): the length fields are 32-bit; 1 GiB
// keeps every size sum far from overflow.
inline constexpr uint32_t kMaxFrameBytes = 1u << 30;

// Bytes one record of `caplen` captured bytes occupies (with a tunnel
// metadata block: kTunnelMetaSize more).
constexpr std::size_t record_size(uint32_t caplen) {
    return kRecordHeaderSize + round_up8(caplen);
}
constexpr std::size_t record_size(uint32_t caplen, bool tunnel_meta) {
    return record_size(caplen) + (tunnel_meta ? kTunnelMetaSize : 0);
}
// Bytes one statistics entry with `text_len` bytes of description occupies.
constexpr std::size_t statistics_entry_size(std::size_t text_len) {
    return kStatisticsEntrySize + round_up8(text_len);
}

// The smallest max_frame_bytes that always holds one packet of snaplen bytes:
//   max_frame_bytes >= 64 + 24 + round_up(snaplen, 8)
// Configuration validation enforces it; FrameBuilder's constructor checks it.
constexpr std::size_t min_frame_bytes(uint32_t snaplen) {
    return kHeaderSize + record_size(snaplen);
}

}  // namespace sluice::wire
