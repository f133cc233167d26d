// The stream transport's control messages, byte for byte
// (docs/wire-protocol.md, "Stream transport", is the specification; this
// header is its code form). Frames travel between them unchanged: on the
// sender-to-collector direction a reader tells the two apart by their first
// four bytes, "SLCF" for a frame and "SLCT" for a control message.
//
// Every control message is an 8-byte header, a body of a fixed size per type
// (REJECT: variable), and a CRC-32C of header and body:
//
//   0  u32 magic "SLCT"   4  u8 version   5  u8 type   6  u16 body_len
//   8  body ...           8+body_len  u32 CRC-32C of bytes 0..8+body_len
//
// Every version keeps magic and version where they are, and every version
// can send and read the version-1 REJECT, so two ends of different versions
// still tell the operator why they cannot talk.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "sluice/session/hello.hpp"
#include "sluice/session/key.hpp"
#include "sluice/session/reject.hpp"

namespace sluice::tcp {

using session::kNonceSize;
using session::kProofSize;
using session::Nonce;
using session::Proof;
using session::RejectReason;

inline constexpr uint32_t kMessageMagic = 0x54434c53;  // the bytes "SLCT" read little-endian
inline constexpr uint8_t kTransportVersion = 2;        // 2: HELLO may resume with a session secret
inline constexpr std::size_t kMessageHeaderSize = 8;
inline constexpr std::size_t kMessageTrailerSize = 4;
inline constexpr std::size_t kMaxRejectText = 480;
inline constexpr std::size_t kMaxBodySize = 8 + kMaxRejectText;  // the REJECT is the largest
inline constexpr std::size_t kMaxMessageSize =
    kMessageHeaderSize + kMaxBodySize + kMessageTrailerSize;

enum class MessageType : uint8_t {
    Challenge = 1,  // collector -> sender, first message on a connection
    Hello = 2,      // sender -> collector: who, where to resume, proof of the key
    Welcome = 3,    // collector -> sender: resume point, proof of the key
    Reject = 4,     // either way: why the connection ends; then the sender closes it
    Ack = 5,        // collector -> sender: every frame below this sequence is written
    Heartbeat = 6,  // sender -> collector on an idle connection; answered by an Ack
};

// Bodies (sizes fixed by the version; REJECT: 8 + text length).
inline constexpr std::size_t kChallengeBody = 8 + kNonceSize;            // 40
inline constexpr std::size_t kHelloBody = 40 + kNonceSize + kProofSize;  // 104
inline constexpr std::size_t kHelloSigned = 40 + kNonceSize;             // bytes the proof covers
inline constexpr std::size_t kWelcomeBody = 16 + kProofSize;             // 48
inline constexpr std::size_t kWelcomeSigned = 16;
inline constexpr std::size_t kAckBody = 8;
inline constexpr std::size_t kHeartbeatBody = 8;

namespace challenge_flag {
inline constexpr uint32_t kKeyRequired = 1u << 0;  // the collector has a key and demands one
}
namespace hello_flag {
inline constexpr uint32_t kHasKey = 1u << 0;       // the sender proves a configured key
inline constexpr uint32_t kHasPosition = 1u << 1;  // next_sequence/next_packet_index are valid
inline constexpr uint32_t kResume = 1u << 2;  // the proof is resume_proof: the session's secret
}  // namespace hello_flag
namespace welcome_flag {
inline constexpr uint32_t kNewSession = 1u << 0;  // the collector started a new sequence space
}

struct Challenge {
    uint32_t flags = 0;
    Nonce nonce{};
};

struct Hello {
    uint32_t flags = 0;
    uint32_t heartbeat_ms = 0;       // 0: the sender sends none
    uint64_t stream_id = 0;          // the frames' stream id
    uint64_t session_id = 0;         // random per sender instance; a new one restarts sequencing
    uint64_t next_sequence = 0;      // oldest frame not yet acknowledged, else the next one
    uint64_t next_packet_index = 0;  // that frame's first_packet_index
    Nonce nonce{};
    Proof proof{};
};

struct Welcome {
    uint64_t resume_sequence = 0;  // every frame below is written; send from here
    uint32_t flags = 0;
    Proof proof{};
};

struct Reject {
    RejectReason reason = RejectReason::Protocol;
    std::string_view text;  // decoded: points into the message bytes
};

struct Ack {
    uint64_t next_sequence = 0;
};

struct Heartbeat {
    uint64_t counter = 0;
};

// ---- encoding: into `out` (>= kMaxMessageSize bytes); returns the message size -----
std::size_t encode(const Challenge& m, std::span<std::byte> out,
                   uint8_t version = kTransportVersion);
std::size_t encode(const Hello& m, std::span<std::byte> out, uint8_t version = kTransportVersion);
std::size_t encode(const Welcome& m, std::span<std::byte> out);
std::size_t encode(const Reject& m, std::span<std::byte> out);  // text cut to kMaxRejectText
std::size_t encode(const Ack& m, std::span<std::byte> out);
std::size_t encode(const Heartbeat& m, std::span<std::byte> out);

// The bytes of a Hello's body the proof covers (everything before it).
std::array<std::byte, kHelloSigned> hello_signed_bytes(const Hello& m);
std::array<std::byte, kWelcomeSigned> welcome_signed_bytes(const Welcome& m);

// ---- key proofs (session::hmac_sha256; an empty key when neither end has one) ----------
// HMAC(key, "sluice hello v1" || server_nonce || signed hello bytes).
Proof hello_proof(std::span<const std::byte> key, const Nonce& server_nonce,
                  std::span<const std::byte, kHelloSigned> hello_signed);
// HMAC(key, "sluice welcome v1" || signed hello bytes || server_nonce ||
// signed welcome bytes): binds the answer to this very hello. A resumed
// session's WELCOME is proved with the session's secret in place of the key.
Proof welcome_proof(std::span<const std::byte> key,
                    std::span<const std::byte, kHelloSigned> hello_signed,
                    const Nonce& server_nonce,
                    std::span<const std::byte, kWelcomeSigned> welcome_signed);
// A HELLO with kResume: HMAC(session secret, "sluice resume v2" ||
// server_nonce || signed hello bytes).
Proof resume_proof(std::span<const std::byte> secret, const Nonce& server_nonce,
                   std::span<const std::byte, kHelloSigned> hello_signed);
// The secret of the session a HELLO without kResume starts:
// HMAC(key, "sluice session v2" || server_nonce || signed hello bytes).
session::SessionSecret session_secret(std::span<const std::byte> key, const Nonce& server_nonce,
                                      std::span<const std::byte, kHelloSigned> hello_signed);

// The transport-neutral content of a HELLO, and back.
session::Hello to_session(const Hello& m);

// ---- decoding ----------------------------------------------------------------------
enum class MessageStatus : uint8_t {
    Ok,
    NeedMore,            // `in` holds a prefix of a message: read more
    BadMagic,            // not "SLCT"
    UnsupportedVersion,  // magic fine, version not 1 (header.version tells which)
    UnknownType,
    BadLength,        // body_len wrong for the type, or above kMaxBodySize
    CrcMismatch,      // the message was corrupted
    ReservedNotZero,  // a reserved field or unknown flag is set
};
std::string_view to_string(MessageStatus s);

struct MessageHeader {
    uint8_t version = 0;
    MessageType type{};
    uint16_t body_len = 0;
};

struct ParsedMessage {
    MessageStatus status = MessageStatus::NeedMore;
    MessageHeader header;             // valid from UnsupportedVersion on
    std::size_t size = 0;             // whole message bytes (status Ok)
    std::span<const std::byte> body;  // status Ok
};

// Parses the control message at the start of `in`; reads nothing past the
// message. Checks magic, version, type, length and CRC; body fields are
// checked by the decode functions below.
ParsedMessage parse_message(std::span<const std::byte> in);

// Decode a body of parse_message(); false when a reserved field or an unknown
// flag is set (the message is malformed).
bool decode(std::span<const std::byte> body, Challenge& m);
bool decode(std::span<const std::byte> body, Hello& m);
bool decode(std::span<const std::byte> body, Welcome& m);
bool decode(std::span<const std::byte> body, Reject& m);
bool decode(std::span<const std::byte> body, Ack& m);
bool decode(std::span<const std::byte> body, Heartbeat& m);

}  // namespace sluice::tcp
