// SpscRing vs rte_ring (SP/SC) vs a mutex-protected deque, side by side in one process; and the
// multi-producer rings, MpscRing and MpmcRing, vs rte_ring in the same modes (MP/SC, MP/MC).
//
// one_thread:  enqueue a burst, dequeue it, on one core (cost of the calls themselves).
// two_threads: producer pinned to CPU 0, consumer to CPU 1, a fixed count of elements through a
//              ring of 1024 (what crosses between the cores).
// Bursts of 1, 8 and 32 elements (pointers, as the pipeline passes mbufs and frames).
// mpsc_* and mpmc_* groups: the same two measurements through the multi-producer (and
// multi-consumer) code paths, one thread on each side (a third thread would share a CPU with
// one of them on the 2-CPU machines these figures come from).
//
// Cross-core figures on shared machines swing by up to 3x from one second to the next, so every
// run is short and the queues run back to back in pairs (A, B, A, B, ...; the order alternates
// between pairs); bench/lockfree/run reports medians and the median of the pair-by-pair ratios.
// The number of pairs is SLUICE_BENCH_PAIRS (default 21).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "eal_setup.hpp"
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <rte_lcore.h>
#include <rte_ring.h>

#include "sluice/lockfree/mpmc_ring.hpp"
#include "sluice/lockfree/mpsc_ring.hpp"
#include "sluice/lockfree/spsc_ring.hpp"

namespace {

constexpr std::size_t kCapacity = 1024;

class SluiceSpsc {
  public:
    static constexpr const char* kName = "SpscRing";
    bool enq1(void* v) { return r_.try_enqueue(v); }
    bool deq1(void*& v) { return r_.try_dequeue(v); }
    std::size_t enq(void* const* v, std::size_t n) { return r_.enqueue_burst({v, n}); }
    std::size_t deq(void** v, std::size_t n) { return r_.dequeue_burst({v, n}); }

  private:
    sluice::lockfree::SpscRing<void*> r_{kCapacity};
};

template <class Ring>
class SluiceMulti {
  public:
    bool enq1(void* v) { return r_.try_enqueue(v); }
    bool deq1(void*& v) { return r_.try_dequeue(v); }
    std::size_t enq(void* const* v, std::size_t n) { return r_.enqueue_burst({v, n}); }
    std::size_t deq(void** v, std::size_t n) { return r_.dequeue_burst({v, n}); }

  private:
    Ring r_{kCapacity};
};

class SluiceMpsc : public SluiceMulti<sluice::lockfree::MpscRing<void*>> {
  public:
    static constexpr const char* kName = "MpscRing";
};

class SluiceMpmc : public SluiceMulti<sluice::lockfree::MpmcRing<void*>> {
  public:
    static constexpr const char* kName = "MpmcRing";
};

// Which sides of an rte_ring are single-threaded.
enum class RteMode { SpSc, MpSc, MpMc };

template <RteMode Mode>
class RteRingOf {
  public:
    static constexpr const char* kName = "rte_ring";
    RteRingOf() {
        static std::atomic<int> serial{0};
        const std::string name = "bench" + std::to_string(serial++);
        unsigned flags = RING_F_EXACT_SZ;
        if (Mode == RteMode::SpSc) flags |= RING_F_SP_ENQ;
        if (Mode != RteMode::MpMc) flags |= RING_F_SC_DEQ;
        r_ = rte_ring_create(name.c_str(), kCapacity, SOCKET_ID_ANY, flags);
        if (r_ == nullptr) {
            std::fprintf(stderr, "rte_ring_create failed: %s\n", rte_strerror(rte_errno));
            std::abort();
        }
    }
    RteRingOf(const RteRingOf&) = delete;
    RteRingOf& operator=(const RteRingOf&) = delete;
    ~RteRingOf() { rte_ring_free(r_); }
    // The mode's own calls (rte_ring_enqueue() would pick them from the flags at run time).
    bool enq1(void* v) {
        if constexpr (Mode == RteMode::SpSc) return rte_ring_sp_enqueue(r_, v) == 0;
        return rte_ring_mp_enqueue(r_, v) == 0;
    }
    bool deq1(void*& v) {
        if constexpr (Mode == RteMode::MpMc) return rte_ring_mc_dequeue(r_, &v) == 0;
        return rte_ring_sc_dequeue(r_, &v) == 0;
    }
    std::size_t enq(void* const* v, std::size_t n) {
        if constexpr (Mode == RteMode::SpSc) {
            return rte_ring_sp_enqueue_burst(r_, v, static_cast<unsigned>(n), nullptr);
        }
        return rte_ring_mp_enqueue_burst(r_, v, static_cast<unsigned>(n), nullptr);
    }
    std::size_t deq(void** v, std::size_t n) {
        if constexpr (Mode == RteMode::MpMc) {
            return rte_ring_mc_dequeue_burst(r_, v, static_cast<unsigned>(n), nullptr);
        }
        return rte_ring_sc_dequeue_burst(r_, v, static_cast<unsigned>(n), nullptr);
    }

