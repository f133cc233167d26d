// Private to simd/: every implementation of every kernel, so the dispatch
// table (cpu.cpp), the tests and the benchmarks can name each one. Functions
// marked with a level must only be called on a CPU that has it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sluice/simd/checksum.hpp"
#include "sluice/simd/cpu.hpp"
#include "sluice/simd/packet_hash.hpp"

// Compiles one function for an ISA above the x86-64-v2 baseline; callers reach
// it only through the dispatch table after CPUID said yes.
#define SLUICE_TARGET(isa) __attribute__((target(isa)))

namespace sluice::simd::detail {

// ---- CRC-32C register update (no inversions) ----------------------------------
uint32_t crc32c_slice8(const void* data, std::size_t len, uint32_t state);  // Scalar
uint32_t crc32c_hw_serial(const void* data, std::size_t len,
                          uint32_t state);  // Sse42: one crc32q chain, as rte_hash_crc
uint32_t crc32c_hw_3way(const void* data, std::size_t len,
                        uint32_t state);  // Sse42: three crc32q chains, PCLMUL merge
uint32_t crc32c_clmul_fold(const void* data, std::size_t len,
                           uint32_t state);  // Sse42: PCLMUL folding, 4 x 128 bit
uint32_t crc32c_vpclmul_fold(const void* data, std::size_t len,
                             uint32_t state);  // Avx2 + VPCLMULQDQ: 4 x 256 bit
uint32_t crc32c_mixed(const void* data, std::size_t len,
                      uint32_t state);  // Avx2 + VPCLMULQDQ: folding beside 3 crc32q chains

// ---- Internet checksum partial sums ------------------------------------------
uint64_t cksum_add_scalar(const void* data, std::size_t len, uint64_t acc);
uint64_t cksum_add_sse42(const void* data, std::size_t len, uint64_t acc);
uint64_t cksum_add_avx2(const void* data, std::size_t len, uint64_t acc);

void verify_checksums_scalar(const PacketView* p, std::size_t n, ChecksumResult* out);
void verify_checksums_sse42(const PacketView* p, std::size_t n, ChecksumResult* out);
void verify_checksums_avx2(const PacketView* p, std::size_t n, ChecksumResult* out);

// ---- Toeplitz ------------------------------------------------------------------
struct ToeplitzTables;
uint32_t toeplitz_table(const ToeplitzTables& t, const std::byte* in, std::size_t len);
void toeplitz_bulk_table(const ToeplitzTables& t, const std::byte* tuples, std::size_t tuple_len,
                         std::size_t count, uint32_t* out);
uint32_t toeplitz_gfni(const ToeplitzTables& t, const std::byte* in, std::size_t len);
void toeplitz_bulk_gfni(const ToeplitzTables& t, const std::byte* tuples, std::size_t tuple_len,
                        std::size_t count, uint32_t* out);

// ---- packet hash ---------------------------------------------------------------
uint64_t packet_hash_scalar(const void* data, std::size_t len, const PacketHashKey& key);
uint64_t packet_hash_avx2(const void* data, std::size_t len, const PacketHashKey& key);
uint64_t packet_hash_avx512(const void* data, std::size_t len, const PacketHashKey& key);

// The table for a level, filled at first use (cpu.cpp). level <= detected_level().
const Kernels& kernels_for(Level level);

}  // namespace sluice::simd::detail
