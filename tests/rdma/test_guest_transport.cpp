// The RDMA transport on real verbs (soft-RoCE in the testbed guest): an
// RdmaSender on rxe1 writing into sluice-collector --listen rdma:// on rxe0.
// Handshake, exact in-order delivery, credit exhaustion and recovery, a
// collector killed and restarted (replay, no loss, no duplicate), a wrong
// key, and a raw-verbs peer writing a malformed frame.
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "testbed_testing.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "sluice/rdma/protocol.hpp"
#include "sluice/rdma/sender.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/session/key.hpp"
#include "sluice/tcp/sender.hpp"

namespace sluice::rdma {
namespace {

using namespace collector::testing;

uint16_t g_port = 7790;

SenderConfig sender_config(uint16_t port, const std::string& key = kKey) {
    SenderConfig c;
    c.host = env_or("RXE0_IP", "10.10.0.1");
    c.source = env_or("RXE1_IP", "10.10.0.2");
    c.port = port;
    c.stream_id = 7;
    c.key.resize(key.size());
    std::memcpy(c.key.data(), key.data(), key.size());
    c.reconnect_min_ms = 20;
    c.reconnect_max_ms = 200;
    c.timeout_ms = 5000;
    c.retransmit_frames = 16;
    c.signal_interval = 4;
    c.queue_depth = 32;
    return c;
}

bool wait_for(RdmaSender& tx, auto&& cond, uint64_t seconds = 60) {
    void* done[64];
    const uint64_t deadline = session::monotonic_ns() + seconds * 1'000'000'000ull;
    while (!cond()) {
        if (session::monotonic_ns() > deadline) return false;
        tx.poll(session::monotonic_ns());
        tx.reclaim(done);
    }
    return true;
}

// Submits every frame (polling while the buffer is full), calling
// `between(i)` after each, then waits for the last acknowledgement.
// The frames are copied into one buffer registered once, as a frame pool is.
template <class Between>
void stream_all(RdmaSender& tx, const FrameSet& fs, Between between) {
    void* done[64];
    std::size_t total = 0;
    for (const auto& f : fs.frames)
        total += (f.size() + 63) & ~std::size_t{63};
    static std::vector<std::byte> arena;
    arena.assign(total, std::byte{0});
    std::vector<std::span<const std::byte>> frames;
    std::size_t at = 0;
    for (const auto& f : fs.frames) {
        std::memcpy(arena.data() + at, f.data(), f.size());
        frames.emplace_back(arena.data() + at, f.size());
        at += (f.size() + 63) & ~std::size_t{63};
    }
    tx.register_memory(arena.data(), arena.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
        while (tx.submit(frames[i], i, const_cast<std::byte*>(frames[i].data())) ==
               SubmitResult::Full) {
            tx.poll(session::monotonic_ns());
            tx.reclaim(done);
        }
        tx.poll(session::monotonic_ns());
        tx.reclaim(done);
        between(i);
    }
    ASSERT_TRUE(wait_for(
        tx, [&] { return tx.all_acknowledged(); }, 120))
        << tx.stats().last_error.get();
}

TEST(RdmaTransport, HandshakeAdvertisesTheRingAndStreams) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    CollectorProcess col(d, port, {"--rdma-slots", "8", "--rdma-slot-bytes", "256K"});
    RdmaSender tx(sender_config(port));
    ASSERT_TRUE(wait_for(tx, [&] { return tx.state() == SenderState::Streaming; }))
        << tx.stats().last_error.get();
    EXPECT_EQ(tx.ring().slot_count, 8u);
    EXPECT_EQ(tx.ring().slot_bytes, 256u * 1024);
    EXPECT_NE(tx.ring().rkey, 0u);
    EXPECT_EQ(tx.credits().available(), 8u);
    EXPECT_EQ(tx.stats().connects.get(), 1u);
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    EXPECT_NE(col.log().find("stream 7 connected over RDMA"), std::string::npos) << col.log();
    EXPECT_EQ(json_number(col.summary(), "handshakes"), 1u);
}

TEST(RdmaTransport, FramesArriveInOrderByteExact) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    CollectorProcess col(d, port);
    const auto pk = packets(3000, 11);
    const FrameSet fs = make_frames(7, pk, 37);
    RdmaSender tx(sender_config(port));
    stream_all(tx, fs, [](std::size_t) {});
    EXPECT_EQ(tx.stats().frames_sent.get(), fs.frames.size());
    EXPECT_EQ(tx.stats().frames_retransmitted.get(), 0u);
    EXPECT_GT(tx.rdma_stats().post_lists.get(), 0u);
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    expect_exact(d, 7, pk);
    EXPECT_EQ(json_number(col.summary(), "frames_duplicate"), 0u);
    EXPECT_EQ(json_number(col.summary(), "packets_lost"), 0u);
}

