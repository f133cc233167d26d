// SLUICE_SIMD is read once, at the first kernel call: this program sets it
// before anything else touches the library (its own process, see meson.build).
#include <cstdlib>

#include <gtest/gtest.h>

#include "sluice/simd/cpu.hpp"
#include "sluice/simd/crc32c.hpp"

namespace sluice::simd {
namespace {

TEST(EnvLevel, ScalarFromEnvironment) {
    // meson.build runs this test with SLUICE_SIMD=scalar.
    const char* env = std::getenv("SLUICE_SIMD");
    ASSERT_NE(env, nullptr);
    ASSERT_STREQ(env, "scalar");
    EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // first use reads the variable
    EXPECT_EQ(active_level(), Level::Scalar);
    EXPECT_EQ(active_kernels().crc32c, "slice-by-8");
    // Changing the variable later has no effect: it was read once.
    setenv("SLUICE_SIMD", "avx2", 1);
    EXPECT_EQ(active_level(), Level::Scalar);
}

}  // namespace
}  // namespace sluice::simd
