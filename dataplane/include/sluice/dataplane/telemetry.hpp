// sluice's DPDK telemetry commands, next to the counters they expose:
//   /sluice/stats  every counter block (ports, queues, stages, streams)
//   /sluice/rings  the rings between stages: capacity and frames queued
//   /sluice/pools  frame and mbuf pools: size and buffers in use
// Read them with `dpdk-telemetry.py` (add -f PREFIX for a --file-prefix).
#pragma once

#include <vector>

#include "sluice/dataplane/pipeline.hpp"
#include "sluice/dataplane/ports.hpp"

struct rte_mempool;

namespace sluice::dataplane {

// Registers the commands once (after EAL init).
void register_telemetry();

// What the commands report; null stops reporting (before teardown).
void set_telemetry_source(const Pipeline* pipeline, const std::vector<PortState>* ports,
                          std::vector<rte_mempool*> mbuf_pools);

}  // namespace sluice::dataplane
