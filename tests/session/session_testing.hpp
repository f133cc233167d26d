// Helpers for the session tests and the transports' tests: sealed frames
// with known contents and keys.
#pragma once

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/wire/wire.hpp"

namespace sluice::session::testing {

// A sealed frame of `packets` packets of `len` bytes each, sequence `seq`.
inline std::vector<std::byte> make_frame(uint64_t stream, uint64_t seq, uint32_t packets,
                                         uint32_t len = 100, uint64_t first_index = 0) {
    const uint32_t max =
        static_cast<uint32_t>(wire::kHeaderSize + packets * wire::record_size(len));
    wire::FrameBuilder b({max, len});
    std::vector<std::byte> buf(max);
    b.begin(buf, stream, seq, first_index);
    std::vector<std::byte> pkt(len);
    for (uint32_t i = 0; i < packets; ++i) {
        for (uint32_t j = 0; j < len; ++j)
            pkt[j] = std::byte(static_cast<uint8_t>(seq * 31 + i * 7 + j));
        EXPECT_EQ(b.append({1000 + i, len, 0, 0, 0}, pkt), wire::AppendResult::Appended);
    }
    auto raw = b.finish();
    wire::FrameEncoder enc({.codec = wire::Codec::None});
    auto sealed = enc.seal(raw, {});
    EXPECT_TRUE(sealed.ok());
    return std::vector<std::byte>(sealed->frame.begin(), sealed->frame.end());
}

inline uint64_t load_seq(const std::vector<std::byte>& frame) {
    return wire::load_le<uint64_t>(frame.data() + wire::offset::sequence);
}

inline std::vector<std::byte> key(const char* s) {
    std::vector<std::byte> k(std::strlen(s));
    std::memcpy(k.data(), s, k.size());
    return k;
}

}  // namespace sluice::session::testing
