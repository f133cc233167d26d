#include "sluice/index/bloom.hpp"

#include <bit>
#include <cstring>
#include <new>

#include <immintrin.h>

#include "sluice/simd/cpu.hpp"

namespace sluice::index {

namespace {

constexpr uint32_t kBlocks = 1u << kBloomMaxLog2Blocks;
constexpr std::size_t kAccumulatorBytes = std::size_t{kBlocks} * kBloomBlockBytes;

// The eight masks of a key, 1 << ((key >> 5i) & 31), at once with SSE4.1:
// 2^n through a float's exponent, converted back (2^31 converts to
// 0x80000000, the bit wanted).
uint32_t insert_sse(uint32_t* words, uint64_t* dirty, std::span<const uint64_t> keys) {
    uint32_t fresh_keys = 0;
    const __m128i five_bits = _mm_set1_epi32(31), one = _mm_set1_epi32(127 << 23);
    for (uint64_t key : keys) {
        const uint32_t b = bloom_block(key, kBlocks);
        dirty[b >> 6] |= uint64_t{1} << (b & 63);
        __m128i* v = reinterpret_cast<__m128i*>(words + 8 * b);
        const auto x = static_cast<uint32_t>(key), y = static_cast<uint32_t>(key >> 20);
        const __m128i n0 = _mm_and_si128(
            _mm_set_epi32(int(x >> 15), int(x >> 10), int(x >> 5), int(x)), five_bits);
        const __m128i n1 = _mm_and_si128(
            _mm_set_epi32(int(y >> 15), int(y >> 10), int(y >> 5), int(y)), five_bits);
        const __m128i m0 =
            _mm_cvttps_epi32(_mm_castsi128_ps(_mm_add_epi32(_mm_slli_epi32(n0, 23), one)));
        const __m128i m1 =
            _mm_cvttps_epi32(_mm_castsi128_ps(_mm_add_epi32(_mm_slli_epi32(n1, 23), one)));
        const __m128i w0 = _mm_load_si128(v), w1 = _mm_load_si128(v + 1);
        const __m128i fresh = _mm_or_si128(_mm_andnot_si128(w0, m0), _mm_andnot_si128(w1, m1));
        _mm_store_si128(v, _mm_or_si128(w0, m0));
        _mm_store_si128(v + 1, _mm_or_si128(w1, m1));
        fresh_keys += !_mm_testz_si128(fresh, fresh);
    }
    return fresh_keys;
}

// The same with AVX2's per-lane shifts: three times faster per key.
__attribute__((target("avx2"))) uint32_t insert_avx2(uint32_t* words, uint64_t* dirty,
                                                     std::span<const uint64_t> keys) {
    uint32_t fresh_keys = 0;
    const __m256i shifts = _mm256_setr_epi32(0, 5, 10, 15, 0, 5, 10, 15);
    const __m256i five_bits = _mm256_set1_epi32(31), one = _mm256_set1_epi32(1);
    for (uint64_t key : keys) {
        const uint32_t b = bloom_block(key, kBlocks);
        dirty[b >> 6] |= uint64_t{1} << (b & 63);
        __m256i* v = reinterpret_cast<__m256i*>(words + 8 * b);
        // Lanes 0-3 shift the key's low 32 bits, lanes 4-7 the bits from 20.
        const __m256i src =
            _mm256_blend_epi32(_mm256_set1_epi32(int(static_cast<uint32_t>(key))),
                               _mm256_set1_epi32(int(static_cast<uint32_t>(key >> 20))), 0xf0);
        const __m256i n = _mm256_and_si256(_mm256_srlv_epi32(src, shifts), five_bits);
        const __m256i m = _mm256_sllv_epi32(one, n);
        const __m256i w = _mm256_load_si256(v);
        fresh_keys += !_mm256_testc_si256(w, m);
        _mm256_store_si256(v, _mm256_or_si256(w, m));
    }
    return fresh_keys;
}

uint32_t insert_scalar(uint32_t* words, uint64_t* dirty, std::span<const uint64_t> keys) {
    uint32_t fresh_keys = 0;
    for (uint64_t key : keys) {
        const uint32_t b = bloom_block(key, kBlocks);
        dirty[b >> 6] |= uint64_t{1} << (b & 63);
        uint32_t* w = words + 8 * b;
        uint32_t fresh = 0;
        for (int i = 0; i < 8; ++i) {
            const uint32_t m = bloom_bit(key, i);
            fresh |= m & ~w[i];
            w[i] |= m;
        }
        fresh_keys += fresh != 0;
    }
    return fresh_keys;
}

}  // namespace

void BloomAccumulator::Free::operator()(uint32_t* p) const {
    ::operator delete[](p, std::align_val_t{64});
}

BloomAccumulator::BloomAccumulator()
    : words_(static_cast<uint32_t*>(::operator new[](kAccumulatorBytes, std::align_val_t{64}))) {
    std::memset(words_.get(), 0, kAccumulatorBytes);
}

void BloomAccumulator::insert(std::span<const uint64_t> keys) {
    if (keys.empty()) return;
    // The level the simd kernels run at (SLUICE_SIMD, the `simd` setting):
    // one switch for all of sluice's vector code.
    switch (simd::active_level()) {
        case simd::Level::Avx512:
        case simd::Level::Avx2:
            keys_ += insert_avx2(words_.get(), dirty_.data(), keys);
            break;
        case simd::Level::Sse42:
            keys_ += insert_sse(words_.get(), dirty_.data(), keys);
            break;
        case simd::Level::Scalar:
            keys_ += insert_scalar(words_.get(), dirty_.data(), keys);
            break;
    }
    empty_ = false;
}

void BloomAccumulator::clear() {
    if (empty_) return;
    for (std::size_t i = 0; i < dirty_.size(); ++i) {
        for (uint64_t d = dirty_[i]; d; d &= d - 1) {
            const std::size_t b = 64 * i + std::size_t(std::countr_zero(d));
            std::memset(words_.get() + 8 * b, 0, kBloomBlockBytes);
        }
        dirty_[i] = 0;
    }
    keys_ = 0;
    empty_ = true;
}

void BloomAccumulator::merge_from(BloomAccumulator& other) {
    if (other.empty_) return;
    for (std::size_t i = 0; i < dirty_.size(); ++i) {
        for (uint64_t d = other.dirty_[i]; d; d &= d - 1) {
            const std::size_t b = 64 * i + std::size_t(std::countr_zero(d));
            uint32_t* to = words_.get() + 8 * b;
            uint32_t* from = other.words_.get() + 8 * b;
            for (int w = 0; w < 8; ++w)
                to[w] |= from[w];
            std::memset(from, 0, kBloomBlockBytes);
        }
        dirty_[i] |= other.dirty_[i];
        other.dirty_[i] = 0;
    }
    keys_ += other.keys_;
    other.keys_ = 0;
    empty_ = false;
    other.empty_ = true;
}

void BloomAccumulator::copy_from(const BloomAccumulator& other) {
    std::memcpy(words_.get(), other.words_.get(), kAccumulatorBytes);
    dirty_ = other.dirty_;
    keys_ = other.keys_;
    empty_ = other.empty_;
}

uint32_t BloomAccumulator::fold_into(std::vector<std::byte>& out) {
    if (empty_) return 0;
    // Fold while the next fold keeps the fill low enough: each fold ORs the
    // upper half onto the lower (counted first, written only if kept).
    uint32_t blocks = kBlocks;
    uint32_t* w = words_.get();
    while (blocks > 1) {
        const uint32_t half = blocks / 2;
        uint64_t folded = 0;
        for (std::size_t i = 0; i < 8 * std::size_t{half}; ++i)
            folded += static_cast<uint64_t>(std::popcount(w[i] | w[i + 8 * half]));
        if (double(folded) > kBloomMaxFill * double(256u * half)) break;
        for (std::size_t i = 0; i < 8 * std::size_t{half}; ++i)
            w[i] |= w[i + 8 * half];
        blocks = half;
    }
    // The folds wrote into blocks insert() never marked.
    dirty_.fill(~uint64_t{0});
    const std::size_t at = out.size();
    out.resize(at + std::size_t{blocks} * kBloomBlockBytes);
    std::memcpy(out.data() + at, w, std::size_t{blocks} * kBloomBlockBytes);  // x86: little-endian
    return blocks;
}

}  // namespace sluice::index
