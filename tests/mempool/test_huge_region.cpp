// HugeRegion: the pages are the size asked for, on the node asked for, as the kernel reports
// them; a shortage falls back with exactly one warning that names the fix; errors are values.
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "page_facts.hpp"
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/mempool/huge_region.hpp"

using sluice::mempool::bytes_of;
using sluice::mempool::huge_page_counts;
using sluice::mempool::HugeRegion;
using sluice::mempool::HugeRegionOptions;
using sluice::mempool::PageSize;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Collects the warnings HugeRegion emits, instead of stderr.
class WarningCapture {
  public:
    WarningCapture() {
        const std::lock_guard lock(mutex());
        messages().clear();
        sluice::mempool::set_warning_sink(&sink);
    }
    ~WarningCapture() { sluice::mempool::set_warning_sink(nullptr); }
    std::vector<std::string> taken() {
        const std::lock_guard lock(mutex());
        return messages();
    }

  private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    static std::vector<std::string>& messages() {
        static std::vector<std::string> v;
        return v;
    }
    static void sink(std::string_view m) {
        const std::lock_guard lock(mutex());
        messages().emplace_back(m);
    }
};

bool have_free_2m(std::size_t pages) {
    const auto c = huge_page_counts(PageSize::huge_2m);
    return c.supported && c.free >= c.reserved + pages;
}

TEST(HugeRegion, TwoMegabytePagesAsAsked) {
    if (!have_free_2m(2)) GTEST_SKIP() << "fewer than 2 free 2 MB huge pages";
    WarningCapture warnings;
    HugeRegionOptions o;
    o.bytes = 3 * kMiB;  // rounds up to 2 pages
    o.name = "test region";
    auto r = HugeRegion::allocate(o);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->page_size(), PageSize::huge_2m);
    EXPECT_FALSE(r->fell_back());
    EXPECT_EQ(r->length(), 4 * kMiB);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(r->base()) % (2 * kMiB), 0u);
    EXPECT_EQ(sluice::test::kernel_page_size(r->base()), 2 * kMiB);
    EXPECT_TRUE(r->warning().empty());
    EXPECT_TRUE(warnings.taken().empty());
    std::memset(r->base(), 0x3c, r->length());  // all of it is mapped and writable
}

TEST(HugeRegion, PagesLandOnTheRequestedNode) {
    for (const int node : sluice::test::memory_nodes()) {
        const auto c = huge_page_counts(PageSize::huge_2m, node);
        if (!c.supported || c.free < 4) continue;
        HugeRegionOptions o;
        o.bytes = 8 * kMiB;
        o.numa_node = node;
        o.allow_fallback = false;
        auto r = HugeRegion::allocate(o);
        ASSERT_TRUE(r.has_value()) << r.error().message;
        EXPECT_EQ(r->numa_node(), node);
        const auto nodes = sluice::test::page_nodes(r->base(), r->length(), 2 * kMiB);
        ASSERT_EQ(nodes.size(), 4u);
        for (int n : nodes)
            EXPECT_EQ(n, node);
        const auto policy = sluice::test::policy_at(r->base());
        EXPECT_EQ(policy.mode, MPOL_BIND);
        EXPECT_EQ(policy.nodes, std::vector<int>{node});
    }
}

TEST(HugeRegion, SmallPagesAreBoundToo) {
    const int node = sluice::test::memory_nodes().back();
    HugeRegionOptions o;
    o.bytes = 1 * kMiB;
    o.page_size = PageSize::small;
    o.numa_node = node;
    auto r = HugeRegion::allocate(o);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->page_size(), PageSize::small);
    EXPECT_FALSE(r->fell_back());
    const auto nodes = sluice::test::page_nodes(r->base(), r->length(), 4096);
    ASSERT_EQ(nodes.size(), 256u);
    for (int n : nodes)
        ASSERT_EQ(n, node) << "pages are populated, and on the node";
}

TEST(HugeRegion, NodeThatDoesNotExistIsAnError) {
    HugeRegionOptions o;
    o.bytes = kMiB;
    o.numa_node = sluice::test::memory_nodes().back() + 1;
    auto r = HugeRegion::allocate(o);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("does not exist"), std::string::npos) << r.error().message;
    o.numa_node = -2;
    EXPECT_FALSE(HugeRegion::allocate(o).has_value());
}

TEST(HugeRegion, ZeroBytesIsAnError) {
    HugeRegionOptions o;
    auto r = HugeRegion::allocate(o);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("0 bytes"), std::string::npos);
}

