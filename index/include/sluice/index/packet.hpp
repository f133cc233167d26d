// What the index records of one packet: the values a tcpdump filter selects
// packets by (IPv4/IPv6 addresses, TCP/UDP/SCTP ports, the IP protocol), read
// from an Ethernet frame that may be cut short, malformed or hostile.
//
// The index only narrows which blocks a query reads; libpcap's filter decides
// about each packet. So the parser must find, for every packet, at least the
// values a compiled filter could match it by, or a query would miss it. It
// reads the packet the way libpcap's generated BPF does (docs/query.md,
// "What is indexed"): by EtherType, not by the IP version nibble; IPv4 ports
// at 4 * IHL whatever IHL says, and only in the first fragment; ARP and RARP
// sender and target addresses, which `host` also matches. Where it knows more
// than BPF (IPv6 extension headers) it records more: extra values only make a
// block a candidate more often.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::index {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeRarp = 0x8035;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;

// Bounds on work per packet, whatever the packet says.
inline constexpr int kMaxVlanTags = 8;
inline constexpr int kMaxIpv6ExtensionHeaders = 8;

struct PacketKeys {
    enum : uint8_t {
        kIpv4 = 1u << 0,     // EtherType IPv4 (addresses are 4 bytes)
        kIpv6 = 1u << 1,     // EtherType IPv6 (addresses are 16 bytes)
        kArp = 1u << 2,      // ARP or RARP: src/dst are the sender/target protocol addresses
        kSrc = 1u << 3,      // src captured
        kDst = 1u << 4,      // dst captured
        kSport = 1u << 5,    // sport captured (TCP, UDP or SCTP, first fragment)
        kDport = 1u << 6,    // dport captured
        kFragment = 1u << 7  // an IP fragment other than the first: no ports
    };
    uint8_t flags = 0;
    uint8_t proto = 0;        // the transport protocol (after IPv6 extension headers)
    uint8_t proto_count = 0;  // protocol numbers a filter may test, proto among them
    std::array<uint8_t, 3> protos{};
    uint16_t sport = 0, dport = 0;           // host byte order
    uint16_t vlan_tags = 0;                  // tags stepped over
    std::array<std::byte, 16> src{}, dst{};  // network byte order; IPv4 in the first 4

    bool ip() const { return flags & (kIpv4 | kIpv6); }
    bool has(uint8_t f) const { return (flags & f) == f; }
    std::size_t address_size() const { return (flags & kIpv6) ? 16 : 4; }
};

// Reads an Ethernet frame's captured bytes. Never reads outside `frame`;
// a field cut off by the capture length is simply not recorded.
PacketKeys parse_packet(std::span<const std::byte> frame);

// Whether the frame parse_packet() read may hold a tunnel that
// tunnel::decapsulate() peels. false (plain TCP, UDP to ports other than
// VXLAN's and Geneve's, ICMP, untagged): it holds none, and the call is
// skipped. Most packets are such: the parse already saw what the walk
// through the headers would find.
bool may_hold_tunnel(const PacketKeys& k);

}  // namespace sluice::index
