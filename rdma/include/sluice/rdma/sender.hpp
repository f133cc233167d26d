// RdmaSender: one frame stream to one sluice-collector over an RDMA RC queue
// pair, polled by the egress lcore. The same contract as tcp::TcpSender
// (submit / poll / reclaim / all_acknowledged / close), so the egress stage
// does not care which transport it drives.
//
// Each frame is written whole with RDMA WRITE WITH IMMEDIATE into the next
// slot of the ring the collector advertised; small frames go inline. The
// sender writes only into slots the collector has released (CreditWindow), so
// it never overruns the ring. Frames stay held (never copied) until a Credit
// message acknowledges them; after a completion error, a QP error or a
// disconnect the sender reconnects and replays every unacknowledged frame,
// and the collector discards what it already wrote.
//
// Streaming (submit, poll, reclaim) never allocates, locks or throws; its
// syscalls are the verbs doorbell (ibv_post_send) and, every millisecond, a
// zero-timeout poll() of the rdma_cm event channel. Connection set-up
// (control path) allocates: queue pair, completion queue, handshake.
//
// Memory: register every region frames come from with register_memory()
// before streaming (a frame pool: one region). Each is registered with the
// device once per protection domain, not per frame; a frame from outside any
// registered region is registered on first use (counted in
// memory_registrations) and stays registered.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sluice/rdma/protocol.hpp"
#include "sluice/tcp/backoff.hpp"
#include "sluice/tcp/retransmit.hpp"
#include "sluice/tcp/stats.hpp"

struct rdma_cm_id;
struct rdma_event_channel;
struct ibv_pd;
struct ibv_cq;
struct ibv_mr;
struct ibv_context;
struct ibv_send_wr;
struct ibv_sge;

namespace sluice::rdma {

struct SenderConfig {
    std::string host = "127.0.0.1";  // the collector's address (IPv4/IPv6 literal or name)
    uint16_t port = 7700;
    std::string source;  // local address to bind (picks the RDMA device); empty: the route's
    uint64_t stream_id = 1;
    std::vector<std::byte> key;  // pre-shared key (tcp::read_key_file); empty: none
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 5000;
    uint32_t timeout_ms = 5000;  // set-up, or waiting this long for a Credit: reconnect
    uint32_t retransmit_frames = 48;
    uint32_t inline_bytes = 256;    // frames up to this size go inline (capped by the device)
    uint32_t signal_interval = 16;  // one signalled completion per this many writes
    uint32_t queue_depth = 128;     // send queue work requests
    uint64_t session_id = 0;        // 0: random
    uint64_t jitter_seed = 0;       // 0: random
};

enum class SubmitResult : uint8_t {
    Accepted,
    Full,  // retransmit_frames frames are held: nothing kept, apply the overflow policy
};

enum class SenderState : uint8_t {
    Waiting,     // backing off before the next attempt (or before the first)
    Resolving,   // rdma_cm address and route resolution
    Connecting,  // connect request sent
    Handshake,   // connected; Proof sent, waiting for Welcome
    Streaming,
};
std::string_view to_string(SenderState s);

#define SLUICE_RDMA_SENDER_COUNTERS(_)                                                             \
    _(frames_submitted, "Frames accepted by submit().")                                            \
    _(submit_full,                                                                                 \
      "submit() calls refused because retransmit_frames frames were held: the collector or the "   \
      "link is slower than capture, or the collector is down. Raise "                              \
      "egress.retransmit_frames to ride out longer outages.")                                      \
    _(frames_sent, "Frames written into the collector's ring (retransmissions included).")         \
    _(bytes_sent, "Frame bytes written into the collector's ring.")                                \
    _(frames_inline, "Frames written inline (copied into the work request).")                      \
    _(frames_acknowledged, "Frames the collector confirmed written.")                              \
    _(frames_retransmitted,                                                                        \
      "Frames written again on a new connection because the collector had not acknowledged "       \
      "them.")                                                                                     \
    _(post_lists, "ibv_post_send calls (each posts a list of writes).")                            \
    _(credit_stalls,                                                                               \
      "Times frames waited because every ring slot was in use: the collector drains its ring "     \
      "slower than frames arrive. More slots (sluice-collector --rdma-slots) or a faster "         \
      "collector disk helps.")                                                                     \
    _(credit_messages, "Credit messages received from the collector.")                             \
    _(completion_errors,                                                                           \
      "Work completions with an error status (retry exceeded, remote access, flushed): each "      \
      "ends the connection; last_error names the status.")                                         \
    _(memory_registrations,                                                                        \
      "Memory regions registered with the device (frame pools at start; more means frames from "   \
      "unregistered memory).")                                                                     \
    _(connects, "Connections that completed the handshake.")                                       \
    _(disconnects, "Established connections lost (error, disconnect, timeout, reject).")           \
    _(connect_failures, "Attempts that did not reach streaming (unreachable, rejected, timeout).") \
    _(timeouts, "Connections dropped because the collector did not answer within timeout_ms.")     \
    _(errors, "Errors recorded in last_error (each connection failure or loss is one).")

struct alignas(64) SenderStats {
#define SLUICE_DECLARE(name, desc) tcp::Counter name;
    SLUICE_RDMA_SENDER_COUNTERS(SLUICE_DECLARE)
#undef SLUICE_DECLARE
    std::atomic<uint8_t> state{0};  // SenderState; relaxed, a status display
    std::atomic<bool> connected{false};
    tcp::ErrorText last_error;

