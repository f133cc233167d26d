// NIC ports: find (or probe) each configured device, configure its queues
// and start it; mbuf pools, one per NUMA socket that has a port.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/tsc_clock.hpp"

struct rte_mempool;

namespace sluice::dataplane {

struct PortState {
    uint16_t port_id = 0;
    std::string name;    // as configured
    std::string device;  // EAL device name
    std::string driver;
    int socket = 0;
    std::string pci;         // PCI address ("0000:3b:00.0") when the port is a PCI device
    uint16_t rx_queues = 1;  // as configured: the queues capture stages poll
    // The port cannot spread flows over rx_queues itself (no RSS offload, or
    // fewer queues): one NIC queue is configured, and its packets are dealt to
    // the rx_queues queues in software (soft_rss.hpp).
    bool soft_rss = false;
    uint16_t nic_rx_queues = 1;  // receive queues configured on the device
    // capture.verify_checksums and the port checks IPv4/TCP/UDP checksums
    // itself: the mbufs carry its verdicts.
    bool rx_checksum_offload = false;
    bool started = false;
    bool hw_timestamps = false;  // the NIC stamps packets (config asked and port offers it)
    TscClock hw_clock;           // the NIC's timestamp units -> UTC ns
    config::Port cfg;
};

struct PortError {
    std::string message;
    int exit_code;
};

// Finds every configured port, probing vdevs and PCI devices that EAL has not
// yet attached. Does not configure them.
std::optional<PortError> find_ports(const config::Config& cfg, std::vector<PortState>& out);

// One pool per socket that has a port, created on that socket.
std::optional<PortError> create_mbuf_pools(const config::Config& cfg,
                                           const std::vector<PortState>& ports,
                                           std::map<int, rte_mempool*>& pools);

// Configures queues, RSS, MTU, offloads, promiscuous mode, and starts the port.
std::optional<PortError> start_port(PortState& port, const config::Config& cfg, rte_mempool* pool);

void stop_ports(std::vector<PortState>& ports);

// "link up 10 Gbps full-duplex" / "link down".
std::string link_status(uint16_t port_id);

// The symmetric Toeplitz key (0x6d5a repeated): hash(a->b) == hash(b->a).
const uint8_t* symmetric_rss_key();

}  // namespace sluice::dataplane
