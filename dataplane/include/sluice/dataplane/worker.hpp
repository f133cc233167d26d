// Worker lcores: the poll loop each rx lcore runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "sluice/dataplane/counters.hpp"

namespace sluice::dataplane {

struct RxQueue {
    uint16_t port_id;
    uint16_t queue_id;
    uint16_t port_index;  // index into the configured ports
    QueueCounters* counters;
};

struct RxWorker {
    unsigned lcore = 0;
    std::vector<RxQueue> queues;
    uint16_t burst = 32;
    const std::atomic<bool>* stop = nullptr;
};

// Polls every queue of the worker, counts and frees what arrives, until
// *stop. Signature fits rte_eal_remote_launch.
int rx_count_and_free(void* worker);

}  // namespace sluice::dataplane
