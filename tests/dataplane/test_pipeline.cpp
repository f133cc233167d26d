// The pipeline in-process, in both lcore modes, checked frame by frame. Runs
// in the ASan+UBSan and TSan builds too (the stages' rings, counters and
// drain handshakes cross lcores).
#include <mutex>

#include "harness.hpp"
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/wire/reader.hpp"

using namespace sluice;
using namespace sluice::dataplane;
using namespace sluice::testing;

namespace {

// Keeps a copy of every frame (a test sink: it allocates, the real ones don't).
class RecordingSink final : public FrameSink {
  public:
    explicit RecordingSink(std::vector<std::string>* frames, std::mutex* m)
        : frames_(frames), m_(m) {}
    Submit submit(std::span<const std::byte> f, uint64_t, void* cookie) override {
        {
            std::lock_guard lock(*m_);
            frames_->emplace_back(reinterpret_cast<const char*>(f.data()), f.size());
        }
        done_.push_back(cookie);
        return Submit::Accepted;
    }
    bool poll(uint64_t) override { return false; }
    std::size_t reclaim(std::span<void*> out) override {
        std::size_t n = 0;
        while (n < out.size() && !done_.empty()) {
            out[n++] = done_.back();
            done_.pop_back();
        }
        return n;
    }
    bool all_done() const override { return done_.empty(); }
    std::string describe() const override { return "recording"; }

  private:
    std::vector<std::string>* frames_;
    std::mutex* m_;
    std::vector<void*> done_;
};

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

}  // namespace
