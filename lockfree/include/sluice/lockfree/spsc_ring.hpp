// SpscRing<T>: bounded single-producer single-consumer ring, the queue between two pipeline
// stages on different lcores (one ring per producer/consumer pair).
//
// Design (see docs/performance.md for the measurements behind it):
// - Each slot carries the lap parity of the element it holds (detail/lap_slot.hpp). The consumer
//   polls the slot it is about to read instead of a producer index, so per burst only the lines
//   holding elements cross from the producer's core to the consumer's. Pointers and elements of
//   up to 4 bytes share one 64-bit word with their flag: a burst of 32 pointers is 4 cache lines.
// - The producer writes a burst from its last element to its first. The consumer polls the
//   first, so it sees a burst only once all of it is in place, and does not pull a line back
//   while the producer is still filling it.
// - The producer keeps a private copy of the consumer's position and re-reads the real one only
//   when that copy says the ring has too little room.
// - The consumer publishes its position at the end of every dequeue call, so freed room is
//   visible to the producer without another consumer call; an element is visible to the consumer
//   as soon as the enqueue call that wrote it returns. Neither side ever needs a "flush".
// - All shared state (positions and slots) lives in one block with no pointers in it, so the
//   ring works in memory shared between processes (create_in / attach).
//
// Capacity is rounded up to a power of two (capacity() reports the result) and every slot is
// usable: a ring of capacity 1024 holds 1024 elements.
//
// Thread safety: one thread (or process) calls the enqueue functions, one calls the dequeue
// functions. size() and empty() may be called from any thread; they are estimates.
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

namespace sluice::lockfree {

template <class T>
class SpscRing {
    static_assert(std::is_trivially_copyable_v<T>,
                  "SpscRing copies elements as raw bytes; pass pointers or handles");

    using Slot = detail::LapSlot<T>;

    struct Control {
        detail::RingHeader header;  // written once by create_in, read-only afterwards

        // Producer's cache lines. `head` is the next position to write; only the producer
        // writes it, and only size() reads it from other threads.
        alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> head;
        // Producer-private copy of `tail`; may lag behind it, which only underestimates room.
        std::uint64_t cached_tail;

        // Consumer's cache lines. `tail` is the next position to read.
        alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> tail;
    };
    static_assert(offsetof(Control, head) % detail::kFalseSharingRange == 0);
    static_assert(offsetof(Control, tail) - offsetof(Control, head) >= detail::kFalseSharingRange,
                  "producer and consumer state must not share a cache line pair");
    static_assert(sizeof(Control) % detail::kFalseSharingRange == 0,
                  "slots start on their own cache line pair");

    static constexpr std::uint64_t kMagic = 0x31435350'53434c53;  // "SLCSPSC1"
    static constexpr std::uint32_t kLayoutVersion = 1;

  public:
    using value_type = T;

    // Memory handed to create_in/attach must be aligned to this.
    static constexpr std::size_t region_alignment = detail::kCacheLine;

    // Owning ring on the heap. Capacity is rounded up to a power of two; throws
    // std::invalid_argument for 0 or more than 2^31.
    explicit SpscRing(std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "SpscRing");
        const std::size_t bytes = bytes_for(cap);
        void* mem = ::operator new (bytes, std::align_val_t{detail::kFalseSharingRange});
        owned_ = mem;
        init(mem, cap);
    }

