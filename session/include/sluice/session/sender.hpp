// SenderCore: one frame stream to one collector, whatever carries it. It owns
// what both transports share: the retransmit buffer, the connection state
// machine (wait with backoff, connect, handshake, stream), the handshake's
// content and its verdicts, acknowledgements and their checks, heartbeats,
// timeouts, and the counters. A SenderTransport only moves bytes: TCP
// (tcp::TcpSender) and RDMA (rdma::RdmaSender) each implement one, and a
// fake one tests the logic here without sockets (tests/session).
//
// Single-threaded, polled by the egress lcore. Streaming (submit, poll,
// reclaim) never allocates, locks or throws; one virtual call per poll into
// the transport, never one per frame. Stats may be read from any thread.
//
// The owner's loop:
//
//   for (;;) {
//       if (have a sealed frame f with sequence s, buffer b)
//           if (core.submit(f, s, b) == SubmitResult::Full) apply the overflow policy;
//       core.poll(now_ns());
//       void* done[32];
//       for (size_t i = 0, n = core.reclaim(done); i < n; ++i) return done[i] to the pool;
//   }
//
// A submitted frame stays where it is (never copied) until reclaim() returns
// its cookie: the collector has written it, or a resume point said so.
// Sequences increase by one per frame built, dropped frames included, so the
// collector sees every drop as a gap (docs/wire-protocol.md).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/lockfree/counter.hpp"
#include "sluice/session/backoff.hpp"
#include "sluice/session/error_text.hpp"
#include "sluice/session/hello.hpp"
#include "sluice/session/reject.hpp"
#include "sluice/session/retransmit.hpp"

namespace sluice::session {

struct SenderSettings {
    std::string peer;  // the collector as the operator wrote it ("host:port"), for messages
    uint64_t stream_id = 1;
    std::vector<std::byte> key;  // pre-shared key (read_key_file); empty: none
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 5000;
    uint32_t heartbeat_ms = 1000;  // on an idle connection; 0: none (or the transport has none)
    uint32_t timeout_ms = 5000;    // connect, handshake, or an acknowledgement: reconnect after
    uint32_t retransmit_frames = 48;
    uint64_t session_id = 0;   // 0: random (a new sender instance is a new session)
    uint64_t jitter_seed = 0;  // 0: random; tests fix it
};

// Throws std::invalid_argument naming the setting and its range.
void validate(const SenderSettings& s);

enum class SubmitResult : uint8_t {
    Accepted,  // kept until acknowledged
    Full,      // retransmit_frames frames are held: nothing kept, apply the overflow policy
};

enum class SenderState : uint8_t {
    Waiting,     // backing off before the next attempt (or before the first)
    Connecting,  // the transport is setting up a connection
    Handshake,   // connected; proving the key, learning where to resume
    Streaming,   // sending frames
};
std::string_view to_string(SenderState s);

#define SLUICE_SENDER_COUNTERS(_)                                                                \
    _(frames_submitted, "Frames accepted by submit().")                                          \
    _(submit_full,                                                                               \
      "submit() calls refused because retransmit_frames frames were held: the "                  \
      "collector or the link is slower than capture, or the collector is down. "                 \
      "Raise egress.retransmit_frames to ride out longer outages.")                              \
    _(frames_sent, "Frames sent completely (retransmissions included).")                         \
    _(bytes_sent, "Bytes sent (frames and control messages).")                                   \
    _(frames_acknowledged, "Frames the collector confirmed written (by ACK or resume point).")   \
    _(frames_retransmitted,                                                                      \
      "Frames sent again on a new connection because the collector had "                         \
      "not acknowledged them.")                                                                  \
    _(connects, "Connections that completed the handshake.")                                     \
    _(disconnects, "Established connections lost (reset, closed, timed out, rejected).")         \
    _(connect_failures, "Attempts that did not reach streaming (refused, timed out, rejected).") \
    _(timeouts, "Connections dropped because the collector did not answer within timeout_ms.")   \
    _(rejected_by_collector,                                                                     \
      "Connections the collector refused or ended with a reason (see last_error: wrong key, "    \
      "busy, storage, ...).")                                                                    \
    _(heartbeats_sent, "Heartbeats sent on an idle connection.")                                 \
    _(resumes_refused,                                                                           \
      "Reconnections whose session the collector could not resume (its state was reset, or "     \
      "another session took the stream): the sender started a new session at once, resending "   \
      "every frame not yet acknowledged.")                                                       \
    _(errors, "Errors recorded in last_error (each connection failure or loss is one).")

struct alignas(64) SenderStats {
    SLUICE_SENDER_COUNTERS(SLUICE_COUNTER_DECLARE)
    std::atomic<uint8_t> state{0};  // SenderState; relaxed, a status display
    std::atomic<bool> connected{false};
    ErrorText last_error;  // the latest failure, in words an operator can act on

