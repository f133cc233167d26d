// sluice-collector: one thread and one event loop over a listener (TCP or
// RDMA: tcp::TcpListener, rdma::RdmaListener) or a collector group's
// JetStream source (group_source.cpp), the streams found in and written to
// the output directory, and the handler that tells the source what a
// sender's hello and frames mean (handler.cpp). docs/collector.md is the
// operator's view; docs/scale-out.md the group's.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sluice/collector/files.hpp"
#include "sluice/collector/on_rotate.hpp"
#include "sluice/collector/output.hpp"
#include "sluice/collector/stream.hpp"
#include "sluice/lockfree/counter.hpp"
#include "sluice/session/byte_buffer.hpp"
#include "sluice/session/endpoint.hpp"
#include "sluice/session/keyring.hpp"
#include "sluice/tcp/tls.hpp"

namespace sluice::tcp {
class TcpListener;
}
namespace sluice::rdma {
class RdmaListener;
}
namespace sluice::http {
class Server;
class Request;
class Response;
}  // namespace sluice::http

namespace sluice::collector {

// --source jetstream://...: a member of a collector group reading from NATS
// JetStream instead of listening (docs/scale-out.md).
struct GroupOptions {
    std::vector<std::string> servers;  // "nats://HOST:PORT"; empty: not a group member
    std::string group;                 // --group NAME
    std::string stream = "SLUICE";     // the JetStream stream
    std::string subject = "sluice.frames.{stream_id}";
    std::string creds_file, user, password_file, token_file;  // NATS credentials
    bool tls = false;
    std::string tls_ca, tls_cert, tls_key;
    uint32_t lease_ms = 3000;    // a lease not renewed for this long is taken over
    uint32_t fetch_frames = 64;  // messages per fetch (one commit each)
    uint64_t fetch_bytes = 32u << 20;
    uint32_t reorder_frames = 1024;  // frames that may wait for a late one
};

struct CollectorOptions {
    // tcp://ADDR:PORT, or rdma://ADDR:PORT for the RDMA transport (docs/rdma.md).
    session::Endpoint listen{"127.0.0.1", 7700};
    std::string out_dir;
    uint64_t rotate_bytes = 0;
    uint64_t rotate_seconds = 0;
    // The keys senders prove, one for every stream or named keys each
    // limited to its streams (session::Keyring); null: no key. SIGHUP
    // reads key_file again.
    std::shared_ptr<const session::Keyring> keys;
    std::string key_file;
    bool has_keys() const { return keys && !keys->empty(); }
    Compression compression = Compression::None;
    int zstd_level = 3;
    uint32_t stats_interval_s = 10;  // 0: no stats line
    uint32_t keep_files = 0;
    // The file lifecycle (docs/collector.md, "Output"; docs/operations.md,
    // "Retention"): names, the command run with each finished file, and
    // the limits that delete the oldest finished files.
    index::FileTemplate file_template;
    std::vector<std::string> on_rotate;  // empty: none
    uint32_t on_rotate_jobs = 4;
    uint64_t max_disk = 0;
    uint64_t max_age_s = 0;
    uint64_t min_free = 0;
    bool sync = false;
    unsigned file_mode = 0640;          // capture files
    bool index = true;                  // --no-index: no NAME.idx beside the files
    uint32_t peer_timeout_ms = 10000;   // idle streaming connections
    uint32_t handshake_timeout_ms = 0;  // 0: min(5000, peer_timeout_ms)
    uint32_t max_frame_bytes = 16u << 20;
    uint32_t max_connections = 1024;  // authenticated
    uint32_t max_pending = 64;        // in their handshake, all sources
    uint32_t max_pending_per_source = 8;
    // Streams open at once (state, file and index descriptors, ~60 KB
    // each); beyond, the longest-idle one without a sender is closed (its
    // state stays on disk), or the hello is refused when all have senders.
    uint32_t max_streams = 1024;
    // A stream without a sender this long is closed the same way (0: only
    // to make room).
    uint32_t stream_idle_s = 60;
    // Receive buffers (TCP) or rings (RDMA) of all connections together:
    // beyond, TCP connections wait (backpressure), RDMA ones are refused.
    uint64_t max_memory = 2ull << 30;
    std::string summary_json;  // also write the exit summary here (JSON)
    uint32_t rdma_slot_bytes = 1u << 20;
    uint32_t rdma_slots = 64;
    // TLS 1.3 on tcp:// when tls.cert is set; with tls.ca, client
    // certificates are required (and then a key is not, off loopback).
    tcp::TlsSettings tls = tls_defaults();

