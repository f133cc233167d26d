// The capture stage's choices about each packet of a burst, between receiving
// it and copying it into a frame: which packet is inside its tunnels
// (capture.decap), whether the filter keeps it and how much of it a slice rule
// keeps, and whether it repeats one seen shortly before (capture.dedup). Per
// packet: no allocation, no lock, no syscall, no virtual call.
#include <algorithm>
#include <cstring>

#include <rte_mbuf.h>

#include "sluice/dataplane/pipeline.hpp"
#include "sluice/tunnel/decap.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::dataplane {
namespace {

wire::TunnelMeta erspan_meta(const tunnel::Erspan& e) {
    wire::TunnelMeta m;
    m.kind = static_cast<wire::TunnelKind>(e.type);
    m.bits = static_cast<uint8_t>((e.egress ? 1u : 0u) | (e.granularity & 3u) << 1);
    m.session = e.session;
    m.timestamp = e.timestamp;
    m.index = e.type == 3 ? e.hardware_id : e.index;
    m.vlan = static_cast<uint16_t>(e.vlan | e.cos << 12);
    return m;
}

}  // namespace

void CaptureStage::peel(const CaptureQueue& q, uint16_t n) {
    const bool strip = p_.decap == config::Decap::Strip;
    // "match" with neither a filter nor a slice rule: nothing to show the
    // inner packet to; it is only counted.
    const bool show = !strip && (p_.filter || !p_.slices.empty());
    uint64_t peeled = 0, truncated = 0, malformed = 0, unknown = 0;
    uint64_t layers[tunnel::layer::kCount] = {};
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pending_[i];
        PacketState& st = state_[i];
        st.flags = 0;
        st.shift = 0;
        st.restore_head = false;
        st.has_tunnel = false;
        // The headers are read from the first segment (a NIC fills it first:
        // 2 KB and more). A chain whose headers go on past it is left as it
        // came, uncounted: it is not truncated.
        auto* data = rte_pktmbuf_mtod(m, std::byte*);
        const tunnel::Decap d = tunnel::decapsulate(data, m->data_len);
        switch (d.status) {
            case tunnel::Status::Plain:
                continue;
            case tunnel::Status::Truncated:
                truncated += m->next == nullptr;
                continue;
            case tunnel::Status::Malformed:
                ++malformed;
                continue;
            case tunnel::Status::Unknown:
                ++unknown;
                continue;
            case tunnel::Status::Peeled:
                break;
        }
        ++peeled;
        for (int l = 0; l < tunnel::layer::kCount; ++l)
            layers[l] += (d.layers >> l) & 1u;
        const uint16_t at = d.frame_offset();
        if (strip) {
            tunnel::put_inner_ethernet(data, d);
            rte_pktmbuf_adj(m, at);
            st.flags = wire::record_flag::kDecapsulated;
            if (d.erspan.type != 0) {
                st.tunnel = erspan_meta(d.erspan);
                st.has_tunnel = true;
            }
            continue;
        }
        // "match": the filter sees the inner packet until unshift().
        if (!show) continue;
        if (d.inner_ethertype != 0) {
            std::memcpy(st.head, data + at, sizeof st.head);
            st.restore_head = true;
            tunnel::put_inner_ethernet(data, d);
        }
        st.shift = at;
        m->data_off = static_cast<uint16_t>(m->data_off + at);
        m->data_len = static_cast<uint16_t>(m->data_len - at);
        m->pkt_len -= at;
    }
    if (peeled) q.counters->decapsulated.add(peeled);
    if (truncated) q.counters->tunnel_truncated.add(truncated);
    if (malformed) q.counters->tunnel_malformed.add(malformed);
    if (unknown) q.counters->tunnel_unknown.add(unknown);
    Counter* const by_layer[tunnel::layer::kCount] = {
        &q.counters->decap_vlan,    &q.counters->decap_mpls,    &q.counters->decap_gre,
        &q.counters->decap_erspan2, &q.counters->decap_erspan3, &q.counters->decap_vxlan,
        &q.counters->decap_geneve};
    for (int l = 0; l < tunnel::layer::kCount; ++l) {
        if (layers[l]) by_layer[l]->add(layers[l]);
    }
}

