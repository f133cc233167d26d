#include "sluice/simd/cpu.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "kernels.hpp"
#include <cpuid.h>

namespace sluice::simd {
namespace {

uint64_t read_xcr0() {
    uint32_t lo = 0, hi = 0;
    // xgetbv is only valid once CPUID reported OSXSAVE; the caller checks.
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return static_cast<uint64_t>(hi) << 32 | lo;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    f.sse42 = c & bit_SSE4_2;
    f.pclmulqdq = c & bit_PCLMUL;
    f.popcnt = c & bit_POPCNT;
    const bool osxsave = c & bit_OSXSAVE;
    const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    f.os_ymm = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
    f.os_zmm = (xcr0 & 0xe6) == 0xe6;  // plus opmask, ZMM_Hi256, Hi16_ZMM
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = b & bit_AVX2;
        f.bmi2 = b & bit_BMI2;
        f.avx512f = b & bit_AVX512F;
        f.avx512dq = b & bit_AVX512DQ;
        f.avx512bw = b & bit_AVX512BW;
        f.avx512vl = b & bit_AVX512VL;
        f.vpclmulqdq = c & bit_VPCLMULQDQ;
        f.gfni = c & bit_GFNI;
    }
    // VEX/EVEX-encoded forms need the OS to save the wider registers.
    if (!f.os_ymm) f.avx2 = f.vpclmulqdq = false;
    if (!f.os_zmm) f.avx512f = f.avx512dq = f.avx512bw = f.avx512vl = false;
    return f;
}

Level level_of(const CpuFeatures& f) {
    if (!f.sse42 || !f.pclmulqdq || !f.popcnt) return Level::Scalar;
    if (!f.avx2 || !f.bmi2) return Level::Sse42;
    if (!f.avx512f || !f.avx512bw || !f.avx512vl || !f.avx512dq) return Level::Avx2;
    return Level::Avx512;
}

using detail::Kernels;

// The fastest implementation of each kernel at or below each level, as
// measured with `scripts/bench simd` (docs/simd.md, docs/performance.md).
std::array<Kernels, kLevelCount> build_tables(const CpuFeatures& f) {
    std::array<Kernels, kLevelCount> t{};
    Kernels k{};
    k.level = Level::Scalar;
    k.crc32c = detail::crc32c_slice8, k.crc32c_name = "slice-by-8";
    k.cksum_add = detail::cksum_add_scalar, k.cksum_name = "scalar-32bit-words";
    k.verify_checksums = detail::verify_checksums_scalar;
    k.toeplitz = detail::toeplitz_table, k.toeplitz_name = "byte-table";
    k.toeplitz_bulk = detail::toeplitz_bulk_table;
    k.packet_hash = detail::packet_hash_scalar, k.packet_hash_name = "scalar-8-lanes";
    t[0] = k;

    k.level = Level::Sse42;
    k.crc32c = detail::crc32c_hw_3way, k.crc32c_name = "crc32q-3way";
    k.cksum_add = detail::cksum_add_sse42, k.cksum_name = "sse-pmaddwd";
    k.verify_checksums = detail::verify_checksums_sse42;
    if (f.gfni) {
        k.toeplitz = detail::toeplitz_gfni, k.toeplitz_name = "gfni";
        k.toeplitz_bulk = detail::toeplitz_bulk_gfni;
    }
    t[1] = k;

    k.level = Level::Avx2;
    if (f.vpclmulqdq) k.crc32c = detail::crc32c_mixed, k.crc32c_name = "vpclmulqdq+crc32q";
    k.cksum_add = detail::cksum_add_avx2, k.cksum_name = "avx2-pmaddwd";
    k.verify_checksums = detail::verify_checksums_avx2;
    k.packet_hash = detail::packet_hash_avx2, k.packet_hash_name = "avx2-2x4-lanes";
    t[2] = k;

    // Only the packet hash has an AVX-512 form measured faster than its AVX2
    // one (docs/performance.md); the other kernels keep their AVX2 forms.
    k.level = Level::Avx512;
    k.packet_hash = detail::packet_hash_avx512, k.packet_hash_name = "avx512-8-lanes";
    t[3] = k;
    return t;
}

const std::array<Kernels, kLevelCount>& tables() {
    static const std::array<Kernels, kLevelCount> t = build_tables(cpu_features());
    return t;
}

void publish(Level level) {
    // Release pairs with the acquire-load in detail::kernels(): the table was
    // fully built (tables() returned) before its address becomes visible.
    detail::g_kernels.store(&tables()[static_cast<int>(level)], std::memory_order_release);
}

// Reads SLUICE_SIMD once; an unusable value is reported and ignored.
void select_initial() {
    Level level = detected_level();
    if (const char* env = std::getenv("SLUICE_SIMD"); env && *env) {
        const auto wanted = parse_level(env);
        if (!wanted) {
            std::fprintf(stderr,
                         "sluice: SLUICE_SIMD=%s is not a SIMD level; using %s (valid: auto, "
                         "scalar, sse4.2, avx2, avx512)\n",
                         env, level_name(level).data());
        } else if (*wanted > level) {
            std::fprintf(stderr,
                         "sluice: SLUICE_SIMD=%s but this CPU supports at most %s; using %s\n", env,
                         level_name(level).data(), level_name(level).data());
        } else {
            level = *wanted;
        }
    }
    publish(level);
}

void ensure_selected() {
    static std::once_flag once;
    std::call_once(once, select_initial);
}

// The table g_kernels starts with: select, then forward.
uint32_t resolve_crc32c(const void* d, std::size_t n, uint32_t s) {
    ensure_selected();
    return detail::kernels().crc32c(d, n, s);
}
uint64_t resolve_cksum_add(const void* d, std::size_t n, uint64_t acc) {
    ensure_selected();
    return detail::kernels().cksum_add(d, n, acc);
}
void resolve_verify(const PacketView* p, std::size_t n, ChecksumResult* out) {
    ensure_selected();
    detail::kernels().verify_checksums(p, n, out);
}
uint32_t resolve_toeplitz(const detail::ToeplitzTables& t, const std::byte* in, std::size_t n) {
    ensure_selected();
    return detail::kernels().toeplitz(t, in, n);
}
void resolve_toeplitz_bulk(const detail::ToeplitzTables& t, const std::byte* in, std::size_t len,
                           std::size_t count, uint32_t* out) {
    ensure_selected();
    detail::kernels().toeplitz_bulk(t, in, len, count, out);
}

uint64_t resolve_packet_hash(const void* d, std::size_t n, const PacketHashKey& key) {
    ensure_selected();
    return detail::kernels().packet_hash(d, n, key);
}

constexpr Kernels kResolver{Level::Scalar,       resolve_crc32c,   resolve_cksum_add,
                            resolve_verify,      resolve_toeplitz, resolve_toeplitz_bulk,
                            resolve_packet_hash, "(unresolved)",   "(unresolved)",
                            "(unresolved)",      "(unresolved)"};

}  // namespace

