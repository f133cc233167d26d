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
#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

// xoshiro256** seeded through splitmix64: fast, and identical on every platform.
class Rng {
  public:
    // Each kind of decision draws from its own stream of the one seed, so that
    // turning an option on leaves every other decision, and the bytes it makes,
    // as they were.
    explicit Rng(uint64_t seed, uint64_t stream = 0) {
        seed += stream * 0xd1b54a32d192ed03ULL;
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
    uint32_t between(uint32_t lo, uint32_t hi) { return lo + below(hi - lo + 1); }
    bool chance(uint32_t percent) { return below(100) < percent; }

  private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<uint64_t, 4> s_{};
};

enum RngStream : uint64_t {
    kTraffic,
    kClock,
    kTruncate,
    kTunnel,
    kTunnelTruncate,
    kDuplicate,
    kFragment
};

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
};

using Bytes = std::vector<uint8_t>;

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
uint16_t get16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
void append16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void append32(Bytes& b, uint32_t v) {
    append16(b, static_cast<uint16_t>(v >> 16));
    append16(b, static_cast<uint16_t>(v));
}
void append(Bytes& b, std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
}

// Random bytes, written byte by byte so that the file does not depend on the
// host's byte order.
void append_random(Rng& rng, Bytes& b, size_t n) {
    while (n) {
        uint64_t r = rng.next();
        for (int k = 0; k < 8 && n; ++k, --n, r >>= 8)
            b.push_back(static_cast<uint8_t>(r));
    }
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

std::string hex(Rng& rng, size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i)
        s += kDigits[rng.below(16)];
    return s;
}

constexpr std::string_view kHosts[] = {"api.example.com", "cdn.example.net", "mail.example.org",
                                       "updates.example.com", "static.example.net"};
constexpr std::string_view kPaths[] = {"/index.html",    "/v1/metrics?window=60",
                                       "/assets/app.js", "/images/logo.png",
                                       "/login",         "/search?q=packet+capture"};
constexpr std::string_view kAgents[] = {
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "curl/7.88.1",
    "Go-http-client/1.1", "python-requests/2.31.0"};
constexpr std::string_view kTxtNames[] = {"selector1._domainkey.example.com", "example.org",
                                          "_dmarc.example.net", "google._domainkey.example.org"};

// ---- TCP application streams --------------------------------------------------------
//
// A TCP direction carries whole messages back to back: a text head (HTTP
// headers and text bodies, a TLS record header) followed by random bytes (TLS
// ciphertext, binary HTTP bodies). Segments never run past the end of a
// message, as a sender that writes one message and then waits does.
struct Message {
    std::string head;
    size_t random = 0;
    size_t size() const { return head.size() + random; }
};

std::string html_body(Rng& rng, size_t n) {
    std::string s =
        "<!DOCTYPE html><html><head><title>Status</title></head><body>"
        "<table><tr><th>queue</th><th>packets</th><th>bytes</th></tr>\n";
    while (s.size() < n) {
        s += "<tr><td>" + std::to_string(rng.below(16)) + "</td><td>" +
             std::to_string(rng.below(1000000)) + "</td><td>" +
             std::to_string(rng.below(100000000)) + "</td></tr>\n";
    }
    return s + "</table></body></html>\n";
}

std::string json_body(Rng& rng, size_t n) {
    std::string s = "{\"window\":60,\"queues\":[";
    for (uint32_t q = 0; s.size() < n; ++q) {
        if (q) s += ',';
        s += "{\"queue\":" + std::to_string(q) +
             ",\"packets\":" + std::to_string(rng.below(1000000)) +
             ",\"bytes\":" + std::to_string(rng.below(100000000)) +
             ",\"drops\":" + std::to_string(rng.below(100)) + "}";
    }
    return s + "]}\n";
}

Message http_request(Rng& rng) {
    Message m;
    const std::string_view path = kPaths[rng.below(std::size(kPaths))];
    const bool post = path == "/login";
    m.head = post ? "POST " : "GET ";
    m.head += path;
    m.head += " HTTP/1.1\r\nHost: ";
    m.head += kHosts[rng.below(std::size(kHosts))];
    m.head += "\r\nUser-Agent: ";
    m.head += kAgents[rng.below(std::size(kAgents))];
    m.head += "\r\nAccept: */*\r\nAccept-Encoding: identity\r\n";
    if (rng.chance(50)) m.head += "Cookie: session=" + hex(rng, 32) + "\r\n";
    if (post) {
        const std::string form = "user=operator&password=" + hex(rng, 16) + "&remember=1";
        m.head += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                  std::to_string(form.size()) + "\r\nConnection: keep-alive\r\n\r\n" + form;
    } else {
        m.head += "Connection: keep-alive\r\n\r\n";
    }
    return m;
}

