#include "sluice/index/query.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <queue>
#include <unordered_map>

#include "libpcap.hpp"
#include "util.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/index/file_name.hpp"
#include "sluice/index/keys.hpp"
#include "sluice/index/packet.hpp"
#include "sluice/index/timefmt.hpp"
#include "sluice/tunnel/decap.hpp"

namespace sluice::index {

// ---- the filter, compiled per link type ----------------------------------------

struct Query::Filters {
    std::string text;
    // Set once a program compiled: every program below came from it.
    const Libpcap* pcap = nullptr;
    std::map<uint16_t, std::optional<bpf_program>> by_link;

    ~Filters() {
        for (auto& [link, prog] : by_link)
            if (prog) pcap->freecode(&*prog);
    }

    std::optional<bpf_program> compile(uint16_t link, std::string* error) {
        const Libpcap* lib = libpcap(error);
        if (!lib) return std::nullopt;
        pcap_t* p = lib->open_dead(link, 262144);
        if (!p) {
            if (error) *error = "libpcap: out of memory";
            return std::nullopt;
        }
        bpf_program prog{};
        std::optional<bpf_program> r;
        if (lib->compile(p, &prog, text.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0) {
            r = prog;
            pcap = lib;
        } else if (error) {
            *error = lib->geterr(p);
        }
        lib->close(p);
        return r;
    }

    // The program for a link type; nullptr when the filter is empty (every
    // packet). `usable` false: the filter does not compile for this link type.
    const bpf_program* get(uint16_t link, bool* usable, std::vector<std::string>& warnings) {
        *usable = true;
        if (text.empty()) return nullptr;
        auto it = by_link.find(link);
        if (it == by_link.end()) {
            std::string error;
            it = by_link.emplace(link, compile(link, &error)).first;
            if (!it->second)
                warnings.push_back("the filter does not compile for link type " +
                                   std::to_string(link) + " (" + error +
                                   "): packets of that link type are left out");
        }
        *usable = it->second.has_value();
        return it->second ? &*it->second : nullptr;
    }
};

Query::Query(QuerySpec spec, std::unique_ptr<Filters> f, Predicate p)
    : spec_(std::move(spec)), filters_(std::move(f)), predicate_(std::move(p)) {}
Query::Query(Query&&) noexcept = default;
Query::~Query() = default;

std::optional<Query> Query::make(QuerySpec spec, std::string* error) {
    auto f = std::make_unique<Filters>();
    f->text = spec.filter;
    Predicate p;
    if (!f->text.empty()) {
        std::string why;
        auto prog = f->compile(pcapng::kLinkTypeEthernet, &why);
        if (!prog) {
            if (error) *error = why;
            return std::nullopt;
        }
        p = Predicate::from_bpf(*prog);
        f->by_link.emplace(pcapng::kLinkTypeEthernet, prog);
    }
    return Query(std::move(spec), std::move(f), std::move(p));
}

std::optional<DataFileName> parse_data_file_name(std::string_view name) {
    static const FileTemplate standard;
    const auto d = split_data_name(name);
    if (!d) return std::nullopt;
    const auto id = standard.match(d->stem);
    if (!id) return std::nullopt;
    return DataFileName{id->stream, id->n};
}

// ---- the merge ----------------------------------------------------------------

namespace {

// Whether the filter matches the innermost packet of a tunnelled Ethernet
// frame (QuerySpec::inner): an inner frame as it is, an inner IP packet
// behind an Ethernet header of the MACs it travelled under, in `scratch`.
bool inner_matches(const Libpcap& pcap, const bpf_program* prog, std::span<const std::byte> frame,
                   uint32_t orig_len, std::vector<std::byte>& scratch) {
    const tunnel::Decap d = tunnel::decapsulate(frame.data(), frame.size());
    if (!d.peeled()) return false;
    const std::size_t at = d.frame_offset();
    std::span<const std::byte> inner = frame.subspan(at);
    if (d.inner_ethertype != 0) {
        scratch.assign(inner.begin(), inner.end());
        std::memcpy(scratch.data(), frame.data() + d.mac_offset, 12);
        scratch[12] = static_cast<std::byte>(d.inner_ethertype >> 8);
        scratch[13] = static_cast<std::byte>(d.inner_ethertype & 0xff);
        inner = scratch;
    }
    pcap_pkthdr h{};
    h.caplen = uint32_t(inner.size());
    h.len = orig_len > at ? orig_len - uint32_t(at) : h.caplen;
    return pcap.offline_filter(prog, &h, reinterpret_cast<const u_char*>(inner.data())) != 0;
}

struct File {
    std::string path;
    DataFileName name;
    uint32_t dir = 0;
    Compression compression = Compression::None;
    uint64_t size = 0;
    // Once opened:
    bool opened = false;
    int fd = -1;
    std::optional<Index> index;
    std::vector<pcapng::Interface> interfaces;
    std::vector<uint32_t> candidates;  // block numbers to read
    std::vector<uint64_t> lower;       // lower[i]: no packet of candidates[i..] is earlier
    std::size_t next = 0;
    uint32_t loaded = 0;  // blocks read whose packets are not all out yet
    bool warned_interface = false;

