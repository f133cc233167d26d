#include "packets.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "checksum.hpp"

namespace sluice::pcapgen {
namespace {

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

}  // namespace

size_t pick_frame_len(Rng& rng, uint32_t jumbo_percent) {
    if (jumbo_percent && rng.chance(jumbo_percent)) return 9000 + rng.below(19);
    const uint32_t r = rng.below(12);
    if (r < 7) return 60 + rng.below(4) * 2;
    if (r < 11) return 590 + rng.below(200);
    return 1514;
}

Flow make_flow(Rng& rng, uint32_t ipv6_percent, uint32_t index) {
    Flow f;
    f.v6 = rng.chance(ipv6_percent);
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

}  // namespace sluice::pcapgen
