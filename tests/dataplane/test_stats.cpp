#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/dataplane/stats.hpp"

using namespace sluice::dataplane;
using ::testing::HasSubstr;

TEST(Stats, TotalsAndLine) {
    QueueCounters a, b;
    a.rx_packets.add(1000);
    a.rx_bytes.add(64000);
    b.rx_packets.add(500);
    b.rx_bytes.add(750000);
    Snapshot s0, s1;
    s1.seconds = 2.0;
    s1.ports.push_back(PortSnapshot{"net_null0", "net_null", 1500, 814000, 3, 0, 7});
    s1.queues.push_back(QueueSnapshot{0, 0, 1, a.snapshot()});
    s1.queues.push_back(QueueSnapshot{0, 1, 2, b.snapshot()});
    EXPECT_EQ(s1.total("rx_packets"), 1500u);
    EXPECT_EQ(s1.total("rx_bytes"), 814000u);
    const std::string line = stats_line(s0, s1);
    EXPECT_THAT(line, HasSubstr("rx 750 pps"));
    EXPECT_THAT(line, HasSubstr("imissed 3 nombuf 7"));
}

TEST(Stats, JsonHasEveryCounterAndItsDescription) {
    Snapshot s;
    s.ports.push_back(PortSnapshot{"net_\"q\"", "drv", 0, 0, 0, 0, 0});
    s.queues.push_back(QueueSnapshot{0, 0, 1, QueueCounters{}.snapshot()});
    const std::string json = summary_json(s);
    EXPECT_THAT(json, HasSubstr("\"name\": \"net_\\\"q\\\"\""));
    for (const auto& c : QueueCounters::info) {
        EXPECT_THAT(json, HasSubstr(std::string("\"") + c.name + "\": 0"));
        EXPECT_THAT(json, HasSubstr(std::string("\"") + c.name + "\": \""));
    }
}

TEST(Stats, SiUnits) {
    EXPECT_EQ(si(999), "999 ");
    EXPECT_EQ(si(1234567), "1.23 M");
    EXPECT_EQ(si(2.5e9), "2.50 G");
}
