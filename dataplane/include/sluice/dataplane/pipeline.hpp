// The poll-mode pipeline: stages, the rings between them, and their lcores.
//
//   capture (rx -> filter -> batch) --ring--> codec (compress + CRC) --ring--> egress
//
// Run-to-completion puts the three stages of one stream on each rx lcore;
// pipeline mode puts capture on the rx lcores, codec on the codec lcores and
// egress on the egress lcore. Either way stages talk through SPSC rings of
// frame handles; a ring between two stages of one lcore costs a few cycles
// per frame (not per packet).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/counters.hpp"
#include "sluice/dataplane/dedup.hpp"
#include "sluice/dataplane/filter.hpp"
#include "sluice/dataplane/frame_pool.hpp"
#include "sluice/dataplane/live_filter.hpp"
#include "sluice/dataplane/ports.hpp"
#include "sluice/dataplane/sink.hpp"
#include "sluice/dataplane/soft_rss.hpp"
#include "sluice/dataplane/stats.hpp"
#include "sluice/dataplane/tsc_clock.hpp"
#include "sluice/lockfree/spsc_ring.hpp"
#include "sluice/simd/checksum.hpp"
#include "sluice/wire/builder.hpp"
#include "sluice/wire/codec.hpp"

struct rte_mbuf;

namespace sluice::dataplane {

// A frame travelling between stages: a buffer of the stream's pool.
struct FrameHandle {
    std::byte* data = nullptr;
    uint64_t sequence = 0;
    uint32_t len = 0;  // raw frame bytes (capture -> codec) or sealed bytes (codec -> egress)
    uint32_t packets = 0;
    uint32_t stream = 0;  // index into the pipeline's streams
    uint32_t reserved = 0;
};
static_assert(sizeof(FrameHandle) == 32);

using FrameRing = lockfree::SpscRing<FrameHandle>;

enum class Phase : uint8_t {
    Running,   // capture polls the NIC
    Draining,  // capture stops rx and flushes; downstream stages empty their rings
    Done,      // lcores leave their loops
};

class Stage {
  public:
    virtual ~Stage() = default;
    // Moves at most one burst (capture) or one frame (codec, egress). Returns
    // whether it did work. One virtual call per burst.
    virtual bool poll() = 0;
    // Nothing left to do once the phase is Draining (read by other lcores and
    // the control plane: acquire pairs with the stage's release store).
    bool drained() const { return drained_.load(std::memory_order_acquire); }
    virtual const char* kind() const = 0;

  protected:
    std::atomic<bool> drained_{false};
};

struct CaptureQueue {
    uint16_t port_id = 0;
    uint16_t queue_id = 0;
    uint16_t port_index = 0;
    const TscClock* hw_clock = nullptr;  // null: software timestamps
    QueueCounters* counters = nullptr;
    // Software RSS (soft_rss.hpp): set on every queue of a port dealt in
    // software. Queue 0 polls the NIC and deals; the others take their share
    // from `ring` (rss->rings[queue_id - 1]).
    SoftRssPort* rss = nullptr;
    MbufRing* ring = nullptr;
    // What the NIC dropped on the whole port (imissed + rx_nombuf), as the
    // control plane last read it: set on each port's queue 0 only, so that
    // the statistics of the port's queues add up to the port's.
    const std::atomic<uint64_t>* nic_dropped = nullptr;
    std::string description;  // the device, for the collector's interface blocks
};

// A [[capture.slice]] rule: packets its filter matches keep `snaplen` bytes.
struct SliceRule {
    const BpfFilter* filter = nullptr;
    uint32_t snaplen = 0;
};

class CaptureStage final : public Stage {
  public:
    struct Params {
        std::vector<CaptureQueue> queues;
        uint16_t burst = 32;
        // capture.filter: `live` when it may change while capturing (read
        // once per poll, after this stage's quiescent state as reader
        // `live_reader`), else `filter` as given.
        const BpfFilter* filter = nullptr;
        LiveFilter* live = nullptr;
        unsigned live_reader = 0;
        uint32_t frame_size = 0;
        uint32_t snaplen = 65535;
        uint64_t flush_timeout_tsc = 0;
        config::Overflow overflow = config::Overflow::Drop;
        uint32_t stream = 0;     // index
        uint64_t stream_id = 0;  // on the wire
        FramePool* pool = nullptr;
        FramePool::Cache* cache = nullptr;  // this lcore's cache of `pool`
        FrameRing* out = nullptr;
        const TscClock* clock = nullptr;
        const std::atomic<Phase>* phase = nullptr;
        CaptureCounters* counters = nullptr;
        // capture.verify_checksums: verdicts into the record flags, failures
        // counted per queue.
        bool verify_checksums = false;
        // The mbuf field where a software-RSS dealer leaves the receive time
        // (ns) of the packets it hands over; -1 when no port is dealt.
        int rx_time_offset = -1;
        // capture.decap: what the filter and the slice rules see ("match",
        // "strip") and what is written ("strip": the innermost packet).
        config::Decap decap = config::Decap::None;
        // [[capture.slice]], in order; the first rule that matches sets the
        // packet's snap length, `snaplen` otherwise.
        std::vector<SliceRule> slices;
        // capture.dedup (window_packets 0: off).
        uint32_t dedup_window_packets = 0;
        uint64_t dedup_window_ns = 0;
        simd::PacketHashKey dedup_key;
        // Interface statistics frames (wire flag::kStatistics): one when the
        // counters moved and this long passed (0: never), and one last at the
        // end of the stream. `start_ns`: when counting began. `egress`: the
        // stream's egress counters, whose drops are reported too.
        uint64_t statistics_interval_tsc = 0;
        uint64_t start_ns = 0;
        const EgressCounters* egress = nullptr;
    };
    explicit CaptureStage(Params p);
    bool poll() override;
    const char* kind() const override { return "capture"; }
    const Params& params() const { return p_; }
    // Longest mbuf chain copied whole; longer chains (never seen with MTU
    // 9600 and 1 KB mbufs) keep their first kMaxSegments segments, counted
    // as truncated.
    static constexpr std::size_t kMaxSegments = 64;

