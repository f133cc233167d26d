#include "rdma_bridge.hpp"

#include <fmt/format.h>

#include "sluice/collector/log.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::collector {
namespace {
constexpr uint64_t kMaxGapLogsPerConnection = 10;
}

rdma::ReceiverHandler::HelloAnswer RdmaBridge::on_hello(uint64_t conn,
                                                        const rdma::ConnectRequest& rq,
                                                        const std::string& peer) {
    HelloAnswer a;
    Stream* s = nullptr;
    try {
        s = &c_.stream(rq.stream_id);
    } catch (const std::exception& e) {
        a.reason = tcp::RejectReason::Storage;
        a.text = fmt::format("stream {}: {}", rq.stream_id, e.what());
        return a;
    }
    if (s->connection) {
        const uint64_t old = static_cast<RdmaPeer*>(s->connection)->conn;
        listener->close(
            old, rdma::CloseCause::Replaced, tcp::RejectReason::Replaced,
            fmt::format("a new connection of stream {} from {} took over", rq.stream_id, peer));
    }
    tcp::Hello h;
    h.flags = (rq.flags & rdma::request_flag::kHasPosition) ? tcp::hello_flag::kHasPosition : 0;
    h.stream_id = rq.stream_id;
    h.session_id = rq.session_id;
    h.next_sequence = rq.next_sequence;
    h.next_packet_index = rq.next_packet_index;
    const auto v = s->on_hello(h);
    if (!v) {
        a.reason = tcp::RejectReason::Storage;
        a.text = fmt::format("the collector cannot write: {}", s->last_error());
        return a;
    }
    Entry& e = conns_[conn];
    e.stream = s;
    e.peer.conn = conn;
    e.peer.peer = peer;
    s->connection = &e.peer;
    c_.counters_.handshakes.inc();
    if (v->new_session && v->had_session) {
        log_info(
            "stream {} connected over RDMA from {}: new sender session {:016x} (the previous "
            "one ended at sequence {}), starting at sequence {}",
            rq.stream_id, peer, rq.session_id, v->previous_next_sequence, v->resume_sequence);
    } else {
        log_info("stream {} connected over RDMA from {}{}: resuming at sequence {}", rq.stream_id,
                 peer, v->new_session ? " (new stream)" : "", v->resume_sequence);
    }
    a.accept = true;
    a.resume_sequence = v->resume_sequence;
    a.new_session = v->new_session;
    return a;
}

bool RdmaBridge::on_frame(uint64_t conn, std::span<const std::byte> slot, uint16_t sequence_bits,
                          std::string& why, rdma::CloseCause& cause) {
    auto it = conns_.find(conn);
    if (it == conns_.end()) {
        why = "a frame on a connection without a stream";
        cause = rdma::CloseCause::Protocol;
        return false;
    }
    Entry& e = it->second;
    Stream& s = *e.stream;
    // Formatted only on the error paths: nothing is allocated per frame.
    const auto who = [&] { return fmt::format("stream {} from {}", s.id(), e.peer.peer); };
    const auto hdr = wire::parse_header(slot, c_.reader_.limits());
    if (!hdr) {
        why = fmt::format("{}: a ring slot holds a malformed frame: {}; connection dropped", who(),
                          wire::to_string(hdr.error()));
        return false;
    }
    // The header's lengths are the peer's word: the frame must be exactly
    // what the write carried, or the reader would look past it (and past the
    // ring, for a slot at its end).
    if (hdr->frame_len() != slot.size()) {
        why = fmt::format(
            "{}: a ring slot's write carried {} bytes but the frame in it (sequence {}) claims "
            "{}; connection dropped",
            who(), slot.size(), hdr->sequence, hdr->frame_len());
        return false;
    }
    const auto view = c_.reader_.open(slot, {c_.scratch_.data(), c_.scratch_.size()});
    if (!view) {
        why = fmt::format(
            "{}: a ring slot holds a malformed frame (sequence {}): {}; connection "
            "dropped",
            who(), hdr->sequence, wire::to_string(view.error()));
        return false;
    }
    const wire::FrameInfo& info = view->info();
    if (info.stream_id != s.id()) {
        why = fmt::format("{}: a frame of stream {} arrived on it; connection dropped", who(),
                          info.stream_id);
        cause = rdma::CloseCause::Protocol;
        return false;
    }
    if ((info.sequence & 0xffff) != sequence_bits) {
        why = fmt::format(
            "{}: the frame in the slot (sequence {}) is not the one its write "
            "announced (sequence bits {:#06x}); connection dropped",
            who(), info.sequence, sequence_bits);
        cause = rdma::CloseCause::Protocol;
        return false;
    }
    switch (s.add(*view)) {
        case FrameOutcome::Written:
        case FrameOutcome::Duplicate:
            break;
        case FrameOutcome::Gap:
            if (e.peer.gap_logs++ < kMaxGapLogsPerConnection) {
                log_warning(
                    "{}: frames {}..{} never arrived: {} packets lost at the sender (its "
                    "retransmit buffer overflowed: see submit_full there){}",
                    who(), info.sequence - s.last_gap_frames(), info.sequence - 1,
                    s.last_gap_packets(),
                    e.peer.gap_logs == kMaxGapLogsPerConnection
                        ? "; further gaps on this connection are only counted"
                        : "");
            }
            break;
        case FrameOutcome::StorageError:
            why = fmt::format("{}: the collector cannot write: {}", who(), s.last_error());
            cause = rdma::CloseCause::Storage;
            return false;
        case FrameOutcome::TooManyInterfaces:
            why = fmt::format("{}: {}; connection dropped", who(),
                              too_many_interfaces(info.sequence));
            cause = rdma::CloseCause::Limit;
            return false;
    }
    return true;
}

std::optional<uint64_t> RdmaBridge::on_batch_done(uint64_t conn, std::string& why) {
    auto it = conns_.find(conn);
    if (it == conns_.end()) return 0;
    Stream& s = *it->second.stream;
    if (!s.commit()) {
        why = fmt::format("stream {} from {}: the collector cannot write: {}", s.id(),
                          it->second.peer.peer, s.last_error());
        return std::nullopt;
    }
    return s.acknowledged();
}

void RdmaBridge::on_closed(uint64_t conn, rdma::CloseCause cause, const std::string& why) {
    CollectorCounters& k = c_.counters_;
    using C = rdma::CloseCause;
    switch (cause) {
        case C::PeerClosed:
            k.closed_by_peer.inc();
            break;
        case C::Version:
            k.refused_version.inc();
            break;
        case C::Auth:
            k.refused_auth.inc();
            break;
        case C::Protocol:
            k.dropped_protocol.inc();
            break;
        case C::BadFrame:
            k.dropped_bad_frame.inc();
            break;
        case C::Timeout:
            k.dropped_timeout.inc();
            break;
        case C::Storage:
            k.dropped_storage.inc();
            break;
        case C::Replaced:
            k.dropped_replaced.inc();
            break;
        case C::Resources:
            k.dropped_busy.inc();
            break;
        case C::Limit:
            k.dropped_over_limit.inc();
            break;
        case C::ShuttingDown:
            break;
    }
    if (cause == C::BadFrame || cause == C::Protocol || cause == C::Auth || cause == C::Version ||
        cause == C::Limit)
        log_warning("{}", why);
    else if (!why.empty())
        log_info("{}", why);
    auto it = conns_.find(conn);
    if (it == conns_.end()) return;
    Stream* s = it->second.stream;
    if (s && s->connection == &it->second.peer) {
        s->connection = nullptr;
        s->close_file();
    }
    conns_.erase(it);
}

}  // namespace sluice::collector
