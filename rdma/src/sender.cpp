#include "sluice/rdma/sender.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "sluice/tcp/auth.hpp"
#include "sluice/tcp/endpoint.hpp"
#include "sluice/tcp/sender.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::rdma {
namespace {

constexpr uint64_t kCmCheckNs = 1'000'000;   // rdma_cm events while streaming: every 1 ms
constexpr uint64_t kWrCtl = ~0ull;           // wr_id of a control SEND
constexpr uint64_t kWrRecvTag = 1ull << 63;  // wr_id of a receive: tag | buffer index

uint64_t random_u64() {
    std::array<std::byte, 8> b{};
    uint64_t v = 0;
    if (tcp::random_bytes(b)) std::memcpy(&v, b.data(), 8);
    if (v == 0) v = tcp::monotonic_ns() | 1;
    return v;
}

template <std::size_t N, class... Args>
std::string_view format_into(char (&buf)[N], fmt::format_string<Args...> f, Args&&... args) {
    const auto r = fmt::format_to_n(buf, N, f, std::forward<Args>(args)...);
    return {buf, std::min<std::size_t>(r.size, N)};
}

const char* cm_event_name(rdma_cm_event_type t) {
    return rdma_event_str(t);
}

}  // namespace

struct RdmaSender::WorkRequests {
    std::array<ibv_send_wr, kMaxBatch> wr{};
    std::array<ibv_sge, kMaxBatch> sge{};
};

std::string_view to_string(SenderState s) {
    switch (s) {
        case SenderState::Waiting:
            return "waiting";
        case SenderState::Resolving:
            return "resolving";
        case SenderState::Connecting:
            return "connecting";
        case SenderState::Handshake:
            return "handshake";
        case SenderState::Streaming:
            return "streaming";
    }
    return "?";
}

std::vector<std::string> device_names() {
    std::vector<std::string> names;
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (list == nullptr) return names;
    for (int i = 0; i < n; ++i)
        names.emplace_back(ibv_get_device_name(list[i]));
    ibv_free_device_list(list);
    return names;
}

std::string no_device_message() {
    return "no RDMA device on this host: `ibv_devices` lists none. Check that the NIC's RDMA "
           "driver is loaded (ib_uverbs and the vendor module, e.g. mlx5_ib) and that "
           "`rdma link` shows a port in state ACTIVE; for soft-RoCE create one with `rdma link add "
           "rxe0 type rxe netdev IFACE`. Or use egress.type = \"tcp\"";
}

RdmaSender::RdmaSender(const SenderConfig& config)
    : cfg_(config),
      session_id_(cfg_.session_id ? cfg_.session_id : random_u64()),
      rtx_(std::max<uint32_t>(cfg_.retransmit_frames, 1)),
      backoff_(cfg_.reconnect_min_ms, cfg_.reconnect_max_ms,
               cfg_.jitter_seed ? cfg_.jitter_seed : random_u64()),
      wrs_(std::make_unique<WorkRequests>()) {
    if (cfg_.host.empty() || cfg_.port == 0)
        throw std::invalid_argument("egress.address needs a host and a port (e.g. 10.0.0.2:7700)");
    if (cfg_.retransmit_frames == 0)
        throw std::invalid_argument("egress.retransmit_frames must be at least 1");
    if (cfg_.queue_depth < 2 || cfg_.queue_depth > 16384)
        throw std::invalid_argument(
            fmt::format("egress.rdma.queue_depth = {}: expected 2..16384", cfg_.queue_depth));
    if (cfg_.signal_interval == 0 || cfg_.signal_interval > cfg_.queue_depth / 2)
        throw std::invalid_argument(fmt::format(
            "egress.rdma.signal_interval = {}: expected 1..queue_depth/2 ({}): the send queue "
            "must hold two signal intervals",
            cfg_.signal_interval, cfg_.queue_depth / 2));
    if (device_names().empty()) throw std::runtime_error(no_device_message());
    peer_ = tcp::Endpoint{cfg_.host, cfg_.port}.to_string();
    channel_ = rdma_create_event_channel();
    if (channel_ == nullptr)
        throw std::runtime_error(fmt::format(
            "cannot open the rdma_cm event channel: {}; load rdma_ucm (modprobe rdma_ucm) and "
            "check /dev/infiniband/rdma_cm",
            std::strerror(errno)));
    const int fl = ::fcntl(channel_->fd, F_GETFL);
    ::fcntl(channel_->fd, F_SETFL, fl | O_NONBLOCK);
}

