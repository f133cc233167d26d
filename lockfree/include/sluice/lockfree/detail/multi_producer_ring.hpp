// Internal to sluice/lockfree: include mpsc_ring.hpp or mpmc_ring.hpp instead.
//
// MultiProducerRing<T, Consumer>: the one implementation behind MpscRing and MpmcRing. Everything
// but the consumer side is shared: the control block (header, producer positions, tail), the
// slot storage, the producers' claim (detail/multi_producer.hpp) and publication through the
// slots' lap flags, construction in owned or caller-supplied memory, attach, size(). The consumer
// policy brings what differs:
//
// - SingleConsumer<T> (MpscRing): one thread owns the tail and stores it plainly; packed elements
//   use run headers (detail/run_slots.hpp), so the consumer keeps `ready_until`, its record of
//   where the next run starts, in the control block.
// - MultiConsumer<T> (MpmcRing): consumers copy the ready run at the tail and claim it with a
//   compare-and-swap; every slot carries its own flag (detail/lap_slot.hpp), since a consumer
//   reads a slot before it owns it and that read must be one atomic load.
//
// A policy's magic and layout version go into the ring's header, so attach() tells the two
// kinds apart in shared memory; both are what the two rings wrote before they shared this code.
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

namespace sluice::lockfree::detail {

// One consumer thread.
template <class T>
struct SingleConsumer {
    static constexpr const char* kName = "MpscRing";
    static constexpr std::uint64_t kMagic = 0x31435350'4d434c53;  // "SLCMPSC1"
    static constexpr std::uint32_t kLayoutVersion = 2;

    // Pointers and small elements: runs with one header each (detail/run_slots.hpp). Wider
    // elements: a flag in every slot (detail/lap_slot.hpp).
    using Slots = std::conditional_t<kPackedSlot<T>, RunSlots<T>, SlotArray<T>>;

    // Consumer-only state in the control block, right after the tail.
    struct State {
        // Where the next run not yet seen starts (run_slots.hpp).
        std::uint64_t ready_until;
    };

    static bool try_dequeue(std::atomic<std::uint64_t>& tail_pos, State& st, const Slots& ring,
                            T& out) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = tail_pos.load(std::memory_order_relaxed);
        if (!ring.read_one(tail, out, st.ready_until)) return false;
        // Release: our read of the slot is done before a producer reuses it; pairs with the
        // acquire of tail in detail::reserve_positions().
        tail_pos.store(tail + 1, std::memory_order_release);
        return true;
    }

    static std::size_t dequeue_burst(std::atomic<std::uint64_t>& tail_pos, State& st,
                                     const Slots& ring, T* out, std::size_t max) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = tail_pos.load(std::memory_order_relaxed);
        const std::size_t n = ring.read(tail, out, max, st.ready_until);
        if (n != 0) {
            // Release: pairs with the acquire of tail in detail::reserve_positions().
            tail_pos.store(tail + n, std::memory_order_release);
        }
        return n;
    }

    // Exactly n (<= capacity) or nothing.
    static bool dequeue_bulk(std::atomic<std::uint64_t>& tail_pos, State& st, const Slots& ring,
                             T* out, std::size_t n) noexcept {
        // Relaxed: only this thread writes tail.
        const std::uint64_t tail = tail_pos.load(std::memory_order_relaxed);
        // A refused bulk consumes nothing, so the runs it looked at must be looked at again:
        // their headers are still in the slots.
        const std::uint64_t seen = st.ready_until;
        if (ring.read(tail, out, n, st.ready_until) != n) {
            st.ready_until = seen;
            return false;
        }
        if (n != 0) {
            // Release: pairs with the acquire of tail in detail::reserve_positions().
            tail_pos.store(tail + n, std::memory_order_release);
        }
        return true;
    }

    // empty() is size() == 0: true only once every claimed position has been consumed.
    static constexpr bool kEmptyBySlot = false;
};

// Any number of consumer threads.
template <class T>
struct MultiConsumer {
    static_assert(kPackedSlot<T>,
                  "MpmcRing holds pointers or elements of at most 4 bytes (see mpmc_ring.hpp)");

    static constexpr const char* kName = "MpmcRing";
    static constexpr std::uint64_t kMagic = 0x31434d50'4d434c53;  // "SLCMPMC1"
    static constexpr std::uint32_t kLayoutVersion = 1;

    using Slots = SlotArray<T>;

