// The pcapng blocks, checked field by field by an independent reader.
#include "collector_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::collector {
namespace {

using namespace testing;

TEST(Pcapng, BlocksAreWhatTheSpecificationSays) {
    ByteBuffer b;
    pcapng::append_shb(b, "app 1.0", "a comment");
    pcapng::append_idb(b, pcapng::kLinkTypeEthernet, 262144, "if0", "the first interface");
    const std::vector<std::byte> data(61, std::byte{0xab});  // odd length: padded to 64
    pcapng::append_epb(b, 0, 0x0123456789abcdefull, data, 1514, 0);
    pcapng::append_epb(b, 0, 5, std::span<const std::byte>(data).first(4), 4, 4u << 5);
    const std::vector<std::byte> bytes(b.data(), b.data() + b.size());
    EXPECT_EQ(bytes.size() % 4, 0u);
    const Pcapng p = parse_pcapng(bytes);
    EXPECT_EQ(p.user_application, "app 1.0");
    EXPECT_EQ(p.comment, "a comment");
    ASSERT_EQ(p.interfaces.size(), 1u);
    EXPECT_EQ(p.interfaces[0].snaplen, 262144u);
    EXPECT_EQ(p.interfaces[0].tsresol, 9);
    EXPECT_EQ(p.interfaces[0].name, "if0");
    EXPECT_EQ(p.interfaces[0].description, "the first interface");
    ASSERT_EQ(p.packets.size(), 2u);
    EXPECT_EQ(p.packets[0].ts_ns, 0x0123456789abcdefull);
    EXPECT_EQ(p.packets[0].orig_len, 1514u);
    EXPECT_EQ(p.packets[0].data, data);
    EXPECT_EQ(p.packets[0].epb_flags, 0u);
    EXPECT_EQ(p.packets[1].epb_flags, 4u << 5) << "FCS length 4";
    // Sizes as promised.
    EXPECT_EQ(pcapng::epb_size(61, false), 32u + 64);
    EXPECT_EQ(pcapng::epb_size(4, true), 32u + 4 + 12);
    // Section length unknown (-1): the file grows while it is written.
    EXPECT_EQ(get<uint64_t>(bytes, 16), ~uint64_t{0});
}

}  // namespace
}  // namespace sluice::collector

namespace sluice::collector {
namespace {

using namespace testing;

// Packets gathered into a Batch (copied or referenced) are the same bytes as
// packets built into one buffer, and OutputFile writes them in IOV_MAX-sized
// pwritev calls without losing a segment.
TEST(Batch, GatheredBlocksEqualCopiedOnesOnDisk) {
    const auto pk = packets(1500, 42, 1, 3);  // > 1024 segments: several pwritev calls
    ByteBuffer flat;
    Batch batch;
    pcapng::append_shb(flat, "app", "");
    ByteBuffer shb;
    pcapng::append_shb(shb, "app", "");
    batch.append(shb.span());
    for (std::size_t i = 0; i < pk.size(); ++i) {
        const uint32_t flags = i % 5 == 0 ? 4u << 5 : 0;
        pcapng::append_epb(flat, 0, pk[i].ts_ns, pk[i].data, pk[i].orig_len, flags);
        pcapng::append_epb(batch, 0, pk[i].ts_ns, pk[i].data, pk[i].orig_len, flags, i % 2 == 0);
    }
    EXPECT_EQ(batch.size(), flat.size());
    EXPECT_GT(batch.segments(), 1024u);
    ByteBuffer joined;
    batch.flatten(joined);
    ASSERT_EQ(joined.size(), flat.size());
    EXPECT_EQ(std::memcmp(joined.data(), flat.data(), flat.size()), 0);

    TempDir dir;
    const std::string path = (dir.path() / "batch.pcapng").string();
    OutputFile out;
    ASSERT_TRUE(out.create(path, 0640));
    const std::byte first[] = {std::byte{1}, std::byte{2}, std::byte{3}};
    ASSERT_TRUE(out.append(std::span<const std::byte>(first)));
    ASSERT_TRUE(out.append(batch));
    EXPECT_EQ(out.size(), 3 + flat.size());
    out.close();
    const auto disk = read_file(path);
    ASSERT_EQ(disk.size(), 3 + flat.size());
    EXPECT_EQ(std::memcmp(disk.data() + 3, flat.data(), flat.size()), 0);
}

}  // namespace
}  // namespace sluice::collector