RdmaSender::~RdmaSender() {
    teardown();
    close_device();
    if (channel_) rdma_destroy_event_channel(channel_);
}

void RdmaSender::register_memory(const void* base, std::size_t bytes) {
    if (bytes == 0) return;
    if (nregions_ == kMaxRegions)
        throw std::runtime_error(fmt::format("more than {} memory regions", kMaxRegions));
    Region& r = regions_[nregions_++];
    r = Region{reinterpret_cast<uintptr_t>(base), bytes, nullptr};
    if (pd_ != nullptr && !register_region(r))
        throw std::runtime_error(
            fmt::format("ibv_reg_mr of {} bytes: {}; raise the locked-memory "
                        "limit (ulimit -l unlimited)",
                        bytes, std::strerror(errno)));
}

bool RdmaSender::register_region(Region& r) {
    r.mr = ibv_reg_mr(pd_, reinterpret_cast<void*>(r.base), r.bytes, IBV_ACCESS_LOCAL_WRITE);
    if (r.mr) stats_.memory_registrations.inc();
    return r.mr != nullptr;
}

const RdmaSender::Region* RdmaSender::find_region(uintptr_t p, std::size_t len) {
    for (std::size_t i = 0; i < nregions_; ++i) {
        const Region& r = regions_[i];
        if (p >= r.base && p + len <= r.base + r.bytes && r.mr) return &r;
    }
    // Not registered: register the pages it spans, once (counted).
    if (nregions_ == kMaxRegions || pd_ == nullptr) return nullptr;
    const uintptr_t page = 4096;
    Region& r = regions_[nregions_];
    r = Region{p & ~(page - 1), ((p + len + page - 1) & ~(page - 1)) - (p & ~(page - 1)), nullptr};
    if (!register_region(r)) return nullptr;
    ++nregions_;
    return &r;
}

bool RdmaSender::open_device(ibv_context* ctx) {
    if (ctx == ctx_ && pd_) return true;
    close_device();
    ctx_ = ctx;
    pd_ = ibv_alloc_pd(ctx);
    if (!pd_) return false;
    ctl_mr_ = ibv_reg_mr(pd_, ctl_.data(), ctl_.size(), IBV_ACCESS_LOCAL_WRITE);
    if (!ctl_mr_) return false;
    for (std::size_t i = 0; i < nregions_; ++i)
        if (!register_region(regions_[i])) return false;
    return true;
}

void RdmaSender::close_device() {
    for (std::size_t i = 0; i < nregions_; ++i) {
        if (regions_[i].mr) ibv_dereg_mr(regions_[i].mr);
        regions_[i].mr = nullptr;
    }
    if (ctl_mr_) ibv_dereg_mr(ctl_mr_);
    ctl_mr_ = nullptr;
    if (pd_) ibv_dealloc_pd(pd_);
    pd_ = nullptr;
    ctx_ = nullptr;
}

SubmitResult RdmaSender::submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie) {
    if (!rtx_.push(frame, sequence, cookie)) {
        stats_.submit_full.inc();
        return SubmitResult::Full;
    }
    stats_.frames_submitted.inc();
    return SubmitResult::Accepted;
}

std::size_t RdmaSender::reclaim(std::span<void*> out) {
    return rtx_.reclaim(out);
}

void RdmaSender::set_state(SenderState s) {
    state_ = s;
    stats_.state.store(static_cast<uint8_t>(s), std::memory_order_relaxed);  // a display
    stats_.connected.store(s == SenderState::Streaming, std::memory_order_relaxed);
}

void RdmaSender::record_error(std::string_view text) {
    stats_.errors.inc();
    stats_.last_error.set(text);
}

