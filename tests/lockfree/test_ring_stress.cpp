// Multi-thread and multi-process behaviour of the rings: a long run of sequence numbers must
// come out in order, with nothing lost and nothing duplicated. Built into the TSan
// configuration too (suite 'tsan'), with shorter runs.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "test_scale.hpp"
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/lockfree/mpmc_ring.hpp"
#include "sluice/lockfree/mpsc_ring.hpp"
#include "sluice/lockfree/spsc_ring.hpp"

using sluice::lockfree::MpmcRing;
using sluice::lockfree::MpscRing;
using sluice::lockfree::SpscRing;
using sluice::test::stress_count;

namespace {

// Spinning on a full or empty ring must not starve the other side when the test runs with more
// threads than CPUs (TSan, a loaded CI machine): back off to the scheduler now and then. A lost
// element would leave the other side waiting forever; after a minute without progress the test
// aborts and says so instead of hanging.
struct Backoff {
    unsigned spins = 0;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
    void operator()() {
        if (++spins % 64 != 0) return;
        sched_yield();
        if (spins % 65536 == 0 &&
            std::chrono::steady_clock::now() - since > std::chrono::minutes(1)) {
            std::fprintf(stderr,
                         "no progress for a minute: an element was lost or a ring is stuck\n");
            std::abort();
        }
    }
    void progress() {
        if (spins != 0) {
            spins = 0;
            since = std::chrono::steady_clock::now();
        }
    }
};

// Elements are 64-bit sequence numbers stored as pointers: bit 63 free, zero allowed.
using Seq = void*;
Seq seq(std::uint64_t i) {
    return reinterpret_cast<Seq>(static_cast<std::uintptr_t>(i));
}
std::uint64_t num(Seq p) {
    return reinterpret_cast<std::uintptr_t>(p);
}

TEST(SpscRingStress, TwoThreadsKeepOrderWithoutLossOrDuplicates) {
    const std::uint64_t total = stress_count(4'000'000);
    SpscRing<Seq> ring(256);
    std::atomic<std::size_t> max_seen_size{0};
    std::atomic<bool> done{false};

    std::thread producer([&] {
        std::mt19937 rng(1);
        std::vector<Seq> buf(64);
        Backoff wait;
        std::uint64_t next = 0;
        while (next < total) {
            const std::size_t want = std::min<std::uint64_t>(1 + rng() % 64, total - next);
            for (std::size_t i = 0; i < want; ++i)
                buf[i] = seq(next + i);
            std::size_t n = 0;
            switch (rng() % 3) {
                case 0:
                    n = ring.try_enqueue(buf[0]) ? 1 : 0;
                    break;
                case 1:
                    n = ring.enqueue_burst(std::span<const Seq>(buf).first(want));
                    break;
                default:
                    n = ring.enqueue_bulk(std::span<const Seq>(buf).first(want)) ? want : 0;
            }
            next += n;
            if (n == 0) {
                wait();
            } else {
                wait.progress();
            }
        }
    });
    // A third thread reads size() the way telemetry does; it must stay within bounds.
    std::thread observer([&] {
        while (!done.load(std::memory_order_relaxed)) {
            const std::size_t s = ring.size();
            if (s > max_seen_size.load(std::memory_order_relaxed)) max_seen_size.store(s);
            (void)ring.empty();
            sched_yield();
        }
    });

    std::mt19937 rng(2);
    std::vector<Seq> buf(64);
    Backoff wait;
    std::uint64_t expect = 0;
    std::uint64_t mismatches = 0;
    while (expect < total) {
        const std::size_t want = 1 + rng() % 64;
        std::size_t n = 0;
        switch (rng() % 3) {
            case 0:
                n = ring.try_dequeue(buf[0]) ? 1 : 0;
                break;
            case 1:
                n = ring.dequeue_burst(std::span<Seq>(buf).first(want));
                break;
            default:
                n = ring.dequeue_bulk(std::span<Seq>(buf).first(want)) ? want : 0;
        }
        for (std::size_t i = 0; i < n; ++i) {
            if (num(buf[i]) != expect + i) ++mismatches;
        }
        expect += n;
        if (n == 0) {
            wait();
        } else {
            wait.progress();
        }
    }
    producer.join();
    done.store(true);
    observer.join();
    EXPECT_EQ(mismatches, 0u);
    EXPECT_EQ(expect, total);
    EXPECT_TRUE(ring.empty());
    EXPECT_LE(max_seen_size.load(), ring.capacity());
}

// Elements wider than a packed slot travel as plain bytes next to their flag: ThreadSanitizer
// sees the plain accesses and checks that the flag's release/acquire orders them.
TEST(SpscRingStress, WideElementsArriveWhole) {
    struct Pair {
        std::uint64_t value;
        std::uint64_t check;
    };
    const std::uint64_t total = stress_count(1'000'000);
    SpscRing<Pair> ring(64);
    std::thread producer([&] {
        Backoff wait;
        Pair buf[8];
        std::uint64_t next = 0;
        while (next < total) {
            const std::size_t want = std::min<std::uint64_t>(8, total - next);
            for (std::size_t i = 0; i < want; ++i)
                buf[i] = {next + i, ~(next + i)};
            const std::size_t n = ring.enqueue_burst(std::span<const Pair>(buf, want));
            next += n;
            if (n == 0) {
                wait();
            } else {
                wait.progress();
            }
        }
    });
    Backoff wait;
    Pair buf[5];
    std::uint64_t expect = 0, errors = 0;
    while (expect < total) {
        const std::size_t n = ring.dequeue_burst(buf);
        for (std::size_t i = 0; i < n; ++i) {
            if (buf[i].value != expect + i || buf[i].check != ~(expect + i)) ++errors;
        }
        expect += n;
        if (n == 0) {
            wait();
        } else {
            wait.progress();
        }
    }
    producer.join();
    EXPECT_EQ(errors, 0u);
}

// The pipeline's pattern: buffers go out on one ring filled with data and come back empty on
// another. The data are plain memory; the rings' release/acquire is all that orders them.
TEST(SpscRingStress, BuffersCirculateThroughTwoRings) {
    constexpr std::size_t kBuffers = 48, kWords = 16;
    const std::uint64_t rounds = stress_count(400'000);
    std::vector<std::uint64_t> storage(kBuffers * kWords);
    SpscRing<std::uint64_t*> full(32), empty(64);
    for (std::size_t b = 0; b < kBuffers; ++b)
        ASSERT_TRUE(empty.try_enqueue(&storage[b * kWords]));

    std::thread filler([&] {
        Backoff wait;
        for (std::uint64_t i = 0; i < rounds;) {
            std::uint64_t* buf = nullptr;
            if (!empty.try_dequeue(buf)) {
                wait();
                continue;
            }
            for (std::size_t w = 0; w < kWords; ++w)
                buf[w] = i * kWords + w;
            while (!full.try_enqueue(buf))
                wait();
            wait.progress();
            ++i;
        }
    });
    Backoff wait;
    std::uint64_t errors = 0;
    std::uint64_t* bufs[8];
    for (std::uint64_t i = 0; i < rounds;) {
        const std::size_t n = full.dequeue_burst(bufs);
        for (std::size_t k = 0; k < n; ++k, ++i) {
            for (std::size_t w = 0; w < kWords; ++w) {
                if (bufs[k][w] != i * kWords + w) ++errors;
                bufs[k][w] = 0;  // the filler must see this before it refills the buffer
            }
        }
        if (n != 0) {
            ASSERT_TRUE(empty.enqueue_bulk(std::span<std::uint64_t* const>(bufs, n)));
            wait.progress();
        } else {
            wait();
        }
    }
    filler.join();
    EXPECT_EQ(errors, 0u);
}

// The hard requirement of the pipeline's shutdown drain: an element is visible as soon as the
// enqueue returns, and room as soon as the dequeue returns, with the other side idle afterwards.
TEST(SpscRingStress, NoFlushNeededInEitherDirection) {
    SpscRing<std::uint32_t> ring(8);
    std::atomic<int> stage{0};
    std::thread producer([&] {
        ASSERT_TRUE(ring.try_enqueue(1));
        const std::uint32_t two[] = {2, 3};
        ASSERT_EQ(ring.enqueue_burst(two), 2u);
        stage.store(1, std::memory_order_release);  // then goes quiet
        while (stage.load(std::memory_order_acquire) != 2)
            sched_yield();
        // The consumer freed one slot after we had filled the ring and went quiet.
        for (std::uint32_t i = 0; i < 8; ++i)
            ASSERT_TRUE(ring.try_enqueue(10 + i));
        ASSERT_FALSE(ring.try_enqueue(99));
        stage.store(3, std::memory_order_release);
        while (stage.load(std::memory_order_acquire) != 4)
            sched_yield();
        ASSERT_TRUE(ring.try_enqueue(18));
    });
    while (stage.load(std::memory_order_acquire) != 1)
        sched_yield();
    std::uint32_t v = 0;
    std::uint32_t got[3] = {};
    ASSERT_EQ(ring.dequeue_burst(got), 3u);
    EXPECT_EQ(got[0], 1u);
    EXPECT_EQ(got[2], 3u);
    stage.store(2, std::memory_order_release);
    while (stage.load(std::memory_order_acquire) != 3)
        sched_yield();
    ASSERT_TRUE(ring.try_dequeue(v));
    EXPECT_EQ(v, 10u);
    stage.store(4, std::memory_order_release);
    producer.join();
    std::uint32_t rest[8] = {};
    ASSERT_EQ(ring.dequeue_burst(rest), 8u);
    EXPECT_EQ(rest[7], 18u);
}

// The same with a ring of 64, where the producer gets room back a line of 8 slots at a time:
// a consumer that frees a line and goes quiet has made that line usable.
TEST(SpscRingStress, NoFlushNeededWithLineGranularRoom) {
    SpscRing<std::uint32_t> ring(64);
    std::atomic<int> stage{0};
    std::thread consumer([&] {
        while (stage.load(std::memory_order_acquire) != 1)
            sched_yield();
        std::uint32_t got[8];
        EXPECT_EQ(ring.dequeue_burst(got), 8u);
        EXPECT_EQ(got[7], 7u);
        stage.store(2, std::memory_order_release);  // then goes quiet
    });
    for (std::uint32_t i = 0; i < 64; ++i)
        ASSERT_TRUE(ring.try_enqueue(i));
    stage.store(1, std::memory_order_release);
    while (stage.load(std::memory_order_acquire) != 2)
        sched_yield();
    consumer.join();
    const std::uint32_t more[8] = {64, 65, 66, 67, 68, 69, 70, 71};
    EXPECT_TRUE(ring.enqueue_bulk(more));
    std::uint32_t all[64];
    ASSERT_EQ(ring.dequeue_burst(all), 64u);
    EXPECT_EQ(all[0], 8u);
    EXPECT_EQ(all[63], 71u);
    EXPECT_TRUE(ring.empty());
}

// The ring lives in a MAP_SHARED mapping; a forked child consumes what the parent produces.
// Only positions and slots are in the mapping, so the child's handle works at the same address.
TEST(SpscRingStress, WorksAcrossFork) {
    const std::uint64_t total = stress_count(1'000'000);
    const std::size_t bytes = SpscRing<std::uint64_t>::bytes_for(1024);
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto ring = SpscRing<std::uint64_t>::create_in(mem, bytes, 1024);

    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // Consumer: a fresh handle from the region, as an unrelated process would attach.
        auto rx = SpscRing<std::uint64_t>::attach(mem, bytes);
        std::uint64_t expect = 0;
        std::uint64_t buf[32];
        unsigned idle = 0;
        while (expect < total) {
            const std::size_t n = rx.dequeue_burst(buf);
            for (std::size_t i = 0; i < n; ++i) {
                if (buf[i] != expect * 3 + 1) _exit(2);
                ++expect;
            }
            if (n == 0 && ++idle % 64 == 0) sched_yield();
        }
        _exit(rx.empty() ? 0 : 3);
    }
    std::uint64_t next = 0;
    std::uint64_t buf[17];
    unsigned idle = 0;
    while (next < total) {
        const std::size_t want = std::min<std::uint64_t>(17, total - next);
        for (std::size_t i = 0; i < want; ++i)
            buf[i] = (next + i) * 3 + 1;
        const std::size_t n = ring.enqueue_burst(std::span<const std::uint64_t>(buf, want));
        next += n;
        if (n == 0 && ++idle % 64 == 0) sched_yield();
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "2: out of order or lost, 3: extra elements";
    munmap(mem, bytes);
}

// Several producers, one consumer: every producer's numbers arrive in its own order, all of
// them exactly once. Producer id in the top bits, sequence below.
template <class Ring>
void run_fan_in(Ring& ring, unsigned producers, std::uint64_t per_producer) {
    std::vector<std::thread> threads;
    for (unsigned p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            std::mt19937 rng(p);
            std::vector<Seq> buf(32);
            Backoff wait;
            std::uint64_t next = 0;
            while (next < per_producer) {
                const std::size_t want =
                    std::min<std::uint64_t>(1 + rng() % 32, per_producer - next);
                for (std::size_t i = 0; i < want; ++i) {
                    buf[i] = seq((std::uint64_t{p} << 40) | (next + i));
                }
                const std::size_t n =
                    (rng() & 1)
                        ? ring.enqueue_burst(std::span<const Seq>(buf).first(want))
                        : (ring.enqueue_bulk(std::span<const Seq>(buf).first(want)) ? want : 0);
                next += n;
                if (n == 0) {
                    wait();
                } else {
                    wait.progress();
                }
            }
        });
    }
    std::vector<std::uint64_t> expect(producers, 0);
    std::uint64_t received = 0, errors = 0;
    std::vector<Seq> buf(48);
    Backoff wait;
    while (received < producers * per_producer) {
        const std::size_t n = ring.dequeue_burst(buf);
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint64_t v = num(buf[i]);
            const auto p = static_cast<unsigned>(v >> 40);
            if (p >= producers || (v & ((std::uint64_t{1} << 40) - 1)) != expect[p]) {
                ++errors;
            } else {
                ++expect[p];
            }
        }
        received += n;
        if (n == 0) {
            wait();
        } else {
            wait.progress();
        }
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(errors, 0u);
    for (unsigned p = 0; p < producers; ++p)
        EXPECT_EQ(expect[p], per_producer) << "producer " << p;
    EXPECT_TRUE(ring.empty());
}

