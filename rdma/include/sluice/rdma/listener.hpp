// The collector's end of the RDMA transport: an rdma_cm listener and, per
// sender, an RC queue pair with a registered ring of slots the sender writes
// frames into. RdmaListener owns the verbs objects, the handshake and frame
// verification; what a hello and a frame mean (the stream, the file,
// duplicates, gaps) is the session::ReceiverHandler's, the same one the TCP
// listener serves.
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
#include "sluice/session/keyring.hpp"
#include "sluice/session/receiver.hpp"

namespace sluice::rdma {

struct ListenerConfig {
    std::string host = "0.0.0.0";  // an address of an RDMA device's netdev
    uint16_t port = 7700;          // 0: chosen by rdma_cm (port() tells)
    // The keys senders prove, and the streams each may write; null or
    // empty: none.
    std::shared_ptr<const session::Keyring> keys;
    uint32_t slot_bytes = 1u << 20;  // largest frame a sender may write
    uint32_t slot_count = 64;        // frames in flight per connection
    uint32_t handshake_timeout_ms = 5000;
    uint32_t max_frame_bytes = 16u << 20;  // decompressed size of a frame, at most
    // Connections before their Welcome (a queue pair and a few KiB each; the
    // ring comes only after the key proof): all sources, and per source
    // address. As for TCP: beyond the first, the oldest handshake of the
    // busiest source goes; beyond the second, the newcomer is refused.
    uint32_t max_pending = 64;
    uint32_t max_pending_per_source = 8;
    // Rings of all connections together, in bytes (0: no bound): a sender
    // that proved its key is refused (busy) when its ring does not fit.
    uint64_t max_memory = 0;
};

class RdmaListener final : public session::ReceiverTransport {
  public:
    // Binds and listens. Throws std::runtime_error with the fix: no RDMA
    // device (names ibv_devices / rdma link), address not on an RDMA device,
    // port in use.
    RdmaListener(const ListenerConfig& config, session::ReceiverHandler& handler);
    ~RdmaListener() override;
    RdmaListener(const RdmaListener&) = delete;
    RdmaListener& operator=(const RdmaListener&) = delete;

    int fd() const;  // epoll descriptor: readable when poll() has work
    void poll(uint64_t now_ns);
    void timers(uint64_t now_ns);  // handshake timeouts, closing connections
    uint16_t port() const;

    // session::ReceiverTransport: a Reject message with `text`, then a
    // disconnect; on_closed() follows with `cause`.
    void close(session::ConnectionId conn, session::CloseCause cause, RejectReason reason,
               std::string_view text) override;
    std::string_view name() const override { return "rdma"; }
    // Ends every connection (shutting down) and waits briefly for the
    // rejects to leave.
    void close_all(const std::string& text);
    std::size_t connections() const;
    // A reload (the collector's SIGHUP): handshakes from now on prove these
    // keys; established connections go on.
    void set_keys(std::shared_ptr<const session::Keyring> keys);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::rdma
