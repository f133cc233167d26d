// (port, queue) -> pcapng interface id for the interfaces of one file, and a
// set of the interfaces one frame names. Both are bounded by
// StreamState::kMaxInterfaces: the keys come from the wire, so the table
// never grows with what a peer sends (a frame naming more interfaces than a
// file may hold is refused before anything is indexed).
//
// Open addressing over a fixed array; clear() is O(1) (a generation bump), so
// checking a frame with thousands of records costs one probe per record.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "sluice/collector/state.hpp"

namespace sluice::collector {

class InterfaceIndex {
  public:
    static constexpr std::size_t kCapacity = StreamState::kMaxInterfaces;
    // A power of two with at least half the slots free: probes stay short.
    static constexpr std::size_t kSlots = 2048;
    static_assert((kSlots & (kSlots - 1)) == 0 && kSlots >= 2 * kCapacity);
    static constexpr uint32_t kNone = UINT32_MAX;

    void clear() {
        size_ = 0;
        if (++generation_ == 0) {  // wrapped: stale tags could match again
            slots_.fill(Slot{});
            generation_ = 1;
        }
    }
    std::size_t size() const { return size_; }
    bool full() const { return size_ == kCapacity; }

    // The id stored for `k`, or kNone.
    uint32_t find(InterfaceKey k) const {
        const uint32_t key = pack(k);
        for (std::size_t i = hash(key);; i = (i + 1) & (kSlots - 1)) {
            const Slot& s = slots_[i];
            if (s.generation != generation_) return kNone;
            if (s.key == key) return s.id;
        }
    }

    // Stores `k` (not present) with `id`; false, and nothing stored, when
    // the index holds kCapacity keys already.
    bool insert(InterfaceKey k, uint32_t id) {
        if (full()) return false;
        const uint32_t key = pack(k);
        std::size_t i = hash(key);
        while (slots_[i].generation == generation_)
            i = (i + 1) & (kSlots - 1);
        slots_[i] = Slot{key, id, generation_};
        ++size_;
        return true;
    }

  private:
    struct Slot {
        uint32_t key = 0;
        uint32_t id = 0;
        uint32_t generation = 0;  // the slot is in use when it equals generation_
    };
    static uint32_t pack(InterfaceKey k) { return uint32_t{k.port} << 16 | k.queue; }
    static std::size_t hash(uint32_t key) {
        return (uint64_t{key} * 0x9E3779B97F4A7C15ull >> 40) & (kSlots - 1);
    }

    std::array<Slot, kSlots> slots_{};
    uint32_t generation_ = 1;
    std::size_t size_ = 0;
};

}  // namespace sluice::collector
