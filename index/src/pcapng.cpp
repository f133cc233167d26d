#include "sluice/index/pcapng.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <unistd.h>
#include <zstd.h>

namespace sluice::index::pcapng {
namespace {

template <class T>
T get(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

constexpr uint16_t kOptEnd = 0, kIfTsresol = 9, kIfTsoffset = 14;
constexpr std::size_t kReadChunk = 4u << 20;

// Reads up to n bytes at off; returns what was read (short at the end of
// the file), or -1 with errno.
ssize_t pread_full(int fd, std::byte* to, std::size_t n, uint64_t off) {
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = ::pread(fd, to + got, n - got, static_cast<off_t>(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    return static_cast<ssize_t>(got);
}

struct DctxDeleter {
    void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

ZSTD_DCtx* dctx() {
    // One per thread, reused: creating one per block would cost more than
    // decompressing a small block.
    thread_local std::unique_ptr<ZSTD_DCtx, DctxDeleter> d(ZSTD_createDCtx());
    return d.get();
}

}  // namespace

Next block_at(std::span<const std::byte> buf, std::size_t at) {
    Next n;
    if (at >= buf.size()) return n;  // End
    const std::size_t left = buf.size() - at;
    const std::byte* p = buf.data() + at;
    if (left < 8) {
        n.walk = Walk::Truncated;
        return n;
    }
    const uint32_t type = get<uint32_t>(p), len = get<uint32_t>(p + 4);
    if (type == kSectionHeaderBlock) {
        if (left < 12) {
            n.walk = Walk::Truncated;
            return n;
        }
        if (get<uint32_t>(p + 8) != kByteOrderMagic) {
            n.walk = Walk::Malformed;  // big-endian, or not pcapng at all
            return n;
        }
    }
    if (len < 12 || len % 4 != 0 || len > kMaxBlockBytes) {
        n.walk = Walk::Malformed;
        return n;
    }
    if (left < len) {
        n.walk = Walk::Truncated;
        return n;
    }
    if (get<uint32_t>(p + len - 4) != len) {
        n.walk = Walk::Malformed;
        return n;
    }
    n.walk = Walk::Ok;
    n.block = {type, {p, len}};
    return n;
}

std::optional<Interface> parse_interface(std::span<const std::byte> b) {
    // An index's Interface record carries the block as the data file had
    // it, and a query writes it out as it is: it must be a whole block.
    if (b.size() < 20 || b.size() % 4 != 0 || b.size() > kMaxBlockBytes ||
        get<uint32_t>(b.data()) != kInterfaceDescriptionBlock ||
        get<uint32_t>(b.data() + 4) != b.size() ||
        get<uint32_t>(b.data() + b.size() - 4) != b.size())
        return std::nullopt;
    Interface i;
    i.link_type = get<uint16_t>(b.data() + 8);
    i.snaplen = get<uint32_t>(b.data() + 12);
    std::size_t at = 16;
    const std::size_t end = b.size() - 4;
    while (at + 4 <= end) {
        const uint16_t code = get<uint16_t>(b.data() + at), len = get<uint16_t>(b.data() + at + 2);
        if (code == kOptEnd || len > end - at - 4) break;
        const std::byte* v = b.data() + at + 4;
        if (code == kIfTsresol && len >= 1) i.tsresol = get<uint8_t>(v);
        if (code == kIfTsoffset && len >= 8) i.tsoffset_s = get<int64_t>(v);
        at += 4 + ((std::size_t{len} + 3) & ~std::size_t{3});
    }
    i.idb.assign(b.begin(), b.end());
    return i;
}

std::optional<Packet> parse_packet_block(std::span<const std::byte> b) {
    if (b.size() < 32) return std::nullopt;
    Packet p;
    p.interface_id = get<uint32_t>(b.data() + 8);
    p.ts_raw = uint64_t{get<uint32_t>(b.data() + 12)} << 32 | get<uint32_t>(b.data() + 16);
    const uint32_t caplen = get<uint32_t>(b.data() + 20);
    p.orig_len = get<uint32_t>(b.data() + 24);
    if (caplen > b.size() - 32) return std::nullopt;
    p.data = b.subspan(28, caplen);
    return p;
}

uint64_t to_ns(const Interface& i, uint64_t ts) {
    uint64_t ns;
    if (i.tsresol & 0x80) {  // 2^-k seconds
        const unsigned k = i.tsresol & 0x7f;
        const unsigned __int128 v = static_cast<unsigned __int128>(ts) * 1'000'000'000u;
        ns = k >= 127 ? 0 : static_cast<uint64_t>(v >> k);
    } else if (i.tsresol <= 9) {
        uint64_t m = 1;
        for (unsigned e = i.tsresol; e < 9; ++e)
            m *= 10;
        ns = ts * m;
    } else {
        uint64_t d = 1;
        for (unsigned e = 9; e < i.tsresol && d < UINT64_MAX / 10; ++e)
            d *= 10;
        ns = ts / d;
    }
    return ns + static_cast<uint64_t>(i.tsoffset_s) * 1'000'000'000u;
}

bool read_range(int fd, Compression c, uint64_t start, uint64_t end, uint64_t limit, Buffer& raw,
                Buffer& out, std::string* error) {
    out.clear();
    if (end <= start) return true;
    const uint64_t want = end - start;
    if (c == Compression::None) {
        out.resize(static_cast<std::size_t>(std::min(want, limit)));
        const ssize_t n = pread_full(fd, out.data(), out.size(), start);
        if (n < 0) {
            if (error) *error = std::strerror(errno);
            return false;
        }
        out.resize(static_cast<std::size_t>(n));
        return true;
    }
    raw.resize(static_cast<std::size_t>(want));
    const ssize_t n = pread_full(fd, raw.data(), raw.size(), start);
    if (n < 0) {
        if (error) *error = std::strerror(errno);
        return false;
    }
    ZSTD_DCtx* d = dctx();
    ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
    ZSTD_inBuffer in{raw.data(), static_cast<std::size_t>(n), 0};
    std::size_t produced = 0;
    out.resize(
        static_cast<std::size_t>(std::min<uint64_t>(limit, std::max<uint64_t>(want * 4, 1 << 16))));
    while (true) {
        if (produced == out.size()) {
            if (out.size() >= limit) break;
            out.resize(static_cast<std::size_t>(std::min<uint64_t>(limit, out.size() * 2)));
        }
        ZSTD_outBuffer o{out.data() + produced, out.size() - produced, 0};
        const std::size_t r = ZSTD_decompressStream(d, &o, &in);
        produced += o.pos;
        if (ZSTD_isError(r)) {
            if (error) *error = std::string("zstd: ") + ZSTD_getErrorName(r);
            out.resize(produced);
            return false;
        }
        if (in.pos == in.size && o.pos < o.size) break;  // all input used, all output flushed
    }
    out.resize(produced);
    return true;
}

ScanResult scan(int fd, Compression c, uint64_t start, uint64_t end,
                const std::function<bool(const Block&)>& on_block,
                const std::function<void(uint64_t)>& on_boundary) {
    ScanResult res;
    res.clean_end = start;
    std::vector<std::byte> pc;  // pcapng not yet walked
    std::size_t pc_off = 0;     // walked up to here
    // Walks the complete blocks in pc; false on a malformed block or a stop.
    auto walk = [&](bool* stopped) {
        while (true) {
            const Next n = block_at(pc, pc_off);
            if (n.walk == Walk::Malformed) {
                res.ok = false;
                res.error = "a malformed pcapng block";
                return false;
            }
            if (n.walk != Walk::Ok) break;
            if (!on_block(n.block)) {
                *stopped = true;
                return false;
            }
            pc_off += n.block.bytes.size();
        }
        if (pc_off > 0) {  // keep only the incomplete tail
            pc.erase(pc.begin(), pc.begin() + static_cast<std::ptrdiff_t>(pc_off));
            pc_off = 0;
        }
        return true;
    };

    // Not a vector: it would zero all 4 MiB for every file, however small
    // (most of the time sluice-query spends on a directory of small files).
    Buffer in;
    in.resize(
        static_cast<std::size_t>(std::min<uint64_t>(kReadChunk, end > start ? end - start : 0)));
    uint64_t at = start;  // file offset of the next read
    if (c == Compression::None) {
        while (at < end) {
            const std::size_t want =
                static_cast<std::size_t>(std::min<uint64_t>(kReadChunk, end - at));
            const ssize_t n = pread_full(fd, in.data(), want, at);
            if (n < 0) {
                res.ok = false;
                res.error = std::strerror(errno);
                return res;
            }
            if (n == 0) break;
            // Walk block by block so that every block end is a boundary.
            const uint64_t base = at - pc.size();  // file offset of pc[0]
            pc.insert(pc.end(), in.data(), in.data() + n);
            at += static_cast<uint64_t>(n);
            std::size_t off = 0;
            while (true) {
                const Next nb = block_at(pc, off);
                if (nb.walk == Walk::Malformed) {
                    res.ok = false;
                    res.error = "a malformed pcapng block";
                    return res;
                }
                if (nb.walk != Walk::Ok) break;
                if (!on_block(nb.block)) return res;
                off += nb.block.bytes.size();
                res.clean_end = base + off;
                on_boundary(res.clean_end);
            }
            pc.erase(pc.begin(), pc.begin() + static_cast<std::ptrdiff_t>(off));
        }
        return res;
    }

    std::vector<std::byte> dec(ZSTD_DStreamOutSize());
    ZSTD_DCtx* d = dctx();
    ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
    while (at < end) {
        const std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(kReadChunk, end - at));
        const ssize_t n = pread_full(fd, in.data(), want, at);
        if (n < 0) {
            res.ok = false;
            res.error = std::strerror(errno);
            return res;
        }
        if (n == 0) break;
        ZSTD_inBuffer ib{in.data(), static_cast<std::size_t>(n), 0};
        bool full = false;
        while (ib.pos < ib.size || full) {
            ZSTD_outBuffer ob{dec.data(), dec.size(), 0};
            const std::size_t r = ZSTD_decompressStream(d, &ob, &ib);
            if (ZSTD_isError(r)) {
                res.ok = false;
                res.error = std::string("zstd: ") + ZSTD_getErrorName(r);
                return res;
            }
            full = ob.pos == ob.size;
            pc.insert(pc.end(), dec.begin(), dec.begin() + static_cast<std::ptrdiff_t>(ob.pos));
            bool stopped = false;
            if (!walk(&stopped)) return res;
            if (pc.size() > kMaxBlockBytes) {
                res.ok = false;
                res.error = "a pcapng block longer than any the collector writes";
                return res;
            }
            // A frame ends here: a boundary when no pcapng block is split by it.
            if (r == 0 && pc.empty()) {
                res.clean_end = at + ib.pos;
                on_boundary(res.clean_end);
            }
        }
        at += static_cast<uint64_t>(n);
    }
    return res;
}

}  // namespace sluice::index::pcapng
