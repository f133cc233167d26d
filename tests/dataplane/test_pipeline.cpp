// The pipeline in-process, in both lcore modes, checked frame by frame. Runs
// in the ASan+UBSan and TSan builds too (the stages' rings, counters and
// drain handshakes cross lcores).
#include <algorithm>
#include <map>
#include <mutex>

#include "harness.hpp"
#include "recording_sink.hpp"
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/dataplane/soft_rss.hpp"
#include "sluice/wire/reader.hpp"

using namespace sluice;
using namespace sluice::dataplane;
using namespace sluice::testing;

namespace {

struct Decoded {
    std::vector<PcapRecord> packets;
    std::map<uint64_t, std::vector<uint64_t>> sequences;  // per stream
};

Decoded decode(const std::vector<std::string>& frames) {
    Decoded d;
    wire::FrameReader reader;
    std::vector<std::byte> scratch(64 << 20);
    for (const auto& f : frames) {
        auto view = reader.open({reinterpret_cast<const std::byte*>(f.data()), f.size()}, scratch);
        EXPECT_TRUE(view.ok()) << wire::to_string(view.error());
        if (!view) continue;
        d.sequences[view->info().stream_id].push_back(view->info().sequence);
        for (const auto& r : *view) {
            d.packets.push_back(
                {r.timestamp_ns, r.caplen, r.orig_len,
                 std::string(reinterpret_cast<const char*>(r.data.data()), r.data.size())});
        }
    }
    return d;
}

struct Case {
    const char* name;
    const char* lcores;
    const char* codec;
};

class PipelineExact : public ::testing::TestWithParam<Case> {};

TEST_P(PipelineExact, EveryPacketOnceInOrderByteExact) {
    ASSERT_TRUE(init_eal_for_tests());
    static int run = 0;
    const std::string pcap =
        make_pcap("pl" + std::to_string(run), "--packets 3000 --seed 21 --jumbo-percent 3");
    ASSERT_FALSE(pcap.empty());
    const auto cfg =
        parse("[[ports]]\nname = \"net_pcap" + std::to_string(run++) + ",rx_pcap=" + pcap +
              "\"\nmtu = 9000\n[lcores]\n" + GetParam().lcores + "\n[codec]\ntype = \"" +
              GetParam().codec +
              "\"\nmin_size = 512\n[batch]\nframe_size = 32768\n[mempool]\nmbufs = 4095\n"
              "[capture]\noverflow = \"backpressure\"\n"
              "[egress]\ntype = \"null\"\n");
    StartedPorts ports(cfg);
    ASSERT_EQ(ports.error, "");
    std::vector<std::string> frames;
    std::mutex m;
    std::string error;
    auto pl = Pipeline::build(
        cfg, ports.ports,
        [&](uint32_t, uint64_t, std::string&) {
            return std::make_unique<RecordingSink>(&frames, &m);
        },
        error);
    ASSERT_TRUE(pl) << error;
    ASSERT_TRUE(pl->launch(error)) << error;
    const auto want = read_pcap(pcap);
    ASSERT_TRUE(wait_for([&] { return pl->received() >= want.size(); }, 60));
    pl->drain_and_stop(30);
    ASSERT_TRUE(pl->all_drained());

    const Decoded got = decode(frames);
    const Snapshot s = pl->snapshot(0, ports.ports);
    ASSERT_EQ(got.packets.size(), want.size()) << summary_text(s);
    for (std::size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got.packets[i].caplen, want[i].caplen) << i;
        ASSERT_EQ(got.packets[i].origlen, want[i].origlen) << i;
        ASSERT_EQ(got.packets[i].data, want[i].data) << i;
    }
    // One stream, sequences 1, 2, 3, ... without a gap.
    ASSERT_EQ(got.sequences.size(), 1u);
    const auto& seq = got.sequences.begin()->second;
    for (std::size_t i = 0; i < seq.size(); ++i)
        EXPECT_EQ(seq[i], i + 1);

