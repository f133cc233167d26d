// sluice-pcapgen's IP fragmentation: IPv4 fragments and IPv6 fragment headers.
#pragma once

#include <cstdint>
#include <vector>

#include "bytes.hpp"
#include "rng.hpp"

namespace sluice::pcapgen {

// Cuts the frame's IP datagram into fragments as a sender or router before a
// smaller MTU does: every fragment but the last carries the same multiple of 8
// bytes. IPv4 fragments share the datagram's id; IPv6 ones carry a fragment
// header. Returns nothing when the datagram is too small or more than `room`
// records would be needed.
std::vector<Bytes> fragment(Rng& rng, const Bytes& frame, uint64_t room);

}  // namespace sluice::pcapgen
