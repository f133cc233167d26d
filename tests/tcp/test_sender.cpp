// TcpSender against a collector stand-in on loopback: handshake, streaming,
// ACKs and reclaim, the retransmit bound, replay from the resume point,
// timeouts, heartbeats, the backoff schedule, wrong keys and versions. The
// sender's clock is injected, so every timing decision is the test's.
#include <atomic>
#include <thread>

#include "tcp_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::tcp {
namespace {

using session::Backoff;
using testing::drive;
using testing::FakeCollector;
using testing::load_seq;
using testing::make_frame;

SenderConfig config(uint16_t port) {
    SenderConfig c;
    c.host = "127.0.0.1";
    c.port = port;
    c.stream_id = 7;
    c.session_id = 42;
    c.jitter_seed = 1;
    c.reconnect_min_ms = 100;
    c.reconnect_max_ms = 1000;
    c.retransmit_frames = 8;
    return c;
}

std::vector<std::vector<std::byte>> frames(int n, uint64_t first_seq = 0, uint32_t packets = 3) {
    std::vector<std::vector<std::byte>> v;
    for (int i = 0; i < n; ++i)
        v.push_back(make_frame(7, first_seq + i, packets, 100, (first_seq + i) * packets));
    return v;
}

std::vector<void*> reclaim_all(TcpSender& tx) {
    std::vector<void*> out;
    void* buf[4];
    for (std::size_t n; (n = tx.reclaim(buf)) > 0;)
        out.insert(out.end(), buf, buf + n);
    return out;
}

TEST(TcpSender, HandshakeStreamsAndReclaimsInOrder) {
    FakeCollector fc;
    TcpSender tx(config(fc.port()));
    auto f = frames(5);
    for (auto& fr : f)
        ASSERT_EQ(tx.submit(fr, load_seq(fr), &fr), SubmitResult::Accepted);
    uint64_t now = 1'000'000'000;
    ASSERT_TRUE(
        drive(tx, fc, now, [&] { return tx.all_acknowledged() && fc.sequences.size() == 5; }));
    ASSERT_TRUE(fc.hello);
    EXPECT_EQ(fc.hello->stream_id, 7u);
    EXPECT_EQ(fc.hello->session_id, 42u);
    EXPECT_EQ(fc.hello->heartbeat_ms, 1000u);
    EXPECT_TRUE(fc.hello->flags & hello_flag::kHasPosition);
    EXPECT_EQ(fc.hello->next_sequence, 0u);
    EXPECT_EQ(fc.sequences, (std::vector<uint64_t>{0, 1, 2, 3, 4}));
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(fc.frame_bytes[i], f[i]) << "frame " << i;
    const auto cookies = reclaim_all(tx);
    ASSERT_EQ(cookies.size(), 5u);
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(cookies[i], &f[i]);
    EXPECT_EQ(tx.held(), 0u);
    const auto& s = tx.stats();
    EXPECT_EQ(s.frames_submitted.get(), 5u);
    EXPECT_EQ(s.frames_sent.get(), 5u);
    EXPECT_EQ(s.frames_acknowledged.get(), 5u);
    EXPECT_EQ(s.frames_retransmitted.get(), 0u);
    EXPECT_EQ(s.connects.get(), 1u);
    EXPECT_TRUE(s.connected.load());
    EXPECT_EQ(tx.state(), SenderState::Streaming);
}

// The resume position a HELLO carries comes from the frames' headers.
TEST(TcpSender, HelloCarriesTheOldestUnacknowledgedFrame) {
    FakeCollector fc;
    TcpSender tx(config(fc.port()));
    auto f = frames(2, 10, 4);  // sequences 10, 11; packet indexes 40, 44
    for (auto& fr : f)
        tx.submit(fr, load_seq(fr), &fr);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return fc.hello.has_value(); }));
    EXPECT_EQ(fc.hello->next_sequence, 10u);
    EXPECT_EQ(fc.hello->next_packet_index, 40u);
}

TEST(TcpSender, NoPositionBeforeTheFirstFrame) {
    FakeCollector fc;
    TcpSender tx(config(fc.port()));
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.state() == SenderState::Streaming; }));
    EXPECT_FALSE(fc.hello->flags & hello_flag::kHasPosition);
}

