#include "sluice/tcp/listener.hpp"

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
#include "sluice/tcp/receiver.hpp"

namespace sluice::tcp {
namespace {

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

CloseCause cause_of(const ReceiverStep& step) {
    if (step.wire_error) return CloseCause::BadFrame;
    if (step.tls) return CloseCause::Tls;
    switch (step.reason) {
        case RejectReason::Version:
            return CloseCause::Version;
        case RejectReason::AuthFailed:
        case RejectReason::KeyRequired:
        case RejectReason::KeyUnexpected:
            return CloseCause::Auth;
        case RejectReason::ResumeUnknown:
            return CloseCause::ResumeUnknown;
        default:
            return CloseCause::Protocol;
    }
}

}  // namespace

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

void TcpListener::Impl::listen() {
    const session::ResolvedAddress addr = session::resolve(cfg.listen, true);
    listen_fd = ::socket(addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) throw std::runtime_error(fmt::format("socket(): {}", std::strerror(errno)));
    const int one = 1;
    ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
        const int e = errno;
        throw std::runtime_error(fmt::format(
            "cannot listen on {}: {}{}", cfg.listen.to_string(), std::strerror(e),
            e == EADDRINUSE ? " (another collector or program uses the port: stop it or choose "
                              "another --listen port)"
            : e == EADDRNOTAVAIL ? " (no local interface has that address)"
                                 : ""));
    }
    if (::listen(listen_fd, 128) != 0)
        throw std::runtime_error(fmt::format("listen(): {}", std::strerror(errno)));
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &blen);
    port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw std::runtime_error(fmt::format("epoll: {}", std::strerror(errno)));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagListener;
    ::epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
}

TcpListener::TcpListener(const ListenerConfig& config, session::ReceiverHandler& handler)
    : impl_(std::make_unique<Impl>(config, handler, *this)) {
    impl_->listen();
}

TcpListener::~TcpListener() = default;

int TcpListener::fd() const {
    return impl_->epfd;
}
uint16_t TcpListener::port() const {
    return impl_->port;
}
std::size_t TcpListener::connections() const {
    return impl_->conns.size();
}
const TlsCounters& TcpListener::tls_stats() const {
    return impl_->tls_stats;
}

void TcpListener::set_keys(std::shared_ptr<const session::Keyring> keys) {
    impl_->cfg.keys = std::move(keys);
}

void TcpListener::reload_tls() {
    if (!impl_->tls_ctx) return;
    check_tls_files(impl_->cfg.tls, TlsRole::Server);
    impl_->tls_ctx = make_tls_context(impl_->cfg.tls, TlsRole::Server);
}

void TcpListener::Impl::count_pending(Connection& c, int delta) {
    pending += static_cast<uint32_t>(delta);
    uint32_t& n = pending_by_source[c.source];
    n += static_cast<uint32_t>(delta);
    if (n == 0) pending_by_source.erase(c.source);
}

// The global pending limit is reached: drop the oldest handshake of the
// source that holds the most, so a flood from a few addresses evicts itself
// rather than the one honest sender in the middle of its handshake.
void TcpListener::Impl::make_room_for_pending(uint64_t now) {
    (void)now;
    const std::string* worst = nullptr;
    uint32_t most = 0;
    for (const auto& [source, n] : pending_by_source) {
        if (n > most) most = n, worst = &source;
    }
    if (!worst) return;
    Connection* victim = nullptr;
    for (auto& [id, c] : conns) {
        if (c->closed || c->streaming || c->source != *worst) continue;
        if (!victim || c->accepted_ns < victim->accepted_ns) victim = c.get();
    }
    if (victim)
        reject(*victim, RejectReason::Busy, CloseCause::PendingLimit,
               fmt::format("dropped to make room: {} connections were in their handshake "
                           "(--max-pending), {} of them from {}",
                           pending, most, victim->source));
}

void TcpListener::Impl::close(Connection& c, CloseCause cause, const std::string& why) {
    if (c.closed) return;
    if (c.streaming)
        --streaming;
    else
        count_pending(c, -1);
    ::epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.closed = true;
    uncharge(c);
    closed.push_back(c.id);
    h.on_closed(c.id, cause, why);
}

