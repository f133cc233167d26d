// sluice-pcapgen: writes a reproducible, capture-like pcap.
//
// The demo, the end-to-end tests and the codec benchmarks all need traffic that
// looks like a real link: many flows in both directions, TCP and UDP, IPv4 and
// some IPv6, IMIX sizes, header fields that vary the way real ones do (IP ids,
// TCP sequence numbers, TTLs, windows), valid checksums, and payloads that are
// partly text (HTTP, DNS) and partly incompressible (TLS-like records). The
// same seed always gives the same bytes.
#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>

namespace {

// xoshiro256** seeded through splitmix64: fast, and identical on every platform.
class Rng {
  public:
    explicit Rng(uint64_t seed) {
        for (auto& s : s_) {
            seed += 0x9e3779b97f4a7c15ULL;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            s = z ^ (z >> 31);
        }
    }
    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>((next() >> 32) % n); }
    bool chance(uint32_t percent) { return below(100) < percent; }

  private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<uint64_t, 4> s_{};
};

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
    uint64_t flow_packets = 0;         // 0: flows last the whole capture
    uint64_t start_s = 1700000000ull;  // the first packet's time
};

enum class App : uint8_t { Http, Tls, Dns, Rtp };

struct Flow {
    bool v6 = false;
    uint8_t proto = 6;  // 6 TCP, 17 UDP
    App app = App::Tls;
    std::array<uint8_t, 16> client{}, server{};
    uint16_t cport = 0, sport = 0;
    uint8_t cttl = 64, sttl = 57;
    uint16_t cip_id = 0, sip_id = 0;
    uint32_t cseq = 0, sseq = 0;
    uint16_t cwin = 0, swin = 0;
    uint16_t rtp_seq = 0;
    uint32_t rtp_ts = 0;
};

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0) {
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) acc += static_cast<uint32_t>(p[n - 1] << 8);
    return acc;
}
uint16_t fold(uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(~acc);
}

constexpr std::string_view kHosts[] = {"api.example.com", "cdn.example.net", "mail.example.org",
                                       "updates.example.com", "static.example.net"};
constexpr std::string_view kPaths[] = {"/index.html",    "/v1/metrics?window=60",
                                       "/assets/app.js", "/images/logo.png",
                                       "/login",         "/search?q=packet+capture"};
constexpr std::string_view kAgents[] = {
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "curl/7.88.1",
    "Go-http-client/1.1", "python-requests/2.31.0"};

// Fills `n` payload bytes in the style of the flow's application.
void fill_payload(Rng& rng, const Flow& f, bool from_client, uint8_t* p, size_t n) {
    std::string text;
    switch (f.app) {
        case App::Http:
            if (from_client) {
                text = "GET ";
                text += kPaths[rng.below(std::size(kPaths))];
                text += " HTTP/1.1\r\nHost: ";
                text += kHosts[rng.below(std::size(kHosts))];
                text += "\r\nUser-Agent: ";
                text += kAgents[rng.below(std::size(kAgents))];
                text += "\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n";
            } else {
                text =
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                    "Cache-Control: max-age=3600\r\nServer: nginx\r\n\r\n"
                    "<!DOCTYPE html><html><head><title>Status</title></head><body>"
                    "<table><tr><th>queue</th><th>packets</th><th>bytes</th></tr>";
                while (text.size() < n) {
                    text += "<tr><td>" + std::to_string(rng.below(16)) + "</td><td>" +
                            std::to_string(rng.below(1000000)) + "</td><td>" +
                            std::to_string(rng.below(100000000)) + "</td></tr>\n";
                }
            }
            break;
        case App::Dns: {
            // A DNS query/response header followed by a name: mostly text.
            text.assign(12, '\0');
            text[0] = static_cast<char>(rng.below(256));
            text[1] = static_cast<char>(rng.below(256));
            text[2] = from_client ? 0x01 : static_cast<char>(0x81);
            text[5] = 1;
            const std::string_view host = kHosts[rng.below(std::size(kHosts))];
            size_t start = 0;
            while (start < host.size()) {
                size_t dot = host.find('.', start);
                if (dot == std::string_view::npos) dot = host.size();
                text += static_cast<char>(dot - start);
                text += host.substr(start, dot - start);
                start = dot + 1;
            }
            text += std::string("\0\0\x01\0\x01", 5);
            break;
        }
        case App::Rtp:
        case App::Tls:
            break;  // incompressible: random bytes below
    }
    size_t i = 0;
    if (f.app == App::Tls && n >= 5) {  // TLS application-data record header
        p[0] = 0x17;
        p[1] = 0x03;
        p[2] = 0x03;
        put16(p + 3, static_cast<uint16_t>(n - 5));
        i = 5;
    }
    for (; i < n && !text.empty(); ++i)
        p[i] = static_cast<uint8_t>(text[i % text.size()]);
    for (; i + 8 <= n; i += 8) {
        const uint64_t r = rng.next();
        std::memcpy(p + i, &r, 8);
    }
    for (; i < n; ++i)
        p[i] = static_cast<uint8_t>(rng.next());
}

