// sluice-pcapgen's duplicates: packets a SPAN port delivers twice, and the
// queue that holds the copies until their record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bytes.hpp"

namespace sluice::pcapgen {

// A SPAN session that mirrors both the port a packet comes in on and the one
// it leaves by delivers it twice; when a router sits between the two, the
// second copy has one hop less to live.
void decrement_ttl(Bytes& frame);

// Copies waiting for their record: at most one per record index, so that each
// lands exactly where it was scheduled.
class DuplicateQueue {
  public:
    bool empty() const { return copies_.empty(); }
    size_t size() const { return copies_.size(); }
    // Schedules a copy `distance` records after record `index`, or at the
    // nearest free index within `window`; false when all are taken.
    bool schedule(uint64_t index, uint32_t distance, uint32_t window, uint32_t flow, Bytes frame);
    // The copy for record `index`, or with `any`, the earliest one.
    bool take(uint64_t index, bool any, Bytes& frame, uint32_t& flow);

  private:
    struct Copy {
        uint64_t due;
        uint32_t flow;
        Bytes frame;
    };
    std::vector<Copy> copies_;
};

}  // namespace sluice::pcapgen
