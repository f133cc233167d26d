#include "duplicates.hpp"

#include <algorithm>
#include <utility>

#include "checksum.hpp"

namespace sluice::pcapgen {

void decrement_ttl(Bytes& frame) {
    uint8_t* ip = &frame[14];
    if (frame[12] == 0x86) {
        if (ip[7] > 1) --ip[7];
        return;
    }
    if (ip[8] > 1) --ip[8];
    put16(ip + 10, 0);
    put16(ip + 10, fold(sum16(ip, (ip[0] & 15) * 4u)));
}

bool DuplicateQueue::schedule(uint64_t index, uint32_t distance, uint32_t window, uint32_t flow,
                              Bytes frame) {
    for (uint32_t k = 0; k < window; ++k) {
        const uint64_t due = index + 1 + (distance - 1 + k) % window;
        if (std::none_of(copies_.begin(), copies_.end(),
                         [&](const Copy& c) { return c.due == due; })) {
            copies_.push_back({due, flow, std::move(frame)});
            return true;
        }
    }
    return false;
}

bool DuplicateQueue::take(uint64_t index, bool any, Bytes& frame, uint32_t& flow) {
    auto it = std::min_element(copies_.begin(), copies_.end(),
                               [](const Copy& a, const Copy& b) { return a.due < b.due; });
    if (it == copies_.end() || (!any && it->due > index)) return false;
    frame = std::move(it->frame);
    flow = it->flow;
    copies_.erase(it);
    return true;
}

}  // namespace sluice::pcapgen
