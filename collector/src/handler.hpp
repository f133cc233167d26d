// Not for inclusion outside collector/src (and its tests): what a sender's
// hello and frames mean at this collector, for every transport. The
// listeners own connections; this owns the answer to "which stream, where to
// resume, is this frame new, is it written" (Stream), the one connection
// that writes each stream, and the counters and log lines of connections.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "sluice/collector/collector.hpp"
#include "sluice/session/receiver.hpp"

namespace sluice::collector {

// A connection as the collector knows it; Stream::connection points to the
// one writing that stream.
struct Peer {
    session::ConnectionId id = 0;
    session::ReceiverTransport* transport = nullptr;
    std::string address;       // "10.0.0.2:51234", for the log
    Stream* stream = nullptr;  // after the hello
    uint64_t gap_logs = 0;     // gap warnings logged for this connection
};

class StreamHandler final : public session::ReceiverHandler {
  public:
    explicit StreamHandler(Collector& c) : c_(c) {}

    void on_connection(session::ConnectionId conn, session::ReceiverTransport& transport,
                       std::string_view peer) override;
    std::optional<session::ResumeTicket> resume_ticket(uint64_t stream_id,
                                                       uint64_t session_id) override;
    session::HelloAnswer on_hello(session::ConnectionId conn, const session::Hello& hello) override;
    bool on_frame(session::ConnectionId conn, const wire::FrameView& frame,
                  session::Refusal& refusal) override;
    std::optional<uint64_t> on_batch_done(session::ConnectionId conn,
                                          session::Refusal& refusal) override;
    void on_closed(session::ConnectionId conn, session::CloseCause cause,
                   std::string_view why) override;
    void on_listener_error(std::string_view what) override;
    void on_memory_wait() override { c_.counters_.memory_waits.inc(); }

    // The stream cannot be written (a timed rotation failed): end the
    // connection writing it.
    void drop_for_storage(Stream& s);

    // on_frame() with the outcome itself, for a source that acts on it (a
    // collector group's CommitFirst: group_source.cpp); false outcomes fill
    // `refusal` as on_frame() would.
    FrameOutcome frame_outcome(session::ConnectionId conn, const wire::FrameView& frame,
                               session::Refusal& refusal);

  private:
    Collector& c_;
    std::unordered_map<session::ConnectionId, Peer> peers_;
    uint64_t next_error_log_ns_ = 0;  // listener errors: one log line per interval
    uint64_t errors_unlogged_ = 0;
    // Lines about ended connections: a burst per interval (on_closed).
    uint64_t close_log_window_ns_ = 0;
    uint64_t close_logs_ = 0, closes_unlogged_ = 0;
};

}  // namespace sluice::collector
