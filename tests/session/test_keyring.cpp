// Key files of either form: one key for every stream, or named keys each
// limited to its streams; what is refused and how it is said; and the
// hello checks every listener shares (which key, which stream, resuming
// with the session's secret).
#include <fstream>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sluice/session/hello_check.hpp"
#include "sluice/session/keyring.hpp"

namespace sluice::session {
namespace {

std::span<const std::byte> bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string error_of(std::string_view text) {
    try {
        Keyring::parse(text, "keys.txt");
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

TEST(Keyring, AFileWithoutKeyLinesIsOneKeyForEveryStream) {
    const Keyring k = Keyring::parse("0123456789abcdef0123\n", "k");
    ASSERT_EQ(k.size(), 1u);
    EXPECT_FALSE(k.named());
    EXPECT_EQ(k.keys()[0].secret.size(), 20u);
    EXPECT_TRUE(k.any_allows(0));
    EXPECT_TRUE(k.any_allows(UINT64_MAX));
    EXPECT_EQ(k.keys()[0].streams_text(), "*");
    EXPECT_TRUE(Keyring().empty());
    EXPECT_TRUE(Keyring(std::vector<std::byte>{}).empty());
    EXPECT_NE(error_of("short"), "");
}

TEST(Keyring, NamedKeysEachWriteOnlyTheirStreams) {
    const Keyring k = Keyring::parse(
        "# collectors' keys\n"
        "\n"
        "key rack1  1-16,40  aaaaaaaaaaaaaaaaaaaa\n"
        "  key\tlab *\tbbbbbbbbbbbbbbbbbbbb  \r\n"
        "key one 7,17 cccccccccccccccccccc",
        "k");
    ASSERT_TRUE(k.named());
    ASSERT_EQ(k.size(), 3u);
    const NamedKey* rack = k.find("rack1");
    ASSERT_NE(rack, nullptr);
    EXPECT_TRUE(rack->allows(1));
    EXPECT_TRUE(rack->allows(16));
    EXPECT_TRUE(rack->allows(40));
    EXPECT_FALSE(rack->allows(17));
    EXPECT_FALSE(rack->allows(0));
    EXPECT_EQ(rack->streams_text(), "1-16,40");
    EXPECT_TRUE(k.find("lab")->allows(123456789));
    EXPECT_EQ(k.find("one")->secret.size(), 20u);
    EXPECT_EQ(k.find("nope"), nullptr);
    // Which keys a hello for a stream tries, in file order.
    std::vector<std::string> tried;
    const NamedKey* m = k.match(17, [&](std::span<const std::byte> s) {
        tried.emplace_back(reinterpret_cast<const char*>(s.data()), s.size());
        return s[0] == std::byte{'c'};
    });
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->name, "one");
    EXPECT_EQ(tried.size(), 2u) << "rack1 may not write stream 17: never tried";
    EXPECT_EQ(k.match(18, [](auto) { return false; }), nullptr);
}

TEST(Keyring, EveryMistakeNamesTheLineAndTheFix) {
    const std::string ok = "aaaaaaaaaaaaaaaaaaaa";
    struct Case {
        std::string text, says;
    } cases[] = {
        {"key a 1\n", "a key line needs a name, its streams and its secret"},
        {"key a 1 " + ok + " extra\n", "more than four fields"},
        {"key a 1 " + ok + "\nnot b 1 " + ok + "\n", "line 2: 'not' is not 'key'"},
        {"key a/b 1 " + ok + "\n", "key name 'a/b'"},
        {"key " + std::string(33, 'n') + " 1 " + ok + "\n", "1 to 32"},
        {"key a 1 " + ok + "\nkey a 2 bbbbbbbbbbbbbbbbbbbb\n", "'a' is used twice"},
        {"key a 1 " + ok + "\nkey b 2 " + ok + "\n", "the same secret"},
        {"key a 1 short\n", "has 5 bytes; at least 16"},
        {"key a x " + ok + "\n", "'x' is not a stream id"},
        {"key a 5-3 " + ok + "\n", "'5-3' is not a range"},
        {"key a 1, " + ok + "\n", "ends with a comma"},
        {"key a -1 " + ok + "\n", "is not a range"},
    };
    for (const Case& c : cases) {
        const std::string e = error_of(c.text);
        EXPECT_NE(e.find(c.says), std::string::npos) << c.text << " -> " << e;
        EXPECT_NE(e.find("keys.txt"), std::string::npos) << e;
    }
    std::string many;
    for (std::size_t i = 0; i <= kMaxKeys; ++i)
        many +=
            "key k" + std::to_string(i) + " * secret-number-" + std::to_string(100000 + i) + "\n";
    EXPECT_NE(error_of(many).find("more than 1024 keys"), std::string::npos);
}

TEST(Keyring, ReadFileRefusesAFileOthersCanRead) {
    const std::string path = ::testing::TempDir() + "/sluice-keyring.txt";
    std::ofstream(path) << "key a 1 aaaaaaaaaaaaaaaaaaaa\n";
    ::chmod(path.c_str(), 0640);
    EXPECT_THROW(Keyring::read_file(path), std::runtime_error);
    ::chmod(path.c_str(), 0600);
    const Keyring k = Keyring::read_file(path);
    EXPECT_TRUE(k.named());
    EXPECT_EQ(k.size(), 1u);
    std::remove(path.c_str());
}

// The proofs of a pretend transport: HMACs over a fixed transcript.
struct Pretend {
    Proof key_proof(std::span<const std::byte> key) const {
        return hmac_sha256(key, {label("key"), bytes(transcript)});
    }
    Proof resume_proof(std::span<const std::byte> secret) const {
        return hmac_sha256(secret, {label("resume"), bytes(transcript)});
    }
    SessionSecret derive(std::span<const std::byte> key) const {
        return derive_session_secret(key, {bytes(transcript)});
    }
    HelloCheck check(const Keyring& keys, ReceiverHandler* h, Hello& hello, const Proof& p) const {
        return check_hello(
            keys, h, hello, p, [&](auto k) { return key_proof(k); },
            [&](auto s) { return resume_proof(s); }, [&](auto k) { return derive(k); });
    }
    std::string transcript = "nonces and the hello";
};

class Tickets final : public ReceiverHandler {
  public:
    std::optional<ResumeTicket> resume_ticket(uint64_t stream, uint64_t session) override {
        asked.emplace_back(stream, session);
        if (stream == 1 && session == 0x55) return ticket;
        return std::nullopt;
    }
    void on_connection(ConnectionId, ReceiverTransport&, std::string_view) override {}
    HelloAnswer on_hello(ConnectionId, const Hello&) override { return {}; }
    bool on_frame(ConnectionId, const wire::FrameView&, Refusal&) override { return false; }
    std::optional<uint64_t> on_batch_done(ConnectionId, Refusal&) override { return {}; }
    void on_closed(ConnectionId, CloseCause, std::string_view) override {}
    void on_listener_error(std::string_view) override {}
    ResumeTicket ticket;
    std::vector<std::pair<uint64_t, uint64_t>> asked;
};

TEST(HelloCheck, AKeyMayClaimOnlyItsStreams) {
    const Keyring keys =
        Keyring::parse("key a 1 aaaaaaaaaaaaaaaaaaaa\nkey b 2-3 bbbbbbbbbbbbbbbbbbbb\n", "k");
    Pretend t;
    Hello h;
    h.has_key = true;
    h.stream_id = 1;
    HelloCheck c = t.check(keys, nullptr, h, t.key_proof(keys.find("a")->secret));
    ASSERT_TRUE(c.ok) << c.refusal.text;
    EXPECT_EQ(h.key_name.view(), "a");
    EXPECT_EQ(h.secret, t.derive(keys.find("a")->secret)) << "the new session's secret";
    EXPECT_EQ(c.answer_key, keys.find("a")->secret) << "the welcome proves the sender's key";

    // Key b is valid, but not for stream 1: the claim fails as a wrong key would.
    Hello claim;
    claim.has_key = true;
    claim.stream_id = 1;
    c = t.check(keys, nullptr, claim, t.key_proof(keys.find("b")->secret));
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.refusal.cause, CloseCause::Auth);
    EXPECT_EQ(c.refusal.reason, RejectReason::AuthFailed);
    EXPECT_NE(c.refusal.text.find("none of the keys allowed to write stream 1"), std::string::npos)
        << c.refusal.text;
    // No key may write stream 9 at all.
    claim.stream_id = 9;
    c = t.check(keys, nullptr, claim, t.key_proof(keys.find("b")->secret));
    EXPECT_NE(c.refusal.text.find("no key in this collector's --key-file may write stream 9"),
              std::string::npos);
    // Key presence on one end only says so.
    claim.has_key = false;
    c = t.check(keys, nullptr, claim, t.key_proof({}));
    EXPECT_EQ(c.refusal.reason, RejectReason::KeyRequired);
    Hello keyed;
    keyed.has_key = true;
    c = t.check(Keyring(), nullptr, keyed, t.key_proof({}));
    EXPECT_EQ(c.refusal.reason, RejectReason::KeyUnexpected);
}

TEST(HelloCheck, AResumeProvesTheSessionsSecretNotItsId) {
    const Keyring keys =
        Keyring::parse("key a 1 aaaaaaaaaaaaaaaaaaaa\nkey b 2 bbbbbbbbbbbbbbbbbbbb\n", "k");
    Pretend t;
    Tickets tickets;
    tickets.ticket.secret = t.derive(keys.find("a")->secret);
    tickets.ticket.key_name.set("a");
    Hello h;
    h.has_key = true;
    h.stream_id = 1;
    h.session_id = 0x55;
    h.resume = true;
    HelloCheck c = t.check(keys, &tickets, h, t.resume_proof(tickets.ticket.secret));
    ASSERT_TRUE(c.ok) << c.refusal.text;
    EXPECT_EQ(h.secret, tickets.ticket.secret);
    EXPECT_EQ(h.key_name.view(), "a");
    EXPECT_TRUE(std::equal(c.answer_key.begin(), c.answer_key.end(), tickets.ticket.secret.begin()))
        << "the welcome proves the session's secret";

    // The session id alone, with the key proof (or any other), is not enough.
    for (const Proof& p :
         {t.key_proof(keys.find("a")->secret), t.resume_proof(keys.find("a")->secret),
          t.resume_proof(t.derive(keys.find("b")->secret))}) {
        Hello forged = h;
        c = t.check(keys, &tickets, forged, p);
        EXPECT_FALSE(c.ok);
        EXPECT_EQ(c.refusal.cause, CloseCause::ResumeUnknown);
        EXPECT_EQ(c.refusal.reason, RejectReason::ResumeUnknown);
        EXPECT_NE(c.refusal.text.find("did not prove its secret"), std::string::npos);
    }
    // A session the handler does not hold; no handler at all.
    Hello other = h;
    other.session_id = 0x56;
    c = t.check(keys, &tickets, other, t.resume_proof(tickets.ticket.secret));
    EXPECT_EQ(c.refusal.reason, RejectReason::ResumeUnknown);
    EXPECT_NE(c.refusal.text.find("the sender starts a new session"), std::string::npos);
    c = t.check(keys, nullptr, h, t.resume_proof(tickets.ticket.secret));
    EXPECT_EQ(c.refusal.reason, RejectReason::ResumeUnknown);
    // The key that started it was taken off the stream: no resume.
    const Keyring revoked = Keyring::parse("key a 5 aaaaaaaaaaaaaaaaaaaa\n", "k");
    c = t.check(revoked, &tickets, h, t.resume_proof(tickets.ticket.secret));
    EXPECT_NE(c.refusal.text.find("no longer allowed"), std::string::npos);
}

}  // namespace
}  // namespace sluice::session
