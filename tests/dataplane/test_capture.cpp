// What the capture stage makes of field traffic, in-process on net_pcap
// replaying generated captures, checked record by record against the same
// traffic generated without tunnels or copies: capture.decap ("strip",
// "match"), truncated tunnel headers, [[capture.slice]], capture.dedup, the
// statistics frames, and hardware timestamps refused where the port has none.
#include <map>
#include <mutex>

#include "harness.hpp"
#include "recording_sink.hpp"
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include "sluice/tunnel/decap.hpp"
#include "sluice/wire/reader.hpp"

using namespace sluice;
using namespace sluice::dataplane;
using namespace sluice::testing;

namespace {

struct Packet {
    std::string data;
    uint32_t caplen = 0, orig_len = 0, flags = 0;
    bool has_tunnel = false;
    wire::TunnelMeta tunnel;
};
struct Entry {
    wire::InterfaceStatistics s;
    std::string description;
};
struct Captured {
    std::vector<Packet> packets;
    std::vector<std::vector<Entry>> statistics;  // per statistics frame, in order
    std::vector<bool> frame_is_statistics;       // per frame, in order
    Snapshot snapshot;
};

// sluice on a net_pcap port replaying `pcap` once (hardware timestamps: the
// pcap's), `extra` added to the [capture] table.
Captured capture(const std::string& pcap, const std::string& extra) {
    Captured r;
    static int n = 200;
    const auto cfg =
        parse("[[ports]]\nname = \"net_pcap" + std::to_string(n++) + ",rx_pcap=" + pcap +
              "\"\nmtu = 9000\ntimestamps = \"hardware\"\n[lcores]\nrx = [1]\n"
              "[codec]\ntype = \"lz4\"\n[batch]\nframe_size = 32768\n"
              "[mempool]\nmbufs = 4095\n[egress]\ntype = \"null\"\n"
              "[capture]\noverflow = \"backpressure\"\n" +
              extra + "\n");
    StartedPorts ports(cfg);
    EXPECT_EQ(ports.error, "");
    if (!ports.error.empty()) return r;
    std::vector<std::string> frames;
    std::mutex m;
    std::string error;
    auto pl = Pipeline::build(
        cfg, ports.ports,
        [&](uint32_t, uint64_t, std::string&) {
            return std::make_unique<RecordingSink>(&frames, &m);
        },
        error);
    EXPECT_TRUE(pl) << error;
    if (!pl) return r;
    EXPECT_TRUE(pl->launch(error)) << error;
    const std::size_t want = read_pcap(pcap).size();
    EXPECT_TRUE(wait_for([&] { return pl->received() >= want; }, 60));
    pl->drain_and_stop(30);
    EXPECT_TRUE(pl->all_drained());
    r.snapshot = pl->snapshot(0, ports.ports);
    wire::FrameReader reader;
    std::vector<std::byte> scratch(64 << 20);
    for (const auto& f : frames) {
        auto view = reader.open({reinterpret_cast<const std::byte*>(f.data()), f.size()}, scratch);
        EXPECT_TRUE(view.ok()) << wire::to_string(view.error());
        if (!view) continue;
        r.frame_is_statistics.push_back(view->is_statistics());
        if (view->is_statistics()) {
            r.statistics.emplace_back();
            for (const auto& e : view->statistics())
                r.statistics.back().push_back({e, std::string(e.description)});
        }
        for (const auto& rec : *view) {
            r.packets.push_back(
                {std::string(reinterpret_cast<const char*>(rec.data.data()), rec.data.size()),
                 rec.caplen, rec.orig_len, rec.flags, rec.has_tunnel, rec.tunnel});
        }
    }
    return r;
}

tunnel::Decap decap_of(const std::string& frame) {
    return tunnel::decapsulate(reinterpret_cast<const std::byte*>(frame.data()), frame.size());
}

unsigned be16(const std::string& d, std::size_t i) {
    return static_cast<uint8_t>(d[i]) << 8 | static_cast<uint8_t>(d[i + 1]);
}

// The IP datagram of a plain Ethernet frame (without Ethernet padding).
std::string ip_of(const std::string& frame) {
    const std::size_t len =
        (static_cast<uint8_t>(frame[14]) >> 4) == 6 ? 40 + be16(frame, 18) : be16(frame, 16);
    return frame.substr(14, len);
}

// libpcap's verdict on a plain Ethernet frame.
class Filter {
  public:
    explicit Filter(const std::string& expr) {
        pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
        EXPECT_EQ(pcap_compile(dead, &prog_, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN), 0) << expr;
        pcap_close(dead);
    }
    ~Filter() { pcap_freecode(&prog_); }
    bool operator()(const std::string& frame) const {
        pcap_pkthdr h{};
        h.caplen = h.len = static_cast<uint32_t>(frame.size());
        return pcap_offline_filter(&prog_, &h, reinterpret_cast<const u_char*>(frame.data())) != 0;
    }

