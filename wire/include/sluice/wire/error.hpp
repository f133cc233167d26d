// Errors as values for the frame format: one WireError per kind of malformed
// input, and a small result type (std::expected is C++23).
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice::wire {

enum class WireError : uint8_t {
    // parse_header / FrameReader: the header
    Truncated = 1,       // fewer bytes than the header, or than the frame length it gives
    BadMagic,            // the first 4 bytes are not "SLCF": not a sluice frame, or out of sync
    BadHeaderSize,       // header_words is not 8 (version 1) or too small to hold a header CRC
    HeaderCrcMismatch,   // the header was corrupted in transit
    UnsupportedVersion,  // a valid header of a version this reader does not implement
    UnknownCodec,        // codec byte names no codec this reader knows
    UnsupportedFlags,    // a must-understand flag bit this reader does not know
    FrameTooLarge,       // raw or stored length above the reader's limit
    BadLength,           // lengths disagree (raw_len not a multiple of 8, stored != raw when
                         // uncompressed, compressed not smaller than raw, records vs count)
    CounterOverflow,     // sequence 2^64-1, or first_packet_index + packet_count past 2^64:
                         // no sender reaches them; after them the counters would wrap
    // FrameReader: the payload
    PayloadCrcMismatch,        // the payload was corrupted in transit
    ScratchTooSmall,           // the caller's decompression buffer is smaller than raw_len
    DecompressFailed,          // the codec rejected the payload
    DecompressedSizeMismatch,  // the codec produced a length other than raw_len
    RecordTruncated,           // a record header or its data runs past the payload
    RecordLengthInvalid,       // caplen > orig_len, or caplen above the reader's snap limit
    RecordPaddingNotZero,      // the bytes padding a record to 8 are not zero
    PacketCountMismatch,       // the records do not add up to packet_count
    StatisticsInvalid,         // a statistics frame with packets, or an entry that does not
                               // fit, has reserved bytes set or a description too long
    // FrameEncoder / FrameBuilder: the caller's side
    BufferTooSmall,     // the output buffer is smaller than FrameEncoder::max_sealed_size()
    NotAFinishedFrame,  // seal() was given bytes FrameBuilder::finish() did not produce
};

inline constexpr int kWireErrorCount = static_cast<int>(WireError::NotAFinishedFrame);

// A short sentence naming the fault and what to do about it.
std::string_view to_string(WireError e);

// Either a T or a WireError.
template <class T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit, like std::expected
    Result(WireError error) : v_(error) {}     // NOLINT

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    // Only meaningful when !ok().
    WireError error() const { return ok() ? WireError{} : std::get<1>(v_); }

  private:
    std::variant<T, WireError> v_;
};

}  // namespace sluice::wire
