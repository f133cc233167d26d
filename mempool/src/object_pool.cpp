// ObjectPool: creation, the slow paths of the per-thread caches, the cache-less calls and the
// counters.
#include "sluice/mempool/object_pool.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace sluice::mempool {

namespace {

constexpr std::uint32_t kMaxObjects = std::uint32_t{1} << 31;  // the store ring's limit

// Inverse of an odd number modulo 2^64 (Newton's iteration; each step doubles the correct bits,
// and x = a is already correct to 3 bits because a*a = 1 mod 8 for odd a).
constexpr std::size_t align_up(std::size_t n, std::size_t a) {
    return (n + a - 1) / a * a;
}

std::uint64_t odd_inverse(std::uint64_t a) {
    std::uint64_t x = a;
    for (int i = 0; i < 5; ++i)
        x *= 2 - a * x;
    return x;
}

}  // namespace

Result<std::unique_ptr<ObjectPool>> ObjectPool::create(const ObjectPoolOptions& o) {
    if (o.object_size == 0) {
        return Error{EINVAL,
                     fmt::format("{}: object_size is 0; give the size of one object", o.name)};
    }
    if (o.capacity == 0 || o.capacity > kMaxObjects) {
        return Error{EINVAL, fmt::format("{}: capacity {} is outside 1..{} objects", o.name,
                                         o.capacity, kMaxObjects)};
    }
    if (o.cache_size > kMaxCacheSize) {
        return Error{EINVAL, fmt::format("{}: cache_size {} is above the maximum of {}", o.name,
                                         o.cache_size, kMaxCacheSize)};
    }
    const std::size_t stride = align_up(o.object_size, kAlignment);
    if (stride > (std::size_t{1} << 40) / o.capacity) {
        return Error{EINVAL, fmt::format("{}: {} objects of {} bytes is more than 1 TiB; lower "
                                         "the capacity or the object size",
                                         o.name, o.capacity, o.object_size)};
    }
    HugeRegionOptions ro;
    ro.bytes = stride * o.capacity;
    ro.page_size = o.page_size;
    ro.numa_node = o.numa_node;
    ro.lock = o.lock;
    ro.allow_fallback = o.allow_fallback;
    ro.shared = o.shared;
    ro.name = o.name;
    auto region = HugeRegion::allocate(ro);
    if (!region) return region.error();
    return std::unique_ptr<ObjectPool>(new ObjectPool(std::move(region).value(), o, stride));
}

ObjectPool::ObjectPool(HugeRegion region, const ObjectPoolOptions& o, std::size_t stride)
    : base_(region.base()),
      stride_(stride),
      stride_shift_(static_cast<unsigned>(std::countr_zero(stride))),
      stride_odd_inverse_(odd_inverse(stride >> std::countr_zero(stride))),
      capacity_(o.capacity),
      cache_size_(o.cache_size),
      object_size_(o.object_size),
      name_(o.name),
      region_(std::move(region)),
      store_(o.capacity) {
    std::array<void*, 256> chunk;
    for (std::uint32_t i = 0; i < capacity_;) {
        const std::uint32_t n = std::min<std::uint32_t>(chunk.size(), capacity_ - i);
        for (std::uint32_t k = 0; k < n; ++k)
            chunk[k] = object_at(i + k);
        store_put(chunk.data(), n);
        i += n;
    }
}

ObjectPool::~ObjectPool() = default;

bool ObjectPool::owns(const void* obj) const noexcept {
    const auto* p = static_cast<const std::byte*>(obj);
    if (p < base_ || p >= base_ + static_cast<std::size_t>(capacity_) * stride_) return false;
    return static_cast<std::size_t>(p - base_) % stride_ == 0;
}

// The store holds every object not in a cache or in use, and its capacity is at least the
// pool's, so an enqueue only fails if more objects come back than the pool has: a double put.
void ObjectPool::store_put(void* const* objs, std::size_t n) noexcept {
    if (n == 0) return;
    if (!store_.enqueue_bulk({objs, n})) {
        std::fprintf(stderr,
                     "sluice: %s: more objects returned than the pool holds (an object was put "
                     "twice); aborting\n",
                     name_.c_str());
        std::abort();
    }
}

