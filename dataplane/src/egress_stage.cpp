// The egress stage: hands sealed frames to their stream's sink (TCP, RDMA,
// file, null) in order, applies the overflow policy, returns acknowledged
// frame buffers to their pool.
#include <rte_cycles.h>

#include "sluice/dataplane/pipeline.hpp"

namespace sluice::dataplane {

EgressStage::EgressStage(Params p) : p_(std::move(p)) {}

bool EgressStage::submit(const FrameHandle& h, bool draining) {
    Stream& s = p_.streams[h.stream];
    const std::span<const std::byte> frame(h.data, h.len);
    switch (s.sink->submit(frame, h.sequence, h.data)) {
        case FrameSink::Submit::Accepted:
            s.counters->frames.inc();
            s.counters->packets.add(h.packets);
            s.counters->bytes.add(h.len);
            return true;
        case FrameSink::Submit::Failed:
            s.counters->egress_errors.add(h.packets);
            s.counters->egress_errors_frames.inc();
            s.pool->put(*s.cache, h.data);
            return true;
        case FrameSink::Submit::Full:
            break;
    }
    if (draining || p_.overflow == config::Overflow::Backpressure) return false;
    s.counters->retransmit_overflow.add(h.packets);
    s.counters->retransmit_overflow_frames.inc();
    s.pool->put(*s.cache, h.data);
    return true;
}

bool EgressStage::poll() {
    const bool draining = p_.phase->load(std::memory_order_acquire) != Phase::Running;
    bool work = false;
    const uint64_t now = p_.clock->to_ns(rte_rdtsc());
    void* done[64];
    for (Stream& s : p_.streams) {
        if (!s.sink) continue;
        work |= s.sink->poll(now);
        std::size_t n;
        while ((n = s.sink->reclaim(done)) != 0) {
            for (std::size_t i = 0; i < n; ++i)
                s.pool->put(*s.cache, static_cast<std::byte*>(done[i]));
            s.counters->frames_done.add(n);
            work = true;
        }
    }
    if (held_) {
        if (!submit(*held_, draining)) return work;
        held_.reset();
        work = true;
    }
    const std::size_t n = p_.inputs.size();
    for (std::size_t k = 0; k < n; ++k) {
        const Input& in = p_.inputs[next_input_];
        if (++next_input_ == n) next_input_ = 0;
        FrameHandle h;
        if (!in.ring->try_dequeue(h)) continue;
        if (!submit(h, draining)) held_ = h;
        return true;
    }
    if (draining && !work) {
        // Buffers this lcore's caches hold go back to the shared store: a
        // capture stage on another lcore may need one for its last frame.
        for (Stream& s : p_.streams) {
            if (s.sink) s.pool->flush(*s.cache);
        }
        bool done_all = true;
        for (const Input& in : p_.inputs)
            done_all = done_all && in.producer->drained();
        for (const Input& in : p_.inputs)
            done_all = done_all && in.ring->empty();
        for (const Stream& s : p_.streams)
            done_all = done_all && (!s.sink || s.sink->all_done());
        if (done_all) drained_.store(true, std::memory_order_release);
    }
    return work;
}

}  // namespace sluice::dataplane