// IMIX on the wire (7:4:1 of 64, 594, 1518 bytes with FCS) plus some spread,
// so sizes are not only three values; optional jumbo frames.
size_t pick_frame_len(Rng& rng, const Options& o) {
    if (o.jumbo_percent && rng.chance(o.jumbo_percent)) return 9000 + rng.below(19);
    const uint32_t r = rng.below(12);
    if (r < 7) return 60 + rng.below(4) * 2;
    if (r < 11) return 590 + rng.below(200);
    return 1514;
}

Flow make_flow(Rng& rng, const Options& o, uint32_t index) {
    Flow f;
    f.v6 = rng.chance(o.ipv6_percent);
    const uint32_t kind = rng.below(100);
    if (kind < 45) {
        f.app = App::Tls, f.proto = 6, f.sport = 443;
    } else if (kind < 70) {
        f.app = App::Http, f.proto = 6, f.sport = rng.chance(50) ? 80 : 8080;
    } else if (kind < 85) {
        f.app = App::Dns, f.proto = 17, f.sport = 53;
    } else {
        f.app = App::Rtp, f.proto = 17,
        f.sport = static_cast<uint16_t>(16384 + 2 * rng.below(8000));
    }
    f.cport = static_cast<uint16_t>(32768 + rng.below(28000));
    if (f.v6) {
        const uint8_t pre[8] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0};
        std::memcpy(f.client.data(), pre, 8);
        std::memcpy(f.server.data(), pre, 8);
        f.client[7] = 1;
        f.server[7] = 2;
        for (int i = 8; i < 16; ++i) {
            f.client[i] = static_cast<uint8_t>(rng.next());
            f.server[i] = static_cast<uint8_t>(rng.next());
        }
    } else {
        f.client[0] = 10;
        f.client[1] = static_cast<uint8_t>(index >> 8);
        f.client[2] = static_cast<uint8_t>(rng.below(256));
        f.client[3] = static_cast<uint8_t>(1 + rng.below(254));
        f.server[0] = 192;
        f.server[1] = 0;
        f.server[2] = 2;
        f.server[3] = static_cast<uint8_t>(1 + rng.below(254));
    }
    f.cttl = static_cast<uint8_t>(rng.chance(50) ? 64 : 128);
    f.sttl = static_cast<uint8_t>(40 + rng.below(24));
    f.cip_id = static_cast<uint16_t>(rng.next());
    f.sip_id = static_cast<uint16_t>(rng.next());
    f.cseq = static_cast<uint32_t>(rng.next());
    f.sseq = static_cast<uint32_t>(rng.next());
    f.cwin = static_cast<uint16_t>(29200 + rng.below(36000));
    f.swin = static_cast<uint16_t>(29200 + rng.below(36000));
    f.rtp_seq = static_cast<uint16_t>(rng.next());
    f.rtp_ts = static_cast<uint32_t>(rng.next());
    return f;
}

