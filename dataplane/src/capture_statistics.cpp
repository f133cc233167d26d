// The capture stage's statistics frames (wire flag::kStatistics): the
// counters of each of its interfaces (NIC queues), so that the collector can
// write them into the capture files as pcapng Interface Statistics Blocks.
// Sent when the counters moved and the interval passed, and once more as the
// stream's last frame.
#include <rte_cycles.h>

#include "sluice/dataplane/pipeline.hpp"

namespace sluice::dataplane {

uint64_t CaptureStage::statistics_fingerprint() const {
    uint64_t fp = p_.counters->ring_full.get();
    if (p_.egress) fp += p_.egress->retransmit_overflow.get() + p_.egress->egress_errors.get();
    for (const CaptureQueue& q : p_.queues) {
        // relaxed: a statistic read for a report (pairs with nothing).
        if (q.nic_dropped) fp += q.nic_dropped->load(std::memory_order_relaxed);
        if (q.rss && !q.ring) fp += q.rss->counters.ring_full.get();
        fp += q.counters->rx_packets.get() + q.counters->frame_pool_empty.get();
    }
    return fp;
}

bool CaptureStage::emit_statistics(bool draining) {
    // A frame holds packets or statistics: finish the packets' first.
    if (builder_.active() && !builder_.empty() && !finish_frame(draining)) return false;
    if (!builder_.active() && !begin_frame()) return false;
    const uint64_t now_ns = p_.clock->to_ns(rte_rdtsc());
    for (; stats_next_ < p_.queues.size(); ++stats_next_) {
        const CaptureQueue& q = p_.queues[stats_next_];
        const QueueCounters& c = *q.counters;
        wire::InterfaceStatistics e;
        e.port = q.port_index;
        e.queue = q.queue_id;
        e.start_ns = p_.start_ns;
        e.time_ns = now_ns;
        e.received = c.rx_packets.get();
        // relaxed: published by the control plane as a statistic.
        e.nic_dropped = q.nic_dropped ? q.nic_dropped->load(std::memory_order_relaxed) : 0;
        e.accepted = e.received - c.filtered.get();
        e.dropped = c.frame_pool_empty.get();
        // Drops of whole frames (packets of any of the stage's queues) count
        // with its first queue, drops of a dealer with the port's queue 0:
        // the entries add up to the stream's losses.
        if (stats_next_ == 0) {
            e.dropped += p_.counters->ring_full.get();
            if (p_.egress)
                e.dropped += p_.egress->retransmit_overflow.get() + p_.egress->egress_errors.get();
        }
        if (q.rss && !q.ring) e.dropped += q.rss->counters.ring_full.get();
        e.delivered = c.captured.get();
        e.description = q.description;
        if (builder_.append_statistics(e) == wire::AppendResult::FrameFull) break;
    }
    const bool all = stats_next_ == p_.queues.size();
    if (all) stats_next_ = 0;
    if (all && draining) builder_.add_flags(wire::flag::kEndOfStream);
    // A frame held for ring room goes out from poll(); the statistics are in it.
    finish_frame(draining);
    return all;
}

}  // namespace sluice::dataplane
