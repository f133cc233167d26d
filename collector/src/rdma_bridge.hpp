// Not for inclusion outside collector/src: sluice-collector's streams behind
// the RDMA listener. The listener owns queue pairs and rings; this decides
// what a sender's hello and frames mean, with the same Stream logic (resume
// point, duplicates, gaps, commit before acknowledging) as TCP connections.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "sluice/collector/server.hpp"
#include "sluice/rdma/receiver.hpp"

namespace sluice::collector {

// What Stream::connection points to in RDMA mode.
struct RdmaPeer {
    uint64_t conn = 0;
    std::string peer;
    uint64_t gap_logs = 0;
};

class RdmaBridge final : public rdma::ReceiverHandler {
  public:
    explicit RdmaBridge(Collector& c) : c_(c) {}

    void on_request(const std::string&) override { c_.counters_.connections_accepted.inc(); }
    HelloAnswer on_hello(uint64_t conn, const rdma::ConnectRequest& rq,
                         const std::string& peer) override;
    bool on_frame(uint64_t conn, std::span<const std::byte> slot, uint16_t sequence_bits,
                  std::string& why, rdma::CloseCause& cause) override;
    std::optional<uint64_t> on_batch_done(uint64_t conn, std::string& why) override;
    void on_closed(uint64_t conn, rdma::CloseCause cause, const std::string& why) override;

    rdma::RdmaListener* listener = nullptr;

  private:
    struct Entry {
        Stream* stream = nullptr;
        RdmaPeer peer;
    };
    Collector& c_;
    std::unordered_map<uint64_t, Entry> conns_;
};

}  // namespace sluice::collector
