// Where sealed frames go: the egress stage hands each frame to its stream's
// sink. One virtual call per frame (not per packet).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/counters.hpp"

namespace sluice::dataplane {

class FrameSink {
  public:
    enum class Submit : uint8_t {
        Accepted,  // the sink has it; its cookie comes back through reclaim()
        Full,      // not taken: the sink holds as many frames as it may; try later
        Failed,    // not taken and never will be (e.g. a write error): the caller drops it
    };

    virtual ~FrameSink() = default;
    // Frames will come from [base, base + bytes) (a frame pool). Called once
    // per pool before the first submit(); a transport that registers memory
    // with a device (RDMA) does it here, not per frame.
    virtual void register_memory(const void* base, std::size_t bytes) {
        (void)base;
        (void)bytes;
    }
    // Takes the frame (not its memory): the bytes must stay valid until the
    // sink gives `cookie` back through reclaim().
    virtual Submit submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie) = 0;
    // Makes progress (sends, reads acknowledgements, reconnects). Non-blocking.
    virtual bool poll(uint64_t now_ns) = 0;
    // Cookies of frames the sink is done with (written, or acknowledged by the
    // collector), so their buffers go back to the pool.
    virtual std::size_t reclaim(std::span<void*> cookies) = 0;
    // Every submitted frame has been reclaimable (used at shutdown).
    virtual bool all_done() const = 0;
    // For logs and stats: "tcp 127.0.0.1:7700 (connected)".
    virtual std::string describe() const = 0;
    // The transport's own counters (connections, retransmissions...), if any.
    virtual std::span<const CounterBlockView> counters() const { return {}; }
    // Connection events for the control plane's log: how many connections
    // were established and how many failures were recorded, and the latest
    // failure in words an operator can act on. Any thread.
    virtual uint64_t connects() const { return 0; }
    virtual uint64_t failures() const { return 0; }
    virtual std::string last_error() const { return {}; }
    // Stop sending: called once, after the drain (last acknowledgements in or
    // timed out).
    virtual void close() {}
};

// Discards frames (for measuring the rest of the pipeline).
std::unique_ptr<FrameSink> make_null_sink();

// A TCP connection to sluice-collector for stream `stream_id` (tcp::TcpSender):
// reconnects, replays unacknowledged frames, heartbeats. Frames are done
// once acknowledged.
std::unique_ptr<FrameSink> make_tcp_sink(const config::Config& cfg, uint64_t stream_id,
                                         std::string& error);

// An RDMA RC connection to sluice-collector --listen rdma:// (rdma::RdmaSender):
// writes frames into the collector's ring, replays unacknowledged frames
// after a reconnect. nullptr and `error` when the host has no RDMA device
// (the message names ibv_devices and rdma link).
std::unique_ptr<FrameSink> make_rdma_sink(const config::Config& cfg, uint64_t stream_id,
                                          std::string& error);

// Publishes to NATS JetStream for a collector group (jetstream::JetStreamSender):
// a frame is done once JetStream stored it on its replicas; frames not yet
// stored are published again after a reconnect, recognised by message id.
std::unique_ptr<FrameSink> make_jetstream_sink(const config::Config& cfg, uint64_t stream_id,
                                               std::string& error);

// Appends frames to a file, as they are on the wire (sluice-decode reads it).
// A frame that cannot be written is refused with Submit::Failed.
std::unique_ptr<FrameSink> make_file_sink(const std::string& path, std::string& error);

}  // namespace sluice::dataplane
