// ObjectPool under several threads: every object is owned by one thread at a time (each owner
// stamps it and checks the stamp before giving it back), nothing is lost, and exhaustion under
// contention is reported, not crashed on. Built into the TSan configuration too: the objects'
// plain memory is handed between threads only through the pool's shared store.
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "../lockfree/test_scale.hpp"
#include <gtest/gtest.h>
#include <sched.h>

#include "sluice/mempool/object_pool.hpp"

using sluice::mempool::ObjectPool;
using sluice::mempool::ObjectPoolOptions;
using sluice::mempool::PageSize;

namespace {

struct Stamp {
    std::uint64_t owner;
    std::uint64_t serial;
};

std::unique_ptr<ObjectPool> make_pool(std::uint32_t capacity, std::uint32_t cache_size) {
    ObjectPoolOptions o;
    o.name = "stress pool";
    o.object_size = 256;
    o.capacity = capacity;
    o.cache_size = cache_size;
    o.page_size = PageSize::small;
    auto p = ObjectPool::create(o);
    EXPECT_TRUE(p.has_value()) << p.error().message;
    return std::move(p).value();
}

void run_threads(ObjectPool& pool, unsigned threads, std::uint64_t ops_per_thread, bool use_cache,
                 std::atomic<std::uint64_t>& errors) {
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937_64 rng(t * 7919 + 1);
            std::unique_ptr<ObjectPool::Cache> cache;
            if (use_cache) cache = std::make_unique<ObjectPool::Cache>(pool);
            std::vector<void*> held;
            std::vector<void*> burst(40);
            std::uint64_t serial = 0;
            auto take = [&](void* obj) {
                auto* s = static_cast<Stamp*>(obj);
                s->owner = t + 1;
                s->serial = ++serial;
                held.push_back(obj);
            };
            auto give_back = [&](std::size_t n) {
                for (std::size_t i = held.size() - n; i < held.size(); ++i) {
                    auto* s = static_cast<Stamp*>(held[i]);
                    if (s->owner != t + 1) errors.fetch_add(1, std::memory_order_relaxed);
                    s->owner = 0;
                }
            };
            for (std::uint64_t op = 0; op < ops_per_thread; ++op) {
                const unsigned what = rng() % 4;
                const std::size_t n = 1 + rng() % burst.size();
                if (what == 0) {
                    void* obj = use_cache ? pool.get(*cache) : pool.get();
                    if (obj != nullptr) take(obj);
                } else if (what == 1) {
                    std::span<void*> out(burst.data(), n);
                    if (use_cache ? pool.get_bulk(*cache, out) : pool.get_bulk(out)) {
                        for (void* obj : out)
                            take(obj);
                    }
                } else if (!held.empty()) {
                    const std::size_t k = what == 2 ? 1 : std::min(n, held.size());
                    give_back(k);
                    std::span<void* const> objs(held.data() + held.size() - k, k);
                    if (k == 1) {
                        use_cache ? pool.put(*cache, objs[0]) : pool.put(objs[0]);
                    } else {
                        use_cache ? pool.put_bulk(*cache, objs) : pool.put_bulk(objs);
                    }
                    held.resize(held.size() - k);
                }
                if (held.size() > 200) {  // keep the pool near exhaustion, not stuck in it
                    give_back(held.size());
                    for (void* obj : held)
                        use_cache ? pool.put(*cache, obj) : pool.put(obj);
                    held.clear();
                }
                if (op % 256 == 0) sched_yield();
            }
            give_back(held.size());
            for (void* obj : held)
                use_cache ? pool.put(*cache, obj) : pool.put(obj);
        });
    }
    // Counters are readable while the workers run.
    for (int i = 0; i < 20; ++i) {
        const auto k = pool.counters();
        if (k.in_use > pool.capacity()) errors.fetch_add(1, std::memory_order_relaxed);
        sched_yield();
    }
    for (auto& th : ts)
        th.join();
}

void check_all_back(ObjectPool& pool) {
    EXPECT_EQ(pool.counters().in_use, 0u);
    EXPECT_EQ(pool.available_in_store(), pool.capacity());
    std::vector<void*> all(pool.capacity());
    ASSERT_TRUE(pool.get_bulk(all));
    EXPECT_EQ(std::set<void*>(all.begin(), all.end()).size(), pool.capacity());
    pool.put_bulk(all);
}

TEST(ObjectPoolStress, ThreadsWithCachesNeverShareAnObject) {
    auto pool = make_pool(600, 32);
    std::atomic<std::uint64_t> errors{0};
    run_threads(*pool, 4, sluice::test::stress_count(200'000), true, errors);
    EXPECT_EQ(errors.load(), 0u);
    EXPECT_GT(pool->counters().empty_events, 0u) << "the test should reach exhaustion";
    EXPECT_GT(pool->counters().cache_hits, 0u);
    check_all_back(*pool);
}

TEST(ObjectPoolStress, ThreadsWithoutCachesNeverShareAnObject) {
    auto pool = make_pool(500, 0);
    std::atomic<std::uint64_t> errors{0};
    run_threads(*pool, 3, sluice::test::stress_count(100'000), false, errors);
    EXPECT_EQ(errors.load(), 0u);
    check_all_back(*pool);
}

}  // namespace
