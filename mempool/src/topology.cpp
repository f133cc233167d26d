// Topology: copy CPUs, cores, NUMA nodes and PCI locality out of hwloc once.
#include "sluice/mempool/topology.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <hwloc.h>

namespace sluice::mempool {

namespace {

struct HwlocHandle {
    hwloc_topology_t t = nullptr;
    HwlocHandle() = default;
    HwlocHandle(const HwlocHandle&) = delete;
    HwlocHandle& operator=(const HwlocHandle&) = delete;
    ~HwlocHandle() {
        if (t != nullptr) hwloc_topology_destroy(t);
    }
};

// The single node an object is local to, or -1 if it spans several (or none).
int single_node(hwloc_obj_t obj) {
    if (obj == nullptr || obj->nodeset == nullptr) return -1;
    if (hwloc_bitmap_weight(obj->nodeset) != 1) return -1;
    return hwloc_bitmap_first(obj->nodeset);
}

struct Bdf {
    unsigned domain = 0, bus = 0, dev = 0, func = 0;
};

std::optional<Bdf> parse_bdf(std::string_view text) {
    const std::string s(text);
    Bdf b;
    int used = 0;
    if (std::sscanf(s.c_str(), "%x:%x:%x.%x%n", &b.domain, &b.bus, &b.dev, &b.func, &used) == 4 &&
        static_cast<std::size_t>(used) == s.size()) {
        return b;
    }
    b.domain = 0;
    used = 0;
    if (std::sscanf(s.c_str(), "%x:%x.%x%n", &b.bus, &b.dev, &b.func, &used) == 3 &&
        static_cast<std::size_t>(used) == s.size()) {
        return b;
    }
    return std::nullopt;
}

Result<int> prepare(HwlocHandle& h) {
    if (hwloc_topology_init(&h.t) != 0) {
        const int err = errno;
        return Error{err, fmt::format("hwloc: cannot initialise topology discovery: {}",
                                      std::strerror(err))};
    }
    // PCI devices and bridges are filtered out by default; keep them to locate ports.
    hwloc_topology_set_io_types_filter(h.t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    return 0;
}

}  // namespace

Result<Topology> Topology::discover() {
    HwlocHandle h;
    if (auto r = prepare(h); !r) return r.error();
    if (hwloc_topology_load(h.t) != 0) {
        const int err = errno;
        return Error{err, fmt::format("hwloc: cannot read this machine's topology: {}; check that "
                                      "/sys is mounted",
                                      std::strerror(err))};
    }
    return from_hwloc(h.t, true);
}

Result<Topology> Topology::from_xml(std::string_view xml) {
    HwlocHandle h;
    if (auto r = prepare(h); !r) return r.error();
    // hwloc wants the terminating NUL inside the length.
    const std::string text(xml);
    if (hwloc_topology_set_xmlbuffer(h.t, text.c_str(), static_cast<int>(text.size() + 1)) != 0 ||
        hwloc_topology_load(h.t) != 0) {
        const int err = errno;
        return Error{err, fmt::format("hwloc: the XML is not a topology hwloc can load ({}); "
                                      "export one with `lstopo file.xml`",
                                      std::strerror(err))};
    }
    return from_hwloc(h.t, false);
}

Topology Topology::from_hwloc(void* handle, bool this_machine) {
    auto* t = static_cast<hwloc_topology_t>(handle);
    Topology topo;
    topo.from_this_machine_ = this_machine;

    for (hwloc_obj_t n = nullptr; (n = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, n));) {
        topo.nodes_.push_back(static_cast<int>(n->os_index));
    }
    for (hwloc_obj_t pu = nullptr; (pu = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_PU, pu));) {
        const int cpu = static_cast<int>(pu->os_index);
        int node = single_node(pu);
        if (node < 0 && topo.nodes_.size() == 1) node = topo.nodes_.front();
        topo.cpus_.push_back(cpu);
        topo.cpu_node_.emplace_back(cpu, node);
    }
    for (hwloc_obj_t core = nullptr;
         (core = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_CORE, core));) {
        CpuCore c;
        c.index = static_cast<int>(core->logical_index);
        c.numa_node = single_node(core);
        if (c.numa_node < 0 && topo.nodes_.size() == 1) c.numa_node = topo.nodes_.front();
        for (hwloc_obj_t pu = nullptr;
             (pu = hwloc_get_next_obj_inside_cpuset_by_type(t, core->cpuset, HWLOC_OBJ_PU, pu));) {
            c.cpus.push_back(static_cast<int>(pu->os_index));
        }
        std::sort(c.cpus.begin(), c.cpus.end());
        topo.cores_.push_back(std::move(c));
    }
    for (hwloc_obj_t d = nullptr; (d = hwloc_get_next_pcidev(t, d));) {
        PciDevice p{d->attr->pcidev.domain, d->attr->pcidev.bus, d->attr->pcidev.dev,
                    d->attr->pcidev.func, single_node(hwloc_get_non_io_ancestor_obj(t, d))};
        topo.pci_.push_back(p);
    }
    std::sort(topo.nodes_.begin(), topo.nodes_.end());
    std::sort(topo.cpus_.begin(), topo.cpus_.end());
    std::sort(topo.cpu_node_.begin(), topo.cpu_node_.end());
    return topo;
}

