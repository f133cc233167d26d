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
#include "sluice/dataplane/soft_rss.hpp"
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

// The builder's snap length: the largest a packet may be kept to.
uint32_t largest_snaplen(const CaptureStage::Params& p) {
    uint32_t n = p.snaplen;
    for (const SliceRule& r : p.slices)
        n = std::max(n, r.snaplen);
    return n;
}

constexpr uint32_t verdict_flags(simd::Verdict ip, simd::Verdict l4) {
    return (static_cast<uint32_t>(ip) << wire::record_flag::kIpChecksumShift) |
           (static_cast<uint32_t>(l4) << wire::record_flag::kL4ChecksumShift);
}

}  // namespace

CaptureStage::CaptureStage(Params p)
    : p_(std::move(p)), builder_(wire::BuilderLimits{p_.frame_size, largest_snaplen(p_)}) {
    ts_offset_ = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
    const int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
    ts_flag_ = bit >= 0 ? (1ULL << bit) : 0;
    deal_.resize(p_.queues.size());
    for (std::size_t i = 0; i < p_.queues.size(); ++i) {
        const CaptureQueue& q = p_.queues[i];
        if (q.ring) has_ring_queues_ = true;
        if (q.rss && !q.ring) {
            const std::size_t others = q.rss->rss.queues() - 1u;
            deal_[i].out.resize(others * p_.burst);
            deal_[i].n.assign(others, 0);
        }
    }
    if (p_.verify_checksums || p_.dedup_window_packets) linear_.resize(kLinearBytes);
    if (p_.dedup_window_packets) {
        dedup_ = std::make_unique<DedupWindow>(p_.dedup_window_packets, p_.dedup_window_ns,
                                               p_.dedup_key);
    }
    for (auto& st : state_)
        st.snaplen = p_.snaplen;
}

