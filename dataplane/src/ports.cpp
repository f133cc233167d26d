#include "sluice/dataplane/ports.hpp"

#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include <rte_bus.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "sluice/report/log.hpp"

namespace sluice::dataplane {

using report::log_error;
using report::log_info;
using report::log_warning;
namespace {

// Ethernet header + two VLAN tags + FCS on top of the MTU.
constexpr uint32_t kL2Overhead = 14 + 8 + 4;

// The flows RSS must spread: by addresses, and by ports for TCP and UDP.
constexpr uint64_t kRssFlows = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;

std::string device_hint(const std::string& name) {
    if (config::is_pci_address(name)) {
        return fmt::format(
            "bind it to a DPDK driver (`dpdk-devbind.py -b vfio-pci {}`; see docs/operations.md) "
            "and make sure EAL may use it (no -b {}; with -a, list it)",
            name, name);
    }
    return "check the vdev string (for example net_pcap0,rx_pcap=/path/in.pcap; the driver "
           "name must exist: see `dpdk-testpmd --vdev` drivers in docs/operations.md)";
}

}  // namespace

const uint8_t* symmetric_rss_key() {
    static const auto key = [] {
        std::array<uint8_t, 52> k{};
        for (std::size_t i = 0; i < k.size(); i += 2)
            k[i] = 0x6d, k[i + 1] = 0x5a;
        return k;
    }();
    return key.data();
}

std::optional<PortError> find_ports(const config::Config& cfg, std::vector<PortState>& out) {
    for (const auto& pc : cfg.ports) {
        PortState ps;
        ps.name = pc.name;
        ps.device = std::string(config::device_name(pc.name));
        ps.cfg = pc;
        uint16_t pid = 0;
        if (rte_eth_dev_get_port_by_name(ps.device.c_str(), &pid) != 0) {
            // Not attached yet: probe it (hot-plug for vdevs, attach for PCI).
            const int rc = rte_dev_probe(pc.name.c_str());
            if (rc < 0 || rte_eth_dev_get_port_by_name(ps.device.c_str(), &pid) != 0) {
                return PortError{fmt::format("port '{}' not found ({}): {}", pc.name,
                                             rc < 0 ? std::strerror(-rc) : "no ethdev appeared",
                                             device_hint(pc.name)),
                                 4};
            }
        }
        ps.port_id = pid;
        const int socket = rte_eth_dev_socket_id(pid);
        ps.socket = socket < 0 ? 0 : socket;
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(pid, &info) != 0) {
            return PortError{fmt::format("port '{}': cannot read device info", pc.name), 4};
        }
        ps.driver = info.driver_name ? info.driver_name : "?";
        if (info.device != nullptr && rte_dev_bus(info.device) != nullptr &&
            std::strcmp(rte_bus_name(rte_dev_bus(info.device)), "pci") == 0) {
            ps.pci = rte_dev_name(info.device);
        }
        // RSS in software when the port cannot spread flows over the queues
        // asked for: no RSS on IP/TCP/UDP, or fewer queues than that.
        ps.soft_rss =
            pc.rss && pc.rx_queues > 1 &&
            ((info.flow_type_rss_offloads & kRssFlows) == 0 || pc.rx_queues > info.max_rx_queues);
        if (!ps.soft_rss && pc.rx_queues > info.max_rx_queues) {
            return PortError{
                fmt::format("port '{}' ({}) supports at most {} rx queues, config asks for {}: "
                            "lower ports.rx_queues, or set ports.rss = true to deal packets to "
                            "{} queues in software{}",
                            pc.name, ps.driver, info.max_rx_queues, pc.rx_queues, pc.rx_queues,
                            ps.driver == "net_pcap"
                                ? " (net_pcap has one rx queue per rx_pcap= argument)"
                                : ""),
                4};
        }
        ps.rx_queues = static_cast<uint16_t>(pc.rx_queues);
        ps.nic_rx_queues = ps.soft_rss ? 1 : ps.rx_queues;
        out.push_back(ps);
    }
    return std::nullopt;
}

