// EAL bring-up for the benchmarks that compare with DPDK (rte_ring, rte_mempool). Decided before
// the first and only rte_eal_init: huge pages in memory only (--in-memory, nothing left in
// /dev/hugepages) when enough are free, otherwise plain memory (--no-huge -m 256). A unique
// file prefix keeps several runs on one machine apart.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

namespace sluice::bench {

inline std::size_t free_2m_pages() {
    std::size_t free = 0, resv = 0;
    std::ifstream("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") >> free;
    std::ifstream("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages") >> resv;
    return free > resv ? free - resv : 0;
}

// Returns "hugepages" or "no-huge"; exits with a message if EAL refuses.
inline const char* init_eal(const char* program, std::size_t hugepages_needed) {
    const bool huge = free_2m_pages() >= hugepages_needed;
    const std::string prefix = "sluice-bench-" + std::to_string(getpid());
    std::vector<std::string> args{program,       "--no-pci",      "-l",
                                  "0,1",         "--file-prefix", prefix,
                                  "--log-level", "lib.eal:error", "--no-telemetry"};
    if (huge) {
        args.emplace_back("--in-memory");
    } else {
        args.insert(args.end(), {"--no-huge", "-m", "256"});
    }
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
        std::fprintf(stderr, "rte_eal_init failed: %s (huge pages free: %zu)\n",
                     rte_strerror(rte_errno), free_2m_pages());
        std::exit(1);
    }
    return huge ? "hugepages" : "no-huge";
}

inline void pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace sluice::bench
