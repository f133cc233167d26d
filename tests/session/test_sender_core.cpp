// SenderCore over a fake transport: the session logic every transport shares
// (backoff, connect and handshake timeouts, welcome and resume, ACK checks,
// heartbeats, rejects, replay, close) with no socket and no device. The clock
// is the test's.
#include "session_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/session/sender.hpp"

namespace sluice::session {
namespace {

using testing::load_seq;
using testing::make_frame;

constexpr uint64_t kMs = 1'000'000;

// Does what the test says, when poll() asks: comes up, welcomes, sends
// everything at once (recording sequences), counts heartbeats.
class FakeTransport final : public SenderTransport {
  public:
    bool refuse_connect = false;  // connect() fails at once
    bool comes_up = true;         // the connection comes up (handshake begins)
    bool welcomes = true;         // the collector answers the hello
    uint64_t resume = 0;          // ... with this resume point
    std::vector<uint64_t> sent_sequences;
    std::vector<Hello> hellos;
    int connects = 0, drops = 0, closes = 0, heartbeats = 0, sessions = 0;

    void begin_connect(SenderCore& core, uint64_t now) override {
        ++connects;
        if (refuse_connect) core.fail(now, "connection refused");
    }
    bool poll_setup(SenderCore& core, uint64_t now) override {
        if (core.state() == SenderState::Connecting && comes_up) {
            core.handshaking(now);
            hellos.push_back(core.hello());
            return true;
        }
        if (core.state() == SenderState::Handshake && welcomes) {
            // As a transport does: a hello that did not resume starts a
            // session, whose secret later hellos prove.
            if (!hellos.back().resume) {
                SessionSecret s{};
                s[0] = std::byte{static_cast<uint8_t>(++sessions)};
                core.established(s);
            }
            core.welcomed(now, resume);
            return true;
        }
        return false;
    }
    bool poll_stream(SenderCore& core, uint64_t now) override {
        RetransmitBuffer& rtx = core.frames();
        if (rtx.unsent() == 0) return false;
        iovec iov[64];
        const int n = rtx.fill_iov(iov, 64);
        std::size_t bytes = 0;
        for (int i = 0; i < n; ++i) {
            bytes += iov[i].iov_len;
            uint64_t seq;
            std::memcpy(&seq, static_cast<std::byte*>(iov[i].iov_base) + wire::offset::sequence, 8);
            sent_sequences.push_back(seq);
        }
        core.sent(now, bytes, rtx.advance(bytes));
        return true;
    }
    bool heartbeat(SenderCore&, uint64_t, uint64_t) override {
        ++heartbeats;
        return true;
    }
    void drop_connection() override { ++drops; }
    void close_connection() override { ++closes; }
};

SenderSettings settings() {
    SenderSettings s;
    s.peer = "collector.test:7700";
    s.stream_id = 9;
    s.session_id = 77;
    s.jitter_seed = 3;
    s.reconnect_min_ms = 100;
    s.reconnect_max_ms = 800;
    s.heartbeat_ms = 1000;
    s.timeout_ms = 5000;
    s.retransmit_frames = 8;
    return s;
}

struct Fixture {
    explicit Fixture(SenderSettings s = settings()) : core(s, t) {
        for (int i = 0; i < 6; ++i)
            frames.push_back(make_frame(9, i, 2, 64, i * 2));
    }
    void submit(int first, int n) {
        for (int i = first; i < first + n; ++i)
            ASSERT_EQ(core.submit(frames[i], i, &frames[i]), SubmitResult::Accepted);
    }
    // Polls until the core is idle (nothing more to do at `now`).
    void settle() {
        for (int i = 0; i < 16 && core.poll(now); ++i) {
        }
    }
    std::vector<void*> reclaim() {
        std::vector<void*> out(16);
        out.resize(core.reclaim(out));
        return out;
    }
    FakeTransport t;
    SenderCore core;
    std::vector<std::vector<std::byte>> frames;
    uint64_t now = 1'000 * kMs;
};

TEST(SenderCore, ConnectsHandshakesStreamsAndReclaimsOnAcknowledgement) {
    Fixture fx;
    fx.submit(0, 3);
    fx.settle();
    ASSERT_EQ(fx.core.state(), SenderState::Streaming);
    ASSERT_EQ(fx.t.hellos.size(), 1u);
    const Hello& h = fx.t.hellos[0];
    EXPECT_EQ(h.stream_id, 9u);
    EXPECT_EQ(h.session_id, 77u);
    EXPECT_TRUE(h.position.known);
    EXPECT_EQ(h.position.sequence, 0u);
    EXPECT_EQ(h.heartbeat_ms, 1000u);
    EXPECT_FALSE(h.has_key);
    EXPECT_EQ(fx.t.sent_sequences, (std::vector<uint64_t>{0, 1, 2}));
    EXPECT_TRUE(fx.reclaim().empty()) << "nothing acknowledged yet";
    EXPECT_TRUE(fx.core.acknowledged(fx.now, 2));
    const auto done = fx.reclaim();
    ASSERT_EQ(done.size(), 2u);
    EXPECT_EQ(done[0], &fx.frames[0]);
    EXPECT_EQ(done[1], &fx.frames[1]);
    EXPECT_EQ(fx.core.stats().connects.get(), 1u);
    EXPECT_EQ(fx.core.stats().frames_sent.get(), 3u);
    EXPECT_EQ(fx.core.stats().frames_acknowledged.get(), 2u);
    EXPECT_TRUE(fx.core.stats().connected.load());
}

TEST(SenderCore, AnAcknowledgementOfFramesNeverSentIsABrokenCollector) {
    Fixture fx;
    fx.submit(0, 3);
    fx.settle();
    ASSERT_EQ(fx.t.sent_sequences.size(), 3u);
    fx.submit(3, 2);  // submitted, not sent yet
    EXPECT_FALSE(fx.core.acknowledged(fx.now, 5)) << "frames 3 and 4 were never sent";
    EXPECT_EQ(fx.core.state(), SenderState::Waiting);
    EXPECT_EQ(fx.core.stats().frames_acknowledged.get(), 0u);
    EXPECT_EQ(fx.core.stats().disconnects.get(), 1u);
    EXPECT_NE(fx.core.stats().last_error.get().find("acknowledged frames up to sequence 5"),
              std::string::npos)
        << fx.core.stats().last_error.get();
    EXPECT_TRUE(fx.reclaim().empty());
    // After the backoff, the next connection sends them all again.
    fx.now = fx.core.next_attempt_ns();
    fx.t.sent_sequences.clear();
    fx.settle();
    EXPECT_EQ(fx.t.sent_sequences, (std::vector<uint64_t>{0, 1, 2, 3, 4}));
    EXPECT_EQ(fx.core.stats().frames_retransmitted.get(), 3u);
    EXPECT_TRUE(fx.core.acknowledged(fx.now, 5));
    EXPECT_EQ(fx.reclaim().size(), 5u);
}

TEST(SenderCore, AResumePointAboveWhatWasSentAcknowledgesThoseFrames) {
    Fixture fx;
    fx.t.resume = 2;  // the collector wrote 0 and 1 on an earlier connection
    fx.submit(0, 4);
    fx.settle();
    EXPECT_EQ(fx.t.sent_sequences, (std::vector<uint64_t>{2, 3}));
    EXPECT_EQ(fx.reclaim().size(), 2u);
    EXPECT_TRUE(fx.core.acknowledged(fx.now, 4));
    EXPECT_EQ(fx.reclaim().size(), 2u);
}

TEST(SenderCore, ConnectAndHandshakeEachGetTheirTimeout) {
    Fixture fx;
    fx.t.comes_up = false;
    fx.settle();
    ASSERT_EQ(fx.core.state(), SenderState::Connecting);
    fx.now += 5000 * kMs - 1;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.core.state(), SenderState::Connecting);
    fx.now += 1;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.core.state(), SenderState::Waiting);
    EXPECT_EQ(fx.core.stats().timeouts.get(), 1u);
    EXPECT_EQ(fx.core.stats().connect_failures.get(), 1u);
    EXPECT_NE(fx.core.stats().last_error.get().find("connect to collector collector.test:7700 "
                                                    "timed out after 5000 ms"),
              std::string::npos);
    // Up, but no answer to the hello.
    fx.t.comes_up = true;
    fx.t.welcomes = false;
    fx.now = fx.core.next_attempt_ns();
    fx.settle();
    ASSERT_EQ(fx.core.state(), SenderState::Handshake);
    fx.now += 5000 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.core.state(), SenderState::Waiting);
    EXPECT_NE(fx.core.stats().last_error.get().find("handshake with collector"), std::string::npos);
    EXPECT_EQ(fx.core.stats().timeouts.get(), 2u);
    EXPECT_EQ(fx.t.drops, 2);
}

