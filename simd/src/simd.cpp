namespace sluice::simd {}
