#include "sluice/rdma/receiver.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "sluice/rdma/sender.hpp"
#include "sluice/tcp/auth.hpp"
#include "sluice/tcp/endpoint.hpp"
#include "sluice/tcp/sender.hpp"

namespace sluice::rdma {
namespace {

constexpr uint32_t kSendBuffers = 16;            // Welcome, Credit and Reject messages in flight
constexpr uint32_t kExtraRecvs = 4;              // SENDs besides the ring's writes (the Proof)
constexpr uint64_t kCloseGraceNs = 200'000'000;  // a Reject gets this long to leave
constexpr uint64_t kWrRecv = 1ull << 63;

void set_nonblocking(int fd) {
    const int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

std::string peer_of(rdma_cm_id* id) {
    sockaddr* sa = rdma_get_peer_addr(id);
    if (!sa) return "?";
    return tcp::format_address(
        sa, sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
}

}  // namespace

struct Device {
    ibv_context* ctx = nullptr;
    ibv_pd* pd = nullptr;
    ibv_comp_channel* channel = nullptr;
};

enum class ConnState : uint8_t { AwaitEstablished, AwaitProof, Streaming, Closing };

struct RConn {
    uint64_t id = 0;
    rdma_cm_id* cm = nullptr;
    std::string peer;
    Device* dev = nullptr;
    ConnState state = ConnState::AwaitEstablished;
    bool established = false;
    ibv_cq* cq = nullptr;
    bool qp = false;
    std::byte* ring = nullptr;
    ibv_mr* ring_mr = nullptr;
    std::vector<std::byte> ctl;  // recv buffers, then send buffers
    ibv_mr* ctl_mr = nullptr;
    uint32_t recvs = 0;
    uint32_t sends_in_flight = 0;
    uint32_t next_send = 0;
    std::array<std::byte, kRequestSize> request{};
    std::array<std::byte, kAcceptSize> accept{};
    ConnectRequest rq;
    uint64_t accepted_ns = 0;
    uint64_t consumed = 0;    // slots handed to on_frame
    uint64_t released = 0;    // slots given back to the sender
    bool credit_due = false;  // a Credit could not be sent (no send buffer): send it later
    uint64_t ack = 0;
    uint64_t closing_deadline = 0;
    bool reported = false;  // on_closed was called
};

struct RdmaListener::Impl {
    ListenerConfig cfg;
    ReceiverHandler& h;
    rdma_event_channel* channel = nullptr;
    rdma_cm_id* listen_id = nullptr;
    int epfd = -1;
    uint16_t port = 0;
    std::map<ibv_context*, std::unique_ptr<Device>> devices;
    std::unordered_map<uint64_t, std::unique_ptr<RConn>> conns;
    std::vector<uint64_t> doomed;  // torn down after the event batch (events acknowledged)
    uint64_t next_id = 1;

    Impl(const ListenerConfig& c, ReceiverHandler& handler) : cfg(c), h(handler) {}
    ~Impl();

    Device* device(ibv_context* ctx);
    void on_connect_request(rdma_cm_id* id, const void* pd, std::size_t len, uint64_t now);
    void reject_request(rdma_cm_id* id, RejectReason reason, const std::string& text,
                        CloseCause cause, const std::string& peer);
    bool setup(RConn& c);
    bool post_recv(RConn& c, uint32_t i);
    bool post_message(RConn& c, const Message& m);
    void poll_cq(RConn& c, uint64_t now);
    void on_message(RConn& c, std::span<const std::byte> bytes, uint64_t now);
    void finish_batch(RConn& c);
    void begin_close(RConn& c, CloseCause cause, const std::string& why, bool reject,
                     RejectReason reason, uint64_t now);
    void teardown(RConn& c);
    void reap();
    RConn* find(uint64_t id) {
        auto it = conns.find(id);
        return it == conns.end() ? nullptr : it->second.get();
    }
};

RdmaListener::Impl::~Impl() {
    for (auto& [id, c] : conns)
        teardown(*c);
    conns.clear();
    if (listen_id) rdma_destroy_id(listen_id);
    for (auto& [ctx, d] : devices) {
        if (d->pd) ibv_dealloc_pd(d->pd);
        if (d->channel) ibv_destroy_comp_channel(d->channel);
    }
    if (channel) rdma_destroy_event_channel(channel);
    if (epfd >= 0) ::close(epfd);
}

Device* RdmaListener::Impl::device(ibv_context* ctx) {
    auto it = devices.find(ctx);
    if (it != devices.end()) return it->second.get();
    auto d = std::make_unique<Device>();
    d->ctx = ctx;
    d->pd = ibv_alloc_pd(ctx);
    d->channel = ibv_create_comp_channel(ctx);
    if (!d->pd || !d->channel) {
        if (d->pd) ibv_dealloc_pd(d->pd);
        if (d->channel) ibv_destroy_comp_channel(d->channel);
        return nullptr;
    }
    set_nonblocking(d->channel->fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = d.get();
    ::epoll_ctl(epfd, EPOLL_CTL_ADD, d->channel->fd, &ev);
    return devices.emplace(ctx, std::move(d)).first->second.get();
}

RdmaListener::RdmaListener(const ListenerConfig& config, ReceiverHandler& handler)
    : impl_(std::make_unique<Impl>(config, handler)) {
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
    const tcp::ResolvedAddress a = tcp::resolve(tcp::Endpoint{m.cfg.host, m.cfg.port}, true);
    if (rdma_bind_addr(m.listen_id,
                       reinterpret_cast<sockaddr*>(const_cast<sockaddr_storage*>(&a.addr))) != 0) {
        const int e = errno;
        throw std::runtime_error(fmt::format(
            "cannot listen on rdma://{}: {}{}", tcp::Endpoint{m.cfg.host, m.cfg.port}.to_string(),
            std::strerror(e),
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
std::size_t RdmaListener::connections() const {
    return impl_->conns.size();
}

void RdmaListener::Impl::reject_request(rdma_cm_id* id, RejectReason reason,
                                        const std::string& text, CloseCause cause,
                                        const std::string& peer) {
    std::array<std::byte, kMaxRejectPrivateData> b{};
    ConnectReject rj;
    rj.reason = reason;
    rj.text = text;
    const std::size_t n = encode(rj, b);
    rdma_reject(id, b.data(), static_cast<uint8_t>(n));
    h.on_closed(0, cause, fmt::format("connection request from {}: {}; refused", peer, text));
}

bool RdmaListener::Impl::post_recv(RConn& c, uint32_t i) {
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(c.ctl.data() + std::size_t{i} * kMessageSize);
    sge.length = kMessageSize;
    sge.lkey = c.ctl_mr->lkey;
    ibv_recv_wr wr{};
    wr.wr_id = kWrRecv | i;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    return ibv_post_recv(c.cm->qp, &wr, &bad) == 0;
}

bool RdmaListener::Impl::post_message(RConn& c, const Message& msg) {
    if (!c.qp || c.sends_in_flight == kSendBuffers) return false;
    const uint32_t i = c.next_send++ % kSendBuffers;
    std::byte* buf = c.ctl.data() + std::size_t{c.recvs + i} * kMessageSize;
    const MessageBytes b = encode(msg);
    std::memcpy(buf, b.data(), b.size());
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(buf);
    sge.length = kMessageSize;
    sge.lkey = c.ctl_mr->lkey;
    ibv_send_wr wr{};
    wr.wr_id = i;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    ibv_send_wr* bad = nullptr;
    if (ibv_post_send(c.cm->qp, &wr, &bad) != 0) return false;
    ++c.sends_in_flight;
    return true;
}

bool RdmaListener::Impl::setup(RConn& c) {
    c.dev = device(c.cm->verbs);
    if (!c.dev) return false;
    c.recvs = cfg.slot_count + kExtraRecvs;
    c.cq = ibv_create_cq(c.cm->verbs, static_cast<int>(c.recvs + kSendBuffers),
                         reinterpret_cast<void*>(c.id), c.dev->channel, 0);
    if (!c.cq) return false;
    if (ibv_req_notify_cq(c.cq, 0) != 0) return false;
    ibv_qp_init_attr qa{};
    qa.send_cq = c.cq;
    qa.recv_cq = c.cq;
    qa.qp_type = IBV_QPT_RC;
    qa.cap.max_send_wr = kSendBuffers;
    qa.cap.max_recv_wr = c.recvs;
    qa.cap.max_send_sge = 1;
    qa.cap.max_recv_sge = 1;
    if (rdma_create_qp(c.cm, c.dev->pd, &qa) != 0) return false;
    c.qp = true;
    const std::size_t ring_bytes = std::size_t{cfg.slot_bytes} * cfg.slot_count;
    c.ring =
        static_cast<std::byte*>(std::aligned_alloc(4096, (ring_bytes + 4095) & ~std::size_t{4095}));
    if (!c.ring) return false;
    c.ring_mr =
        ibv_reg_mr(c.dev->pd, c.ring, ring_bytes, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (!c.ring_mr) return false;
    c.ctl.assign(std::size_t{c.recvs + kSendBuffers} * kMessageSize, std::byte{0});
    c.ctl_mr = ibv_reg_mr(c.dev->pd, c.ctl.data(), c.ctl.size(), IBV_ACCESS_LOCAL_WRITE);
    if (!c.ctl_mr) return false;
    for (uint32_t i = 0; i < c.recvs; ++i)
        if (!post_recv(c, i)) return false;
    return true;
}

void RdmaListener::Impl::on_connect_request(rdma_cm_id* id, const void* pd, std::size_t len,
                                            uint64_t now) {
    const std::string peer = peer_of(id);
    h.on_request(peer);
    ConnectRequest rq;
    const DecodeStatus st =
        decode(std::span<const std::byte>(static_cast<const std::byte*>(pd), pd ? len : 0), rq);
    if (st != DecodeStatus::Ok) {
        const bool version = st == DecodeStatus::UnsupportedVersion;
        reject_request(id, version ? RejectReason::Version : RejectReason::Protocol,
                       fmt::format("malformed connect request: {}", to_string(st)),
                       version ? CloseCause::Version : CloseCause::Protocol, peer);
        rdma_destroy_id(id);  // its event was acknowledged by the caller
        return;
    }
    const bool has_key = rq.flags & request_flag::kHasKey;
    if (!cfg.key.empty() && !has_key) {
        reject_request(id, RejectReason::KeyRequired,
                       "this collector requires a key: set egress.key_file to the same file as "
                       "its --key-file",
                       CloseCause::Auth, peer);
        rdma_destroy_id(id);
        return;
    }
    if (cfg.key.empty() && has_key) {
        reject_request(id, RejectReason::KeyUnexpected,
                       "the sender has a key but this collector has none: give the collector "
                       "--key-file with the same file",
                       CloseCause::Auth, peer);
        rdma_destroy_id(id);
        return;
    }
    auto cp = std::make_unique<RConn>();
    RConn& c = *cp;
    c.id = next_id++;
    c.cm = id;
    c.peer = peer;
    c.rq = rq;
    c.accepted_ns = now;
    std::memcpy(c.request.data(), pd, kRequestSize);
    id->context = reinterpret_cast<void*>(c.id);
    if (!setup(c)) {
        const int e = errno;
        reject_request(id, RejectReason::Busy,
                       fmt::format("the collector cannot set up a queue pair and a ring of {} x {} "
                                   "bytes: {}",
                                   cfg.slot_count, cfg.slot_bytes, std::strerror(e)),
                       CloseCause::Resources, peer);
        teardown(c);  // destroys the id
        return;
    }
    ConnectAccept acc;
    acc.flags = cfg.key.empty() ? 0 : accept_flag::kKeyRequired;
    acc.ring_addr = reinterpret_cast<uintptr_t>(c.ring);
    acc.rkey = c.ring_mr->rkey;
    acc.slot_bytes = cfg.slot_bytes;
    acc.slot_count = cfg.slot_count;
    tcp::random_bytes(acc.nonce);
    c.accept = encode(acc);
    rdma_conn_param param{};
    param.private_data = c.accept.data();
    param.private_data_len = static_cast<uint8_t>(c.accept.size());
    param.rnr_retry_count = 7;
    param.retry_count = 7;
    if (rdma_accept(id, &param) != 0) {
        h.on_closed(0, CloseCause::Resources,
                    fmt::format("rdma_accept for {}: {}", peer, std::strerror(errno)));
        teardown(c);
        return;
    }
    conns.emplace(c.id, std::move(cp));
}

void RdmaListener::Impl::on_message(RConn& c, std::span<const std::byte> bytes, uint64_t now) {
    Message m;
    const DecodeStatus st = decode(bytes, m);
    if (st != DecodeStatus::Ok) {
        begin_close(c, CloseCause::Protocol,
                    fmt::format("connection from {}: malformed message: {}", c.peer, to_string(st)),
                    true, RejectReason::Protocol, now);
        return;
    }
    if (c.state == ConnState::AwaitEstablished) {
        // A message on the queue pair proves the connection is up; the
        // ESTABLISHED event may still be on its way.
        c.established = true;
        c.state = ConnState::AwaitProof;
    }
    if (c.state != ConnState::AwaitProof || m.type != MessageType::Proof) {
        begin_close(c, CloseCause::Protocol,
                    fmt::format("connection from {}: unexpected message type {}", c.peer,
                                static_cast<int>(m.type)),
                    true, RejectReason::Protocol, now);
        return;
    }
    const Proof want = sender_proof(cfg.key, c.request, c.accept);
    if (!tcp::proofs_equal(want, m.proof)) {
        begin_close(c, CloseCause::Auth,
                    fmt::format("connection from {}: the key proof did not match: the sender's "
                                "egress.key_file differs from --key-file",
                                c.peer),
                    true, RejectReason::AuthFailed, now);
        return;
    }
    const ReceiverHandler::HelloAnswer a = h.on_hello(c.id, c.rq, c.peer);
    if (!a.accept) {
        begin_close(c,
                    a.reason == RejectReason::Storage ? CloseCause::Storage : CloseCause::Protocol,
                    a.text, true, a.reason, now);
        return;
    }
    Message w;
    w.type = MessageType::Welcome;
    w.flags = a.new_session ? welcome_flag::kNewSession : 0;
    w.value = a.resume_sequence;
    w.proof = welcome_proof(cfg.key, m.proof, w.value, w.flags);
    c.ack = a.resume_sequence;
    c.state = ConnState::Streaming;
    if (!post_message(c, w))
        begin_close(c, CloseCause::Resources,
                    fmt::format("stream {} from {}: cannot send the welcome: {}", c.rq.stream_id,
                                c.peer, std::strerror(errno)),
                    false, RejectReason::Protocol, now);
}

void RdmaListener::Impl::finish_batch(RConn& c) {
    if (c.state != ConnState::Streaming) return;
    if (c.consumed != c.released) {
        std::string why;
        const auto ack = h.on_batch_done(c.id, why);
        if (!ack) {
            begin_close(c, CloseCause::Storage, why, true, RejectReason::Storage, 0);
            return;
        }
        c.ack = *ack;
        c.released = c.consumed;
        c.credit_due = true;
    }
    if (c.credit_due) {
        Message m;
        m.type = MessageType::Credit;
        m.value = c.ack;
        m.released = c.released;
        // No free send buffer: the next send completion retries; credits
        // are cumulative, so one message later says everything.
        if (post_message(c, m)) c.credit_due = false;
    }
}

void RdmaListener::Impl::poll_cq(RConn& c, uint64_t now) {
    ibv_wc wc[32];
    if (!c.cq) return;
    if (c.state == ConnState::Closing) {
        // Only our sends matter now: when the Reject has left, the
        // connection goes.
        int n;
        while ((n = ibv_poll_cq(c.cq, 32, wc)) > 0)
            for (int i = 0; i < n; ++i)
                if (!(wc[i].wr_id & kWrRecv) && c.sends_in_flight) --c.sends_in_flight;
        return;
    }
    for (;;) {
        if (c.state == ConnState::Closing) return;
        const int n = ibv_poll_cq(c.cq, 32, wc);
        if (n <= 0) break;
        for (int i = 0; i < n && c.state != ConnState::Closing; ++i) {
            const ibv_wc& w = wc[i];
            if (w.status != IBV_WC_SUCCESS) {
                begin_close(
                    c, CloseCause::PeerClosed,
                    fmt::format("{}: queue pair error: {}; connection closed",
                                c.state == ConnState::Streaming
                                    ? fmt::format("stream {} from {}", c.rq.stream_id, c.peer)
                                    : fmt::format("connection from {}", c.peer),
                                ibv_wc_status_str(w.status)),
                    false, RejectReason::Protocol, now);
                return;
            }
            if (!(w.wr_id & kWrRecv)) {  // a send of ours completed
                if (c.sends_in_flight) --c.sends_in_flight;
                continue;
            }
            const uint32_t idx = static_cast<uint32_t>(w.wr_id & 0xffffffffu);
            if (w.opcode == IBV_WC_RECV) {
                on_message(c, {c.ctl.data() + std::size_t{idx} * kMessageSize, kMessageSize}, now);
            } else if (w.opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
                const uint32_t imm = ntohl(w.imm_data);
                const uint32_t expect = static_cast<uint32_t>(c.consumed % cfg.slot_count);
                if (c.state != ConnState::Streaming) {
                    begin_close(c, CloseCause::Protocol,
                                fmt::format("connection from {}: a frame was written before the "
                                            "handshake completed",
                                            c.peer),
                                true, RejectReason::Protocol, now);
                    return;
                }
                if (imm_slot(imm) != expect) {
                    begin_close(c, CloseCause::Protocol,
                                fmt::format("stream {} from {}: a frame arrived for ring slot {}, "
                                            "expected slot {}",
                                            c.rq.stream_id, c.peer, imm_slot(imm), expect),
                                true, RejectReason::Protocol, now);
                    return;
                }
                if (w.byte_len > cfg.slot_bytes) {  // the device never lets a write overrun its MR
                    begin_close(c, CloseCause::Protocol,
                                fmt::format("stream {} from {}: a write of {} bytes into ring "
                                            "slots of {} bytes",
                                            c.rq.stream_id, c.peer, w.byte_len, cfg.slot_bytes),
                                true, RejectReason::Protocol, now);
                    return;
                }
                std::string why;
                CloseCause cause = CloseCause::BadFrame;
                // Only the bytes this write carried: the rest of the slot
                // holds whatever an earlier frame left there.
                const std::span<const std::byte> slot{
                    c.ring + std::size_t{imm_slot(imm)} * cfg.slot_bytes, w.byte_len};
                ++c.consumed;
                if (!h.on_frame(c.id, slot, imm_sequence_bits(imm), why, cause)) {
                    // What arrived before the bad frame is good: keep it.
                    --c.consumed;
                    finish_batch(c);
                    if (c.state != ConnState::Closing)
                        begin_close(c, cause, why, true,
                                    cause == CloseCause::Storage ? RejectReason::Storage
                                    : cause == CloseCause::Limit ? RejectReason::Limit
                                                                 : RejectReason::Protocol,
                                    now);
                    return;
                }
            }
            if (c.state == ConnState::Closing) return;
            if (!post_recv(c, idx)) {
                begin_close(c, CloseCause::Resources,
                            fmt::format("connection from {}: ibv_post_recv: {}", c.peer,
                                        std::strerror(errno)),
                            false, RejectReason::Protocol, now);
                return;
            }
        }
    }
    if (c.state != ConnState::Closing) finish_batch(c);
}

void RdmaListener::Impl::begin_close(RConn& c, CloseCause cause, const std::string& why,
                                     bool reject, RejectReason reason, uint64_t now) {
    if (c.state == ConnState::Closing) return;
    // Frames handed over but not committed point into the ring, which is
    // about to go: commit them now (what came before a fault is good).
    if (c.state == ConnState::Streaming && c.consumed != c.released) {
        std::string ignored;
        if (const auto ack = h.on_batch_done(c.id, ignored)) {
            c.ack = *ack;
            c.released = c.consumed;
        }
    }
    if (reject && c.established) {
        Message m;
        m.type = MessageType::Reject;
        m.reason = reason;
        m.text = why;
        post_message(c, m);
    }
    c.state = ConnState::Closing;
    c.closing_deadline = (now ? now : 0) + kCloseGraceNs;
    if (!c.reported) {
        c.reported = true;
        h.on_closed(c.id, cause, why);
    }
    if (!reject || !c.established || c.sends_in_flight == 0) doomed.push_back(c.id);
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
    if (c.cm) rdma_destroy_id(c.cm);
    c.cm = nullptr;
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
        const uint64_t cid = reinterpret_cast<uint64_t>(id->context);
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

void RdmaListener::close(uint64_t conn, CloseCause cause, RejectReason reason,
                         const std::string& text) {
    RConn* c = impl_->find(conn);
    if (!c) return;
    // begin_close() needs a time only for the grace period.
    impl_->begin_close(*c, cause, text, true, reason, tcp::monotonic_ns());
}

void RdmaListener::close_all(const std::string& text) {
    Impl& m = *impl_;
    const uint64_t now = tcp::monotonic_ns();
    for (auto& [id, c] : m.conns)
        m.begin_close(*c, CloseCause::ShuttingDown, text, true, RejectReason::ShuttingDown, now);
    // Give the rejects a moment to leave.
    const uint64_t until = now + kCloseGraceNs;
    while (tcp::monotonic_ns() < until) {
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