  private:
    rte_ring* r_ = nullptr;
};
using RteRing = RteRingOf<RteMode::SpSc>;

// The queue a first attempt would use: one lock per call, bounded like the rings.
class MutexQueue {
  public:
    static constexpr const char* kName = "mutex+deque";
    bool enq1(void* v) { return enq(&v, 1) == 1; }
    bool deq1(void*& v) { return deq(&v, 1) == 1; }
    std::size_t enq(void* const* v, std::size_t n) {
        const std::lock_guard lock(m_);
        n = std::min(n, kCapacity - q_.size());
        q_.insert(q_.end(), v, v + n);
        return n;
    }
    std::size_t deq(void** v, std::size_t n) {
        const std::lock_guard lock(m_);
        n = std::min(n, q_.size());
        std::copy_n(q_.begin(), n, v);
        q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(n));
        return n;
    }

  private:
    std::mutex m_;
    std::deque<void*> q_;
};

// SLUICE_BENCH_RT=1 runs the two threads of each two_threads run at SCHED_FIFO priority 1 for
// the length of that run (tens of milliseconds): on a machine busy with other work, the runs
// then measure the queues rather than the scheduler. Off by default: it holds both CPUs.
bool realtime_runs() {
    static const bool on = [] {
        const char* v = std::getenv("SLUICE_BENCH_RT");
        return v != nullptr && v[0] == '1';
    }();
    return on;
}

class RealtimeScope {
  public:
    RealtimeScope() {
        if (!realtime_runs()) return;
        pthread_getschedparam(pthread_self(), &policy_, &param_);
        sched_param rt{};
        rt.sched_priority = 1;
        active_ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &rt) == 0;
    }
    RealtimeScope(const RealtimeScope&) = delete;
    RealtimeScope& operator=(const RealtimeScope&) = delete;
    ~RealtimeScope() {
        if (active_) pthread_setschedparam(pthread_self(), policy_, &param_);
    }

  private:
    bool active_ = false;
    int policy_ = SCHED_OTHER;
    sched_param param_{};
};

long involuntary_switches() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return u.ru_nivcsw;
}

void* as_ptr(std::uint64_t i) {
    return reinterpret_cast<void*>(static_cast<std::uintptr_t>(i));
}

template <class Q>
void one_thread(benchmark::State& state, std::size_t burst) {
    sluice::bench::pin_to_cpu(0);
    Q q;
    std::vector<void*> in(burst), out(burst);
    for (std::size_t i = 0; i < burst; ++i)
        in[i] = as_ptr(i + 1);
    for (auto _ : state) {
        if (burst == 1) {
            q.enq1(in[0]);
            q.deq1(out[0]);
        } else {
            q.enq(in.data(), burst);
            q.deq(out.data(), burst);
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * burst));
}

struct TwoThreadRun {
    double seconds = 0;
    double empty_polls = 0;  // share of consumer calls that found nothing
    double full_tries = 0;   // share of producer calls that could not enqueue everything
    long preempted = 0;      // involuntary context switches of either thread during the run
    bool lost = false;
};

// The queue object is read by both threads on every call; it gets cache lines of its own, away
// from either thread's stack (which the other thread must not share a line with).
template <class Q>
struct alignas(128) Isolated {
    Q q;
    char pad[128];
};

template <class Q>
TwoThreadRun run_two_threads(std::size_t burst, std::uint64_t total) {
    const auto holder = std::make_unique<Isolated<Q>>();
    Q& q = holder->q;
    std::atomic<bool> ready{false}, go{false};
    std::chrono::steady_clock::time_point end;
    std::uint64_t sum = 0;
    long consumer_switches = 0;
    std::uint64_t calls = 0, empties = 0;
    std::thread consumer([&] {
        sluice::bench::pin_to_cpu(1);
        const RealtimeScope rt;
        void* buf[64];
        std::uint64_t got = 0, s = 0;
        // Release/acquire: start-up handshake with the producer below.
        ready.store(true, std::memory_order_release);
        while (!go.load(std::memory_order_acquire)) {
        }
        const long sw = involuntary_switches();
        std::uint64_t c = 0, e = 0;
        if (burst == 1) {
            while (got < total) {
                void* v = nullptr;
                ++c;
                if (q.deq1(v)) {
                    s += reinterpret_cast<std::uintptr_t>(v);
                    ++got;
                } else {
                    ++e;
                }
            }
        } else {
            while (got < total) {
                const std::size_t n = q.deq(buf, burst);
                for (std::size_t i = 0; i < n; ++i)
                    s += reinterpret_cast<std::uintptr_t>(buf[i]);
                got += n;
                ++c;
                e += n == 0;
            }
        }
        end = std::chrono::steady_clock::now();
        calls = c;
        empties = e;
        consumer_switches = involuntary_switches() - sw;
        sum = s;
    });
    sluice::bench::pin_to_cpu(0);
    const RealtimeScope rt;
    while (!ready.load(std::memory_order_acquire)) {
    }
    void* buf[64];
    const long sw = involuntary_switches();
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    std::uint64_t tries = 0, short_tries = 0;
    if (burst == 1) {
        for (std::uint64_t i = 1; i <= total; ++i) {
            ++tries;
            while (!q.enq1(as_ptr(i))) {
                ++tries;
                ++short_tries;
            }
        }
    } else {
        for (std::uint64_t i = 1; i <= total; i += burst) {
            const std::size_t n = std::min<std::uint64_t>(burst, total - i + 1);
            for (std::size_t k = 0; k < n; ++k)
                buf[k] = as_ptr(i + k);
            for (std::size_t done = 0; done < n;) {
                const std::size_t k = q.enq(buf + done, n - done);
                ++tries;
                short_tries += k != n - done;
                done += k;
            }
        }
    }
    const long producer_switches = involuntary_switches() - sw;
    consumer.join();
    TwoThreadRun r;
    r.seconds = std::chrono::duration<double>(end - start).count();
    r.empty_polls = static_cast<double>(empties) / static_cast<double>(calls);
    r.full_tries = static_cast<double>(short_tries) / static_cast<double>(tries);
    r.preempted = producer_switches + consumer_switches;
    r.lost = sum != total * (total + 1) / 2;
    return r;
}

