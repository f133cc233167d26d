// A latency histogram in the manner of HdrHistogram: values (nanoseconds)
// counted in buckets whose width grows with the value, so that every value
// is known to within 1/64 (1.6%) of itself, from 1 ns to 2^64 ns, in a
// fixed array. Recording is O(1) and never allocates: it can count every
// frame of a hot loop. Percentiles come from walking the buckets.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace sluice::report {

class LatencyHistogram {
  public:
    static constexpr unsigned kSubBits = 6;  // 64 sub-buckets per power of two
    static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
    static constexpr std::size_t kBuckets = 2 * kSub + (64 - kSubBits - 1) * kSub;

    void record(uint64_t v) {
        ++counts_[index_of(v)];
        ++count_;
        if (v > max_) max_ = v;
        if (count_ == 1 || v < min_) min_ = v;
    }

    uint64_t count() const { return count_; }
    uint64_t max() const { return max_; }
    uint64_t min() const { return count_ ? min_ : 0; }

    // The smallest value v such that at least `q` (0..1) of the recorded
    // values are <= v, as the highest value of its bucket (never above the
    // largest recorded); 0 when empty.
    uint64_t percentile(double q) const {
        if (!count_) return 0;
        if (q <= 0) return min();
        uint64_t want = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
        if (want > count_) want = count_;
        if (want == 0) want = 1;
        uint64_t seen = 0;
        for (std::size_t i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen >= want) {
                const uint64_t top = highest_in(i);
                return top < max_ ? top : max_;
            }
        }
        return max_;
    }

    void reset() { *this = LatencyHistogram{}; }

    // Bucket arithmetic (public for the tests).
    static std::size_t index_of(uint64_t v) {
        if (v < 2 * kSub) return static_cast<std::size_t>(v);  // exact below 128
        const unsigned shift = static_cast<unsigned>(std::bit_width(v)) - kSubBits - 1;
        // v >> shift lies in [64, 128): the sub-bucket within its power of two.
        return static_cast<std::size_t>(2 * kSub + (shift - 1) * kSub + ((v >> shift) - kSub));
    }
    static uint64_t lowest_in(std::size_t i) {
        if (i < 2 * kSub) return i;
        const uint64_t shift = (i - 2 * kSub) / kSub + 1, sub = (i - 2 * kSub) % kSub + kSub;
        return sub << shift;
    }
    static uint64_t highest_in(std::size_t i) {
        if (i < 2 * kSub) return i;
        const uint64_t shift = (i - 2 * kSub) / kSub + 1;
        return lowest_in(i) + ((uint64_t{1} << shift) - 1);
    }

  private:
    std::array<uint64_t, kBuckets> counts_{};
    uint64_t count_ = 0, max_ = 0, min_ = 0;
};

}  // namespace sluice::report
