#include "sluice/rdma/slot.hpp"

#include <fmt/format.h>

namespace sluice::rdma {

SlotVerdict open_slot(std::span<const std::byte> written, uint16_t sequence_bits,
                      uint64_t stream_id, wire::FrameReader& reader, std::span<std::byte> scratch,
                      std::string_view peer) {
    SlotVerdict v;
    // Formatted only on the error paths: nothing is allocated per frame.
    const auto refuse = [&](session::CloseCause cause, std::string why) {
        v.cause = cause;
        v.why = fmt::format("stream {} from {}: {}", stream_id, peer, why);
        return v;
    };
    const auto hdr = wire::parse_header(written, reader.limits());
    if (!hdr)
        return refuse(session::CloseCause::BadFrame,
                      fmt::format("a ring slot holds a malformed frame: {}; connection dropped",
                                  wire::to_string(hdr.error())));
    // The header's lengths are the peer's word: the frame must be exactly
    // what the write carried, or the reader would look past it (and past the
    // ring, for a slot at its end).
    if (hdr->frame_len() != written.size())
        return refuse(session::CloseCause::BadFrame,
                      fmt::format("a ring slot's write carried {} bytes but the frame in it "
                                  "(sequence {}) claims {}; connection dropped",
                                  written.size(), hdr->sequence, hdr->frame_len()));
    const auto view = reader.open(written, scratch);
    if (!view)
        return refuse(session::CloseCause::BadFrame,
                      fmt::format("a ring slot holds a malformed frame (sequence {}): {}; "
                                  "connection dropped",
                                  hdr->sequence, wire::to_string(view.error())));
    if (hdr->stream_id != stream_id)
        return refuse(
            session::CloseCause::Protocol,
            fmt::format("a frame of stream {} arrived on it; connection dropped", hdr->stream_id));
    if ((hdr->sequence & 0xffff) != sequence_bits)
        return refuse(session::CloseCause::Protocol,
                      fmt::format("the frame in the slot (sequence {}) is not the one its "
                                  "write announced (sequence bits {:#06x}); connection dropped",
                                  hdr->sequence, sequence_bits));
    v.ok = true;
    v.frame = *view;
    return v;
}

}  // namespace sluice::rdma
