// The RDMA transport's handshake and control messages, byte for byte
// (docs/wire-protocol.md, "RDMA transport", is the specification; this header
// is its code form). Frames themselves are unchanged: each is written whole
// into one slot of the collector's ring.
//
// Connection set-up, with the bytes each step carries:
//
//   sender                                   collector
//   rdma_connect, private data ConnectRequest ->          (<= 56 bytes: IB CM REQ)
//           <- rdma_accept, private data ConnectAccept    (slot size/count, nonce)
//      or   <- rdma_reject, private data ConnectReject    (why, in words)
//   SEND Proof (HMAC over request, accept, nonce) ->
//           <- SEND Welcome (resume sequence, ring address and rkey, HMAC)
//      or   <- SEND Reject, disconnect
//   WRITE WITH IMMEDIATE frame -> slot k (imm = slot | sequence bits) ...
//           <- SEND Credit (slots released, every frame below `acknowledged` written)
//
// The collector touches no stream state, registers no ring and accepts no
// write until the Proof checked out: before it, a connection holds a queue
// pair and a few KiB of message buffers in a protection domain of its own;
// the ring (megabytes, pinned) comes with the Welcome. A recorded request
// replayed by someone without the key gets a fresh nonce it cannot answer.
// Version 2: version 1 sent the ring in the accept, before the proof.
// Version 3: a request may resume its session by proving the session's
// secret (request_flag::kResume) instead of the key.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "sluice/session/hello.hpp"
#include "sluice/session/key.hpp"
#include "sluice/session/reject.hpp"

