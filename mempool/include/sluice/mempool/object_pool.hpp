// ObjectPool: fixed-size, cache-line-aligned objects carved from one HugeRegion, handed out
// through per-thread caches (the rte_mempool design).
//
// - Each worker thread owns an ObjectPool::Cache: a stack of free objects it gets from and puts
//   to without any atomic read-modify-write. The caller passes the cache explicitly, so the fast
//   path pays no thread-local lookup.
// - A cache that runs dry refills in bulk from the shared store (an MpmcRing of free objects);
//   one that overflows flushes in bulk to it. Objects move between threads only through it.
// - Objects are addressed by 32-bit indices too (index_of / object_at), for handles that travel
//   through rings and for RDMA, which registers the whole region once (region()).
// - Exhaustion is an ordinary outcome: get() returns nullptr and get_bulk() false, and an
//   "empty" counter moves. Objects held in other threads' caches are not available to this one:
//   size pools for what is in flight plus what the caches hold (docs/memory.md).
//
// Thread safety: a Cache is used by one thread at a time. The cache-less calls, counters() and
// everything const are safe from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "sluice/lockfree/mpmc_ring.hpp"
#include "sluice/mempool/huge_region.hpp"
#include "sluice/report/result.hpp"

namespace sluice::mempool {

using report::Error;
using report::Result;

struct ObjectPoolOptions {
    std::string name = "object pool";  // names the pool in messages
    std::size_t object_size = 0;       // bytes; the stride is this rounded up to 64
    std::uint32_t capacity = 0;        // number of objects
    // Objects a thread cache keeps (it flushes at 1.5x this); at most ObjectPool::kMaxCacheSize.
    // 0 turns caching off: every get/put goes to the shared store.
    std::uint32_t cache_size = 256;
    // Backing memory (see HugeRegionOptions).
    PageSize page_size = PageSize::huge_2m;
    int numa_node = -1;
    bool lock = false;
    bool allow_fallback = true;
    bool shared = false;
};

class ObjectPool {
  public:
    static constexpr std::uint32_t kMaxCacheSize = 512;
    static constexpr std::size_t kAlignment = 64;  // every object starts on a cache line

    // A snapshot of the counters, summed over all caches (relaxed reads: each number is exact
    // for some recent moment, not all for the same one).
    struct Counters {
        std::uint64_t in_use = 0;        // objects handed out and not yet returned
        std::uint64_t gets = 0;          // objects handed out
        std::uint64_t puts = 0;          // objects returned
        std::uint64_t cache_hits = 0;    // objects handed out straight from a thread cache
        std::uint64_t refills = 0;       // cache refills from the shared store
        std::uint64_t flushes = 0;       // cache flushes to the shared store
        std::uint64_t empty_events = 0;  // get calls that found no object (pool exhausted)
    };

    // One thread's stack of free objects. Create one per worker thread, in that thread's
    // structures (it is ~8 KB); destroying it returns its objects to the pool. Must not outlive
    // the pool.
    class Cache {
      public:
        explicit Cache(ObjectPool& pool);
        ~Cache();
        Cache(const Cache&) = delete;
        Cache& operator=(const Cache&) = delete;

        // Free objects this cache holds.
        std::uint32_t size() const noexcept { return len_.load(std::memory_order_relaxed); }
        ObjectPool& pool() const noexcept { return *pool_; }

      private:
        friend class ObjectPool;

        // Counters are written only by the owning thread and read relaxed by counters() on any
        // thread; a relaxed load plus store (not an atomic add) is all a single writer needs.
        // The fast path moves only `puts_` (and len_): how many objects were handed out follows
        // from conservation, gets = puts + (into the cache from the store) - (out of it) - len.
        static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
            c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
        }

        ObjectPool* pool_;
        // Relaxed: written by the owner only; atomic so counters() may read it.
        std::atomic<std::uint32_t> len_{0};
        std::uint32_t target_;                       // objects kept after a refill
        std::uint32_t flush_at_;                     // a put that would go past this flushes
        std::atomic<std::uint64_t> puts_{0};         // objects returned through this cache
        std::atomic<std::uint64_t> refilled_{0};     // objects moved from the store into the stack
        std::atomic<std::uint64_t> flushed_{0};      // objects moved from the stack to the store
        std::atomic<std::uint64_t> direct_gets_{0};  // handed out from the store, bypassing
        std::atomic<std::uint64_t> direct_puts_{0};  // returned to the store, bypassing
        std::atomic<std::uint64_t> misses_{0};       // objects handed out by the slow path
        std::atomic<std::uint64_t> refills_{0};      // refill operations
        std::atomic<std::uint64_t> flushes_{0};      // flush operations
        std::atomic<std::uint64_t> empty_{0};
        std::array<void*, 2 * kMaxCacheSize> objs_;
    };

    // Maps the region, carves the objects, fills the shared store. Errors as values.
    static Result<std::unique_ptr<ObjectPool>> create(const ObjectPoolOptions& options);

    ObjectPool(const ObjectPool&) = delete;
    ObjectPool& operator=(const ObjectPool&) = delete;
    ~ObjectPool();

    // ---- fast path: through the calling thread's cache -----------------------------------
    // Cost from the cache: a few instructions and one counter store, no atomic RMW.

    // An object, or nullptr if the pool is exhausted.
    void* get(Cache& c) noexcept {
        // Relaxed: len_ has a single writer, this thread (see Cache).
        const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
        if (len != 0) [[likely]] {
            void* obj = c.objs_[len - 1];
            c.len_.store(len - 1, std::memory_order_relaxed);
            return obj;
        }
        void* obj = nullptr;
        return get_slow(c, &obj, 1) ? obj : nullptr;
    }

