#include "sluice/tcp/sender.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "text.hpp"
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice/tcp/auth.hpp"

namespace sluice::tcp {
namespace {

// ACKs are read at most this often while streaming: a recv() per poll() would
// cost a syscall per loop turn for nothing most of the time.
constexpr uint64_t kReadIntervalNs = 20'000;
// After the socket refused more bytes (EAGAIN), the next try waits this long.
constexpr uint64_t kSendRetryNs = 5'000;

uint64_t random_u64() {
    uint64_t v = 0;
    std::byte b[8];
    if (random_bytes(b)) std::memcpy(&v, b, 8);
    if (v == 0) v = monotonic_ns() | 1;
    return v;
}

}  // namespace

uint64_t monotonic_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

std::string_view to_string(SenderState s) {
    switch (s) {
        case SenderState::Waiting:
            return "waiting";
        case SenderState::Connecting:
            return "connecting";
        case SenderState::Handshake:
            return "handshake";
        case SenderState::Streaming:
            return "streaming";
    }
    return "unknown";
}

static SenderConfig validated(const SenderConfig& c) {
    if (c.port == 0) throw std::invalid_argument("sender: port 0 is not a collector port");
    if (c.retransmit_frames == 0)
        throw std::invalid_argument("sender: retransmit_frames must be at least 1");
    if (c.timeout_ms == 0) throw std::invalid_argument("sender: timeout_ms must be at least 1");
    if (c.reconnect_min_ms == 0 || c.reconnect_max_ms < c.reconnect_min_ms)
        throw std::invalid_argument("sender: need 1 <= reconnect_min_ms <= reconnect_max_ms");
    if (!c.key.empty() && c.key.size() < kMinKeyBytes)
        throw std::invalid_argument(fmt::format(
            "sender: the key has {} bytes, at least {} are needed", c.key.size(), kMinKeyBytes));
    return c;
}

TcpSender::TcpSender(const SenderConfig& config)
    : cfg_(validated(config)),
      addr_(resolve(Endpoint{cfg_.host, cfg_.port})),
      peer_(Endpoint{cfg_.host, cfg_.port}.to_string()),
      session_id_(cfg_.session_id ? cfg_.session_id : random_u64()),
      rtx_(cfg_.retransmit_frames),
      backoff_(cfg_.reconnect_min_ms, cfg_.reconnect_max_ms,
               cfg_.jitter_seed ? cfg_.jitter_seed : random_u64()) {}

TcpSender::~TcpSender() {
    close_socket();
}

SubmitResult TcpSender::submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie) {
    if (!rtx_.push(frame, sequence, cookie)) {
        stats_.submit_full.inc();
        return SubmitResult::Full;
    }
    stats_.frames_submitted.inc();
    return SubmitResult::Accepted;
}

std::size_t TcpSender::reclaim(std::span<void*> out) {
    return rtx_.reclaim(out);
}

void TcpSender::set_state(SenderState s) {
    state_ = s;
    // relaxed: a status display; pairs with nothing.
    stats_.state.store(static_cast<uint8_t>(s), std::memory_order_relaxed);
    stats_.connected.store(s == SenderState::Streaming, std::memory_order_relaxed);
}

void TcpSender::record_error(std::string_view text) {
    stats_.last_error.set(text);
    stats_.errors.inc();
}

void TcpSender::close_socket() {
    if (fd_ < 0) return;
    // Reset rather than close: the peer learns at once, and the kernel drops
    // queued data (and any MSG_ZEROCOPY page references) right away.
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
}

void TcpSender::fail(uint64_t now, std::string_view message, bool timeout) {
    if (state_ == SenderState::Streaming)
        stats_.disconnects.inc();
    else
        stats_.connect_failures.inc();
    if (timeout) stats_.timeouts.inc();
    record_error(message);
    close_socket();
    rtx_.rewind();
    rtx_.zerocopy_forget();
    rx_len_ = ctl_len_ = ctl_off_ = 0;
    handshake_challenged_ = false;
    awaiting_answer_ = heartbeat_out_ = false;
    zc_calls_ = 0;
    next_attempt_ns_ = now + backoff_.next_delay_ns();
    set_state(SenderState::Waiting);
}

