// capture.filter changed while a capture stage runs (LiveFilter): a refused
// expression changes nothing; a change waits for every polling reader to
// pass a burst boundary before it frees the old filter (under ASan, a reader
// still running a freed filter would be a use after free); a reader that
// does not poll never blocks a change, its old filter waits.
#include <atomic>
#include <thread>

#include "harness.hpp"
#include <gtest/gtest.h>

#include "sluice/dataplane/live_filter.hpp"

using namespace sluice;
using namespace sluice::dataplane;

namespace {

std::unique_ptr<BpfFilter> compiled(const std::string& expr) {
    std::string error;
    auto f = BpfFilter::create(expr, 65535, error);
    EXPECT_TRUE(f) << error;
    return f;
}

TEST(LiveFilter, ARefusedExpressionChangesNothing) {
    ASSERT_TRUE(sluice::testing::init_eal_for_tests());
    LiveFilter f(compiled("udp"), "udp", 65535, 1);
    const BpfFilter* before = f.current();
    const LiveFilter::Change c = f.set("tcp and (");
    EXPECT_FALSE(c.ok);
    EXPECT_NE(
        c.message.find(
            "capture.filter \"tcp and (\" refused: can't parse filter expression: syntax error"),
        std::string::npos)
        << c.message;
    EXPECT_NE(c.message.find("the filter stays \"udp\""), std::string::npos) << c.message;
    EXPECT_EQ(f.current(), before);
    EXPECT_EQ(f.expression(), "udp");
    EXPECT_EQ(f.changes(), 0u);
}

TEST(LiveFilter, NoneKeepsEveryPacketAndAFilterCanComeBack) {
    ASSERT_TRUE(sluice::testing::init_eal_for_tests());
    LiveFilter f(nullptr, "", 65535, 1);
    EXPECT_EQ(f.current(), nullptr);
    LiveFilter::Change c = f.set("tcp port 80");
    ASSERT_TRUE(c.ok) << c.message;
    EXPECT_NE(c.message.find("from none (every packet kept) to \"tcp port 80\""), std::string::npos)
        << c.message;
    EXPECT_NE(f.current(), nullptr);
    c = f.set("");
    ASSERT_TRUE(c.ok) << c.message;
    EXPECT_EQ(f.current(), nullptr);
    EXPECT_EQ(f.expression(), "");
    EXPECT_EQ(f.changes(), 2u);
}

TEST(LiveFilter, ChangesUnderAPollingReaderFreeOnlyWhatNoReaderHolds) {
    ASSERT_TRUE(sluice::testing::init_eal_for_tests());
    LiveFilter f(compiled("udp"), "udp", 65535, 2);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> polls{0};
    std::thread reader([&] {
        f.online(0);
        uint64_t jit = 0;
        while (!stop.load(std::memory_order_acquire)) {
            f.quiescent(0);
            // What a capture stage does with it during one burst: reads it.
            if (const BpfFilter* now = f.current()) jit += now->jit() ? 1 : 0;
            polls.fetch_add(1, std::memory_order_relaxed);
        }
        f.offline(0);
        EXPECT_LE(jit, polls.load());
    });
    while (polls.load() == 0)
        std::this_thread::yield();  // online and polling
    const uint64_t first = polls.load();
    // Reader 1 never comes online (a stage that has not started): it never
    // holds a change up.
    const char* exprs[] = {"tcp", "udp port 53", "", "icmp or arp", "vlan and tcp"};
    for (int i = 0; i < 100; ++i) {
        const LiveFilter::Change c = f.set(exprs[i % 5]);
        ASSERT_TRUE(c.ok) << c.message;
        EXPECT_EQ(f.retired(), 0u) << "the polling reader passed a burst boundary: " << c.message;
    }
    stop.store(true, std::memory_order_release);
    reader.join();
    // Each change waited for a poll that began after it.
    EXPECT_GE(polls.load() - first, 100u);
    EXPECT_EQ(f.changes(), 100u);
}

TEST(LiveFilter, AReaderThatStopsPollingDelaysOnlyTheFreeing) {
    ASSERT_TRUE(sluice::testing::init_eal_for_tests());
    LiveFilter f(compiled("udp"), "udp", 65535, 1);
    f.online(0);  // online on this thread, and then silent
    const BpfFilter* now = f.current();
    ASSERT_NE(now, nullptr);
    LiveFilter::Change c = f.set("tcp");
    ASSERT_TRUE(c.ok) << c.message;
    EXPECT_EQ(f.retired(), 1u);  // the reader may still run "udp": kept
    EXPECT_NE(c.message.find("1 old filter(s) are freed once every capture lcore polls again"),
              std::string::npos)
        << c.message;
    [[maybe_unused]] const bool touched = now->jit();  // still valid memory (ASan)
    f.quiescent(0);
    c = f.set("icmp");
    ASSERT_TRUE(c.ok) << c.message;
    // Freeing needs a boundary after this change's own start: both wait.
    EXPECT_EQ(f.retired(), 2u);
    f.offline(0);
    c = f.set("arp");
    ASSERT_TRUE(c.ok) << c.message;
    EXPECT_EQ(f.retired(), 0u);
}

}  // namespace