void RdmaSender::teardown() {
    if (id_) {
        if (qp_) {
            if (state_ == SenderState::Handshake || state_ == SenderState::Streaming)
                rdma_disconnect(id_);
            rdma_destroy_qp(id_);
        }
        qp_ = false;
        if (cq_) ibv_destroy_cq(cq_);
        cq_ = nullptr;
        rdma_destroy_id(id_);
        id_ = nullptr;
    }
    rtx_.rewind();
}

void RdmaSender::fail(uint64_t now, std::string_view message, bool timeout) {
    if (state_ == SenderState::Streaming) {
        stats_.disconnects.inc();
    } else if (state_ != SenderState::Waiting) {
        stats_.connect_failures.inc();
    }
    if (timeout) stats_.timeouts.inc();
    record_error(message);
    teardown();
    set_state(SenderState::Waiting);
    next_attempt_ns_ = now + backoff_.next_delay_ns();
}

void RdmaSender::disconnect(uint64_t now, std::string_view why) {
    fail(now, why);
}

void RdmaSender::close() {
    teardown();
    set_state(SenderState::Waiting);
    next_attempt_ns_ = UINT64_MAX;
}

void RdmaSender::start_attempt(uint64_t now) {
    char msg[384];
    if (rdma_create_id(channel_, &id_, this, RDMA_PS_TCP) != 0) {
        id_ = nullptr;
        fail(now, format_into(msg, "rdma_create_id: {}", std::strerror(errno)));
        return;
    }
    tcp::ResolvedAddress dst, src;
    try {
        dst = tcp::resolve(tcp::Endpoint{cfg_.host, cfg_.port});
        if (!cfg_.source.empty()) src = tcp::resolve(tcp::Endpoint{cfg_.source, 0}, true);
    } catch (const std::exception& e) {
        set_state(SenderState::Resolving);
        fail(now, format_into(msg, "{}", e.what()));
        return;
    }
    set_state(SenderState::Resolving);
    deadline_ns_ = now + uint64_t{cfg_.timeout_ms} * 1'000'000;
    if (rdma_resolve_addr(
            id_, cfg_.source.empty() ? nullptr : reinterpret_cast<sockaddr*>(&src.addr),
            reinterpret_cast<sockaddr*>(&dst.addr), static_cast<int>(cfg_.timeout_ms)) != 0) {
        fail(now, format_into(msg, "cannot resolve {} to an RDMA device: {}{}", peer_,
                              std::strerror(errno),
                              cfg_.source.empty() ? "" : " (check egress.rdma source address)"));
    }
}

void RdmaSender::on_addr_resolved(uint64_t now) {
    char msg[384];
    if (!open_device(id_->verbs)) {
        fail(now, format_into(msg,
                              "cannot set up RDMA device {}: {}; raise the locked-memory limit "
                              "(ulimit -l unlimited)",
                              ibv_get_device_name(id_->verbs->device), std::strerror(errno)));
        return;
    }
    if (rdma_resolve_route(id_, static_cast<int>(cfg_.timeout_ms)) != 0)
        fail(now, format_into(msg, "rdma_resolve_route to {}: {}", peer_, std::strerror(errno)));
}

