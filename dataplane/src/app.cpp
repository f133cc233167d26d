#include "sluice/dataplane/app.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_pdump.h>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/eal.hpp"
#include "sluice/dataplane/filter.hpp"
#include "sluice/dataplane/pipeline.hpp"
#include "sluice/dataplane/ports.hpp"
#include "sluice/dataplane/stats.hpp"
#include "sluice/dataplane/telemetry.hpp"
#include "sluice/http/server.hpp"
#include "sluice/mempool/huge_region.hpp"
#include "sluice/report/log.hpp"
#include "sluice/report/metrics.hpp"
#include "sluice/session/endpoint.hpp"

namespace sluice::dataplane {

using report::log_error;
using report::log_info;
using report::log_warning;
namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) {
    g_signal.store(sig, std::memory_order_relaxed);
}

config::LoadResult load_config(const Options& o) {
    auto r = load_and_check_config(o.config_path, o.overrides);
    for (const auto& d : r.diagnostics)
        std::fprintf(stderr, "%s\n", d.str().c_str());
    return r;
}

std::optional<std::string> check_lcores(const config::Config& cfg) {
    const unsigned main_lcore = rte_get_main_lcore();
    auto check = [&](const char* key, uint32_t l) -> std::optional<std::string> {
        if (l >= RTE_MAX_LCORE || !rte_lcore_is_enabled(l)) {
            std::string enabled;
            unsigned i;
            RTE_LCORE_FOREACH(i) {
                enabled += (enabled.empty() ? "" : ",") + std::to_string(i);
            }
            return fmt::format(
                "{} lists lcore {}, which EAL does not run (EAL lcores: {}): add it to EAL's -l "
                "list, or change {}",
                key, l, enabled, key);
        }
        if (l == main_lcore) {
            return fmt::format(
                "{} lists lcore {}, the main lcore, which runs the control plane: give workers "
                "other lcores (the main lcore is the first in -l)",
                key, l);
        }
        return std::nullopt;
    };
    for (uint32_t l : cfg.lcores.rx) {
        if (auto e = check("lcores.rx", l)) return e;
    }
    for (uint32_t l : cfg.lcores.codec) {
        if (auto e = check("lcores.codec", l)) return e;
    }
    for (uint32_t l : cfg.lcores.egress) {
        if (auto e = check("lcores.egress", l)) return e;
    }
    return std::nullopt;
}

std::unique_ptr<FrameSink> make_sink(const config::Config& cfg, uint32_t index, uint64_t stream_id,
                                     std::string& error) {
    switch (cfg.egress.type) {
        case config::EgressType::Null:
            return make_null_sink();
        case config::EgressType::File: {
            std::string path = cfg.egress.path;
            if (cfg.lcores.rx.size() > 1) path += fmt::format(".{}", stream_id);
            return make_file_sink(path, error);
        }
        case config::EgressType::Tcp:
            return make_tcp_sink(cfg, stream_id, error);
        case config::EgressType::Rdma:
            return make_rdma_sink(cfg, stream_id, error);
        case config::EgressType::JetStream:
            return make_jetstream_sink(cfg, stream_id, error);
    }
    (void)index;
    error = fmt::format("egress.type = \"{}\" is not available in this build",
                        config::to_string(cfg.egress.type));
    return nullptr;
}

int fail(int code, const std::string& msg) {
    log_error("{}", msg);
    return code;
}

}  // namespace

config::LoadResult load_and_check_config(const std::string& path,
                                         std::span<const std::string> overrides) {
    auto r = config::load_file(path, overrides);
    if (!r.config.capture.filter.empty()) {
        if (auto err = check_filter(r.config.capture.filter, r.config.capture.snaplen)) {
            r.diagnostics.push_back(
                config::Diagnostic{path, r.config.position_of("capture.filter"), "capture.filter",
                                   fmt::format("not a valid tcpdump expression: {} (found \"{}\")",
                                               *err, r.config.capture.filter),
                                   false});
        }
    }
    for (std::size_t i = 0; i < r.config.capture.slices.size(); ++i) {
        const config::Slice& sl = r.config.capture.slices[i];
        if (sl.filter.empty()) continue;  // reported by the loader
        if (auto err = check_filter(sl.filter, sl.snaplen)) {
            const std::string key = fmt::format("capture.slice[{}].filter", i);
            r.diagnostics.push_back(config::Diagnostic{
                path, r.config.position_of(key), key,
                fmt::format("not a valid tcpdump expression: {} (found \"{}\")", *err, sl.filter),
                false});
        }
    }
    return r;
}

