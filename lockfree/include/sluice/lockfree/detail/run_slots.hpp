// Internal to sluice/lockfree: include spsc_ring.hpp or mpsc_ring.hpp instead.
//
// Slot storage for rings with one consumer and elements that fit a 64-bit word with room to
// spare (pointers, elements of at most 4 bytes).
//
// Every enqueue writes a run of consecutive positions. Only the first slot of a run, its header,
// is published atomically: it carries the element, the lap parity of its position (bit 63) and
// the run's length (bits 56-62, 1..127). The other slots of the run are plain words, written
// before the header's release store and read after the consumer's acquire load of it. The
// consumer keeps, in its own state, the end of the last run it has seen (`ready_until`): inside
// a run it copies words without looking at them, and it only polls the slot where the next run
// must start. So a burst of 32 pointers is one atomic store, a memcpy of 31 words and 4 cache
// lines, and the consumer never reads a line that only the producer writes.
//
// A slot's content is always from the current lap or the previous one. A stale header has the
// other lap parity; a stale plain word has length 0 (bits 56-62 are zero in every x86-64
// user-space pointer and in every element of at most 4 bytes). Either way the consumer sees
// "not yet written".
//
// Plain words are accessed through the array, headers through std::atomic_ref: a position is
// read as a header only by the single consumer, and only where a run must start, so no plain
// access ever overlaps an atomic one (ThreadSanitizer checks this in the stress tests).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

#include "sluice/lockfree/detail/lap_slot.hpp"

namespace sluice::lockfree::detail {

template <class T>
struct RunSlots {
    static_assert(kPackedSlot<T>, "RunSlots holds pointers or elements of at most 4 bytes");
    static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

    static constexpr unsigned kLengthShift = 56;
    static constexpr std::uint64_t kMaxRun = 127;
    static constexpr std::uint64_t kValueMask = (std::uint64_t{1} << kLengthShift) - 1;
    static constexpr std::size_t kWordsPerLine = kCacheLine / sizeof(std::uint64_t);
    // Bytes of one slot (for bytes_for and the region header).
    static constexpr std::size_t kSlotSize = sizeof(std::uint64_t);

    std::uint64_t* words = nullptr;
    std::size_t capacity = 0;
    std::uint64_t mask = 0;
    unsigned lap_shift = 0;

    void bind(void* first_slot, std::size_t cap) noexcept {
        words = std::launder(static_cast<std::uint64_t*>(first_slot));
        capacity = cap;
        mask = cap - 1;
        lap_shift = static_cast<unsigned>(std::countr_zero(cap));
    }
    void construct() noexcept { std::memset(words, 0, capacity * sizeof(std::uint64_t)); }

    static std::uint64_t to_word(const T& v) noexcept {
        if constexpr (std::is_pointer_v<T>) {
            return reinterpret_cast<std::uintptr_t>(v);
        } else {
            std::uint64_t w = 0;
            std::memcpy(&w, &v, sizeof(T));
            return w;
        }
    }
    static T from_word(std::uint64_t w) noexcept {
        w &= kValueMask;
        if constexpr (std::is_pointer_v<T>) {
            return reinterpret_cast<T>(static_cast<std::uintptr_t>(w));
        } else {
            T v;
            std::memcpy(&v, &w, sizeof(T));
            return v;
        }
    }

    // ---- producer ------------------------------------------------------------------------

    // Writes items[0..n) at positions pos.. as runs of at most kMaxRun.
    void write(std::uint64_t pos, const T* items, std::size_t n) noexcept {
        while (n != 0) {
            const std::size_t r = n < kMaxRun ? n : kMaxRun;
            write_run(pos, items, r);
            pos += r;
            items += r;
            n -= r;
        }
    }

    void write_one(std::uint64_t pos, const T& item) noexcept {
        const std::uint64_t header = (to_word(item) & kValueMask) |
                                     (std::uint64_t{1} << kLengthShift) |
                                     (lap_flag(pos, lap_shift) << 63);
        // Release: pairs with the acquire in read()/read_one(), as in write_run().
        std::atomic_ref<std::uint64_t>(words[pos & mask]).store(header, std::memory_order_release);
    }

    void write_run(std::uint64_t pos, const T* items, std::size_t r) noexcept {
        if (r > 1) {
            // The consumer may be polling the header's cache line; fill that line last, right
            // before the header, so it is taken from the consumer once rather than once per
            // store. (With fewer than a line's worth of slots the whole ring is one line.)
            const std::uint64_t line_end = pos + kWordsPerLine - (pos & (kWordsPerLine - 1));
            const std::uint64_t split = std::min<std::uint64_t>(pos + r, line_end);
            store_plain(split, items + (split - pos), static_cast<std::size_t>(pos + r - split));
            store_plain(pos + 1, items + 1, static_cast<std::size_t>(split - pos - 1));
        }
        const std::uint64_t header = (to_word(items[0]) & kValueMask) |
                                     (static_cast<std::uint64_t>(r) << kLengthShift) |
                                     (lap_flag(pos, lap_shift) << 63);
        // Release: publishes this run's plain words written above; pairs with the acquire in
        // read().
        std::atomic_ref<std::uint64_t>(words[pos & mask]).store(header, std::memory_order_release);
    }

