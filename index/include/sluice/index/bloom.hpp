// The per-block key filter: a split-block Bloom filter (as Parquet's SBBF):
// blocks of 256 bits, one bit set in each of the block's eight 32-bit words
// per key, so a lookup or an insertion touches one 32-byte block. A key's
// block is the low bits of its hash's upper half, which lets a filter be
// folded in two (OR of the halves) and stay valid: the index builds each
// block's filter in a large accumulator and stores the smallest fold that
// keeps the false positive rate low (docs/query.md, "Block filters").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace sluice::index {

inline constexpr std::size_t kBloomBlockBytes = 32;
inline constexpr unsigned kBloomMaxLog2Blocks = 11;  // the accumulator: 64 KiB
// Stop folding before more than this share of a filter's bits are set:
// a lookup of an absent key then fails with probability about 0.45^8 = 0.2%.
inline constexpr double kBloomMaxFill = 0.45;

constexpr uint32_t kBloomSalt[8] = {0x47b6137bu, 0x44974d91u, 0x8824ad5bu, 0xa2b7289du,
                                    0x705495c7u, 0x2df1424bu, 0x9efc4947u, 0x5c6bfb31u};

inline void bloom_mask(uint64_t key, uint32_t mask[8]) {
    const uint32_t x = static_cast<uint32_t>(key);
    for (int i = 0; i < 8; ++i)
        mask[i] = 1u << ((x * kBloomSalt[i]) >> 27);
}

// Whether a stored filter of `blocks` (a power of two) may hold `key`;
// false means certainly not. An empty filter (0 blocks) holds nothing.
inline bool bloom_may_contain(const std::byte* filter, uint32_t blocks, uint64_t key) {
    if (blocks == 0) return false;
    const uint32_t b = static_cast<uint32_t>(key >> 32) & (blocks - 1);
    const std::byte* p = filter + std::size_t{b} * kBloomBlockBytes;
    uint32_t mask[8];
    bloom_mask(key, mask);
    for (int i = 0; i < 8; ++i) {
        uint32_t w;
        __builtin_memcpy(&w, p + 4 * i, 4);
        if ((w & mask[i]) != mask[i]) return false;
    }
    return true;
}

class BloomAccumulator {
  public:
    BloomAccumulator();
    void insert(uint64_t key) {
        uint32_t* w = words_.get() + 8 * (static_cast<uint32_t>(key >> 32) & (kBlocks - 1));
        uint32_t mask[8];
        bloom_mask(key, mask);
        for (int i = 0; i < 8; ++i)
            w[i] |= mask[i];
        empty_ = false;
    }
    bool empty() const { return empty_; }
    void clear();
    // Appends the smallest fold whose fill stays at most kBloomMaxFill to
    // `out` (little-endian words) and returns its number of blocks.
    uint32_t fold_into(std::vector<std::byte>& out);

  private:
    static constexpr uint32_t kBlocks = 1u << kBloomMaxLog2Blocks;
    std::unique_ptr<uint32_t[]> words_;
    std::unique_ptr<uint32_t[]> scratch_;
    bool empty_ = true;
};

}  // namespace sluice::index
