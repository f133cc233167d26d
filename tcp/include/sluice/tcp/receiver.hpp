// The collector's side of one connection, without a socket: bytes in,
// handshake verdicts, verified frames and replies out. The collector owns the
// socket and the per-stream state (what was written, where to resume); the
// fuzz target drives the same code from a byte string.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "sluice/session/keyring.hpp"
#include "sluice/session/receiver.hpp"
#include "sluice/tcp/protocol.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::tcp {

enum class ReceiverState : uint8_t {
    AwaitHello,    // challenge() sent; waiting for the sender's HELLO
    AwaitVerdict,  // next() returned Hello: call welcome() or reject()
    Streaming,     // frames and heartbeats
    Closed,        // a Failed or PeerRejected step ended it
};

enum class StepKind : uint8_t {
    NeedMore,      // nothing consumed: wait for `needed` bytes in all (0: at least one more)
    Hello,         // an authenticated HELLO: decide, then welcome() or reject()
    Frame,         // a verified frame for this stream
    Heartbeat,     // answer with ack()
    Failed,        // the peer broke the protocol: send `reply`, close, count `reason`
    PeerRejected,  // the sender ended the connection with a REJECT: log `detail`, close
};

struct ReceiverStep {
    StepKind kind = StepKind::NeedMore;
    std::size_t consumed = 0;
    std::size_t needed = 0;
    Hello hello;             // Hello: as received
    session::Hello checked;  // Hello: what the checks established (key name, secret)
    wire::FrameView frame;   // Frame: valid while the input bytes and the scratch buffer are
    // Failed / PeerRejected:
    RejectReason reason = RejectReason::Protocol;
    std::optional<wire::WireError> wire_error;  // Failed on a frame
    bool tls = false;                           // Failed: the peer began a TLS handshake
    std::string_view detail;                    // for the log: valid until the next call
    std::span<const std::byte> reply;           // Failed: a REJECT to send before closing
};

class ReceiverSession {
  public:
    // `keys` null or empty: this collector has no key (only loopback
    // listeners allow that). `tickets` answers resume requests (a
    // ReceiverHandler's resume_ticket); null: no session can be resumed.
    explicit ReceiverSession(std::shared_ptr<const session::Keyring> keys,
                             session::ReceiverHandler* tickets = nullptr);

    // The CHALLENGE to send first, carrying `nonce` (32 random bytes; the
    // fuzz target passes fixed ones). Valid until the next call.
    std::span<const std::byte> challenge(const Nonce& nonce);

    // Parses the next message or frame at the start of `in` (bytes received
    // and not consumed yet). Frames are verified with `reader`, decompressing
    // into `scratch` (>= the reader's max_raw_len). Reads nothing past `in`.
    ReceiverStep next(std::span<const std::byte> in, wire::FrameReader& reader,
                      std::span<std::byte> scratch);

    // After a Hello step: accept, resuming at `resume_sequence`.
    std::span<const std::byte> welcome(uint64_t resume_sequence, bool new_session);
    // After a Hello step, or at any time: the collector refuses or ends the
    // connection (replaced, shutting down, storage). Closes the session.
    std::span<const std::byte> reject(RejectReason reason, std::string_view text);
    std::span<const std::byte> ack(uint64_t next_sequence);

    ReceiverState state() const { return state_; }
    const Hello& hello() const { return hello_; }  // after a Hello step
    // The last frame sequence this connection delivered, for messages.
    std::optional<uint64_t> last_sequence() const { return last_seq_; }

  private:
    ReceiverStep fail(RejectReason reason, std::string_view detail,
                      std::optional<wire::WireError> we = std::nullopt);
    ReceiverStep await_hello(std::span<const std::byte> in);
    ReceiverStep streaming(std::span<const std::byte> in, wire::FrameReader& reader,
                           std::span<std::byte> scratch);

    std::shared_ptr<const session::Keyring> keys_;
    session::ReceiverHandler* tickets_;
    std::vector<std::byte> answer_key_;  // what the WELCOME proves: the key, or the session secret
    ReceiverState state_ = ReceiverState::AwaitHello;
    Nonce server_nonce_{};
    Hello hello_;
    std::optional<uint64_t> last_seq_;
    std::array<std::byte, kMaxMessageSize> out_{};
    std::array<char, 512> detail_{};
};

}  // namespace sluice::tcp