int run_sluice(const Options& o) {
    auto loaded = load_config(o);
    if (!loaded.ok()) {
        return fail(kExitUsage, fmt::format("{} has {} error(s); sluice --check-config {} "
                                            "re-checks it",
                                            o.config_path, loaded.error_count(), o.config_path));
    }
    const config::Config& cfg = loaded.config;

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    if (auto failure = init_eal(o.eal_args)) return fail(failure->exit_code, failure->message);
    // mempool's warnings (a frame pool falling back to small pages) go to the log.
    mempool::set_warning_sink([](std::string_view message) { log_warning("{}", message); });

    int rc = kExitOk;
    std::vector<PortState> ports;
    std::map<int, rte_mempool*> pools;
    std::unique_ptr<Pipeline> pipeline;
    std::unique_ptr<http::Server> metrics;

    // dpdk-dumpcap / dpdk-pdump attach through EAL's multi-process channel,
    // which --in-memory does without: then say so once, and run on.
    bool pdump = false;
    if (cfg.capture.pdump) {
        const bool private_memory = std::any_of(o.eal_args.begin(), o.eal_args.end(), [](auto& a) {
            return a == "--in-memory" || a == "--no-shconf";
        });
        if (private_memory) {
            log_info(
                "capture.pdump: dpdk-dumpcap cannot attach to this process: it runs "
                "without EAL's shared files (--in-memory); run it with --file-prefix NAME "
                "instead and give dumpcap the same --file-prefix");
        } else if (rte_pdump_init() == 0) {
            pdump = true;
        } else {
            log_warning("capture.pdump: rte_pdump_init: {}: dpdk-dumpcap cannot attach",
                        rte_strerror(rte_errno));
        }
    }
    auto cleanup = [&] {
        metrics.reset();  // waits for a scrape in progress: it reads the pipeline
        set_telemetry_source(nullptr, nullptr, {});
        pipeline.reset();
        if (pdump) rte_pdump_uninit();
        stop_ports(ports);
        rte_eal_cleanup();
    };

    if (auto e = check_lcores(cfg)) {
        cleanup();
        return fail(kExitUsage, *e);
    }
    if (auto e = find_ports(cfg, ports)) {
        cleanup();
        return fail(e->exit_code, e->message);
    }
    if (auto e = create_mbuf_pools(cfg, ports, pools)) {
        cleanup();
        return fail(e->exit_code, e->message);
    }
    for (auto& p : ports) {
        if (auto e = start_port(p, cfg, pools[p.socket])) {
            // A port whose set-up failed half-way is left to process exit:
            // some drivers free its state twice when closed (net_pcap's
            // infinite_rx in DPDK 22.11), so neither it nor EAL is torn down.
            for (auto& other : ports) {
                if (other.started) rte_eth_dev_stop(other.port_id);
            }
            return fail(e->exit_code, e->message);
        }
        log_info("port {} '{}' ({}, socket {}): {} rx queue(s), {}", p.port_id, p.name, p.driver,
                 p.socket, p.rx_queues, link_status(p.port_id));
    }

    std::string error;
    pipeline = Pipeline::build(
        cfg, ports,
        [&](uint32_t index, uint64_t stream_id, std::string& err) {
            return make_sink(cfg, index, stream_id, err);
        },
        error);
    if (!pipeline) {
        cleanup();
        return fail(kExitRuntime, error);
    }
    if (cfg.stats.telemetry) {
        register_telemetry();
        std::vector<rte_mempool*> mbuf_pools;
        mbuf_pools.reserve(pools.size());
        for (auto& [socket, mp] : pools)
            mbuf_pools.push_back(mp);
        set_telemetry_source(pipeline.get(), &ports, mbuf_pools);
    }
    if (!cfg.stats.prometheus.empty()) {
        // GET /metrics on civetweb's threads, created here by the main
        // lcore's thread and so pinned to its CPU (EAL set the affinity):
        // a scrape reads the counters relaxed and never runs on a worker.
        http::ServerSettings hs;
        hs.listen = *session::parse_endpoint(cfg.stats.prometheus);  // checked with the config
        hs.threads = 2;
        const auto started = std::chrono::steady_clock::now();
        std::vector<http::Route> routes;
        routes.push_back({"/metrics", false,
                          [&pipeline, &ports, started](const http::Request&, http::Response& r) {
                              const double t = std::chrono::duration<double>(
                                                   std::chrono::steady_clock::now() - started)
                                                   .count();
                              r.send(200, report::MetricsText::kContentType,
                                     metrics_text(pipeline->snapshot(t, ports)));
                          }});
        try {
            metrics = std::make_unique<http::Server>(hs, std::move(routes), "stats.prometheus");
        } catch (const std::exception& e) {
            cleanup();
            return fail(kExitRuntime, e.what());
        }
        log_info("metrics on {}/metrics", metrics->url());
    }
    if (!pipeline->launch(error)) {
        cleanup();
        return fail(kExitRuntime, error);
    }
    log_info("capturing ({}): {} port(s) on lcore(s) {}; frames to {}; stop with Ctrl-C",
             config::to_string(cfg.lcores.mode), ports.size(), fmt::join(pipeline->lcores(), ","),
             fmt::join(pipeline->sink_descriptions(), ", "));

    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
    Snapshot prev = pipeline->snapshot(0, ports);
    double next_print = cfg.stats.interval_s;
    // --idle-timeout counts time without packets, not time in which
    // backpressure held rx back (a frozen collector, a full retransmit
    // buffer): a paused poll is activity, so a pcap replay is not cut short.
    double last_rx_change = 0;
    uint64_t last_rx = 0, last_paused = 0;
    std::string reason = "signal";
    std::vector<std::string> links;
    links.reserve(ports.size());
    for (const auto& p : ports)
        links.push_back(link_status(p.port_id));
    // Transport events, logged as they happen (the egress lcore only counts).
    std::vector<std::pair<uint64_t, uint64_t>> seen(pipeline->sinks().size());
    auto log_transport_events = [&] {
        for (std::size_t i = 0; i < seen.size(); ++i) {
            const FrameSink& sink = *pipeline->sinks()[i];
            const uint64_t connects = sink.connects(), failures = sink.failures();
            if (failures != seen[i].second) {
                log_warning("stream {}: {} (reconnecting)", cfg.egress.stream_id + i,
                            sink.last_error());
            }
            if (connects != seen[i].first) {
                log_info("stream {}: connected: {}", cfg.egress.stream_id + i, sink.describe());
            }
            seen[i] = {connects, failures};
        }
    };
    double next_link_check = 0.1;
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        const double t = seconds();
        if (t >= next_link_check) {
            next_link_check = t + 0.1;
            log_transport_events();
            pipeline->publish_nic_drops();
            for (std::size_t i = 0; i < ports.size(); ++i) {
                std::string now = link_status(ports[i].port_id);
                if (now != links[i]) {
                    log_info("port {} '{}': {}", ports[i].port_id, ports[i].name, now);
                    links[i] = std::move(now);
                }
            }
        }
        if (int sig = g_signal.load(std::memory_order_relaxed)) {
            reason = sig == SIGINT ? "SIGINT" : "SIGTERM";
            break;
        }
        const uint64_t rx = pipeline->received();
        const uint64_t paused = pipeline->paused_polls();
        if (rx != last_rx || paused != last_paused)
            last_rx = rx, last_paused = paused, last_rx_change = t;
        if (o.packets && rx >= o.packets) {
            reason = fmt::format("{} packets received", rx);
            break;
        }
        if (o.duration_s > 0 && t >= o.duration_s) {
            reason = fmt::format("--duration {}s reached", o.duration_s);
            break;
        }
        if (o.idle_timeout_s > 0 && rx > 0 && t - last_rx_change >= o.idle_timeout_s) {
            reason = fmt::format("idle for {}s", o.idle_timeout_s);
            break;
        }
        if (cfg.stats.interval_s && t >= next_print) {
            Snapshot now = pipeline->snapshot(t, ports);
            std::printf("%s\n", stats_line(prev, now).c_str());
            std::fflush(stdout);
            prev = std::move(now);
            next_print += cfg.stats.interval_s;
        }
    }
    log_info("stopping ({}): draining rings, flushing frames", reason);
    pipeline->drain_and_stop(cfg.egress.shutdown_timeout_ms / 1000.0 + 1.0);
    log_transport_events();
    for (const auto& d : pipeline->sink_descriptions())
        log_info("egress at exit: {}", d);

    const Snapshot final_snapshot = pipeline->snapshot(seconds(), ports);
    std::printf("%s\n", summary_text(final_snapshot).c_str());
    if (!cfg.stats.summary_json.empty()) {
        const std::string json = summary_json(final_snapshot);
        if (cfg.stats.summary_json == "-") {
            std::fputs(json.c_str(), stdout);
        } else {
            std::ofstream out(cfg.stats.summary_json);
            out << json;
            if (!out) {
                log_error("cannot write stats.summary_json {}", cfg.stats.summary_json);
                rc = kExitRuntime;
            }
        }
    }
    std::fflush(stdout);
    cleanup();
    return rc;
}

}  // namespace sluice::dataplane
