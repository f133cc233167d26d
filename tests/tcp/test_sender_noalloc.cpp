// Streaming through TcpSender (submit, poll, reclaim, partial writes, ACKs)
// allocates nothing: malloc and friends are replaced in this program to count
// calls made inside the sender. With kernel TLS the same holds. User-space
// TLS cannot promise it: OpenSSL 3.0's record layer allocates small blocks
// (its WPACKET bookkeeping) for every record SSL_write makes and SSL_read
// takes apart; the TLS case measures that and bounds it per record, so any
// allocation of sluice's own on that path shows as a count above the bound.
// Not in the 'asan' suite, whose runtime owns malloc.
#include <atomic>

#include "tcp_testing.hpp"
#include "tls_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/session/clock.hpp"

// clang-format off: after every other header (it defines posix_memalign,
// which <mm_malloc.h> declares differently)
#include "../count_allocations.hpp"
// clang-format on

namespace sluice::tcp {
namespace {

TEST(TcpSenderNoAlloc, StreamingAllocatesNothing) {
    testing::FakeCollector fc;
    SenderConfig cfg;
    cfg.port = fc.port();
    cfg.stream_id = 7;
    cfg.retransmit_frames = 4;
    cfg.sndbuf_bytes = 4096;  // partial writes on every frame
    TcpSender tx(cfg);
    std::vector<std::vector<std::byte>> f;
    for (int i = 0; i < 64; ++i)
        f.push_back(testing::make_frame(7, i, 100, 200, i * 100));
    uint64_t now = 1;
    // Warm up: connect and handshake (libcrypto allocates there), one frame.
    tx.submit(f[0], 0, &f[0]);
    ASSERT_TRUE(testing::drive(tx, fc, now, [&] { return tx.all_acknowledged(); }));
    void* done[8];
    tx.reclaim(done);

    std::size_t next = 1;
    long allocs = 0;
    for (int round = 0; round < 200000 && !(next == f.size() && tx.all_acknowledged()); ++round) {
        now += 50'000;
        t_counting = true;
        if (next < f.size() && tx.submit(f[next], next, &f[next]) == SubmitResult::Accepted) ++next;
        tx.poll(now);
        tx.reclaim(done);
        t_counting = false;
        allocs = g_allocs.load(std::memory_order_relaxed);  // same thread: see note()
        fc.pump();
    }
    ASSERT_EQ(fc.sequences.size(), f.size());
    EXPECT_EQ(allocs, 0);
    EXPECT_EQ(tx.stats().connects.get(), 1u);
}

// The collector's side for the TLS case: a TcpListener in this thread,
// polled outside the counted region.
class Acker final : public session::ReceiverHandler {
  public:
    void on_connection(session::ConnectionId, session::ReceiverTransport&,
                       std::string_view) override {}
    session::HelloAnswer on_hello(session::ConnectionId, const session::Hello&) override {
        session::HelloAnswer a;
        a.accept = true;
        a.resume_sequence = next;
        a.new_session = true;
        return a;
    }
    bool on_frame(session::ConnectionId, const wire::FrameView& f, session::Refusal&) override {
        if (f.info().sequence == next) ++next;
        return true;
    }
    std::optional<uint64_t> on_batch_done(session::ConnectionId, session::Refusal&) override {
        return next;
    }
    void on_closed(session::ConnectionId, session::CloseCause, std::string_view) override {}
    void on_listener_error(std::string_view) override {}
    uint64_t next = 0;
};

TEST(TcpSenderNoAlloc, StreamingOverTlsAllocatesOnlyInsideOpenSslRecords) {
    testing::TlsFiles files;
    Acker acker;
    ListenerConfig lc;
    lc.listen = {"127.0.0.1", 0};
    lc.tls.cert = files.cert("server");
    lc.tls.key = files.key("server");
    TcpListener l(lc, acker);
    SenderConfig cfg;
    cfg.port = l.port();
    cfg.stream_id = 7;
    cfg.retransmit_frames = 4;
    cfg.sndbuf_bytes = 4096;  // partial writes: ciphertext waits in the channel's buffer
    cfg.tls.ca = files.cert("ca");
    TcpSender tx(cfg);
    std::vector<std::vector<std::byte>> f;
    for (int i = 0; i < 64; ++i)  // up to 100 KB: several TLS records per frame
        f.push_back(testing::make_frame(7, i, 1 + (i * 13) % 100, 1000, i * 100));
    void* done[8];
    auto serve = [&](int rounds) {
        for (int k = 0; k < rounds; ++k)
            l.poll(session::monotonic_ns());
    };
    // Warm up: connect, TLS and sluice handshakes (OpenSSL allocates there), one frame.
    tx.submit(f[0], 0, &f[0]);
    for (int i = 0; i < 200000 && !tx.all_acknowledged(); ++i) {
        tx.poll(session::monotonic_ns());
        serve(1);
    }
    ASSERT_TRUE(tx.all_acknowledged()) << tx.stats().last_error.get();
    tx.reclaim(done);

    std::size_t next = 1;
    long allocs = 0;
    uint64_t polls = 0;
    for (int round = 0; round < 400000 && !(next == f.size() && tx.all_acknowledged()); ++round) {
        const uint64_t now = session::monotonic_ns();
        t_counting = true;
        if (next < f.size() && tx.submit(f[next], next, &f[next]) == SubmitResult::Accepted) ++next;
        tx.poll(now);
        tx.reclaim(done);
        t_counting = false;
        ++polls;
        allocs = g_allocs.load(std::memory_order_relaxed);  // same thread: see note()
        serve(1);
    }
    ASSERT_EQ(acker.next, f.size()) << tx.stats().last_error.get();
    EXPECT_EQ(tx.stats().connects.get(), 1u);
    EXPECT_EQ(tx.tcp_stats().tls_handshakes.get(), 1u);
    const bool kernel =
        tx.tcp_stats().tls_kernel_send.get() && tx.tcp_stats().tls_kernel_recv.get();
    // Records written: each frame's bytes in 16 KB records (a frame may be
    // split once more where the buffer fills); records read: the ACKs.
    std::size_t records = 0;
    for (std::size_t i = 1; i < f.size(); ++i)
        records += (f[i].size() + 16383) / 16384 + 1;
    records += f.size();
    std::printf(
        "[ TLS mode ] %s: %ld allocations in %llu polls, about %zu records (%.2f per "
        "record)\n",
        kernel ? "kernel TLS" : "user space", allocs, static_cast<unsigned long long>(polls),
        records, static_cast<double>(allocs) / static_cast<double>(records));
    if (kernel) {
        EXPECT_EQ(allocs, 0);
    } else {
        EXPECT_LE(allocs, static_cast<long>(4 * records));
    }
}

}  // namespace
}  // namespace sluice::tcp
