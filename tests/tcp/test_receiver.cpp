// ReceiverSession driven from bytes: the handshake's verdicts, frames and
// heartbeats, and each way a peer can break the protocol.
#include "tcp_testing.hpp"
#include <gtest/gtest.h>

#include "sluice/simd/crc32c.hpp"

namespace sluice::tcp {
namespace {

using session::proofs_equal;
using testing::make_frame;
using wire::store_le;

struct Harness {
    explicit Harness(std::vector<std::byte> collector_key = {})
        : s(std::make_shared<const session::Keyring>(std::move(collector_key))), scratch(1 << 20) {
        nonce[0] = std::byte{42};
        s.challenge(nonce);
    }
    // The HELLO a sender with `key` sends for `stream`.
    std::vector<std::byte> hello(std::span<const std::byte> key, uint64_t stream = 7,
                                 uint8_t version = kTransportVersion, bool position = false) {
        Hello h;
        h.flags =
            (key.empty() ? 0 : hello_flag::kHasKey) | (position ? hello_flag::kHasPosition : 0);
        h.stream_id = stream;
        h.session_id = 5;
        h.next_sequence = 3;
        h.heartbeat_ms = 250;
        h.proof = hello_proof(key, nonce, hello_signed_bytes(h));
        sent = h;
        std::array<std::byte, kMaxMessageSize> b;
        return {b.begin(), b.begin() + encode(h, b, version)};
    }
    ReceiverStep next(std::span<const std::byte> in) { return s.next(in, reader, scratch); }

