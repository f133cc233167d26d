// HugeRegion: mmap with MAP_HUGETLB, mbind to a node, populate up front, fall back with one
// warning. Control path only: everything here runs at start-up.
#include "sluice/mempool/huge_region.hpp"

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

namespace sluice::mempool {

namespace {

void default_sink(std::string_view message) {
    std::fprintf(stderr, "sluice: warning: %.*s\n", static_cast<int>(message.size()),
                 message.data());
}

// Acquire/release: a sink installed by one thread is called complete by another; pairs the
// store in set_warning_sink() with the load in warn().
std::atomic<WarningSink> g_sink{nullptr};

void warn(const std::string& message) {
    const WarningSink sink = g_sink.load(std::memory_order_acquire);
    (sink != nullptr ? sink : &default_sink)(message);
}

std::string errno_text(int err) {
    return fmt::format("{} (errno {})", std::strerror(err), err);
}

std::string mib(std::size_t bytes) {
    if (bytes % (std::size_t{1} << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

std::string hugepage_dir(PageSize size, int node) {
    const std::size_t kb = bytes_of(size) >> 10;
    if (node < 0) return fmt::format("/sys/kernel/mm/hugepages/hugepages-{}kB", kb);
    return fmt::format("/sys/devices/system/node/node{}/hugepages/hugepages-{}kB", node, kb);
}

std::optional<std::size_t> read_count(const std::string& path) {
    std::ifstream in(path);
    std::size_t v = 0;
    if (!(in >> v)) return std::nullopt;
    return v;
}

bool numa_usable() {
    // numa_available() must precede every other libnuma call; it is cheap and idempotent.
    static const bool usable = numa_available() >= 0;
    return usable;
}

std::string node_list() {
    if (!numa_usable()) return "0 (no NUMA support in this kernel)";
    std::string out;
    for (int n = 0; n <= numa_max_node(); ++n) {
        if (numa_bitmask_isbitset(numa_all_nodes_ptr, static_cast<unsigned>(n))) {
            out += out.empty() ? fmt::format("{}", n) : fmt::format(", {}", n);
        }
    }
    return out;
}

// The node to bind to, -1 for none, or an error for a node that does not exist.
Result<int> resolve_node(int node, const std::string& name) {
    if (node == -1) return -1;
    if (node < -1) {
        return Error{EINVAL,
                     fmt::format("{}: NUMA node {} is not valid; use -1 (any) or one of: {}", name,
                                 node, node_list())};
    }
    if (!numa_usable()) {
        // A kernel without NUMA support has exactly one node, 0: nothing to bind.
        if (node == 0) return -1;
        return Error{EINVAL, fmt::format("{}: NUMA node {} does not exist; this kernel has no NUMA "
                                         "support, so only node 0 (or -1) is valid",
                                         name, node)};
    }
    if (node > numa_max_node() ||
        !numa_bitmask_isbitset(numa_all_nodes_ptr, static_cast<unsigned>(node))) {
        return Error{EINVAL,
                     fmt::format("{}: NUMA node {} does not exist on this machine; its nodes "
                                 "are: {}",
                                 name, node, node_list())};
    }
    return node;
}

struct Mapping {
    void* base = nullptr;
    std::size_t length = 0;
};

constexpr std::size_t align_up(std::size_t n, std::size_t a) {
    return (n + a - 1) / a * a;
}

// One attempt at one page size. Returns the mapping or why it failed (errno in code).
Result<Mapping> map_pages(const HugeRegionOptions& o, PageSize size, int node) {
    Mapping m;
    m.length = align_up(o.bytes, bytes_of(size));
    int flags = (o.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
    if (size != PageSize::small) {
        flags |= MAP_HUGETLB | (std::countr_zero(bytes_of(size)) << MAP_HUGE_SHIFT);
    }
    // Without MAP_NORESERVE the kernel reserves huge pages at mmap time, so a plain shortage
    // fails here with ENOMEM rather than later with SIGBUS.
    m.base = mmap(nullptr, m.length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (m.base == MAP_FAILED) {
        const int err = errno;
        return Error{err, fmt::format("mmap failed: {}", errno_text(err))};
    }
    auto fail = [&](int err, std::string why) -> Result<Mapping> {
        munmap(m.base, m.length);
        return Error{err, std::move(why)};
    };
    if (size == PageSize::small && !o.shared) {
        // Let transparent huge pages back what they can; harmless if THP is off.
        (void)madvise(m.base, m.length, MADV_HUGEPAGE);
    }
    if (node >= 0) {
        std::vector<unsigned long> mask(static_cast<std::size_t>(node) / 64 + 1, 0);
        mask[static_cast<std::size_t>(node) / 64] |= 1UL << (node % 64);
        // MPOL_BIND before the first touch: every page comes from `node` or the touch fails.
        if (mbind(m.base, m.length, MPOL_BIND, mask.data(), mask.size() * 64 + 1, 0) != 0) {
            const int err = errno;
            return fail(err,
                        fmt::format("mbind to NUMA node {} failed: {}", node, errno_text(err)));
        }
    }
    // Fault every page in now (not on the hot path). MADV_POPULATE_WRITE reports a shortage on
    // the bound node as an error instead of a SIGBUS at first touch.
    if (madvise(m.base, m.length, MADV_POPULATE_WRITE) != 0) {
        const int err = errno;
        if (err != EINVAL) {
            return fail(err, fmt::format("could not populate the pages{}: {}",
                                         node >= 0 ? fmt::format(" on NUMA node {}", node) : "",
                                         errno_text(err)));
        }
        // Kernel older than 5.14: touch each page. The reservation made by mmap covers a
        // machine-wide shortage; a per-node one would raise SIGBUS here.
        auto* p = static_cast<volatile std::byte*>(m.base);
        for (std::size_t off = 0; off < m.length; off += bytes_of(size))
            p[off] = std::byte{0};
    }
    return m;
}

// The one warning for a region that did not get the pages it asked for.
std::string fallback_warning(const HugeRegionOptions& o, int node, PageSize got, const Error& why) {
    const PageSize want = o.page_size;
    const std::size_t need = align_up(o.bytes, bytes_of(want)) / bytes_of(want);
    const HugePageCounts c = huge_page_counts(want, node);
    const std::string where = node >= 0 ? fmt::format(" on NUMA node {}", node) : "";
    std::string msg = fmt::format("{}: wanted {} x {} huge pages ({}){}", o.name, need,
                                  to_string(want), mib(o.bytes), where);
    if (!c.supported) {
        msg += fmt::format(
            ", but this kernel or CPU offers no {} pages ({} does not exist); using {} pages "
            "instead. Ask for {} pages in the configuration to avoid this warning.",
            to_string(want), hugepage_dir(want, -1), to_string(got),
            to_string(want == PageSize::huge_1g ? PageSize::huge_2m : PageSize::small));
        return msg;
    }
    const std::size_t avail = c.free > c.reserved ? c.free - c.reserved : 0;
    const std::size_t target = c.total + (need > avail ? need - avail : 0);
    if (need > avail) {
        msg += fmt::format(", but only {} {} free", avail, avail == 1 ? "is" : "are");
    } else {
        msg += fmt::format(
            ", and {} looked free, but the kernel refused ({}; a hugetlb cgroup "
            "limit, or another program took them first)",
            avail, why.message);
    }
    msg += fmt::format("; using {} pages instead, which costs TLB misses on the hot path. ",
                       to_string(got));
    const std::string boot =
        want == PageSize::huge_1g
            ? fmt::format("default_hugepagesz=1G hugepagesz=1G hugepages={}", target)
            : fmt::format("hugepagesz=2M hugepages={}", target);
    if (want == PageSize::huge_1g) {
        msg += fmt::format(
            "Reserve {} pages of 1 GB at boot (kernel command line: {}); at run time "
            "`echo {} > {}/nr_hugepages` works only while memory is unfragmented. Then restart.",
            target, boot, target, hugepage_dir(want, node));
    } else {
        msg += fmt::format(
            "Reserve them with `echo {} > {}/nr_hugepages` (or at boot: {}), then "
            "restart.",
            target, hugepage_dir(want, node), boot);
    }
    return msg;
}

}  // namespace

std::string_view to_string(PageSize p) noexcept {
    switch (p) {
        case PageSize::small:
            return "4 KB";
        case PageSize::huge_2m:
            return "2 MB";
        case PageSize::huge_1g:
            return "1 GB";
    }
    return "?";
}

void set_warning_sink(WarningSink sink) noexcept {
    // Release: pairs with the acquire in warn().
    g_sink.store(sink, std::memory_order_release);
}

HugePageCounts huge_page_counts(PageSize size, int numa_node) {
    HugePageCounts c;
    if (size == PageSize::small) return c;
    const std::string dir = hugepage_dir(size, numa_node);
    const auto total = read_count(dir + "/nr_hugepages");
    if (!total) return c;
    c.supported = true;
    c.total = *total;
    c.free = read_count(dir + "/free_hugepages").value_or(0);
    if (numa_node < 0) c.reserved = read_count(dir + "/resv_hugepages").value_or(0);
    return c;
}

Result<HugeRegion> HugeRegion::allocate(const HugeRegionOptions& o) {
    if (o.bytes == 0) {
        return Error{EINVAL, fmt::format("{}: asked for a region of 0 bytes", o.name)};
    }
    auto node = resolve_node(o.numa_node, o.name);
    if (!node) return node.error();

    std::vector<PageSize> sizes{o.page_size};
    if (o.allow_fallback) {
        if (o.page_size == PageSize::huge_1g) sizes.push_back(PageSize::huge_2m);
        if (o.page_size != PageSize::small) sizes.push_back(PageSize::small);
    }
    std::optional<Error> first_failure;
    for (const PageSize size : sizes) {
        auto m = map_pages(o, size, *node);
        if (!m) {
            if (!first_failure) first_failure = m.error();
            continue;
        }
        HugeRegion r;
        r.base_ = static_cast<std::byte*>(m->base);
        r.length_ = m->length;
        r.page_size_ = size;
        r.requested_ = o.page_size;
        r.numa_node_ = *node;
        r.name_ = o.name;
        if (o.lock) {
            if (mlock(r.base_, r.length_) != 0) {
                const int err = errno;
                return Error{err, fmt::format("{}: mlock of {} failed: {}. Raise the locked-memory "
                                              "limit (ulimit -l, or LimitMEMLOCK= in the systemd "
                                              "unit) or turn locking off",
                                              o.name, mib(r.length_), errno_text(err))};
            }
            r.locked_ = true;
        }
        if (r.fell_back()) {
            r.warning_ = fallback_warning(o, *node, size, *first_failure);
            warn(r.warning_);
        }
        return r;
    }
    const Error& e = *first_failure;
    if (sizes.size() == 1 && o.page_size != PageSize::small) {
        // Fallback was forbidden: the error carries the same advice the warning would.
        return Error{e.code, fallback_warning(o, *node, PageSize::small, e) +
                                 " (Fallback is disabled for this region, so it was not "
                                 "created.)"};
    }
    return Error{e.code,
                 fmt::format("{}: cannot map {}{}: {}. Free memory or lower the sizes in "
                             "the configuration",
                             o.name, mib(o.bytes),
                             *node >= 0 ? fmt::format(" on NUMA node {}", *node) : "", e.message)};
}

HugeRegion::HugeRegion(HugeRegion&& o) noexcept {
    *this = std::move(o);
}

HugeRegion& HugeRegion::operator=(HugeRegion&& o) noexcept {
    if (this != &o) {
        release();
        base_ = std::exchange(o.base_, nullptr);
        length_ = std::exchange(o.length_, 0);
        page_size_ = o.page_size_;
        requested_ = o.requested_;
        numa_node_ = o.numa_node_;
        locked_ = std::exchange(o.locked_, false);
        name_ = std::move(o.name_);
        warning_ = std::move(o.warning_);
    }
    return *this;
}

HugeRegion::~HugeRegion() {
    release();
}

void HugeRegion::release() noexcept {
    if (base_ != nullptr) {
        munmap(base_, length_);  // also drops an mlock
        base_ = nullptr;
        length_ = 0;
    }
}

}  // namespace sluice::mempool
