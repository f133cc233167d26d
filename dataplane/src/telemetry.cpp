#include "sluice/dataplane/telemetry.hpp"

#include <chrono>
#include <mutex>

#include <fmt/format.h>

#include <rte_mempool.h>
#include <rte_telemetry.h>

#include "sluice/report/log.hpp"

namespace sluice::dataplane {
namespace {

// Telemetry callbacks run on DPDK's telemetry thread; the mutex keeps the
// pipeline alive while one runs (control path only, never an lcore).
struct Source {
    std::mutex m;
    const Pipeline* pipeline = nullptr;
    const std::vector<PortState>* ports = nullptr;
    std::vector<rte_mempool*> mbuf_pools;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};
Source& source() {
    static Source s;
    return s;
}

// Telemetry names allow letters, digits, '_' and '/'.
std::string key_of(const BlockSnapshot& b) {
    std::string k = b.scope;
    for (const auto& [name, value] : b.labels)
        (k += '_').append(name).append(value);
    return k;
}

int stats_cmd(const char*, const char*, rte_tel_data* d) {
    auto& src = source();
    std::lock_guard lock(src.m);
    rte_tel_data_start_dict(d);
    if (!src.pipeline) return 0;
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - src.start).count();
    const Snapshot s = src.pipeline->snapshot(t, *src.ports);
    for (std::size_t i = 0; i < s.ports.size(); ++i) {
        rte_tel_data* p = rte_tel_data_alloc();
        rte_tel_data_start_dict(p);
        rte_tel_data_add_dict_string(p, "name", s.ports[i].name.c_str());
        rte_tel_data_add_dict_u64(p, "ipackets", s.ports[i].ipackets);
        rte_tel_data_add_dict_u64(p, "ibytes", s.ports[i].ibytes);
        rte_tel_data_add_dict_u64(p, "imissed", s.ports[i].imissed);
        rte_tel_data_add_dict_u64(p, "ierrors", s.ports[i].ierrors);
        rte_tel_data_add_dict_u64(p, "rx_nombuf", s.ports[i].rx_nombuf);
        rte_tel_data_add_dict_container(d, fmt::format("port{}", i).c_str(), p, 0);
    }
    for (const auto& b : s.blocks) {
        rte_tel_data* c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        for (std::size_t i = 0; i < b.values.size(); ++i) {
            rte_tel_data_add_dict_u64(c, b.info[i].name, b.values[i]);
        }
        rte_tel_data_add_dict_container(d, key_of(b).c_str(), c, 0);
    }
    rte_tel_data_add_dict_u64(d, "dropped", s.dropped());
    return 0;
}

int rings_cmd(const char*, const char*, rte_tel_data* d) {
    auto& src = source();
    std::lock_guard lock(src.m);
    rte_tel_data_start_dict(d);
    if (!src.pipeline) return 0;
    int i = 0;
    for (const auto& r : src.pipeline->rings()) {
        rte_tel_data* c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_string(c, "name", r.name.c_str());
        rte_tel_data_add_dict_u64(c, "capacity", r.capacity());
        rte_tel_data_add_dict_u64(c, "used", r.used());
        rte_tel_data_add_dict_container(d, fmt::format("ring{}", i++).c_str(), c, 0);
    }
    return 0;
}

int pools_cmd(const char*, const char*, rte_tel_data* d) {
    auto& src = source();
    std::lock_guard lock(src.m);
    rte_tel_data_start_dict(d);
    if (!src.pipeline) return 0;
    for (const FramePool* p : src.pipeline->pools()) {
        rte_tel_data* c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_string(c, "kind", "frames");
        rte_tel_data_add_dict_u64(c, "size", p->count());
        rte_tel_data_add_dict_u64(c, "object_bytes", p->object_bytes());
        rte_tel_data_add_dict_u64(c, "in_use", p->in_use());
        rte_tel_data_add_dict_string(c, "page_size", p->page_size().c_str());
        rte_tel_data_add_dict_container(d, p->name().c_str(), c, 0);
    }
    for (rte_mempool* mp : src.mbuf_pools) {
        rte_tel_data* c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_string(c, "kind", "mbufs");
        rte_tel_data_add_dict_u64(c, "size", mp->size);
        rte_tel_data_add_dict_u64(c, "in_use", rte_mempool_in_use_count(mp));
        rte_tel_data_add_dict_container(d, mp->name, c, 0);
    }
    return 0;
}

// The reply is one string (telemetry strings in a dict hold 127 bytes; one
// reply string 8 KB): its first word says what happened, for sluice-ctl.
// Quotes and backslashes are replaced so that the JSON needs no escaping.
void reply(rte_tel_data* d, const char* outcome, const std::string& text) {
    std::string out = std::string(outcome) + ": " + text;
    if (out.size() >= RTE_TEL_MAX_SINGLE_STRING_LEN) out.resize(RTE_TEL_MAX_SINGLE_STRING_LEN - 1);
    for (char& c : out) {
        if (c == '"') c = '\'';
        if (c == '\\') c = '/';
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    rte_tel_data_string(d, out.c_str());
}

// /sluice/filter shows capture.filter; /sluice/filter,EXPR changes it
// ("none" removes it). Compiled here, on the telemetry thread; the capture
// lcores take it between bursts.
int filter_cmd(const char*, const char* params, rte_tel_data* d) {
    auto& src = source();
    std::lock_guard lock(src.m);
    if (!src.pipeline) {
        reply(d, "unavailable", "sluice is not capturing (starting or stopping); try again");
        return 0;
    }
    LiveFilter& f = src.pipeline->filter();
    std::string expr = params ? params : "";
    const auto first = expr.find_first_not_of(" \t");
    expr = first == std::string::npos
               ? ""
               : expr.substr(first, expr.find_last_not_of(" \t") - first + 1);
    if (expr.empty()) {
        const std::string now = f.expression();
        reply(d, "current", now.empty() ? "none (every packet kept)" : now);
        return 0;
    }
    const LiveFilter::Change c = f.set(expr == "none" ? std::string() : expr);
    if (c.ok)
        report::log_info("{} (telemetry)", c.message);
    else
        report::log_warning("{} (telemetry)", c.message);
    reply(d, c.ok ? "changed" : "refused", c.message);
    return 0;
}

}  // namespace

void register_telemetry() {
    static std::once_flag once;
    std::call_once(once, [] {
        rte_telemetry_register_cmd("/sluice/stats", stats_cmd,
                                   "Every sluice counter: ports, queues, stages, streams.");
        rte_telemetry_register_cmd("/sluice/rings", rings_cmd,
                                   "Rings between sluice stages: capacity and frames queued.");
        rte_telemetry_register_cmd("/sluice/pools", pools_cmd,
                                   "sluice frame and mbuf pools: size and buffers in use.");
        rte_telemetry_register_cmd("/sluice/filter", filter_cmd,
                                   "capture.filter; with a parameter, a new tcpdump expression "
                                   "(none: keep every packet).");
    });
}

void set_telemetry_source(const Pipeline* pipeline, const std::vector<PortState>* ports,
                          std::vector<rte_mempool*> mbuf_pools) {
    auto& src = source();
    std::lock_guard lock(src.m);
    src.pipeline = pipeline;
    src.ports = ports;
    src.mbuf_pools = std::move(mbuf_pools);
}

}  // namespace sluice::dataplane