TEST(SenderCore, BackoffDoublesUpToItsMaximumAndStartsOverAfterProgress) {
    Fixture fx;
    fx.t.refuse_connect = true;
    uint64_t previous_ceiling = 0;
    for (int i = 0; i < 6; ++i) {
        fx.core.poll(fx.now);
        ASSERT_EQ(fx.core.state(), SenderState::Waiting);
        const uint64_t delay = fx.core.next_attempt_ns() - fx.now;
        const uint64_t ceiling = std::min<uint64_t>(100 << i, 800) * kMs;
        EXPECT_GE(delay, ceiling / 2) << i;
        EXPECT_LE(delay, ceiling) << i;
        EXPECT_GE(ceiling, previous_ceiling);
        previous_ceiling = ceiling;
        fx.now = fx.core.next_attempt_ns();
    }
    EXPECT_EQ(fx.t.connects, 6);
    fx.t.refuse_connect = false;
    fx.submit(0, 1);
    fx.settle();
    ASSERT_EQ(fx.core.state(), SenderState::Streaming);
    // Welcomed, but nothing acknowledged yet: a welcome alone proves little.
    fx.core.disconnect(fx.now, "test");
    EXPECT_GT(fx.core.next_attempt_ns() - fx.now, 100 * kMs) << "the schedule goes on";
    fx.now = fx.core.next_attempt_ns();
    fx.settle();
    ASSERT_TRUE(fx.core.acknowledged(fx.now, 1));  // progress
    fx.core.disconnect(fx.now, "test");
    EXPECT_LE(fx.core.next_attempt_ns() - fx.now, 100 * kMs) << "the schedule starts over";
}

