// Not for direct inclusion: the function-pointer table the public kernels call
// through. Included by the public headers so a call costs one load and one
// indirect call, with no branch on the level.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sluice/simd/cpu.hpp"

namespace sluice::simd {
struct PacketView;
struct ChecksumResult;
struct PacketHashKey;
}  // namespace sluice::simd

namespace sluice::simd::detail {

struct ToeplitzTables;

// One table per level, filled once at first use with the fastest implementation
// of each kernel at or below that level.
struct Kernels {
    Level level;
    uint32_t (*crc32c)(const void* data, std::size_t len, uint32_t state);
    uint64_t (*cksum_add)(const void* data, std::size_t len, uint64_t acc);
    void (*verify_checksums)(const PacketView* packets, std::size_t count, ChecksumResult* out);
    uint32_t (*toeplitz)(const ToeplitzTables& t, const std::byte* input, std::size_t len);
    void (*toeplitz_bulk)(const ToeplitzTables& t, const std::byte* tuples, std::size_t tuple_len,
                          std::size_t count, uint32_t* out);
    uint64_t (*packet_hash)(const void* data, std::size_t len, const PacketHashKey& key);
    // Implementation names, for benchmarks and diagnostics.
    const char* crc32c_name;
    const char* cksum_name;
    const char* toeplitz_name;
    const char* packet_hash_name;
};

// Starts out pointing at a table whose entries detect the CPU, pick the level,
// store the real table here and forward the call.
extern std::atomic<const Kernels*> g_kernels;

inline const Kernels& kernels() {
    // Acquire pairs with the release-store in select_level() (cpu.cpp): the
    // table's function pointers were written before its address was published.
    return *g_kernels.load(std::memory_order_acquire);
}

}  // namespace sluice::simd::detail
