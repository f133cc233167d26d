// sluice-pcapgen: writes a reproducible, capture-like pcap.
//
// The demo, the end-to-end tests and the codec benchmarks all need traffic that
// looks like a real link: many flows in both directions, TCP and UDP, IPv4 and
// some IPv6, IMIX sizes, header fields that vary the way real ones do (IP ids,
// TCP sequence numbers, TTLs, windows, flow labels), valid checksums, and
// payloads that are partly text (HTTP, DNS) and partly incompressible
// (TLS-like records). Every payload is well formed for its port, so Wireshark
// decodes the capture without a malformed packet: each TCP direction is one
// byte stream of whole HTTP messages or TLS records cut into segments, and each
// DNS datagram is one complete message.
//
// Options make it look like what capture points see in the field: packets
// wrapped in tunnels (ERSPAN, GRE, VXLAN, Geneve, MPLS, VLAN tags), some of
// them cut inside the tunnel header; packets delivered twice, as a SPAN port
// does; IPv4 and IPv6 fragments. The same seed always gives the same bytes.
//
// This file reads the options and runs the main loop: it picks the flow and
// direction of each packet, cuts and duplicates packets, wraps them in tunnels,
// truncates records and stamps them.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bytes.hpp"
#include "duplicates.hpp"
#include "fragments.hpp"
#include "packets.hpp"
#include "pcap_writer.hpp"
#include "rng.hpp"
#include "tunnels.hpp"

