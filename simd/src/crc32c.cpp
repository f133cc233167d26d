// CRC-32C implementations. The math shared by the fast ones (docs/simd.md has
// the derivation): in the reflected bit order the crc32 instruction and CRC-32C
// use, crc32q(0, D) = D(x) * x^32 mod P for a 64-bit data word D, and a
// carry-less multiply of two 32-bit values a, b held in 64-bit lanes yields
// a(x) * b(x) * x as a 64-bit word. Hence:
//   shift(c, n bytes) = crc32q(0, clmul(c, x^(8n - 33) mod P)) = c * x^(8n) mod P,
// which merges independent CRC chains, and folding a 128-bit accumulator
// A = hi * x^64 + lo forward by D bits is
//   clmul(lo64(A), x^(D + 31) mod P) ^ clmul(hi64(A), x^(D - 33) mod P)
// (the low 64 bits of the register hold the higher-order coefficients).
#include <array>
#include <bit>
#include <cstring>

#include "kernels.hpp"
#include <immintrin.h>

namespace sluice::simd::detail {
namespace {

static_assert(std::endian::native == std::endian::little, "sluice reads frames as little-endian");

constexpr uint32_t kPoly = 0x82F63B78u;  // CRC-32C, reflected

// v * x^n mod P, v in reflected representation (bit 31 is the x^0 coefficient).
constexpr uint32_t mul_xn(uint32_t v, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i)
        v = (v >> 1) ^ ((v & 1u) ? kPoly : 0u);
    return v;
}
constexpr uint32_t xn_mod_p(uint64_t n) {
    return mul_xn(0x80000000u, n);
}

// Known-answer checks of the derivation above.
static_assert(xn_mod_p(0) == 0x80000000u);
static_assert(xn_mod_p(32) == kPoly);

constexpr std::array<std::array<uint32_t, 256>, 8> make_slice_tables() {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t n = 0; n < 256; ++n) {
        uint32_t c = n;
        for (int b = 0; b < 8; ++b)
            c = (c >> 1) ^ ((c & 1u) ? kPoly : 0u);
        t[0][n] = c;
    }
    for (int k = 1; k < 8; ++k)
        for (uint32_t n = 0; n < 256; ++n)
            t[k][n] = (t[k - 1][n] >> 8) ^ t[0][t[k - 1][n] & 0xff];
    return t;
}
constexpr auto kSlice = make_slice_tables();

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// ---- three crc32q chains -----------------------------------------------------
// crc32q has a latency of 3 cycles and a throughput of 1 per cycle on the CPUs
// we measured, so three independent chains keep the unit busy. Each chain
// covers a third of the block; the first two are shifted forward and merged.
constexpr std::size_t kMaxChain = 4096;  // bytes per chain per round (3 x 4 KiB rounds)
constexpr std::size_t kMin3Way = 216;    // below this one chain is as fast (measured)
constexpr std::size_t kMinVpclmul = 512;

// kShift[j] = x^(64 j - 33) mod P: shifts a CRC forward by j 8-byte words.
constexpr std::array<uint32_t, 2 * kMaxChain / 8 + 1> make_shift_table() {
    std::array<uint32_t, 2 * kMaxChain / 8 + 1> t{};
    t[1] = xn_mod_p(64 - 33);
    for (std::size_t j = 2; j < t.size(); ++j)
        t[j] = mul_xn(t[j - 1], 64);
    return t;
}
constexpr auto kShift = make_shift_table();

}  // namespace

uint32_t crc32c_slice8(const void* data, std::size_t len, uint32_t state) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (; len >= 8; p += 8, len -= 8) {
        const uint64_t v = load64(p) ^ state;
        state = kSlice[7][v & 0xff] ^ kSlice[6][(v >> 8) & 0xff] ^ kSlice[5][(v >> 16) & 0xff] ^
                kSlice[4][(v >> 24) & 0xff] ^ kSlice[3][(v >> 32) & 0xff] ^
                kSlice[2][(v >> 40) & 0xff] ^ kSlice[1][(v >> 48) & 0xff] ^ kSlice[0][v >> 56];
    }
    for (; len; ++p, --len)
        state = (state >> 8) ^ kSlice[0][(state ^ *p) & 0xff];
    return state;
}

