// The sluice-collector event loop: one thread, epoll, any number of senders.
// Each readable connection gets a bounded share of work per turn, so a busy
// or broken peer never stalls the others.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "sluice/collector/output.hpp"
#include "sluice/collector/stream.hpp"
#include "sluice/rdma/receiver.hpp"
#include "sluice/tcp/endpoint.hpp"
#include "sluice/tcp/stats.hpp"

namespace sluice::collector {

struct CollectorOptions {
    tcp::Endpoint listen{"127.0.0.1", 7700};
    std::string out_dir;
    uint64_t rotate_bytes = 0;
    uint64_t rotate_seconds = 0;
    std::vector<std::byte> key;
    Compression compression = Compression::None;
    int zstd_level = 3;
    uint32_t stats_interval_s = 10;  // 0: no stats line
    uint32_t keep_files = 0;
    bool sync = false;
    bool index = true;  // --no-index: no NAME.idx beside the files
    uint32_t peer_timeout_ms = 10000;
    uint32_t max_frame_bytes = 16u << 20;
    uint32_t max_connections = 1024;
    std::string summary_json;  // also write the exit summary here (JSON)
    // --listen rdma://ADDR:PORT: the RDMA transport instead of TCP (docs/rdma.md).
    bool rdma = false;
    uint32_t rdma_slot_bytes = 1u << 20;
    uint32_t rdma_slots = 64;
};

#define SLUICE_COLLECTOR_COUNTERS(_)                                            \
    _(connections_accepted, "Connections accepted (TCP) or requested (RDMA).")  \
    _(handshakes, "Connections that completed the handshake.")                  \
    _(refused_version,                                                          \
      "Connections refused: the sender speaks another transport version. Run "  \
      "the same sluice release on both ends.")                                  \
    _(refused_auth,                                                             \
      "Connections refused: wrong key, or a key on one end only. Compare the "  \
      "sender's egress.key_file with --key-file.")                              \
    _(dropped_protocol,                                                         \
      "Connections dropped for malformed input (bad magic, malformed control "  \
      "messages, a frame of another stream): something other than a sluice "    \
      "sender writes to this port, or a sender is broken.")                     \
    _(dropped_bad_frame,                                                        \
      "Connections dropped for a frame that failed verification (CRC, "         \
      "lengths, decompression). The sender resends it on its next "             \
      "connection; a growing count means a faulty link or sender.")             \
    _(dropped_timeout,                                                          \
      "Connections dropped: no handshake within --peer-timeout, or silent for " \
      "longer than that and three heartbeats.")                                 \
    _(dropped_replaced,                                                         \
      "Connections closed because a newer connection of the same stream took "  \
      "over (a sender reconnected; two senders with one stream id show as a "   \
      "steady count).")                                                         \
    _(dropped_storage,                                                          \
      "Connections dropped because the collector could not write (disk full, "  \
      "I/O error); the sender keeps the frames and retries.")                   \
    _(dropped_busy, "Connections refused: --max-connections reached.")          \
    _(dropped_over_limit,                                                       \
      "Connections dropped for a frame over one of the collector's bounds "     \
      "(more than 800 (port, queue) interfaces in one frame): such a frame "    \
      "can never be written; the sender is broken or hostile.")                 \
    _(closed_by_peer, "Connections the sender closed or reset.")                \
    _(rejected_by_peer, "Connections the sender ended with a REJECT (see the log line).")

struct CollectorCounters {
#define SLUICE_DECLARE(name, desc) tcp::Counter name;
    SLUICE_COLLECTOR_COUNTERS(SLUICE_DECLARE)
#undef SLUICE_DECLARE
    static constexpr std::array info{
#define SLUICE_INFO(name, desc) tcp::CounterInfo{#name, desc},
        SLUICE_COLLECTOR_COUNTERS(SLUICE_INFO)
#undef SLUICE_INFO
    };
    std::array<uint64_t, info.size()> snapshot() const {
        return {
#define SLUICE_GET(name, desc) name.get(),
            SLUICE_COLLECTOR_COUNTERS(SLUICE_GET)
#undef SLUICE_GET
        };
    }
};

struct Connection;
class RdmaBridge;

// The refusal of a frame that names too many interfaces (FrameOutcome::TooManyInterfaces).
std::string too_many_interfaces(uint64_t sequence);

class Collector {
  public:
    // Validates the options, creates and locks the output directory, recovers
    // every stream found there and listens. Throws std::runtime_error with
    // the operator's fix (address in use, directory locked, ...).
    explicit Collector(const CollectorOptions& options);
    ~Collector();
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    // Serves until request_stop(); then commits, acknowledges, closes every
    // file and connection. Returns the exit code (0).
    int run();

    // Any thread, and async-signal-safe (a write to an eventfd).
    void request_stop();
    int stop_fd() const { return stop_fd_; }

    uint16_t port() const { return port_; }  // the bound port (listen port 0: chosen by the kernel)
    const CollectorCounters& counters() const { return counters_; }

    // The exit summary (text) and its JSON form.
    std::string summary_text() const;
    std::string summary_json() const;

  private:
    void accept_connections(uint64_t now);
    void on_readable(Connection& c, uint64_t now);
    void process(Connection& c, uint64_t now);
    void on_hello(Connection& c, const tcp::Hello& h, uint64_t now);
    void send(Connection& c, std::span<const std::byte> bytes);
    void flush(Connection& c);
    void close(Connection& c, const std::string& why);
    void drop(Connection& c, tcp::Counter& counter, const std::string& why);
    void reject(Connection& c, tcp::RejectReason reason, tcp::Counter& counter,
                const std::string& why);
    void timers(uint64_t now);
    void stats_line(uint64_t now);
    Stream& stream(uint64_t id);
    void reap();
    void listen_tcp(const tcp::ResolvedAddress& addr);
    // The stream cannot be written: end its connection (either transport).
    void drop_for_storage(Stream& s);
    friend class RdmaBridge;

    CollectorOptions opt_;
    StreamSettings settings_;
    int listen_fd_ = -1, epoll_fd_ = -1, stop_fd_ = -1, lock_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    CollectorCounters counters_;
    std::unique_ptr<ZstdCompressor> zstd_;
    Workspace ws_;
    wire::FrameReader reader_;
    ByteBuffer scratch_;
    std::map<uint64_t, std::unique_ptr<Stream>> streams_;
    std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
    std::vector<uint64_t> closed_;  // connection ids to free after the event batch
    uint64_t next_conn_id_ = 1;
    uint64_t started_ns_ = 0;
    uint64_t next_timer_ns_ = 0, next_stats_ns_ = 0;
    // For the stats line's rates.
    uint64_t last_stats_ns_ = 0, last_packets_ = 0, last_bytes_ = 0;
    // RDMA mode (--listen rdma://): the listener and the glue to the streams.
    // Stream::connection then points to an RdmaPeer (rdma_bridge.cpp).
    std::unique_ptr<RdmaBridge> bridge_;
    std::unique_ptr<rdma::RdmaListener> rdma_;
};

}  // namespace sluice::collector