bool ObjectPool::get_slow(Cache& c, void** out, std::size_t n) noexcept {
    // Relaxed: len_ has a single writer, this thread.
    const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
    if (n > kMaxCacheSize || c.target_ == 0) {
        // Larger than a cache holds: straight from the store.
        if (!store_.dequeue_bulk({out, n})) {
            Cache::bump(c.empty_, 1);
            return false;
        }
        Cache::bump(c.direct_gets_, n);
        Cache::bump(c.misses_, n);
        return true;
    }
    // Refill on top of what the cache holds, so it keeps `target_` after serving n. Whatever
    // the store has is taken, even if short: the objects stay in the cache.
    const std::size_t want = c.target_ + n - len;  // len < n here
    const std::size_t got = store_.dequeue_burst({c.objs_.data() + len, want});
    if (got != 0) {
        Cache::bump(c.refilled_, got);
        Cache::bump(c.refills_, 1);
    }
    const auto have = static_cast<std::uint32_t>(len + got);
    if (have < n) {
        c.len_.store(have, std::memory_order_relaxed);  // Relaxed: single writer.
        Cache::bump(c.empty_, 1);
        return false;
    }
    void* const* top = c.objs_.data() + have;
    for (std::size_t i = 0; i < n; ++i)
        out[i] = *--top;
    // Relaxed: single writer.
    c.len_.store(have - static_cast<std::uint32_t>(n), std::memory_order_relaxed);
    Cache::bump(c.misses_, n);
    return true;
}

void ObjectPool::put_slow(Cache& c, void* const* objs, std::size_t n) noexcept {
    Cache::bump(c.puts_, n);
    if (n > kMaxCacheSize || c.target_ == 0) {
        store_put(objs, n);
        Cache::bump(c.direct_puts_, n);
        return;
    }
    // Flush the oldest objects (bottom of the stack) so that the cache ends at target_ with the
    // new ones on top.
    // Relaxed: len_ has a single writer, this thread.
    const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
    const std::size_t excess = len + n - c.target_;
    Cache::bump(c.flushes_, 1);
    Cache::bump(c.flushed_, excess);
    if (excess <= len) {
        store_put(c.objs_.data(), excess);
        std::memmove(c.objs_.data(), c.objs_.data() + excess, (len - excess) * sizeof(void*));
        std::memcpy(c.objs_.data() + (len - excess), objs, n * sizeof(void*));
    } else {
        store_put(c.objs_.data(), len);
        const std::size_t spill = excess - len;
        store_put(objs, spill);
        std::memcpy(c.objs_.data(), objs + spill, (n - spill) * sizeof(void*));
    }
    c.len_.store(c.target_, std::memory_order_relaxed);  // Relaxed: single writer.
}

void ObjectPool::flush(Cache& c) noexcept {
    // Relaxed: len_ has a single writer, this thread.
    const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
    if (len == 0) return;
    store_put(c.objs_.data(), len);
    Cache::bump(c.flushed_, len);
    Cache::bump(c.flushes_, 1);
    c.len_.store(0, std::memory_order_relaxed);  // Relaxed: single writer.
}

void* ObjectPool::get() noexcept {
    void* obj = nullptr;
    if (!store_.try_dequeue(obj)) {
        // Relaxed: a statistic; counters() sums it without ordering anything by it.
        shared_.empty.fetch_add(1, std::memory_order_relaxed);
        return nullptr;
    }
    shared_.gets.fetch_add(1, std::memory_order_relaxed);  // Relaxed: a statistic.
    return obj;
}

void ObjectPool::put(void* obj) noexcept {
    store_put(&obj, 1);
    shared_.puts.fetch_add(1, std::memory_order_relaxed);  // Relaxed: a statistic.
}

