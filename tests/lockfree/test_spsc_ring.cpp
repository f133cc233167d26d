// Single-thread semantics of SpscRing: empty, full, wrap-around, bursts against free space,
// capacity edges, element representations, and the shared-memory constructors.
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <random>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/lockfree/spsc_ring.hpp"

using sluice::lockfree::SpscRing;

namespace {

struct Wide {  // larger than a packed slot: stored next to a separate flag
    std::uint64_t a;
    std::uint32_t b;
    std::uint16_t c;
    bool operator==(const Wide&) const = default;
};

template <class T>
T make(std::uint64_t i) {
    if constexpr (std::is_pointer_v<T>) {
        return reinterpret_cast<T>(static_cast<std::uintptr_t>(i * 64));
    } else if constexpr (std::is_same_v<T, Wide>) {
        return Wide{i, static_cast<std::uint32_t>(i * 3), static_cast<std::uint16_t>(i)};
    } else {
        return static_cast<T>(i);
    }
}

template <class T>
class SpscRingTyped : public ::testing::Test {};
using ElementTypes = ::testing::Types<void*, std::uint32_t, std::uint16_t, std::uint64_t, Wide>;
TYPED_TEST_SUITE(SpscRingTyped, ElementTypes);

TYPED_TEST(SpscRingTyped, EmptyRingGivesNothing) {
    SpscRing<TypeParam> r(8);
    TypeParam out{};
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.size(), 0u);
    EXPECT_FALSE(r.try_dequeue(out));
    std::array<TypeParam, 4> buf{};
    EXPECT_EQ(r.dequeue_burst(buf), 0u);
    EXPECT_FALSE(r.dequeue_bulk(buf));
}

TYPED_TEST(SpscRingTyped, FillsToCapacityThenRefuses) {
    SpscRing<TypeParam> r(16);
    ASSERT_EQ(r.capacity(), 16u);
    for (std::uint64_t i = 0; i < 16; ++i)
        ASSERT_TRUE(r.try_enqueue(make<TypeParam>(i))) << i;
    EXPECT_FALSE(r.try_enqueue(make<TypeParam>(99)));
    EXPECT_EQ(r.size(), 16u);
    EXPECT_FALSE(r.empty());
    std::array<TypeParam, 1> one{make<TypeParam>(5)};
    EXPECT_EQ(r.enqueue_burst(one), 0u);
    EXPECT_FALSE(r.enqueue_bulk(one));
    for (std::uint64_t i = 0; i < 16; ++i) {
        TypeParam v{};
        ASSERT_TRUE(r.try_dequeue(v));
        EXPECT_EQ(v, make<TypeParam>(i));
    }
    EXPECT_TRUE(r.empty());
}

TYPED_TEST(SpscRingTyped, WrapsAroundManyLaps) {
    SpscRing<TypeParam> r(8);
    std::uint64_t in = 0, out = 0;
    // Three in, two out, repeatedly: the fill level creeps up and positions cross the
    // wrap at every offset.
    for (int round = 0; round < 200; ++round) {
        for (int k = 0; k < 3 && r.size() < r.capacity(); ++k) {
            ASSERT_TRUE(r.try_enqueue(make<TypeParam>(in++)));
        }
        for (int k = 0; k < 2; ++k) {
            TypeParam v{};
            if (!r.try_dequeue(v)) break;
            ASSERT_EQ(v, make<TypeParam>(out++));
        }
        if (r.size() == r.capacity()) {
            TypeParam v{};
            while (r.try_dequeue(v))
                ASSERT_EQ(v, make<TypeParam>(out++));
        }
    }
    EXPECT_GT(in, 8u * 40);
}

TYPED_TEST(SpscRingTyped, BurstLargerThanFreeSpaceTakesWhatFits) {
    SpscRing<TypeParam> r(8);
    std::vector<TypeParam> items;
    for (std::uint64_t i = 0; i < 12; ++i)
        items.push_back(make<TypeParam>(i));
    ASSERT_EQ(r.enqueue_burst(std::span<const TypeParam>(items).first(5)), 5u);
    // 3 free: a burst of 12 enqueues 3, all-or-nothing refuses and leaves the ring alone.
    EXPECT_FALSE(r.enqueue_bulk(std::span<const TypeParam>(items).subspan(5, 4)));
    EXPECT_EQ(r.size(), 5u);
    EXPECT_EQ(r.enqueue_burst(std::span<const TypeParam>(items).subspan(5)), 3u);
    EXPECT_EQ(r.size(), 8u);

    std::vector<TypeParam> got(12);
    EXPECT_FALSE(r.dequeue_bulk(got));  // only 8 there
    EXPECT_EQ(r.size(), 8u);
    EXPECT_EQ(r.dequeue_burst(got), 8u);
    for (std::uint64_t i = 0; i < 8; ++i)
        EXPECT_EQ(got[i], make<TypeParam>(i));
}