namespace {

SLUICE_TARGET("sse4.2")
inline uint32_t crc_tail(const uint8_t* p, std::size_t len, uint32_t state) {
    uint64_t s = state;
    for (; len >= 8; p += 8, len -= 8)
        s = _mm_crc32_u64(s, load64(p));
    state = static_cast<uint32_t>(s);
    if (len & 4) state = _mm_crc32_u32(state, load32(p)), p += 4;
    if (len & 2) {
        uint16_t v;
        std::memcpy(&v, p, 2);
        state = _mm_crc32_u16(state, v), p += 2;
    }
    if (len & 1) state = _mm_crc32_u8(state, *p);
    return state;
}

SLUICE_TARGET("sse4.2,pclmul")
inline uint32_t shift_crc(uint32_t crc, std::size_t words) {
    const __m128i prod =
        _mm_clmulepi64_si128(_mm_cvtsi32_si128(static_cast<int>(crc)),
                             _mm_cvtsi32_si128(static_cast<int>(kShift[words])), 0x00);
    return static_cast<uint32_t>(_mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(prod))));
}

// CRC of 3 * chain bytes at p, chain a multiple of 8 and <= kMaxChain.
SLUICE_TARGET("sse4.2,pclmul")
inline uint32_t crc_3way(const uint8_t* p, std::size_t chain, uint32_t state) {
    uint64_t c0 = state, c1 = 0, c2 = 0;
    const uint8_t* p1 = p + chain;
    const uint8_t* p2 = p + 2 * chain;
    for (std::size_t i = 0; i < chain; i += 8) {
        c0 = _mm_crc32_u64(c0, load64(p + i));
        c1 = _mm_crc32_u64(c1, load64(p1 + i));
        c2 = _mm_crc32_u64(c2, load64(p2 + i));
    }
    const std::size_t words = chain / 8;
    return shift_crc(static_cast<uint32_t>(c0), 2 * words) ^
           shift_crc(static_cast<uint32_t>(c1), words) ^ static_cast<uint32_t>(c2);
}

// ---- PCLMUL folding ------------------------------------------------------------
// Fold constants as (lo lane, hi lane): x^(D+31), x^(D-33).
template <uint64_t DistanceBits>
SLUICE_TARGET("sse4.2,pclmul")
inline __m128i fold_k() {
    constexpr uint32_t lo = xn_mod_p(DistanceBits + 31);
    constexpr uint32_t hi = xn_mod_p(DistanceBits - 33);
    return _mm_set_epi64x(hi, lo);
}

SLUICE_TARGET("sse4.2,pclmul")
inline __m128i fold(__m128i acc, __m128i k, __m128i next) {
    const __m128i lo = _mm_clmulepi64_si128(acc, k, 0x00);
    const __m128i hi = _mm_clmulepi64_si128(acc, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

SLUICE_TARGET("sse4.2,pclmul")
inline __m128i loadu128(const uint8_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// Folds the remaining 16-byte blocks into x, reduces x to 32 bits, and
// finishes the < 16 byte tail.
SLUICE_TARGET("sse4.2,pclmul")
inline uint32_t finish_fold(__m128i x, const uint8_t* p, std::size_t len) {
    const __m128i k128 = fold_k<128>();
    for (; len >= 16; p += 16, len -= 16)
        x = fold(x, k128, loadu128(p));
    // x holds the last 16 bytes of the (folded) message: running them through
    // crc32q from state 0 reduces them and multiplies by x^32 as a CRC does.
    uint64_t s = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(x)));
    s = _mm_crc32_u64(s, static_cast<uint64_t>(_mm_extract_epi64(x, 1)));
    return crc_tail(p, len, static_cast<uint32_t>(s));
}

}  // namespace

