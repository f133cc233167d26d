// The collector's writing path with its index on and off, in one process:
// frames built once from a pcap (codec none, 256 KiB, two queues, as
// sluice-send makes them), then Stream::add() and commit() every 8 frames
// (about 2 MiB, a typical read) into a fresh directory, as the event loop
// does, without a sender or a socket sharing the CPU. Modes alternate in a
// random order each round; one JSON line per run on stdout.
//
//   bench_stream_index --pcap FILE --dir DIR [--rounds N] [--compress zstd]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <pcap/pcap.h>
#include <time.h>

#include "sluice/collector/stream.hpp"
#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice;
namespace fs = std::filesystem;

double cpu_now() {
    timespec t;
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + double(t.tv_nsec) / 1e9;
}

double wall_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

int main(int argc, char** argv) {
    std::string pcap_path, dir, compress;
    int rounds = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--pcap")
            pcap_path = v;
        else if (k == "--dir")
            dir = v;
        else if (k == "--rounds")
            rounds = std::stoi(v);
        else if (k == "--compress")
            compress = v;
    }
    if (pcap_path.empty() || dir.empty()) {
        std::fprintf(stderr,
                     "usage: bench_stream_index --pcap FILE --dir DIR [--rounds N] "
                     "[--compress zstd]\n");
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p =
        pcap_open_offline_with_tstamp_precision(pcap_path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) {
        std::fprintf(stderr, "bench_stream_index: %s\n", err);
        return 1;
    }
    // Frames as the egress builds them.
    constexpr uint32_t kFrame = 256 * 1024;
    wire::FrameBuilder builder({kFrame, 65535});
    wire::FrameEncoder encoder({.codec = wire::Codec::None, .max_raw_frame_bytes = kFrame});
    std::vector<std::vector<std::byte>> frames;
    std::vector<std::byte> raw(kFrame), sealed(wire::FrameEncoder::max_sealed_size(kFrame));
    uint64_t packets = 0, bytes = 0;
    auto seal = [&] {
        auto s = encoder.seal(builder.finish(), sealed);
        if (!s) std::abort();
        frames.emplace_back(s->frame.begin(), s->frame.end());
    };
    pcap_pkthdr* h;
    const u_char* d;
    builder.begin(raw, 1, 0, 0);
    while (pcap_next_ex(p, &h, &d) == 1) {
        const wire::RecordMeta m{uint64_t(h->ts.tv_sec) * 1'000'000'000u + uint64_t(h->ts.tv_usec),
                                 h->len, 0, uint16_t(packets % 2), 0};
        const std::span<const std::byte> data(reinterpret_cast<const std::byte*>(d), h->caplen);
        if (builder.append(m, data) == wire::AppendResult::FrameFull) {
            seal();
            builder.begin(raw, 1, frames.size(), packets);
            builder.append(m, data);
        }
        ++packets;
        bytes += h->caplen;
    }
    seal();
    pcap_close(p);

    collector::ZstdCompressor zstd(3);
    wire::FrameReader reader;
    std::vector<std::byte> scratch(kFrame + 65536);
    std::mt19937 rng(1);
    for (int r = 0; r < rounds; ++r) {
        std::vector<bool> modes = {true, false};
        std::shuffle(modes.begin(), modes.end(), rng);
        for (bool index : modes) {
            const fs::path out =
                fs::path(dir) / ("run-" + std::to_string(r) + (index ? "-on" : "-off"));
            fs::create_directories(out / ".sluice");
            collector::StreamSettings set;
            set.dir = out.string();
            set.index = index;
            set.compression =
                compress == "zstd" ? collector::Compression::Zstd : collector::Compression::None;
            set.application = "bench";
            collector::Workspace ws;
            ws.zstd = &zstd;
            {
                collector::Stream s(1, set, ws);
                s.recover();
                session::Hello hello;
                hello.session_id = 1;
                hello.position.known = true;
                s.on_hello(hello);
                const double c0 = cpu_now(), w0 = wall_now();
                for (std::size_t i = 0; i < frames.size(); ++i) {
                    auto v = reader.open(frames[i], scratch);
                    if (!v.ok()) std::abort();
                    s.add(*v);
                    if (i % 8 == 7 && !s.commit()) std::abort();
                }
                if (!s.commit()) std::abort();
                s.close_file();
                const double cpu = cpu_now() - c0, wall = wall_now() - w0;
                std::printf(
                    "{\"index\": %s, \"round\": %d, \"packets\": %llu, \"bytes\": %llu, "
                    "\"seconds\": %.6f, \"cpu_seconds\": %.6f}\n",
                    index ? "true" : "false", r, (unsigned long long)packets,
                    (unsigned long long)bytes, wall, cpu);
                std::fflush(stdout);
            }
            fs::remove_all(out);
        }
    }
    return 0;
}
