#include "sluice/tcp/auth.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

namespace sluice::tcp {
namespace {

constexpr std::string_view kHelloLabel = "sluice hello v1";
constexpr std::string_view kWelcomeLabel = "sluice welcome v1";

// The message is assembled on the stack: every input is small and bounded.
Proof hmac(std::span<const std::byte> key, std::span<const std::byte> msg) {
    Proof out{};
    unsigned len = 0;
    // OpenSSL refuses a null key pointer even with length 0; an empty key
    // still gives a well-defined HMAC (integrity of the handshake only).
    static const unsigned char empty = 0;
    const void* k = key.empty() ? static_cast<const void*>(&empty) : key.data();
    if (!HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
              reinterpret_cast<unsigned char*>(out.data()), &len) ||
        len != kProofSize) {
        // Unreachable with a working libcrypto; a zero proof never matches a
        // peer's, so the handshake fails closed.
        out.fill(std::byte{0});
    }
    return out;
}

template <std::size_t N>
std::size_t append(std::byte* buf, std::size_t at, std::span<const std::byte, N> s) {
    std::memcpy(buf + at, s.data(), s.size());
    return at + s.size();
}

std::size_t append(std::byte* buf, std::size_t at, std::string_view s) {
    std::memcpy(buf + at, s.data(), s.size());
    return at + s.size();
}

}  // namespace

std::vector<std::byte> read_key_file(const std::string& path, std::string* warning) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error(fmt::format(
            "cannot read key file {}: {}; create it with: head -c 32 /dev/urandom | base64 > {} "
            "&& chmod 600 {}, and give the same file to both ends",
            path, std::strerror(errno), path, path));
    }
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!s.empty() && s.back() == '\n') s.pop_back();
    if (!s.empty() && s.back() == '\r') s.pop_back();
    if (s.size() < kMinKeyBytes) {
        throw std::runtime_error(fmt::format(
            "key file {} holds {} bytes; a key needs at least {}: generate one with: head -c 32 "
            "/dev/urandom | base64 > {}",
            path, s.size(), kMinKeyBytes, path));
    }
    if (warning) {
        warning->clear();
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
            *warning =
                fmt::format("key file {} is readable by other users (mode {:o}): chmod 600 {}",
                            path, st.st_mode & 0777, path);
        }
    }
    std::vector<std::byte> key(s.size());
    std::memcpy(key.data(), s.data(), s.size());
    OPENSSL_cleanse(s.data(), s.size());
    return key;
}

Proof hello_proof(std::span<const std::byte> key, const Nonce& server_nonce,
                  std::span<const std::byte, kHelloSigned> hello_signed) {
    std::byte buf[kHelloLabel.size() + kNonceSize + kHelloSigned];
    std::size_t n = append(buf, 0, kHelloLabel);
    n = append(buf, n, std::span<const std::byte, kNonceSize>(server_nonce));
    n = append(buf, n, hello_signed);
    return hmac(key, {buf, n});
}

Proof welcome_proof(std::span<const std::byte> key,
                    std::span<const std::byte, kHelloSigned> hello_signed,
                    const Nonce& server_nonce,
                    std::span<const std::byte, kWelcomeSigned> welcome_signed) {
    std::byte buf[kWelcomeLabel.size() + kHelloSigned + kNonceSize + kWelcomeSigned];
    std::size_t n = append(buf, 0, kWelcomeLabel);
    n = append(buf, n, hello_signed);
    n = append(buf, n, std::span<const std::byte, kNonceSize>(server_nonce));
    n = append(buf, n, welcome_signed);
    return hmac(key, {buf, n});
}

bool proofs_equal(const Proof& a, const Proof& b) {
    return CRYPTO_memcmp(a.data(), b.data(), kProofSize) == 0;
}

bool random_bytes(std::span<std::byte> out) {
    return RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) ==
           1;
}

}  // namespace sluice::tcp
