// libFuzzer target: sluice-query on a capture it did not write. A data file
// (pcapng, or pcapng.zst) and its index (NAME.idx) come from the input; the
// query reads them as `sluice-query` does (the index's records, the Finish
// shortcut, the prefix that fits the data, the data no index covers indexed
// in memory, the blocks read by byte range and walked block by block, the
// filter and the time range), into the same sinks (pcapng out, flows), and
// optionally after `sluice-query --reindex` rebuilt the index from the data.
//
// Input: one mode byte, u32 index length (little-endian), the index's bytes,
// then the data file's bytes.
//   bit 0: recompute each index record's CRC first (and zero its padding),
//          so mutations get past it to the fields behind
//   bit 1: the data file is NAME.pcapng.zst
//   bit 2: filter "udp port 53 or ip6" (else every packet)
//   bit 3: a time range of one second (else all time)
//   bit 4: rebuild the index from the data first (sluice-query --reindex)
//   bit 5: flows (sluice-query --flows) instead of pcapng out
//
// Beyond "no crash, no out-of-bounds access, no leak" (ASan + UBSan): every
// packet given to a sink lies in the time range, inside its block and of an
// interface the file described; the pcapng the query writes reads back block
// by block, holding exactly the packets it was given; and an index parsed
// directly keeps its own invariants (prefixes never claim more than there
// is). A violation traps.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "sluice/index/builder.hpp"
#include "sluice/index/format.hpp"
#include "sluice/index/pcapng.hpp"
#include "sluice/index/query.hpp"
#include "sluice/simd/crc32c.hpp"

namespace {

using namespace sluice;
namespace fs = std::filesystem;

constexpr uint64_t kFrom = 1700000000000000000ull;  // the seeds' first second

void check(bool ok) {
    if (!ok) __builtin_trap();
}

template <class T>
T get(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
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
        std::string t = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-fuzz-index-XXXXXX";
        check(::mkdtemp(t.data()) != nullptr && t.size() < sizeof g_dir);
        std::memcpy(g_dir, t.c_str(), t.size() + 1);
        std::atexit(remove_work_dir);
        return fs::path(t);
    }();
    return dir;
}

void fix_records(std::vector<std::byte>& ix) {
    std::size_t at = 0;
    while (ix.size() - at >= 12) {
        std::byte* p = ix.data() + at;
        const std::size_t body = get<uint32_t>(p + 4);
        const std::size_t size = (12 + body + 7) & ~std::size_t{7};
        if (body > index::kMaxRecordBody || ix.size() - at < size) return;
        const uint32_t crc = simd::crc32c(p, 8 + body);
        std::memcpy(p + 8 + body, &crc, 4);
        std::memset(p + 12 + body, 0, size - 12 - body);
        at += size;
    }
}

void write_file(const fs::path& p, const std::byte* b, std::size_t n) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b), static_cast<std::streamsize>(n));
    check(out.good());
}

// Checks what the query hands over, then passes it on.
class CheckingSink : public index::QuerySink {
  public:
    CheckingSink(index::QuerySink& next, uint64_t from, uint64_t to)
        : next_(next), from_(from), to_(to) {}
    bool packet(const index::QueryPacket& p) override {
        check(p.ts_ns >= from_ && p.ts_ns < to_);
        check(p.interface != nullptr);
        check(p.epb.size() >= 32 && p.data.data() >= p.epb.data() + 28 &&
              p.data.data() + p.data.size() <= p.epb.data() + p.epb.size());
        const auto parsed = index::pcapng::parse_packet_block(p.epb);
        check(parsed && parsed->interface_id == p.interface_id);
        ++packets;
        return next_.packet(p);
    }
    uint64_t packets = 0;

  private:
    index::QuerySink& next_;
    uint64_t from_, to_;
};

