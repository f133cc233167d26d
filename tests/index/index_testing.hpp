// Helpers for the index tests: Ethernet frames built field by field, and
// pcapng data files written the way the collector writes them, with the
// index Writer's hooks called where the collector calls them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#include "sluice/index/format.hpp"
#include "sluice/index/pcapng.hpp"
#include "sluice/index/writer.hpp"

namespace sluice::index::testing {

class Frame {
  public:
    Frame& u8(uint8_t v) {
        b_.push_back(std::byte{v});
        return *this;
    }
    Frame& u16(uint16_t v) { return u8(uint8_t(v >> 8)).u8(uint8_t(v)); }
    Frame& u32(uint32_t v) { return u16(uint16_t(v >> 16)).u16(uint16_t(v)); }
    Frame& bytes(std::initializer_list<uint8_t> v) {
        for (uint8_t x : v)
            u8(x);
        return *this;
    }
    Frame& zeros(std::size_t n) {
        b_.resize(b_.size() + n);  // value-initialised: zeros
        return *this;
    }
    Frame& ether(uint16_t type) { return zeros(12).u16(type); }
    Frame& vlan(uint16_t tpid, uint16_t id) {  // after the MACs: replaces nothing, call first
        return u16(tpid).u16(id);
    }
    // An IPv4 header without options.
    Frame& ipv4(uint8_t proto, uint32_t src, uint32_t dst, uint16_t frag = 0x4000,
                uint8_t ver_ihl = 0x45) {
        return u8(ver_ihl).u8(0).u16(100).u16(1).u16(frag).u8(64).u8(proto).u16(0).u32(src).u32(
            dst);
    }
    Frame& ipv6(uint8_t next, std::initializer_list<uint8_t> src,
                std::initializer_list<uint8_t> dst) {
        u32(0x60000000).u16(100).u8(next).u8(64);
        addr16(src);
        return addr16(dst);
    }
    Frame& addr16(std::initializer_list<uint8_t> a) {
        std::size_t n = 0;
        for (uint8_t x : a) {
            u8(x);
            ++n;
        }
        return zeros(16 - n);
    }
    Frame& ports(uint16_t s, uint16_t d) { return u16(s).u16(d); }
    const std::vector<std::byte>& data() const { return b_; }
    std::vector<std::byte> cut(std::size_t n) const {
        return {b_.begin(), b_.begin() + static_cast<std::ptrdiff_t>(std::min(n, b_.size()))};
    }
    std::size_t size() const { return b_.size(); }

