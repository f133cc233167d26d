// The collector's index writer: blocks follow commits, a rolled-back batch
// leaves nothing, and after a crash at any point resume() makes the index
// cover exactly the committed data again.
#include <random>

#include "index_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/index/bloom.hpp"
#include "sluice/index/builder.hpp"
#include "sluice/index/writer.hpp"

namespace sluice::index {
namespace {

using namespace testing;

// Every packet of the data file (as read back) is in a block whose time
// range and filter include it; blocks tile [data_start, end).
void expect_index_covers(const std::string& data, uint64_t end, uint64_t packets) {
    std::string error;
    const auto ix = load_index(index_path(data), &error);
    ASSERT_TRUE(ix) << error;
    EXPECT_EQ(ix->covered_end, end);
    const int fd = ::open(data.c_str(), O_RDONLY);
    pcapng::Buffer raw, pc;
    uint64_t seen = 0;
    std::vector<pcapng::Interface> ifs;
    for (const auto& i : ix->interfaces)
        ifs.push_back(*pcapng::parse_interface(i));
    for (const BlockRecord& b : ix->blocks) {
        ASSERT_TRUE(pcapng::read_range(fd, ix->header.compression, b.data_start, b.data_end,
                                       b.pcapng_bytes + 1, raw, pc, &error))
            << error;
        EXPECT_EQ(pc.size(), b.pcapng_bytes);
        std::size_t at = 0;
        uint32_t n = 0;
        while (true) {
            const auto nb = pcapng::block_at(pc, at);
            if (nb.walk != pcapng::Walk::Ok) {
                EXPECT_EQ(nb.walk, pcapng::Walk::End);
                break;
            }
            at += nb.block.bytes.size();
            if (nb.block.type != pcapng::kEnhancedPacketBlock) continue;
            const auto p = pcapng::parse_packet_block(nb.block.bytes);
            ASSERT_TRUE(p);
            ASSERT_LT(p->interface_id, ifs.size());
            const uint64_t ts = pcapng::to_ns(ifs[p->interface_id], p->ts_raw);
            EXPECT_GE(ts, b.min_ts_ns);
            EXPECT_LE(ts, b.max_ts_ns);
            std::array<uint64_t, kMaxPacketKeys> keys;
            const PacketKeys pk = parse_packet(p->data);
            const std::size_t k = packet_key_hashes(pk, keys);
            for (std::size_t i = 0; i < k; ++i)
                EXPECT_TRUE(bloom_may_contain(b.bloom.data(), b.bloom_blocks, keys[i]));
            for (uint8_t i = 0; i < pk.proto_count; ++i)
                EXPECT_TRUE(b.protocols.has(pk.protos[i]));
            ++n;
        }
        EXPECT_EQ(n, b.packets);
        seen += n;
    }
    ::close(fd);
    EXPECT_EQ(seen, packets);
}

std::vector<TestPacket> batch(uint32_t first, uint32_t n, uint32_t interfaces = 2) {
    std::vector<TestPacket> v;
    for (uint32_t i = first; i < first + n; ++i)
        v.push_back(udp_packet(1'700'000'000'000'000'000ull + i * 1000ull, i, i % interfaces,
                               40 + i % 900));
    return v;
}

class WriterTest : public ::testing::TestWithParam<Compression> {
  protected:
    std::string name(const char* base) const {
        return dir.file(std::string(base) +
                        (GetParam() == Compression::Zstd ? ".pcapng.zst" : ".pcapng"));
    }
    TempDir dir;
    BuildSettings small{.block_bytes = 64 * 1024, .block_packets = 16384};
};

TEST_P(WriterTest, BlocksFollowCommitsAndFinishCoversTheFile) {
    Writer w(small);
    DataFile d(name("a"), GetParam(), w);
    for (uint32_t i = 0; i < 40; ++i)
        d.commit(batch(i * 50, 50, 3));
    ASSERT_TRUE(w.finish());
    expect_index_covers(d.path(), d.size(), 2000);
    const auto ix = load_index(index_path(d.path()), nullptr);
    ASSERT_TRUE(ix && ix->finish);
    EXPECT_EQ(ix->finish->packets, 2000u);
    EXPECT_EQ(ix->interfaces.size(), 3u);
    EXPECT_GT(ix->blocks.size(), 5u);
    for (std::size_t i = 0; i + 1 < ix->blocks.size(); ++i)
        EXPECT_GE(ix->blocks[i].pcapng_bytes, small.block_bytes);
}

TEST_P(WriterTest, ReindexFromTheDataAloneFindsTheSame) {
    Writer w(small);
    DataFile d(name("b"), GetParam(), w);
    for (uint32_t i = 0; i < 20; ++i)
        d.commit(batch(i * 70, 70));
    ASSERT_TRUE(w.finish());
    const auto incremental = load_index(index_path(d.path()), nullptr);
    std::string error;
    DataIndexed r;
    ASSERT_TRUE(reindex_file(d.path(), small, &r, &error)) << error;
    EXPECT_EQ(r.packets, 1400u);
    expect_index_covers(d.path(), d.size(), 1400);
    const auto rebuilt = load_index(index_path(d.path()), nullptr);
    EXPECT_EQ(rebuilt->header.data_start, incremental->header.data_start);
    EXPECT_EQ(rebuilt->interfaces, incremental->interfaces);
}

TEST_P(WriterTest, ARolledBackBatchLeavesNothing) {
    Writer w(small);
    DataFile d(name("c"), GetParam(), w);
    d.commit(batch(0, 10));
    // A batch with an address nobody else has, undone (a failed write).
    d.commit({udp_packet(5, 0xbeef, 0)}, true);
    d.commit(batch(10, 10));
    ASSERT_TRUE(w.finish());
    expect_index_covers(d.path(), d.size(), 20);
    const auto ix = load_index(index_path(d.path()), nullptr);
    const PacketKeys k = parse_packet(udp_packet(5, 0xbeef, 0).frame);
    for (const auto& b : ix->blocks) {
        EXPECT_FALSE(bloom_may_contain(b.bloom.data(), b.bloom_blocks, key_addr4(k.src.data())));
        EXPECT_NE(b.min_ts_ns, 5u);
    }
}

TEST_P(WriterTest, ARolledBackBatchThatEndedBlocksLeavesTheOpenBlockAsCommitted) {
    // A batch large enough to fill blocks on its own (in a plain file they
    // end inside it), undone: the committed packets of the open block must
    // all still be found, and none of the batch's.
    Writer w(small);
    DataFile d(name("r"), GetParam(), w);
    d.commit(batch(0, 40));
    std::vector<TestPacket> big;
    for (uint32_t i = 0; i < 600; ++i)
        big.push_back(udp_packet(7'000 + i, 0x40000 + i, 0, 400));
    d.commit(big, true);
    d.commit(batch(40, 40));
    d.commit(big, true);
    d.commit(batch(80, 300));
    ASSERT_TRUE(w.finish());
    expect_index_covers(d.path(), d.size(), 380);
    const auto ix = load_index(index_path(d.path()), nullptr);
    for (const auto& b : ix->blocks) {
        const PacketKeys k = parse_packet(big[17].frame);
        EXPECT_FALSE(bloom_may_contain(b.bloom.data(), b.bloom_blocks, key_addr4(k.src.data())));
        EXPECT_GE(b.min_ts_ns, 1'700'000'000'000'000'000ull);
    }
}

TEST_P(WriterTest, ResumeAfterACrashAtAnyIndexLengthCoversTheCommittedData) {
    // The index as a killed collector may leave it: cut at every record
    // boundary and inside records; the data file cut back to its
    // committed end (as the collector does before resume()).
    Writer w(small);
    DataFile d(name("d"), GetParam(), w);
    for (uint32_t i = 0; i < 12; ++i)
        d.commit(batch(i * 100, 100));
    w.close();
    const std::string ip = index_path(d.path());
    std::vector<std::byte> full(file_size(ip));
    {
        const int fd = ::open(ip.c_str(), O_RDONLY);
        ASSERT_EQ(::read(fd, full.data(), full.size()), ssize_t(full.size()));
        ::close(fd);
    }
    std::mt19937 rng(1);
    std::vector<std::size_t> cuts = {0, 1, 39, 40, full.size()};
    for (int i = 0; i < 25; ++i)
        cuts.push_back(rng() % full.size());
    for (std::size_t cut : cuts) {
        const int fd = ::open(ip.c_str(), O_WRONLY | O_TRUNC);
        ASSERT_EQ(::write(fd, full.data(), cut), ssize_t(cut));
        ::close(fd);
        Writer again(small);
        const auto log = again.resume(d.path(), GetParam(), d.size());
        for (const auto& l : log)
            EXPECT_EQ(l.rfind("error", 0), std::string::npos) << l;
        ASSERT_TRUE(again.active()) << again.error();
        again.close();
        expect_index_covers(d.path(), d.size(), 1200);
    }
}

TEST_P(WriterTest, AnIndexPastTheCommittedDataIsCut) {
    // A power loss without --sync can leave the data shorter than what the
    // index describes: the blocks past it go.
    Writer w(small);
    std::string path = name("e");
    uint64_t committed;
    {
        DataFile d(path, GetParam(), w);
        for (uint32_t i = 0; i < 6; ++i)
            d.commit(batch(i * 100, 100));
        committed = d.size();
        for (uint32_t i = 6; i < 12; ++i)
            d.commit(batch(i * 100, 100));
        w.close();
    }
    std::filesystem::resize_file(path, committed);
    Writer again(small);
    const auto log = again.resume(path, GetParam(), committed);
    ASSERT_TRUE(again.active()) << again.error();
    ASSERT_TRUE(again.finish());
    expect_index_covers(path, committed, 600);
}

TEST_P(WriterTest, CloseAndResumeAtTheSameOffsetContinues) {
    Writer w(small);
    DataFile d(name("f"), GetParam(), w);
    d.commit(batch(0, 30));
    w.close();
    EXPECT_TRUE(w.resume(d.path(), GetParam(), d.size()).empty());
    d.commit(batch(30, 30));
    w.close();
    // A fresh writer (a restarted collector) reads what is there.
    Writer fresh(small);
    EXPECT_TRUE(fresh.resume(d.path(), GetParam(), d.size()).empty());
    d.use(fresh);
    d.commit(batch(60, 30));
    ASSERT_TRUE(fresh.finish());
    expect_index_covers(d.path(), d.size(), 90);
}

TEST_P(WriterTest, AMissingIndexIsRebuiltOnResume) {
    Writer w(small);
    DataFile d(name("g"), GetParam(), w);
    for (uint32_t i = 0; i < 5; ++i)
        d.commit(batch(i * 200, 200));
    w.close();
    std::filesystem::remove(index_path(d.path()));
    Writer again(small);
    const auto log = again.resume(d.path(), GetParam(), d.size());
    ASSERT_TRUE(again.active()) << again.error();
    again.close();
    expect_index_covers(d.path(), d.size(), 1000);
}

INSTANTIATE_TEST_SUITE_P(Compression, WriterTest,
                         ::testing::Values(Compression::None, Compression::Zstd),
                         [](const auto& i) {
                             return i.param == Compression::Zstd ? "zstd" : "plain";
                         });

}  // namespace
}  // namespace sluice::index
