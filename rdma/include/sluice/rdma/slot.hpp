// What a sender's RDMA WRITE WITH IMMEDIATE left in a ring slot, checked
// before anything of it is believed: the bytes are the peer's, the slot may
// hold leftovers of an earlier frame past what this write carried, and the
// frame's header may claim any length. The listener calls this for every
// write; the fuzz target (tests/fuzz/fuzz_rdma_slot.cpp) drives it directly.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sluice/session/receiver.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::rdma {

struct SlotVerdict {
    bool ok = false;
    wire::FrameView frame;  // ok: valid while the slot and `scratch` are
    session::CloseCause cause = session::CloseCause::BadFrame;
    std::string why;  // !ok: what was wrong, for the log and the sender's Reject
};

// `written`: the slot's first wc.byte_len bytes (the caller has checked
// byte_len against the slot size). The frame must fill exactly those bytes,
// pass the reader's checks, belong to `stream_id` and carry the sequence the
// immediate announced (`sequence_bits`, its low 16 bits). `peer` names the
// sender in messages.
SlotVerdict open_slot(std::span<const std::byte> written, uint16_t sequence_bits,
                      uint64_t stream_id, wire::FrameReader& reader, std::span<std::byte> scratch,
                      std::string_view peer);

}  // namespace sluice::rdma
