// Topology: this machine as hwloc and libnuma see it, and a two-socket machine loaded from XML
// for the cross-node cases this machine cannot show.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <numa.h>
#include <unistd.h>

#include "sluice/mempool/topology.hpp"

using sluice::mempool::format_cpu_list;
using sluice::mempool::Topology;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// two_socket_topology.xml: CPUs 0-1 on NUMA node 0, 2-3 on node 1; a NIC at 0000:81:00.0 on
// socket 1, one at 0000:03:00.0 on socket 0, and a device at 0000:00:1f.0 attached to the machine
// as a whole (no locality). Derived from hwloc's synthetic topology "pack:2 [numa] core:2 pu:1"
// with the PCI objects added; hwloc's own XML parser takes no comments, hence this note here.
Topology two_sockets() {
    const char* root = std::getenv("SLUICE_SOURCE_ROOT");
    const std::string dir =
        root != nullptr ? std::string(root) + "/tests/mempool" : "tests/mempool";
    const std::string xml = read_file(dir + "/two_socket_topology.xml");
    EXPECT_FALSE(xml.empty()) << "cannot read " << dir << "/two_socket_topology.xml";
    auto t = Topology::from_xml(xml);
    EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
    return std::move(t).value();
}

TEST(Topology, ThisMachineMatchesTheKernel) {
    auto t = Topology::discover();
    ASSERT_TRUE(t.has_value()) << t.error().message;
    EXPECT_EQ(t->cpus().size(), static_cast<std::size_t>(sysconf(_SC_NPROCESSORS_ONLN)));
    ASSERT_FALSE(t->numa_nodes().empty());
    std::vector<int> in_cores;
    for (const auto& core : t->cores()) {
        EXPECT_FALSE(core.cpus.empty());
        in_cores.insert(in_cores.end(), core.cpus.begin(), core.cpus.end());
    }
    std::sort(in_cores.begin(), in_cores.end());
    EXPECT_EQ(in_cores, t->cpus());
    const bool numa = numa_available() >= 0;
    for (int cpu : t->cpus()) {
        const int node = t->node_of_cpu(cpu);
        EXPECT_NE(std::find(t->numa_nodes().begin(), t->numa_nodes().end(), node),
                  t->numa_nodes().end())
            << "CPU " << cpu;
        if (numa) {
            EXPECT_EQ(node, numa_node_of_cpu(cpu)) << "CPU " << cpu;
        }
    }
    EXPECT_EQ(t->node_of_cpu(100000), -1);
}

TEST(Topology, ThisMachinesPciDevicesHaveANode) {
    auto t = Topology::discover();
    ASSERT_TRUE(t.has_value()) << t.error().message;
    namespace fs = std::filesystem;
    if (!fs::exists("/sys/bus/pci/devices") || fs::is_empty("/sys/bus/pci/devices")) {
        GTEST_SKIP() << "no PCI devices on this machine";
    }
    for (const auto& entry : fs::directory_iterator("/sys/bus/pci/devices")) {
        const std::string bdf = entry.path().filename();
        int sysfs_node = -1;
        std::ifstream(entry.path() / "numa_node") >> sysfs_node;
        const int node = t->node_of_pci(bdf);
        if (sysfs_node >= 0) {
            EXPECT_EQ(node, sysfs_node) << bdf;
        } else if (t->numa_nodes().size() == 1) {
            // One node: every device is local to it.
            EXPECT_EQ(node, t->numa_nodes().front()) << bdf;
        }
    }
}

TEST(Topology, UnknownOrMalformedPciAddress) {
    auto t = Topology::discover();
    ASSERT_TRUE(t.has_value()) << t.error().message;
    EXPECT_EQ(t->node_of_pci("ffff:ff:1f.7"), -1);
    EXPECT_EQ(t->node_of_pci("not a bdf"), -1);
    EXPECT_EQ(t->node_of_pci("0000:00:00.0 trailing"), -1);
    EXPECT_EQ(t->node_of_pci(""), -1);
    EXPECT_FALSE(t->placement_warning(t->cpus().front(), "ffff:ff:1f.7").has_value());
}

TEST(Topology, TwoSocketLayout) {
    const Topology t = two_sockets();
    EXPECT_EQ(t.cpus(), (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(t.numa_nodes(), (std::vector<int>{0, 1}));
    EXPECT_EQ(t.cores().size(), 4u);
    EXPECT_EQ(t.node_of_cpu(1), 0);
    EXPECT_EQ(t.node_of_cpu(2), 1);
    EXPECT_EQ(t.cpus_of_node(1), (std::vector<int>{2, 3}));
    EXPECT_EQ(t.node_of_pci("0000:81:00.0"), 1);
    EXPECT_EQ(t.node_of_pci("81:00.0"), 1);
    EXPECT_EQ(t.node_of_pci("0000:03:00.0"), 0);
    EXPECT_EQ(t.node_of_pci("0000:00:1f.0"), -1);  // attached to the whole machine
}

TEST(Topology, WarnsWhenLcoreAndPortSitOnDifferentNodes) {
    const Topology t = two_sockets();
    const auto w = t.placement_warning(0, "0000:81:00.0");
    ASSERT_TRUE(w.has_value());
    EXPECT_NE(w->find("CPU 0"), std::string::npos) << *w;
    EXPECT_NE(w->find("node 0"), std::string::npos) << *w;
    EXPECT_NE(w->find("node 1"), std::string::npos) << *w;
    EXPECT_NE(w->find("(2-3)"), std::string::npos) << "names the CPUs to use: " << *w;
    EXPECT_FALSE(t.placement_warning(3, "0000:81:00.0").has_value());
    EXPECT_FALSE(t.placement_warning(1, "0000:03:00.0").has_value());
    EXPECT_FALSE(t.placement_warning(0, "0000:00:1f.0").has_value());  // locality unknown
    const auto bad_cpu = t.placement_warning(7, "0000:81:00.0");
    ASSERT_TRUE(bad_cpu.has_value());
    EXPECT_NE(bad_cpu->find("0-3"), std::string::npos) << *bad_cpu;
}

TEST(Topology, RejectsXmlThatIsNotATopology) {
    auto t = Topology::from_xml("<topology>nonsense");
    ASSERT_FALSE(t.has_value());
    EXPECT_NE(t.error().message.find("lstopo"), std::string::npos) << t.error().message;
}

TEST(Topology, FormatsCpuLists) {
    EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
    EXPECT_EQ(format_cpu_list({5}), "5");
    EXPECT_EQ(format_cpu_list({3, 1, 2, 2}), "1-3");
    EXPECT_EQ(format_cpu_list({}), "none");
}

}  // namespace
