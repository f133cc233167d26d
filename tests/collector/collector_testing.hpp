// Helpers for the collector tests: a strict pcapng reader (plain or zstd),
// frames from known packets, and temporary directories.
#pragma once

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zstd.h>

#include "sluice/collector/pcapng.hpp"
#include "sluice/collector/stream.hpp"
#include "sluice/wire/wire.hpp"

namespace sluice::collector::testing {

namespace fs = std::filesystem;

struct Packet {
    uint16_t port = 0, queue = 0;
    uint64_t ts_ns = 0;
    uint32_t orig_len = 0;
    uint32_t epb_flags = 0;
    std::vector<std::byte> data;
    bool operator==(const Packet&) const = default;
};

struct Interface {
    uint16_t link_type = 0;
    uint32_t snaplen = 0;
    std::string name, description;
    int tsresol = -1;
};

struct Pcapng {
    std::string user_application, comment;
    std::vector<Interface> interfaces;
    std::vector<Packet> packets;
    std::size_t statistics = 0;  // Interface Statistics Blocks
};

inline std::vector<std::byte> read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> v(c.size());
    std::memcpy(v.data(), c.data(), c.size());
    return v;
}

// Decompresses every zstd frame of a file in sequence.
inline std::vector<std::byte> unzstd(const std::vector<std::byte>& in) {
    std::vector<std::byte> out;
    ZSTD_DStream* d = ZSTD_createDStream();
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    std::vector<std::byte> chunk(1 << 16);
    while (ib.pos < ib.size) {
        ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
        const std::size_t r = ZSTD_decompressStream(d, &ob, &ib);
        EXPECT_FALSE(ZSTD_isError(r)) << ZSTD_getErrorName(r);
        if (ZSTD_isError(r)) break;
        out.insert(out.end(), chunk.begin(), chunk.begin() + ob.pos);
    }
    ZSTD_freeDStream(d);
    return out;
}

template <class T>
T get(const std::vector<std::byte>& b, std::size_t at) {
    T v;
    std::memcpy(&v, b.data() + at, sizeof v);
    return v;
}

// Parses one pcapng section strictly: every block length and trailer,
// the byte-order magic, option framing. ADD_FAILUREs on anything else.
inline Pcapng parse_pcapng(const std::vector<std::byte>& b) {
    Pcapng out;
    std::size_t off = 0;
    int sections = 0;
    while (off < b.size()) {
        if (off + 12 > b.size()) {
            ADD_FAILURE() << "truncated block at " << off;
            break;
        }
        const uint32_t type = get<uint32_t>(b, off), len = get<uint32_t>(b, off + 4);
        if (len % 4 || len < 12 || off + len > b.size() || get<uint32_t>(b, off + len - 4) != len) {
            ADD_FAILURE() << "bad block length at " << off;
            break;
        }
        auto options = [&](std::size_t at, std::size_t end, auto&& each) {
            while (at + 4 <= end) {
                const uint16_t code = get<uint16_t>(b, at), n = get<uint16_t>(b, at + 2);
                if (code == 0) break;
                each(code, std::string(reinterpret_cast<const char*>(b.data() + at + 4), n));
                at += 4 + ((n + 3u) & ~3u);
            }
        };
        if (type == pcapng::kSectionHeaderBlock) {
            ++sections;
            EXPECT_EQ(get<uint32_t>(b, off + 8), pcapng::kByteOrderMagic);
            EXPECT_EQ(get<uint16_t>(b, off + 12), 1);
            options(off + 24, off + len - 4, [&](uint16_t c, const std::string& v) {
                if (c == pcapng::kShbUserAppl) out.user_application = v;
                if (c == pcapng::kOptComment) out.comment = v;
            });
        } else if (type == pcapng::kInterfaceDescriptionBlock) {
            Interface i;
            i.link_type = get<uint16_t>(b, off + 8);
            i.snaplen = get<uint32_t>(b, off + 12);
            options(off + 16, off + len - 4, [&](uint16_t c, const std::string& v) {
                if (c == pcapng::kIfName) i.name = v;
                if (c == pcapng::kIfDescription) i.description = v;
                if (c == pcapng::kIfTsresol) i.tsresol = static_cast<uint8_t>(v[0]);
            });
            out.interfaces.push_back(i);
        } else if (type == pcapng::kEnhancedPacketBlock) {
            Packet p;
            const uint32_t ifid = get<uint32_t>(b, off + 8);
            EXPECT_LT(ifid, out.interfaces.size()) << "EPB before its IDB";
            p.ts_ns = (uint64_t{get<uint32_t>(b, off + 12)} << 32) | get<uint32_t>(b, off + 16);
            const uint32_t caplen = get<uint32_t>(b, off + 20);
            p.orig_len = get<uint32_t>(b, off + 24);
            p.data.assign(b.begin() + off + 28, b.begin() + off + 28 + caplen);
            options(off + 28 + ((caplen + 3u) & ~3u), off + len - 4,
                    [&](uint16_t c, const std::string& v) {
                        if (c == pcapng::kEpbFlags) std::memcpy(&p.epb_flags, v.data(), 4);
                    });
            if (ifid < out.interfaces.size() &&
                out.interfaces[ifid].name.rfind("sluice-s", 0) == 0) {
                // sluice-s<stream>-p<port>-q<queue>
                unsigned s = 0, port = 0, q = 0;
                EXPECT_EQ(std::sscanf(out.interfaces[ifid].name.c_str(), "sluice-s%u-p%u-q%u", &s,
                                      &port, &q),
                          3);
                p.port = static_cast<uint16_t>(port);
                p.queue = static_cast<uint16_t>(q);
            }
            out.packets.push_back(std::move(p));
        } else if (type == pcapng::kInterfaceStatisticsBlock) {
            EXPECT_LT(get<uint32_t>(b, off + 8), out.interfaces.size()) << "ISB before its IDB";
            ++out.statistics;
        } else {
            ADD_FAILURE() << "unexpected block type " << type;
        }
        off += len;
    }
    EXPECT_EQ(sections, 1);
    return out;
}

