// HugeRegion: one contiguous block of memory backed by 2 MB or 1 GB pages, placed on a NUMA node,
// populated up front so the hot path never takes a page fault. Frame pools and RDMA buffers are
// carved from it; RDMA registers base()/length() once.
//
// When the huge pages are not there, the region falls back to the next smaller page size (1 GB ->
// 2 MB -> 4 KB) and reports it with one warning that says how many pages to reserve and how. See
// docs/memory.md.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "sluice/report/result.hpp"

namespace sluice::mempool {

using report::Error;
using report::Result;

enum class PageSize : std::size_t {
    small = std::size_t{4} << 10,    // the base page size (4 KB on x86-64)
    huge_2m = std::size_t{2} << 20,  // 2 MB huge pages
    huge_1g = std::size_t{1} << 30,  // 1 GB huge pages
};

constexpr std::size_t bytes_of(PageSize p) noexcept {
    return static_cast<std::size_t>(p);
}
// "4 KB", "2 MB", "1 GB".
std::string_view to_string(PageSize p) noexcept;

struct HugeRegionOptions {
    std::size_t bytes = 0;                   // rounded up to whole pages
    PageSize page_size = PageSize::huge_2m;  // what to try first
    // NUMA node to take the pages from (MPOL_BIND); -1 leaves placement to the kernel, which
    // puts them on the node of the calling thread.
    int numa_node = -1;
    // mlock() the region. Huge pages are never swapped anyway; this matters for the small-page
    // fallback.
    bool lock = false;
    // false: fail instead of falling back to smaller pages.
    bool allow_fallback = true;
    // MAP_SHARED: fork()ed children share the pages instead of getting copy-on-write copies
    // (a ring in the region then works across processes).
    bool shared = false;
    // Names the region in messages ("frame pool", "rdma rx ring", ...).
    std::string name = "memory region";
};

class HugeRegion {
  public:
    // Maps, binds and populates the region. Errors (invalid options, a NUMA node that does not
    // exist, no memory at all, mlock refused) come back as values; a fallback to smaller pages
    // is not an error but one warning, sent to the warning sink and kept in warning().
    static Result<HugeRegion> allocate(const HugeRegionOptions& options);

    HugeRegion(HugeRegion&& o) noexcept;
    HugeRegion& operator=(HugeRegion&& o) noexcept;
    HugeRegion(const HugeRegion&) = delete;
    HugeRegion& operator=(const HugeRegion&) = delete;
    ~HugeRegion();

    std::byte* base() const noexcept { return base_; }
    // Mapped length: the requested bytes rounded up to whole pages of page_size().
    std::size_t length() const noexcept { return length_; }
    // The page size that backs the region, and the one that was asked for.
    PageSize page_size() const noexcept { return page_size_; }
    PageSize requested_page_size() const noexcept { return requested_; }
    bool fell_back() const noexcept { return page_size_ != requested_; }
    // The node the pages are bound to, or -1 if placement was left to the kernel.
    int numa_node() const noexcept { return numa_node_; }
    bool locked() const noexcept { return locked_; }
    const std::string& name() const noexcept { return name_; }
    // The fallback warning, or empty.
    const std::string& warning() const noexcept { return warning_; }

  private:
    HugeRegion() = default;
    void release() noexcept;

    std::byte* base_ = nullptr;
    std::size_t length_ = 0;
    PageSize page_size_ = PageSize::small;
    PageSize requested_ = PageSize::small;
    int numa_node_ = -1;
    bool locked_ = false;
    std::string name_;
    std::string warning_;
};

// Where fallback warnings go. The default writes one line to stderr; the dataplane installs its
// logger. Pass nullptr to restore the default. Thread-safe.
using WarningSink = void (*)(std::string_view message);
void set_warning_sink(WarningSink sink) noexcept;

// Huge pages of one size as the kernel reports them, for a node (numa_node >= 0) or for the
// whole machine. All zero when the kernel does not offer that size.
struct HugePageCounts {
    bool supported = false;
    std::size_t total = 0;     // nr_hugepages
    std::size_t free = 0;      // free_hugepages
    std::size_t reserved = 0;  // resv_hugepages: promised to mappings, not yet faulted in
                               // (machine-wide only; 0 per node)
};
HugePageCounts huge_page_counts(PageSize size, int numa_node = -1);

}  // namespace sluice::mempool
