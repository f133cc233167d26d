#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/config/config.hpp"

using namespace sluice::config;
using ::testing::HasSubstr;

namespace {

std::string source_root() {
    const char* r = std::getenv("SLUICE_SOURCE_ROOT");
    return r ? r : ".";
}

std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

constexpr const char* kMinimal = R"([[ports]]
name = "net_null0"
)";

LoadResult load(const std::string& text) {
    return load_string(text, "t.toml");
}

std::vector<std::string> messages(const LoadResult& r) {
    std::vector<std::string> v;
    for (const auto& d : r.diagnostics)
        v.push_back(d.str());
    return v;
}

}  // namespace

TEST(Config, MinimalFileTakesDefaults) {
    auto r = load(kMinimal);
    ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
    ASSERT_EQ(r.config.ports.size(), 1u);
    EXPECT_EQ(r.config.ports[0].name, "net_null0");
    EXPECT_EQ(r.config.ports[0].rx_queues, 1u);
    EXPECT_EQ(r.config.lcores.mode, Mode::RunToCompletion);
    EXPECT_EQ(r.config.batch.flush_timeout_us, 1000u);
    EXPECT_EQ(r.config.codec.type, CodecType::Lz4);
    EXPECT_EQ(r.config.egress.address, "127.0.0.1:7700");
}

TEST(Config, ShippedExampleLoadsAndRoundTrips) {
    auto r = load_file(source_root() + "/config/sluice.toml");
    ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
    const std::string printed = to_toml(r.config);
    auto again = load_string(printed, "printed.toml");
    ASSERT_TRUE(again.ok()) << printed << ::testing::PrintToString(messages(again));
    // The printed form of the reparsed config is identical but for its source line.
    auto body = [](const std::string& s) { return s.substr(s.find('\n')); };
    EXPECT_EQ(body(to_toml(again.config)), body(printed));
}

TEST(Config, PrintedConfigHasEveryKey) {
    auto r = load(kMinimal);
    const std::string printed = to_toml(r.config);
    for (const auto& k : schema()) {
        const std::string leaf = k.key.substr(k.key.rfind('.') + 1);
        EXPECT_THAT(printed, HasSubstr("\n" + leaf + " = ")) << k.key;
    }
}

TEST(Config, WrongType) {
    auto r = load(std::string(kMinimal) + "[batch]\nframe_size = \"big\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:4:14: error: batch.frame_size: expected an integer in 16384..16777216, "
              "found the string \"big\"");
}

TEST(Config, OutOfRange) {
    auto r = load(std::string(kMinimal) + "rx_queues = 65\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:3:13: error: ports[0].rx_queues: expected an integer in 1..64, found 65");
}

TEST(Config, PowerOfTwo) {
    auto r = load(std::string(kMinimal) + "[lcores]\nring_size = 1000\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:4:13: error: lcores.ring_size: expected a power of two in 64..65536, found "
              "1000");
}

TEST(Config, UnknownKeySuggestsTheClosest) {
    auto r = load(std::string(kMinimal) + "[batch]\nflush_timout_us = 500\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:4:1: error: batch.flush_timout_us: unknown key (did you mean "
              "'batch.flush_timeout_us'?)");
}

TEST(Config, UnknownKeyInTheWrongSection) {
    auto r = load(std::string(kMinimal) + "[codec]\nsnaplen = 128\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:4:1: error: codec.snaplen: unknown key (did you mean 'capture.snaplen'? it "
              "belongs in [capture])");
}

TEST(Config, UnknownSection) {
    auto r = load(std::string(kMinimal) + "[egres]\ntype = \"tcp\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:3:2: error: egres: unknown key (did you mean 'egress'?)");
}

TEST(Config, EnumSuggestsTheClosest) {
    auto r = load(std::string(kMinimal) + "[lcores]\nmode = \"pipelined\"\n");
    ASSERT_GE(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:4:8: error: lcores.mode: expected one of \"run-to-completion\", "
              "\"pipeline\", found \"pipelined\" (did you mean \"pipeline\"?)");
}

TEST(Config, MissingRequired) {
    auto r = load("[[ports]]\nrx_queues = 2\n[lcores]\nrx = [1, 2]\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:1:1: error: ports[0].name: missing: this key is required (PCI address or "
              "vdev string)");
}

