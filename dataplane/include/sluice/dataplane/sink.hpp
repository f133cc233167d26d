// Where sealed frames go: the egress stage hands each frame to its stream's
// sink. One virtual call per frame (not per packet).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sluice::dataplane {

class FrameSink {
  public:
    enum class Submit : uint8_t {
        Accepted,  // the sink has it; its cookie comes back through reclaim()
        Full,      // not taken: the sink holds as many frames as it may; try later
        Failed,    // not taken and never will be (e.g. a write error): the caller drops it
    };

    virtual ~FrameSink() = default;
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
};

// Discards frames (for measuring the rest of the pipeline).
std::unique_ptr<FrameSink> make_null_sink();

// Appends frames to a file, as they are on the wire (sluice-decode reads it).
// A frame that cannot be written is refused with Submit::Failed.
std::unique_ptr<FrameSink> make_file_sink(const std::string& path, std::string& error);

}  // namespace sluice::dataplane
