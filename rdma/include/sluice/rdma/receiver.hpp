// The collector's end of the RDMA transport: an rdma_cm listener and, per
// sender, an RC queue pair with a registered ring of slots the sender writes
// frames into. RdmaListener owns the verbs objects; what a frame means (the
// stream, the file, duplicates, gaps) is the caller's, through
// ReceiverHandler: sluice-collector plugs its Stream logic in there.
//
// One thread. RdmaListener::fd() is an epoll descriptor that becomes
// readable when there is work (a connection event or a completion); the
// caller adds it to its own event loop and calls poll() then, and timers()
// every 100 ms or so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/rdma/protocol.hpp"

namespace sluice::rdma {

struct ListenerConfig {
    std::string host = "0.0.0.0";    // an address of an RDMA device's netdev
    uint16_t port = 7700;            // 0: chosen by rdma_cm (port() tells)
    std::vector<std::byte> key;      // senders must prove it; empty: none
    uint32_t slot_bytes = 1u << 20;  // largest frame a sender may write
    uint32_t slot_count = 64;        // frames in flight per connection
    uint32_t handshake_timeout_ms = 10000;
};

enum class CloseCause : uint8_t {
    PeerClosed,    // the sender disconnected, or its queue pair failed
    Version,       // refused: another transport version
    Auth,          // refused: key missing, unexpected or wrong
    Protocol,      // malformed private data or message, a write out of order
    BadFrame,      // a slot held a frame that failed verification
    Timeout,       // no handshake in time
    Storage,       // the handler could not write
    Replaced,      // the handler ended it for a newer connection of the stream
    ShuttingDown,  // the listener is stopping
    Resources,     // the collector could not set up the queue pair or ring
    Limit,         // a frame over one of the handler's bounds (never writable)
};

class ReceiverHandler {
  public:
    virtual ~ReceiverHandler() = default;

    struct HelloAnswer {
        bool accept = false;
        uint64_t resume_sequence = 0;
        bool new_session = false;
        RejectReason reason = RejectReason::Protocol;  // when !accept
        std::string text;
    };
    // A connect request arrived (before any check).
    virtual void on_request(const std::string& peer) { (void)peer; }
    // A sender proved the key (or none is configured): where does it resume?
    virtual HelloAnswer on_hello(uint64_t conn, const ConnectRequest& request,
                                 const std::string& peer) = 0;
    // A slot the sender wrote, in order: the bytes its write carried (at
    // most slot_bytes, from the slot's start: a whole frame, if the sender is
    // honest; nothing else of the slot is valid); the frame stays there until
    // on_batch_done() returned.
    // `sequence_bits` is the immediate's copy of the frame's sequence modulo
    // 2^16. False: the connection ends with `cause` (preset to BadFrame:
    // the frame failed verification), `why` saying what happened.
    virtual bool on_frame(uint64_t conn, std::span<const std::byte> slot, uint16_t sequence_bits,
                          std::string& why, CloseCause& cause) = 0;
    // Every frame since the last call is handed over: make them durable and
    // return the acknowledgement (next sequence to write); nullopt ends the
    // connection with CloseCause::Storage (`why`).
    virtual std::optional<uint64_t> on_batch_done(uint64_t conn, std::string& why) = 0;
    // The connection ended (once per connection that reached on_hello or
    // failed before; refused requests too, with conn 0 when none was made).
    virtual void on_closed(uint64_t conn, CloseCause cause, const std::string& why) = 0;
};

class RdmaListener {
  public:
    // Binds and listens. Throws std::runtime_error with the fix: no RDMA
    // device (names ibv_devices / rdma link), address not on an RDMA device,
    // port in use.
    RdmaListener(const ListenerConfig& config, ReceiverHandler& handler);
    ~RdmaListener();
    RdmaListener(const RdmaListener&) = delete;
    RdmaListener& operator=(const RdmaListener&) = delete;

    int fd() const;  // epoll descriptor: readable when poll() has work
    void poll(uint64_t now_ns);
    void timers(uint64_t now_ns);  // handshake timeouts, closing connections
    uint16_t port() const;

    // Ends a connection: a Reject message with `text`, then a disconnect.
    // on_closed() follows with `cause`.
    void close(uint64_t conn, CloseCause cause, RejectReason reason, const std::string& text);
    // Ends every connection (shutting down) and waits briefly for the
    // rejects to leave.
    void close_all(const std::string& text);
    std::size_t connections() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::rdma
