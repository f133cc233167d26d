// The collector's event loop in a thread, TcpSenders in the test's: the whole
// path, in process (so ASan and TSan watch both ends at once).
#include <thread>

#include "../tcp/tls_testing.hpp"
#include "collector_testing.hpp"
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/collector/collector.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/tcp/sender.hpp"

namespace sluice::collector {
namespace {

using namespace testing;

class Running {
  public:
    explicit Running(CollectorOptions o) : c_(std::make_unique<Collector>(o)) {
        thread_ = std::thread([this] { rc_ = c_->run(); });
    }
    ~Running() { stop(); }
    int stop() {
        if (thread_.joinable()) {
            c_->request_stop();
            thread_.join();
        }
        return rc_;
    }
    Collector& get() { return *c_; }
    uint16_t port() const { return c_->port(); }

  private:
    std::unique_ptr<Collector> c_;
    std::thread thread_;
    int rc_ = -1;
};

CollectorOptions options(const TempDir& d, uint16_t port = 0) {
    CollectorOptions o;
    o.listen = {"127.0.0.1", port};
    o.out_dir = d.str();
    o.stats_interval_s = 0;
    return o;
}

tcp::SenderConfig sender(uint16_t port, uint64_t stream) {
    tcp::SenderConfig c;
    c.port = port;
    c.stream_id = stream;
    c.reconnect_min_ms = 5;
    c.reconnect_max_ms = 20;
    c.retransmit_frames = 8;
    return c;
}

// Submits every frame (waiting while the buffer is full), calling `between`
// after each, then waits for the last ACK.
template <class Between>
void stream_all(tcp::TcpSender& tx, const FrameSet& fs, Between between) {
    void* done[16];
    for (std::size_t i = 0; i < fs.frames.size(); ++i) {
        while (tx.submit(fs.frames[i], i, const_cast<std::vector<std::byte>*>(&fs.frames[i])) ==
               tcp::SubmitResult::Full) {
            tx.poll(session::monotonic_ns());
            tx.reclaim(done);
        }
        tx.poll(session::monotonic_ns());
        tx.reclaim(done);
        between(i);
    }
    const uint64_t deadline = session::monotonic_ns() + 60'000'000'000ull;
    while (!tx.all_acknowledged() && session::monotonic_ns() < deadline) {
        tx.poll(session::monotonic_ns());
        tx.reclaim(done);
    }
    ASSERT_TRUE(tx.all_acknowledged()) << tx.stats().last_error.get();
    tx.close();
}

TEST(Collector, ExactThroughTheWholePath) {
    TempDir dir;
    Running col(options(dir));
    const auto pk = packets(3000, 1, 2, 4);
    const auto fs = make_frames(5, pk, 37, wire::Codec::Lz4);
    tcp::TcpSender tx(sender(col.port(), 5));
    stream_all(tx, fs, [](std::size_t) {});
    EXPECT_EQ(col.stop(), 0);
    EXPECT_EQ(read_stream(dir.path(), 5), pk);
    EXPECT_EQ(col.get().counters().handshakes.get(), 1u);
    EXPECT_NE(col.get().summary_text().find("stream 5: this run 3000 packets"), std::string::npos);
    EXPECT_NE(col.get().summary_json().find("\"packets_written\": 3000"), std::string::npos);
}

TEST(Collector, LostConnectionsReplayExactlyOnce) {
    TempDir dir;
    Running col(options(dir));
    const auto pk = packets(4000, 2);
    const auto fs = make_frames(6, pk, 20, wire::Codec::Zstd);
    tcp::TcpSender tx(sender(col.port(), 6));
    stream_all(tx, fs, [&](std::size_t i) {
        if (i % 37 == 36) tx.disconnect(session::monotonic_ns(), "test: connection cut");
    });
    EXPECT_EQ(col.stop(), 0);
    EXPECT_EQ(read_stream(dir.path(), 6), pk);
    EXPECT_GE(tx.stats().connects.get(), 5u);
}

TEST(Collector, ARestartedCollectorResumesWhereItsFilesEnd) {
    TempDir dir;
    const auto pk = packets(3000, 3);
    const auto fs = make_frames(8, pk, 25);
    auto first = std::make_unique<Running>(options(dir));
    const uint16_t port = first->port();
    tcp::TcpSender tx(sender(port, 8));
    stream_all(tx, fs, [&](std::size_t i) {
        if (i == fs.frames.size() / 2) {
            EXPECT_EQ(first->stop(), 0);
            first.reset();  // releases the directory lock and the port
            first = std::make_unique<Running>(options(dir, port));
        }
    });
    EXPECT_EQ(first->stop(), 0);
    EXPECT_EQ(read_stream(dir.path(), 8), pk);
}

TEST(Collector, StreamsDoNotMix) {
    TempDir dir;
    Running col(options(dir));
    const auto a = packets(1500, 4), b = packets(1500, 5);
    const auto fa = make_frames(1, a, 30), fb = make_frames(2, b, 30);
    tcp::TcpSender ta(sender(col.port(), 1)), tb(sender(col.port(), 2));
    void* done[16];
    std::size_t ia = 0, ib = 0;
    while (ia < fa.frames.size() || ib < fb.frames.size() || !ta.all_acknowledged() ||
           !tb.all_acknowledged()) {
        if (ia < fa.frames.size() &&
            ta.submit(fa.frames[ia], ia, nullptr) == tcp::SubmitResult::Accepted)
            ++ia;
        if (ib < fb.frames.size() &&
            tb.submit(fb.frames[ib], ib, nullptr) == tcp::SubmitResult::Accepted)
            ++ib;
        ta.poll(session::monotonic_ns());
        tb.poll(session::monotonic_ns());
        ta.reclaim(done);
        tb.reclaim(done);
    }
    EXPECT_EQ(col.stop(), 0);
    EXPECT_EQ(read_stream(dir.path(), 1), a);
    EXPECT_EQ(read_stream(dir.path(), 2), b);
}

TEST(Collector, RefusesToShareItsDirectoryOrListenUnprotected) {
    TempDir dir;
    Running col(options(dir));
    try {
        Collector second(options(dir));
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("another sluice-collector"), std::string::npos);
    }
    TempDir other;
    auto o = options(other);
    o.listen = {"0.0.0.0", 0};
    EXPECT_THROW(Collector{o}, std::invalid_argument);
}

TEST(Collector, TlsWithClientCertificatesExactAndRefusalsCounted) {
    tcp::testing::TlsFiles f;
    TempDir dir;
    auto o = options(dir);
    o.tls.cert = f.cert("server");
    o.tls.key = f.key("server");
    o.tls.ca = f.cert("ca");
    Running col(o);
    const auto pk = packets(3000, 7, 2, 4);
    const auto fs = make_frames(5, pk, 37, wire::Codec::Lz4);
    auto sc = sender(col.port(), 5);
    sc.tls.ca = f.cert("ca");
    sc.tls.cert = f.cert("client");
    sc.tls.key = f.key("client");
    tcp::TcpSender tx(sc);
    stream_all(tx, fs, [](std::size_t) {});
    EXPECT_EQ(tx.tcp_stats().tls_handshakes.get(), 1u);
    {
        // Without a client certificate: refused by TLS, and counted.
        auto bad = sender(col.port(), 6);
        bad.tls.ca = f.cert("ca");
        tcp::TcpSender tb(bad);
        const uint64_t deadline = session::monotonic_ns() + 20'000'000'000ull;
        while (col.get().counters().refused_tls.get() == 0 && session::monotonic_ns() < deadline)
            tb.poll(session::monotonic_ns());
        while (tb.stats().connect_failures.get() == 0 && session::monotonic_ns() < deadline)
            tb.poll(session::monotonic_ns());
        EXPECT_THAT(tb.stats().last_error.get(),
                    ::testing::HasSubstr("requires a client certificate"));
    }
    EXPECT_EQ(col.stop(), 0);
    EXPECT_EQ(read_stream(dir.path(), 5), pk);
    EXPECT_GE(col.get().counters().refused_tls.get(), 1u);
    EXPECT_EQ(col.get().counters().handshakes.get(), 1u);
    EXPECT_THAT(col.get().summary_text(), ::testing::HasSubstr("  tls: tls_handshakes 1,"));
    EXPECT_THAT(col.get().summary_json(), ::testing::HasSubstr("\"tls\": {\"tls_handshakes\": 1"));
}

TEST(Collector, OffLoopbackTlsAloneNeedsAKeyClientCertificatesDoNot) {
    tcp::testing::TlsFiles f;
    TempDir dir;
    auto o = options(dir);
    o.listen = {"0.0.0.0", 0};
    o.tls.cert = f.cert("server");
    o.tls.key = f.key("server");
    EXPECT_THROW(Collector{o}, std::invalid_argument);
    o.tls.ca = f.cert("ca");
    Running col(o);
    EXPECT_EQ(col.stop(), 0);
}

std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

TEST(Collector, AConstructorThatFailsHalfWayClosesWhatItOpenedAndReleasesTheLock) {
    // The port is taken: the collector fails after it has locked its
    // directory and recovered its streams. It used to keep those descriptors
    // (and the lock) open, so the next attempt found its own directory locked.
    TempDir dir;
    Running blocker(options(dir));
    TempDir mine;
    {
        // A stream with state, so recovery opens files too.
        Running first(options(mine));
        tcp::TcpSender tx(sender(first.port(), 3));
        stream_all(tx, make_frames(3, packets(50, 9), 10), [](std::size_t) {});
    }
    const std::size_t before = open_fds();
    for (int i = 0; i < 3; ++i) {
        try {
            Collector c(options(mine, blocker.port()));
            FAIL() << "the port is in use";
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find("cannot listen"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(open_fds(), before);
    Running again(options(mine));  // not "another sluice-collector writes to"
    EXPECT_EQ(again.stop(), 0);
}

}  // namespace
}  // namespace sluice::collector
