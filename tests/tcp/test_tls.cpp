// TLS 1.3 under the TCP transport: a TcpSender and a TcpListener in one
// thread, with certificates made by the test (tls_testing.hpp). Each test
// says which TLS mode it ran in (kernel TLS or user space) and checks the
// counters agree; where the kernel has kernel TLS, both modes run.
#include <map>
#include <string>
#include <vector>

#include "tcp_testing.hpp"
#include "tls_testing.hpp"
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/session/clock.hpp"
#include "sluice/tcp/listener.hpp"
#include "sluice/tcp/tls.hpp"

namespace sluice::tcp {
namespace {

using session::CloseCause;
using ::testing::HasSubstr;

// What a listener hands up, recorded: every frame's records, and how each
// connection ended.
class Recorder final : public session::ReceiverHandler {
  public:
    void on_connection(session::ConnectionId, session::ReceiverTransport&,
                       std::string_view) override {
        ++connections;
    }
    session::HelloAnswer on_hello(session::ConnectionId, const session::Hello&) override {
        ++hellos;
        session::HelloAnswer a;
        a.accept = true;
        a.resume_sequence = next;
        a.new_session = hellos == 1;
        return a;
    }
    bool on_frame(session::ConnectionId, const wire::FrameView& f, session::Refusal&) override {
        if (f.info().sequence == next) {
            frames.push_back(records_of(f));
            ++next;
        }
        return true;
    }
    std::optional<uint64_t> on_batch_done(session::ConnectionId, session::Refusal&) override {
        return next;
    }
    void on_closed(session::ConnectionId, CloseCause cause, std::string_view why) override {
        ++closes[cause];
        log += std::string(why) + "\n";
    }
    void on_listener_error(std::string_view what) override { log += std::string(what) + "\n"; }

    static std::vector<std::byte> records_of(const wire::FrameView& f) {
        std::vector<std::byte> out;
        for (const auto& r : f) {
            const auto* ts = reinterpret_cast<const std::byte*>(&r.timestamp_ns);
            out.insert(out.end(), ts, ts + sizeof r.timestamp_ns);
            out.insert(out.end(), r.data.begin(), r.data.end());
        }
        return out;
    }

    int connections = 0, hellos = 0;
    uint64_t next = 0;
    std::vector<std::vector<std::byte>> frames;
    std::map<CloseCause, int> closes;
    std::string log;
};

std::vector<std::byte> records_of_sealed(const std::vector<std::byte>& frame) {
    wire::FrameReader reader;
    std::vector<std::byte> scratch(1 << 20);
    const auto v = reader.open(frame, scratch);
    EXPECT_TRUE(v.ok());
    return Recorder::records_of(*v);
}

// TlsCounters (the listener's) or TcpCounters (the sender's, which hold the same).
template <class Counters>
const char* mode_name(const Counters& c) {
    return c.tls_kernel_send.get() && c.tls_kernel_recv.get() ? "kernel TLS"
           : c.tls_kernel_send.get()                          ? "kernel TLS sending"
                                                              : "user space";
}

class TlsTest : public ::testing::TestWithParam<bool> {
  protected:
    testing::TlsFiles files;

    bool kernel() const { return GetParam(); }

    ListenerConfig listener_config(const std::string& cert = "server", bool client_ca = false) {
        ListenerConfig lc;
        lc.listen = {"127.0.0.1", 0};
        lc.max_frame_bytes = 1 << 20;
        if (!cert.empty()) {
            lc.tls.cert = files.cert(cert);
            lc.tls.key = files.key(cert);
        }
        if (client_ca) lc.tls.ca = files.cert("ca");
        lc.tls.names = {"--tls-ca", "--tls-cert", "--tls-key", ""};
        lc.tls.kernel = kernel();
        return lc;
    }
    SenderConfig sender_config(uint16_t port, const std::string& ca = "ca",
                               const std::string& client = "") {
        SenderConfig sc;
        sc.port = port;
        sc.stream_id = 3;
        sc.reconnect_min_ms = 5;
        sc.reconnect_max_ms = 20;
        sc.retransmit_frames = 8;
        if (!ca.empty()) sc.tls.ca = files.cert(ca);
        if (!client.empty()) {
            sc.tls.cert = files.cert(client);
            sc.tls.key = files.key(client);
        }
        sc.tls.kernel = kernel();
        return sc;
    }

    // Polls both ends (and the listener's timers) until `done` or `seconds`.
    template <class Done>
    static bool run(TcpSender& tx, TcpListener& l, Done done, double seconds = 10) {
        const uint64_t end = session::monotonic_ns() + static_cast<uint64_t>(seconds * 1e9);
        uint64_t next_timer = 0;
        void* d[64];
        while (session::monotonic_ns() < end) {
            if (done()) return true;
            const uint64_t now = session::monotonic_ns();
            tx.poll(now);
            l.poll(now);
            if (now >= next_timer) {
                l.timers(now);
                next_timer = now + 20'000'000;
            }
            tx.reclaim(d);
        }
        return done();
    }

