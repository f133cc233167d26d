// Toeplitz hash. Output bit k (most significant first) is the parity of
// input bit m AND key bit m + k over all input bits m, so the contribution of
// input byte p with value v only depends on (p, v): the table kernel looks it
// up (one load per input byte instead of up to eight window XORs per byte in
// rte_softrss).
//
// The GFNI kernel uses the same fact 8 bits at a time: the contribution of
// input byte p to output byte q is an 8x8 bit matrix that depends on p + q
// only, M[d] row s = key bits 8d + s .. 8d + s + 7. Lane d of a vector holds
// input bytes p = d, d-1, d-2, d-3 in byte positions q = 0..3, so one
// GF2P8AFFINEQB with M[d] gives every contribution of those bytes at once;
// XOR of all lanes is the hash, most significant byte in position 0.
#include "sluice/simd/toeplitz.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels.hpp"
#include "toeplitz_tables.hpp"
#include <immintrin.h>

namespace sluice::simd::detail {

ToeplitzTables::ToeplitzTables(std::span<const uint8_t> k) : key(k.begin(), k.end()) {
    max_len = key.size() - 4;
    auto key_bit = [&](std::size_t n) -> uint32_t {
        return n / 8 < key.size() ? (key[n / 8] >> (7 - n % 8)) & 1u : 0u;
    };
    auto window = [&](std::size_t n) {
        uint32_t w = 0;
        for (std::size_t i = 0; i < 32; ++i)
            w = w << 1 | key_bit(n + i);
        return w;
    };
    bytes.resize(max_len);
    for (std::size_t p = 0; p < max_len; ++p) {
        for (uint32_t v = 0; v < 256; ++v) {
            uint32_t h = 0;
            for (uint32_t t = 0; t < 8; ++t)
                if (v & (0x80u >> t)) h ^= window(8 * p + t);
            bytes[p][v] = h;
        }
    }
    gfni.assign(max_len + 4, 0);
    for (std::size_t d = 0; d < max_len + 3; ++d) {
        uint64_t m = 0;
        for (uint32_t s = 0; s < 8; ++s) {
            uint64_t row = 0;
            for (uint32_t t = 0; t < 8; ++t)
                row |= static_cast<uint64_t>(key_bit(8 * d + s + t)) << (7 - t);
            m |= row << (8 * s);
        }
        gfni[d] = m;
    }
}

uint32_t toeplitz_table(const ToeplitzTables& t, const std::byte* in, std::size_t len) {
    len = std::min(len, t.max_len);
    const auto* p = reinterpret_cast<const uint8_t*>(in);
    uint32_t h0 = 0, h1 = 0;
    std::size_t i = 0;
    for (; i + 2 <= len; i += 2) {
        h0 ^= t.bytes[i][p[i]];
        h1 ^= t.bytes[i + 1][p[i + 1]];
    }
    if (i < len) h0 ^= t.bytes[i][p[i]];
    return h0 ^ h1;
}

void toeplitz_bulk_table(const ToeplitzTables& t, const std::byte* tuples, std::size_t tuple_len,
                         std::size_t count, uint32_t* out) {
    for (std::size_t i = 0; i < count; ++i)
        out[i] = toeplitz_table(t, tuples + i * tuple_len, tuple_len);
}

namespace {

// Input bytes laid out so lane d of a 16-byte window starting at buf[d] picks
// bytes p = d..d-3: buf[3 + p] = input[p], with zeros around.
constexpr std::size_t kGfniBuf = 3 + 64 + 32;

inline uint32_t gfni_lane_bytes_to_hash(uint64_t lanes) {
    return __builtin_bswap32(static_cast<uint32_t>(lanes));
}

}  // namespace

SLUICE_TARGET("gfni,sse4.2")
uint32_t toeplitz_gfni(const ToeplitzTables& t, const std::byte* in, std::size_t len) {
    len = std::min(len, t.max_len);
    alignas(16) uint8_t buf[kGfniBuf] = {};
    std::memcpy(buf + 3, in, len);
    const __m128i pick =
        _mm_setr_epi8(3, 2, 1, 0, -128, -128, -128, -128, 4, 3, 2, 1, -128, -128, -128, -128);
    __m128i acc = _mm_setzero_si128();
    for (std::size_t d = 0; d < len + 3; d += 2) {
        const __m128i x =
            _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + d)), pick);
        const __m128i m = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&t.gfni[d]));
        acc = _mm_xor_si128(acc, _mm_gf2p8affine_epi64_epi8(x, m, 0));
    }
    const uint64_t lanes = static_cast<uint64_t>(_mm_cvtsi128_si64(acc)) ^
                           static_cast<uint64_t>(_mm_extract_epi64(acc, 1));
    return gfni_lane_bytes_to_hash(lanes);
}