// The pcapng PcapngSink wrote: blocks end to end, one section, exactly
// `packets` packets, each of an interface described before it.
void check_output(const std::vector<std::byte>& out, uint64_t packets) {
    std::size_t at = 0;
    uint64_t epbs = 0, idbs = 0, sections = 0;
    for (;;) {
        const index::pcapng::Next n = index::pcapng::block_at(out, at);
        if (n.walk == index::pcapng::Walk::End) break;
        check(n.walk == index::pcapng::Walk::Ok);
        if (n.block.type == index::pcapng::kSectionHeaderBlock) ++sections;
        if (n.block.type == index::pcapng::kInterfaceDescriptionBlock) ++idbs;
        if (n.block.type == index::pcapng::kEnhancedPacketBlock) {
            const auto p = index::pcapng::parse_packet_block(n.block.bytes);
            check(p && p->interface_id < idbs);
            ++epbs;
        }
        at += n.block.bytes.size();
    }
    check(sections == 1 && epbs == packets);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 5) return 0;
    const uint8_t mode = data[0];
    const std::size_t ix_len = std::min<std::size_t>(
        get<uint32_t>(reinterpret_cast<const std::byte*>(data + 1)), size - 5);
    const auto* b = reinterpret_cast<const std::byte*>(data + 5);
    std::vector<std::byte> ix(b, b + ix_len);
    if (mode & 1) fix_records(ix);
    const std::byte* dat = b + ix_len;
    const std::size_t dat_len = size - 5 - ix_len;

    const fs::path& dir = work_dir();
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path file = dir / ((mode & 2) ? "stream-1-000001-20231114T221320Z.pcapng.zst"
                                            : "stream-1-000001-20231114T221320Z.pcapng");
    write_file(file, dat, dat_len);
    write_file(index::index_path(file.string()), ix.data(), ix.size());

    // The index on its own, as load_index gives it to the query.
    {
        std::string error;
        if (const auto x = index::parse_index(ix, &error)) {
            check(x->blocks.size() == x->block_record_end.size() &&
                  x->blocks.size() == x->block_interfaces.size());
            check(x->valid_bytes <= ix.size());
            const index::IndexPrefix p = index::prefix_within(*x, dat_len);
            check(p.blocks <= x->blocks.size() && p.bytes <= x->valid_bytes);
            check(p.interfaces <= x->interfaces.size());
            check(p.covered_end <= std::max<uint64_t>(dat_len, x->header.data_start));
        } else {
            check(!error.empty());
        }
    }

    index::BuildSettings build;
    build.block_bytes = 4096;  // small blocks: more of them in a small input
    build.block_packets = 16;
    if (mode & 16) {
        index::DataIndexed r;
        std::string error;
        if (!index::reindex_file(file.string(), build, &r, &error)) check(!error.empty());
    }

    index::QuerySpec spec;
    spec.dirs = {dir.string()};
    spec.build = build;
    if (mode & 4) spec.filter = "udp port 53 or ip6";
    if (mode & 8) {
        spec.from_ns = kFrom;
        spec.to_ns = kFrom + 1'000'000'000ull;
    }
    std::string error;
    auto q = index::Query::make(spec, &error);
    check(q.has_value());
    index::QueryStats stats;
    std::vector<std::string> warnings;
    if (mode & 32) {
        index::FlowSink flows;
        CheckingSink sink(flows, spec.from_ns, spec.to_ns);
        check(q->run(sink, stats, warnings, &error));
        check(stats.packets_matched == sink.packets);
        std::FILE* null = std::fopen("/dev/null", "w");
        check(null != nullptr);
        flows.write(null);
        std::fclose(null);
    } else {
        char* buf = nullptr;
        std::size_t len = 0;
        std::FILE* mem = ::open_memstream(&buf, &len);
        check(mem != nullptr);
        uint64_t packets = 0;
        {
            index::PcapngSink out(mem, "fuzz", "");
            CheckingSink sink(out, spec.from_ns, spec.to_ns);
            check(q->run(sink, stats, warnings, &error));
            check(out.ok());
            packets = sink.packets;
        }
        std::fclose(mem);
        const auto* o = reinterpret_cast<const std::byte*>(buf);
        check_output(std::vector<std::byte>(o, o + len), packets);
        std::free(buf);
        check(stats.packets_matched == packets);
    }
    check(stats.packets_matched <= stats.packets_examined);
    check(stats.blocks_read <= stats.blocks_in_time && stats.blocks_in_time <= stats.blocks);
    return 0;
}
