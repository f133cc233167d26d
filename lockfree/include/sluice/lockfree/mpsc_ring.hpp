// MpscRing<T>: bounded multi-producer single-consumer ring, for fan-in where one SpscRing per
// producer (polled round-robin, the default in sluice) does not fit.
//
// Producers claim runs of positions with one compare-and-swap and publish each element through
// its slot's lap flag (detail/multi_producer.hpp); they never wait for one another. The consumer
// reads slots in position order and stops at the first one not yet written, so the elements of
// each producer come out in the order that producer enqueued them. A producer preempted between
// its claim and its writes holds back the consumer (not the other producers) until it resumes.
//
// Capacity is rounded up to a power of two. Like SpscRing, the state has no pointers in it and
// can live in caller-supplied (shared) memory.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "sluice/lockfree/detail/lap_slot.hpp"
#include "sluice/lockfree/detail/multi_producer.hpp"
#include "sluice/lockfree/detail/run_slots.hpp"

namespace sluice::lockfree {

template <class T>
class MpscRing {
    static_assert(std::is_trivially_copyable_v<T>,
                  "MpscRing copies elements as raw bytes; pass pointers or handles");

    // Pointers and small elements: runs with one header each (detail/run_slots.hpp). Wider
    // elements: a flag in every slot (detail/lap_slot.hpp).
    using Slots =
        std::conditional_t<detail::kPackedSlot<T>, detail::RunSlots<T>, detail::SlotArray<T>>;

    struct Control {
        detail::RingHeader header;  // written once, read-only afterwards
        alignas(detail::kFalseSharingRange) detail::ProducerPositions producers;
        // Next position to read; written by the consumer only.
        alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> tail;
        // Only the consumer uses it: where the next run not yet seen starts (run_slots.hpp).
        std::uint64_t ready_until;
    };
    static_assert(offsetof(Control, producers) % detail::kFalseSharingRange == 0);
    static_assert(offsetof(Control, tail) - offsetof(Control, producers) >=
                  detail::kFalseSharingRange);
    static_assert(sizeof(Control) % detail::kFalseSharingRange == 0);

    static constexpr std::uint64_t kMagic = 0x31435350'4d434c53;  // "SLCMPSC1"
    static constexpr std::uint32_t kLayoutVersion = 2;

  public:
    using value_type = T;
    static constexpr std::size_t region_alignment = detail::kCacheLine;

    explicit MpscRing(std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "MpscRing");
        owned_ = ::operator new (bytes_for(cap), std::align_val_t{detail::kFalseSharingRange});
        init(owned_, cap);
    }