SLUICE_TARGET("sse4.2")
uint32_t crc32c_hw_serial(const void* data, std::size_t len, uint32_t state) {
    return crc_tail(static_cast<const uint8_t*>(data), len, state);
}

SLUICE_TARGET("sse4.2,pclmul")
uint32_t crc32c_hw_3way(const void* data, std::size_t len, uint32_t state) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (; len >= 3 * kMaxChain; p += 3 * kMaxChain, len -= 3 * kMaxChain)
        state = crc_3way(p, kMaxChain, state);
    if (len >= kMin3Way) {
        const std::size_t chain = len / 24 * 8;
        state = crc_3way(p, chain, state);
        p += 3 * chain, len -= 3 * chain;
    }
    return crc_tail(p, len, state);
}

SLUICE_TARGET("sse4.2,pclmul")
uint32_t crc32c_clmul_fold(const void* data, std::size_t len, uint32_t state) {
    const auto* p = static_cast<const uint8_t*>(data);
    if (len < 64) return crc_tail(p, len, state);
    __m128i x0 = _mm_xor_si128(loadu128(p), _mm_cvtsi32_si128(static_cast<int>(state)));
    __m128i x1 = loadu128(p + 16), x2 = loadu128(p + 32), x3 = loadu128(p + 48);
    p += 64, len -= 64;
    const __m128i k512 = fold_k<512>();
    for (; len >= 64; p += 64, len -= 64) {
        x0 = fold(x0, k512, loadu128(p));
        x1 = fold(x1, k512, loadu128(p + 16));
        x2 = fold(x2, k512, loadu128(p + 32));
        x3 = fold(x3, k512, loadu128(p + 48));
    }
    const __m128i k128 = fold_k<128>();
    __m128i x = fold(x0, k128, x1);
    x = fold(x, k128, x2);
    x = fold(x, k128, x3);
    return finish_fold(x, p, len);
}