uint64_t CaptureStage::packet_time(const CaptureQueue& q, const rte_mbuf* m) const {
    if (q.hw_clock && ts_offset_ >= 0 && (m->ol_flags & ts_flag_))
        return q.hw_clock->to_ns(*RTE_MBUF_DYNFIELD(m, ts_offset_, const rte_mbuf_timestamp_t*));
    // Packets a dealer handed over carry their receive time in the mbuf.
    if (q.ring != nullptr && p_.rx_time_offset >= 0)
        return *RTE_MBUF_DYNFIELD(m, p_.rx_time_offset, const uint64_t*);
    return pending_ts_;
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
        const PacketState& st = state_[pending_i_];
        wire::RecordMeta meta;
        meta.timestamp_ns = packet_time(q, m);
        meta.orig_len = m->pkt_len;
        meta.port = q.port_index;
        meta.queue = q.queue_id;
        meta.flags = st.flags;
        if (p_.verify_checksums) meta.flags |= pending_flags_[pending_i_];
        if (st.has_tunnel) meta.tunnel = &st.tunnel;
        const uint32_t snaplen = st.snaplen;
        const bool first = builder_.empty();
        // One segment (the common case) is a plain buffer; a chain goes
        // through a segment list (no per-packet array to construct), cut at
        // the packet's snap length.
        std::size_t n = 1;
        wire::AppendResult appended;
        if (m->next == nullptr) {
            appended = builder_.append(
                meta, std::span<const std::byte>(rte_pktmbuf_mtod(m, const std::byte*),
                                                 std::min<uint32_t>(m->data_len, snaplen)));
        } else {
            n = 0;
            uint32_t left = snaplen;
            for (rte_mbuf* s = m; s && left && n < CaptureStage::kMaxSegments; s = s->next) {
                const uint32_t take = std::min<uint32_t>(s->data_len, left);
                segs_[n++] = {rte_pktmbuf_mtod(s, const std::byte*), take};
                left -= take;
            }
            appended = builder_.append(meta, std::span<const wire::Segment>(segs_.data(), n));
        }
        if (appended == wire::AppendResult::FrameFull) {
            if (!finish_frame(draining)) return false;
            continue;  // the same packet again, into a new frame
        }
        if (first) deadline_tsc_ = rte_rdtsc() + p_.flush_timeout_tsc;
        const uint32_t kept = std::min(m->pkt_len, snaplen);
        q.counters->captured.inc();
        q.counters->captured_bytes.add(kept);
        if (m->pkt_len > snaplen ||
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

uint16_t CaptureStage::deal(Deal& d, const CaptureQueue& q, uint16_t n, uint64_t now_ns) {
    SoftRssPort& port = *q.rss;
    const SoftRss& rss = port.rss;
    uint16_t keep = 0;
    uint64_t not_ip = 0;
    std::byte tuple[simd::kIpv6TupleLen];
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pending_[i];
        const std::size_t len =
            rss_tuple(rte_pktmbuf_mtod(m, const std::byte*), m->data_len, tuple);
        not_ip += len == 0;
        const uint32_t hash = len == 0 ? 0 : rss.toeplitz().hash({tuple, len});
        const uint16_t target = rss.queue_of_hash(hash);
        if (target == 0) {
            pending_[keep++] = m;
            continue;
        }
        if (p_.rx_time_offset >= 0) *RTE_MBUF_DYNFIELD(m, p_.rx_time_offset, uint64_t*) = now_ns;
        const std::size_t t = target - 1u;
        d.out[t * p_.burst + d.n[t]++] = m;
    }
    port.counters.packets.add(n);
    if (not_ip) port.counters.not_ip.add(not_ip);
    dealing_held_ |= push_deals(d, port, p_.overflow == config::Overflow::Backpressure);
    return keep;
}

bool CaptureStage::push_deals(Deal& d, SoftRssPort& port, bool hold) {
    bool held = false;
    for (std::size_t t = 0; t < d.n.size(); ++t) {
        const uint16_t n = d.n[t];
        if (n == 0) continue;
        rte_mbuf** b = d.out.data() + t * p_.burst;
        const auto sent =
            static_cast<uint16_t>(port.rings[t]->enqueue_burst(std::span<rte_mbuf* const>(b, n)));
        if (sent) port.counters.handed_over.add(sent);
        const auto left = static_cast<uint16_t>(n - sent);
        if (left == 0) {
            d.n[t] = 0;
        } else if (hold) {
            std::copy(b + sent, b + n, b);
            d.n[t] = left;
            held = true;
        } else {
            port.counters.ring_full.add(left);
            rte_pktmbuf_free_bulk(b + sent, left);
            d.n[t] = 0;
        }
    }
    d.held = held;
    return held;
}

bool CaptureStage::receive(std::size_t qi, bool draining) {
    const CaptureQueue& q = p_.queues[qi];
    uint16_t n = 0;
    if (q.ring) {
        n = static_cast<uint16_t>(q.ring->dequeue_burst(std::span<rte_mbuf*>(pending_, p_.burst)));
        if (n == 0) return false;
    } else {
        if (q.rss && deal_[qi].held) {
            // Backpressure: this queue's last deal still waits for ring room,
            // so the NIC is not polled (it counts what it cannot hold).
            if (push_deals(deal_[qi], *q.rss, true)) {
                p_.counters->rx_paused.inc();
                return false;
            }
        }
        n = rte_eth_rx_burst(q.port_id, q.queue_id, pending_, p_.burst);
        if (n == 0) return false;
    }
    pending_ts_ = p_.clock->to_ns(rte_rdtsc());
    if (q.rss && !q.ring) {
        n = deal(deal_[qi], q, n, pending_ts_);
        if (n == 0) return true;
    }
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < n; ++i) {
        bytes += pending_[i]->pkt_len;
        // The copy into the frame reads the packet next: start fetching it.
        rte_prefetch0(rte_pktmbuf_mtod(pending_[i], const void*));
    }
    q.counters->rx_packets.add(n);
    q.counters->rx_bytes.add(bytes);
    uint16_t kept = n;
    if (p_.decap != config::Decap::None) peel(q, n);
    if (p_.filter || !p_.slices.empty()) kept = select(q, n);
    if (dedup_ && kept) kept = drop_copies(q, kept);
    if (kept == 0) return true;
    if (p_.verify_checksums) verify_checksums(q, kept);
    pending_n_ = kept;
    pending_i_ = 0;
    pending_queue_ = &q;
    process_pending(draining);
    return true;
}