    EXPECT_EQ(s.total("queue", "rx_packets"), want.size());
    EXPECT_EQ(s.total("queue", "captured"), want.size());
    EXPECT_EQ(s.total("egress", "packets"), want.size());
    EXPECT_EQ(s.total("egress", "frames"), frames.size());
    EXPECT_EQ(s.total("egress", "frames_done"), frames.size());
    EXPECT_EQ(s.dropped(), 0u);
    // Every frame buffer is back (those in lcore caches count as free).
    for (const FramePool* pool : pl->pools())
        EXPECT_EQ(pool->in_use(), 0u) << pool->name();
    std::remove(pcap.c_str());
}

// capture.verify_checksums: corrupted IPv4 headers, TCP segments and UDP
// datagrams are counted per kind and flagged in their records; every packet
// is delivered as it came. Jumbo packets arrive as mbuf chains.
TEST(VerifyChecksums, CountsFailuresFlagsRecordsKeepsPackets) {
    ASSERT_TRUE(init_eal_for_tests());
    const std::string source =
        make_pcap("ck-src", "--packets 3000 --seed 31 --jumbo-percent 3 --ipv6-percent 30");
    ASSERT_FALSE(source.empty());
    auto recs = read_pcap(source);
    ASSERT_EQ(recs.size(), 3000u);
    auto u8 = [](const std::string& d, std::size_t i) { return static_cast<uint8_t>(d[i]); };
    auto be16 = [&](const std::string& d, std::size_t i) { return u8(d, i) << 8 | u8(d, i + 1); };
    enum Bad { None, Ip, L4 };
    std::vector<Bad> bad(recs.size(), None);
    std::size_t ip_bad = 0, tcp_bad = 0, udp_bad = 0, jumbo_bad = 0;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        std::string& d = recs[i].data;
        if (d.size() < 54 || recs[i].caplen != recs[i].origlen) continue;
        const uint16_t type = be16(d, 12);
        const bool v4 = type == 0x0800, v6 = type == 0x86dd;
        if (!v4 && !v6) continue;
        const std::size_t l3 = 14;
        const std::size_t l4 = v4 ? l3 + (u8(d, l3) & 15) * 4 : l3 + 40;
        const uint8_t proto = v4 ? u8(d, l3 + 9) : u8(d, l3 + 6);
        const std::size_t end = v4 ? l3 + be16(d, l3 + 2) : l3 + 40 + be16(d, l3 + 4);
        const bool l4_checked = (proto == 6 || (proto == 17 && (v6 || be16(d, l4 + 6) != 0))) &&
                                end <= d.size() && end > l4;
        const bool jumbo = d.size() > 2000;
        if (v4 && i % 7 == 1 && !jumbo) {
            d[l3 + 8] = static_cast<char>(u8(d, l3 + 8) ^ 1);  // TTL: not in any L4 checksum
            bad[i] = Ip;
            ++ip_bad;
        } else if (l4_checked && (i % 7 == 3 || jumbo)) {
            d[end - 1] = static_cast<char>(u8(d, end - 1) ^ 0x40);  // the segment's last byte
            bad[i] = L4;
            ++(proto == 6 ? tcp_bad : udp_bad);
            jumbo_bad += jumbo;
        }
    }
    ASSERT_GT(ip_bad, 100u);
    ASSERT_GT(tcp_bad, 20u);
    ASSERT_GT(udp_bad, 20u);
    ASSERT_GT(jumbo_bad, 5u);
    const std::string pcap = "/tmp/ck-" + std::to_string(getpid()) + ".pcap";
    {
        std::ifstream in(source, std::ios::binary);
        char header[24];
        in.read(header, sizeof header);
        std::ofstream out(pcap, std::ios::binary);
        out.write(header, sizeof header);
        for (const auto& r : recs) {
            const uint32_t h[4] = {static_cast<uint32_t>(r.ts_ns / 1000000000u),
                                   static_cast<uint32_t>(r.ts_ns % 1000000000u / 1000u), r.caplen,
                                   r.origlen};
            out.write(reinterpret_cast<const char*>(h), sizeof h);
            out.write(r.data.data(), static_cast<std::streamsize>(r.data.size()));
        }
    }
    std::remove(source.c_str());

    const auto cfg = parse("[[ports]]\nname = \"net_pcap90,rx_pcap=" + pcap +
                           "\"\nmtu = 9000\n[lcores]\nrx = [1]\n[codec]\ntype = \"lz4\"\n"
                           "[batch]\nframe_size = 32768\n[mempool]\nmbufs = 4095\n"
                           "[capture]\noverflow = \"backpressure\"\nverify_checksums = true\n"
                           "[egress]\ntype = \"null\"\n");
    StartedPorts ports(cfg);
    ASSERT_EQ(ports.error, "");
    std::vector<std::string> frames;
    std::mutex m;
    std::string error;
    auto pl = Pipeline::build(
        cfg, ports.ports,
        [&](uint32_t, uint64_t, std::string&) {
            return std::make_unique<RecordingSink>(&frames, &m);
        },
        error);
    ASSERT_TRUE(pl) << error;
    ASSERT_TRUE(pl->launch(error)) << error;
    ASSERT_TRUE(wait_for([&] { return pl->received() >= recs.size(); }, 60));
    pl->drain_and_stop(30);

    const Snapshot s = pl->snapshot(0, ports.ports);
    EXPECT_EQ(s.total("queue", "ipv4_checksum_bad"), ip_bad);
    EXPECT_EQ(s.total("queue", "tcp_checksum_bad"), tcp_bad);
    EXPECT_EQ(s.total("queue", "udp_checksum_bad"), udp_bad);
    EXPECT_EQ(s.dropped(), 0u);
    wire::FrameReader reader;
    std::vector<std::byte> scratch(64 << 20);
    std::size_t i = 0;
    for (const auto& f : frames) {
        auto view = reader.open({reinterpret_cast<const std::byte*>(f.data()), f.size()}, scratch);
        ASSERT_TRUE(view.ok());
        for (const auto& r : *view) {
            ASSERT_LT(i, recs.size());
            ASSERT_EQ(std::string(reinterpret_cast<const char*>(r.data.data()), r.data.size()),
                      recs[i].data)
                << i;
            const uint32_t ip = r.flags & 3, l4 = (r.flags >> 2) & 3;
            if (bad[i] == Ip) {
                EXPECT_EQ(ip, 2u) << i;
            }
            if (bad[i] == L4) {
                EXPECT_EQ(l4, 2u) << i;
            }
            if (bad[i] == None) {
                EXPECT_NE(ip, 2u) << i;
                EXPECT_NE(l4, 2u) << i;
            }
            ++i;
        }
    }
    EXPECT_EQ(i, recs.size());
    std::remove(pcap.c_str());
}