void TcpListener::Impl::reject(Connection& c, RejectReason reason, CloseCause cause,
                               std::string_view why) {
    send(c, c.session.reject(reason, why));
    close(c, cause, fmt::format("{}: {}; connection dropped", c.name(), why));
}

void TcpListener::Impl::reap() {
    for (ConnectionId id : closed)
        conns.erase(id);
    closed.clear();
}

void TcpListener::Impl::accept_connections(uint64_t now) {
    if (accept_paused_until) return;
    for (;;) {
        sockaddr_storage a{};
        socklen_t len = sizeof a;
        const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&a), &len,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            const int e = errno;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                // The connection stays in the backlog; ask again later.
                accept_paused_until = now + kAcceptPauseNs;
                epoll_event ev{};
                ev.events = 0;
                ev.data.u64 = kTagListener;
                ::epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev);
            }
            h.on_listener_error(fmt::format("accept: {}{}", std::strerror(e),
                                            e == EMFILE || e == ENFILE
                                                ? " (raise the open files limit: ulimit -n, or "
                                                  "LimitNOFILE= in the unit); new connections "
                                                  "wait in the backlog"
                                                : ""));
            return;
        }
        const ConnectionId id = session::next_connection_id();
        const std::string peer = session::format_address(reinterpret_cast<sockaddr*>(&a), len);
        auto c = std::make_unique<Connection>(id, fd, peer, cfg.keys, h);
        c->source = peer.substr(0, peer.rfind(':'));
        c->accepted_ns = c->last_rx_ns = now;
        const int one = 1;
        // ACKs are small and the sender waits for them: no Nagle delay.
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Connection& ref = *c;
        conns.emplace(id, std::move(c));
        count_pending(ref, +1);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = id;
        ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
        h.on_connection(id, self, ref.peer);
        if (pending_by_source[ref.source] > cfg.max_pending_per_source) {
            reject(ref, RejectReason::Busy, CloseCause::SourceLimit,
                   fmt::format("{} connections from {} are in their handshake already "
                               "(--max-pending-per-source {})",
                               pending_by_source[ref.source] - 1, ref.source,
                               cfg.max_pending_per_source));
            continue;
        }
        if (pending > cfg.max_pending) make_room_for_pending(now);
        if (ref.closed) continue;
        if (tls_ctx) {
            tls_accept(ref);  // the CHALLENGE follows the TLS handshake
            continue;
        }
        session::Nonce nonce;
        if (!session::random_bytes(nonce)) {
            close(ref, CloseCause::Resources,
                  fmt::format("{}: the system's random generator failed", ref.name()));
            continue;
        }
        ref.in.reserve(4096);
        send(ref, ref.session.challenge(nonce));
    }
}

void TcpListener::Impl::send(Connection& c, std::span<const std::byte> bytes) {
    if (c.closed || bytes.empty()) return;
    std::size_t done = 0;
    if (c.out.size() == c.out_off) {
        const ssize_t n = io_send(c, bytes.data(), bytes.size());
        if (n > 0) done = static_cast<std::size_t>(n);
    }
    if (done == bytes.size() && !tls_backlog(c)) return;
    if (c.out.size() - c.out_off + bytes.size() - done > kMaxPendingOut) {
        close(c, CloseCause::Protocol,
              fmt::format("{}: the peer reads nothing (its receive buffer is full): dropped",
                          c.name()));
        return;
    }
    c.out.append(bytes.data() + done, bytes.size() - done);
    if (!c.want_write) {
        c.want_write = true;
        arm(c);
    }
}

void TcpListener::Impl::flush(Connection& c) {
    if (c.tls && !tls_flush(c)) return;
    while (c.out_off < c.out.size()) {
        const ssize_t n = io_send(c, c.out.data() + c.out_off, c.out.size() - c.out_off);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            close(c, CloseCause::PeerClosed,
                  fmt::format("{}: connection lost: {}", c.name(), io_error(c, errno)));
            return;
        }
        c.out_off += static_cast<std::size_t>(n);
    }
    c.out.clear();
    c.out_off = 0;
    if (c.want_write && !tls_backlog(c)) {
        c.want_write = false;
        arm(c);
    }
}