int Topology::node_of_cpu(int cpu) const noexcept {
    const auto it =
        std::lower_bound(cpu_node_.begin(), cpu_node_.end(), std::make_pair(cpu, -1000000));
    if (it == cpu_node_.end() || it->first != cpu) return -1;
    return it->second;
}

std::vector<int> Topology::cpus_of_node(int node) const {
    std::vector<int> out;
    for (const auto& [cpu, n] : cpu_node_) {
        if (n == node) out.push_back(cpu);
    }
    return out;
}

int Topology::node_of_pci(std::string_view text) const noexcept {
    const auto bdf = parse_bdf(text);
    if (!bdf) return -1;
    for (const PciDevice& p : pci_) {
        if (p.domain == bdf->domain && p.bus == bdf->bus && p.dev == bdf->dev &&
            p.func == bdf->func) {
            return p.numa_node;
        }
    }
    if (from_this_machine_) {
        // hwloc keeps only "important" devices; the kernel knows the rest (the same source
        // DPDK's rte_eth_dev_socket_id uses).
        std::ifstream in(fmt::format("/sys/bus/pci/devices/{:04x}:{:02x}:{:02x}.{:x}/numa_node",
                                     bdf->domain, bdf->bus, bdf->dev, bdf->func));
        int node = -1;
        if (in >> node) {
            // -1: the firmware does not say; on a one-node machine the answer is still clear.
            if (node < 0 && nodes_.size() == 1) node = nodes_.front();
            return node;
        }
    }
    return -1;
}

std::optional<std::string> Topology::placement_warning(int cpu, const std::string& pci) const {
    const int cpu_node = node_of_cpu(cpu);
    if (cpu_node < 0 && std::find(cpus_.begin(), cpus_.end(), cpu) == cpus_.end()) {
        return fmt::format(
            "CPU {} is not an online CPU of this machine (online CPUs: {}); pick "
            "the lcore for port {} from that list",
            cpu, format_cpu_list(cpus_), pci);
    }
    const int pci_node = node_of_pci(pci);
    if (cpu_node < 0 || pci_node < 0 || cpu_node == pci_node) return std::nullopt;
    return fmt::format(
        "the lcore on CPU {} is on NUMA node {} but port {} is attached to node {}: "
        "every packet and descriptor crosses the inter-socket link. Serve the port "
        "from a CPU of node {} ({}), or serve a port of node {} from this CPU",
        cpu, cpu_node, pci, pci_node, pci_node, format_cpu_list(cpus_of_node(pci_node)), cpu_node);
}

std::string format_cpu_list(const std::vector<int>& cpus_in) {
    std::vector<int> cpus = cpus_in;
    std::sort(cpus.begin(), cpus.end());
    cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
    std::string out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1)
            ++j;
        if (!out.empty()) out += ',';
        out += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
        i = j + 1;
    }
    return out.empty() ? "none" : out;
}

}  // namespace sluice::mempool
