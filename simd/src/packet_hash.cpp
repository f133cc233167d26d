// The packet hash (packet_hash.hpp) at each level. Every implementation runs
// the same eight lanes over the same stripes and ends in the same scalar
// mixing, so all return the same value.
#include <cstring>
#include <stdexcept>

#include "kernels.hpp"
#include <immintrin.h>
#include <sys/random.h>

namespace sluice::simd {

PacketHashKey PacketHashKey::from_seed(uint64_t seed) {
    // splitmix64: a full-period generator whose outputs are well mixed.
    auto next = [&seed] {
        uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    PacketHashKey k;
    for (auto& l : k.lanes)
        l = next();
    k.step = next() | 1;
    k.seed = next();
    return k;
}

PacketHashKey PacketHashKey::random() {
    uint64_t seed = 0;
    if (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed))
        throw std::runtime_error("cannot read the system's random source (getrandom)");
    return from_seed(seed);
}

namespace detail {
namespace {

constexpr std::size_t kStripe = 64;

inline uint64_t load64(const unsigned char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline uint64_t fold128(uint64_t a, uint64_t b) {
    const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
    return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

// The lanes, the key and the length into 64 bits.
uint64_t finish(const uint64_t acc[8], std::size_t len, const PacketHashKey& key) {
    uint64_t h = static_cast<uint64_t>(len) * 0x9E3779B97F4A7C15ull ^ key.seed;
    for (int j = 0; j < 8; j += 2)
        h += fold128(acc[j] ^ key.lanes[(j + 3) & 7], acc[j + 1] ^ key.lanes[(j + 5) & 7]);
    h ^= h >> 37;
    h *= 0x165667919E3779F9ull;
    return h ^ (h >> 32);
}

// One stripe into the lanes with the stripe's key words.
inline void stripe_scalar(uint64_t acc[8], const unsigned char* p, const uint64_t k[8]) {
    for (int j = 0; j < 8; ++j) {
        const uint64_t d = load64(p + 8 * j);
        const uint64_t dk = d ^ k[j];
        acc[j ^ 1] += d;
        acc[j] += (dk & 0xffffffffu) * (dk >> 32);
    }
}

}  // namespace

uint64_t packet_hash_scalar(const void* data, std::size_t len, const PacketHashKey& key) {
    const auto* p = static_cast<const unsigned char*>(data);
    uint64_t acc[8] = {};
    uint64_t k[8];
    for (int j = 0; j < 8; ++j)
        k[j] = key.lanes[j];
    std::size_t left = len;
    for (; left >= kStripe; left -= kStripe, p += kStripe) {
        stripe_scalar(acc, p, k);
        for (uint64_t& w : k)
            w += key.step;
    }
    if (left) {
        unsigned char last[kStripe] = {};
        std::memcpy(last, p, left);
        stripe_scalar(acc, last, k);
    }
    return finish(acc, len, key);
}

// One stripe into lanes 0-3 (acc0) and 4-7 (acc1) with the stripe's key words.
SLUICE_TARGET("avx2")
inline void stripe_avx2(__m256i& acc0, __m256i& acc1, const unsigned char* s, __m256i k0,
                        __m256i k1) {
    const __m256i d0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
    const __m256i d1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 32));
    const __m256i dk0 = _mm256_xor_si256(d0, k0), dk1 = _mm256_xor_si256(d1, k1);
    // Lane j takes its neighbour's data word: swap the 64-bit halves of each 128 bits.
    acc0 = _mm256_add_epi64(acc0, _mm256_shuffle_epi32(d0, _MM_SHUFFLE(1, 0, 3, 2)));
    acc1 = _mm256_add_epi64(acc1, _mm256_shuffle_epi32(d1, _MM_SHUFFLE(1, 0, 3, 2)));
    acc0 = _mm256_add_epi64(acc0, _mm256_mul_epu32(dk0, _mm256_srli_epi64(dk0, 32)));
    acc1 = _mm256_add_epi64(acc1, _mm256_mul_epu32(dk1, _mm256_srli_epi64(dk1, 32)));
}

SLUICE_TARGET("avx2")
uint64_t packet_hash_avx2(const void* data, std::size_t len, const PacketHashKey& key) {
    const auto* p = static_cast<const unsigned char*>(data);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(key.lanes.data()));
    __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(key.lanes.data() + 4));
    const __m256i step = _mm256_set1_epi64x(static_cast<long long>(key.step));
    std::size_t left = len;
    for (; left >= kStripe; left -= kStripe, p += kStripe) {
        stripe_avx2(acc0, acc1, p, k0, k1);
        k0 = _mm256_add_epi64(k0, step);
        k1 = _mm256_add_epi64(k1, step);
    }
    if (left) {
        alignas(32) unsigned char last[kStripe] = {};
        std::memcpy(last, p, left);
        stripe_avx2(acc0, acc1, last, k0, k1);
    }
    alignas(32) uint64_t acc[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(acc), acc0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(acc + 4), acc1);
    return finish(acc, len, key);
}

SLUICE_TARGET("avx512f,avx512bw")
inline __m512i stripe_avx512(__m512i acc, __m512i d, __m512i k) {
    // The zero-masked forms: GCC 12's unmasked ones start from an undefined
    // register, which -Wmaybe-uninitialized reports.
    const __m512i dk = _mm512_xor_si512(d, k);
    acc = _mm512_add_epi64(acc, _mm512_maskz_shuffle_epi32(0xffff, d, _MM_PERM_BADC));
    return _mm512_add_epi64(
        acc, _mm512_maskz_mul_epu32(0xff, dk, _mm512_maskz_srli_epi64(0xff, dk, 32)));
}

SLUICE_TARGET("avx512f,avx512bw")
uint64_t packet_hash_avx512(const void* data, std::size_t len, const PacketHashKey& key) {
    const auto* p = static_cast<const unsigned char*>(data);
    __m512i acc = _mm512_setzero_si512();
    __m512i k = _mm512_loadu_si512(key.lanes.data());
    const __m512i step = _mm512_set1_epi64(static_cast<long long>(key.step));
    std::size_t left = len;
    for (; left >= kStripe; left -= kStripe, p += kStripe) {
        acc = stripe_avx512(acc, _mm512_loadu_si512(p), k);
        k = _mm512_add_epi64(k, step);
    }
    if (left) {
        // A masked load reads only the bytes that are there and zeroes the rest.
        const __mmask64 m = (__mmask64{1} << left) - 1;
        acc = stripe_avx512(acc, _mm512_maskz_loadu_epi8(m, p), k);
    }
    alignas(64) uint64_t out[8];
    _mm512_store_si512(out, acc);
    return finish(out, len, key);
}

}  // namespace detail
}  // namespace sluice::simd
