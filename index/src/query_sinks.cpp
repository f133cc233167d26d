// What a query's packets become: pcapng (sluice-query, GET /query) or one
// JSON line per flow (--flows).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <queue>
#include <unordered_map>

#include "util.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/index/file_name.hpp"
#include "sluice/index/keys.hpp"
#include "sluice/index/packet.hpp"
#include "sluice/index/query.hpp"
#include "sluice/index/timefmt.hpp"
#include "sluice/tunnel/decap.hpp"

namespace sluice::index {

namespace {

void put32(std::vector<std::byte>& v, uint32_t x) {
    const std::size_t at = v.size();
    v.resize(at + 4);
    std::memcpy(v.data() + at, &x, 4);
}

void option(std::vector<std::byte>& v, uint16_t code, std::string_view s) {
    if (s.empty()) return;
    const std::size_t n = std::min<std::size_t>(s.size(), 0xfff0);
    put32(v, uint32_t(code) | uint32_t(n) << 16);
    const std::size_t at = v.size();
    v.resize(at + ((n + 3) & ~std::size_t{3}));
    std::memcpy(v.data() + at, s.data(), n);
}

}  // namespace

PcapngSink::PcapngSink(ByteOutput& out, std::string_view application, std::string_view comment)
    : out_(&out) {
    header(application, comment);
}

PcapngSink::PcapngSink(std::FILE* out, std::string_view application, std::string_view comment)
    : file_(std::make_unique<FileOutput>(out)), out_(file_.get()) {
    header(application, comment);
}

void PcapngSink::header(std::string_view application, std::string_view comment) {
    std::vector<std::byte> shb;
    put32(shb, pcapng::kSectionHeaderBlock);
    put32(shb, 0);  // length, patched below
    put32(shb, pcapng::kByteOrderMagic);
    put32(shb, 1);  // version 1.0
    put32(shb, 0xffffffff);
    put32(shb, 0xffffffff);  // section length unknown: written as a stream
    option(shb, 1, comment);
    option(shb, 4, application);
    put32(shb, 0);  // opt_endofopt
    const uint32_t len = uint32_t(shb.size() + 4);
    std::memcpy(shb.data() + 4, &len, 4);
    put32(shb, len);
    write(shb);
}

bool PcapngSink::write(std::span<const std::byte> b) {
    if (ok_ && !out_->write(b)) ok_ = false;
    return ok_;
}

bool PcapngSink::packet(const QueryPacket& p) {
    const uint64_t key = uint64_t(p.source) << 32 | p.interface_id;
    uint32_t id = UINT32_MAX;
    for (const auto& [k, v] : seen_)
        if (k == key) id = v;
    if (id == UINT32_MAX) {
        // The same interface in several files (a stream's files describe
        // its interfaces alike) is described once.
        const auto& idb = p.interface->idb;
        for (const auto& [bytes, v] : interfaces_)
            if (bytes == idb) id = v;
        if (id == UINT32_MAX) {
            id = uint32_t(interfaces_.size());
            interfaces_.emplace_back(idb, id);
            if (!write(idb)) return false;
        }
        seen_.emplace_back(key, id);
    }
    epb_.assign(p.epb.begin(), p.epb.end());
    std::memcpy(epb_.data() + 8, &id, 4);
    return write(epb_);
}

// ---- flows ------------------------------------------------------------------------

namespace {

struct Flow {
    uint8_t proto = 0;
    bool v6 = false;
    std::array<std::byte, 16> src{}, dst{};  // as the first packet had them
    uint16_t sport = 0, dport = 0;
    uint64_t first = 0, last = 0;
    uint64_t packets[2] = {0, 0}, bytes[2] = {0, 0};  // [0]: src -> dst
};

// An endpoint of a flow: the address as 16 bytes (IPv4 mapped into IPv6)
// and the port.
struct Endpoint {
    uint64_t hi = 0, lo = 0;
    uint16_t port = 0;
    // NOLINTNEXTLINE(modernize-use-nullptr): libstdc++ compares the ordering with 0
    auto operator<=>(const Endpoint&) const = default;
};

Endpoint endpoint(const std::byte* addr, std::size_t addr_size, uint16_t port) {
    Endpoint e;
    if (addr_size == 16) {
        e.hi = load_be(addr, 8);
        e.lo = load_be(addr + 8, 8);
    } else {
        e.lo = 0x0000ffff00000000ull | load_be(addr, 4);
    }
    e.port = port;
    return e;
}

struct FlowKey {
    uint8_t proto;
    Endpoint a, b;  // a <= b: the same both ways
    bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
    std::size_t operator()(const FlowKey& k) const {
        uint64_t h = key_word(k.proto, k.a.hi);
        h = key_word(h, k.a.lo);
        h = key_word(h, k.b.hi);
        h = key_word(h, k.b.lo);
        return fmix64(key_word(h, uint64_t{k.a.port} << 16 | k.b.port));
    }
};

}  // namespace

struct FlowSink::Table {
    std::vector<Flow> flows;  // in the order of their first packet
    std::unordered_map<FlowKey, std::size_t, FlowKeyHash> index;
};

FlowSink::FlowSink() : t_(std::make_unique<Table>()) {}
FlowSink::~FlowSink() = default;

std::size_t FlowSink::size() const {
    return t_->flows.size();
}

bool FlowSink::packet(const QueryPacket& p) {
    if (p.interface->link_type != pcapng::kLinkTypeEthernet) return true;
    const PacketKeys k = parse_packet(p.data);
    if (!k.ip() || !k.has(PacketKeys::kSrc | PacketKeys::kDst)) return true;
    const std::size_t as = k.address_size();
    const uint16_t sp = (k.flags & PacketKeys::kSport) ? k.sport : 0;
    const uint16_t dp = (k.flags & PacketKeys::kDport) ? k.dport : 0;
    const Endpoint s = endpoint(k.src.data(), as, sp), d = endpoint(k.dst.data(), as, dp);
    const FlowKey key{k.proto, std::min(s, d), std::max(s, d)};
    auto [it, fresh] = t_->index.try_emplace(key, t_->flows.size());
    if (fresh) {
        Flow f;
        f.proto = k.proto;
        f.v6 = k.flags & PacketKeys::kIpv6;
        f.src = k.src;
        f.dst = k.dst;
        f.sport = sp;
        f.dport = dp;
        f.first = p.ts_ns;
        t_->flows.push_back(f);
    }
    Flow& f = t_->flows[it->second];
    const int dir = f.src == k.src && f.sport == sp ? 0 : 1;
    f.last = std::max(f.last, p.ts_ns);
    ++f.packets[dir];
    f.bytes[dir] += p.orig_len;
    return true;
}

void FlowSink::write(std::FILE* out) const {
    for (const Flow& f : t_->flows) {
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        inet_ntop(f.v6 ? AF_INET6 : AF_INET, f.src.data(), s, sizeof s);
        inet_ntop(f.v6 ? AF_INET6 : AF_INET, f.dst.data(), d, sizeof d);
        std::fprintf(out,
                     "{\"proto\":%u,\"src\":\"%s\",\"sport\":%u,\"dst\":\"%s\",\"dport\":%u,"
                     "\"first\":\"%s\",\"last\":\"%s\",\"packets_src_to_dst\":%llu,"
                     "\"bytes_src_to_dst\":%llu,\"packets_dst_to_src\":%llu,"
                     "\"bytes_dst_to_src\":%llu}\n",
                     f.proto, s, f.sport, d, f.dport, format_time(f.first).c_str(),
                     format_time(f.last).c_str(), (unsigned long long)f.packets[0],
                     (unsigned long long)f.bytes[0], (unsigned long long)f.packets[1],
                     (unsigned long long)f.bytes[1]);
    }
}

}  // namespace sluice::index
