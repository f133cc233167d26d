// One connection of the RDMA listener: its queue pair's buffers, the
// handshake (the sender's key Proof, the Welcome), ring writes verified and
// handed to the handler in order, credits back, and closing with a Reject.
#include <cerrno>
#include <cstring>

#include "listener_impl.hpp"
#include <arpa/inet.h>
#include <fmt/format.h>

#include "sluice/rdma/slot.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/session/hello_check.hpp"
#include "sluice/session/key.hpp"

namespace sluice::rdma {

using namespace detail;

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
    c.pd = ibv_alloc_pd(c.cm->verbs);
    if (!c.pd) return false;
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
    if (rdma_create_qp(c.cm, c.pd, &qa) != 0) return false;
    c.qp = true;
    c.ctl.assign(std::size_t{c.recvs + kSendBuffers} * kMessageSize, std::byte{0});
    c.ctl_mr = ibv_reg_mr(c.pd, c.ctl.data(), c.ctl.size(), IBV_ACCESS_LOCAL_WRITE);
    if (!c.ctl_mr) return false;
    for (uint32_t i = 0; i < c.recvs; ++i)
        if (!post_recv(c, i)) return false;
    return true;
}

bool RdmaListener::Impl::setup_ring(RConn& c) {
    const std::size_t ring_bytes = std::size_t{cfg.slot_bytes} * cfg.slot_count;
    c.ring =
        static_cast<std::byte*>(std::aligned_alloc(4096, (ring_bytes + 4095) & ~std::size_t{4095}));
    if (!c.ring) return false;
    c.ring_bytes = ring_bytes;
    ring_bytes_held += ring_bytes;
    c.ring_mr =
        ibv_reg_mr(c.pd, c.ring, ring_bytes, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    return c.ring_mr != nullptr;
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
    session::Hello hello = to_session(c.rq);
    session::HelloCheck check = session::check_hello(
        keys(), &h, hello, m.proof,
        [&](std::span<const std::byte> key) { return sender_proof(key, c.request, c.accept); },
        [&](std::span<const std::byte> secret) {
            return resume_proof(secret, c.request, c.accept);
        },
        [&](std::span<const std::byte> key) { return session_secret(key, c.request, c.accept); });
    if (!check.ok) {
        begin_close(c, check.refusal.cause,
                    fmt::format("connection from {}: {}", c.peer, check.refusal.text), true,
                    check.refusal.reason, now);
        return;
    }
    // The key is proved: only now is memory pinned for this peer, and only
    // within --max-memory.
    const uint64_t ring_bytes = uint64_t{cfg.slot_bytes} * cfg.slot_count;
    if (cfg.max_memory && ring_bytes_held + ring_bytes > cfg.max_memory) {
        begin_close(
            c, CloseCause::Memory,
            // What the sender reads first (a Reject message carries 64 bytes).
            fmt::format("connection from {}: ring of {} MiB over --max-memory {} MiB ({} MiB "
                        "in use by the rings of other connections)",
                        c.peer, ring_bytes >> 20, cfg.max_memory >> 20, ring_bytes_held >> 20),
            true, RejectReason::Busy, now);
        return;
    }
    if (!setup_ring(c)) {
        begin_close(c, CloseCause::Resources,
                    fmt::format("connection from {}: the collector cannot register a ring of {} x "
                                "{} bytes: {}",
                                c.peer, cfg.slot_count, cfg.slot_bytes, std::strerror(errno)),
                    true, RejectReason::Busy, now);
        return;
    }
    const session::HelloAnswer a = h.on_hello(c.id, hello);
    if (c.state == ConnState::Closing) return;  // the handler closed it
    if (!a.accept) {
        begin_close(c, a.refusal.cause, a.refusal.text, true, a.refusal.reason, now);
        return;
    }
    Message w;
    w.type = MessageType::Welcome;
    w.flags = a.new_session ? welcome_flag::kNewSession : 0;
    w.value = a.resume_sequence;
    w.ring_addr = reinterpret_cast<uintptr_t>(c.ring);
    w.rkey = c.ring_mr->rkey;
    w.proof = welcome_proof(check.answer_key, m.proof, w);
    c.ack = a.resume_sequence;
    count_pending(c, -1);
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
        session::Refusal r;
        const auto ack = h.on_batch_done(c.id, r);
        if (!ack) {
            begin_close(c, r.cause, r.text, true, r.reason, session::monotonic_ns());
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
                if (!on_write(c, w, now)) return;
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

bool RdmaListener::Impl::on_write(RConn& c, const ibv_wc& w, uint64_t now) {
    const uint32_t imm = ntohl(w.imm_data);
    const uint32_t expect = static_cast<uint32_t>(c.consumed % cfg.slot_count);
    const auto refuse = [&](CloseCause cause, const std::string& why) {
        begin_close(c, cause, why, true, session::reject_reason(cause), now);
        return false;
    };
    if (c.state != ConnState::Streaming)
        return refuse(CloseCause::Protocol,
                      fmt::format("connection from {}: a frame was written before the handshake "
                                  "completed",
                                  c.peer));
    if (imm_slot(imm) != expect)
        return refuse(CloseCause::Protocol,
                      fmt::format("stream {} from {}: a frame arrived for ring slot {}, expected "
                                  "slot {}",
                                  c.rq.stream_id, c.peer, imm_slot(imm), expect));
    if (w.byte_len > cfg.slot_bytes)  // the device never lets a write overrun its MR
        return refuse(CloseCause::Protocol,
                      fmt::format("stream {} from {}: a write of {} bytes into ring slots of {} "
                                  "bytes",
                                  c.rq.stream_id, c.peer, w.byte_len, cfg.slot_bytes));
    // Only the bytes this write carried: the rest of the slot holds whatever
    // an earlier frame left there.
    const std::span<const std::byte> written{c.ring + std::size_t{imm_slot(imm)} * cfg.slot_bytes,
                                             w.byte_len};
    const SlotVerdict v = open_slot(written, imm_sequence_bits(imm), c.rq.stream_id, reader,
                                    {scratch.data(), scratch.size()}, c.peer);
    if (!v.ok) return refuse(v.cause, v.why);
    ++c.consumed;
    session::Refusal r;
    if (!h.on_frame(c.id, v.frame, r)) {
        // What arrived before the refused frame is good: keep it.
        --c.consumed;
        finish_batch(c);
        if (c.state != ConnState::Closing) begin_close(c, r.cause, r.text, true, r.reason, now);
        return false;
    }
    return true;
}

void RdmaListener::Impl::begin_close(RConn& c, CloseCause cause, const std::string& why,
                                     bool reject, RejectReason reason, uint64_t now) {
    if (c.state == ConnState::Closing) return;
    // Frames handed over but not committed point into the ring, which is
    // about to go: commit them now (what came before a fault is good).
    if (c.state == ConnState::Streaming && c.consumed != c.released) {
        session::Refusal ignored;
        if (const auto ack = h.on_batch_done(c.id, ignored)) {
            c.ack = *ack;
            c.released = c.consumed;
        }
    }
    if (reject && c.established) {
        Message m;
        m.type = MessageType::Reject;
        m.reason = reason;
        // The sender knows its own address, and the text has only
        // kMaxRejectText bytes: it carries the reason, the log the peer too.
        const std::string prefix = fmt::format("connection from {}: ", c.peer);
        m.text = why;  // a view: `why` outlives the post
        if (m.text.starts_with(prefix)) m.text.remove_prefix(prefix.size());
        post_message(c, m);
    }
    if (c.state == ConnState::AwaitEstablished || c.state == ConnState::AwaitProof)
        count_pending(c, -1);
    c.state = ConnState::Closing;
    c.closing_deadline = (now ? now : 0) + kCloseGraceNs;
    if (!c.reported) {
        c.reported = true;
        h.on_closed(c.id, cause, why);
    }
    if (!reject || !c.established || c.sends_in_flight == 0) doomed.push_back(c.id);
}

}  // namespace sluice::rdma