bool CaptureStage::poll() {
    if (p_.live && live_state_ != LiveState::Offline) {
        // A burst boundary: no filter pointer of the last poll is held past
        // here, so a filter changed before it may be freed.
        if (live_state_ == LiveState::Idle) {
            p_.live->online(p_.live_reader);
            live_state_ = LiveState::Online;
        }
        p_.live->quiescent(p_.live_reader);
        p_.filter = p_.live->current();
    }
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
        // Packets dealt to other queues are handed over first (waiting for
        // ring room, never dropping), then the dealt ports are told that
        // nothing more comes.
        if (dealing_held_) {
            bool held = false;
            for (std::size_t i = 0; i < deal_.size(); ++i) {
                if (deal_[i].held) held |= push_deals(deal_[i], *p_.queues[i].rss, true);
            }
            dealing_held_ = held;
            // Meanwhile take what others deal to this stage: two dealers may
            // wait for each other's room.
            if (held) {
                if (has_ring_queues_) {
                    for (std::size_t k = 0; k < p_.queues.size() && !pending_n_; ++k) {
                        if (p_.queues[k].ring && receive(k, true)) break;
                    }
                }
                return true;
            }
        }
        if (!dealt_) {
            for (const CaptureQueue& q : p_.queues) {
                // release pairs with the consumers' acquire below: every
                // enqueue of this stage is visible to whoever sees the flag.
                if (q.rss && !q.ring) q.rss->dealt.store(true, std::memory_order_release);
            }
            dealt_ = true;
        }
        if (has_ring_queues_) {
            // Take what the dealers still hand over: done once each has dealt
            // its last packet (acquire, before looking at the ring) and its
            // ring is empty.
            bool done = true;
            for (std::size_t k = 0; k < p_.queues.size(); ++k) {
                const std::size_t i = (next_ring_queue_ + k) % p_.queues.size();
                const CaptureQueue& q = p_.queues[i];
                if (!q.ring) continue;
                if (q.rss->dealt.load(std::memory_order_acquire) && q.ring->empty()) continue;
                done = false;
                if (receive(i, true)) {
                    next_ring_queue_ = i + 1;
                    return true;
                }
            }
            if (!done) return work;
        }
        if (builder_.active() && !builder_.empty()) {
            if (!finish_frame(true)) return true;
        }
        // The stream ends with a frame carrying the next sequence and packet
        // index: packets dropped after the last delivered frame then show as
        // a gap the collector counts (nothing follows them otherwise). With
        // statistics it is the last statistics frame: the final counters.
        if (!end_sent_ && p_.statistics_interval_tsc) {
            if (!emit_statistics(true)) return true;  // a buffer, ring room, or more entries
            end_sent_ = true;
            if (held_) return true;  // the last frame waits for ring room
        }
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
        if (live_state_ == LiveState::Online) {
            p_.live->offline(p_.live_reader);  // a filter change no longer waits for it
            live_state_ = LiveState::Offline;
        }
        drained_.store(true, std::memory_order_release);
        return work;
    }
    const uint64_t now = rte_rdtsc();
    if (builder_.active() && !builder_.empty() && now >= deadline_tsc_) {
        p_.counters->flushed_by_timer.inc();
        work = true;
        if (!finish_frame(false)) return work;
    }
    // Statistics: the first at once (the collector learns the interfaces'
    // descriptions), then when the counters moved and the interval passed.
    if (p_.statistics_interval_tsc && now >= stats_deadline_tsc_) {
        const uint64_t fp = statistics_fingerprint();
        if (stats_next_ == 0 && stats_sent_ && fp == stats_fingerprint_) {
            stats_deadline_tsc_ = now + p_.statistics_interval_tsc;
        } else if (emit_statistics(false)) {
            stats_sent_ = true;
            stats_fingerprint_ = fp;
            stats_deadline_tsc_ = now + p_.statistics_interval_tsc;
            work = true;
        }
        // Otherwise more entries wait, or no frame buffer was free: the next
        // poll tries again, and receives meanwhile (what has no buffer is
        // counted as usual).
    }

    const std::size_t qi = next_queue_;
    if (++next_queue_ == p_.queues.size()) next_queue_ = 0;
    return receive(qi, false) || work;
}

}  // namespace sluice::dataplane
