// The collector's one handler for every transport, driven directly: what a
// hello and frames mean (resume points, replacement of an older connection
// of the stream, refusals with their causes), and how closes are counted.
#include "../../collector/src/handler.hpp"
#include "collector_testing.hpp"
#include <fmt/format.h>
#include <gtest/gtest.h>

namespace sluice::collector {
namespace {

using namespace testing;
using session::CloseCause;
using session::RejectReason;

// A listener stand-in: records what the handler asks of it and reports the
// close back, as a listener does.
class FakeTransport final : public session::ReceiverTransport {
  public:
    StreamHandler* handler = nullptr;
    struct Close {
        session::ConnectionId conn;
        CloseCause cause;
        RejectReason reason;
        std::string text;
    };
    std::vector<Close> closes;
    void close(session::ConnectionId conn, CloseCause cause, RejectReason reason,
               std::string_view text) override {
        closes.push_back({conn, cause, reason, std::string(text)});
        handler->on_closed(conn, cause, text);
    }
    std::string_view name() const override { return "fake"; }
};

struct HandlerFixture {
    HandlerFixture() {
        CollectorOptions o;
        o.listen = {"127.0.0.1", 0};
        o.out_dir = dir.str();
        o.stats_interval_s = 0;
        col = std::make_unique<Collector>(o);
        handler = std::make_unique<StreamHandler>(*col);
        t.handler = handler.get();
    }
    session::HelloAnswer hello(session::ConnectionId conn, uint64_t stream, uint64_t session,
                               std::optional<uint64_t> position = std::nullopt) {
        handler->on_connection(conn, t, "10.0.0.2:4000");
        session::Hello h;
        h.stream_id = stream;
        h.session_id = session;
        if (position) h.position = {true, *position, 0};
        // As a listener passes it once the sender proved the session's
        // secret (a new session's hello is a resume of nothing, and starts one).
        h.resume = true;
        h.secret[0] = std::byte{static_cast<uint8_t>(session)};
        return handler->on_hello(conn, h);
    }
    bool frame(session::ConnectionId conn, const std::vector<std::byte>& f) {
        auto v = reader.open(f, scratch);
        EXPECT_TRUE(v.ok());
        refusal = {};
        return handler->on_frame(conn, *v, refusal);
    }
    TempDir dir;
    std::unique_ptr<Collector> col;
    std::unique_ptr<StreamHandler> handler;
    FakeTransport t;
    wire::FrameReader reader;
    std::vector<std::byte> scratch = std::vector<std::byte>(1 << 20);
    session::Refusal refusal;
};

TEST(StreamHandler, FramesAreWrittenAndAcknowledgedAndAReconnectResumes) {
    HandlerFixture fx;
    const auto pk = packets(40, 1);
    const auto fr = make_frames(5, pk, 10);
    const auto a = fx.hello(1, 5, 77, 0);
    ASSERT_TRUE(a.accept);
    EXPECT_EQ(a.resume_sequence, 0u);
    EXPECT_TRUE(a.new_session);
    ASSERT_TRUE(fx.frame(1, fr.frames[0]));
    ASSERT_TRUE(fx.frame(1, fr.frames[1]));
    session::Refusal r;
    EXPECT_EQ(fx.handler->on_batch_done(1, r), 2u);
    EXPECT_EQ(fx.col->counters().batches_written.get(), 1u);
    // Nothing new since: no write, and the counter says so.
    EXPECT_EQ(fx.handler->on_batch_done(1, r), 2u);
    EXPECT_EQ(fx.col->counters().batches_written.get(), 1u);
    // A duplicate alone writes nothing either.
    ASSERT_TRUE(fx.frame(1, fr.frames[1]));
    EXPECT_EQ(fx.handler->on_batch_done(1, r), 2u);
    EXPECT_EQ(fx.col->counters().batches_written.get(), 1u);
    fx.handler->on_closed(1, CloseCause::PeerClosed, "");
    EXPECT_EQ(fx.col->counters().closed_by_peer.get(), 1u);
    // The same sender again: it resumes where the collector stands.
    const auto b = fx.hello(2, 5, 77, 0);
    ASSERT_TRUE(b.accept);
    EXPECT_EQ(b.resume_sequence, 2u);
    EXPECT_FALSE(b.new_session);
    ASSERT_TRUE(fx.frame(2, fr.frames[2]));
    ASSERT_TRUE(fx.frame(2, fr.frames[3]));
    EXPECT_EQ(fx.handler->on_batch_done(2, r), 4u);
    EXPECT_EQ(fx.col->counters().batches_written.get(), 2u);
    EXPECT_EQ(read_stream(fx.dir.path(), 5), pk);
    EXPECT_EQ(fx.col->counters().handshakes.get(), 2u);
}

TEST(StreamHandler, ANewConnectionOfAStreamReplacesTheOldOne) {
    HandlerFixture fx;
    ASSERT_TRUE(fx.hello(1, 5, 77).accept);
    ASSERT_TRUE(fx.hello(2, 5, 77).accept);
    ASSERT_EQ(fx.t.closes.size(), 1u);
    EXPECT_EQ(fx.t.closes[0].conn, 1u);
    EXPECT_EQ(fx.t.closes[0].cause, CloseCause::Replaced);
    EXPECT_EQ(fx.t.closes[0].reason, RejectReason::Replaced);
    EXPECT_NE(fx.t.closes[0].text.find("a new connection of stream 5 from 10.0.0.2:4000"),
              std::string::npos);
    EXPECT_EQ(fx.col->counters().dropped_replaced.get(), 1u);
    // Frames of the new connection are written.
    const auto fr = make_frames(5, packets(5, 2), 5);
    EXPECT_TRUE(fx.frame(2, fr.frames[0]));
}

TEST(StreamHandler, AFrameNamingTooManyInterfacesIsRefusedWithLimit) {
    HandlerFixture fx;
    ASSERT_TRUE(fx.hello(1, 5, 77, 0).accept);
    auto pk = packets(1000, 3, 1, 1);
    for (std::size_t i = 0; i < pk.size(); ++i) {
        pk[i].queue = static_cast<uint16_t>(i);
        pk[i].data.resize(60);
        pk[i].orig_len = 60;
    }
    const auto fr = make_frames(5, pk, pk.size());
    EXPECT_FALSE(fx.frame(1, fr.frames[0]));
    EXPECT_EQ(fx.refusal.cause, CloseCause::Limit);
    EXPECT_EQ(fx.refusal.reason, RejectReason::Limit);
    EXPECT_NE(fx.refusal.text.find("more than 800 (port, queue) interfaces"), std::string::npos);
    fx.handler->on_closed(1, fx.refusal.cause, fx.refusal.text);
    EXPECT_EQ(fx.col->counters().dropped_over_limit.get(), 1u);
}

TEST(StreamHandler, EveryCauseMovesItsCounter) {
    HandlerFixture fx;
    const std::pair<CloseCause, uint64_t CollectorCounters::*> unused{};
    (void)unused;
    struct Case {
        CloseCause cause;
        const lockfree::Counter CollectorCounters::*counter;
    };
    const Case cases[] = {
        {CloseCause::PeerClosed, &CollectorCounters::closed_by_peer},
        {CloseCause::PeerRejected, &CollectorCounters::rejected_by_peer},
        {CloseCause::Version, &CollectorCounters::refused_version},
        {CloseCause::Auth, &CollectorCounters::refused_auth},
        {CloseCause::Protocol, &CollectorCounters::dropped_protocol},
        {CloseCause::BadFrame, &CollectorCounters::dropped_bad_frame},
        {CloseCause::Timeout, &CollectorCounters::dropped_timeout},
        {CloseCause::Storage, &CollectorCounters::dropped_storage},
        {CloseCause::Replaced, &CollectorCounters::dropped_replaced},
        {CloseCause::Busy, &CollectorCounters::dropped_busy},
        {CloseCause::Limit, &CollectorCounters::dropped_over_limit},
    };
    session::ConnectionId id = 100;
    for (const Case& c : cases) {
        fx.handler->on_connection(++id, fx.t, "peer");
        const uint64_t before = (fx.col->counters().*c.counter).get();
        fx.handler->on_closed(id, c.cause, "");
        EXPECT_EQ((fx.col->counters().*c.counter).get(), before + 1) << session::to_string(c.cause);
    }
    EXPECT_EQ(fx.col->counters().connections_accepted.get(), std::size(cases));
}

TEST(StreamHandler, AStormOfRefusalsIsCountedInFullButLoggedInABurst) {
    // A sender retrying a wrong key in a loop, or a scanner: every refusal
    // counts, but the log gets a bounded number of lines (the rest are
    // summed up in the next line after the interval).
    HandlerFixture fx;
    ::testing::internal::CaptureStderr();
    session::ConnectionId id = 1000;
    for (int i = 0; i < 500; ++i) {
        fx.handler->on_connection(++id, fx.t, "10.0.0.9:4000");
        fx.handler->on_closed(id, CloseCause::Auth,
                              fmt::format("connection from 10.0.0.9:4000: refusal {}", i));
    }
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(fx.col->counters().refused_auth.get(), 500u);
    std::size_t lines = 0;
    for (std::size_t at = err.find("refusal "); at != std::string::npos;
         at = err.find("refusal ", at + 1))
        ++lines;
    EXPECT_EQ(lines, 20u) << err;
    EXPECT_NE(err.find("refusal 0\n"), std::string::npos) << err;  // the first ones are shown
}

}  // namespace
}  // namespace sluice::collector