    static constexpr std::array info{
#define SLUICE_INFO(name, desc) tcp::CounterInfo{#name, desc},
        SLUICE_RDMA_SENDER_COUNTERS(SLUICE_INFO)
#undef SLUICE_INFO
    };
    std::array<uint64_t, info.size()> snapshot() const {
        return {
#define SLUICE_GET(name, desc) name.get(),
            SLUICE_RDMA_SENDER_COUNTERS(SLUICE_GET)
#undef SLUICE_GET
        };
    }
};

// The RDMA devices this host has, by name ("rxe0", "mlx5_0"); empty when none.
std::vector<std::string> device_names();
// An operator's message for "no RDMA device": names ibv_devices and rdma link.
std::string no_device_message();

class RdmaSender {
  public:
    // Validates the configuration and creates the rdma_cm event channel.
    // Throws std::invalid_argument / std::runtime_error with the fix (no
    // RDMA device: names ibv_devices and rdma link).
    explicit RdmaSender(const SenderConfig& config);
    ~RdmaSender();
    RdmaSender(const RdmaSender&) = delete;
    RdmaSender& operator=(const RdmaSender&) = delete;

    // Frames will come from [base, base + bytes): registered now if a device
    // is open, else when the first connection opens one. Control path.
    void register_memory(const void* base, std::size_t bytes);

    // Queues a sealed frame carrying `sequence` in its header (increasing).
    SubmitResult submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie);
    // Connects, handshakes, writes what credits allow, reads completions and
    // credits, times out, reconnects. True if it did any work.
    bool poll(uint64_t now_ns);
    std::size_t reclaim(std::span<void*> out);

    bool all_acknowledged() const {
        return stats_.frames_acknowledged.get() == stats_.frames_submitted.get();
    }
    std::size_t held() const { return rtx_.held(); }
    const SenderStats& stats() const { return stats_; }
    SenderState state() const { return state_; }
    const SenderConfig& config() const { return cfg_; }
    uint64_t session_id() const { return session_id_; }
    // While streaming: the ring the collector advertised, and the inline
    // size the queue pair got.
    const ConnectAccept& ring() const { return accept_; }
    uint32_t max_inline() const { return max_inline_; }
    const CreditWindow& credits() const { return credits_; }

    // Ends the connection now (tests; an operator's "reconnect").
    void disconnect(uint64_t now_ns, std::string_view why);
    void close();

  private:
    struct Region {
        uintptr_t base;
        std::size_t bytes;
        ibv_mr* mr;
    };
    static constexpr std::size_t kMaxRegions = 64;
    static constexpr uint32_t kRecvs = 32;  // control messages in flight to us
    static constexpr uint32_t kMaxBatch = 32;

    void fail(uint64_t now, std::string_view message, bool timeout = false);
    void start_attempt(uint64_t now);
    bool read_cm_events(uint64_t now);
    void on_addr_resolved(uint64_t now);
    void on_route_resolved(uint64_t now);
    void on_established(uint64_t now, const void* data, std::size_t len);
    void on_rejected(uint64_t now, const void* data, std::size_t len, int status);
    bool poll_completions(uint64_t now);
    void on_message(uint64_t now, std::span<const std::byte> bytes);
    bool send_frames(uint64_t now);
    bool post_recv(uint32_t index);
    bool post_message(const Message& m);
    bool open_device(ibv_context* ctx);
    void close_device();
    bool register_region(Region& r);
    const Region* find_region(uintptr_t p, std::size_t len);
    void teardown();
    void set_state(SenderState s);
    void record_error(std::string_view text);

    SenderConfig cfg_;
    std::string peer_;
    uint64_t session_id_;
    tcp::RetransmitBuffer rtx_;
    tcp::Backoff backoff_;
    SenderStats stats_;

    SenderState state_ = SenderState::Waiting;
    rdma_event_channel* channel_ = nullptr;
    rdma_cm_id* id_ = nullptr;
    ibv_context* ctx_ = nullptr;  // the device the protection domain belongs to
    ibv_pd* pd_ = nullptr;
    ibv_cq* cq_ = nullptr;
    bool qp_ = false;
    ibv_mr* ctl_mr_ = nullptr;
    // Receive buffers for kRecvs messages, then one send buffer.
    std::array<std::byte, (kRecvs + 1) * kMessageSize> ctl_{};
    std::array<Region, kMaxRegions> regions_{};
    std::size_t nregions_ = 0;

    uint64_t next_attempt_ns_ = 0;
    uint64_t deadline_ns_ = 0;
    uint64_t last_rx_ns_ = 0;
    uint64_t next_cm_check_ns_ = 0;
    std::array<std::byte, kRequestSize> request_{};
    ConnectAccept accept_{};
    CreditWindow credits_;
    uint32_t max_inline_ = 0;
    uint32_t sq_depth_ = 0;
    uint64_t posted_ = 0;       // send work requests posted on this connection
    uint64_t completed_ = 0;    // of those, known complete (a signalled one covers earlier ones)
    uint32_t unsignalled_ = 0;  // writes since the last signalled one
    bool credit_stalled_ = false;
    std::array<::iovec, kMaxBatch> iov_{};
    struct WorkRequests;
    std::unique_ptr<WorkRequests> wrs_;  // kMaxBatch writes and their gather entries
    Proof proof_{};                      // ours, for checking the collector's Welcome
};

}  // namespace sluice::rdma