Message http_response(Rng& rng) {
    Message m;
    const uint32_t kind = rng.below(100);
    std::string type, body;
    if (kind < 8) {
        m.head = "HTTP/1.1 304 Not Modified\r\nServer: nginx\r\nETag: \"" + hex(rng, 16) +
                 "\"\r\nConnection: keep-alive\r\n\r\n";
        return m;
    }
    std::string status = "200 OK";
    if (kind < 12) {
        status = "404 Not Found";
        type = "text/html; charset=utf-8";
        body =
            "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not "
            "Found</h1></center><hr><center>nginx</center></body></html>\n";
    } else if (kind < 70) {
        type = "text/html; charset=utf-8";
        body = html_body(rng, rng.between(300, 24000));
    } else {
        type = "application/json";
        body = json_body(rng, rng.between(100, 4000));
    }
    const size_t length = body.size() + m.random;
    m.head = "HTTP/1.1 " + status + "\r\nServer: nginx\r\nContent-Type: " + type +
             "\r\nContent-Length: " + std::to_string(length) +
             "\r\nCache-Control: max-age=3600\r\nETag: \"" + hex(rng, 16) +
             "\"\r\nConnection: keep-alive\r\n\r\n" + body;
    return m;
}

// A TLS 1.2/1.3 application-data record: the header, then ciphertext.
Message tls_record(Rng& rng, bool from_client) {
    constexpr uint32_t kFullRecord = 16384 + 24;  // a full record with its AEAD overhead
    const uint32_t len = rng.chance(from_client ? 70 : 90) ? kFullRecord : rng.between(40, 1400);
    Message m;
    m.head = {'\x17', '\x03', '\x03', static_cast<char>(len >> 8), static_cast<char>(len & 0xff)};
    m.random = len;
    return m;
}

enum class App : uint8_t { Http, Tls, Dns, Rtp };

struct TcpStream {
    Message msg;
    size_t sent = 0;  // bytes of msg already in earlier segments
};

struct Flow {
    bool v6 = false;
    uint8_t proto = 6;  // 6 TCP, 17 UDP
    App app = App::Tls;
    std::array<uint8_t, 16> client{}, server{};
    uint16_t cport = 0, sport = 0;
    uint8_t cttl = 64, sttl = 57;
    uint16_t cip_id = 0, sip_id = 0;
    uint32_t clabel = 0, slabel = 0;  // IPv6 flow labels, fixed per direction (RFC 6437)
    uint32_t cseq = 0, sseq = 0;
    uint16_t cwin = 0, swin = 0;
    uint16_t rtp_seq = 0;
    uint32_t rtp_ts = 0;
    TcpStream cstream, sstream;
};

// Appends up to `room` bytes of the direction's stream; true when that ends a message.
bool take_segment(Rng& rng, const Flow& f, bool from_client, TcpStream& s, size_t room,
                  Bytes& out) {
    if (s.sent == s.msg.size()) {
        s.msg = f.app == App::Http ? (from_client ? http_request(rng) : http_response(rng))
                                   : tls_record(rng, from_client);
        s.sent = 0;
    }
    const size_t n = std::min(room, s.msg.size() - s.sent);
    const size_t from_head =
        s.sent < s.msg.head.size() ? std::min(n, s.msg.head.size() - s.sent) : 0;
    if (from_head) append(out, std::string_view(s.msg.head).substr(s.sent, from_head));
    append_random(rng, out, n - from_head);
    s.sent += n;
    return s.sent == s.msg.size();
}

// ---- DNS -----------------------------------------------------------------------------

void append_name(Bytes& b, std::string_view name) {
    size_t start = 0;
    while (start < name.size()) {
        size_t dot = name.find('.', start);
        if (dot == std::string_view::npos) dot = name.size();
        b.push_back(static_cast<uint8_t>(dot - start));
        append(b, name.substr(start, dot - start));
        start = dot + 1;
    }
    b.push_back(0);
}

