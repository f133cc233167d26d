// What the collector's fuzz targets over the stream transport share
// (fuzz_collector_stream.cpp, fuzz_collector_tls.cpp) and their seed writer
// (fuzz_collector_seeds.cpp): the key a keyed collector holds, a valid HELLO
// for a server nonce, and the repair of checksums and proofs that lets
// mutations reach the fields behind them.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "sluice/session/key.hpp"
#include "sluice/simd/crc32c.hpp"
#include "sluice/tcp/protocol.hpp"
#include "sluice/wire/wire.hpp"

namespace sluice::fuzzing {

inline void check(bool ok) {
    if (!ok) __builtin_trap();
}

inline const std::vector<std::byte>& fuzz_key() {
    static const std::vector<std::byte> k = [] {
        const char* s = "fuzz-key-0123456789abcdef";
        std::vector<std::byte> v(std::strlen(s));
        std::memcpy(v.data(), s, v.size());
        return v;
    }();
    return k;
}

// The nonce of the socket-less target (a listener draws a random one).
inline tcp::Nonce fixed_nonce() {
    tcp::Nonce n{};
    for (std::size_t i = 0; i < n.size(); ++i)
        n[i] = std::byte(static_cast<uint8_t>(i * 13));
    return n;
}

// Walks `p` the way the collector frames it and repairs what protects each
// message and frame: with `messages`, control-message CRCs and the HELLO's
// proof (for `key` and `nonce`); with `frames`, frame header and payload
// CRCs. Stops at the first bytes that are neither.
inline void fix_up(std::byte* p, std::size_t n, bool messages, bool frames,
                   std::span<const std::byte> key, const tcp::Nonce& nonce) {
    using wire::load_le;
    using wire::store_le;
    std::size_t at = 0;
    while (at + 8 <= n) {
        const uint32_t magic = load_le<uint32_t>(p + at);
        if (magic == tcp::kMessageMagic) {
            const std::size_t body = load_le<uint16_t>(p + at + 6);
            const std::size_t len = tcp::kMessageHeaderSize + body + tcp::kMessageTrailerSize;
            if (at + len > n) return;
            if (messages) {
                if (static_cast<uint8_t>(p[at + 5]) ==
                        static_cast<uint8_t>(tcp::MessageType::Hello) &&
                    body == tcp::kHelloBody) {
                    const std::span<const std::byte, tcp::kHelloSigned> signed_bytes(
                        p + at + 8, tcp::kHelloSigned);
                    const tcp::Proof proof = tcp::hello_proof(key, nonce, signed_bytes);
                    std::memcpy(p + at + 8 + tcp::kHelloSigned, proof.data(), proof.size());
                }
                store_le<uint32_t>(p + at + 8 + body, simd::crc32c(p + at, 8 + body));
            }
            at += len;
        } else if (magic == wire::kMagic) {
            if (at + wire::kHeaderSize > n) return;
            const std::size_t stored = load_le<uint32_t>(p + at + wire::offset::stored_len);
            if (frames) {
                const std::size_t avail = std::min(stored, n - at - wire::kHeaderSize);
                store_le<uint32_t>(p + at + wire::offset::payload_crc,
                                   simd::crc32c(p + at + wire::kHeaderSize, avail));
                store_le<uint32_t>(p + at + wire::offset::header_crc,
                                   simd::crc32c(p + at, wire::offset::header_crc));
            }
            at += wire::kHeaderSize + stored;
        } else {
            return;
        }
    }
}

// A HELLO that passes every check of a collector holding `key` (empty: none)
// that sent `nonce`.
inline std::vector<std::byte> valid_hello(uint64_t stream, std::span<const std::byte> key,
                                          const tcp::Nonce& nonce) {
    tcp::Hello h;
    h.flags = key.empty() ? 0 : tcp::hello_flag::kHasKey;
    h.stream_id = stream;
    h.session_id = 1;
    h.proof = tcp::hello_proof(key, nonce, tcp::hello_signed_bytes(h));
    std::array<std::byte, tcp::kMaxMessageSize> b;
    return {b.begin(), b.begin() + tcp::encode(h, b)};
}

}  // namespace sluice::fuzzing
