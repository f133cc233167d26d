// The control messages byte for byte (docs/wire-protocol.md, "Stream
// transport"), every decoding error, and the proofs.
#include <fstream>
#include <set>

#include "tcp_testing.hpp"
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sluice/simd/crc32c.hpp"

namespace sluice::tcp {
namespace {

using wire::load_le;
using wire::store_le;
using Buf = std::array<std::byte, kMaxMessageSize>;
using session::kRejectReasonMax;
using session::proofs_equal;

Hello sample_hello() {
    Hello h;
    h.flags = hello_flag::kHasKey | hello_flag::kHasPosition;
    h.heartbeat_ms = 1000;
    h.stream_id = 0x0102030405060708;
    h.session_id = 0x1112131415161718;
    h.next_sequence = 99;
    h.next_packet_index = 12345;
    for (std::size_t i = 0; i < kNonceSize; ++i)
        h.nonce[i] = std::byte(i);
    for (std::size_t i = 0; i < kProofSize; ++i)
        h.proof[i] = std::byte(0x80 + i);
    return h;
}

TEST(Protocol, HelloLayoutMatchesTheSpecification) {
    Buf b;
    const Hello h = sample_hello();
    const std::size_t n = encode(h, b);
    ASSERT_EQ(n, 8u + 104 + 4);
    EXPECT_EQ(std::memcmp(b.data(), "SLCT", 4), 0);
    EXPECT_EQ(b[4], std::byte{2});  // version
    EXPECT_EQ(b[5], std::byte{2});  // type HELLO
    EXPECT_EQ(load_le<uint16_t>(b.data() + 6), 104);
    const std::byte* body = b.data() + 8;
    EXPECT_EQ(load_le<uint32_t>(body + 0), 3u);
    EXPECT_EQ(load_le<uint32_t>(body + 4), 1000u);
    EXPECT_EQ(load_le<uint64_t>(body + 8), h.stream_id);
    EXPECT_EQ(load_le<uint64_t>(body + 16), h.session_id);
    EXPECT_EQ(load_le<uint64_t>(body + 24), 99u);
    EXPECT_EQ(load_le<uint64_t>(body + 32), 12345u);
    EXPECT_EQ(body[40], std::byte{0});
    EXPECT_EQ(body[72], std::byte{0x80});
    EXPECT_EQ(load_le<uint32_t>(b.data() + 112), simd::crc32c(b.data(), 112));
}

TEST(Protocol, EveryMessageRoundTrips) {
    Buf b;
    {
        Challenge c;
        c.flags = challenge_flag::kKeyRequired;
        c.nonce[31] = std::byte{9};
        const auto m = parse_message({b.data(), encode(c, b)});
        ASSERT_EQ(m.status, MessageStatus::Ok);
        EXPECT_EQ(m.header.type, MessageType::Challenge);
        EXPECT_EQ(m.size, 52u);
        Challenge d;
        ASSERT_TRUE(decode(m.body, d));
        EXPECT_EQ(d.flags, c.flags);
        EXPECT_EQ(d.nonce, c.nonce);
    }
    {
        const Hello h = sample_hello();
        const auto m = parse_message({b.data(), encode(h, b)});
        ASSERT_EQ(m.status, MessageStatus::Ok);
        Hello d;
        ASSERT_TRUE(decode(m.body, d));
        EXPECT_EQ(d.stream_id, h.stream_id);
        EXPECT_EQ(d.session_id, h.session_id);
        EXPECT_EQ(d.next_sequence, h.next_sequence);
        EXPECT_EQ(d.next_packet_index, h.next_packet_index);
        EXPECT_EQ(d.nonce, h.nonce);
        EXPECT_EQ(d.proof, h.proof);
    }
    {
        Welcome w;
        w.resume_sequence = 1ull << 40;
        w.flags = welcome_flag::kNewSession;
        w.proof[0] = std::byte{1};
        const auto m = parse_message({b.data(), encode(w, b)});
        ASSERT_EQ(m.status, MessageStatus::Ok);
        EXPECT_EQ(m.size, 60u);
        Welcome d;
        ASSERT_TRUE(decode(m.body, d));
        EXPECT_EQ(d.resume_sequence, w.resume_sequence);
        EXPECT_EQ(d.flags, w.flags);
        EXPECT_EQ(d.proof, w.proof);
    }
    {
        const auto m =
            parse_message({b.data(), encode(Reject{RejectReason::Storage, "disk full"}, b)});
        ASSERT_EQ(m.status, MessageStatus::Ok);
        Reject d;
        ASSERT_TRUE(decode(m.body, d));
        EXPECT_EQ(d.reason, RejectReason::Storage);
        EXPECT_EQ(d.text, "disk full");
    }
    {
        const auto m = parse_message({b.data(), encode(Ack{77}, b)});
        ASSERT_EQ(m.status, MessageStatus::Ok);
        EXPECT_EQ(m.size, 20u);
        Ack d;
        ASSERT_TRUE(decode(m.body, d));
        EXPECT_EQ(d.next_sequence, 77u);
    }
    {
        const auto m = parse_message({b.data(), encode(Heartbeat{5}, b)});
        ASSERT_EQ(m.status, MessageStatus::Ok);
        Heartbeat d;
        ASSERT_TRUE(decode(m.body, d));
        EXPECT_EQ(d.counter, 5u);
    }
}

TEST(Protocol, RejectTextIsCutToItsLimit) {
    Buf b;
    const std::string text(1000, 'x');
    const auto m = parse_message({b.data(), encode(Reject{RejectReason::Protocol, text}, b)});
    ASSERT_EQ(m.status, MessageStatus::Ok);
    Reject d;
    ASSERT_TRUE(decode(m.body, d));
    EXPECT_EQ(d.text.size(), kMaxRejectText);
}

TEST(Protocol, EveryPrefixNeedsMore) {
    Buf b;
    const std::size_t n = encode(sample_hello(), b);
    for (std::size_t len = 0; len < n; ++len)
        EXPECT_EQ(parse_message({b.data(), len}).status, MessageStatus::NeedMore) << len;
    EXPECT_EQ(parse_message({b.data(), n}).status, MessageStatus::Ok);
}

TEST(Protocol, BadMagicIsSeenFromTheFirstByte) {
    const std::byte junk[1] = {std::byte{'G'}};
    EXPECT_EQ(parse_message(junk).status, MessageStatus::BadMagic);
    Buf b;
    encode(Ack{1}, b);
    b[3] = std::byte{'X'};
    EXPECT_EQ(parse_message({b.data(), 4}).status, MessageStatus::BadMagic);
}

TEST(Protocol, EachMalformationHasItsStatus) {
    Buf b;
    std::size_t n = encode(Ack{1}, b);
    auto reseal = [&](std::size_t len) {
        store_le<uint32_t>(b.data() + len - 4, simd::crc32c(b.data(), len - 4));
    };

    Buf c = b;
    c[4] = std::byte{3};
    auto m = parse_message({c.data(), n});
    EXPECT_EQ(m.status, MessageStatus::UnsupportedVersion);
    EXPECT_EQ(m.header.version, 3);

    c = b;
    c[5] = std::byte{9};
    EXPECT_EQ(parse_message({c.data(), n}).status, MessageStatus::UnknownType);
    c[5] = std::byte{0};
    EXPECT_EQ(parse_message({c.data(), n}).status, MessageStatus::UnknownType);

    c = b;
    store_le<uint16_t>(c.data() + 6, 9);
    EXPECT_EQ(parse_message({c.data(), n}).status, MessageStatus::BadLength);

    c = b;
    c[10] ^= std::byte{1};
    EXPECT_EQ(parse_message({c.data(), n}).status, MessageStatus::CrcMismatch);

    // A REJECT longer than the limit, or shorter than its fixed part.
    n = encode(Reject{RejectReason::Busy, "x"}, b);
    c = b;
    store_le<uint16_t>(c.data() + 6, 7);
    EXPECT_EQ(parse_message({c.data(), n}).status, MessageStatus::BadLength);
    store_le<uint16_t>(c.data() + 6, kMaxBodySize + 1);
    EXPECT_EQ(parse_message({c.data(), n}).status, MessageStatus::BadLength);

    // Reserved fields and unknown flags: the message parses, decoding refuses.
    n = encode(Challenge{}, b);
    store_le<uint32_t>(b.data() + 8, 2);  // unknown flag
    reseal(n);
    m = parse_message({b.data(), n});
    ASSERT_EQ(m.status, MessageStatus::Ok);
    Challenge ch;
    EXPECT_FALSE(decode(m.body, ch));
    n = encode(Challenge{}, b);
    store_le<uint32_t>(b.data() + 12, 1);  // reserved
    reseal(n);
    EXPECT_FALSE(decode(parse_message({b.data(), n}).body, ch));

    Hello h = sample_hello();
    h.flags = 8;  // bits 0..2 are HAS_KEY, HAS_POSITION, RESUME
    n = encode(h, b);
    Hello hd;
    EXPECT_FALSE(decode(parse_message({b.data(), n}).body, hd));

    Welcome w;
    w.flags = 2;
    n = encode(w, b);
    Welcome wd;
    EXPECT_FALSE(decode(parse_message({b.data(), n}).body, wd));

    n = encode(Reject{RejectReason::Busy, "abc"}, b);
    store_le<uint16_t>(b.data() + 10, 2);  // text length disagrees with the body
    reseal(n);
    Reject rd;
    EXPECT_FALSE(decode(parse_message({b.data(), n}).body, rd));
}

// Every version reads a version-1 REJECT, and sends its REJECT as version 1.
TEST(Protocol, RejectIsReadWhateverTheVersion) {
    Buf b;
    const std::size_t n = encode(Reject{RejectReason::Version, "speak 1"}, b);
    EXPECT_EQ(b[4], std::byte{1});
    b[4] = std::byte{7};
    store_le<uint32_t>(b.data() + n - 4, simd::crc32c(b.data(), n - 4));
    const auto m = parse_message({b.data(), n});
    ASSERT_EQ(m.status, MessageStatus::Ok);
    Reject d;
    ASSERT_TRUE(decode(m.body, d));
    EXPECT_EQ(d.text, "speak 1");
}

TEST(Protocol, NamesOfReasons) {
    EXPECT_EQ(to_string(RejectReason::AuthFailed), "auth-failed");
    EXPECT_EQ(to_string(static_cast<RejectReason>(999)), "unknown");
    for (uint16_t r = 1; r <= kRejectReasonMax; ++r)
        EXPECT_NE(to_string(static_cast<RejectReason>(r)), "unknown") << r;
}

// ---- auth --------------------------------------------------------------------------

TEST(Auth, ProofsDependOnKeyNonceAndEveryHelloByte) {
    const auto k1 = testing::key("key-one-0123456789abcdef");
    const auto k2 = testing::key("key-two-0123456789abcdef");
    Nonce n{};
    const Hello h = sample_hello();
    const auto s = hello_signed_bytes(h);
    const Proof p = hello_proof(k1, n, s);
    EXPECT_TRUE(proofs_equal(p, hello_proof(k1, n, s)));
    EXPECT_FALSE(proofs_equal(p, hello_proof(k2, n, s)));
    Nonce n2 = n;
    n2[5] = std::byte{1};
    EXPECT_FALSE(proofs_equal(p, hello_proof(k1, n2, s)));
    for (std::size_t i = 0; i < s.size(); i += 7) {
        auto t = s;
        t[i] ^= std::byte{1};
        EXPECT_FALSE(proofs_equal(p, hello_proof(k1, n, t))) << "byte " << i;
    }
    // The empty key still gives a proof (integrity of the handshake).
    EXPECT_TRUE(proofs_equal(hello_proof({}, n, s), hello_proof({}, n, s)));
    EXPECT_FALSE(proofs_equal(hello_proof({}, n, s), p));
    // (The Python system tests compute both proofs independently, with
    // Python's hmac, from the specification's description.)
    const auto w = welcome_signed_bytes(Welcome{});
    EXPECT_FALSE(proofs_equal(welcome_proof(k1, s, n, w), welcome_proof(k2, s, n, w)));
}

}  // namespace
}  // namespace sluice::tcp