// What large TXT answers hold in the field: mostly SPF policies, some
// verification tokens and DKIM keys (base64, hardly compressible).
std::string txt_text(Rng& rng) {
    static constexpr char kBase64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    auto base64 = [&](size_t n) {
        std::string s;
        for (size_t i = 0; i < n; ++i)
            s += kBase64[rng.below(64)];
        return s;
    };
    const uint32_t kind = rng.below(100);
    if (kind < 85)
        return "v=spf1 ip4:198.51.100." + std::to_string(rng.below(256)) + "/32 ip4:203.0.113." +
               std::to_string(rng.below(256)) +
               "/24 include:_spf.example.com include:mail.example.org ~all";
    if (kind < 93) return "google-site-verification=" + base64(43);
    return "v=DKIM1; k=rsa; p=" + base64(216);
}

// EDNS(0) OPT pseudo-record: the resolver's advertised UDP payload size.
void append_opt(Rng& rng, Bytes& b) {
    b.push_back(0);
    append16(b, 41);
    append16(b, rng.chance(70) ? 1232 : 4096);
    append32(b, rng.chance(30) ? 0x8000 : 0);  // extended rcode, version, DO bit
    append16(b, 0);
}

// One complete DNS message for a UDP payload of about `room` bytes: a query
// from the client, from the server an A/AAAA answer, or, when the frame has
// room for more, a TXT answer (DKIM keys, SPF) that fills it exactly.
Bytes dns_message(Rng& rng, bool from_client, size_t room) {
    Bytes m;
    append16(m, static_cast<uint16_t>(rng.next()));
    const bool edns = rng.chance(60);
    const bool txt = !from_client && room >= 200;
    std::string_view qname =
        txt ? kTxtNames[rng.below(std::size(kTxtNames))] : kHosts[rng.below(std::size(kHosts))];
    const uint16_t qtype = txt ? 16 : (rng.chance(70) ? 1 : 28);
    if (from_client) {
        append16(m, 0x0100);  // standard query, recursion desired
        append16(m, 1), append16(m, 0), append16(m, 0), append16(m, edns ? 1 : 0);
        append_name(m, qname);
        append16(m, qtype), append16(m, 1);
        if (edns) append_opt(rng, m);
        return m;
    }
    const bool cname = !txt && rng.chance(30);
    const uint16_t answers = txt ? 1 : static_cast<uint16_t>(cname + rng.between(1, 4));
    append16(m, 0x8180);  // response, recursion desired and available, no error
    append16(m, 1), append16(m, answers), append16(m, 0), append16(m, edns ? 1 : 0);
    append_name(m, qname);
    append16(m, qtype), append16(m, 1);
    auto rr_head = [&](uint16_t owner, uint16_t type, uint32_t ttl, uint16_t rdlen) {
        append16(m, static_cast<uint16_t>(0xc000 | owner));
        append16(m, type), append16(m, 1), append32(m, ttl), append16(m, rdlen);
    };
    if (txt) {
        // rdata: character-strings of up to 255 bytes; any length >= 1 can be made.
        const size_t fixed = m.size() + 12 + (edns ? 11 : 0);
        const size_t rdlen = std::min<size_t>(room - fixed, 65535);
        rr_head(12, 16, rng.between(300, 86400), static_cast<uint16_t>(rdlen));
        std::string text;
        for (size_t left = rdlen; left;) {
            const size_t chunk = std::min<size_t>(left - 1, 255);
            m.push_back(static_cast<uint8_t>(chunk));
            for (size_t i = 0; i < chunk; ++i) {
                if (text.empty()) text = txt_text(rng);
                m.push_back(static_cast<uint8_t>(text.front()));
                text.erase(0, 1);
            }
            left -= chunk + 1;
        }
    } else {
        uint16_t owner = 12;  // the question's name
        if (cname) {
            const std::string target = "edge-" + std::to_string(rng.below(64)) + ".cdn.example.net";
            rr_head(owner, 5, rng.between(60, 3600), static_cast<uint16_t>(target.size() + 2));
            owner = static_cast<uint16_t>(m.size());
            append_name(m, target);
        }
        for (uint16_t i = cname; i < answers; ++i) {
            rr_head(owner, qtype, rng.between(30, 300), qtype == 1 ? 4 : 16);
            if (qtype == 1) {
                append32(m, 0xc6336400u | rng.below(256));  // 198.51.100.0/24
            } else {
                append32(m, 0x20010db8u), append32(m, 0x00640000u);
                append_random(rng, m, 8);
            }
        }
    }
    if (edns) append_opt(rng, m);
    return m;
}

