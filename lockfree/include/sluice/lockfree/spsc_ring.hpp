// SpscRing<T>: bounded single-producer single-consumer ring, the queue between two pipeline
// stages on different lcores (one ring per producer/consumer pair).
//
// What crosses between the two cores, and how often (measurements in docs/performance.md):
// - Elements: pointers and elements of up to 4 bytes travel in 8-byte slots, 8 to a cache
//   line; a burst of 32 pointers is 4 lines. Each enqueue call writes one run of slots whose
//   first slot (the header) also carries the lap parity and the run's length
//   (detail/run_slots.hpp); the rest are plain words. The consumer polls only the slot where
//   the next run must start, so it never reads a line that only the producer writes (there is
//   no producer index for it to read), and inside a run it copies without checking anything.
//   Wider elements carry a flag in every slot (detail/lap_slot.hpp).
// - The producer fills the header's cache line last, so a consumer polling it loses the line
//   to the producer once per run rather than once per store.
// - The producer keeps a private copy of the consumer's position and re-reads the real one
//   only when that copy shows too little room. In rings of 64 slots or more it reuses slots a
//   cache line (8 slots) at a time, rounding the consumer's position down to a line: it never
//   writes into the line the consumer is reading, which is what makes a full ring fall into
//   lock-step (every element bouncing a data line and the position line between the cores).
// - For the same reason the consumer stores its position only when it crosses into another
//   line of slots, or when it runs dry (a dequeue that finds less than it asked for).
// - After a dequeue that got everything it asked for, the producer is ahead: the consumer
//   starts fetching the lines of its next two bursts, so their transfer overlaps its work
//   instead of stalling its next call.
//
// Guarantees the pipeline relies on (its shutdown drains every ring):
// - An element is visible to the consumer as soon as the enqueue call that wrote it returns;
//   the producer never needs a "flush".
// - Room is visible to the producer as soon as the dequeue call that freed it returns, in
//   whole lines of 8 slots for rings of 64 or more; a ring the consumer has drained accepts a
//   full capacity again. The consumer never needs a "flush" either.
//
// Capacity is rounded up to a power of two (capacity() reports the result) and every slot is
// usable: a ring of capacity 1024 holds 1024 elements.
//
// All shared state (positions and slots) lives in one block with no pointers in it, so the
// ring also works in memory shared between processes (create_in / attach).
//
// Thread safety: one thread (or process) calls the enqueue functions, one calls the dequeue
// functions. size() and empty() may be called from any thread; they are estimates (size()
// may lag by up to 7 while the consumer streams, and is exact once it has run dry).
//
// Preconditions for pointer elements: x86-64 user-space addresses (the top byte is zero).
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
#include "sluice/lockfree/detail/run_slots.hpp"

namespace sluice::lockfree {

template <class T>
class SpscRing {
    static_assert(std::is_trivially_copyable_v<T>,
                  "SpscRing copies elements as raw bytes; pass pointers or handles");

    // Pointers and small elements: runs with one header each (detail/run_slots.hpp). Wider
    // elements: a flag in every slot (detail/lap_slot.hpp).
    using Slots =
        std::conditional_t<detail::kPackedSlot<T>, detail::RunSlots<T>, detail::SlotArray<T>>;

    struct Control {
        detail::RingHeader header;  // written once by create_in, read-only afterwards

        // Producer's cache lines. `head` is the next position to write; only the producer
        // writes it, and only size() reads it from other threads.
        alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> head;
        // Producer-private copy of `tail`; may lag behind it, which only underestimates room.
        std::uint64_t cached_tail;

        // Consumer's cache lines. `tail` is the consumer's position as published to the
        // producer: exact whenever the consumer has run dry, otherwise at most one cache line
        // of slots behind (see publish_tail()).
        alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> tail;
        // Consumer-private: the next position to read, and where the next run not yet seen
        // starts (detail/run_slots.hpp).
        std::uint64_t next;
        std::uint64_t ready_until;
    };
    static_assert(offsetof(Control, head) % detail::kFalseSharingRange == 0);
    static_assert(offsetof(Control, tail) - offsetof(Control, head) >= detail::kFalseSharingRange,
                  "producer and consumer state must not share a cache line pair");
    static_assert(sizeof(Control) % detail::kFalseSharingRange == 0,
                  "slots start on their own cache line pair");

