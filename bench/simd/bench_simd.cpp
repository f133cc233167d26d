// simd kernels side by side with DPDK's: CRC32C vs rte_hash_crc, raw checksum
// vs rte_raw_cksum, burst verification vs rte_ipv4_cksum +
// rte_ipv4/6_udptcp_cksum_verify, Toeplitz vs rte_softrss; and every
// implementation of each kernel, to justify the dispatch table (docs/simd.md).
//
// Names: KERNEL/SUBJECT/SIZE. bench/simd/run pairs sluice with dpdk per size.
// Each benchmark also reports TSC cycles per byte (or per tuple / packet).
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "toeplitz_tables.hpp"
#include <benchmark/benchmark.h>
#include <emmintrin.h>
#include <x86intrin.h>

#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_thash.h>

#include "sluice/simd/checksum.hpp"
#include "sluice/simd/crc32c.hpp"
#include "sluice/simd/packet_hash.hpp"
#include "sluice/simd/toeplitz.hpp"

namespace {

using namespace sluice::simd;

constexpr std::size_t kSizes[] = {64, 1024, 9 * 1024, 64 * 1024};

std::vector<uint8_t> random_bytes(std::size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v)
        b = static_cast<uint8_t>(rng());
    return v;
}

// Runs fn over a buffer of `size` bytes and reports bytes/s and TSC cycles/byte.
template <class Fn>
void run_bytes(benchmark::State& state, std::size_t size, Fn fn) {
    // 64-byte aligned plus 3, so no kernel is flattered by alignment.
    std::vector<uint8_t> storage = random_bytes(size + 67, size);
    const uint8_t* p = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) + 3;
    uint64_t ticks = 0;
    for (auto _ : state) {
        const uint64_t t0 = __rdtsc();
        for (int i = 0; i < 16; ++i)
            benchmark::DoNotOptimize(fn(p, size));
        ticks += __rdtsc() - t0;
    }
    const double bytes = static_cast<double>(state.iterations()) * 16 * static_cast<double>(size);
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    state.counters["cycles_per_byte"] = static_cast<double>(ticks) / bytes;
}

void register_crc() {
    for (std::size_t size : kSizes) {
        const std::string s = "/" + std::to_string(size);
        benchmark::RegisterBenchmark(("crc32c/sluice" + s).c_str(), [size](benchmark::State& st) {
            run_bytes(st, size,
                      [](const uint8_t* p, std::size_t n) { return crc32c_raw(p, n, ~0u); });
        });
        benchmark::RegisterBenchmark(("crc32c/dpdk" + s).c_str(), [size](benchmark::State& st) {
            run_bytes(st, size, [](const uint8_t* p, std::size_t n) {
                return rte_hash_crc(p, static_cast<uint32_t>(n), ~0u);
            });
        });
    }
    struct Impl {
        const char* name;
        uint32_t (*fn)(const void*, std::size_t, uint32_t);
        bool ok;
    };
    const auto& f = cpu_features();
    const bool sse = detected_level() >= Level::Sse42;
    const Impl impls[] = {
        {"slice8", detail::crc32c_slice8, true},
        {"hw_serial", detail::crc32c_hw_serial, sse},
        {"hw_3way", detail::crc32c_hw_3way, sse},
        {"clmul_fold", detail::crc32c_clmul_fold, sse},
        {"vpclmul_fold", detail::crc32c_vpclmul_fold,
         detected_level() >= Level::Avx2 && f.vpclmulqdq},
        {"mixed", detail::crc32c_mixed, detected_level() >= Level::Avx2 && f.vpclmulqdq},
    };
    for (const auto& impl : impls) {
        if (!impl.ok) continue;
        for (std::size_t size :
             {std::size_t{64}, std::size_t{128}, std::size_t{256}, std::size_t{512},
              std::size_t{1024}, std::size_t{1518}, std::size_t{2048}, std::size_t{4096},
              std::size_t{9 * 1024}, std::size_t{64 * 1024}}) {
            const auto fn = impl.fn;
            benchmark::RegisterBenchmark(
                ("crc32c_impl/" + std::string(impl.name) + "/" + std::to_string(size)).c_str(),
                [size, fn](benchmark::State& st) {
                    run_bytes(st, size,
                              [fn](const uint8_t* p, std::size_t n) { return fn(p, n, ~0u); });
                });
        }
    }
}

