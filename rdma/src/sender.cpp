// The RDMA sender's set-up side: devices and protection domains, memory
// registration, rdma_cm address and route resolution, the queue pair, the
// connect request and the collector's accept or reject. Streaming is
// sender_stream.cpp's.
#include "sluice/rdma/sender.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sender_impl.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "sluice/session/detail/text.hpp"
#include "sluice/session/endpoint.hpp"
#include "sluice/session/key.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::rdma {
namespace {

using namespace detail;
using session::detail::format_into;

session::SenderSettings settings_of(const SenderConfig& c) {
    if (c.host.empty() || c.port == 0)
        throw std::invalid_argument("egress.address needs a host and a port (e.g. 10.0.0.2:7700)");
    if (c.retransmit_frames == 0)
        throw std::invalid_argument("egress.retransmit_frames must be at least 1");
    if (c.queue_depth < 2 || c.queue_depth > 16384)
        throw std::invalid_argument(
            fmt::format("egress.rdma.queue_depth = {}: expected 2..16384", c.queue_depth));
    if (c.signal_interval == 0 || c.signal_interval > c.queue_depth / 2)
        throw std::invalid_argument(fmt::format(
            "egress.rdma.signal_interval = {}: expected 1..queue_depth/2 ({}): the send queue "
            "must hold two signal intervals",
            c.signal_interval, c.queue_depth / 2));
    session::SenderSettings s;
    s.peer = session::Endpoint{c.host, c.port}.to_string();
    s.stream_id = c.stream_id;
    s.key = c.key;
    s.reconnect_min_ms = c.reconnect_min_ms;
    s.reconnect_max_ms = c.reconnect_max_ms;
    s.heartbeat_ms = 0;  // a dead queue pair shows as a completion error; no heartbeats
    s.timeout_ms = c.timeout_ms;
    s.retransmit_frames = c.retransmit_frames;
    s.session_id = c.session_id;
    s.jitter_seed = c.jitter_seed;
    return s;
}

const char* cm_event_name(rdma_cm_event_type t) {
    return rdma_event_str(t);
}

}  // namespace

