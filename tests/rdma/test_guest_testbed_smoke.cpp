// What every RDMA test in the testbed guest relies on: a program built on the
// host starts in the guest with the same verbs, rdma_cm and DPDK libraries,
// both soft-RoCE devices are up, traffic from rxe1 to rxe0 is routed through
// rxe1, memory registration is not capped by the locked-memory limit, and
// DPDK runs without huge pages with the null and pcap ports.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace {

bool in_testbed() {
    const char* v = std::getenv("SLUICE_RDMA_TESTBED");
    return v != nullptr && std::string(v) == "1";
}

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : fallback;
}

// A macro because GTEST_SKIP returns from the test body.
#define REQUIRE_TESTBED()                                                                  \
    do {                                                                                   \
        if (!in_testbed()) {                                                               \
            GTEST_SKIP() << "needs the RDMA testbed guest: run scripts/rdma-testbed test"; \
        }                                                                                  \
    } while (0)

struct DeviceListDeleter {
    void operator()(ibv_device** l) const { ibv_free_device_list(l); }
};
struct ContextDeleter {
    void operator()(ibv_context* c) const { ibv_close_device(c); }
};
using ContextPtr = std::unique_ptr<ibv_context, ContextDeleter>;

ContextPtr open_device(const std::string& name) {
    int n = 0;
    std::unique_ptr<ibv_device*, DeviceListDeleter> list(ibv_get_device_list(&n));
    for (int i = 0; list && i < n; ++i) {
        if (name == ibv_get_device_name(list.get()[i]))
            return ContextPtr(ibv_open_device(list.get()[i]));
    }
    return nullptr;
}

// RoCEv2 GIDs of IPv4 addresses are IPv4-mapped IPv6 addresses.
ibv_gid mapped_gid(const std::string& ipv4) {
    ibv_gid g{};
    in_addr a{};
    EXPECT_EQ(inet_pton(AF_INET, ipv4.c_str(), &a), 1) << ipv4;
    g.raw[10] = 0xff;
    g.raw[11] = 0xff;
    std::memcpy(&g.raw[12], &a, 4);
    return g;
}

TEST(Verbs, ListsBothSoftRoceDevices) {
    REQUIRE_TESTBED();
    int n = 0;
    std::unique_ptr<ibv_device*, DeviceListDeleter> list(ibv_get_device_list(&n));
    ASSERT_TRUE(list) << "ibv_get_device_list: " << std::strerror(errno);
    std::set<std::string> names;
    for (int i = 0; i < n; ++i)
        names.insert(ibv_get_device_name(list.get()[i]));
    EXPECT_TRUE(names.count("rxe0")) << "rxe0 missing";
    EXPECT_TRUE(names.count("rxe1")) << "rxe1 missing";
}

TEST(Verbs, EachDeviceHasAnActiveRoceV2PortWithItsAddress) {
    REQUIRE_TESTBED();
    const std::pair<const char*, std::string> devices[] = {
        {"rxe0", env_or("RXE0_IP", "10.10.0.1")}, {"rxe1", env_or("RXE1_IP", "10.10.0.2")}};
    for (const auto& [name, ip] : devices) {
        SCOPED_TRACE(name);
        ContextPtr ctx = open_device(name);
        ASSERT_TRUE(ctx) << "cannot open " << name;
        ibv_port_attr port{};
        ASSERT_EQ(ibv_query_port(ctx.get(), 1, &port), 0);
        EXPECT_EQ(port.state, IBV_PORT_ACTIVE);
        EXPECT_EQ(port.link_layer, IBV_LINK_LAYER_ETHERNET);
        ibv_gid gid{};
        ASSERT_EQ(ibv_query_gid(ctx.get(), 1, 1, &gid), 0);
        const ibv_gid want = mapped_gid(ip);
        EXPECT_EQ(std::memcmp(gid.raw, want.raw, sizeof gid.raw), 0) << "GID index 1 is not " << ip;
    }
}