    static std::size_t bytes_for(std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "MpscRing");
        return sizeof(Control) + detail::align_up(cap * Slots::kSlotSize, detail::kCacheLine);
    }

    static MpscRing create_in(void* region, std::size_t bytes, std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "MpscRing");
        detail::check_region(region, bytes, bytes_for(cap), region_alignment, "MpscRing");
        MpscRing r;
        r.init(region, cap);
        return r;
    }

    static MpscRing attach(void* region, std::size_t bytes) {
        detail::check_region(region, bytes, sizeof(Control), region_alignment, "MpscRing");
        auto* ctl = std::launder(static_cast<Control*>(region));
        detail::check_header(ctl->header, kMagic, kLayoutVersion, Slots::kSlotSize, sizeof(T),
                             bytes, &bytes_for, "MpscRing");
        MpscRing r;
        r.bind(region, ctl->header.capacity);
        return r;
    }

    MpscRing(MpscRing&& o) noexcept { swap(o); }
    MpscRing& operator=(MpscRing&& o) noexcept {
        MpscRing tmp(std::move(o));
        swap(tmp);
        return *this;
    }
    MpscRing(const MpscRing&) = delete;
    MpscRing& operator=(const MpscRing&) = delete;
    ~MpscRing() {
        if (owned_ != nullptr) {
            ::operator delete (owned_, std::align_val_t{detail::kFalseSharingRange});
        }
    }

    // ---- producers (any number of threads) ------------------------------------------------
    // Cost: one compare-and-swap on the shared producer line per call, plus one slot store per
    // element.

    bool try_enqueue(const T& item) noexcept { return enqueue_burst({&item, 1}) == 1; }

    std::size_t enqueue_burst(std::span<const T> items) noexcept {
        std::uint64_t first = 0;
        const std::size_t n =
            detail::reserve_positions(ctl_->producers, ctl_->tail, ring_.capacity,
                                      std::min(items.size(), ring_.capacity), false, first);
        if (n != 0) ring_.write(first, items.data(), n);
        return n;
    }

    bool enqueue_bulk(std::span<const T> items) noexcept {
        if (items.size() > ring_.capacity) return false;
        if (items.empty()) return true;
        std::uint64_t first = 0;
        if (detail::reserve_positions(ctl_->producers, ctl_->tail, ring_.capacity, items.size(),
                                      true, first) == 0) {
            return false;
        }
        ring_.write(first, items.data(), items.size());
        return true;
    }

    // ---- consumer (one thread) ------------------------------------------------------------

    bool try_dequeue(T& out) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        if (!ring_.read_one(tail, out, ctl_->ready_until)) return false;
        // Release: our read of the slot is done before a producer reuses it; pairs with the
        // acquire of tail in detail::reserve_positions().
        ctl_->tail.store(tail + 1, std::memory_order_release);
        return true;
    }

    std::size_t dequeue_burst(std::span<T> out) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        const std::size_t n =
            ring_.read(tail, out.data(), std::min(out.size(), capacity()), ctl_->ready_until);
        if (n != 0) {
            // Release: pairs with the acquire of tail in detail::reserve_positions().
            ctl_->tail.store(tail + n, std::memory_order_release);
        }
        return n;
    }

    bool dequeue_bulk(std::span<T> out) noexcept {
        if (out.size() > capacity()) return false;
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        // A refused bulk consumes nothing, so the runs it looked at must be looked at again:
        // their headers are still in the slots.
        const std::uint64_t seen = ctl_->ready_until;
        if (ring_.read(tail, out.data(), out.size(), ctl_->ready_until) != out.size()) {
            ctl_->ready_until = seen;
            return false;
        }
        if (!out.empty()) {
            // Release: pairs with the acquire of tail in detail::reserve_positions().
            ctl_->tail.store(tail + out.size(), std::memory_order_release);
        }
        return true;
    }

    // ---- any thread -----------------------------------------------------------------------

    std::size_t capacity() const noexcept { return ring_.capacity; }

    // Claimed but not yet consumed positions (includes runs still being written).
    std::size_t size() const noexcept {
        // Relaxed: an estimate for telemetry; nothing is read through these values.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        const std::uint64_t head = ctl_->producers.head.load(std::memory_order_relaxed);
        const auto used = static_cast<std::int64_t>(head - tail);
        if (used <= 0) return 0;
        return std::min(static_cast<std::size_t>(used), capacity());
    }

    // size() == 0: an estimate from any thread; true only once every claimed position has
    // been consumed.
    bool empty() const noexcept { return size() == 0; }

  private:
    MpscRing() = default;

    void init(void* region, std::size_t cap) {
        auto* ctl = ::new (region) Control{};
        ctl->header = detail::RingHeader{kMagic, kLayoutVersion, Slots::kSlotSize, cap, sizeof(T)};
        bind(region, cap);
        ring_.construct();
    }
    void bind(void* region, std::size_t cap) {
        ctl_ = std::launder(static_cast<Control*>(region));
        ring_.bind(static_cast<std::byte*>(region) + sizeof(Control), cap);
    }
    void swap(MpscRing& o) noexcept {
        std::swap(ctl_, o.ctl_);
        std::swap(ring_, o.ring_);
        std::swap(owned_, o.owned_);
    }

    Control* ctl_ = nullptr;
    Slots ring_;
    void* owned_ = nullptr;
};

}  // namespace sluice::lockfree