// A refused bulk dequeue looks at runs without consuming them; what follows must still see
// every element exactly as enqueued.
TYPED_TEST(SpscRingTyped, RefusedBulkLeavesRunsIntact) {
    SpscRing<TypeParam> r(16);
    std::vector<TypeParam> a{make<TypeParam>(1), make<TypeParam>(2), make<TypeParam>(3)};
    std::vector<TypeParam> b{make<TypeParam>(4), make<TypeParam>(5)};
    ASSERT_EQ(r.enqueue_burst(a), 3u);
    ASSERT_TRUE(r.enqueue_bulk(b));
    std::vector<TypeParam> out(6);
    EXPECT_FALSE(r.dequeue_bulk(out));
    ASSERT_EQ(r.dequeue_burst(std::span<TypeParam>(out).first(2)), 2u);
    ASSERT_EQ(r.dequeue_burst(out), 3u);
    EXPECT_EQ(out[0], make<TypeParam>(3));
    EXPECT_EQ(out[1], make<TypeParam>(4));
    EXPECT_EQ(out[2], make<TypeParam>(5));
}

TYPED_TEST(SpscRingTyped, BulkAcrossTheWrap) {
    SpscRing<TypeParam> r(8);
    std::vector<TypeParam> items;
    for (std::uint64_t i = 0; i < 8; ++i)
        items.push_back(make<TypeParam>(i));
    ASSERT_TRUE(r.enqueue_bulk(std::span<const TypeParam>(items).first(6)));
    std::vector<TypeParam> got(6);
    ASSERT_TRUE(r.dequeue_bulk(std::span<TypeParam>(got).first(5)));
    // positions 6..13 occupy slots 6,7,0..5: one bulk call that crosses the end of the array
    std::vector<TypeParam> more;
    for (std::uint64_t i = 100; i < 107; ++i)
        more.push_back(make<TypeParam>(i));
    ASSERT_TRUE(r.enqueue_bulk(more));
    EXPECT_EQ(r.size(), 8u);
    std::vector<TypeParam> all(8);
    ASSERT_TRUE(r.dequeue_bulk(all));
    EXPECT_EQ(all[0], make<TypeParam>(5));
    for (std::uint64_t i = 0; i < 7; ++i)
        EXPECT_EQ(all[i + 1], make<TypeParam>(100 + i));
    EXPECT_TRUE(r.empty());
}