    // The mode the counters say, checked against what the kernel offers.
    template <class Counters>
    void expect_mode(const Counters& c) {
        EXPECT_EQ(c.tls_handshakes.get(), 1u);
#ifdef SLUICE_TLS_REQUIRE_KERNEL
        // tests/rdma guest_tls: the testbed guest has kernel TLS.
        ASSERT_TRUE(testing::kernel_has_tls()) << "this kernel refuses TCP_ULP \"tls\"";
#endif
        const bool expect_kernel = kernel() && testing::kernel_has_tls();
        std::printf(
            "[ TLS mode ] %s (kernel TLS %s, %s)\n", mode_name(c),
            testing::kernel_has_tls() ? "offered by the kernel" : "not offered: modprobe tls",
            kernel() ? "allowed" : "turned off");
        if (expect_kernel) {
            EXPECT_EQ(c.tls_kernel_send.get(), 1u);
        } else {
            EXPECT_EQ(c.tls_kernel_send.get() + c.tls_kernel_recv.get(), 0u);
            EXPECT_EQ(c.tls_user_space.get(), 1u);
        }
    }
};

TEST_P(TlsTest, StreamsFramesExactly) {
    Recorder rec;
    TcpListener l(listener_config(), rec);
    TcpSender tx(sender_config(l.port()));  // host 127.0.0.1: verified against the IP name
    std::vector<std::vector<std::byte>> frames;
    for (uint64_t i = 0; i < 120; ++i)  // from 100 bytes to ~270 KB: records split, frames span
        frames.push_back(testing::make_frame(3, i, 1 + (i * 37) % 180, 60 + (i * 97) % 1400));
    std::size_t next = 0;
    ASSERT_TRUE(run(tx, l,
                    [&] {
                        while (next < frames.size() &&
                               tx.submit(frames[next], next, &frames[next]) ==
                                   SubmitResult::Accepted)
                            ++next;
                        return next == frames.size() && tx.all_acknowledged();
                    }))
        << tx.stats().last_error.get() << "\n"
        << rec.log;
    ASSERT_EQ(rec.frames.size(), frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i)
        ASSERT_EQ(rec.frames[i], records_of_sealed(frames[i])) << "frame " << i;
    EXPECT_EQ(tx.stats().connects.get(), 1u);
    EXPECT_EQ(tx.tcp_stats().tls_failures.get(), 0u);
    expect_mode(l.tls_stats());
    expect_mode(tx.tcp_stats());
    tx.close();
}

TEST_P(TlsTest, ServerNameByDnsName) {
    Recorder rec;
    TcpListener l(listener_config(), rec);
    auto sc = sender_config(l.port());
    sc.tls.server_name = "collector.test";
    TcpSender tx(sc);
    const auto f = testing::make_frame(3, 0, 10);
    tx.submit(f, 0, nullptr);
    ASSERT_TRUE(run(tx, l, [&] { return tx.all_acknowledged(); })) << tx.stats().last_error.get();
    EXPECT_EQ(rec.frames.size(), 1u);
}

TEST_P(TlsTest, AWrongServerNameIsRefusedSayingWhatToSet) {
    Recorder rec;
    TcpListener l(listener_config(), rec);
    auto sc = sender_config(l.port());
    sc.tls.server_name = "wrong.test";
    TcpSender tx(sc);
    ASSERT_TRUE(run(tx, l, [&] { return tx.stats().connect_failures.get() >= 2; }));
    const std::string e = tx.stats().last_error.get();
    EXPECT_THAT(e, HasSubstr("TLS with collector 127.0.0.1:"));
    EXPECT_THAT(e, HasSubstr("not for the name"));
    EXPECT_THAT(e, HasSubstr("DNS:collector.test, IP:127.0.0.1"));
    EXPECT_THAT(e, HasSubstr("egress.tls_server_name"));
    EXPECT_GE(tx.tcp_stats().tls_failures.get(), 2u);
    EXPECT_EQ(rec.hellos, 0);
    EXPECT_GE(rec.closes[CloseCause::Tls], 1);
}

TEST_P(TlsTest, AnUntrustedCollectorIsRefused) {
    Recorder rec;
    TcpListener l(listener_config("other-server"), rec);
    TcpSender tx(sender_config(l.port()));
    ASSERT_TRUE(run(tx, l, [&] { return tx.stats().connect_failures.get() >= 1; }));
    const std::string e = tx.stats().last_error.get();
    EXPECT_THAT(e, HasSubstr("not signed by the CA in egress.tls_ca"));
    EXPECT_THAT(e, HasSubstr("issued by CN=another CA"));
    EXPECT_EQ(rec.hellos, 0);
    // The collector learns it from the sender's alert.
    ASSERT_TRUE(run(tx, l, [&] { return rec.closes[CloseCause::Tls] >= 1; }));
    EXPECT_THAT(rec.log, HasSubstr("the sender does not trust this collector's certificate"));
    EXPECT_GE(l.tls_stats().tls_failures.get(), 1u);
}

TEST_P(TlsTest, ClientCertificatesRequiredWithTlsCa) {
    Recorder rec;
    TcpListener l(listener_config("server", true), rec);
    {
        TcpSender tx(sender_config(l.port()));  // no client certificate
        ASSERT_TRUE(run(tx, l, [&] { return tx.stats().connect_failures.get() >= 1; }));
        EXPECT_THAT(tx.stats().last_error.get(),
                    HasSubstr("requires a client certificate (it runs with --tls-ca): set "
                              "egress.tls_cert and egress.tls_key"));
        EXPECT_GE(tx.tcp_stats().tls_failures.get(), 1u);
        ASSERT_TRUE(run(tx, l, [&] { return rec.closes[CloseCause::Tls] >= 1; }));
        EXPECT_THAT(rec.log, HasSubstr("the sender presented no certificate and --tls-ca "
                                       "requires one"));
    }
    rec.closes.clear();
    {
        TcpSender tx(sender_config(l.port(), "ca", "other-client"));
        ASSERT_TRUE(run(tx, l, [&] { return rec.closes[CloseCause::Tls] >= 1; }));
        EXPECT_THAT(rec.log,
                    HasSubstr("the sender's certificate is not signed by the CA in --tls-ca"));
        ASSERT_TRUE(run(tx, l, [&] { return tx.stats().connect_failures.get() >= 1; }));
        EXPECT_THAT(tx.stats().last_error.get(),
                    HasSubstr("refused this sender's certificate (egress.tls_cert)"));
    }
    EXPECT_EQ(rec.hellos, 0);
    {
        TcpSender tx(sender_config(l.port(), "ca", "client"));
        const auto f = testing::make_frame(3, 0, 10);
        tx.submit(f, 0, nullptr);
        ASSERT_TRUE(run(tx, l, [&] { return tx.all_acknowledged(); }))
            << tx.stats().last_error.get();
        EXPECT_EQ(rec.hellos, 1);
    }
}

TEST_P(TlsTest, APlaintextSenderIsToldTheCollectorRequiresTls) {
    Recorder rec;
    auto lc = listener_config();
    lc.handshake_timeout_ms = 300;  // the TLS grace is at most this
    TcpListener l(lc, rec);
    TcpSender tx(sender_config(l.port(), ""));
    ASSERT_TRUE(run(tx, l, [&] { return tx.stats().rejected_by_collector.get() >= 1; }))
        << tx.stats().last_error.get();
    EXPECT_THAT(tx.stats().last_error.get(), HasSubstr("this collector requires TLS"));
    EXPECT_THAT(tx.stats().last_error.get(), HasSubstr("egress.tls_ca"));
    EXPECT_GE(rec.closes[CloseCause::Tls], 1);
    EXPECT_EQ(rec.hellos, 0);
}

TEST_P(TlsTest, ATlsSenderIsToldTheCollectorHasNoTls) {
    Recorder rec;
    TcpListener l(listener_config(""), rec);  // no TLS
    TcpSender tx(sender_config(l.port()));
    ASSERT_TRUE(run(tx, l, [&] {
        return tx.stats().connect_failures.get() >= 1 && rec.closes[CloseCause::Tls] >= 1;
    })) << tx.stats().last_error.get();
    EXPECT_THAT(tx.stats().last_error.get(),
                HasSubstr("the collector answered without TLS: start sluice-collector with "
                          "--tls-cert and --tls-key, or remove egress.tls_ca"));
    EXPECT_THAT(rec.log, HasSubstr("the sender speaks TLS and this collector does not"));
    EXPECT_EQ(rec.hellos, 0);
}

TEST_P(TlsTest, TheKeyProofStillRunsInsideTls) {
    Recorder rec;
    auto lc = listener_config();
    lc.keys =
        std::make_shared<const session::Keyring>(testing::key("a key of at least sixteen bytes"));
    TcpListener l(lc, rec);
    {
        TcpSender tx(sender_config(l.port()));  // TLS, but no key
        ASSERT_TRUE(run(tx, l, [&] { return tx.stats().rejected_by_collector.get() >= 1; }));
        EXPECT_THAT(tx.stats().last_error.get(), HasSubstr("requires a key"));
        EXPECT_EQ(tx.tcp_stats().tls_handshakes.get(), tx.stats().connect_failures.get());
        EXPECT_GE(rec.closes[CloseCause::Auth], 1);
    }
    {
        auto sc = sender_config(l.port());
        sc.key = testing::key("a key of at least sixteen bytes");
        TcpSender tx(sc);
        const auto f = testing::make_frame(3, 0, 10);
        tx.submit(f, 0, nullptr);
        ASSERT_TRUE(run(tx, l, [&] { return tx.all_acknowledged(); }))
            << tx.stats().last_error.get();
        EXPECT_EQ(rec.hellos, 1);
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, TlsTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                             return p.param ? std::string("KernelTlsAllowed")
                                            : std::string("UserSpace");
                         });

// ---- the files: every mistake named, with its file and the fix ------------------

class TlsFilesTest : public ::testing::Test {
  protected:
    testing::TlsFiles files;
    Recorder rec;

