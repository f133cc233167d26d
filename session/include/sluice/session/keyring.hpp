// The keys a collector accepts, and which streams each may write.
//
// A key file holds either one key (the same file on both ends, every stream
// allowed) or named keys, one per line, so that each sender proves its own
// key and can write only its own streams:
//
//   # key NAME STREAMS SECRET
//   key rack1  1-16,40  9f2c...   (the sender's egress.key_file holds: 9f2c...)
//   key lab    *        41aa...
//
// NAME: 1..32 of [A-Za-z0-9._-], unique. STREAMS: `*` or a comma-separated
// list of ids and ranges (`7`, `1-16`). SECRET: at least 16 bytes without
// spaces, different for every key; the sender's key file holds exactly it.
// Blank lines and lines starting with `#` are ignored. A file whose first
// other line does not start with `key ` is a single key (read_key_file).
//
// The collector learns which key a sender holds by trying the keys allowed
// for the stream its hello names (one HMAC each): a key allowed for other
// streams only can never claim this one (docs/security.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/session/key.hpp"

namespace sluice::session {

inline constexpr std::size_t kMaxKeys = 1024;
inline constexpr std::size_t kMaxKeyName = 32;
inline constexpr std::size_t kMaxStreamRanges = 256;  // per key

// A key's name in fixed storage (a Hello carries it without allocating).
struct KeyName {
    std::array<char, kMaxKeyName + 1> text{};  // NUL-terminated
    std::string_view view() const { return text.data(); }
    void set(std::string_view name);
    bool empty() const { return text[0] == '\0'; }
};

struct StreamRange {
    uint64_t first = 0;
    uint64_t last = 0;  // inclusive
};

struct NamedKey {
    std::string name;  // "key" for a single-key file
    std::vector<std::byte> secret;
    std::vector<StreamRange> streams;  // empty: every stream (`*`)
    bool allows(uint64_t stream_id) const;
    std::string streams_text() const;  // "*", "1-16,40"
};

class Keyring {
  public:
    Keyring() = default;  // no key: senders must have none either
    // One key for every stream (an empty key: none).
    explicit Keyring(std::vector<std::byte> single_key);
    ~Keyring();
    Keyring(Keyring&&) noexcept = default;
    Keyring& operator=(Keyring&&) noexcept = default;

    // Reads a key file of either form (read_secret_file's checks first).
    // Throws std::runtime_error naming the file, the line and the fix.
    static Keyring read_file(const std::string& path);
    // Parses the text of a key file; `origin` names it in errors.
    static Keyring parse(std::string_view text, const std::string& origin);

    bool empty() const { return keys_.empty(); }
    bool named() const { return named_; }  // the file named its keys
    std::size_t size() const { return keys_.size(); }
    const std::vector<NamedKey>& keys() const { return keys_; }
    const NamedKey* find(std::string_view name) const;
    // Whether any key may write `stream_id`.
    bool any_allows(uint64_t stream_id) const;

    // The first key allowed for `stream_id` (in file order) for which
    // `proves(secret)` is true; nullptr when none. One call per allowed key
    // at most: a handshake costs one HMAC per key that may write its stream.
    template <class Proves>
    const NamedKey* match(uint64_t stream_id, Proves&& proves) const {
        for (const NamedKey& k : keys_)
            if (k.allows(stream_id) && proves(std::span<const std::byte>(k.secret))) return &k;
        return nullptr;
    }

  private:
    std::vector<NamedKey> keys_;
    bool named_ = false;
};

// What the collector shares with a sender for the life of one sender
// session: derived from the key both proved, when the collector starts the
// session, and proved again instead of the session id to resume it.
using SessionSecret = Proof;

// HMAC(key, "sluice session v2" || transcript parts): the secret of the
// session a handshake starts. Each transport names its transcript (TCP: the
// server nonce and the HELLO's signed bytes; RDMA: request and accept).
SessionSecret derive_session_secret(std::span<const std::byte> key,
                                    std::initializer_list<std::span<const std::byte>> transcript);

}  // namespace sluice::session