    // Nothing but the shared tail.
    struct State {};

    static bool try_dequeue(std::atomic<std::uint64_t>& tail_pos, State& st, const Slots& ring,
                            T& out) noexcept {
        return dequeue_burst(tail_pos, st, ring, &out, 1) == 1;
    }

    static std::size_t dequeue_burst(std::atomic<std::uint64_t>& tail_pos, State&,
                                     const Slots& ring, T* out, std::size_t max) noexcept {
        return claim(tail_pos, ring, out, max, false);
    }

    static bool dequeue_bulk(std::atomic<std::uint64_t>& tail_pos, State&, const Slots& ring,
                             T* out, std::size_t n) noexcept {
        if (n == 0) return true;
        return claim(tail_pos, ring, out, n, true) == n;
    }

    // empty() looks at the slot at the tail: it holds no element yet.
    static constexpr bool kEmptyBySlot = true;

  private:
    // Copies the ready run at the current tail into out and claims it; with `all`, only a run
    // of exactly `want`.
    static std::size_t claim(std::atomic<std::uint64_t>& tail_pos, const Slots& ring, T* out,
                             std::size_t want, bool all) noexcept {
        // Relaxed: a starting guess; the compare-exchange validates it.
        std::uint64_t tail = tail_pos.load(std::memory_order_relaxed);
        for (;;) {
            // With a stale tail, slots may already hold later laps; then the compare-exchange
            // fails. If it succeeds, tail did not move since the load, so no producer can have
            // reused these slots (it needs tail past them first) and the copies are the
            // elements of positions tail..tail+n.
            const std::size_t n = ring.read_run(tail, out, want);
            if (n == 0 || (all && n != want)) {
                // Relaxed: only to tell "empty" from "our tail was stale".
                const std::uint64_t now = tail_pos.load(std::memory_order_relaxed);
                if (now == tail) return 0;
                tail = now;
                continue;
            }
            // Release on success: our slot reads are done before a producer reuses the slots;
            // pairs with the acquire of tail in detail::reserve_positions(). Relaxed on failure:
            // the loop re-reads the slots.
            if (tail_pos.compare_exchange_weak(tail, tail + n, std::memory_order_release,
                                               std::memory_order_relaxed)) {
                return n;
            }
        }
    }
};

template <class T, template <class> class ConsumerPolicy>
class MultiProducerRing {
    static_assert(std::is_trivially_copyable_v<T>,
                  "the multi-producer rings copy elements as raw bytes; pass pointers or handles");

    using Consumer = ConsumerPolicy<T>;
    using Slots = typename Consumer::Slots;

    struct Control {
        RingHeader header;  // written once, read-only afterwards
        alignas(kFalseSharingRange) ProducerPositions producers;
        // Next position to read (single consumer) or to claim (consumers, by compare-and-swap).
        alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail;
        [[no_unique_address]] typename Consumer::State consumer;
    };
    static_assert(offsetof(Control, producers) % kFalseSharingRange == 0);
    static_assert(offsetof(Control, tail) - offsetof(Control, producers) >= kFalseSharingRange);
    static_assert(sizeof(Control) % kFalseSharingRange == 0);

  public:
    using value_type = T;
    static constexpr std::size_t region_alignment = kCacheLine;

    explicit MultiProducerRing(std::size_t capacity) {
        const std::size_t cap = round_capacity(capacity, Consumer::kName);
        owned_ = ::operator new (bytes_for(cap), std::align_val_t{kFalseSharingRange});
        init(owned_, cap);
    }

    static std::size_t bytes_for(std::size_t capacity) {
        const std::size_t cap = round_capacity(capacity, Consumer::kName);
        return sizeof(Control) + align_up(cap * Slots::kSlotSize, kCacheLine);
    }

    static MultiProducerRing create_in(void* region, std::size_t bytes, std::size_t capacity) {
        const std::size_t cap = round_capacity(capacity, Consumer::kName);
        check_region(region, bytes, bytes_for(cap), region_alignment, Consumer::kName);
        MultiProducerRing r;
        r.init(region, cap);
        return r;
    }

    static MultiProducerRing attach(void* region, std::size_t bytes) {
        check_region(region, bytes, sizeof(Control), region_alignment, Consumer::kName);
        auto* ctl = std::launder(static_cast<Control*>(region));
        check_header(ctl->header, Consumer::kMagic, Consumer::kLayoutVersion, Slots::kSlotSize,
                     kElementSize<T>, bytes, &bytes_for, Consumer::kName);
        MultiProducerRing r;
        r.bind(region, ctl->header.capacity);
        return r;
    }

