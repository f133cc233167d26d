// The capture stage: polls NIC queues, filters, and copies packets into
// frames (FrameBuilder); hands full or timed-out frames on. The per-packet
// path of sluice: no allocation, no lock, no syscall.
#include <algorithm>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

#include "sluice/dataplane/pipeline.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::dataplane {
namespace {

// Frees a copied burst. The common case - direct, one-segment mbufs with a
// reference count of 1 from one pool, as a NIC hands them - goes back to its
// pool in one bulk put (what rte_pktmbuf_free_bulk ends with after checking
// each mbuf the same way); anything else takes DPDK's general path.
inline void free_burst(rte_mbuf** m, uint16_t n) {
    if (n == 0) return;
    rte_mempool* const pool = m[0]->pool;
    for (uint16_t i = 0; i < n; ++i) {
        const rte_mbuf* b = m[i];
        if (b->pool != pool || b->next != nullptr || b->nb_segs != 1 || !RTE_MBUF_DIRECT(b) ||
            rte_mbuf_refcnt_read(b) != 1) {
            rte_pktmbuf_free_bulk(m, n);
            return;
        }
    }
    rte_mempool_put_bulk(pool, reinterpret_cast<void* const*>(m), n);
}

// The longest chain verified whole (a 64 KiB LRO packet); longer ones are
// verified over this much and come out as truncated.
constexpr std::size_t kLinearBytes = 65536;

constexpr uint32_t verdict_flags(simd::Verdict ip, simd::Verdict l4) {
    return (static_cast<uint32_t>(ip) << wire::record_flag::kIpChecksumShift) |
           (static_cast<uint32_t>(l4) << wire::record_flag::kL4ChecksumShift);
}

}  // namespace

CaptureStage::CaptureStage(Params p)
    : p_(std::move(p)), builder_(wire::BuilderLimits{p_.frame_size, p_.snaplen}) {
    ts_offset_ = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
    const int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
    ts_flag_ = bit >= 0 ? (1ULL << bit) : 0;
    if (p_.verify_checksums) linear_.resize(kLinearBytes);
}

bool CaptureStage::begin_frame() {
    std::byte* b = p_.pool->get(*p_.cache);
    if (!b) return false;
    buffer_ = b;
    builder_.begin({b, p_.pool->object_bytes()}, p_.stream_id, ++sequence_, packet_index_);
    return true;
}

bool CaptureStage::emit(const FrameHandle& h, bool draining) {
    if (p_.out->try_enqueue(h)) {
        p_.counters->frames.inc();
        return true;
    }
    if (draining || p_.overflow == config::Overflow::Backpressure) {
        held_ = h;
        return false;
    }
    p_.counters->ring_full.add(h.packets);
    p_.counters->ring_full_frames.inc();
    p_.pool->put(*p_.cache, h.data);
    return true;
}

bool CaptureStage::finish_frame(bool draining) {
    const uint32_t packets = builder_.packet_count();
    const auto raw = builder_.finish();
    FrameHandle h;
    h.data = buffer_;
    h.sequence = sequence_;
    h.len = static_cast<uint32_t>(raw.size());
    h.packets = packets;
    h.stream = p_.stream;
    buffer_ = nullptr;
    return emit(h, draining);
}