// ---- frames --------------------------------------------------------------------------

// IMIX on the wire (7:4:1 of 64, 594, 1518 bytes with FCS) plus some spread,
// so sizes are not only three values; optional jumbo frames. The small ones
// are TCP's pure ACKs.
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
    f.clabel = rng.below(1u << 20);
    f.slabel = rng.below(1u << 20);
    f.cseq = static_cast<uint32_t>(rng.next());
    f.sseq = static_cast<uint32_t>(rng.next());
    f.cwin = static_cast<uint16_t>(29200 + rng.below(36000));
    f.swin = static_cast<uint16_t>(29200 + rng.below(36000));
    f.rtp_seq = static_cast<uint16_t>(rng.next());
    f.rtp_ts = static_cast<uint32_t>(rng.next());
    return f;
}

constexpr size_t kEthernetMin = 60;  // without FCS; shorter frames are padded

// Builds one Ethernet frame of the flow, about `len` bytes long: the length
// the IMIX picked where the application lets it choose, else what its message
// needs.
Bytes build_frame(Rng& rng, Flow& f, bool from_client, size_t len) {
    const size_t iphdr = f.v6 ? 40 : 20;
    const size_t l4hdr = f.proto == 6 ? 20 : 8;
    const size_t headers = 14 + iphdr + l4hdr;
    const size_t room = len > headers ? len - headers : 0;

    Bytes payload;
    bool ends_message = false;
    switch (f.app) {
        case App::Http:
        case App::Tls:
            // Too small for data: a pure ACK.
            if (room >= 16)
                ends_message = take_segment(rng, f, from_client,
                                            from_client ? f.cstream : f.sstream, room, payload);
            break;
        case App::Dns:
            payload = dns_message(rng, from_client, room);
            break;
        case App::Rtp:
            payload.resize(12);
            payload[0] = 0x80;
            payload[1] = 0x00;  // PCMU
            put16(&payload[2], f.rtp_seq++);
            put32(&payload[4], f.rtp_ts += 160);
            put32(&payload[8], 0x5eed0000u | f.cport);
            append_random(rng, payload, room > 12 ? room - 12 : 0);
            break;
    }

    const size_t l4len = l4hdr + payload.size();
    Bytes pkt(std::max(kEthernetMin, 14 + iphdr + l4len));

    // Ethernet: locally administered MACs derived from the addresses.
    const auto& src = from_client ? f.client : f.server;
    const auto& dst = from_client ? f.server : f.client;
    pkt[0] = 0x02, pkt[6] = 0x02;
    std::memcpy(&pkt[1], dst.data() + (f.v6 ? 11 : 0), 5);
    std::memcpy(&pkt[7], src.data() + (f.v6 ? 11 : 0), 5);
    put16(&pkt[12], f.v6 ? 0x86dd : 0x0800);

    uint8_t* ip = &pkt[14];
    if (f.v6) {
        put32(ip, 0x60000000u | (from_client ? f.clabel : f.slabel));
        put16(ip + 4, static_cast<uint16_t>(l4len));
        ip[6] = f.proto;
        ip[7] = from_client ? f.cttl : f.sttl;
        std::memcpy(ip + 8, src.data(), 16);
        std::memcpy(ip + 24, dst.data(), 16);
    } else {
        ip[0] = 0x45;
        ip[1] = f.app == App::Rtp ? 0xb8 : 0;  // EF for voice
        put16(ip + 2, static_cast<uint16_t>(iphdr + l4len));
        put16(ip + 4, from_client ? f.cip_id++ : f.sip_id++);
        put16(ip + 6, 0x4000);  // DF
        ip[8] = from_client ? f.cttl : f.sttl;
        ip[9] = f.proto;
        std::memcpy(ip + 12, src.data(), 4);
        std::memcpy(ip + 16, dst.data(), 4);
        put16(ip + 10, fold(sum16(ip, 20)));
    }

    uint8_t* l4p = ip + iphdr;
    put16(l4p, from_client ? f.cport : f.sport);
    put16(l4p + 2, from_client ? f.sport : f.cport);
    if (f.proto == 6) {
        uint32_t& seq = from_client ? f.cseq : f.sseq;
        const uint32_t ack = from_client ? f.sseq : f.cseq;
        put32(l4p + 4, seq);
        put32(l4p + 8, ack);
        l4p[12] = 0x50;
        l4p[13] = ends_message ? 0x18 : 0x10;  // PSH|ACK at the end of a message, else ACK
        uint16_t& win = from_client ? f.cwin : f.swin;
        win = static_cast<uint16_t>(win + rng.below(512) - 256);
        put16(l4p + 14, win);
        seq += static_cast<uint32_t>(payload.size());
    } else {
        put16(l4p + 4, static_cast<uint16_t>(l4len));
    }
    if (!payload.empty()) std::memcpy(l4p + l4hdr, payload.data(), payload.size());

    // TCP/UDP checksum over the pseudo-header.
    uint32_t acc = f.v6 ? sum16(ip + 8, 32) : sum16(ip + 12, 8);
    acc += f.proto;
    acc += static_cast<uint32_t>(l4len);
    acc = sum16(l4p, l4len, acc);
    uint16_t ck = fold(acc);
    if (f.proto == 17 && ck == 0) ck = 0xffff;
    put16(l4p + (f.proto == 6 ? 16 : 6), ck);
    return pkt;
}