// Frame buffers from a mempool::ObjectPool: one region (what RDMA
// registers), per-lcore caches, in_use() counting what is handed out.
TEST(FramePool, OneRegionCachesAndInUse) {
    ASSERT_TRUE(init_eal_for_tests());
    std::string error;
    auto pool = FramePool::create("test", 40, 65536, 0, rte_eal_has_hugepages() != 0, error);
    ASSERT_TRUE(pool) << error;
    EXPECT_EQ(pool->page_size(), "4 KB");  // the tests' EAL runs without huge pages
    EXPECT_EQ(pool->region_bytes(), 40u * 65536u);
    EXPECT_EQ(FramePool::cache_size_for(40), 2u);
    EXPECT_EQ(FramePool::cache_size_for(64), 4u);
    EXPECT_EQ(FramePool::cache_size_for(4096), 8u);
    EXPECT_EQ(FramePool::cache_size_for(15), 0u);
    auto capture = pool->make_cache();
    auto egress = pool->make_cache();
    std::vector<std::byte*> got;
    while (std::byte* b = pool->get(*capture)) {
        ASSERT_GE(b, pool->base());
        ASSERT_LE(b + pool->object_bytes(), pool->base() + pool->region_bytes());
        ASSERT_EQ(static_cast<std::size_t>(b - pool->base()) % pool->object_bytes(), 0u);
        got.push_back(b);
    }
    EXPECT_EQ(got.size(), 40u);
    EXPECT_EQ(pool->in_use(), 40u);
    for (std::byte* b : got)
        pool->put(*egress, b);
    EXPECT_EQ(pool->in_use(), 0u);
    EXPECT_GT(egress->size(), 0u);  // kept for this lcore ...
    pool->flush(*egress);           // ... until it hands them back
    EXPECT_EQ(egress->size(), 0u);
    std::byte* again = pool->get(*capture);
    ASSERT_NE(again, nullptr);
    pool->put(*capture, again);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, PipelineExact,
    ::testing::Values(
        Case{"RtcNone", "rx = [1]", "none"}, Case{"RtcLz4", "rx = [1]", "lz4"},
        Case{"PipelineLz4", "mode = \"pipeline\"\nrx = [1]\ncodec = [2]\negress = [3]", "lz4"},
        Case{"PipelineZstd", "mode = \"pipeline\"\nrx = [1]\ncodec = [2]\negress = [2]", "zstd"}),
    [](const auto& info) { return std::string(info.param.name); });

