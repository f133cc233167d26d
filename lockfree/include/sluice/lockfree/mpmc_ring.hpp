// MpmcRing<T>: bounded multi-producer multi-consumer ring of pointers or small handles. It is
// the shared store behind mempool's ObjectPool (the per-thread caches move objects in and out of
// it in bulk); pipeline stages use SpscRing.
//
// Producers claim positions with one compare-and-swap and publish through the slots' lap flags,
// as in MpscRing. A consumer reads the run of ready slots at the current tail and then claims it
// with a compare-and-swap on tail; if another consumer got there first the copy is discarded and
// the loop starts again. Nobody waits for a slower thread: a producer preempted between its
// claim and its writes only makes consumers see fewer elements until it resumes.
//
// Elements must fit one 64-bit word with their lap flag (pointers, or at most 4 bytes): a
// consumer reads a slot before it owns it, which is only safe when the read is one atomic load.
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

namespace sluice::lockfree {

template <class T>
class MpmcRing {
    static_assert(std::is_trivially_copyable_v<T>,
                  "MpmcRing copies elements as raw bytes; pass pointers or handles");
    static_assert(
        detail::kPackedSlot<T>,
        "MpmcRing holds pointers or elements of at most 4 bytes (see the header comment)");

    using Slot = detail::LapSlot<T>;

    struct Control {
        detail::RingHeader header;  // written once, read-only afterwards
        alignas(detail::kFalseSharingRange) detail::ProducerPositions producers;
        // Next position to claim; advanced by consumers with compare-and-swap.
        alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> tail;
    };
    static_assert(offsetof(Control, producers) % detail::kFalseSharingRange == 0);
    static_assert(offsetof(Control, tail) - offsetof(Control, producers) >=
                  detail::kFalseSharingRange);
    static_assert(sizeof(Control) % detail::kFalseSharingRange == 0);

    static constexpr std::uint64_t kMagic = 0x31434d50'4d434c53;  // "SLCMPMC1"
    static constexpr std::uint32_t kLayoutVersion = 1;

  public:
    using value_type = T;
    static constexpr std::size_t region_alignment = detail::kCacheLine;

    explicit MpmcRing(std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "MpmcRing");
        owned_ = ::operator new (bytes_for(cap), std::align_val_t{detail::kFalseSharingRange});
        init(owned_, cap);
    }

    static std::size_t bytes_for(std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "MpmcRing");
        return sizeof(Control) + detail::align_up(cap * sizeof(Slot), detail::kCacheLine);
    }

    static MpmcRing create_in(void* region, std::size_t bytes, std::size_t capacity) {
        const std::size_t cap = detail::round_capacity(capacity, "MpmcRing");
        detail::check_region(region, bytes, bytes_for(cap), region_alignment, "MpmcRing");
        MpmcRing r;
        r.init(region, cap);
        return r;
    }

    static MpmcRing attach(void* region, std::size_t bytes) {
        detail::check_region(region, bytes, sizeof(Control), region_alignment, "MpmcRing");
        auto* ctl = std::launder(static_cast<Control*>(region));
        detail::check_header(ctl->header, kMagic, kLayoutVersion, sizeof(Slot), sizeof(T), bytes,
                             &bytes_for, "MpmcRing");
        MpmcRing r;
        r.bind(region, ctl->header.capacity);
        return r;
    }

    MpmcRing(MpmcRing&& o) noexcept { swap(o); }
    MpmcRing& operator=(MpmcRing&& o) noexcept {
        MpmcRing tmp(std::move(o));
        swap(tmp);
        return *this;
    }
    MpmcRing(const MpmcRing&) = delete;
    MpmcRing& operator=(const MpmcRing&) = delete;
    ~MpmcRing() {
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
        if (n != 0) ring_.write_reverse(first, items.data(), n);
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
        ring_.write_reverse(first, items.data(), items.size());
        return true;
    }

    // ---- consumers (any number of threads) ------------------------------------------------
    // Cost: one load per slot examined and one compare-and-swap on the consumer line per call.

    bool try_dequeue(T& out) noexcept { return dequeue_burst({&out, 1}) == 1; }

    std::size_t dequeue_burst(std::span<T> out) noexcept {
        return claim(out.data(), std::min(out.size(), capacity()), false);
    }

    bool dequeue_bulk(std::span<T> out) noexcept {
        if (out.size() > capacity()) return false;
        if (out.empty()) return true;
        return claim(out.data(), out.size(), true) == out.size();
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

    bool empty() const noexcept {
        // Relaxed: an estimate.
        return !ring_.ready(ctl_->tail.load(std::memory_order_relaxed));
    }

  private:
    MpmcRing() = default;

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
    // Copies the ready run at the current tail into out and claims it; with `all`, only a run
    // of exactly `want`.
    std::size_t claim(T* out, std::size_t want, bool all) noexcept {
        // Relaxed: a starting guess; the compare-exchange validates it.
        std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
        for (;;) {
            // With a stale tail, slots may already hold later laps; then the compare-exchange
            // fails. If it succeeds, tail did not move since the load, so no producer can have
            // reused these slots (it needs tail past them first) and the copies are the
            // elements of positions tail..tail+n.
            const std::size_t n = ring_.read_run(tail, out, want);
            if (n == 0 || (all && n != want)) {
                // Relaxed: only to tell "empty" from "our tail was stale".
                const std::uint64_t now = ctl_->tail.load(std::memory_order_relaxed);
                if (now == tail) return 0;
                tail = now;
                continue;
            }
            // Release on success: our slot reads are done before a producer reuses the slots;
            // pairs with the acquire of tail in detail::reserve_positions(). Relaxed on failure:
            // the loop re-reads the slots.
            if (ctl_->tail.compare_exchange_weak(tail, tail + n, std::memory_order_release,
                                                 std::memory_order_relaxed)) {
                return n;
            }
        }
    }

    void swap(MpmcRing& o) noexcept {
        std::swap(ctl_, o.ctl_);
        std::swap(ring_, o.ring_);
        std::swap(owned_, o.owned_);
    }

    Control* ctl_ = nullptr;
    detail::SlotArray<T> ring_;
    void* owned_ = nullptr;
};

}  // namespace sluice::lockfree
