#include "sluice/session/reject.hpp"

namespace sluice::session {

std::string_view to_string(RejectReason r) {
    switch (r) {
        case RejectReason::Version:
            return "version";
        case RejectReason::AuthFailed:
            return "auth-failed";
        case RejectReason::KeyRequired:
            return "key-required";
        case RejectReason::KeyUnexpected:
            return "key-unexpected";
        case RejectReason::Protocol:
            return "protocol";
        case RejectReason::Timeout:
            return "timeout";
        case RejectReason::ShuttingDown:
            return "shutting-down";
        case RejectReason::Replaced:
            return "replaced";
        case RejectReason::Storage:
            return "storage";
        case RejectReason::Busy:
            return "busy";
        case RejectReason::Limit:
            return "limit";
        case RejectReason::ResumeUnknown:
            return "resume-unknown";
    }
    return "unknown";
}

}  // namespace sluice::session
