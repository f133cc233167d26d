// Codec throughput per core on a capture, each against the codec library
// called directly on the same frame payloads in the same process:
//   codec  - the codec stage: FrameEncoder::seal() on built frames (compress,
//            header, payload and header CRC-32C)
//   sender - the batch and codec stages together: FrameBuilder copying every
//            packet into frames, then seal()
//   read   - FrameReader::open() (both CRCs, decompress, check every record)
//            and a walk over the records
// bench/wire/run adds the lz4/zstd command-line benchmarks on the same bytes
// (--dump-raw).
//
//   bench_codec --pcap FILE --frame BYTES --codec none|lz4|zstd [--level N]
//               [--seconds S] [--dump-raw FILE]
//
// Prints one line of key=value: MB/s (10^6 bytes of raw payload per second,
// the unit of lz4 -b and zstd -b), best of several interleaved slices like
// the command-line benchmarks, and the compression ratio raw/stored.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <lz4.h>
#include <time.h>
#include <zstd.h>

#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice::wire;
using Clock = std::chrono::steady_clock;

struct Packet {
    uint64_t ts_ns;
    uint32_t orig_len;
    std::vector<std::byte> data;
};

bool read_pcap(const std::string& path, std::vector<Packet>& out) {
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> f((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    if (f.size() < 24) return false;
    uint32_t magic;
    std::memcpy(&magic, f.data(), 4);
    if (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) return false;  // pcapgen writes host order
    const bool nano = magic == 0xa1b23c4d;
    for (std::size_t at = 24; at + 16 <= f.size();) {
        uint32_t h[4];
        std::memcpy(h, f.data() + at, 16);
        if (at + 16 + h[2] > f.size()) break;
        Packet p{uint64_t{h[0]} * 1000000000ull + uint64_t{h[1]} * (nano ? 1 : 1000), h[3], {}};
        p.data.assign(reinterpret_cast<const std::byte*>(f.data() + at + 16),
                      reinterpret_cast<const std::byte*>(f.data() + at + 16 + h[2]));
        out.push_back(std::move(p));
        at += 16 + h[2];
    }
    return !out.empty();
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double thread_cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

volatile uint64_t g_sink;

}  // namespace

int main(int argc, char** argv) {
    std::string pcap, dump;
    uint32_t frame = 65536;
    Codec codec = Codec::Lz4;
    int level = 1;
    double seconds = 2.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--pcap")
            pcap = v;
        else if (a == "--frame")
            frame = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--codec" && parse_codec(v))
            codec = *parse_codec(v);
        else if (a == "--level")
            level = std::stoi(v);
        else if (a == "--seconds")
            seconds = std::stod(v);
        else if (a == "--dump-raw")
            dump = v;
        else {
            std::fprintf(stderr, "bench_codec: bad argument %s %s\n", a.c_str(), v.c_str());
            return 2;
        }
    }
    std::vector<Packet> pkts;
    if (pcap.empty() || !read_pcap(pcap, pkts)) {
        std::fprintf(stderr, "bench_codec: give --pcap FILE (a pcap from sluice-pcapgen)\n");
        return 2;
    }
    const uint32_t snap = 9018;  // the corpus has at most jumbo frames
    if (frame < min_frame_bytes(snap)) {
        std::fprintf(stderr, "bench_codec: --frame must be >= %zu\n", min_frame_bytes(snap));
        return 2;
    }

    FrameBuilder builder({.max_frame_bytes = frame, .snaplen = snap});
    EncoderConfig cfg{.codec = codec,
                      .lz4_acceleration = 1,
                      .zstd_level = level,
                      .min_compress_bytes = 0,
                      .max_raw_frame_bytes = frame};
    FrameEncoder encoder(cfg);
    FrameReader reader({.max_raw_len = frame, .max_stored_len = frame});
    std::vector<std::byte> buf(frame), out(FrameEncoder::max_sealed_size(frame)), scratch(frame);

    // The frames the sender path produces, built once for the library and
    // reader measurements (and the command-line tools).
    std::vector<std::vector<std::byte>> raw_frames, sealed_frames;
    uint64_t payload_bytes = 0, stored_bytes = 0;
    for (std::size_t i = 0; i < pkts.size();) {
        builder.begin(buf, 1, raw_frames.size(), i);
        for (; i < pkts.size(); ++i)
            if (builder.append({pkts[i].ts_ns, pkts[i].orig_len, 0, 0, 0}, pkts[i].data) ==
                AppendResult::FrameFull)
                break;
        auto raw = builder.finish();
        raw_frames.emplace_back(raw.begin(), raw.end());
        payload_bytes += raw.size() - kHeaderSize;
        auto s = encoder.seal(raw, out);
        if (!s) {
            std::fprintf(stderr, "bench_codec: seal failed: %s\n", to_string(s.error()).data());
            return 1;
        }
        stored_bytes += s->frame.size() - kHeaderSize;
        sealed_frames.emplace_back(s->frame.begin(), s->frame.end());
    }
    if (!dump.empty()) {
        std::ofstream o(dump, std::ios::binary);
        for (const auto& f : raw_frames)
            o.write(reinterpret_cast<const char*>(f.data() + kHeaderSize),
                    static_cast<std::streamsize>(f.size() - kHeaderSize));
    }

    // Library baselines: the same calls the encoder and reader make, without
    // framing, copies or CRCs.
    std::vector<std::byte> lz4_state(static_cast<std::size_t>(LZ4_sizeofState()));
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    std::vector<std::vector<std::byte>> lib_compressed;
    auto lib_compress = [&](const std::vector<std::byte>& f, std::byte* dst, std::size_t cap) {
        const char* src = reinterpret_cast<const char*>(f.data() + kHeaderSize);
        const int n = static_cast<int>(f.size() - kHeaderSize);
        if (codec == Codec::Lz4)
            return static_cast<std::size_t>(LZ4_compress_fast_extState(
                lz4_state.data(), src, reinterpret_cast<char*>(dst), n, static_cast<int>(cap), 1));
        if (codec == Codec::Zstd) return ZSTD_compressCCtx(cctx, dst, cap, src, n, level);
        std::memcpy(dst, src, n);
        return static_cast<std::size_t>(n);
    };
    for (const auto& f : raw_frames) {
        std::vector<std::byte> c(out.size());
        c.resize(lib_compress(f, c.data(), c.size()));
        lib_compressed.push_back(std::move(c));
    }

    auto codec_pass = [&] {
        for (auto& f : raw_frames) {
            auto s = encoder.seal(f, out);
            g_sink = g_sink + s->frame.size();
        }
    };
    auto sender_pass = [&] {
        std::size_t i = 0;
        uint64_t seq = 0;
        while (i < pkts.size()) {
            builder.begin(buf, 1, seq++, i);
            for (; i < pkts.size(); ++i)
                if (builder.append({pkts[i].ts_ns, pkts[i].orig_len, 0, 0, 0}, pkts[i].data) ==
                    AppendResult::FrameFull)
                    break;
            auto s = encoder.seal(builder.finish(), out);
            g_sink = g_sink + s->frame.size();
        }
    };
    auto library_pass = [&] {
        for (const auto& f : raw_frames)
            g_sink = g_sink + lib_compress(f, out.data(), out.size());
    };
    auto reader_pass = [&] {
        for (const auto& f : sealed_frames) {
            auto v = reader.open(f, scratch);
            uint64_t n = 0;
            for (const Record& r : *v)
                n += r.caplen;
            g_sink = g_sink + n;
        }
    };
    auto library_read_pass = [&] {
        for (std::size_t k = 0; k < lib_compressed.size(); ++k) {
            const auto& c = lib_compressed[k];
            const int raw = static_cast<int>(raw_frames[k].size() - kHeaderSize);
            if (codec == Codec::Lz4)
                g_sink = g_sink + static_cast<uint64_t>(
                                      LZ4_decompress_safe(reinterpret_cast<const char*>(c.data()),
                                                          reinterpret_cast<char*>(scratch.data()),
                                                          static_cast<int>(c.size()), raw));
            else if (codec == Codec::Zstd)
                g_sink =
                    g_sink + ZSTD_decompressDCtx(dctx, scratch.data(), raw, c.data(), c.size());
            else
                std::memcpy(scratch.data(), c.data(), c.size());
        }
    };

    // Interleave the measurements in short slices and keep each one's fastest
    // pass over the whole corpus, as lz4 -b and zstd -b keep their fastest
    // loop: by wall clock (what they report) and by this thread's CPU time
    // (which other processes on a shared machine cannot inflate).
    struct Best {
        double wall = 0, cpu = 0;
    } best[5];
    auto measure = [&](auto& pass, Best& b) {
        const auto t_slice = Clock::now();
        do {
            const auto t0 = Clock::now();
            const double c0 = thread_cpu_seconds();
            pass();
            const double bytes = static_cast<double>(payload_bytes);
            b.wall = std::max(b.wall, bytes / seconds_since(t0) / 1e6);
            b.cpu = std::max(b.cpu, bytes / (thread_cpu_seconds() - c0) / 1e6);
        } while (seconds_since(t_slice) < seconds / 20);
    };
    const auto t_all = Clock::now();
    while (seconds_since(t_all) < seconds) {
        measure(sender_pass, best[0]);
        measure(library_pass, best[1]);
        measure(reader_pass, best[2]);
        measure(library_read_pass, best[3]);
        measure(codec_pass, best[4]);
    }
    uint64_t lib_stored = 0;
    for (const auto& c : lib_compressed)
        lib_stored += c.size();
    std::printf(
        "codec=%s level=%d frame=%u frames=%zu packets=%zu raw_bytes=%llu "
        "codec_MBps=%.1f sender_MBps=%.1f library_compress_MBps=%.1f "
        "read_MBps=%.1f library_decompress_MBps=%.1f "
        "codec_cpu_MBps=%.1f sender_cpu_MBps=%.1f library_compress_cpu_MBps=%.1f "
        "read_cpu_MBps=%.1f library_decompress_cpu_MBps=%.1f "
        "sluice_ratio=%.4f library_ratio=%.4f\n",
        std::string(codec_name(codec)).c_str(), level, frame, raw_frames.size(), pkts.size(),
        static_cast<unsigned long long>(payload_bytes), best[4].wall, best[0].wall, best[1].wall,
        best[2].wall, best[3].wall, best[4].cpu, best[0].cpu, best[1].cpu, best[2].cpu, best[3].cpu,
        static_cast<double>(payload_bytes) / static_cast<double>(stored_bytes),
        static_cast<double>(payload_bytes) / static_cast<double>(lib_stored));
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    return 0;
}
