// Every implementation of each kernel, with whether this CPU can run it, so
// tests cover implementations the dispatch table does not pick here too.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels.hpp"

#include "sluice/simd/cpu.hpp"

namespace sluice::simd::testing {

template <class Fn>
struct Impl {
    std::string name;
    Fn fn;
    bool available;
};

using CrcFn = uint32_t (*)(const void*, std::size_t, uint32_t);
using SumFn = uint64_t (*)(const void*, std::size_t, uint64_t);
using VerifyFn = void (*)(const PacketView*, std::size_t, ChecksumResult*);

inline std::vector<Impl<CrcFn>> crc_impls() {
    const auto& f = cpu_features();
    const bool sse = detected_level() >= Level::Sse42;
    return {
        {"slice8", detail::crc32c_slice8, true},
        {"hw_serial", detail::crc32c_hw_serial, sse},
        {"hw_3way", detail::crc32c_hw_3way, sse},
        {"clmul_fold", detail::crc32c_clmul_fold, sse},
        {"vpclmul_fold", detail::crc32c_vpclmul_fold,
         detected_level() >= Level::Avx2 && f.vpclmulqdq},
        {"mixed", detail::crc32c_mixed, detected_level() >= Level::Avx2 && f.vpclmulqdq},
    };
}

inline std::vector<Impl<SumFn>> sum_impls() {
    return {
        {"scalar", detail::cksum_add_scalar, true},
        {"sse42", detail::cksum_add_sse42, detected_level() >= Level::Sse42},
        {"avx2", detail::cksum_add_avx2, detected_level() >= Level::Avx2},
    };
}

inline std::vector<Impl<VerifyFn>> verify_impls() {
    return {
        {"scalar", detail::verify_checksums_scalar, true},
        {"sse42", detail::verify_checksums_sse42, detected_level() >= Level::Sse42},
        {"avx2", detail::verify_checksums_avx2, detected_level() >= Level::Avx2},
    };
}

inline std::vector<Level> available_levels() {
    std::vector<Level> v;
    for (int i = 0; i <= static_cast<int>(detected_level()); ++i)
        v.push_back(static_cast<Level>(i));
    return v;
}

inline std::vector<uint8_t> random_bytes(std::size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v)
        b = static_cast<uint8_t>(rng());
    return v;
}

// Restores the detected level when a test that forces levels ends.
struct LevelGuard {
    ~LevelGuard() { reset_level(); }
};

}  // namespace sluice::simd::testing