  private:
    // Software RSS dealing state of one queue 0 of a dealt port: the mbufs
    // for queue q wait in out[(q - 1) * burst ...], n[q - 1] of them.
    struct Deal {
        std::vector<rte_mbuf*> out;
        std::vector<uint16_t> n;
        bool held = false;  // some could not be handed over yet
    };

    // Polls queue `qi` (the NIC, or the ring a dealer feeds) and copies what
    // it got into frames. Returns whether anything was received.
    bool receive(std::size_t qi, bool draining);
    // Deals a burst polled from a dealt port's queue 0: queue 0's packets
    // stay at the front of pending_, the others go to their rings. Returns
    // how many stay.
    uint16_t deal(Deal& d, const CaptureQueue& q, uint16_t n, uint64_t now_ns);
    // Hands dealt mbufs to their rings; what does not fit is kept (`hold`)
    // or dropped and counted. Returns whether some are still kept.
    bool push_deals(Deal& d, SoftRssPort& port, bool hold);
    // Checksum verdicts of pending_[0..n) into pending_flags_; failures counted.
    void verify_checksums(const CaptureQueue& q, uint16_t n);
    // capture.decap over pending_[0..n) (capture_tunnels.cpp): finds each
    // innermost packet, counts what was found; "strip" moves each mbuf's
    // data to it, "match" too but only until unshift() puts it back.
    void peel(const CaptureQueue& q, uint16_t n);
    void unshift(uint16_t n);
    // The filter and the slice rules over pending_[0..n): the rejected are
    // freed and counted, the rest moved to the front with their state.
    // Returns how many are kept.
    uint16_t select(const CaptureQueue& q, uint16_t n);
    // capture.dedup over pending_[0..n): copies freed and counted; returns
    // how many are kept.
    uint16_t drop_copies(const CaptureQueue& q, uint16_t n);
    // The receive time of a packet (hardware, dealt or the burst's).
    uint64_t packet_time(const CaptureQueue& q, const rte_mbuf* m) const;
    // One statistics frame (capture_statistics.cpp) with the entries of the
    // queues from stats_next_ on; true once every queue's entry went out.
    bool emit_statistics(bool draining);
    // A value that moves whenever a counter the statistics report moves.
    uint64_t statistics_fingerprint() const;
    bool process_pending(bool draining);
    bool begin_frame();
    // Finishes the frame being filled and hands it on. False if it is held
    // (ring full under backpressure or while draining).
    bool finish_frame(bool draining);
    bool emit(const FrameHandle& h, bool draining);

    Params p_;
    wire::FrameBuilder builder_;
    std::byte* buffer_ = nullptr;  // the frame being filled
    uint64_t sequence_ = 0;
    uint64_t packet_index_ = 0;
    uint64_t deadline_tsc_ = 0;
    std::size_t next_queue_ = 0;
    bool end_sent_ = false;  // the empty end-of-stream frame was handed on
    std::optional<FrameHandle> held_;
    // A burst being copied into frames; kept across polls under backpressure.
    rte_mbuf* pending_[config::kMaxBurst];
    uint16_t pending_n_ = 0;
    uint16_t pending_i_ = 0;
    const CaptureQueue* pending_queue_ = nullptr;
    uint64_t pending_ts_ = 0;
    int ts_offset_ = -1;
    uint64_t ts_flag_ = 0;
    std::array<wire::Segment, kMaxSegments> segs_;  // a chain's segments, per packet

