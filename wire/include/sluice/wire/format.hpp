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
inline constexpr uint16_t kInformationalMask = 0x00ff;
inline constexpr uint16_t kKnownRequired = 0x0000;  // version 1 defines none
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
}  // namespace record_flag

// ---- sizes ----------------------------------------------------------------------
// Largest snap length a frame may be built with (pcapng's common maximum).
inline constexpr uint32_t kMaxSnaplen = 262144;
// Largest raw frame (header + records): the length fields are 32-bit; 1 GiB
// keeps every size sum far from overflow.
inline constexpr uint32_t kMaxFrameBytes = 1u << 30;

// Bytes one record of `caplen` captured bytes occupies.
constexpr std::size_t record_size(uint32_t caplen) {
    return kRecordHeaderSize + round_up8(caplen);
}

// The smallest max_frame_bytes that always holds one packet of snaplen bytes:
//   max_frame_bytes >= 64 + 24 + round_up(snaplen, 8)
// Configuration validation enforces it; FrameBuilder's constructor checks it.
constexpr std::size_t min_frame_bytes(uint32_t snaplen) {
    return kHeaderSize + record_size(snaplen);
}

}  // namespace sluice::wire
