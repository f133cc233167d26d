// The collector's RDMA handler fed ring slots directly, as the listener hands
// them over (no RDMA device needed): a slot's bytes are the peer's, so every
// length in a frame header is checked against what the write carried.
#include "../../collector/src/rdma_bridge.hpp"
#include "collector_testing.hpp"
#include <gtest/gtest.h>

namespace sluice::collector {
namespace {

using namespace testing;

struct BridgeFixture {
    BridgeFixture() {
        CollectorOptions o;
        o.listen = {"127.0.0.1", 0};
        o.out_dir = dir.str();
        o.stats_interval_s = 0;
        col = std::make_unique<Collector>(o);
        bridge = std::make_unique<RdmaBridge>(*col);
        rdma::ConnectRequest rq;
        rq.stream_id = 5;
        rq.session_id = 77;
        EXPECT_TRUE(bridge->on_hello(1, rq, "peer").accept);
    }
    bool frame(std::span<const std::byte> slot, uint64_t sequence) {
        why.clear();
        cause = rdma::CloseCause::BadFrame;
        return bridge->on_frame(1, slot, static_cast<uint16_t>(sequence & 0xffff), why, cause);
    }
    TempDir dir;
    std::unique_ptr<Collector> col;
    std::unique_ptr<RdmaBridge> bridge;
    std::string why;
    rdma::CloseCause cause{};
};

TEST(RdmaBridge, AFrameIsWrittenFromExactlyTheBytesItsWriteCarried) {
    BridgeFixture fx;
    const auto pk = packets(20, 1);
    const auto fr = make_frames(5, pk, 20);
    ASSERT_TRUE(fx.frame(fr.frames[0], 0)) << fx.why;
    std::string why;
    EXPECT_EQ(fx.bridge->on_batch_done(1, why), 1u) << why;
    EXPECT_EQ(read_stream(fx.dir.path(), 5), pk);
}

TEST(RdmaBridge, AHeaderClaimingMoreThanTheWriteCarriedIsRefusedWithoutReadingPastIt) {
    BridgeFixture fx;
    const auto fr = make_frames(5, packets(20, 2), 20);
    const auto& f = fr.frames[0];
    // The write carried the first half of the frame; the header claims it all.
    const std::vector<std::byte> half(f.begin(), f.begin() + f.size() / 2);
    EXPECT_FALSE(fx.frame(half, 0));
    EXPECT_EQ(fx.cause, rdma::CloseCause::BadFrame);
    EXPECT_NE(fx.why.find("claims"), std::string::npos) << fx.why;
    // More bytes than the frame: trailing bytes are not a frame either.
    std::vector<std::byte> longer(f);
    longer.resize(f.size() + 64);
    EXPECT_FALSE(fx.frame(longer, 0));
    EXPECT_NE(fx.why.find("claims"), std::string::npos) << fx.why;
    std::string why;
    EXPECT_EQ(fx.bridge->on_batch_done(1, why), 0u) << "nothing was written";
}

}  // namespace
}  // namespace sluice::collector