TEST(SenderCore, ACollectorThatWelcomesThenRefusesIsNotRetriedInATightLoop) {
    // Disk full: the collector welcomes, takes the frames, cannot write them
    // and refuses. The delays must grow as for a refused connection.
    Fixture fx;
    fx.submit(0, 2);
    uint64_t previous = 0;
    for (int i = 0; i < 5; ++i) {
        fx.settle();
        ASSERT_EQ(fx.core.state(), SenderState::Streaming);
        fx.core.rejected(fx.now, RejectReason::Storage, "the collector cannot write: disk full");
        const uint64_t delay = fx.core.next_attempt_ns() - fx.now;
        EXPECT_GE(delay, std::min<uint64_t>(100 << i, 800) * kMs / 2) << i;
        EXPECT_GE(delay * 2, previous) << "never shorter than half the last";
        previous = delay;
        fx.now = fx.core.next_attempt_ns();
    }
    EXPECT_EQ(fx.core.stats().rejected_by_collector.get(), 5u);
    EXPECT_EQ(fx.core.held(), 2u) << "the frames wait for the disk, none is lost";
}

TEST(SenderCore, AConnectionThatStaysUpWithoutTrafficAlsoStartsTheBackoffOver) {
    Fixture fx;
    fx.t.refuse_connect = true;
    for (int i = 0; i < 4; ++i) {
        fx.core.poll(fx.now);
        fx.now = fx.core.next_attempt_ns();
    }
    fx.t.refuse_connect = false;
    fx.settle();
    ASSERT_EQ(fx.core.state(), SenderState::Streaming);
    fx.now += 2 * 1000 * kMs;  // twice max(reconnect_max_ms, 1 s)
    fx.core.poll(fx.now);
    fx.core.disconnect(fx.now, "test");
    EXPECT_LE(fx.core.next_attempt_ns() - fx.now, 100 * kMs);
}

TEST(SenderCore, AnIdleConnectionHeartbeatsAndAnUnansweredHeartbeatTimesOut) {
    Fixture fx;
    fx.settle();
    ASSERT_EQ(fx.core.state(), SenderState::Streaming);
    fx.now += 999 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.t.heartbeats, 0);
    fx.now += 1 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.t.heartbeats, 1);
    EXPECT_EQ(fx.core.stats().heartbeats_sent.get(), 1u);
    fx.now += 2000 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.t.heartbeats, 1) << "one heartbeat out at a time";
    EXPECT_TRUE(fx.core.acknowledged(fx.now, 0));  // the answer
    fx.now += 1000 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.t.heartbeats, 2);
    fx.now += 5000 * kMs;  // no answer this time
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.core.state(), SenderState::Waiting);
    EXPECT_NE(fx.core.stats().last_error.get().find("sent no acknowledgement for 5000 ms"),
              std::string::npos);
}

TEST(SenderCore, UnacknowledgedFramesTimeOutFromTheFirstUnansweredSend) {
    SenderSettings s = settings();
    s.heartbeat_ms = 0;
    Fixture fx(s);
    fx.submit(0, 2);
    fx.settle();
    fx.now += 4999 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.core.state(), SenderState::Streaming);
    fx.core.heard(fx.now);  // anything from the collector restarts the wait
    fx.now += 4999 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.core.state(), SenderState::Streaming);
    fx.now += 1 * kMs;
    fx.core.poll(fx.now);
    EXPECT_EQ(fx.core.state(), SenderState::Waiting);
    EXPECT_EQ(fx.core.stats().timeouts.get(), 1u);
}

