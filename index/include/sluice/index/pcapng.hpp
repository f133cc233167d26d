// Reading the pcapng the collector writes (and any little-endian,
// one-section pcapng with Enhanced Packet Blocks): block by block out of a
// buffer, every length checked against the bytes that are there, and whole
// data files or byte ranges of them, plain or zstd, read in bounded pieces.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice/index/format.hpp"

namespace sluice::index::pcapng {

inline constexpr uint32_t kSectionHeaderBlock = 0x0A0D0D0A;
inline constexpr uint32_t kInterfaceDescriptionBlock = 1;
inline constexpr uint32_t kEnhancedPacketBlock = 6;
inline constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
inline constexpr uint16_t kLinkTypeEthernet = 1;
// Longer blocks are taken for damage: the collector's largest is a 256 KiB
// packet (wire::kMaxSnaplen) with its headers.
inline constexpr uint32_t kMaxBlockBytes = 16u << 20;

// A byte buffer that grows without zeroing what it gains (the reads fill
// it) and keeps its memory between uses.
class Buffer {
  public:
    std::byte* data() { return p_.get(); }
    const std::byte* data() const { return p_.get(); }
    std::size_t size() const { return n_; }
    void clear() { n_ = 0; }
    // Keeps the first min(size(), n) bytes; new bytes are left as they are.
    void resize(std::size_t n) {
        if (n > cap_) {
            std::size_t c = std::max<std::size_t>(cap_ * 2, 1 << 16);
            while (c < n)
                c *= 2;
            std::unique_ptr<std::byte[]> q(new std::byte[c]);
            if (n_) std::memcpy(q.get(), p_.get(), n_);
            p_ = std::move(q);
            cap_ = c;
        }
        n_ = n;
    }
    operator std::span<const std::byte>() const { return {p_.get(), n_}; }

  private:
    std::unique_ptr<std::byte[]> p_;
    std::size_t n_ = 0, cap_ = 0;
};

struct Block {
    uint32_t type = 0;
    std::span<const std::byte> bytes;  // the whole block: header, body, trailer
};

enum class Walk : uint8_t {
    Ok,         // a complete block
    End,        // the buffer ends exactly here
    Truncated,  // the buffer ends inside a block (more may come)
    Malformed,  // bad length or trailer, or a big-endian section
};

struct Next {
    Walk walk = Walk::End;
    Block block;
};

// The block at `at`. A Section Header Block must be little-endian.
Next block_at(std::span<const std::byte> buf, std::size_t at);

struct Interface {
    uint16_t link_type = 0;
    uint32_t snaplen = 0;
    uint8_t tsresol = 6;         // if_tsresol as stored (default: microseconds)
    int64_t tsoffset_s = 0;      // if_tsoffset
    std::vector<std::byte> idb;  // the block as in the file
};
// nullopt unless `idb_block` is one whole Interface Description Block (its
// type, both its lengths, a multiple of 4 bytes).
std::optional<Interface> parse_interface(std::span<const std::byte> idb_block);

struct Packet {
    uint32_t interface_id = 0;
    uint64_t ts_raw = 0;  // in the interface's units
    uint32_t orig_len = 0;
    std::span<const std::byte> data;  // the captured bytes
};
// nullopt when the block's caplen runs past its own length.
std::optional<Packet> parse_packet_block(std::span<const std::byte> epb_block);

// A timestamp in the interface's units, as nanoseconds since the epoch.
uint64_t to_ns(const Interface& i, uint64_t ts_raw);

// Reads bytes [start, end) of a data file and gives its pcapng: the bytes
// themselves, or for .zst what its zstd frames decompress to (`start` must
// be a frame boundary). At most `limit` pcapng bytes. A range that ends
// inside a zstd frame (a file still being written) gives what that frame
// decompressed to so far. False and `error` on a read or zstd error.
bool read_range(int fd, Compression c, uint64_t start, uint64_t end, uint64_t limit, Buffer& raw,
                Buffer& out, std::string* error);

// Streams a data file from `start` to `end` (file offsets; `start` a zstd
// frame boundary for .zst) through its pcapng blocks, with bounded memory:
//   block(b, pos)  each complete pcapng block, in order; pos: its offset in the
//                  decompressed stream from `start`
//   boundary(off)  each file offset where the pcapng read so far ends on a
//                  whole block and (for .zst) a whole zstd frame: where an
//                  index block may end
// Stops at `end`, at the end of the file, or where the data is incomplete
// (a block or frame cut off: a file being written, or a crash's tail).
struct ScanResult {
    bool ok = true;          // false: read or zstd error, or a malformed block (`error`)
    uint64_t clean_end = 0;  // the last boundary reached (at least `start`)
    std::string error;
};
ScanResult scan(int fd, Compression c, uint64_t start, uint64_t end,
                const std::function<bool(const Block&)>& block,
                const std::function<void(uint64_t)>& boundary);

}  // namespace sluice::index::pcapng