// Copies the pending burst into frames. Returns false when it had to stop
// (no frame buffer, or a finished frame is held) with packets still pending.
bool CaptureStage::process_pending(bool draining) {
    const CaptureQueue& q = *pending_queue_;
    while (pending_i_ < pending_n_) {
        if (!builder_.active() && !begin_frame()) {
            if (p_.overflow == config::Overflow::Drop && !draining) {
                // Dropped packets still take their index: the collector sees
                // the gap in first_packet_index and counts them as lost too.
                q.counters->frame_pool_empty.add(pending_n_ - pending_i_);
                packet_index_ += pending_n_ - pending_i_;
                break;
            }
            p_.counters->rx_paused.inc();
            return false;
        }
        rte_mbuf* m = pending_[pending_i_];
        wire::RecordMeta meta;
        meta.timestamp_ns = pending_ts_;
        if (q.hw_clock && ts_offset_ >= 0 && (m->ol_flags & ts_flag_)) {
            meta.timestamp_ns =
                q.hw_clock->to_ns(*RTE_MBUF_DYNFIELD(m, ts_offset_, rte_mbuf_timestamp_t*));
        }
        meta.orig_len = m->pkt_len;
        meta.port = q.port_index;
        meta.queue = q.queue_id;
        if (p_.verify_checksums) meta.flags = pending_flags_[pending_i_];
        const bool first = builder_.empty();
        // One segment (the common case) is a plain buffer; a chain goes
        // through a segment list (no per-packet array to construct).
        std::size_t n = 1;
        wire::AppendResult appended;
        if (m->next == nullptr) {
            appended = builder_.append(
                meta,
                std::span<const std::byte>(rte_pktmbuf_mtod(m, const std::byte*), m->data_len));
        } else {
            n = 0;
            for (rte_mbuf* s = m; s && n < CaptureStage::kMaxSegments; s = s->next) {
                segs_[n++] = {rte_pktmbuf_mtod(s, const std::byte*), s->data_len};
            }
            appended = builder_.append(meta, std::span<const wire::Segment>(segs_.data(), n));
        }
        if (appended == wire::AppendResult::FrameFull) {
            if (!finish_frame(draining)) return false;
            continue;  // the same packet again, into a new frame
        }
        if (first) deadline_tsc_ = rte_rdtsc() + p_.flush_timeout_tsc;
        const uint32_t kept = std::min(m->pkt_len, p_.snaplen);
        q.counters->captured.inc();
        q.counters->captured_bytes.add(kept);
        if (m->pkt_len > p_.snaplen ||
            (n == CaptureStage::kMaxSegments && m->next && m->nb_segs > n)) {
            q.counters->truncated.inc();
        }
        ++packet_index_;
        ++pending_i_;
    }
    free_burst(pending_, pending_n_);
    pending_n_ = pending_i_ = 0;
    return true;
}

void CaptureStage::verify_checksums(const CaptureQueue& q, uint16_t n) {
    uint16_t nv = 0;
    for (uint16_t i = 0; i < n; ++i) {
        const rte_mbuf* m = pending_[i];
        pending_flags_[i] = 0;
        // Verdicts the NIC gave (RX checksum offload): taken as they are when
        // both say the checksums are right. Unknown ones, and failures (whose
        // protocol the NIC does not say), are checked here.
        const uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
        const uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
        if ((ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD || ip == RTE_MBUF_F_RX_IP_CKSUM_NONE) &&
            (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD || l4 == RTE_MBUF_F_RX_L4_CKSUM_NONE)) {
            pending_flags_[i] = verdict_flags(simd::Verdict::Good, simd::Verdict::Good);
            continue;
        }
        const auto* data = rte_pktmbuf_mtod(m, const std::byte*);
        uint32_t len = m->data_len;
        if (m->next != nullptr) {
            // A chain: its bytes in one piece first.
            len = std::min<uint32_t>(m->pkt_len, static_cast<uint32_t>(linear_.size()));
            const auto* whole =
                static_cast<const std::byte*>(rte_pktmbuf_read(m, 0, len, linear_.data()));
            const simd::PacketView v{whole, len, simd::l3_offset_ethernet(whole, len)};
            if (v.l3_offset == 0) continue;
            simd::ChecksumResult r;
            simd::verify_checksums({&v, 1}, {&r, 1});
            pending_flags_[i] = verdict_flags(r.ip, r.l4);
            if (r.ip == simd::Verdict::Bad) q.counters->ipv4_checksum_bad.inc();
            if (r.l4 == simd::Verdict::Bad) {
                if (r.l4_proto == 6) q.counters->tcp_checksum_bad.inc();
                if (r.l4_proto == 17) q.counters->udp_checksum_bad.inc();
            }
            continue;
        }
        const uint16_t l3 = simd::l3_offset_ethernet(data, len);
        if (l3 == 0) continue;  // not IP: nothing to verify
        views_[nv] = {data, len, l3};
        view_packet_[nv++] = i;
    }
    if (nv == 0) return;
    simd::verify_checksums({views_.data(), nv}, {results_.data(), nv});
    uint64_t ip_bad = 0, tcp_bad = 0, udp_bad = 0;
    for (uint16_t k = 0; k < nv; ++k) {
        const simd::ChecksumResult& r = results_[k];
        pending_flags_[view_packet_[k]] = verdict_flags(r.ip, r.l4);
        ip_bad += r.ip == simd::Verdict::Bad;
        const bool l4_bad = r.l4 == simd::Verdict::Bad;
        tcp_bad += l4_bad && r.l4_proto == 6;
        udp_bad += l4_bad && r.l4_proto == 17;
    }
    if (ip_bad) q.counters->ipv4_checksum_bad.add(ip_bad);
    if (tcp_bad) q.counters->tcp_checksum_bad.add(tcp_bad);
    if (udp_bad) q.counters->udp_checksum_bad.add(udp_bad);
}

