#include "sluice/index/builder.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "util.hpp"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::index {

void BlockBuilder::add_packet(uint64_t ts_ns, uint16_t link_type,
                              std::span<const std::byte> frame) {
    if (link_type != pcapng::kLinkTypeEthernet) {
        add_opaque(ts_ns);
        return;
    }
    const FrameKeys k = frame_keys(frame);
    add_keys(ts_ns, {k.keys.data(), k.count}, {k.protos.data(), k.proto_count});
}

void BlockBuilder::close(uint64_t start, uint64_t end, std::vector<std::byte>& out) {
    filter_.clear();
    BlockRecord b;
    b.data_start = start;
    b.data_end = end;
    b.pcapng_bytes = pcapng_bytes_;
    b.min_ts_ns = min_ts_;
    b.max_ts_ns = max_ts_;
    b.packets = packets_;
    b.flags = flags_;
    b.protocols = protocols_;
    b.bloom_blocks = bloom_.fold_into(filter_);
    b.bloom = filter_;
    append_block(out, b);
    reset();
}

void BlockBuilder::reset() {
    bloom_.clear();
    protocols_ = {};
    first_ts_ = min_ts_ = max_ts_ = last_ts_ = pcapng_bytes_ = 0;
    packets_ = flags_ = 0;
}

void BlockBuilder::merge_from(BlockBuilder& later) {
    bloom_.merge_from(later.bloom_);
    for (std::size_t i = 0; i < protocols_.bits.size(); ++i)
        protocols_.bits[i] |= later.protocols_.bits[i];
    flags_ |= later.flags_;
    if (later.packets_) {
        if (packets_ == 0) {
            first_ts_ = later.first_ts_;
            min_ts_ = later.min_ts_;
            max_ts_ = later.max_ts_;
        } else {
            if (later.first_ts_ < last_ts_) flags_ |= block_flag::kUnordered;
            min_ts_ = std::min(min_ts_, later.min_ts_);
            max_ts_ = std::max(max_ts_, later.max_ts_);
        }
        last_ts_ = later.last_ts_;
        packets_ += later.packets_;
    }
    pcapng_bytes_ += later.pcapng_bytes_;
    later.reset();
}

void BlockBuilder::copy_from(const BlockBuilder& other) {
    bloom_.copy_from(other.bloom_);
    protocols_ = other.protocols_;
    first_ts_ = other.first_ts_;
    min_ts_ = other.min_ts_;
    max_ts_ = other.max_ts_;
    last_ts_ = other.last_ts_;
    pcapng_bytes_ = other.pcapng_bytes_;
    packets_ = other.packets_;
    flags_ = other.flags_;
}

Compression compression_of(std::string_view path) {
    if (path.ends_with(".part")) path.remove_suffix(5);  // being written (file_name.hpp)
    return path.ends_with(".zst") ? Compression::Zstd : Compression::None;
}