namespace sluice::rdma {

inline constexpr uint8_t kRdmaVersion = 3;
inline constexpr uint32_t kRequestMagic = 0x51524c53;  // "SLRQ" read little-endian
inline constexpr uint32_t kAcceptMagic = 0x50524c53;   // "SLRP"
inline constexpr uint32_t kRejectMagic = 0x4a524c53;   // "SLRJ"
inline constexpr uint32_t kMessageMagic = 0x4d524c53;  // "SLRM"

// rdma_cm's limits for private data on RC (IB CM REQ 92 bytes, REP 196,
// REJ 148, minus rdma_cm's own header on the request).
inline constexpr std::size_t kMaxRequestPrivateData = 56;
inline constexpr std::size_t kMaxAcceptPrivateData = 196;
inline constexpr std::size_t kMaxRejectPrivateData = 148;

inline constexpr std::size_t kRequestSize = 56;
inline constexpr std::size_t kAcceptSize = 64;
inline constexpr std::size_t kMaxRejectText = kMaxRejectPrivateData - 8;  // 140
inline constexpr std::size_t kSenderNonceSize = 16;
inline constexpr std::size_t kMessageSize = 128;  // every SEND on the QP
inline constexpr std::size_t kMaxMessageText = kMessageSize - 8;

// The immediate carries the slot index in its low 16 bits: at most this many slots.
inline constexpr uint32_t kMaxSlots = 1u << 16;
inline constexpr uint32_t kMinSlotBytes = 4096;

using session::Proof;
using session::RejectReason;
using SenderNonce = std::array<std::byte, kSenderNonceSize>;
using CollectorNonce = session::Nonce;

namespace request_flag {
inline constexpr uint8_t kHasKey = 1u << 0;       // the sender will prove a key
inline constexpr uint8_t kHasPosition = 1u << 1;  // next_sequence/next_packet_index are valid
inline constexpr uint8_t kResume = 1u << 2;       // the Proof is resume_proof: the session's secret
}  // namespace request_flag
namespace accept_flag {
inline constexpr uint8_t kKeyRequired = 1u << 0;
}
namespace welcome_flag {
inline constexpr uint8_t kNewSession = 1u << 0;
}

// Private data of the sender's connect request: who it is and where it stands.
struct ConnectRequest {
    uint8_t version = kRdmaVersion;
    uint8_t flags = 0;
    uint64_t stream_id = 0;
    uint64_t session_id = 0;
    uint64_t next_sequence = 0;
    uint64_t next_packet_index = 0;
    SenderNonce nonce{};
};

// The transport-neutral content of a connect request.
session::Hello to_session(const ConnectRequest& m);

// Private data of the collector's accept: the ring to write into.
struct ConnectAccept {
    uint8_t version = kRdmaVersion;
    uint8_t flags = 0;
    uint32_t slot_bytes = 0;  // the largest frame the sender may write
    uint32_t slot_count = 0;  // its credit window
    CollectorNonce nonce{};
};

// Private data of the collector's reject (also sent to a sender of another
// version, so every version keeps magic, version and reason where they are).
struct ConnectReject {
    uint8_t version = kRdmaVersion;
    RejectReason reason = RejectReason::Protocol;
    std::string_view text;  // decoded: points into the input
};

enum class DecodeStatus : uint8_t {
    Ok,
    TooShort,            // fewer bytes than the message needs
    BadMagic,            // not a sluice RDMA peer
    UnsupportedVersion,  // magic fine, another version
    ReservedNotZero,     // a reserved byte or unknown flag is set
    BadValue,            // a field out of range (slot size, slot count, reason, type)
};
std::string_view to_string(DecodeStatus s);

std::array<std::byte, kRequestSize> encode(const ConnectRequest& m);
std::array<std::byte, kAcceptSize> encode(const ConnectAccept& m);
// Returns the bytes used in `out` (>= kMaxRejectPrivateData); text cut to fit.
std::size_t encode(const ConnectReject& m, std::span<std::byte, kMaxRejectPrivateData> out);

// rdma_cm hands over the private data padded with zeros to the transport's
// size: decoders accept longer input whose extra bytes are zero.
DecodeStatus decode(std::span<const std::byte> in, ConnectRequest& m);
DecodeStatus decode(std::span<const std::byte> in, ConnectAccept& m);
DecodeStatus decode(std::span<const std::byte> in, ConnectReject& m);

// ---- SENDs on the queue pair: kMessageSize bytes each -------------------------------
enum class MessageType : uint8_t {
    Proof = 1,    // sender -> collector: HMAC over request, accept and the collector's nonce
    Welcome = 2,  // collector -> sender: resume here, the ring to write into; its own HMAC
    Credit = 3,   // collector -> sender: slots released, cumulative acknowledgement
    Reject = 4,   // collector -> sender: why the connection ends
};

struct Message {
    MessageType type = MessageType::Credit;
    uint8_t flags = 0;  // Welcome: welcome_flag
    RejectReason reason = RejectReason::Protocol;
    uint64_t value = 0;      // Welcome: resume sequence; Credit: acknowledged (next sequence)
    uint64_t released = 0;   // Credit: slots released since the connection began (cumulative)
    uint64_t ring_addr = 0;  // Welcome: the ring's address ...
    uint32_t rkey = 0;       // ... and remote key (registered for this connection only)
    Proof proof{};           // Proof, Welcome
    std::string_view text;   // Reject (decoded: points into the input)
};

using MessageBytes = std::array<std::byte, kMessageSize>;
MessageBytes encode(const Message& m);
DecodeStatus decode(std::span<const std::byte> in, Message& m);

// ---- key proofs (HMAC-SHA256, empty key when neither end has one) --------------------
// HMAC(key, "sluice rdma proof v2" || request || accept): the accept carries
// the collector's fresh nonce, so a recorded proof is worth nothing.
Proof sender_proof(std::span<const std::byte> key, std::span<const std::byte, kRequestSize> request,
                   std::span<const std::byte, kAcceptSize> accept);
// HMAC(key, "sluice rdma welcome v2" || sender proof || resume sequence || flags ||
// ring address || rkey): the sender writes only into a ring the key holder named.
// A resumed session's Welcome is proved with the session's secret in place of the key.
Proof welcome_proof(std::span<const std::byte> key, const Proof& sender, const Message& welcome);
// A request with kResume: HMAC(session secret, "sluice rdma resume v3" || request || accept).
Proof resume_proof(std::span<const std::byte> secret,
                   std::span<const std::byte, kRequestSize> request,
                   std::span<const std::byte, kAcceptSize> accept);
// The secret of the session a request without kResume starts:
// HMAC(key, "sluice session v2" || request || accept).
session::SessionSecret session_secret(std::span<const std::byte> key,
                                      std::span<const std::byte, kRequestSize> request,
                                      std::span<const std::byte, kAcceptSize> accept);

// ---- immediate data -------------------------------------------------------------------
// imm (host order; the verbs field is big-endian) = slot in bits 0..15, the
// frame's sequence modulo 2^16 in bits 16..31: the collector finds the slot
// without a lookup and checks that the slot holds the frame that was meant.
constexpr uint32_t encode_imm(uint32_t slot, uint64_t sequence) {
    return (static_cast<uint32_t>(sequence & 0xffff) << 16) | (slot & 0xffff);
}
constexpr uint32_t imm_slot(uint32_t imm) {
    return imm & 0xffff;
}
constexpr uint16_t imm_sequence_bits(uint32_t imm) {
    return static_cast<uint16_t>(imm >> 16);
}

// ---- credits ----------------------------------------------------------------------------
// The sender's view of the collector's ring: which slot the next frame goes
// to and how many slots it may still fill. The collector releases slots in
// the order they were written, cumulatively, so a lost or repeated Credit
// message cannot make the sender overrun the ring.
class CreditWindow {
  public:
    CreditWindow() = default;
    explicit CreditWindow(uint32_t slot_count) { reset(slot_count); }

    void reset(uint32_t slot_count) {
        slots_ = slot_count;
        written_ = released_ = 0;
    }
    uint32_t slots() const { return slots_; }
    uint32_t available() const { return static_cast<uint32_t>(slots_ - (written_ - released_)); }
    uint32_t next_slot() const { return static_cast<uint32_t>(written_ % slots_); }
    uint64_t written() const { return written_; }
    uint64_t released() const { return released_; }
    // One slot filled (only with available() > 0); returns its index.
    uint32_t take() {
        const uint32_t s = next_slot();
        ++written_;
        return s;
    }
    // The collector says it released `cumulative` slots since the connection
    // began. False (and no change) when that is impossible: more than written,
    // or less than it said before; the peer is broken.
    bool release(uint64_t cumulative) {
        if (cumulative > written_ || cumulative < released_) return false;
        released_ = cumulative;
        return true;
    }

  private:
    uint32_t slots_ = 0;
    uint64_t written_ = 0;   // slots filled since the connection began
    uint64_t released_ = 0;  // of those, slots the collector gave back
};

}  // namespace sluice::rdma