    static constexpr std::array info{SLUICE_SENDER_COUNTERS(SLUICE_COUNTER_INFO)};
    std::array<uint64_t, info.size()> snapshot() const {
        return {SLUICE_SENDER_COUNTERS(SLUICE_COUNTER_GET)};
    }
};

class SenderCore;

// What a transport does for SenderCore. Called only from SenderCore's
// methods, on the owner's thread; each call reports back through the core
// (handshaking, welcomed, acknowledged, sent, rejected, fail).
class SenderTransport {
  public:
    virtual ~SenderTransport() = default;
    // Begins a connection attempt (the core is Connecting). Failing at once
    // is core.fail().
    virtual void begin_connect(SenderCore& core, uint64_t now) = 0;
    // Connecting or Handshake: drives the set-up and the handshake, which
    // ends in core.welcomed() or core.fail()/core.rejected(). True if it did
    // any work.
    virtual bool poll_setup(SenderCore& core, uint64_t now) = 0;
    // Streaming: sends what may be sent of core.frames() (reporting each
    // advance with core.sent()) and reads what the collector says
    // (core.acknowledged(), core.rejected()). True if it did any work.
    virtual bool poll_stream(SenderCore& core, uint64_t now) = 0;
    // Streaming and idle: sends a heartbeat, which the collector answers with
    // an acknowledgement. False when this transport has none.
    virtual bool heartbeat(SenderCore& core, uint64_t now, uint64_t counter) {
        (void)core, (void)now, (void)counter;
        return false;
    }
    // Tells the collector why this end gives up on the connection (best
    // effort, once: the connection is dropped right after).
    virtual void send_reject(RejectReason reason, std::string_view text) {
        (void)reason, (void)text;
    }
    // The connection failed: release it now, whatever state it is in.
    virtual void drop_connection() = 0;
    // The end of the stream: close the connection cleanly.
    virtual void close_connection() = 0;
};

class SenderCore {
  public:
    // Validates the settings (std::invalid_argument). The transport must
    // outlive the core.
    SenderCore(const SenderSettings& settings, SenderTransport& transport);
    SenderCore(const SenderCore&) = delete;
    SenderCore& operator=(const SenderCore&) = delete;

    // ---- the owner's side --------------------------------------------------------
    // Queues a sealed frame carrying `sequence` in its header; sequences must
    // increase. Cost: a slot store.
    SubmitResult submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie);
    // Drives everything: backoff, connection, handshake, sending, ACKs,
    // heartbeats, timeouts, replay after a reconnect. `now`: a monotonic
    // clock in ns (tests inject their own). True if it did any work.
    bool poll(uint64_t now);
    // Cookies of acknowledged frames, oldest first; returns how many.
    std::size_t reclaim(std::span<void*> out) { return rtx_.reclaim(out); }
    // Every submitted frame is acknowledged. Any thread.
    bool all_acknowledged() const {
        return stats_.frames_acknowledged.get() == stats_.frames_submitted.get();
    }
    std::size_t held() const { return rtx_.held(); }  // the owning thread
    // Ends the connection now and records `why` as an error (tests; an
    // operator's "reconnect"). poll() reconnects after the backoff.
    void disconnect(uint64_t now, std::string_view why);
    // Closes the connection cleanly at shutdown (once all_acknowledged() or
    // the wait for it timed out); no reconnection follows.
    void close();

    const SenderStats& stats() const { return stats_; }
    SenderState state() const { return state_; }
    const SenderSettings& settings() const { return set_; }
    uint64_t session_id() const { return session_id_; }
    uint64_t next_attempt_ns() const { return next_attempt_ns_; }  // state Waiting

    // ---- the transport's side ------------------------------------------------------
    RetransmitBuffer& frames() { return rtx_; }
    const RetransmitBuffer& frames() const { return rtx_; }
    // What this sender says in its handshake: stream, session, where the
    // collector should resume (the oldest unacknowledged frame), heartbeat.
    Hello hello() const;
    // The transport's connection is up and the handshake begins: the
    // handshake gets its own timeout_ms.
    void handshaking(uint64_t now);
    // The collector proved the key and resumes at `resume_sequence`:
    // everything below is written, whatever connection carried it.
    void welcomed(uint64_t now, uint64_t resume_sequence);
    // The collector started a new session for a hello without `resume`:
    // `secret` is what this sender proves to resume it on later
    // connections (the transport derives it from the handshake). Call
    // before welcomed().
    void established(const SessionSecret& secret) {
        secret_ = secret;
        has_secret_ = true;
    }
    // A cumulative acknowledgement while streaming. An acknowledgement of a
    // frame never sent on this connection is a broken collector: the
    // connection fails and false is returned.
    bool acknowledged(uint64_t now, uint64_t next_sequence);
    // Anything arrived from the collector (the acknowledgement timer restarts).
    void heard(uint64_t now) { last_rx_ns_ = now; }
    // `bytes` more went out, completing `advance` frames.
    void sent(uint64_t now, std::size_t bytes, const RetransmitBuffer::Advance& advance);
    // Control bytes went out (handshake, heartbeats).
    void sent_control(uint64_t now, std::size_t bytes);
    // The collector refused or ended the connection with a reason; its text
    // is shown with unprintable bytes replaced.
    void rejected(uint64_t now, RejectReason reason, std::string_view text);
    // The connection failed (`message` says why and what to check).
    void fail(uint64_t now, std::string_view message, bool timeout = false);

  private:
    void set_state(SenderState s);
    void record_error(std::string_view text);
    // How long a connection must stay up, without progress, before the
    // backoff starts over.
    uint64_t settle_ns() const;

    SenderSettings set_;
    SenderTransport& transport_;
    uint64_t session_id_;
    RetransmitBuffer rtx_;
    Backoff backoff_;
    SenderStats stats_;

    SenderState state_ = SenderState::Waiting;
    uint64_t next_attempt_ns_ = 0;
    uint64_t deadline_ns_ = 0;  // connect or handshake must finish by then
    uint64_t last_rx_ns_ = 0;   // last message from the collector
    uint64_t last_tx_ns_ = 0;   // last bytes sent
    uint64_t streaming_since_ns_ = 0;
    uint64_t ack_limit_ = 0;        // acknowledgements above this are of frames never sent
    bool awaiting_answer_ = false;  // frames sent unacknowledged, or a heartbeat out
    bool heartbeat_out_ = false;
    bool closed_ = false;
    uint64_t heartbeats_ = 0;
    bool has_secret_ = false;  // a session to resume
    SessionSecret secret_{};
};

}  // namespace sluice::session
