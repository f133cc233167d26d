// The codec stage: seals frames (LZ4 / Zstd / stored, CRC32C) into a second
// frame buffer, or in place when compression does not pay.
#include <rte_cycles.h>

#include "sluice/dataplane/pipeline.hpp"

namespace sluice::dataplane {

namespace {
wire::EncoderConfig raw_only(wire::EncoderConfig c) {
    c.codec = wire::Codec::None;
    return c;
}
}  // namespace

CodecStage::CodecStage(Params p)
    : p_(std::move(p)), encoder_(p_.encoder), store_raw_(raw_only(p_.encoder)) {}

void CodecStage::seal(FrameHandle& h) {
    FramePool* pool = p_.pools[h.stream];
    FramePool::Cache& cache = *p_.caches[h.stream];
    const std::span<std::byte> raw(h.data, h.len);
    std::byte* out = nullptr;
    const bool wants_compression = p_.encoder.codec != wire::Codec::None &&
                                   h.len - wire::kHeaderSize >= p_.encoder.min_compress_bytes;
    if (wants_compression) out = pool->get(cache);
    auto sealed = out ? encoder_.seal(raw, {out, pool->object_bytes()}) : store_raw_.seal(raw, {});
    if (wants_compression && !out) p_.counters->no_buffer.inc();
    // A raw frame from the builder always seals (the output buffer has the
    // codec's worst-case size); should it not, its packets are counted.
    if (!sealed) {
        p_.counters->seal_failed.add(h.packets);
        if (out) pool->put(cache, out);
        pool->put(cache, h.data);
        h.data = nullptr;
        return;
    }
    if (sealed->in_out_buffer) {
        pool->put(cache, h.data);
        h.data = out;
    } else if (out) {
        pool->put(cache, out);
    }
    p_.counters->frames.inc();
    p_.counters->packets.add(h.packets);
    p_.counters->raw_bytes.add(h.len);
    p_.counters->sealed_bytes.add(sealed->frame.size());
    if (sealed->codec != wire::Codec::None) {
        p_.counters->compressed.inc();
    } else {
        p_.counters->stored_raw.inc();
    }
    h.len = static_cast<uint32_t>(sealed->frame.size());
}

bool CodecStage::poll() {
    if (held_) {
        if (!p_.out->try_enqueue(*held_)) return false;
        held_.reset();
        return true;
    }
    const std::size_t n = p_.inputs.size();
    for (std::size_t k = 0; k < n; ++k) {
        const Input& in = p_.inputs[next_input_];
        if (++next_input_ == n) next_input_ = 0;
        FrameHandle h;
        if (!in.ring->try_dequeue(h)) continue;
        seal(h);
        if (h.data && !p_.out->try_enqueue(h)) held_ = h;
        return true;
    }
    if (p_.phase->load(std::memory_order_acquire) != Phase::Running) {
        // Buffers this lcore's caches hold go back to the shared store: a
        // capture stage on another lcore may need one for its last frame.
        for (std::size_t s = 0; s < p_.caches.size(); ++s) {
            if (p_.caches[s]) p_.pools[s]->flush(*p_.caches[s]);
        }
        // Drained once every producer is drained and nothing is left in its
        // ring: check producers first, then rings (the producer's release of
        // drained_ orders its last enqueue before our ring check).
        bool done = true;
        for (const Input& in : p_.inputs)
            done = done && in.producer->drained();
        for (const Input& in : p_.inputs)
            done = done && in.ring->empty();
        if (done) drained_.store(true, std::memory_order_release);
    }
    return false;
}

}  // namespace sluice::dataplane
