#include "sluice/session/hello_check.hpp"

#include <fmt/format.h>

namespace sluice::session {

std::optional<Refusal> check_key_presence(const Keyring& keys, bool sender_has_key) {
    if (!keys.empty() && !sender_has_key) {
        return Refusal{CloseCause::Auth, RejectReason::KeyRequired,
                       "this collector requires a key and the sender has none: give the sender "
                       "its key (egress.key_file, or sluice-send --key-file)"};
    }
    if (keys.empty() && sender_has_key) {
        return Refusal{CloseCause::Auth, RejectReason::KeyUnexpected,
                       "the sender has a key and this collector has none: start "
                       "sluice-collector with --key-file holding the sender's key, or remove "
                       "the sender's key"};
    }
    return std::nullopt;
}

namespace detail {

Refusal no_key_for_stream(uint64_t stream_id) {
    return Refusal{CloseCause::Auth, RejectReason::AuthFailed,
                   fmt::format("no key in this collector's --key-file may write stream {}: add "
                               "the stream to the streams of the sender's key",
                               stream_id)};
}

Refusal wrong_key(const Keyring& keys, const Hello& hello) {
    if (keys.empty()) {
        return Refusal{CloseCause::Auth, RejectReason::AuthFailed,
                       "authentication failed: the hello's proof is wrong (corrupted, or not a "
                       "sluice sender)"};
    }
    if (!keys.named()) {
        return Refusal{CloseCause::Auth, RejectReason::AuthFailed,
                       "authentication failed: the sender's key differs from this collector's "
                       "(compare the sender's egress.key_file with --key-file)"};
    }
    return Refusal{CloseCause::Auth, RejectReason::AuthFailed,
                   fmt::format("authentication failed: the sender's key is none of the keys "
                               "allowed to write stream {} (a key may write only the streams "
                               "its line in --key-file lists)",
                               hello.stream_id)};
}

Refusal resume_unknown(const Hello& hello, std::string_view why) {
    return Refusal{CloseCause::ResumeUnknown, RejectReason::ResumeUnknown,
                   fmt::format("cannot resume session {:016x} of stream {}: {}; the sender starts "
                               "a new session",
                               hello.session_id, hello.stream_id, why)};
}

}  // namespace detail
}  // namespace sluice::session