  private:
    bpf_program prog_{};
};

const std::string kMix = "--packets 3000 --seed 41 --ipv6-percent 20 --jumbo-percent 2";

// "strip" writes each packet as it was before it was wrapped: the same
// Ethernet frame, or (GRE, MPLS, tags) the same IP datagram under the outer
// MACs. ERSPAN's session and timestamp travel with the record.
TEST(Decap, StripWritesTheInnerPacketOfEveryTunnel) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string pcap = make_pcap("strip", kMix + " --tunnel mix");
    const auto wrapped = read_pcap(pcap);
    const auto plain = read_pcap(make_pcap("strip-plain", kMix));
    ASSERT_EQ(wrapped.size(), 3000u);
    const Captured r = capture(pcap, "decap = \"strip\"");
    ASSERT_EQ(r.packets.size(), wrapped.size()) << summary_text(r.snapshot);
    std::map<uint16_t, uint64_t> layers;
    uint64_t erspan = 0;
    for (std::size_t i = 0; i < wrapped.size(); ++i) {
        const tunnel::Decap d = decap_of(wrapped[i].data);
        ASSERT_EQ(d.status, tunnel::Status::Peeled) << i;
        for (uint16_t l = 1; l < 1u << tunnel::layer::kCount; l <<= 1)
            layers[l] += (d.layers & l) != 0;
        const Packet& p = r.packets[i];
        EXPECT_TRUE(p.flags & wire::record_flag::kDecapsulated) << i;
        EXPECT_EQ(p.caplen, p.data.size()) << i;
        EXPECT_EQ(p.orig_len, p.data.size()) << i;
        if (d.inner_ethertype == 0) {
            EXPECT_EQ(p.data, plain[i].data) << i;
        } else {
            EXPECT_EQ(p.data.substr(0, 12), wrapped[i].data.substr(d.mac_offset, 12)) << i;
            EXPECT_EQ(be16(p.data, 12), be16(plain[i].data, 12)) << i;
            const std::string ip = ip_of(plain[i].data);
            EXPECT_EQ(p.data.substr(14, ip.size()), ip) << i;
        }
        EXPECT_EQ(p.has_tunnel, d.erspan.type != 0) << i;
        if (d.erspan.type != 0) {
            ++erspan;
            EXPECT_EQ(static_cast<int>(p.tunnel.kind), d.erspan.type) << i;
            EXPECT_EQ(p.tunnel.session, d.erspan.session) << i;
            if (d.erspan.type == 3) {
                EXPECT_EQ(p.tunnel.timestamp, d.erspan.timestamp) << i;
            }
        }
    }
    EXPECT_GT(erspan, 300u);
    const Snapshot& s = r.snapshot;
    EXPECT_EQ(s.total("queue", "decapsulated"), 3000u);
    EXPECT_EQ(s.total("queue", "decap_vlan"), layers[tunnel::layer::kVlan]);
    EXPECT_EQ(s.total("queue", "decap_mpls"), layers[tunnel::layer::kMpls]);
    EXPECT_EQ(s.total("queue", "decap_gre"), layers[tunnel::layer::kGre]);
    EXPECT_EQ(s.total("queue", "decap_erspan2"), layers[tunnel::layer::kErspan2]);
    EXPECT_EQ(s.total("queue", "decap_erspan3"), layers[tunnel::layer::kErspan3]);
    EXPECT_EQ(s.total("queue", "decap_vxlan"), layers[tunnel::layer::kVxlan]);
    EXPECT_EQ(s.total("queue", "decap_geneve"), layers[tunnel::layer::kGeneve]);
    for (const char* k : {"decap_vlan", "decap_mpls", "decap_gre", "decap_erspan2", "decap_erspan3",
                          "decap_vxlan", "decap_geneve"})
        EXPECT_GT(s.total("queue", k), 100u) << k;
    EXPECT_EQ(s.total("queue", "tunnel_truncated"), 0u);
    EXPECT_EQ(s.total("queue", "tunnel_malformed"), 0u);
    EXPECT_EQ(s.dropped(), 0u);
}