// ---- tunnels -------------------------------------------------------------------------

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

TunnelPath make_path(Rng& rng, Tunnel kind, uint8_t index) {
    TunnelPath p;
    p.kind = kind;
    p.index = index;
    p.ttl = rng.chance(50) ? 64 : 255;
    switch (kind) {
        case Tunnel::Erspan2:
        case Tunnel::Erspan3:
            p.id = 1 + rng.below(1023);  // 10-bit session id
            break;
        case Tunnel::GreKey:
            p.id = static_cast<uint32_t>(rng.next());
            break;
        default:
            p.id = 1 + rng.below((1u << 24) - 1);  // 24-bit VNI, 0 left out
            break;
    }
    p.vlan = static_cast<uint16_t>(2 + rng.below(4000));
    p.outer_vlan = static_cast<uint16_t>(2 + rng.below(4000));
    p.nlabels = static_cast<uint8_t>(1 + rng.below(3));
    for (auto& l : p.labels)
        l = 16 + rng.below((1u << 20) - 16);  // labels 0-15 are reserved
    p.gre_seq = rng.chance(50);
    p.geneve_option = rng.chance(50);
    p.hw_id = static_cast<uint8_t>(rng.below(64));
    p.gra = static_cast<uint8_t>(rng.below(2));
    p.egress = rng.chance(50);
    p.seq = static_cast<uint32_t>(rng.below(1000));
    p.ip_id = static_cast<uint16_t>(rng.next());
    return p;
}

std::vector<TunnelPath> make_paths(Rng& rng, Tunnel kind) {
    constexpr Tunnel kAll[] = {Tunnel::Erspan2, Tunnel::Erspan3, Tunnel::Gre,
                               Tunnel::GreKey,  Tunnel::Vxlan,   Tunnel::Geneve,
                               Tunnel::Mpls,    Tunnel::Vlan,    Tunnel::QinQ};
    std::vector<TunnelPath> paths;
    if (kind == Tunnel::None) return paths;
    const size_t n = kind == Tunnel::Mix ? 2 * std::size(kAll) : 4;
    for (size_t i = 0; i < n; ++i)
        paths.push_back(make_path(rng, kind == Tunnel::Mix ? kAll[i % std::size(kAll)] : kind,
                                  static_cast<uint8_t>(i)));
    return paths;
}

struct Encapsulated {
    Bytes frame;
    // The tunnel's own header: the tags, the label stack, GRE (and ERSPAN), or
    // VXLAN/Geneve after UDP. A record cut inside it is a malformed tunnel.
    size_t header_begin = 0, header_end = 0;
};

// The inner packet's IP datagram without Ethernet header or padding.
std::pair<const uint8_t*, size_t> inner_ip(const Bytes& inner) {
    const uint8_t* ip = inner.data() + 14;
    const size_t len = inner[12] == 0x86 ? 40u + get16(ip + 4) : get16(ip + 2);
    return {ip, len};
}

