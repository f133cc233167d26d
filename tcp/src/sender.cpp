#include "sluice/tcp/sender.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tls_channel.hpp"
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/session/detail/text.hpp"
#include "sluice/session/key.hpp"

namespace sluice::tcp {
namespace {

using session::detail::format_into;

// ACKs are read at most this often while streaming: a recv() per poll() would
// cost a syscall per loop turn for nothing most of the time.
constexpr uint64_t kReadIntervalNs = 20'000;
// After the socket refused more bytes (EAGAIN), the next try waits this long.
constexpr uint64_t kSendRetryNs = 5'000;

session::SenderSettings settings_of(const SenderConfig& c) {
    if (c.port == 0) throw std::invalid_argument("sender: port 0 is not a collector port");
    session::SenderSettings s;
    s.peer = session::Endpoint{c.host, c.port}.to_string();
    s.stream_id = c.stream_id;
    s.key = c.key;
    s.reconnect_min_ms = c.reconnect_min_ms;
    s.reconnect_max_ms = c.reconnect_max_ms;
    s.heartbeat_ms = c.heartbeat_ms;
    s.timeout_ms = c.timeout_ms;
    s.retransmit_frames = c.retransmit_frames;
    s.session_id = c.session_id;
    s.jitter_seed = c.jitter_seed;
    return s;
}

}  // namespace

TcpSender::TcpSender(const SenderConfig& config)
    : cfg_(config),
      addr_(session::resolve(session::Endpoint{cfg_.host, cfg_.port})),
      core_(settings_of(cfg_), *this) {
    tls_setup();
}

TcpSender::~TcpSender() {
    drop_connection();
}

void TcpSender::reset_connection_state() {
    core_.frames().zerocopy_forget();
    rx_len_ = ctl_len_ = ctl_off_ = 0;
    connected_ = handshake_challenged_ = false;
    zc_calls_ = 0;
    tls_.reset();
}

void TcpSender::drop_connection() {
    if (fd_ >= 0) {
        // Reset rather than close: the peer learns at once, and the kernel
        // drops queued data (and any MSG_ZEROCOPY page references) right away.
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        ::close(fd_);
        fd_ = -1;
    }
    reset_connection_state();
}

void TcpSender::close_connection() {
    if (fd_ >= 0 && zc_calls_ && core_.frames().unacknowledged() > 0) {
        drop_connection();  // a reset: queued zerocopy pages must not outlive the call
        return;
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    reset_connection_state();
}

void TcpSender::begin_connect(session::SenderCore& core, uint64_t now) {
    char msg[256];
    const std::string& peer = core.settings().peer;
    fd_ = ::socket(addr_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        core.fail(now,
                  format_into(msg, "socket() for collector {}: {}", peer, std::strerror(errno)));
        return;
    }
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
        core.fail(now, format_into(msg,
                                   "connect to collector {} failed: {}; is sluice-collector "
                                   "running and listening there?",
                                   peer, std::strerror(e)));
    }
}

bool TcpSender::check_connected(uint64_t now) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, 0) <= 0) return false;  // the core times the attempt out
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        char msg[256];
        core_.fail(now, format_into(msg,
                                    "connect to collector {} failed: {}; is sluice-collector "
                                    "running and listening there?",
                                    core_.settings().peer, std::strerror(err)));
        return true;
    }
    // The collector speaks first (CHALLENGE).
    connected_ = true;
    core_.handshaking(now);
    tls_begin(now);
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
        const ssize_t n = io_send(ctl_.data() + ctl_off_, ctl_len_ - ctl_off_);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
            char msg[256];
            core_.fail(now, format_into(msg, "connection to collector {} lost: {}",
                                        core_.settings().peer, io_error(errno)));
            return false;
        }
        ctl_off_ += static_cast<std::size_t>(n);
        core_.sent_control(now, static_cast<std::size_t>(n));
    }
    ctl_off_ = ctl_len_ = 0;
    return true;
}

void TcpSender::send_reject(session::RejectReason reason, std::string_view text) {
    // Best effort, once: the connection ends right after, whatever happens.
    if (fd_ < 0) return;
    std::array<std::byte, kMaxMessageSize> buf;
    const std::size_t n = encode(Reject{reason, text}, buf);
    if (ctl_off_ == ctl_len_) io_send(buf.data(), n);
}