    std::vector<Deal> deal_;     // by index into p_.queues (empty unless a dealer)
    bool dealing_held_ = false;  // some Deal is held
    // As a reader of p_.live: not yet polled, reporting, done (drained).
    enum class LiveState : uint8_t { Idle, Online, Offline };
    LiveState live_state_ = LiveState::Idle;
    bool dealt_ = false;            // draining: every dealt port told it has its last packet
    bool has_ring_queues_ = false;  // some queue is fed by a dealer's ring
    std::size_t next_ring_queue_ = 0;

    // What the stages before the copy decided about each packet of the burst.
    struct PacketState {
        uint32_t snaplen = 0;
        uint32_t flags = 0;         // record flags (kDecapsulated)
        uint16_t shift = 0;         // "match": bytes the mbuf's data was moved on by
        bool restore_head = false;  // "match": `head` holds the 14 bytes the shift overwrote
        bool has_tunnel = false;
        wire::TunnelMeta tunnel;
        std::byte head[14];
    };
    PacketState state_[config::kMaxBurst];
    uint64_t match_[config::kMaxBurst];  // filter verdicts, by burst index
    std::unique_ptr<DedupWindow> dedup_;

    // Statistics frames.
    uint64_t stats_deadline_tsc_ = 0;
    uint64_t stats_fingerprint_ = 0;
    bool stats_sent_ = false;     // the first went out
    std::size_t stats_next_ = 0;  // the queue whose entry goes next (a frame did not hold all)

    // Checksum verification of one burst.
    uint32_t pending_flags_[config::kMaxBurst];  // record flags (verdicts), by burst index
    std::array<simd::PacketView, config::kMaxBurst> views_;
    std::array<simd::ChecksumResult, config::kMaxBurst> results_;
    std::array<uint16_t, config::kMaxBurst> view_packet_;  // burst index of views_[k]
    std::vector<std::byte> linear_;  // a chain's bytes in one piece, for verification
};

class CodecStage final : public Stage {
  public:
    struct Input {
        FrameRing* ring = nullptr;
        const Stage* producer = nullptr;
    };
    struct Params {
        std::vector<Input> inputs;
        std::vector<FramePool*> pools;          // by stream index
        std::vector<FramePool::Cache*> caches;  // by stream index: this lcore's (null: not served)
        FrameRing* out = nullptr;
        wire::EncoderConfig encoder;
        const std::atomic<Phase>* phase = nullptr;
        CodecCounters* counters = nullptr;
    };
    explicit CodecStage(Params p);
    bool poll() override;
    const char* kind() const override { return "codec"; }
    const Params& params() const { return p_; }

  private:
    void seal(FrameHandle& h);

    Params p_;
    wire::FrameEncoder encoder_;
    wire::FrameEncoder store_raw_;  // for frames no second buffer could be found for
    std::size_t next_input_ = 0;
    std::optional<FrameHandle> held_;
};

class EgressStage final : public Stage {
  public:
    struct Input {
        FrameRing* ring = nullptr;
        const Stage* producer = nullptr;
    };
    struct Stream {
        FrameSink* sink = nullptr;
        FramePool* pool = nullptr;
        FramePool::Cache* cache = nullptr;  // this lcore's cache of `pool`
        EgressCounters* counters = nullptr;
    };
    struct Params {
        std::vector<Input> inputs;
        std::vector<Stream> streams;  // by stream index (only this stage's are non-null)
        config::Overflow overflow = config::Overflow::Drop;
        const TscClock* clock = nullptr;
        const std::atomic<Phase>* phase = nullptr;
    };
    explicit EgressStage(Params p);
    bool poll() override;
    const char* kind() const override { return "egress"; }
    const Params& params() const { return p_; }

  private:
    // False if the frame must wait (sink full and not dropping).
    bool submit(const FrameHandle& h, bool draining);

    Params p_;
    std::size_t next_input_ = 0;
    std::optional<FrameHandle> held_;
};

// Makes the sink of stream `index` (wire id `stream_id`).
using SinkFactory = std::function<std::unique_ptr<FrameSink>(uint32_t index, uint64_t stream_id,
                                                             std::string& error)>;

class Pipeline {
  public:
    // Builds rings, pools, stages and their lcore assignment from the config.
    // `ports` must be started. Returns null with `error` set on failure.
    static std::unique_ptr<Pipeline> build(const config::Config& cfg,
                                           const std::vector<PortState>& ports,
                                           const SinkFactory& make_sink, std::string& error);
    ~Pipeline();

