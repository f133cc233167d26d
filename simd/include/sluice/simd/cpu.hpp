// CPU feature detection and the SIMD level every kernel in sluice::simd runs at.
//
// The level is decided once, at the first call into any kernel (or to one of the
// functions below): the highest level the CPU supports, unless the environment
// variable SLUICE_SIMD names a lower one ("auto", "scalar", "sse4.2", "avx2",
// "avx512"). force_level() changes it later, for tests, benchmarks and the
// `simd` configuration key; valgrind, which hides AVX-512 from CPUID, needs
// nothing special because detection asks CPUID.
//
// A level is a ceiling, not a promise: each kernel uses the fastest
// implementation at or below the active level, and a higher level only has its
// own implementation where it was measured faster (docs/simd.md lists them).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::simd {

enum class Level : uint8_t {
    Scalar = 0,  // portable C++ only
    Sse42 = 1,   // SSE4.2 + PCLMULQDQ (Westmere and later)
    Avx2 = 2,    // AVX2 + BMI2 + PCLMULQDQ, OS saves YMM state (Haswell, Zen and later)
    Avx512 = 3,  // AVX-512 F/BW/VL/DQ, OS saves ZMM state (Skylake-SP, Zen 4 and later)
};

inline constexpr int kLevelCount = 4;

// Individual CPUID bits some kernels use on top of their level.
struct CpuFeatures {
    bool sse42 = false;
    bool pclmulqdq = false;
    bool popcnt = false;
    bool avx2 = false;
    bool bmi2 = false;
    bool avx512f = false;
    bool avx512bw = false;
    bool avx512vl = false;
    bool avx512dq = false;
    bool vpclmulqdq = false;  // carry-less multiply on YMM/ZMM registers
    bool gfni = false;        // Galois-field affine transforms (Toeplitz hash)
    bool os_ymm = false;      // XCR0 says the OS saves YMM state
    bool os_zmm = false;      // XCR0 says the OS saves opmask and ZMM state
};

// What CPUID reports (cached after the first call).
const CpuFeatures& cpu_features();

// Highest level this CPU supports.
Level detected_level();

// Level the kernels currently run at.
Level active_level();

// Runs every kernel at `level` from now on. Returns false, and changes
// nothing, if the CPU does not support it. Safe to call while other threads
// run kernels: a call in flight finishes with the implementation it started with.
bool force_level(Level level);

// Back to the detected level (ignoring SLUICE_SIMD).
void reset_level();

// Which implementation of each kernel the active level runs, e.g.
// {"crc32q-3way", "avx2-pmaddwd", "byte-table"}: for logs and benchmark output.
struct KernelNames {
    std::string_view crc32c;
    std::string_view checksum;
    std::string_view toeplitz;
};
KernelNames active_kernels();

// "scalar", "sse4.2", "avx2", "avx512".
std::string_view level_name(Level level);

// Accepts the names level_name() gives, and "auto" meaning detected_level().
// Returns nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);

}  // namespace sluice::simd