TEST(TcpSender, FullWhileRetransmitFramesAreHeld) {
    FakeCollector fc;
    fc.auto_ack = false;
    auto cfg = config(fc.port());
    cfg.retransmit_frames = 3;
    TcpSender tx(cfg);
    auto f = frames(5);
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(tx.submit(f[i], i, &f[i]), SubmitResult::Accepted);
    EXPECT_EQ(tx.submit(f[3], 3, &f[3]), SubmitResult::Full);
    EXPECT_EQ(tx.stats().submit_full.get(), 1u);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return fc.sequences.size() == 3; }));
    EXPECT_EQ(tx.submit(f[3], 3, &f[3]), SubmitResult::Full);  // sent, not acknowledged
    fc.ack(2);
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.stats().frames_acknowledged.get() == 2; }));
    // Acknowledged but not reclaimed: the caller still owns nothing back.
    EXPECT_EQ(tx.submit(f[3], 3, &f[3]), SubmitResult::Full);
    EXPECT_FALSE(tx.all_acknowledged());
    const auto cookies = reclaim_all(tx);
    ASSERT_EQ(cookies.size(), 2u);
    EXPECT_EQ(cookies[0], &f[0]);
    EXPECT_EQ(cookies[1], &f[1]);
    EXPECT_EQ(tx.submit(f[3], 3, &f[3]), SubmitResult::Accepted);
    EXPECT_EQ(tx.submit(f[4], 4, &f[4]), SubmitResult::Accepted);
    EXPECT_EQ(tx.stats().submit_full.get(), 3u);
    EXPECT_EQ(tx.held(), 3u);
}

TEST(TcpSender, ReplaysFromTheCollectorsResumePointAfterAReconnect) {
    FakeCollector fc;
    fc.auto_ack = false;
    TcpSender tx(config(fc.port()));
    auto f = frames(5);
    for (auto& fr : f)
        tx.submit(fr, load_seq(fr), &fr);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return fc.sequences.size() == 5; }));
    fc.ack(2);
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.stats().frames_acknowledged.get() == 2; }));
    // The collector restarts having written frames 2 and 3 without acknowledging them.
    fc.drop();
    fc.resume = 4;
    fc.new_session = false;
    fc.auto_ack = true;
    fc.sequences.clear();
    fc.hello.reset();
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.all_acknowledged(); }));
    ASSERT_TRUE(fc.hello);
    EXPECT_EQ(fc.hello->next_sequence, 2u) << "the oldest unacknowledged frame";
    EXPECT_EQ(fc.sequences, std::vector<uint64_t>{4}) << "only what the collector lacks";
    EXPECT_EQ(fc.frame_bytes.back(), f[4]);
    const auto& s = tx.stats();
    EXPECT_EQ(s.frames_retransmitted.get(), 1u);
    EXPECT_EQ(s.connects.get(), 2u);
    EXPECT_EQ(s.disconnects.get(), 1u);
    EXPECT_EQ(s.frames_acknowledged.get(), 5u);
    EXPECT_NE(s.last_error.get().find("closed the connection"), std::string::npos);
    EXPECT_TRUE(fc.hello->flags & hello_flag::kResume) << "a reconnect resumes its session";
    EXPECT_EQ(fc.sessions.resumes_asked, 1);
    const auto cookies = reclaim_all(tx);
    ASSERT_EQ(cookies.size(), 5u);
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(cookies[i], &f[i]);
}

TEST(TcpSender, ACollectorThatLostTheSessionGetsANewOneAndEveryFrame) {
    FakeCollector fc(session::testing::key("0123456789abcdef0123"));
    auto cfg = config(fc.port());
    cfg.key = session::testing::key("0123456789abcdef0123");
    fc.auto_ack = false;
    TcpSender tx(cfg);
    auto f = frames(4);
    for (auto& fr : f)
        tx.submit(fr, load_seq(fr), &fr);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return fc.sequences.size() == 4; }));
    fc.ack(1);
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.stats().frames_acknowledged.get() == 1; }));
    // The collector's state is reset: it holds no session to resume.
    fc.drop();
    fc.sessions.known = false;
    fc.auto_ack = true;
    fc.resume = 1;
    fc.sequences.clear();
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.all_acknowledged(); }));
    EXPECT_EQ(fc.failure_reason, RejectReason::ResumeUnknown);
    EXPECT_EQ(tx.stats().resumes_refused.get(), 1u);
    ASSERT_TRUE(fc.hello);
    EXPECT_FALSE(fc.hello->flags & hello_flag::kResume) << "the last hello started a session";
    EXPECT_EQ(fc.hello->next_sequence, 1u) << "from the oldest frame not acknowledged";
    EXPECT_EQ(fc.sequences, (std::vector<uint64_t>{1, 2, 3}));
    EXPECT_EQ(fc.checked->key_name.view(), "key");
}