// A run during which either thread was preempted measures the scheduler, not the queue: it is
// repeated, up to kAttempts times; the last attempt counts either way and the counters say so.
constexpr int kAttempts = 10;

template <class Q>
void two_threads(benchmark::State& state, std::size_t burst, std::uint64_t total) {
    TwoThreadRun run;
    int attempts = 0;
    for (auto _ : state) {
        for (attempts = 1;; ++attempts) {
            run = run_two_threads<Q>(burst, total);
            if (run.preempted == 0 || run.lost || attempts == kAttempts) break;
        }
        state.SetIterationTime(run.seconds);
    }
    if (run.lost) state.SkipWithError("elements lost or duplicated");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * total));
    state.counters["preempted"] = static_cast<double>(run.preempted);
    state.counters["attempts"] = attempts;
    state.counters["empty_polls"] = run.empty_polls;
    state.counters["full_tries"] = run.full_tries;
}

template <class Q>
void register_pair_member(const std::string& group, std::size_t burst, int pair,
                          std::uint64_t total) {
    const std::string prefix = group + "/burst:" + std::to_string(burst) +
                               "/pair:" + std::to_string(pair) + "/" + Q::kName;
    if (group.ends_with("one_thread")) {
        benchmark::RegisterBenchmark(prefix.c_str(), [burst](benchmark::State& s) {
            one_thread<Q>(s, burst);
        })->MinTime(0.02);
    } else {
        benchmark::RegisterBenchmark(
            prefix.c_str(),
            [burst, total](benchmark::State& s) { two_threads<Q>(s, burst, total); })
            ->UseManualTime()
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const char* memory = sluice::bench::init_eal(argv[0], 16);
    benchmark::AddCustomContext("eal_memory", memory);
    benchmark::AddCustomContext("two_thread_priority", realtime_runs() ? "SCHED_FIFO" : "normal");
    const char* pairs_env = std::getenv("SLUICE_BENCH_PAIRS");
    const int pairs = pairs_env != nullptr ? std::atoi(pairs_env) : 21;
    for (const char* group : {"one_thread", "two_threads"}) {
        for (const std::size_t burst : {1, 8, 32}) {
            // Short runs (tens of ms) so that most pairs fit between other programs' bursts of
            // activity. The mutex queue is slower; fewer elements keep its runs as short.
            const std::uint64_t total = burst == 1 ? 1 << 20 : 1 << 22;
            for (int p = 0; p < pairs; ++p) {
                if (p % 2 == 0) {
                    register_pair_member<SluiceSpsc>(group, burst, p, total);
                    register_pair_member<RteRing>(group, burst, p, total);
                } else {
                    register_pair_member<RteRing>(group, burst, p, total);
                    register_pair_member<SluiceSpsc>(group, burst, p, total);
                }
                register_pair_member<MutexQueue>(group, burst, p, total / 8);
            }
        }
    }
    // The multi-producer rings against rte_ring in the same mode.
    const auto register_multi = [&]<class Sluice, class Rte>(const std::string& prefix) {
        for (const char* kind : {"one_thread", "two_threads"}) {
            const std::string group = prefix + kind;
            for (const std::size_t burst : {1, 8, 32}) {
                const std::uint64_t total = burst == 1 ? 1 << 20 : 1 << 22;
                for (int p = 0; p < pairs; ++p) {
                    if (p % 2 == 0) {
                        register_pair_member<Sluice>(group, burst, p, total);
                        register_pair_member<Rte>(group, burst, p, total);
                    } else {
                        register_pair_member<Rte>(group, burst, p, total);
                        register_pair_member<Sluice>(group, burst, p, total);
                    }
                }
            }
        }
    };
    register_multi.operator()<SluiceMpsc, RteRingOf<RteMode::MpSc>>("mpsc_");
    register_multi.operator()<SluiceMpmc, RteRingOf<RteMode::MpMc>>("mpmc_");
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    rte_eal_cleanup();
    return 0;
}
