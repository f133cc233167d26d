#include "sluice/dataplane/dedup.hpp"

#include <bit>
#include <cstring>

#include "sluice/simd/checksum.hpp"

namespace sluice::dataplane {

DedupWindow::DedupWindow(uint32_t window_packets, uint64_t window_ns,
                         const simd::PacketHashKey& key)
    : window_packets_(window_packets), window_ns_(window_ns), key_(key) {
    // At least half the slots stay free of live entries: probes stay short.
    const std::size_t n = std::bit_ceil(std::size_t{window_packets} * 2);
    slots_.resize(std::max<std::size_t>(n, 64));
    mask_ = slots_.size() - 1;
}

bool DedupWindow::seen(uint64_t key, uint64_t now_ns) {
    ++position_;
    // The low bits of the key pick the first slot (the hash is well mixed).
    std::size_t i = static_cast<std::size_t>(key) & mask_;
    Slot* free_slot = nullptr;
    Slot* oldest = &slots_[i];
    for (std::size_t p = 0; p < kProbes; ++p, i = (i + 1) & mask_) {
        Slot& s = slots_[i];
        if (!live(s, now_ns)) {
            if (!free_slot) free_slot = &s;
            continue;
        }
        if (s.key == key) return true;
        if (s.position < oldest->position) oldest = &s;
    }
    Slot& into = free_slot ? *free_slot : *oldest;
    into = Slot{key, now_ns, position_};
    return false;
}

MaskedFields mask_span_fields(std::byte* p, std::size_t len) {
    MaskedFields m;
    const uint16_t l3 = simd::l3_offset_ethernet(p, len);
    if (l3 == 0) return m;
    const unsigned version = static_cast<unsigned>(p[l3]) >> 4;
    if (version == 4 && len >= l3 + 12u) {
        // TTL (8), protocol (9, kept), header checksum (10-11).
        m.offset = static_cast<uint16_t>(l3 + 8);
        m.len = 4;
        std::memcpy(m.saved, p + m.offset, 4);
        p[l3 + 8] = p[l3 + 10] = p[l3 + 11] = std::byte{0};
    } else if (version == 6 && len >= l3 + 8u) {
        m.offset = static_cast<uint16_t>(l3 + 7);  // hop limit
        m.len = 1;
        m.saved[0] = p[m.offset];
        p[m.offset] = std::byte{0};
    }
    return m;
}

void restore_span_fields(std::byte* p, const MaskedFields& m) {
    if (m.len) std::memcpy(p + m.offset, m.saved, m.len);
}

}  // namespace sluice::dataplane
