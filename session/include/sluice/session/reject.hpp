// Why a connection ends, in numbers both transports carry (TCP's REJECT
// message, RDMA's connect reject and Reject message) and both ends
// understand. docs/wire-protocol.md has the table; a peer keeps a reason it
// does not know (a newer release may have more) and shows its number.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::session {

enum class RejectReason : uint16_t {
    Version = 1,         // the peer speaks another transport version
    AuthFailed = 2,      // a proof did not match: different keys
    KeyRequired = 3,     // the collector has a key, the sender none
    KeyUnexpected = 4,   // the sender has a key, the collector none
    Protocol = 5,        // a malformed message or frame
    Timeout = 6,         // the handshake or the connection went silent
    ShuttingDown = 7,    // the collector is stopping
    Replaced = 8,        // a newer connection took this stream over
    Storage = 9,         // the collector cannot write: the sender retries later
    Busy = 10,           // too many connections
    Limit = 11,          // a frame exceeds one of the collector's bounds: it can never be written
    ResumeUnknown = 12,  // the collector cannot resume that session: start a new one
};
inline constexpr uint16_t kRejectReasonMax = 12;

// "version", "auth-failed", ...; "unknown" for a number past kRejectReasonMax.
std::string_view to_string(RejectReason r);

}  // namespace sluice::session