    void put(Cache& c, void* obj) noexcept {
        // Relaxed: len_ has a single writer, this thread (see Cache).
        const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
        if (len < c.flush_at_) [[likely]] {
            c.objs_[len] = obj;
            c.len_.store(len + 1, std::memory_order_relaxed);
            Cache::bump(c.puts_, 1);
            return;
        }
        put_slow(c, &obj, 1);
    }

    // All of out.size() objects, or none (false, pool exhausted).
    bool get_bulk(Cache& c, std::span<void*> out) noexcept {
        const std::size_t n = out.size();
        // Relaxed: len_ has a single writer, this thread (see Cache).
        const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
        if (n <= len) [[likely]] {
            // The top n (the most recently put) in one straight copy; their order among
            // themselves does not matter.
            copy_pointers(out.data(), c.objs_.data() + (len - n), n);
            c.len_.store(len - static_cast<std::uint32_t>(n), std::memory_order_relaxed);
            return true;
        }
        return get_slow(c, out.data(), n);
    }

    void put_bulk(Cache& c, std::span<void* const> objs) noexcept {
        const std::size_t n = objs.size();
        // Relaxed: len_ has a single writer, this thread (see Cache).
        const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
        if (len + n <= c.flush_at_) [[likely]] {
            copy_pointers(c.objs_.data() + len, objs.data(), n);
            c.len_.store(len + static_cast<std::uint32_t>(n), std::memory_order_relaxed);
            Cache::bump(c.puts_, n);
            return;
        }
        put_slow(c, objs.data(), n);
    }

    // Returns every object the cache holds to the shared store (one bulk enqueue), so other
    // threads can have them. For a thread that mostly puts (objects flow from it to a thread
    // that gets), when it goes idle or stops: its cache otherwise keeps up to cache_size of
    // them out of everyone else's reach.
    void flush(Cache& c) noexcept;

    // ---- without a cache: straight to the shared store -------------------------------------
    // Cost: one compare-and-swap on the shared store and one atomic add per call.

    void* get() noexcept;
    void put(void* obj) noexcept;
    bool get_bulk(std::span<void*> out) noexcept;
    void put_bulk(std::span<void* const> objs) noexcept;

    // ---- addressing ------------------------------------------------------------------------

    // Index of an object of this pool (0 .. capacity-1). Precondition: owns(obj).
    std::uint32_t index_of(const void* obj) const noexcept {
        const auto off = static_cast<std::uint64_t>(static_cast<const std::byte*>(obj) - base_);
        // Exact division by the stride: shift out its power of two, multiply by the inverse of
        // its odd part modulo 2^64.
        return static_cast<std::uint32_t>((off >> stride_shift_) * stride_odd_inverse_);
    }
    void* object_at(std::uint32_t index) const noexcept {
        return base_ + static_cast<std::size_t>(index) * stride_;
    }
    // True if obj is the start of one of this pool's objects.
    bool owns(const void* obj) const noexcept;

    // ---- properties ------------------------------------------------------------------------

    const std::string& name() const noexcept { return name_; }
    std::size_t object_size() const noexcept { return object_size_; }
    // Distance between consecutive objects: object_size rounded up to 64.
    std::size_t stride() const noexcept { return stride_; }
    std::uint32_t capacity() const noexcept { return capacity_; }
    std::uint32_t cache_size() const noexcept { return cache_size_; }
    // Free objects in the shared store (not counting those in caches); an estimate.
    std::size_t available_in_store() const noexcept { return store_.size(); }
    // The memory all objects live in, for RDMA registration and placement checks.
    const HugeRegion& region() const noexcept { return region_; }

    Counters counters() const;

  private:
    // n pointers, inline: four at a time as fixed-size copies the compiler turns into vector
    // moves, then the rest. A libc memcpy call of variable size cost more than the copy itself:
    // get+put of a burst of 32 took 0.66 ns per object with it and 0.36 ns inline
    // (bench/mempool, docs/performance.md).
    static void copy_pointers(void** dst, void* const* src, std::size_t n) noexcept {
        std::size_t i = 0;
        for (; i + 4 <= n; i += 4)
            std::memcpy(dst + i, src + i, 4 * sizeof(void*));
        for (; i < n; ++i)
            dst[i] = src[i];
    }

    ObjectPool(HugeRegion region, const ObjectPoolOptions& o, std::size_t stride);

    bool get_slow(Cache& c, void** out, std::size_t n) noexcept;
    void put_slow(Cache& c, void* const* objs, std::size_t n) noexcept;
    void store_put(void* const* objs, std::size_t n) noexcept;
    void attach(Cache& c);
    void detach(Cache& c) noexcept;
    static Counters totals_of(const Cache& c) noexcept;

    std::byte* base_;
    std::size_t stride_;
    unsigned stride_shift_;
    std::uint64_t stride_odd_inverse_;
    std::uint32_t capacity_;
    std::uint32_t cache_size_;
    std::size_t object_size_;
    std::string name_;
    HugeRegion region_;
    lockfree::MpmcRing<void*> store_;

    // Counters of the cache-less calls and of caches already destroyed.
    struct alignas(64) SharedCounters {
        std::atomic<std::uint64_t> gets{0}, puts{0}, hits{0}, refills{0}, flushes{0}, empty{0};
    };
    SharedCounters shared_;

    mutable std::mutex caches_mutex_;  // guards caches_ (control path only)
    std::vector<const Cache*> caches_;
};

}  // namespace sluice::mempool
