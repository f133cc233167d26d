#include "sluice/tunnel/decap.hpp"

#include <cstring>

namespace sluice::tunnel {
namespace {

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88a8;
constexpr uint16_t kEtherVlan9100 = 0x9100;
constexpr uint16_t kEtherMpls = 0x8847;
constexpr uint16_t kEtherMplsMulticast = 0x8848;
constexpr uint16_t kEtherTeb = 0x6558;  // transparent Ethernet bridging: an Ethernet frame
constexpr uint16_t kEtherErspan2 = 0x88be;
constexpr uint16_t kEtherErspan3 = 0x22eb;
constexpr uint8_t kProtoGre = 47;
constexpr uint8_t kProtoUdp = 17;

// GRE flags (RFC 2784, RFC 2890): checksum, key, sequence present; version in
// the low 3 bits; every other bit is reserved and must be 0.
constexpr uint16_t kGreChecksum = 0x8000;
constexpr uint16_t kGreKey = 0x2000;
constexpr uint16_t kGreSequence = 0x1000;
constexpr uint16_t kGreReserved = 0x4ff8;
constexpr uint16_t kGreVersion = 0x0007;

inline uint16_t be16(const std::byte* p) {
    return static_cast<uint16_t>(static_cast<unsigned>(p[0]) << 8 | static_cast<unsigned>(p[1]));
}
inline uint32_t be32(const std::byte* p) {
    return uint32_t{be16(p)} << 16 | be16(p + 2);
}
inline uint8_t u8(const std::byte* p) {
    return static_cast<uint8_t>(*p);
}

inline bool is_vlan(uint16_t et) {
    return et == kEtherVlan || et == kEtherQinQ || et == kEtherVlan9100;
}

// What the walk ends with: the result so far, with another status.
Decap ending(Decap d, Status s) {
    d.status = s;
    return d;
}

}  // namespace

std::string_view to_string(Status s) {
    switch (s) {
        case Status::Plain:
            return "plain";
        case Status::Peeled:
            return "peeled";
        case Status::Truncated:
            return "truncated";
        case Status::Malformed:
            return "malformed";
        case Status::Unknown:
            return "unknown";
    }
    return "?";
}

Decap decapsulate(const std::byte* p, std::size_t len) {
    Decap d;
    // The walk alternates between an Ethernet header at `off` and an
    // EtherType payload `et` at `pos`. `found` says whether anything was
    // peeled: the result is then the innermost packet reached (d's fields).
    std::size_t off = 0, pos = 0;
    uint16_t et = 0;
    bool ethernet = true;
    bool found = false;
    auto inner_frame = [&](std::size_t at) {
        d.inner_offset = static_cast<uint16_t>(at);
        d.inner_ethertype = 0;
        d.mac_offset = static_cast<uint16_t>(at);
    };
    auto inner_payload = [&](std::size_t at, uint16_t type, std::size_t mac) {
        d.inner_offset = static_cast<uint16_t>(at);
        d.inner_ethertype = type;
        d.mac_offset = static_cast<uint16_t>(mac);
    };
    // Headers beyond 64 KiB cannot be described by the 16-bit offsets.
    if (len > 0xffff) len = 0xffff;
    std::size_t mac = 0;
    for (int layers = 0;;) {
        if (ethernet) {
            if (len - off < 14) {
                // The outer frame may be a runt (nothing to peel); an inner
                // one cut before its EtherType is a truncated tunnel.
                return found ? ending(d, Status::Truncated) : d;
            }
            mac = off;
            et = be16(p + off + 12);
            pos = off + 14;
            int tags = 0;
            while (is_vlan(et)) {
                if (++tags > kMaxVlanTags) return ending(d, Status::Malformed);
                if (len - pos < 4) return ending(d, Status::Truncated);
                et = be16(p + pos + 2);
                pos += 4;
            }
            if (tags) {
                d.layers |= layer::kVlan;
                found = true;
                inner_payload(pos, et, mac);
            } else if (off > 0) {
                inner_frame(off);
            }
            ethernet = false;
        }
        if (et == kEtherMpls || et == kEtherMplsMulticast) {
            for (int labels = 0;; ++labels) {
                if (labels == kMaxMplsLabels) return ending(d, Status::Malformed);
                if (len - pos < 4) return ending(d, Status::Truncated);
                const bool bottom = (u8(p + pos + 2) & 0x01) != 0;
                pos += 4;
                if (bottom) break;
            }
            d.layers |= layer::kMpls;
            found = true;
            if (pos >= len) return ending(d, Status::Truncated);
            // MPLS does not say what it carries: the first nibble tells IP.
            const uint8_t version = u8(p + pos) >> 4;
            if (version != 4 && version != 6) return ending(d, Status::Unknown);
            et = version == 4 ? kEtherIpv4 : kEtherIpv6;
            inner_payload(pos, et, mac);
            if (++layers > kMaxLayers) return ending(d, Status::Malformed);
            continue;
        }
        // An IP header that may lead to GRE or a UDP tunnel: anything else
        // (a fragment, another protocol, a header cut short) is the inner
        // packet itself.
        std::size_t next = 0;
        uint8_t proto = 0;
        if (et == kEtherIpv4) {
            if (len - pos < 20 || (u8(p + pos) >> 4) != 4) break;
            const std::size_t ihl = std::size_t{u8(p + pos) & 0x0fu} * 4;
            if (ihl < 20 || len - pos < ihl) break;
            if ((be16(p + pos + 6) & 0x3fff) != 0) break;  // MF or an offset: a fragment
            proto = u8(p + pos + 9);
            next = pos + ihl;
        } else if (et == kEtherIpv6) {
            if (len - pos < 40 || (u8(p + pos) >> 4) != 6) break;
            proto = u8(p + pos + 6);
            next = pos + 40;
        } else {
            break;
        }
        if (proto == kProtoGre) {
            if (len - next < 4) return ending(d, Status::Truncated);
            const uint16_t flags = be16(p + next);
            const uint16_t type = be16(p + next + 2);
            // Version 1 is PPTP's enhanced GRE: not a tunnel sluice peels.
            if ((flags & kGreVersion) != 0) break;
            if (type != kEtherTeb && type != kEtherIpv4 && type != kEtherIpv6 &&
                type != kEtherMpls && type != kEtherErspan2 && type != kEtherErspan3)
                break;
            if (flags & kGreReserved) return ending(d, Status::Malformed);
            const std::size_t hlen = 4 + ((flags & kGreChecksum) ? 4 : 0) +
                                     ((flags & kGreKey) ? 4 : 0) + ((flags & kGreSequence) ? 4 : 0);
            if (len - next < hlen) return ending(d, Status::Truncated);
            std::size_t body = next + hlen;
            found = true;
            if (++layers > kMaxLayers) return ending(d, Status::Malformed);
            if (type == kEtherErspan2) {
                // Type II has a sequence number and an 8-byte header; type I
                // neither: the mirrored frame follows GRE directly.
                Erspan e;
                if (flags & kGreSequence) {
                    if (len - body < 8) return ending(d, Status::Truncated);
                    const uint32_t w0 = be32(p + body), w1 = be32(p + body + 4);
                    if ((w0 >> 28) != 1) return ending(d, Status::Malformed);
                    e.type = 2;
                    e.vlan = static_cast<uint16_t>((w0 >> 16) & 0x0fff);
                    e.cos = static_cast<uint8_t>((w0 >> 13) & 0x7);
                    e.session = static_cast<uint16_t>(w0 & 0x03ff);
                    e.index = w1 & 0x000fffff;
                    body += 8;
                } else {
                    e.type = 1;
                }
                if (d.erspan.type == 0) d.erspan = e;
                d.layers |= layer::kErspan2;
            } else if (type == kEtherErspan3) {
                if (len - body < 12) return ending(d, Status::Truncated);
                const uint32_t w0 = be32(p + body), stamp = be32(p + body + 4),
                               w2 = be32(p + body + 8);
                if ((w0 >> 28) != 2) return ending(d, Status::Malformed);
                const bool subheader = (w2 & 0x1) != 0;
                const uint32_t frame_type = (w2 >> 10) & 0x1f;
                body += 12;
                if (subheader) {
                    if (len - body < 8) return ending(d, Status::Truncated);
                    body += 8;
                }
                if (frame_type != 0) return ending(d, Status::Unknown);  // not an Ethernet frame
                Erspan e;
                e.type = 3;
                e.vlan = static_cast<uint16_t>((w0 >> 16) & 0x0fff);
                e.cos = static_cast<uint8_t>((w0 >> 13) & 0x7);
                e.session = static_cast<uint16_t>(w0 & 0x03ff);
                e.timestamp = stamp;
                e.hardware_id = static_cast<uint8_t>((w2 >> 4) & 0x3f);
                e.egress = (w2 & 0x8) != 0;
                e.granularity = static_cast<uint8_t>((w2 >> 1) & 0x3);
                if (d.erspan.type == 0) d.erspan = e;
                d.layers |= layer::kErspan3;
            } else {
                d.layers |= layer::kGre;
            }
            if (type == kEtherIpv4 || type == kEtherIpv6 || type == kEtherMpls) {
                et = type;
                pos = body;
                if (type != kEtherMpls) inner_payload(pos, et, mac);
                continue;
            }
            off = body;
            ethernet = true;
            continue;
        }
        if (proto != kProtoUdp || len - next < 8) break;
        const uint16_t dport = be16(p + next + 2);
        if (dport != kPortVxlan && dport != kPortGeneve) break;
        const std::size_t hdr = next + 8;
        if (len - hdr < 8) return ending(d, Status::Truncated);
        found = true;
        if (++layers > kMaxLayers) return ending(d, Status::Malformed);
        if (dport == kPortVxlan) {
            // RFC 7348: the I flag says the VNI is valid; it must be set.
            if ((u8(p + hdr) & 0x08) == 0) return ending(d, Status::Malformed);
            d.layers |= layer::kVxlan;
            off = hdr + 8;
            ethernet = true;
            continue;
        }
        // Geneve (RFC 8926): version 0, options of 4-byte words, then the
        // payload of the protocol type.
        if ((u8(p + hdr) >> 6) != 0) return ending(d, Status::Malformed);
        const std::size_t opts = std::size_t{u8(p + hdr) & 0x3fu} * 4;
        if (len - hdr - 8 < opts) return ending(d, Status::Truncated);
        const uint16_t type = be16(p + hdr + 2);
        d.layers |= layer::kGeneve;
        const std::size_t body = hdr + 8 + opts;
        if (type == kEtherTeb) {
            off = body;
            ethernet = true;
            continue;
        }
        if (type != kEtherIpv4 && type != kEtherIpv6) return ending(d, Status::Unknown);
        et = type;
        pos = body;
        inner_payload(pos, et, mac);
    }
    d.status = found ? Status::Peeled : Status::Plain;
    if (!found) d.inner_offset = d.inner_ethertype = d.mac_offset = 0;
    return d;
}

void put_inner_ethernet(std::byte* frame, const Decap& d) {
    if (d.inner_ethertype == 0) return;
    std::byte* h = frame + d.frame_offset();
    // The MACs may overlap their new place (one MPLS label): memmove.
    std::memmove(h, frame + d.mac_offset, 12);
    h[12] = static_cast<std::byte>(d.inner_ethertype >> 8);
    h[13] = static_cast<std::byte>(d.inner_ethertype & 0xff);
}

}  // namespace sluice::tunnel