    void release() {
        if (fd >= 0) ::close(fd);
        fd = -1;
        index.reset();
        interfaces.clear();
        interfaces.shrink_to_fit();
        candidates = {};
        lower = {};
    }
};

struct Match {
    uint64_t ts;
    uint32_t offset, size;  // the EPB in the block's pcapng
    uint32_t interface_id;
    uint32_t orig_len, data_offset, caplen;
};

struct Loaded {
    uint32_t file = 0, block = 0;
    pcapng::Buffer raw, pcapng;
    std::vector<Match> matches;
    std::size_t next = 0;
};

struct Entry {
    uint64_t ts;
    uint32_t file, block, pos;
    int32_t slot;  // -1: the file's next candidate block (or the unopened file)
    bool operator>(const Entry& o) const {
        if (ts != o.ts) return ts > o.ts;
        if (file != o.file) return file > o.file;
        if (block != o.block) return block > o.block;
        return pos > o.pos;
    }
};

// The Finish record at the end of an index, when it describes the data file
// as it is: the whole file is then known from 56 + 40 bytes.
std::optional<FinishRecord> read_finish(const std::string& index_file, uint64_t data_size,
                                        QueryStats& stats) {
    const int fd = ::open(index_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::optional<FinishRecord> r;
    struct stat st {};
    std::byte head[40], tail[kFinishRecordBytes];
    if (::fstat(fd, &st) == 0 && uint64_t(st.st_size) >= sizeof head + sizeof tail &&
        ::pread(fd, head, sizeof head, 0) == ssize_t(sizeof head) &&
        ::pread(fd, tail, sizeof tail, st.st_size - off_t(sizeof tail)) == ssize_t(sizeof tail)) {
        stats.index_bytes_read += sizeof head + sizeof tail;
        const auto h = record_at(head, 0);
        const auto f = record_at(tail, 0);
        if (h && h->type == RecordType::Header && decode_header(h->body) && f &&
            f->type == RecordType::Finish) {
            r = decode_finish(f->body);
            if (r && r->data_end != data_size) r.reset();
        }
    }
    ::close(fd);
    return r;
}

// The index's blocks within the data's `size` and the interfaces they
// define; nullopt when an interface record holds no valid interface block.
std::optional<IndexPrefix> usable_prefix(const Index& ix, uint64_t size,
                                         std::vector<pcapng::Interface>& interfaces) {
    const IndexPrefix p = prefix_within(ix, size);
    for (uint32_t i = 0; i < p.interfaces; ++i) {
        auto parsed = pcapng::parse_interface(ix.interfaces[i]);
        if (!parsed) return std::nullopt;
        interfaces.push_back(std::move(*parsed));
    }
    return p;
}

}  // namespace

bool Query::run(QuerySink& sink, QueryStats& stats, std::vector<std::string>& warnings,
                std::string* error) {
    // The files, in the order ties are broken: stream, directory, file number.
    std::vector<File> files;
    for (uint32_t d = 0; d < spec_.dirs.size(); ++d) {
        // Files named by any template the directory's collector used, in
        // its subdirectories too, and files being written (NAME.part).
        const auto templates = directory_templates(spec_.dirs[d], &warnings);
        std::vector<FoundFile> found;
        if (!find_data_files(spec_.dirs[d], templates, found, &warnings, error)) return false;
        // A file renamed while the directory was read can show under both
        // names: the finished one counts.
        std::sort(found.begin(), found.end(), [](const FoundFile& a, const FoundFile& b) {
            return std::tie(a.id.stream, a.id.n, a.part) < std::tie(b.id.stream, b.id.n, b.part);
        });
        for (std::size_t i = 0; i < found.size(); ++i) {
            const FoundFile& ff = found[i];
            if (i > 0 && found[i - 1].id == ff.id) continue;
            if (!spec_.streams.empty() && std::find(spec_.streams.begin(), spec_.streams.end(),
                                                    ff.id.stream) == spec_.streams.end())
                continue;
            File f;
            f.path = spec_.dirs[d] + "/" + ff.path;
            f.name = {ff.id.stream, ff.id.n};
            f.dir = d;
            f.compression = ff.compression;
            files.push_back(std::move(f));
        }
    }
    std::sort(files.begin(), files.end(), [](const File& a, const File& b) {
        return std::tie(a.name.stream, a.dir, a.name.index) <
               std::tie(b.name.stream, b.dir, b.name.index);
    });

    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
    for (uint32_t i = 0; i < files.size(); ++i) {
        File& f = files[i];
        struct stat st {};
        if (::stat(f.path.c_str(), &st) != 0) {
            // Finished meanwhile (renamed without ".part"), or removed by
            // retention: then it is gone.
            if (!f.path.ends_with(kPartSuffix)) continue;
            f.path.resize(f.path.size() - kPartSuffix.size());
            if (::stat(f.path.c_str(), &st) != 0) continue;
        }
        f.size = uint64_t(st.st_size);
        ++stats.files;
        stats.data_bytes += f.size;
        const auto fin = read_finish(index_path(f.path), f.size, stats);
        if (fin && (fin->packets == 0 || fin->max_ts_ns < spec_.from_ns ||
                    fin->min_ts_ns >= spec_.to_ns)) {
            ++stats.files_outside_time;
            continue;
        }
        heap.push({fin ? fin->min_ts_ns : 0, i, 0, 0, -1});
    }

    // Opens a file: its index, the data it does not cover indexed in memory,
    // and the blocks the time range and the filter leave.
    auto open_file = [&](File& f) {
        f.opened = true;
        f.fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (f.fd < 0 && errno == ENOENT && f.path.ends_with(kPartSuffix)) {
            f.path.resize(f.path.size() - kPartSuffix.size());  // finished meanwhile
            f.fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
        }
        if (f.fd < 0) {
            warnings.push_back(detail::errno_message("cannot open", f.path));
            return;
        }
        std::string why;
        std::optional<Index> ix = load_index(index_path(f.path), &why);
        if (ix) stats.index_bytes_read += ix->bytes.size();
        if (ix && ix->header.compression != f.compression) ix.reset();
        uint64_t covered = 0;
        std::vector<pcapng::Interface> interfaces;
        // Blocks past the data's end (a file cut by a crash without --sync,
        // or by hand) do not count.
        std::optional<IndexPrefix> prefix;
        if (ix) prefix = usable_prefix(*ix, f.size, interfaces);
        if (!prefix) {
            ix.reset();
            ++stats.files_without_index;
            interfaces.clear();
        } else {
            covered = prefix->covered_end;
        }
        if (ix && covered == f.size && prefix->blocks == ix->blocks.size()) {
            f.index = std::move(ix);  // the usual case: it covers the whole file
        } else {
            // Data the index does not cover (a file being written, a
            // collector run with --no-index, a crash's open block): index it
            // now, in memory, after what the index holds.
            std::vector<std::byte> bytes;
            if (ix)
                bytes.assign(ix->bytes.begin(), ix->bytes.begin() + std::ptrdiff_t(prefix->bytes));
            if (covered < f.size) {
                stats.unindexed_bytes += f.size - covered;
                std::vector<std::byte> records;
                const DataIndexed r = index_data(f.fd, f.compression, covered, f.size, !ix,
                                                 interfaces, spec_.build, records);
                if (!r.ok)
                    warnings.push_back(f.path + ": " + r.error + " at or after byte " +
                                       std::to_string(r.covered_end) + ": the rest is not read");
                if (!ix) {
                    if (r.data_start == 0 && r.covered_end == 0) return;  // not pcapng
                    IndexHeader h;
                    h.compression = f.compression;
                    h.data_start = r.data_start;
                    append_header(bytes, h);
                }
                bytes.insert(bytes.end(), records.begin(), records.end());
            }
            f.index = parse_index(std::move(bytes), &why);
        }
        if (!f.index) return;
        f.interfaces = std::move(interfaces);
        const Index& x = *f.index;
        for (uint32_t b = 0; b < x.blocks.size(); ++b) {
            const BlockRecord& r = x.blocks[b];
            ++stats.blocks;
            if (r.packets == 0 || r.max_ts_ns < spec_.from_ns || r.min_ts_ns >= spec_.to_ns)
                continue;
            ++stats.blocks_in_time;
            if (!predicate_.may_match(r)) continue;
            f.candidates.push_back(b);
        }
        f.lower.resize(f.candidates.size());
        uint64_t low = UINT64_MAX;
        for (std::size_t i = f.candidates.size(); i-- > 0;) {
            low = std::min(low, x.blocks[f.candidates[i]].min_ts_ns);
            f.lower[i] = low;
        }
    };

    std::vector<std::unique_ptr<Loaded>> slots;
    std::vector<int32_t> free_slots;
    std::vector<std::byte> inner_scratch;  // an inner IP packet with its Ethernet header
    // Reads a candidate block and keeps the packets that pass; returns its
    // slot, or -1 when none does.
    auto load_block = [&](uint32_t fi, uint32_t b) -> int32_t {
        File& f = files[fi];
        const BlockRecord& r = f.index->blocks[b];
        int32_t s;
        if (!free_slots.empty()) {
            s = free_slots.back();
            free_slots.pop_back();
        } else {
            s = int32_t(slots.size());
            slots.push_back(std::make_unique<Loaded>());
        }
        Loaded& l = *slots[std::size_t(s)];
        l.file = fi;
        l.block = b;
        l.matches.clear();
        l.next = 0;
        ++stats.blocks_read;
        stats.bytes_read += r.data_end - r.data_start;
        std::string why;
        if (!pcapng::read_range(f.fd, f.compression, r.data_start, r.data_end, r.pcapng_bytes,
                                l.raw, l.pcapng, &why))
            warnings.push_back(f.path + ": " + why + " reading bytes " +
                               std::to_string(r.data_start) + ".." + std::to_string(r.data_end));
        std::size_t at = 0;
        while (true) {
            const pcapng::Next n = pcapng::block_at(l.pcapng, at);
            if (n.walk != pcapng::Walk::Ok) break;
            const std::size_t here = at;
            at += n.block.bytes.size();
            if (n.block.type != pcapng::kEnhancedPacketBlock) continue;
            const auto p = pcapng::parse_packet_block(n.block.bytes);
            if (!p) continue;
            if (p->interface_id >= f.interfaces.size()) {
                if (!f.warned_interface)
                    warnings.push_back(f.path +
                                       ": a packet of an interface never described: "
                                       "left out (the file is damaged)");
                f.warned_interface = true;
                continue;
            }
            const pcapng::Interface& iface = f.interfaces[p->interface_id];
            const uint64_t ts = pcapng::to_ns(iface, p->ts_raw);
            if (ts < spec_.from_ns || ts >= spec_.to_ns) continue;
            ++stats.packets_examined;
            bool usable;
            const bpf_program* prog = filters_->get(iface.link_type, &usable, warnings);
            if (!usable) continue;
            if (prog) {
                pcap_pkthdr h{};
                h.caplen = uint32_t(p->data.size());
                h.len = p->orig_len;
                const Libpcap& pcap = *filters_->pcap;
                if (!pcap.offline_filter(prog, &h,
                                         reinterpret_cast<const u_char*>(p->data.data())) &&
                    !(spec_.inner && iface.link_type == pcapng::kLinkTypeEthernet &&
                      inner_matches(pcap, prog, p->data, p->orig_len, inner_scratch)))
                    continue;
            }
            l.matches.push_back(
                {ts, uint32_t(here), uint32_t(n.block.bytes.size()), p->interface_id, p->orig_len,
                 uint32_t(p->data.data() - n.block.bytes.data()), uint32_t(p->data.size())});
        }
        if (!std::is_sorted(l.matches.begin(), l.matches.end(),
                            [](const Match& a, const Match& b) { return a.ts < b.ts; }))
            std::stable_sort(l.matches.begin(), l.matches.end(),
                             [](const Match& a, const Match& b) { return a.ts < b.ts; });
        if (l.matches.empty()) {
            free_slots.push_back(s);
            return -1;
        }
        ++stats.blocks_matched;
        return s;
    };

    while (!heap.empty()) {
        const Entry e = heap.top();
        heap.pop();
        if (e.slot >= 0) {
            Loaded& l = *slots[std::size_t(e.slot)];
            const Match& m = l.matches[l.next];
            File& f = files[l.file];
            QueryPacket p;
            p.source = l.file;
            p.interface_id = m.interface_id;
            p.interface = &f.interfaces[m.interface_id];
            p.ts_ns = m.ts;
            p.epb = {l.pcapng.data() + m.offset, m.size};
            p.data = p.epb.subspan(m.data_offset, m.caplen);
            p.orig_len = m.orig_len;
            ++stats.packets_matched;
            if (!sink.packet(p)) {
                *error = std::string("cannot write the output: ") + std::strerror(errno);
                return false;
            }
            if (++l.next < l.matches.size()) {
                heap.push({l.matches[l.next].ts, l.file, l.block, uint32_t(l.next), e.slot});
            } else {
                free_slots.push_back(e.slot);
                if (--f.loaded == 0 && f.next == f.candidates.size()) f.release();
            }
            continue;
        }
        File& f = files[e.file];
        if (!f.opened) {
            open_file(f);
            if (f.candidates.empty()) {
                f.release();
                continue;
            }
            heap.push({f.lower[0], e.file, f.candidates[0], 0, -1});
            continue;
        }
        const uint32_t b = f.candidates[f.next++];
        const int32_t s = load_block(e.file, b);
        if (s >= 0) {
            ++f.loaded;
            heap.push({slots[std::size_t(s)]->matches[0].ts, e.file, b, 0, s});
        }
        if (f.next < f.candidates.size()) {
            heap.push({f.lower[f.next], e.file, f.candidates[f.next], 0, -1});
        } else if (f.loaded == 0) {
            f.release();  // its packets are all out: its index and interfaces can go
        }
    }
    for (File& f : files)
        f.release();
    return true;
}

// ---- pcapng output --------------------------------------------------------------

}  // namespace sluice::index
