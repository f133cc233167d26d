// Counters: declared once with the description an operator sees.
//
// Each counter block is written by exactly one lcore and read by the control
// plane; blocks are cache-line aligned so two writers never share a line.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice::dataplane {

// One writer; readers on other threads. The writer's load+store pair is not
// an atomic read-modify-write (no lock prefix): only the owning lcore writes.
class Counter {
public:
    void add(uint64_t n) {
        // relaxed: a statistic; the control plane's relaxed load pairs with
        // nothing and may see a value a few bursts old.
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void inc() { add(1); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

struct CounterInfo {
    const char* name;
    const char* description;
};

// Per NIC queue: everything that happens to the packets of one queue. A queue
// is polled by one lcore, which owns its block.
#define SLUICE_QUEUE_COUNTERS(_)                                                               \
    _(rx_packets, "Packets received from this NIC queue.")                                     \
    _(rx_bytes, "Bytes received from this NIC queue (frame length, no FCS).")                  \
    _(filtered, "Packets dropped because they do not match capture.filter (intended).")         \
    _(captured, "Packets written into frames.")                                                \
    _(captured_bytes, "Packet bytes written into frames (after snaplen).")                     \
    _(truncated, "Packets longer than capture.snaplen, kept cut to snaplen (original length is " \
                 "recorded).")                                                                 \
    _(frame_pool_empty, "Packets dropped because no frame buffer was free: egress is slower "    \
                        "than capture. Raise mempool.frame_buffers, or use a faster codec.")     \
    _(ring_full, "Packets dropped because the ring to the codec lcore was full: the codec "      \
                 "stage is too slow. Add codec lcores, raise lcores.ring_size, or lower "        \
                 "codec.zstd_level.")

struct alignas(64) QueueCounters {
#define SLUICE_DECLARE(name, desc) Counter name;
    SLUICE_QUEUE_COUNTERS(SLUICE_DECLARE)
#undef SLUICE_DECLARE

    static constexpr std::array info{
#define SLUICE_INFO(name, desc) CounterInfo{#name, desc},
        SLUICE_QUEUE_COUNTERS(SLUICE_INFO)
#undef SLUICE_INFO
    };
    // Values in the order of `info`.
    std::array<uint64_t, info.size()> snapshot() const {
        return {
#define SLUICE_GET(name, desc) name.get(),
            SLUICE_QUEUE_COUNTERS(SLUICE_GET)
#undef SLUICE_GET
        };
    }
};

static_assert(alignof(QueueCounters) == 64, "one cache line per writer");

}  // namespace sluice::dataplane
