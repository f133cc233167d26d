// Internet checksum kernels. The fast sums rely on the one's-complement sum
// not caring how words are grouped: adding 32-bit little-endian words, or
// 16-bit words offset by -32768, gives a total congruent to the 16-bit word
// sum modulo 0xffff (65536 = 1 mod 0xffff) that is zero only for all-zero
// data, so its fold equals rte_raw_cksum's.
#include <algorithm>
#include <cstring>

#include "kernels.hpp"
#include <immintrin.h>

namespace sluice::simd::detail {
namespace {

inline uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint16_t load16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline uint16_t be16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

// Scalar tail and short-buffer sum: 32-bit words into 64-bit accumulators.
inline uint64_t sum_words(const uint8_t* p, std::size_t len, uint64_t acc) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (; len >= 16; p += 16, len -= 16) {
        a0 += load32(p);
        a1 += load32(p + 4);
        a2 += load32(p + 8);
        a3 += load32(p + 12);
    }
    for (; len >= 4; p += 4, len -= 4)
        a0 += load32(p);
    if (len >= 2) a1 += load16(p), p += 2, len -= 2;
    if (len) a2 += *p;  // odd last byte: the low byte of a little-endian word
    return acc + a0 + a1 + a2 + a3;
}

// Lanes of each 16-bit-pair sum get -65536 from the offset; blocks are small
// enough that 32-bit lanes never overflow: 4 accumulators x 4096 iterations x
// 65536 = 2^30.
constexpr std::size_t kSseBlock = 64 * 4096;
constexpr std::size_t kAvxBlock = 128 * 4096;

// Sums of adjacent 16-bit words, each read as (word - 32768) so that
// pmaddwd's signed multiply-add works on unsigned data.
SLUICE_TARGET("sse4.2") inline __m128i pairs(const uint8_t* q) {
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    return _mm_madd_epi16(_mm_xor_si128(w, _mm_set1_epi16(static_cast<short>(0x8000))),
                          _mm_set1_epi16(1));
}
SLUICE_TARGET("avx2") inline __m256i pairs256(const uint8_t* q) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    return _mm256_madd_epi16(_mm256_xor_si256(w, _mm256_set1_epi16(static_cast<short>(0x8000))),
                             _mm256_set1_epi16(1));
}

}  // namespace

uint64_t cksum_add_scalar(const void* data, std::size_t len, uint64_t acc) {
    return sum_words(static_cast<const uint8_t*>(data), len, acc);
}

SLUICE_TARGET("sse4.2")
uint64_t cksum_add_sse42(const void* data, std::size_t len, uint64_t acc) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (len >= 64) {
        const std::size_t block = std::min(len, kSseBlock) & ~std::size_t{63};
        __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
        for (std::size_t i = 0; i < block; i += 64) {
            a0 = _mm_add_epi32(a0, pairs(p + i));
            a1 = _mm_add_epi32(a1, pairs(p + i + 16));
            a2 = _mm_add_epi32(a2, pairs(p + i + 32));
            a3 = _mm_add_epi32(a3, pairs(p + i + 48));
        }
        const __m128i s = _mm_add_epi64(
            _mm_add_epi64(_mm_cvtepi32_epi64(_mm_add_epi32(a0, a1)),
                          _mm_cvtepi32_epi64(_mm_srli_si128(_mm_add_epi32(a0, a1), 8))),
            _mm_add_epi64(_mm_cvtepi32_epi64(_mm_add_epi32(a2, a3)),
                          _mm_cvtepi32_epi64(_mm_srli_si128(_mm_add_epi32(a2, a3), 8))));
        const int64_t lanes = _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
        // Each 16-bit word was read as (word - 32768): add 32768 back per word.
        acc += static_cast<uint64_t>(lanes + static_cast<int64_t>(block / 2) * 32768);
        p += block, len -= block;
    }
    return sum_words(p, len, acc);
}

