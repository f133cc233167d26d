// Single-thread semantics of MpscRing and MpmcRing (the multi-thread behaviour is in
// test_ring_stress.cpp).
#include <cstdint>
#include <cstring>
#include <deque>
#include <new>
#include <random>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/lockfree/mpmc_ring.hpp"
#include "sluice/lockfree/mpsc_ring.hpp"

using sluice::lockfree::MpmcRing;
using sluice::lockfree::MpscRing;

namespace {

template <class R>
class MultiRing : public ::testing::Test {};
using Rings = ::testing::Types<MpscRing<std::uint32_t>, MpmcRing<std::uint32_t>, MpscRing<void*>,
                               MpmcRing<void*>>;
TYPED_TEST_SUITE(MultiRing, Rings);

template <class T>
T make(std::uint64_t i) {
    if constexpr (std::is_pointer_v<T>) {
        return reinterpret_cast<T>(static_cast<std::uintptr_t>(i * 8));
    } else {
        return static_cast<T>(i);
    }
}

TYPED_TEST(MultiRing, EmptyFullAndOrder) {
    using T = typename TypeParam::value_type;
    TypeParam r(8);
    T v{};
    EXPECT_TRUE(r.empty());
    EXPECT_FALSE(r.try_dequeue(v));
    for (std::uint64_t i = 0; i < 8; ++i)
        ASSERT_TRUE(r.try_enqueue(make<T>(i)));
    EXPECT_FALSE(r.try_enqueue(make<T>(8)));
    EXPECT_EQ(r.size(), 8u);
    for (std::uint64_t i = 0; i < 8; ++i) {
        ASSERT_TRUE(r.try_dequeue(v));
        EXPECT_EQ(v, make<T>(i));
    }
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.size(), 0u);
}

TYPED_TEST(MultiRing, RandomOperationsMatchAQueueModel) {
    using T = typename TypeParam::value_type;
    std::mt19937_64 rng(7);
    TypeParam r(16);
    std::deque<T> model;
    std::uint64_t next = 0;
    std::vector<T> buf(20);
    for (int step = 0; step < 20000; ++step) {
        const std::size_t n = rng() % 20;
        switch (rng() % 4) {
            case 0: {
                for (std::size_t i = 0; i < n; ++i)
                    buf[i] = make<T>(next + i);
                const std::size_t k = r.enqueue_burst(std::span<const T>(buf).first(n));
                ASSERT_EQ(k, std::min(n, 16 - model.size()));
                for (std::size_t i = 0; i < k; ++i)
                    model.push_back(buf[i]);
                next += k;
                break;
            }
            case 1: {
                for (std::size_t i = 0; i < n; ++i)
                    buf[i] = make<T>(next + i);
                const bool ok = r.enqueue_bulk(std::span<const T>(buf).first(n));
                ASSERT_EQ(ok, n <= 16 - model.size());
                if (ok) {
                    for (std::size_t i = 0; i < n; ++i)
                        model.push_back(buf[i]);
                    next += n;
                }
                break;
            }
            case 2: {
                const std::size_t k = r.dequeue_burst(std::span<T>(buf).first(n));
                ASSERT_EQ(k, std::min(n, model.size()));
                for (std::size_t i = 0; i < k; ++i) {
                    ASSERT_EQ(buf[i], model.front());
                    model.pop_front();
                }
                break;
            }
            default: {
                const bool ok = r.dequeue_bulk(std::span<T>(buf).first(n));
                ASSERT_EQ(ok, n <= model.size());
                if (ok) {
                    for (std::size_t i = 0; i < n; ++i) {
                        ASSERT_EQ(buf[i], model.front());
                        model.pop_front();
                    }
                }
                break;
            }
        }
        ASSERT_EQ(r.size(), model.size());
    }
}

TYPED_TEST(MultiRing, CapacityEdges) {
    using T = typename TypeParam::value_type;
    EXPECT_THROW(TypeParam(0), std::invalid_argument);
    TypeParam one(1);
    EXPECT_EQ(one.capacity(), 1u);
    for (std::uint64_t i = 0; i < 10; ++i) {
        ASSERT_TRUE(one.try_enqueue(make<T>(i)));
        ASSERT_FALSE(one.try_enqueue(make<T>(i)));
        T v{};
        ASSERT_TRUE(one.try_dequeue(v));
        ASSERT_EQ(v, make<T>(i));
    }
    TypeParam r(5);
    EXPECT_EQ(r.capacity(), 8u);
    std::vector<T> big(9, make<T>(1));
    EXPECT_FALSE(r.enqueue_bulk(big));
    EXPECT_EQ(r.enqueue_burst(big), 8u);
    EXPECT_FALSE(r.dequeue_bulk(big));
    EXPECT_EQ(r.dequeue_burst(big), 8u);
}

TYPED_TEST(MultiRing, CreateInAndAttach) {
    using T = typename TypeParam::value_type;
    const std::size_t bytes = TypeParam::bytes_for(32);
    void* mem = ::operator new (bytes, std::align_val_t{64});
    std::memset(mem, 0x5a, bytes);
    {
        auto a = TypeParam::create_in(mem, bytes, 32);
        auto b = TypeParam::attach(mem, bytes);
        ASSERT_TRUE(a.try_enqueue(make<T>(3)));
        T v{};
        ASSERT_TRUE(b.try_dequeue(v));
        EXPECT_EQ(v, make<T>(3));
    }
    ::operator delete (mem, std::align_val_t{64});
}

// A producer can be preempted between reading tail and storing it as the hint, and then store a
// value laps older than the current head. The room must then come from the real tail, never
// from the wrapped difference.
TEST(ReservePositions, HintLapsBehindFallsBackToTheRealTail) {
    sluice::lockfree::detail::ProducerPositions p;
    std::atomic<std::uint64_t> tail{90};
    p.head.store(100);
    p.tail_hint.store(10);  // 90 behind head: more than a lap of 16
    std::uint64_t first = 0;
    EXPECT_EQ(sluice::lockfree::detail::reserve_positions(p, tail, 16, 16, false, first), 6u);
    EXPECT_EQ(first, 100u);
    EXPECT_EQ(p.head.load(), 106u);
    EXPECT_EQ(p.tail_hint.load(), 90u);
    EXPECT_EQ(sluice::lockfree::detail::reserve_positions(p, tail, 16, 1, false, first), 0u);
    p.tail_hint.store(3);
    EXPECT_EQ(sluice::lockfree::detail::reserve_positions(p, tail, 16, 1, true, first), 0u);
    EXPECT_EQ(p.head.load(), 106u);
}

TEST(MultiRing, MpscAndMpmcRegionsAreNotInterchangeable) {
    const std::size_t bytes = MpscRing<std::uint32_t>::bytes_for(16);
    void* mem = ::operator new (bytes, std::align_val_t{64});
    auto r = MpscRing<std::uint32_t>::create_in(mem, bytes, 16);
    EXPECT_THROW(MpmcRing<std::uint32_t>::attach(mem, bytes), std::invalid_argument);
    ::operator delete (mem, std::align_val_t{64});
}

}  // namespace