TEST(TcpSender, ResumePointAcknowledgesFramesNeverSent) {
    FakeCollector fc;
    fc.resume = 2;
    fc.new_session = false;
    TcpSender tx(config(fc.port()));
    auto f = frames(4);
    for (auto& fr : f)
        tx.submit(fr, load_seq(fr), &fr);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.all_acknowledged(); }));
    EXPECT_EQ(fc.sequences, (std::vector<uint64_t>{2, 3}));
    EXPECT_EQ(tx.stats().frames_sent.get(), 2u);
    EXPECT_EQ(reclaim_all(tx).size(), 4u);
}

TEST(TcpSender, PartialWritesResumeMidFrame) {
    FakeCollector fc;
    auto cfg = config(fc.port());
    cfg.sndbuf_bytes = 4096;  // the kernel's minimum: every frame takes many writes
    TcpSender tx(cfg);
    std::vector<std::vector<std::byte>> f;
    for (int i = 0; i < 6; ++i)
        f.push_back(make_frame(7, i, 1000, 200, i * 1000));
    for (auto& fr : f)
        tx.submit(fr, load_seq(fr), &fr);
    uint64_t now = 1;
    ASSERT_TRUE(drive(
        tx, fc, now, [&] { return tx.all_acknowledged(); }, 200000));
    ASSERT_EQ(fc.frame_bytes.size(), 6u);
    for (int i = 0; i < 6; ++i)
        EXPECT_EQ(fc.frame_bytes[i], f[i]) << "frame " << i;
}

TEST(TcpSender, TimesOutWithoutAnAcknowledgement) {
    FakeCollector fc;
    fc.auto_ack = false;
    TcpSender tx(config(fc.port()));
    auto f = frames(1);
    tx.submit(f[0], 0, &f[0]);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return fc.sequences.size() == 1; }));
    tx.poll(now + 4'900'000'000ull);
    EXPECT_EQ(tx.state(), SenderState::Streaming);
    tx.poll(now + 5'100'000'000ull);
    EXPECT_EQ(tx.state(), SenderState::Waiting);
    EXPECT_EQ(tx.stats().timeouts.get(), 1u);
    EXPECT_NE(tx.stats().last_error.get().find("sent no acknowledgement for 5000 ms"),
              std::string::npos);
    EXPECT_EQ(reclaim_all(tx).size(), 0u) << "an unacknowledged frame stays";
}

TEST(TcpSender, HeartbeatsKeepAnIdleConnection) {
    FakeCollector fc;
    TcpSender tx(config(fc.port()));
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.state() == SenderState::Streaming; }));
    EXPECT_EQ(tx.stats().heartbeats_sent.get(), 0u);
    // Idle for more than heartbeat_ms: one heartbeat, answered by an ACK.
    now += 1'100'000'000;
    ASSERT_TRUE(drive(
        tx, fc, now, [&] { return fc.heartbeats == 1; }, 2000));
    EXPECT_EQ(tx.stats().heartbeats_sent.get(), 1u);
    // Well past timeout_ms since the answer: no timeout, another heartbeat.
    now += 6'000'000'000ull;
    ASSERT_TRUE(drive(
        tx, fc, now, [&] { return fc.heartbeats == 2; }, 2000));
    EXPECT_EQ(tx.stats().timeouts.get(), 0u);
    EXPECT_EQ(tx.state(), SenderState::Streaming);
}

TEST(TcpSender, AnUnansweredHeartbeatTimesOut) {
    FakeCollector fc;
    fc.auto_ack = false;
    TcpSender tx(config(fc.port()));
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.state() == SenderState::Streaming; }));
    now += 1'100'000'000;
    ASSERT_TRUE(drive(
        tx, fc, now, [&] { return fc.heartbeats == 1; }, 2000));
    tx.poll(now + 5'100'000'000ull);
    EXPECT_EQ(tx.stats().timeouts.get(), 1u);
    EXPECT_EQ(tx.state(), SenderState::Waiting);
}

