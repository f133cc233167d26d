// RdmaSender: one frame stream to one sluice-collector over an RDMA RC queue
// pair, polled by the egress lcore. The session logic (retransmit buffer,
// handshake content, acknowledgements, timeouts, backoff, counters) is
// session::SenderCore's, as for TCP; this is the transport under it.
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

#include "sluice/lockfree/counter.hpp"
#include "sluice/rdma/protocol.hpp"
#include "sluice/session/sender.hpp"

struct rdma_cm_id;
struct rdma_event_channel;
struct ibv_pd;
struct ibv_cq;
struct ibv_mr;
struct ibv_context;
struct ibv_send_wr;
struct ibv_sge;
struct ibv_wc;

namespace sluice::rdma {

using session::SenderState;
using session::SenderStats;
using session::SubmitResult;

struct SenderConfig {
    std::string host = "127.0.0.1";  // the collector's address (IPv4/IPv6 literal or name)
    uint16_t port = 7700;
    std::string source;  // local address to bind (picks the RDMA device); empty: the route's
    uint64_t stream_id = 1;
    std::vector<std::byte> key;  // pre-shared key (session::read_key_file); empty: none
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

#define SLUICE_RDMA_SENDER_COUNTERS(_)                                                           \
    _(frames_inline, "Frames written inline (copied into the work request).")                    \
    _(post_lists, "ibv_post_send calls (each posts a list of writes).")                          \
    _(credit_stalls,                                                                             \
      "Times frames waited because every ring slot was in use: the collector drains its ring "   \
      "slower than frames arrive. More slots (sluice-collector --rdma-slots) or a faster "       \
      "collector disk helps.")                                                                   \
    _(credit_messages, "Credit messages received from the collector.")                           \
    _(completion_errors,                                                                         \
      "Work completions with an error status (retry exceeded, remote access, flushed): each "    \
      "ends the connection; last_error names the status.")                                       \
    _(memory_registrations,                                                                      \
      "Memory regions registered with the device (frame pools at start; more means frames from " \
      "unregistered memory).")
SLUICE_COUNTER_BLOCK(RdmaCounters, SLUICE_RDMA_SENDER_COUNTERS);

// What a send-side work completion is, from its opcode (not from where its
// wr_id points: a flushed completion's opcode is undefined, so errors are
// told apart first by their status).
enum class SendCompletion : uint8_t { Message, ControlSend, Write, Unknown };
SendCompletion classify(const ibv_wc& wc);

// The RDMA devices this host has, by name ("rxe0", "mlx5_0"); empty when none.
std::vector<std::string> device_names();
// An operator's message for "no RDMA device": names ibv_devices and rdma link.
std::string no_device_message();

class RdmaSender final : private session::SenderTransport {
  public:
    using Config = SenderConfig;
    // Validates the configuration and creates the rdma_cm event channel.
    // Throws std::invalid_argument / std::runtime_error with the fix (no
    // RDMA device: names ibv_devices and rdma link).
    explicit RdmaSender(const SenderConfig& config);
    ~RdmaSender() override;
    RdmaSender(const RdmaSender&) = delete;
    RdmaSender& operator=(const RdmaSender&) = delete;

    // Frames will come from [base, base + bytes): registered now if a device
    // is open, else when the first connection opens one. Control path.
    void register_memory(const void* base, std::size_t bytes);

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
    const RdmaCounters& rdma_stats() const { return rdma_stats_; }
    SenderState state() const { return core_.state(); }
    const SenderConfig& config() const { return cfg_; }
    uint64_t session_id() const { return core_.session_id(); }
    // While streaming: the ring the collector advertised (its slots in the
    // accept, its address and key in the Welcome), and the inline size the
    // queue pair got.
    struct Ring {
        uint64_t addr = 0;
        uint32_t rkey = 0;
        uint32_t slot_bytes = 0;
        uint32_t slot_count = 0;
    };
    const Ring& ring() const { return ring_; }
    uint32_t max_inline() const { return max_inline_; }
    const CreditWindow& credits() const { return credits_; }

  private:
    struct Region {
        uintptr_t base;
        std::size_t bytes;
        ibv_mr* mr;
    };
    static constexpr std::size_t kMaxRegions = 64;
    static constexpr uint32_t kRecvs = 32;  // control messages in flight to us
    static constexpr uint32_t kMaxBatch = 32;

    // session::SenderTransport
    void begin_connect(session::SenderCore& core, uint64_t now) override;
    bool poll_setup(session::SenderCore& core, uint64_t now) override;
    bool poll_stream(session::SenderCore& core, uint64_t now) override;
    void drop_connection() override { teardown(); }
    void close_connection() override { teardown(); }

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
    bool streaming() const { return core_.state() == SenderState::Streaming; }

    SenderConfig cfg_;
    RdmaCounters rdma_stats_;
    session::SenderCore core_;

    rdma_event_channel* channel_ = nullptr;
    rdma_cm_id* id_ = nullptr;
    bool established_ = false;    // the connection is up (a disconnect is owed at teardown)
    ibv_context* ctx_ = nullptr;  // the device the protection domain belongs to
    ibv_pd* pd_ = nullptr;
    ibv_cq* cq_ = nullptr;
    bool qp_ = false;
    ibv_mr* ctl_mr_ = nullptr;
    // Receive buffers for kRecvs messages, then one send buffer.
    std::array<std::byte, (kRecvs + 1) * kMessageSize> ctl_{};
    std::array<Region, kMaxRegions> regions_{};
    std::size_t nregions_ = 0;

    uint64_t next_cm_check_ns_ = 0;
    std::array<std::byte, kRequestSize> request_{};
    ConnectAccept accept_{};
    Ring ring_{};
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
    bool resuming_ = false;              // the request asked to resume with resume_secret_
    session::SessionSecret resume_secret_{};
};

}  // namespace sluice::rdma