void TcpListener::Impl::on_readable(Connection& c, uint64_t now) {
    if (c.tls && !c.tls->established() && !tls_handshake(c)) return;
    if (c.mem_waiting) return;
    std::size_t budget = kTurnBudget;
    // Bytes OpenSSL decrypted already wake no epoll: read them out too.
    while ((budget > 0 || tls_pending(c)) && !c.closed) {
        const std::size_t chunk = c.streaming ? kRecvChunk : 4096;
        if (c.in.capacity() - c.in.size() < chunk / 4) {
            // Move the unparsed tail to the front before growing.
            if (c.in_off) {
                c.in.consume(c.in_off);
                c.in_off = 0;
            }
            // Without room in the budget, what room there is will do; with
            // none at all the connection waits for memory.
            if (c.in.capacity() - c.in.size() < chunk / 4 &&
                !grow_in(c, c.in.size() + chunk, /*reading=*/true) &&
                c.in.capacity() == c.in.size()) {
                wait_for_memory(c, c.in.size() + chunk);
                return;
            }
        }
        const std::size_t room = c.in.capacity() - c.in.size();
        const ssize_t n = io_recv(c, c.in.data() + c.in.size(), room);
        if (n == 0) {
            close(c, CloseCause::PeerClosed,
                  fmt::format("{}: the peer closed the connection{}", c.name(),
                              c.streaming ? "" : " before completing the handshake"));
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            close(c, errno == EPROTO ? CloseCause::Tls : CloseCause::PeerClosed,
                  fmt::format("{}: connection lost: {}", c.name(), io_error(c, errno)));
            return;
        }
        c.in.resize(c.in.size() + static_cast<std::size_t>(n));
        c.last_rx_ns = now;
        budget -= std::min(budget, static_cast<std::size_t>(n));
        process(c, now);
    }
}

void TcpListener::Impl::on_hello(Connection& c, const Hello& hello, const session::Hello& checked) {
    // Handshakes in progress never count against authenticated connections:
    // only these do.
    if (streaming >= cfg.max_connections) {
        reject(c, RejectReason::Busy, CloseCause::Busy,
               fmt::format("the collector serves its maximum of {} connections "
                           "(--max-connections)",
                           cfg.max_connections));
        return;
    }
    const session::HelloAnswer a = h.on_hello(c.id, checked);
    if (c.closed) return;
    if (!a.accept) {
        reject(c, a.refusal.reason, a.refusal.cause, a.refusal.text);
        return;
    }
    count_pending(c, -1);
    ++streaming;
    c.streaming = true;
    c.stream_id = hello.stream_id;
    c.heartbeat_ms = hello.heartbeat_ms;
    c.ack = a.resume_sequence;
    send(c, c.session.welcome(a.resume_sequence, a.new_session));
}

bool TcpListener::Impl::commit(Connection& c) {
    session::Refusal r;
    const auto ack = h.on_batch_done(c.id, r);
    if (c.closed) return false;
    if (!ack) {
        reject(c, r.reason, r.cause, r.text);
        return false;
    }
    c.ack = *ack;
    return true;
}

void TcpListener::Impl::process(Connection& c, uint64_t now) {
    (void)now;
    bool ack_due = false;
    bool frames = false;
    std::size_t needed = 0;
    while (!c.closed) {
        const std::span<const std::byte> in{c.in.data() + c.in_off, c.in.size() - c.in_off};
        const ReceiverStep step = c.session.next(in, reader, {scratch.data(), scratch.size()});
        if (step.kind == StepKind::NeedMore) {
            needed = step.needed;
            break;
        }
        c.in_off += step.consumed;
        switch (step.kind) {
            case StepKind::Hello:
                on_hello(c, step.hello, step.checked);
                break;
            case StepKind::Frame: {
                frames = true;
                session::Refusal r;
                if (!h.on_frame(c.id, step.frame, r)) {
                    // What came before it is good: keep it.
                    if (!c.closed && commit(c)) send(c, c.session.ack(c.ack));
                    if (!c.closed) reject(c, r.reason, r.cause, r.text);
                    return;
                }
                break;
            }
            case StepKind::Heartbeat:
                ack_due = true;
                break;
            case StepKind::Failed: {
                const std::string why =
                    fmt::format("{}: {}; connection dropped", c.name(), step.detail);
                // ack() below reuses the session's output buffer.
                const std::vector<std::byte> reply(step.reply.begin(), step.reply.end());
                // Whatever arrived before the bad bytes is good: keep it.
                if (frames && commit(c)) send(c, c.session.ack(c.ack));
                send(c, reply);
                close(c, cause_of(step), why);
                return;
            }
            case StepKind::PeerRejected: {
                std::string text;
                for (char ch : step.detail)
                    text += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
                close(c, CloseCause::PeerRejected,
                      fmt::format("{}: the sender ended the connection ({}): {}", c.name(),
                                  session::to_string(step.reason), text));
                return;
            }
            case StepKind::NeedMore:
                break;
        }
    }
    if (c.closed) return;
    // The frames may point into the receive buffer: they are written before
    // the buffer moves.
    if (frames) {
        if (!commit(c)) return;
        ack_due = true;
    }
    if (ack_due && c.streaming) send(c, c.session.ack(c.ack));
    if (c.in_off == c.in.size()) {
        c.in.clear();
        c.in_off = 0;
        // Someone waits for memory: an empty buffer gives its memory back.
        if (!mem_waiters.empty() && c.charged) {
            uncharge(c);
            c.in.release();
        }
    } else if (needed > c.in.capacity() - c.in_off) {
        c.in.consume(c.in_off);
        c.in_off = 0;
        if (!grow_in(c, needed, /*reading=*/false)) wait_for_memory(c, needed);
    }
}