TEST(TcpSender, BackoffDoublesWithJitterUpToTheMaximum) {
    testing::RefusingPort port;
    auto cfg = config(port.port());
    cfg.reconnect_min_ms = 100;
    cfg.reconnect_max_ms = 800;
    cfg.jitter_seed = 3;
    TcpSender tx(cfg);
    Backoff reference(100, 800, 3);
    uint64_t now = 1'000'000'000;
    for (int attempt = 0; attempt < 7; ++attempt) {
        ASSERT_EQ(tx.state(), SenderState::Waiting);
        tx.poll(now);  // connects
        for (int i = 0; i < 1000 && tx.state() != SenderState::Waiting; ++i) {
            ::usleep(100);  // the kernel refuses at once on loopback
            tx.poll(now);
        }
        ASSERT_EQ(tx.state(), SenderState::Waiting);
        const uint64_t delay = tx.next_attempt_ns() - now;
        const uint64_t ceiling = std::min<uint64_t>(800, 100u << attempt) * 1'000'000;
        EXPECT_GE(delay, ceiling / 2) << "attempt " << attempt;
        EXPECT_LE(delay, ceiling) << "attempt " << attempt;
        EXPECT_EQ(delay, reference.next_delay_ns()) << "attempt " << attempt;
        // Nothing happens before the delay is over.
        EXPECT_FALSE(tx.poll(tx.next_attempt_ns() - 1));
        EXPECT_EQ(tx.state(), SenderState::Waiting);
        now = tx.next_attempt_ns();
    }
    EXPECT_EQ(tx.stats().connect_failures.get(), 7u);
    EXPECT_NE(tx.stats().last_error.get().find("Connection refused"), std::string::npos);
    EXPECT_NE(tx.stats().last_error.get().find("is sluice-collector running"), std::string::npos);
}

TEST(TcpSender, BackoffStartsOverAfterAConnectionThatMadeProgress) {
    FakeCollector fc;
    TcpSender tx(config(fc.port()));
    auto f = frames(4);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.state() == SenderState::Streaming; }));
    for (int i = 0; i < 3; ++i) {
        // Progress: a frame written and acknowledged on this connection.
        ASSERT_EQ(tx.submit(f[i], load_seq(f[i]), &f[i]), SubmitResult::Accepted);
        ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.all_acknowledged(); }));
        fc.drop();
        ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.state() == SenderState::Waiting; }));
        EXPECT_LE(tx.next_attempt_ns() - now, 100'000'000u) << "the first delay again";
        ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.state() == SenderState::Streaming; }));
    }
    EXPECT_EQ(tx.stats().connects.get(), 4u);
}

TEST(TcpSender, HandshakeTimesOutWhenTheCollectorIsSilent) {
    FakeCollector fc;  // listens, never accepts: the kernel completes the connect
    TcpSender tx(config(fc.port()));
    uint64_t now = 1;
    for (int i = 0; i < 1000 && tx.state() != SenderState::Handshake; ++i) {
        tx.poll(now);
        ::usleep(100);
    }
    ASSERT_EQ(tx.state(), SenderState::Handshake);
    tx.poll(now + 4'000'000'000ull);
    EXPECT_EQ(tx.state(), SenderState::Handshake);
    tx.poll(now + 5'000'000'000ull);
    EXPECT_EQ(tx.state(), SenderState::Waiting);
    EXPECT_NE(tx.stats().last_error.get().find("handshake with collector 127.0.0.1"),
              std::string::npos);
    EXPECT_EQ(tx.stats().timeouts.get(), 1u);
}

TEST(TcpSender, WrongKeyIsRejectedWithTheCollectorsWords) {
    FakeCollector fc(testing::key("collector-key-0123456789"));
    auto cfg = config(fc.port());
    cfg.key = testing::key("another-key-0123456789ab");
    TcpSender tx(cfg);
    uint64_t now = 1;
    ASSERT_TRUE(
        drive(tx, fc, now, [&] { return !fc.failure.empty() && tx.stats().errors.get() > 0; }));
    EXPECT_EQ(fc.failure_reason, RejectReason::AuthFailed);
    EXPECT_NE(fc.failure.find("authentication failed"), std::string::npos);
    const std::string e = tx.stats().last_error.get();
    EXPECT_NE(e.find("rejected the connection (auth-failed)"), std::string::npos) << e;
    EXPECT_NE(e.find("key differs"), std::string::npos) << e;
    EXPECT_EQ(tx.stats().connects.get(), 0u);
}

TEST(TcpSender, MissingKeyIsRejected) {
    FakeCollector fc(testing::key("collector-key-0123456789"));
    TcpSender tx(config(fc.port()));
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.stats().errors.get() > 0; }));
    EXPECT_NE(tx.stats().last_error.get().find("(key-required)"), std::string::npos);
}

