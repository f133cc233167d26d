// The index file: NAME.pcapng.idx (or NAME.pcapng.zst.idx) beside each data
// file, a sequence of self-checking records, appended as the data file
// grows (docs/query.md, "Index file format", describes every byte):
//
//   Header     once, first: format version, compression, where packets start
//   Interface  a pcapng Interface Description Block of the data file, in id
//              order, written just before the first Block record covering it
//   Block      one per block of packets: its byte range in the data file, its
//              time range and packet count, and a filter of its keys
//   Finish     when the data file is complete (rotated): totals
//
// Each record is  u32 type | u32 body length | body | u32 CRC-32C | zero pad
// to 8 bytes, little-endian, the CRC over type, length and body. A reader
// stops at the first record that is incomplete or fails its CRC: a torn tail
// is ignored, and the data it would have covered is read as unindexed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::index {

inline constexpr char kIndexMagic[8] = {'S', 'L', 'U', 'I', 'C', 'E', 'I', 'X'};
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr std::string_view kIndexSuffix = ".idx";
inline constexpr uint32_t kMaxRecordBody = 16u << 20;

enum class RecordType : uint32_t { Header = 1, Interface = 2, Block = 3, Finish = 4 };

enum class Compression : uint8_t { None = 0, Zstd = 1 };

struct IndexHeader {
    Compression compression = Compression::None;
    uint64_t data_start = 0;  // the first byte after the section header (a zstd frame boundary)
};

namespace block_flag {
// A packet the parser cannot read (not Ethernet): every filter may match it.
inline constexpr uint32_t kOpaque = 1u << 0;
// Timestamps go backwards somewhere in the block.
inline constexpr uint32_t kUnordered = 1u << 1;
}  // namespace block_flag

// The IP protocol numbers of a block's packets, exactly (256 bits).
struct ProtocolSet {
    std::array<uint64_t, 4> bits{};
    void add(uint8_t p) { bits[p >> 6] |= uint64_t{1} << (p & 63); }
    bool has(uint8_t p) const { return bits[p >> 6] >> (p & 63) & 1; }
    bool operator==(const ProtocolSet&) const = default;
};

struct BlockRecord {
    uint64_t data_start = 0, data_end = 0;  // in the data file, compressed bytes for .zst
    uint64_t pcapng_bytes = 0;              // what [data_start, data_end) decompresses to
    uint64_t min_ts_ns = 0, max_ts_ns = 0;  // 0, 0 without packets
    uint32_t packets = 0;
    uint32_t flags = 0;
    ProtocolSet protocols;             // every protocol number a filter may test
    uint32_t bloom_blocks = 0;         // 32-byte filter blocks, a power of two (0: no keys)
    std::span<const std::byte> bloom;  // bloom_blocks * 32 bytes
};

struct FinishRecord {
    uint64_t data_end = 0;  // the data file's size when it was finished
    uint64_t packets = 0;
    uint64_t blocks = 0;
    uint64_t min_ts_ns = 0, max_ts_ns = 0;
};

inline constexpr std::size_t kFinishRecordBytes =
    56;  // framing included: a reader finds it at the end

// Encoders: each appends one complete record.
void append_header(std::vector<std::byte>& out, const IndexHeader& h);
void append_interface(std::vector<std::byte>& out, uint32_t id, std::span<const std::byte> idb);
void append_block(std::vector<std::byte>& out, const BlockRecord& b);
void append_finish(std::vector<std::byte>& out, const FinishRecord& f);

struct RecordView {
    RecordType type;
    std::span<const std::byte> body;
    std::size_t size;  // of the whole record, padding included
};
// The record at `at`; nullopt when it is incomplete, longer than
// kMaxRecordBody or fails its CRC.
std::optional<RecordView> record_at(std::span<const std::byte> bytes, std::size_t at);

std::optional<IndexHeader> decode_header(std::span<const std::byte> body);
std::optional<BlockRecord> decode_block(std::span<const std::byte> body);
std::optional<FinishRecord> decode_finish(std::span<const std::byte> body);

// An index file as read: only the records that form a consistent prefix.
struct Index {
    IndexHeader header;
    std::vector<std::vector<std::byte>> interfaces;  // IDB blocks by interface id
    std::vector<BlockRecord> blocks;                 // contiguous, from header.data_start
    // For each block: the index bytes up to the end of its record, and the
    // interfaces defined up to it (to cut the index after any block).
    std::vector<std::size_t> block_record_end;
    std::vector<uint32_t> block_interfaces;
    std::optional<FinishRecord> finish;   // set only when it is the last record
    uint64_t covered_end = 0;             // data bytes the blocks describe: the last block's end
    std::size_t valid_bytes = 0;          // index bytes up to the last Block (or Header) record
    std::span<const std::byte> bytes;     // the file; BlockRecord::bloom points into it
    std::shared_ptr<const void> storage;  // holds `bytes` (a moved Index keeps them in place)
};

// Reads an index from its bytes. Records after the last Block record that
// are not a Finish (an Interface record whose block never came) do not
// count. nullopt: no valid header (not an index, or another version);
// `error` says which.
std::optional<Index> parse_index(std::vector<std::byte> bytes, std::string* error);

// The part of an index that describes only data below `data_end` (a data
// file that is shorter than its index says: cut by a crash, or by hand).
struct IndexPrefix {
    std::size_t blocks = 0;    // the first this many blocks
    std::size_t bytes = 0;     // index bytes up to the last of them (the header at least)
    uint64_t covered_end = 0;  // the data they cover
    uint32_t interfaces = 0;   // the interfaces defined up to them
};
IndexPrefix prefix_within(const Index& ix, uint64_t data_end);
std::optional<Index> load_index(const std::string& path, std::string* error);

// The index path of a data file: NAME -> NAME.idx.
inline std::string index_path(std::string_view data_path) {
    return std::string(data_path) + std::string(kIndexSuffix);
}

}  // namespace sluice::index
