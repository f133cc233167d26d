// libFuzzer target: what the collector does with the RDMA WRITEs of one
// connection. Each write's bytes are checked by rdma::open_slot (the code
// the listener runs for every completion: the frame must fill exactly what
// the write carried, belong to the connection's stream and be the frame the
// immediate announced); every frame it accepts goes into a collector Stream
// (sequence, duplicates, gaps, interfaces, rotation, the pcapng file and
// its index), committed as the listener commits a batch. A refusal ends the
// connection after committing what came before it, as the listener does.
//
// Input: one mode byte, then the writes, each
//   u32 byte_len (little-endian) | u16 the immediate's sequence bits | bytes
// (a write gets at most what is left of the input, and at most one slot).
// The connection's stream is the first write's frame's (as if its connect
// request had named it).
//   bit 0: recompute each frame's header and payload CRCs first, so
//          mutations get past them to the fields behind
//   bit 1: each write announces its own frame's sequence (the input's
//          sequence bits are ignored), as an honest sender does
//   bit 2: the collector compresses its files (zstd)
//   bit 3: the collector rotates files every 16 KiB
//   bits 4-5: n; commit after every 2^n accepted frames (a batch)
//   bit 6: the hello announces a position: the first write's sequence bits
//
// Beyond "no crash, no out-of-bounds access" (ASan + UBSan; each write is
// an exactly sized copy, so reading past it is a report): an accepted frame
// is exactly the write, of the connection's stream and sequence; a refusal
// names the stream and the peer; no write fails on a healthy disk;
// acknowledgements never go back; and what the collector wrote reads back,
// through the reader sluice-query uses, as exactly the packets it counted,
// with an index that loads. A violation traps.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "sluice/collector/stream.hpp"
#include "sluice/index/file_name.hpp"
#include "sluice/index/format.hpp"
#include "sluice/index/pcapng.hpp"
#include "sluice/rdma/slot.hpp"
#include "sluice/simd/crc32c.hpp"
#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice;
using wire::load_le;
using wire::store_le;
namespace fs = std::filesystem;

constexpr std::size_t kSlotBytes = 1u << 20;  // the listener's default --rdma-slot-bytes
constexpr std::string_view kPeer = "192.0.2.7:4791";

void check(bool ok) {
    if (!ok) __builtin_trap();
}

char g_dir[256];  // for the clean-up at exit, which may run after statics are gone

void remove_work_dir() {
    std::error_code ec;
    fs::remove_all(g_dir, ec);
}

// One directory per process, emptied before each input, removed at exit.
const fs::path& work_dir() {
    static const fs::path dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        std::string t = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-fuzz-slot-XXXXXX";
        check(::mkdtemp(t.data()) != nullptr && t.size() < sizeof g_dir);
        std::memcpy(g_dir, t.c_str(), t.size() + 1);
        std::atexit(remove_work_dir);
        return fs::path(t);
    }();
    return dir;
}

void fix_crcs(std::byte* p, std::size_t n) {
    if (n < wire::kHeaderSize) return;
    const std::size_t stored = load_le<uint32_t>(p + wire::offset::stored_len);
    const std::size_t avail = std::min(stored, n - wire::kHeaderSize);
    store_le<uint32_t>(p + wire::offset::payload_crc, simd::crc32c(p + wire::kHeaderSize, avail));
    store_le<uint32_t>(p + wire::offset::header_crc, simd::crc32c(p, wire::offset::header_crc));
}

struct Write {
    std::size_t at, len;
    uint16_t sequence_bits;
};