namespace sluice::pcapgen {
namespace {

struct Options {
    std::string out;
    uint64_t packets = 10000;
    uint32_t flows = 400;
    uint64_t seed = 1;
    uint32_t jumbo_percent = 0;     // share of 9000-byte frames
    uint32_t truncate_percent = 0;  // share of records captured shorter than the wire
    uint32_t ipv6_percent = 10;
    uint64_t rate_pps = 100000;  // sets the timestamp spacing
    bool nanosecond = false;
    Tunnel tunnel = Tunnel::None;
    uint32_t tunnel_percent = 100;         // share of records sent through a tunnel
    uint32_t truncate_tunnel_percent = 0;  // share of those cut inside the tunnel header
    uint32_t duplicate_percent = 0;        // share of packets delivered twice
    uint32_t duplicate_window = 8;         // at most this many records later
    bool duplicate_ttl_change = false;     // the copy was routed once more
    uint32_t fragment_percent = 0;         // share of large enough packets sent in fragments
    uint64_t flow_packets = 0;             // 0: flows last the whole capture
    uint64_t start_s = 1700000000ull;      // the first packet's time
};

bool parse_u64(std::string_view s, uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

int usage(FILE* to) {
    std::fprintf(
        to,
        "usage: sluice-pcapgen --out FILE [options]\n"
        "Writes a reproducible capture-like pcap (same seed, same bytes): HTTP, TLS,\n"
        "DNS and RTP flows over IPv4 and IPv6, every payload well formed for its port.\n"
        "  --packets N         records to write (default 10000)\n"
        "  --flows N           concurrent flows, both directions (default 400)\n"
        "  --seed N            random seed (default 1)\n"
        "  --jumbo-percent P   share of ~9000-byte frames (default 0)\n"
        "  --truncate-percent P  share of records captured shorter than sent (default 0)\n"
        "  --ipv6-percent P    share of IPv6 flows (default 10)\n"
        "  --rate PPS          packet rate used for timestamps (default 100000)\n"
        "  --nanosecond        nanosecond-resolution pcap (default microsecond)\n"
        "  --tunnel KIND       wrap packets as a capture point sees them: none (default),\n"
        "                      erspan2, erspan3 (GRE-carried mirror sessions), gre, gre-key\n"
        "                      (RFC 2890 key), vxlan (UDP 4789), geneve (UDP 6081), mpls\n"
        "                      (1-3 labels), vlan (802.1Q), qinq (802.1ad + 802.1Q), or mix\n"
        "                      (each flow through one of all of them)\n"
        "  --tunnel-percent P  share of records wrapped (default 100)\n"
        "  --truncate-tunnel-percent P  share of wrapped records captured only up to\n"
        "                      the middle of the tunnel header (default 0)\n"
        "  --duplicate-percent P  share of packets delivered twice, as by a SPAN port\n"
        "                      mirroring both directions (default 0)\n"
        "  --duplicate-window N  the copy comes 1 to N records later (default 8)\n"
        "  --duplicate-ttl-change  the copy has its TTL (hop limit) one lower and the\n"
        "                      IPv4 checksum to match (default: identical bytes)\n"
        "  --fragment-percent P  share of packets with at least 256 bytes of IP payload\n"
        "                      sent as IPv4 fragments or with IPv6 fragment headers\n"
        "                      (default 0)\n"
        "  --flow-packets N    a flow ends after about N packets and a new one (new\n"
        "                      addresses and ports) takes its place (default: flows\n"
        "                      last the whole capture)\n"
        "  --start S           unix time of the first packet (default 1700000000)\n");
    return to == stderr ? 2 : 0;
}

}  // namespace
}  // namespace sluice::pcapgen

int main(int argc, char** argv) {
    using namespace sluice::pcapgen;

    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&](uint64_t& v) {
            if (i + 1 >= argc || !parse_u64(argv[i + 1], v)) {
                std::fprintf(stderr, "sluice-pcapgen: %s needs a number\n", argv[i]);
                std::exit(2);
            }
            ++i;
        };
        auto percent = [&](uint32_t& p) {
            uint64_t v = 0;
            value(v), p = static_cast<uint32_t>(std::min<uint64_t>(v, 100));
        };
        uint64_t v = 0;
        if (a == "--out" && i + 1 < argc) {
            o.out = argv[++i];
        } else if (a == "--packets") {
            value(o.packets);
        } else if (a == "--flows") {
            value(v), o.flows = static_cast<uint32_t>(std::clamp<uint64_t>(v, 1, 1u << 20));
        } else if (a == "--seed") {
            value(o.seed);
        } else if (a == "--jumbo-percent") {
            percent(o.jumbo_percent);
        } else if (a == "--truncate-percent") {
            percent(o.truncate_percent);
        } else if (a == "--ipv6-percent") {
            percent(o.ipv6_percent);
        } else if (a == "--rate") {
            value(o.rate_pps), o.rate_pps = std::max<uint64_t>(o.rate_pps, 1);
        } else if (a == "--tunnel" && i + 1 < argc) {
            const std::string_view name = argv[++i];
            auto it = std::find_if(std::begin(kTunnelNames), std::end(kTunnelNames),
                                   [&](const auto& t) { return t.first == name; });
            if (it == std::end(kTunnelNames)) {
                std::fprintf(stderr, "sluice-pcapgen: unknown tunnel '%s'\n", argv[i]);
                return usage(stderr);
            }
            o.tunnel = it->second;
        } else if (a == "--tunnel-percent") {
            percent(o.tunnel_percent);
        } else if (a == "--truncate-tunnel-percent") {
            percent(o.truncate_tunnel_percent);
        } else if (a == "--duplicate-percent") {
            percent(o.duplicate_percent);
        } else if (a == "--duplicate-window") {
            value(v),
                o.duplicate_window = static_cast<uint32_t>(std::clamp<uint64_t>(v, 1, 1u << 20));
        } else if (a == "--duplicate-ttl-change") {
            o.duplicate_ttl_change = true;
        } else if (a == "--fragment-percent") {
            percent(o.fragment_percent);
        } else if (a == "--flow-packets") {
            value(o.flow_packets);
        } else if (a == "--start") {
            value(o.start_s);
            if (o.start_s > UINT64_MAX / 1000000000ull / 2) {
                std::fprintf(stderr, "sluice-pcapgen: --start %s is too far in the future\n",
                             argv[i]);
                return 2;
            }
        } else if (a == "--nanosecond") {
            o.nanosecond = true;
        } else if (a == "-h" || a == "--help") {
            return usage(stdout);
        } else {
            std::fprintf(stderr, "sluice-pcapgen: unknown argument '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (o.out.empty()) return usage(stderr);

    FILE* out = std::fopen(o.out.c_str(), "wb");
    if (!out) {
        std::fprintf(stderr, "sluice-pcapgen: cannot write %s: %s\n", o.out.c_str(),
                     std::strerror(errno));
        return 1;
    }
    PcapWriter pcap(out, o.nanosecond);

    Rng rng(o.seed, kTraffic);
    Rng clock(o.seed, kClock);
    Rng truncate(o.seed, kTruncate);
    Rng tunnels(o.seed, kTunnel);
    Rng tunnel_cuts(o.seed, kTunnelTruncate);
    std::vector<Flow> flows;
    flows.reserve(o.flows);
    for (uint32_t i = 0; i < o.flows; ++i)
        flows.push_back(make_flow(rng, o.ipv6_percent, i));
    // Each flow keeps one tunnel, and one outer UDP source port for it.
    std::vector<TunnelPath> paths = make_paths(tunnels, o.tunnel);
    std::vector<uint32_t> flow_path(paths.empty() ? 0 : o.flows);
    std::vector<uint16_t> flow_port(flow_path.size());
    for (size_t i = 0; i < flow_path.size(); ++i) {
        flow_path[i] = tunnels.below(static_cast<uint32_t>(paths.size()));
        flow_port[i] = static_cast<uint16_t>(49152 + tunnels.below(16384));
    }

    // With --flow-packets, each flow's remaining packets: about N, so that
    // flows do not all end at once. Lifetimes and the flows that replace
    // them draw from their own stream.
    Rng lives(o.seed, kFlowLife);
    std::vector<uint64_t> left;
    uint32_t next_flow = o.flows;
    if (o.flow_packets) {
        for (uint32_t i = 0; i < o.flows; ++i)
            left.push_back(1 + lives.next() % (2 * o.flow_packets));
    }

    uint64_t t_ns = o.start_s * 1000000000ull;  // a fixed start: reproducible files
    const uint64_t gap_ns = 1000000000ull / o.rate_pps;
    auto emit = [&](const Bytes& frame, uint32_t flow) {
        t_ns += gap_ns / 2 + clock.below(static_cast<uint32_t>(std::max<uint64_t>(gap_ns, 1)));
        size_t snap = SIZE_MAX;
        if (o.truncate_percent && truncate.chance(o.truncate_percent))
            snap = 54 + truncate.below(64);
        if (paths.empty() || !tunnels.chance(o.tunnel_percent))
            return pcap.write(t_ns, frame, std::min(snap, frame.size()));
        const Encapsulated e = encapsulate(paths[flow_path[flow]], flow_port[flow], frame, t_ns);
        if (o.truncate_tunnel_percent && tunnel_cuts.chance(o.truncate_tunnel_percent))
            snap = tunnel_cuts.between(static_cast<uint32_t>(e.header_begin + 1),
                                       static_cast<uint32_t>(e.header_end - 1));
        pcap.write(t_ns, e.frame, std::min(snap, e.frame.size()));
    };

    Rng dups(o.seed, kDuplicate);
    Rng frags(o.seed, kFragment);
    DuplicateQueue copies;
    std::vector<Bytes> pieces;  // the current packet, whole or in fragments
    size_t next_piece = 0;
    uint32_t piece_flow = 0;
    Bytes frame;
    uint32_t fi = 0;
    for (uint64_t n = 0; n < o.packets; ++n) {
        // Copies take their places; the last records go to those still waiting.
        if (copies.take(n, o.packets - n == copies.size(), frame, fi)) {
            emit(frame, fi);
            continue;
        }
        if (next_piece == pieces.size()) {
            // Zipf-like popularity: a few flows carry most packets, as on real links.
            const uint32_t r = rng.below(o.flows);
            piece_flow = rng.chance(60) ? r % std::max<uint32_t>(1, o.flows / 10) : r;
            if (o.flow_packets && left[piece_flow]-- == 0) {
                flows[piece_flow] = make_flow(lives, o.ipv6_percent, next_flow++);
                left[piece_flow] = lives.next() % (2 * o.flow_packets);
            }
            Flow& f = flows[piece_flow];
            const bool from_client = rng.chance(f.app == App::Http ? 35 : 50);
            Bytes packet = build_frame(rng, f, from_client, pick_frame_len(rng, o.jumbo_percent));
            pieces.clear();
            next_piece = 0;
            if (o.fragment_percent && frags.chance(o.fragment_percent))
                pieces = fragment(frags, packet, o.packets - n - copies.size());
            if (pieces.empty()) pieces.push_back(std::move(packet));
        }
        frame = pieces[next_piece++];
        fi = piece_flow;
        emit(frame, fi);
        if (o.duplicate_percent && dups.chance(o.duplicate_percent) &&
            o.packets - n - 1 > copies.size() + (pieces.size() - next_piece)) {
            if (o.duplicate_ttl_change) decrement_ttl(frame);
            copies.schedule(n, 1 + dups.below(o.duplicate_window), o.duplicate_window, fi,
                            std::move(frame));
        }
    }
    if (std::fclose(out) != 0) {
        std::fprintf(stderr, "sluice-pcapgen: writing %s failed: %s\n", o.out.c_str(),
                     std::strerror(errno));
        return 1;
    }
    return 0;
}