void register_cksum() {
    for (std::size_t size : kSizes) {
        const std::string s = "/" + std::to_string(size);
        benchmark::RegisterBenchmark(("cksum/sluice" + s).c_str(), [size](benchmark::State& st) {
            run_bytes(st, size, [](const uint8_t* p, std::size_t n) { return raw_cksum(p, n); });
        });
        benchmark::RegisterBenchmark(("cksum/dpdk" + s).c_str(), [size](benchmark::State& st) {
            run_bytes(st, size,
                      [](const uint8_t* p, std::size_t n) { return rte_raw_cksum(p, n); });
        });
    }
    struct Impl {
        const char* name;
        uint64_t (*fn)(const void*, std::size_t, uint64_t);
        bool ok;
    };
    const Impl impls[] = {
        {"scalar", detail::cksum_add_scalar, true},
        {"sse42", detail::cksum_add_sse42, detected_level() >= Level::Sse42},
        {"avx2", detail::cksum_add_avx2, detected_level() >= Level::Avx2},
    };
    for (const auto& impl : impls) {
        if (!impl.ok) continue;
        for (std::size_t size :
             {std::size_t{20}, std::size_t{64}, std::size_t{256}, std::size_t{1024},
              std::size_t{1500}, std::size_t{9 * 1024}, std::size_t{64 * 1024}}) {
            const auto fn = impl.fn;
            benchmark::RegisterBenchmark(
                ("cksum_impl/" + std::string(impl.name) + "/" + std::to_string(size)).c_str(),
                [size, fn](benchmark::State& st) {
                    run_bytes(st, size, [fn](const uint8_t* p, std::size_t n) {
                        return cksum_fold(fn(p, n, 0));
                    });
                });
        }
    }
}

// ---- burst verification over an IMIX burst ------------------------------------

struct Burst {
    std::vector<std::vector<uint8_t>> packets;
    std::vector<PacketView> views;
    std::size_t bytes = 0;
};

void put16be(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

// 32 packets, IMIX 7:4:1 of 64, 594, 1518 bytes, TCP/UDP over IPv4 and IPv6,
// checksums made valid with DPDK's own functions.
Burst make_burst(std::size_t scale_to = 0) {
    Burst b;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 32; ++i) {
        const int r = i % 12;
        std::size_t len = r < 7 ? 64 : r < 11 ? 594 : 1518;
        if (scale_to) len = scale_to;
        const bool v6 = i % 5 == 0;
        const uint8_t proto = i % 3 == 0 ? 17 : 6;
        if (v6) len = std::max<std::size_t>(len, 74);  // the smallest IPv6 TCP frame
        std::vector<uint8_t> p(len);
        for (auto& x : p)
            x = static_cast<uint8_t>(rng());
        put16be(&p[12], v6 ? 0x86dd : 0x0800);
        uint8_t* ip = &p[14];
        const std::size_t l3len = len - 14;
        uint8_t* l4;
        if (!v6) {
            ip[0] = 0x45;
            put16be(ip + 2, static_cast<uint16_t>(l3len));
            put16be(ip + 6, 0x4000);
            ip[9] = proto;
            ip[10] = ip[11] = 0;
            auto* h = reinterpret_cast<rte_ipv4_hdr*>(ip);
            const uint16_t ck = rte_ipv4_cksum(h);
            std::memcpy(ip + 10, &ck, 2);
            l4 = ip + 20;
        } else {
            ip[0] = 0x60;
            put16be(ip + 4, static_cast<uint16_t>(l3len - 40));
            ip[6] = proto;
            l4 = ip + 40;
        }
        uint8_t* ckp = l4 + (proto == 6 ? 16 : 6);
        if (proto == 6)
            l4[12] = 0x50;
        else
            put16be(l4 + 4, static_cast<uint16_t>(len - (l4 - p.data())));
        ckp[0] = ckp[1] = 0;
        const uint16_t ck = v6 ? rte_ipv6_udptcp_cksum(reinterpret_cast<rte_ipv6_hdr*>(ip), l4)
                               : rte_ipv4_udptcp_cksum(reinterpret_cast<rte_ipv4_hdr*>(ip), l4);
        std::memcpy(ckp, &ck, 2);
        b.bytes += len;
        b.packets.push_back(std::move(p));
    }
    for (auto& p : b.packets)
        b.views.push_back(
            {reinterpret_cast<const std::byte*>(p.data()), static_cast<uint32_t>(p.size()), 14});
    return b;
}

