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

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <smmintrin.h>

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
    void insert(uint64_t key) {
        uint32_t* w = words_.get() + 8 * bloom_block(key, kBlocks);
        // The eight masks 1 << ((key >> 5i) & 31) at once: 2^n as a float's
        // exponent, converted back (2^31 converts to 0x80000000, the bit wanted).
        const auto x = static_cast<uint32_t>(key), y = static_cast<uint32_t>(key >> 20);
        const __m128i n0 = _mm_and_si128(
            _mm_set_epi32(int(x >> 15), int(x >> 10), int(x >> 5), int(x)), _mm_set1_epi32(31));
        const __m128i n1 = _mm_and_si128(
            _mm_set_epi32(int(y >> 15), int(y >> 10), int(y >> 5), int(y)), _mm_set1_epi32(31));
        const __m128i one = _mm_set1_epi32(127 << 23);
        const __m128i m0 =
            _mm_cvttps_epi32(_mm_castsi128_ps(_mm_add_epi32(_mm_slli_epi32(n0, 23), one)));
        const __m128i m1 =
            _mm_cvttps_epi32(_mm_castsi128_ps(_mm_add_epi32(_mm_slli_epi32(n1, 23), one)));
        __m128i* v = reinterpret_cast<__m128i*>(w);
        const __m128i w0 = _mm_load_si128(v), w1 = _mm_load_si128(v + 1);
        const __m128i fresh = _mm_or_si128(_mm_andnot_si128(w0, m0), _mm_andnot_si128(w1, m1));
        _mm_store_si128(v, _mm_or_si128(w0, m0));
        _mm_store_si128(v + 1, _mm_or_si128(w1, m1));
        keys_ += !_mm_testz_si128(fresh, fresh);
        empty_ = false;
    }
    // Keys inserted that were not in the filter yet (nor false positives):
    // about the distinct keys.
    uint32_t keys() const { return keys_; }
    // Past this many keys the unfolded filter is fuller than kBloomMaxFill:
    // its block should end.
    static constexpr uint32_t kCapacity = 9000;
    bool empty() const { return empty_; }
    void clear();
    // Appends the smallest fold whose fill stays at most kBloomMaxFill to
    // `out` (little-endian words) and returns its number of blocks. Folds in
    // place: clear() must come before the next insert().
    uint32_t fold_into(std::vector<std::byte>& out);

  private:
    static constexpr uint32_t kBlocks = 1u << kBloomMaxLog2Blocks;
    std::unique_ptr<uint32_t[]> words_;
    uint32_t keys_ = 0;
    bool empty_ = true;
};

}  // namespace sluice::index