TYPED_TEST(SpscRingTyped, RandomOperationsMatchAQueueModel) {
    std::mt19937_64 rng(42);
    SpscRing<TypeParam> r(32);
    std::deque<TypeParam> model;
    std::uint64_t next = 0;
    std::vector<TypeParam> buf(40);
    for (int step = 0; step < 20000; ++step) {
        const std::size_t n = rng() % 40;
        switch (rng() % 6) {
            case 0: {
                const bool ok = r.try_enqueue(make<TypeParam>(next));
                ASSERT_EQ(ok, model.size() < 32);
                if (ok) model.push_back(make<TypeParam>(next++));
                break;
            }
            case 1: {
                for (std::size_t i = 0; i < n; ++i)
                    buf[i] = make<TypeParam>(next + i);
                const std::size_t k = r.enqueue_burst(std::span<const TypeParam>(buf).first(n));
                ASSERT_EQ(k, std::min(n, 32 - model.size()));
                for (std::size_t i = 0; i < k; ++i)
                    model.push_back(buf[i]);
                next += k;
                break;
            }
            case 2: {
                for (std::size_t i = 0; i < n; ++i)
                    buf[i] = make<TypeParam>(next + i);
                const bool ok = r.enqueue_bulk(std::span<const TypeParam>(buf).first(n));
                ASSERT_EQ(ok, n <= 32 - model.size());
                if (ok) {
                    for (std::size_t i = 0; i < n; ++i)
                        model.push_back(buf[i]);
                    next += n;
                }
                break;
            }
            case 3: {
                TypeParam v{};
                const bool ok = r.try_dequeue(v);
                ASSERT_EQ(ok, !model.empty());
                if (ok) {
                    ASSERT_EQ(v, model.front());
                    model.pop_front();
                }
                break;
            }
            case 4: {
                const std::size_t k = r.dequeue_burst(std::span<TypeParam>(buf).first(n));
                ASSERT_EQ(k, std::min(n, model.size()));
                for (std::size_t i = 0; i < k; ++i) {
                    ASSERT_EQ(buf[i], model.front());
                    model.pop_front();
                }
                break;
            }
            default: {
                const bool ok = r.dequeue_bulk(std::span<TypeParam>(buf).first(n));
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
        ASSERT_EQ(r.empty(), model.empty());
    }
}

TEST(SpscRing, CapacityIsRoundedUpToAPowerOfTwo) {
    EXPECT_EQ(SpscRing<void*>(1).capacity(), 1u);
    EXPECT_EQ(SpscRing<void*>(2).capacity(), 2u);
    EXPECT_EQ(SpscRing<void*>(3).capacity(), 4u);
    EXPECT_EQ(SpscRing<void*>(1000).capacity(), 1024u);
    EXPECT_EQ(SpscRing<void*>(1024).capacity(), 1024u);
    EXPECT_THROW(SpscRing<void*>(0), std::invalid_argument);
    EXPECT_THROW(SpscRing<void*>((std::size_t{1} << 31) + 1), std::invalid_argument);
}

// Rings of 64 slots or more hand freed slots back to the producer a cache line (8 slots) at a
// time, so the producer never writes into the line the consumer is reading.
TEST(SpscRing, LargeRingsReuseSlotsALineAtATime) {
    SpscRing<std::uint32_t> r(64);
    for (std::uint32_t i = 0; i < 64; ++i)
        ASSERT_TRUE(r.try_enqueue(i));
    std::uint32_t v = 0;
    for (std::uint32_t i = 0; i < 7; ++i) {
        ASSERT_TRUE(r.try_dequeue(v));
        EXPECT_FALSE(r.try_enqueue(100)) << "after " << i + 1 << " freed";
    }
    ASSERT_TRUE(r.try_dequeue(v));  // the 8th completes a line
    for (std::uint32_t i = 0; i < 8; ++i)
        ASSERT_TRUE(r.try_enqueue(100 + i));
    EXPECT_FALSE(r.try_enqueue(200));
    EXPECT_EQ(r.size(), 64u);
    // Drained completely, everything is reusable and the ring reads empty.
    std::uint32_t out[64];
    EXPECT_EQ(r.dequeue_burst(out), 64u);
    EXPECT_EQ(out[63], 107u);
    EXPECT_EQ(r.dequeue_burst(out), 0u);
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.size(), 0u);
    for (std::uint32_t i = 0; i < 64; ++i)
        ASSERT_TRUE(r.try_enqueue(i));
}

// size() may lag by less than a line while the consumer streams, and is exact once it runs
// dry (a dequeue that finds less than it asked for).
TEST(SpscRing, SizeIsExactOnceTheConsumerRunsDry) {
    SpscRing<std::uint32_t> r(128);
    for (std::uint32_t i = 0; i < 20; ++i)
        ASSERT_TRUE(r.try_enqueue(i));
    std::uint32_t v = 0;
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(r.try_dequeue(v));
    EXPECT_GE(r.size(), 17u);
    EXPECT_LE(r.size(), 20u);
    std::uint32_t out[32];
    EXPECT_EQ(r.dequeue_burst(out), 17u);  // asked 32: ran dry
    EXPECT_EQ(r.size(), 0u);
    EXPECT_TRUE(r.empty());
}

TEST(SpscRing, CapacityOneAlternatesLaps) {
    SpscRing<std::uint32_t> r(1);
    for (std::uint32_t i = 0; i < 100; ++i) {
        ASSERT_TRUE(r.try_enqueue(i));
        ASSERT_FALSE(r.try_enqueue(i));
        std::uint32_t v = 0;
        ASSERT_TRUE(r.try_dequeue(v));
        ASSERT_EQ(v, i);
        ASSERT_FALSE(r.try_dequeue(v));
    }
}

TEST(SpscRing, BurstBiggerThanCapacityIsClamped) {
    SpscRing<std::uint32_t> r(4);
    std::vector<std::uint32_t> in{1, 2, 3, 4, 5, 6};
    EXPECT_FALSE(r.enqueue_bulk(in));
    EXPECT_EQ(r.enqueue_burst(in), 4u);
    std::vector<std::uint32_t> out(6);
    EXPECT_FALSE(r.dequeue_bulk(out));
    EXPECT_EQ(r.dequeue_burst(out), 4u);
    EXPECT_EQ(out[3], 4u);
}

TEST(SpscRing, EmptySpansAreNoOps) {
    SpscRing<std::uint32_t> r(4);
    EXPECT_TRUE(r.enqueue_bulk({}));
    EXPECT_EQ(r.enqueue_burst({}), 0u);
    EXPECT_TRUE(r.dequeue_bulk({}));
    EXPECT_EQ(r.dequeue_burst({}), 0u);
    EXPECT_TRUE(r.empty());
}

TEST(SpscRing, PointersKeepEveryUserSpaceBitAndNull) {
    SpscRing<const char*> r(4);
    const char* high = reinterpret_cast<const char*>(std::uintptr_t{0x7fff'ffff'fff8});
    const char* odd = reinterpret_cast<const char*>(std::uintptr_t{0x1234'5678'9abd});
    ASSERT_TRUE(r.try_enqueue(nullptr));
    ASSERT_TRUE(r.try_enqueue(high));
    ASSERT_TRUE(r.try_enqueue(odd));
    const char* v = odd;
    ASSERT_TRUE(r.try_dequeue(v));
    EXPECT_EQ(v, nullptr);
    ASSERT_TRUE(r.try_dequeue(v));
    EXPECT_EQ(v, high);
    ASSERT_TRUE(r.try_dequeue(v));
    EXPECT_EQ(v, odd);
}

TEST(SpscRing, MoveKeepsTheRing) {
    SpscRing<std::uint32_t> a(8);
    ASSERT_TRUE(a.try_enqueue(7));
    SpscRing<std::uint32_t> b(std::move(a));
    std::uint32_t v = 0;
    ASSERT_TRUE(b.try_dequeue(v));
    EXPECT_EQ(v, 7u);
    SpscRing<std::uint32_t> c(2);
    c = std::move(b);
    EXPECT_EQ(c.capacity(), 8u);
}

struct AlignedBlock {
    explicit AlignedBlock(std::size_t n) : bytes(n), p(::operator new (n, std::align_val_t{64})) {
        std::memset(p, 0xa5, n);  // garbage: create_in must initialise everything it uses
    }
    ~AlignedBlock() { ::operator delete (p, std::align_val_t{64}); }
    std::size_t bytes;
    void* p;
};

TEST(SpscRingRegion, CreateInAndAttachShareOneRing) {
    AlignedBlock mem(SpscRing<std::uint32_t>::bytes_for(64));
    auto producer = SpscRing<std::uint32_t>::create_in(mem.p, mem.bytes, 64);
    auto consumer = SpscRing<std::uint32_t>::attach(mem.p, mem.bytes);
    EXPECT_EQ(consumer.capacity(), 64u);
    for (std::uint32_t i = 0; i < 64; ++i)
        ASSERT_TRUE(producer.try_enqueue(i));
    EXPECT_EQ(consumer.size(), 64u);
    for (std::uint32_t i = 0; i < 64; ++i) {
        std::uint32_t v = 0;
        ASSERT_TRUE(consumer.try_dequeue(v));
        ASSERT_EQ(v, i);
    }
    EXPECT_TRUE(producer.empty());
}

TEST(SpscRingRegion, RejectsUnsuitableMemory) {
    const std::size_t need = SpscRing<std::uint32_t>::bytes_for(64);
    AlignedBlock mem(need + 64);
    EXPECT_THROW(SpscRing<std::uint32_t>::create_in(mem.p, need - 1, 64), std::invalid_argument);
    EXPECT_THROW(SpscRing<std::uint32_t>::create_in(static_cast<char*>(mem.p) + 8, need, 64),
                 std::invalid_argument);
    EXPECT_THROW(SpscRing<std::uint32_t>::create_in(nullptr, need, 64), std::invalid_argument);
    // Never initialised: no ring there.
    EXPECT_THROW(SpscRing<std::uint32_t>::attach(mem.p, mem.bytes), std::invalid_argument);
    auto r = SpscRing<std::uint32_t>::create_in(mem.p, mem.bytes, 64);
    // Wrong element type, or a region cut shorter than the ring it holds.
    EXPECT_THROW(SpscRing<Wide>::attach(mem.p, mem.bytes), std::invalid_argument);
    EXPECT_THROW(SpscRing<std::uint32_t>::attach(mem.p, need - 8), std::invalid_argument);
    EXPECT_NO_THROW(SpscRing<std::uint32_t>::attach(mem.p, need));
}

}  // namespace
