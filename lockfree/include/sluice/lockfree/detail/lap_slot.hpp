// Internal to sluice/lockfree: include spsc_ring.hpp, mpsc_ring.hpp or mpmc_ring.hpp instead.
//
// How one ring slot stores an element together with the lap it was written in.
//
// Every ring in this library publishes an element through the slot itself rather than through a
// shared producer index: the consumer polls the slot it is about to read, and the slot says
// whether it holds this lap's element. The consumer therefore never reads a cache line that only
// the producer writes (the index line that bounces between cores once per burst in a head/tail
// ring), and the only lines that cross from producer to consumer are the ones holding elements.
//
// Positions are 64-bit counters that never wrap in practice (2^64 elements). Position p lives in
// slot p & (capacity - 1) and belongs to lap p >> log2(capacity). A slot only ever holds the
// element of the current lap or of the previous one (the producer never runs more than one lap
// ahead of the consumer), so one bit of lap parity is enough to tell them apart. Slots start out
// zeroed, which reads as "written in lap -1".
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

namespace sluice::lockfree::detail {

inline constexpr std::size_t kCacheLine = 64;
// Data written by different cores is kept this far apart: x86 cores prefetch cache lines in
// adjacent pairs, so two lines 64 bytes apart still interfere.
inline constexpr std::size_t kFalseSharingRange = 128;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "rings in shared memory need address-free 64-bit atomics");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// The lap-parity flag a slot carries once position `pos` has been written.
// Lap 0 writes 1, lap 1 writes 0, ...; a zeroed slot (flag 0) is "lap -1".
constexpr std::uint64_t lap_flag(std::uint64_t pos, unsigned lap_shift) noexcept {
    return ~(pos >> lap_shift) & 1u;
}

// Bytes of one element. Rings hold pointers (rte_mbuf*, void*) as often as handles, and then
// the size of the pointer is what is meant.
template <class T>
inline constexpr std::size_t kElementSize = sizeof(T);  // NOLINT(bugprone-sizeof-expression)

// Element and flag share one 64-bit word, stored and loaded as a single atomic: a burst of n
// pointers costs exactly n * 8 bytes of cache lines, like a plain pointer array.
// Pointers keep the flag in bit 63, which is zero in every x86-64 user-space address (the
// kernel hands out addresses below 2^47, or 2^56 with 5-level paging). Elements of at most
// 4 bytes keep it in bit 32.
template <class T>
inline constexpr bool kPackedSlot =
#if defined(__x86_64__)
    (std::is_pointer_v<T> && sizeof(T) == 8) ||
#endif
    (sizeof(T) <= 4);

template <class T, bool Packed = kPackedSlot<T>>
struct LapSlot;

template <class T>
struct LapSlot<T, true> {
    static constexpr unsigned kFlagBit = std::is_pointer_v<T> ? 63 : 32;
    static constexpr std::uint64_t kFlagMask = std::uint64_t{1} << kFlagBit;

    std::atomic<std::uint64_t> word{0};

    static std::uint64_t pack(const T& v, std::uint64_t flag) noexcept {
        std::uint64_t bits = 0;
        if constexpr (std::is_pointer_v<T>) {
            bits = reinterpret_cast<std::uintptr_t>(v);
        } else {
            std::memcpy(&bits, &v, sizeof(T));
        }
        return bits | (flag << kFlagBit);
    }
    static T unpack(std::uint64_t w) noexcept {
        w &= ~kFlagMask;
        if constexpr (std::is_pointer_v<T>) {
            return reinterpret_cast<T>(static_cast<std::uintptr_t>(w));
        } else {
            T v;
            std::memcpy(&v, &w, sizeof(T));
            return v;
        }
    }
    static bool holds(std::uint64_t w, std::uint64_t flag) noexcept {
        return ((w >> kFlagBit) & 1u) == flag;
    }

    // Release: makes the element visible together with its flag; pairs with the acquire in
    // load() on the consumer side (the word is one atomic, so there is nothing else to order,
    // but the release also orders whatever the element points to).
    void store(const T& v, std::uint64_t flag) noexcept {
        word.store(pack(v, flag), std::memory_order_release);
    }
    // Acquire: pairs with the release in store(); after it, the memory the element refers to
    // (e.g. a packet buffer the producer filled) is visible to the consumer.
    bool load(std::uint64_t flag, T& out) const noexcept {
        const std::uint64_t w = word.load(std::memory_order_acquire);
        if (!holds(w, flag)) return false;
        out = unpack(w);
        return true;
    }
    bool ready(std::uint64_t flag) const noexcept {
        // Acquire: pairs with the release in store(), as in load().
        return holds(word.load(std::memory_order_acquire), flag);
    }
};
static_assert(sizeof(LapSlot<void*>) == 8, "a packed slot is one 64-bit word");
static_assert(sizeof(LapSlot<std::uint32_t>) == 8);

// Larger elements: the flag sits next to the element, published after it.
template <class T>
struct LapSlot<T, false> {
    T value;
    std::atomic<std::uint32_t> flag_word{0};