  private:
    std::vector<std::byte> b_;
};

inline Frame eth() {
    Frame f;
    f.zeros(12);
    return f;
}

namespace fs = std::filesystem;

inline void put32(std::vector<std::byte>& v, uint32_t x) {
    const std::size_t at = v.size();
    v.resize(at + 4);
    std::memcpy(v.data() + at, &x, 4);
}

// pcapng blocks as the collector writes them.
inline std::vector<std::byte> shb() {
    std::vector<std::byte> b;
    put32(b, pcapng::kSectionHeaderBlock);
    put32(b, 28);
    put32(b, pcapng::kByteOrderMagic);
    put32(b, 1);  // version 1.0
    put32(b, 0xffffffff);
    put32(b, 0xffffffff);
    put32(b, 28);
    return b;
}

inline std::vector<std::byte> idb(uint16_t link_type = 1, uint8_t tsresol = 9) {
    std::vector<std::byte> b;
    put32(b, pcapng::kInterfaceDescriptionBlock);
    put32(b, 32);
    put32(b, link_type);
    put32(b, 262144);
    put32(b, 9u | 1u << 16);  // if_tsresol, length 1
    put32(b, tsresol);
    put32(b, 0);  // opt_endofopt
    put32(b, 32);
    return b;
}

inline std::vector<std::byte> epb(uint32_t ifid, uint64_t ts, const std::vector<std::byte>& data) {
    std::vector<std::byte> b;
    const uint32_t len = 32 + uint32_t((data.size() + 3) & ~std::size_t{3});
    put32(b, pcapng::kEnhancedPacketBlock);
    put32(b, len);
    put32(b, ifid);
    put32(b, uint32_t(ts >> 32));
    put32(b, uint32_t(ts));
    put32(b, uint32_t(data.size()));
    put32(b, uint32_t(data.size()));
    b.insert(b.end(), data.begin(), data.end());
    b.resize(len - 4);
    put32(b, len);
    return b;
}

struct TestPacket {
    uint64_t ts = 0;
    uint32_t ifid = 0;
    std::vector<std::byte> frame;
};

// A UDP/IPv4 packet of host 10.0.<n>, port 1000 + n.
inline TestPacket udp_packet(uint64_t ts, uint32_t n, uint32_t ifid = 0, std::size_t pad = 60) {
    Frame f = eth();
    f.u16(0x0800).ipv4(17, 0x0a000000 | n, 0xc0000201).ports(uint16_t(1000 + n % 50000), 53);
    f.zeros(pad);
    return {ts, ifid, f.data()};
}

inline uint64_t file_size(const std::string& p) {
    std::error_code ec;
    const auto s = fs::file_size(p, ec);
    return ec ? 0 : s;
}

// A data file written the way a collector's Stream does, with the Writer's
// hooks called in the same places.
class DataFile {
  public:
    DataFile(std::string path, Compression c, Writer& w) : path_(std::move(path)), c_(c), w_(&w) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        append(shb());
        w_->start(path_, c_, size_);
    }
    ~DataFile() { ::close(fd_); }

    // One commit of these packets; interfaces are declared on first use.
    void commit(const std::vector<TestPacket>& pk, bool rollback = false) {
        std::vector<std::byte> batch;
        for (const TestPacket& p : pk) {
            while (interfaces_ <= p.ifid) {
                const auto b = idb();
                batch.insert(batch.end(), b.begin(), b.end());
                w_->interface(b, batch.size());
                ++interfaces_;
            }
            const auto b = epb(p.ifid, p.ts, p.frame);
            batch.insert(batch.end(), b.begin(), b.end());
            w_->packet(p.ts, p.frame, batch.size());
        }
        if (rollback) {
            w_->rollback();
            interfaces_ = committed_interfaces_;
            return;
        }
        const uint64_t before = size_;
        append(batch);
        committed_interfaces_ = interfaces_;
        EXPECT_TRUE(w_->commit(before, size_, batch.size()));
    }
    // Bytes written after the last commit (a crash between write and state save).
    void write_uncommitted(const std::vector<std::byte>& junk) {
        ASSERT_EQ(::pwrite(fd_, junk.data(), junk.size(), off_t(size_)), ssize_t(junk.size()));
    }
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }
    // Another writer takes over (a restarted collector).
    void use(Writer& w) { w_ = &w; }

  private:
    void append(const std::vector<std::byte>& pcapng) {
        std::vector<std::byte> out = pcapng;
        if (c_ == Compression::Zstd) {
            out.resize(ZSTD_compressBound(pcapng.size()));
            out.resize(ZSTD_compress(out.data(), out.size(), pcapng.data(), pcapng.size(), 1));
        }
        ASSERT_EQ(::pwrite(fd_, out.data(), out.size(), off_t(size_)), ssize_t(out.size()));
        size_ += out.size();
    }
    std::string path_;
    Compression c_;
    Writer* w_;
    int fd_ = -1;
    uint64_t size_ = 0;
    uint32_t interfaces_ = 0, committed_interfaces_ = 0;
};

class TempDir {
  public:
    TempDir() {
        std::string t = (fs::path(::testing::TempDir()) / "sluice-index-XXXXXX").string();
        if (::mkdtemp(t.data())) path_ = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

  private:
    fs::path path_;
};

}  // namespace sluice::index::testing