    std::string listener_error(const std::string& cert, const std::string& key,
                               const std::string& ca = "") {
        ListenerConfig lc;
        lc.listen = {"127.0.0.1", 0};
        lc.tls = {ca, cert, key, "", true, {"--tls-ca", "--tls-cert", "--tls-key", ""}};
        try {
            TcpListener l(lc, rec);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "(accepted)";
    }
    std::string sender_error(const std::string& ca, const std::string& cert = "",
                             const std::string& key = "") {
        SenderConfig sc;
        sc.tls.ca = ca;
        sc.tls.cert = cert;
        sc.tls.key = key;
        try {
            TcpSender tx(sc);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "(accepted)";
    }
};

TEST_F(TlsFilesTest, UnreadableMissingOrNotPem) {
    const std::string missing = files.path("missing.pem");
    EXPECT_EQ(listener_error(missing, files.key("server")),
              "--tls-cert " + missing +
                  ": cannot read it (No such file or directory): check the path and its "
                  "permissions");
    EXPECT_THAT(listener_error(files.path("garbage.pem"), files.key("server")),
                HasSubstr("--tls-cert " + files.path("garbage.pem") + ": no PEM certificate"));
    EXPECT_THAT(listener_error(files.cert("server"), files.path("garbage.pem")),
                HasSubstr("--tls-key " + files.path("garbage.pem") + ": no PEM private key"));
    EXPECT_THAT(sender_error(files.path("garbage.pem")),
                HasSubstr("egress.tls_ca " + files.path("garbage.pem") + ": no PEM certificate"));
}

TEST_F(TlsFilesTest, AKeyThatDoesNotMatchOrIsEncrypted) {
    EXPECT_EQ(listener_error(files.cert("server"), files.key("client")),
              "--tls-key " + files.key("client") +
                  " does not match the certificate in --tls-cert " + files.cert("server") +
                  ": give the key that certificate was issued for");
    EXPECT_THAT(listener_error(files.cert("server"), files.path("encrypted.key")),
                HasSubstr("the key is encrypted and sluice asks for no passphrase"));
    EXPECT_THAT(sender_error(files.cert("ca"), files.cert("client"), files.key("server")),
                HasSubstr("egress.tls_key " + files.key("server") + " does not match"));
}

TEST_F(TlsFilesTest, ExpiredCertificates) {
    EXPECT_THAT(listener_error(files.cert("expired"), files.key("expired")),
                HasSubstr("--tls-cert " + files.cert("expired") + ": the certificate expired on "));
    EXPECT_THAT(listener_error(files.cert("expired"), files.key("expired")), HasSubstr("renew it"));
    EXPECT_THAT(
        sender_error(files.cert("ca"), files.cert("expired"), files.key("expired")),
        HasSubstr("egress.tls_cert " + files.cert("expired") + ": the certificate expired"));
    EXPECT_THAT(sender_error(files.cert("expired")),
                HasSubstr("egress.tls_ca " + files.cert("expired") +
                          ": the CA certificate CN=collector.test expired"));
}

TEST_F(TlsFilesTest, SettingsThatNeedOthers) {
    EXPECT_THAT(listener_error(files.cert("server"), ""), HasSubstr("--tls-cert needs --tls-key"));
    EXPECT_THAT(listener_error("", "", files.cert("ca")),
                HasSubstr("--tls-ca needs --tls-cert and --tls-key"));
    EXPECT_THAT(sender_error("", files.cert("client"), files.key("client")),
                HasSubstr("egress.tls_cert needs egress.tls_ca"));
    SenderConfig sc;
    sc.tls.ca = files.cert("ca");
    sc.zerocopy = true;
    EXPECT_THROW(TcpSender{sc}, std::invalid_argument);
    EXPECT_EQ(listener_error(files.cert("server"), files.key("server"), files.cert("ca")),
              "(accepted)");
}

}  // namespace
}  // namespace sluice::tcp
