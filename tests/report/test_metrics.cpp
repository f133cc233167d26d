// report/metrics: the Prometheus text both programs serve on /metrics.
// tests/system/test_metrics.py runs promtool over the programs' own output.
#include <gtest/gtest.h>

#include "sluice/report/metrics.hpp"

namespace sluice::report {
namespace {

TEST(MetricsText, CountersEndInTotalAndGroupTheirSamples) {
    MetricsText m("sluice");
    m.counter("queue_rx_packets", "Packets received.", {{"port", "0"}, {"queue", "0"}}, 5);
    m.counter("queue_filtered", "Filtered.", {{"port", "0"}, {"queue", "0"}}, 1);
    m.counter("queue_rx_packets", "Packets received.", {{"port", "0"}, {"queue", "1"}}, 7);
    m.gauge("stream_connected", "Connected.", {}, 1);
    EXPECT_EQ(m.text(),
              "# HELP sluice_queue_rx_packets_total Packets received.\n"
              "# TYPE sluice_queue_rx_packets_total counter\n"
              "sluice_queue_rx_packets_total{port=\"0\",queue=\"0\"} 5\n"
              "sluice_queue_rx_packets_total{port=\"0\",queue=\"1\"} 7\n"
              "# HELP sluice_queue_filtered_total Filtered.\n"
              "# TYPE sluice_queue_filtered_total counter\n"
              "sluice_queue_filtered_total{port=\"0\",queue=\"0\"} 1\n"
              "# HELP sluice_stream_connected Connected.\n"
              "# TYPE sluice_stream_connected gauge\n"
              "sluice_stream_connected 1\n");
}

TEST(MetricsText, ANameEndingInTotalIsNotSuffixedTwice) {
    MetricsText m("sluice_collector");
    m.counter("bytes_total", "Bytes.", {}, 3);
    EXPECT_NE(m.text().find("sluice_collector_bytes_total 3\n"), std::string::npos) << m.text();
    EXPECT_EQ(m.text().find("_total_total"), std::string::npos);
}

TEST(MetricsText, HelpAndLabelValuesAreEscaped) {
    MetricsText m("sluice");
    m.counter("x", "a \\ b\nc \"d\"", {{"name", "net_pcap0,rx_pcap=/a \"b\"\\\n"}}, 1);
    EXPECT_EQ(m.text(),
              "# HELP sluice_x_total a \\\\ b\\nc \"d\"\n"
              "# TYPE sluice_x_total counter\n"
              "sluice_x_total{name=\"net_pcap0,rx_pcap=/a \\\"b\\\"\\\\\\n\"} 1\n");
}

TEST(MetricsText, ValuesAreExact) {
    MetricsText m("sluice");
    m.counter("big", "Big.", {}, UINT64_MAX);
    m.gauge("half", "Half.", {}, 0.5);
    m.gauge("inf", "Inf.", {}, 1.0 / 0.0);
    const std::string t = m.text();
    EXPECT_NE(t.find("sluice_big_total 18446744073709551615\n"), std::string::npos) << t;
    EXPECT_NE(t.find("sluice_half 0.5\n"), std::string::npos) << t;
    EXPECT_NE(t.find("sluice_inf +Inf\n"), std::string::npos) << t;
}

TEST(MetricsText, ATypeClashKeepsTheFirst) {
    MetricsText m("sluice");
    m.counter("x", "X.", {}, 1);
    m.gauge("x_total", "X.", {}, 2);
    EXPECT_EQ(m.text(),
              "# HELP sluice_x_total X.\n# TYPE sluice_x_total counter\nsluice_x_total 1\n");
}

TEST(MetricName, InvalidBytesBecomeUnderscores) {
    EXPECT_EQ(metric_name("9a-b:c"), "_a_b:c");
    EXPECT_EQ(metric_name("a:b", true), "a_b");
    EXPECT_EQ(metric_name(""), "_");
}

}  // namespace
}  // namespace sluice::report