std::optional<PortError> create_mbuf_pools(const config::Config& cfg,
                                           const std::vector<PortState>& ports,
                                           std::map<int, rte_mempool*>& pools) {
    for (const auto& p : ports) {
        if (pools.count(p.socket)) continue;
        const std::string name = fmt::format("sluice_mbuf_s{}", p.socket);
        rte_mempool* mp =
            rte_pktmbuf_pool_create(name.c_str(), cfg.mempool.mbufs, cfg.mempool.cache_size, 0,
                                    static_cast<uint16_t>(cfg.mempool.mbuf_size), p.socket);
        if (!mp) {
            const double mb = static_cast<double>(cfg.mempool.mbufs) *
                              (cfg.mempool.mbuf_size + sizeof(rte_mbuf) + 64) / (1 << 20);
            return PortError{
                fmt::format("cannot create the mbuf pool on socket {} ({} mbufs of {} bytes, about "
                            "{:.0f} MB): {}. Reserve more huge pages on that node, or lower "
                            "mempool.mbufs",
                            p.socket, cfg.mempool.mbufs, cfg.mempool.mbuf_size, mb,
                            rte_strerror(rte_errno)),
                3};
        }
        pools[p.socket] = mp;
    }
    return std::nullopt;
}

std::optional<PortError> start_port(PortState& port, const config::Config& cfg, rte_mempool* pool) {
    const auto& pc = port.cfg;
    const uint16_t pid = port.port_id;
    rte_eth_dev_info info{};
    rte_eth_dev_info_get(pid, &info);

    if (info.max_mtu && pc.mtu > info.max_mtu) {
        return PortError{fmt::format("port '{}' ({}) accepts an MTU of at most {}, config asks for "
                                     "{}: lower ports.mtu",
                                     port.name, port.driver, info.max_mtu, pc.mtu),
                         4};
    }
    rte_eth_conf conf{};
    conf.rxmode.mtu = pc.mtu;
    if (port.soft_rss) {
        log_info(
            "port '{}' ({}) cannot spread flows over {} queues itself ({}): polling one queue "
            "and dealing packets to {} queues by a software Toeplitz hash{}",
            port.name, port.driver, port.rx_queues,
            (info.flow_type_rss_offloads & kRssFlows) == 0
                ? "no RSS"
                : fmt::format("at most {} rx queues", info.max_rx_queues),
            port.rx_queues, pc.rss_symmetric ? " (symmetric key)" : "");
    } else if (pc.rss && port.rx_queues > 1) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = kRssFlows & info.flow_type_rss_offloads;
        if (pc.rss_symmetric) {
            conf.rx_adv_conf.rss_conf.rss_key = const_cast<uint8_t*>(symmetric_rss_key());
            conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size ? info.hash_key_size : 40;
        }
    } else if (port.rx_queues > 1) {
        log_info(
            "port '{}' ({}): rss = false, its {} queues receive whatever the driver gives them",
            port.name, port.driver, port.rx_queues);
    }
    const uint32_t frame_max = pc.mtu + kL2Overhead;
    const uint32_t room = cfg.mempool.mbuf_size - RTE_PKTMBUF_HEADROOM;
    if (frame_max > room) {
        if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) {
            conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
        } else {
            log_warning(
                "port '{}' ({}) cannot chain mbufs: frames over {} bytes may be dropped "
                "by the NIC (ierrors). Raise mempool.mbuf_size to {} for mtu {}",
                port.name, port.driver, room, frame_max + RTE_PKTMBUF_HEADROOM, pc.mtu);
        }
    }
    if (cfg.capture.verify_checksums) {
        // The NIC's own checksum verdicts, where it gives them: the capture
        // stage then verifies only what the NIC left unknown.
        const uint64_t cksum = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM |
                               RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
        const uint64_t offered = info.rx_offload_capa & cksum;
        if (offered != 0) {
            conf.rxmode.offloads |= offered;
            port.rx_checksum_offload = true;
        }
        log_info("port '{}' ({}): checksums verified {}", port.name, port.driver,
                 offered == cksum ? "by the NIC (RX checksum offload)"
                 : offered != 0   ? "by the NIC where it can, the rest in software"
                                  : "in software (no RX checksum offload)");
    }
    if (pc.timestamps == config::Timestamps::Hardware) {
        if (port.driver == "net_pcap") {
            // net_pcap stamps every mbuf with the pcap record's time, in
            // microseconds since the epoch, without advertising the offload.
            port.hw_timestamps = true;
            port.hw_clock = TscClock(0, 0, 1000000);
        } else if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP) {
            conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
            port.hw_timestamps = true;  // its clock is calibrated once the port runs
        } else {
            return PortError{
                fmt::format("port '{}' ({}) offers no hardware RX timestamps (its driver has no "
                            "RTE_ETH_RX_OFFLOAD_TIMESTAMP): set timestamps = \"software\" in its "
                            "[[ports]] table, or capture from a NIC that timestamps what it "
                            "receives",
                            port.name, port.driver),
                4};
        }
    }

    // One tx queue: some drivers refuse to start without one. sluice never transmits.
    int rc = rte_eth_dev_configure(pid, port.nic_rx_queues, 1, &conf);
    if (rc != 0) {
        return PortError{
            fmt::format("port '{}' ({}): configure failed: {} (queues {}, mtu {})", port.name,
                        port.driver, rte_strerror(-rc), port.nic_rx_queues, pc.mtu),
            4};
    }
    uint16_t nb_rx = static_cast<uint16_t>(pc.rx_descriptors), nb_tx = 64;
    rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nb_rx, &nb_tx);
    if (nb_rx != pc.rx_descriptors) {
        log_info("port '{}': driver adjusted rx descriptors {} -> {}", port.name, pc.rx_descriptors,
                 nb_rx);
    }
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    for (uint16_t q = 0; q < port.nic_rx_queues; ++q) {
        rc = rte_eth_rx_queue_setup(pid, q, nb_rx, static_cast<unsigned>(port.socket), &rxconf,
                                    pool);
        if (rc != 0) {
            return PortError{fmt::format("port '{}': rx queue {} setup failed: {}", port.name, q,
                                         rte_strerror(-rc)),
                             4};
        }
    }
    rc = rte_eth_tx_queue_setup(pid, 0, nb_tx, static_cast<unsigned>(port.socket), nullptr);
    if (rc != 0) {
        return PortError{
            fmt::format("port '{}': tx queue setup failed: {}", port.name, rte_strerror(-rc)), 4};
    }
    rc = rte_eth_dev_start(pid);
    if (rc != 0) {
        return PortError{fmt::format("port '{}': start failed: {}", port.name, rte_strerror(-rc)),
                         4};
    }
    port.started = true;
    if (port.hw_timestamps && port.driver != "net_pcap") {
        // The NIC's clock counts in its own ticks: pair two readings with
        // CLOCK_REALTIME to learn its rate and offset. A NIC that cannot be
        // read is taken to count nanoseconds since the epoch (PTP-synced).
        uint64_t c0 = 0, c1 = 0;
        timespec t0{}, t1{};
        clock_gettime(CLOCK_REALTIME, &t0);
        const bool readable = rte_eth_read_clock(pid, &c0) == 0;
        if (readable) {
            rte_delay_ms(20);
            rte_eth_read_clock(pid, &c1);
            clock_gettime(CLOCK_REALTIME, &t1);
        }
        const uint64_t ns0 = static_cast<uint64_t>(t0.tv_sec) * 1000000000u + t0.tv_nsec;
        const uint64_t ns1 = static_cast<uint64_t>(t1.tv_sec) * 1000000000u + t1.tv_nsec;
        if (readable && c1 > c0 && ns1 > ns0) {
            const uint64_t hz = (c1 - c0) * 1000000000u / (ns1 - ns0);
            port.hw_clock = TscClock(c0, ns0, hz ? hz : 1000000000u);
            log_info("port '{}': hardware clock at {:.3f} MHz", port.name, hz / 1e6);
        } else {
            port.hw_clock = TscClock(0, 0, 1000000000u);
        }
    }
    if (pc.promiscuous) {
        rc = rte_eth_promiscuous_enable(pid);
        if (rc != 0 && rc != -ENOTSUP) {
            log_warning("port '{}': cannot enable promiscuous mode: {}", port.name,
                        rte_strerror(-rc));
        }
    }
    return std::nullopt;
}

void stop_ports(std::vector<PortState>& ports) {
    for (auto& p : ports) {
        if (!p.started) continue;
        rte_eth_dev_stop(p.port_id);
        rte_eth_dev_close(p.port_id);
        p.started = false;
    }
}

std::string link_status(uint16_t port_id) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port_id, &link) != 0) return "link status unknown";
    char text[RTE_ETH_LINK_MAX_STR_LEN];
    rte_eth_link_to_str(text, sizeof text, &link);
    return text;
}

}  // namespace sluice::dataplane
