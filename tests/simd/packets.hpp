// Builds Ethernet/IP/TCP-UDP packets with correct checksums (computed with the
// reference sum, not with the kernels under test).
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "sluice/simd/checksum.hpp"
#include "sluice/simd/reference.hpp"

namespace sluice::simd::testing {

struct PacketSpec {
    uint16_t ethertype = 0;  // 0: IPv4 or IPv6 as v6 says; anything else: that type, no IP
    bool v6 = false;
    uint8_t proto = 6;
    std::size_t payload = 0;
    std::size_t ip_options = 0;  // IPv4 option bytes, a multiple of 4
    int v6_ext = 0;              // IPv6 destination-options headers before L4
    bool v6_frag = false;        // an IPv6 fragment header before L4
    bool udp_zero = false;       // UDP checksum field left 0
    bool fragment = false;       // IPv4 More Fragments set
    int vlans = 0;
    uint64_t seed = 1;
};

inline uint16_t ref_cksum(const uint8_t* p, std::size_t n, uint64_t acc = 0) {
    return static_cast<uint16_t>(~cksum_fold(reference::cksum_add(p, n, acc)));
}

inline void put16be(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

inline void fix_ipv4_header(std::vector<uint8_t>& b, std::size_t l3) {
    const std::size_t ihl = (b[l3] & 0x0fu) * 4u;
    b[l3 + 10] = b[l3 + 11] = 0;
    const uint16_t ck = ref_cksum(&b[l3], ihl);
    std::memcpy(&b[l3 + 10], &ck, 2);  // host order: the sum was in host order too
}

inline std::vector<uint8_t> make_packet(const PacketSpec& s) {
    std::mt19937_64 rng(s.seed);
    std::vector<uint8_t> b(12, 0);
    for (auto& x : b)
        x = static_cast<uint8_t>(rng());
    for (int i = 0; i < s.vlans; ++i) {
        b.push_back(i == 0 && s.vlans == 2 ? 0x88 : 0x81);
        b.push_back(i == 0 && s.vlans == 2 ? 0xa8 : 0x00);
        b.push_back(0x00);
        b.push_back(static_cast<uint8_t>(10 + i));
    }
    const uint16_t type = s.ethertype ? s.ethertype : (s.v6 ? 0x86dd : 0x0800);
    b.push_back(static_cast<uint8_t>(type >> 8));
    b.push_back(static_cast<uint8_t>(type));
    const std::size_t l3 = b.size();
    if (s.ethertype) {
        for (std::size_t i = 0; i < s.payload; ++i)
            b.push_back(static_cast<uint8_t>(rng()));
        return b;
    }
    const std::size_t l4hdr = s.proto == 6 ? 20 : s.proto == 17 ? 8 : 0;
    const std::size_t l4_len = l4hdr + s.payload;
    std::size_t ext_len = 0;
    if (!s.v6) {
        const std::size_t ihl = 20 + s.ip_options;
        b.resize(l3 + ihl + l4_len);
        uint8_t* ip = &b[l3];
        ip[0] = static_cast<uint8_t>(0x40 | ihl / 4);
        put16be(ip + 2, static_cast<uint16_t>(ihl + l4_len));
        put16be(ip + 4, static_cast<uint16_t>(rng()));
        put16be(ip + 6, s.fragment ? 0x2000 : 0x4000);
        ip[8] = 64;
        ip[9] = s.proto;
        for (int i = 12; i < 20; ++i)
            ip[i] = static_cast<uint8_t>(rng());
        for (std::size_t i = 20; i < ihl; ++i)
            ip[i] = 1;  // NOP options
        fix_ipv4_header(b, l3);
    } else {
        ext_len = 8 * static_cast<std::size_t>(s.v6_ext) + (s.v6_frag ? 8 : 0);
        b.resize(l3 + 40 + ext_len + l4_len);
        uint8_t* ip = &b[l3];
        ip[0] = 0x60;
        put16be(ip + 4, static_cast<uint16_t>(ext_len + l4_len));
        ip[7] = 64;
        for (int i = 8; i < 40; ++i)
            ip[i] = static_cast<uint8_t>(rng());
        uint8_t* next = ip + 6;
        uint8_t* ext = ip + 40;
        for (int i = 0; i < s.v6_ext; ++i, ext += 8) {
            *next = 60;  // destination options, 8 bytes: PadN
            ext[1] = 0, ext[2] = 1, ext[3] = 4;
            next = ext;
        }
        if (s.v6_frag) {
            *next = 44;
            ext[2] = 0, ext[3] = 1;  // offset 0, More Fragments
            next = ext;
            ext += 8;
        }
        *next = s.proto;
    }
    const std::size_t l4 = b.size() - l4_len;
    for (std::size_t i = l4; i < b.size(); ++i)
        b[i] = static_cast<uint8_t>(rng());
    if (l4hdr == 0) return b;
    uint8_t* h = &b[l4];
    if (s.proto == 6) {
        h[12] = 0x50;
        std::memset(h + 16, 0, 2);
    } else {
        put16be(h + 4, static_cast<uint16_t>(l4_len));
        std::memset(h + 6, 0, 2);
    }
    // Pseudo-header in wire order, summed with the reference.
    std::vector<uint8_t> ph;
    const uint8_t* ip = &b[l3];
    if (!s.v6) {
        ph.assign(ip + 12, ip + 20);
        ph.insert(ph.end(),
                  {0, s.proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)});
    } else {
        ph.assign(ip + 8, ip + 40);
        ph.insert(ph.end(), {0, 0, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len),
                             0, 0, 0, s.proto});
    }
    uint16_t ck = ref_cksum(h, l4_len, reference::cksum_add(ph.data(), ph.size(), 0));
    if (s.proto == 17 && ck == 0) ck = 0xffff;
    if (s.proto == 17 && s.udp_zero) ck = 0;
    std::memcpy(h + (s.proto == 6 ? 16 : 6), &ck, 2);
    return b;
}

}  // namespace sluice::simd::testing
