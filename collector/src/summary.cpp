// What the collector tells its operator about what it wrote: the periodic
// stats line, and the exit summary as text and JSON.
#include "group_source.hpp"
#include <fmt/format.h>

#include "sluice/collector/collector.hpp"
#include "sluice/http/server.hpp"
#include "sluice/report/format.hpp"
#include "sluice/report/json.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/tcp/listener.hpp"

namespace sluice::collector {

using report::si;

void Collector::stats_line(uint64_t now) {
    uint64_t packets = 0, bytes = 0, dup = 0, lost = 0, gaps = 0, connected = 0;
    auto add = [&](const StreamTotals& r) {
        packets += r.packets_written;
        bytes += r.packet_bytes_written;
        dup += r.frames_duplicate;
        lost += r.packets_lost;
        gaps += r.gaps;
    };
    for (const auto& [id, s] : streams_) {
        add(s->run());
        connected += s->connection != nullptr;
    }
    for (const auto& [id, r] : retired_)
        add(r.run);
    const double dt = (now - last_stats_ns_) / 1e9;
    const double pps = dt > 0 ? (packets - last_packets_) / dt : 0;
    const double bps = dt > 0 ? (bytes - last_bytes_) * 8.0 / dt : 0;
    last_stats_ns_ = now;
    last_packets_ = packets;
    last_bytes_ = bytes;
    const auto& k = counters_;
    report::log_info(
        "{:.1f}s | {} of {} streams connected | {}pps {}bit/s | written {} packets {}B | "
        "duplicate frames {} | lost {} packets in {} gaps | refused {} dropped {}",
        (now - started_ns_) / 1e9, connected, streams_.size() + retired_.size(), si(pps), si(bps),
        packets, si(double(bytes)), dup, lost, gaps,
        k.refused_version.get() + k.refused_auth.get() + k.refused_tls.get() + k.dropped_busy.get(),
        k.dropped_protocol.get() + k.dropped_bad_frame.get() + k.dropped_timeout.get() +
            k.dropped_storage.get());
}

std::string Collector::summary_text() const {
    const double secs = started_ns_ ? (session::monotonic_ns() - started_ns_) / 1e9 : 0;
    std::string out = fmt::format("sluice-collector: summary after {:.1f} s\n", secs);
    for (const StreamRecord& s : stream_records()) {
        const StreamTotals& r = s.run;
        const StreamTotals& t = s.all_runs;
        out += fmt::format(
            "  stream {}: this run {} packets ({}B) in {} frames, {} files opened; duplicate "
            "frames {}; lost {} packets in {} frames ({} gaps); all runs {} packets, lost {}; "
            "next sequence {}; file {}\n",
            s.id, r.packets_written, si(double(r.packet_bytes_written)), r.frames_written,
            s.files_opened, r.frames_duplicate, r.packets_lost, r.frames_lost, r.gaps,
            t.packets_written, t.packets_lost, s.next_sequence, s.file.empty() ? "(none)" : s.file);
    }
    out += "  connections:";
    const auto snap = counters_.snapshot();
    for (std::size_t i = 0; i < snap.size(); ++i)
        out += fmt::format(" {} {}{}", CollectorCounters::info[i].name, snap[i],
                           i + 1 < snap.size() ? "," : "\n");
    out += "  files:";
    const auto files = file_counters_.snapshot();
    for (std::size_t i = 0; i < files.size(); ++i)
        out += fmt::format(" {} {}{}", FileCounters::info[i].name, files[i],
                           i + 1 < files.size() ? "," : "\n");
    if (tcp_ && tcp::tls_enabled(opt_.tls, tcp::TlsRole::Server)) {
        out += "  tls:";
        const auto tls = tcp_->tls_stats().snapshot();
        for (std::size_t i = 0; i < tls.size(); ++i)
            out += fmt::format(" {} {}{}", tcp::TlsCounters::info[i].name, tls[i],
                               i + 1 < tls.size() ? "," : "\n");
    }
    if (group_) {
        out += fmt::format("  group {} (member {}):", opt_.group.group, group_->id());
        const auto g = group_->counters().snapshot();
        for (std::size_t i = 0; i < g.size(); ++i)
            out += fmt::format(" {} {}{}", GroupCounters::info[i].name, g[i],
                               i + 1 < g.size() ? "," : "\n");
    }
    if (http_) {
        out += "  http:";
        for (const auto& [name, value] : http_counters())
            out += fmt::format(" {} {},", name, value);
        out.back() = '\n';
    }
    return out;
}

std::string Collector::summary_json() const {
    const double secs = started_ns_ ? (session::monotonic_ns() - started_ns_) / 1e9 : 0;
    auto totals = [](const StreamTotals& t) {
        const auto v = t.values();
        std::string o = "{";
        for (std::size_t i = 0; i < v.size(); ++i)
            o += fmt::format("{}\"{}\": {}", i ? ", " : "", StreamTotals::info[i].name, v[i]);
        return o + "}";
    };
    std::string out = fmt::format("{{\"seconds\": {:.3f}, \"streams\": [", secs);
    bool first = true;
    for (const StreamRecord& s : stream_records()) {
        out += fmt::format(
            "{}{{\"stream_id\": {}, \"run\": {}, \"all_runs\": {}, \"files_opened\": {}, "
            "\"next_sequence\": {}, \"session_id\": {}, \"file\": {}}}",
            first ? "" : ", ", s.id, totals(s.run), totals(s.all_runs), s.files_opened,
            s.next_sequence, s.session_id, report::json_string(s.file));
        first = false;
    }
    out += "], \"counters\": {";
    const auto snap = counters_.snapshot();
    for (std::size_t i = 0; i < snap.size(); ++i)
        out += fmt::format("{}\"{}\": {}", i ? ", " : "", CollectorCounters::info[i].name, snap[i]);
    out += "}, \"files\": {";
    const auto files = file_counters_.snapshot();
    for (std::size_t i = 0; i < files.size(); ++i)
        out += fmt::format("{}\"{}\": {}", i ? ", " : "", FileCounters::info[i].name, files[i]);
    out += "}";
    if (tcp_ && tcp::tls_enabled(opt_.tls, tcp::TlsRole::Server)) {
        out += ", \"tls\": {";
        const auto tls = tcp_->tls_stats().snapshot();
        for (std::size_t i = 0; i < tls.size(); ++i)
            out +=
                fmt::format("{}\"{}\": {}", i ? ", " : "", tcp::TlsCounters::info[i].name, tls[i]);
        out += "}";
    }
    if (group_) {
        out +=
            fmt::format(", \"group\": {{\"name\": {}, \"member\": {}",
                        report::json_string(opt_.group.group), report::json_string(group_->id()));
        const auto g = group_->counters().snapshot();
        for (std::size_t i = 0; i < g.size(); ++i)
            out += fmt::format(", \"{}\": {}", GroupCounters::info[i].name, g[i]);
        out += "}";
    }
    if (http_) {
        out += ", \"http\": {";
        bool first_http = true;
        for (const auto& [name, value] : http_counters()) {
            out += fmt::format("{}\"{}\": {}", first_http ? "" : ", ", name, value);
            first_http = false;
        }
        out += "}";
    }
    out += "}\n";
    return out;
}

}  // namespace sluice::collector