SLUICE_TARGET("avx2")
uint64_t cksum_add_avx2(const void* data, std::size_t len, uint64_t acc) {
    // Below this the 128-bit kernel is as fast (measured: docs/simd.md).
    if (len < 256) return cksum_add_sse42(data, len, acc);
    const auto* p = static_cast<const uint8_t*>(data);
    while (len >= 32) {
        const std::size_t block = std::min(len, kAvxBlock) & ~std::size_t{31};
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        std::size_t i = 0;
        for (; i + 128 <= block; i += 128) {
            a0 = _mm256_add_epi32(a0, pairs256(p + i));
            a1 = _mm256_add_epi32(a1, pairs256(p + i + 32));
            a2 = _mm256_add_epi32(a2, pairs256(p + i + 64));
            a3 = _mm256_add_epi32(a3, pairs256(p + i + 96));
        }
        for (; i < block; i += 32)
            a0 = _mm256_add_epi32(a0, pairs256(p + i));
        const __m256i s01 = _mm256_add_epi32(a0, a1), s23 = _mm256_add_epi32(a2, a3);
        __m256i s = _mm256_add_epi64(
            _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(s01)),
                             _mm256_cvtepi32_epi64(_mm256_extracti128_si256(s01, 1))),
            _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(s23)),
                             _mm256_cvtepi32_epi64(_mm256_extracti128_si256(s23, 1))));
        const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        const int64_t lanes = _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
        acc += static_cast<uint64_t>(lanes + static_cast<int64_t>(block / 2) * 32768);
        p += block, len -= block;
    }
    return sum_words(p, len, acc);
}

namespace {

// The pseudo-header words, summed with the same kernel as the payload.
template <uint64_t (*Sum)(const void*, std::size_t, uint64_t)>
inline uint64_t pseudo_v4(const uint8_t* ip, uint8_t proto, uint16_t l4_len) {
    uint8_t tail[4] = {0, proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)};
    return Sum(ip + 12, 8, load32(tail));
}

template <uint64_t (*Sum)(const void*, std::size_t, uint64_t)>
inline uint64_t pseudo_v6(const uint8_t* ip, uint8_t proto, uint32_t l4_len) {
    const uint8_t tail[8] = {static_cast<uint8_t>(l4_len >> 24),
                             static_cast<uint8_t>(l4_len >> 16),
                             static_cast<uint8_t>(l4_len >> 8),
                             static_cast<uint8_t>(l4_len),
                             0,
                             0,
                             0,
                             proto};
    return Sum(ip + 8, 32, Sum(tail, 8, 0));
}

constexpr uint8_t kTcp = 6, kUdp = 17;

// Verdict for a TCP or UDP segment of l4_len bytes at l4, of which `avail`
// were captured; `sum` already holds the pseudo-header.
template <uint64_t (*Sum)(const void*, std::size_t, uint64_t)>
inline Verdict verify_l4(const uint8_t* l4, std::size_t l4_len, std::size_t avail, uint8_t proto,
                         uint64_t sum, bool udp_zero_means_none) {
    const std::size_t min_hdr = proto == kTcp ? 20 : 8;
    if (l4_len < min_hdr) return Verdict::Bad;
    if (avail < l4_len) return Verdict::Truncated;
    if (proto == kUdp && load16(l4 + 6) == 0)
        return udp_zero_means_none ? Verdict::None : Verdict::Bad;
    return cksum_fold(Sum(l4, l4_len, sum)) == 0xffff ? Verdict::Good : Verdict::Bad;
}

template <uint64_t (*Sum)(const void*, std::size_t, uint64_t)>
ChecksumResult verify_one(const PacketView& pkt) {
    ChecksumResult r;
    if (pkt.data == nullptr || pkt.l3_offset >= pkt.len) return r;
    const uint8_t* ip = reinterpret_cast<const uint8_t*>(pkt.data) + pkt.l3_offset;
    const std::size_t avail = pkt.len - pkt.l3_offset;
    const unsigned version = ip[0] >> 4;
    if (version == 4) {
        if (avail < 20) return r.ip = Verdict::Truncated, r;
        const std::size_t ihl = (ip[0] & 0x0fu) * 4u;
        r.l4_proto = ip[9];
        if (ihl < 20) return r.ip = Verdict::Bad, r;
        if (avail < ihl) return r.ip = Verdict::Truncated, r;
        r.ip = cksum_fold(Sum(ip, ihl, 0)) == 0xffff ? Verdict::Good : Verdict::Bad;
        if (r.l4_proto != kTcp && r.l4_proto != kUdp) return r;
        if ((be16(ip + 6) & 0x3fffu) != 0) return r;  // a fragment: More Fragments or an offset
        const std::size_t total = be16(ip + 2);
        if (total < ihl) return r.l4 = Verdict::Bad, r;
        const std::size_t l4_len = total - ihl;
        r.l4 = verify_l4<Sum>(ip + ihl, l4_len, std::min(avail, total) - ihl, r.l4_proto,
                              pseudo_v4<Sum>(ip, r.l4_proto, static_cast<uint16_t>(l4_len)), true);
        return r;
    }
    if (version == 6) {
        if (avail < 40) return r.ip = Verdict::Truncated, r;
        const std::size_t payload = be16(ip + 4);
        uint8_t next = ip[6];
        std::size_t off = 40;
        // Extension headers a TCP/UDP segment may sit behind; anything else
        // (including fragment and ESP) ends the walk.
        for (int hops = 0; hops < 8 && (next == 0 || next == 43 || next == 60); ++hops) {
            if (avail < off + 8) return r.l4 = Verdict::Truncated, r.l4_proto = next, r;
            const std::size_t ext = (static_cast<std::size_t>(ip[off + 1]) + 1) * 8;
            next = ip[off];
            off += ext;
        }
        r.l4_proto = next;
        if (next != kTcp && next != kUdp) return r;
        if (payload == 0) return r;  // a jumbogram: the length is in an option we do not parse
        if (off > 40 + payload) return r.l4 = Verdict::Bad, r;
        const std::size_t l4_len = 40 + payload - off;
        const std::size_t have = avail > off ? avail - off : 0;
        r.l4 = verify_l4<Sum>(ip + off, l4_len, have, next,
                              pseudo_v6<Sum>(ip, next, static_cast<uint32_t>(l4_len)), false);
        return r;
    }
    return r;
}