// Builds one Ethernet frame of `len` bytes (len >= minimum for the headers).
size_t build_frame(Rng& rng, Flow& f, bool from_client, size_t len, uint8_t* pkt) {
    const size_t l3 = 14;
    const size_t iphdr = f.v6 ? 40 : 20;
    const size_t l4hdr = f.proto == 6 ? 20 : 8;
    len = std::max(len, l3 + iphdr + l4hdr + (f.app == App::Rtp ? 12 : 0));
    const size_t l4 = l3 + iphdr;
    const size_t payload = len - l4 - l4hdr;
    std::memset(pkt, 0, len);

    // Ethernet: locally administered MACs derived from the addresses.
    const auto& src = from_client ? f.client : f.server;
    const auto& dst = from_client ? f.server : f.client;
    pkt[0] = 0x02, pkt[6] = 0x02;
    std::memcpy(pkt + 1, dst.data() + (f.v6 ? 11 : 0), 5);
    std::memcpy(pkt + 7, src.data() + (f.v6 ? 11 : 0), 5);
    put16(pkt + 12, f.v6 ? 0x86dd : 0x0800);

    uint8_t* ip = pkt + l3;
    const uint16_t l4len = static_cast<uint16_t>(len - l4);
    if (f.v6) {
        put32(ip, 0x60000000u | (rng.below(1u << 20)));
        put16(ip + 4, l4len);
        ip[6] = f.proto;
        ip[7] = from_client ? f.cttl : f.sttl;
        std::memcpy(ip + 8, src.data(), 16);
        std::memcpy(ip + 24, dst.data(), 16);
    } else {
        ip[0] = 0x45;
        ip[1] = f.app == App::Rtp ? 0xb8 : 0;  // EF for voice
        put16(ip + 2, static_cast<uint16_t>(len - l3));
        put16(ip + 4, from_client ? f.cip_id++ : f.sip_id++);
        put16(ip + 6, 0x4000);  // DF
        ip[8] = from_client ? f.cttl : f.sttl;
        ip[9] = f.proto;
        std::memcpy(ip + 12, src.data(), 4);
        std::memcpy(ip + 16, dst.data(), 4);
        put16(ip + 10, fold(sum16(ip, 20)));
    }

    uint8_t* l4p = pkt + l4;
    put16(l4p, from_client ? f.cport : f.sport);
    put16(l4p + 2, from_client ? f.sport : f.cport);
    uint8_t* data = l4p + l4hdr;
    if (f.proto == 6) {
        uint32_t& seq = from_client ? f.cseq : f.sseq;
        const uint32_t ack = from_client ? f.sseq : f.cseq;
        put32(l4p + 4, seq);
        put32(l4p + 8, ack);
        l4p[12] = 0x50;
        l4p[13] = payload ? 0x18 : 0x10;  // PSH|ACK or ACK
        uint16_t& win = from_client ? f.cwin : f.swin;
        win = static_cast<uint16_t>(win + rng.below(512) - 256);
        put16(l4p + 14, win);
        seq += static_cast<uint32_t>(payload);
    } else {
        put16(l4p + 4, l4len);
    }
    if (f.app == App::Rtp && payload >= 12) {
        data[0] = 0x80;
        data[1] = 0x00;  // PCMU
        put16(data + 2, f.rtp_seq++);
        put32(data + 4, f.rtp_ts += 160);
        put32(data + 8, 0x5eed0000u | f.cport);
        fill_payload(rng, f, from_client, data + 12, payload - 12);
    } else {
        fill_payload(rng, f, from_client, data, payload);
    }

    // TCP/UDP checksum over the pseudo-header.
    uint32_t acc = 0;
    if (f.v6) {
        acc = sum16(ip + 8, 32);
        acc += l4len;
        acc += f.proto;
    } else {
        acc = sum16(ip + 12, 8);
        acc += f.proto;
        acc += l4len;
    }
    acc = sum16(l4p, l4len, acc);
    uint16_t ck = fold(acc);
    if (f.proto == 17 && ck == 0) ck = 0xffff;
    put16(l4p + (f.proto == 6 ? 16 : 6), ck);
    return len;
}

