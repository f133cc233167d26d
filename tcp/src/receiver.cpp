#include "sluice/tcp/receiver.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "sluice/session/detail/text.hpp"
#include "sluice/session/hello_check.hpp"
#include "sluice/session/key.hpp"
#include "sluice/wire/le.hpp"

namespace sluice::tcp {
namespace {

bool starts_with_magic(std::span<const std::byte> in, uint32_t magic) {
    if (in.empty()) return true;
    std::byte m[4];
    wire::store_le<uint32_t>(m, magic);
    return std::memcmp(in.data(), m, std::min<std::size_t>(in.size(), 4)) == 0;
}

std::string_view message_name(MessageType t) {
    switch (t) {
        case MessageType::Challenge:
            return "CHALLENGE";
        case MessageType::Hello:
            return "HELLO";
        case MessageType::Welcome:
            return "WELCOME";
        case MessageType::Reject:
            return "REJECT";
        case MessageType::Ack:
            return "ACK";
        case MessageType::Heartbeat:
            return "HEARTBEAT";
    }
    return "unknown message";
}

}  // namespace

namespace {

const session::Keyring& no_keys() {
    static const session::Keyring k;
    return k;
}

}  // namespace

ReceiverSession::ReceiverSession(std::shared_ptr<const session::Keyring> keys,
                                 session::ReceiverHandler* tickets)
    : keys_(std::move(keys)), tickets_(tickets) {}

std::span<const std::byte> ReceiverSession::challenge(const Nonce& nonce) {
    server_nonce_ = nonce;
    Challenge c;
    c.flags = keys_ && !keys_->empty() ? challenge_flag::kKeyRequired : 0;
    c.nonce = nonce;
    return {out_.data(), encode(c, out_)};
}

ReceiverStep ReceiverSession::fail(RejectReason reason, std::string_view detail,
                                   std::optional<wire::WireError> we) {
    ReceiverStep s;
    s.kind = StepKind::Failed;
    s.reason = reason;
    s.wire_error = we;
    const std::size_t n = std::min(detail.size(), detail_.size());
    std::memcpy(detail_.data(), detail.data(), n);
    s.detail = {detail_.data(), n};
    s.reply = {out_.data(), encode(Reject{reason, s.detail}, out_)};
    state_ = ReceiverState::Closed;
    return s;
}

ReceiverStep ReceiverSession::next(std::span<const std::byte> in, wire::FrameReader& reader,
                                   std::span<std::byte> scratch) {
    switch (state_) {
        case ReceiverState::AwaitHello:
            return await_hello(in);
        case ReceiverState::Streaming:
            return streaming(in, reader, scratch);
        case ReceiverState::AwaitVerdict:
            return fail(RejectReason::Protocol,
                        "internal: next() called before welcome()/reject()");
        case ReceiverState::Closed:
            break;
    }
    return fail(RejectReason::Protocol, "the connection is closed");
}

ReceiverStep ReceiverSession::await_hello(std::span<const std::byte> in) {
    const ParsedMessage m = parse_message(in);
    ReceiverStep s;
    switch (m.status) {
        case MessageStatus::Ok:
            break;
        case MessageStatus::NeedMore:
            s.needed = in.size() < kMessageHeaderSize
                           ? 0
                           : kMessageHeaderSize + m.header.body_len + kMessageTrailerSize;
            return s;
        case MessageStatus::BadMagic:
            if (in[0] == std::byte{0x16}) {  // a TLS handshake record: a ClientHello
                ReceiverStep f = fail(RejectReason::Protocol,
                                      "the sender speaks TLS and this collector does not: start "
                                      "sluice-collector with --tls-cert and --tls-key, or remove "
                                      "the sender's egress.tls_ca");
                f.tls = true;
                return f;
            }
            return fail(RejectReason::Protocol,
                        "the peer is not a sluice sender: its first bytes are not a sluice "
                        "HELLO (bad magic); check what connects to this port");
        case MessageStatus::UnsupportedVersion: {
            char buf[256];
            const auto why = session::detail::format_into(
                buf,
                "the sender speaks transport version {}, this collector speaks {}: run the same "
                "sluice release on both ends",
                m.header.version, kTransportVersion);
            return fail(RejectReason::Version, why);
        }
        default: {
            char buf[256];
            const auto why =
                session::detail::format_into(buf, "malformed handshake: {}", to_string(m.status));
            return fail(RejectReason::Protocol, why);
        }
    }
    if (m.header.type == MessageType::Reject) {
        Reject rj;
        if (!decode(m.body, rj))
            return fail(RejectReason::Protocol, "malformed REJECT from the sender");
        s.kind = StepKind::PeerRejected;
        s.consumed = m.size;
        s.reason = rj.reason;
        const std::size_t n = std::min(rj.text.size(), detail_.size());
        std::memcpy(detail_.data(), rj.text.data(), n);
        s.detail = {detail_.data(), n};
        state_ = ReceiverState::Closed;
        return s;
    }
    if (m.header.type != MessageType::Hello) {
        char buf[128];
        const auto why = session::detail::format_into(buf, "expected a HELLO, got a {}",
                                                      message_name(m.header.type));
        return fail(RejectReason::Protocol, why);
    }
    Hello h;
    if (!decode(m.body, h))
        return fail(RejectReason::Protocol, "malformed HELLO: reserved flag set");
    const auto signed_bytes = hello_signed_bytes(h);
    session::Hello checked = to_session(h);
    session::HelloCheck check = session::check_hello(
        keys_ ? *keys_ : no_keys(), tickets_, checked, h.proof,
        [&](std::span<const std::byte> key) {
            return hello_proof(key, server_nonce_, signed_bytes);
        },
        [&](std::span<const std::byte> secret) {
            return resume_proof(secret, server_nonce_, signed_bytes);
        },
        [&](std::span<const std::byte> key) {
            return session_secret(key, server_nonce_, signed_bytes);
        });
    if (!check.ok) return fail(check.refusal.reason, check.refusal.text);
    answer_key_ = std::move(check.answer_key);
    hello_ = h;
    s.checked = checked;
    state_ = ReceiverState::AwaitVerdict;
    s.kind = StepKind::Hello;
    s.consumed = m.size;
    s.hello = h;
    return s;
}

ReceiverStep ReceiverSession::streaming(std::span<const std::byte> in, wire::FrameReader& reader,
                                        std::span<std::byte> scratch) {
    ReceiverStep s;
    if (in.empty()) return s;
    char buf[384];
    auto after = [&]() -> std::string {
        return last_seq_ ? fmt::format("after frame {}", *last_seq_) : "before the first frame";
    };
    if (starts_with_magic(in, wire::kMagic)) {
        if (in.size() < wire::kHeaderSize) {
            s.needed = wire::kHeaderSize;
            return s;
        }
        const auto hdr = wire::parse_header(in, reader.limits());
        if (!hdr) {
            const auto why = session::detail::format_into(buf, "frame header {}: {}", after(),
                                                          wire::to_string(hdr.error()));
            return fail(RejectReason::Protocol, why, hdr.error());
        }
        const std::size_t len = hdr->frame_len();
        if (in.size() < len) {
            s.needed = len;
            return s;
        }
        const auto view = reader.open(in.first(len), scratch);
        if (!view) {
            const auto why = session::detail::format_into(buf, "frame {}: {}", hdr->sequence,
                                                          wire::to_string(view.error()));
            return fail(RejectReason::Protocol, why, view.error());
        }
        if (hdr->stream_id != hello_.stream_id) {
            const auto why = session::detail::format_into(
                buf, "frame {} belongs to stream {}, but this connection is stream {}",
                hdr->sequence, hdr->stream_id, hello_.stream_id);
            return fail(RejectReason::Protocol, why);
        }
        last_seq_ = hdr->sequence;
        s.kind = StepKind::Frame;
        s.consumed = len;
        s.frame = *view;
        return s;
    }
    if (!starts_with_magic(in, kMessageMagic)) {
        const auto why =
            session::detail::format_into(buf,
                                         "bytes {} are neither a frame nor a control message (bad "
                                         "magic): the stream lost its framing",
                                         after());
        return fail(RejectReason::Protocol, why);
    }
    const ParsedMessage m = parse_message(in);
    if (m.status == MessageStatus::NeedMore) {
        s.needed = in.size() < kMessageHeaderSize
                       ? kMessageHeaderSize
                       : kMessageHeaderSize + m.header.body_len + kMessageTrailerSize;
        return s;
    }
    if (m.status != MessageStatus::Ok) {
        const auto why = session::detail::format_into(buf, "control message {}: {}", after(),
                                                      to_string(m.status));
        return fail(RejectReason::Protocol, why);
    }
    if (m.header.type == MessageType::Heartbeat) {
        Heartbeat hb;
        if (!decode(m.body, hb)) return fail(RejectReason::Protocol, "malformed HEARTBEAT");
        s.kind = StepKind::Heartbeat;
        s.consumed = m.size;
        return s;
    }
    if (m.header.type == MessageType::Reject) {
        Reject rj;
        if (!decode(m.body, rj))
            return fail(RejectReason::Protocol, "malformed REJECT from the sender");
        s.kind = StepKind::PeerRejected;
        s.consumed = m.size;
        s.reason = rj.reason;
        const std::size_t n = std::min(rj.text.size(), detail_.size());
        std::memcpy(detail_.data(), rj.text.data(), n);
        s.detail = {detail_.data(), n};
        state_ = ReceiverState::Closed;
        return s;
    }
    const auto why = session::detail::format_into(buf, "unexpected {} from the sender {}",
                                                  message_name(m.header.type), after());
    return fail(RejectReason::Protocol, why);
}

std::span<const std::byte> ReceiverSession::welcome(uint64_t resume_sequence, bool new_session) {
    Welcome w;
    w.resume_sequence = resume_sequence;
    w.flags = new_session ? welcome_flag::kNewSession : 0;
    w.proof = welcome_proof(answer_key_, hello_signed_bytes(hello_), server_nonce_,
                            welcome_signed_bytes(w));
    state_ = ReceiverState::Streaming;
    return {out_.data(), encode(w, out_)};
}

std::span<const std::byte> ReceiverSession::reject(RejectReason reason, std::string_view text) {
    state_ = ReceiverState::Closed;
    return {out_.data(), encode(Reject{reason, text}, out_)};
}

std::span<const std::byte> ReceiverSession::ack(uint64_t next_sequence) {
    return {out_.data(), encode(Ack{next_sequence}, out_)};
}

}  // namespace sluice::tcp