    ReceiverSession s;
    wire::FrameReader reader;
    std::vector<std::byte> scratch;
    Nonce nonce{};
    Hello sent;
};

std::vector<std::byte> cat(std::initializer_list<std::span<const std::byte>> parts) {
    std::vector<std::byte> v;
    for (auto p : parts)
        v.insert(v.end(), p.begin(), p.end());
    return v;
}

TEST(ReceiverSession, ChallengeAnnouncesTheKey) {
    Harness plain, keyed(testing::key("0123456789abcdef0123"));
    Nonce n{};
    n[3] = std::byte{3};
    auto c = keyed.s.challenge(n);
    auto m = parse_message(c);
    Challenge ch;
    ASSERT_TRUE(decode(m.body, ch));
    EXPECT_EQ(ch.flags, challenge_flag::kKeyRequired);
    EXPECT_EQ(ch.nonce, n);
    m = parse_message(plain.s.challenge(n));
    ASSERT_TRUE(decode(m.body, ch));
    EXPECT_EQ(ch.flags, 0u);
}

TEST(ReceiverSession, HandshakeThenFramesAndHeartbeatsByteByByte) {
    const auto k = testing::key("0123456789abcdef0123");
    Harness h(k);
    const auto hello = h.hello(k, 7, kTransportVersion, true);
    const auto f0 = make_frame(7, 3, 4);
    const auto f1 = make_frame(7, 4, 2);
    std::array<std::byte, kMaxMessageSize> hb;
    const std::size_t hbn = encode(Heartbeat{1}, hb);
    // Fed one byte more at a time, as TCP may deliver it.
    const auto all = cat({hello, f0, std::span<const std::byte>(hb.data(), hbn), f1});
    std::size_t have = 0, off = 0;
    std::vector<StepKind> kinds;
    while (off < all.size()) {
        ++have;
        for (;;) {
            auto step = h.next({all.data() + off, have - off});
            if (step.kind == StepKind::NeedMore) {
                EXPECT_EQ(step.consumed, 0u);
                break;
            }
            kinds.push_back(step.kind);
            off += step.consumed;
            if (step.kind == StepKind::Hello) {
                EXPECT_EQ(step.hello.stream_id, 7u);
                EXPECT_EQ(step.hello.heartbeat_ms, 250u);
                EXPECT_EQ(h.s.state(), ReceiverState::AwaitVerdict);
                auto w = h.s.welcome(3, true);
                auto m = parse_message(w);
                Welcome wd;
                ASSERT_TRUE(decode(m.body, wd));
                EXPECT_EQ(wd.resume_sequence, 3u);
                EXPECT_TRUE(wd.flags & welcome_flag::kNewSession);
                // What the sender checks: the collector's proof.
                EXPECT_TRUE(
                    proofs_equal(wd.proof, welcome_proof(k, hello_signed_bytes(h.sent), h.nonce,
                                                         welcome_signed_bytes(wd))));
            }
            if (step.kind == StepKind::Frame) {
                EXPECT_EQ(step.frame.info().packet_count, kinds.size() == 2 ? 4u : 2u);
            }
        }
    }
    EXPECT_EQ(kinds, (std::vector<StepKind>{StepKind::Hello, StepKind::Frame, StepKind::Heartbeat,
                                            StepKind::Frame}));
    EXPECT_EQ(h.s.last_sequence(), 4u);
    auto ack = parse_message(h.s.ack(5));
    Ack a;
    ASSERT_TRUE(decode(ack.body, a));
    EXPECT_EQ(a.next_sequence, 5u);
}

void expect_failure(Harness& h, std::span<const std::byte> in, RejectReason reason,
                    const char* text) {
    ReceiverStep step;
    std::size_t off = 0;
    do {
        step = h.next({in.data() + off, in.size() - off});
        off += step.consumed;
        if (step.kind == StepKind::Hello) h.s.welcome(0, true);
    } while (step.kind == StepKind::Hello || step.kind == StepKind::Frame);
    ASSERT_EQ(step.kind, StepKind::Failed) << static_cast<int>(step.kind);
    EXPECT_EQ(step.reason, reason);
    EXPECT_NE(std::string(step.detail).find(text), std::string::npos) << step.detail;
    EXPECT_EQ(h.s.state(), ReceiverState::Closed);
    // The reply is the REJECT that tells the peer.
    auto m = parse_message(step.reply);
    ASSERT_EQ(m.status, MessageStatus::Ok);
    Reject r;
    ASSERT_TRUE(decode(m.body, r));
    EXPECT_EQ(r.reason, reason);
    EXPECT_EQ(r.text, step.detail);
}

TEST(ReceiverSession, WrongKeyMissingKeyUnexpectedKey) {
    const auto k = testing::key("0123456789abcdef0123");
    const auto other = testing::key("0123456789abcdef0124");
    {
        Harness h(k);
        expect_failure(h, h.hello(other), RejectReason::AuthFailed, "key differs");
    }
    {
        Harness h(k);
        expect_failure(h, h.hello({}), RejectReason::KeyRequired, "requires a key");
    }
    {
        Harness h;
        expect_failure(h, h.hello(k), RejectReason::KeyUnexpected, "--key-file");
    }
    {
        Harness h;  // no keys, but the proof is wrong: not a sluice sender
        auto hello = h.hello({});
        hello[8 + 72] ^= std::byte{1};
        store_le<uint32_t>(hello.data() + hello.size() - 4,
                           simd::crc32c(hello.data(), hello.size() - 4));
        expect_failure(h, hello, RejectReason::AuthFailed, "proof is wrong");
    }
}

TEST(ReceiverSession, AnotherVersionIsRejectedByNumber) {
    Harness h;
    expect_failure(h, h.hello({}, 7, 3), RejectReason::Version,
                   "the sender speaks transport version 3, this collector speaks 2");
}

TEST(ReceiverSession, GarbageAndWrongMessagesBeforeTheHello) {
    {
        Harness h;
        const std::byte g[] = {std::byte{'G'}, std::byte{'E'}, std::byte{'T'}};
        expect_failure(h, g, RejectReason::Protocol, "not a sluice sender");
    }
    {
        Harness h;
        const auto f = make_frame(7, 0, 1);
        expect_failure(h, f, RejectReason::Protocol, "bad magic");
    }
    {
        Harness h;
        std::array<std::byte, kMaxMessageSize> b;
        expect_failure(h, std::span<const std::byte>(b.data(), encode(Ack{1}, b)),
                       RejectReason::Protocol, "expected a HELLO, got a ACK");
    }
    {
        Harness h;
        auto hello = h.hello({});
        hello[20] ^= std::byte{1};
        expect_failure(h, hello, RejectReason::Protocol, "CRC mismatch");
    }
}

TEST(ReceiverSession, BrokenStreamsAfterTheHandshake) {
    auto streaming = [](Harness& h) {
        auto step = h.next(h.hello({}));
        EXPECT_EQ(step.kind, StepKind::Hello);
        h.s.welcome(0, true);
    };
    {
        Harness h;
        streaming(h);
        auto f = make_frame(7, 0, 2);
        f.back() ^= std::byte{1};
        ReceiverStep step = h.next(f);
        ASSERT_EQ(step.kind, StepKind::Failed);
        EXPECT_EQ(step.wire_error, wire::WireError::PayloadCrcMismatch);
        EXPECT_NE(std::string(step.detail).find("frame 0: frame payload CRC mismatch"),
                  std::string::npos);
    }
    {
        Harness h;
        streaming(h);
        auto f = make_frame(7, 0, 2);
        store_le<uint32_t>(f.data() + wire::offset::stored_len, 200u << 20);
        store_le<uint32_t>(f.data() + wire::offset::raw_len, 200u << 20);
        store_le<uint32_t>(f.data() + wire::offset::header_crc,
                           simd::crc32c(f.data(), wire::offset::header_crc));
        ReceiverStep step = h.next(std::span<const std::byte>(f).first(wire::kHeaderSize));
        ASSERT_EQ(step.kind, StepKind::Failed) << "refused from the header: no waiting for 200 MiB";
        EXPECT_EQ(step.wire_error, wire::WireError::FrameTooLarge);
    }
    {
        Harness h;
        streaming(h);
        const auto f = make_frame(8, 0, 1);
        expect_failure(h, f, RejectReason::Protocol,
                       "belongs to stream 8, but this connection is stream 7");
    }
    {
        Harness h;
        streaming(h);
        const auto good = make_frame(7, 0, 1);
        const std::byte junk[] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
        expect_failure(h, cat({good, junk}), RejectReason::Protocol, "after frame 0");
    }
    {
        Harness h;
        streaming(h);
        std::array<std::byte, kMaxMessageSize> b;
        const std::size_t n = encode(Hello{}, b);
        expect_failure(h, std::span<const std::byte>(b.data(), n), RejectReason::Protocol,
                       "unexpected HELLO");
    }
}

TEST(ReceiverSession, APeersRejectIsReported) {
    Harness h;
    std::array<std::byte, kMaxMessageSize> b;
    const std::size_t n = encode(Reject{RejectReason::AuthFailed, "you are not my collector"}, b);
    auto step = h.next({b.data(), n});
    ASSERT_EQ(step.kind, StepKind::PeerRejected);
    EXPECT_EQ(step.reason, RejectReason::AuthFailed);
    EXPECT_EQ(step.detail, "you are not my collector");
    EXPECT_EQ(h.s.state(), ReceiverState::Closed);
}

TEST(ReceiverSession, NeedMoreSaysHowMuch) {
    Harness h;
    auto hello = h.hello({});
    auto step = h.next(std::span<const std::byte>(hello).first(10));
    EXPECT_EQ(step.kind, StepKind::NeedMore);
    EXPECT_EQ(step.needed, hello.size());
    h.next(hello);
    h.s.welcome(0, true);
    const auto f = make_frame(7, 0, 50);
    step = h.next(std::span<const std::byte>(f).first(100));
    EXPECT_EQ(step.kind, StepKind::NeedMore);
    EXPECT_EQ(step.needed, f.size());
}

}  // namespace
}  // namespace sluice::tcp
