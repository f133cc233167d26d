// What a listener checks of a sender's hello before its handler sees it, the
// same for every transport: key presence on both ends, which key the sender
// proved (only keys allowed to write the hello's stream are tried), and, for
// a resume, that the sender holds the session's secret. Each transport
// supplies its proofs' formulas; the decisions and the operator's texts are
// here once.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice/session/hello.hpp"
#include "sluice/session/keyring.hpp"
#include "sluice/session/receiver.hpp"

namespace sluice::session {

// Key presence, before any proof: a key on one end only is said as such,
// not reported as a wrong key.
std::optional<Refusal> check_key_presence(const Keyring& keys, bool sender_has_key);

struct HelloCheck {
    bool ok = false;
    Refusal refusal;  // when !ok
    // The key the collector's answer proves: the sender's key for a new
    // session, the session's secret for a resume.
    std::vector<std::byte> answer_key;
};

// The decisions of check_hello, without the proofs' formulas (hello_check.cpp).
namespace detail {
Refusal no_key_for_stream(uint64_t stream_id);
Refusal wrong_key(const Keyring& keys, const Hello& hello);
Refusal resume_unknown(const Hello& hello, std::string_view why);
}  // namespace detail

// Checks `hello` (as decoded: stream, session, has_key, resume) whose proof
// is `proof`; `handler` answers resume requests (null: none can resume). On success fills
// hello.secret and hello.key_name for the handler. The callables map a secret to the proof or
// session secret that secret yields for this handshake:
//   key_proof(key)       the proof a sender holding `key` makes
//   resume_proof(secret) the proof a sender resuming with `secret` makes
//   derive(key)          the secret of a session this handshake starts with `key`
template <class KeyProof, class ResumeProof, class Derive>
HelloCheck check_hello(const Keyring& keys, ReceiverHandler* handler, Hello& hello,
                       const Proof& proof, KeyProof&& key_proof, ResumeProof&& resume_proof,
                       Derive&& derive) {
    HelloCheck c;
    if (auto r = check_key_presence(keys, hello.has_key)) {
        c.refusal = std::move(*r);
        return c;
    }
    if (hello.resume) {
        const std::optional<ResumeTicket> t =
            handler ? handler->resume_ticket(hello.stream_id, hello.session_id) : std::nullopt;
        if (!t) {
            c.refusal = detail::resume_unknown(hello,
                                               "it is not this collector's session of the "
                                               "stream (its state was reset, or another "
                                               "session took the stream over)");
            return c;
        }
        if (!keys.empty()) {
            const NamedKey* k = keys.find(t->key_name.view());
            if (!k || !k->allows(hello.stream_id)) {
                c.refusal = detail::resume_unknown(
                    hello, "the key that started it is no longer allowed to write the stream");
                return c;
            }
        }
        if (!proofs_equal(proof, resume_proof(std::span<const std::byte>(t->secret)))) {
            c.refusal = detail::resume_unknown(hello, "the sender did not prove its secret");
            return c;
        }
        hello.secret = t->secret;
        hello.key_name = t->key_name;
        c.answer_key.assign(t->secret.begin(), t->secret.end());
        c.ok = true;
        return c;
    }
    std::span<const std::byte> key;
    if (keys.empty()) {
        if (!proofs_equal(proof, key_proof(key))) {
            c.refusal = detail::wrong_key(keys, hello);
            return c;
        }
    } else {
        if (!keys.any_allows(hello.stream_id)) {
            c.refusal = detail::no_key_for_stream(hello.stream_id);
            return c;
        }
        const NamedKey* k = keys.match(hello.stream_id, [&](std::span<const std::byte> secret) {
            return proofs_equal(proof, key_proof(secret));
        });
        if (!k) {
            c.refusal = detail::wrong_key(keys, hello);
            return c;
        }
        key = k->secret;
        hello.key_name.set(k->name);
    }
    hello.secret = derive(key);
    c.answer_key.assign(key.begin(), key.end());
    c.ok = true;
    return c;
}

}  // namespace sluice::session
