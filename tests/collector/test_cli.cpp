// sluice-collector's command line: every option, every refusal and its words.
#include <fstream>

#include "../tcp/tls_testing.hpp"
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sluice/collector/cli.hpp"

namespace sluice::collector {
namespace {

CliResult parse(std::vector<std::string> a) {
    return parse_command_line(a);
}

TEST(Cli, DefaultsAndEveryOption) {
    auto r = parse({"--out", "/tmp/x"});
    ASSERT_TRUE(r.options);
    EXPECT_EQ(r.options->listen.host, "127.0.0.1");
    EXPECT_EQ(r.options->listen.port, 7700);
    EXPECT_EQ(r.options->stats_interval_s, 10u);
    EXPECT_TRUE(r.options->index);
    r = parse({"--out",
               "d",
               "--listen",
               "tcp://[::1]:9000",
               "--rotate-size",
               "64M",
               "--rotate-time",
               "60",
               "--keep",
               "5",
               "--compress",
               "zstd",
               "--zstd-level",
               "7",
               "--sync",
               "--no-index",
               "--stats-interval",
               "0",
               "--peer-timeout",
               "2000",
               "--max-frame-bytes",
               "1M",
               "--max-connections",
               "10",
               "--summary-json",
               "s.json"});
    ASSERT_TRUE(r.options) << r.message;
    const auto& o = *r.options;
    EXPECT_EQ(o.listen.host, "::1");
    EXPECT_EQ(o.listen.port, 9000);
    EXPECT_EQ(o.rotate_bytes, 64u << 20);
    EXPECT_EQ(o.rotate_seconds, 60u);
    EXPECT_EQ(o.keep_files, 5u);
    EXPECT_EQ(o.compression, Compression::Zstd);
    EXPECT_EQ(o.zstd_level, 7);
    EXPECT_TRUE(o.sync);
    EXPECT_FALSE(o.index);
    EXPECT_EQ(o.stats_interval_s, 0u);
    EXPECT_EQ(o.peer_timeout_ms, 2000u);
    EXPECT_EQ(o.max_frame_bytes, 1u << 20);
    EXPECT_EQ(o.max_connections, 10u);
    EXPECT_EQ(o.summary_json, "s.json");
}

TEST(Cli, FileLifecycleOptions) {
    auto r = parse({"--out", "d"});
    ASSERT_TRUE(r.options);
    EXPECT_EQ(r.options->file_template.text(), index::FileTemplate::kDefault);
    EXPECT_TRUE(r.options->on_rotate.empty());
    EXPECT_EQ(r.options->on_rotate_jobs, 4u);
    EXPECT_EQ(r.options->max_disk, 0u);
    EXPECT_EQ(r.options->max_age_s, 0u);
    EXPECT_EQ(r.options->min_free, 0u);
    r = parse({"--out", "d", "--file-template", "{stream}/%Y%m%d/cap-%H%M%S-{n}", "--on-rotate",
               "/usr/local/bin/ship  --to archive", "--on-rotate-jobs", "8", "--max-disk", "2T",
               "--max-age", "30d", "--min-free", "50G"});
    ASSERT_TRUE(r.options) << r.message;
    const auto& o = *r.options;
    EXPECT_EQ(o.file_template.text(), "{stream}/%Y%m%d/cap-%H%M%S-{n}");
    EXPECT_EQ(o.on_rotate, (std::vector<std::string>{"/usr/local/bin/ship", "--to", "archive"}));
    EXPECT_EQ(o.on_rotate_jobs, 8u);
    EXPECT_EQ(o.max_disk, 2ull << 40);
    EXPECT_EQ(o.max_age_s, 30u * 86400);
    EXPECT_EQ(o.min_free, 50ull << 30);
    EXPECT_TRUE(r.message.empty()) << r.message;

    struct Case {
        std::vector<std::string> args;
        const char* says;
    } cases[] = {
        {{"--out", "d", "--file-template", "capture-%H"}, "{stream} and {n} once each"},
        {{"--out", "d", "--file-template", "{stream}-{n}-%b"}, "%b is not a time field"},
        {{"--out", "d", "--on-rotate", "  "}, "--on-rotate needs a program"},
        {{"--out", "d", "--on-rotate-jobs", "0"}, "--on-rotate-jobs '0': give 1..256"},
        {{"--out", "d", "--max-disk", "0"}, "--max-disk '0': give a size"},
        {{"--out", "d", "--min-free", "lots"}, "--min-free 'lots': give a size"},
        {{"--out", "d", "--max-age", "forever"}, "--max-age 'forever': give a duration"},
        {{"--out", "d", "--max-age", "0"}, "--max-age '0'"},
    };
    for (const auto& c : cases) {
        const auto e = parse(c.args);
        EXPECT_FALSE(e.options) << c.says;
        EXPECT_EQ(e.exit_code, kExitUsage) << c.says;
        EXPECT_NE(e.message.find(c.says), std::string::npos) << e.message;
    }
    // Allowed, with a warning: a limit that one file can take whole.
    r = parse({"--out", "d", "--rotate-size", "1G", "--max-disk", "1G"});
    ASSERT_TRUE(r.options);
    EXPECT_NE(r.message.find("warning: --max-disk"), std::string::npos) << r.message;
}

TEST(Cli, Durations) {
    EXPECT_EQ(parse_duration("90"), 90u);
    EXPECT_EQ(parse_duration("90s"), 90u);
    EXPECT_EQ(parse_duration("15m"), 900u);
    EXPECT_EQ(parse_duration("12h"), 43200u);
    EXPECT_EQ(parse_duration("7d"), 604800u);
    EXPECT_EQ(parse_duration("2w"), 1209600u);
    EXPECT_FALSE(parse_duration(""));
    EXPECT_FALSE(parse_duration("d"));
    EXPECT_FALSE(parse_duration("0s"));
    EXPECT_FALSE(parse_duration("1y"));
    EXPECT_FALSE(parse_duration("99999999999999w"));
}

TEST(Cli, HelpAndVersionExitZero) {
    auto r = parse({"--help"});
    EXPECT_FALSE(r.options);
    EXPECT_EQ(r.exit_code, kExitOk);
    EXPECT_NE(r.message.find("--rotate-size"), std::string::npos);
    EXPECT_NE(r.message.find("Exit codes"), std::string::npos);
    r = parse({"--version"});
    EXPECT_EQ(r.exit_code, kExitOk);
    EXPECT_NE(r.message.find("sluice-collector "), std::string::npos);
}

// A collector group member (docs/scale-out.md) listens nowhere, so a
// non-loopback --listen default does not ask it for a key.
TEST(Cli, AGroupMemberReadsFromJetStream) {
    auto r = parse({"--out",
                    "d",
                    "--source",
                    "jetstream://127.0.0.1:4222,n2",
                    "--group",
                    "g-1",
                    "--jetstream-stream",
                    "CAP",
                    "--subject",
                    "cap.{stream_id}.frames",
                    "--lease-ms",
                    "1500",
                    "--fetch-frames",
                    "8",
                    "--reorder-frames",
                    "16",
                    "--nats-user",
                    "u",
                    "--nats-password-file",
                    "/p",
                    "--nats-tls"});
    ASSERT_TRUE(r.options) << r.message;
    const GroupOptions& g = r.options->group;
    EXPECT_EQ(g.servers, (std::vector<std::string>{"nats://127.0.0.1:4222", "nats://n2:4222"}));
    EXPECT_EQ(g.group, "g-1");
    EXPECT_EQ(g.stream, "CAP");
    EXPECT_EQ(g.subject, "cap.{stream_id}.frames");
    EXPECT_EQ(g.lease_ms, 1500u);
    EXPECT_EQ(g.fetch_frames, 8u);
    EXPECT_EQ(g.reorder_frames, 16u);
    EXPECT_EQ(g.user, "u");
    EXPECT_EQ(g.password_file, "/p");
    EXPECT_TRUE(g.tls);
}

TEST(Cli, MistakesAreNamed) {
    struct Case {
        std::vector<std::string> args;
        const char* says;
    } cases[] = {
        {{}, "--out DIR is required"},
        {{"--out", "d", "--frobnicate", "1"}, "unknown option '--frobnicate'"},
        {{"--out", "d", "--rotate-size"}, "--rotate-size needs a value"},
        {{"--out", "d", "--rotate-size", "12Q"}, "--rotate-size '12Q'"},
        {{"--out", "d", "--rotate-size", "100"}, ">= 4096"},
        {{"--out", "d", "--compress", "gzip"}, "the choices are zstd and none"},
        {{"--out", "d", "--listen", "127.0.0.1"}, "no port"},
        {{"--out", "d", "--listen", "udp://1.2.3.4:5"}, "unknown scheme 'udp://'"},
        {{"--out", "d", "--listen", "tcp://0.0.0.0:7700"}, "needs --key-file"},
        {{"--out", "d", "--zstd-level", "30"}, "--zstd-level '30'"},
        {{"--out", "d", "stray"}, "unexpected argument 'stray'"},
        {{"--out", "d", "--source", "nats://a:1", "--group", "g"}, "write jetstream://HOST:PORT"},
        {{"--out", "d", "--source", "jetstream://a:1"}, "--source needs --group NAME"},
        {{"--out", "d", "--group", "g"}, "--group needs --source"},
        {{"--out", "d", "--source", "jetstream://a:1", "--group", "g.h"}, "--group 'g.h'"},
        {{"--out", "d", "--source", "jetstream://a:1,,b:2", "--group", "g"}, "empty server"},
        {{"--out", "d", "--source", "jetstream://a:1", "--group", "g", "--listen",
          "tcp://127.0.0.1:1"},
         "exclude each other"},
        {{"--out", "d", "--source", "jetstream://a:1", "--group", "g", "--subject", "x.y"},
         "--subject 'x.y'"},
        {{"--out", "d", "--source", "jetstream://a:1", "--group", "g", "--nats-user", "u"},
         "go together"},
    };
    for (const auto& c : cases) {
        const auto r = parse(c.args);
        EXPECT_FALSE(r.options);
        EXPECT_EQ(r.exit_code, kExitUsage) << c.says;
        EXPECT_NE(r.message.find(c.says), std::string::npos) << r.message;
    }
}

TEST(Cli, KeyFilesAreReadAndNonLoopbackThenAllowed) {
    const std::string path = ::testing::TempDir() + "/cli.key";
    std::ofstream(path) << "0123456789abcdef0123456789abcdef\n";
    ::chmod(path.c_str(), 0644);
    auto r = parse({"--out", "d", "--key-file", path});
    EXPECT_EQ(r.exit_code, kExitRuntime) << "a key others can read is refused";
    EXPECT_NE(r.message.find("chmod 600"), std::string::npos) << r.message;
    ::chmod(path.c_str(), 0600);
    r = parse({"--out", "d", "--listen", "tcp://0.0.0.0:7700", "--key-file", path});
    ASSERT_TRUE(r.options) << r.message;
    ASSERT_TRUE(r.options->has_keys());
    ASSERT_EQ(r.options->keys->size(), 1u);
    EXPECT_FALSE(r.options->keys->named());
    EXPECT_EQ(r.options->keys->keys()[0].secret.size(), 32u);
    r = parse({"--out", "d", "--key-file", path + ".missing"});
    EXPECT_EQ(r.exit_code, kExitRuntime);
    EXPECT_NE(r.message.find("cannot read key file"), std::string::npos);
    std::remove(path.c_str());
}

TEST(Cli, TheHttpListener) {
    const std::string token = ::testing::TempDir() + "/cli.token";
    std::ofstream(token) << "tok-0123456789abcdef\n";
    ::chmod(token.c_str(), 0600);
    auto r = parse({"--out", "d", "--metrics", "127.0.0.1:9471", "--http-token-file", token,
                    "--http-max-queries", "2", "--http-timeout", "500"});
    ASSERT_TRUE(r.options) << r.message;
    ASSERT_TRUE(r.options->metrics);
    EXPECT_EQ(r.options->metrics->port, 9471);
    EXPECT_EQ(r.options->http_token.size(), 20u);
    EXPECT_EQ(r.options->http_max_queries, 2u);
    EXPECT_EQ(r.options->http_timeout_ms, 500u);
    EXPECT_FALSE(parse({"--out", "d"}).options->metrics);
    r = parse({"--out", "d", "--metrics", "[::1]:9471", "--http-tls-cert", "c", "--http-tls-key",
               "k", "--http-tls-ca", "a"});
    ASSERT_TRUE(r.options) << r.message;
    EXPECT_EQ(r.options->http_tls_ca, "a");

    struct Case {
        std::vector<std::string> args;
        const char* says;
    } cases[] = {
        {{"--out", "d", "--metrics", "9471"}, "--metrics '9471': give ADDR:PORT"},
        {{"--out", "d", "--metrics", "rdma://1.2.3.4:5"}, "--metrics 'rdma://1.2.3.4:5'"},
        {{"--out", "d", "--http-token-file", token}, "give --metrics ADDR:PORT too"},
        {{"--out", "d", "--metrics", "127.0.0.1:1", "--http-tls-key", "k"}, "together"},
        {{"--out", "d", "--metrics", "127.0.0.1:1", "--http-tls-ca", "a"}, "--http-tls-ca needs"},
        {{"--out", "d", "--metrics", "127.0.0.1:1", "--http-timeout", "5"}, "--http-timeout '5'"},
    };
    for (const auto& c : cases) {
        const auto q = parse(c.args);
        EXPECT_FALSE(q.options);
        EXPECT_EQ(q.exit_code, kExitUsage) << c.says;
        EXPECT_NE(q.message.find(c.says), std::string::npos) << q.message;
    }
    std::ofstream(token) << "has a space in it\n";
    r = parse({"--out", "d", "--metrics", "127.0.0.1:1", "--http-token-file", token});
    EXPECT_EQ(r.exit_code, kExitUsage);
    EXPECT_NE(r.message.find("printable ASCII"), std::string::npos) << r.message;
    ::chmod(token.c_str(), 0640);
    r = parse({"--out", "d", "--metrics", "127.0.0.1:1", "--http-token-file", token});
    EXPECT_EQ(r.exit_code, kExitRuntime);
    EXPECT_NE(r.message.find("token file"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("chmod 600"), std::string::npos) << r.message;
    std::remove(token.c_str());
}

TEST(Cli, RdmaListenAndRing) {
    const std::string path = ::testing::TempDir() + "/cli-rdma.key";
    std::ofstream(path) << "0123456789abcdef0123456789abcdef\n";
    ::chmod(path.c_str(), 0600);
    auto r = parse({"--out", "d", "--listen", "rdma://10.10.0.1:7701", "--key-file", path,
                    "--rdma-slot-bytes", "512K", "--rdma-slots", "16"});
    ASSERT_TRUE(r.options) << r.message;
    EXPECT_EQ(r.options->listen.transport, session::Transport::Rdma);
    EXPECT_EQ(r.options->listen.host, "10.10.0.1");
    EXPECT_EQ(r.options->listen.port, 7701);
    EXPECT_EQ(r.options->rdma_slot_bytes, 512u * 1024);
    EXPECT_EQ(r.options->rdma_slots, 16u);
    r = parse({"--out", "d", "--listen", "tcp://127.0.0.1:7701"});
    ASSERT_TRUE(r.options) << r.message;
    EXPECT_EQ(r.options->listen.transport, session::Transport::Tcp);
    // As for TCP, a non-loopback address needs a key.
    r = parse({"--out", "d", "--listen", "rdma://10.10.0.1:7701"});
    EXPECT_EQ(r.exit_code, kExitUsage);
    EXPECT_NE(r.message.find("needs --key-file"), std::string::npos) << r.message;
    r = parse({"--out", "d", "--rdma-slots", "0"});
    EXPECT_EQ(r.exit_code, kExitUsage);
    EXPECT_NE(r.message.find("--rdma-slots"), std::string::npos) << r.message;
    r = parse({"--out", "d", "--rdma-slots", "65537"});
    EXPECT_EQ(r.exit_code, kExitUsage);
    r = parse({"--out", "d", "--rdma-slot-bytes", "1000"});
    EXPECT_EQ(r.exit_code, kExitUsage);
    EXPECT_NE(r.message.find("--rdma-slot-bytes"), std::string::npos) << r.message;
    std::remove(path.c_str());
}

TEST(Cli, TlsOptions) {
    tcp::testing::TlsFiles f;
    auto r = parse({"--out", "d", "--tls-cert", f.cert("server"), "--tls-key", f.key("server")});
    ASSERT_TRUE(r.options) << r.message;
    EXPECT_EQ(r.options->tls.cert, f.cert("server"));
    EXPECT_EQ(r.options->tls.key, f.key("server"));
    EXPECT_TRUE(r.options->tls.ca.empty());
    // Off loopback, TLS alone still needs a key: it encrypts, it does not
    // say who may send. Client certificates do.
    r = parse({"--out", "d", "--listen", "tcp://0.0.0.0:7700", "--tls-cert", f.cert("server"),
               "--tls-key", f.key("server")});
    EXPECT_EQ(r.exit_code, kExitUsage);
    EXPECT_NE(r.message.find("needs --key-file or --tls-ca"), std::string::npos) << r.message;
    r = parse({"--out", "d", "--listen", "tcp://0.0.0.0:7700", "--tls-cert", f.cert("server"),
               "--tls-key", f.key("server"), "--tls-ca", f.cert("ca")});
    ASSERT_TRUE(r.options) << r.message;
    EXPECT_EQ(r.options->tls.ca, f.cert("ca"));
    EXPECT_FALSE(r.options->has_keys());
}

TEST(Cli, TlsFilesThatCannotServeExitTwoNamingTheFile) {
    tcp::testing::TlsFiles f;
    struct Case {
        std::vector<std::string> args;
        std::string says;
    } cases[] = {
        {{"--tls-cert", f.cert("server")}, "--tls-cert needs --tls-key"},
        {{"--tls-key", f.key("server")}, "--tls-key needs --tls-cert"},
        {{"--tls-ca", f.cert("ca")}, "--tls-ca needs --tls-cert and --tls-key"},
        {{"--tls-cert", f.path("none.pem"), "--tls-key", f.key("server")},
         "--tls-cert " + f.path("none.pem") + ": cannot read it"},
        {{"--tls-cert", f.cert("server"), "--tls-key", f.key("client")},
         "--tls-key " + f.key("client") + " does not match the certificate in --tls-cert " +
             f.cert("server")},
        {{"--tls-cert", f.cert("expired"), "--tls-key", f.key("expired")},
         "--tls-cert " + f.cert("expired") + ": the certificate expired on "},
        {{"--tls-cert", f.cert("server"), "--tls-key", f.key("server"), "--tls-ca",
          f.path("garbage.pem")},
         "--tls-ca " + f.path("garbage.pem") + ": no PEM certificate"},
        {{"--listen", "rdma://10.0.0.1:7701", "--tls-cert", f.cert("server"), "--tls-key",
          f.key("server")},
         "--tls-cert is for tcp:// only: RDMA has no encryption"},
    };
    for (auto& c : cases) {
        c.args.insert(c.args.begin(), {"--out", "d"});
        const auto r = parse(c.args);
        EXPECT_FALSE(r.options) << c.says;
        EXPECT_EQ(r.exit_code, kExitUsage) << c.says;
        EXPECT_NE(r.message.find(c.says), std::string::npos) << r.message;
        EXPECT_EQ(r.message.find('\n'), r.message.size() - 1) << "one line: " << r.message;
    }
}

TEST(Cli, Sizes) {
    EXPECT_EQ(parse_size("4096"), 4096u);
    EXPECT_EQ(parse_size("8k"), 8192u);
    EXPECT_EQ(parse_size("2G"), 2ull << 30);
    EXPECT_EQ(parse_size("3T"), 3ull << 40);
    EXPECT_FALSE(parse_size(""));
    EXPECT_FALSE(parse_size("M"));
    EXPECT_FALSE(parse_size("-1"));
    EXPECT_FALSE(parse_size("99999999999999999999G"));
}

}  // namespace
}  // namespace sluice::collector
