// Pre-shared key authentication for the stream transport: both ends prove
// they hold the same key with HMAC-SHA256 over both ends' fresh nonces, so a
// recorded handshake cannot be replayed. The key authenticates the peers when
// they connect; it neither encrypts nor signs the frames that follow.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "sluice/tcp/protocol.hpp"

namespace sluice::tcp {

inline constexpr std::size_t kMinKeyBytes = 16;

// Reads a key file: its bytes, minus one trailing "\n" or "\r\n", at least
// kMinKeyBytes long. Throws std::runtime_error with a message naming the file
// and what to do (missing, unreadable, too short). `warning` receives a note
// when the file is readable by group or others (empty otherwise).
std::vector<std::byte> read_key_file(const std::string& path, std::string* warning = nullptr);

// HMAC-SHA256(key, "sluice hello v1" || server_nonce || signed hello bytes).
Proof hello_proof(std::span<const std::byte> key, const Nonce& server_nonce,
                  std::span<const std::byte, kHelloSigned> hello_signed);

// HMAC-SHA256(key, "sluice welcome v1" || signed hello bytes || server_nonce ||
// signed welcome bytes): binds the answer to this very hello.
Proof welcome_proof(std::span<const std::byte> key,
                    std::span<const std::byte, kHelloSigned> hello_signed,
                    const Nonce& server_nonce,
                    std::span<const std::byte, kWelcomeSigned> welcome_signed);

// Constant-time comparison (CRYPTO_memcmp): how long it takes says nothing
// about where two proofs differ.
bool proofs_equal(const Proof& a, const Proof& b);

// Fills `out` from OpenSSL's CSPRNG; false if it is not seeded (never on Linux
// with getrandom()).
bool random_bytes(std::span<std::byte> out);

}  // namespace sluice::tcp
