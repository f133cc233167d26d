// Helpers for the wire tests: capture-like packets, frame building, and
// re-sealing a tampered frame so a test reaches the check it aims at.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sluice/simd/crc32c.hpp"
#include "sluice/wire/wire.hpp"

namespace sluice::wire::testing {

struct Packet {
    std::vector<std::byte> bytes;
    RecordMeta meta;
};

// IMIX-sized packets whose payloads are partly HTTP-like text (compressible)
// and partly random (incompressible), with headers that repeat, like a link.
inline std::vector<Packet> capture_like(std::size_t n, uint64_t seed, std::size_t max_len = 1514) {
    std::mt19937_64 rng(seed);
    const std::string text =
        "GET /v1/metrics?window=60 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: "
        "curl/7.88.1\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n";
    std::vector<Packet> v;
    uint64_t t = 1700000000ull * 1000000000ull;
    for (std::size_t i = 0; i < n; ++i) {
        const auto r = rng() % 12;
        std::size_t len = r < 7 ? 60 + rng() % 7 : r < 11 ? 590 + rng() % 200 : 1514;
        len = std::min(len, max_len);
        Packet p;
        p.bytes.resize(len);
        const bool textual = rng() % 2;
        for (std::size_t j = 0; j < len; ++j) {
            if (j < 54) {
                p.bytes[j] = std::byte(static_cast<uint8_t>((j * 7 + i % 16) & 0xff));
            } else if (textual) {
                p.bytes[j] = std::byte(static_cast<uint8_t>(text[(j + i) % text.size()]));
            } else {
                p.bytes[j] = std::byte(static_cast<uint8_t>(rng()));
            }
        }
        t += 1000 + rng() % 9000;
        p.meta = {t, 0, static_cast<uint16_t>(i % 2), static_cast<uint16_t>(i % 4),
                  static_cast<uint32_t>(rng() % 16)};
        v.push_back(std::move(p));
    }
    return v;
}

// Builds one frame from as many packets as fit; returns the raw frame bytes
// and how many packets went in.
inline std::vector<std::byte> build_frame(const std::vector<Packet>& pkts, BuilderLimits limits,
                                          std::size_t& appended, uint64_t seq = 7) {
    FrameBuilder b(limits);
    std::vector<std::byte> buf(limits.max_frame_bytes);
    b.begin(buf, 42, seq, 1000);
    appended = 0;
    for (const auto& p : pkts) {
        if (b.append(p.meta, p.bytes) == AppendResult::FrameFull) break;
        ++appended;
    }
    auto f = b.finish();
    return {f.begin(), f.end()};
}

// Recomputes both CRCs of a frame after a test changed it.
inline void reseal(std::vector<std::byte>& f) {
    using wire::load_le;
    using wire::store_le;
    const uint32_t stored = load_le<uint32_t>(f.data() + offset::stored_len);
    const std::size_t avail = f.size() - kHeaderSize;
    store_le<uint32_t>(f.data() + offset::payload_crc,
                       simd::crc32c(f.data() + kHeaderSize, std::min<std::size_t>(stored, avail)));
    store_le<uint32_t>(f.data() + offset::header_crc, simd::crc32c(f.data(), offset::header_crc));
}

// Seals a raw frame with `cfg` and returns a copy of the sealed bytes.
inline std::vector<std::byte> seal_copy(std::vector<std::byte> raw, const EncoderConfig& cfg,
                                        Sealed* info = nullptr) {
    FrameEncoder enc(cfg);
    std::vector<std::byte> out(FrameEncoder::max_sealed_size(raw.size()));
    auto s = enc.seal(raw, out);
    if (!s) return {};
    if (info) *info = *s;
    return {s->frame.begin(), s->frame.end()};
}

}  // namespace sluice::wire::testing
