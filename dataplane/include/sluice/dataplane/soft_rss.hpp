// Software RSS: for a port that cannot spread flows over several receive
// queues itself (no RSS offload, or fewer queues than ports.rx_queues, as
// with net_pcap, net_ring and most virtual devices), sluice polls one queue
// and deals its packets to ports.rx_queues software queues by the Toeplitz
// hash of their 5-tuple, the function a NIC's RSS computes, through a
// redirection table filled round-robin as NIC drivers fill theirs by default.
//
// The capture stage that owns queue 0 polls the NIC, hashes each packet
// (simd::ToeplitzHash), keeps queue 0's share and hands every other queue's
// share to the capture stage that owns it over an SPSC ring of mbufs (one
// per queue). No other packet takes a second ring hop. See docs/pipeline.md.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "sluice/dataplane/counters.hpp"
#include "sluice/lockfree/spsc_ring.hpp"
#include "sluice/simd/toeplitz.hpp"

struct rte_mbuf;

namespace sluice::dataplane {

// The bytes a NIC hashes for RSS, in network order: IPv4 source and
// destination addresses, then the TCP or UDP source and destination ports
// (12 bytes; 8 without ports), or the same for IPv6 (36 or 32 bytes).
// Ports only for TCP and UDP that are not fragments (a later fragment has no
// ports: all fragments of a datagram hash alike), and for IPv6 only when TCP
// or UDP follows the fixed header directly. Up to two VLAN tags are skipped.
// Returns the length written to `out` (which must hold 36 bytes), 0 for a
// frame that is neither IPv4 nor IPv6 or is too short for its addresses.
std::size_t rss_tuple(const std::byte* frame, std::size_t len, std::byte* out);

class SoftRss {
  public:
    // Redirection table entries: queue = table[hash % kTableSize].
    static constexpr std::size_t kTableSize = 128;

    // `queues` >= 1; `symmetric`: simd::kSymmetricRssKey (both directions of
    // a flow hash alike) instead of simd::kDefaultRssKey.
    SoftRss(uint16_t queues, bool symmetric);

    uint16_t queues() const { return queues_; }
    const simd::ToeplitzHash& toeplitz() const { return toeplitz_; }
    // The hash of a frame's tuple (0 when it has none).
    uint32_t hash(const std::byte* frame, std::size_t len) const {
        std::byte tuple[simd::kIpv6TupleLen];
        const std::size_t n = rss_tuple(frame, len, tuple);
        return n == 0 ? 0 : toeplitz_.hash({tuple, n});
    }
    // The queue a hash goes to.
    uint16_t queue_of_hash(uint32_t hash) const { return table_[hash % kTableSize]; }

  private:
    simd::ToeplitzHash toeplitz_;
    std::array<uint16_t, kTableSize> table_{};
    uint16_t queues_;
};

using MbufRing = lockfree::SpscRing<rte_mbuf*>;

// One port dealt in software: the hash, a ring per queue other than 0 (the
// stage polling the NIC is their only producer, the stage owning the queue
// their only consumer), the dealer's counters, and the flag it raises when
// it has dealt its last packet (draining).
struct SoftRssPort {
    SoftRssPort(uint16_t queues, bool symmetric, std::size_t ring_slots);

    SoftRss rss;
    std::vector<std::unique_ptr<MbufRing>> rings;  // rings[q - 1] feeds queue q
    RssCounters counters;
    // Release by the dealer once nothing more will be enqueued; acquire by
    // the consumers before they take an empty ring for drained.
    std::atomic<bool> dealt{false};
};

}  // namespace sluice::dataplane