void CaptureStage::unshift(uint16_t n) {
    for (uint16_t i = 0; i < n; ++i) {
        PacketState& st = state_[i];
        if (st.shift == 0) continue;
        rte_mbuf* m = pending_[i];
        m->data_off = static_cast<uint16_t>(m->data_off - st.shift);
        m->data_len = static_cast<uint16_t>(m->data_len + st.shift);
        m->pkt_len += st.shift;
        if (st.restore_head) {
            std::memcpy(rte_pktmbuf_mtod(m, std::byte*) + st.shift, st.head, sizeof st.head);
        }
        st.shift = 0;
        st.restore_head = false;
    }
}

uint16_t CaptureStage::select(const CaptureQueue& q, uint16_t n) {
    if (p_.filter) {
        p_.filter->match(pending_, n, match_);
    } else {
        std::fill(match_, match_ + n, 1);
    }
    // The first slice rule that matches sets the snap length; the rest keep
    // capture.snaplen.
    if (!p_.slices.empty()) {
        uint64_t sliced = 0;
        for (uint16_t i = 0; i < n; ++i) {
            if (!match_[i]) continue;
            uint32_t snaplen = p_.snaplen;
            for (const SliceRule& r : p_.slices) {
                if (r.filter->matches(pending_[i])) {
                    snaplen = r.snaplen;
                    ++sliced;
                    break;
                }
            }
            state_[i].snaplen = snaplen;
        }
        if (sliced) q.counters->sliced.add(sliced);
    }
    if (p_.decap == config::Decap::Match) unshift(n);
    // Kept packets to the front, with their state; the others freed.
    rte_mbuf* rejected[config::kMaxBurst];
    uint16_t kept = 0, nrej = 0;
    for (uint16_t i = 0; i < n; ++i) {
        if (!match_[i]) {
            rejected[nrej++] = pending_[i];
            continue;
        }
        if (kept != i) {
            pending_[kept] = pending_[i];
            state_[kept] = state_[i];
        }
        ++kept;
    }
    if (nrej) {
        q.counters->filtered.add(nrej);
        rte_pktmbuf_free_bulk(rejected, nrej);
    }
    return kept;
}

uint16_t CaptureStage::drop_copies(const CaptureQueue& q, uint16_t n) {
    rte_mbuf* copies[config::kMaxBurst];
    uint16_t kept = 0, ncopies = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pending_[i];
        // Every byte that is written counts (up to the snap length: what is
        // cut off is not written), the SPAN-changed fields aside.
        const uint32_t len = std::min(m->pkt_len, state_[i].snaplen);
        uint64_t key;
        if (m->next == nullptr || len <= m->data_len) {
            auto* data = rte_pktmbuf_mtod(m, std::byte*);
            const MaskedFields masked =
                mask_span_fields(data, std::min<uint32_t>(len, m->data_len));
            key = dedup_->key_of(data, std::min<uint32_t>(len, m->data_len));
            restore_span_fields(data, masked);
        } else {
            // A chain: its bytes in one piece first (at most linear_.size()).
            const uint32_t whole = std::min<uint32_t>(len, static_cast<uint32_t>(linear_.size()));
            auto* data = static_cast<std::byte*>(
                const_cast<void*>(rte_pktmbuf_read(m, 0, whole, linear_.data())));
            if (data != linear_.data()) {
                std::memcpy(linear_.data(), data, whole);
                data = linear_.data();
            }
            mask_span_fields(data, whole);
            key = dedup_->key_of(data, whole);
        }
        if (dedup_->seen(key, packet_time(q, m))) {
            copies[ncopies++] = m;
            continue;
        }
        if (kept != i) {
            pending_[kept] = m;
            state_[kept] = state_[i];
        }
        ++kept;
    }
    if (ncopies) {
        q.counters->deduplicated.add(ncopies);
        rte_pktmbuf_free_bulk(copies, ncopies);
    }
    return kept;
}

}  // namespace sluice::dataplane
