// ObjectPool vs rte_mempool (per-lcore cache of 512) vs malloc/free: 2 KiB objects, get+put of
// one object and of a burst of 32, on one thread (EAL's main lcore, so rte_mempool uses its
// per-lcore cache; ObjectPool uses an explicit cache of the same size). Runs are interleaved in
// pairs like bench/lockfree; bench/mempool/run prints ns per object and the pair-by-pair ratios.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "eal_setup.hpp"
#include <benchmark/benchmark.h>

#include <rte_lcore.h>
#include <rte_mempool.h>

#include "sluice/mempool/object_pool.hpp"

namespace {

constexpr std::size_t kObjectSize = 2048;
constexpr unsigned kObjects = 8192;
constexpr unsigned kCacheSize = 512;

class SluicePool {
  public:
    static constexpr const char* kName = "ObjectPool";
    SluicePool() {
        sluice::mempool::ObjectPoolOptions o;
        o.name = "bench pool";
        o.object_size = kObjectSize;
        o.capacity = kObjects;
        o.cache_size = kCacheSize;
        auto p = sluice::mempool::ObjectPool::create(o);
        if (!p) {
            std::fprintf(stderr, "%s\n", p.error().message.c_str());
            std::exit(1);
        }
        pool_ = std::move(p).value();
        cache_ = std::make_unique<sluice::mempool::ObjectPool::Cache>(*pool_);
    }
    void* get() { return pool_->get(*cache_); }
    void put(void* obj) { pool_->put(*cache_, obj); }
    bool get_bulk(void** objs, unsigned n) { return pool_->get_bulk(*cache_, {objs, n}); }
    void put_bulk(void** objs, unsigned n) { pool_->put_bulk(*cache_, {objs, n}); }
    const char* memory() const { return to_string(pool_->region().page_size()).data(); }

  private:
    std::unique_ptr<sluice::mempool::ObjectPool> pool_;
    std::unique_ptr<sluice::mempool::ObjectPool::Cache> cache_;
};

class RteMempool {
  public:
    static constexpr const char* kName = "rte_mempool";
    RteMempool() {
        mp_ = rte_mempool_create("bench_pool", kObjects, kObjectSize, kCacheSize, 0, nullptr,
                                 nullptr, nullptr, nullptr, static_cast<int>(rte_socket_id()), 0);
        if (mp_ == nullptr) {
            std::fprintf(stderr, "rte_mempool_create failed: %s\n", rte_strerror(rte_errno));
            std::exit(1);
        }
    }
    void* get() {
        void* obj = nullptr;
        return rte_mempool_get(mp_, &obj) == 0 ? obj : nullptr;
    }
    void put(void* obj) { rte_mempool_put(mp_, obj); }
    bool get_bulk(void** objs, unsigned n) { return rte_mempool_get_bulk(mp_, objs, n) == 0; }
    void put_bulk(void** objs, unsigned n) { rte_mempool_put_bulk(mp_, objs, n); }

  private:
    rte_mempool* mp_;
};

class Malloc {
  public:
    static constexpr const char* kName = "malloc";
    void* get() { return std::malloc(kObjectSize); }
    void put(void* obj) { std::free(obj); }
    bool get_bulk(void** objs, unsigned n) {
        for (unsigned i = 0; i < n; ++i)
            objs[i] = std::malloc(kObjectSize);
        return true;
    }
    void put_bulk(void** objs, unsigned n) {
        for (unsigned i = 0; i < n; ++i)
            std::free(objs[i]);
    }
};

template <class P>
P& instance() {
    static P p;  // one pool per kind, warm across pairs
    return p;
}

template <class P>
void get_put(benchmark::State& state, unsigned n) {
    P& p = instance<P>();
    void* objs[32];
    for (auto _ : state) {
        if (n == 1) {
            void* obj = p.get();
            benchmark::DoNotOptimize(obj);
            p.put(obj);
        } else {
            if (!p.get_bulk(objs, n)) state.SkipWithError("pool empty");
            benchmark::DoNotOptimize(objs);
            p.put_bulk(objs, n);
        }
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

template <class P>
void register_member(unsigned n, int pair) {
    const std::string name =
        "get_put/n:" + std::to_string(n) + "/pair:" + std::to_string(pair) + "/" + P::kName;
    benchmark::RegisterBenchmark(name.c_str(), [n](benchmark::State& s) {
        get_put<P>(s, n);
    })->MinTime(0.02);
}

}  // namespace

int main(int argc, char** argv) {
    const char* memory = sluice::bench::init_eal(argv[0], 32);
    sluice::bench::pin_to_cpu(0);
    benchmark::AddCustomContext("eal_memory", memory);
    benchmark::AddCustomContext("objectpool_pages", instance<SluicePool>().memory());
    instance<RteMempool>();
    const char* pairs_env = std::getenv("SLUICE_BENCH_PAIRS");
    const int pairs = pairs_env != nullptr ? std::atoi(pairs_env) : 21;
    for (const unsigned n : {1u, 32u}) {
        for (int p = 0; p < pairs; ++p) {
            if (p % 2 == 0) {
                register_member<SluicePool>(n, p);
                register_member<RteMempool>(n, p);
            } else {
                register_member<RteMempool>(n, p);
                register_member<SluicePool>(n, p);
            }
            register_member<Malloc>(n, p);
        }
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