void put_outer_ethernet(uint8_t* p, const TunnelPath& t, uint16_t type) {
    const uint8_t dst[6] = {0x02, 0x00, 0x5e, 0x00, 0x01, t.index};
    const uint8_t src[6] = {0x02, 0x00, 0x5e, 0x00, 0x02, t.index};
    std::memcpy(p, dst, 6);
    std::memcpy(p + 6, src, 6);
    put16(p + 12, type);
}

// ERSPAN III timestamp in the session's granularity: 100 us or 100 ns ticks.
uint32_t erspan_timestamp(const TunnelPath& t, uint64_t t_ns) {
    return static_cast<uint32_t>(t.gra == 0 ? t_ns / 100000 : t_ns / 100);
}

Encapsulated encapsulate(TunnelPath& t, uint16_t entropy_port, const Bytes& inner, uint64_t t_ns) {
    Encapsulated e;
    Bytes& out = e.frame;
    const uint16_t inner_type = static_cast<uint16_t>(inner[12] << 8 | inner[13]);
    switch (t.kind) {
        case Tunnel::Vlan:
        case Tunnel::QinQ: {
            out.assign(inner.begin(), inner.begin() + 12);
            e.header_begin = 12;
            if (t.kind == Tunnel::QinQ) append16(out, 0x88a8), append16(out, t.outer_vlan);
            append16(out, 0x8100);
            append16(out, static_cast<uint16_t>((t.index & 7) << 13 | t.vlan));
            e.header_end = out.size() + 2;  // the tag ends with the inner EtherType
            out.insert(out.end(), inner.begin() + 12, inner.end());
            return e;
        }
        case Tunnel::Mpls: {
            out.resize(14);
            put_outer_ethernet(out.data(), t, 0x8847);
            e.header_begin = 14;
            for (uint8_t i = 0; i < t.nlabels; ++i)
                append32(out, t.labels[i] << 12 | (i + 1 == t.nlabels ? 0x100u : 0u) | t.ttl);
            e.header_end = out.size();
            const auto [ip, len] = inner_ip(inner);
            out.insert(out.end(), ip, ip + len);
            out.resize(std::max(out.size(), kEthernetMin));
            return e;
        }
        default:
            break;
    }

    const bool udp = t.kind == Tunnel::Vxlan || t.kind == Tunnel::Geneve;
    out.resize(14 + 20);
    put_outer_ethernet(out.data(), t, 0x0800);
    if (udp) out.resize(out.size() + 8);
    e.header_begin = out.size();
    const bool l3 = t.kind == Tunnel::Gre || t.kind == Tunnel::GreKey;
    switch (t.kind) {
        case Tunnel::Gre:
            append16(out, 0), append16(out, inner_type);
            break;
        case Tunnel::GreKey:
            append16(out, t.gre_seq ? 0x3000 : 0x2000), append16(out, inner_type);
            append32(out, t.id);
            if (t.gre_seq) append32(out, t.seq++);
            break;
        case Tunnel::Erspan2:
            append16(out, 0x1000), append16(out, 0x88be), append32(out, t.seq++);
            // Ver 1, no VLAN, COS 0, untagged original, not truncated; port index.
            append32(out, 1u << 28 | t.id);
            append32(out, t.index + 1u);
            break;
        case Tunnel::Erspan3:
            append16(out, 0x1000), append16(out, 0x22eb), append32(out, t.seq++);
            append32(out, 2u << 28 | t.id);  // Ver 2, no VLAN, COS 0, BSO 0, not truncated
            append32(out, erspan_timestamp(t, t_ns));
            // SGT 0, Ethernet frame (P 0, FT 0), switch id, direction, granularity, no subheader
            append32(out, static_cast<uint32_t>(t.hw_id) << 4 | (t.egress ? 8u : 0u) |
                              static_cast<uint32_t>(t.gra) << 1);
            break;
        case Tunnel::Vxlan:
            append32(out, 0x08000000), append32(out, t.id << 8);
            break;
        case Tunnel::Geneve:
            // Protocol type: Ethernet; an OVN option carries the logical ports.
            append16(out, t.geneve_option ? 0x0240 : 0), append16(out, 0x6558);  // opt len 2, C
            append32(out, t.id << 8);
            if (t.geneve_option) {
                append16(out, 0x0102), out.push_back(0x80), out.push_back(1);
                append32(out, (entropy_port & 0x7fffu) << 16 | t.index);
            }
            break;
        default:
            break;
    }
    e.header_end = out.size();
    if (l3) {
        const auto [ip, len] = inner_ip(inner);
        out.insert(out.end(), ip, ip + len);
    } else {
        out.insert(out.end(), inner.begin(), inner.end());
    }

    uint8_t* ip = &out[14];
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(out.size() - 14));
    put16(ip + 4, t.ip_id++);
    put16(ip + 6, 0x4000);  // DF
    ip[8] = t.ttl;
    ip[9] = udp ? 17 : 47;
    const uint8_t src[4] = {198, 51, 100, static_cast<uint8_t>(1 + t.index)};
    const uint8_t dst[4] = {203, 0, 113, static_cast<uint8_t>(10 + t.index % 3)};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    put16(ip + 10, fold(sum16(ip, 20)));
    if (udp) {
        uint8_t* u = ip + 20;
        const size_t ulen = out.size() - 34;
        // The source port carries the inner flow's hash, for ECMP.
        put16(u, entropy_port);
        put16(u + 2, t.kind == Tunnel::Vxlan ? 4789 : 6081);
        put16(u + 4, static_cast<uint16_t>(ulen));
        uint16_t ck = fold(sum16(u, ulen, sum16(ip + 12, 8) + 17 + static_cast<uint32_t>(ulen)));
        put16(u + 6, ck ? ck : 0xffff);
    }
    return e;
}