    static constexpr std::uint64_t kMagic = 0x31435350'53434c53;  // "SLCSPSC1"
    static constexpr std::uint32_t kLayoutVersion = 3;

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
        return sizeof(Control) + detail::align_up(cap * Slots::kSlotSize, detail::kCacheLine);
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
        detail::check_header(ctl->header, kMagic, kLayoutVersion, Slots::kSlotSize,
                             detail::kElementSize<T>, bytes, &bytes_for, "SpscRing");
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
    // Cost: one load per run header, plain copies for the rest of a run, and a store to the
    // consumer's own line when it crosses a cache line of slots or runs dry. The consumer never
    // reads the producer's lines.

    bool try_dequeue(T& out) noexcept {
        const std::uint64_t pos = ctl_->next;
        if (!ring_.read_one(pos, out, ctl_->ready_until)) {
            publish_tail(pos, true);
            return false;
        }
        ctl_->next = pos + 1;
        publish_tail(pos + 1, false);
        return true;
    }

    // Dequeues up to out.size() elements in order; returns how many.
    std::size_t dequeue_burst(std::span<T> out) noexcept {
        const std::uint64_t pos = ctl_->next;
        const std::size_t want = std::min(out.size(), capacity());
        const std::size_t n = ring_.read(pos, out.data(), want, ctl_->ready_until);
        ctl_->next = pos + n;
        // A full burst means the producer is ahead: start fetching the next bursts' lines.
        if (n == want) ring_.prefetch(pos + n, 2 * want);
        publish_tail(pos + n, n < want);
        return n;
    }

    // Dequeues exactly out.size() elements or none (then the contents of `out` are
    // unspecified).
    bool dequeue_bulk(std::span<T> out) noexcept {
        if (out.size() > capacity()) return false;
        const std::uint64_t pos = ctl_->next;
        // A refused bulk consumes nothing, so the runs it looked at must be looked at again:
        // their headers are still in the slots.
        const std::uint64_t seen = ctl_->ready_until;
        if (ring_.read(pos, out.data(), out.size(), ctl_->ready_until) != out.size()) {
            ctl_->ready_until = seen;
            publish_tail(pos, true);
            return false;
        }
        ctl_->next = pos + out.size();
        publish_tail(pos + out.size(), false);
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

    // size() == 0: an estimate from any thread.
    bool empty() const noexcept { return size() == 0; }

  private:
    SpscRing() = default;

    void init(void* region, std::size_t cap) {
        auto* ctl = ::new (region) Control{};
        ctl->header = detail::RingHeader{kMagic, kLayoutVersion, Slots::kSlotSize, cap,
                                         detail::kElementSize<T>};
        bind(region, cap);
        ring_.construct();
    }

    void bind(void* region, std::size_t cap) {
        ctl_ = std::launder(static_cast<Control*>(region));
        line_mask_ = cap >= 64 ? ~std::uint64_t{7} : ~std::uint64_t{0};
        ring_.bind(static_cast<std::byte*>(region) + sizeof(Control), cap);
    }

    void swap(SpscRing& o) noexcept {
        std::swap(ctl_, o.ctl_);
        std::swap(line_mask_, o.line_mask_);
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
            ctl_->cached_tail = ctl_->tail.load(std::memory_order_acquire) & line_mask_;
            free = ring_.capacity - static_cast<std::size_t>(head - ctl_->cached_tail);
        }
        return free;
    }

    // Makes the consumer's position visible to the producer. The producer reuses slots a
    // cache line at a time (room() rounds the position down to a line), so a move within a
    // line can wait: the position is stored when it crosses into another line of slots, or
    // when the consumer has run dry (then size() is exact and a drained ring reads empty).
    void publish_tail(std::uint64_t pos, bool ran_dry) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t published = ctl_->tail.load(std::memory_order_relaxed);
        if (pos == published) return;
        if (ran_dry || ((pos ^ published) & line_mask_) != 0) {
            // Release: the slot reads before it are finished before the producer may reuse
            // the slots; pairs with the acquire in room().
            ctl_->tail.store(pos, std::memory_order_release);
        }
    }

    void publish(std::uint64_t head, const T* items, std::size_t n) noexcept {
        ring_.write(head, items, n);
        // Relaxed: an estimate for size(); the slots' own release stores publish the elements.
        ctl_->head.store(head + n, std::memory_order_relaxed);
    }

    Control* ctl_ = nullptr;
    // ~7 for rings of 64 slots or more (room handed back a cache line of 8 slots at a time),
    // all ones for smaller rings, where a line would be too large a share.
    std::uint64_t line_mask_ = ~std::uint64_t{0};
    Slots ring_;
    void* owned_ = nullptr;  // heap block of the owning constructor, else null
};

}  // namespace sluice::lockfree