TEST(RdmaTransport, SmallFramesGoInline) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    CollectorProcess col(d, port);
    auto pk = packets(200, 5);
    for (auto& p : pk) {  // one small packet per frame: frames below the inline size
        p.data.resize(64);
        p.orig_len = 64;
    }
    const FrameSet fs = make_frames(7, pk, 1);
    ASSERT_LE(fs.frames[0].size(), 256u);
    RdmaSender tx(sender_config(port));
    stream_all(tx, fs, [](std::size_t) {});
    if (tx.max_inline() >= fs.frames[0].size()) {
        EXPECT_EQ(tx.rdma_stats().frames_inline.get(), fs.frames.size());
    }
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    expect_exact(d, 7, pk);
}

TEST(RdmaTransport, CreditExhaustionStallsAndRecovers) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    // Two slots: the sender runs out of credits at once and must wait for
    // the collector's releases, again and again.
    CollectorProcess col(d, port, {"--rdma-slots", "2"});
    const auto pk = packets(2000, 3);
    const FrameSet fs = make_frames(7, pk, 10);
    RdmaSender tx(sender_config(port));
    uint32_t max_in_flight = 0;
    stream_all(tx, fs, [&](std::size_t) {
        max_in_flight = std::max<uint32_t>(
            max_in_flight, static_cast<uint32_t>(tx.credits().written() - tx.credits().released()));
    });
    EXPECT_GT(tx.rdma_stats().credit_stalls.get(), 0u);
    EXPECT_LE(max_in_flight, 2u);  // never more than the ring holds
    EXPECT_GE(tx.rdma_stats().credit_messages.get(), fs.frames.size() / 2);
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    expect_exact(d, 7, pk);
}

TEST(RdmaTransport, CollectorKilledAndRestartedLosesAndRepeatsNothing) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    auto col = std::make_unique<CollectorProcess>(d, port);
    const auto pk = packets(4000, 9);
    const FrameSet fs = make_frames(7, pk, 20);
    RdmaSender tx(sender_config(port));
    int kills = 0;
    stream_all(tx, fs, [&](std::size_t i) {
        if (i == fs.frames.size() / 3 || i == 2 * fs.frames.size() / 3) {
            col->stop(SIGKILL);
            ++kills;
            col = std::make_unique<CollectorProcess>(d, port);
        }
    });
    EXPECT_EQ(kills, 2);
    EXPECT_GE(tx.stats().connects.get(), 3u);
    EXPECT_GE(tx.stats().disconnects.get(), 2u);
    tx.close();
    EXPECT_EQ(col->stop(), 0);
    // Every packet exactly once, in order, across the files of three runs.
    expect_exact(d, 7, pk);
}

TEST(RdmaTransport, SenderDroppingItsConnectionReplaysWithoutDuplicates) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    CollectorProcess col(d, port);
    const auto pk = packets(3000, 13);
    const FrameSet fs = make_frames(7, pk, 15);
    RdmaSender tx(sender_config(port));
    int drops = 0;
    stream_all(tx, fs, [&](std::size_t i) {
        // Mid-stream, with frames written but not yet acknowledged.
        if (i % 50 == 25 && tx.state() == SenderState::Streaming) {
            tx.disconnect(session::monotonic_ns(), "test: dropping the connection");
            ++drops;
        }
    });
    EXPECT_GE(drops, 2);
    EXPECT_GE(tx.stats().connects.get(), static_cast<uint64_t>(drops) + 1);
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    expect_exact(d, 7, pk);  // replayed frames the collector had are not written twice
    EXPECT_EQ(json_number(col.summary(), "packets_lost"), 0u);
}