// ---- --max-memory: receive buffers within one budget -------------------------

bool TcpListener::Impl::grow_in(Connection& c, std::size_t capacity, bool reading) {
    if (capacity <= c.in.capacity()) return true;
    if (cfg.max_memory) {
        // Reading leaves room for one largest frame (and its header).
        const uint64_t reserve = reading ? uint64_t{cfg.max_frame_bytes} + (1u << 20) : 0;
        const uint64_t limit = cfg.max_memory > reserve ? cfg.max_memory - reserve : 0;
        if (mem_used + (capacity - c.in.capacity()) > limit) {
            give_back_memory(&c);
            if (mem_used + (capacity - c.in.capacity()) > limit) return false;
        }
    }
    const std::size_t more = capacity - c.in.capacity();
    c.in.reserve_exact(capacity);
    c.charged += more;
    mem_used += more;
    return true;
}

void TcpListener::Impl::uncharge(Connection& c) {
    mem_used -= c.charged;
    c.charged = 0;
}

void TcpListener::Impl::give_back_memory(const Connection* asking) {
    for (auto& [id, cp] : conns) {
        Connection& o = *cp;
        if (&o == asking || o.closed || o.mem_waiting || !o.charged || o.in_off != o.in.size())
            continue;
        uncharge(o);
        o.in.release();
        o.in_off = 0;
    }
}

void TcpListener::Impl::wait_for_memory(Connection& c, std::size_t capacity) {
    c.mem_wanted = capacity;
    if (c.mem_waiting) return;
    c.mem_waiting = true;
    mem_waiters.push_back(c.id);
    arm(c);  // not read: the socket's buffers fill and TCP stops the sender
    h.on_memory_wait();
}

void TcpListener::Impl::serve_memory_waiters(uint64_t now) {
    while (!mem_waiters.empty()) {
        Connection* c = find(mem_waiters.front());
        if (!c || !c->mem_waiting) {
            mem_waiters.pop_front();
            continue;
        }
        // The oldest first: a later, smaller one does not overtake it.
        if (!grow_in(*c, c->mem_wanted, /*reading=*/false)) return;
        mem_waiters.pop_front();
        c->mem_waiting = false;
        c->last_rx_ns = now;  // it was silent because it was not read
        arm(*c);
        // OpenSSL may hold decrypted bytes no epoll event announces.
        if (tls_pending(*c)) on_readable(*c, now);
    }
}

void TcpListener::Impl::arm(Connection& c) {
    if (c.closed) return;
    epoll_event ev{};
    ev.events = (c.mem_waiting ? 0u : uint32_t{EPOLLIN}) | (c.want_write ? uint32_t{EPOLLOUT} : 0u);
    ev.data.u64 = c.id;
    ::epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
}

