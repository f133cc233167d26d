// The RDMA listener's rdma_cm side: binding and listening, connection
// requests (checked, refused in words, or accepted with a ring), devices and
// their completion channels, timers, teardown. One connection's queue pair is
// listener_connection.cpp's.
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "listener_impl.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "sluice/rdma/sender.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/session/endpoint.hpp"
#include "sluice/session/hello_check.hpp"
#include "sluice/session/key.hpp"

namespace sluice::rdma {
namespace {

using namespace detail;

void set_nonblocking(int fd) {
    const int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

std::string peer_of(rdma_cm_id* id) {
    sockaddr* sa = rdma_get_peer_addr(id);
    if (!sa) return "?";
    return session::format_address(
        sa, sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
}

}  // namespace

RdmaListener::Impl::~Impl() {
    for (auto& [id, c] : conns)
        teardown(*c);
    conns.clear();
    if (listen_id) rdma_destroy_id(listen_id);
    for (auto& [ctx, d] : devices)
        if (d->channel) ibv_destroy_comp_channel(d->channel);
    if (channel) rdma_destroy_event_channel(channel);
    if (epfd >= 0) ::close(epfd);
}

Device* RdmaListener::Impl::device(ibv_context* ctx) {
    auto it = devices.find(ctx);
    if (it != devices.end()) return it->second.get();
    auto d = std::make_unique<Device>();
    d->ctx = ctx;
    d->channel = ibv_create_comp_channel(ctx);
    if (!d->channel) return nullptr;
    set_nonblocking(d->channel->fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = d.get();
    ::epoll_ctl(epfd, EPOLL_CTL_ADD, d->channel->fd, &ev);
    return devices.emplace(ctx, std::move(d)).first->second.get();
}

RdmaListener::RdmaListener(const ListenerConfig& config, session::ReceiverHandler& handler)
    : impl_(std::make_unique<Impl>(config, handler, *this)) {
    Impl& m = *impl_;
    if (m.cfg.slot_count == 0 || m.cfg.slot_count > kMaxSlots)
        throw std::invalid_argument(
            fmt::format("--rdma-slots {}: expected 1..{}", m.cfg.slot_count, kMaxSlots));
    if (m.cfg.slot_bytes < kMinSlotBytes || m.cfg.slot_bytes % 8 != 0)
        throw std::invalid_argument(
            fmt::format("--rdma-slot-bytes {}: expected a multiple of 8, at least {}",
                        m.cfg.slot_bytes, kMinSlotBytes));
    if (device_names().empty()) throw std::runtime_error(no_device_message());
    m.channel = rdma_create_event_channel();
    if (!m.channel)
        throw std::runtime_error(fmt::format(
            "cannot open the rdma_cm event channel: {}; load rdma_ucm (modprobe rdma_ucm)",
            std::strerror(errno)));
    set_nonblocking(m.channel->fd);
    if (rdma_create_id(m.channel, &m.listen_id, nullptr, RDMA_PS_TCP) != 0)
        throw std::runtime_error(fmt::format("rdma_create_id: {}", std::strerror(errno)));
    const session::ResolvedAddress a =
        session::resolve(session::Endpoint{m.cfg.host, m.cfg.port}, true);
    if (rdma_bind_addr(m.listen_id,
                       reinterpret_cast<sockaddr*>(const_cast<sockaddr_storage*>(&a.addr))) != 0) {
        const int e = errno;
        throw std::runtime_error(fmt::format(
            "cannot listen on rdma://{}: {}{}",
            session::Endpoint{m.cfg.host, m.cfg.port}.to_string(), std::strerror(e),
            e == EADDRINUSE ? " (another program uses the port: choose another --listen port)"
            : e == EADDRNOTAVAIL || e == ENODEV
                ? " (no RDMA device has that address: `rdma link` lists the devices and their "
                  "netdevs, `ip addr` their addresses)"
                : ""));
    }
    if (rdma_listen(m.listen_id, 64) != 0)
        throw std::runtime_error(fmt::format("rdma_listen: {}", std::strerror(errno)));
    m.port = ntohs(rdma_get_src_port(m.listen_id));
    m.epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (m.epfd < 0) throw std::runtime_error(fmt::format("epoll: {}", std::strerror(errno)));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the rdma_cm channel
    ::epoll_ctl(m.epfd, EPOLL_CTL_ADD, m.channel->fd, &ev);
}

RdmaListener::~RdmaListener() = default;

int RdmaListener::fd() const {
    return impl_->epfd;
}
uint16_t RdmaListener::port() const {
    return impl_->port;
}
void RdmaListener::set_keys(std::shared_ptr<const session::Keyring> keys) {
    impl_->cfg.keys = std::move(keys);
}
std::size_t RdmaListener::connections() const {
    return impl_->conns.size();
}

void RdmaListener::Impl::reject_request(rdma_cm_id* id, ConnectionId conn, RejectReason reason,
                                        const std::string& text, CloseCause cause,
                                        const std::string& peer) {
    std::array<std::byte, kMaxRejectPrivateData> b{};
    ConnectReject rj;
    rj.reason = reason;
    rj.text = text;
    const std::size_t n = encode(rj, b);
    rdma_reject(id, b.data(), static_cast<uint8_t>(n));
    h.on_closed(conn, cause, fmt::format("connection request from {}: {}; refused", peer, text));
}

void RdmaListener::Impl::on_connect_request(rdma_cm_id* id, const void* pd, std::size_t len,
                                            uint64_t now) {
    const std::string peer = peer_of(id);
    const ConnectionId conn = session::next_connection_id();
    h.on_connection(conn, self, peer);
    ConnectRequest rq;
    const DecodeStatus st =
        decode(std::span<const std::byte>(static_cast<const std::byte*>(pd), pd ? len : 0), rq);
    if (st != DecodeStatus::Ok) {
        const bool version = st == DecodeStatus::UnsupportedVersion;
        reject_request(id, conn, version ? RejectReason::Version : RejectReason::Protocol,
                       fmt::format("malformed connect request: {}", to_string(st)),
                       version ? CloseCause::Version : CloseCause::Protocol, peer);
        rdma_destroy_id(id);  // its event was acknowledged by the caller
        return;
    }
    if (auto r = session::check_key_presence(keys(), rq.flags & request_flag::kHasKey)) {
        reject_request(id, conn, r->reason, r->text, r->cause, peer);
        rdma_destroy_id(id);
        return;
    }
    const std::string source = peer.substr(0, peer.rfind(':'));
    if (const auto it = pending_by_source.find(source);
        it != pending_by_source.end() && it->second >= cfg.max_pending_per_source) {
        reject_request(id, conn, RejectReason::Busy,
                       fmt::format("{} connections from {} are in their handshake already "
                                   "(--max-pending-per-source {})",
                                   it->second, source, cfg.max_pending_per_source),
                       CloseCause::SourceLimit, peer);
        rdma_destroy_id(id);
        return;
    }
    if (pending >= cfg.max_pending) make_room_for_pending(now);
    auto cp = std::make_unique<RConn>();
    RConn& c = *cp;
    c.id = conn;
    c.cm = id;
    c.peer = peer;
    c.source = source;
    c.rq = rq;
    c.accepted_ns = now;
    std::memcpy(c.request.data(), pd, kRequestSize);
    id->context = reinterpret_cast<void*>(c.id);
    if (!setup(c)) {
        const int e = errno;
        reject_request(
            id, conn, RejectReason::Busy,
            fmt::format("the collector cannot set up a queue pair: {}", std::strerror(e)),
            CloseCause::Resources, peer);
        teardown(c);  // destroys the id
        return;
    }
    ConnectAccept acc;
    acc.flags = keys().empty() ? 0 : accept_flag::kKeyRequired;
    acc.slot_bytes = cfg.slot_bytes;
    acc.slot_count = cfg.slot_count;
    session::random_bytes(acc.nonce);
    c.accept = encode(acc);
    rdma_conn_param param{};
    param.private_data = c.accept.data();
    param.private_data_len = static_cast<uint8_t>(c.accept.size());
    param.rnr_retry_count = 7;
    param.retry_count = 7;
    if (rdma_accept(id, &param) != 0) {
        h.on_closed(conn, CloseCause::Resources,
                    fmt::format("rdma_accept for {}: {}", peer, std::strerror(errno)));
        teardown(c);
        return;
    }
    count_pending(c, +1);
    conns.emplace(c.id, std::move(cp));
}

void RdmaListener::Impl::teardown(RConn& c) {
    if (c.cm) {
        if (c.established) rdma_disconnect(c.cm);
        if (c.qp) rdma_destroy_qp(c.cm);
        c.qp = false;
    }
    if (c.cq) ibv_destroy_cq(c.cq);
    c.cq = nullptr;
    if (c.ring_mr) ibv_dereg_mr(c.ring_mr);
    c.ring_mr = nullptr;
    if (c.ctl_mr) ibv_dereg_mr(c.ctl_mr);
    c.ctl_mr = nullptr;
    std::free(c.ring);
    c.ring = nullptr;
    ring_bytes_held -= c.ring_bytes;
    c.ring_bytes = 0;
    if (c.cm) rdma_destroy_id(c.cm);
    c.cm = nullptr;
    if (c.pd) ibv_dealloc_pd(c.pd);
    c.pd = nullptr;
}

void RdmaListener::Impl::count_pending(RConn& c, int delta) {
    pending += static_cast<uint32_t>(delta);
    uint32_t& n = pending_by_source[c.source];
    n += static_cast<uint32_t>(delta);
    if (n == 0) pending_by_source.erase(c.source);
}

// As the TCP listener does: the oldest handshake of the source holding the
// most goes, so a flood from a few addresses evicts itself.
void RdmaListener::Impl::make_room_for_pending(uint64_t now) {
    const std::string* worst = nullptr;
    uint32_t most = 0;
    for (const auto& [source, n] : pending_by_source)
        if (n > most) most = n, worst = &source;
    if (!worst) return;
    RConn* victim = nullptr;
    for (auto& [id, c] : conns) {
        const bool in_handshake =
            c->state == ConnState::AwaitEstablished || c->state == ConnState::AwaitProof;
        if (!in_handshake || c->source != *worst) continue;
        if (!victim || c->accepted_ns < victim->accepted_ns) victim = c.get();
    }
    if (victim)
        begin_close(*victim, CloseCause::PendingLimit,
                    fmt::format("connection from {}: dropped to make room: {} connections were in "
                                "their handshake (--max-pending), {} of them from {}",
                                victim->peer, pending, most, victim->source),
                    true, RejectReason::Busy, now);
}

void RdmaListener::Impl::reap() {
    for (uint64_t id : doomed) {
        auto it = conns.find(id);
        if (it == conns.end()) continue;
        teardown(*it->second);
        conns.erase(it);
    }
    doomed.clear();
}

void RdmaListener::poll(uint64_t now) {
    Impl& m = *impl_;
    // Connection events.
    rdma_cm_event* ev = nullptr;
    while (rdma_get_cm_event(m.channel, &ev) == 0) {
        const rdma_cm_event_type type = ev->event;
        rdma_cm_id* id = ev->id;
        std::array<std::byte, 256> pd{};
        std::size_t len = 0;
        if (ev->param.conn.private_data && ev->param.conn.private_data_len) {
            len = std::min<std::size_t>(ev->param.conn.private_data_len, pd.size());
            std::memcpy(pd.data(), ev->param.conn.private_data, len);
        }
        const ConnectionId cid = reinterpret_cast<ConnectionId>(id->context);
        rdma_ack_cm_event(ev);
        if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
            m.on_connect_request(id, len ? pd.data() : nullptr, len, now);
            continue;
        }
        RConn* c = m.find(cid);
        if (!c) continue;
        switch (type) {
            case RDMA_CM_EVENT_ESTABLISHED:
                c->established = true;
                if (c->state == ConnState::AwaitEstablished) c->state = ConnState::AwaitProof;
                // Completions may have arrived before the event.
                m.poll_cq(*c, now);
                break;
            case RDMA_CM_EVENT_DISCONNECTED:
                c->established = false;
                m.begin_close(*c, CloseCause::PeerClosed,
                              c->state == ConnState::Streaming
                                  ? fmt::format("stream {} from {}: the sender disconnected",
                                                c->rq.stream_id, c->peer)
                                  : fmt::format("connection from {}: the sender disconnected "
                                                "before completing the handshake",
                                                c->peer),
                              false, RejectReason::Protocol, now);
                m.doomed.push_back(c->id);
                break;
            case RDMA_CM_EVENT_CONNECT_ERROR:
            case RDMA_CM_EVENT_UNREACHABLE:
            case RDMA_CM_EVENT_REJECTED:
            case RDMA_CM_EVENT_DEVICE_REMOVAL:
                c->established = false;
                m.begin_close(*c, CloseCause::PeerClosed,
                              fmt::format("connection from {}: {}", c->peer, rdma_event_str(type)),
                              false, RejectReason::Protocol, now);
                m.doomed.push_back(c->id);
                break;
            default:
                break;
        }
    }
    // Completions, by device.
    for (auto& [ctx, d] : m.devices) {
        ibv_cq* cq = nullptr;
        void* cq_ctx = nullptr;
        while (ibv_get_cq_event(d->channel, &cq, &cq_ctx) == 0) {
            ibv_ack_cq_events(cq, 1);
            RConn* c = m.find(reinterpret_cast<uint64_t>(cq_ctx));
            if (!c || c->cq != cq) continue;
            ibv_req_notify_cq(cq, 0);
            m.poll_cq(*c, now);
        }
    }
    // A closing connection whose reject has left can go now.
    for (auto& [id, c] : m.conns) {
        if (c->state == ConnState::Closing && c->sends_in_flight == 0) m.doomed.push_back(id);
    }
    m.reap();
}

void RdmaListener::timers(uint64_t now) {
    Impl& m = *impl_;
    const uint64_t limit = uint64_t{m.cfg.handshake_timeout_ms} * 1'000'000;
    for (auto& [id, c] : m.conns) {
        if ((c->state == ConnState::AwaitEstablished || c->state == ConnState::AwaitProof) &&
            now - c->accepted_ns >= limit) {
            m.begin_close(*c, CloseCause::Timeout,
                          fmt::format("connection from {}: no handshake within {} ms", c->peer,
                                      m.cfg.handshake_timeout_ms),
                          true, RejectReason::Timeout, now);
        }
        if (c->state == ConnState::Closing && now >= c->closing_deadline) m.doomed.push_back(id);
        // A connection whose Credit waited for a send buffer.
        if (c->state == ConnState::Streaming && c->credit_due) m.finish_batch(*c);
    }
    m.reap();
}

void RdmaListener::close(ConnectionId conn, CloseCause cause, RejectReason reason,
                         std::string_view text) {
    RConn* c = impl_->find(conn);
    if (!c) return;
    // begin_close() needs a time only for the grace period.
    impl_->begin_close(*c, cause, std::string(text), true, reason, session::monotonic_ns());
}

void RdmaListener::close_all(const std::string& text) {
    Impl& m = *impl_;
    const uint64_t now = session::monotonic_ns();
    for (auto& [id, c] : m.conns)
        m.begin_close(*c, CloseCause::ShuttingDown, text, true, RejectReason::ShuttingDown, now);
    // Give the rejects a moment to leave.
    const uint64_t until = now + kCloseGraceNs;
    while (session::monotonic_ns() < until) {
        bool pending = false;
        for (auto& [id, c] : m.conns) {
            if (c->cq) {
                ibv_wc wc[16];
                int n;
                while ((n = ibv_poll_cq(c->cq, 16, wc)) > 0)
                    for (int i = 0; i < n; ++i)
                        if (!(wc[i].wr_id & kWrRecv) && c->sends_in_flight) --c->sends_in_flight;
            }
            pending |= c->sends_in_flight > 0;
        }
        if (!pending) break;
        ::usleep(1000);
    }
    for (auto& [id, c] : m.conns)
        m.teardown(*c);
    m.conns.clear();
    m.doomed.clear();
}

}  // namespace sluice::rdma