TEST(RdmaTransport, CollectorStoppedAndStartedAgainResumes) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    auto col = std::make_unique<CollectorProcess>(d, port);
    const auto pk = packets(2000, 17);
    const FrameSet fs = make_frames(7, pk, 20);
    RdmaSender tx(sender_config(port));
    stream_all(tx, fs, [&](std::size_t i) {
        if (i == fs.frames.size() / 2) {
            EXPECT_EQ(col->stop(SIGTERM), 0);  // a clean stop: Reject shutting-down
            col = std::make_unique<CollectorProcess>(d, port);
        }
    });
    EXPECT_GE(tx.stats().disconnects.get(), 1u);
    EXPECT_GE(tx.stats().connects.get(), 2u);
    tx.close();
    EXPECT_EQ(col->stop(), 0);
    expect_exact(d, 7, pk);
}

TEST(RdmaTransport, WrongKeyIsRefused) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    CollectorProcess col(d, port);
    RdmaSender tx(sender_config(port, "another key, also long enough!!"));
    ASSERT_TRUE(wait_for(
        tx, [&] { return tx.stats().connect_failures.get() >= 1; }, 30));
    EXPECT_NE(tx.stats().last_error.get().find("key"), std::string::npos)
        << tx.stats().last_error.get();
    EXPECT_EQ(tx.stats().connects.get(), 0u);
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    EXPECT_GE(json_number(col.summary(), "refused_auth"), 1u);
}

// --max-memory bounds the rings: with room for one, a second sender that
// proved its key is refused (busy, counted), and the first keeps streaming.
TEST(RdmaTransport, ASecondRingBeyondMaxMemoryIsRefused) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    // One ring: 16 slots of 64 KiB = 1 MiB.
    CollectorProcess col(d, port,
                         {"--rdma-slots", "16", "--rdma-slot-bytes", "64K", "--max-memory", "1M"});
    RdmaSender first(sender_config(port));
    ASSERT_TRUE(wait_for(
        first, [&] { return first.stats().connects.get() >= 1; }, 30))
        << first.stats().last_error.get();
    SenderConfig c2 = sender_config(port);
    c2.stream_id = 8;
    RdmaSender second(c2);
    ASSERT_TRUE(wait_for(
        second, [&] { return second.stats().connect_failures.get() >= 1; }, 30));
    EXPECT_NE(second.stats().last_error.get().find("--max-memory"), std::string::npos)
        << second.stats().last_error.get();
    EXPECT_EQ(second.stats().connects.get(), 0u);
    EXPECT_EQ(first.stats().connects.get(), 1u);
    second.close();
    first.close();
    EXPECT_EQ(col.stop(), 0);
    EXPECT_GE(json_number(col.summary(), "refused_memory"), 1u);
}

