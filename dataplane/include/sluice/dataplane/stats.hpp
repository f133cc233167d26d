// Control-plane view of the counters: snapshots, the periodic stats line,
// the exit summary (text and JSON).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/dataplane/counters.hpp"

namespace sluice::dataplane {

struct PortSnapshot {
    std::string name;
    std::string driver;
    // From the NIC (rte_eth_stats).
    uint64_t ipackets = 0, ibytes = 0, imissed = 0, ierrors = 0, rx_nombuf = 0;
};

struct QueueSnapshot {
    uint16_t port_index = 0;
    uint16_t queue = 0;
    unsigned lcore = 0;
    decltype(QueueCounters{}.snapshot()) counters{};
    uint64_t get(const char* name) const;
};

struct Snapshot {
    double seconds = 0;  // since start
    std::vector<PortSnapshot> ports;
    std::vector<QueueSnapshot> queues;
    uint64_t total(const char* counter) const;
};

// "  2.0s  rx 1.23 Mpps 4.56 Gbit/s | 2460000 pkts 1.1 GB | imissed 0 nombuf 0 ..."
std::string stats_line(const Snapshot& prev, const Snapshot& now);

// The human summary printed at exit.
std::string summary_text(const Snapshot& s);

// The same as JSON, with every counter's description.
std::string summary_json(const Snapshot& s);

// 1234567 -> "1.23 M"
std::string si(double v);

}  // namespace sluice::dataplane
