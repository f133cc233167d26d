// Topology: the machine's CPUs, cores and NUMA nodes, and which node a PCI device hangs off,
// read once through hwloc. Used to place pools and lcores, and to warn when an lcore and the
// port it serves sit on different nodes (every packet would then cross the inter-socket link).
//
// A Topology is a plain value: discovery copies what it needs out of hwloc, so it can be copied
// and queried from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/report/result.hpp"

namespace sluice::mempool {

using report::Error;
using report::Result;

struct CpuCore {
    int index = 0;          // hwloc's logical index of the core
    std::vector<int> cpus;  // OS numbers of its hardware threads
    int numa_node = -1;
};

class Topology {
  public:
    // The machine this process runs on (hwloc with PCI discovery).
    static Result<Topology> discover();
    // A topology exported by hwloc as XML (`lstopo machine.xml`, or hwloc's export functions):
    // to check a configuration against another machine, and for tests.
    static Result<Topology> from_xml(std::string_view xml);

    // Online CPUs (OS numbers, ascending), cores, and NUMA nodes (OS numbers, ascending).
    const std::vector<int>& cpus() const noexcept { return cpus_; }
    const std::vector<CpuCore>& cores() const noexcept { return cores_; }
    const std::vector<int>& numa_nodes() const noexcept { return nodes_; }

    // NUMA node of a CPU, or -1 if the CPU is not in this topology.
    int node_of_cpu(int cpu) const noexcept;
    // CPUs of a node (ascending); empty for an unknown node.
    std::vector<int> cpus_of_node(int node) const;
    // NUMA node a PCI device is attached to, from its address ("0000:81:00.0" or "81:00.0").
    // -1 if the address is malformed, the device is not found, or the machine does not say
    // which node it is near (then it is equally near all of them).
    int node_of_pci(std::string_view bdf) const noexcept;

    // A warning for the operator when CPU `cpu` (an lcore) and PCI device `pci` (its port) sit
    // on different NUMA nodes, or when the CPU does not exist; nullopt when the placement is
    // fine or cannot be judged (device locality unknown).
    std::optional<std::string> placement_warning(int cpu, const std::string& pci) const;

  private:
    // Copies what sluice needs out of a loaded hwloc topology (hwloc_topology_t).
    static Topology from_hwloc(void* hwloc_topology, bool this_machine);

    struct PciDevice {
        unsigned domain, bus, dev, func;
        int numa_node;
    };
    std::vector<int> cpus_;
    std::vector<CpuCore> cores_;
    std::vector<int> nodes_;
    std::vector<std::pair<int, int>> cpu_node_;  // (cpu, node), sorted by cpu
    std::vector<PciDevice> pci_;
    bool from_this_machine_ = false;
};

// "0-3,8,10-11" for {0,1,2,3,8,10,11}.
std::string format_cpu_list(const std::vector<int>& cpus);

}  // namespace sluice::mempool
