// The RDMA transport's bytes without a device: private data and messages
// round-trip and reject malformed input, immediates carry slot and sequence,
// the credit window never lets the sender past the ring, key proofs bind
// every byte of the handshake.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/rdma/protocol.hpp"

namespace sluice::rdma {
namespace {

ConnectRequest sample_request() {
    ConnectRequest r;
    r.flags = request_flag::kHasKey | request_flag::kHasPosition;
    r.stream_id = 0x1122334455667788ull;
    r.session_id = 42;
    r.next_sequence = 1000;
    r.next_packet_index = 123456;
    for (std::size_t i = 0; i < r.nonce.size(); ++i)
        r.nonce[i] = std::byte(i * 7);
    return r;
}

ConnectAccept sample_accept() {
    ConnectAccept a;
    a.flags = accept_flag::kKeyRequired;
    a.slot_bytes = 1u << 20;
    a.slot_count = 64;
    for (std::size_t i = 0; i < a.nonce.size(); ++i)
        a.nonce[i] = std::byte(255 - i);
    return a;
}

TEST(RdmaPrivateData, RequestFitsTheConnectRequestAndRoundTrips) {
    static_assert(kRequestSize <= kMaxRequestPrivateData);
    static_assert(kAcceptSize <= kMaxAcceptPrivateData);
    const ConnectRequest r = sample_request();
    const auto b = encode(r);
    ConnectRequest d;
    ASSERT_EQ(decode(b, d), DecodeStatus::Ok);
    EXPECT_EQ(d.flags, r.flags);
    EXPECT_EQ(d.stream_id, r.stream_id);
    EXPECT_EQ(d.session_id, r.session_id);
    EXPECT_EQ(d.next_sequence, r.next_sequence);
    EXPECT_EQ(d.next_packet_index, r.next_packet_index);
    EXPECT_EQ(d.nonce, r.nonce);
}

TEST(RdmaPrivateData, AcceptsZeroPaddingButNotOtherTrailingBytes) {
    const auto b = encode(sample_request());
    std::vector<std::byte> padded(b.begin(), b.end());
    padded.resize(92, std::byte{0});  // rdma_cm pads private data to the CM message size
    ConnectRequest d;
    EXPECT_EQ(decode(padded, d), DecodeStatus::Ok);
    padded[80] = std::byte{1};
    EXPECT_EQ(decode(padded, d), DecodeStatus::ReservedNotZero);
}

TEST(RdmaPrivateData, RejectsMalformedRequests) {
    const auto good = encode(sample_request());
    ConnectRequest d;
    EXPECT_EQ(decode(std::span<const std::byte>(), d), DecodeStatus::TooShort);
    EXPECT_EQ(decode(std::span(good).first(30), d), DecodeStatus::TooShort);
    auto b = good;
    b[0] = std::byte{'X'};
    EXPECT_EQ(decode(b, d), DecodeStatus::BadMagic);
    b = good;
    b[4] = std::byte{1};  // version 1 sent the ring before the proof
    EXPECT_EQ(decode(b, d), DecodeStatus::UnsupportedVersion);
    b = good;
    b[5] = std::byte{0x80};  // unknown flag
    EXPECT_EQ(decode(b, d), DecodeStatus::ReservedNotZero);
    b = good;
    b[6] = std::byte{1};  // reserved
    EXPECT_EQ(decode(b, d), DecodeStatus::ReservedNotZero);
    b = good;
    std::memset(&b[16], 0, 8);  // session 0 is never valid
    EXPECT_EQ(decode(b, d), DecodeStatus::BadValue);
    // A TCP HELLO's magic is not a connect request either.
    b = good;
    std::memcpy(&b[0], "SLCT", 4);
    EXPECT_EQ(decode(b, d), DecodeStatus::BadMagic);
}

TEST(RdmaPrivateData, AcceptRoundTripsChecksTheSlotsAndCarriesNoRing) {
    const ConnectAccept a = sample_accept();
    const auto b = encode(a);
    ConnectAccept d;
    ASSERT_EQ(decode(b, d), DecodeStatus::Ok);
    // Before the proof, no ring is named (it is not even registered yet):
    // where version 1 had its address and rkey, version 2 has zeros.
    for (std::size_t i = 8; i < 20; ++i)
        EXPECT_EQ(b[i], std::byte{0}) << i;
    auto with_ring = b;
    with_ring[12] = std::byte{0x7f};
    EXPECT_EQ(decode(with_ring, d), DecodeStatus::ReservedNotZero);
    ASSERT_EQ(decode(b, d), DecodeStatus::Ok);
    EXPECT_EQ(d.slot_bytes, a.slot_bytes);
    EXPECT_EQ(d.slot_count, a.slot_count);
    EXPECT_EQ(d.nonce, a.nonce);
    EXPECT_EQ(d.flags, a.flags);

    ConnectAccept bad = a;
    bad.slot_count = 0;
    EXPECT_EQ(decode(encode(bad), d), DecodeStatus::BadValue);
    bad = a;
    bad.slot_count = kMaxSlots + 1;  // would not fit the immediate's 16 slot bits
    EXPECT_EQ(decode(encode(bad), d), DecodeStatus::BadValue);
    bad = a;
    bad.slot_bytes = 100;
    EXPECT_EQ(decode(encode(bad), d), DecodeStatus::BadValue);
    bad = a;
    bad.slot_bytes = kMinSlotBytes + 4;  // frames are multiples of 8
    EXPECT_EQ(decode(encode(bad), d), DecodeStatus::BadValue);
}

TEST(RdmaPrivateData, RejectCarriesReasonAndTextCutToFit) {
    std::array<std::byte, kMaxRejectPrivateData> b{};
    ConnectReject r;
    r.reason = RejectReason::KeyRequired;
    const std::string text(300, 'k');
    r.text = text;
    const std::size_t n = encode(r, b);
    EXPECT_EQ(n, kMaxRejectPrivateData);
    ConnectReject d;
    ASSERT_EQ(decode(std::span(b).first(n), d), DecodeStatus::Ok);
    EXPECT_EQ(d.reason, RejectReason::KeyRequired);
    EXPECT_EQ(d.text, text.substr(0, kMaxRejectText));

    b[6] = std::byte{0};
    b[7] = std::byte{0};  // reason 0
    EXPECT_EQ(decode(std::span(b).first(n), d), DecodeStatus::BadValue);
}

TEST(RdmaMessage, EveryTypeRoundTrips) {
    Message credit;
    credit.type = MessageType::Credit;
    credit.value = 77;
    credit.released = 1234;
    Message d;
    ASSERT_EQ(decode(encode(credit), d), DecodeStatus::Ok);
    EXPECT_EQ(d.type, MessageType::Credit);
    EXPECT_EQ(d.value, 77u);
    EXPECT_EQ(d.released, 1234u);

    Message w;
    w.type = MessageType::Welcome;
    w.flags = welcome_flag::kNewSession;
    w.value = 9;
    w.ring_addr = 0x7f0012340000ull;
    w.rkey = 0xabcdef01;
    w.proof[0] = std::byte{5};
    ASSERT_EQ(decode(encode(w), d), DecodeStatus::Ok);
    EXPECT_EQ(d.type, MessageType::Welcome);
    EXPECT_EQ(d.flags, welcome_flag::kNewSession);
    EXPECT_EQ(d.value, 9u);
    EXPECT_EQ(d.ring_addr, w.ring_addr);
    EXPECT_EQ(d.rkey, w.rkey);
    EXPECT_EQ(d.proof, w.proof);
    auto wb = encode(w);
    wb[80] = std::byte{1};  // past the ring: reserved
    EXPECT_EQ(decode(wb, d), DecodeStatus::ReservedNotZero);
    credit.ring_addr = 5;  // only a Welcome carries a ring
    auto cb = encode(credit);
    EXPECT_EQ(decode(cb, d), DecodeStatus::Ok);
    EXPECT_EQ(d.ring_addr, 0u);

    Message rj;
    rj.type = MessageType::Reject;
    rj.reason = RejectReason::Storage;
    rj.text = "disk full";
    const auto rb = encode(rj);
    ASSERT_EQ(decode(rb, d), DecodeStatus::Ok);
    EXPECT_EQ(d.reason, RejectReason::Storage);
    EXPECT_EQ(d.text, "disk full");
}

TEST(RdmaMessage, RejectsMalformedMessages) {
    Message credit;
    credit.type = MessageType::Credit;
    auto good = encode(credit);
    Message d;
    EXPECT_EQ(decode(std::span(good).first(64), d), DecodeStatus::TooShort);
    auto b = good;
    b[5] = std::byte{9};  // unknown type
    EXPECT_EQ(decode(b, d), DecodeStatus::BadValue);
    b = good;
    b[6] = std::byte{welcome_flag::kNewSession};  // a flag only a Welcome has
    EXPECT_EQ(decode(b, d), DecodeStatus::ReservedNotZero);
    b = good;
    b[40] = std::byte{1};  // a proof on a Credit
    EXPECT_EQ(decode(b, d), DecodeStatus::ReservedNotZero);
    b = good;
    b[100] = std::byte{1};  // text on a Credit
    EXPECT_EQ(decode(b, d), DecodeStatus::ReservedNotZero);
    b = good;
    b[0] = std::byte{0};
    EXPECT_EQ(decode(b, d), DecodeStatus::BadMagic);
}

TEST(RdmaImmediate, CarriesSlotAndSequenceBits) {
    const uint32_t imm = encode_imm(63, 0x123456789abcull);
    EXPECT_EQ(imm_slot(imm), 63u);
    EXPECT_EQ(imm_sequence_bits(imm), 0x9abc);
    EXPECT_EQ(imm_slot(encode_imm(kMaxSlots - 1, 0)), kMaxSlots - 1);
    EXPECT_EQ(imm_sequence_bits(encode_imm(0, 0xffff)), 0xffff);
    EXPECT_EQ(imm_sequence_bits(encode_imm(0, 0x10000)), 0);  // wraps
}

TEST(RdmaCredits, NeverLetsTheSenderPastTheRing) {
    CreditWindow w(4);
    EXPECT_EQ(w.available(), 4u);
    uint32_t slots[4];
    for (uint32_t& s : slots)
        s = w.take();
    EXPECT_EQ(slots[0], 0u);
    EXPECT_EQ(slots[3], 3u);
    EXPECT_EQ(w.available(), 0u);
    // The collector released two: those two slots come round again, in order.
    ASSERT_TRUE(w.release(2));
    EXPECT_EQ(w.available(), 2u);
    EXPECT_EQ(w.take(), 0u);
    EXPECT_EQ(w.take(), 1u);
    EXPECT_EQ(w.available(), 0u);
}

TEST(RdmaCredits, CumulativeReleasesSurviveRepeatsAndRefuseTheImpossible) {
    CreditWindow w(8);
    for (int i = 0; i < 5; ++i)
        w.take();
    ASSERT_TRUE(w.release(3));
    EXPECT_TRUE(w.release(3));  // the same Credit twice changes nothing
    EXPECT_EQ(w.available(), 6u);
    EXPECT_FALSE(w.release(2));  // going back
    EXPECT_FALSE(w.release(6));  // more than written
    EXPECT_EQ(w.released(), 3u);
    EXPECT_EQ(w.available(), 6u);
    w.reset(8);  // a new connection: a fresh ring
    EXPECT_EQ(w.available(), 8u);
    EXPECT_EQ(w.next_slot(), 0u);
}

TEST(RdmaProof, BindsRequestAcceptAndKey) {
    const std::vector<std::byte> key(32, std::byte{7});
    const auto rq = encode(sample_request());
    const auto acc = encode(sample_accept());
    const Proof p = sender_proof(key, rq, acc);
    EXPECT_EQ(p, sender_proof(key, rq, acc));
    auto acc2 = acc;
    acc2[40] ^= std::byte{1};  // another collector nonce: a replayed proof is worthless
    EXPECT_NE(p, sender_proof(key, rq, acc2));
    auto rq2 = rq;
    rq2[24] ^= std::byte{1};  // another resume position
    EXPECT_NE(p, sender_proof(key, rq2, acc));
    const std::vector<std::byte> other(32, std::byte{8});
    EXPECT_NE(p, sender_proof(other, rq, acc));

    Message m;
    m.type = MessageType::Welcome;
    m.value = 100;
    m.flags = welcome_flag::kNewSession;
    m.ring_addr = 0x7f0012340000ull;
    m.rkey = 0xabcdef01;
    const Proof w = welcome_proof(key, p, m);
    EXPECT_EQ(w, welcome_proof(key, p, m));
    auto changed = [&](auto&& change) {
        Message c = m;
        change(c);
        return welcome_proof(key, p, c);
    };
    EXPECT_NE(w, changed([](Message& c) { c.value = 101; }));
    EXPECT_NE(w, changed([](Message& c) { c.flags = 0; }));
    // The ring is bound to the key too: nobody without it can point the
    // sender's writes elsewhere.
    EXPECT_NE(w, changed([](Message& c) { c.ring_addr += 4096; }));
    EXPECT_NE(w, changed([](Message& c) { c.rkey ^= 1; }));
    EXPECT_NE(w, welcome_proof(other, p, m));
}

}  // namespace
}  // namespace sluice::rdma
