// The receiving end, whatever carries the frames. A listener (TCP's
// tcp::TcpListener, RDMA's rdma::RdmaListener) owns connections: sockets or
// queue pairs, the handshake's bytes and proofs, frame verification, replies.
// What a sender's hello and frames *mean* (which stream, where to resume,
// duplicates, files, acknowledgements) belongs to one ReceiverHandler, which
// sluice-collector implements once for every transport.
//
// Per connection, a listener calls, on its owner's thread:
//
//   on_connection  -> on_hello (after the key proof) -> on_frame ... on_batch_done ... -> on_closed
//
// on_closed comes exactly once for every on_connection, whatever ends it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/session/hello.hpp"
#include "sluice/session/reject.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::session {

// Unique among every listener of a process (listeners draw from one counter).
using ConnectionId = uint64_t;
ConnectionId next_connection_id();

// Why a connection ended, for the handler's counters and log.
enum class CloseCause : uint8_t {
    PeerClosed,    // the sender closed, reset or disconnected it, or its queue pair failed
    PeerRejected,  // the sender ended it with a reason (e.g. the collector could not prove the key)
    Version,       // refused: another transport version
    Auth,          // refused: key missing, unexpected or wrong
    Protocol,      // malformed input: bad magic, a malformed message, a frame of another stream
    BadFrame,      // a frame failed verification (CRC, lengths, decompression)
    Timeout,       // no handshake in time, or silent too long
    Storage,       // the handler could not write
    Replaced,      // the handler ended it for a newer connection of the same stream
    ShuttingDown,  // the listener is stopping
    Busy,          // refused: the listener serves its maximum of connections
    PendingLimit,  // dropped in its handshake to make room for newer ones (too many pending)
    SourceLimit,   // refused: its source address has too many handshakes in progress
    Resources,     // the listener could not set up what the connection needs
    Limit,         // a frame over one of the handler's bounds (it can never be written)
    ResumeUnknown,  // a resume the handler cannot prove: no such session, or another secret
    Tls,            // refused: TLS failed (certificate, name, no client certificate, no TLS)
    StreamLimit,    // refused: the handler holds its maximum of open streams, all connected
    Memory,         // refused: what the connection needs does not fit the memory budget
};
std::string_view to_string(CloseCause c);
// The reason a sender is told for each cause.
RejectReason reject_reason(CloseCause c);

// Why the handler refuses a hello or a frame: the listener sends `reason`
// with `text`, ends the connection and reports `cause` in on_closed.
struct Refusal {
    CloseCause cause = CloseCause::Protocol;
    RejectReason reason = RejectReason::Protocol;
    std::string text;
};

struct HelloAnswer {
    bool accept = false;
    uint64_t resume_sequence = 0;  // every frame below is written: send from here
    bool new_session = false;      // the collector started a new sequence space
    Refusal refusal;               // when !accept
};

// What a handler may do to a listener's connections.
class ReceiverTransport {
  public:
    virtual ~ReceiverTransport() = default;
    // Ends a connection: the sender is told `reason` and `text`, then
    // on_closed() follows with `cause` (at once or within the poll).
    virtual void close(ConnectionId conn, CloseCause cause, RejectReason reason,
                       std::string_view text) = 0;
    virtual std::string_view name() const = 0;  // "tcp", "rdma"
};

class ReceiverHandler {
  public:
    virtual ~ReceiverHandler() = default;
    // A connection arrived (accepted, or requested), before any check.
    virtual void on_connection(ConnectionId conn, ReceiverTransport& transport,
                               std::string_view peer) = 0;
    // A sender asks to resume session `session_id` of `stream_id`: what the
    // handler keeps of that session, or nullopt when it has none (then the
    // sender is told ResumeUnknown and starts a new session). Called before
    // any proof: it must not create anything for a stream it does not know.
    // By default nothing can be resumed.
    virtual std::optional<ResumeTicket> resume_ticket(uint64_t stream_id, uint64_t session_id) {
        (void)stream_id, (void)session_id;
        return std::nullopt;
    }
    // The sender proved the key (or neither end has one), and the session's
    // secret when hello.resume: accept, saying where to resume, or refuse.
    // A hello without `resume` always starts a new session.
    virtual HelloAnswer on_hello(ConnectionId conn, const Hello& hello) = 0;
    // A frame of the hello's stream, verified (CRC, lengths, records), in
    // order. Its bytes stay valid until on_batch_done() returned. False:
    // the connection ends with `refusal` (what came before stays good: the
    // listener calls on_batch_done() first).
    virtual bool on_frame(ConnectionId conn, const wire::FrameView& frame, Refusal& refusal) = 0;
    // Every frame since the last call is handed over: make them durable and
    // return the acknowledgement (the next sequence to write); nullopt ends
    // the connection with `refusal`.
    virtual std::optional<uint64_t> on_batch_done(ConnectionId conn, Refusal& refusal) = 0;
    // The connection ended; `why` is for the log (which peer, what happened;
    // empty when there is nothing to say, e.g. shutting down).
    virtual void on_closed(ConnectionId conn, CloseCause cause, std::string_view why) = 0;
    // The listener itself failed at something no connection owns (accept(),
    // a device event): for the counters and the log (each failure is
    // reported; a persistent one must not flood the log).
    virtual void on_listener_error(std::string_view what) = 0;
    // A connection was not read (TCP) because the listener's receive
    // buffers reached their memory budget (--max-memory): it waits, and
    // its sender with it, until another connection gives memory back.
    virtual void on_memory_wait() {}
};

}  // namespace sluice::session
