// FrameEncoder: compresses and seals frames (CRCs), one instance per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "sluice/wire/error.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::wire {

struct EncoderConfig {
    Codec codec = Codec::Lz4;
    int lz4_acceleration = 1;                 // >= 1; higher is faster and compresses less
    int zstd_level = 1;                       // -7..19 (negative: zstd's fast levels)
    uint32_t min_compress_bytes = 4096;       // smaller payloads are stored raw
    uint32_t max_raw_frame_bytes = 1u << 20;  // largest frame seal() gets; sizes zstd's context
};

struct Sealed {
    std::span<const std::byte> frame;  // the sealed frame, ready to send
    bool in_out_buffer = false;        // true: in `out`; false: sealed in place in the raw buffer
    Codec codec = Codec::None;         // codec of the stored payload
};

class FrameEncoder {
  public:
    // Allocates the compression state (LZ4 state, a static zstd context sized
    // for max_raw_frame_bytes) here and never again. Throws
    // std::invalid_argument for a bad configuration.
    explicit FrameEncoder(const EncoderConfig& config);
    ~FrameEncoder();
    FrameEncoder(FrameEncoder&&) noexcept;
    FrameEncoder& operator=(FrameEncoder&&) noexcept;

    const EncoderConfig& config() const;

    // Size of an `out` buffer that always holds the sealed form of a raw frame
    // of raw_frame_len bytes (the codecs' worst-case bounds plus the header).
    static std::size_t max_sealed_size(std::size_t raw_frame_len);

    // Seals a frame from FrameBuilder::finish(): compresses its payload into
    // `out` when the codec is not None, the payload is at least
    // min_compress_bytes and compression shrinks it; otherwise seals it in
    // place, flagged. Then writes the payload CRC-32C (over the stored bytes)
    // and the header CRC. No allocation, no exception.
    // Errors: NotAFinishedFrame, BufferTooSmall (out smaller than
    // max_sealed_size() while compressing), FrameTooLarge (raw frame above
    // max_raw_frame_bytes).
    Result<Sealed> seal(std::span<std::byte> raw_frame, std::span<std::byte> out);

  private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace sluice::wire
