#include "sluice/session/receiver.hpp"

#include <atomic>

namespace sluice::session {

ConnectionId next_connection_id() {
    // relaxed: only uniqueness matters, not order with anything else.
    static std::atomic<ConnectionId> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
}

std::string_view to_string(CloseCause c) {
    switch (c) {
        case CloseCause::PeerClosed:
            return "peer-closed";
        case CloseCause::PeerRejected:
            return "peer-rejected";
        case CloseCause::Version:
            return "version";
        case CloseCause::Auth:
            return "auth";
        case CloseCause::Protocol:
            return "protocol";
        case CloseCause::BadFrame:
            return "bad-frame";
        case CloseCause::Timeout:
            return "timeout";
        case CloseCause::Storage:
            return "storage";
        case CloseCause::Replaced:
            return "replaced";
        case CloseCause::ShuttingDown:
            return "shutting-down";
        case CloseCause::Busy:
            return "busy";
        case CloseCause::PendingLimit:
            return "pending-limit";
        case CloseCause::SourceLimit:
            return "source-limit";
        case CloseCause::Resources:
            return "resources";
        case CloseCause::Limit:
            return "limit";
        case CloseCause::ResumeUnknown:
            return "resume-unknown";
        case CloseCause::Tls:
            return "tls";
        case CloseCause::StreamLimit:
            return "stream-limit";
        case CloseCause::Memory:
            return "memory";
    }
    return "unknown";
}

RejectReason reject_reason(CloseCause c) {
    switch (c) {
        case CloseCause::Version:
            return RejectReason::Version;
        case CloseCause::Auth:
            return RejectReason::AuthFailed;
        case CloseCause::Timeout:
            return RejectReason::Timeout;
        case CloseCause::Storage:
            return RejectReason::Storage;
        case CloseCause::Replaced:
            return RejectReason::Replaced;
        case CloseCause::ShuttingDown:
            return RejectReason::ShuttingDown;
        case CloseCause::Busy:
        case CloseCause::PendingLimit:
        case CloseCause::SourceLimit:
        case CloseCause::Resources:
        case CloseCause::StreamLimit:
        case CloseCause::Memory:
            return RejectReason::Busy;
        case CloseCause::Limit:
            return RejectReason::Limit;
        case CloseCause::ResumeUnknown:
            return RejectReason::ResumeUnknown;
        case CloseCause::PeerClosed:
        case CloseCause::PeerRejected:
        case CloseCause::Protocol:
        case CloseCause::BadFrame:
        case CloseCause::Tls:
            break;
    }
    return RejectReason::Protocol;
}

}  // namespace sluice::session
