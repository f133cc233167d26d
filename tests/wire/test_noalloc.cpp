// After construction, building, sealing and reading frames allocate nothing:
// malloc and friends are replaced in this program to count calls. Not in the
// 'asan' suite, whose runtime owns malloc.
#include <atomic>

#include "wire_testing.hpp"
#include <gtest/gtest.h>

// clang-format off: after every other header (it defines posix_memalign,
// which <mm_malloc.h> declares differently)
#include "../count_allocations.hpp"
// clang-format on

namespace sluice::wire {
namespace {

TEST(NoAllocation, BuildSealReadAfterConstruction) {
    const auto pkts = testing::capture_like(4000, 31);
    constexpr uint32_t kMax = 256 * 1024;
    FrameBuilder builder({.max_frame_bytes = kMax, .snaplen = 65535});
    FrameEncoder lz4({.codec = Codec::Lz4, .max_raw_frame_bytes = kMax});
    FrameEncoder zstd({.codec = Codec::Zstd, .zstd_level = 3, .max_raw_frame_bytes = kMax});
    FrameReader reader;
    std::vector<std::byte> buf(kMax), out(FrameEncoder::max_sealed_size(kMax)), scratch(kMax);
    std::vector<Segment> segs(3);
    uint64_t records = 0;

    // Make sure the level dispatch was resolved before counting (first use
    // may read the environment).
    (void)simd::crc32c("", 0);

    g_allocs = 0;
    t_counting = true;
    for (int round = 0; round < 4; ++round) {
        FrameEncoder& enc = round % 2 ? zstd : lz4;
        std::size_t i = 0;
        uint64_t seq = 0;
        while (i < pkts.size()) {
            builder.begin(buf, 1, seq++, i);
            while (i < pkts.size()) {
                const auto& p = pkts[i];
                const uint32_t half = static_cast<uint32_t>(p.bytes.size() / 2);
                segs[0] = {p.bytes.data(), half};
                segs[1] = {p.bytes.data() + half, 0};
                segs[2] = {p.bytes.data() + half, static_cast<uint32_t>(p.bytes.size()) - half};
                if (builder.append(p.meta, segs) == AppendResult::FrameFull) break;
                ++i;
            }
            auto sealed = enc.seal(builder.finish(), out);
            if (!sealed) break;
            auto v = reader.open(sealed->frame, scratch);
            if (!v) break;
            for (const Record& r : *v)
                records += r.caplen != 0;
        }
    }
    t_counting = false;
    EXPECT_EQ(g_allocs.load(), 0);
    EXPECT_EQ(records, 4 * pkts.size());
    // The counter works: an allocation inside the region would have shown.
    // (The pointer escapes through a volatile, or the compiler may drop the pair.)
    static void* volatile escape;
    t_counting = true;
    escape = std::malloc(10);
    t_counting = false;
    std::free(escape);
    EXPECT_EQ(g_allocs.load(), 1);
}

}  // namespace
}  // namespace sluice::wire