    // Bytes of shared memory a ring of `capacity` (rounded up as above) needs.
    static std::size_t bytes_for(std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "SpscRing");
        return sizeof(Control) + detail::align_up(cap * sizeof(Slot), detail::kCacheLine);
    }

    // Builds a new, empty ring inside caller-owned memory (e.g. a MAP_SHARED mapping or a
    // huge-page region) of at least bytes_for(capacity) bytes, aligned to region_alignment.
    // The memory must outlive every handle; the handle does not free it.
    static SpscRing create_in(void* region, std::size_t bytes, std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "SpscRing");
        detail::check_region(region, bytes, bytes_for(cap), region_alignment, "SpscRing");
        SpscRing r;
        r.init(region, cap);
        return r;
    }

    // A handle on a ring that create_in already built in `region` (typically in another
    // process, after fork() or through a shared mapping). Throws std::invalid_argument if the
    // region does not hold an SpscRing of this element type.
    static SpscRing attach(void* region, std::size_t bytes) {
        detail::check_region(region, bytes, sizeof(Control), region_alignment, "SpscRing");
        auto* ctl = std::launder(static_cast<Control*>(region));
        detail::check_header(ctl->header, kMagic, kLayoutVersion, sizeof(Slot), sizeof(T), bytes,
                             &bytes_for, "SpscRing");
        SpscRing r;
        r.bind(region, ctl->header.capacity);
        return r;
    }

    SpscRing(SpscRing&& o) noexcept { swap(o); }
    SpscRing& operator=(SpscRing&& o) noexcept {
        SpscRing tmp(std::move(o));
        swap(tmp);
        return *this;
    }
    SpscRing(const SpscRing&) = delete;
    SpscRing& operator=(const SpscRing&) = delete;
    ~SpscRing() {
        if (owned_ != nullptr) {
            ::operator delete (owned_, std::align_val_t{detail::kFalseSharingRange});
        }
    }

    // ---- producer side --------------------------------------------------------------------
    // Cost when the cached view of the consumer has room: one slot store per element and one
    // store to the producer's own line; otherwise one extra load of the consumer's line.

    bool try_enqueue(const T& item) noexcept {
        // Relaxed: only this thread writes head.
        const std::uint64_t head = ctl_->head.load(std::memory_order_relaxed);
        if (room(head, 1) == 0) return false;
        ring_.write_one(head, item);
        // Relaxed: head is only an estimate for size(); the slot's own release publishes the
        // element.
        ctl_->head.store(head + 1, std::memory_order_relaxed);
        return true;
    }

    // Enqueues as many of `items` as fit, in order; returns how many.
    std::size_t enqueue_burst(std::span<const T> items) noexcept {
        // Relaxed: only this thread writes head.
        const std::uint64_t head = ctl_->head.load(std::memory_order_relaxed);
        const std::size_t n = std::min(items.size(), room(head, items.size()));
        if (n != 0) publish(head, items.data(), n);
        return n;
    }

    // Enqueues all of `items` or none.
    bool enqueue_bulk(std::span<const T> items) noexcept {
        // Relaxed: only this thread writes head.
        const std::uint64_t head = ctl_->head.load(std::memory_order_relaxed);
        if (room(head, items.size()) < items.size()) return false;
        if (!items.empty()) publish(head, items.data(), items.size());
        return true;
    }

    // ---- consumer side --------------------------------------------------------------------
    // Cost: one load per slot examined, one store to the consumer's own line per call that
    // takes something. The consumer never reads the producer's lines.

    bool try_dequeue(T& out) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        if (!ring_.read_one(tail, out)) return false;
        // Release: the slot read above is finished before the producer may overwrite it;
        // pairs with the acquire in room().
        ctl_->tail.store(tail + 1, std::memory_order_release);
        return true;
    }

    // Dequeues up to out.size() elements in order; returns how many.
    std::size_t dequeue_burst(std::span<T> out) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        const std::size_t n = ring_.read_run(tail, out.data(), std::min(out.size(), capacity()));
        if (n != 0) {
            // Release: pairs with the acquire in room(), as in try_dequeue().
            ctl_->tail.store(tail + n, std::memory_order_release);
        }
        return n;
    }

    // Dequeues exactly out.size() elements or none (then the contents of `out` are
    // unspecified).
    bool dequeue_bulk(std::span<T> out) noexcept {
        if (out.size() > capacity()) return false;
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        if (ring_.read_run(tail, out.data(), out.size()) != out.size()) return false;
        if (!out.empty()) {
            // Release: pairs with the acquire in room(), as in try_dequeue().
            ctl_->tail.store(tail + out.size(), std::memory_order_release);
        }
        return true;
    }

    // ---- any thread -----------------------------------------------------------------------

    std::size_t capacity() const noexcept { return ring_.capacity; }

    // Elements in the ring, as seen at some moment during the call (for telemetry).
    std::size_t size() const noexcept {
        // Relaxed: an estimate; nothing is read through these values. The clamp covers a
        // consumer that has already taken an element whose head update is not yet visible.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        const std::uint64_t head = ctl_->head.load(std::memory_order_relaxed);
        const auto used = static_cast<std::int64_t>(head - tail);
        if (used <= 0) return 0;
        return std::min(static_cast<std::size_t>(used), capacity());
    }

    // True if the consumer's next slot holds nothing (exact when called by the consumer).
    bool empty() const noexcept {
        // Relaxed: only the consumer writes tail; from other threads this is an estimate.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        return !ring_.ready(tail);
    }

  private:
    SpscRing() = default;

    void init(void* region, std::size_t cap) {
        auto* ctl = ::new (region) Control{};
        ctl->header = detail::RingHeader{kMagic, kLayoutVersion, sizeof(Slot), cap, sizeof(T)};
        bind(region, cap);
        ring_.construct();
    }

    void bind(void* region, std::size_t cap) {
        ctl_ = std::launder(static_cast<Control*>(region));
        ring_.bind(static_cast<std::byte*>(region) + sizeof(Control), cap);
    }

    void swap(SpscRing& o) noexcept {
        std::swap(ctl_, o.ctl_);
        std::swap(ring_, o.ring_);
        std::swap(owned_, o.owned_);
    }

    // Free slots from the producer's point of view, re-reading the consumer's position only
    // when the cached copy shows fewer than `want`.
    std::size_t room(std::uint64_t head, std::size_t want) noexcept {
        std::size_t free = ring_.capacity - static_cast<std::size_t>(head - ctl_->cached_tail);
        if (free < want) {
            // Acquire: pairs with the consumer's release store of tail in try_dequeue() /
            // dequeue_burst() / dequeue_bulk(): its reads of the slots it gave back are done.
            ctl_->cached_tail = ctl_->tail.load(std::memory_order_acquire);
            free = ring_.capacity - static_cast<std::size_t>(head - ctl_->cached_tail);
        }
        return free;
    }

    void publish(std::uint64_t head, const T* items, std::size_t n) noexcept {
        ring_.write_reverse(head, items, n);
        // Relaxed: an estimate for size(); the slots' own release stores publish the elements.
        ctl_->head.store(head + n, std::memory_order_relaxed);
    }

    Control* ctl_ = nullptr;
    detail::SlotArray<T> ring_;
    void* owned_ = nullptr;  // heap block of the owning constructor, else null
};

}  // namespace sluice::lockfree