SLUICE_TARGET("gfni,sse4.2")
void toeplitz_bulk_gfni(const ToeplitzTables& t, const std::byte* tuples, std::size_t tuple_len,
                        std::size_t count, uint32_t* out) {
    for (std::size_t i = 0; i < count; ++i)
        out[i] = toeplitz_gfni(t, tuples + i * tuple_len, tuple_len);
}

// The GFNI kernel's data flow with the instruction computed bit by bit, so
// that the matrix layout is tested on CPUs without GFNI too.
uint32_t toeplitz_gfni_emulated(const ToeplitzTables& t, const std::byte* in, std::size_t len) {
    len = std::min(len, t.max_len);
    uint8_t buf[kGfniBuf] = {};
    std::memcpy(buf + 3, in, len);
    const int pick[16] = {3, 2, 1, 0, -1, -1, -1, -1, 4, 3, 2, 1, -1, -1, -1, -1};
    uint64_t lanes = 0;
    for (std::size_t d = 0; d < len + 3; d += 2) {
        for (int half = 0; half < 2; ++half) {
            const uint64_t m = t.gfni[d + half];
            uint64_t lane = 0;
            for (int j = 0; j < 8; ++j) {
                const int src = pick[8 * half + j];
                const uint8_t x = src < 0 ? 0 : buf[d + src];
                uint8_t y = 0;
                // GF2P8AFFINEQB: result bit b = parity(matrix byte (7 - b) AND x).
                for (int b = 0; b < 8; ++b)
                    y |= static_cast<uint8_t>(
                        (std::popcount(static_cast<uint8_t>((m >> (8 * (7 - b))) & x)) & 1) << b);
                lane |= static_cast<uint64_t>(y) << (8 * j);
            }
            lanes ^= lane;
        }
    }
    return gfni_lane_bytes_to_hash(lanes);
}

}  // namespace sluice::simd::detail

namespace sluice::simd {

ToeplitzHash::ToeplitzHash(std::span<const uint8_t> key) {
    if (key.size() < 8 || key.size() > 64)
        throw std::invalid_argument("Toeplitz key of " + std::to_string(key.size()) +
                                    " bytes: give 8 to 64 bytes (NICs use 40 or 52)");
    tables_ = std::make_unique<detail::ToeplitzTables>(key);
}
ToeplitzHash::~ToeplitzHash() = default;
ToeplitzHash::ToeplitzHash(ToeplitzHash&&) noexcept = default;
ToeplitzHash& ToeplitzHash::operator=(ToeplitzHash&&) noexcept = default;

std::size_t ToeplitzHash::max_input_len() const {
    return tables_->max_len;
}

uint32_t ToeplitzHash::hash_words(const uint32_t* words, std::size_t n) const {
    std::byte buf[64];
    n = std::min(n, tables_->max_len / 4);
    for (std::size_t i = 0; i < n; ++i) {
        const uint32_t be = __builtin_bswap32(words[i]);
        std::memcpy(buf + 4 * i, &be, 4);
    }
    return hash(std::span<const std::byte>(buf, 4 * n));
}

}  // namespace sluice::simd