TEST(TcpSender, MatchingKeysConnect) {
    FakeCollector fc(testing::key("shared-key-0123456789abc"));
    auto cfg = config(fc.port());
    cfg.key = testing::key("shared-key-0123456789abc");
    TcpSender tx(cfg);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.state() == SenderState::Streaming; }));
    EXPECT_TRUE(fc.hello->flags & hello_flag::kHasKey);
}

TEST(TcpSender, RefusesACollectorThatCannotProveTheKey) {
    FakeCollector fc(testing::key("shared-key-0123456789abc"));
    Welcome w;  // a proof of nothing
    std::array<std::byte, kMaxMessageSize> buf;
    fc.welcome_override = std::vector<std::byte>(buf.begin(), buf.begin() + encode(w, buf));
    auto cfg = config(fc.port());
    cfg.key = testing::key("shared-key-0123456789abc");
    TcpSender tx(cfg);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return !fc.peer_rejected.empty(); }));
    EXPECT_EQ(fc.peer_reject_reason, RejectReason::AuthFailed);
    EXPECT_NE(tx.stats().last_error.get().find("did not prove it holds the key"),
              std::string::npos);
    EXPECT_EQ(tx.stats().connects.get(), 0u);
}

TEST(TcpSender, ACollectorOfAnotherVersionIsToldAndReported) {
    FakeCollector fc;
    TcpSender tx(config(fc.port()));
    uint64_t now = 1;
    for (int i = 0; i < 20000 && !fc.accept(3); ++i) {
        tx.poll(now += 50'000);
        ::usleep(50);
    }
    for (int i = 0; i < 20000 && fc.peer_rejected.empty(); ++i) {
        tx.poll(now += 50'000);
        fc.pump();
    }
    EXPECT_EQ(fc.peer_reject_reason, RejectReason::Version);
    EXPECT_NE(fc.peer_rejected.find("this sender speaks 2"), std::string::npos) << fc.peer_rejected;
    EXPECT_NE(tx.stats().last_error.get().find("the collector speaks transport version 3"),
              std::string::npos);
}

TEST(TcpSender, CloseEndsTheConnectionCleanly) {
    FakeCollector fc;
    TcpSender tx(config(fc.port()));
    auto f = frames(2);
    for (auto& fr : f)
        tx.submit(fr, load_seq(fr), &fr);
    uint64_t now = 1;
    ASSERT_TRUE(drive(tx, fc, now, [&] { return tx.all_acknowledged(); }));
    tx.close();
    for (int i = 0; i < 1000 && fc.pump(); ++i)
        ::usleep(100);
    EXPECT_FALSE(fc.connected());
    EXPECT_EQ(tx.stats().errors.get(), 0u);
}

TEST(TcpSender, RejectsBadConfigurations) {
    SenderConfig c = config(7700);
    c.retransmit_frames = 0;
    EXPECT_THROW(TcpSender{c}, std::invalid_argument);
    c = config(7700);
    c.key = testing::key("short");
    EXPECT_THROW(TcpSender{c}, std::invalid_argument);
    c = config(7700);
    c.reconnect_min_ms = 500;
    c.reconnect_max_ms = 100;
    EXPECT_THROW(TcpSender{c}, std::invalid_argument);
}

// Stats and the last error are read by a control thread while the egress
// thread fails connection after connection (run under TSan).
TEST(TcpSender, StatsAreReadableFromAnotherThread) {
    testing::RefusingPort port;
    auto cfg = config(port.port());
    cfg.reconnect_min_ms = 1;
    cfg.reconnect_max_ms = 1;
    TcpSender tx(cfg);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0};
    std::thread reader([&] {
        while (!stop.load(std::memory_order_acquire)) {  // pairs with the release store below
            const std::string e = tx.stats().last_error.get();
            if (!e.empty()) {
                EXPECT_NE(e.find("collector 127.0.0.1"), std::string::npos) << e;
            }
            (void)tx.stats().snapshot();
            (void)tx.all_acknowledged();
            reads.fetch_add(1, std::memory_order_relaxed);  // a count, read after join
        }
    });
    uint64_t now = 1;
    // Keep failing connects until the reader has overlapped with them for a
    // while: on a loaded machine the reader thread may start late.
    while (tx.stats().connect_failures.get() < 200 || reads.load(std::memory_order_relaxed) < 100) {
        now += 2'000'000;
        tx.poll(now);
    }
    stop.store(true, std::memory_order_release);
    reader.join();
    EXPECT_GT(reads.load(std::memory_order_relaxed), 0u);
}

}  // namespace
}  // namespace sluice::tcp
