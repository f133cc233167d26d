#include "handler.hpp"

#include <fmt/format.h>

#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"

namespace sluice::collector {
namespace {

using report::log_info;
using report::log_warning;
using session::CloseCause;
using session::RejectReason;

constexpr uint64_t kMaxGapLogsPerConnection = 10;
constexpr uint64_t kErrorLogIntervalNs = 10'000'000'000ull;
// A storm of refusals (a scanner, a sender retrying a wrong key in a loop,
// thousands of half-open connections) must not flood the log: at most this
// many lines about ended connections per interval; the counters keep every
// one, and the next line after the interval says how many were left out.
constexpr uint64_t kCloseLogBurst = 20;
constexpr uint64_t kCloseLogIntervalNs = 10'000'000'000ull;

session::Refusal refusal(CloseCause cause, std::string text) {
    return {cause, session::reject_reason(cause), std::move(text)};
}

std::string too_many_interfaces(uint64_t sequence) {
    return fmt::format(
        "frame {} names more than {} (port, queue) interfaces, more than a pcapng file of the "
        "collector holds: it can never be written",
        sequence, StreamState::kMaxInterfaces);
}

}  // namespace

void StreamHandler::on_connection(session::ConnectionId conn, session::ReceiverTransport& transport,
                                  std::string_view peer) {
    c_.counters_.connections_accepted.inc();
    Peer& p = peers_[conn];
    p.id = conn;
    p.transport = &transport;
    p.address = std::string(peer);
}

std::optional<session::ResumeTicket> StreamHandler::resume_ticket(uint64_t stream_id,
                                                                  uint64_t session_id) {
    // Every stream with state was recovered at start (open or not, its
    // record is kept): one not found has no session to resume, and nothing
    // is opened or created for an unproven peer.
    return c_.resume_ticket(stream_id, session_id);
}

session::HelloAnswer StreamHandler::on_hello(session::ConnectionId conn,
                                             const session::Hello& hello) {
    session::HelloAnswer a;
    auto it = peers_.find(conn);
    if (it == peers_.end()) {
        a.refusal = refusal(CloseCause::Protocol, "internal: a hello on an unknown connection");
        return a;
    }
    Peer& p = it->second;
    Stream* s = nullptr;
    if (!c_.find_stream(hello.stream_id) && !c_.make_room_for_stream()) {
        a.refusal = {CloseCause::StreamLimit, RejectReason::Busy,
                     fmt::format("the collector has its maximum of {} streams open "
                                 "(--max-streams), each with a sender connected",
                                 c_.opt_.max_streams)};
        return a;
    }
    try {
        s = &c_.stream(hello.stream_id);
    } catch (const std::exception& e) {
        a.refusal =
            refusal(CloseCause::Storage, fmt::format("stream {}: {}", hello.stream_id, e.what()));
        return a;
    }
    if (s->connection && s->connection != &p) {
        // on_closed() below detaches the old connection from the stream.
        const Peer& old = *s->connection;
        old.transport->close(old.id, CloseCause::Replaced, RejectReason::Replaced,
                             fmt::format("a new connection of stream {} from {} took over",
                                         hello.stream_id, p.address));
    }
    const auto v = s->on_hello(hello);
    if (!v) {
        a.refusal = refusal(CloseCause::Storage,
                            fmt::format("the collector cannot write: {}", s->last_error()));
        return a;
    }
    p.stream = s;
    s->connection = &p;
    c_.counters_.handshakes.inc();
    // TCP and JetStream peers say what they are in their address.
    const std::string_view over =
        p.transport->name() == "rdma" ? std::string_view(" over RDMA") : std::string_view();
    if (v->new_session && v->had_session) {
        log_info(
            "stream {} connected{} from {}: new sender session {:016x} (the previous one ended "
            "at sequence {}), starting at sequence {}",
            hello.stream_id, over, p.address, hello.session_id, v->previous_next_sequence,
            v->resume_sequence);
    } else {
        log_info("stream {} connected{} from {}{}: resuming at sequence {}", hello.stream_id, over,
                 p.address, v->new_session ? " (new stream)" : "", v->resume_sequence);
    }
    a.accept = true;
    a.resume_sequence = v->resume_sequence;
    a.new_session = v->new_session;
    return a;
}

bool StreamHandler::on_frame(session::ConnectionId conn, const wire::FrameView& frame,
                             session::Refusal& r) {
    switch (frame_outcome(conn, frame, r)) {
        case FrameOutcome::Written:
        case FrameOutcome::Duplicate:
        case FrameOutcome::Gap:
            return true;
        case FrameOutcome::StorageError:
        case FrameOutcome::TooManyInterfaces:
        case FrameOutcome::CommitFirst:
            break;
    }
    return false;
}

FrameOutcome StreamHandler::frame_outcome(session::ConnectionId conn, const wire::FrameView& frame,
                                          session::Refusal& r) {
    auto it = peers_.find(conn);
    if (it == peers_.end() || !it->second.stream) {
        r = refusal(CloseCause::Protocol, "a frame on a connection without a stream");
        return FrameOutcome::StorageError;
    }
    Peer& p = it->second;
    Stream& s = *p.stream;
    const wire::FrameInfo& info = frame.info();
    // Formatted only on the error paths: nothing is allocated per frame.
    const FrameOutcome outcome = s.add(frame);
    switch (outcome) {
        case FrameOutcome::Written:
        case FrameOutcome::Duplicate:
        case FrameOutcome::CommitFirst:
            break;
        case FrameOutcome::Gap:
            if (p.gap_logs++ < kMaxGapLogsPerConnection) {
                log_warning(
                    "stream {} from {}: frames {}..{} never arrived: {} packets lost before "
                    "the collector (a sender's retransmit buffer overflowed: see submit_full "
                    "there; or JetStream's limits removed them unread){}",
                    s.id(), p.address, info.sequence - s.last_gap_frames(), info.sequence - 1,
                    s.last_gap_packets(),
                    p.gap_logs == kMaxGapLogsPerConnection
                        ? "; further gaps on this connection are only counted"
                        : "");
            }
            break;
        case FrameOutcome::StorageError:
            r = refusal(CloseCause::Storage,
                        fmt::format("the collector cannot write: {}", s.last_error()));
            break;
        case FrameOutcome::TooManyInterfaces:
            r = refusal(CloseCause::Limit, too_many_interfaces(info.sequence));
            break;
    }
    return outcome;
}

std::optional<uint64_t> StreamHandler::on_batch_done(session::ConnectionId conn,
                                                     session::Refusal& r) {
    auto it = peers_.find(conn);
    if (it == peers_.end() || !it->second.stream) return 0;
    Stream& s = *it->second.stream;
    const bool writes = s.dirty();
    if (!s.commit()) {
        r = refusal(CloseCause::Storage,
                    fmt::format("the collector cannot write: {}", s.last_error()));
        return std::nullopt;
    }
    if (writes) c_.counters_.batches_written.inc();
    return s.acknowledged();
}

void StreamHandler::on_closed(session::ConnectionId conn, CloseCause cause, std::string_view why) {
    CollectorCounters& k = c_.counters_;
    switch (cause) {
        case CloseCause::PeerClosed:
            k.closed_by_peer.inc();
            break;
        case CloseCause::PeerRejected:
            k.rejected_by_peer.inc();
            break;
        case CloseCause::Version:
            k.refused_version.inc();
            break;
        case CloseCause::Auth:
            k.refused_auth.inc();
            break;
        case CloseCause::Tls:
            k.refused_tls.inc();
            break;
        case CloseCause::Protocol:
            k.dropped_protocol.inc();
            break;
        case CloseCause::BadFrame:
            k.dropped_bad_frame.inc();
            break;
        case CloseCause::Timeout:
            k.dropped_timeout.inc();
            break;
        case CloseCause::Storage:
            k.dropped_storage.inc();
            break;
        case CloseCause::Replaced:
            k.dropped_replaced.inc();
            break;
        case CloseCause::Busy:
        case CloseCause::Resources:
            k.dropped_busy.inc();
            break;
        case CloseCause::PendingLimit:
            k.dropped_pending.inc();
            break;
        case CloseCause::SourceLimit:
            k.refused_per_source.inc();
            break;
        case CloseCause::Limit:
            k.dropped_over_limit.inc();
            break;
        case CloseCause::ResumeUnknown:
            k.refused_resume.inc();
            break;
        case CloseCause::StreamLimit:
            k.refused_streams.inc();
            break;
        case CloseCause::Memory:
            k.refused_memory.inc();
            break;
        case CloseCause::ShuttingDown:
            break;
    }
    const bool hostile = cause == CloseCause::BadFrame || cause == CloseCause::Protocol ||
                         cause == CloseCause::Auth || cause == CloseCause::Version ||
                         cause == CloseCause::Limit;
    if (!why.empty()) {
        const uint64_t now = session::monotonic_ns();
        if (now - close_log_window_ns_ >= kCloseLogIntervalNs) {
            if (closes_unlogged_)
                log_warning(
                    "{} more connections ended in {} s than the log shows ({} lines at most "
                    "per {} s): the counters (stats line, summary) hold every one",
                    closes_unlogged_, (now - close_log_window_ns_) / 1'000'000'000u, kCloseLogBurst,
                    kCloseLogIntervalNs / 1'000'000'000u);
            close_log_window_ns_ = now;
            close_logs_ = 0;
            closes_unlogged_ = 0;
        }
        if (close_logs_ < kCloseLogBurst) {
            ++close_logs_;
            if (hostile)
                log_warning("{}", why);
            else
                log_info("{}", why);
        } else {
            ++closes_unlogged_;
        }
    }
    auto it = peers_.find(conn);
    if (it == peers_.end()) return;
    Stream* s = it->second.stream;
    if (s && s->connection == &it->second) {
        s->connection = nullptr;
        s->close_file();
        s->idle_since_ns = session::monotonic_ns();
    }
    peers_.erase(it);
}

void StreamHandler::on_listener_error(std::string_view what) {
    c_.counters_.listener_errors.inc();
    // One line per interval, saying how many were not logged.
    const uint64_t now = session::monotonic_ns();
    if (now < next_error_log_ns_) {
        ++errors_unlogged_;
        return;
    }
    if (errors_unlogged_)
        log_warning("{} ({} more since the last report)", what, errors_unlogged_);
    else
        log_warning("{}", what);
    errors_unlogged_ = 0;
    next_error_log_ns_ = now + kErrorLogIntervalNs;
}

void StreamHandler::drop_for_storage(Stream& s) {
    if (!s.connection) return;
    const Peer& p = *s.connection;
    p.transport->close(p.id, CloseCause::Storage, RejectReason::Storage,
                       fmt::format("the collector cannot write: {}", s.last_error()));
}

}  // namespace sluice::collector
