// What a sender says when it connects, whatever transport carries it (TCP's
// HELLO message, RDMA's connect request): which stream, which sender
// instance, and where it stands. The transport proves the key around it.
#pragma once

#include <cstdint>

#include "sluice/session/keyring.hpp"
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
    // The sender resumes its session: it proves the session's secret, which
    // only the two ends of that session know, not just the key (a session id
    // travels in clear; docs/wire-protocol.md, "Resuming and sessions").
    bool resume = false;
    // Sender: the secret it proves when `resume`. Collector, after the
    // listener's checks: the session's secret, proven (resume) or
    // established by this handshake (otherwise), for the handler to keep.
    SessionSecret secret{};
    // Collector: the name of the key the sender proved (empty without keys).
    KeyName key_name;
    // The position is the truth, not a hint: the collector adopts it whatever
    // it remembers of the stream. Only a collector group's JetStream source
    // sets it, from the lease that says where the stream's previous owner
    // stopped (docs/scale-out.md); a sender never does.
    bool authoritative = false;
};

// What a collector remembers of a session so that its sender can resume it.
struct ResumeTicket {
    SessionSecret secret{};
    KeyName key_name;  // the key that started it: still allowed, or no resume
};

}  // namespace sluice::session
