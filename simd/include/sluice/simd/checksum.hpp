// Internet checksum (RFC 1071): raw one's-complement sums, IPv4 header and
// TCP/UDP pseudo-header checksums, and verification over a burst of packets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "sluice/simd/detail/dispatch.hpp"

namespace sluice::simd {

// acc + the one's-complement sum of `data` read as 16-bit little-endian words
// (an odd last byte counts as the low byte of a word padded with zero), not yet
// folded. The result is congruent to the word sum modulo 0xffff and is zero
// only if every byte is zero; it cannot wrap for any total below 2^47 bytes.
// Chaining: cksum_add(b, nb, cksum_add(a, na)) sums a + b only when na is even
// (an odd split shifts b by one byte; byte-swap b's folded sum in that case).
inline uint64_t cksum_add(const void* data, std::size_t len, uint64_t acc = 0) {
    return detail::kernels().cksum_add(data, len, acc);
}

// Folds a partial sum to 16 bits with end-around carry; not complemented.
constexpr uint16_t cksum_fold(uint64_t sum) {
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffu) + (sum >> 16);
    sum = (sum & 0xffffu) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// The non-complemented checksum of a buffer: equal to DPDK's rte_raw_cksum().
inline uint16_t raw_cksum(const void* data, std::size_t len) {
    return cksum_fold(cksum_add(data, len, 0));
}

// Complemented checksum over the IPv4 header (IHL * 4 bytes, checksum field
// included as it is): 0 for a header whose checksum is right; with the field
// zeroed, the value to store. Equal to rte_ipv4_cksum(). Reads IHL * 4 bytes;
// no alignment needed.
uint16_t ipv4_header_cksum(const void* ipv4_header);

// Complemented TCP/UDP checksum over the IPv4 pseudo-header and the
// total_length - IHL * 4 bytes at `l4`, checksum field included as it is
// (0xffff for UDP when the sum is 0): equal to rte_ipv4_udptcp_cksum(). With
// the field zeroed, the value to store; a received segment is intact when the
// non-complemented sum is 0xffff (verify_checksums() does that check).
uint16_t ipv4_udptcp_cksum(const void* ipv4_header, const void* l4);

// Same over the IPv6 pseudo-header and payload_len bytes at `l4` (no extension
// headers, as in DPDK): equal to rte_ipv6_udptcp_cksum().
uint16_t ipv6_udptcp_cksum(const void* ipv6_header, const void* l4);

// One contiguous packet as captured. `l3_offset` is where the IP header starts
// (14 for untagged Ethernet; see l3_offset_ethernet()).
struct PacketView {
    const std::byte* data = nullptr;
    uint32_t len = 0;
    uint16_t l3_offset = 0;
};

enum class Verdict : uint8_t {
    None = 0,       // nothing to verify: not IP, not TCP/UDP, a fragment, UDP/IPv4 without checksum
    Good = 1,       // checksum verified
    Bad = 2,        // checksum wrong, or the header is malformed
    Truncated = 3,  // the packet was captured shorter than the headers say
};

struct ChecksumResult {
    Verdict ip = Verdict::None;  // IPv4 header checksum (IPv6 has none: None)
    Verdict l4 = Verdict::None;  // TCP or UDP checksum
    uint8_t l4_proto = 0;        // 6 TCP, 17 UDP, other protocol number, 0 when not IP
};

// Verifies IPv4 header checksums and TCP/UDP checksums over IPv4 and IPv6
// (IPv6 hop-by-hop, routing and destination-options headers are skipped; a
// fragment header ends the walk with None). Writes out[i] for packets[i];
// `out` must hold packets.size() entries. Every read is bounded by each
// view's len. Cost: one pass over each verified packet's bytes at
// cksum_add speed plus ~20 ns of header parsing.
inline void verify_checksums(std::span<const PacketView> packets, std::span<ChecksumResult> out) {
    detail::kernels().verify_checksums(packets.data(), packets.size(), out.data());
}

// Offset of the IP header in an Ethernet frame with up to two VLAN tags
// (0x8100, 0x88a8), or 0 when the frame carries neither IPv4 nor IPv6.
uint16_t l3_offset_ethernet(const std::byte* frame, std::size_t len);

}  // namespace sluice::simd