void TcpSender::disconnect(uint64_t now, std::string_view why) {
    if (fd_ < 0 && state_ == SenderState::Waiting) return;
    fail(now, why);
}

void TcpSender::close() {
    if (fd_ >= 0 && zc_calls_ && rtx_.unacknowledged() > 0) {
        close_socket();  // a reset: queued zerocopy pages must not outlive the call
    } else if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    zc_calls_ = 0;
    rtx_.rewind();
    rtx_.zerocopy_forget();
    rx_len_ = ctl_len_ = ctl_off_ = 0;
    handshake_challenged_ = false;
    awaiting_answer_ = heartbeat_out_ = false;
    set_state(SenderState::Waiting);
}

void TcpSender::start_connect(uint64_t now) {
    char msg[256];
    auto error = [&](const char* what, int err) {
        const auto why =
            detail::format_into(msg, "{} for collector {}: {}", what, peer_, std::strerror(err));
        fail(now, why);
    };
    fd_ = ::socket(addr_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return error("socket()", errno);
    const int one = 1;
    // Frames are whole messages: send each at once instead of waiting to fill
    // a segment (Nagle would hold back the tail of every frame).
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg_.sndbuf_bytes) {
        const int v = static_cast<int>(std::min<uint32_t>(cfg_.sndbuf_bytes, 1u << 30));
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    zerocopy_ = cfg_.zerocopy && ::setsockopt(fd_, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) == 0;
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr_.addr), addr_.len) != 0 &&
        errno != EINPROGRESS) {
        const int e = errno;
        const auto why =
            detail::format_into(msg,
                                "connect to collector {} failed: {}; is sluice-collector "
                                "running and listening there?",
                                peer_, std::strerror(e));
        fail(now, why);
        return;
    }
    deadline_ns_ = now + uint64_t{cfg_.timeout_ms} * 1'000'000;
    set_state(SenderState::Connecting);
}

bool TcpSender::check_connected(uint64_t now) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, 0) <= 0) {
        if (now >= deadline_ns_) {
            char msg[256];
            const auto why =
                detail::format_into(msg,
                                    "connect to collector {} timed out after {} ms; check "
                                    "the address and any firewall between",
                                    peer_, cfg_.timeout_ms);
            fail(now, why, true);
            return true;
        }
        return false;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        char msg[256];
        const auto why =
            detail::format_into(msg,
                                "connect to collector {} failed: {}; is sluice-collector "
                                "running and listening there?",
                                peer_, std::strerror(err));
        fail(now, why);
        return true;
    }
    // The collector speaks first (CHALLENGE); the handshake deadline restarts.
    deadline_ns_ = now + uint64_t{cfg_.timeout_ms} * 1'000'000;
    set_state(SenderState::Handshake);
    return true;
}

void TcpSender::queue_control(std::span<const std::byte> msg) {
    // Callers queue at most two messages between flushes: it always fits.
    if (ctl_off_ == ctl_len_) ctl_off_ = ctl_len_ = 0;
    std::memcpy(ctl_.data() + ctl_len_, msg.data(), msg.size());
    ctl_len_ += msg.size();
}

bool TcpSender::flush_control(uint64_t now) {
    while (ctl_off_ < ctl_len_) {
        const ssize_t n =
            ::send(fd_, ctl_.data() + ctl_off_, ctl_len_ - ctl_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
            char msg[256];
            const auto why = detail::format_into(msg, "connection to collector {} lost: {}", peer_,
                                                 std::strerror(errno));
            fail(now, why);
            return false;
        }
        ctl_off_ += static_cast<std::size_t>(n);
        stats_.bytes_sent.add(static_cast<uint64_t>(n));
        last_tx_ns_ = now;
    }
    ctl_off_ = ctl_len_ = 0;
    return true;
}