void register_verify() {
    benchmark::RegisterBenchmark("verify/sluice/imix32", [](benchmark::State& st) {
        Burst b = make_burst();
        std::vector<ChecksumResult> out(b.views.size());
        uint64_t ticks = 0;
        for (auto _ : st) {
            const uint64_t t0 = __rdtsc();
            verify_checksums(b.views, out);
            benchmark::DoNotOptimize(out.data());
            ticks += __rdtsc() - t0;
        }
        for (const auto& r : out)
            if (r.l4 != Verdict::Good) st.SkipWithError("sluice rejected a good packet");
        st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * b.bytes));
        st.counters["cycles_per_packet"] = static_cast<double>(ticks) / st.iterations() / 32;
    });
    benchmark::RegisterBenchmark("verify/dpdk/imix32", [](benchmark::State& st) {
        Burst b = make_burst();
        std::vector<int> out(b.views.size());
        uint64_t ticks = 0;
        for (auto _ : st) {
            const uint64_t t0 = __rdtsc();
            for (std::size_t i = 0; i < b.views.size(); ++i) {
                const uint8_t* ip = b.packets[i].data() + 14;
                if ((ip[0] >> 4) == 4) {
                    const auto* h = reinterpret_cast<const rte_ipv4_hdr*>(ip);
                    out[i] = rte_ipv4_cksum(h) == 0 &&
                             rte_ipv4_udptcp_cksum_verify(h, ip + rte_ipv4_hdr_len(h)) == 0;
                } else {
                    out[i] = rte_ipv6_udptcp_cksum_verify(reinterpret_cast<const rte_ipv6_hdr*>(ip),
                                                          ip + 40) == 0;
                }
            }
            benchmark::DoNotOptimize(out.data());
            ticks += __rdtsc() - t0;
        }
        for (int ok : out)
            if (!ok) st.SkipWithError("dpdk rejected a good packet");
        st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * b.bytes));
        st.counters["cycles_per_packet"] = static_cast<double>(ticks) / st.iterations() / 32;
    });
}

// ---- Toeplitz --------------------------------------------------------------------

// Hashes back-to-back tuples filling `bytes` (64 B is 5 IPv4 tuples, 64 KiB
// is 5461): reports tuple bytes/s and TSC cycles per tuple.
template <class Fn>
void run_tuples(benchmark::State& st, std::size_t tuple_len, std::size_t bytes, Fn fn) {
    const std::size_t count = std::max<std::size_t>(1, bytes / tuple_len);
    const auto data = random_bytes(tuple_len * count, tuple_len);
    std::vector<uint32_t> out(count);
    uint64_t ticks = 0;
    for (auto _ : st) {
        const uint64_t t0 = __rdtsc();
        fn(data.data(), tuple_len, count, out.data());
        benchmark::DoNotOptimize(out.data());
        ticks += __rdtsc() - t0;
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * count * tuple_len));
    st.counters["cycles_per_tuple"] =
        static_cast<double>(ticks) / static_cast<double>(st.iterations() * count);
}

