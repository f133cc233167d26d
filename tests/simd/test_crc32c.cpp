// Every CRC-32C implementation equals the bit-at-a-time reference, for every
// length 0..4096 at every start offset within a cache line.
#include <cstring>

#include "impls.hpp"
#include <gtest/gtest.h>

#include "sluice/simd/crc32c.hpp"
#include "sluice/simd/reference.hpp"

namespace sluice::simd {
namespace {

using testing::available_levels;
using testing::crc_impls;
using testing::random_bytes;

constexpr std::size_t kMaxLen = 4096;
constexpr std::size_t kAlignments = 64;

// ref[n] = reference state after the first n bytes, from `init`.
std::vector<uint32_t> prefix_states(const std::vector<uint8_t>& data, uint32_t init) {
    std::vector<uint32_t> ref(data.size() + 1);
    ref[0] = init;
    for (std::size_t n = 0; n < data.size(); ++n)
        ref[n + 1] = reference::crc32c_raw(&data[n], 1, ref[n]);
    return ref;
}

// Checks fn over every length and alignment; returns the number of mismatches
// (and reports the first few).
template <class Fn>
int sweep(const char* what, Fn fn, const std::vector<uint8_t>& data, uint32_t init,
          const std::vector<uint32_t>& ref) {
    std::vector<uint8_t> buf(kMaxLen + kAlignments);
    int bad = 0;
    for (std::size_t a = 0; a < kAlignments; ++a) {
        std::memcpy(buf.data() + a, data.data(), kMaxLen);
        for (std::size_t n = 0; n <= kMaxLen; ++n) {
            const uint32_t got = fn(buf.data() + a, n, init);
            if (got != ref[n] && ++bad <= 5)
                ADD_FAILURE() << what << ": len " << n << " offset " << a << " init " << std::hex
                              << init << ": got " << got << " want " << ref[n];
        }
    }
    return bad;
}

TEST(Crc32c, KnownAnswers) {
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        ASSERT_TRUE(force_level(level));
        SCOPED_TRACE(std::string(level_name(level)));
        EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
        EXPECT_EQ(crc32c("", 0), 0u);
        // RFC 3720 B.4: 32 bytes of zeros, of 0xff, and 0..31 ascending.
        uint8_t b[32];
        std::memset(b, 0, 32);
        EXPECT_EQ(crc32c(b, 32), 0x8A9136AAu);
        std::memset(b, 0xff, 32);
        EXPECT_EQ(crc32c(b, 32), 0x62A8AB43u);
        for (int i = 0; i < 32; ++i)
            b[i] = static_cast<uint8_t>(i);
        EXPECT_EQ(crc32c(b, 32), 0x46DD794Eu);
    }
}

TEST(Crc32c, EveryImplementationEveryLengthEveryAlignment) {
    const auto data = random_bytes(kMaxLen, 1);
    for (uint32_t init : {0u, 0xffffffffu, 0x12345678u}) {
        const auto ref = prefix_states(data, init);
        for (const auto& impl : crc_impls()) {
            if (!impl.available) continue;
            EXPECT_EQ(sweep(impl.name.c_str(), impl.fn, data, init, ref), 0) << impl.name;
        }
    }
}

TEST(Crc32c, EveryForcedLevelThroughThePublicApi) {
    const auto data = random_bytes(kMaxLen, 2);
    const auto ref = prefix_states(data, 0xffffffffu);
    for (Level level : available_levels()) {
        testing::LevelGuard guard;
        ASSERT_TRUE(force_level(level));
        EXPECT_EQ(sweep(level_name(level).data(), crc32c_raw, data, 0xffffffffu, ref), 0);
    }
}

TEST(Crc32c, EdgePatterns) {
    // All-zero and all-one buffers exercise the folding constants without the
    // help of random data.
    for (uint8_t fill : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0x80}}) {
        const std::vector<uint8_t> data(kMaxLen, fill);
        const auto ref = prefix_states(data, 0xffffffffu);
        for (const auto& impl : crc_impls()) {
            if (!impl.available) continue;
            std::vector<uint8_t> buf(data);
            for (std::size_t n = 0; n <= kMaxLen; ++n)
                ASSERT_EQ(impl.fn(buf.data(), n, 0xffffffffu), ref[n])
                    << impl.name << " fill " << int{fill} << " len " << n;
        }
    }
}

TEST(Crc32c, LongBuffersCrossEveryBlockSize) {
    // Lengths around the round sizes (3 x 4 KiB chains, 1792-byte mixed
    // rounds, 512-byte VPCLMULQDQ minimum) and large buffers.
    const auto data = random_bytes(3 * 1024 * 1024 + 77, 3);
    const uint32_t want = reference::crc32c_raw(data.data(), data.size(), 0xffffffffu);
    for (const auto& impl : crc_impls()) {
        if (!impl.available) continue;
        EXPECT_EQ(impl.fn(data.data(), data.size(), 0xffffffffu), want) << impl.name;
        for (std::size_t n : {511u, 512u, 1791u, 1792u, 1793u, 3584u + 511u, 3584u + 512u, 12287u,
                              12288u, 12289u, 24576u + 215u, 24576u + 216u, 65536u}) {
            EXPECT_EQ(impl.fn(data.data() + 1, n, 7u),
                      reference::crc32c_raw(data.data() + 1, n, 7u))
                << impl.name << " len " << n;
        }
    }
}

TEST(Crc32c, ChainsLikeOneBuffer) {
    const auto data = random_bytes(5000, 4);
    const uint32_t whole = crc32c(data.data(), data.size());
    for (std::size_t split : {0u, 1u, 7u, 8u, 100u, 2500u, 4999u, 5000u}) {
        const uint32_t first = crc32c(data.data(), split);
        EXPECT_EQ(crc32c(data.data() + split, data.size() - split, first), whole) << split;
    }
    // The raw form is the standard one without the inversions.
    EXPECT_EQ(crc32c(data.data(), 100, 0x1234u), ~crc32c_raw(data.data(), 100, ~uint32_t{0x1234u}));
}

}  // namespace
}  // namespace sluice::simd
