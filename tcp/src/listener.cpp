// The TCP listener: accepting connections, reading frames through the
// session layer, replies, timers. --max-memory is in listener_memory.cpp,
// TLS in listener_tls.cpp.
#include "listener_impl.hpp"

namespace sluice::tcp {
namespace {

using namespace listener_detail;

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

}  // namespace sluice::tcp
