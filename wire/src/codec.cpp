#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStaticCCtx: no allocation after construction
#include "sluice/wire/codec.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include <lz4.h>
#include <zstd.h>

#include "sluice/simd/crc32c.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::wire {

using wire::load_le;
using wire::store_le;

struct FrameEncoder::State {
    EncoderConfig cfg;
    std::unique_ptr<std::byte[]> lz4_state;
    std::unique_ptr<std::byte[]> zstd_workspace;
    ZSTD_CCtx* zstd = nullptr;  // lives in zstd_workspace
};

namespace {

// zstd picks its parameters from the level and the input size class (up to
// 16 KiB, 128 KiB, 256 KiB, larger), so the workspace must cover the largest
// of those for every size up to the frame limit.
std::size_t zstd_workspace_size(int level, std::size_t max_payload) {
    std::size_t size = 0;
    for (std::size_t hint :
         {std::size_t{16} << 10, std::size_t{128} << 10, std::size_t{256} << 10, max_payload}) {
        hint = std::max<std::size_t>(1, std::min(hint, max_payload));
        const ZSTD_compressionParameters p = ZSTD_getCParams(level, hint, 0);
        size = std::max(size, ZSTD_estimateCCtxSize_usingCParams(p));
    }
    return size;
}

void write_crcs(std::byte* header, const std::byte* stored, uint32_t stored_len) {
    store_le<uint32_t>(header + offset::payload_crc, simd::crc32c(stored, stored_len));
    store_le<uint32_t>(header + offset::header_crc, simd::crc32c(header, offset::header_crc));
}

}  // namespace

FrameEncoder::FrameEncoder(const EncoderConfig& cfg) : s_(std::make_unique<State>()) {
    s_->cfg = cfg;
    if (static_cast<uint8_t>(cfg.codec) >= kCodecCount)
        throw std::invalid_argument("unknown codec: use none, lz4 or zstd");
    if (cfg.max_raw_frame_bytes < kHeaderSize || cfg.max_raw_frame_bytes > kMaxFrameBytes)
        throw std::invalid_argument("encoder frame limit " +
                                    std::to_string(cfg.max_raw_frame_bytes) +
                                    " out of range: give " + std::to_string(kHeaderSize) + " to " +
                                    std::to_string(kMaxFrameBytes));
    if (cfg.codec == Codec::Lz4) {
        if (cfg.lz4_acceleration < 1 || cfg.lz4_acceleration > 65537)
            throw std::invalid_argument("lz4 acceleration " + std::to_string(cfg.lz4_acceleration) +
                                        " out of range: give 1 (best ratio) to 65537 (fastest)");
        s_->lz4_state = std::make_unique<std::byte[]>(static_cast<std::size_t>(LZ4_sizeofState()));
    }
    if (cfg.codec == Codec::Zstd) {
        if (cfg.zstd_level < ZSTD_minCLevel() || cfg.zstd_level > ZSTD_maxCLevel() ||
            cfg.zstd_level == 0)
            throw std::invalid_argument("zstd level " + std::to_string(cfg.zstd_level) +
                                        " out of range: give " + std::to_string(ZSTD_minCLevel()) +
                                        " to -1 (fast levels) or 1 to " +
                                        std::to_string(ZSTD_maxCLevel()));
        const std::size_t ws =
            zstd_workspace_size(cfg.zstd_level, cfg.max_raw_frame_bytes - kHeaderSize);
        s_->zstd_workspace = std::make_unique<std::byte[]>(ws);
        s_->zstd = ZSTD_initStaticCCtx(s_->zstd_workspace.get(), ws);
        if (!s_->zstd) throw std::runtime_error("zstd rejected its workspace (library mismatch?)");
    }
}

FrameEncoder::~FrameEncoder() = default;
FrameEncoder::FrameEncoder(FrameEncoder&&) noexcept = default;
FrameEncoder& FrameEncoder::operator=(FrameEncoder&&) noexcept = default;

const EncoderConfig& FrameEncoder::config() const {
    return s_->cfg;
}

std::size_t FrameEncoder::max_sealed_size(std::size_t raw_frame_len) {
    const std::size_t payload = raw_frame_len > kHeaderSize ? raw_frame_len - kHeaderSize : 0;
    const std::size_t lz4 = static_cast<std::size_t>(LZ4_COMPRESSBOUND(payload));
    const std::size_t zstd = ZSTD_COMPRESSBOUND(payload);
    return kHeaderSize + std::max(lz4, zstd);
}

Result<Sealed> FrameEncoder::seal(std::span<std::byte> raw, std::span<std::byte> out) {
    const EncoderConfig& cfg = s_->cfg;
    if (raw.size() < kHeaderSize) return WireError::NotAFinishedFrame;
    std::byte* h = raw.data();
    const uint32_t raw_len = load_le<uint32_t>(h + offset::raw_len);
    if (load_le<uint32_t>(h + offset::magic) != kMagic ||
        h[offset::version] != std::byte{kVersion} ||
        h[offset::codec] != std::byte{static_cast<uint8_t>(Codec::None)} ||
        load_le<uint32_t>(h + offset::stored_len) != raw_len ||
        raw.size() != kHeaderSize + std::size_t{raw_len})
        return WireError::NotAFinishedFrame;
    if (raw.size() > cfg.max_raw_frame_bytes) return WireError::FrameTooLarge;

    const std::byte* payload = h + kHeaderSize;
    // What the builder said (what the payload is, where the stream stands)
    // stays; the two storage bits say how this seal stored it.
    const uint16_t required =
        load_le<uint16_t>(h + offset::flags) & ~(flag::kRawIncompressible | flag::kRawBelowMinimum);
    uint16_t flags = required;
    if (cfg.codec != Codec::None) {
        if (raw_len < cfg.min_compress_bytes) {
            flags |= flag::kRawBelowMinimum;
        } else {
            if (out.size() < max_sealed_size(raw.size())) return WireError::BufferTooSmall;
            std::byte* dst = out.data() + kHeaderSize;
            const std::size_t cap = out.size() - kHeaderSize;
            std::size_t n = 0;
            if (cfg.codec == Codec::Lz4) {
                const int r = LZ4_compress_fast_extState(
                    s_->lz4_state.get(), reinterpret_cast<const char*>(payload),
                    reinterpret_cast<char*>(dst), static_cast<int>(raw_len),
                    static_cast<int>(std::min<std::size_t>(cap, INT32_MAX)), cfg.lz4_acceleration);
                n = r > 0 ? static_cast<std::size_t>(r) : 0;
            } else {
                const std::size_t r =
                    ZSTD_compressCCtx(s_->zstd, dst, cap, payload, raw_len, cfg.zstd_level);
                n = ZSTD_isError(r) ? 0 : r;
            }
            if (n > 0 && n < raw_len) {
                std::byte* oh = out.data();
                std::memcpy(oh, h, kHeaderSize);
                oh[offset::codec] = std::byte{static_cast<uint8_t>(cfg.codec)};
                store_le<uint16_t>(oh + offset::flags, required);
                store_le<uint32_t>(oh + offset::stored_len, static_cast<uint32_t>(n));
                write_crcs(oh, dst, static_cast<uint32_t>(n));
                return Sealed{out.first(kHeaderSize + n), true, cfg.codec};
            }
            flags |= flag::kRawIncompressible;
        }
    }
    store_le<uint16_t>(h + offset::flags, flags);
    write_crcs(h, payload, raw_len);
    return Sealed{raw, false, Codec::None};
}

}  // namespace sluice::wire
