// The per-block key filter: a split-block Bloom filter (as Parquet's SBBF):
// blocks of 256 bits, one bit set in each of the block's eight 32-bit words
// per key, so a lookup or an insertion touches one 32-byte block. Keys are
// already well-mixed 64-bit hashes (keys.hpp): the eight bit positions are
// the key's low 40 bits, five each, and its block the bits from 40 up, taken
// modulo the filter's size. That lets a filter be folded in two (OR of the
// halves) and stay valid: the index builds each block's filter in an
// accumulator and stores the smallest fold that keeps the false positive
// rate low (docs/query.md, "Block filters").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace sluice::index {

inline constexpr std::size_t kBloomBlockBytes = 32;
// The accumulator: 16 KiB, small enough to stay in the L1 cache while the
// collector inserts a key per address, port and flow of every packet.
inline constexpr unsigned kBloomMaxLog2Blocks = 9;
// Stop folding before more than this share of a filter's bits are set:
// a lookup of an absent key then fails with probability about 0.45^8 = 0.2%.
inline constexpr double kBloomMaxFill = 0.35;

inline uint32_t bloom_block(uint64_t key, uint32_t blocks) {
    return static_cast<uint32_t>(key >> 40) & (blocks - 1);
}
inline uint32_t bloom_bit(uint64_t key, int word) {
    return 1u << ((key >> (5 * word)) & 31);
}

// Whether a stored filter of `blocks` (a power of two) may hold `key`;
// false means certainly not. An empty filter (0 blocks) holds nothing.
inline bool bloom_may_contain(const std::byte* filter, uint32_t blocks, uint64_t key) {
    if (blocks == 0) return false;
    const std::byte* p = filter + std::size_t{bloom_block(key, blocks)} * kBloomBlockBytes;
    for (int i = 0; i < 8; ++i) {
        uint32_t w;
        __builtin_memcpy(&w, p + 4 * i, 4);
        if (!(w & bloom_bit(key, i))) return false;
    }
    return true;
}

class BloomAccumulator {
  public:
    BloomAccumulator();
    // Inserts keys (one packet's) with AVX2, SSE4.1 or scalar code, as
    // simd::active_level() allows.
    void insert(std::span<const uint64_t> keys);
    void insert(uint64_t key) { insert({&key, 1}); }
    bool empty() const { return empty_; }
    // Empties the filter; costs the blocks written since the last clear().
    void clear();
    // ORs `other` into this one and clears it; costs the blocks `other` wrote.
    void merge_from(BloomAccumulator& other);
    void copy_from(const BloomAccumulator& other);
    // Appends the smallest fold whose fill stays at most kBloomMaxFill to
    // `out` (little-endian words) and returns its number of blocks. Folds in
    // place: clear() must come before the next insert().
    uint32_t fold_into(std::vector<std::byte>& out);
    // Keys inserted that were not in the filter yet (nor false positives):
    // about the distinct keys (a merge adds both counts).
    uint32_t keys() const { return keys_; }
    // Past this many keys the unfolded filter is fuller than kBloomMaxFill:
    // its block should end.
    static constexpr uint32_t kCapacity = 9000;

  private:
    static constexpr uint32_t kBlocks = 1u << kBloomMaxLog2Blocks;
    struct Free {
        void operator()(uint32_t* p) const;
    };
    std::unique_ptr<uint32_t[], Free> words_;  // 32-byte aligned
    // The blocks written since the last clear(): a batch of a few packets
    // is merged and cleared in a few block operations, not 16 KiB.
    std::array<uint64_t, kBlocks / 64> dirty_{};
    uint32_t keys_ = 0;
    bool empty_ = true;
};

}  // namespace sluice::index
