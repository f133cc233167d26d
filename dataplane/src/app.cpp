#include "sluice/dataplane/app.hpp"

#include <fmt/format.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/eal.hpp"
#include "sluice/dataplane/log.hpp"
#include "sluice/dataplane/ports.hpp"
#include "sluice/dataplane/stats.hpp"
#include "sluice/dataplane/worker.hpp"

namespace sluice::dataplane {
namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }

config::LoadResult load_config(const Options& o) {
    auto r = config::load_file(o.config_path, o.overrides);
    for (const auto& d : r.diagnostics) std::fprintf(stderr, "%s\n", d.str().c_str());
    return r;
}

std::optional<std::string> check_lcores(const config::Config& cfg) {
    const unsigned main_lcore = rte_get_main_lcore();
    auto check = [&](const char* key, uint32_t l) -> std::optional<std::string> {
        if (l >= RTE_MAX_LCORE || !rte_lcore_is_enabled(l)) {
            std::string enabled;
            unsigned i;
            RTE_LCORE_FOREACH(i) { enabled += (enabled.empty() ? "" : ",") + std::to_string(i); }
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

Snapshot take_snapshot(double seconds, const std::vector<PortState>& ports,
                       const std::vector<RxWorker>& workers) {
    Snapshot s;
    s.seconds = seconds;
    for (const auto& p : ports) {
        PortSnapshot ps;
        ps.name = p.name;
        ps.driver = p.driver;
        rte_eth_stats st{};
        if (rte_eth_stats_get(p.port_id, &st) == 0) {
            ps.ipackets = st.ipackets, ps.ibytes = st.ibytes, ps.imissed = st.imissed;
            ps.ierrors = st.ierrors, ps.rx_nombuf = st.rx_nombuf;
        }
        s.ports.push_back(ps);
    }
    for (const auto& w : workers) {
        for (const auto& q : w.queues) {
            QueueSnapshot qs;
            qs.port_index = q.port_index;
            qs.queue = q.queue_id;
            qs.lcore = w.lcore;
            qs.counters = q.counters->snapshot();
            s.queues.push_back(qs);
        }
    }
    std::sort(s.queues.begin(), s.queues.end(), [](const auto& a, const auto& b) {
        return std::tie(a.port_index, a.queue) < std::tie(b.port_index, b.queue);
    });
    return s;
}

int fail(int code, const std::string& msg) {
    log_error("{}", msg);
    return code;
}

}  // namespace

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

    int rc = kExitOk;
    std::vector<PortState> ports;
    std::map<int, rte_mempool*> pools;
    std::vector<RxWorker> workers;
    std::vector<std::unique_ptr<QueueCounters>> counters;
    std::atomic<bool> stop{false};

    auto cleanup = [&] {
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

    // Deal (port, queue) pairs to rx lcores round-robin, port-major.
    workers.resize(cfg.lcores.rx.size());
    for (std::size_t i = 0; i < workers.size(); ++i) {
        workers[i].lcore = cfg.lcores.rx[i];
        workers[i].burst = static_cast<uint16_t>(cfg.lcores.burst_size);
        workers[i].stop = &stop;
    }
    std::size_t next = 0;
    for (std::size_t pi = 0; pi < ports.size(); ++pi) {
        for (uint16_t q = 0; q < ports[pi].rx_queues; ++q) {
            counters.push_back(std::make_unique<QueueCounters>());
            RxWorker& w = workers[next++ % workers.size()];
            w.queues.push_back(
                RxQueue{ports[pi].port_id, q, static_cast<uint16_t>(pi), counters.back().get()});
            const unsigned lsock = rte_lcore_to_socket_id(w.lcore);
            if (static_cast<int>(lsock) != ports[pi].socket) {
                log_warning("lcore {} (NUMA node {}) polls port '{}' queue {} on node {}: every "
                            "packet crosses the interconnect; pick lcores on node {}",
                            w.lcore, lsock, ports[pi].name, q, ports[pi].socket,
                            ports[pi].socket);
            }
        }
    }

    for (auto& w : workers) {
        const int lrc = rte_eal_remote_launch(rx_count_and_free, &w, w.lcore);
        if (lrc != 0) {
            stop.store(true, std::memory_order_release);
            rte_eal_mp_wait_lcore();
            cleanup();
            return fail(kExitRuntime, fmt::format("cannot launch lcore {}: it is busy", w.lcore));
        }
    }
    log_info("capturing: {} port(s), {} queue(s) on lcore(s) {}; stop with Ctrl-C", ports.size(),
             counters.size(), fmt::join(cfg.lcores.rx, ","));

    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
    Snapshot prev = take_snapshot(0, ports, workers);
    double next_print = cfg.stats.interval_s;
    double last_rx_change = 0;
    uint64_t last_rx = 0;
    std::string reason = "signal";
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        const double t = seconds();
        if (int sig = g_signal.load(std::memory_order_relaxed)) {
            reason = sig == SIGINT ? "SIGINT" : "SIGTERM";
            break;
        }
        uint64_t rx = 0;
        for (const auto& c : counters) rx += c->rx_packets.get();
        if (rx != last_rx) last_rx = rx, last_rx_change = t;
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
            Snapshot now = take_snapshot(t, ports, workers);
            std::printf("%s\n", stats_line(prev, now).c_str());
            std::fflush(stdout);
            prev = std::move(now);
            next_print += cfg.stats.interval_s;
        }
    }
    log_info("stopping ({})", reason);
    // release pairs with the workers' acquire load of `stop`.
    stop.store(true, std::memory_order_release);
    rte_eal_mp_wait_lcore();

    const Snapshot final_snapshot = take_snapshot(seconds(), ports, workers);
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