TEST(Config, NoPortsAtAll) {
    auto r = load("[batch]\nframe_size = 65536\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("ports: no port configured"));
}

TEST(Config, BadVdevString) {
    auto r = load("[[ports]]\nname = \"pcap0,rx_pcap=/x\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:2:8: error: ports[0].name: expected a PCI address such as \"0000:3b:00.0\" "
              "or a vdev string such as \"net_pcap0,rx_pcap=/tmp/in.pcap\", found "
              "\"pcap0,rx_pcap=/x\" (a vdev name starts with net_, e.g. net_pcap0)");
}

TEST(Config, BadVdevArgument) {
    auto r = load("[[ports]]\nname = \"net_pcap0,rx_pcap\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("(argument 'rx_pcap' is not key=value)"));
}

TEST(Config, BadPciString) {
    auto r = load("[[ports]]\nname = \"0000:3b:00.9\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(),
                HasSubstr("t.toml:2:8: error: ports[0].name: expected a PCI address"));
}

TEST(Config, PortNames) {
    EXPECT_TRUE(is_pci_address("0000:3b:00.0"));
    EXPECT_TRUE(is_pci_address("3b:00.1"));
    EXPECT_FALSE(is_pci_address("0000:3b:00"));
    EXPECT_FALSE(is_pci_address("0000:3g:00.0"));
    EXPECT_TRUE(is_vdev_string("net_null0"));
    EXPECT_TRUE(is_vdev_string("net_pcap0,rx_pcap=/tmp/a.pcap,infinite_rx=1"));
    EXPECT_FALSE(is_vdev_string("net_"));
    EXPECT_FALSE(is_vdev_string("net_pcap0,,a=b"));
    EXPECT_EQ(device_name("net_pcap0,rx_pcap=x"), "net_pcap0");
    EXPECT_EQ(device_name("0000:3b:00.0"), "0000:3b:00.0");
}

TEST(Config, MalformedToml) {
    auto r = load("[[ports]]\nname = \"net_null0\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("t.toml:2:"));
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("error: malformed TOML: "));
}

TEST(Config, AllMistakesReportedInOneRun) {
    auto r = load(
        "[[ports]]\n"             // 1
        "name = \"net_null0\"\n"  // 2
        "mtu = 20\n"              // 3
        "[batch]\n"               // 4
        "frame_sise = 65536\n"    // 5
        "[codec]\n"               // 6
        "type = 4\n");            // 7
    ASSERT_EQ(r.error_count(), 3u) << ::testing::PrintToString(messages(r));
    EXPECT_EQ(r.diagnostics[0].where.line, 3u);
    EXPECT_EQ(r.diagnostics[1].where.line, 5u);
    EXPECT_EQ(r.diagnostics[2].where.line, 7u);
    EXPECT_EQ(r.diagnostics[2].str(),
              "t.toml:7:8: error: codec.type: expected one of \"none\", \"lz4\", \"zstd\", found "
              "the integer 4");
}

TEST(Config, PipelineNeedsCodecAndEgressLcores) {
    auto r = load(std::string(kMinimal) + "[lcores]\nmode = \"pipeline\"\nrx = [1]\n");
    ASSERT_EQ(r.error_count(), 2u) << ::testing::PrintToString(messages(r));
    EXPECT_THAT(r.diagnostics[0].str(),
                HasSubstr("lcores.codec: pipeline mode needs codec lcores"));
    EXPECT_THAT(r.diagnostics[1].str(),
                HasSubstr("lcores.egress: pipeline mode needs exactly one egress lcore"));
}

TEST(Config, RunToCompletionRejectsStageLcores) {
    auto r = load(std::string(kMinimal) + "[lcores]\nrx = [1]\ncodec = [2]\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:5:9: error: lcores.codec: only used in pipeline mode: remove it, or set "
              "lcores.mode = \"pipeline\"");
}

TEST(Config, LcoreWithTwoRoles) {
    auto r = load(std::string(kMinimal) +
                  "[lcores]\nmode = \"pipeline\"\nrx = [1]\ncodec = [1]\negress = [2]\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("lcore 1 is also an rx lcore"));
}

TEST(Config, MoreRxLcoresThanQueues) {
    auto r = load(std::string(kMinimal) + "[lcores]\nrx = [1, 2]\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("2 rx lcores but only 1 rx queues"));
}

TEST(Config, TooFewMbufs) {
    auto r = load(std::string(kMinimal) + "rx_descriptors = 4096\n[mempool]\nmbufs = 2047\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "t.toml:5:9: error: mempool.mbufs: expected at least 4512 (rx descriptors 4096 + "
              "per-lcore caches and bursts), found 2047: with fewer, queues cannot be filled and "
              "rx_nombuf grows");
}

TEST(Config, EgressAddress) {
    auto r = load(std::string(kMinimal) + "[egress]\naddress = \"collector\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(),
                HasSubstr("egress.address: expected [tcp://|rdma://]host:port"));
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("'collector': no port"));
    // The forms sluice-send and sluice-collector accept, with the same words.
    for (const char* ok : {"[2001:db8::1]:7700", "tcp://10.0.0.2:7700", "tcp://[::1]:9"}) {
        r = load(std::string(kMinimal) + "[egress]\naddress = \"" + ok + "\"\n");
        EXPECT_EQ(r.error_count(), 0u) << ok;
    }
    r = load(std::string(kMinimal) + "[egress]\naddress = \"2001:db8::1:7700\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("[ADDRESS]:PORT"));
    r = load(std::string(kMinimal) + "[egress]\naddress = \"rdma://10.0.0.2:7700\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(),
                HasSubstr("the address says rdma:// but egress.type is \"tcp\""));
}

TEST(Config, FileEgressNeedsAPath) {
    auto r = load(std::string(kMinimal) + "[egress]\ntype = \"file\"\n");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("egress.path: egress.type = \"file\" needs"));
}

TEST(Config, OverridesApplyOnTopOfTheFile) {
    std::vector<std::string> ov{"batch.frame_size=65536", "codec.type=zstd", "egress.type=null",
                                "capture.filter=tcp port 80"};
    auto r = load_string(kMinimal, "t.toml", ov);
    ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
    EXPECT_EQ(r.config.batch.frame_size, 65536u);
    EXPECT_EQ(r.config.codec.type, CodecType::Zstd);
    EXPECT_EQ(r.config.egress.type, EgressType::Null);
    EXPECT_EQ(r.config.capture.filter, "tcp port 80");
    std::vector<std::string> bad{"batch.frame_size=1"};
    auto r2 = load_string(kMinimal, "t.toml", bad);
    ASSERT_EQ(r2.error_count(), 1u);
    EXPECT_THAT(r2.diagnostics[0].str(), HasSubstr("batch.frame_size: expected an integer"));
}

TEST(Config, MissingFile) {
    auto r = load_file("/nonexistent/sluice.toml");
    ASSERT_EQ(r.error_count(), 1u);
    EXPECT_EQ(r.diagnostics[0].str(),
              "/nonexistent/sluice.toml: error: no such file (the example config is "
              "config/sluice.toml)");
}

TEST(Config, EditDistance) {
    EXPECT_EQ(edit_distance("", ""), 0u);
    EXPECT_EQ(edit_distance("abc", "abc"), 0u);
    EXPECT_EQ(edit_distance("frame_sise", "frame_size"), 1u);
    EXPECT_EQ(edit_distance("fiel", "feil"), 1u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

// The shipped example and the reference documentation must name every key.
TEST(Config, ExampleAndDocsCoverEveryKey) {
    const std::string example = read(source_root() + "/config/sluice.toml");
    const std::string docs = read(source_root() + "/docs/configuration.md");
    ASSERT_FALSE(example.empty());
    ASSERT_FALSE(docs.empty());
    for (const auto& k : schema()) {
        const std::string leaf = k.key.substr(k.key.rfind('.') + 1);
        EXPECT_THAT(example, HasSubstr(leaf + " = ")) << k.key << " missing in config/sluice.toml";
        EXPECT_THAT(docs, HasSubstr("`" + k.key + "`"))
            << k.key << " missing in docs/configuration.md";
    }
}

// docs/configuration.md embeds the generated key reference between markers;
// regenerate it with `build/dataplane/sluice --config-reference`.
TEST(Config, DocsKeyReferenceIsCurrent) {
    const std::string docs = read(source_root() + "/docs/configuration.md");
    const std::string begin =
        "<!-- BEGIN KEY REFERENCE (generated: sluice --config-reference) -->\n";
    const std::string end = "<!-- END KEY REFERENCE -->";
    const auto b = docs.find(begin);
    const auto e = docs.find(end);
    ASSERT_NE(b, std::string::npos);
    ASSERT_NE(e, std::string::npos);
    EXPECT_EQ(docs.substr(b + begin.size(), e - b - begin.size()), schema_markdown())
        << "docs/configuration.md is out of date: regenerate the key reference";
}

// egress.type = "jetstream" (docs/scale-out.md): the servers, the subject
// template and the stream name are checked before anything connects.
TEST(Config, JetStreamEgressIsChecked) {
    auto ok = load(std::string(kMinimal) +
                   "[egress]\ntype = \"jetstream\"\nurls = [\"n1:4222\", \"nats://n2\", "
                   "\"tls://[::1]:4443\"]\njetstream_replicas = 3\njetstream_discard = \"new\"\n");
    ASSERT_TRUE(ok.ok()) << ::testing::PrintToString(messages(ok));
    EXPECT_EQ(ok.config.egress.type, EgressType::JetStream);
    EXPECT_EQ(ok.config.egress.jetstream.urls.size(), 3u);
    EXPECT_EQ(ok.config.egress.jetstream.replicas, 3u);
    EXPECT_EQ(ok.config.egress.jetstream.discard, Discard::New);
    struct Case {
        const char* toml;
        const char* says;
    } cases[] = {
        {"type = \"jetstream\"\n", "needs egress.urls"},
        {"type = \"jetstream\"\nurls = [\"n1:99999\"]\n", "egress.urls: expected host:port"},
        {"type = \"jetstream\"\nurls = [\"n1\", 4]\n", "expected strings, found"},
        {"type = \"jetstream\"\nurls = [\"n1\"]\nsubject = \"sluice.frames\"\n",
         "with {stream_id} once"},
        {"type = \"jetstream\"\nurls = [\"n1\"]\nstream = \"a.b\"\n", "no spaces, dots"},
        {"type = \"jetstream\"\nurls = [\"n1\"]\nnats_user = \"u\"\n", "go together"},
        {"type = \"jetstream\"\nurls = [\"n1\"]\njetstream_replicas = 7\n",
         "egress.jetstream_replicas"},
    };
    for (const auto& c : cases) {
        const auto r = load(std::string(kMinimal) + "[egress]\n" + c.toml);
        EXPECT_FALSE(r.ok()) << c.toml;
        EXPECT_THAT(::testing::PrintToString(messages(r)), HasSubstr(c.says)) << c.toml;
    }
}

// RdmaSender needs room for two signal intervals in its send queue; say so
// before sluice touches a device.
TEST(Config, RdmaSignalIntervalMustFitTheQueueTwice) {
    auto r = load(std::string(kMinimal) +
                  "[egress]\ntype = \"rdma\"\nrdma_queue_depth = 32\nrdma_signal_interval = 17\n");
    ASSERT_EQ(r.error_count(), 1u) << ::testing::PrintToString(messages(r));
    EXPECT_THAT(r.diagnostics[0].str(), HasSubstr("egress.rdma_signal_interval: expected at most "
                                                  "rdma_queue_depth / 2 = 16"));
    EXPECT_TRUE(load(std::string(kMinimal) + "[egress]\ntype = \"rdma\"\nrdma_queue_depth = "
                                             "32\nrdma_signal_interval = 16\n")
                    .ok());
    // Only for RDMA: the keys mean nothing to TCP.
    EXPECT_TRUE(
        load(std::string(kMinimal) + "[egress]\nrdma_queue_depth = 32\nrdma_signal_interval = 17\n")
            .ok());
}

// TLS keys: what each needs, and only for TCP.
TEST(Config, TlsKeysAreCheckedAcrossFields) {
    auto errors = [](const std::string& egress) {
        const auto r = load(std::string(kMinimal) + "[egress]\n" + egress);
        std::string all;
        for (const auto& d : r.diagnostics)
            all += d.str() + "\n";
        return std::make_pair(r.error_count(), all);
    };
    EXPECT_EQ(errors("tls_ca = \"/etc/sluice/ca.pem\"\n").first, 0u);
    EXPECT_EQ(errors("tls_ca = \"ca.pem\"\ntls_cert = \"c.pem\"\ntls_key = \"c.key\"\n"
                     "tls_server_name = \"collector.example.net\"\nkey_file = \"k\"\n")
                  .first,
              0u);
    auto [n, text] = errors("tls_ca = \"ca.pem\"\ntls_cert = \"c.pem\"\n");
    EXPECT_EQ(n, 1u) << text;
    EXPECT_THAT(text, HasSubstr("egress.tls_key: egress.tls_cert needs egress.tls_key"));
    std::tie(n, text) = errors("tls_ca = \"ca.pem\"\ntls_key = \"c.key\"\n");
    EXPECT_THAT(text, HasSubstr("egress.tls_key needs egress.tls_cert"));
    std::tie(n, text) = errors("tls_cert = \"c.pem\"\ntls_key = \"c.key\"\n");
    EXPECT_EQ(n, 1u) << text;
    EXPECT_THAT(text, HasSubstr("egress.tls_cert needs egress.tls_ca: TLS is on only with the CA"));
    std::tie(n, text) = errors("tls_server_name = \"x\"\n");
    EXPECT_THAT(text, HasSubstr("egress.tls_server_name needs egress.tls_ca"));
    std::tie(n, text) = errors("tls_ca = \"ca.pem\"\nzerocopy = true\n");
    EXPECT_EQ(n, 1u) << text;
    EXPECT_THAT(text, HasSubstr("egress.zerocopy: MSG_ZEROCOPY does not combine with TLS"));
    std::tie(n, text) = errors("type = \"rdma\"\ntls_ca = \"ca.pem\"\n");
    EXPECT_EQ(n, 1u) << text;
    EXPECT_THAT(text, HasSubstr("egress.tls_ca: TLS is for egress.type = \"tcp\" only (RDMA has "
                                "no encryption: use it on trusted fabrics)"));
    std::tie(n, text) = errors("type = \"null\"\ntls_cert = \"c.pem\"\n");
    EXPECT_THAT(text, HasSubstr("egress.tls_cert: TLS is for egress.type = \"tcp\" only"));
}
