// capture.dedup: which packets repeat one seen shortly before. Each packet is
// reduced to a keyed 64-bit hash of its bytes (simd::packet_hash, with the TTL
// or hop limit and the IPv4 header checksum zeroed: the fields a SPAN path
// changes) and its length; a table remembers the last window_packets of them
// with their time and position.
//
// Open addressing with short probes over twice as many slots as the window
// holds. Entries are never deleted: one older than the window (in packets or
// in time) is a free slot. No allocation after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sluice/simd/packet_hash.hpp"

namespace sluice::dataplane {

class DedupWindow {
  public:
    // Probes per lookup: a packet whose slots are all taken by live entries
    // evicts the oldest of them (it may then miss a copy: never a false drop).
    static constexpr std::size_t kProbes = 8;

    DedupWindow(uint32_t window_packets, uint64_t window_ns, const simd::PacketHashKey& key);

    // The packet's identity: the hash of `data` (already masked) and its length.
    uint64_t key_of(const std::byte* data, std::size_t len) const {
        return simd::packet_hash(data, len, key_) ^ (static_cast<uint64_t>(len) << 48);
    }

    // Whether `key` was seen within the window before `now_ns`; remembers it
    // (the first sighting) when it was not. Cost: one to kProbes slot loads.
    bool seen(uint64_t key, uint64_t now_ns);

    std::size_t slots() const { return slots_.size(); }

  private:
    struct Slot {
        uint64_t key = 0;
        uint64_t time_ns = 0;
        uint64_t position = 0;  // 0: never used
    };
    bool live(const Slot& s, uint64_t now_ns) const {
        return s.position != 0 && position_ - s.position <= window_packets_ &&
               (now_ns <= s.time_ns || now_ns - s.time_ns <= window_ns_);
    }

    std::vector<Slot> slots_;
    std::size_t mask_ = 0;
    uint64_t position_ = 0;  // packets looked up so far
    uint64_t window_packets_;
    uint64_t window_ns_;
    simd::PacketHashKey key_;
};

// The fields a SPAN path changes, zeroed in place for hashing and put back
// after: the IPv4 TTL and header checksum, or the IPv6 hop limit, of the
// first IP header (after up to two VLAN tags). Nothing for other packets.
struct MaskedFields {
    uint16_t offset = 0;  // where `saved` came from
    uint8_t len = 0;      // bytes saved (0: nothing masked)
    std::byte saved[4]{};
};
MaskedFields mask_span_fields(std::byte* packet, std::size_t len);
void restore_span_fields(std::byte* packet, const MaskedFields& m);

}  // namespace sluice::dataplane