// Software RSS: a port without RSS (net_pcap) with rx_queues = 2. Every
// packet is captured exactly once, each flow's packets land in one stream
// (the one the Toeplitz hash and the redirection table name) in their
// original order, and the counters account for every packet.
struct SoftRssCase {
    const char* name;
    const char* lcores;
    const char* overflow;
    bool symmetric;
};

class SoftRssPipeline : public ::testing::TestWithParam<SoftRssCase> {};

TEST_P(SoftRssPipeline, EveryPacketOnceEachFlowInOneStream) {
    ASSERT_TRUE(init_eal_for_tests());
    static int run = 0;
    const std::string pcap = make_pcap("rss" + std::to_string(run),
                                       "--packets 4000 --seed 23 --flows 60 --ipv6-percent 25");
    ASSERT_FALSE(pcap.empty());
    const auto cfg =
        parse("[[ports]]\nname = \"net_pcap" + std::to_string(40 + run++) + ",rx_pcap=" + pcap +
              "\"\nrx_queues = 2\nrx_descriptors = 64\nrss_symmetric = " +
              (GetParam().symmetric ? "true" : "false") + "\n[lcores]\n" + GetParam().lcores +
              "\n[codec]\ntype = \"none\"\n[batch]\nframe_size = 16384\n[mempool]\nmbufs = 4095\n"
              "[capture]\noverflow = \"" +
              GetParam().overflow + "\"\n[egress]\ntype = \"null\"\n");
    StartedPorts ports(cfg);
    ASSERT_EQ(ports.error, "");
    ASSERT_TRUE(ports.ports[0].soft_rss);
    EXPECT_EQ(ports.ports[0].nic_rx_queues, 1u);
    std::vector<std::string> frames;
    std::mutex m;
    std::string error;
    auto pl = Pipeline::build(
        cfg, ports.ports,
        [&](uint32_t, uint64_t, std::string&) {
            return std::make_unique<RecordingSink>(&frames, &m);
        },
        error);
    ASSERT_TRUE(pl) << error;
    ASSERT_TRUE(pl->launch(error)) << error;
    const auto want = read_pcap(pcap);
    // Packets the dealer dropped (drop mode, a full ring) never reach a queue.
    auto seen = [&] {
        const Snapshot s = pl->snapshot(0, ports.ports);
        return s.total("rss", "packets") >= want.size();
    };
    ASSERT_TRUE(wait_for(seen, 60));
    pl->drain_and_stop(30);
    ASSERT_TRUE(pl->all_drained());
    const Snapshot s = pl->snapshot(0, ports.ports);

    // Decode: the packets of each queue (records say which) in stream order,
    // and the stream each queue went to.
    wire::FrameReader reader;
    std::vector<std::byte> scratch(64 << 20);
    struct Packet {
        uint64_t sequence;
        uint16_t queue;
        std::string data;
    };
    std::map<uint64_t, std::vector<Packet>> by_stream;
    for (const auto& f : frames) {
        auto view = reader.open({reinterpret_cast<const std::byte*>(f.data()), f.size()}, scratch);
        ASSERT_TRUE(view.ok());
        for (const auto& r : *view) {
            by_stream[view->info().stream_id].push_back(
                {view->info().sequence, r.queue,
                 std::string(reinterpret_cast<const char*>(r.data.data()), r.data.size())});
        }
    }
    std::map<uint16_t, std::vector<std::string>> queues;
    std::map<uint16_t, uint64_t> stream_of;
    std::size_t got = 0;
    for (auto& [id, v] : by_stream) {
        std::stable_sort(v.begin(), v.end(),
                         [](const auto& a, const auto& b) { return a.sequence < b.sequence; });
        for (auto& p : v) {
            EXPECT_EQ(stream_of.emplace(p.queue, id).first->second, id)
                << "queue " << p.queue << " in two streams";
            queues[p.queue].push_back(std::move(p.data));
            ++got;
        }
    }
    const uint64_t dealer_dropped = s.total("rss", "ring_full");
    const uint64_t dropped = s.dropped();
    if (std::string(GetParam().overflow) == "backpressure") {
        EXPECT_EQ(dropped, 0u);
    }
    EXPECT_EQ(got + dropped, want.size()) << summary_text(s);
    // Queue q belongs to the rx lcore it is dealt to, round-robin.
    for (const auto& [q, id] : stream_of)
        EXPECT_EQ(id, cfg.egress.stream_id + q % cfg.lcores.rx.size());

    // Where each packet must go: the same hash, key and table as a NIC.
    const SoftRss rss(2, GetParam().symmetric);
    std::map<uint16_t, std::vector<std::string>> expected;
    for (const auto& r : want) {
        const auto* d = reinterpret_cast<const std::byte*>(r.data.data());
        expected[rss.queue_of_hash(rss.hash(d, r.data.size()))].push_back(r.data);
    }
    ASSERT_EQ(expected.size(), 2u);  // both queues got flows
    if (dropped == 0) {
        // Exactly the packets of their queue, in the order they arrived.
        EXPECT_EQ(queues, expected);
    } else {
        // Drops only: every delivered packet is in its queue, in order.
        for (const auto& [q, v] : queues) {
            const auto& e = expected[q];
            std::size_t k = 0;
            for (const auto& d : v) {
                while (k < e.size() && e[k] != d)
                    ++k;
                ASSERT_LT(k, e.size()) << "a packet in the wrong queue or out of order";
                ++k;
            }
        }
    }
    EXPECT_EQ(s.total("rss", "packets"), want.size());
    EXPECT_EQ(s.total("rss", "handed_over") + dealer_dropped, expected[1].size());
    EXPECT_EQ(s.total("queue", "rx_packets") + dealer_dropped, want.size());
    for (const FramePool* pool : pl->pools())
        EXPECT_EQ(pool->in_use(), 0u);
    std::remove(pcap.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, SoftRssPipeline,
    ::testing::Values(SoftRssCase{"TwoLcores", "rx = [1, 2]", "backpressure", false},
                      SoftRssCase{"TwoLcoresSymmetricDrop", "rx = [1, 2]", "drop", true},
                      SoftRssCase{"OneLcoreBothQueues", "rx = [1]", "backpressure", false},
                      SoftRssCase{"Pipeline",
                                  "mode = \"pipeline\"\nrx = [1, 2]\ncodec = [3]\negress = [3]",
                                  "backpressure", true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
