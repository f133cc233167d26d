// ObjectPool single-thread behaviour: alignment and addressing, exhaustion as a value, bulk
// all-or-nothing, caches returning their objects, counters, NUMA placement of the objects.
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "page_facts.hpp"
#include <gtest/gtest.h>

#include "sluice/mempool/object_pool.hpp"

using sluice::mempool::ObjectPool;
using sluice::mempool::ObjectPoolOptions;
using sluice::mempool::PageSize;

namespace {

std::unique_ptr<ObjectPool> make_pool(std::size_t object_size, std::uint32_t capacity,
                                      std::uint32_t cache_size, int node = -1) {
    ObjectPoolOptions o;
    o.name = "test pool";
    o.object_size = object_size;
    o.capacity = capacity;
    o.cache_size = cache_size;
    o.numa_node = node;
    auto p = ObjectPool::create(o);
    EXPECT_TRUE(p.has_value()) << p.error().message;
    return std::move(p).value();
}

TEST(ObjectPool, ObjectsAreCacheLineAlignedAndIndexed) {
    for (const std::size_t size : {1u, 63u, 64u, 65u, 100u, 2048u, 3000u, 4160u}) {
        auto pool = make_pool(size, 300, 16);
        EXPECT_EQ(pool->stride() % 64, 0u);
        EXPECT_GE(pool->stride(), size);
        EXPECT_LT(pool->stride(), size + 64);
        for (std::uint32_t i = 0; i < pool->capacity(); ++i) {
            void* obj = pool->object_at(i);
            ASSERT_EQ(reinterpret_cast<std::uintptr_t>(obj) % 64, 0u) << size << " " << i;
            ASSERT_EQ(pool->index_of(obj), i) << size;
            ASSERT_TRUE(pool->owns(obj));
        }
        EXPECT_FALSE(pool->owns(static_cast<char*>(pool->object_at(1)) + 8));
        EXPECT_FALSE(pool->owns(static_cast<char*>(pool->object_at(0)) - 64));
        EXPECT_FALSE(pool->owns(pool->object_at(pool->capacity())));
        // The objects live inside the region that RDMA registers.
        EXPECT_GE(static_cast<std::byte*>(pool->object_at(0)), pool->region().base());
        EXPECT_LE(static_cast<std::byte*>(pool->object_at(pool->capacity() - 1)) + size,
                  pool->region().base() + pool->region().length());
    }
}

TEST(ObjectPool, ExhaustionReturnsNullAndCountsIt) {
    auto pool = make_pool(2048, 100, 16);
    ObjectPool::Cache cache(*pool);
    std::set<void*> got;
    for (int i = 0; i < 100; ++i) {
        void* obj = pool->get(cache);
        ASSERT_NE(obj, nullptr) << i;
        ASSERT_TRUE(pool->owns(obj));
        std::memset(obj, i, 2048);  // the whole object is ours
        got.insert(obj);
    }
    EXPECT_EQ(got.size(), 100u);
    EXPECT_EQ(pool->get(cache), nullptr);
    EXPECT_EQ(pool->get(cache), nullptr);
    auto k = pool->counters();
    EXPECT_EQ(k.in_use, 100u);
    EXPECT_EQ(k.empty_events, 2u);
    for (void* obj : got)
        pool->put(cache, obj);
    k = pool->counters();
    EXPECT_EQ(k.in_use, 0u);
    EXPECT_NE(pool->get(cache), nullptr);
}

TEST(ObjectPool, BulkThroughTheCacheReturnsExactlyWhatWasPutAtEverySize) {
    // Every size of burst the cache's copy handles (whole groups of four and
    // each remainder): objects come back last in, first out, exactly the ones
    // put, none twice, none lost. A and B are put back in the opposite order
    // to the one they were taken in, so every slot they pass through held a
    // different object before.
    auto pool = make_pool(256, 200, 64);
    ObjectPool::Cache cache(*pool);
    std::vector<void*> warm(64);
    ASSERT_TRUE(pool->get_bulk(cache, warm));
    pool->put_bulk(cache, warm);  // the cache now holds objects to hand out
    for (std::size_t n = 1; n <= 13; ++n) {
        std::vector<void*> a(n), b(n), c(n), d(n);
        ASSERT_TRUE(pool->get_bulk(cache, a)) << n;
        ASSERT_TRUE(pool->get_bulk(cache, b)) << n;
        const std::set<void*> sa(a.begin(), a.end()), sb(b.begin(), b.end());
        ASSERT_EQ(sa.size(), n);
        ASSERT_EQ(sb.size(), n);
        const auto hits = pool->counters().cache_hits;
        pool->put_bulk(cache, a);
        pool->put_bulk(cache, b);
        ASSERT_TRUE(pool->get_bulk(cache, c)) << n;
        ASSERT_TRUE(pool->get_bulk(cache, d)) << n;
        EXPECT_EQ(pool->counters().cache_hits, hits + 2 * n) << n;  // never the store
        EXPECT_EQ(std::set<void*>(c.begin(), c.end()), sb) << n;
        EXPECT_EQ(std::set<void*>(d.begin(), d.end()), sa) << n;
        pool->put_bulk(cache, c);
        pool->put_bulk(cache, d);
        EXPECT_EQ(pool->counters().in_use, 0u) << n;
    }
    std::vector<void*> none;
    EXPECT_TRUE(pool->get_bulk(cache, none));
    pool->put_bulk(cache, none);
    EXPECT_EQ(pool->counters().in_use, 0u);
}

TEST(ObjectPool, BulkIsAllOrNothing) {
    auto pool = make_pool(256, 100, 16);
    ObjectPool::Cache cache(*pool);
    std::vector<void*> a(64), b(64), c(36);
    ASSERT_TRUE(pool->get_bulk(cache, a));
    EXPECT_FALSE(pool->get_bulk(cache, b));  // 36 left
    EXPECT_EQ(pool->counters().in_use, 64u);
    ASSERT_TRUE(pool->get_bulk(cache, c));
    std::set<void*> all(a.begin(), a.end());
    all.insert(c.begin(), c.end());
    EXPECT_EQ(all.size(), 100u);
    void* one = nullptr;
    EXPECT_FALSE(pool->get_bulk(cache, {&one, 1}));
    pool->put_bulk(cache, a);
    pool->put_bulk(cache, c);
    EXPECT_EQ(pool->counters().in_use, 0u);
    EXPECT_EQ(pool->counters().empty_events, 2u);
    // Bulk larger than a cache holds goes straight to the store.
    std::vector<void*> big(100);
    ASSERT_TRUE(pool->get_bulk(cache, big));
    pool->put_bulk(cache, big);
}

TEST(ObjectPool, CacheHitsAndRefills) {
    auto pool = make_pool(64, 4096, 32);
    ObjectPool::Cache cache(*pool);
    void* first = pool->get(cache);  // refill: 32 + 1 from the store
    ASSERT_NE(first, nullptr);
    auto k = pool->counters();
    EXPECT_EQ(k.refills, 1u);
    EXPECT_EQ(k.cache_hits, 0u);
    EXPECT_EQ(cache.size(), 32u);
    for (int i = 0; i < 32; ++i)
        ASSERT_NE(pool->get(cache), nullptr);
    k = pool->counters();
    EXPECT_EQ(k.cache_hits, 32u);
    EXPECT_EQ(k.gets, 33u);
    EXPECT_EQ(k.refills, 1u);
    // The last object put is the next one handed out (hot in the cache).
    void* hot = pool->get(cache);
    pool->put(cache, hot);
    EXPECT_EQ(pool->get(cache), hot);
}

TEST(ObjectPool, FlushKeepsTheCacheBounded) {
    auto pool = make_pool(64, 4096, 32);
    std::vector<void*> objs(1000);
    {
        ObjectPool::Cache taker(*pool);
        ASSERT_TRUE(pool->get_bulk(taker, std::span<void*>(objs).first(500)));
        ASSERT_TRUE(pool->get_bulk(taker, std::span<void*>(objs).subspan(500)));
    }
    ObjectPool::Cache cache(*pool);
    for (void* obj : objs) {
        pool->put(cache, obj);
        ASSERT_LE(cache.size(), 48u);  // flushes at 1.5x the cache size
    }
    EXPECT_GT(pool->counters().flushes, 0u);
    EXPECT_EQ(pool->counters().in_use, 0u);
    EXPECT_EQ(pool->available_in_store() + cache.size(), 4096u);
}

TEST(ObjectPool, FlushReturnsEverythingTheCacheHolds) {
    auto pool = make_pool(128, 64, 16);
    ObjectPool::Cache putter(*pool), getter(*pool);
    std::vector<void*> objs(20);
    ASSERT_TRUE(pool->get_bulk(getter, objs));
    for (void* obj : objs)
        pool->put(putter, obj);  // flushes down to 16 once past 24: all 20 stay
    EXPECT_EQ(putter.size(), 20u);
    const std::uint64_t flushes = pool->counters().flushes;
    pool->flush(putter);
    EXPECT_EQ(putter.size(), 0u);
    EXPECT_EQ(pool->available_in_store() + getter.size(), 64u);
    const auto k = pool->counters();
    EXPECT_EQ(k.flushes, flushes + 1);
    EXPECT_EQ(k.gets, 20u);
    EXPECT_EQ(k.puts, 20u);
    EXPECT_EQ(k.in_use, 0u);
    pool->flush(putter);  // an empty cache: nothing happens
    EXPECT_EQ(pool->counters().flushes, flushes + 1);
    // The getter can have every object now.
    std::vector<void*> all(64 - getter.size());
    EXPECT_TRUE(pool->get_bulk(getter, all));
    pool->put_bulk(getter, all);
}

TEST(ObjectPool, DestroyedCacheGivesItsObjectsBack) {
    auto pool = make_pool(128, 64, 16);
    {
        ObjectPool::Cache cache(*pool);
        void* obj = pool->get(cache);
        ASSERT_NE(obj, nullptr);
        EXPECT_EQ(pool->available_in_store(), 64u - 17u);
        pool->put(cache, obj);
    }
    EXPECT_EQ(pool->available_in_store(), 64u);
    const auto k = pool->counters();  // counters of a destroyed cache are kept
    EXPECT_EQ(k.gets, 1u);
    EXPECT_EQ(k.puts, 1u);
    EXPECT_EQ(k.in_use, 0u);
}

TEST(ObjectPool, ObjectsInAnotherCacheAreNotAvailable) {
    auto pool = make_pool(128, 40, 16);
    ObjectPool::Cache a(*pool), b(*pool);
    std::vector<void*> held(30);
    ASSERT_TRUE(pool->get_bulk(a, held));  // a's cache also took a refill's worth
    EXPECT_EQ(pool->available_in_store() + a.size(), 10u);
    std::vector<void*> want(11);
    EXPECT_FALSE(pool->get_bulk(b, want));
    EXPECT_EQ(pool->counters().empty_events, 1u);
    pool->put_bulk(a, held);
}

TEST(ObjectPool, WithoutCache) {
    auto pool = make_pool(64, 8, 0);
    std::vector<void*> objs(8);
    ASSERT_TRUE(pool->get_bulk(objs));
    EXPECT_EQ(pool->get(), nullptr);
    pool->put(objs[0]);
    EXPECT_EQ(pool->get(), objs[0]);
    pool->put_bulk(objs);
    EXPECT_EQ(pool->counters().in_use, 0u);
    EXPECT_EQ(pool->counters().empty_events, 1u);
    // cache_size 0: a Cache works but holds nothing.
    ObjectPool::Cache c(*pool);
    void* obj = pool->get(c);
    ASSERT_NE(obj, nullptr);
    pool->put(c, obj);
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(pool->available_in_store(), 8u);
}

// The example in docs/memory.md, as written there.
TEST(ObjectPool, DocumentedExampleWorks) {
    auto pool = sluice::mempool::ObjectPool::create(
        {.name = "frame pool", .object_size = 65536, .capacity = 64, .numa_node = 0});
    ASSERT_TRUE(pool.has_value()) << pool.error().message;
    sluice::mempool::ObjectPool::Cache cache(**pool);
    void* frame = (*pool)->get(cache);
    ASSERT_NE(frame, nullptr);
    (*pool)->put(cache, frame);
}

TEST(ObjectPool, InvalidOptionsAreErrors) {
    ObjectPoolOptions o;
    o.name = "bad pool";
    o.capacity = 10;
    auto r = ObjectPool::create(o);  // object_size 0
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("bad pool"), std::string::npos);
    o.object_size = 64;
    o.cache_size = ObjectPool::kMaxCacheSize + 1;
    EXPECT_FALSE(ObjectPool::create(o).has_value());
    o.cache_size = 16;
    o.capacity = 0;
    EXPECT_FALSE(ObjectPool::create(o).has_value());
    o.capacity = 10;
    o.numa_node = 4096;
    EXPECT_FALSE(ObjectPool::create(o).has_value());
}

TEST(ObjectPool, ObjectsLiveOnTheRequestedNode) {
    const int node = sluice::test::memory_nodes().back();
    auto pool = make_pool(2048, 2048, 64, node);  // 4 MB: two 2 MB pages if reserved
    const auto& region = pool->region();
    EXPECT_EQ(region.numa_node(), node);
    const auto nodes = sluice::test::page_nodes(region.base(), region.length(),
                                                sluice::mempool::bytes_of(region.page_size()));
    ASSERT_FALSE(nodes.empty());
    for (int n : nodes)
        EXPECT_EQ(n, node);
}

}  // namespace
