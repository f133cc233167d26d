#include "sluice/dataplane/tsc_clock.hpp"

#include <ctime>

#include <rte_cycles.h>

namespace sluice::dataplane {

TscClock::TscClock(uint64_t base_tsc, uint64_t base_ns, uint64_t tsc_hz)
    : base_tsc_(base_tsc),
      base_ns_(base_ns),
      mult_(static_cast<uint64_t>((static_cast<unsigned __int128>(1000000000u) << 32) / tsc_hz)),
      hz_(tsc_hz) {}

TscClock TscClock::calibrate(uint64_t tsc_hz) {
    // Read the TSC on both sides of the realtime read and take the middle, so
    // the pair is off by at most half the (sub-microsecond) read time.
    timespec ts{};
    const uint64_t t0 = rte_rdtsc();
    clock_gettime(CLOCK_REALTIME, &ts);
    const uint64_t t1 = rte_rdtsc();
    const uint64_t ns =
        static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
    return TscClock(t0 + (t1 - t0) / 2, ns, tsc_hz);
}

}  // namespace sluice::dataplane
