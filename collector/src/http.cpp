// The collector's HTTP listener (--metrics ADDR): GET /metrics for
// Prometheus, GET /query for packets back as pcapng. Both run on the
// listener's worker threads (http/), never on the event loop, which keeps
// receiving and writing while a large query streams out.
#include <cstring>

#include "group_source.hpp"
#include <fmt/format.h>

#include "sluice/collector/collector.hpp"
#include "sluice/http/server.hpp"
#include "sluice/index/request.hpp"
#include "sluice/report/log.hpp"
#include "sluice/report/metrics.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/tcp/listener.hpp"
#include "sluice/tcp/tls.hpp"

namespace sluice::collector {
namespace {

constexpr std::string_view kPcapngType = "application/x-pcapng";
constexpr std::size_t kChunkBytes = 256 * 1024;  // one write to the client

// The query's pcapng, in pieces of kChunkBytes, to the HTTP response. Stops
// (write returns false) when the client is gone or too slow, or when the
// collector stops.
class ResponseOutput final : public index::ByteOutput {
  public:
    ResponseOutput(http::Response& r, const std::atomic<bool>& stopping, QueryCounters& c)
        : resp_(r), stopping_(stopping), counters_(c) {
        buf_.reserve(kChunkBytes);
    }
    bool write(std::span<const std::byte> b) override {
        buf_.insert(buf_.end(), b.begin(), b.end());
        return buf_.size() < kChunkBytes || flush();
    }
    bool flush() {
        // relaxed: a flag polled between writes; it publishes nothing.
        if (stopping_.load(std::memory_order_relaxed)) {
            why_ = "the collector is stopping";
            return false;
        }
        if (!resp_.write(buf_)) {
            why_ = "the client left, or did not take the data within --http-timeout";
            return false;
        }
        counters_.query_bytes.add(buf_.size());
        bytes_ += buf_.size();
        buf_.clear();
        return true;
    }
    uint64_t bytes() const { return bytes_; }
    const std::string& why() const { return why_; }

  private:
    http::Response& resp_;
    const std::atomic<bool>& stopping_;
    QueryCounters& counters_;
    std::vector<std::byte> buf_;
    uint64_t bytes_ = 0;
    std::string why_;
};

// Counts the packets a query sends, on their way to the pcapng writer.
class CountingSink final : public index::QuerySink {
  public:
    explicit CountingSink(index::QuerySink& next) : next_(next) {}
    bool packet(const index::QueryPacket& p) override {
        ++packets_;
        return next_.packet(p);
    }
    uint64_t packets() const { return packets_; }

