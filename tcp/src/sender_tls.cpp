// TcpSender's byte channel: the socket itself, or TLS 1.3 over it
// (tls_channel.hpp). sender.cpp calls io_recv, io_send and io_sendmsg where
// it would call recv, send and sendmsg; everything TLS adds (the handshake
// after the TCP connect, the counters, messages that say what to change) is
// here.
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tls_channel.hpp"

#include "sluice/session/detail/text.hpp"
#include "sluice/tcp/sender.hpp"

namespace sluice::tcp {
namespace {

using session::detail::format_into;

// Encrypted bytes waiting for the socket (user-space TLS): a few frames.
constexpr std::size_t kTlsSendBuffer = 512 * 1024;

}  // namespace

void TcpSender::tls_setup() {
    if (cfg_.zerocopy && tls_enabled(cfg_.tls, TlsRole::Client)) {
        throw std::invalid_argument(
            "MSG_ZEROCOPY does not combine with TLS (the kernel encrypts into its own buffers): "
            "turn zerocopy off");
    }
    tls_ctx_ = make_tls_context(cfg_.tls, TlsRole::Client);
}

bool TcpSender::tls_begin(uint64_t now) {
    if (!tls_ctx_) return true;
    try {
        const std::string& name = cfg_.tls.server_name.empty() ? cfg_.host : cfg_.tls.server_name;
        tls_ = std::make_unique<TlsChannel>(*tls_ctx_, fd_, name, kTlsSendBuffer);
    } catch (const std::exception& e) {
        core_.fail(now, e.what());
        return false;
    }
    return true;
}

bool TcpSender::tls_handshake(uint64_t now) {
    const TlsChannel::Progress p = tls_->handshake();
    if (p == TlsChannel::Progress::Again) return false;
    if (p == TlsChannel::Progress::Done) {
        tcp_stats_.tls_handshakes.inc();
        if (tls_->kernel_send()) tcp_stats_.tls_kernel_send.inc();
        if (tls_->kernel_recv()) tcp_stats_.tls_kernel_recv.inc();
        if (!tls_->kernel_send() || !tls_->kernel_recv()) tcp_stats_.tls_user_space.inc();
        return true;
    }
    tcp_stats_.tls_failures.inc();
    char msg[256];
    const std::string_view why = format_into(msg, "TLS with collector {} failed: {}",
                                             core_.settings().peer, tls_->error_text(errno));
    if (tls_->failure() == TlsChannel::Failure::Plaintext) {
        // A collector that refused before TLS (busy; or it waited for a
        // TLS handshake too long) says why in a plaintext REJECT.
        std::array<std::byte, kMaxMessageSize> buf;
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) {
            const ParsedMessage m = parse_message({buf.data(), static_cast<std::size_t>(n)});
            Reject rj;
            if (m.status == MessageStatus::Ok && m.header.type == MessageType::Reject &&
                decode(m.body, rj)) {
                core_.rejected(now, rj.reason, rj.text);
                return true;
            }
        }
    }
    core_.fail(now, why);
    return true;
}

bool TcpSender::tls_flush(uint64_t now) {
    if (!tls_ || !tls_->backlog()) return false;
    if (tls_->flush()) return true;
    if (errno == EAGAIN) return false;
    char msg[256];
    core_.fail(now, format_into(msg, "connection to collector {} lost: {}", core_.settings().peer,
                                tls_->error_text(errno)));
    return true;
}

bool TcpSender::tls_backlog() const {
    return tls_ && tls_->backlog();
}

ssize_t TcpSender::io_recv(void* buf, std::size_t len) {
    if (!tls_) return ::recv(fd_, buf, len, MSG_DONTWAIT);
    const ssize_t n = tls_->recv(buf, len);
    // After the handshake: e.g. the collector's alert that it requires a
    // client certificate (TLS 1.3 sends it once the client is done).
    if (n < 0 && errno == EPROTO) tcp_stats_.tls_failures.inc();
    return n;
}

ssize_t TcpSender::io_send(const void* buf, std::size_t len) {
    if (!tls_) return ::send(fd_, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    return tls_->send(buf, len);
}

ssize_t TcpSender::io_sendmsg(const msghdr& msg, int flags) {
    if (!tls_) return ::sendmsg(fd_, &msg, flags);
    return tls_->sendv(msg.msg_iov, static_cast<int>(msg.msg_iovlen));
}

const char* TcpSender::io_error(int err) {
    return tls_ ? tls_->error_text(err) : std::strerror(err);
}

}  // namespace sluice::tcp
