#include "sluice/rdma/protocol.hpp"

#include <algorithm>
#include <cstring>

#include "sluice/session/key.hpp"
#include "sluice/wire/le.hpp"

namespace sluice::rdma {
namespace {

template <class T>
void put(std::byte* p, T v) {
    wire::store_le<T>(p, v);
}
template <class T>
T get(const std::byte* p) {
    return wire::load_le<T>(p);
}

bool zeros(std::span<const std::byte> s) {
    return std::all_of(s.begin(), s.end(), [](std::byte b) { return b == std::byte{0}; });
}

// Common prefix of every RDMA handshake structure: magic, version.
DecodeStatus check_head(std::span<const std::byte> in, std::size_t size, uint32_t magic) {
    if (in.size() < 8) return DecodeStatus::TooShort;
    if (get<uint32_t>(in.data()) != magic) return DecodeStatus::BadMagic;
    if (static_cast<uint8_t>(in[4]) != kRdmaVersion) return DecodeStatus::UnsupportedVersion;
    if (in.size() < size) return DecodeStatus::TooShort;
    if (!zeros(in.subspan(size))) return DecodeStatus::ReservedNotZero;
    return DecodeStatus::Ok;
}

constexpr std::string_view kProofLabel = "sluice rdma proof v2";
constexpr std::string_view kWelcomeLabel = "sluice rdma welcome v2";
constexpr std::string_view kResumeLabel = "sluice rdma resume v3";

}  // namespace

std::string_view to_string(DecodeStatus s) {
    switch (s) {
        case DecodeStatus::Ok:
            return "ok";
        case DecodeStatus::TooShort:
            return "too short";
        case DecodeStatus::BadMagic:
            return "bad magic (not a sluice RDMA peer)";
        case DecodeStatus::UnsupportedVersion:
            return "another RDMA transport version (run the same sluice release on both ends)";
        case DecodeStatus::ReservedNotZero:
            return "a reserved field or unknown flag is set";
        case DecodeStatus::BadValue:
            return "a field is out of range";
    }
    return "?";
}

// ConnectRequest: 0 magic, 4 version, 5 flags, 6 u16 reserved, 8 stream_id,
// 16 session_id, 24 next_sequence, 32 next_packet_index, 40 nonce[16].
std::array<std::byte, kRequestSize> encode(const ConnectRequest& m) {
    std::array<std::byte, kRequestSize> b{};
    put<uint32_t>(&b[0], kRequestMagic);
    b[4] = std::byte{m.version};
    b[5] = std::byte{m.flags};
    put<uint64_t>(&b[8], m.stream_id);
    put<uint64_t>(&b[16], m.session_id);
    put<uint64_t>(&b[24], m.next_sequence);
    put<uint64_t>(&b[32], m.next_packet_index);
    std::memcpy(&b[40], m.nonce.data(), m.nonce.size());
    return b;
}

DecodeStatus decode(std::span<const std::byte> in, ConnectRequest& m) {
    if (auto s = check_head(in, kRequestSize, kRequestMagic); s != DecodeStatus::Ok) return s;
    const uint8_t flags = static_cast<uint8_t>(in[5]);
    if ((flags & ~(request_flag::kHasKey | request_flag::kHasPosition | request_flag::kResume)) !=
            0 ||
        get<uint16_t>(&in[6]) != 0)
        return DecodeStatus::ReservedNotZero;
    m.version = static_cast<uint8_t>(in[4]);
    m.flags = flags;
    m.stream_id = get<uint64_t>(&in[8]);
    m.session_id = get<uint64_t>(&in[16]);
    m.next_sequence = get<uint64_t>(&in[24]);
    m.next_packet_index = get<uint64_t>(&in[32]);
    std::memcpy(m.nonce.data(), &in[40], m.nonce.size());
    if (m.session_id == 0) return DecodeStatus::BadValue;
    return DecodeStatus::Ok;
}

// ConnectAccept: 0 magic, 4 version, 5 flags, 6 u16 reserved, 8 u64 reserved,
// 16 u32 reserved, 20 slot_bytes, 24 slot_count, 28 u32 reserved, 32 nonce[32].
// (Version 1 had the ring's address and rkey at 8 and 16.)
std::array<std::byte, kAcceptSize> encode(const ConnectAccept& m) {
    std::array<std::byte, kAcceptSize> b{};
    put<uint32_t>(&b[0], kAcceptMagic);
    b[4] = std::byte{m.version};
    b[5] = std::byte{m.flags};
    put<uint32_t>(&b[20], m.slot_bytes);
    put<uint32_t>(&b[24], m.slot_count);
    std::memcpy(&b[32], m.nonce.data(), m.nonce.size());
    return b;
}

DecodeStatus decode(std::span<const std::byte> in, ConnectAccept& m) {
    if (auto s = check_head(in, kAcceptSize, kAcceptMagic); s != DecodeStatus::Ok) return s;
    const uint8_t flags = static_cast<uint8_t>(in[5]);
    if ((flags & ~accept_flag::kKeyRequired) != 0 || get<uint16_t>(&in[6]) != 0 ||
        get<uint64_t>(&in[8]) != 0 || get<uint32_t>(&in[16]) != 0 || get<uint32_t>(&in[28]) != 0)
        return DecodeStatus::ReservedNotZero;
    m.version = static_cast<uint8_t>(in[4]);
    m.flags = flags;
    m.slot_bytes = get<uint32_t>(&in[20]);
    m.slot_count = get<uint32_t>(&in[24]);
    std::memcpy(m.nonce.data(), &in[32], m.nonce.size());
    if (m.slot_count == 0 || m.slot_count > kMaxSlots || m.slot_bytes < kMinSlotBytes ||
        m.slot_bytes % 8 != 0)
        return DecodeStatus::BadValue;
    return DecodeStatus::Ok;
}

// ConnectReject: 0 magic, 4 version, 5 u8 text length, 6 u16 reason, 8 text.
std::size_t encode(const ConnectReject& m, std::span<std::byte, kMaxRejectPrivateData> out) {
    const std::size_t n = std::min(m.text.size(), kMaxRejectText);
    std::fill(out.begin(), out.end(), std::byte{0});
    put<uint32_t>(&out[0], kRejectMagic);
    out[4] = std::byte{m.version};
    out[5] = static_cast<std::byte>(n);
    put<uint16_t>(&out[6], static_cast<uint16_t>(m.reason));
    if (n) std::memcpy(&out[8], m.text.data(), n);  // an empty text may have no data()
    return 8 + n;
}

DecodeStatus decode(std::span<const std::byte> in, ConnectReject& m) {
    // Any version's reject is read: magic and reason are where they always are.
    if (in.size() < 8) return DecodeStatus::TooShort;
    if (get<uint32_t>(in.data()) != kRejectMagic) return DecodeStatus::BadMagic;
    const std::size_t n = static_cast<uint8_t>(in[5]);
    if (n > kMaxRejectText) return DecodeStatus::BadValue;
    if (in.size() < 8 + n) return DecodeStatus::TooShort;
    const uint16_t reason = get<uint16_t>(&in[6]);
    if (reason == 0 || reason > session::kRejectReasonMax) return DecodeStatus::BadValue;
    m.version = static_cast<uint8_t>(in[4]);
    m.reason = static_cast<RejectReason>(reason);
    m.text = {reinterpret_cast<const char*>(&in[8]), n};
    return DecodeStatus::Ok;
}

// Message: 0 magic, 4 version, 5 type, 6 flags, 7 u8 text length,
// 8 value, 16 released, 24 u16 reason, 26 u16 reserved, 28 u32 reserved,
// 32 proof[32], 64 text (Reject; up to 64 bytes) or, in a Welcome,
// 64 ring_addr, 72 rkey, 76.. zero.
MessageBytes encode(const Message& m) {
    MessageBytes b{};
    put<uint32_t>(&b[0], kMessageMagic);
    b[4] = std::byte{kRdmaVersion};
    b[5] = static_cast<std::byte>(m.type);
    b[6] = std::byte{m.flags};
    const std::size_t n =
        m.type == MessageType::Reject ? std::min<std::size_t>(m.text.size(), kMessageSize - 64) : 0;
    b[7] = static_cast<std::byte>(n);
    put<uint64_t>(&b[8], m.value);
    put<uint64_t>(&b[16], m.released);
    put<uint16_t>(&b[24], m.type == MessageType::Reject ? static_cast<uint16_t>(m.reason) : 0);
    if (m.type == MessageType::Proof || m.type == MessageType::Welcome)
        std::memcpy(&b[32], m.proof.data(), m.proof.size());
    if (n) std::memcpy(&b[64], m.text.data(), n);  // an empty text may have no data()
    if (m.type == MessageType::Welcome) {
        put<uint64_t>(&b[64], m.ring_addr);
        put<uint32_t>(&b[72], m.rkey);
    }
    return b;
}

DecodeStatus decode(std::span<const std::byte> in, Message& m) {
    if (auto s = check_head(in, kMessageSize, kMessageMagic); s != DecodeStatus::Ok) return s;
    const uint8_t type = static_cast<uint8_t>(in[5]);
    if (type < 1 || type > 4) return DecodeStatus::BadValue;
    m.type = static_cast<MessageType>(type);
    m.flags = static_cast<uint8_t>(in[6]);
    const std::size_t n = static_cast<uint8_t>(in[7]);
    m.value = get<uint64_t>(&in[8]);
    m.released = get<uint64_t>(&in[16]);
    const uint16_t reason = get<uint16_t>(&in[24]);
    if (get<uint16_t>(&in[26]) != 0 || get<uint32_t>(&in[28]) != 0)
        return DecodeStatus::ReservedNotZero;
    const bool has_proof = m.type == MessageType::Proof || m.type == MessageType::Welcome;
    if (has_proof)
        std::memcpy(m.proof.data(), &in[32], m.proof.size());
    else if (!zeros(in.subspan(32, 32)))
        return DecodeStatus::ReservedNotZero;
    const uint8_t allowed_flags = m.type == MessageType::Welcome ? welcome_flag::kNewSession : 0;
    if ((m.flags & ~allowed_flags) != 0) return DecodeStatus::ReservedNotZero;
    if (m.type == MessageType::Reject) {
        if (n > kMessageSize - 64) return DecodeStatus::BadValue;
        if (reason == 0 || reason > session::kRejectReasonMax) return DecodeStatus::BadValue;
        m.reason = static_cast<RejectReason>(reason);
        m.text = {reinterpret_cast<const char*>(&in[64]), n};
        if (!zeros(in.subspan(64 + n, kMessageSize - 64 - n))) return DecodeStatus::ReservedNotZero;
    } else if (m.type == MessageType::Welcome) {
        m.ring_addr = get<uint64_t>(&in[64]);
        m.rkey = get<uint32_t>(&in[72]);
        if (n != 0 || reason != 0 || !zeros(in.subspan(76, kMessageSize - 76)))
            return DecodeStatus::ReservedNotZero;
        m.text = {};
    } else {
        if (n != 0 || reason != 0 || !zeros(in.subspan(64, kMessageSize - 64)))
            return DecodeStatus::ReservedNotZero;
        m.ring_addr = 0;
        m.rkey = 0;
        m.text = {};
    }
    return DecodeStatus::Ok;
}

session::Hello to_session(const ConnectRequest& m) {
    session::Hello h;
    h.stream_id = m.stream_id;
    h.session_id = m.session_id;
    h.has_key = (m.flags & request_flag::kHasKey) != 0;
    h.resume = (m.flags & request_flag::kResume) != 0;
    h.position.known = (m.flags & request_flag::kHasPosition) != 0;
    h.position.sequence = h.position.known ? m.next_sequence : 0;
    h.position.packet_index = h.position.known ? m.next_packet_index : 0;
    return h;
}

Proof sender_proof(std::span<const std::byte> key, std::span<const std::byte, kRequestSize> request,
                   std::span<const std::byte, kAcceptSize> accept) {
    return session::hmac_sha256(key, {session::label(kProofLabel), request, accept});
}

Proof welcome_proof(std::span<const std::byte> key, const Proof& sender, const Message& welcome) {
    std::array<std::byte, 21> tail;
    put<uint64_t>(tail.data(), welcome.value);
    tail[8] = std::byte{welcome.flags};
    put<uint64_t>(tail.data() + 9, welcome.ring_addr);
    put<uint32_t>(tail.data() + 17, welcome.rkey);
    return session::hmac_sha256(key, {session::label(kWelcomeLabel), sender, tail});
}

Proof resume_proof(std::span<const std::byte> secret,
                   std::span<const std::byte, kRequestSize> request,
                   std::span<const std::byte, kAcceptSize> accept) {
    return session::hmac_sha256(secret, {session::label(kResumeLabel), request, accept});
}

session::SessionSecret session_secret(std::span<const std::byte> key,
                                      std::span<const std::byte, kRequestSize> request,
                                      std::span<const std::byte, kAcceptSize> accept) {
    return session::derive_session_secret(key, {request, accept});
}

}  // namespace sluice::rdma