// A peer on raw verbs, speaking the handshake by hand: to do what sluice's
// sender never does (write garbage, write into another connection's ring,
// stop half-way through the handshake).
class RawPeer {
  public:
    explicit RawPeer(uint16_t port) {
        ch_ = rdma_create_event_channel();
        EXPECT_NE(ch_, nullptr);
        EXPECT_EQ(rdma_create_id(ch_, &id_, nullptr, RDMA_PS_TCP), 0);
        sockaddr_in src{}, dst{};
        src.sin_family = dst.sin_family = AF_INET;
        inet_pton(AF_INET, env_or("RXE1_IP", "10.10.0.2").c_str(), &src.sin_addr);
        inet_pton(AF_INET, env_or("RXE0_IP", "10.10.0.1").c_str(), &dst.sin_addr);
        dst.sin_port = htons(port);
        EXPECT_EQ(rdma_resolve_addr(id_, reinterpret_cast<sockaddr*>(&src),
                                    reinterpret_cast<sockaddr*>(&dst), 5000),
                  0);
        EXPECT_TRUE(next(RDMA_CM_EVENT_ADDR_RESOLVED));
        EXPECT_EQ(rdma_resolve_route(id_, 5000), 0);
        EXPECT_TRUE(next(RDMA_CM_EVENT_ROUTE_RESOLVED));
        pd_ = ibv_alloc_pd(id_->verbs);
        cq_ = ibv_create_cq(id_->verbs, 64, nullptr, nullptr, 0);
        ibv_qp_init_attr qa{};
        qa.send_cq = qa.recv_cq = cq_;
        qa.qp_type = IBV_QPT_RC;
        qa.cap.max_send_wr = qa.cap.max_recv_wr = 16;
        qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
        EXPECT_EQ(rdma_create_qp(id_, pd_, &qa), 0);
        buf_.resize(64 * 1024);
        mr_ = ibv_reg_mr(pd_, buf_.data(), buf_.size(), IBV_ACCESS_LOCAL_WRITE);
        EXPECT_NE(mr_, nullptr);
        // Receives for the collector's messages (Welcome, Credit, Reject).
        for (uint32_t i = 0; i < 8; ++i) {
            ibv_sge s{reinterpret_cast<uintptr_t>(buf_.data() + 4096 + i * kMessageSize),
                      static_cast<uint32_t>(kMessageSize), mr_->lkey};
            ibv_recv_wr r{};
            r.wr_id = 100 + i;
            r.sg_list = &s;
            r.num_sge = 1;
            ibv_recv_wr* bad = nullptr;
            EXPECT_EQ(ibv_post_recv(id_->qp, &r, &bad), 0);
        }
    }
    ~RawPeer() {
        rdma_disconnect(id_);
        rdma_destroy_qp(id_);
        ibv_dereg_mr(mr_);
        ibv_destroy_cq(cq_);
        ibv_dealloc_pd(pd_);
        rdma_destroy_id(id_);
        rdma_destroy_event_channel(ch_);
    }

    // rdma_connect with a request for `stream`; the accept's private data.
    ConnectAccept connect(uint64_t stream, uint64_t session) {
        ConnectRequest rq;
        rq.flags = request_flag::kHasKey;
        rq.stream_id = stream;
        rq.session_id = session;
        request_ = encode(rq);
        rdma_conn_param cp{};
        cp.private_data = request_.data();
        cp.private_data_len = request_.size();
        cp.retry_count = 7;
        cp.rnr_retry_count = 7;
        EXPECT_EQ(rdma_connect(id_, &cp), 0);
        std::vector<std::byte> bytes;
        EXPECT_TRUE(next(RDMA_CM_EVENT_ESTABLISHED, &bytes));
        accept_bytes_ = bytes;
        ConnectAccept acc;
        EXPECT_EQ(decode(bytes, acc), DecodeStatus::Ok);
        return acc;
    }
    // Sends the key proof; the collector's answer (a Welcome naming the ring).
    Message prove(const std::string& key) {
        std::vector<std::byte> k(key.size());
        std::memcpy(k.data(), key.data(), k.size());
        Message proof;
        proof.type = MessageType::Proof;
        std::array<std::byte, kAcceptSize> acc{};
        std::memcpy(acc.data(), accept_bytes_.data(), std::min(acc.size(), accept_bytes_.size()));
        proof.proof = sender_proof(k, request_, acc);
        const MessageBytes pb = encode(proof);
        std::memcpy(buf_.data(), pb.data(), pb.size());
        post_send(IBV_WR_SEND, buf_.data(), kMessageSize, 0, 0, 0);
        Message m;
        for (int i = 0; i < 3; ++i) {
            ibv_wc wc{};
            if (!wait_wc(wc) || wc.status != IBV_WC_SUCCESS) break;
            if (wc.opcode == IBV_WC_RECV) {
                EXPECT_EQ(
                    decode({buf_.data() + 4096 + (wc.wr_id - 100) * kMessageSize, kMessageSize}, m),
                    DecodeStatus::Ok);
                return m;
            }
        }
        ADD_FAILURE() << "no answer to the proof";
        return m;
    }
    // WRITE WITH IMMEDIATE of `len` bytes of our buffer (from offset 8192)
    // to `remote`/`rkey`; the completion's status.
    ibv_wc_status write(uint64_t remote, uint32_t rkey, std::size_t len, uint32_t imm) {
        post_send(IBV_WR_RDMA_WRITE_WITH_IMM, buf_.data() + 8192, len, remote, rkey, imm);
        for (int i = 0; i < 4; ++i) {
            ibv_wc wc{};
            if (!wait_wc(wc)) return IBV_WC_GENERAL_ERR;
            if (wc.wr_id == 2) return wc.status;
            if (wc.status != IBV_WC_SUCCESS) return wc.status;
        }
        return IBV_WC_GENERAL_ERR;
    }
    // The next message from the collector, if one comes.
    std::optional<Message> receive() {
        for (int i = 0; i < 4; ++i) {
            ibv_wc wc{};
            if (!wait_wc(wc) || wc.status != IBV_WC_SUCCESS) return std::nullopt;
            if (wc.opcode == IBV_WC_RECV) {
                Message m;
                EXPECT_EQ(
                    decode({buf_.data() + 4096 + (wc.wr_id - 100) * kMessageSize, kMessageSize}, m),
                    DecodeStatus::Ok);
                return m;
            }
        }
        return std::nullopt;
    }
    std::byte* payload() { return buf_.data() + 8192; }