void TcpListener::poll(uint64_t now) {
    Impl& m = *impl_;
    std::array<epoll_event, 64> events;
    const int n = ::epoll_wait(m.epfd, events.data(), static_cast<int>(events.size()), 0);
    for (int i = 0; i < n; ++i) {
        const uint64_t tag = events[i].data.u64;
        if (tag == kTagListener) {
            m.accept_connections(now);
        } else if (Connection* c = m.find(tag)) {
            if (events[i].events & EPOLLOUT) m.flush(*c);
            if (c->closed) continue;
            if (c->mem_waiting && (events[i].events & (EPOLLHUP | EPOLLERR))) {
                // Gone while it waited: its partial frame can never complete.
                m.close(*c, CloseCause::PeerClosed,
                        fmt::format("{}: the sender closed the connection while it waited for "
                                    "memory (--max-memory)",
                                    c->name()));
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) m.on_readable(*c, now);
        }
    }
    m.serve_memory_waiters(now);
    m.reap();
}

uint64_t TcpListener::memory_bytes() const {
    return impl_->mem_used;
}

std::size_t TcpListener::memory_waiting() const {
    std::size_t n = 0;
    for (ConnectionId id : impl_->mem_waiters)
        if (const Connection* c = impl_->find(id); c && c->mem_waiting) ++n;
    return n;
}

void TcpListener::timers(uint64_t now) {
    Impl& m = *impl_;
    if (m.accept_paused_until && now >= m.accept_paused_until) {
        m.accept_paused_until = 0;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kTagListener;
        ::epoll_ctl(m.epfd, EPOLL_CTL_MOD, m.listen_fd, &ev);
    }
    m.tls_grace(now);
    const uint64_t handshake_ns = uint64_t{m.cfg.handshake_timeout_ms} * 1'000'000;
    const uint64_t idle_floor_ns = uint64_t{m.cfg.idle_timeout_ms} * 1'000'000;
    for (auto& [id, cp] : m.conns) {
        Connection& c = *cp;
        if (c.closed) continue;
        if (!c.streaming) {
            if (now - c.accepted_ns >= handshake_ns)
                m.reject(c, RejectReason::Timeout, CloseCause::Timeout,
                         fmt::format("no handshake within {} ms (--handshake-timeout)",
                                     m.cfg.handshake_timeout_ms));
            continue;
        }
        if (c.mem_waiting) continue;  // silent because it is not read
        // A sender without heartbeats (heartbeat_ms = 0) gets the collector's
        // own idle timeout: silence is never unbounded.
        const uint64_t idle_ns =
            std::max<uint64_t>(idle_floor_ns, 3ull * c.heartbeat_ms * 1'000'000);
        if (now - c.last_rx_ns >= idle_ns)
            m.reject(c, RejectReason::Timeout, CloseCause::Timeout,
                     c.heartbeat_ms
                         ? fmt::format("nothing received for {} ms though the sender heartbeats "
                                       "every {} ms",
                                       idle_ns / 1'000'000, c.heartbeat_ms)
                         : fmt::format("nothing received for {} ms (--peer-timeout; the sender "
                                       "sends no heartbeats)",
                                       idle_ns / 1'000'000));
    }
    m.serve_memory_waiters(now);
    m.reap();
}

void TcpListener::close(ConnectionId conn, CloseCause cause, RejectReason reason,
                        std::string_view text) {
    if (Connection* c = impl_->find(conn)) impl_->reject(*c, reason, cause, text);
}

void TcpListener::close_all(std::string_view text) {
    Impl& m = *impl_;
    for (auto& [id, c] : m.conns) {
        if (c->closed) continue;
        if (c->streaming) m.send(*c, c->session.ack(c->ack));
        m.send(*c, c->session.reject(RejectReason::ShuttingDown, text));
        m.close(*c, CloseCause::ShuttingDown, "");
    }
    m.reap();
}

// ---- TLS: the byte channel under the messages --------------------------------

namespace {

constexpr std::size_t kTlsListenerBuffer = 64 * 1024;  // encrypted replies waiting for the socket
constexpr uint32_t kTlsGraceMs = 1000;  // a sender with TLS starts its handshake at once

}  // namespace