// ---- fragments -----------------------------------------------------------------------

constexpr size_t kFragmentMinPayload = 256;  // smaller datagrams are left whole

// Cuts the frame's IP datagram into fragments as a sender or router before a
// smaller MTU does: every fragment but the last carries the same multiple of 8
// bytes. IPv4 fragments share the datagram's id; IPv6 ones carry a fragment
// header. Returns nothing when the datagram is too small or more than `room`
// records would be needed.
std::vector<Bytes> fragment(Rng& rng, const Bytes& frame, uint64_t room) {
    const bool v6 = frame[12] == 0x86;
    const uint8_t* ip = &frame[14];
    const size_t hdr = v6 ? 40 : (ip[0] & 15) * 4u;
    const size_t payload = (v6 ? 40u + get16(ip + 4) : get16(ip + 2)) - hdr;
    if (payload < kFragmentMinPayload) return {};
    // Past a 1500-byte MTU for jumbo datagrams, else at a smaller one.
    const size_t most = v6 ? 1448 : 1480;
    const size_t unit =
        payload > most ? most : (payload / 2 + rng.below(static_cast<uint32_t>(payload / 4))) & ~7u;
    const size_t count = (payload + unit - 1) / unit;
    if (count > room) return {};
    const uint32_t ident = static_cast<uint32_t>(rng.next());

    std::vector<Bytes> pieces;
    for (size_t off = 0; off < payload; off += unit) {
        const size_t len = std::min(unit, payload - off);
        const uint16_t more = off + len < payload ? 1 : 0;
        Bytes f(frame.begin(), frame.begin() + 14 + hdr);
        uint8_t* fip = &f[14];
        if (v6) {
            fip[6] = 44;
            put16(fip + 4, static_cast<uint16_t>(8 + len));
            f.push_back(ip[6]), f.push_back(0);
            append16(f, static_cast<uint16_t>(off | more));
            append32(f, ident);
        } else {
            put16(fip + 2, static_cast<uint16_t>(hdr + len));
            put16(fip + 6, static_cast<uint16_t>(off / 8 | (more ? 0x2000u : 0u)));
            put16(fip + 10, 0);
            put16(fip + 10, fold(sum16(fip, hdr)));
        }
        f.insert(f.end(), ip + hdr + off, ip + hdr + off + len);
        f.resize(std::max(f.size(), kEthernetMin));
        pieces.push_back(std::move(f));
    }
    // Some stacks send the last fragment first.
    if (rng.chance(12)) std::reverse(pieces.begin(), pieces.end());
    return pieces;
}

// ---- duplicates ----------------------------------------------------------------------

// A SPAN session that mirrors both the port a packet comes in on and the one
// it leaves by delivers it twice; when a router sits between the two, the
// second copy has one hop less to live.
void decrement_ttl(Bytes& frame) {
    uint8_t* ip = &frame[14];
    if (frame[12] == 0x86) {
        if (ip[7] > 1) --ip[7];
        return;
    }
    if (ip[8] > 1) --ip[8];
    put16(ip + 10, 0);
    put16(ip + 10, fold(sum16(ip, (ip[0] & 15) * 4u)));
}

