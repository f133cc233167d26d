#include "sluice/dataplane/worker.hpp"

#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace sluice::dataplane {

int rx_count_and_free(void* arg) {
    auto& w = *static_cast<RxWorker*>(arg);
    rte_mbuf* bufs[512];
    const uint16_t burst = w.burst > 512 ? 512 : w.burst;
    // acquire pairs with the control plane's release store of `stop`: once we
    // see it, everything the control plane wrote before is visible too.
    while (!w.stop->load(std::memory_order_acquire)) {
        for (const RxQueue& q : w.queues) {
            const uint16_t n = rte_eth_rx_burst(q.port_id, q.queue_id, bufs, burst);
            if (n == 0) continue;
            uint64_t bytes = 0;
            for (uint16_t i = 0; i < n; ++i) bytes += bufs[i]->pkt_len;
            q.counters->rx_packets.add(n);
            q.counters->rx_bytes.add(bytes);
            rte_pktmbuf_free_bulk(bufs, n);
        }
    }
    return 0;
}

}  // namespace sluice::dataplane