  private:
    index::QuerySink& next_;
    uint64_t packets_ = 0;
};

}  // namespace

void Collector::start_http() {
    if (!opt_.metrics) return;
    http::ServerSettings s;
    s.listen = *opt_.metrics;
    // Every query may run while a scrape and a refusal are served.
    s.threads = opt_.http_max_queries + 4;
    s.timeout_ms = opt_.http_timeout_ms;
    s.token = opt_.http_token;
    s.tls_cert = opt_.http_tls_cert;
    s.tls_key = opt_.http_tls_key;
    s.tls_ca = opt_.http_tls_ca;
    std::vector<http::Route> routes;
    routes.push_back({"/metrics", false, [this](const http::Request&, http::Response& r) {
                          r.send(200, report::MetricsText::kContentType, metrics_text());
                      }});
    routes.push_back(
        {"/query", true, [this](const http::Request& q, http::Response& r) { serve_query(q, r); }});
    publish_streams();
    http_ = std::make_unique<http::Server>(s, std::move(routes), "--metrics");
    const char* auth = !opt_.http_token.empty() && !opt_.http_tls_ca.empty()
                           ? "a bearer token and a client certificate"
                       : !opt_.http_token.empty()  ? "a bearer token"
                       : !opt_.http_tls_ca.empty() ? "a client certificate"
                                                   : "off: no --http-token-file or --http-tls-ca";
    report::log_info("metrics on {}/metrics, queries on {}/query ({})", http_->url(), http_->url(),
                     auth);
}

void Collector::stop_http() {
    if (!http_) return;
    // relaxed: polled by running queries between writes (ResponseOutput).
    http_stopping_.store(true, std::memory_order_relaxed);
    http_->stop();  // waits for the handlers that run; the counters stay for the summary
}

std::vector<std::pair<std::string, uint64_t>> Collector::http_counters() const {
    std::vector<std::pair<std::string, uint64_t>> v;
    if (!http_) return v;
    const auto h = http_->counters().snapshot();
    for (std::size_t i = 0; i < h.size(); ++i)
        v.emplace_back(http::HttpCounters::info[i].name, h[i]);
    const auto q = query_counters_.snapshot();
    for (std::size_t i = 0; i < q.size(); ++i)
        v.emplace_back(QueryCounters::info[i].name, q[i]);
    return v;
}

std::string Collector::metrics_url() const {
    return http_ ? http_->url() : std::string();
}

void Collector::publish_streams() {
    // Every stream of this run, open or closed as idle (stream_records()):
    // a counter does not vanish from the metrics when its stream closes.
    std::vector<StreamBoard> b;
    for (const StreamRecord& r : stream_records())
        b.push_back({r.id, r.connected, r.run});
    std::lock_guard lock(board_mutex_);
    board_.swap(b);
}

std::string Collector::metrics_text() const {
    report::MetricsText m("sluice_collector");
    const auto snap = counters_.snapshot();
    for (std::size_t i = 0; i < snap.size(); ++i)
        m.counter(CollectorCounters::info[i].name, CollectorCounters::info[i].description, {},
                  snap[i]);
    const auto files = file_counters_.snapshot();
    for (std::size_t i = 0; i < files.size(); ++i)
        m.counter(FileCounters::info[i].name, FileCounters::info[i].description, {}, files[i]);
    // tcp_ and group_ go only after the HTTP listener has stopped (~Collector).
    if (tcp_ && tcp::tls_enabled(opt_.tls, tcp::TlsRole::Server)) {
        const auto tls = tcp_->tls_stats().snapshot();
        for (std::size_t i = 0; i < tls.size(); ++i)
            m.counter(tcp::TlsCounters::info[i].name, tcp::TlsCounters::info[i].description, {},
                      tls[i]);
    }
    if (group_) {
        const report::MetricLabels labels{{"group", opt_.group.group}};
        const auto g = group_->counters().snapshot();
        for (std::size_t i = 0; i < g.size(); ++i)
            m.counter(fmt::format("group_{}", GroupCounters::info[i].name),
                      GroupCounters::info[i].description, labels, g[i]);
    }
    {
        std::lock_guard lock(board_mutex_);
        for (const StreamBoard& s : board_) {
            const report::MetricLabels labels{{"stream", std::to_string(s.id)}};
            const auto v = s.run.values();
            for (std::size_t i = 0; i < v.size(); ++i)
                m.counter(fmt::format("stream_{}", StreamTotals::info[i].name),
                          StreamTotals::info[i].description, labels, v[i]);
            m.gauge("stream_connected",
                    "1 while a sender is connected and writing this stream, 0 otherwise.", labels,
                    s.connected ? 1 : 0);
        }
    }
    if (http_) {
        const auto h = http_->counters().snapshot();
        for (std::size_t i = 0; i < h.size(); ++i)
            m.counter(fmt::format("http_{}", http::HttpCounters::info[i].name),
                      http::HttpCounters::info[i].description, {}, h[i]);
    }
    const auto q = query_counters_.snapshot();
    for (std::size_t i = 0; i < q.size(); ++i)
        m.counter(fmt::format("http_{}", QueryCounters::info[i].name),
                  QueryCounters::info[i].description, {}, q[i]);
    // relaxed: a gauge; it publishes nothing.
    m.gauge("http_queries_running", "GET /query requests streaming now.", {},
            queries_running_.load(std::memory_order_relaxed));
    return m.text();
}

void Collector::serve_query(const http::Request& req, http::Response& resp) {
    // A slot first, so a flood of queries costs a 503 each and no reading.
    // relaxed: the count bounds work; nothing is published through it.
    uint32_t running = queries_running_.load(std::memory_order_relaxed);
    do {
        if (running >= opt_.http_max_queries) {
            query_counters_.queries_busy.inc();
            resp.send(503, "text/plain; charset=utf-8",
                      fmt::format("{} queries are running (--http-max-queries): try again later\n",
                                  running),
                      {{"Retry-After", "5"}});
            return;
        }
    } while (
        !queries_running_.compare_exchange_weak(running, running + 1, std::memory_order_relaxed));
    struct Slot {
        std::atomic<uint32_t>& n;
        ~Slot() { n.fetch_sub(1, std::memory_order_relaxed); }
    } slot{queries_running_};

    index::QuerySpec spec;
    spec.dirs.push_back(settings_.dir);
    bool filter_given = false;
    for (const auto& [k, v] : req.params()) {
        std::optional<std::string> err;
        if (k == "filter") {
            if (filter_given) err = "filter given twice";
            filter_given = true;
            spec.filter = v;
        } else if (k == "from" || k == "to") {
            err = index::set_time(spec, k == "from", k, v);
        } else if (k == "stream") {
            err = index::add_stream(spec, k, v);
        } else if (k == "inner") {
            if (v == "1" || v == "true")
                spec.inner = true;
            else if (v != "0" && v != "false")
                err = fmt::format("inner '{}': give 1 or 0", v);
        } else {
            err = fmt::format(
                "unknown parameter '{}': GET /query takes filter, from, to, stream and inner", k);
        }
        if (err) {
            resp.error(400, *err);
            return;
        }
    }
    if (auto err = index::check_range(spec, "from", "to")) {
        resp.error(400, *err);
        return;
    }
    const std::string what = index::describe(spec);
    std::string error;
    auto q = index::make_query(spec, &error);
    if (!q) {
        resp.error(400, error);
        return;
    }

    const uint64_t t0 = session::monotonic_ns();
    if (!resp.start_stream(kPcapngType,
                           {{"Content-Disposition", "attachment; filename=\"query.pcapng\""}})) {
        query_counters_.queries_failed.inc();
        return;
    }
    ResponseOutput out(resp, http_stopping_, query_counters_);
    // The same section header as sluice-query's: the same bytes for the
    // same query.
    const index::SectionHeader shb = index::section_header(spec, SLUICE_VERSION);
    index::PcapngSink pcapng(out, shb.application, shb.comment);
    CountingSink sink(pcapng);
    index::QueryStats st;
    std::vector<std::string> warnings;
    bool ok = q->run(sink, st, warnings, &error) && pcapng.ok() && out.flush() && resp.finish();
    query_counters_.query_packets.add(sink.packets());
    for (const std::string& w : warnings)
        report::log_warning("query from {}: {}", req.remote(), w);
    const std::string summary =
        fmt::format("query from {}: {}: {} packets, {} bytes in {:.2f} s", req.remote(),
                    what.empty() ? "every packet" : what, sink.packets(), out.bytes(),
                    double(session::monotonic_ns() - t0) / 1e9);
    if (ok) {
        query_counters_.queries.inc();
        report::log_info("{}", summary);
    } else {
        query_counters_.queries_failed.inc();
        report::log_warning("{}, cut short: {}", summary, !out.why().empty() ? out.why() : error);
    }
}

}  // namespace sluice::collector