void TcpSender::handle_challenge(uint64_t now, std::span<const std::byte> body) {
    Challenge c;
    if (!decode(body, c)) {
        core_.fail(now, "malformed CHALLENGE from the collector: is that port a sluice-collector?");
        return;
    }
    server_nonce_ = c.nonce;
    const session::Hello s = core_.hello();
    Hello h;
    h.flags = (s.has_key ? hello_flag::kHasKey : 0) | (s.resume ? hello_flag::kResume : 0);
    h.heartbeat_ms = s.heartbeat_ms;
    h.stream_id = s.stream_id;
    h.session_id = s.session_id;
    if (s.position.known) {
        h.flags |= hello_flag::kHasPosition;
        h.next_sequence = s.position.sequence;
        h.next_packet_index = s.position.packet_index;
    }
    if (!session::random_bytes(h.nonce)) {
        core_.fail(now, "the system's random generator failed; cannot authenticate");
        return;
    }
    hello_signed_ = hello_signed_bytes(h);
    resuming_ = s.resume;
    if (resuming_) {
        resume_secret_ = s.secret;
        h.proof = resume_proof(resume_secret_, server_nonce_, hello_signed_);
    } else {
        h.proof = hello_proof(core_.settings().key, server_nonce_, hello_signed_);
    }
    std::array<std::byte, kMaxMessageSize> buf;
    queue_control({buf.data(), encode(h, buf)});
    handshake_challenged_ = true;
}

void TcpSender::handle_welcome(uint64_t now, std::span<const std::byte> body) {
    Welcome w;
    if (!decode(body, w)) {
        core_.fail(now, "malformed WELCOME from the collector");
        return;
    }
    // A resumed session's collector proves the session's secret, a new
    // one's the key.
    const std::span<const std::byte> proved =
        resuming_ ? std::span<const std::byte>(resume_secret_)
                  : std::span<const std::byte>(core_.settings().key);
    if (!session::proofs_equal(w.proof, welcome_proof(proved, hello_signed_, server_nonce_,
                                                      welcome_signed_bytes(w)))) {
        send_reject(RejectReason::AuthFailed,
                    "the collector did not prove the key: its key differs from this sender's");
        char msg[256];
        core_.fail(now, format_into(msg,
                                    "collector {} did not prove it holds the key: its "
                                    "--key-file differs from egress.key_file (or it is not the "
                                    "collector you configured)",
                                    core_.settings().peer));
        return;
    }
    if (!resuming_)
        core_.established(session_secret(core_.settings().key, server_nonce_, hello_signed_));
    core_.welcomed(now, w.resume_sequence);
}

