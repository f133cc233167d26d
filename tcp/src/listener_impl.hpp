// The TCP listener's insides, shared by listener.cpp (accepting, reading,
// frames, timers), listener_memory.cpp (--max-memory) and listener_tls.cpp
// (the TLS byte channel). Nothing outside tcp/ includes it.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "tls_channel.hpp"
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/session/byte_buffer.hpp"
#include "sluice/session/key.hpp"
#include "sluice/tcp/listener.hpp"
#include "sluice/tcp/receiver.hpp"

namespace sluice::tcp::listener_detail {

using session::ByteBuffer;
using session::CloseCause;
using session::ConnectionId;

constexpr uint64_t kTagListener = 0;
// After accept() failed for want of descriptors, the listener stops asking
// for this long (level-triggered epoll would report the same connection at
// once, forever, at 100% CPU).
constexpr uint64_t kAcceptPauseNs = 100'000'000;
constexpr std::size_t kRecvChunk = 1u << 20;      // bytes asked of one recv()
constexpr std::size_t kTurnBudget = 8u << 20;     // bytes one connection reads per turn
constexpr std::size_t kMaxPendingOut = 1u << 20;  // unsent replies: the peer does not read

struct Connection {
    Connection(ConnectionId id_, int fd_, std::string peer_,
               std::shared_ptr<const session::Keyring> keys, session::ReceiverHandler& handler)
        : id(id_), fd(fd_), peer(std::move(peer_)), session(std::move(keys), &handler) {}
    ConnectionId id;
    int fd;
    std::string peer;
    ReceiverSession session;
    ByteBuffer in;
    std::size_t in_off = 0;  // unparsed bytes: in[in_off, in.size())
    ByteBuffer out;
    std::size_t out_off = 0;
    bool want_write = false;
    bool streaming = false;  // welcomed: frames may come
    std::string source;      // the peer's address without its port, for per-source limits
    uint64_t stream_id = 0;
    uint64_t ack = 0;  // the latest acknowledgement (the resume point at first)
    uint64_t accepted_ns = 0;
    uint64_t last_rx_ns = 0;
    uint32_t heartbeat_ms = 0;
    bool closed = false;
    // --max-memory: the receive buffer's bytes charged to the budget, and
    // whether the connection waits for memory (not read; see wait_for_memory).
    std::size_t charged = 0;
    bool mem_waiting = false;
    std::size_t mem_wanted = 0;  // the capacity it waits for
    // With TLS: the context the connection began with (a reload replaces the
    // listener's, not this one), and the byte channel over fd.
    std::shared_ptr<const TlsContext> tls_ctx;
    std::unique_ptr<TlsChannel> tls;

    std::string name() const {
        return streaming ? fmt::format("stream {} from {}", stream_id, peer)
                         : fmt::format("connection from {}", peer);
    }
};

}  // namespace sluice::tcp::listener_detail

namespace sluice::tcp {

// tcp/ sources only.
using listener_detail::ByteBuffer;
using listener_detail::CloseCause;
using listener_detail::Connection;
using listener_detail::ConnectionId;

struct TcpListener::Impl {
    ListenerConfig cfg;
    session::ReceiverHandler& h;
    TcpListener& self;
    int listen_fd = -1;
    int epfd = -1;
    uint16_t port = 0;
    wire::FrameReader reader;
    ByteBuffer scratch;
    std::unordered_map<ConnectionId, std::unique_ptr<Connection>> conns;
    std::vector<ConnectionId> closed;  // freed after the event batch
    // Connections in their handshake, in total and by source address.
    uint32_t pending = 0, streaming = 0;
    std::unordered_map<std::string, uint32_t> pending_by_source;
    uint64_t accept_paused_until = 0;  // 0: accepting
    std::shared_ptr<const TlsContext> tls_ctx = make_tls_context(cfg.tls, TlsRole::Server);
    TlsCounters tls_stats;
    // --max-memory: what all receive buffers hold, and who waits, oldest first.
    uint64_t mem_used = 0;
    std::deque<ConnectionId> mem_waiters;

    Impl(const ListenerConfig& c, session::ReceiverHandler& handler, TcpListener& s)
        : cfg(c),
          h(handler),
          self(s),
          reader(wire::ReaderLimits{c.max_frame_bytes, c.max_frame_bytes, wire::kMaxSnaplen}) {
        scratch.resize(c.max_frame_bytes);
    }
    ~Impl() {
        for (auto& [id, c] : conns)
            if (!c->closed) ::close(c->fd);
        if (listen_fd >= 0) ::close(listen_fd);
        if (epfd >= 0) ::close(epfd);
    }

    Connection* find(ConnectionId id) {
        auto it = conns.find(id);
        return it == conns.end() || it->second->closed ? nullptr : it->second.get();
    }
    void listen();
    void accept_connections(uint64_t now);
    void on_readable(Connection& c, uint64_t now);
    // The receive buffer at `capacity` bytes, within --max-memory; false
    // when the budget has no room. Reading (a buffer to receive into, not a
    // frame known to need it) leaves room for one largest frame, so that a
    // connection holding a partial frame can always be given room for all
    // of it once others give theirs back.
    bool grow_in(Connection& c, std::size_t capacity, bool reading);
    void uncharge(Connection& c);
    void wait_for_memory(Connection& c, std::size_t capacity);
    // Frees the empty receive buffers of connections other than `asking`.
    void give_back_memory(const Connection* asking);
    void serve_memory_waiters(uint64_t now);
    void arm(Connection& c);  // epoll interest: reading unless waiting, writing if needed
    void process(Connection& c, uint64_t now);
    void on_hello(Connection& c, const Hello& hello, const session::Hello& checked);
    bool commit(Connection& c);
    void send(Connection& c, std::span<const std::byte> bytes);
    void flush(Connection& c);
    void close(Connection& c, CloseCause cause, const std::string& why);
    void reject(Connection& c, RejectReason reason, CloseCause cause, std::string_view why);
    void reap();
    void count_pending(Connection& c, int delta);
    void make_room_for_pending(uint64_t now);

    // TLS (the byte channel under the messages): a call that stands for
    // ::send / ::recv, and the handshake that comes before the CHALLENGE.
    ssize_t io_send(Connection& c, const void* buf, std::size_t len);
    ssize_t io_recv(Connection& c, void* buf, std::size_t len);
    const char* io_error(const Connection& c, int err) const;
    bool tls_accept(Connection& c);
    bool tls_handshake(Connection& c);
    bool tls_flush(Connection& c);
    void tls_want_write(Connection& c, bool on);
    void tls_grace(uint64_t now);
    static bool tls_backlog(const Connection& c) { return c.tls && c.tls->backlog(); }
    static bool tls_pending(const Connection& c) {
        return c.tls && c.tls->established() && c.tls->pending();
    }
};

}  // namespace sluice::tcp
