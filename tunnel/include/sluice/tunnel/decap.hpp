// Tunnel headers a capture point sees packets wrapped in: 802.1Q/802.1ad
// tags, MPLS label stacks, GRE (with or without key and sequence number),
// ERSPAN types I, II and III, VXLAN and Geneve. decapsulate() finds the
// innermost packet of an Ethernet frame; the dataplane lets its filter see it
// (capture.decap = "match") or writes it instead of the frame ("strip"), and
// the index records its addresses beside the outer ones.
//
// Everything here reads bytes a peer sent: no read leaves the buffer given,
// and the work per packet is bounded (kMaxLayers tunnels, kMaxVlanTags tags
// and kMaxMplsLabels labels per layer) whatever the packet says.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::tunnel {

// One bit per kind of header peeled (Decap::layers).
namespace layer {
inline constexpr uint16_t kVlan = 1u << 0;     // 802.1Q, 802.1ad (QinQ) and 0x9100 tags
inline constexpr uint16_t kMpls = 1u << 1;     // an MPLS label stack (EtherType 0x8847/0x8848)
inline constexpr uint16_t kGre = 1u << 2;      // GRE carrying IP, Ethernet or MPLS
inline constexpr uint16_t kErspan2 = 1u << 3;  // ERSPAN type II (or type I: no ERSPAN header)
inline constexpr uint16_t kErspan3 = 1u << 4;  // ERSPAN type III
inline constexpr uint16_t kVxlan = 1u << 5;    // VXLAN (UDP 4789)
inline constexpr uint16_t kGeneve = 1u << 6;   // Geneve (UDP 6081)
inline constexpr int kCount = 7;
}  // namespace layer

// Bounds on the work per packet.
inline constexpr int kMaxLayers = 8;  // tunnels inside tunnels
inline constexpr int kMaxVlanTags = 4;
inline constexpr int kMaxMplsLabels = 8;

enum class Status : uint8_t {
    Plain,      // no tunnel or tag: the frame is its own inner packet
    Peeled,     // the innermost packet is at inner_offset
    Truncated,  // a tunnel header (or the inner Ethernet header) runs past the bytes given
    Malformed,  // a tunnel header breaks its specification: wrong version, reserved bits,
                // an option length past the packet, more layers, tags or labels than allowed
    Unknown,    // a tunnel carrying something sluice cannot tell (MPLS over neither IPv4 nor
                // IPv6, Geneve or ERSPAN III with another payload type)
};
std::string_view to_string(Status s);

// ERSPAN's own fields (types II and III), from the outermost ERSPAN header.
struct Erspan {
    uint8_t type = 0;  // 0: none; 1, 2 or 3
    uint16_t session = 0;
    uint16_t vlan = 0;        // the original frame's VLAN
    uint8_t cos = 0;          // its class of service
    uint32_t index = 0;       // type II: the port index
    uint32_t timestamp = 0;   // type III: in units of `granularity`
    uint8_t granularity = 0;  // type III: 0 100 us, 1 100 ns, 2 IEEE 1588, 3 reserved
    uint8_t hardware_id = 0;  // type III
    bool egress = false;      // type III: mirrored as it left the port
};

struct Decap {
    Status status = Status::Plain;
    uint16_t layers = 0;  // layer bits of what was peeled
    // Peeled: where the innermost packet starts. With inner_ethertype 0 it is
    // an Ethernet frame of its own; otherwise it is the payload of that
    // EtherType (IPv4, IPv6, ARP...) whose Ethernet header was the one at
    // mac_offset, with tags or labels between that the inner packet drops.
    uint16_t inner_offset = 0;
    uint16_t inner_ethertype = 0;
    uint16_t mac_offset = 0;
    Erspan erspan;

    bool peeled() const { return status == Status::Peeled; }
    // Bytes the inner packet starts at once an Ethernet header of
    // destination and source MAC and inner_ethertype is put in front of an
    // EtherType payload: what "strip" writes from (it is never below 0: the
    // headers peeled are at least 4 bytes longer than the one put back).
    uint16_t frame_offset() const {
        return inner_ethertype == 0 ? inner_offset : static_cast<uint16_t>(inner_offset - 14);
    }
};

// Reads the Ethernet frame's first `len` bytes. Cost: a few loads and
// compares per header; no allocation, no branch on data beyond `len`.
Decap decapsulate(const std::byte* frame, std::size_t len);

// The UDP destination ports decapsulate() opens.
inline constexpr uint16_t kPortVxlan = 4789;
inline constexpr uint16_t kPortGeneve = 6081;

// Whether decapsulate() may find a tunnel in an untagged IPv4 or IPv6
// packet (EtherType IPv4 or IPv6 right after the MAC addresses) whose IP
// header says transport protocol `proto` (for IPv6, after extension
// headers), with UDP destination port `dport` (-1: not captured). false
// means it finds none (TCP, ICMP, ICMPv6, UDP to another port), so a caller
// that parsed the packet already can skip the call; anything else may be a
// tunnel and is left to decapsulate().
constexpr bool ip_may_carry_tunnel(uint8_t proto, int dport) {
    switch (proto) {
        case 1:   // ICMP
        case 6:   // TCP
        case 58:  // ICMPv6
            return false;
        case 17:  // UDP
            return dport < 0 || dport == kPortVxlan || dport == kPortGeneve;
        default:
            return true;
    }
}

// Rewrites the bytes before an EtherType payload into an Ethernet header:
// the MACs of d.mac_offset and d.inner_ethertype at d.frame_offset(). A
// no-op for an inner Ethernet frame. The frame's bytes before
// d.inner_offset change (they are the headers being dropped).
void put_inner_ethernet(std::byte* frame, const Decap& d);

}  // namespace sluice::tunnel
