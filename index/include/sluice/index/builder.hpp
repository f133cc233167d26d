// Building index records: one block at a time (BlockBuilder), from a data
// file's bytes (index_data, for a whole file or the tail a crash left
// unindexed), and whole index files (reindex_file, sluice-query --reindex).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sluice/index/bloom.hpp"
#include "sluice/index/format.hpp"
#include "sluice/index/keys.hpp"
#include "sluice/index/pcapng.hpp"

namespace sluice::index {

struct BuildSettings {
    // A block ends at the first boundary (a pcapng block for plain files, a
    // zstd frame for .zst) at or past this many pcapng bytes or packets.
    // docs/query.md, "Block size", has the measurements behind 1 MiB.
    uint64_t block_bytes = 1u << 20;
    uint32_t block_packets = 16384;
};

// The summary and key filter of the block being built.
class BlockBuilder {
  public:
    // A packet whose keys and protocols are known (the collector parses at
    // add time).
    void add_keys(uint64_t ts_ns, std::span<const uint64_t> keys,
                  std::span<const uint8_t> protocols) {
        bloom_.insert(keys);
        for (uint8_t p : protocols)
            protocols_.add(p);
        note_time(ts_ns);
    }
    // A packet of a link type the parser does not read: any filter may match it.
    void add_opaque(uint64_t ts_ns) {
        flags_ |= block_flag::kOpaque;
        note_time(ts_ns);
    }
    // A packet as read from a file: parsed here.
    void add_packet(uint64_t ts_ns, uint16_t link_type, std::span<const std::byte> frame);
    void add_bytes(uint64_t n) { pcapng_bytes_ += n; }
    // The last n packets added are not part of the block after all (their
    // keys stay: a false positive at worst).
    void trim_packets(uint32_t n) { packets_ -= std::min(n, packets_); }

    uint64_t pcapng_bytes() const { return pcapng_bytes_; }
    uint32_t packets() const { return packets_; }
    uint64_t min_ts() const { return min_ts_; }
    uint64_t max_ts() const { return max_ts_; }
    // Past its size, its packets, or the keys its filter holds well.
    bool full(const BuildSettings& s) const {
        return pcapng_bytes_ >= s.block_bytes || packets_ >= s.block_packets ||
               bloom_.keys() >= BloomAccumulator::kCapacity;
    }
    // Whether this block and `more` (the packets that would join it) are
    // past the size, packet or key limit together.
    bool full_with(const BlockBuilder& more, const BuildSettings& s) const {
        return pcapng_bytes_ + more.pcapng_bytes_ >= s.block_bytes ||
               packets_ + more.packets_ >= s.block_packets ||
               bloom_.keys() + more.bloom_.keys() >= BloomAccumulator::kCapacity;
    }
    // Appends the Block record of data [start, end) to `out` and starts
    // the next block empty.
    void close(uint64_t start, uint64_t end, std::vector<std::byte>& out);
    void reset();
    // `later` (packets after this block's) joins this block and is left empty.
    void merge_from(BlockBuilder& later);
    void copy_from(const BlockBuilder& other);

  private:
    void note_time(uint64_t ts) {
        if (packets_ == 0) {
            first_ts_ = min_ts_ = max_ts_ = ts;
        } else {
            if (ts < last_ts_) flags_ |= block_flag::kUnordered;
            min_ts_ = std::min(min_ts_, ts);
            max_ts_ = std::max(max_ts_, ts);
        }
        last_ts_ = ts;
        ++packets_;
    }

    BloomAccumulator bloom_;
    ProtocolSet protocols_;
    std::vector<std::byte> filter_;
    uint64_t first_ts_ = 0, min_ts_ = 0, max_ts_ = 0, last_ts_ = 0, pcapng_bytes_ = 0;
    uint32_t packets_ = 0, flags_ = 0;
};

// What index_data() read.
struct DataIndexed {
    bool ok = true;
    std::string error;
    uint64_t data_start = 0;   // with expect_section_header: where packets begin
    uint64_t covered_end = 0;  // the end of the last block written
    uint64_t packets = 0, blocks = 0;
    uint64_t min_ts_ns = UINT64_MAX, max_ts_ns = 0;
};

// Indexes data [start, end) of an open data file: appends Interface and
// Block records to `out`. `interfaces` holds the file's interfaces defined
// before `start` (from the index) and receives the new ones. With
// `expect_section_header`, `start` is 0 and the data begins with the
// section header. A second section ends the indexing there (not supported).
DataIndexed index_data(int fd, Compression c, uint64_t start, uint64_t end,
                       bool expect_section_header, std::vector<pcapng::Interface>& interfaces,
                       const BuildSettings& s, std::vector<std::byte>& out);

// Writes DATA.idx for a complete data file (plain or .zst by its name),
// replacing any: written to a temporary file and renamed. False and `error`
// when the file cannot be read or is not pcapng.
bool reindex_file(const std::string& data_path, const BuildSettings& s, DataIndexed* result,
                  std::string* error);

Compression compression_of(std::string_view data_path);

}  // namespace sluice::index
