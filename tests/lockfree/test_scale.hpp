// How long the stress tests run: short and deterministic by default, longer with
// SLUICE_TEST_LONG=1, shorter under ThreadSanitizer (which slows atomics down ~10-50x).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace sluice::test {

inline bool long_run() {
    const char* v = std::getenv("SLUICE_TEST_LONG");
    return v != nullptr && std::strcmp(v, "1") == 0;
}

inline std::size_t stress_count(std::size_t normal) {
    std::size_t n = long_run() ? normal * 20 : normal;
#if defined(__SANITIZE_THREAD__)
    n /= 20;
#elif defined(__SANITIZE_ADDRESS__)
    n /= 4;
#endif
    return n == 0 ? 1 : n;
}

}  // namespace sluice::test
