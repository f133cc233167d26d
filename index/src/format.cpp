#include "sluice/index/format.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/simd/crc32c.hpp"

namespace sluice::index {
namespace {

constexpr std::size_t pad8(std::size_t n) {
    return (n + 7) & ~std::size_t{7};
}

template <class T>
void put(std::byte* p, T v) {
    std::memcpy(p, &v, sizeof v);  // the index is little-endian, as x86 is
}
template <class T>
T get(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Opens a record of `body` bytes; returns where the body goes. close_record()
// writes the CRC.
std::byte* open_record(std::vector<std::byte>& out, RecordType type, std::size_t body,
                       std::size_t* start) {
    *start = out.size();
    out.resize(*start + pad8(12 + body));
    std::byte* p = out.data() + *start;
    put<uint32_t>(p, static_cast<uint32_t>(type));
    put<uint32_t>(p + 4, static_cast<uint32_t>(body));
    return p + 8;
}

void close_record(std::vector<std::byte>& out, std::size_t start) {
    std::byte* p = out.data() + start;
    const uint32_t body = get<uint32_t>(p + 4);
    put<uint32_t>(p + 8 + body, simd::crc32c(p, 8 + body));
    std::memset(p + 12 + body, 0, pad8(12 + body) - 12 - body);
}

constexpr std::size_t kHeaderBody = 24;
constexpr std::size_t kBlockBody = 88;
constexpr std::size_t kFinishBody = 40;
static_assert(pad8(12 + kFinishBody) == kFinishRecordBytes);

}  // namespace

void append_header(std::vector<std::byte>& out, const IndexHeader& h) {
    std::size_t start;
    std::byte* p = open_record(out, RecordType::Header, kHeaderBody, &start);
    std::memcpy(p, kIndexMagic, 8);
    put<uint16_t>(p + 8, kFormatVersion);
    put<uint8_t>(p + 10, static_cast<uint8_t>(h.compression));
    put<uint8_t>(p + 11, 0);
    put<uint32_t>(p + 12, 0);
    put<uint64_t>(p + 16, h.data_start);
    close_record(out, start);
}

void append_interface(std::vector<std::byte>& out, uint32_t id, std::span<const std::byte> idb) {
    std::size_t start;
    std::byte* p = open_record(out, RecordType::Interface, 8 + idb.size(), &start);
    put<uint32_t>(p, id);
    put<uint32_t>(p + 4, 0);
    std::memcpy(p + 8, idb.data(), idb.size());
    close_record(out, start);
}

void append_block(std::vector<std::byte>& out, const BlockRecord& b) {
    std::size_t start;
    std::byte* p = open_record(out, RecordType::Block, kBlockBody + b.bloom.size(), &start);
    put<uint64_t>(p, b.data_start);
    put<uint64_t>(p + 8, b.data_end);
    put<uint64_t>(p + 16, b.pcapng_bytes);
    put<uint64_t>(p + 24, b.min_ts_ns);
    put<uint64_t>(p + 32, b.max_ts_ns);
    put<uint32_t>(p + 40, b.packets);
    put<uint32_t>(p + 44, b.flags);
    put<uint32_t>(p + 48, b.bloom_blocks);
    put<uint32_t>(p + 52, 0);
    for (int i = 0; i < 4; ++i)
        put<uint64_t>(p + 56 + 8 * i, b.protocols.bits[i]);
    if (!b.bloom.empty()) std::memcpy(p + kBlockBody, b.bloom.data(), b.bloom.size());
    close_record(out, start);
}

void append_finish(std::vector<std::byte>& out, const FinishRecord& f) {
    std::size_t start;
    std::byte* p = open_record(out, RecordType::Finish, kFinishBody, &start);
    put<uint64_t>(p, f.data_end);
    put<uint64_t>(p + 8, f.packets);
    put<uint64_t>(p + 16, f.blocks);
    put<uint64_t>(p + 24, f.min_ts_ns);
    put<uint64_t>(p + 32, f.max_ts_ns);
    close_record(out, start);
}

std::optional<RecordView> record_at(std::span<const std::byte> bytes, std::size_t at) {
    if (at > bytes.size() || bytes.size() - at < 12) return std::nullopt;
    const std::byte* p = bytes.data() + at;
    const uint32_t type = get<uint32_t>(p);
    const uint32_t body = get<uint32_t>(p + 4);
    if (body > kMaxRecordBody) return std::nullopt;
    const std::size_t size = pad8(12 + std::size_t{body});
    if (bytes.size() - at < size) return std::nullopt;  // padding included: records stay aligned
    if (get<uint32_t>(p + 8 + body) != simd::crc32c(p, 8 + std::size_t{body})) return std::nullopt;
    for (std::size_t i = 12 + std::size_t{body}; i < size; ++i)  // the pad is zeros, checked too
        if (p[i] != std::byte{0}) return std::nullopt;
    return RecordView{static_cast<RecordType>(type), {p + 8, body}, size};
}

std::optional<IndexHeader> decode_header(std::span<const std::byte> body) {
    if (body.size() < kHeaderBody || std::memcmp(body.data(), kIndexMagic, 8) != 0)
        return std::nullopt;
    if (get<uint16_t>(body.data() + 8) != kFormatVersion) return std::nullopt;
    const uint8_t c = get<uint8_t>(body.data() + 10);
    if (c > 1) return std::nullopt;
    IndexHeader h;
    h.compression = static_cast<Compression>(c);
    h.data_start = get<uint64_t>(body.data() + 16);
    return h;
}

std::optional<BlockRecord> decode_block(std::span<const std::byte> body) {
    if (body.size() < kBlockBody) return std::nullopt;
    const std::byte* p = body.data();
    BlockRecord b;
    b.data_start = get<uint64_t>(p);
    b.data_end = get<uint64_t>(p + 8);
    b.pcapng_bytes = get<uint64_t>(p + 16);
    b.min_ts_ns = get<uint64_t>(p + 24);
    b.max_ts_ns = get<uint64_t>(p + 32);
    b.packets = get<uint32_t>(p + 40);
    b.flags = get<uint32_t>(p + 44);
    b.bloom_blocks = get<uint32_t>(p + 48);
    for (int i = 0; i < 4; ++i)
        b.protocols.bits[i] = get<uint64_t>(p + 56 + 8 * i);
    if (b.bloom_blocks & (b.bloom_blocks - 1)) return std::nullopt;  // not a power of two
    if (body.size() - kBlockBody != std::size_t{b.bloom_blocks} * 32) return std::nullopt;
    if (b.data_end <= b.data_start || b.min_ts_ns > b.max_ts_ns) return std::nullopt;
    b.bloom = body.subspan(kBlockBody);
    return b;
}

std::optional<FinishRecord> decode_finish(std::span<const std::byte> body) {
    if (body.size() != kFinishBody) return std::nullopt;
    const std::byte* p = body.data();
    return FinishRecord{get<uint64_t>(p), get<uint64_t>(p + 8), get<uint64_t>(p + 16),
                        get<uint64_t>(p + 24), get<uint64_t>(p + 32)};
}

namespace {

std::optional<Index> parse_stored(std::shared_ptr<const void> storage,
                                  std::span<const std::byte> bytes, std::string* error);

}  // namespace

std::optional<Index> parse_index(std::vector<std::byte> bytes, std::string* error) {
    auto v = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
    const std::span<const std::byte> view(*v);
    return parse_stored(std::move(v), view, error);
}

namespace {

std::optional<Index> parse_stored(std::shared_ptr<const void> storage,
                                  std::span<const std::byte> bytes, std::string* error) {
    Index ix;
    ix.storage = std::move(storage);
    ix.bytes = bytes;
    const std::span<const std::byte> all(ix.bytes);
    const auto first = record_at(all, 0);
    std::optional<IndexHeader> h;
    if (first && first->type == RecordType::Header) h = decode_header(first->body);
    if (!h) {
        if (error) {
            *error = all.size() >= 20 && std::memcmp(all.data() + 8, kIndexMagic, 8) == 0
                         ? "an index of another format version: rebuild it with sluice-query "
                           "--reindex"
                         : "not a sluice index (or its header is damaged): rebuild it with "
                           "sluice-query --reindex";
        }
        return std::nullopt;
    }
    ix.header = *h;
    ix.covered_end = h->data_start;
    std::size_t at = first->size;
    ix.valid_bytes = at;
    std::size_t interfaces_valid = 0;  // interfaces up to the last block
    while (auto r = record_at(all, at)) {
        if (r->type == RecordType::Interface) {
            if (r->body.size() < 8 + 20) break;  // an IDB has at least 20 bytes
            if (get<uint32_t>(r->body.data()) != ix.interfaces.size()) break;
            ix.interfaces.emplace_back(r->body.begin() + 8, r->body.end());
        } else if (r->type == RecordType::Block) {
            const auto b = decode_block(r->body);
            if (!b || b->data_start != ix.covered_end) break;
            ix.blocks.push_back(*b);
            ix.covered_end = b->data_end;
            interfaces_valid = ix.interfaces.size();
            ix.valid_bytes = at + r->size;
            ix.block_record_end.push_back(ix.valid_bytes);
            ix.block_interfaces.push_back(static_cast<uint32_t>(interfaces_valid));
        } else if (r->type == RecordType::Finish) {
            const auto f = decode_finish(r->body);
            if (!f || f->data_end != ix.covered_end || at + r->size != all.size()) break;
            ix.finish = *f;
            break;
        } else {
            break;
        }
        at += r->size;
    }
    ix.interfaces.resize(interfaces_valid);
    return ix;
}

}  // namespace

IndexPrefix prefix_within(const Index& ix, uint64_t data_end) {
    IndexPrefix p;
    p.blocks = ix.blocks.size();
    while (p.blocks > 0 && ix.blocks[p.blocks - 1].data_end > data_end)
        --p.blocks;
    if (p.blocks) {
        p.bytes = ix.block_record_end[p.blocks - 1];
        p.covered_end = ix.blocks[p.blocks - 1].data_end;
        p.interfaces = ix.block_interfaces[p.blocks - 1];
    } else {
        const auto header = record_at(ix.bytes, 0);
        p.bytes = header ? header->size : 0;
        p.covered_end = ix.header.data_start;
    }
    return p;
}

std::optional<Index> load_index(const std::string& path, std::string* error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (error) *error = std::strerror(errno);
        return std::nullopt;
    }
    struct stat st {};
    std::size_t got = 0;
    // Not a vector: it would zero every byte before the read fills it.
    std::shared_ptr<std::byte[]> bytes;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
        const std::size_t size = static_cast<std::size_t>(st.st_size);
        bytes.reset(new std::byte[size]);
        while (got < size) {
            const ssize_t n = ::pread(fd, bytes.get() + got, size - got, static_cast<off_t>(got));
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                break;
            }
            got += static_cast<std::size_t>(n);
        }
    }
    ::close(fd);
    const std::span<const std::byte> view(bytes.get(), got);
    return parse_stored(std::move(bytes), view, error);
}

}  // namespace sluice::index