    void store(const T& v, std::uint64_t flag) noexcept {
        value = v;
        // Release: orders the plain write of `value` above before the flag; pairs with the
        // acquire in load()/ready().
        flag_word.store(static_cast<std::uint32_t>(flag), std::memory_order_release);
    }
    bool load(std::uint64_t flag, T& out) const noexcept {
        // Acquire: pairs with the release in store(); `value` is complete once the flag is seen.
        if (flag_word.load(std::memory_order_acquire) != flag) return false;
        out = value;
        return true;
    }
    bool ready(std::uint64_t flag) const noexcept {
        // Acquire: pairs with the release in store().
        return flag_word.load(std::memory_order_acquire) == flag;
    }
};

// Rounds a requested capacity up to a power of two; throws std::invalid_argument for 0 or for
// more than 2^31 elements (defined in lockfree.cpp).
std::size_t round_capacity(std::size_t requested, const char* ring_kind);

constexpr std::size_t align_up(std::size_t n, std::size_t a) noexcept {
    return (n + a - 1) / a * a;
}

// Fixed header at the start of every ring's memory: lets attach() check that a region really
// holds a ring of the expected kind, element size and capacity before it trusts it.
struct RingHeader {
    std::uint64_t magic;
    std::uint32_t layout_version;
    std::uint32_t slot_size;
    std::uint64_t capacity;
    std::uint64_t element_size;
};

// Throws std::invalid_argument with a message naming what does not match (defined in
// lockfree.cpp).
void check_region(const void* region, std::size_t bytes, std::size_t need, std::size_t alignment,
                  const char* ring_kind);
void check_header(const RingHeader& h, std::uint64_t magic, std::uint32_t layout_version,
                  std::uint32_t slot_size, std::uint64_t element_size, std::size_t bytes,
                  std::size_t (*bytes_for)(std::size_t), const char* ring_kind);

}  // namespace sluice::lockfree::detail

namespace sluice::lockfree::detail {

// The slot array of a ring plus the arithmetic every ring shares: where position p lives, which
// flag it carries, and how a run of positions is written and read. Held by value in each ring
// handle (it only points into the shared block).
template <class T>
struct SlotArray {
    using Slot = LapSlot<T>;
    static constexpr std::size_t kSlotSize = sizeof(Slot);

    Slot* slots = nullptr;
    std::size_t capacity = 0;
    std::uint64_t mask = 0;
    unsigned lap_shift = 0;

    void bind(void* first_slot, std::size_t cap) noexcept {
        slots = std::launder(static_cast<Slot*>(first_slot));
        capacity = cap;
        mask = cap - 1;
        lap_shift = static_cast<unsigned>(std::countr_zero(cap));
    }
    void construct() noexcept {
        for (std::size_t i = 0; i < capacity; ++i)
            ::new (&slots[i]) Slot{};
    }

    void write_one(std::uint64_t pos, const T& item) noexcept {
        slots[pos & mask].store(item, lap_flag(pos, lap_shift));
    }
    bool read_one(std::uint64_t pos, T& out) const noexcept {
        return slots[pos & mask].load(lap_flag(pos, lap_shift), out);
    }
    bool ready(std::uint64_t pos) const noexcept {
        return slots[pos & mask].ready(lap_flag(pos, lap_shift));
    }

    // The interface the single-consumer rings use (see RunSlots in run_slots.hpp); with a
    // flag in every slot there is nothing for the consumer to remember between calls.
    void write(std::uint64_t pos, const T* items, std::size_t n) noexcept {
        write_reverse(pos, items, n);
    }
    std::size_t read(std::uint64_t pos, T* out, std::size_t max, std::uint64_t&) const noexcept {
        return read_run(pos, out, max);
    }
    bool read_one(std::uint64_t pos, T& out, std::uint64_t&) const noexcept {
        return read_one(pos, out);
    }
    void prefetch(std::uint64_t, std::size_t) const noexcept {}

    // Writes items[0..n) (n <= capacity) at positions pos.., the last one first: a consumer
    // polling position `pos` sees the run only when all of it is in place, and does not pull a
    // cache line back while the producer is still filling it.
    void write_reverse(std::uint64_t pos, const T* items, std::size_t n) noexcept {
        const auto first = static_cast<std::size_t>(pos & mask);
        const std::size_t run1 = n < capacity - first ? n : capacity - first;
        const std::uint64_t flag = lap_flag(pos, lap_shift);
        for (std::size_t i = n; i > run1; --i)
            slots[i - 1 - run1].store(items[i - 1], flag ^ 1);
        for (std::size_t i = run1; i > 0; --i)
            slots[first + i - 1].store(items[i - 1], flag);
    }

    // Copies the elements ready at positions pos.. into out, up to max (<= capacity), stopping
    // at the first slot not yet written; returns how many were copied.
    std::size_t read_run(std::uint64_t pos, T* out, std::size_t max) const noexcept {
        const auto first = static_cast<std::size_t>(pos & mask);
        const std::size_t run1 = max < capacity - first ? max : capacity - first;
        const std::uint64_t flag = lap_flag(pos, lap_shift);
        std::size_t k = 0;
        for (; k < run1; ++k) {
            if (!slots[first + k].load(flag, out[k])) return k;
        }
        for (; k < max; ++k) {
            if (!slots[k - run1].load(flag ^ 1, out[k])) return k;
        }
        return k;
    }
};

}  // namespace sluice::lockfree::detail
