// TcpSender: one frame stream to one sluice-collector over TCP, polled by the
// egress lcore. The session logic (retransmit buffer, handshake content,
// acknowledgements, heartbeats, timeouts, backoff, counters) is
// session::SenderCore's; this file is the transport under it: a non-blocking
// socket, the CHALLENGE/HELLO/WELCOME messages and their proofs, writev of
// whole frames with partial writes resumed, ACKs read at most every 20 us,
// and optional MSG_ZEROCOPY; TLS 1.3 under it all when configured
// (tls.hpp: kernel TLS keeps writev; user-space TLS encrypts frame by frame
// into a buffer of the connection's).
//
// Single-threaded and non-blocking: it never locks or throws after
// construction, its only syscalls are on its socket, and streaming (submit,
// poll, reclaim) never allocates; only a handshake does, inside libcrypto's
// HMAC and random generator, once per connection. Stats may be read from any
// thread. The loop that drives it is session/sender.hpp's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sluice/lockfree/counter.hpp"
#include "sluice/session/endpoint.hpp"
#include "sluice/session/sender.hpp"
#include "sluice/tcp/protocol.hpp"
#include "sluice/tcp/tls.hpp"

namespace sluice::tcp {

using session::SenderState;
using session::SenderStats;
using session::SubmitResult;

struct SenderConfig {
    std::string host = "127.0.0.1";  // name or address; resolved once, in the constructor
    uint16_t port = 7700;
    uint64_t stream_id = 1;
    std::vector<std::byte> key;  // pre-shared key (session::read_key_file); empty: none
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 5000;
    uint32_t heartbeat_ms = 1000;  // on an idle connection; 0: none
    uint32_t timeout_ms = 5000;    // waiting this long for an ACK or the handshake: reconnect
    uint32_t retransmit_frames = 48;
    uint32_t sndbuf_bytes = 4u << 20;  // 0: the kernel's default
    // MSG_ZEROCOPY for sends of at least zerocopy_min_bytes. Measured slower
    // on loopback (docs/performance.md); may help on a real NIC with large
    // frames.
    bool zerocopy = false;
    uint32_t zerocopy_min_bytes = 65536;
    uint64_t session_id = 0;   // 0: random (a new sender instance is a new session)
    uint64_t jitter_seed = 0;  // 0: random; tests fix it
    // TLS 1.3 to the collector when tls.ca is set (tls.hpp); the key proof,
    // when configured, runs inside it. Not with zerocopy.
    TlsSettings tls;
};

#define SLUICE_TCP_SENDER_COUNTERS(_)                                         \
    _(zerocopy_sends, "sendmsg calls with MSG_ZEROCOPY.")                     \
    _(zerocopy_copied,                                                        \
      "MSG_ZEROCOPY sends the kernel completed by copying anyway (loopback, " \
      "or a NIC without scatter-gather): zerocopy gains nothing here, turn "  \
      "it off.")                                                              \
    SLUICE_TLS_COUNTERS(_)
SLUICE_COUNTER_BLOCK(TcpCounters, SLUICE_TCP_SENDER_COUNTERS);

class TlsContext;
class TlsChannel;

class TcpSender final : private session::SenderTransport {
  public:
    using Config = SenderConfig;
    // Validates the configuration and resolves the host (may block on DNS).
    // Throws std::invalid_argument or std::runtime_error with the fix.
    explicit TcpSender(const SenderConfig& config);
    ~TcpSender() override;
    TcpSender(const TcpSender&) = delete;
    TcpSender& operator=(const TcpSender&) = delete;

    // session::SenderCore's contract (see there).
    SubmitResult submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie) {
        return core_.submit(frame, sequence, cookie);
    }
    bool poll(uint64_t now_ns) { return core_.poll(now_ns); }
    std::size_t reclaim(std::span<void*> out) { return core_.reclaim(out); }
    bool all_acknowledged() const { return core_.all_acknowledged(); }
    std::size_t held() const { return core_.held(); }
    void disconnect(uint64_t now_ns, std::string_view why) { core_.disconnect(now_ns, why); }
    void close() { core_.close(); }