    // Starts every lcore's loop.
    bool launch(std::string& error);
    // Reads each port's NIC drop counters for the statistics frames (control
    // plane; the drain does it once more before the last frame).
    void publish_nic_drops();
    // Stops rx, flushes, drains the rings; then waits (bounded) until every
    // stage is drained and leaves the loops.
    void drain_and_stop(double timeout_s);
    bool all_drained() const;

    // Every counter, read relaxed; the NICs' through rte_eth_stats_get.
    // Control threads only (the main lcore, the telemetry thread, the
    // metrics listener's threads), never a worker; safe from several at once.
    Snapshot snapshot(double seconds, const std::vector<PortState>& ports) const;

    struct RingInfo {
        std::string name;
        const FrameRing* ring = nullptr;  // frames between stages, or
        const MbufRing* mbufs = nullptr;  // packets a software-RSS dealer hands over
        std::size_t capacity() const { return ring ? ring->capacity() : mbufs->capacity(); }
        std::size_t used() const { return ring ? ring->size() : mbufs->size(); }
    };
    const std::vector<RingInfo>& rings() const { return ring_info_; }
    std::vector<const FramePool*> pools() const;
    std::vector<std::string> sink_descriptions() const;
    const std::vector<std::unique_ptr<FrameSink>>& sinks() const { return sinks_; }
    const std::vector<unsigned>& lcores() const { return lcore_ids_; }
    uint64_t received() const;  // rx_packets over all queues
    // rx_paused over all capture stages: polls backpressure held back.
    uint64_t paused_polls() const;
    // capture.filter, which control threads may change while capturing.
    LiveFilter& filter() const { return *filter_; }

  private:
    Pipeline() = default;
    struct LcoreWork {
        unsigned lcore = 0;
        std::vector<Stage*> stages;
        const std::atomic<Phase>* phase = nullptr;
        // Set by the lcore as it leaves its loop. rte_eal_mp_wait_lcore()
        // synchronises inside DPDK, invisible to ThreadSanitizer; this
        // release/acquire pair makes the hand-back explicit.
        std::unique_ptr<std::atomic<bool>> left = std::make_unique<std::atomic<bool>>(false);
    };
    void wait_lcores();
    static int lcore_main(void* arg);

    std::atomic<Phase> phase_{Phase::Running};
    TscClock clock_;
    std::unique_ptr<LiveFilter> filter_;
    std::vector<std::unique_ptr<BpfFilter>> slice_filters_;
    // Per port: what the NIC dropped (imissed + rx_nombuf), published by the
    // control plane for the statistics frames. One cache line each.
    struct alignas(64) NicDrops {
        uint16_t port_id = 0;
        std::atomic<uint64_t> dropped{0};
    };
    std::vector<std::unique_ptr<NicDrops>> nic_drops_;
    std::vector<std::unique_ptr<QueueCounters>> queue_counters_;
    std::vector<std::unique_ptr<CaptureCounters>> capture_counters_;
    std::vector<std::unique_ptr<CodecCounters>> codec_counters_;
    std::vector<std::unique_ptr<EgressCounters>> egress_counters_;
    std::vector<std::unique_ptr<SoftRssPort>> soft_rss_;  // ports dealt in software
    std::vector<std::unique_ptr<FramePool>> pools_;
    // One cache per (pool, lcore that uses it), shared by that lcore's stages;
    // declared after pools_ so that they go first.
    std::vector<std::unique_ptr<FramePool::Cache>> caches_;
    std::vector<std::unique_ptr<FrameSink>> sinks_;
    std::vector<std::unique_ptr<FrameRing>> rings_;
    std::vector<RingInfo> ring_info_;
    std::vector<std::unique_ptr<Stage>> stages_;
    std::vector<std::vector<std::pair<std::string, std::string>>> stage_labels_;
    std::vector<std::vector<std::pair<std::string, std::string>>> queue_labels_;
    std::vector<std::vector<std::pair<std::string, std::string>>> rss_labels_;
    std::vector<std::vector<std::pair<std::string, std::string>>> egress_labels_;
    std::vector<LcoreWork> work_;
    std::vector<unsigned> lcore_ids_;
    bool launched_ = false;
    // rte_eth_stats_get is not thread-safe: drivers that read clear-on-read
    // registers add them into their own totals. snapshot() and
    // publish_nic_drops() run on several control threads at once; none of
    // them is a worker lcore.
    mutable std::mutex port_stats_mutex_;
};

}  // namespace sluice::dataplane
