// TcpListener: the collector's end of the TCP transport. It accepts
// connections, speaks the handshake (ReceiverSession: CHALLENGE, HELLO and
// its proof, WELCOME), verifies frames as they arrive, and hands hellos and
// frames to a session::ReceiverHandler, which decides what they mean. Each
// readable connection gets a bounded share of work per turn, so a busy or
// broken peer never stalls the others.
//
// One thread. fd() is an epoll descriptor that becomes readable when there
// is work; the owner adds it to its own event loop and calls poll() then,
// and timers() every 100 ms or so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "sluice/session/endpoint.hpp"
#include "sluice/session/keyring.hpp"
#include "sluice/session/receiver.hpp"
#include "sluice/tcp/tls.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::tcp {

// What one listener holds at most, so that nothing a peer sends (or fails to
// send) can exhaust it, and no connection still in its handshake can keep an
// authenticated sender out (docs/security.md).
struct ListenerConfig {
    session::Endpoint listen{"127.0.0.1", 7700};  // port 0: chosen by the kernel (port() tells)
    // The keys senders prove, and the streams each may write; null or
    // empty: none (loopback only).
    std::shared_ptr<const session::Keyring> keys;
    uint32_t max_frame_bytes = 16u << 20;  // larger frames are refused
    // A connection must complete its handshake within this; it holds no
    // more than a few KiB until then.
    uint32_t handshake_timeout_ms = 5000;
    // A streaming connection silent this long (and three of its heartbeat
    // intervals, when it sends heartbeats) is dropped.
    uint32_t idle_timeout_ms = 10000;
    uint32_t max_connections = 1024;  // streaming (authenticated) ones; beyond: REJECT busy
    // Connections in their handshake, all sources: beyond, the oldest one of
    // the source holding the most is dropped to make room.
    uint32_t max_pending = 64;
    // ... and from one source address: beyond, the newcomer is refused.
    uint32_t max_pending_per_source = 8;
    // Receive buffers of all connections together, in bytes (0: no bound).
    // A connection whose next frame does not fit is not read (TCP pushes
    // back on its sender) until others give memory back; one that waits
    // keeps its connection. At least max_frame_bytes + 2 MiB, so that one
    // frame always fits.
    uint64_t max_memory = 0;
    // TLS 1.3 when tls.cert is set (tls.hpp): the CHALLENGE follows the TLS
    // handshake; a peer that starts none is told in plaintext, once.
    TlsSettings tls;
};

class TcpListener final : public session::ReceiverTransport {
  public:
    // Binds and listens. Throws std::runtime_error with the fix (address in
    // use, no such local address).
    TcpListener(const ListenerConfig& config, session::ReceiverHandler& handler);
    ~TcpListener() override;
    TcpListener(const TcpListener&) = delete;
    TcpListener& operator=(const TcpListener&) = delete;

    int fd() const;  // epoll descriptor: readable when poll() has work
    void poll(uint64_t now_ns);
    void timers(uint64_t now_ns);  // handshake and idle timeouts
    uint16_t port() const;
    std::size_t connections() const;
    const TlsCounters& tls_stats() const;
    // Bytes the receive buffers hold now (charged against max_memory), and
    // connections waiting for memory.
    uint64_t memory_bytes() const;
    std::size_t memory_waiting() const;

    // A reload (the collector's SIGHUP): connections accepted from now on
    // prove these keys; those accepted before keep the keys they began
    // with, and established connections go on.
    void set_keys(std::shared_ptr<const session::Keyring> keys);
    // Reads the TLS certificate, key and CA files again (the same paths):
    // new handshakes use them. Throws std::invalid_argument, as
    // check_tls_files(), and then keeps the ones in use. Nothing without TLS.
    void reload_tls();

    // session::ReceiverTransport
    void close(session::ConnectionId conn, session::CloseCause cause, session::RejectReason reason,
               std::string_view text) override;
    std::string_view name() const override { return "tcp"; }

    // Stopping: every connection gets its last acknowledgement and a REJECT
    // shutting-down with `text`, then is closed.
    void close_all(std::string_view text);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::tcp
