// Reconnect delays: exponential with jitter, so senders that lost the same
// collector at the same moment do not come back in lock-step.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sluice::session {

class Backoff {
  public:
    // Delays start at min_ms and double up to max_ms (max_ms < min_ms is
    // taken as min_ms). `seed` fixes the jitter sequence (tests); give a
    // random one in production.
    Backoff(uint32_t min_ms, uint32_t max_ms, uint64_t seed)
        : min_ns_(uint64_t{std::max<uint32_t>(min_ms, 1)} * 1000000),
          max_ns_(std::max<uint64_t>(uint64_t{max_ms} * 1000000, min_ns_)),
          rng_(seed ? seed : 0x9e3779b97f4a7c15ull) {}

    // The upper bound of the delay after `failures` failed attempts in a row:
    // min(max, min * 2^failures).
    uint64_t ceiling_ns(uint32_t failures) const {
        uint64_t d = min_ns_;
        for (uint32_t i = 0; i < failures && d < max_ns_; ++i)
            d *= 2;
        return std::min(d, max_ns_);
    }

    // The delay before the next attempt, uniform in [ceiling/2, ceiling]
    // ("equal jitter": never shorter than half the schedule); counts a failure.
    uint64_t next_delay_ns() {
        const uint64_t c = ceiling_ns(failures_);
        if (failures_ < 64) ++failures_;
        const uint64_t half = c / 2;
        return c - half + next_random() % (half + 1);
    }

    // After a connection that completed its handshake.
    void reset() { failures_ = 0; }
    uint32_t failures() const { return failures_; }

  private:
    // splitmix64: tiny, fast, good enough to spread reconnects.
    uint64_t next_random() {
        uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }

    uint64_t min_ns_, max_ns_;
    uint64_t rng_;
    uint32_t failures_ = 0;
};

}  // namespace sluice::session