DataIndexed index_data(int fd, Compression c, uint64_t start, uint64_t end,
                       bool expect_section_header, std::vector<pcapng::Interface>& interfaces,
                       const BuildSettings& s, std::vector<std::byte>& out) {
    DataIndexed r;
    r.data_start = r.covered_end = start;
    BlockBuilder b;
    // What was read since the last boundary counts only once a boundary
    // comes: a scan that stops inside a zstd frame leaves it unindexed.
    uint64_t bytes_since = 0;
    uint32_t packets_since = 0;
    std::size_t interfaces_at_boundary = interfaces.size();
    std::size_t interfaces_in_block = interfaces.size();  // the first defined in the open block
    bool header_seen = !expect_section_header;
    bool data_started = !expect_section_header;  // data_start is known
    bool more_than_header = false;
    uint64_t last_boundary = start;

    auto on_block = [&](const pcapng::Block& blk) {
        if (blk.type == pcapng::kSectionHeaderBlock) {
            if (header_seen) {
                r.error = "a second pcapng section (only one per file is supported)";
                return false;
            }
            header_seen = true;
            bytes_since += blk.bytes.size();
            return true;
        }
        if (!header_seen) {
            r.error = "the file does not begin with a pcapng section header";
            return false;
        }
        more_than_header = true;
        if (blk.type == pcapng::kInterfaceDescriptionBlock) {
            auto i = pcapng::parse_interface(blk.bytes);
            if (!i) {
                r.error = "a malformed interface description block";
                return false;
            }
            interfaces.push_back(std::move(*i));
        } else if (blk.type == pcapng::kEnhancedPacketBlock) {
            const auto p = pcapng::parse_packet_block(blk.bytes);
            if (!p || p->interface_id >= interfaces.size()) {
                r.error = "a packet block naming no known interface, or longer than itself";
                return false;
            }
            const pcapng::Interface& i = interfaces[p->interface_id];
            const uint64_t ts = pcapng::to_ns(i, p->ts_raw);
            b.add_packet(ts, i.link_type, p->data);
            ++packets_since;
            r.min_ts_ns = std::min(r.min_ts_ns, ts);
            r.max_ts_ns = std::max(r.max_ts_ns, ts);
        }
        // Other blocks (statistics, name resolution, ...) carry no packet.
        bytes_since += blk.bytes.size();
        return true;
    };
    auto close_block = [&](uint64_t at) {
        for (std::size_t id = interfaces_in_block; id < interfaces_at_boundary; ++id)
            append_interface(out, static_cast<uint32_t>(id), interfaces[id].idb);
        interfaces_in_block = interfaces_at_boundary;
        b.close(r.covered_end, at, out);
        r.covered_end = at;
        ++r.blocks;
    };
    auto on_boundary = [&](uint64_t at) {
        last_boundary = at;
        b.add_bytes(bytes_since);
        r.packets += packets_since;
        bytes_since = 0;
        packets_since = 0;
        interfaces_at_boundary = interfaces.size();
        if (!data_started) {
            if (!header_seen) return;
            // The section header alone before this boundary: packets start
            // here. A zstd file made by other tools has it in the first frame
            // with everything else: the first block then begins at 0.
            data_started = true;
            if (!more_than_header) {
                r.data_start = r.covered_end = at;
                b.reset();
                return;
            }
        }
        if (b.full(s)) close_block(at);
    };
    const pcapng::ScanResult sr = pcapng::scan(fd, c, start, end, on_block, on_boundary);
    if (!sr.ok) r.error = sr.error;
    if (!r.error.empty()) r.ok = false;
    // Interfaces defined past the last boundary are not covered.
    interfaces.resize(interfaces_at_boundary);
    if (!data_started) {
        if (!r.ok) return r;
        if (!header_seen) {
            r.ok = false;
            r.error = "no pcapng section header";
            return r;
        }
        r.data_start = r.covered_end = last_boundary;
        return r;
    }
    // Packets read past the last boundary leave their keys in the filter
    // (a false positive at worst) but are not counted.
    b.trim_packets(packets_since);
    if (last_boundary > r.covered_end) close_block(last_boundary);
    return r;
}

bool reindex_file(const std::string& data_path, const BuildSettings& s, DataIndexed* result,
                  std::string* error) {
    const int fd = ::open(data_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = detail::errno_message("cannot open", data_path);
        return false;
    }
    struct stat st {};
    ::fstat(fd, &st);
    const Compression c = compression_of(data_path);
    std::vector<pcapng::Interface> interfaces;
    std::vector<std::byte> records;
    IndexHeader h;
    h.compression = c;
    // The header's data_start is known only after the scan: encode after.
    DataIndexed r =
        index_data(fd, c, 0, static_cast<uint64_t>(st.st_size), true, interfaces, s, records);
    ::close(fd);
    if (result) *result = r;
    if (!r.ok && r.blocks == 0) {
        *error = data_path + ": " + r.error;
        return false;
    }
    // A damaged file keeps the index of what precedes the damage, without a
    // Finish record: a query reads the rest as unindexed.
    h.data_start = r.data_start;
    std::vector<std::byte> out;
    append_header(out, h);
    out.insert(out.end(), records.begin(), records.end());
    FinishRecord f;
    f.data_end = r.covered_end;
    f.packets = r.packets;
    f.blocks = r.blocks;
    f.min_ts_ns = r.packets ? r.min_ts_ns : 0;
    f.max_ts_ns = r.max_ts_ns;
    if (r.ok) append_finish(out, f);
    const std::string final_path = index_path(data_path);
    const std::string tmp = final_path + ".tmp";
    const int ofd = detail::open_index_file(tmp, data_path, O_WRONLY | O_TRUNC);
    if (ofd < 0) {
        *error = detail::errno_message("cannot create", tmp);
        return false;
    }
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::write(ofd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *error = detail::errno_message("cannot write", tmp);
            ::close(ofd);
            ::unlink(tmp.c_str());
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    ::close(ofd);
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
        *error = detail::errno_message("cannot rename to", final_path);
        ::unlink(tmp.c_str());
        return false;
    }
    if (!r.ok) {
        *error = data_path + ": indexed up to byte " + std::to_string(r.covered_end) + " of " +
                 std::to_string(st.st_size) + ", then " + r.error;
        return false;
    }
    return true;
}

}  // namespace sluice::index
