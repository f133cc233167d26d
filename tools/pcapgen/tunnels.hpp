// sluice-pcapgen's tunnels: the kinds a capture point sees packets wrapped in,
// the tunnels flows are spread over, and the encapsulation itself.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "bytes.hpp"
#include "rng.hpp"

namespace sluice::pcapgen {

// What a capture point sees packets wrapped in: VLAN tags on a trunk, MPLS in
// a provider core, GRE and ERSPAN from a remote mirror session, VXLAN and
// Geneve from an overlay.
enum class Tunnel : uint8_t {
    None,
    Erspan2,
    Erspan3,
    Gre,
    GreKey,
    Vxlan,
    Geneve,
    Mpls,
    Vlan,
    QinQ,
    Mix
};
constexpr std::pair<std::string_view, Tunnel> kTunnelNames[] = {
    {"none", Tunnel::None},     {"erspan2", Tunnel::Erspan2}, {"erspan3", Tunnel::Erspan3},
    {"gre", Tunnel::Gre},       {"gre-key", Tunnel::GreKey},  {"vxlan", Tunnel::Vxlan},
    {"geneve", Tunnel::Geneve}, {"mpls", Tunnel::Mpls},       {"vlan", Tunnel::Vlan},
    {"qinq", Tunnel::QinQ},     {"mix", Tunnel::Mix}};

// One tunnel as a capture point sees it: its endpoints and identifiers. Flows
// are spread over a few of them, as over the sessions of a real deployment.
struct TunnelPath {
    Tunnel kind = Tunnel::None;
    uint8_t index = 0;  // picks the outer addresses
    uint8_t ttl = 64;
    uint32_t id = 0;  // ERSPAN session, GRE key or VNI
    uint16_t vlan = 0, outer_vlan = 0;
    std::array<uint32_t, 3> labels{};
    uint8_t nlabels = 0;
    bool gre_seq = false;        // GRE key tunnels: also a sequence number (RFC 2890)
    bool geneve_option = false;  // Geneve: an OVN metadata option
    uint8_t hw_id = 0, gra = 0;  // ERSPAN III: switch id, timestamp granularity
    bool egress = false;         // ERSPAN III: mirrored on the way out
    uint32_t seq = 0;
    uint16_t ip_id = 0;
};

// The tunnels of `kind`: none for Tunnel::None, a few of the kind, or with
// Tunnel::Mix two of every kind.
std::vector<TunnelPath> make_paths(Rng& rng, Tunnel kind);

struct Encapsulated {
    Bytes frame;
    // The tunnel's own header: the tags, the label stack, GRE (and ERSPAN), or
    // VXLAN/Geneve after UDP. A record cut inside it is a malformed tunnel.
    size_t header_begin = 0, header_end = 0;
};

// Wraps the Ethernet frame `inner` in the tunnel; `entropy_port` is the outer
// UDP source port, `t_ns` the capture time (ERSPAN III timestamps).
Encapsulated encapsulate(TunnelPath& t, uint16_t entropy_port, const Bytes& inner, uint64_t t_ns);

}  // namespace sluice::pcapgen
