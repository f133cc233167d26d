// A tick counter turned into UTC nanoseconds with a multiply and a shift (no
// division, no syscall). Software timestamps read the TSC once per burst;
// hardware timestamps use the same conversion with the NIC's clock.
#pragma once

#include <cstdint>

namespace sluice::dataplane {

class TscClock {
  public:
    // Pairs a TSC reading with CLOCK_REALTIME at start-up. tsc_hz from
    // rte_get_tsc_hz(); a test may pass its own pair.
    static TscClock calibrate(uint64_t tsc_hz);
    TscClock(uint64_t base_tsc, uint64_t base_ns, uint64_t tsc_hz);
    TscClock() = default;

    // Cost: one 64x64->128 multiply.
    uint64_t to_ns(uint64_t tsc) const {
        const uint64_t d = tsc - base_tsc_;
        return base_ns_ + static_cast<uint64_t>((static_cast<unsigned __int128>(d) * mult_) >> 32);
    }
    uint64_t ns_to_tsc(uint64_t ns) const {
        return static_cast<uint64_t>((static_cast<unsigned __int128>(ns) * hz_) / 1000000000u);
    }
    uint64_t hz() const { return hz_; }

  private:
    uint64_t base_tsc_ = 0;
    uint64_t base_ns_ = 0;
    uint64_t mult_ = 0;  // ns per tick, 32.32 fixed point
    uint64_t hz_ = 1;
};

}  // namespace sluice::dataplane
