#include "sluice/index/bloom.hpp"

#include <bit>
#include <cstring>

namespace sluice::index {

BloomAccumulator::BloomAccumulator() : words_(new uint32_t[8 * kBlocks]()) {}

void BloomAccumulator::clear() {
    if (empty_) return;
    std::memset(words_.get(), 0, 8 * kBlocks * sizeof(uint32_t));
    keys_ = 0;
    empty_ = true;
}

uint32_t BloomAccumulator::fold_into(std::vector<std::byte>& out) {
    if (empty_) return 0;
    // Fold while the next fold keeps the fill low enough: each fold ORs the
    // upper half onto the lower (counted first, written only if kept).
    uint32_t blocks = kBlocks;
    uint32_t* w = words_.get();
    while (blocks > 1) {
        const uint32_t half = blocks / 2;
        uint64_t folded = 0;
        for (std::size_t i = 0; i < 8 * std::size_t{half}; ++i)
            folded += static_cast<uint64_t>(std::popcount(w[i] | w[i + 8 * half]));
        if (double(folded) > kBloomMaxFill * double(256u * half)) break;
        for (std::size_t i = 0; i < 8 * std::size_t{half}; ++i)
            w[i] |= w[i + 8 * half];
        blocks = half;
    }
    const std::size_t at = out.size();
    out.resize(at + std::size_t{blocks} * kBloomBlockBytes);
    std::memcpy(out.data() + at, w, std::size_t{blocks} * kBloomBlockBytes);  // x86: little-endian
    return blocks;
}

}  // namespace sluice::index