// The packets of every data file of `dir` as the query reader sees them,
// and a check that each file's index loads and covers no more than the file.
uint64_t read_back(const fs::path& dir) {
    uint64_t packets = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string path = e.path().string();
        // Finished (NAME) or still being written (NAME.part).
        std::string_view name = path;
        if (name.ends_with(index::kPartSuffix)) name.remove_suffix(index::kPartSuffix.size());
        if (!e.is_regular_file() || (!name.ends_with(".pcapng") && !name.ends_with(".pcapng.zst")))
            continue;
        const index::Compression c =
            name.ends_with(".zst") ? index::Compression::Zstd : index::Compression::None;
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        check(fd >= 0);
        const uint64_t size = static_cast<uint64_t>(fs::file_size(e.path()));
        const auto r = index::pcapng::scan(
            fd, c, 0, size,
            [&](const index::pcapng::Block& b) {
                if (b.type == index::pcapng::kEnhancedPacketBlock) {
                    check(index::pcapng::parse_packet_block(b.bytes).has_value());
                    ++packets;
                }
                return true;
            },
            [](uint64_t) {});
        ::close(fd);
        check(r.ok && r.clean_end == size);
        std::string error;
        const auto ix = index::load_index(index::index_path(path), &error);
        check(ix.has_value());
        check(ix->covered_end <= size);
    }
    return packets;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    std::vector<std::byte> in(size - 1);
    if (size > 1) std::memcpy(in.data(), data + 1, size - 1);

    std::vector<Write> writes;
    for (std::size_t at = 0; at + 6 <= in.size();) {
        const std::size_t want = load_le<uint32_t>(in.data() + at);
        const uint16_t bits = load_le<uint16_t>(in.data() + at + 4);
        at += 6;
        const std::size_t len = std::min({want, in.size() - at, kSlotBytes});
        if (mode & 1) fix_crcs(in.data() + at, len);
        if ((mode & 2) && len >= wire::offset::sequence + 8)
            writes.push_back({at, len,
                              static_cast<uint16_t>(
                                  load_le<uint64_t>(in.data() + at + wire::offset::sequence))});
        else
            writes.push_back({at, len, bits});
        at += len;
    }
    if (writes.empty()) return 0;
    const uint64_t stream_id =
        writes[0].len >= wire::offset::stream_id + 8
            ? load_le<uint64_t>(in.data() + writes[0].at + wire::offset::stream_id)
            : 0;

    static wire::FrameReader reader(wire::ReaderLimits{1u << 20, 1u << 20, wire::kMaxSnaplen});
    static std::vector<std::byte> scratch(1u << 20);
    static collector::ZstdCompressor zstd(1);

    const fs::path& dir = work_dir();
    fs::remove_all(dir);
    fs::create_directories(dir / ".sluice");
    collector::StreamSettings set;
    set.dir = dir.string();
    set.compression = (mode & 4) ? collector::Compression::Zstd : collector::Compression::None;
    set.rotate_bytes = (mode & 8) ? 16384 : 0;
    set.application = "fuzz";
    collector::Workspace ws;
    ws.zstd = &zstd;
    uint64_t packets_written = 0;
    {
        collector::Stream stream(stream_id, set, ws);
        (void)stream.recover();
        session::Hello hello;
        hello.stream_id = stream_id;
        hello.session_id = 1;
        if (mode & 64) {
            hello.position.known = true;
            hello.position.sequence = writes[0].sequence_bits;
        }
        check(stream.on_hello(hello).has_value());

        const std::size_t batch = std::size_t{1} << ((mode >> 4) & 3);
        // The ring slots of the frames handed over and not committed: the
        // batch may point into them until the commit, as into the ring.
        std::vector<std::unique_ptr<std::byte[]>> held;
        uint64_t acked = stream.acknowledged();
        const auto commit = [&] {
            check(stream.commit());
            check(stream.acknowledged() >= acked);
            acked = stream.acknowledged();
            held.clear();
        };
        for (const Write& w : writes) {
            // Only the bytes the write carried, in an exactly sized copy.
            held.push_back(std::make_unique<std::byte[]>(w.len ? w.len : 1));
            std::byte* slot = held.back().get();
            std::memcpy(slot, in.data() + w.at, w.len);
            const rdma::SlotVerdict v =
                rdma::open_slot({slot, w.len}, w.sequence_bits, stream_id, reader, scratch, kPeer);
            if (!v.ok) {
                check(v.why.starts_with(fmt::format("stream {} from {}: ", stream_id, kPeer)));
                break;  // the listener drops the connection
            }
            const wire::FrameInfo& info = v.frame.info();
            check(info.frame_len() == w.len);
            check(info.stream_id == stream_id);
            check(static_cast<uint16_t>(info.sequence) == w.sequence_bits);
            const collector::FrameOutcome o = stream.add(v.frame);
            check(o != collector::FrameOutcome::StorageError);
            if (o == collector::FrameOutcome::TooManyInterfaces) break;  // refused: limit
            if (held.size() == batch) commit();
        }
        commit();
        packets_written = stream.run().packets_written;
        stream.close_file();
    }
    check(read_back(dir) == packets_written);
    return 0;
}