bool TcpSender::read_messages(uint64_t now) {
    bool work = false;
    const std::string& peer = core_.settings().peer;
    for (;;) {
        if (rx_len_ == rx_.size()) break;  // cannot happen: messages are consumed as they come
        const ssize_t n = io_recv(rx_.data() + rx_len_, rx_.size() - rx_len_);
        if (n == 0) {
            char msg[256];
            core_.fail(now, format_into(msg, "collector {} closed the connection{}", peer,
                                        core_.state() == SenderState::Streaming
                                            ? " (stopped or restarted?)"
                                            : " during the handshake (see its log)"));
            return true;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            char msg[256];
            core_.fail(now, format_into(msg, "connection to collector {} lost: {}", peer,
                                        io_error(errno)));
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
                const auto why = format_into(
                    msg,
                    "the collector speaks transport version {}, this sender speaks {}: run the "
                    "same sluice release on both ends",
                    m.header.version, kTransportVersion);
                send_reject(RejectReason::Version, why);
                core_.fail(now, why);
                return true;
            }
            if (m.status != MessageStatus::Ok) {
                char msg[320];
                core_.fail(now,
                           format_into(msg, "from collector {}: {}", peer, to_string(m.status)));
                return true;
            }
            off += m.size;
            core_.heard(now);
            const MessageType t = m.header.type;
            const SenderState state = core_.state();
            if (t == MessageType::Reject) {
                Reject rj;
                if (!decode(m.body, rj)) {
                    core_.fail(now, "malformed REJECT from the collector");
                    return true;
                }
                core_.rejected(now, rj.reason, rj.text);
                return true;
            }
            if (state == SenderState::Handshake && !handshake_challenged_ &&
                t == MessageType::Challenge) {
                handle_challenge(now, m.body);
            } else if (state == SenderState::Handshake && handshake_challenged_ &&
                       t == MessageType::Welcome) {
                handle_welcome(now, m.body);
            } else if (state == SenderState::Streaming && t == MessageType::Ack) {
                Ack a;
                decode(m.body, a);
                if (!core_.acknowledged(now, a.next_sequence)) return true;
            } else {
                char msg[256];
                core_.fail(now, format_into(msg,
                                            "unexpected control message type {} from collector "
                                            "{} in state {}",
                                            static_cast<int>(t), peer, to_string(state)));
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
            core_.frames().zerocopy_done(err.ee_data + 1);
            if (err.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
                tcp_stats_.zerocopy_copied.add(err.ee_data - err.ee_info + 1);
            work = true;
        }
    }
    return work;
}

bool TcpSender::send_frames(uint64_t now) {
    bool work = false;
    session::RetransmitBuffer& rtx = core_.frames();
    while (rtx.unsent() > 0) {
        const int n = rtx.fill_iov(iov_.data(), kMaxIov);
        std::size_t total = 0;
        for (int i = 0; i < n; ++i)
            total += iov_[i].iov_len;
        msghdr msg{};
        msg.msg_iov = iov_.data();
        msg.msg_iovlen = static_cast<std::size_t>(n);
        const bool zc = zerocopy_ && total >= cfg_.zerocopy_min_bytes;
        const ssize_t sent = io_sendmsg(msg, MSG_NOSIGNAL | MSG_DONTWAIT | (zc ? MSG_ZEROCOPY : 0));
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
            core_.fail(now, format_into(m, "connection to collector {} lost: {}",
                                        core_.settings().peer, io_error(errno)));
            return true;
        }
        uint32_t zc_id = 0;
        if (zc) {
            zc_id = ++zc_calls_;  // the kernel numbers them from 0: id = kernel's + 1
            tcp_stats_.zerocopy_sends.inc();
        }
        core_.sent(now, static_cast<std::size_t>(sent),
                   rtx.advance(static_cast<std::size_t>(sent), zc_id));
        work = true;
        if (static_cast<std::size_t>(sent) < total) {  // the socket buffer is full
            next_send_ns_ = now + kSendRetryNs;
            break;
        }
    }
    return work;
}

bool TcpSender::poll_setup(session::SenderCore& core, uint64_t now) {
    (void)core;
    if (!connected_) return check_connected(now);
    if (tls_ && !tls_->established()) return tls_handshake(now);
    bool work = read_messages(now);
    if (fd_ >= 0 && ctl_len_) work |= flush_control(now);
    if (fd_ >= 0) work |= tls_flush(now);
    return work;
}

bool TcpSender::poll_stream(session::SenderCore& core, uint64_t now) {
    session::RetransmitBuffer& rtx = core.frames();
    bool work = tls_flush(now);
    if (fd_ < 0) return true;
    if (ctl_len_ && !flush_control(now)) return fd_ < 0;
    if (fd_ < 0) return true;
    if (rtx.unsent() > 0 && now >= next_send_ns_) work |= send_frames(now);
    if (fd_ < 0) return true;
    // ACKs (and zerocopy completions) at most every kReadIntervalNs, sooner
    // when the retransmit buffer is full and only an ACK can free it.
    if (now >= next_read_ns_ || rtx.full()) {
        next_read_ns_ = now + kReadIntervalNs;
        work |= read_messages(now);
        if (fd_ < 0) return true;
        if (zerocopy_ || zc_calls_) work |= read_zerocopy_completions();
    }
    return work;
}

bool TcpSender::heartbeat(session::SenderCore& core, uint64_t now, uint64_t counter) {
    (void)core;
    std::array<std::byte, kMaxMessageSize> buf;
    queue_control({buf.data(), encode(Heartbeat{counter}, buf)});
    flush_control(now);
    return true;
}

}  // namespace sluice::tcp