TEST(Verbs, RegistersMoreMemoryThanTheDefaultLockLimit) {
    REQUIRE_TESTBED();
    ContextPtr ctx = open_device("rxe0");
    ASSERT_TRUE(ctx);
    ibv_pd* pd = ibv_alloc_pd(ctx.get());
    ASSERT_NE(pd, nullptr);
    // 64 MiB: eight times the usual 8 MiB RLIMIT_MEMLOCK.
    std::vector<char> buf(64u << 20);
    ibv_mr* mr =
        ibv_reg_mr(pd, buf.data(), buf.size(), IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    EXPECT_NE(mr, nullptr) << "ibv_reg_mr: " << std::strerror(errno);
    if (mr != nullptr) {
        EXPECT_EQ(ibv_dereg_mr(mr), 0);
    }
    EXPECT_EQ(ibv_dealloc_pd(pd), 0);
}

rdma_cm_event_type next_event(rdma_event_channel* ch) {
    rdma_cm_event* ev = nullptr;
    if (rdma_get_cm_event(ch, &ev) != 0) return static_cast<rdma_cm_event_type>(-1);
    const rdma_cm_event_type t = ev->event;
    rdma_ack_cm_event(ev);
    return t;
}

TEST(RdmaCm, ResolvesRxe0FromRxe1ThroughRxe1) {
    REQUIRE_TESTBED();
    rdma_event_channel* ch = rdma_create_event_channel();
    ASSERT_NE(ch, nullptr);
    rdma_cm_id* id = nullptr;
    ASSERT_EQ(rdma_create_id(ch, &id, nullptr, RDMA_PS_TCP), 0);
    sockaddr_in src{}, dst{};
    src.sin_family = dst.sin_family = AF_INET;
    ASSERT_EQ(inet_pton(AF_INET, env_or("RXE1_IP", "10.10.0.2").c_str(), &src.sin_addr), 1);
    ASSERT_EQ(inet_pton(AF_INET, env_or("RXE0_IP", "10.10.0.1").c_str(), &dst.sin_addr), 1);
    dst.sin_port = htons(7471);
    ASSERT_EQ(rdma_resolve_addr(id, reinterpret_cast<sockaddr*>(&src),
                                reinterpret_cast<sockaddr*>(&dst), 5000),
              0);
    EXPECT_EQ(next_event(ch), RDMA_CM_EVENT_ADDR_RESOLVED);
    ASSERT_NE(id->verbs, nullptr);
    EXPECT_STREQ(ibv_get_device_name(id->verbs->device), "rxe1");
    ASSERT_EQ(rdma_resolve_route(id, 5000), 0);
    EXPECT_EQ(next_event(ch), RDMA_CM_EVENT_ROUTE_RESOLVED);
    rdma_destroy_id(id);
    rdma_destroy_event_channel(ch);
}

TEST(Dpdk, RunsNullAndPcapPortsWithoutHugePages) {
    REQUIRE_TESTBED();
    // --no-shconf: nothing in /var/run/dpdk, so it cannot collide with
    // another DPDK process (--in-memory does not combine with --no-huge).
    const char* args[] = {"guest_testbed_smoke",
                          "-l",
                          "0",
                          "--no-huge",
                          "-m",
                          "128",
                          "--no-pci",
                          "--no-shconf",
                          "--vdev",
                          "net_null0",
                          "--vdev",
                          "net_pcap0,iface=lo"};
    std::vector<char*> argv;
    for (const char* a : args)
        argv.push_back(const_cast<char*>(a));
    ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0)
        << "rte_eal_init: " << rte_strerror(rte_errno);
    ASSERT_EQ(rte_eth_dev_count_avail(), 2u);
    std::set<std::string> names;
    uint16_t port = 0;
    RTE_ETH_FOREACH_DEV(port) {
        char name[RTE_ETH_NAME_MAX_LEN];
        ASSERT_EQ(rte_eth_dev_get_name_by_port(port, name), 0);
        names.insert(name);
    }
    EXPECT_EQ(names, (std::set<std::string>{"net_null0", "net_pcap0"}));

    rte_mempool* pool =
        rte_pktmbuf_pool_create("smoke", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(pool, nullptr) << "mbuf pool: " << rte_strerror(rte_errno);
    uint16_t null_port = 0;
    ASSERT_EQ(rte_eth_dev_get_port_by_name("net_null0", &null_port), 0);
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(null_port, 1, 1, &conf), 0);
    ASSERT_EQ(rte_eth_rx_queue_setup(null_port, 0, 64, SOCKET_ID_ANY, nullptr, pool), 0);
    ASSERT_EQ(rte_eth_tx_queue_setup(null_port, 0, 64, SOCKET_ID_ANY, nullptr), 0);
    ASSERT_EQ(rte_eth_dev_start(null_port), 0);
    // net_null hands out as many packets as asked for and swallows what it is given.
    rte_mbuf* burst[32];
    const uint16_t got = rte_eth_rx_burst(null_port, 0, burst, 32);
    EXPECT_EQ(got, 32);
    EXPECT_EQ(rte_eth_tx_burst(null_port, 0, burst, got), got);
    EXPECT_EQ(rte_eth_dev_stop(null_port), 0);
    EXPECT_EQ(rte_eth_dev_close(null_port), 0);
    rte_mempool_free(pool);
    EXPECT_EQ(rte_eal_cleanup(), 0);
}

}  // namespace