    MultiProducerRing(MultiProducerRing&& o) noexcept { swap(o); }
    MultiProducerRing& operator=(MultiProducerRing&& o) noexcept {
        MultiProducerRing tmp(std::move(o));
        swap(tmp);
        return *this;
    }
    MultiProducerRing(const MultiProducerRing&) = delete;
    MultiProducerRing& operator=(const MultiProducerRing&) = delete;
    ~MultiProducerRing() {
        if (owned_ != nullptr) {
            ::operator delete (owned_, std::align_val_t{kFalseSharingRange});
        }
    }

    // ---- producers (any number of threads) ------------------------------------------------
    // Cost: one compare-and-swap on the shared producer line per call, plus one slot store per
    // element.

    bool try_enqueue(const T& item) noexcept { return enqueue_burst({&item, 1}) == 1; }

    std::size_t enqueue_burst(std::span<const T> items) noexcept {
        std::uint64_t first = 0;
        const std::size_t n =
            reserve_positions(ctl_->producers, ctl_->tail, ring_.capacity,
                              std::min(items.size(), ring_.capacity), false, first);
        if (n != 0) ring_.write(first, items.data(), n);
        return n;
    }

    bool enqueue_bulk(std::span<const T> items) noexcept {
        if (items.size() > ring_.capacity) return false;
        if (items.empty()) return true;
        std::uint64_t first = 0;
        if (reserve_positions(ctl_->producers, ctl_->tail, ring_.capacity, items.size(), true,
                              first) == 0) {
            return false;
        }
        ring_.write(first, items.data(), items.size());
        return true;
    }

    // ---- consumers (see the policy: one thread, or any number) -----------------------------

    bool try_dequeue(T& out) noexcept {
        return Consumer::try_dequeue(ctl_->tail, ctl_->consumer, ring_, out);
    }

    std::size_t dequeue_burst(std::span<T> out) noexcept {
        return Consumer::dequeue_burst(ctl_->tail, ctl_->consumer, ring_, out.data(),
                                       std::min(out.size(), capacity()));
    }

    bool dequeue_bulk(std::span<T> out) noexcept {
        if (out.size() > capacity()) return false;
        return Consumer::dequeue_bulk(ctl_->tail, ctl_->consumer, ring_, out.data(), out.size());
    }

    // ---- any thread -----------------------------------------------------------------------

    std::size_t capacity() const noexcept { return ring_.capacity; }

    // Claimed by producers but not yet by consumers (includes runs still being written).
    std::size_t size() const noexcept {
        // Relaxed: an estimate for telemetry; nothing is read through these values.
        const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        const std::uint64_t head = ctl_->producers.head.load(std::memory_order_relaxed);
        const auto used = static_cast<std::int64_t>(head - tail);
        if (used <= 0) return 0;
        return std::min(static_cast<std::size_t>(used), capacity());
    }

    // An estimate from any thread. Single consumer: true only once every claimed position has
    // been consumed. Multiple consumers: the slot at the tail holds no element yet.
    bool empty() const noexcept {
        if constexpr (Consumer::kEmptyBySlot) {
            // Relaxed: an estimate.
            return !ring_.ready(ctl_->tail.load(std::memory_order_relaxed));
        } else {
            return size() == 0;
        }
    }

  private:
    MultiProducerRing() = default;

    void init(void* region, std::size_t cap) {
        auto* ctl = ::new (region) Control{};
        ctl->header = RingHeader{Consumer::kMagic, Consumer::kLayoutVersion, Slots::kSlotSize, cap,
                                 kElementSize<T>};
        bind(region, cap);
        ring_.construct();
    }
    void bind(void* region, std::size_t cap) {
        ctl_ = std::launder(static_cast<Control*>(region));
        ring_.bind(static_cast<std::byte*>(region) + sizeof(Control), cap);
    }
    void swap(MultiProducerRing& o) noexcept {
        std::swap(ctl_, o.ctl_);
        std::swap(ring_, o.ring_);
        std::swap(owned_, o.owned_);
    }

    Control* ctl_ = nullptr;
    Slots ring_;
    void* owned_ = nullptr;
};

}  // namespace sluice::lockfree::detail