void RdmaSender::on_route_resolved(uint64_t now) {
    char msg[384];
    const uint32_t depth = cfg_.queue_depth;
    cq_ = ibv_create_cq(id_->verbs, static_cast<int>(depth + kRecvs), nullptr, nullptr, 0);
    if (!cq_) {
        fail(now, format_into(msg, "ibv_create_cq: {}", std::strerror(errno)));
        return;
    }
    ibv_qp_init_attr qa{};
    qa.send_cq = cq_;
    qa.recv_cq = cq_;
    qa.qp_type = IBV_QPT_RC;
    qa.sq_sig_all = 0;
    qa.cap.max_send_wr = depth;
    qa.cap.max_recv_wr = kRecvs;
    qa.cap.max_send_sge = 1;
    qa.cap.max_recv_sge = 1;
    qa.cap.max_inline_data = cfg_.inline_bytes;
    if (rdma_create_qp(id_, pd_, &qa) != 0) {
        // Some devices take less inline data than asked: retry without.
        qa.cap.max_inline_data = 0;
        if (rdma_create_qp(id_, pd_, &qa) != 0) {
            fail(now, format_into(msg,
                                  "rdma_create_qp (send queue {}): {}; lower "
                                  "egress.rdma.queue_depth",
                                  depth, std::strerror(errno)));
            return;
        }
    }
    qp_ = true;
    max_inline_ = std::min(qa.cap.max_inline_data, cfg_.inline_bytes);
    sq_depth_ = std::min<uint32_t>(qa.cap.max_send_wr, depth);
    posted_ = completed_ = 0;
    unsignalled_ = 0;
    for (uint32_t i = 0; i < kRecvs; ++i) {
        if (!post_recv(i)) {
            fail(now, format_into(msg, "ibv_post_recv: {}", std::strerror(errno)));
            return;
        }
    }
    ConnectRequest rq;
    const tcp::StreamPosition pos = rtx_.position();
    rq.flags = (cfg_.key.empty() ? 0 : request_flag::kHasKey) |
               (pos.known ? request_flag::kHasPosition : 0);
    rq.stream_id = cfg_.stream_id;
    rq.session_id = session_id_;
    rq.next_sequence = pos.sequence;
    rq.next_packet_index = pos.packet_index;
    tcp::random_bytes(rq.nonce);
    request_ = encode(rq);
    rdma_conn_param cp{};
    cp.private_data = request_.data();
    cp.private_data_len = static_cast<uint8_t>(request_.size());
    cp.retry_count = 7;
    cp.rnr_retry_count = 7;  // infinite: the receiver reposts as fast as it consumes
    if (rdma_connect(id_, &cp) != 0) {
        fail(now, format_into(msg, "rdma_connect to {}: {}", peer_, std::strerror(errno)));
        return;
    }
    set_state(SenderState::Connecting);
}

bool RdmaSender::post_recv(uint32_t index) {
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(ctl_.data() + index * kMessageSize);
    sge.length = kMessageSize;
    sge.lkey = ctl_mr_->lkey;
    ibv_recv_wr wr{};
    wr.wr_id = kWrRecvTag | index;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    return ibv_post_recv(id_->qp, &wr, &bad) == 0;
}

bool RdmaSender::post_message(const Message& m) {
    std::byte* buf = ctl_.data() + kRecvs * kMessageSize;
    const MessageBytes b = encode(m);
    std::memcpy(buf, b.data(), b.size());
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(buf);
    sge.length = kMessageSize;
    sge.lkey = ctl_mr_->lkey;
    ibv_send_wr wr{};
    wr.wr_id = kWrCtl;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    ibv_send_wr* bad = nullptr;
    if (ibv_post_send(id_->qp, &wr, &bad) != 0) return false;
    ++posted_;
    return true;
}

void RdmaSender::on_established(uint64_t now, const void* data, std::size_t len) {
    char msg[384];
    const std::span<const std::byte> pd{static_cast<const std::byte*>(data), data ? len : 0};
    const DecodeStatus st = decode(pd, accept_);
    if (st != DecodeStatus::Ok) {
        fail(now, format_into(msg,
                              "{} answered the connection with malformed ring data ({}): is "
                              "it a sluice-collector --listen rdma://?",
                              peer_, to_string(st)));
        return;
    }
    if ((accept_.flags & accept_flag::kKeyRequired) && cfg_.key.empty()) {
        fail(now, format_into(msg,
                              "collector {} requires a key: set egress.key_file to the "
                              "collector's --key-file",
                              peer_));
        return;
    }
    const std::array<std::byte, kAcceptSize> acc = encode(accept_);
    proof_ = sender_proof(cfg_.key, request_, acc);
    Message m;
    m.type = MessageType::Proof;
    m.proof = proof_;
    if (!post_message(m)) {
        fail(now, format_into(msg, "ibv_post_send: {}", std::strerror(errno)));
        return;
    }
    set_state(SenderState::Handshake);
}