bool parse_u64(std::string_view s, uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

int usage(FILE* to) {
    std::fprintf(to,
                 "usage: sluice-pcapgen --out FILE [options]\n"
                 "Writes a reproducible capture-like pcap (same seed, same bytes).\n"
                 "  --packets N         packets to write (default 10000)\n"
                 "  --flows N           concurrent flows, both directions (default 400)\n"
                 "  --seed N            random seed (default 1)\n"
                 "  --jumbo-percent P   share of ~9000-byte frames (default 0)\n"
                 "  --truncate-percent P  share of records captured shorter than sent (default 0)\n"
                 "  --ipv6-percent P    share of IPv6 flows (default 10)\n"
                 "  --rate PPS          packet rate used for timestamps (default 100000)\n"
                 "  --nanosecond        nanosecond-resolution pcap (default microsecond)\n"
                 "  --flow-packets N    a flow ends after about N packets and a new one (new\n"
                 "                      endpoints) takes its place, as flows come and go on\n"
                 "                      real links (default 0: flows last the whole capture)\n"
                 "  --start S           unix time of the first packet (default 1700000000)\n");
    return to == stderr ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
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
            value(v), o.jumbo_percent = static_cast<uint32_t>(std::min<uint64_t>(v, 100));
        } else if (a == "--truncate-percent") {
            value(v), o.truncate_percent = static_cast<uint32_t>(std::min<uint64_t>(v, 100));
        } else if (a == "--ipv6-percent") {
            value(v), o.ipv6_percent = static_cast<uint32_t>(std::min<uint64_t>(v, 100));
        } else if (a == "--rate") {
            value(o.rate_pps), o.rate_pps = std::max<uint64_t>(o.rate_pps, 1);
        } else if (a == "--nanosecond") {
            o.nanosecond = true;
        } else if (a == "--flow-packets") {
            value(o.flow_packets);
        } else if (a == "--start") {
            value(o.start_s);
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
    // pcap global header, host byte order as the format allows; snaplen covers jumbo.
    struct {
        uint32_t magic;
        uint16_t major, minor;
        int32_t zone;
        uint32_t sigfigs, snaplen, linktype;
    } gh{o.nanosecond ? 0xa1b23c4du : 0xa1b2c3d4u, 2, 4, 0, 0, 65535, 1};
    std::fwrite(&gh, sizeof gh, 1, out);

    Rng rng(o.seed);
    std::vector<Flow> flows;
    flows.reserve(o.flows);
    for (uint32_t i = 0; i < o.flows; ++i)
        flows.push_back(make_flow(rng, o, i));

    // With --flow-packets, each flow's remaining packets: about N, so that
    // flows do not all end at once.
    std::vector<uint64_t> left;
    uint32_t next_flow = o.flows;
    if (o.flow_packets) {
        for (uint32_t i = 0; i < o.flows; ++i)
            left.push_back(1 + rng.next() % (2 * o.flow_packets));
    }

    std::vector<uint8_t> pkt(9100);
    uint64_t t_ns = o.start_s * 1000000000ull;  // a fixed start: reproducible files
    const uint64_t gap_ns = 1000000000ull / o.rate_pps;
    for (uint64_t n = 0; n < o.packets; ++n) {
        // Zipf-like popularity: a few flows carry most packets, as on real links.
        const uint32_t r = rng.below(o.flows);
        const uint32_t slot = rng.chance(60) ? r % std::max<uint32_t>(1, o.flows / 10) : r;
        if (o.flow_packets && left[slot]-- == 0) {
            flows[slot] = make_flow(rng, o, next_flow++);
            left[slot] = rng.next() % (2 * o.flow_packets);
        }
        Flow& f = flows[slot];
        const bool from_client = rng.chance(f.app == App::Http ? 35 : 50);
        const size_t len = build_frame(rng, f, from_client, pick_frame_len(rng, o), pkt.data());
        size_t caplen = len;
        if (o.truncate_percent && rng.chance(o.truncate_percent)) caplen = 54 + rng.below(64);
        caplen = std::min(caplen, len);
        t_ns += gap_ns / 2 + rng.below(static_cast<uint32_t>(std::max<uint64_t>(gap_ns, 1)));
        const uint32_t sub = o.nanosecond ? static_cast<uint32_t>(t_ns % 1000000000ull)
                                          : static_cast<uint32_t>(t_ns % 1000000000ull / 1000);
        const uint32_t rec[4] = {static_cast<uint32_t>(t_ns / 1000000000ull), sub,
                                 static_cast<uint32_t>(caplen), static_cast<uint32_t>(len)};
        std::fwrite(rec, sizeof rec, 1, out);
        std::fwrite(pkt.data(), 1, caplen, out);
    }
    if (std::fclose(out) != 0) {
        std::fprintf(stderr, "sluice-pcapgen: writing %s failed: %s\n", o.out.c_str(),
                     std::strerror(errno));
        return 1;
    }
    return 0;
}
