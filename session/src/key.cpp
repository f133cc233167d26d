#include "sluice/session/key.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/session/clock.hpp"

namespace sluice::session {

std::string read_secret_file(const std::string& path, std::string_view what,
                             std::string_view share) {
    // Opened first and checked through the descriptor: the file checked is
    // the file read.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        throw std::runtime_error(fmt::format(
            "cannot read {} {}: {}; create it with: head -c 32 /dev/urandom | base64 > {} "
            "&& chmod 600 {}, and {}",
            what, path, std::strerror(errno), path, path, share));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw std::runtime_error(fmt::format(
            "{} {} is not a regular file: give the path of the file itself", what, path));
    }
    if ((st.st_mode & 077) != 0) {
        ::close(fd);
        throw std::runtime_error(
            fmt::format("{} {} is readable by other users (mode {:o}): anyone on this host "
                        "could use it; run chmod 600 {} (and chown it to the user that runs "
                        "sluice)",
                        what, path, st.st_mode & 0777, path));
    }
    if (st.st_size > static_cast<off_t>(kMaxKeyFileBytes)) {
        ::close(fd);
        throw std::runtime_error(fmt::format(
            "{} {} holds {} bytes, more than such a file may ({}): is it the right file?", what,
            path, st.st_size, kMaxKeyFileBytes));
    }
    std::string s(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < s.size()) {
        const ssize_t n = ::read(fd, s.data() + got, s.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    s.resize(got);
    return s;
}

std::vector<std::byte> read_key_file(const std::string& path) {
    std::string s = read_secret_file(path);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    if (!s.empty() && s.back() == '\r') s.pop_back();
    if (s.size() < kMinKeyBytes) {
        OPENSSL_cleanse(s.data(), s.size());
        throw std::runtime_error(fmt::format(
            "key file {} holds {} bytes; a key needs at least {}: generate one with: head -c 32 "
            "/dev/urandom | base64 > {}",
            path, s.size(), kMinKeyBytes, path));
    }
    std::vector<std::byte> key(s.size());
    std::memcpy(key.data(), s.data(), s.size());
    OPENSSL_cleanse(s.data(), s.size());
    return key;
}

std::span<const std::byte> label(std::string_view text) {
    return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

Proof hmac_sha256(std::span<const std::byte> key,
                  std::initializer_list<std::span<const std::byte>> parts) {
    // The message is assembled on the stack: every input is small and bounded.
    std::byte buf[512];
    std::size_t n = 0;
    Proof out{};
    for (const auto& p : parts) {
        if (p.size() > sizeof buf - n) return out;  // never: a zero proof fails closed
        if (!p.empty()) std::memcpy(buf + n, p.data(), p.size());
        n += p.size();
    }
    unsigned len = 0;
    // OpenSSL refuses a null key pointer even with length 0; an empty key
    // still gives a well-defined HMAC (integrity of the handshake only).
    static const unsigned char empty = 0;
    const void* k = key.empty() ? static_cast<const void*>(&empty) : key.data();
    if (!HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(buf), n,
              reinterpret_cast<unsigned char*>(out.data()), &len) ||
        len != kProofSize) {
        // Unreachable with a working libcrypto; a zero proof never matches a
        // peer's, so the handshake fails closed.
        out.fill(std::byte{0});
    }
    return out;
}

bool proofs_equal(const Proof& a, const Proof& b) {
    return CRYPTO_memcmp(a.data(), b.data(), kProofSize) == 0;
}

bool random_bytes(std::span<std::byte> out) {
    return RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) ==
           1;
}

uint64_t random_u64() {
    std::array<std::byte, 8> b{};
    uint64_t v = 0;
    if (random_bytes(b)) std::memcpy(&v, b.data(), 8);
    if (v == 0) v = monotonic_ns() | 1;
    return v;
}

}  // namespace sluice::session