SendCompletion classify(const ibv_wc& wc) {
    switch (wc.opcode) {
        case IBV_WC_RECV:
            return SendCompletion::Message;
        case IBV_WC_SEND:
            return SendCompletion::ControlSend;
        case IBV_WC_RDMA_WRITE:
            return SendCompletion::Write;
        default:
            return SendCompletion::Unknown;
    }
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
    : cfg_(config), core_(settings_of(cfg_), *this), wrs_(std::make_unique<WorkRequests>()) {
    if (device_names().empty()) throw std::runtime_error(no_device_message());
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
    if (r.mr) rdma_stats_.memory_registrations.inc();
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

void RdmaSender::teardown() {
    if (id_) {
        if (qp_) {
            if (established_) rdma_disconnect(id_);
            rdma_destroy_qp(id_);
        }
        qp_ = false;
        if (cq_) ibv_destroy_cq(cq_);
        cq_ = nullptr;
        rdma_destroy_id(id_);
        id_ = nullptr;
    }
    established_ = false;
}

void RdmaSender::begin_connect(session::SenderCore& core, uint64_t now) {
    (void)core;
    char msg[384];
    if (rdma_create_id(channel_, &id_, this, RDMA_PS_TCP) != 0) {
        id_ = nullptr;
        core_.fail(now, format_into(msg, "rdma_create_id: {}", std::strerror(errno)));
        return;
    }
    session::ResolvedAddress dst, src;
    try {
        dst = session::resolve(session::Endpoint{cfg_.host, cfg_.port});
        if (!cfg_.source.empty()) src = session::resolve(session::Endpoint{cfg_.source, 0}, true);
    } catch (const std::exception& e) {
        core_.fail(now, format_into(msg, "{}", e.what()));
        return;
    }
    if (rdma_resolve_addr(
            id_, cfg_.source.empty() ? nullptr : reinterpret_cast<sockaddr*>(&src.addr),
            reinterpret_cast<sockaddr*>(&dst.addr), static_cast<int>(cfg_.timeout_ms)) != 0) {
        core_.fail(now,
                   format_into(msg, "cannot resolve {} to an RDMA device: {}{}",
                               core_.settings().peer, std::strerror(errno),
                               cfg_.source.empty() ? "" : " (check egress.rdma source address)"));
    }
}

void RdmaSender::on_addr_resolved(uint64_t now) {
    char msg[384];
    if (!open_device(id_->verbs)) {
        core_.fail(now,
                   format_into(msg,
                               "cannot set up RDMA device {}: {}; raise the locked-memory limit "
                               "(ulimit -l unlimited)",
                               ibv_get_device_name(id_->verbs->device), std::strerror(errno)));
        return;
    }
    if (rdma_resolve_route(id_, static_cast<int>(cfg_.timeout_ms)) != 0)
        core_.fail(now, format_into(msg, "rdma_resolve_route to {}: {}", core_.settings().peer,
                                    std::strerror(errno)));
}

void RdmaSender::on_route_resolved(uint64_t now) {
    char msg[384];
    const uint32_t depth = cfg_.queue_depth;
    cq_ = ibv_create_cq(id_->verbs, static_cast<int>(depth + kRecvs), nullptr, nullptr, 0);
    if (!cq_) {
        core_.fail(now, format_into(msg, "ibv_create_cq: {}", std::strerror(errno)));
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
            core_.fail(now, format_into(msg,
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
            core_.fail(now, format_into(msg, "ibv_post_recv: {}", std::strerror(errno)));
            return;
        }
    }
    const session::Hello h = core_.hello();
    ConnectRequest rq;
    rq.flags = (h.has_key ? request_flag::kHasKey : 0) |
               (h.position.known ? request_flag::kHasPosition : 0) |
               (h.resume ? request_flag::kResume : 0);
    resuming_ = h.resume;
    resume_secret_ = h.secret;
    rq.stream_id = h.stream_id;
    rq.session_id = h.session_id;
    rq.next_sequence = h.position.sequence;
    rq.next_packet_index = h.position.packet_index;
    session::random_bytes(rq.nonce);
    request_ = encode(rq);
    rdma_conn_param cp{};
    cp.private_data = request_.data();
    cp.private_data_len = static_cast<uint8_t>(request_.size());
    cp.retry_count = 7;
    cp.rnr_retry_count = 7;  // infinite: the receiver reposts as fast as it consumes
    if (rdma_connect(id_, &cp) != 0) {
        core_.fail(now, format_into(msg, "rdma_connect to {}: {}", core_.settings().peer,
                                    std::strerror(errno)));
    }
}

void RdmaSender::on_established(uint64_t now, const void* data, std::size_t len) {
    char msg[384];
    const std::span<const std::byte> pd{static_cast<const std::byte*>(data), data ? len : 0};
    const DecodeStatus st = decode(pd, accept_);
    if (st != DecodeStatus::Ok) {
        core_.fail(now, format_into(msg,
                                    "{} answered the connection with malformed ring data ({}): is "
                                    "it a sluice-collector --listen rdma://?",
                                    core_.settings().peer, to_string(st)));
        return;
    }
    if ((accept_.flags & accept_flag::kKeyRequired) && cfg_.key.empty()) {
        core_.fail(now, format_into(msg,
                                    "collector {} requires a key: set egress.key_file to the "
                                    "collector's --key-file",
                                    core_.settings().peer));
        return;
    }
    const std::array<std::byte, kAcceptSize> acc = encode(accept_);
    proof_ = resuming_ ? resume_proof(resume_secret_, request_, acc)
                       : sender_proof(cfg_.key, request_, acc);
    Message m;
    m.type = MessageType::Proof;
    m.proof = proof_;
    if (!post_message(m)) {
        core_.fail(now, format_into(msg, "ibv_post_send: {}", std::strerror(errno)));
        return;
    }
    established_ = true;
    core_.handshaking(now);
}

void RdmaSender::on_rejected(uint64_t now, const void* data, std::size_t len, int status) {
    char msg[384];
    ConnectReject rj;
    const std::span<const std::byte> pd{static_cast<const std::byte*>(data), data ? len : 0};
    if (decode(pd, rj) == DecodeStatus::Ok) {
        core_.rejected(now, rj.reason, rj.text);
    } else {
        core_.fail(now, format_into(msg,
                                    "{} rejected the connection (status {}): no sluice-collector "
                                    "--listen rdma:// listens there, or it is not reachable",
                                    core_.settings().peer, status));
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
                // A Reject the collector sent before it disconnected may still
                // wait in the completion queue: it, not the disconnect, is
                // what the operator needs to read.
                if (cq_ && qp_) poll_completions(now);
                if (qp_)
                    core_.fail(
                        now, format_into(msg, "collector {} disconnected", core_.settings().peer));
                break;
            case RDMA_CM_EVENT_ADDR_ERROR:
            case RDMA_CM_EVENT_ROUTE_ERROR:
            case RDMA_CM_EVENT_UNREACHABLE:
            case RDMA_CM_EVENT_CONNECT_ERROR:
            case RDMA_CM_EVENT_DEVICE_REMOVAL:
                core_.fail(now, format_into(msg,
                                            "{} ({}): {}: is the collector running and is its "
                                            "address reachable over an RDMA device (rdma link)?",
                                            core_.settings().peer, cm_event_name(type),
                                            std::strerror(-status)));
                break;
            default:
                break;
        }
    }
    return work;
}

}  // namespace sluice::rdma
