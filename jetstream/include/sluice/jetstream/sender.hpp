// JetStreamSender: one frame stream published to a NATS JetStream stream,
// polled by the egress lcore like TcpSender and RdmaSender. The session logic
// (retransmit buffer, state machine, backoff, timeouts, counters) is
// session::SenderCore's; this is the transport under it:
//
//   connect      a NATS connection to any server of the cluster (on a helper
//                thread: the library blocks), the JetStream stream created or
//                checked (StreamSpec), the server's max_payload checked
//   handshake    none: the "welcome" resumes at this sender's own oldest
//                frame not yet stored, since JetStream keeps no per-sender
//                position; a replay is recognised by its message id
//   stream       each frame becomes one message (the frame bytes unchanged,
//                two headers: frame_tag.hpp) published asynchronously; a
//                frame is released only when JetStream acknowledges storing
//                it (on its replicas), in whatever order acknowledgements come
//   failure      a refused or unacknowledged publish, or a broken connection,
//                ends the connection; the core backs off, and every frame not
//                yet stored is published again on a new one
//
// Per frame the NATS client allocates a message and copies the frame into
// it, and takes its connection lock; its threads deliver the publish
// acknowledgements, which reach the owner's thread through a lock-free ring.
// Nothing else here allocates or locks after construction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "sluice/jetstream/client.hpp"
#include "sluice/jetstream/stream_spec.hpp"
#include "sluice/lockfree/counter.hpp"
#include "sluice/lockfree/mpsc_ring.hpp"
#include "sluice/session/error_text.hpp"
#include "sluice/session/sender.hpp"

namespace sluice::jetstream {

using session::SenderState;
using session::SenderStats;
using session::SubmitResult;

struct SenderConfig {
    ClientOptions client;  // servers, credentials, TLS (timeout_ms: set from timeout_ms below)
    StreamSpec stream;
    bool create_stream = true;  // create the JetStream stream when missing (else: an error)
    uint64_t stream_id = 1;
    // The largest frame this sender publishes (sealed, header included):
    // checked against the server's max_payload when connecting. 0: unchecked.
    uint32_t max_frame_bytes = 0;
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 5000;
    // Connecting, and waiting for a publish acknowledgement: reconnect after.
    uint32_t timeout_ms = 5000;
    uint32_t retransmit_frames = 48;
    uint32_t publish_burst = 32;  // frames handed to the client per poll
    uint64_t session_id = 0;      // 0: random (a new sender instance is a new session)
    uint64_t jitter_seed = 0;     // 0: random; tests fix it
};

#define SLUICE_JETSTREAM_SENDER_COUNTERS(_)                                              \
    _(frames_published,                                                                  \
      "Frames handed to the NATS client for JetStream, replays after a reconnect "       \
      "included.")                                                                       \
    _(frames_stored,                                                                     \
      "Publish acknowledgements: JetStream stored the frame on its replicas, and the "   \
      "sender may release it.")                                                          \
    _(replays_recognised,                                                                \
      "Publish acknowledgements that said the frame was stored before (a replay of a "   \
      "frame whose first acknowledgement was lost): stored once, by its message id.")    \
    _(publish_errors,                                                                    \
      "Publishes JetStream refused or did not acknowledge within timeout_ms (no stream " \
      "leader during an election, the stream full with discard = new, a server lost). "  \
      "Each ends the connection; the frames not yet stored are published again after "   \
      "the backoff. See last_error.")                                                    \
    _(acknowledgements_lost,                                                             \
      "Publish acknowledgements that found the hand-over ring full and were dropped: "   \
      "their frames are published again after timeout_ms. Should stay 0.")
SLUICE_COUNTER_BLOCK(JetStreamCounters, SLUICE_JETSTREAM_SENDER_COUNTERS);

class JetStreamSender final : private session::SenderTransport {
  public:
    using Config = SenderConfig;
    // Validates the configuration (std::invalid_argument naming the setting);
    // connects later, from poll().
    explicit JetStreamSender(const SenderConfig& config);
    ~JetStreamSender() override;
    JetStreamSender(const JetStreamSender&) = delete;
    JetStreamSender& operator=(const JetStreamSender&) = delete;

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
    const JetStreamCounters& jetstream_stats() const { return counters_; }
    SenderState state() const { return core_.state(); }
    const SenderConfig& config() const { return cfg_; }
    uint64_t session_id() const { return core_.session_id(); }
    // "jetstream://a:4222,b:4222 stream SLUICE subject sluice.frames.7", for messages.
    const std::string& peer() const { return peer_; }

    // One acknowledgement (or failure) of a publish, from a NATS thread.
    struct AckEvent {
        uint64_t sequence;
        uint32_t epoch;  // the connection that published it
        uint16_t kind;   // kStored, kReplay, kError
        uint16_t unused;
    };
    static constexpr uint16_t kStored = 0, kReplay = 1, kError = 2;

    // What a NATS callback knows about the connection it serves (one per
    // connection, kept as long as the sender: a callback may still run on a
    // library thread after its connection is gone).
    struct Link {
        JetStreamSender* owner = nullptr;
        uint32_t epoch = 0;
        session::ErrorText error;       // the last publish failure (written by that thread)
        std::atomic<uint64_t> lost{0};  // acknowledgements the ring had no room for
    };

  private:
    // session::SenderTransport
    void begin_connect(session::SenderCore& core, uint64_t now) override;
    bool poll_setup(session::SenderCore& core, uint64_t now) override;
    bool poll_stream(session::SenderCore& core, uint64_t now) override;
    void drop_connection() override;
    void close_connection() override;

    struct Attempt;
    static void run_attempt(const std::shared_ptr<Attempt>& a);
    static void on_publish_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                               void* closure);
    bool take_acknowledgements(uint64_t now);
    bool publish(uint64_t now);

    SenderConfig cfg_;
    std::string subject_;
    std::string peer_;
    JetStreamCounters counters_;
    lockfree::MpscRing<AckEvent> acks_;
    std::vector<std::unique_ptr<Link>> links_;
    std::shared_ptr<Attempt> attempt_;               // connecting now
    std::vector<std::shared_ptr<Attempt>> retired_;  // abandoned or done: joined later
    std::unique_ptr<Client> client_;
    bool published_ = false;  // over client_, at least once
    uint32_t epoch_ = 0;
    uint64_t acknowledged_ = 0;  // the cumulative position given to the core
    session::SenderCore core_;   // after everything its transport calls use
};

}  // namespace sluice::jetstream