bool CaptureStage::poll() {
    // acquire pairs with the control plane's release store of the phase.
    const bool draining = p_.phase->load(std::memory_order_acquire) != Phase::Running;
    bool work = false;
    if (held_) {
        if (!p_.out->try_enqueue(*held_)) {
            p_.counters->rx_paused.inc();
            return false;
        }
        p_.counters->frames.inc();
        held_.reset();
        work = true;
    }
    if (pending_n_) {
        work = true;
        if (!process_pending(draining)) return work;
    }
    if (draining) {
        if (builder_.active() && !builder_.empty()) {
            if (!finish_frame(true)) return true;
        }
        // The stream ends with an empty frame carrying the next sequence and
        // packet index: packets dropped after the last delivered frame then
        // show as a gap the collector counts (nothing follows them otherwise).
        if (!end_sent_ && packet_index_ > 0) {
            if (!builder_.active() && !begin_frame()) return work;  // wait for a buffer
            end_sent_ = true;
            if (!finish_frame(true)) return true;
        }
        if (builder_.active()) {  // never filled: give the buffer back
            builder_.finish();
            p_.pool->put(*p_.cache, buffer_);
            buffer_ = nullptr;
        }
        // release pairs with the acquire in drained(): everything this stage
        // enqueued is visible to whoever sees it drained.
        drained_.store(true, std::memory_order_release);
        return work;
    }
    if (builder_.active() && !builder_.empty() && rte_rdtsc() >= deadline_tsc_) {
        p_.counters->flushed_by_timer.inc();
        work = true;
        if (!finish_frame(false)) return work;
    }

    const CaptureQueue& q = p_.queues[next_queue_];
    if (++next_queue_ == p_.queues.size()) next_queue_ = 0;
    const uint16_t n = rte_eth_rx_burst(q.port_id, q.queue_id, pending_, p_.burst);
    if (n == 0) return work;
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < n; ++i) {
        bytes += pending_[i]->pkt_len;
        // The copy into the frame reads the packet next: start fetching it.
        rte_prefetch0(rte_pktmbuf_mtod(pending_[i], const void*));
    }
    q.counters->rx_packets.add(n);
    q.counters->rx_bytes.add(bytes);
    uint16_t kept = n;
    if (p_.filter) {
        rte_mbuf* rejected[config::kMaxBurst];
        uint16_t nrej = 0;
        kept = p_.filter->apply(pending_, n, rejected, nrej);
        if (nrej) {
            q.counters->filtered.add(nrej);
            rte_pktmbuf_free_bulk(rejected, nrej);
        }
    }
    if (kept == 0) return true;
    if (p_.verify_checksums) verify_checksums(q, kept);
    pending_n_ = kept;
    pending_i_ = 0;
    pending_queue_ = &q;
    pending_ts_ = p_.clock->to_ns(rte_rdtsc());
    process_pending(false);
    return true;
}

}  // namespace sluice::dataplane
