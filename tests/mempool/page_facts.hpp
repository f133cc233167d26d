// What the kernel says about a mapping: page size (smaps), node of each page (move_pages), and
// the memory policy (get_mempolicy). Tests check the pools against these, not against the
// pools' own bookkeeping.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>

#include "sluice/mempool/huge_region.hpp"

namespace sluice::test {

// KernelPageSize of the mapping that contains addr, in bytes (0 if not found).
inline std::size_t kernel_page_size(const void* addr) {
    std::ifstream in("/proc/self/smaps");
    const auto a = reinterpret_cast<std::uintptr_t>(addr);
    std::string line;
    bool inside = false;
    while (std::getline(in, line)) {
        unsigned long lo = 0, hi = 0;
        char dash = 0;
        std::istringstream head(line);
        if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
            inside = a >= lo && a < hi;
            continue;
        }
        if (inside && line.rfind("KernelPageSize:", 0) == 0) {
            std::istringstream v(line.substr(15));
            std::size_t kb = 0;
            v >> kb;
            return kb * 1024;
        }
    }
    return 0;
}

// NUMA node of every page in [base, base+len), as move_pages reports it (negative: errno).
inline std::vector<int> page_nodes(const void* base, std::size_t len, std::size_t page) {
    std::vector<void*> pages;
    for (std::size_t off = 0; off < len; off += page) {
        pages.push_back(const_cast<char*>(static_cast<const char*>(base) + off));
    }
    std::vector<int> status(pages.size(), -1);
    if (move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0) != 0) return {};
    return status;
}

struct Policy {
    int mode = -1;
    std::vector<int> nodes;
};

inline Policy policy_at(const void* addr) {
    Policy p;
    unsigned long mask[16] = {};
    if (get_mempolicy(&p.mode, mask, sizeof(mask) * 8, const_cast<void*>(addr), MPOL_F_ADDR) != 0) {
        p.mode = -1;
        return p;
    }
    for (int n = 0; n < static_cast<int>(sizeof(mask) * 8); ++n) {
        if (mask[n / 64] & (1UL << (n % 64))) p.nodes.push_back(n);
    }
    return p;
}

// Nodes that have memory, per libnuma ({0} without NUMA support).
inline std::vector<int> memory_nodes() {
    if (numa_available() < 0) return {0};
    std::vector<int> out;
    for (int n = 0; n <= numa_max_node(); ++n) {
        if (numa_bitmask_isbitset(numa_all_nodes_ptr, static_cast<unsigned>(n))) out.push_back(n);
    }
    return out;
}

}  // namespace sluice::test
