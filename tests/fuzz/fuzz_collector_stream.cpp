// libFuzzer target: the collector's stream parser (tcp::ReceiverSession and
// the frame verification behind it) on arbitrary bytes, without sockets, and
// the pcapng blocks the collector builds from every frame it accepts.
//
// Input: one mode byte, then what a sender would send. If that starts with a
// frame ("SLCF"), the handshake is done first with a valid HELLO, so frame
// mutations (and the frame_reader seeds, which have the same shape) reach the
// frame stream at once; otherwise the bytes start at the handshake.
//   bit 0: recompute control-message CRCs and the HELLO's proof first, so
//          mutations get past them to the fields behind
//   bit 1: recompute frame header and payload CRCs first
//   bit 2: the collector has a key
//   bits 4-7: n; the bytes arrive in chunks of 2^n bytes (0: all at once),
//          as TCP may deliver them
//
// Beyond "no crash, no out-of-bounds access" (ASan + UBSan): every step
// consumes within the input, a refusal closes the session and carries a
// REJECT naming its reason, and the pcapng built from an accepted frame has
// exactly the promised size. A violation traps.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "collector_fuzzing.hpp"

#include "sluice/collector/pcapng.hpp"
#include "sluice/session/byte_buffer.hpp"
#include "sluice/tcp/receiver.hpp"

namespace {

using namespace sluice;
using fuzzing::check;
using fuzzing::fuzz_key;
using wire::load_le;

void check_epbs(const wire::FrameView& v) {
    static collector::ByteBuffer out;
    out.clear();
    std::size_t want = 0;
    for (const wire::Record& r : v) {
        collector::pcapng::append_epb(out, 0, r.timestamp_ns, r.data, r.orig_len,
                                      (r.flags & wire::record_flag::kFcsIncluded) ? 4u << 5 : 0);
        want +=
            collector::pcapng::epb_size(r.caplen, (r.flags & wire::record_flag::kFcsIncluded) != 0);
    }
    check(out.size() == want);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    const std::span<const std::byte> key =
        (mode & 4) ? std::span<const std::byte>(fuzz_key()) : std::span<const std::byte>();
    std::vector<std::byte> stream(size - 1);
    if (size > 1) std::memcpy(stream.data(), data + 1, size - 1);
    fuzzing::fix_up(stream.data(), stream.size(), mode & 1, mode & 2, key, fuzzing::fixed_nonce());

    static wire::FrameReader reader(wire::ReaderLimits{1u << 20, 1u << 20, wire::kMaxSnaplen});
    static std::vector<std::byte> scratch(1u << 20);
    tcp::ReceiverSession session(
        std::make_shared<const session::Keyring>(std::vector<std::byte>(key.begin(), key.end())));
    session.challenge(fuzzing::fixed_nonce());

    // Starts with a frame: authenticate first, for the frame's own stream.
    std::vector<std::byte> in;
    if (stream.size() >= 4 && load_le<uint32_t>(stream.data()) == wire::kMagic) {
        const uint64_t sid =
            stream.size() >= 24 ? load_le<uint64_t>(stream.data() + wire::offset::stream_id) : 0;
        in = fuzzing::valid_hello(sid, key, fuzzing::fixed_nonce());
    }
    const std::size_t chunk =
        (mode >> 4) ? std::size_t{1} << (mode >> 4) : stream.size() + in.size() + 1;

    std::size_t fed = 0, off = 0;
    std::vector<std::byte> all = in;
    all.insert(all.end(), stream.begin(), stream.end());
    while (fed < all.size() && session.state() != tcp::ReceiverState::Closed) {
        fed = std::min(all.size(), fed + chunk);
        for (;;) {
            // Only the bytes "received" so far, in an exactly sized copy: a
            // read past them is an ASan report.
            const std::size_t avail = fed - off;
            auto window = std::make_unique<std::byte[]>(avail ? avail : 1);
            std::memcpy(window.get(), all.data() + off, avail);
            const tcp::ReceiverStep step = session.next({window.get(), avail}, reader, scratch);
            if (step.kind == tcp::StepKind::NeedMore) {
                check(step.consumed == 0);
                check(step.needed == 0 || step.needed > avail);
                break;
            }
            check(step.consumed <= avail);
            off += step.consumed;
            if (step.kind == tcp::StepKind::Hello) {
                check(step.consumed > 0);
                session.welcome(0, true);
                check(session.state() == tcp::ReceiverState::Streaming);
            } else if (step.kind == tcp::StepKind::Frame) {
                check(step.consumed == step.frame.info().frame_len());
                check(step.frame.info().stream_id == session.hello().stream_id);
                check_epbs(step.frame);
                const auto ack = session.ack(step.frame.info().sequence + 1);
                check(tcp::parse_message(ack).status == tcp::MessageStatus::Ok);
            } else if (step.kind == tcp::StepKind::Heartbeat) {
                check(step.consumed == tcp::kMessageHeaderSize + tcp::kHeartbeatBody + 4);
            } else if (step.kind == tcp::StepKind::Failed) {
                check(session.state() == tcp::ReceiverState::Closed);
                check(!step.detail.empty());
                const auto m = tcp::parse_message(step.reply);
                check(m.status == tcp::MessageStatus::Ok &&
                      m.header.type == tcp::MessageType::Reject);
                tcp::Reject r;
                check(tcp::decode(m.body, r) && r.reason == step.reason);
                break;
            } else if (step.kind == tcp::StepKind::PeerRejected) {
                check(session.state() == tcp::ReceiverState::Closed);
                break;
            }
            if (session.state() == tcp::ReceiverState::Closed) break;
        }
    }
    return 0;
}
