#include "sluice/session/keyring.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/crypto.h>

namespace sluice::session {
namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

// Splits off the next whitespace-separated field.
std::string_view next_field(std::string_view& s) {
    s = trim(s);
    std::size_t n = 0;
    while (n < s.size() && !is_space(s[n]))
        ++n;
    const std::string_view f = s.substr(0, n);
    s.remove_prefix(n);
    return f;
}

bool valid_name(std::string_view n) {
    if (n.empty() || n.size() > kMaxKeyName) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

bool parse_u64(std::string_view s, uint64_t& v) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
}

// "*" -> {} (every stream); "1-16,40" -> ranges. False on anything else.
bool parse_streams(std::string_view s, std::vector<StreamRange>& out, std::string& why) {
    if (s == "*") return true;
    while (!s.empty()) {
        const std::size_t comma = s.find(',');
        const std::string_view item = s.substr(0, comma);
        s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
        if (comma != std::string_view::npos && s.empty()) {
            why = "a stream list ends with a comma";
            return false;
        }
        StreamRange r;
        const std::size_t dash = item.find('-');
        if (dash == std::string_view::npos) {
            if (!parse_u64(item, r.first)) {
                why = fmt::format("'{}' is not a stream id", item);
                return false;
            }
            r.last = r.first;
        } else if (!parse_u64(item.substr(0, dash), r.first) ||
                   !parse_u64(item.substr(dash + 1), r.last) || r.first > r.last) {
            why =
                fmt::format("'{}' is not a range of stream ids (FIRST-LAST, FIRST <= LAST)", item);
            return false;
        }
        if (out.size() == kMaxStreamRanges) {
            why = fmt::format("more than {} stream ranges on one key: use ranges (1-16)",
                              kMaxStreamRanges);
            return false;
        }
        out.push_back(r);
    }
    if (out.empty()) {
        why = "no streams: use * for every stream, or ids and ranges like 1-16,40";
        return false;
    }
    return true;
}

void cleanse(std::string& s) {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

}  // namespace

void KeyName::set(std::string_view name) {
    const std::size_t n = std::min(name.size(), kMaxKeyName);
    std::memcpy(text.data(), name.data(), n);
    text[n] = '\0';
}

bool NamedKey::allows(uint64_t stream_id) const {
    if (streams.empty()) return true;
    return std::any_of(streams.begin(), streams.end(), [&](const StreamRange& r) {
        return stream_id >= r.first && stream_id <= r.last;
    });
}

std::string NamedKey::streams_text() const {
    if (streams.empty()) return "*";
    std::string s;
    for (const StreamRange& r : streams) {
        if (!s.empty()) s += ',';
        s += r.first == r.last ? fmt::format("{}", r.first) : fmt::format("{}-{}", r.first, r.last);
    }
    return s;
}

Keyring::Keyring(std::vector<std::byte> single_key) {
    if (single_key.empty()) return;
    NamedKey k;
    k.name = "key";
    k.secret = std::move(single_key);
    keys_.push_back(std::move(k));
}

Keyring::~Keyring() {
    for (NamedKey& k : keys_)
        if (!k.secret.empty()) OPENSSL_cleanse(k.secret.data(), k.secret.size());
}

Keyring Keyring::read_file(const std::string& path) {
    std::string text = read_secret_file(path);
    try {
        Keyring r = parse(text, path);
        cleanse(text);
        return r;
    } catch (...) {
        cleanse(text);
        throw;
    }
}

Keyring Keyring::parse(std::string_view text, const std::string& origin) {
    // The form is decided by the first line that is neither blank nor a comment.
    bool named = false;
    for (std::string_view rest = text; !rest.empty();) {
        const std::size_t nl = rest.find('\n');
        const std::string_view line = trim(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        if (line.empty() || line.front() == '#') continue;
        named = line.size() > 4 && line.substr(0, 3) == "key" && is_space(line[3]);
        break;
    }
    if (!named) {
        std::string_view s = text;
        if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
        if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
        if (s.size() < kMinKeyBytes) {
            throw std::runtime_error(fmt::format(
                "key file {} holds {} bytes; a key needs at least {}: generate one with: head -c "
                "32 /dev/urandom | base64 > {}",
                origin, s.size(), kMinKeyBytes, origin));
        }
        std::vector<std::byte> key(s.size());
        std::memcpy(key.data(), s.data(), s.size());
        return Keyring(std::move(key));
    }

    Keyring r;
    r.named_ = true;
    std::size_t line_no = 0;
    auto error = [&](const std::string& what) {
        return std::runtime_error(
            fmt::format("key file {}, line {}: {}; each key is a line 'key NAME STREAMS SECRET' "
                        "(docs/security.md)",
                        origin, line_no, what));
    };
    for (std::string_view rest = text; !rest.empty();) {
        ++line_no;
        const std::size_t nl = rest.find('\n');
        std::string_view line = trim(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        if (line.empty() || line.front() == '#') continue;
        const std::string_view word = next_field(line);
        if (word != "key") throw error(fmt::format("'{}' is not 'key'", word.substr(0, 32)));
        const std::string_view name = next_field(line);
        const std::string_view streams = next_field(line);
        const std::string_view secret = next_field(line);
        if (name.empty() || streams.empty() || secret.empty())
            throw error("a key line needs a name, its streams and its secret");
        if (!trim(line).empty()) throw error("more than four fields (a secret holds no spaces)");
        if (!valid_name(name)) {
            throw error(fmt::format("key name '{}' is not 1 to {} of A-Z a-z 0-9 . _ -",
                                    name.substr(0, 64), kMaxKeyName));
        }
        if (r.find(name)) throw error(fmt::format("key name '{}' is used twice", name));
        NamedKey k;
        k.name = std::string(name);
        std::string why;
        if (!parse_streams(streams, k.streams, why))
            throw error(fmt::format("key '{}': {}", name, why));
        if (secret.size() < kMinKeyBytes) {
            throw error(
                fmt::format("the secret of key '{}' has {} bytes; at least {} (e.g. head "
                            "-c 32 /dev/urandom | base64)",
                            name, secret.size(), kMinKeyBytes));
        }
        k.secret.resize(secret.size());
        std::memcpy(k.secret.data(), secret.data(), secret.size());
        for (const NamedKey& other : r.keys_) {
            if (other.secret.size() == k.secret.size() &&
                CRYPTO_memcmp(other.secret.data(), k.secret.data(), k.secret.size()) == 0) {
                throw error(
                    fmt::format("keys '{}' and '{}' have the same secret: give every key "
                                "its own",
                                other.name, name));
            }
        }
        if (r.keys_.size() == kMaxKeys) throw error(fmt::format("more than {} keys", kMaxKeys));
        r.keys_.push_back(std::move(k));
    }
    if (r.keys_.empty()) throw error("no key");
    return r;
}

const NamedKey* Keyring::find(std::string_view name) const {
    for (const NamedKey& k : keys_)
        if (k.name == name) return &k;
    return nullptr;
}

bool Keyring::any_allows(uint64_t stream_id) const {
    return std::any_of(keys_.begin(), keys_.end(),
                       [&](const NamedKey& k) { return k.allows(stream_id); });
}

SessionSecret derive_session_secret(std::span<const std::byte> key,
                                    std::initializer_list<std::span<const std::byte>> transcript) {
    // hmac_sha256 takes its parts as one list: the label goes first.
    std::byte buf[480];
    std::size_t n = 0;
    for (const auto& p : transcript) {
        if (p.size() > sizeof buf - n) return SessionSecret{};  // never: transcripts are small
        if (!p.empty()) std::memcpy(buf + n, p.data(), p.size());
        n += p.size();
    }
    return hmac_sha256(key, {label("sluice session v2"), std::span<const std::byte>(buf, n)});
}

}  // namespace sluice::session