namespace detail {
constinit std::atomic<const Kernels*> g_kernels{&kResolver};

const Kernels& kernels_for(Level level) {
    return tables()[static_cast<int>(level)];
}
}  // namespace detail

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

Level detected_level() {
    static const Level l = level_of(cpu_features());
    return l;
}

Level active_level() {
    ensure_selected();
    return detail::kernels().level;
}

bool force_level(Level level) {
    ensure_selected();
    if (level > detected_level()) return false;
    publish(level);
    return true;
}

void reset_level() {
    ensure_selected();
    publish(detected_level());
}

KernelNames active_kernels() {
    const auto& k = detail::kernels_for(active_level());
    return {k.crc32c_name, k.cksum_name, k.toeplitz_name};
}

std::string_view level_name(Level level) {
    switch (level) {
        case Level::Scalar:
            return "scalar";
        case Level::Sse42:
            return "sse4.2";
        case Level::Avx2:
            return "avx2";
        case Level::Avx512:
            return "avx512";
    }
    return "unknown";
}

std::optional<Level> parse_level(std::string_view name) {
    if (name == "auto") return detected_level();
    for (int i = 0; i < kLevelCount; ++i)
        if (name == level_name(static_cast<Level>(i))) return static_cast<Level>(i);
    return std::nullopt;
}

}  // namespace sluice::simd
