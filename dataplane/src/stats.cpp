#include "sluice/dataplane/stats.hpp"

#include <set>

#include <fmt/format.h>

#include "sluice/rdma/sender.hpp"
#include "sluice/report/json.hpp"
#include "sluice/report/metrics.hpp"
#include "sluice/session/sender.hpp"
#include "sluice/tcp/sender.hpp"

namespace sluice::dataplane {

using report::json_string;

uint64_t BlockSnapshot::get(std::string_view counter) const {
    for (std::size_t i = 0; i < info.size() && i < values.size(); ++i) {
        if (counter == info[i].name) return values[i];
    }
    return 0;
}

std::string BlockSnapshot::label(std::string_view key) const {
    for (const auto& [k, v] : labels) {
        if (k == key) return v;
    }
    return {};
}

BlockSnapshot snapshot_of(const CounterBlockView& view,
                          std::vector<std::pair<std::string, std::string>> labels) {
    BlockSnapshot b;
    b.scope = view.scope;
    b.labels = std::move(labels);
    b.info = view.info;
    b.values.resize(view.info.size());
    view.read(view.block, b.values.data());
    return b;
}

uint64_t Snapshot::total(std::string_view scope, std::string_view counter) const {
    uint64_t t = 0;
    for (const auto& b : blocks) {
        if (b.scope == scope) t += b.get(counter);
    }
    return t;
}

std::string metrics_text(const Snapshot& s) {
    report::MetricsText m("sluice");
    for (std::size_t i = 0; i < s.ports.size(); ++i) {
        const auto& p = s.ports[i];
        const report::MetricLabels labels{
            {"port", std::to_string(i)}, {"name", p.name}, {"driver", p.driver}};
        const auto v = p.values();
        for (std::size_t c = 0; c < v.size(); ++c)
            m.counter(fmt::format("port_{}", kPortCounters[c].name), kPortCounters[c].description,
                      labels, v[c]);
    }
    for (const auto& b : s.blocks) {
        const report::MetricLabels labels(b.labels.begin(), b.labels.end());
        for (std::size_t c = 0; c < b.values.size() && c < b.info.size(); ++c)
            m.counter(fmt::format("{}_{}", b.scope, b.info[c].name), b.info[c].description, labels,
                      b.values[c]);
    }
    m.counter("dropped",
              "Packets dropped anywhere inside sluice (the NIC's own drops not counted): the "
              "sum of frame_pool_empty, ring_full (rss and capture), seal_failed, "
              "retransmit_overflow and egress_errors. Alert on any increase; the per-block "
              "counters say where.",
              {}, s.dropped());
    m.gauge("uptime_seconds", "Seconds since sluice started capturing.", {}, s.seconds);
    return m.text();
}

uint64_t Snapshot::dropped() const {
    return total("rss", "ring_full") + total("queue", "frame_pool_empty") +
           total("capture", "ring_full") + total("codec", "seal_failed") +
           total("egress", "retransmit_overflow") + total("egress", "egress_errors");
}

std::string counter_reference_markdown() {
    std::string out;
    auto table = [&](const char* title, const char* who, std::span<const CounterInfo> info) {
        out += fmt::format("\n### {}\n\n{}\n\n| counter | meaning |\n|---|---|\n", title, who);
        for (const auto& c : info)
            out += fmt::format("| `{}` | {} |\n", c.name, c.description);
    };
    out +=
        "\nEach counter is also a Prometheus metric (`[stats] prometheus`, "
        "docs/operations.md): `sluice_<scope>_<counter>_total` with the block's labels "
        "(port, queue, lcore, stream), its description as HELP.\n";
    table("port (from the NIC)",
          "Read from the driver (`rte_eth_stats`) for each port; labels port, name, driver.",
          kPortCounters);
    table("queue",
          "Per NIC queue (or software queue of a port dealt by software RSS), written by the rx "
          "lcore that polls it.",
          QueueCounters::info);
    table("rss",
          "Per port dealt by software RSS (ports.rx_queues > 1 on a port that cannot spread flows "
          "itself), written by the rx lcore that polls its one NIC queue.",
          RssCounters::info);
    table("capture", "Per capture stage (one per rx lcore, one frame stream each).",
          CaptureCounters::info);
    table("codec", "Per codec stage.", CodecCounters::info);
    table("egress", "Per stream, written by the egress stage.", EgressCounters::info);
    table("transport",
          "Per stream with egress.type \"tcp\" or \"rdma\": the session layer's sender "
          "(connections, acknowledgements, retransmissions), the same for both transports.",
          session::SenderStats::info);
    table("tcp", "Per stream with egress.type = \"tcp\": the TCP transport's own.",
          tcp::TcpCounters::info);
    table("rdma", "Per stream with egress.type = \"rdma\": the RDMA transport's own.",
          rdma::RdmaCounters::info);
    return out;
}

std::string stats_line(const Snapshot& prev, const Snapshot& now) {
    const double dt = now.seconds - prev.seconds;
    auto rate = [&](const char* scope, const char* c) {
        return dt > 0 ? static_cast<double>(now.total(scope, c) - prev.total(scope, c)) / dt : 0.0;
    };
    uint64_t imissed = 0, nombuf = 0;
    for (const auto& p : now.ports)
        imissed += p.imissed, nombuf += p.rx_nombuf;
    const uint64_t raw = now.total("codec", "raw_bytes"),
                   sealed = now.total("codec", "sealed_bytes");
    return fmt::format(
        "{:7.1f}s  rx {}pps {}bit/s | captured {} filtered {} | dropped {} (nic imissed {} "
        "nombuf {}) | out {} frames {}B ratio {:.2f}",
        now.seconds, si(rate("queue", "rx_packets")), si(rate("queue", "rx_bytes") * 8),
        now.total("queue", "captured"), now.total("queue", "filtered"), now.dropped(), imissed,
        nombuf, now.total("egress", "frames"),
        si(static_cast<double>(now.total("egress", "bytes"))),
        sealed ? static_cast<double>(raw) / static_cast<double>(sealed) : 1.0);
}

std::string summary_text(const Snapshot& s) {
    std::string out = fmt::format("summary after {:.1f}s\n", s.seconds);
    for (std::size_t i = 0; i < s.ports.size(); ++i) {
        const auto& p = s.ports[i];
        out += fmt::format(
            "  port {} {} ({}): nic ipackets {} ibytes {} imissed {} ierrors {} "
            "rx_nombuf {}\n",
            i, p.name, p.driver, p.ipackets, p.ibytes, p.imissed, p.ierrors, p.rx_nombuf);
    }
    for (const auto& b : s.blocks) {
        std::string labels;
        for (const auto& [k, v] : b.labels)
            labels += fmt::format(" {} {}", k, v);
        out += fmt::format("  {}{}:", b.scope, labels);
        for (std::size_t c = 0; c < b.values.size(); ++c) {
            out += fmt::format(" {} {}", b.info[c].name, b.values[c]);
        }
        out += "\n";
    }
    const uint64_t raw = s.total("codec", "raw_bytes"), sealed = s.total("codec", "sealed_bytes");
    out += fmt::format(
        "  total: rx {} = filtered {} + captured {} + dropped before capture {}; of the captured: "
        "out {} + dropped after capture {}; compression ratio {:.2f}",
        s.total("queue", "rx_packets"), s.total("queue", "filtered"), s.total("queue", "captured"),
        s.total("queue", "frame_pool_empty"), s.total("egress", "packets"),
        s.total("capture", "ring_full") + s.total("codec", "seal_failed") +
            s.total("egress", "retransmit_overflow") + s.total("egress", "egress_errors"),
        sealed ? static_cast<double>(raw) / static_cast<double>(sealed) : 1.0);
    if (const uint64_t dealt = s.total("rss", "packets")) {
        // Packets a software-RSS dealer could not hand over never reach a
        // queue's rx count.
        out += fmt::format("; software RSS dealt {} = rx of the dealt queues + dropped {}", dealt,
                           s.total("rss", "ring_full"));
    }
    const uint64_t out_frames = s.total("egress", "frames"),
                   done = s.total("egress", "frames_done");
    if (out_frames > done) {
        out += fmt::format(
            "\n  WARNING: {} frame(s) were sent but never acknowledged before the shutdown "
            "timeout: the collector may not have them (raise egress.shutdown_timeout_ms)",
            out_frames - done);
    }
    return out;
}

std::string summary_json(const Snapshot& s) {
    std::string out = fmt::format("{{\n  \"seconds\": {:.3f},\n  \"ports\": [", s.seconds);
    for (std::size_t i = 0; i < s.ports.size(); ++i) {
        const auto& p = s.ports[i];
        out += fmt::format(
            "{}\n    {{\"port\": {}, \"name\": {}, \"driver\": {}, \"ipackets\": {}, \"ibytes\": "
            "{}, \"imissed\": {}, \"ierrors\": {}, \"rx_nombuf\": {}}}",
            i ? "," : "", i, json_string(p.name), json_string(p.driver), p.ipackets, p.ibytes,
            p.imissed, p.ierrors, p.rx_nombuf);
    }
    out += "\n  ],\n  \"blocks\": [";
    std::set<std::string> scopes;
    for (std::size_t i = 0; i < s.blocks.size(); ++i) {
        const auto& b = s.blocks[i];
        scopes.insert(b.scope);
        out += fmt::format("{}\n    {{\"scope\": {}", i ? "," : "", json_string(b.scope));
        for (const auto& [k, v] : b.labels)
            out += fmt::format(", {}: {}", json_string(k), v);
        for (std::size_t c = 0; c < b.values.size(); ++c) {
            out += fmt::format(", \"{}\": {}", b.info[c].name, b.values[c]);
        }
        out += "}";
    }
    out += "\n  ],\n  \"totals\": {";
    bool first_scope = true;
    for (const auto& b : s.blocks) {
        if (!scopes.count(b.scope)) continue;
        scopes.erase(b.scope);
        out += fmt::format("{}\n    {}: {{", first_scope ? "" : ",", json_string(b.scope));
        first_scope = false;
        for (std::size_t c = 0; c < b.info.size(); ++c) {
            out += fmt::format("{}\"{}\": {}", c ? ", " : "", b.info[c].name,
                               s.total(b.scope, b.info[c].name));
        }
        out += "}";
    }
    out += fmt::format("\n  }},\n  \"dropped\": {},\n  \"descriptions\": {{", s.dropped());
    std::set<std::string> described;
    bool first = true;
    for (const auto& b : s.blocks) {
        for (const auto& c : b.info) {
            const std::string key = b.scope + "." + c.name;
            if (!described.insert(key).second) continue;
            out += fmt::format("{}\n    {}: {}", first ? "" : ",", json_string(key),
                               json_string(c.description));
            first = false;
        }
    }
    out += "\n  }\n}\n";
    return out;
}

}  // namespace sluice::dataplane