ssize_t TcpListener::Impl::io_send(Connection& c, const void* buf, std::size_t len) {
    // Before the peer started TLS the socket is still plaintext: a REJECT
    // (busy; no TLS handshake in time) reaches a sender without TLS.
    if (!c.tls || !c.tls->started()) return ::send(c.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    // In the middle of the handshake nothing can be said: the connection ends.
    if (!c.tls->established()) return static_cast<ssize_t>(len);
    return c.tls->send(buf, len);
}

ssize_t TcpListener::Impl::io_recv(Connection& c, void* buf, std::size_t len) {
    return c.tls ? c.tls->recv(buf, len) : ::recv(c.fd, buf, len, MSG_DONTWAIT);
}

const char* TcpListener::Impl::io_error(const Connection& c, int err) const {
    return c.tls ? c.tls->error_text(err) : std::strerror(err);
}

bool TcpListener::Impl::tls_accept(Connection& c) {
    try {
        c.tls_ctx = tls_ctx;
        c.tls = std::make_unique<TlsChannel>(*c.tls_ctx, c.fd, "", kTlsListenerBuffer);
    } catch (const std::exception& e) {
        close(c, CloseCause::Resources, fmt::format("{}: {}", c.name(), e.what()));
        return false;
    }
    c.in.reserve(4096);
    return true;
}

void TcpListener::Impl::tls_want_write(Connection& c, bool on) {
    if (c.want_write == on) return;
    c.want_write = on;
    arm(c);
}

// Drives the TLS handshake; true once it is done and the CHALLENGE is out.
bool TcpListener::Impl::tls_handshake(Connection& c) {
    switch (c.tls->handshake()) {
        case TlsChannel::Progress::Again:
            tls_want_write(c, c.tls->wants_write() || c.out.size() > c.out_off);
            return false;
        case TlsChannel::Progress::Done: {
            tls_stats.tls_handshakes.inc();
            if (c.tls->kernel_send()) tls_stats.tls_kernel_send.inc();
            if (c.tls->kernel_recv()) tls_stats.tls_kernel_recv.inc();
            if (!c.tls->kernel_send() || !c.tls->kernel_recv()) tls_stats.tls_user_space.inc();
            session::Nonce nonce;
            if (!session::random_bytes(nonce)) {
                close(c, CloseCause::Resources,
                      fmt::format("{}: the system's random generator failed", c.name()));
                return false;
            }
            send(c, c.session.challenge(nonce));
            return !c.closed;
        }
        case TlsChannel::Progress::Failed:
            break;
    }
    const std::string why(c.tls->error());
    switch (c.tls->failure()) {
        case TlsChannel::Failure::Io:
            close(c, CloseCause::PeerClosed, fmt::format("{}: {}", c.name(), why));
            break;
        case TlsChannel::Failure::NotTls:
            reject(c, RejectReason::Protocol, CloseCause::Protocol, why);
            break;
        case TlsChannel::Failure::Plaintext:
            tls_stats.tls_failures.inc();
            reject(c, RejectReason::Protocol, CloseCause::Tls, why);
            break;
        default:
            tls_stats.tls_failures.inc();
            close(c, CloseCause::Tls,
                  fmt::format("{}: TLS handshake failed: {}; connection dropped", c.name(), why));
            break;
    }
    return false;
}

// Before the plaintext replies: the handshake, or encrypted bytes the
// socket did not take. True when the replies may follow.
bool TcpListener::Impl::tls_flush(Connection& c) {
    if (!c.tls->established()) return tls_handshake(c);
    if (c.tls->flush()) return true;
    if (errno != EAGAIN) {
        close(c, CloseCause::PeerClosed,
              fmt::format("{}: connection lost: {}", c.name(), c.tls->error_text(errno)));
    }
    return false;
}

// A connection whose peer started no TLS handshake within the grace: a
// sender without TLS, which waits for a CHALLENGE that never comes. It is
// told so in plaintext.
void TcpListener::Impl::tls_grace(uint64_t now) {
    if (!tls_ctx) return;
    const uint32_t grace_ms = std::min(kTlsGraceMs, cfg.handshake_timeout_ms);
    for (auto& [id, cp] : conns) {
        Connection& c = *cp;
        if (c.closed || !c.tls || c.tls->started() ||
            now - c.accepted_ns < uint64_t{grace_ms} * 1'000'000)
            continue;
        tls_stats.tls_failures.inc();
        reject(c, RejectReason::Protocol, CloseCause::Tls,
               fmt::format("no TLS handshake within {} ms, and this collector requires TLS "
                           "(--tls-cert): give the sender egress.tls_ca (sluice-send --tls-ca)",
                           grace_ms));
    }
}

}  // namespace sluice::tcp
