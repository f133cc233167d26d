// Not for inclusion outside rdma/src: what the two halves of the RDMA
// sender share: sender.cpp (devices, memory registration, connection set-up)
// and sender_stream.cpp (completions, the collector's messages, writing
// frames into the ring).
#pragma once

#include <array>
#include <cstdint>

#include <infiniband/verbs.h>

#include "sluice/rdma/sender.hpp"

namespace sluice::rdma::detail {

// wr_id of a send work request: its index among the connection's posted ones,
// tagged for control SENDs; of a receive: a tag and its buffer index.
inline constexpr uint64_t kWrRecvTag = 1ull << 63;
inline constexpr uint64_t kWrCtlTag = 1ull << 62;
inline constexpr uint64_t kWrIndexMask = kWrCtlTag - 1;

}  // namespace sluice::rdma::detail

namespace sluice::rdma {

struct RdmaSender::WorkRequests {
    std::array<ibv_send_wr, kMaxBatch> wr{};
    std::array<ibv_sge, kMaxBatch> sge{};
};

}  // namespace sluice::rdma