// 1 GB pages are rarely reserved (none on the development machines): asking for them falls back
// to 2 MB pages with one warning that says how to reserve 1 GB pages.
TEST(HugeRegion, OneGigabytePagesNotReservedFallBackWithOneWarning) {
    const auto gig = huge_page_counts(PageSize::huge_1g);
    if (gig.supported && gig.free > gig.reserved) GTEST_SKIP() << "1 GB pages are reserved here";
    WarningCapture warnings;
    HugeRegionOptions o;
    o.bytes = 3 * kMiB;
    o.page_size = PageSize::huge_1g;
    o.name = "frame pool";
    auto r = HugeRegion::allocate(o);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_TRUE(r->fell_back());
    EXPECT_EQ(r->requested_page_size(), PageSize::huge_1g);
    EXPECT_NE(r->page_size(), PageSize::huge_1g);
    EXPECT_EQ(sluice::test::kernel_page_size(r->base()), bytes_of(r->page_size()));
    const auto w = warnings.taken();
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0], r->warning());
    EXPECT_NE(w[0].find("frame pool"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("1 x 1 GB"), std::string::npos) << w[0];
    if (gig.supported) {
        // Names the count to reserve and where: the current reservation plus the one missing.
        const std::string want = "hugepages=" + std::to_string(gig.total + 1);
        EXPECT_NE(w[0].find(want), std::string::npos) << w[0];
        EXPECT_NE(w[0].find("hugepages-1048576kB/nr_hugepages"), std::string::npos) << w[0];
    }
}

TEST(HugeRegion, FallbackCanBeRefused) {
    const auto gig = huge_page_counts(PageSize::huge_1g);
    if (gig.supported && gig.free > gig.reserved) GTEST_SKIP() << "1 GB pages are reserved here";
    WarningCapture warnings;
    HugeRegionOptions o;
    o.bytes = kMiB;
    o.page_size = PageSize::huge_1g;
    o.allow_fallback = false;
    auto r = HugeRegion::allocate(o);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("1 GB"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("not created"), std::string::npos) << r.error().message;
    EXPECT_TRUE(warnings.taken().empty());
}

// More 2 MB pages than the machine has reserved in total: falls back to 4 KB pages.
TEST(HugeRegion, MoreTwoMegabytePagesThanReservedFallBackToSmallPages) {
    const auto c = huge_page_counts(PageSize::huge_2m);
    if (!c.supported) GTEST_SKIP() << "no 2 MB huge pages on this kernel";
    std::size_t overcommit = 0;
    std::ifstream("/proc/sys/vm/nr_overcommit_hugepages") >> overcommit;
    if (overcommit != 0) GTEST_SKIP() << "huge page overcommit is on: no shortage to provoke";
    if (c.total > 2048) GTEST_SKIP() << "more than 4 GB reserved: the test would map too much";
    WarningCapture warnings;
    HugeRegionOptions o;
    o.bytes = (c.total + 1) * 2 * kMiB;
    o.name = "big pool";
    auto r = HugeRegion::allocate(o);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->page_size(), PageSize::small);
    EXPECT_EQ(sluice::test::kernel_page_size(r->base()), 4096u);
    const auto w = warnings.taken();
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("big pool"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find(std::to_string(c.total + 1) + " x 2 MB"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("hugepages-2048kB/nr_hugepages"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("echo "), std::string::npos) << w[0];
}

TEST(HugeRegion, LockedRegionCountsAsLockedMemory) {
    auto vm_lck_kb = [] {
        std::ifstream in("/proc/self/status");
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("VmLck:", 0) == 0) return std::stoul(line.substr(6));
        }
        return 0UL;
    };
    const unsigned long before = vm_lck_kb();
    HugeRegionOptions o;
    o.bytes = 2 * kMiB;
    o.page_size = PageSize::small;
    o.lock = true;
    auto r = HugeRegion::allocate(o);
    if (!r.has_value()) {
        // An unprivileged run with a small RLIMIT_MEMLOCK: the error must say what to do.
        EXPECT_NE(r.error().message.find("ulimit -l"), std::string::npos) << r.error().message;
        return;
    }
    EXPECT_TRUE(r->locked());
#if !defined(__SANITIZE_ADDRESS__)  // ASan's runtime turns mlock() into a no-op
    EXPECT_GE(vm_lck_kb(), before + 2048);
#else
    (void)before;
#endif
}

TEST(HugeRegion, SharedRegionIsSharedWithForkedChildren) {
    HugeRegionOptions o;
    o.bytes = 2 * kMiB;
    o.shared = true;
    auto r = HugeRegion::allocate(o);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    auto* p = reinterpret_cast<volatile std::uint64_t*>(r->base());
    p[0] = 1;
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        p[0] = 42;
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_EQ(p[0], 42u);
}

TEST(HugeRegion, MoveTransfersOwnership) {
    HugeRegionOptions o;
    o.bytes = 64 * 1024;
    o.page_size = PageSize::small;
    auto r = HugeRegion::allocate(o);
    ASSERT_TRUE(r.has_value());
    std::byte* base = r->base();
    HugeRegion a = std::move(r).value();
    EXPECT_EQ(a.base(), base);
    HugeRegion b = std::move(a);
    EXPECT_EQ(b.base(), base);
    EXPECT_EQ(a.base(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(b.length(), 64u * 1024);
}

}  // namespace
