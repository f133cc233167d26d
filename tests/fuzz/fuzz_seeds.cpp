// Writes seed inputs for the fuzz targets from the packets of a pcap
// (sluice-pcapgen's output in scripts/fuzz):
//   --kind frames   (frame_reader) real frames for every codec, several frame
//                   sizes and snap lengths, each prefixed with the target's
//                   mode byte
//   --kind packets  (checksum_verify) the first 300 packets, one per file
//
//   fuzz_seeds --pcap FILE --out DIR [--kind frames|packets] [--max-frame BYTES]
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice::wire;

struct Packet {
    uint64_t ts_ns;
    uint32_t orig_len;
    std::vector<std::byte> data;
};

// Classic pcap, either byte order, microsecond or nanosecond timestamps.
bool read_pcap(const std::string& path, std::vector<Packet>& out) {
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> f((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    if (f.size() < 24) return false;
    uint32_t magic;
    std::memcpy(&magic, f.data(), 4);
    const bool swap = magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1;
    const bool nano = magic == 0xa1b23c4d || magic == 0x4d3cb2a1;
    if (!swap && magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) return false;
    auto u32 = [&](std::size_t at) {
        uint32_t v;
        std::memcpy(&v, f.data() + at, 4);
        return swap ? __builtin_bswap32(v) : v;
    };
    for (std::size_t at = 24; at + 16 <= f.size();) {
        const uint32_t caplen = u32(at + 8);
        if (at + 16 + caplen > f.size()) break;
        Packet p;
        p.ts_ns = uint64_t{u32(at)} * 1000000000ull + uint64_t{u32(at + 4)} * (nano ? 1 : 1000);
        p.orig_len = u32(at + 12);
        p.data.assign(reinterpret_cast<const std::byte*>(f.data() + at + 16),
                      reinterpret_cast<const std::byte*>(f.data() + at + 16 + caplen));
        out.push_back(std::move(p));
        at += 16 + caplen;
    }
    return !out.empty();
}

int usage() {
    std::fprintf(stderr,
                 "usage: fuzz_seeds --pcap FILE --out DIR [--kind frames|packets] "
                 "[--max-frame BYTES]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string pcap, dir, kind = "frames";
    uint32_t max_frame = 65536;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--pcap")
            pcap = argv[i + 1];
        else if (a == "--out")
            dir = argv[i + 1];
        else if (a == "--kind")
            kind = argv[i + 1];
        else if (a == "--max-frame")
            max_frame = static_cast<uint32_t>(std::stoul(argv[i + 1]));
        else
            return usage();
    }
    if (pcap.empty() || dir.empty() || (kind != "frames" && kind != "packets")) return usage();
    std::vector<Packet> pkts;
    if (!read_pcap(pcap, pkts)) {
        std::fprintf(stderr, "fuzz_seeds: %s is not a readable pcap\n", pcap.c_str());
        return 1;
    }
    std::filesystem::create_directories(dir);
    if (kind == "packets") {
        std::size_t n = 0;
        for (; n < pkts.size() && n < 300; ++n) {
            std::ofstream o(dir + "/seed-packet-" + std::to_string(n), std::ios::binary);
            o.write(reinterpret_cast<const char*>(pkts[n].data.data()),
                    static_cast<std::streamsize>(pkts[n].data.size()));
        }
        std::printf("fuzz_seeds: wrote %zu packet seeds to %s\n", n, dir.c_str());
        return 0;
    }
    std::size_t written = 0, next = 0;
    for (uint32_t frame : {256u, 1024u, 4096u, 16384u, max_frame}) {
        for (uint32_t snap : {64u, 1518u, 9018u}) {
            if (min_frame_bytes(snap) > frame) continue;
            for (Codec codec : {Codec::None, Codec::Lz4, Codec::Zstd}) {
                FrameBuilder b({.max_frame_bytes = frame, .snaplen = snap});
                std::vector<std::byte> buf(frame);
                b.begin(buf, written, next, next);
                while (next < pkts.size()) {
                    const Packet& p = pkts[next];
                    const RecordMeta m{p.ts_ns, p.orig_len, static_cast<uint16_t>(next % 2),
                                       static_cast<uint16_t>(next % 3),
                                       static_cast<uint32_t>(next % 4)};
                    if (b.append(m, p.data) == AppendResult::FrameFull) break;
                    ++next;
                }
                if (next >= pkts.size()) next = 0;
                FrameEncoder enc(
                    {.codec = codec, .min_compress_bytes = 128, .max_raw_frame_bytes = frame});
                auto raw = b.finish();
                std::vector<std::byte> out(FrameEncoder::max_sealed_size(raw.size()));
                auto s = enc.seal(raw, out);
                if (!s) continue;
                for (uint8_t mode : {uint8_t{0}, uint8_t{3}}) {
                    const std::string name = dir + "/seed-" + std::string(codec_name(codec)) + "-" +
                                             std::to_string(frame) + "-" + std::to_string(snap) +
                                             "-m" + std::to_string(mode);
                    std::ofstream o(name, std::ios::binary);
                    o.put(static_cast<char>(mode));
                    o.write(reinterpret_cast<const char*>(s->frame.data()),
                            static_cast<std::streamsize>(s->frame.size()));
                    ++written;
                }
            }
        }
    }
    std::printf("fuzz_seeds: wrote %zu seeds to %s\n", written, dir.c_str());
    return 0;
}