    // --metrics ADDR: the HTTP listener, GET /metrics and GET /query
    // (docs/operations.md, "The HTTP listener"); unset: none.
    std::optional<session::Endpoint> metrics;
    std::vector<std::byte> http_token;  // --http-token-file: GET /query needs it
    std::string http_tls_cert, http_tls_key, http_tls_ca;
    uint32_t http_max_queries = 4;     // GET /query running at once; beyond: 503
    uint32_t http_timeout_ms = 10000;  // a request must arrive, a response piece leave, within it

    static tcp::TlsSettings tls_defaults() {
        tcp::TlsSettings t;
        t.names = {"--tls-ca", "--tls-cert", "--tls-key", ""};
        return t;
    }
    GroupOptions group;  // set: read from JetStream as a group member, do not listen
};

#define SLUICE_COLLECTOR_COUNTERS(_)                                             \
    _(connections_accepted, "Connections accepted (TCP) or requested (RDMA).")   \
    _(handshakes, "Connections that completed the handshake.")                   \
    _(refused_version,                                                           \
      "Connections refused: the sender speaks another transport version. Run "   \
      "the same sluice release on both ends.")                                   \
    _(refused_auth,                                                              \
      "Connections refused: wrong key, a key on one end only, or a key not "     \
      "allowed to write the stream it named. Compare the sender's "              \
      "egress.key_file with --key-file and the streams it lists for that key.")  \
    _(refused_resume,                                                            \
      "Resumes refused: the sender asked to continue a session this collector "  \
      "does not hold (its state was reset, or another session took the "         \
      "stream), or could not prove that session's secret. An honest sender "     \
      "then starts a new session at once; a steady count is a replay.")          \
    _(refused_tls,                                                               \
      "Connections refused by TLS: a certificate not trusted, expired or for "   \
      "another name, no client certificate though --tls-ca asks for one, or a "  \
      "sender without TLS at a collector with it (or the reverse). The log "     \
      "line says which and what to change.")                                     \
    _(dropped_protocol,                                                          \
      "Connections dropped for malformed input (bad magic, malformed control "   \
      "messages, a frame of another stream): something other than a sluice "     \
      "sender writes to this port, or a sender is broken.")                      \
    _(dropped_bad_frame,                                                         \
      "Connections dropped for a frame that failed verification (CRC, "          \
      "lengths, decompression). The sender resends it on its next "              \
      "connection; a growing count means a faulty link or sender.")              \
    _(dropped_timeout,                                                           \
      "Connections dropped: no handshake within --peer-timeout, or silent for "  \
      "longer than that and three heartbeats.")                                  \
    _(dropped_replaced,                                                          \
      "Connections closed because a newer connection of the same stream took "   \
      "over (a sender reconnected; two senders with one stream id show as a "    \
      "steady count).")                                                          \
    _(dropped_storage,                                                           \
      "Connections dropped because the collector could not write (disk full, "   \
      "I/O error); the sender keeps the frames and retries.")                    \
    _(dropped_busy, "Connections refused: --max-connections reached.")           \
    _(refused_streams,                                                           \
      "Connections refused: --max-streams streams were open and every one had "  \
      "a sender connected. Raise --max-streams (and the open files limit).")     \
    _(refused_memory,                                                            \
      "RDMA connections refused: their ring did not fit in --max-memory next "   \
      "to the others'. Raise --max-memory or lower --rdma-slots.")               \
    _(memory_waits,                                                              \
      "Times a TCP connection was not read because the receive buffers of all "  \
      "connections reached --max-memory: its sender waits (TCP backpressure), "  \
      "nothing is lost. Steady growth: raise --max-memory.")                     \
    _(streams_retired,                                                           \
      "Streams closed after --stream-idle-timeout without a sender, or to make " \
      "room under --max-streams. Their state stays on disk; a returning sender " \
      "reopens them and resumes.")                                               \
    _(dropped_pending,                                                           \
      "Connections dropped in their handshake to make room: --max-pending "      \
      "handshakes were in progress (half-open connections: a scan or a "         \
      "flood). Honest senders complete theirs in one round trip.")               \
    _(refused_per_source,                                                        \
      "Connections refused because their source address had "                    \
      "--max-pending-per-source handshakes in progress already.")                \
    _(listener_errors,                                                           \
      "Failures of the listener itself (accept() out of file descriptors, a "    \
      "device event): see the log; raise the open files limit if accept "        \
      "fails.")                                                                  \
    _(dropped_over_limit,                                                        \
      "Connections dropped for a frame over one of the collector's bounds "      \
      "(more than 800 (port, queue) interfaces in one frame): such a frame "     \
      "can never be written; the sender is broken or hostile.")                  \
    _(reloads,                                                                   \
      "SIGHUPs that read the key file and TLS files again and took them into "   \
      "use.")                                                                    \
    _(reload_failures,                                                           \
      "SIGHUPs with a key file or TLS file that could not be used (the log "     \
      "says why): the keys and certificates in use stay. Fix the file and "      \
      "send SIGHUP again.")                                                      \
    _(batches_written,                                                           \
      "Batches of frames written to capture files: one write each (and with "    \
      "--sync one fdatasync of the file and one of the stream's state) before "  \
      "the ACK. Bytes written over batches is the write size the filesystem "    \
      "sees.")                                                                   \
    _(closed_by_peer, "Connections the sender closed or reset.")                 \
    _(rejected_by_peer, "Connections the sender ended with a REJECT (see the log line).")
SLUICE_COUNTER_BLOCK(CollectorCounters, SLUICE_COLLECTOR_COUNTERS);

// GET /query on the HTTP listener, written by its worker threads.
#define SLUICE_QUERY_COUNTERS(_)                                                            \
    _(queries, "GET /query requests that streamed their whole result.")                     \
    _(queries_busy,                                                                         \
      "GET /query refused with 503: --http-max-queries queries were running. Retry later, " \
      "or raise it.")                                                                       \
    _(queries_failed,                                                                       \
      "GET /query results cut short: the client left or read slower than --http-timeout "   \
      "allows, a capture file could not be read, or the collector stopped (see the log).")  \
    _(query_packets, "Packets GET /query sent.")                                            \
    _(query_bytes, "pcapng bytes GET /query sent.")
SLUICE_SHARED_COUNTER_BLOCK(QueryCounters, SLUICE_QUERY_COUNTERS);

class StreamHandler;
class GroupSource;

// Hooks for a service manager (main.cpp: sd_notify). `tick` runs on the
// event-loop thread every 100 ms, after the timers; `stopping` once, when
// run() begins its shutdown.
struct CollectorHooks {
    std::function<void()> tick;
    std::function<void()> stopping;
};

class Collector {
  public:
    // Validates the options, creates and locks the output directory, recovers
    // every stream found there and listens. Throws std::runtime_error with
    // the operator's fix (address in use, directory locked, ...); what it
    // opened before is closed again (the lock too).
    explicit Collector(const CollectorOptions& options);
    ~Collector();
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    // Serves until request_stop(); then commits, acknowledges, closes every
    // file and connection. Returns the exit code (0).
    int run();

