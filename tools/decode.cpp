// sluice-decode: reads a file of sluice frames (egress.type = "file") and
// lists them, or converts their packets to a pcap that tshark reads.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "sluice/wire/format.hpp"
#include "sluice/wire/reader.hpp"

namespace {

int usage(FILE* to) {
    std::fprintf(to,
                 "usage: sluice-decode FILE [--pcap OUT] [--frames]\n"
                 "Verifies every frame of FILE (CRCs, lengths, records), prints a summary.\n"
                 "  --pcap OUT   write the packets to OUT (pcap, nanosecond timestamps)\n"
                 "  --frames     one line per frame: stream, sequence, packets, codec, sizes\n"
                 "Exit status: 0 all frames valid, 1 a frame is malformed (offset and reason\n"
                 "printed), 2 usage or I/O error.\n");
    return to == stderr ? 2 : 0;
}

int run(int argc, char** argv) {
    std::string in, pcap_out;
    bool per_frame = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--pcap" && i + 1 < argc) {
            pcap_out = argv[++i];
        } else if (a == "--frames") {
            per_frame = true;
        } else if (a == "-h" || a == "--help") {
            return usage(stdout);
        } else if (in.empty() && a[0] != '-') {
            in = a;
        } else {
            std::fprintf(stderr, "sluice-decode: unknown argument '%s'\n", a.c_str());
            return usage(stderr);
        }
    }
    if (in.empty()) return usage(stderr);

    std::ifstream f(in, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "sluice-decode: cannot read %s: %s\n", in.c_str(),
                     std::strerror(errno));
        return 2;
    }
    f.seekg(0, std::ios::end);
    std::vector<std::byte> data(static_cast<std::size_t>(f.tellg()));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()));
    FILE* pcap = nullptr;
    if (!pcap_out.empty()) {
        pcap = std::fopen(pcap_out.c_str(), "wb");
        if (!pcap) {
            std::fprintf(stderr, "sluice-decode: cannot write %s: %s\n", pcap_out.c_str(),
                         std::strerror(errno));
            return 2;
        }
        const uint32_t gh[6] = {0xa1b23c4du, 0x00040002u, 0, 0, sluice::wire::kMaxSnaplen, 1};
        std::fwrite(gh, sizeof gh, 1, pcap);
    }

    sluice::wire::FrameReader reader;
    std::vector<std::byte> scratch;
    std::size_t off = 0;
    uint64_t frames = 0, packets = 0, bytes = 0, stored = 0, statistics = 0;
    std::map<uint64_t, uint64_t> next_seq;  // per stream
    uint64_t gaps = 0;
    int rc = 0;
    while (off < data.size()) {
        const std::span<const std::byte> rest(data.data() + off, data.size() - off);
        auto info = sluice::wire::parse_header(rest, reader.limits());
        if (!info) {
            std::fprintf(stderr, "sluice-decode: %s: offset %zu: %s\n", in.c_str(), off,
                         std::string(sluice::wire::to_string(info.error())).c_str());
            rc = 1;
            break;
        }
        scratch.resize(info->raw_len);
        auto view = reader.open(rest, scratch);
        if (!view) {
            std::fprintf(stderr, "sluice-decode: %s: frame %llu at offset %zu: %s\n", in.c_str(),
                         static_cast<unsigned long long>(frames), off,
                         std::string(sluice::wire::to_string(view.error())).c_str());
            rc = 1;
            break;
        }
        const auto& fi = view->info();
        auto it = next_seq.find(fi.stream_id);
        if (it != next_seq.end() && fi.sequence != it->second) ++gaps;
        next_seq[fi.stream_id] = fi.sequence + 1;
        if (per_frame) {
            std::printf("stream %llu seq %llu first %llu packets %u codec %s raw %u stored %u\n",
                        static_cast<unsigned long long>(fi.stream_id),
                        static_cast<unsigned long long>(fi.sequence),
                        static_cast<unsigned long long>(fi.first_packet_index), fi.packet_count,
                        std::string(sluice::wire::codec_name(fi.codec)).c_str(), fi.raw_len,
                        fi.stored_len);
        }
        if (view->is_statistics()) ++statistics;
        for (const auto& e : view->statistics()) {
            if (!per_frame) continue;
            std::printf(
                "  port %u queue %u: received %llu, nic dropped %llu, accepted %llu, "
                "dropped %llu, delivered %llu (%.*s)\n",
                e.port, e.queue, static_cast<unsigned long long>(e.received),
                static_cast<unsigned long long>(e.nic_dropped),
                static_cast<unsigned long long>(e.accepted),
                static_cast<unsigned long long>(e.dropped),
                static_cast<unsigned long long>(e.delivered),
                static_cast<int>(e.description.size()), e.description.data());
        }
        for (const auto& r : *view) {
            ++packets;
            bytes += r.caplen;
            if (pcap) {
                const uint32_t rec[4] = {static_cast<uint32_t>(r.timestamp_ns / 1000000000u),
                                         static_cast<uint32_t>(r.timestamp_ns % 1000000000u),
                                         r.caplen, r.orig_len};
                std::fwrite(rec, sizeof rec, 1, pcap);
                std::fwrite(r.data.data(), 1, r.data.size(), pcap);
            }
        }
        ++frames;
        stored += fi.frame_len();
        off += fi.frame_len();
    }
    if (pcap && std::fclose(pcap) != 0) {
        std::fprintf(stderr, "sluice-decode: writing %s failed\n", pcap_out.c_str());
        rc = 2;
    }
    std::printf(
        "%llu frames (%llu of interface statistics), %llu packets, %llu packet bytes, %llu bytes "
        "on the wire, %zu stream(s), %llu sequence gap(s)\n",
        static_cast<unsigned long long>(frames), static_cast<unsigned long long>(statistics),
        static_cast<unsigned long long>(packets), static_cast<unsigned long long>(bytes),
        static_cast<unsigned long long>(stored), next_seq.size(),
        static_cast<unsigned long long>(gaps));
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice-decode: %s\n", e.what());
        return 2;
    }
}