    // ---- consumer ------------------------------------------------------------------------

    // Copies up to max (<= capacity) ready elements from position pos on; `ready_until` is the
    // consumer's record of where the next unseen run starts (pos <= ready_until).
    std::size_t read(std::uint64_t pos, T* out, std::size_t max,
                     std::uint64_t& ready_until) const noexcept {
        std::size_t k = 0;
        while (k < max) {
            const std::uint64_t p = pos + k;
            if (p == ready_until) {
                // Acquire: pairs with the release store of the header in write_run(); the run's
                // plain words are visible after it.
                const std::uint64_t w =
                    std::atomic_ref<std::uint64_t>(words[p & mask]).load(std::memory_order_acquire);
                const std::uint64_t len = (w >> kLengthShift) & kMaxRun;
                if ((w >> 63) != lap_flag(p, lap_shift) || len == 0) break;
                ready_until = p + len;
                out[k++] = from_word(w);
                continue;
            }
            const auto m =
                static_cast<std::size_t>(std::min<std::uint64_t>(ready_until - p, max - k));
            load_plain(p, out + k, m);
            k += m;
        }
        return k;
    }

    // Starts fetching the lines of positions [pos, pos + n) (n > 0). Called by a consumer that
    // just received everything it asked for, i.e. while the producer is ahead: those lines are
    // then written already, and their transfer overlaps the consumer's work on this burst
    // instead of stalling its next call. Not for single elements: there the next line may
    // still be in the producer's hands.
    void prefetch(std::uint64_t pos, std::size_t n) const noexcept {
        if (n < 2 * kWordsPerLine) return;
        const std::uint64_t first = pos & ~std::uint64_t{kWordsPerLine - 1};
        for (std::uint64_t p = first; p < pos + n; p += kWordsPerLine) {
            __builtin_prefetch(&words[p & mask]);
        }
    }

    bool read_one(std::uint64_t pos, T& out, std::uint64_t& ready_until) const noexcept {
        if (pos != ready_until) {  // inside a run already seen
            out = RunSlots::from_plain(words[pos & mask]);
            return true;
        }
        // Acquire: pairs with the release store of the header in write_run()/write_one().
        const std::uint64_t w =
            std::atomic_ref<std::uint64_t>(words[pos & mask]).load(std::memory_order_acquire);
        const std::uint64_t len = (w >> kLengthShift) & kMaxRun;
        if ((w >> 63) != lap_flag(pos, lap_shift) || len == 0) return false;
        ready_until = pos + len;
        out = from_word(w);
        return true;
    }

  private:
    void store_plain(std::uint64_t pos, const T* items, std::size_t n) noexcept {
        const auto first = static_cast<std::size_t>(pos & mask);
        const std::size_t a = std::min(n, capacity - first);
        copy_in(words + first, items, a);
        copy_in(words, items + a, n - a);
    }
    void load_plain(std::uint64_t pos, T* out, std::size_t n) const noexcept {
        const auto first = static_cast<std::size_t>(pos & mask);
        const std::size_t a = std::min(n, capacity - first);
        copy_out(out, words + first, a);
        copy_out(out + a, words, n - a);
    }
    // Plain words hold the element exactly (no flag or length bits).
    static T from_plain(std::uint64_t w) noexcept {
        if constexpr (std::is_pointer_v<T>) {
            return reinterpret_cast<T>(static_cast<std::uintptr_t>(w));
        } else {
            T v;
            std::memcpy(&v, &w, sizeof(T));
            return v;
        }
    }
    // Short copies inline (an out-of-line memcpy call costs more than a few words); longer ones
    // through memcpy, which uses the widest vectors the CPU has.
    static constexpr std::size_t kMemcpyFrom = 16;
    static void copy_in(std::uint64_t* dst, const T* src, std::size_t n) noexcept {
        if (kElementSize<T> == sizeof(std::uint64_t) && n >= kMemcpyFrom) {
            std::memcpy(dst, src, n * kElementSize<T>);
            return;
        }
        for (std::size_t i = 0; i < n; ++i)
            dst[i] = to_word(src[i]);
    }
    static void copy_out(T* dst, const std::uint64_t* src, std::size_t n) noexcept {
        if (kElementSize<T> == sizeof(std::uint64_t) && n >= kMemcpyFrom) {
            std::memcpy(dst, src, n * kElementSize<T>);
            return;
        }
        for (std::size_t i = 0; i < n; ++i)
            dst[i] = from_plain(src[i]);
    }
};

}  // namespace sluice::lockfree::detail
