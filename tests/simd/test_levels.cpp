// Level detection, parsing and forcing.
#include <gtest/gtest.h>

#include "sluice/simd/cpu.hpp"
#include "sluice/simd/crc32c.hpp"

namespace sluice::simd {
namespace {

TEST(Levels, NamesRoundTrip) {
    for (int i = 0; i < kLevelCount; ++i) {
        const auto level = static_cast<Level>(i);
        EXPECT_EQ(parse_level(level_name(level)), level);
    }
    EXPECT_EQ(parse_level("auto"), detected_level());
    EXPECT_EQ(parse_level("sse42"), std::nullopt);
    EXPECT_EQ(parse_level(""), std::nullopt);
    EXPECT_EQ(parse_level("AVX2"), std::nullopt);
}

TEST(Levels, DetectedLevelMatchesFeatures) {
    const auto& f = cpu_features();
    const Level d = detected_level();
    EXPECT_EQ(d >= Level::Sse42, f.sse42 && f.pclmulqdq && f.popcnt);
    EXPECT_EQ(d >= Level::Avx2, f.sse42 && f.pclmulqdq && f.popcnt && f.avx2 && f.bmi2 && f.os_ymm);
    if (d >= Level::Avx512) {
        EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl && f.os_zmm);
    }
}

TEST(Levels, ForceEveryAvailableLevelAndRefuseTheOthers) {
    for (int i = 0; i < kLevelCount; ++i) {
        const auto level = static_cast<Level>(i);
        if (level <= detected_level()) {
            ASSERT_TRUE(force_level(level));
            EXPECT_EQ(active_level(), level);
            // The kernels answer at that level.
            EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
        } else {
            const Level before = active_level();
            EXPECT_FALSE(force_level(level));
            EXPECT_EQ(active_level(), before);
        }
    }
    reset_level();
    EXPECT_EQ(active_level(), detected_level());
}

TEST(Levels, ActiveKernelsHaveNames) {
    reset_level();
    const auto names = active_kernels();
    EXPECT_FALSE(names.crc32c.empty());
    EXPECT_FALSE(names.checksum.empty());
    EXPECT_FALSE(names.toeplitz.empty());
    force_level(Level::Scalar);
    EXPECT_EQ(active_kernels().crc32c, "slice-by-8");
    reset_level();
}

}  // namespace
}  // namespace sluice::simd
