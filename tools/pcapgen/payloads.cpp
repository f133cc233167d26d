#include "payloads.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string_view>

namespace sluice::pcapgen {
namespace {

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

// ---- HTTP ----------------------------------------------------------------------------

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

}  // namespace

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

Message tls_record(Rng& rng, bool from_client) {
    constexpr uint32_t kFullRecord = 16384 + 24;  // a full record with its AEAD overhead
    const uint32_t len = rng.chance(from_client ? 70 : 90) ? kFullRecord : rng.between(40, 1400);
    Message m;
    m.head = {'\x17', '\x03', '\x03', static_cast<char>(len >> 8), static_cast<char>(len & 0xff)};
    m.random = len;
    return m;
}

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

}  // namespace sluice::pcapgen