  private:
    bool next(rdma_cm_event_type want, std::vector<std::byte>* pd = nullptr) {
        rdma_cm_event* ev = nullptr;
        EXPECT_EQ(rdma_get_cm_event(ch_, &ev), 0);
        if (!ev) return false;
        const bool ok = ev->event == want;
        EXPECT_EQ(ev->event, want) << rdma_event_str(ev->event);
        if (pd && ev->param.conn.private_data)
            pd->assign(static_cast<const std::byte*>(ev->param.conn.private_data),
                       static_cast<const std::byte*>(ev->param.conn.private_data) +
                           ev->param.conn.private_data_len);
        rdma_ack_cm_event(ev);
        return ok;
    }
    void post_send(ibv_wr_opcode op, std::byte* data, std::size_t len, uint64_t remote,
                   uint32_t rkey, uint32_t imm) {
        ibv_sge s{reinterpret_cast<uintptr_t>(data), static_cast<uint32_t>(len), mr_->lkey};
        ibv_send_wr wr{};
        wr.wr_id = op == IBV_WR_SEND ? 1 : 2;
        wr.sg_list = &s;
        wr.num_sge = 1;
        wr.opcode = op;
        wr.send_flags = IBV_SEND_SIGNALED;
        wr.imm_data = htonl(imm);
        wr.wr.rdma.remote_addr = remote;
        wr.wr.rdma.rkey = rkey;
        ibv_send_wr* bad = nullptr;
        EXPECT_EQ(ibv_post_send(id_->qp, &wr, &bad), 0);
    }
    bool wait_wc(ibv_wc& wc) {
        const uint64_t deadline = session::monotonic_ns() + 30'000'000'000ull;
        while (session::monotonic_ns() < deadline)
            if (ibv_poll_cq(cq_, 1, &wc) == 1) return true;
        return false;
    }

    rdma_event_channel* ch_ = nullptr;
    rdma_cm_id* id_ = nullptr;
    ibv_pd* pd_ = nullptr;
    ibv_cq* cq_ = nullptr;
    ibv_mr* mr_ = nullptr;
    std::vector<std::byte> buf_;
    std::array<std::byte, kRequestSize> request_{};
    std::vector<std::byte> accept_bytes_;
};

// A peer that speaks the handshake correctly and then writes garbage into the
// first ring slot.
TEST(RdmaTransport, RawVerbsPeerWritingAMalformedFrameIsRejected) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    CollectorProcess col(d, port);
    {
        RawPeer peer(port);
        peer.connect(99, 12345);
        const Message w = peer.prove(kKey);
        ASSERT_EQ(w.type, MessageType::Welcome) << col.log();
        ASSERT_NE(w.rkey, 0u);
        // Garbage where a frame should be, announced as slot 0, sequence 0.
        for (std::size_t i = 0; i < 1024; ++i)
            peer.payload()[i] = std::byte(static_cast<uint8_t>(i * 13 + 5));
        EXPECT_EQ(peer.write(w.ring_addr, w.rkey, 1024, encode_imm(0, 0)), IBV_WC_SUCCESS);
        // The collector answers with a Reject and disconnects.
        const auto m = peer.receive();
        ASSERT_TRUE(m) << col.log();
        EXPECT_EQ(m->type, MessageType::Reject);
        EXPECT_EQ(m->reason, RejectReason::Protocol);
    }
    EXPECT_EQ(col.stop(), 0);
    const std::string log = col.log();
    EXPECT_NE(log.find("malformed frame"), std::string::npos) << log;
    EXPECT_EQ(json_number(col.summary(), "dropped_bad_frame"), 1u) << col.summary();
    EXPECT_EQ(json_number(col.summary(), "packets_written"), 0u);
}