    // Any thread, and async-signal-safe (a write to an eventfd).
    void request_stop();
    int stop_fd() const { return stop_fd_.get(); }
    // SIGHUP: read the key file and the TLS files again (lifecycle.cpp), at the
    // event loop's next turn. Async-signal-safe, like request_stop().
    void request_reload();
    int reload_fd() const { return reload_fd_.get(); }
    // Before run().
    void set_hooks(CollectorHooks hooks) { hooks_ = std::move(hooks); }

    uint16_t port() const { return port_; }  // the bound port (listen port 0: chosen for it)
    const CollectorCounters& counters() const { return counters_; }
    const FileCounters& file_counters() const { return file_counters_; }
    // The HTTP listener's URL ("http://127.0.0.1:9470"); empty without --metrics.
    std::string metrics_url() const;
    // The Prometheus text GET /metrics serves (http.cpp); any thread.
    std::string metrics_text() const;

    // The exit summary (text) and its JSON form (summary.cpp).
    std::string summary_text() const;
    std::string summary_json() const;

  private:
    // An owned file descriptor: closed when it goes, so a constructor that
    // throws half-way closes what it opened (and releases the lock).
    class Fd {
      public:
        Fd() = default;
        explicit Fd(int fd) : fd_(fd) {}
        ~Fd() { reset(); }
        Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
        Fd& operator=(Fd&& o) noexcept;
        int get() const { return fd_; }
        void reset();