// A tunnel header cut by a snap length upstream: counted, and the packet
// written as it arrived; the others are stripped as usual.
TEST(Decap, TruncatedTunnelsAreCountedAndKeptAsTheyArrived) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string pcap =
        make_pcap("cut", kMix + " --tunnel mix --truncate-tunnel-percent 20 --seed 42");
    const auto wrapped = read_pcap(pcap);
    const Captured r = capture(pcap, "decap = \"strip\"");
    ASSERT_EQ(r.packets.size(), wrapped.size()) << summary_text(r.snapshot);
    uint64_t cut = 0, runts = 0;
    for (std::size_t i = 0; i < wrapped.size(); ++i) {
        const tunnel::Decap d = decap_of(wrapped[i].data);
        if (d.status == tunnel::Status::Peeled) {
            EXPECT_TRUE(r.packets[i].flags & wire::record_flag::kDecapsulated) << i;
            continue;
        }
        // Cut inside a tunnel header, or (a VLAN tag) before the EtherType
        // that would say there is one: kept as it arrived.
        if (d.status == tunnel::Status::Truncated) {
            ++cut;
        } else {
            ASSERT_EQ(d.status, tunnel::Status::Plain) << i;
            ASSERT_LT(wrapped[i].data.size(), 14u) << i;
            ++runts;
        }
        EXPECT_EQ(r.packets[i].data, wrapped[i].data) << i;
        EXPECT_FALSE(r.packets[i].flags & wire::record_flag::kDecapsulated) << i;
    }
    EXPECT_GT(cut, 300u);
    EXPECT_EQ(r.snapshot.total("queue", "tunnel_truncated"), cut);
    EXPECT_EQ(r.snapshot.total("queue", "decapsulated"), wrapped.size() - cut - runts);
}

// "match": the filter sees the inner packet, the packet is written whole.
// Without decap the same filter sees only tunnels and tags.
TEST(Decap, MatchFiltersOnTheInnerPacketAndWritesItWhole) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string pcap = make_pcap("match", kMix + " --tunnel mix --seed 43");
    const auto wrapped = read_pcap(pcap);
    const auto plain = read_pcap(make_pcap("match-plain", kMix + " --seed 43"));
    const Filter https("tcp port 443");
    std::vector<std::string> want;
    for (std::size_t i = 0; i < wrapped.size(); ++i) {
        if (https(plain[i].data)) want.push_back(wrapped[i].data);
    }
    ASSERT_GT(want.size(), 300u);
    const Captured r = capture(pcap, "decap = \"match\"\nfilter = \"tcp port 443\"");
    ASSERT_EQ(r.packets.size(), want.size()) << summary_text(r.snapshot);
    for (std::size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(r.packets[i].data, want[i]) << i;
        EXPECT_FALSE(r.packets[i].flags & wire::record_flag::kDecapsulated) << i;
    }
    EXPECT_EQ(r.snapshot.total("queue", "filtered"), wrapped.size() - want.size());

    const Captured outer = capture(pcap, "filter = \"tcp port 443\"");
    EXPECT_EQ(outer.packets.size(), 0u);

    // Nothing to match: every packet written whole, the tunnels counted.
    const Captured all = capture(pcap, "decap = \"match\"");
    ASSERT_EQ(all.packets.size(), wrapped.size());
    for (std::size_t i = 0; i < wrapped.size(); ++i)
        EXPECT_EQ(all.packets[i].data, wrapped[i].data) << i;
    EXPECT_EQ(all.snapshot.total("queue", "decapsulated"), wrapped.size());
}

// [[capture.slice]]: the first rule that matches sets the snap length, which
// may be above capture.snaplen; the original length is kept.
TEST(Slice, FirstMatchingRuleSetsTheSnapLength) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string pcap =
        make_pcap("slice", "--packets 3000 --seed 44 --jumbo-percent 3 --ipv6-percent 20");
    const auto in = read_pcap(pcap);
    const Captured r = capture(pcap,
                               "snaplen = 100\n"
                               "[[capture.slice]]\nfilter = \"tcp port 443\"\nsnaplen = 128\n"
                               "[[capture.slice]]\nfilter = \"tcp\"\nsnaplen = 64\n"
                               "[[capture.slice]]\nfilter = \"udp port 53\"\nsnaplen = 65535\n");
    ASSERT_EQ(r.packets.size(), in.size()) << summary_text(r.snapshot);
    const Filter https("tcp port 443"), tcp("tcp"), dns("udp port 53");
    uint64_t sliced = 0, truncated = 0, whole_dns = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const std::string& d = in[i].data;
        uint32_t snap = 100;
        if (https(d)) {
            snap = 128;
        } else if (tcp(d)) {
            snap = 64;
        } else if (dns(d)) {
            snap = 65535;
            whole_dns += d.size() > 100;
        }
        sliced += snap != 100;
        truncated += d.size() > snap;
        const std::size_t keep = std::min<std::size_t>(d.size(), snap);
        EXPECT_EQ(r.packets[i].caplen, keep) << i;
        EXPECT_EQ(r.packets[i].orig_len, d.size()) << i;
        EXPECT_EQ(r.packets[i].data, d.substr(0, keep)) << i;
    }
    EXPECT_GT(whole_dns, 20u) << "DNS messages longer than capture.snaplen were kept whole";
    EXPECT_EQ(r.snapshot.total("queue", "sliced"), sliced);
    EXPECT_EQ(r.snapshot.total("queue", "truncated"), truncated);
}

