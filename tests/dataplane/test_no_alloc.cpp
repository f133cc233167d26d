// No heap allocation on the hot path: malloc and friends are interposed and
// count calls made on worker lcores while the pipeline forwards at full rate.
// Not built with sanitizers (they interpose malloc themselves).
#include <atomic>
#include <cstdlib>

#include "harness.hpp"
#include <gtest/gtest.h>

#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_per_lcore.h>

// After the DPDK headers: they declare posix_memalign first.
#include "../count_allocations.hpp"

namespace {
std::atomic<bool> g_counting{false};

// Worker lcores count while g_counting is set; the main lcore and other
// threads never do.
bool on_a_worker_lcore() {
    if (!g_counting.load(std::memory_order_relaxed)) return false;
    const unsigned id = rte_lcore_id();
    return id != LCORE_ID_ANY && id != rte_get_main_lcore();
}
const bool g_hooked = (g_count_if.store(on_a_worker_lcore), true);
}  // namespace

using namespace sluice;
using namespace sluice::dataplane;
using namespace sluice::testing;

namespace {

uint64_t rte_heap_allocations() {
    rte_malloc_socket_stats st{};
    uint64_t n = 0;
    for (unsigned s = 0; s < rte_socket_count(); ++s) {
        if (rte_malloc_get_socket_stats(static_cast<int>(rte_socket_id_by_idx(s)), &st) == 0) {
            n += st.alloc_count;
        }
    }
    return n;
}

// `port`: the [[ports]] table's keys after the name (default: net_null,
// zero-filled packets); `capture`: more [capture] keys.
void steady_state_allocates_nothing(const std::string& lcores, const std::string& codec,
                                    const std::string& filter, const std::string& port = "",
                                    const std::string& capture = "") {
    ASSERT_TRUE(init_eal_for_tests());
    static int run = 0;
    const std::string name = port.empty() ? "net_null" + std::to_string(100 + run++) + "\"" : port;
    const auto cfg =
        parse("[[ports]]\nname = \"" + name + "\n[lcores]\n" + lcores + "\n[codec]\ntype = \"" +
              codec + "\"\n[capture]\nfilter = \"" + filter + "\"\n" + capture +
              "\n[mempool]\nmbufs = 4095\n[egress]\ntype = \"null\"\n");
    StartedPorts ports(cfg);
    ASSERT_EQ(ports.error, "");
    std::string error;
    auto pl = Pipeline::build(
        cfg, ports.ports, [](uint32_t, uint64_t, std::string&) { return make_null_sink(); }, error);
    ASSERT_TRUE(pl) << error;
    ASSERT_TRUE(pl->launch(error)) << error;
    // Warm up: first frames, first pool refills, lazy initialisations.
    ASSERT_TRUE(wait_for([&] { return pl->received() > 200000; }, 30));

    const uint64_t heap_before = rte_heap_allocations();
    const uint64_t rx_before = pl->received();
    g_allocs.store(0);
    g_counting.store(true);
    wait_for([] { return false; }, 0.5);
    g_counting.store(false);
    const uint64_t rx_during = pl->received() - rx_before;
    const uint64_t heap_after = rte_heap_allocations();
    pl->drain_and_stop(10);

    EXPECT_GT(rx_during, 10000u) << "the pipeline did not forward during the window";
    EXPECT_EQ(g_allocs.load(), 0) << "malloc/new called on a worker lcore in steady state";
    EXPECT_EQ(heap_after, heap_before) << "rte_malloc called in steady state";
}

TEST(NoAllocation, RunToCompletionLz4) {
    steady_state_allocates_nothing("rx = [1]", "lz4", "");
}

TEST(NoAllocation, RunToCompletionZstdWithFilter) {
    steady_state_allocates_nothing("rx = [1]", "zstd", "not tcp");
}

// Checksum verification on capture-like traffic (net_pcap replaying a
// generated capture in a loop: IPv4 and IPv6, TCP and UDP).
TEST(NoAllocation, VerifyChecksumsOnPcapTraffic) {
    const std::string pcap = make_pcap("noalloc-ck", "--packets 2000 --seed 5");
    ASSERT_FALSE(pcap.empty());
    steady_state_allocates_nothing("rx = [1]", "lz4", "",
                                   "net_pcap120,rx_pcap=" + pcap + ",infinite_rx=1\"",
                                   "verify_checksums = true");
    std::remove(pcap.c_str());
}

// Software RSS: net_pcap has no RSS, so with rx_queues = 2 one lcore polls
// and deals, the other takes its share over a ring.
TEST(NoAllocation, SoftwareRssOnPcapTraffic) {
    const std::string pcap = make_pcap("noalloc-rss", "--packets 2000 --seed 6 --flows 50");
    ASSERT_FALSE(pcap.empty());
    steady_state_allocates_nothing(
        "rx = [1, 2]", "lz4", "",
        "net_pcap121,rx_pcap=" + pcap + ",infinite_rx=1\"\nrx_queues = 2\nrx_descriptors = 256",
        "verify_checksums = true");
    std::remove(pcap.c_str());
}

// Field traffic: every tunnel kind (some cut inside the tunnel header) and
// copies, through decap "strip" with ERSPAN metadata, slice rules and
// dedup; then "match" with a filter on the inner packets. Statistics frames
// go out as the counters move.
TEST(NoAllocation, DecapSliceDedupOnTunnelledTraffic) {
    const std::string pcap =
        make_pcap("noalloc-decap",
                  "--packets 3000 --seed 7 --tunnel mix --truncate-tunnel-percent 5 "
                  "--duplicate-percent 10");
    ASSERT_FALSE(pcap.empty());
    steady_state_allocates_nothing("rx = [1]", "lz4", "",
                                   "net_pcap122,rx_pcap=" + pcap + ",infinite_rx=1\"",
                                   "decap = \"strip\"\ndedup = true\n"
                                   "[[capture.slice]]\nfilter = \"tcp port 443\"\nsnaplen = 128\n"
                                   "[[capture.slice]]\nfilter = \"udp\"\nsnaplen = 96\n");
    steady_state_allocates_nothing("rx = [1]", "lz4", "tcp or udp port 53",
                                   "net_pcap123,rx_pcap=" + pcap + ",infinite_rx=1\"",
                                   "decap = \"match\"\n"
                                   "[[capture.slice]]\nfilter = \"tcp\"\nsnaplen = 64\n");
    std::remove(pcap.c_str());
}

TEST(NoAllocation, PipelineLz4) {
    steady_state_allocates_nothing("mode = \"pipeline\"\nrx = [1]\ncodec = [2]\negress = [3]",
                                   "lz4", "");
}

// The counter itself works: an allocation on a worker lcore is seen.
TEST(NoAllocation, CounterSeesWorkerAllocations) {
    ASSERT_TRUE(init_eal_for_tests());
    g_allocs.store(0);
    g_counting.store(true);
    rte_eal_remote_launch(
        [](void*) -> int {
            void* volatile p = std::malloc(64);
            std::free(p);
            return 0;
        },
        nullptr, 1);
    rte_eal_wait_lcore(1);
    g_counting.store(false);
    EXPECT_EQ(g_allocs.load(), 1);
}

}  // namespace
