// The clocks of the session layer: CLOCK_MONOTONIC for every timer (the
// senders' poll(now) and the listeners' deadlines), CLOCK_REALTIME for what
// is written down (file names, rotation by wall time). Nanoseconds.
#pragma once

#include <cstdint>
#include <ctime>

namespace sluice::session {

inline uint64_t monotonic_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

inline uint64_t wall_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

}  // namespace sluice::session