bool ObjectPool::get_bulk(std::span<void*> out) noexcept {
    if (!store_.dequeue_bulk(out)) {
        shared_.empty.fetch_add(1, std::memory_order_relaxed);  // Relaxed: a statistic.
        return false;
    }
    shared_.gets.fetch_add(out.size(), std::memory_order_relaxed);  // Relaxed: a statistic.
    return true;
}

void ObjectPool::put_bulk(std::span<void* const> objs) noexcept {
    store_put(objs.data(), objs.size());
    shared_.puts.fetch_add(objs.size(), std::memory_order_relaxed);  // Relaxed: a statistic.
}

ObjectPool::Cache::Cache(ObjectPool& pool)
    : pool_(&pool), target_(pool.cache_size_), flush_at_(pool.cache_size_ + pool.cache_size_ / 2) {
    pool.attach(*this);
}

ObjectPool::Cache::~Cache() {
    pool_->detach(*this);
}

void ObjectPool::attach(Cache& c) {
    const std::lock_guard lock(caches_mutex_);
    caches_.push_back(&c);
}

// What a cache has done, from its counters: objects are conserved, so the objects it handed out
// are those that came in (puts, refills) minus those that went out (flushes) or are still there.
// Relaxed loads: each counter has a single writer; the result is a snapshot, clamped where
// counters read a moment apart disagree.
ObjectPool::Counters ObjectPool::totals_of(const Cache& c) noexcept {
    constexpr auto r = std::memory_order_relaxed;
    Counters k;
    k.puts = c.puts_.load(r);
    const std::uint64_t in = k.puts + c.refilled_.load(r) + c.direct_gets_.load(r);
    const std::uint64_t out = c.flushed_.load(r) + c.direct_puts_.load(r) + c.len_.load(r);
    k.gets = in > out ? in - out : 0;
    const std::uint64_t misses = c.misses_.load(r);
    k.cache_hits = k.gets > misses ? k.gets - misses : 0;
    k.refills = c.refills_.load(r);
    k.flushes = c.flushes_.load(r);
    k.empty_events = c.empty_.load(r);
    return k;
}

void ObjectPool::detach(Cache& c) noexcept {
    // Relaxed: single writer (this thread, the owner, is destroying the cache).
    const std::uint32_t len = c.len_.load(std::memory_order_relaxed);
    store_put(c.objs_.data(), len);
    Cache::bump(c.flushed_, len);
    c.len_.store(0, std::memory_order_relaxed);
    const Counters k = totals_of(c);
    const std::lock_guard lock(caches_mutex_);
    // Relaxed: statistics; the mutex orders the fold with counters() on other threads.
    constexpr auto r = std::memory_order_relaxed;
    shared_.gets.fetch_add(k.gets, r);
    shared_.puts.fetch_add(k.puts, r);
    shared_.hits.fetch_add(k.cache_hits, r);
    shared_.refills.fetch_add(k.refills, r);
    shared_.flushes.fetch_add(k.flushes, r);
    shared_.empty.fetch_add(k.empty_events, r);
    std::erase(caches_, &c);
}

ObjectPool::Counters ObjectPool::counters() const {
    Counters k;
    const std::lock_guard lock(caches_mutex_);
    // Relaxed: statistics with a single writer each (or atomic adds); no ordering needed.
    constexpr auto r = std::memory_order_relaxed;
    k.gets = shared_.gets.load(r);
    k.puts = shared_.puts.load(r);
    k.cache_hits = shared_.hits.load(r);
    k.refills = shared_.refills.load(r);
    k.flushes = shared_.flushes.load(r);
    k.empty_events = shared_.empty.load(r);
    for (const Cache* c : caches_) {
        const Counters t = totals_of(*c);
        k.gets += t.gets;
        k.puts += t.puts;
        k.cache_hits += t.cache_hits;
        k.refills += t.refills;
        k.flushes += t.flushes;
        k.empty_events += t.empty_events;
    }
    // Counters read a moment apart can briefly show more puts than gets.
    k.in_use = k.gets > k.puts ? k.gets - k.puts : 0;
    return k;
}

}  // namespace sluice::mempool
