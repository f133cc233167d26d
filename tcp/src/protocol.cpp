#include "sluice/tcp/protocol.hpp"

#include <algorithm>
#include <cstring>

#include "sluice/simd/crc32c.hpp"
#include "sluice/wire/le.hpp"

namespace sluice::tcp {
namespace {

using wire::load_le;
using wire::store_le;

std::size_t body_size(MessageType t) {
    switch (t) {
        case MessageType::Challenge:
            return kChallengeBody;
        case MessageType::Hello:
            return kHelloBody;
        case MessageType::Welcome:
            return kWelcomeBody;
        case MessageType::Ack:
            return kAckBody;
        case MessageType::Heartbeat:
            return kHeartbeatBody;
        case MessageType::Reject:
            return 0;  // variable
    }
    return 0;
}

bool known_type(uint8_t t) {
    return t >= static_cast<uint8_t>(MessageType::Challenge) &&
           t <= static_cast<uint8_t>(MessageType::Heartbeat);
}

// Writes header and CRC around a body already at out[8..8+body_len].
std::size_t seal(std::span<std::byte> out, uint8_t version, MessageType type,
                 std::size_t body_len) {
    std::byte* p = out.data();
    store_le<uint32_t>(p, kMessageMagic);
    p[4] = std::byte{version};
    p[5] = std::byte{static_cast<uint8_t>(type)};
    store_le<uint16_t>(p + 6, static_cast<uint16_t>(body_len));
    const std::size_t n = kMessageHeaderSize + body_len;
    store_le<uint32_t>(p + n, simd::crc32c(p, n));
    return n + kMessageTrailerSize;
}

template <std::size_t N>
void put(std::byte* p, const std::array<std::byte, N>& a) {
    std::memcpy(p, a.data(), N);
}
template <std::size_t N>
void get(const std::byte* p, std::array<std::byte, N>& a) {
    std::memcpy(a.data(), p, N);
}

void hello_prefix(const Hello& m, std::byte* b) {
    store_le<uint32_t>(b + 0, m.flags);
    store_le<uint32_t>(b + 4, m.heartbeat_ms);
    store_le<uint64_t>(b + 8, m.stream_id);
    store_le<uint64_t>(b + 16, m.session_id);
    store_le<uint64_t>(b + 24, m.next_sequence);
    store_le<uint64_t>(b + 32, m.next_packet_index);
    put(b + 40, m.nonce);
}

void welcome_prefix(const Welcome& m, std::byte* b) {
    store_le<uint64_t>(b + 0, m.resume_sequence);
    store_le<uint32_t>(b + 8, m.flags);
    store_le<uint32_t>(b + 12, 0);
}

}  // namespace

std::string_view to_string(MessageStatus s) {
    switch (s) {
        case MessageStatus::Ok:
            return "ok";
        case MessageStatus::NeedMore:
            return "incomplete message";
        case MessageStatus::BadMagic:
            return "not a sluice message or frame (bad magic): the peer is not a sluice "
                   "sender/collector, or the stream lost its framing";
        case MessageStatus::UnsupportedVersion:
            return "unsupported transport version";
        case MessageStatus::UnknownType:
            return "unknown control message type";
        case MessageStatus::BadLength:
            return "control message length does not match its type";
        case MessageStatus::CrcMismatch:
            return "control message CRC mismatch: corrupted in transit";
        case MessageStatus::ReservedNotZero:
            return "control message has a reserved field or unknown flag set";
    }
    return "unknown message status";
}

std::size_t encode(const Challenge& m, std::span<std::byte> out, uint8_t version) {
    std::byte* b = out.data() + kMessageHeaderSize;
    store_le<uint32_t>(b + 0, m.flags);
    store_le<uint32_t>(b + 4, 0);
    put(b + 8, m.nonce);
    return seal(out, version, MessageType::Challenge, kChallengeBody);
}

std::size_t encode(const Hello& m, std::span<std::byte> out, uint8_t version) {
    std::byte* b = out.data() + kMessageHeaderSize;
    hello_prefix(m, b);
    put(b + kHelloSigned, m.proof);
    return seal(out, version, MessageType::Hello, kHelloBody);
}

std::size_t encode(const Welcome& m, std::span<std::byte> out) {
    std::byte* b = out.data() + kMessageHeaderSize;
    welcome_prefix(m, b);
    put(b + kWelcomeSigned, m.proof);
    return seal(out, kTransportVersion, MessageType::Welcome, kWelcomeBody);
}

std::size_t encode(const Reject& m, std::span<std::byte> out) {
    std::byte* b = out.data() + kMessageHeaderSize;
    const std::size_t n = std::min(m.text.size(), kMaxRejectText);
    store_le<uint16_t>(b + 0, static_cast<uint16_t>(m.reason));
    store_le<uint16_t>(b + 2, static_cast<uint16_t>(n));
    store_le<uint32_t>(b + 4, 0);
    if (n) std::memcpy(b + 8, m.text.data(), n);
    // Always version 1: every version reads it (see the header comment).
    return seal(out, 1, MessageType::Reject, 8 + n);
}

std::size_t encode(const Ack& m, std::span<std::byte> out) {
    store_le<uint64_t>(out.data() + kMessageHeaderSize, m.next_sequence);
    return seal(out, kTransportVersion, MessageType::Ack, kAckBody);
}

std::size_t encode(const Heartbeat& m, std::span<std::byte> out) {
    store_le<uint64_t>(out.data() + kMessageHeaderSize, m.counter);
    return seal(out, kTransportVersion, MessageType::Heartbeat, kHeartbeatBody);
}

std::array<std::byte, kHelloSigned> hello_signed_bytes(const Hello& m) {
    std::array<std::byte, kHelloSigned> a;
    hello_prefix(m, a.data());
    return a;
}

std::array<std::byte, kWelcomeSigned> welcome_signed_bytes(const Welcome& m) {
    std::array<std::byte, kWelcomeSigned> a;
    welcome_prefix(m, a.data());
    return a;
}

Proof hello_proof(std::span<const std::byte> key, const Nonce& server_nonce,
                  std::span<const std::byte, kHelloSigned> hello_signed) {
    return session::hmac_sha256(key,
                                {session::label("sluice hello v1"), server_nonce, hello_signed});
}

Proof welcome_proof(std::span<const std::byte> key,
                    std::span<const std::byte, kHelloSigned> hello_signed,
                    const Nonce& server_nonce,
                    std::span<const std::byte, kWelcomeSigned> welcome_signed) {
    return session::hmac_sha256(
        key, {session::label("sluice welcome v1"), hello_signed, server_nonce, welcome_signed});
}

Proof resume_proof(std::span<const std::byte> secret, const Nonce& server_nonce,
                   std::span<const std::byte, kHelloSigned> hello_signed) {
    return session::hmac_sha256(secret,
                                {session::label("sluice resume v2"), server_nonce, hello_signed});
}

session::SessionSecret session_secret(std::span<const std::byte> key, const Nonce& server_nonce,
                                      std::span<const std::byte, kHelloSigned> hello_signed) {
    return session::derive_session_secret(key, {server_nonce, hello_signed});
}

session::Hello to_session(const Hello& m) {
    session::Hello h;
    h.stream_id = m.stream_id;
    h.session_id = m.session_id;
    h.heartbeat_ms = m.heartbeat_ms;
    h.has_key = (m.flags & hello_flag::kHasKey) != 0;
    h.resume = (m.flags & hello_flag::kResume) != 0;
    h.position.known = (m.flags & hello_flag::kHasPosition) != 0;
    h.position.sequence = h.position.known ? m.next_sequence : 0;
    h.position.packet_index = h.position.known ? m.next_packet_index : 0;
    return h;
}

ParsedMessage parse_message(std::span<const std::byte> in) {
    ParsedMessage r;
    if (in.empty()) return r;  // NeedMore
    // The magic is checked as soon as its bytes are here, so garbage is
    // refused without waiting for a header that never comes.
    const std::size_t have_magic = std::min<std::size_t>(in.size(), 4);
    uint8_t magic[4];
    store_le<uint32_t>(reinterpret_cast<std::byte*>(magic), kMessageMagic);
    if (std::memcmp(in.data(), magic, have_magic) != 0) {
        r.status = MessageStatus::BadMagic;
        return r;
    }
    if (in.size() < kMessageHeaderSize) return r;  // NeedMore
    const std::byte* p = in.data();
    r.header.version = static_cast<uint8_t>(p[4]);
    const uint8_t type = static_cast<uint8_t>(p[5]);
    r.header.type = static_cast<MessageType>(type);
    r.header.body_len = load_le<uint16_t>(p + 6);
    // A REJECT is read in its version-1 form whatever version the peer speaks.
    if (r.header.version != kTransportVersion &&
        type != static_cast<uint8_t>(MessageType::Reject)) {
        r.status = MessageStatus::UnsupportedVersion;
        return r;
    }
    if (!known_type(type)) {
        r.status = MessageStatus::UnknownType;
        return r;
    }
    const std::size_t body = r.header.body_len;
    const std::size_t want = body_size(r.header.type);
    const bool length_ok =
        r.header.type == MessageType::Reject ? body >= 8 && body <= kMaxBodySize : body == want;
    if (!length_ok) {
        r.status = MessageStatus::BadLength;
        return r;
    }
    const std::size_t total = kMessageHeaderSize + body + kMessageTrailerSize;
    if (in.size() < total) return r;  // NeedMore
    if (load_le<uint32_t>(p + kMessageHeaderSize + body) !=
        simd::crc32c(p, kMessageHeaderSize + body)) {
        r.status = MessageStatus::CrcMismatch;
        return r;
    }
    r.status = MessageStatus::Ok;
    r.size = total;
    r.body = in.subspan(kMessageHeaderSize, body);
    return r;
}

bool decode(std::span<const std::byte> body, Challenge& m) {
    if (body.size() != kChallengeBody) return false;
    const std::byte* b = body.data();
    m.flags = load_le<uint32_t>(b);
    get(b + 8, m.nonce);
    return (m.flags & ~challenge_flag::kKeyRequired) == 0 && load_le<uint32_t>(b + 4) == 0;
}

bool decode(std::span<const std::byte> body, Hello& m) {
    if (body.size() != kHelloBody) return false;
    const std::byte* b = body.data();
    m.flags = load_le<uint32_t>(b + 0);
    m.heartbeat_ms = load_le<uint32_t>(b + 4);
    m.stream_id = load_le<uint64_t>(b + 8);
    m.session_id = load_le<uint64_t>(b + 16);
    m.next_sequence = load_le<uint64_t>(b + 24);
    m.next_packet_index = load_le<uint64_t>(b + 32);
    get(b + 40, m.nonce);
    get(b + kHelloSigned, m.proof);
    return (m.flags & ~(hello_flag::kHasKey | hello_flag::kHasPosition | hello_flag::kResume)) == 0;
}

bool decode(std::span<const std::byte> body, Welcome& m) {
    if (body.size() != kWelcomeBody) return false;
    const std::byte* b = body.data();
    m.resume_sequence = load_le<uint64_t>(b + 0);
    m.flags = load_le<uint32_t>(b + 8);
    get(b + kWelcomeSigned, m.proof);
    return (m.flags & ~welcome_flag::kNewSession) == 0 && load_le<uint32_t>(b + 12) == 0;
}

bool decode(std::span<const std::byte> body, Reject& m) {
    if (body.size() < 8) return false;
    const std::byte* b = body.data();
    const uint16_t n = load_le<uint16_t>(b + 2);
    if (n != body.size() - 8 || n > kMaxRejectText) return false;
    // Unknown reasons are kept: a newer peer may have more of them.
    m.reason = static_cast<RejectReason>(load_le<uint16_t>(b));
    m.text = {reinterpret_cast<const char*>(b + 8), n};
    return load_le<uint32_t>(b + 4) == 0;
}

bool decode(std::span<const std::byte> body, Ack& m) {
    if (body.size() != kAckBody) return false;
    m.next_sequence = load_le<uint64_t>(body.data());
    return true;
}

bool decode(std::span<const std::byte> body, Heartbeat& m) {
    if (body.size() != kHeartbeatBody) return false;
    m.counter = load_le<uint64_t>(body.data());
    return true;
}

}  // namespace sluice::tcp