      private:
        int fd_ = -1;
    };

    uint32_t handshake_timeout_ms() const;
    void check_memory_budget() const;
    void raise_open_files_limit();
    void lock_output_dir();
    // The file lifecycle (lifecycle.cpp): templates, the files found, the
    // --on-rotate command; then, each second and at stop, retention.
    void open_files();
    void file_timers(uint64_t now_ns);
    void finish_files();
    void reload();
    void recover_streams();
    void timers(uint64_t now);
    void stats_line(uint64_t now);
    // The open stream `id`, opened (recovered from its state, or new) when
    // it is not. Throws std::runtime_error when its state cannot be trusted.
    // The caller made room (make_room_for_stream).
    Stream& stream(uint64_t id);
    // An open stream, or nullptr: never opens or creates one.
    Stream* find_stream(uint64_t id);
    // What a sender must prove to resume `session_id` of stream `id`, open
    // or not (retired streams keep it in their record).
    std::optional<session::ResumeTicket> resume_ticket(uint64_t id, uint64_t session_id) const;
    // Room for one more open stream under --max-streams: closes the
    // longest-idle stream without a sender if needed; false when every open
    // stream has one.
    bool make_room_for_stream();
    // Closes an open stream without a sender, keeping its record.
    void retire(uint64_t id);
    void retire_idle(uint64_t now);
    // Every stream, open or not, in id order: for the stats and the summary.
    std::vector<StreamRecord> stream_records() const;
    void run_group();  // run()'s loop for a group member
    friend class StreamHandler;
    friend class GroupSource;
    // The HTTP listener (http.cpp): started last by the constructor, stopped
    // first by run()'s shutdown. Its threads read the counters (relaxed
    // atomics) and the streams' board, which the event loop republishes
    // every timer turn; they never touch the streams themselves.
    void start_http();
    void stop_http();
    void publish_streams();
    void serve_query(const http::Request& req, http::Response& resp);
    // The HTTP listener's and GET /query's counters, for the summary.
    std::vector<std::pair<std::string, uint64_t>> http_counters() const;

    CollectorOptions opt_;
    StreamSettings settings_;
    Fd lock_fd_, epoll_fd_, stop_fd_, reload_fd_;
    uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    CollectorCounters counters_;
    FileCounters file_counters_;
    std::unique_ptr<FileStore> files_;
    std::unique_ptr<RotateCommand> on_rotate_;
    std::string abs_dir_;  // the output directory, absolute (for --on-rotate)
    uint64_t next_retention_ns_ = 0;
    std::unique_ptr<ZstdCompressor> zstd_;
    Workspace ws_;
    std::map<uint64_t, std::unique_ptr<Stream>> streams_;  // open
    std::map<uint64_t, StreamRecord> retired_;             // known, not open
    uint64_t next_retire_check_ns_ = 0;
    std::unique_ptr<StreamHandler> handler_;
    std::unique_ptr<tcp::TcpListener> tcp_;
    std::unique_ptr<rdma::RdmaListener> rdma_;
    std::unique_ptr<GroupSource> group_;
    uint64_t started_ns_ = 0;
    uint64_t next_timer_ns_ = 0, next_stats_ns_ = 0;
    // For the stats line's rates.
    uint64_t last_stats_ns_ = 0, last_packets_ = 0, last_bytes_ = 0;
    CollectorHooks hooks_;

    // What the HTTP threads may read of the streams: a copy, refreshed by
    // the event loop every 100 ms under board_mutex_.
    struct StreamBoard {
        uint64_t id = 0;
        bool connected = false;
        StreamTotals run;
    };
    mutable std::mutex board_mutex_;
    std::vector<StreamBoard> board_;
    QueryCounters query_counters_;
    std::atomic<uint32_t> queries_running_{0};
    std::atomic<bool> http_stopping_{false};  // running queries end at their next write
    std::unique_ptr<http::Server> http_;
};

}  // namespace sluice::collector