// Copies waiting for their record: at most one per record index, so that each
// lands exactly where it was scheduled.
class DuplicateQueue {
  public:
    bool empty() const { return copies_.empty(); }
    size_t size() const { return copies_.size(); }
    // Schedules a copy `distance` records after record `index`, or at the
    // nearest free index within `window`; false when all are taken.
    bool schedule(uint64_t index, uint32_t distance, uint32_t window, uint32_t flow, Bytes frame) {
        for (uint32_t k = 0; k < window; ++k) {
            const uint64_t due = index + 1 + (distance - 1 + k) % window;
            if (std::none_of(copies_.begin(), copies_.end(),
                             [&](const Copy& c) { return c.due == due; })) {
                copies_.push_back({due, flow, std::move(frame)});
                return true;
            }
        }
        return false;
    }
    // The copy for record `index`, or with `any`, the earliest one.
    bool take(uint64_t index, bool any, Bytes& frame, uint32_t& flow) {
        auto it = std::min_element(copies_.begin(), copies_.end(),
                                   [](const Copy& a, const Copy& b) { return a.due < b.due; });
        if (it == copies_.end() || (!any && it->due > index)) return false;
        frame = std::move(it->frame);
        flow = it->flow;
        copies_.erase(it);
        return true;
    }

  private:
    struct Copy {
        uint64_t due;
        uint32_t flow;
        Bytes frame;
    };
    std::vector<Copy> copies_;
};

// ---- output --------------------------------------------------------------------------

class PcapWriter {
  public:
    PcapWriter(FILE* out, const Options& o) : out_(out), nanosecond_(o.nanosecond) {
        // pcap global header, host byte order as the format allows; snaplen covers jumbo.
        struct {
            uint32_t magic;
            uint16_t major, minor;
            int32_t zone;
            uint32_t sigfigs, snaplen, linktype;
        } gh{o.nanosecond ? 0xa1b23c4du : 0xa1b2c3d4u, 2, 4, 0, 0, 65535, 1};
        std::fwrite(&gh, sizeof gh, 1, out_);
    }
    void write(uint64_t t_ns, const Bytes& frame, size_t caplen) {
        const uint32_t sub = nanosecond_ ? static_cast<uint32_t>(t_ns % 1000000000ull)
                                         : static_cast<uint32_t>(t_ns % 1000000000ull / 1000);
        const uint32_t rec[4] = {static_cast<uint32_t>(t_ns / 1000000000ull), sub,
                                 static_cast<uint32_t>(caplen),
                                 static_cast<uint32_t>(frame.size())};
        std::fwrite(rec, sizeof rec, 1, out_);
        std::fwrite(frame.data(), 1, caplen, out_);
    }

  private:
    FILE* out_;
    bool nanosecond_;
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
        "                      (default 0)\n");
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
    PcapWriter pcap(out, o);

    Rng rng(o.seed, kTraffic);
    Rng clock(o.seed, kClock);
    Rng truncate(o.seed, kTruncate);
    Rng tunnels(o.seed, kTunnel);
    Rng tunnel_cuts(o.seed, kTunnelTruncate);
    std::vector<Flow> flows;
    flows.reserve(o.flows);
    for (uint32_t i = 0; i < o.flows; ++i)
        flows.push_back(make_flow(rng, o, i));
    // Each flow keeps one tunnel, and one outer UDP source port for it.
    std::vector<TunnelPath> paths = make_paths(tunnels, o.tunnel);
    std::vector<uint32_t> flow_path(paths.empty() ? 0 : o.flows);
    std::vector<uint16_t> flow_port(flow_path.size());
    for (size_t i = 0; i < flow_path.size(); ++i) {
        flow_path[i] = tunnels.below(static_cast<uint32_t>(paths.size()));
        flow_port[i] = static_cast<uint16_t>(49152 + tunnels.below(16384));
    }

    uint64_t t_ns = 1700000000ull * 1000000000ull;  // a fixed start: reproducible files
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
            Flow& f = flows[piece_flow];
            const bool from_client = rng.chance(f.app == App::Http ? 35 : 50);
            Bytes packet = build_frame(rng, f, from_client, pick_frame_len(rng, o));
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