inline Pcapng read_pcapng(const fs::path& p) {
    auto b = read_file(p);
    const std::string name = p.filename().string();
    if (name.ends_with(".zst") || name.ends_with(".zst.part")) b = unzstd(b);
    return parse_pcapng(b);
}

// This stream's files in the output directory, finished and being written
// (NAME.part), in index order.
inline std::vector<fs::path> stream_files(const fs::path& dir, uint64_t stream) {
    std::vector<std::pair<uint64_t, fs::path>> v;
    for (const auto& e : fs::directory_iterator(dir))
        if (auto i = parse_output_file_index(e.path().filename().string(), stream))
            v.emplace_back(*i, e.path());
    std::sort(v.begin(), v.end());
    std::vector<fs::path> out;
    for (auto& [i, p] : v)
        out.push_back(p);
    return out;
}

inline std::vector<Packet> read_stream(const fs::path& dir, uint64_t stream) {
    std::vector<Packet> all;
    for (const auto& f : stream_files(dir, stream)) {
        auto p = read_pcapng(f);
        all.insert(all.end(), p.packets.begin(), p.packets.end());
    }
    return all;
}

// Reproducible packets spread over ports and queues.
inline std::vector<Packet> packets(std::size_t n, uint64_t seed, uint16_t ports = 1,
                                   uint16_t queues = 2) {
    std::mt19937_64 rng(seed);
    std::vector<Packet> v;
    uint64_t t = 1700000000ull * 1000000000ull + seed;
    for (std::size_t i = 0; i < n; ++i) {
        Packet p;
        p.port = static_cast<uint16_t>(rng() % ports);
        p.queue = static_cast<uint16_t>(rng() % queues);
        t += 1 + rng() % 100000;
        p.ts_ns = t;
        const std::size_t len = 60 + rng() % 1455;
        p.data.resize(len);
        for (auto& b : p.data)
            b = std::byte(static_cast<uint8_t>(rng()));
        p.orig_len = static_cast<uint32_t>(len + (i % 7 == 0 ? 100 : 0));  // some "truncated"
        v.push_back(std::move(p));
    }
    return v;
}

// Frames of up to `per_frame` packets each, sealed with `codec`.
struct FrameSet {
    std::vector<std::vector<std::byte>> frames;
    std::vector<std::size_t> first;  // index of each frame's first packet
};

inline FrameSet make_frames(uint64_t stream, const std::vector<Packet>& pk, std::size_t per_frame,
                            wire::Codec codec = wire::Codec::None, uint64_t first_seq = 0) {
    FrameSet fs;
    const uint32_t max = 1u << 20;
    wire::FrameBuilder b({max, 65535});
    wire::FrameEncoder enc({.codec = codec, .min_compress_bytes = 0, .max_raw_frame_bytes = max});
    std::vector<std::byte> raw(max), out(wire::FrameEncoder::max_sealed_size(max));
    for (std::size_t i = 0; i < pk.size(); i += per_frame) {
        b.begin(raw, stream, first_seq + fs.frames.size(), i);
        for (std::size_t j = i; j < std::min(pk.size(), i + per_frame); ++j) {
            const wire::RecordMeta m{pk[j].ts_ns, pk[j].orig_len, pk[j].port, pk[j].queue, 0};
            EXPECT_EQ(b.append(m, pk[j].data), wire::AppendResult::Appended);
        }
        auto sealed = enc.seal(b.finish(), out);
        EXPECT_TRUE(sealed.ok());
        fs.frames.emplace_back(sealed->frame.begin(), sealed->frame.end());
        fs.first.push_back(i);
    }
    return fs;
}

class TempDir {
  public:
    TempDir() {
        std::random_device rd;
        path_ = fs::path(::testing::TempDir()) /
                ("sluice-collector-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path_ / ".sluice");
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    std::string str() const { return path_.string(); }

  private:
    fs::path path_;
};

}  // namespace sluice::collector::testing
