#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/dataplane/stats.hpp"

using namespace sluice::dataplane;
using ::testing::HasSubstr;

namespace {
Snapshot sample() {
    static QueueCounters a, b;
    static CaptureCounters cap;
    static CodecCounters codec;
    static EgressCounters eg;
    static bool once = [] {
        a.rx_packets.add(1000);
        a.rx_bytes.add(64000);
        a.captured.add(990);
        a.filtered.add(4);
        a.frame_pool_empty.add(6);
        b.rx_packets.add(500);
        b.rx_bytes.add(750000);
        b.captured.add(500);
        cap.ring_full.add(10);
        codec.raw_bytes.add(3000);
        codec.sealed_bytes.add(1000);
        eg.packets.add(1470);
        eg.retransmit_overflow.add(10);
        return true;
    }();
    (void)once;
    Snapshot s;
    s.seconds = 2.0;
    s.ports.push_back(PortSnapshot{"net_null0", "net_null", 1500, 814000, 3, 0, 7});
    s.blocks.push_back(snapshot_of(view_of("queue", a), {{"port", "0"}, {"queue", "0"}}));
    s.blocks.push_back(snapshot_of(view_of("queue", b), {{"port", "0"}, {"queue", "1"}}));
    s.blocks.push_back(snapshot_of(view_of("capture", cap), {{"lcore", "1"}}));
    s.blocks.push_back(snapshot_of(view_of("codec", codec), {{"lcore", "1"}}));
    s.blocks.push_back(snapshot_of(view_of("egress", eg), {{"stream", "1"}}));
    return s;
}
}  // namespace

TEST(Stats, TotalsAndDrops) {
    const Snapshot s = sample();
    EXPECT_EQ(s.total("queue", "rx_packets"), 1500u);
    EXPECT_EQ(s.total("queue", "rx_bytes"), 814000u);
    // frame_pool_empty 6 + ring_full 10 + retransmit_overflow 10
    EXPECT_EQ(s.dropped(), 26u);
    EXPECT_EQ(s.blocks[1].label("queue"), "1");
    EXPECT_EQ(s.blocks[1].get("rx_packets"), 500u);
}

TEST(Stats, LineShowsRatesDropsAndRatio) {
    const std::string line = stats_line(Snapshot{}, sample());
    EXPECT_THAT(line, HasSubstr("rx 750 pps"));
    EXPECT_THAT(line, HasSubstr("dropped 26 (nic imissed 3 nombuf 7)"));
    EXPECT_THAT(line, HasSubstr("ratio 3.00"));
}

TEST(Stats, SummaryAccountsForEveryPacket) {
    const std::string text = summary_text(sample());
    EXPECT_THAT(text, HasSubstr("rx 1500 = filtered 4 + captured 1490 + dropped before capture 6"));
    EXPECT_THAT(text, HasSubstr("out 1470 + dropped after capture 20"));
}

TEST(Stats, JsonHasEveryCounterAndItsDescription) {
    Snapshot s = sample();
    s.ports[0].name = "net_\"q\"";
    const std::string json = summary_json(s);
    EXPECT_THAT(json, HasSubstr("\"name\": \"net_\\\"q\\\"\""));
    EXPECT_THAT(json, HasSubstr("\"dropped\": 26"));
    for (const auto& c : QueueCounters::info) {
        EXPECT_THAT(json, HasSubstr(std::string("\"queue.") + c.name + "\": \""));
    }
    for (const auto& c : EgressCounters::info) {
        EXPECT_THAT(json, HasSubstr(std::string("\"egress.") + c.name + "\": \""));
    }
}

TEST(Stats, SiUnits) {
    EXPECT_EQ(si(999), "999 ");
    EXPECT_EQ(si(1234567), "1.23 M");
    EXPECT_EQ(si(2.5e9), "2.50 G");
}

// docs/pipeline.md embeds the generated counter reference between markers;
// regenerate it with `build/dataplane/sluice --counter-reference`.
TEST(Stats, DocsCounterReferenceIsCurrent) {
    const char* root = std::getenv("SLUICE_SOURCE_ROOT");
    std::ifstream in(std::string(root ? root : ".") + "/docs/pipeline.md");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string docs = ss.str();
    const std::string begin =
        "<!-- BEGIN COUNTER REFERENCE (generated: sluice --counter-reference) -->\n";
    const std::string end = "<!-- END COUNTER REFERENCE -->";
    const auto b = docs.find(begin);
    const auto e = docs.find(end);
    ASSERT_NE(b, std::string::npos);
    ASSERT_NE(e, std::string::npos);
    EXPECT_EQ(docs.substr(b + begin.size(), e - b - begin.size()), counter_reference_markdown())
        << "docs/pipeline.md is out of date: regenerate the counter reference";
}