template <uint64_t (*Sum)(const void*, std::size_t, uint64_t)>
void verify_burst(const PacketView* p, std::size_t n, ChecksumResult* out) {
    for (std::size_t i = 0; i < n; ++i)
        out[i] = verify_one<Sum>(p[i]);
}

}  // namespace

void verify_checksums_scalar(const PacketView* p, std::size_t n, ChecksumResult* out) {
    verify_burst<cksum_add_scalar>(p, n, out);
}
void verify_checksums_sse42(const PacketView* p, std::size_t n, ChecksumResult* out) {
    verify_burst<cksum_add_sse42>(p, n, out);
}
void verify_checksums_avx2(const PacketView* p, std::size_t n, ChecksumResult* out) {
    verify_burst<cksum_add_avx2>(p, n, out);
}

}  // namespace sluice::simd::detail

namespace sluice::simd {

uint16_t ipv4_header_cksum(const void* ipv4_header) {
    const auto* ip = static_cast<const uint8_t*>(ipv4_header);
    return static_cast<uint16_t>(~raw_cksum(ip, (ip[0] & 0x0fu) * 4u));
}

uint16_t ipv4_udptcp_cksum(const void* ipv4_header, const void* l4) {
    const auto* ip = static_cast<const uint8_t*>(ipv4_header);
    const std::size_t ihl = (ip[0] & 0x0fu) * 4u;
    const std::size_t total = detail::be16(ip + 2);
    if (total < ihl) return 0xffff;  // as DPDK: a sum of 0, complemented
    const std::size_t l4_len = total - ihl;
    uint8_t pseudo[12];
    std::memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0, pseudo[9] = ip[9];
    pseudo[10] = static_cast<uint8_t>(l4_len >> 8), pseudo[11] = static_cast<uint8_t>(l4_len);
    uint16_t ck = static_cast<uint16_t>(~cksum_fold(cksum_add(l4, l4_len, cksum_add(pseudo, 12))));
    if (ck == 0 && ip[9] == detail::kUdp) ck = 0xffff;
    return ck;
}

uint16_t ipv6_udptcp_cksum(const void* ipv6_header, const void* l4) {
    const auto* ip = static_cast<const uint8_t*>(ipv6_header);
    const std::size_t l4_len = detail::be16(ip + 4);
    uint8_t pseudo[40];
    std::memcpy(pseudo, ip + 8, 32);
    const uint8_t tail[8] = {0, 0, ip[4], ip[5], 0, 0, 0, ip[6]};
    std::memcpy(pseudo + 32, tail, 8);
    uint16_t ck = static_cast<uint16_t>(~cksum_fold(cksum_add(l4, l4_len, cksum_add(pseudo, 40))));
    if (ck == 0 && ip[6] == detail::kUdp) ck = 0xffff;
    return ck;
}

uint16_t l3_offset_ethernet(const std::byte* frame, std::size_t len) {
    const auto* p = reinterpret_cast<const uint8_t*>(frame);
    std::size_t off = 12;
    for (int tags = 0; tags <= 2; ++tags) {
        if (len < off + 2) return 0;
        const uint16_t type = detail::be16(p + off);
        if (type == 0x0800 || type == 0x86dd) return static_cast<uint16_t>(off + 2);
        if (type != 0x8100 && type != 0x88a8) return 0;
        off += 4;
    }
    return 0;
}

}  // namespace sluice::simd