void register_toeplitz() {
    static const ToeplitzHash hash(kDefaultRssKey);
    static uint8_t be_key[40];
    rte_convert_rss_key(reinterpret_cast<const uint32_t*>(kDefaultRssKey.data()),
                        reinterpret_cast<uint32_t*>(be_key), sizeof be_key);
    for (std::size_t len : {kIpv4TupleLen, kIpv6TupleLen}) {
        for (std::size_t bytes : kSizes) {
            const std::string s = (len == kIpv4TupleLen ? "/v4x" : "/v6x") + std::to_string(bytes);
            benchmark::RegisterBenchmark(
                ("toeplitz/sluice" + s).c_str(), [len, bytes](benchmark::State& st) {
                    run_tuples(st, len, bytes,
                               [](const uint8_t* d, std::size_t l, std::size_t n, uint32_t* o) {
                                   hash.hash_bulk(reinterpret_cast<const std::byte*>(d), l, n, o);
                               });
                });
            // DPDK takes host-order words; converting them is part of its
            // cost in a real pipeline (rte_thash_tuple is filled the same way).
            benchmark::RegisterBenchmark(
                ("toeplitz/dpdk" + s).c_str(), [len, bytes](benchmark::State& st) {
                    run_tuples(st, len, bytes,
                               [](const uint8_t* d, std::size_t l, std::size_t n, uint32_t* o) {
                                   uint32_t words[9];
                                   for (std::size_t i = 0; i < n; ++i) {
                                       std::memcpy(words, d + i * l, l);
                                       for (std::size_t w = 0; w < l / 4; ++w)
                                           words[w] = __builtin_bswap32(words[w]);
                                       o[i] = rte_softrss(words, static_cast<uint32_t>(l / 4),
                                                          kDefaultRssKey.data());
                                   }
                               });
                });
            benchmark::RegisterBenchmark(
                ("toeplitz/dpdk_be" + s).c_str(), [len, bytes](benchmark::State& st) {
                    run_tuples(st, len, bytes,
                               [](const uint8_t* d, std::size_t l, std::size_t n, uint32_t* o) {
                                   uint32_t words[9];
                                   for (std::size_t i = 0; i < n; ++i) {
                                       std::memcpy(words, d + i * l, l);
                                       for (std::size_t w = 0; w < l / 4; ++w)
                                           words[w] = __builtin_bswap32(words[w]);
                                       o[i] = rte_softrss_be(words, static_cast<uint32_t>(l / 4),
                                                             be_key);
                                   }
                               });
                });
        }
    }
}

// The inline copy a frame builder would use instead of memcpy: 16-byte
// overlapping moves, no call. It was measured slower than glibc's memcpy for
// IMIX sizes (docs/simd.md), so simd/ has no copy kernel; this keeps the
// measurement reproducible.
inline void copy_small(void* dst, const void* src, std::size_t len) {
    auto* d = static_cast<uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    auto ld = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
    auto st = [](uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); };
    if (len <= 16) {
        if (len >= 8) {
            uint64_t a, b;
            std::memcpy(&a, s, 8);
            std::memcpy(&b, s + len - 8, 8);
            std::memcpy(d, &a, 8);
            std::memcpy(d + len - 8, &b, 8);
        } else if (len >= 4) {
            uint32_t a, b;
            std::memcpy(&a, s, 4);
            std::memcpy(&b, s + len - 4, 4);
            std::memcpy(d, &a, 4);
            std::memcpy(d + len - 4, &b, 4);
        } else {
            for (std::size_t i = 0; i < len; ++i)
                d[i] = s[i];
        }
        return;
    }
    if (len <= 32) {
        const __m128i a = ld(s), b = ld(s + len - 16);
        st(d, a), st(d + len - 16, b);
        return;
    }
    if (len <= 64) {
        const __m128i a = ld(s), b = ld(s + 16), c = ld(s + len - 32), e = ld(s + len - 16);
        st(d, a), st(d + 16, b), st(d + len - 32, c), st(d + len - 16, e);
        return;
    }
    // The last 64 bytes are loaded first, so the loop may overrun into them.
    const __m128i t0 = ld(s + len - 64), t1 = ld(s + len - 48), t2 = ld(s + len - 32),
                  t3 = ld(s + len - 16);
    for (std::size_t i = 0; i + 64 < len; i += 64) {
        const __m128i a = ld(s + i), b = ld(s + i + 16), c = ld(s + i + 32), e = ld(s + i + 48);
        st(d + i, a), st(d + i + 16, b), st(d + i + 32, c), st(d + i + 48, e);
    }
    st(d + len - 64, t0), st(d + len - 48, t1), st(d + len - 32, t2), st(d + len - 16, t3);
}