TEST(SenderCore, ARejectIsShownInTheCollectorsWordsAndCounted) {
    Fixture fx;
    fx.t.welcomes = false;
    fx.settle();
    fx.core.rejected(fx.now, RejectReason::Busy, "too many\nconnections\x01");
    EXPECT_EQ(fx.core.state(), SenderState::Waiting);
    EXPECT_EQ(fx.core.stats().rejected_by_collector.get(), 1u);
    EXPECT_EQ(
        fx.core.stats().last_error.get(),
        "collector collector.test:7700 rejected the connection (busy): too many?connections?");
    fx.now = fx.core.next_attempt_ns();
    fx.settle();
    fx.core.rejected(fx.now, static_cast<RejectReason>(99), "newer");
    EXPECT_NE(fx.core.stats().last_error.get().find("(reason 99): newer"), std::string::npos);
}

TEST(SenderCore, AReconnectResumesWithTheSessionsSecretAndARefusedResumeStartsAfresh) {
    Fixture fx;
    fx.submit(0, 2);
    fx.settle();
    ASSERT_EQ(fx.core.state(), SenderState::Streaming);
    EXPECT_FALSE(fx.t.hellos[0].resume) << "nothing to resume yet";
    fx.core.disconnect(fx.now, "link down");
    fx.now = fx.core.next_attempt_ns();
    fx.settle();
    ASSERT_EQ(fx.t.hellos.size(), 2u);
    EXPECT_TRUE(fx.t.hellos[1].resume);
    EXPECT_EQ(fx.t.hellos[1].secret[0], std::byte{1}) << "the secret of the session it started";
    EXPECT_EQ(fx.t.hellos[1].session_id, 77u);
    EXPECT_EQ(fx.t.sessions, 1) << "a resumed session keeps its secret";

    // The collector lost the session (its state was reset): the sender is
    // told so and starts a new session at once, not after a backoff.
    fx.core.disconnect(fx.now, "link down");
    fx.now = fx.core.next_attempt_ns();
    fx.t.welcomes = false;
    fx.settle();
    ASSERT_EQ(fx.t.hellos.size(), 3u);
    EXPECT_TRUE(fx.t.hellos[2].resume);
    fx.core.rejected(fx.now, RejectReason::ResumeUnknown, "cannot resume");
    EXPECT_EQ(fx.core.stats().resumes_refused.get(), 1u);
    EXPECT_EQ(fx.core.next_attempt_ns(), fx.now) << "no backoff for a refused resume";
    fx.t.welcomes = true;
    fx.settle();
    ASSERT_EQ(fx.t.hellos.size(), 4u);
    EXPECT_FALSE(fx.t.hellos[3].resume);
    EXPECT_TRUE(fx.t.hellos[3].position.known);
    EXPECT_EQ(fx.t.hellos[3].position.sequence, 0u) << "the oldest frame not acknowledged";
    EXPECT_EQ(fx.t.sessions, 2);
    // The next reconnect resumes the new session, with its secret.
    fx.core.disconnect(fx.now, "link down");
    fx.now = fx.core.next_attempt_ns();
    fx.settle();
    ASSERT_EQ(fx.t.hellos.size(), 5u);
    EXPECT_TRUE(fx.t.hellos[4].resume);
    EXPECT_EQ(fx.t.hellos[4].secret[0], std::byte{2});
}

TEST(SenderCore, CloseEndsTheStreamWithoutReconnecting) {
    Fixture fx;
    fx.submit(0, 1);
    fx.settle();
    fx.core.close();
    EXPECT_EQ(fx.t.closes, 1);
    EXPECT_EQ(fx.core.state(), SenderState::Waiting);
    fx.now += 3600'000 * kMs;
    EXPECT_FALSE(fx.core.poll(fx.now));
    EXPECT_EQ(fx.t.connects, 1);
}

TEST(SenderCore, FullWhenRetransmitFramesAreHeldAndSettingsAreChecked) {
    SenderSettings s = settings();
    s.retransmit_frames = 2;
    Fixture fx(s);
    fx.submit(0, 2);
    EXPECT_EQ(fx.core.submit(fx.frames[2], 2, &fx.frames[2]), SubmitResult::Full);
    EXPECT_EQ(fx.core.stats().submit_full.get(), 1u);
    FakeTransport t;
    s.retransmit_frames = 0;
    EXPECT_THROW(SenderCore(s, t), std::invalid_argument);
    s = settings();
    s.key = testing::key("short");
    EXPECT_THROW(SenderCore(s, t), std::invalid_argument);
    s = settings();
    s.reconnect_max_ms = 50;
    EXPECT_THROW(SenderCore(s, t), std::invalid_argument);
}

}  // namespace
}  // namespace sluice::session