// Memory the collector has pinned (VmPin: what ibv_reg_mr locks), in KiB.
uint64_t pinned_kib(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmPin:", 0) == 0) return std::stoull(line.substr(6));
    return 0;
}

// Before the key is proved, a connection gets a queue pair and a few KiB of
// message buffers; its ring (here 64 slots of 1 MiB) comes with the Welcome.
// Version 1 pinned the ring at the accept: 10 silent peers pinned 640 MiB.
TEST(RdmaTransport, NoRingIsPinnedBeforeTheKeyIsProved) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    // Ten handshakes from one address: above the default per-source limit.
    CollectorProcess col(d, port, {"--max-pending-per-source", "16"});
    const uint64_t before = pinned_kib(col.pid());
    std::vector<std::unique_ptr<RawPeer>> silent;
    for (int i = 0; i < 10; ++i) {
        silent.push_back(std::make_unique<RawPeer>(port));
        const ConnectAccept acc = silent.back()->connect(200 + i, 1000 + i);
        EXPECT_EQ(acc.slot_count, 64u);
    }
    const uint64_t pending = pinned_kib(col.pid());
    EXPECT_LT(pending - before, 4096u) << "KiB pinned for 10 connections before any proof";
    const Message w = silent.front()->prove(kKey);
    ASSERT_EQ(w.type, MessageType::Welcome) << col.log();
    EXPECT_GE(pinned_kib(col.pid()) - pending, 64u * 1024) << "the ring, after the proof";
    silent.clear();
    EXPECT_EQ(col.stop(), 0);
}

// Each connection's ring is registered in a protection domain of its own: a
// queue pair of another connection, holding the ring's address and rkey,
// cannot write into it (remote access error), and the stream it belongs to
// stays exact.
TEST(RdmaTransport, AQueuePairCannotWriteIntoAnotherConnectionsRing) {
    REQUIRE_TESTBED();
    TempDir d;
    write_key(d);
    const uint16_t port = g_port++;
    CollectorProcess col(d, port);
    const auto pk = packets(2000, 21);
    const FrameSet fs = make_frames(7, pk, 40);
    RdmaSender tx(sender_config(port));
    ASSERT_TRUE(wait_for(tx, [&] { return tx.state() == SenderState::Streaming; }))
        << tx.stats().last_error.get();
    {
        RawPeer intruder(port);
        intruder.connect(8, 777);
        const Message w = intruder.prove(kKey);
        ASSERT_EQ(w.type, MessageType::Welcome) << col.log();
        // A valid frame of the victim's stream, aimed at the victim's slot 0.
        const auto& f = fs.frames[0];
        std::memcpy(intruder.payload(), f.data(), f.size());
        const ibv_wc_status st =
            intruder.write(tx.ring().addr, tx.ring().rkey, f.size(), encode_imm(0, 0));
        EXPECT_EQ(st, IBV_WC_REM_ACCESS_ERR) << ibv_wc_status_str(st);
    }
    stream_all(tx, fs, [](std::size_t) {});
    tx.close();
    EXPECT_EQ(col.stop(), 0);
    expect_exact(d, 7, pk);
    EXPECT_EQ(json_number(col.summary(), "frames_duplicate"), 0u);
}

TEST(RdmaTransport, NoDeviceMessageNamesTheTools) {
    const std::string m = no_device_message();
    EXPECT_NE(m.find("ibv_devices"), std::string::npos);
    EXPECT_NE(m.find("rdma link"), std::string::npos);
}

}  // namespace
}  // namespace sluice::rdma
