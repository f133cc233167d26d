// The RDMA sender while it streams: control messages posted and received,
// work completions by opcode, the collector's Welcome and Credits, and frames
// written into the ring as credits allow (WRITE WITH IMMEDIATE, inline when
// small, signalled every signal_interval).
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

constexpr uint64_t kCmCheckNs = 1'000'000;  // rdma_cm events while streaming: every 1 ms

}  // namespace

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
    wr.wr_id = kWrCtlTag | posted_;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    ibv_send_wr* bad = nullptr;
    if (ibv_post_send(id_->qp, &wr, &bad) != 0) return false;
    ++posted_;
    return true;
}

void RdmaSender::on_message(uint64_t now, std::span<const std::byte> bytes) {
    char msg[384];
    Message m;
    const DecodeStatus st = decode(bytes, m);
    if (st != DecodeStatus::Ok) {
        core_.fail(now, format_into(msg, "malformed message from collector {}: {}",
                                    core_.settings().peer, to_string(st)));
        return;
    }
    core_.heard(now);
    if (m.type == MessageType::Reject) {
        core_.rejected(now, m.reason, m.text);
        return;
    }
    const SenderState state = core_.state();
    if (state == SenderState::Handshake && m.type == MessageType::Welcome) {
        // A resumed session's collector proves the session's secret, a new
        // one's the key.
        const std::span<const std::byte> proved = resuming_
                                                      ? std::span<const std::byte>(resume_secret_)
                                                      : std::span<const std::byte>(cfg_.key);
        if (!session::proofs_equal(m.proof, welcome_proof(proved, proof_, m))) {
            core_.fail(now, format_into(msg,
                                        "collector {} did not prove it holds the key: its "
                                        "--key-file differs from egress.key_file",
                                        core_.settings().peer));
            return;
        }
        ring_ = Ring{m.ring_addr, m.rkey, accept_.slot_bytes, accept_.slot_count};
        credits_.reset(ring_.slot_count);
        credit_stalled_ = false;
        if (!resuming_) core_.established(session_secret(cfg_.key, request_, encode(accept_)));
        core_.welcomed(now, m.value);
        return;
    }
    if (state == SenderState::Streaming && m.type == MessageType::Credit) {
        rdma_stats_.credit_messages.inc();
        if (!credits_.release(m.released)) {
            core_.fail(now, format_into(msg,
                                        "collector {} released {} ring slots, but {} were "
                                        "written and {} released before: a broken peer",
                                        core_.settings().peer, m.released, credits_.written(),
                                        credits_.released()));
            return;
        }
        core_.acknowledged(now, m.value);
        return;
    }
    core_.fail(now, format_into(msg, "unexpected message type {} from collector {} in state {}",
                                static_cast<int>(m.type), core_.settings().peer,
                                session::to_string(state)));
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
                rdma_stats_.completion_errors.inc();
                core_.fail(now, format_into(msg,
                                            "work completion error on the connection to {}: {} "
                                            "({}); reconnecting",
                                            core_.settings().peer, ibv_wc_status_str(wc[i].status),
                                            static_cast<int>(wc[i].status)));
                return true;
            }
            switch (classify(wc[i])) {
                case SendCompletion::Message: {
                    const uint32_t idx = static_cast<uint32_t>(wc[i].wr_id & 0xffffffffu);
                    if (!(wc[i].wr_id & kWrRecvTag) || idx >= kRecvs) break;
                    on_message(now, {ctl_.data() + idx * kMessageSize, kMessageSize});
                    if (!qp_) return true;  // the message ended the connection
                    if (!post_recv(idx)) {
                        core_.fail(now,
                                   format_into(msg, "ibv_post_recv: {}", std::strerror(errno)));
                        return true;
                    }
                    break;
                }
                case SendCompletion::ControlSend:
                case SendCompletion::Write:
                    // A signalled send completes it and every one posted before.
                    completed_ = std::max(completed_, (wc[i].wr_id & kWrIndexMask) + 1);
                    break;
                case SendCompletion::Unknown:
                    break;
            }
        }
    }
    return work;
}

bool RdmaSender::send_frames(uint64_t now) {
    bool work = false;
    session::RetransmitBuffer& rtx = core_.frames();
    while (rtx.unsent() > 0) {
        const uint32_t sq_room = static_cast<uint32_t>(sq_depth_ - (posted_ - completed_));
        const uint32_t credits = credits_.available();
        if (credits == 0) {
            if (!credit_stalled_) rdma_stats_.credit_stalls.inc();
            credit_stalled_ = true;
            break;
        }
        credit_stalled_ = false;
        uint32_t n = std::min<uint32_t>({kMaxBatch, credits, sq_room});
        if (n == 0) break;
        n = static_cast<uint32_t>(rtx.fill_iov(iov_.data(), static_cast<int>(n)));
        if (n == 0) break;
        auto& wr = wrs_->wr;
        auto& sge = wrs_->sge;
        std::size_t bytes = 0;
        uint32_t inl = 0;
        for (uint32_t i = 0; i < n; ++i) {
            const auto p = reinterpret_cast<uintptr_t>(iov_[i].iov_base);
            const std::size_t len = iov_[i].iov_len;
            char msg[384];
            if (len > ring_.slot_bytes) {
                core_.fail(now, format_into(msg,
                                            "a frame of {} bytes does not fit the collector's "
                                            "ring slots of {} bytes: start sluice-collector with "
                                            "--rdma-slot-bytes {} or more, or lower "
                                            "batch.frame_size",
                                            len, ring_.slot_bytes, len));
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
                    core_.fail(now, format_into(msg,
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
            wr[i].wr.rdma.remote_addr = ring_.addr + uint64_t{slot} * ring_.slot_bytes;
            wr[i].wr.rdma.rkey = ring_.rkey;
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
            core_.fail(now, format_into(msg, "ibv_post_send: {}", std::strerror(errno)));
            return true;
        }
        posted_ += n;
        rdma_stats_.post_lists.inc();
        rdma_stats_.frames_inline.add(inl);
        core_.sent(now, bytes, rtx.advance(bytes));
        work = true;
    }
    return work;
}

bool RdmaSender::poll_setup(session::SenderCore& core, uint64_t now) {
    bool work = read_cm_events(now);
    if (core.state() == SenderState::Handshake && cq_) work |= poll_completions(now);
    return work;
}

bool RdmaSender::poll_stream(session::SenderCore& core, uint64_t now) {
    (void)core;
    bool work = false;
    if (now >= next_cm_check_ns_) {
        // rdma_get_cm_event() allocates its event before it looks: ask the
        // channel first (a zero-timeout poll), read only when something is
        // there (a disconnect, on a streaming connection).
        next_cm_check_ns_ = now + kCmCheckNs;
        pollfd pfd{channel_->fd, POLLIN, 0};
        if (::poll(&pfd, 1, 0) > 0) {
            work |= read_cm_events(now);
            if (!streaming()) return true;
        }
    }
    work |= poll_completions(now);
    if (!streaming()) return true;
    work |= send_frames(now);
    return work;
}

}  // namespace sluice::rdma
