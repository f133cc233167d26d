// TcpSender: one frame stream to one sluice-collector over TCP, polled by the
// egress lcore. Single-threaded and non-blocking: it never locks or throws
// after construction, its only syscalls are on its socket, and streaming
// (submit, poll, reclaim) never allocates; only a handshake does, inside
// libcrypto's HMAC and random generator, once per connection. Its stats may
// be read from any thread.
//
// The caller's loop (an egress stage):
//
//   TcpSender tx(cfg);
//   for (;;) {
//       if (have a sealed frame f with sequence s, buffer b)
//           if (tx.submit(f, s, b) == SubmitResult::Full) apply the overflow policy;
//       tx.poll(now_ns());
//       void* done[32];
//       for (size_t i = 0, n = tx.reclaim(done); i < n; ++i) return done[i] to the pool;
//   }
//
//   // shutdown: stop submitting, then wait (bounded) for the last ACKs
//   while (!tx.all_acknowledged() && now_ns() < deadline) { tx.poll(now_ns()); reclaim...; }
//   tx.close();
//
// A submitted frame stays where it is (never copied) until reclaim() returns
// its cookie: the collector has written it, or a resume point said so. The
// frame's header must carry the stream id of the config and `sequence`;
// sequences increase by one per frame built, dropped frames included, so the
// collector sees every drop as a gap (docs/wire-protocol.md, "Stream
// transport").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <sys/uio.h>

#include "sluice/tcp/backoff.hpp"
#include "sluice/tcp/endpoint.hpp"
#include "sluice/tcp/protocol.hpp"
#include "sluice/tcp/retransmit.hpp"
#include "sluice/tcp/stats.hpp"

namespace sluice::tcp {

struct SenderConfig {
    std::string host = "127.0.0.1";  // name or address; resolved once, in the constructor
    uint16_t port = 7700;
    uint64_t stream_id = 1;
    std::vector<std::byte> key;  // pre-shared key (read_key_file); empty: none
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
};

enum class SubmitResult : uint8_t {
    Accepted,  // kept until acknowledged
    Full,      // retransmit_frames frames are held: nothing kept, apply the overflow policy
};

enum class SenderState : uint8_t {
    Waiting,     // backing off before the next attempt (or before the first)
    Connecting,  // TCP connect in progress
    Handshake,   // connected, CHALLENGE/HELLO/WELCOME in progress
    Streaming,   // sending frames
};
std::string_view to_string(SenderState s);

#define SLUICE_SENDER_COUNTERS(_)                                                                \
    _(frames_submitted, "Frames accepted by submit().")                                          \
    _(submit_full,                                                                               \
      "submit() calls refused because retransmit_frames frames were held: the "                  \
      "collector or the link is slower than capture, or the collector is down. "                 \
      "Raise egress.retransmit_frames to ride out longer outages.")                              \
    _(frames_sent, "Frames written to the socket completely (retransmissions included).")        \
    _(bytes_sent, "Bytes written to the socket (frames and control messages).")                  \
    _(frames_acknowledged, "Frames the collector confirmed written (by ACK or resume point).")   \
    _(frames_retransmitted,                                                                      \
      "Frames sent again on a new connection because the collector had "                         \
      "not acknowledged them.")                                                                  \
    _(connects, "Connections that completed the handshake.")                                     \
    _(disconnects, "Established connections lost (reset, closed, timed out, rejected).")         \
    _(connect_failures, "Attempts that did not reach streaming (refused, timed out, rejected).") \
    _(timeouts, "Connections dropped because the collector did not answer within timeout_ms.")   \
    _(heartbeats_sent, "Heartbeats sent on an idle connection.")                                 \
    _(errors, "Errors recorded in last_error (each connection failure or loss is one).")         \
    _(zerocopy_sends, "sendmsg calls with MSG_ZEROCOPY.")                                        \
    _(zerocopy_copied,                                                                           \
      "MSG_ZEROCOPY sends the kernel completed by copying anyway (loopback, "                    \
      "or a NIC without scatter-gather): zerocopy gains nothing here, turn it "                  \
      "off.")

struct alignas(64) SenderStats {
#define SLUICE_DECLARE(name, desc) Counter name;
    SLUICE_SENDER_COUNTERS(SLUICE_DECLARE)
#undef SLUICE_DECLARE
    std::atomic<uint8_t> state{0};  // SenderState; relaxed, a status display
    std::atomic<bool> connected{false};
    ErrorText last_error;  // the latest failure, in words an operator can act on

    static constexpr std::array info{
#define SLUICE_INFO(name, desc) CounterInfo{#name, desc},
        SLUICE_SENDER_COUNTERS(SLUICE_INFO)
#undef SLUICE_INFO
    };
    std::array<uint64_t, info.size()> snapshot() const {
        return {
#define SLUICE_GET(name, desc) name.get(),
            SLUICE_SENDER_COUNTERS(SLUICE_GET)
#undef SLUICE_GET
        };
    }
};

class TcpSender {
  public:
    // Validates the configuration and resolves the host (may block on DNS).
    // Throws std::invalid_argument or std::runtime_error with the fix.
    explicit TcpSender(const SenderConfig& config);
    ~TcpSender();
    TcpSender(const TcpSender&) = delete;
    TcpSender& operator=(const TcpSender&) = delete;