// IMIX packet lengths (7:4:1 of 60-66, 590-790, 1514) in a fixed random order,
// copied to consecutive 8-byte-aligned offsets as the frame builder does.
template <class Copy>
void run_copy(benchmark::State& st, std::size_t fixed, Copy copy) {
    std::mt19937_64 rng(5);
    std::vector<uint32_t> lens(1024);
    for (auto& l : lens) {
        const auto r = rng() % 12;
        l = fixed ? static_cast<uint32_t>(fixed)
                  : static_cast<uint32_t>(r < 7    ? 60 + rng() % 7
                                          : r < 11 ? 590 + rng() % 200
                                                   : 1514);
    }
    const auto src = random_bytes(2048 * 64, 9);
    std::vector<uint8_t> frame(1 << 20);
    uint64_t bytes = 0, ticks = 0;
    for (auto _ : st) {
        const uint64_t t0 = __rdtsc();
        std::size_t off = 0;
        for (std::size_t i = 0; i < 256; ++i) {
            const uint32_t l = lens[i];
            if (off + l > frame.size()) off = 0;
            copy(frame.data() + off, src.data() + (i % 64) * 2048, l);
            off += (l + 7) & ~std::size_t{7};
            bytes += l;
        }
        benchmark::DoNotOptimize(frame.data());
        ticks += __rdtsc() - t0;
    }
    st.SetBytesProcessed(static_cast<int64_t>(bytes));
    st.counters["cycles_per_packet"] = static_cast<double>(ticks) / st.iterations() / 256;
}

void register_copy() {
    for (std::size_t fixed :
         {std::size_t{0}, std::size_t{64}, std::size_t{594}, std::size_t{1518}}) {
        const std::string s = fixed ? "/" + std::to_string(fixed) : "/imix";
        benchmark::RegisterBenchmark(("copy/sluice" + s).c_str(), [fixed](benchmark::State& st) {
            run_copy(st, fixed, [](void* d, const void* s, std::size_t n) { copy_small(d, s, n); });
        });
        benchmark::RegisterBenchmark(("copy/memcpy" + s).c_str(), [fixed](benchmark::State& st) {
            run_copy(st, fixed, [](void* d, const void* s, std::size_t n) {
                // Through a volatile pointer, as an out-of-line call to glibc
                // like the one the frame builder would make.
                static void* (*volatile fn)(void*, const void*, std::size_t) = std::memcpy;
                fn(d, s, n);
            });
        });
    }
}

// capture.dedup's hash of a packet, against what a DPDK application would
// reach for to tell packets apart (rte_hash_crc: 32 bits, not keyed), at
// packet sizes.
void register_packet_hash() {
    static const PacketHashKey key = PacketHashKey::from_seed(1);
    constexpr std::size_t kPacketSizes[] = {64, 594, 1518, 9018};
    for (std::size_t size : kPacketSizes) {
        const std::string s = "/" + std::to_string(size);
        benchmark::RegisterBenchmark(("phash/sluice" + s).c_str(), [size](benchmark::State& st) {
            run_bytes(st, size,
                      [](const uint8_t* p, std::size_t n) { return packet_hash(p, n, key); });
        });
        benchmark::RegisterBenchmark(("phash/dpdk" + s).c_str(), [size](benchmark::State& st) {
            run_bytes(st, size, [](const uint8_t* p, std::size_t n) {
                return rte_hash_crc(p, static_cast<uint32_t>(n), ~0u);
            });
        });
    }
    struct Impl {
        const char* name;
        uint64_t (*fn)(const void*, std::size_t, const PacketHashKey&);
        bool ok;
    };
    const Impl impls[] = {
        {"scalar", detail::packet_hash_scalar, true},
        {"avx2", detail::packet_hash_avx2, detected_level() >= Level::Avx2},
        {"avx512", detail::packet_hash_avx512, detected_level() >= Level::Avx512},
    };
    for (const auto& impl : impls) {
        if (!impl.ok) continue;
        for (std::size_t size : kPacketSizes) {
            const auto fn = impl.fn;
            benchmark::RegisterBenchmark(
                ("phash_impl/" + std::string(impl.name) + "/" + std::to_string(size)).c_str(),
                [size, fn](benchmark::State& st) {
                    run_bytes(st, size,
                              [fn](const uint8_t* p, std::size_t n) { return fn(p, n, key); });
                });
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_crc();
    register_cksum();
    register_verify();
    register_toeplitz();
    register_copy();
    register_packet_hash();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    std::fprintf(stderr, "simd level %s: crc32c=%s checksum=%s toeplitz=%s\n",
                 std::string(level_name(active_level())).c_str(),
                 std::string(active_kernels().crc32c).c_str(),
                 std::string(active_kernels().checksum).c_str(),
                 std::string(active_kernels().toeplitz).c_str());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
