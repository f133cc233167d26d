// In-process pipeline runs for tests: EAL once per test program (plain
// memory, so sanitizer builds work), ports from vdev strings, a pipeline
// built from a Config exactly as sluice builds it.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/pipeline.hpp"
#include "sluice/dataplane/ports.hpp"

namespace sluice::testing {

// Lcores 0 (main), 1, 2, 3 mapped onto the machine's first two CPUs.
inline bool init_eal_for_tests() {
    static bool ok = [] {
        const std::string prefix = "sluicetest" + std::to_string(getpid());
        std::vector<std::string> args{"test",
                                      "--no-huge",
                                      "-m",
                                      "768",
                                      "--no-pci",
                                      "--lcores",
                                      "0@0,1@1,2@1,3@0",
                                      "--file-prefix",
                                      prefix,
                                      "--log-level",
                                      "lib.eal:warning",
                                      "--no-telemetry"};
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        return rte_eal_init(static_cast<int>(argv.size()), argv.data()) >= 0;
    }();
    return ok;
}

inline std::string build_root() {
    const char* b = std::getenv("SLUICE_BUILD_ROOT");
    return b ? b : "build";
}

// A pcap from sluice-pcapgen; returns its path.
// The files make_pcap wrote, removed when the test program exits.
struct TempFiles {
    std::vector<std::string> paths;
    ~TempFiles() {
        for (const std::string& p : paths)
            ::unlink(p.c_str());
    }
};

inline std::string make_pcap(const std::string& name, const std::string& args) {
    static TempFiles written;
    const std::string path = "/tmp/" + name + "-" + std::to_string(getpid()) + ".pcap";
    written.paths.push_back(path);
    const std::string cmd = build_root() + "/tools/sluice-pcapgen --out " + path + " " + args;
    if (std::system(cmd.c_str()) != 0) return {};
    return path;
}

struct PcapRecord {
    uint64_t ts_ns;
    uint32_t caplen, origlen;
    std::string data;
};

inline std::vector<PcapRecord> read_pcap(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<PcapRecord> out;
    uint32_t gh[6];
    if (!f.read(reinterpret_cast<char*>(gh), sizeof gh)) return out;
    const bool nano = gh[0] == 0xa1b23c4du;
    uint32_t h[4];
    while (f.read(reinterpret_cast<char*>(h), sizeof h)) {
        PcapRecord r{static_cast<uint64_t>(h[0]) * 1000000000u + (nano ? h[1] : h[1] * 1000ull),
                     h[2], h[3], std::string(h[2], '\0')};
        f.read(r.data.data(), h[2]);
        out.push_back(std::move(r));
    }
    return out;
}

// Ports from the config, started; stops and closes them at the end.
struct StartedPorts {
    std::vector<dataplane::PortState> ports;
    std::map<int, rte_mempool*> pools;
    std::string error;
    explicit StartedPorts(const config::Config& cfg) {
        if (auto e = dataplane::find_ports(cfg, ports)) {
            error = e->message;
            return;
        }
        if (auto e = dataplane::create_mbuf_pools(cfg, ports, pools)) {
            error = e->message;
            return;
        }
        for (auto& p : ports) {
            if (auto e = dataplane::start_port(p, cfg, pools[p.socket])) {
                error = e->message;
                return;
            }
        }
    }
    ~StartedPorts() {
        for (auto& p : ports) {
            rte_eth_dev_info info{};
            rte_eth_dev_info_get(p.port_id, &info);
            if (p.started) rte_eth_dev_stop(p.port_id);
            rte_eth_dev_close(p.port_id);
            if (info.device) rte_dev_remove(info.device);
        }
        for (auto& [s, mp] : pools)
            rte_mempool_free(mp);
    }
};

inline config::Config parse(const std::string& toml) {
    auto r = config::load_string(toml, "test.toml");
    if (!r.ok()) {
        for (auto& d : r.diagnostics)
            std::fprintf(stderr, "%s\n", d.str().c_str());
        std::abort();
    }
    return r.config;
}

// Polls until `pred` or the deadline; true if pred held.
template <class Pred>
bool wait_for(Pred pred, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
}

}  // namespace sluice::testing
