// What a sender says when it connects, whatever transport carries it (TCP's
// HELLO message, RDMA's connect request): which stream, which sender
// instance, and where it stands. The transport proves the key around it.
#pragma once

#include <cstdint>

#include "sluice/session/retransmit.hpp"

namespace sluice::session {

struct Hello {
    uint64_t stream_id = 0;
    // Random per sender instance: a new one restarts the stream's sequencing
    // at the collector (a restarted sluice numbers its frames afresh).
    uint64_t session_id = 0;
    // The oldest frame not yet acknowledged, else the next one; unknown
    // before the sender built its first frame.
    StreamPosition position;
    uint32_t heartbeat_ms = 0;  // 0: the sender sends none
    bool has_key = false;       // the sender proves a configured key
};

}  // namespace sluice::session