    const SenderStats& stats() const { return core_.stats(); }
    const TcpCounters& tcp_stats() const { return tcp_stats_; }
    SenderState state() const { return core_.state(); }
    const SenderConfig& config() const { return cfg_; }
    uint64_t next_attempt_ns() const { return core_.next_attempt_ns(); }
    uint64_t session_id() const { return core_.session_id(); }
    // For a caller that shares its core and would rather sleep than spin
    // when poll() finds nothing to do: the socket (-1 while none) and
    // whether the sender waits for it to take more bytes (POLLOUT) besides
    // ACKs (POLLIN). An egress lcore of its own just keeps polling.
    int socket_fd() const { return fd_; }
    bool wants_to_send() const {
        return ctl_len_ > ctl_off_ || core_.frames().unsent() > 0 || tls_backlog();
    }

  private:
    // session::SenderTransport
    void begin_connect(session::SenderCore& core, uint64_t now) override;
    bool poll_setup(session::SenderCore& core, uint64_t now) override;
    bool poll_stream(session::SenderCore& core, uint64_t now) override;
    bool heartbeat(session::SenderCore& core, uint64_t now, uint64_t counter) override;
    void send_reject(session::RejectReason reason, std::string_view text) override;
    void drop_connection() override;
    void close_connection() override;

    bool check_connected(uint64_t now);
    bool read_messages(uint64_t now);
    void handle_challenge(uint64_t now, std::span<const std::byte> body);
    void handle_welcome(uint64_t now, std::span<const std::byte> body);
    bool flush_control(uint64_t now);
    bool send_frames(uint64_t now);
    bool read_zerocopy_completions();
    void queue_control(std::span<const std::byte> msg);
    void reset_connection_state();

    // The byte channel under the messages: the socket, or TLS over it
    // (sender_tls.cpp). Each behaves as the socket call it stands for.
    void tls_setup();                  // the constructor's: checks the files, builds the context
    bool tls_begin(uint64_t now);      // the TCP connection is up: start TLS
    bool tls_handshake(uint64_t now);  // drives it; true if it did work
    bool tls_flush(uint64_t now);      // sends encrypted bytes still buffered
    bool tls_backlog() const;
    ssize_t io_recv(void* buf, std::size_t len);
    ssize_t io_send(const void* buf, std::size_t len);
    ssize_t io_sendmsg(const msghdr& msg, int flags);
    const char* io_error(int err);  // why the last io_* call failed

    SenderConfig cfg_;
    session::ResolvedAddress addr_;
    TcpCounters tcp_stats_;
    std::unique_ptr<TlsContext> tls_ctx_;  // null: no TLS
    std::unique_ptr<TlsChannel> tls_;      // this connection's, once the TCP connection is up
    session::SenderCore core_;             // after everything its transport calls use

    int fd_ = -1;
    bool connected_ = false;             // the TCP connection is up (handshake running)
    bool handshake_challenged_ = false;  // CHALLENGE received, HELLO sent
    bool zerocopy_ = false;              // SO_ZEROCOPY took on this socket
    uint64_t next_read_ns_ = 0;          // ACK reads are spaced by kReadIntervalNs
    uint64_t next_send_ns_ = 0;          // after EAGAIN, sends wait kSendRetryNs
    uint32_t zc_calls_ = 0;              // MSG_ZEROCOPY sends on this socket
    Nonce server_nonce_{};
    std::array<std::byte, kHelloSigned> hello_signed_{};
    bool resuming_ = false;  // the HELLO proved resume_secret_
    session::SessionSecret resume_secret_{};

    std::array<std::byte, 4096> rx_{};
    std::size_t rx_len_ = 0;
    std::array<std::byte, 2 * kMaxMessageSize> ctl_{};
    std::size_t ctl_len_ = 0, ctl_off_ = 0;
    static constexpr int kMaxIov = 64;
    std::array<struct iovec, kMaxIov> iov_{};
};

}  // namespace sluice::tcp