    // Queues a sealed frame (FrameEncoder::seal) carrying `sequence` in its
    // header; sequences must increase. Cost: a slot store; no syscall.
    SubmitResult submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie);

    // Drives everything: connect and back off, handshake, send as much as the
    // socket takes (writev of whole frames, partial writes resumed), read
    // ACKs, heartbeats, timeouts, replay after a reconnect. `now_ns`: a
    // monotonic clock (monotonic_ns(); tests inject their own). True if it
    // did any work.
    bool poll(uint64_t now_ns);

    // Cookies of acknowledged frames, oldest first; returns how many.
    std::size_t reclaim(std::span<void*> out);

    // Every submitted frame is acknowledged. Meant for shutdown, once the
    // caller stopped submitting; any thread.
    bool all_acknowledged() const {
        return stats_.frames_acknowledged.get() == stats_.frames_submitted.get();
    }
    // Frames held (submitted and not reclaimed); the owning thread.
    std::size_t held() const { return rtx_.held(); }

    const SenderStats& stats() const { return stats_; }
    SenderState state() const { return state_; }
    const SenderConfig& config() const { return cfg_; }
    // When the next connection attempt happens (state Waiting); tests.
    uint64_t next_attempt_ns() const { return next_attempt_ns_; }
    // For a caller that shares its core and would rather sleep than spin
    // when poll() finds nothing to do: the socket (-1 while none) and
    // whether the sender waits for it to take more bytes (POLLOUT) besides
    // ACKs (POLLIN). An egress lcore of its own just keeps polling.
    int socket_fd() const { return fd_; }
    bool wants_to_send() const { return ctl_len_ > ctl_off_ || rtx_.unsent() > 0; }
    uint64_t session_id() const { return session_id_; }

    // Ends the connection now with a reset and records `why` as an error
    // (tests; an operator's "reconnect"). poll() reconnects after the backoff.
    void disconnect(uint64_t now_ns, std::string_view why);
    // Closes the connection cleanly (FIN): at shutdown, once
    // all_acknowledged() or the wait for it timed out. Stop polling after it.
    void close();

  private:
    void fail(uint64_t now, std::string_view message, bool timeout = false);
    void start_connect(uint64_t now);
    bool check_connected(uint64_t now);
    bool read_messages(uint64_t now);
    void handle_challenge(uint64_t now, std::span<const std::byte> body);
    void handle_welcome(uint64_t now, std::span<const std::byte> body);
    void handle_reject(uint64_t now, std::span<const std::byte> body);
    bool flush_control(uint64_t now);
    bool send_frames(uint64_t now);
    bool read_zerocopy_completions();
    void queue_control(std::span<const std::byte> msg);
    void send_reject(RejectReason reason, std::string_view text);
    void close_socket();
    void set_state(SenderState s);
    void record_error(std::string_view text);

    SenderConfig cfg_;
    ResolvedAddress addr_;
    std::string peer_;  // "host:port" for messages
    uint64_t session_id_;
    RetransmitBuffer rtx_;
    Backoff backoff_;
    SenderStats stats_;

    SenderState state_ = SenderState::Waiting;
    int fd_ = -1;
    bool handshake_challenged_ = false;  // CHALLENGE received, HELLO sent
    bool zerocopy_ = false;              // SO_ZEROCOPY took on this socket
    uint64_t next_attempt_ns_ = 0;
    uint64_t deadline_ns_ = 0;      // connect or handshake must finish by then
    uint64_t last_rx_ns_ = 0;       // last message from the collector
    uint64_t last_tx_ns_ = 0;       // last bytes written
    uint64_t next_read_ns_ = 0;     // ACK reads are spaced by kReadIntervalNs
    uint64_t next_send_ns_ = 0;     // after EAGAIN, sends wait kSendRetryNs
    bool awaiting_answer_ = false;  // frames sent unacknowledged, or a heartbeat out
    bool heartbeat_out_ = false;
    uint64_t heartbeats_ = 0;
    uint32_t zc_calls_ = 0;  // MSG_ZEROCOPY sends on this socket
    Nonce server_nonce_{};
    std::array<std::byte, kHelloSigned> hello_signed_{};

    std::array<std::byte, 4096> rx_{};
    std::size_t rx_len_ = 0;
    std::array<std::byte, 2 * kMaxMessageSize> ctl_{};
    std::size_t ctl_len_ = 0, ctl_off_ = 0;
    static constexpr int kMaxIov = 64;
    std::array<struct iovec, kMaxIov> iov_{};
};

// CLOCK_MONOTONIC in nanoseconds: what poll() expects.
uint64_t monotonic_ns();

}  // namespace sluice::tcp
