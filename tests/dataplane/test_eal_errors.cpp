// The translation of EAL failures, driven by the logs real EAL runs print.
// tests/system/test_eal_failures.py drives the same causes with real runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>

#include "sluice/dataplane/eal.hpp"

using namespace sluice::dataplane;
using ::testing::HasSubstr;

TEST(EalErrors, NoFreeHugePages) {
    const char* log =
        "EAL: Detected CPU lcores: 2\nEAL: Selected IOVA mode 'PA'\n"
        "EAL: No free 2048 kB hugepages reported on node 0\n"
        "EAL: FATAL: Cannot get hugepage information.\nEAL: Cannot get hugepage information.\n";
    auto f = explain_eal_failure(log, EACCES);
    EXPECT_EQ(f.exit_code, kExitEnvironment);
    EXPECT_THAT(f.message, HasSubstr("no free huge pages"));
    EXPECT_THAT(f.message,
                HasSubstr("echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"));
    EXPECT_THAT(f.message, HasSubstr("--no-huge"));
}

TEST(EalErrors, HugetlbfsNotMounted) {
    const char* log =
        "EAL: 1024 hugepages of size 2097152 reserved, but no mounted hugetlbfs found for that "
        "size\nEAL: FATAL: Cannot get hugepage information.\n";
    auto f = explain_eal_failure(log, EACCES);
    EXPECT_EQ(f.exit_code, kExitEnvironment);
    EXPECT_THAT(f.message, HasSubstr("no hugetlbfs is mounted for 2048 kB pages"));
    EXPECT_THAT(f.message, HasSubstr("mount -t hugetlbfs nodev /dev/hugepages"));
    EXPECT_THAT(f.message, HasSubstr("--in-memory"));
}

TEST(EalErrors, HugetlbfsNotMountedFromSystemFactsWhenTheLogIsQuiet) {
    // With --log-level below INFO, EAL prints only the fatal line.
    HugepageFacts facts;
    facts.known = true;
    facts.hugetlbfs_mounted = false;
    facts.free_2m = 512;
    auto f = explain_eal_failure("EAL: FATAL: Cannot get hugepage information.\n", EACCES, facts);
    EXPECT_THAT(f.message, HasSubstr("no hugetlbfs is mounted"));
    facts.hugetlbfs_mounted = true;
    facts.free_2m = 0;
    f = explain_eal_failure("EAL: FATAL: Cannot get hugepage information.\n", EACCES, facts);
    EXPECT_THAT(f.message, HasSubstr("no free huge pages"));
}

TEST(EalErrors, NotEnoughMemoryNamesThePagesToReserve) {
    // The 1 GB warning comes first in the real log; it is not the cause.
    const char* log =
        "EAL: No free 1048576 kB hugepages reported on node 0\n"
        "EAL: Not enough memory available! Requested: 100000MB, available: 2048MB\n"
        "EAL: FATAL: Cannot init memory\n";
    auto f = explain_eal_failure(log, ENOMEM);
    EXPECT_EQ(f.exit_code, kExitEnvironment);
    EXPECT_THAT(f.message, HasSubstr("asked for 100000 MB and 2048 MB are free"));
    EXPECT_THAT(f.message, HasSubstr("echo 50064 > /sys/kernel/mm/hugepages/hugepages-2048kB"));
}

TEST(EalErrors, FilePrefixInUse) {
    const char* log =
        "EAL: Cannot create lock on '/var/run/dpdk/px3/config'. Is another primary process "
        "running?\nEAL: FATAL: Cannot init config\n";
    auto f = explain_eal_failure(log, 0);
    EXPECT_EQ(f.exit_code, kExitEnvironment);
    EXPECT_THAT(f.message, HasSubstr("already uses the file prefix 'px3'"));
    EXPECT_THAT(f.message, HasSubstr("--file-prefix NAME"));
    EXPECT_THAT(f.message, HasSubstr("--in-memory"));
}

TEST(EalErrors, BadArgumentsAreAUsageError) {
    auto f = explain_eal_failure(
        "EAL: lcore 7 unavailable\nEAL: invalid core list, please check specified cores are part "
        "of 0-1\n",
        EINVAL);
    EXPECT_EQ(f.exit_code, kExitUsage);
    EXPECT_THAT(f.message, HasSubstr("EAL arguments go before '--'"));
}

TEST(EalErrors, UnknownCauseStillSaysSomething) {
    auto f = explain_eal_failure("EAL: something new\n", ENODEV);
    EXPECT_EQ(f.exit_code, kExitEnvironment);
    EXPECT_THAT(f.message, HasSubstr("No such device"));
}

TEST(EalErrors, FilePrefixOfArguments) {
    std::vector<std::string> a{"-l", "0,1", "--file-prefix", "x1"};
    EXPECT_EQ(file_prefix_of(a), "x1");
    std::vector<std::string> b{"--file-prefix=y2"};
    EXPECT_EQ(file_prefix_of(b), "y2");
    std::vector<std::string> c{"-l", "0"};
    EXPECT_EQ(file_prefix_of(c), "rte");
}
