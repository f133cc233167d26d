// The pre-shared key and what both transports prove with it: HMAC-SHA256
// over both ends' fresh nonces, so a recorded handshake cannot be replayed.
// The key authenticates the peers when they connect; it neither encrypts nor
// signs the frames that follow; TLS does, on TCP (docs/collector.md,
// "Encryption in transit").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::session {

inline constexpr std::size_t kNonceSize = 32;
inline constexpr std::size_t kProofSize = 32;  // HMAC-SHA256
inline constexpr std::size_t kMinKeyBytes = 16;

using Nonce = std::array<std::byte, kNonceSize>;
using Proof = std::array<std::byte, kProofSize>;

inline constexpr std::size_t kMaxKeyFileBytes = 1 << 20;

// Opens a file that holds secrets and returns its bytes: refused (with a
// std::runtime_error naming the file and what to do) when it is missing,
// unreadable, not a regular file, larger than kMaxKeyFileBytes, or readable
// by group or others (a key anyone on the host can read protects nothing).
// `what` names the file in messages ("key file", "token file"), `share`
// says where its copy goes.
std::string read_secret_file(const std::string& path, std::string_view what = "key file",
                             std::string_view share = "give the same file to both ends");

// Reads a key file: its bytes, minus one trailing "\n" or "\r\n", at least
// kMinKeyBytes long. Throws std::runtime_error with a message naming the file
// and what to do: missing, unreadable, too short, or readable by group or
// others (a key anyone on the host can read protects nothing: chmod 600).
std::vector<std::byte> read_key_file(const std::string& path);

// HMAC-SHA256(key, parts concatenated): the one keyed hash of the handshakes.
// Each transport's proofs start with a label naming their purpose and
// version ("sluice hello v1"), so a proof made for one step never passes for
// another. At most 512 bytes of parts (every handshake input is small).
Proof hmac_sha256(std::span<const std::byte> key,
                  std::initializer_list<std::span<const std::byte>> parts);

// The bytes of a label, for hmac_sha256's parts.
std::span<const std::byte> label(std::string_view text);

// Constant-time comparison (CRYPTO_memcmp): how long it takes says nothing
// about where two proofs differ.
bool proofs_equal(const Proof& a, const Proof& b);

// Fills `out` from OpenSSL's CSPRNG; false if it is not seeded (never on Linux
// with getrandom()).
bool random_bytes(std::span<std::byte> out);
// A random non-zero 64-bit value (session ids, jitter seeds).
uint64_t random_u64();

}  // namespace sluice::session
