// The whole product over RDMA in the testbed guest: a pcap -> sluice
// (net_pcap, no huge pages) -> RDMA (rxe1 -> rxe0) -> sluice-collector
// --listen rdma:// -> pcapng, compared packet by packet with the input.
#include "testbed_testing.hpp"
#include <pcap/pcap.h>

namespace sluice::rdma {
namespace {

struct PcapRecord {
    uint64_t ts_ns;
    uint32_t orig_len;
    std::vector<std::byte> data;
};

std::vector<PcapRecord> read_pcap(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    EXPECT_NE(p, nullptr) << err;
    std::vector<PcapRecord> v;
    if (!p) return v;
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        PcapRecord r;
        r.ts_ns = uint64_t(h->ts.tv_sec) * 1'000'000'000u + uint64_t(h->ts.tv_usec) * 1000u;
        // net_pcap delivers what was captured: that is the packet's length.
        r.orig_len = h->caplen;
        r.data.assign(reinterpret_cast<const std::byte*>(d),
                      reinterpret_cast<const std::byte*>(d) + h->caplen);
        v.push_back(std::move(r));
    }
    pcap_close(p);
    return v;
}

void end_to_end(const std::string& codec, uint16_t port, const std::string& pcapgen_args) {
    TempDir d;
    write_key(d);
    const std::string build = env_or("SLUICE_BUILD_ROOT", "build");
    const std::string pcap = d.str() + "/in.pcap";
    std::vector<std::string> gen = {build + "/tools/sluice-pcapgen", "--out", pcap};
    std::istringstream more(pcapgen_args);
    for (std::string w; more >> w;)
        gen.push_back(w);
    ASSERT_EQ(run_program(gen, d.str() + "/pcapgen.log"), 0) << slurp(d.str() + "/pcapgen.log");

    CollectorProcess col(d, port);
    const std::string cfg = d.str() + "/sluice.toml";
    std::ofstream(cfg) << fmt::format(R"([[ports]]
name = "net_pcap0,rx_pcap={}"
mtu = 9000
timestamps = "hardware"
[lcores]
rx = [1]
[mempool]
mbufs = 4095
mbuf_size = 9154
frame_buffers = 32
[capture]
overflow = "backpressure"
[codec]
type = "{}"
[egress]
type = "rdma"
address = "{}:{}"
rdma_source = "{}"
key_file = "{}/key"
retransmit_frames = 16
reconnect_min_ms = 50
reconnect_max_ms = 400
[stats]
interval_s = 0
summary_json = "{}/sluice.json"
)",
                                      pcap, codec, env_or("RXE0_IP", "10.10.0.1"), port,
                                      env_or("RXE1_IP", "10.10.0.2"), d.str(), d.str());
    const std::string log = d.str() + "/sluice.log";
    const int rc = run_program({build + "/dataplane/sluice", "-l", "0,1", "-n", "1", "--no-huge",
                                "-m", "256", "--no-pci", "--no-shconf", "--log-level",
                                "lib.eal:notice", "--", "--config", cfg, "--idle-timeout", "10"},
                               log);
    ASSERT_EQ(rc, 0) << slurp(log);
    EXPECT_NE(slurp(log).find("stream 1: connected"), std::string::npos) << slurp(log);
    EXPECT_EQ(col.stop(), 0);

    const auto want = read_pcap(pcap);
    const auto got = read_stream(d.path() / "out", 1);
    ASSERT_GT(want.size(), 0u);
    ASSERT_EQ(got.size(), want.size()) << slurp(log) << col.log();
    for (std::size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i].data, want[i].data) << "packet " << i;
        ASSERT_EQ(got[i].ts_ns, want[i].ts_ns) << "packet " << i;
        ASSERT_EQ(got[i].orig_len, want[i].orig_len) << "packet " << i;
        ASSERT_EQ(got[i].port, 0);
        ASSERT_EQ(got[i].queue, 0);
    }
    const std::string summary = slurp(d.str() + "/sluice.json");
    EXPECT_NE(summary.find("\"dropped\": 0"), std::string::npos) << summary;
    EXPECT_EQ(json_number(col.summary(), "packets_lost"), 0u);
    EXPECT_EQ(json_number(col.summary(), "frames_duplicate"), 0u);
}

TEST(RdmaEndToEnd, PcapInEqualsPcapngOut) {
    REQUIRE_TESTBED();
    end_to_end("none", 7801, "--packets 6000 --seed 31 --jumbo-percent 2 --ipv6-percent 20");
}

TEST(RdmaEndToEnd, PcapInEqualsPcapngOutWithLz4Frames) {
    REQUIRE_TESTBED();
    end_to_end("lz4", 7802, "--packets 6000 --seed 32");
}

}  // namespace
}  // namespace sluice::rdma