namespace {

SLUICE_TARGET("avx2,vpclmulqdq,pclmul,sse4.2")
inline __m256i fold256(__m256i acc, __m256i k, __m256i next) {
    const __m256i lo = _mm256_clmulepi64_epi128(acc, k, 0x00);
    const __m256i hi = _mm256_clmulepi64_epi128(acc, k, 0x11);
    return _mm256_xor_si256(_mm256_xor_si256(lo, hi), next);
}

SLUICE_TARGET("avx2,vpclmulqdq,pclmul,sse4.2")
inline __m256i loadu256(const uint8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

template <uint64_t DistanceBits>
SLUICE_TARGET("avx2,vpclmulqdq,pclmul,sse4.2")
inline __m256i fold256_k() {
    return _mm256_broadcastsi128_si256(fold_k<DistanceBits>());
}

}  // namespace

SLUICE_TARGET("avx2,vpclmulqdq,pclmul,sse4.2")
uint32_t crc32c_vpclmul_fold(const void* data, std::size_t len, uint32_t state) {
    const auto* p = static_cast<const uint8_t*>(data);
    // Below this the three crc32q chains are faster (measured: docs/simd.md).
    if (len < kMinVpclmul) return crc32c_hw_3way(p, len, state);
    __m256i y0 = _mm256_xor_si256(
        loadu256(p), _mm256_zextsi128_si256(_mm_cvtsi32_si128(static_cast<int>(state))));
    __m256i y1 = loadu256(p + 32), y2 = loadu256(p + 64), y3 = loadu256(p + 96);
    p += 128, len -= 128;
    const __m256i k1024 = fold256_k<1024>();
    for (; len >= 128; p += 128, len -= 128) {
        y0 = fold256(y0, k1024, loadu256(p));
        y1 = fold256(y1, k1024, loadu256(p + 32));
        y2 = fold256(y2, k1024, loadu256(p + 64));
        y3 = fold256(y3, k1024, loadu256(p + 96));
    }
    const __m256i k256 = fold256_k<256>();
    __m256i y = fold256(y0, k256, y1);
    y = fold256(y, k256, y2);
    y = fold256(y, k256, y3);
    const __m128i x =
        fold(_mm256_castsi256_si128(y), fold_k<128>(), _mm256_extracti128_si256(y, 1));
    return finish_fold(x, p, len);
}

namespace {

// Mixed kernel: VPCLMULQDQ folding and three crc32q chains run on different
// execution units, so one loop feeds both. A round covers
//   [A: 128 n bytes, folded][B0: L][B1: L][B2: L],  L = 8 Words n,
// and is merged as shift(crc(A), 3L) ^ shift(b0, 2L) ^ shift(b1, L) ^ b2.
template <std::size_t Words, std::size_t Iterations>
SLUICE_TARGET("avx2,vpclmulqdq,pclmul,sse4.2")
inline uint32_t mixed_round(const uint8_t* p, uint32_t state) {
    constexpr std::size_t kA = 128 * Iterations;
    constexpr std::size_t kL = 8 * Words * Iterations;
    static_assert(3 * kL / 8 < kShift.size());
    const uint8_t* b0 = p + kA;
    const uint8_t* b1 = b0 + kL;
    const uint8_t* b2 = b1 + kL;
    __m256i y0 = _mm256_xor_si256(
        loadu256(p), _mm256_zextsi128_si256(_mm_cvtsi32_si128(static_cast<int>(state))));
    __m256i y1 = loadu256(p + 32), y2 = loadu256(p + 64), y3 = loadu256(p + 96);
    uint64_t c0 = 0, c1 = 0, c2 = 0;
    const __m256i k1024 = fold256_k<1024>();
    for (std::size_t i = 0; i < Iterations; ++i) {
        if (i + 1 < Iterations) {
            const uint8_t* a = p + 128 * (i + 1);
            y0 = fold256(y0, k1024, loadu256(a));
            y1 = fold256(y1, k1024, loadu256(a + 32));
            y2 = fold256(y2, k1024, loadu256(a + 64));
            y3 = fold256(y3, k1024, loadu256(a + 96));
        }
        for (std::size_t w = 0; w < Words; ++w) {
            const std::size_t off = 8 * (Words * i + w);
            c0 = _mm_crc32_u64(c0, load64(b0 + off));
            c1 = _mm_crc32_u64(c1, load64(b1 + off));
            c2 = _mm_crc32_u64(c2, load64(b2 + off));
        }
    }
    const __m256i k256 = fold256_k<256>();
    __m256i y = fold256(y0, k256, y1);
    y = fold256(y, k256, y2);
    y = fold256(y, k256, y3);
    const __m128i x =
        fold(_mm256_castsi256_si128(y), fold_k<128>(), _mm256_extracti128_si256(y, 1));
    uint64_t a = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(x)));
    a = _mm_crc32_u64(a, static_cast<uint64_t>(_mm_extract_epi64(x, 1)));
    constexpr std::size_t kWordsL = kL / 8;
    return shift_crc(static_cast<uint32_t>(a), 3 * kWordsL) ^
           shift_crc(static_cast<uint32_t>(c0), 2 * kWordsL) ^
           shift_crc(static_cast<uint32_t>(c1), kWordsL) ^ static_cast<uint32_t>(c2);
}

}  // namespace

// Rounds of 1792 bytes (4 words per chain per 128 folded bytes, 8
// iterations): the best of the shapes measured on Zen 3, 1.2-1.45x the
// VPCLMULQDQ kernel alone from 2 KiB up (docs/simd.md).
SLUICE_TARGET("avx2,vpclmulqdq,pclmul,sse4.2")
uint32_t crc32c_mixed(const void* data, std::size_t len, uint32_t state) {
    constexpr std::size_t kWords = 4, kIterations = 8;
    constexpr std::size_t kRound = (128 + 24 * kWords) * kIterations;
    const auto* p = static_cast<const uint8_t*>(data);
    for (; len >= kRound; p += kRound, len -= kRound)
        state = mixed_round<kWords, kIterations>(p, state);
    return crc32c_vpclmul_fold(p, len, state);
}

}  // namespace sluice::simd::detail
