#include "sluice/wire/format.hpp"

#include "sluice/wire/error.hpp"

namespace sluice::wire {

std::string_view codec_name(Codec c) {
    switch (c) {
        case Codec::None:
            return "none";
        case Codec::Lz4:
            return "lz4";
        case Codec::Zstd:
            return "zstd";
    }
    return "unknown";
}

std::optional<Codec> parse_codec(std::string_view name) {
    for (uint8_t i = 0; i < kCodecCount; ++i)
        if (name == codec_name(static_cast<Codec>(i))) return static_cast<Codec>(i);
    return std::nullopt;
}

std::string_view to_string(WireError e) {
    switch (e) {
        case WireError::Truncated:
            return "truncated frame: fewer bytes than the header or its length field says; wait "
                   "for the rest, or the sender stopped mid-frame";
        case WireError::BadMagic:
            return "not a sluice frame (bad magic): the peer is not a sluice sender, or the "
                   "stream lost its framing; reconnect";
        case WireError::BadHeaderSize:
            return "bad header size field: the header is corrupt or from an incompatible "
                   "sender";
        case WireError::HeaderCrcMismatch:
            return "frame header CRC mismatch: the header was corrupted in transit; check the "
                   "link and NIC offloads, the sender will retransmit";
        case WireError::UnsupportedVersion:
            return "unsupported frame format version: upgrade this collector to the sender's "
                   "sluice version";
        case WireError::UnknownCodec:
            return "unknown codec in the frame header: upgrade this collector to the sender's "
                   "sluice version";
        case WireError::UnsupportedFlags:
            return "frame uses a feature this reader does not implement (must-understand flag): "
                   "upgrade this collector";
        case WireError::FrameTooLarge:
            return "frame larger than this reader's limit: raise the collector's frame size "
                   "limit to at least the sender's max_frame_bytes";
        case WireError::BadLength:
            return "inconsistent lengths in the frame header: the frame is corrupt or from a "
                   "faulty sender";
        case WireError::PayloadCrcMismatch:
            return "frame payload CRC mismatch: data was corrupted in transit; check the link, "
                   "the sender will retransmit";
        case WireError::ScratchTooSmall:
            return "decompression buffer smaller than the frame's payload: size it from the "
                   "reader's max_raw_len";
        case WireError::DecompressFailed:
            return "the codec rejected the frame payload: corrupt data or a codec library "
                   "mismatch";
        case WireError::DecompressedSizeMismatch:
            return "decompressed payload length differs from the header: the frame is corrupt";
        case WireError::RecordTruncated:
            return "a packet record runs past the end of the frame payload: the frame is "
                   "corrupt";
        case WireError::RecordLengthInvalid:
            return "a packet record's captured length exceeds its original length or the "
                   "reader's snap limit: the frame is corrupt or the limit too low";
        case WireError::RecordPaddingNotZero:
            return "a packet record's padding is not zero: the frame is corrupt";
        case WireError::CounterOverflow:
            return "the frame's sequence is 2^64-1 or its packet indexes pass 2^64: no sender "
                   "reaches these (sequences and indexes count from 0); a forged frame";
        case WireError::PacketCountMismatch:
            return "the frame's records do not match its packet count: the frame is corrupt";
        case WireError::StatisticsInvalid:
            return "an interface statistics frame is malformed (packets in it, an entry past its "
                   "end, reserved bytes set, a description over 255 bytes): the frame is corrupt";
        case WireError::BufferTooSmall:
            return "output buffer too small: size it with FrameEncoder::max_sealed_size()";
        case WireError::NotAFinishedFrame:
            return "seal() needs a frame from FrameBuilder::finish(): the buffer holds "
                   "something else";
    }
    return "unknown wire error";
}

}  // namespace sluice::wire
