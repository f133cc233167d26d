// Internal to sluice/lockfree: include mpsc_ring.hpp or mpmc_ring.hpp instead.
//
// Position reservation for rings with several producers. Producers claim a run of positions with
// one compare-and-swap on a shared head, then fill the slots; the slots' lap flags publish the
// elements, so a producer never waits for another one to finish. A consumer meets an unfinished
// run as a slot not yet written and stops there, which keeps every producer's elements in the
// order that producer enqueued them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sluice/lockfree/detail/lap_slot.hpp"

namespace sluice::lockfree::detail {

// Producer-side state shared by all producers; sits on its own cache line pair.
struct ProducerPositions {
    // Next position to hand out.
    std::atomic<std::uint64_t> head{0};
    // A recent value of the consumers' tail. Producers refresh it from the real tail only when
    // it shows too little room, so they do not all read the consumer's line on every call. An
    // older value only underestimates the room.
    std::atomic<std::uint64_t> tail_hint{0};
};

// Claims up to `want` (<= capacity) positions; with `all`, exactly `want` or none. Returns how
// many were claimed and their first position in `first`.
inline std::size_t reserve_positions(ProducerPositions& p, const std::atomic<std::uint64_t>& tail,
                                     std::size_t capacity, std::size_t want, bool all,
                                     std::uint64_t& first) noexcept {
    // Relaxed: only a starting guess; the compare-exchange below validates it.
    std::uint64_t head = p.head.load(std::memory_order_relaxed);
    for (;;) {
        // Acquire: pairs with the release store of tail_hint below by the producer that
        // refreshed it, which had itself acquired tail: the consumer's reads of the slots up to
        // the hint happen before our writes to them.
        std::uint64_t seen_tail = p.tail_hint.load(std::memory_order_acquire);
        // The hint may be any number of laps old, so `used` may exceed capacity (or wrap, if
        // our head is the stale one); either way the real tail decides.
        std::uint64_t used = head - seen_tail;
        if (used > capacity || capacity - used < want) {
            // Acquire: pairs with the consumers' release of tail after they read their slots.
            seen_tail = tail.load(std::memory_order_acquire);
            // Release: passes the acquire above on to producers that read the hint.
            p.tail_hint.store(seen_tail, std::memory_order_release);
            used = head - seen_tail;
            if (used > capacity) {
                // tail <= the current head, so our head is stale. Relaxed: the compare-exchange
                // validates the new guess.
                head = p.head.load(std::memory_order_relaxed);
                continue;
            }
        }
        // With a current head this is the real room or less (the tail only grows); with a
        // stale head it may be more, but then the compare-exchange fails.
        const auto room = static_cast<std::size_t>(capacity - used);
        std::size_t n = want;
        if (room < want) {
            if (all || room == 0) return 0;
            n = room;
        }
        // Relaxed on success: the claim carries no data; the slot stores release the elements
        // and the acquire of tail above already ordered the consumer's reads. Relaxed on
        // failure: the loop re-validates.
        if (p.head.compare_exchange_weak(head, head + n, std::memory_order_relaxed,
                                         std::memory_order_relaxed)) {
            first = head;
            return n;
        }
    }
}

}  // namespace sluice::lockfree::detail