TEST(MpscRingStress, PerProducerOrderWithTwoProducers) {
    MpscRing<Seq> ring(128);
    run_fan_in(ring, 2, stress_count(1'000'000));
}

TEST(MpscRingStress, PerProducerOrderWithFourProducers) {
    MpscRing<Seq> ring(64);
    run_fan_in(ring, 4, stress_count(400'000));
}

// A small ring laps every few calls, so a producer's view of the consumer is often laps old.
TEST(MpscRingStress, PerProducerOrderInATinyRing) {
    MpscRing<Seq> ring(8);
    run_fan_in(ring, 3, stress_count(300'000));
}

TEST(MpmcRingStress, OneConsumerKeepsPerProducerOrder) {
    MpmcRing<Seq> ring(128);
    run_fan_in(ring, 3, stress_count(500'000));
}

// Several producers and consumers: every element is taken exactly once, and within what one
// consumer sees, each producer's elements are in order.
TEST(MpmcRingStress, ManyToManyExactlyOnce) {
    constexpr unsigned kProducers = 3, kConsumers = 3;
    const std::uint64_t per_producer = stress_count(300'000);
    MpmcRing<Seq> ring(256);
    std::vector<std::atomic<std::uint8_t>> seen(kProducers * per_producer);
    std::atomic<std::uint64_t> taken{0};
    std::atomic<std::uint64_t> order_errors{0};
    std::vector<std::thread> threads;
    for (unsigned p = 0; p < kProducers; ++p) {
        threads.emplace_back([&, p] {
            std::mt19937 rng(10 + p);
            std::vector<Seq> buf(32);
            Backoff wait;
            std::uint64_t next = 0;
            while (next < per_producer) {
                const std::size_t want =
                    std::min<std::uint64_t>(1 + rng() % 32, per_producer - next);
                for (std::size_t i = 0; i < want; ++i)
                    buf[i] = seq(p * per_producer + next + i);
                const std::size_t n = ring.enqueue_burst(std::span<const Seq>(buf).first(want));
                next += n;
                if (n == 0) {
                    wait();
                } else {
                    wait.progress();
                }
            }
        });
    }
    for (unsigned c = 0; c < kConsumers; ++c) {
        threads.emplace_back([&, c] {
            std::mt19937 rng(20 + c);
            std::vector<Seq> buf(32);
            std::vector<std::int64_t> last(kProducers, -1);
            Backoff wait;
            const std::uint64_t total = kProducers * per_producer;
            // Relaxed: a progress counter; the elements themselves are checked through `seen`.
            while (taken.load(std::memory_order_relaxed) < total) {
                const std::size_t want = 1 + rng() % 32;
                const std::size_t n =
                    (rng() & 1) ? ring.dequeue_burst(std::span<Seq>(buf).first(want))
                                : (ring.dequeue_bulk(std::span<Seq>(buf).first(want)) ? want : 0);
                for (std::size_t i = 0; i < n; ++i) {
                    const std::uint64_t v = num(buf[i]);
                    seen[v].fetch_add(1,
                                      std::memory_order_relaxed);  // Relaxed: counted after join.
                    const auto p = static_cast<unsigned>(v / per_producer);
                    const auto s = static_cast<std::int64_t>(v % per_producer);
                    if (s <= last[p]) order_errors.fetch_add(1, std::memory_order_relaxed);
                    last[p] = s;
                }
                taken.fetch_add(n, std::memory_order_relaxed);  // Relaxed: progress only.
                if (n == 0) {
                    wait();
                } else {
                    wait.progress();
                }
            }
        });
    }
    for (auto& t : threads)
        t.join();
    std::uint64_t missing = 0, duplicated = 0;
    for (auto& s : seen) {
        const auto k = s.load();
        if (k == 0) ++missing;
        if (k > 1) ++duplicated;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(duplicated, 0u);
    EXPECT_EQ(order_errors.load(), 0u);
    EXPECT_EQ(taken.load(), kProducers * per_producer);
}

}  // namespace
