#include "sluice/dataplane/stats.hpp"

#include <fmt/format.h>

#include <cstring>

namespace sluice::dataplane {
namespace {

std::size_t counter_index(const char* name) {
    for (std::size_t i = 0; i < QueueCounters::info.size(); ++i) {
        if (std::strcmp(QueueCounters::info[i].name, name) == 0) return i;
    }
    return QueueCounters::info.size();
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace

uint64_t QueueSnapshot::get(const char* name) const {
    const std::size_t i = counter_index(name);
    return i < counters.size() ? counters[i] : 0;
}

uint64_t Snapshot::total(const char* counter) const {
    uint64_t t = 0;
    for (const auto& q : queues) t += q.get(counter);
    return t;
}

std::string si(double v) {
    const char* units[] = {"", "K", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4) v /= 1000, ++u;
    return u == 0 ? fmt::format("{:.0f} ", v) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string stats_line(const Snapshot& prev, const Snapshot& now) {
    const double dt = now.seconds - prev.seconds;
    const double pps = dt > 0 ? (now.total("rx_packets") - prev.total("rx_packets")) / dt : 0;
    const double bps = dt > 0 ? (now.total("rx_bytes") - prev.total("rx_bytes")) * 8.0 / dt : 0;
    uint64_t imissed = 0, nombuf = 0, ierrors = 0;
    for (const auto& p : now.ports) imissed += p.imissed, nombuf += p.rx_nombuf, ierrors += p.ierrors;
    return fmt::format("{:7.1f}s  rx {}pps {}bit/s | total {} pkts {}B | imissed {} nombuf {} "
                       "ierrors {}",
                       now.seconds, si(pps), si(bps), now.total("rx_packets"),
                       si(static_cast<double>(now.total("rx_bytes"))), imissed, nombuf, ierrors);
}

std::string summary_text(const Snapshot& s) {
    std::string out = fmt::format("summary after {:.1f}s\n", s.seconds);
    for (std::size_t i = 0; i < s.ports.size(); ++i) {
        const auto& p = s.ports[i];
        out += fmt::format("  port {} {} ({}): nic ipackets {} ibytes {} imissed {} ierrors {} "
                           "rx_nombuf {}\n",
                           i, p.name, p.driver, p.ipackets, p.ibytes, p.imissed, p.ierrors,
                           p.rx_nombuf);
        for (const auto& q : s.queues) {
            if (q.port_index != i) continue;
            out += fmt::format("    queue {} (lcore {}):", q.queue, q.lcore);
            for (std::size_t c = 0; c < q.counters.size(); ++c) {
                out += fmt::format(" {} {}", QueueCounters::info[c].name, q.counters[c]);
            }
            out += "\n";
        }
    }
    out += fmt::format("  total: rx_packets {} rx_bytes {}", s.total("rx_packets"),
                       s.total("rx_bytes"));
    return out;
}

std::string summary_json(const Snapshot& s) {
    std::string out = fmt::format("{{\n  \"seconds\": {:.3f},\n  \"ports\": [", s.seconds);
    for (std::size_t i = 0; i < s.ports.size(); ++i) {
        const auto& p = s.ports[i];
        out += fmt::format(
            "{}\n    {{\"name\": {}, \"driver\": {}, \"ipackets\": {}, \"ibytes\": {}, "
            "\"imissed\": {}, \"ierrors\": {}, \"rx_nombuf\": {}, \"queues\": [",
            i ? "," : "", json_string(p.name), json_string(p.driver), p.ipackets, p.ibytes,
            p.imissed, p.ierrors, p.rx_nombuf);
        bool first = true;
        for (const auto& q : s.queues) {
            if (q.port_index != i) continue;
            out += fmt::format("{}\n      {{\"queue\": {}, \"lcore\": {}", first ? "" : ",",
                               q.queue, q.lcore);
            for (std::size_t c = 0; c < q.counters.size(); ++c) {
                out += fmt::format(", \"{}\": {}", QueueCounters::info[c].name, q.counters[c]);
            }
            out += "}";
            first = false;
        }
        out += "]}";
    }
    out += "\n  ],\n  \"totals\": {";
    for (std::size_t c = 0; c < QueueCounters::info.size(); ++c) {
        out += fmt::format("{}\"{}\": {}", c ? ", " : "", QueueCounters::info[c].name,
                           s.total(QueueCounters::info[c].name));
    }
    out += "},\n  \"descriptions\": {";
    for (std::size_t c = 0; c < QueueCounters::info.size(); ++c) {
        out += fmt::format("{}\n    \"{}\": {}", c ? "," : "", QueueCounters::info[c].name,
                           json_string(QueueCounters::info[c].description));
    }
    out += "\n  }\n}\n";
    return out;
}

}  // namespace sluice::dataplane
