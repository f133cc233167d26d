// Control-plane view of the counters: snapshots, the periodic stats line,
// the exit summary (text and JSON).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sluice/dataplane/counters.hpp"
#include "sluice/report/format.hpp"

namespace sluice::dataplane {

struct PortSnapshot {
    std::string name;
    std::string driver;
    // From the NIC (rte_eth_stats).
    uint64_t ipackets = 0, ibytes = 0, imissed = 0, ierrors = 0, rx_nombuf = 0;
    // In the order of kPortCounters.
    std::array<uint64_t, kPortCounters.size()> values() const {
        return {ipackets, ibytes, imissed, rx_nombuf, ierrors};
    }
};

// One counter block: its scope ("queue", "capture", "codec", "egress"), what
// identifies it (port, queue, lcore, stream) and its values.
struct BlockSnapshot {
    std::string scope;
    std::vector<std::pair<std::string, std::string>> labels;
    std::span<const CounterInfo> info;
    std::vector<uint64_t> values;
    uint64_t get(std::string_view counter) const;
    std::string label(std::string_view key) const;
};

BlockSnapshot snapshot_of(const CounterBlockView& view,
                          std::vector<std::pair<std::string, std::string>> labels);

struct Snapshot {
    double seconds = 0;  // since start
    std::vector<PortSnapshot> ports;
    std::vector<BlockSnapshot> blocks;
    uint64_t total(std::string_view scope, std::string_view counter) const;
    // Packets dropped anywhere inside sluice (not counting the NIC's).
    uint64_t dropped() const;
};

// One line for the operator, every stats.interval_s.
std::string stats_line(const Snapshot& prev, const Snapshot& now);

// The human summary printed at exit.
std::string summary_text(const Snapshot& s);

// The same as JSON, with every counter's description.
std::string summary_json(const Snapshot& s);

// Every counter as Prometheus metrics (GET /metrics, [stats] prometheus):
// sluice_port_NAME_total{port,name,driver}, sluice_SCOPE_NAME_total with
// the block's labels, the counters' descriptions as HELP, and
// sluice_dropped_total.
std::string metrics_text(const Snapshot& s);

// Every counter with its description, as Markdown tables (docs/pipeline.md
// embeds it; a test keeps the two identical).
std::string counter_reference_markdown();

using report::si;  // 1234567 -> "1.23 M"

}  // namespace sluice::dataplane