// capture.dedup: the copies a SPAN session delivers are dropped, also when
// they crossed a router once more (TTL one lower, checksum to match), and
// what is left is the traffic as generated without copies.
TEST(Dedup, CopiesAreDroppedAndTheRestIsTheTrafficWithoutThem) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string opts = "--packets 4000 --seed 45 --ipv6-percent 20";
    const auto plain = read_pcap(make_pcap("dedup-plain", opts));
    for (const char* extra : {"", " --duplicate-ttl-change"}) {
        const std::string pcap =
            make_pcap("dedup", opts + " --duplicate-percent 15 --duplicate-window 8" + extra);
        const auto in = read_pcap(pcap);
        ASSERT_EQ(in.size(), 4000u);
        const Captured r = capture(pcap,
                                   "dedup = true\ndedup_window_packets = 16\n"
                                   "dedup_window_us = 10000000");
        // About 15% of the records are copies.
        EXPECT_GT(r.packets.size(), 3300u) << extra;
        EXPECT_LT(r.packets.size(), 3700u) << extra;
        for (std::size_t i = 0; i < r.packets.size(); ++i)
            ASSERT_EQ(r.packets[i].data, plain[i].data) << extra << " " << i;
        EXPECT_EQ(r.snapshot.total("queue", "deduplicated"), in.size() - r.packets.size());
        // Off: every copy is written.
        const Captured off = capture(pcap, "");
        EXPECT_EQ(off.packets.size(), in.size()) << extra;
    }
}

// Copies wrapped again by the mirror session (another sequence number, IP id)
// are the same packet once stripped.
TEST(Dedup, CopiesInsideTunnelsAfterStripping) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string opts = "--packets 3000 --seed 46";
    const auto plain = read_pcap(make_pcap("dedup-erspan-plain", opts));
    const std::string pcap =
        make_pcap("dedup-erspan", opts + " --tunnel erspan3 --duplicate-percent 10");
    const auto in = read_pcap(pcap);
    const Captured r = capture(pcap, "decap = \"strip\"\ndedup = true\ndedup_window_us = 10000000");
    ASSERT_GT(in.size(), r.packets.size() + 200);
    for (std::size_t i = 0; i < r.packets.size(); ++i)
        ASSERT_EQ(r.packets[i].data, plain[i].data) << i;
    EXPECT_EQ(r.snapshot.total("queue", "deduplicated"), in.size() - r.packets.size());
}

// The stream starts with the interfaces' descriptions and ends with their
// final counters.
TEST(Statistics, FirstAndLastFramesDescribeAndCountTheInterfaces) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string pcap = make_pcap("stats", "--packets 2000 --seed 47");
    const Captured r = capture(pcap, "filter = \"tcp\"");
    ASSERT_FALSE(r.frame_is_statistics.empty());
    EXPECT_TRUE(r.frame_is_statistics.front());
    EXPECT_TRUE(r.frame_is_statistics.back());
    ASSERT_GE(r.statistics.size(), 2u);
    const auto& first = r.statistics.front();
    ASSERT_EQ(first.size(), 1u);
    EXPECT_THAT(first[0].description, ::testing::HasSubstr("(net_pcap)"));
    EXPECT_THAT(first[0].description, ::testing::HasSubstr("rx_pcap=" + pcap));
    const auto& last = r.statistics.back();
    ASSERT_EQ(last.size(), 1u);
    const wire::InterfaceStatistics& s = last[0].s;
    EXPECT_EQ(s.port, 0);
    EXPECT_EQ(s.queue, 0);
    EXPECT_EQ(s.received, 2000u);
    EXPECT_EQ(s.accepted, 2000u - r.snapshot.total("queue", "filtered"));
    EXPECT_EQ(s.delivered, r.packets.size());
    EXPECT_EQ(s.dropped, 0u);
    EXPECT_EQ(s.nic_dropped, 0u);
    EXPECT_GE(s.time_ns, s.start_ns);
}

TEST(Timestamps, HardwareOnAPortWithoutThemIsAnErrorNamingIt) {
    ASSERT_TRUE(init_eal_for_tests());
    const auto cfg = parse(
        "[[ports]]\nname = \"net_null77\"\ntimestamps = \"hardware\"\n[lcores]\nrx = [1]\n"
        "[mempool]\nmbufs = 4095\n[egress]\ntype = \"null\"\n");
    StartedPorts ports(cfg);
    EXPECT_THAT(ports.error, ::testing::HasSubstr("port 'net_null77' (net_null) offers no "
                                                  "hardware RX timestamps"));
    EXPECT_THAT(ports.error, ::testing::HasSubstr("timestamps = \"software\""));
}

}  // namespace