void RdmaSender::on_rejected(uint64_t now, const void* data, std::size_t len, int status) {
    char msg[384];
    ConnectReject rj;
    const std::span<const std::byte> pd{static_cast<const std::byte*>(data), data ? len : 0};
    if (decode(pd, rj) == DecodeStatus::Ok) {
        char text[kMaxRejectText];
        std::size_t n = 0;
        for (char ch : rj.text)
            text[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
        fail(now, format_into(msg, "collector {} rejected the connection ({}): {}", peer_,
                              tcp::to_string(rj.reason), std::string_view(text, n)));
    } else {
        fail(now, format_into(msg,
                              "{} rejected the connection (status {}): no sluice-collector "
                              "--listen rdma:// listens there, or it is not reachable",
                              peer_, status));
    }
}

bool RdmaSender::read_cm_events(uint64_t now) {
    bool work = false;
    rdma_cm_event* ev = nullptr;
    while (rdma_get_cm_event(channel_, &ev) == 0) {
        work = true;
        // Copy what is needed, then ack: an id cannot be destroyed while
        // one of its events is unacknowledged.
        const rdma_cm_event_type type = ev->event;
        const bool ours = ev->id == id_ && id_ != nullptr;
        const int status = ev->status;
        std::array<std::byte, 256> pd{};
        std::size_t pd_len = 0;
        if (ev->param.conn.private_data && ev->param.conn.private_data_len) {
            pd_len = std::min<std::size_t>(ev->param.conn.private_data_len, pd.size());
            std::memcpy(pd.data(), ev->param.conn.private_data, pd_len);
        }
        rdma_ack_cm_event(ev);
        if (!ours) continue;  // a late event of a connection already torn down
        char msg[384];
        switch (type) {
            case RDMA_CM_EVENT_ADDR_RESOLVED:
                on_addr_resolved(now);
                break;
            case RDMA_CM_EVENT_ROUTE_RESOLVED:
                on_route_resolved(now);
                break;
            case RDMA_CM_EVENT_ESTABLISHED:
                on_established(now, pd.data(), pd_len);
                break;
            case RDMA_CM_EVENT_REJECTED:
                on_rejected(now, pd_len ? pd.data() : nullptr, pd_len, status);
                break;
            case RDMA_CM_EVENT_DISCONNECTED:
                fail(now, format_into(msg, "collector {} disconnected", peer_));
                break;
            case RDMA_CM_EVENT_ADDR_ERROR:
            case RDMA_CM_EVENT_ROUTE_ERROR:
            case RDMA_CM_EVENT_UNREACHABLE:
            case RDMA_CM_EVENT_CONNECT_ERROR:
            case RDMA_CM_EVENT_DEVICE_REMOVAL:
                fail(now, format_into(msg,
                                      "{} ({}): {}: is the collector running and is its "
                                      "address reachable over an RDMA device (rdma link)?",
                                      peer_, cm_event_name(type), std::strerror(-status)));
                break;
            default:
                break;
        }
    }
    return work;
}

void RdmaSender::on_message(uint64_t now, std::span<const std::byte> bytes) {
    char msg[384];
    Message m;
    const DecodeStatus st = decode(bytes, m);
    if (st != DecodeStatus::Ok) {
        fail(now,
             format_into(msg, "malformed message from collector {}: {}", peer_, to_string(st)));
        return;
    }
    last_rx_ns_ = now;
    if (m.type == MessageType::Reject) {
        char text[kMessageSize];
        std::size_t n = 0;
        for (char ch : m.text)
            text[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
        fail(now, format_into(msg, "collector {} ended the connection ({}): {}", peer_,
                              tcp::to_string(m.reason), std::string_view(text, n)));
        return;
    }
    if (state_ == SenderState::Handshake && m.type == MessageType::Welcome) {
        if (!tcp::proofs_equal(m.proof, welcome_proof(cfg_.key, proof_, m.value, m.flags))) {
            fail(now, format_into(msg,
                                  "collector {} did not prove it holds the key: its "
                                  "--key-file differs from egress.key_file",
                                  peer_));
            return;
        }
        stats_.frames_acknowledged.add(rtx_.acknowledge(m.value));
        credits_.reset(accept_.slot_count);
        backoff_.reset();
        stats_.connects.inc();
        credit_stalled_ = false;
        set_state(SenderState::Streaming);
        return;
    }
    if (state_ == SenderState::Streaming && m.type == MessageType::Credit) {
        stats_.credit_messages.inc();
        if (!credits_.release(m.released)) {
            fail(now, format_into(msg,
                                  "collector {} released {} ring slots, but {} were written "
                                  "and {} released before: a broken peer",
                                  peer_, m.released, credits_.written(), credits_.released()));
            return;
        }
        stats_.frames_acknowledged.add(rtx_.acknowledge(m.value));
        return;
    }
    fail(now, format_into(msg, "unexpected message type {} from collector {} in state {}",
                          static_cast<int>(m.type), peer_, to_string(state_)));
}

bool RdmaSender::poll_completions(uint64_t now) {
    ibv_wc wc[32];
    bool work = false;
    for (;;) {
        const int n = ibv_poll_cq(cq_, 32, wc);
        if (n <= 0) break;
        work = true;
        for (int i = 0; i < n; ++i) {
            char msg[384];
            if (wc[i].status != IBV_WC_SUCCESS) {
                stats_.completion_errors.inc();
                fail(now, format_into(msg,
                                      "work completion error on the connection to {}: {} "
                                      "({}); reconnecting",
                                      peer_, ibv_wc_status_str(wc[i].status),
                                      static_cast<int>(wc[i].status)));
                return true;
            }
            if (wc[i].wr_id & kWrRecvTag) {
                const uint32_t idx = static_cast<uint32_t>(wc[i].wr_id & 0xffffffffu);
                if (idx >= kRecvs) continue;
                on_message(now, {ctl_.data() + idx * kMessageSize, kMessageSize});
                if (!qp_) return true;  // the message ended the connection
                if (!post_recv(idx)) {
                    fail(now, format_into(msg, "ibv_post_recv: {}", std::strerror(errno)));
                    return true;
                }
            } else if (wc[i].wr_id == kWrCtl) {
                ++completed_;
            } else {
                // A signalled write: it and every write posted before it are done.
                completed_ = std::max(completed_, wc[i].wr_id + 1);
            }
        }
    }
    return work;
}

bool RdmaSender::send_frames(uint64_t now) {
    bool work = false;
    while (rtx_.unsent() > 0) {
        const uint32_t sq_room = static_cast<uint32_t>(sq_depth_ - (posted_ - completed_));
        const uint32_t credits = credits_.available();
        if (credits == 0) {
            if (!credit_stalled_) stats_.credit_stalls.inc();
            credit_stalled_ = true;
            break;
        }
        credit_stalled_ = false;
        uint32_t n = std::min<uint32_t>({kMaxBatch, credits, sq_room});
        if (n == 0) break;
        n = static_cast<uint32_t>(rtx_.fill_iov(iov_.data(), static_cast<int>(n)));
        if (n == 0) break;
        if (rtx_.unacknowledged() == rtx_.unsent()) last_rx_ns_ = now;  // the wait starts now
        auto& wr = wrs_->wr;
        auto& sge = wrs_->sge;
        std::size_t bytes = 0;
        uint32_t inl = 0;
        for (uint32_t i = 0; i < n; ++i) {
            const auto p = reinterpret_cast<uintptr_t>(iov_[i].iov_base);
            const std::size_t len = iov_[i].iov_len;
            char msg[384];
            if (len > accept_.slot_bytes) {
                fail(now, format_into(msg,
                                      "a frame of {} bytes does not fit the collector's "
                                      "ring slots of {} bytes: start sluice-collector with "
                                      "--rdma-slot-bytes {} or more, or lower "
                                      "batch.frame_size",
                                      len, accept_.slot_bytes, len));
                return true;
            }
            uint64_t sequence = 0;
            std::memcpy(&sequence,
                        static_cast<const std::byte*>(iov_[i].iov_base) + wire::offset::sequence,
                        sizeof sequence);
            const bool inline_it = len <= max_inline_;
            sge[i] = ibv_sge{};
            sge[i].addr = p;
            sge[i].length = static_cast<uint32_t>(len);
            if (!inline_it) {
                const Region* r = find_region(p, len);
                if (r == nullptr) {
                    fail(now, format_into(msg,
                                          "cannot register frame memory: {}; raise the "
                                          "locked-memory limit (ulimit -l unlimited)",
                                          std::strerror(errno)));
                    return true;
                }
                sge[i].lkey = r->mr->lkey;
            }
            inl += inline_it;
            const uint32_t slot = credits_.take();
            wr[i] = ibv_send_wr{};
            wr[i].sg_list = &sge[i];
            wr[i].num_sge = 1;
            wr[i].opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
            wr[i].imm_data = htonl(encode_imm(slot, sequence));
            wr[i].wr.rdma.remote_addr = accept_.ring_addr + uint64_t{slot} * accept_.slot_bytes;
            wr[i].wr.rdma.rkey = accept_.rkey;
            wr[i].send_flags = inline_it ? IBV_SEND_INLINE : 0;
            // Signal every signal_interval writes, so that completions free
            // the send queue without one per write.
            if (++unsignalled_ >= cfg_.signal_interval) {
                wr[i].send_flags |= IBV_SEND_SIGNALED;
                unsignalled_ = 0;
            }
            wr[i].wr_id = posted_ + i;
            wr[i].next = i + 1 < n ? &wr[i + 1] : nullptr;
            bytes += len;
        }
        ibv_send_wr* bad = nullptr;
        if (ibv_post_send(id_->qp, wr.data(), &bad) != 0) {
            char msg[256];
            fail(now, format_into(msg, "ibv_post_send: {}", std::strerror(errno)));
            return true;
        }
        posted_ += n;
        stats_.post_lists.inc();
        const tcp::RetransmitBuffer::Advance a = rtx_.advance(bytes);
        stats_.frames_sent.add(a.frames);
        stats_.frames_retransmitted.add(a.retransmitted);
        stats_.frames_inline.add(inl);
        stats_.bytes_sent.add(bytes);
        work = true;
    }
    return work;
}

bool RdmaSender::poll(uint64_t now) {
    bool work = false;
    switch (state_) {
        case SenderState::Waiting:
            if (now < next_attempt_ns_) return false;
            start_attempt(now);
            return true;
        case SenderState::Resolving:
        case SenderState::Connecting:
            work = read_cm_events(now);
            if (state_ == SenderState::Resolving || state_ == SenderState::Connecting) {
                if (now >= deadline_ns_) {
                    char msg[256];
                    fail(now,
                         format_into(msg, "no connection to {} within {} ms (egress.timeout_ms)",
                                     peer_, cfg_.timeout_ms),
                         true);
                }
            }
            return work;
        case SenderState::Handshake:
            work = read_cm_events(now);
            if (state_ == SenderState::Handshake) work |= poll_completions(now);
            if (state_ == SenderState::Handshake && now >= deadline_ns_) {
                char msg[256];
                fail(now,
                     format_into(msg, "collector {} did not complete the handshake within {} ms",
                                 peer_, cfg_.timeout_ms),
                     true);
            }
            return work;
        case SenderState::Streaming:
            break;
    }
    if (now >= next_cm_check_ns_) {
        // rdma_get_cm_event() allocates its event before it looks: ask the
        // channel first (a zero-timeout poll), read only when something is
        // there (a disconnect, on a streaming connection).
        next_cm_check_ns_ = now + kCmCheckNs;
        pollfd pfd{channel_->fd, POLLIN, 0};
        if (::poll(&pfd, 1, 0) > 0) {
            work |= read_cm_events(now);
            if (state_ != SenderState::Streaming) return true;
        }
    }
    work |= poll_completions(now);
    if (state_ != SenderState::Streaming) return true;
    work |= send_frames(now);
    if (state_ != SenderState::Streaming) return true;
    if (rtx_.unacknowledged() > rtx_.unsent() &&
        now - last_rx_ns_ > uint64_t{cfg_.timeout_ms} * 1'000'000) {
        char msg[256];
        fail(now,
             format_into(msg, "collector {} acknowledged nothing for {} ms (egress.timeout_ms)",
                         peer_, cfg_.timeout_ms),
             true);
        return true;
    }
    return work;
}

}  // namespace sluice::rdma
