// Toeplitz hash, the function NICs use for RSS, in software: for hashing flows
// the NIC did not spread, and for predicting which queue a flow lands on.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "sluice/simd/detail/dispatch.hpp"

namespace sluice::simd {

// The 40-byte key most NIC drivers default to (Microsoft's RSS specification).
inline constexpr std::array<uint8_t, 40> kDefaultRssKey = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

// 0x6d5a repeated: both directions of a flow hash to the same value (the key is
// periodic with a 16-bit period, so swapping source and destination addresses
// and ports does not change the hash).
inline constexpr std::array<uint8_t, 40> kSymmetricRssKey = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

// The tuple layouts NICs hash, in network byte order, as input to hash():
// IPv4: src addr, dst addr [, src port, dst port]  (8 or 12 bytes)
// IPv6: src addr, dst addr [, src port, dst port]  (32 or 36 bytes)
inline constexpr std::size_t kIpv4TupleLen = 12;
inline constexpr std::size_t kIpv6TupleLen = 36;

// A key prepared for hashing: lookup tables (and GFNI matrices) built once on
// the control path; hashing then allocates nothing. Immutable, so one instance
// may be shared by any number of threads.
class ToeplitzHash {
  public:
    // `key` must hold 8 to 64 bytes; inputs may be up to key.size() - 4 bytes.
    // Throws std::invalid_argument otherwise.
    explicit ToeplitzHash(std::span<const uint8_t> key = kDefaultRssKey);
    ~ToeplitzHash();
    ToeplitzHash(ToeplitzHash&&) noexcept;
    ToeplitzHash& operator=(ToeplitzHash&&) noexcept;

    std::size_t max_input_len() const;

    // Hash of `input` (network byte order, as the NIC reads the packet). Bytes
    // beyond max_input_len() are ignored. Cost: ~1 ns per input byte.
    uint32_t hash(std::span<const std::byte> input) const {
        return detail::kernels().toeplitz(*tables_, input.data(), input.size());
    }

    // Hashes `count` tuples of `tuple_len` bytes stored back to back; out[i]
    // receives the hash of tuple i.
    void hash_bulk(const std::byte* tuples, std::size_t tuple_len, std::size_t count,
                   uint32_t* out) const {
        detail::kernels().toeplitz_bulk(*tables_, tuples, tuple_len, count, out);
    }

    // DPDK's convention: `words` are 32-bit values in host byte order (e.g.
    // rte_ipv4_tuple after rte_be_to_cpu_32). Equal to rte_softrss(words, n, key).
    uint32_t hash_words(const uint32_t* words, std::size_t n) const;

  private:
    std::unique_ptr<detail::ToeplitzTables> tables_;
};

}  // namespace sluice::simd
