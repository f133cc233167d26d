// The TCP listener's TLS byte channel: accepting the handshake within a
// grace, reading and writing through it, and its failures as close causes.
#include "listener_impl.hpp"

namespace sluice::tcp {
namespace {

using namespace listener_detail;

}  // namespace

// ---- TLS: the byte channel under the messages --------------------------------

namespace {

constexpr std::size_t kTlsListenerBuffer = 64 * 1024;  // encrypted replies waiting for the socket
constexpr uint32_t kTlsGraceMs = 1000;  // a sender with TLS starts its handshake at once

}  // namespace

ssize_t TcpListener::Impl::io_send(Connection& c, const void* buf, std::size_t len) {
    // Before the peer started TLS the socket is still plaintext: a REJECT
    // (busy; no TLS handshake in time) reaches a sender without TLS.
    if (!c.tls || !c.tls->started()) return ::send(c.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    // In the middle of the handshake nothing can be said: the connection ends.
    if (!c.tls->established()) return static_cast<ssize_t>(len);
    return c.tls->send(buf, len);
}

ssize_t TcpListener::Impl::io_recv(Connection& c, void* buf, std::size_t len) {
    return c.tls ? c.tls->recv(buf, len) : ::recv(c.fd, buf, len, MSG_DONTWAIT);
}

const char* TcpListener::Impl::io_error(const Connection& c, int err) const {
    return c.tls ? c.tls->error_text(err) : std::strerror(err);
}

bool TcpListener::Impl::tls_accept(Connection& c) {
    try {
        c.tls_ctx = tls_ctx;
        c.tls = std::make_unique<TlsChannel>(*c.tls_ctx, c.fd, "", kTlsListenerBuffer);
    } catch (const std::exception& e) {
        close(c, CloseCause::Resources, fmt::format("{}: {}", c.name(), e.what()));
        return false;
    }
    c.in.reserve(4096);
    return true;
}

void TcpListener::Impl::tls_want_write(Connection& c, bool on) {
    if (c.want_write == on) return;
    c.want_write = on;
    arm(c);
}

// Drives the TLS handshake; true once it is done and the CHALLENGE is out.
bool TcpListener::Impl::tls_handshake(Connection& c) {
    switch (c.tls->handshake()) {
        case TlsChannel::Progress::Again:
            tls_want_write(c, c.tls->wants_write() || c.out.size() > c.out_off);
            return false;
        case TlsChannel::Progress::Done: {
            tls_stats.tls_handshakes.inc();
            if (c.tls->kernel_send()) tls_stats.tls_kernel_send.inc();
            if (c.tls->kernel_recv()) tls_stats.tls_kernel_recv.inc();
            if (!c.tls->kernel_send() || !c.tls->kernel_recv()) tls_stats.tls_user_space.inc();
            session::Nonce nonce;
            if (!session::random_bytes(nonce)) {
                close(c, CloseCause::Resources,
                      fmt::format("{}: the system's random generator failed", c.name()));
                return false;
            }
            send(c, c.session.challenge(nonce));
            return !c.closed;
        }
        case TlsChannel::Progress::Failed:
            break;
    }
    const std::string why(c.tls->error());
    switch (c.tls->failure()) {
        case TlsChannel::Failure::Io:
            close(c, CloseCause::PeerClosed, fmt::format("{}: {}", c.name(), why));
            break;
        case TlsChannel::Failure::NotTls:
            reject(c, RejectReason::Protocol, CloseCause::Protocol, why);
            break;
        case TlsChannel::Failure::Plaintext:
            tls_stats.tls_failures.inc();
            reject(c, RejectReason::Protocol, CloseCause::Tls, why);
            break;
        default:
            tls_stats.tls_failures.inc();
            close(c, CloseCause::Tls,
                  fmt::format("{}: TLS handshake failed: {}; connection dropped", c.name(), why));
            break;
    }
    return false;
}

// Before the plaintext replies: the handshake, or encrypted bytes the
// socket did not take. True when the replies may follow.
bool TcpListener::Impl::tls_flush(Connection& c) {
    if (!c.tls->established()) return tls_handshake(c);
    if (c.tls->flush()) return true;
    if (errno != EAGAIN) {
        close(c, CloseCause::PeerClosed,
              fmt::format("{}: connection lost: {}", c.name(), c.tls->error_text(errno)));
    }
    return false;
}

// A connection whose peer started no TLS handshake within the grace: a
// sender without TLS, which waits for a CHALLENGE that never comes. It is
// told so in plaintext.
void TcpListener::Impl::tls_grace(uint64_t now) {
    if (!tls_ctx) return;
    const uint32_t grace_ms = std::min(kTlsGraceMs, cfg.handshake_timeout_ms);
    for (auto& [id, cp] : conns) {
        Connection& c = *cp;
        if (c.closed || !c.tls || c.tls->started() ||
            now - c.accepted_ns < uint64_t{grace_ms} * 1'000'000)
            continue;
        tls_stats.tls_failures.inc();
        reject(c, RejectReason::Protocol, CloseCause::Tls,
               fmt::format("no TLS handshake within {} ms, and this collector requires TLS "
                           "(--tls-cert): give the sender egress.tls_ca (sluice-send --tls-ca)",
                           grace_ms));
    }
}

}  // namespace sluice::tcp