void TcpSender::send_reject(RejectReason reason, std::string_view text) {
    // Best effort, once: the connection ends right after, whatever happens.
    std::array<std::byte, kMaxMessageSize> buf;
    const std::size_t n = encode(Reject{reason, text}, buf);
    if (ctl_off_ == ctl_len_ && ::send(fd_, buf.data(), n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        stats_.bytes_sent.add(n);
}

void TcpSender::handle_challenge(uint64_t now, std::span<const std::byte> body) {
    Challenge c;
    if (!decode(body, c)) {
        fail(now, "malformed CHALLENGE from the collector: is that port a sluice-collector?");
        return;
    }
    server_nonce_ = c.nonce;
    Hello h;
    h.flags = cfg_.key.empty() ? 0 : hello_flag::kHasKey;
    h.heartbeat_ms = cfg_.heartbeat_ms;
    h.stream_id = cfg_.stream_id;
    h.session_id = session_id_;
    const StreamPosition pos = rtx_.position();
    if (pos.known) {
        h.flags |= hello_flag::kHasPosition;
        h.next_sequence = pos.sequence;
        h.next_packet_index = pos.packet_index;
    }
    if (!random_bytes(h.nonce)) {
        fail(now, "the system's random generator failed; cannot authenticate");
        return;
    }
    hello_signed_ = hello_signed_bytes(h);
    h.proof = hello_proof(cfg_.key, server_nonce_, hello_signed_);
    std::array<std::byte, kMaxMessageSize> buf;
    queue_control({buf.data(), encode(h, buf)});
    handshake_challenged_ = true;
}

void TcpSender::handle_welcome(uint64_t now, std::span<const std::byte> body) {
    Welcome w;
    if (!decode(body, w)) {
        fail(now, "malformed WELCOME from the collector");
        return;
    }
    if (!proofs_equal(w.proof, welcome_proof(cfg_.key, hello_signed_, server_nonce_,
                                             welcome_signed_bytes(w)))) {
        send_reject(RejectReason::AuthFailed,
                    "the collector did not prove the key: its key differs from this sender's");
        char msg[256];
        const auto why =
            detail::format_into(msg,
                                "collector {} did not prove it holds the key: its "
                                "--key-file differs from egress.key_file (or it is not the "
                                "collector you configured)",
                                peer_);
        fail(now, why);
        return;
    }
    // Everything below the resume point is written: those frames are done,
    // whatever connection carried them.
    stats_.frames_acknowledged.add(rtx_.acknowledge(w.resume_sequence));
    backoff_.reset();
    stats_.connects.inc();
    last_rx_ns_ = last_tx_ns_ = now;
    awaiting_answer_ = heartbeat_out_ = false;
    set_state(SenderState::Streaming);
}

void TcpSender::handle_reject(uint64_t now, std::span<const std::byte> body) {
    Reject rj;
    char msg[640];
    if (!decode(body, rj)) {
        fail(now, "malformed REJECT from the collector");
        return;
    }
    // The text is the collector's; keep only printable bytes in the log.
    char text[kMaxRejectText];
    std::size_t n = 0;
    for (char ch : rj.text)
        text[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    const auto why = detail::format_into(msg, "collector {} rejected the connection ({}): {}",
                                         peer_, to_string(rj.reason), std::string_view(text, n));
    fail(now, why);
}

bool TcpSender::read_messages(uint64_t now) {
    bool work = false;
    for (;;) {
        if (rx_len_ == rx_.size()) break;  // cannot happen: messages are consumed as they come
        const ssize_t n = ::recv(fd_, rx_.data() + rx_len_, rx_.size() - rx_len_, MSG_DONTWAIT);
        if (n == 0) {
            char msg[256];
            const auto why = detail::format_into(msg, "collector {} closed the connection{}", peer_,
                                                 state_ == SenderState::Streaming
                                                     ? " (stopped or restarted?)"
                                                     : " during the handshake (see its log)");
            fail(now, why);
            return true;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            char msg[256];
            const auto why = detail::format_into(msg, "connection to collector {} lost: {}", peer_,
                                                 std::strerror(errno));
            fail(now, why);
            return true;
        }
        rx_len_ += static_cast<std::size_t>(n);
        work = true;
        std::size_t off = 0;
        while (off < rx_len_) {
            const ParsedMessage m = parse_message({rx_.data() + off, rx_len_ - off});
            if (m.status == MessageStatus::NeedMore) break;
            if (m.status == MessageStatus::UnsupportedVersion) {
                char msg[256];
                const auto why = detail::format_into(
                    msg,
                    "the collector speaks transport version {}, this sender speaks {}: run the "
                    "same sluice release on both ends",
                    m.header.version, kTransportVersion);
                send_reject(RejectReason::Version, why);
                fail(now, why);
                return true;
            }
            if (m.status != MessageStatus::Ok) {
                char msg[320];
                const auto why =
                    detail::format_into(msg, "from collector {}: {}", peer_, to_string(m.status));
                fail(now, why);
                return true;
            }
            off += m.size;
            last_rx_ns_ = now;
            const MessageType t = m.header.type;
            if (t == MessageType::Reject) {
                handle_reject(now, m.body);
                return true;
            }
            if (state_ == SenderState::Handshake && !handshake_challenged_ &&
                t == MessageType::Challenge) {
                handle_challenge(now, m.body);
            } else if (state_ == SenderState::Handshake && handshake_challenged_ &&
                       t == MessageType::Welcome) {
                handle_welcome(now, m.body);
            } else if (state_ == SenderState::Streaming && t == MessageType::Ack) {
                Ack a;
                decode(m.body, a);
                stats_.frames_acknowledged.add(rtx_.acknowledge(a.next_sequence));
                heartbeat_out_ = false;
            } else {
                char msg[256];
                const auto why =
                    detail::format_into(msg,
                                        "unexpected control message type {} from collector "
                                        "{} in state {}",
                                        static_cast<int>(t), peer_, to_string(state_));
                fail(now, why);
                return true;
            }
            if (fd_ < 0) return true;  // a handler failed the connection
        }
        if (off) {
            std::memmove(rx_.data(), rx_.data() + off, rx_len_ - off);
            rx_len_ -= off;
        }
    }
    return work;
}

bool TcpSender::read_zerocopy_completions() {
    bool work = false;
    for (;;) {
        char control[128];
        msghdr msg{};
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        if (::recvmsg(fd_, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            const bool recverr = (c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                                 (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR);
            if (!recverr) continue;
            sock_extended_err err;
            std::memcpy(&err, CMSG_DATA(c), sizeof err);
            if (err.ee_origin != SO_EE_ORIGIN_ZEROCOPY || err.ee_errno != 0) continue;
            // ee_info..ee_data: the range of send calls whose pages are free.
            rtx_.zerocopy_done(err.ee_data + 1);
            if (err.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
                stats_.zerocopy_copied.add(err.ee_data - err.ee_info + 1);
            work = true;
        }
    }
    return work;
}

bool TcpSender::send_frames(uint64_t now) {
    bool work = false;
    while (rtx_.unsent() > 0) {
        const int n = rtx_.fill_iov(iov_.data(), kMaxIov);
        std::size_t total = 0;
        for (int i = 0; i < n; ++i)
            total += iov_[i].iov_len;
        msghdr msg{};
        msg.msg_iov = iov_.data();
        msg.msg_iovlen = static_cast<std::size_t>(n);
        const bool zc = zerocopy_ && total >= cfg_.zerocopy_min_bytes;
        const ssize_t sent =
            ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | (zc ? MSG_ZEROCOPY : 0));
        if (sent < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                // The socket buffer is full: retrying at once would only
                // spin in the kernel against the ACK processing.
                next_send_ns_ = now + kSendRetryNs;
                break;
            }
            if (zc && errno == ENOBUFS) {
                // Out of option memory for completion notifications: send
                // this one by copying.
                zerocopy_ = false;
                continue;
            }
            char m[256];
            const auto why = detail::format_into(m, "connection to collector {} lost: {}", peer_,
                                                 std::strerror(errno));
            fail(now, why);
            return true;
        }
        uint32_t zc_id = 0;
        if (zc) {
            zc_id = ++zc_calls_;  // the kernel numbers them from 0: id = kernel's + 1
            stats_.zerocopy_sends.inc();
        }
        const auto adv = rtx_.advance(static_cast<std::size_t>(sent), zc_id);
        stats_.frames_sent.add(adv.frames);
        stats_.frames_retransmitted.add(adv.retransmitted);
        stats_.bytes_sent.add(static_cast<uint64_t>(sent));
        if (!awaiting_answer_) {
            awaiting_answer_ = true;
            last_rx_ns_ = now;  // the timeout counts from the first unanswered send
        }
        last_tx_ns_ = now;
        work = true;
        if (static_cast<std::size_t>(sent) < total) {  // the socket buffer is full
            next_send_ns_ = now + kSendRetryNs;
            break;
        }
    }
    return work;
}

bool TcpSender::poll(uint64_t now) {
    switch (state_) {
        case SenderState::Waiting:
            if (now < next_attempt_ns_) return false;
            start_connect(now);
            return true;
        case SenderState::Connecting:
            return check_connected(now);
        case SenderState::Handshake: {
            bool work = read_messages(now);
            if (fd_ >= 0 && ctl_len_) work |= flush_control(now);
            if (fd_ >= 0 && state_ == SenderState::Handshake && now >= deadline_ns_) {
                char msg[256];
                const auto why = detail::format_into(
                    msg,
                    "handshake with collector {} timed out after {} ms: is that port a "
                    "sluice-collector, and is it running (not stopped)?",
                    peer_, cfg_.timeout_ms);
                fail(now, why, true);
                return true;
            }
            return work;
        }
        case SenderState::Streaming:
            break;
    }

    bool work = false;
    if (ctl_len_ && !flush_control(now)) return fd_ < 0;
    if (fd_ < 0) return true;
    if (rtx_.unsent() > 0 && now >= next_send_ns_) work |= send_frames(now);
    if (fd_ < 0) return true;

    // ACKs (and zerocopy completions) at most every kReadIntervalNs, sooner
    // when the retransmit buffer is full and only an ACK can free it.
    if (now >= next_read_ns_ || rtx_.full()) {
        next_read_ns_ = now + kReadIntervalNs;
        work |= read_messages(now);
        if (fd_ < 0) return true;
        if (zerocopy_ || zc_calls_) work |= read_zerocopy_completions();
    }

    // The collector acknowledged everything sent so far: nothing to wait for
    // unless a heartbeat is out.
    if (rtx_.unacknowledged() == rtx_.unsent() && !heartbeat_out_) awaiting_answer_ = false;

    if (cfg_.heartbeat_ms && !heartbeat_out_ && rtx_.unsent() == 0 && !rtx_.partially_sent() &&
        now - last_tx_ns_ >= uint64_t{cfg_.heartbeat_ms} * 1'000'000) {
        std::array<std::byte, kMaxMessageSize> buf;
        queue_control({buf.data(), encode(Heartbeat{++heartbeats_}, buf)});
        stats_.heartbeats_sent.inc();
        heartbeat_out_ = true;
        if (!awaiting_answer_) {
            awaiting_answer_ = true;
            last_rx_ns_ = now;
        }
        flush_control(now);
        if (fd_ < 0) return true;
        work = true;
    }

    if (awaiting_answer_ && now - last_rx_ns_ >= uint64_t{cfg_.timeout_ms} * 1'000'000) {
        char msg[256];
        const auto why =
            detail::format_into(msg,
                                "collector {} sent no acknowledgement for {} ms: "
                                "reconnecting (is it stopped, overloaded, or is its disk "
                                "stalled?)",
                                peer_, cfg_.timeout_ms);
        fail(now, why, true);
        return true;
    }
    return work;
}

}  // namespace sluice::tcp
