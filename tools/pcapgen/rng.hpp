// sluice-pcapgen's random streams: one generator, one stream of the seed per
// kind of decision.
#pragma once

#include <array>
#include <cstdint>

namespace sluice::pcapgen {

// xoshiro256** seeded through splitmix64: fast, and identical on every platform.
class Rng {
  public:
    // Each kind of decision draws from its own stream of the one seed, so that
    // turning an option on leaves every other decision, and the bytes it makes,
    // as they were.
    explicit Rng(uint64_t seed, uint64_t stream = 0) {
        seed += stream * 0xd1b54a32d192ed03ULL;
        for (auto& s : s_) {
            seed += 0x9e3779b97f4a7c15ULL;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            s = z ^ (z >> 31);
        }
    }
    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>((next() >> 32) % n); }
    uint32_t between(uint32_t lo, uint32_t hi) { return lo + below(hi - lo + 1); }
    bool chance(uint32_t percent) { return below(100) < percent; }

  private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<uint64_t, 4> s_{};
};

// The streams; new kinds of decision get new values at the end, so that the
// existing ones keep their bytes.
enum RngStream : uint64_t {
    kTraffic,
    kClock,
    kTruncate,
    kTunnel,
    kTunnelTruncate,
    kDuplicate,
    kFragment,
    kFlowLife
};

}  // namespace sluice::pcapgen
