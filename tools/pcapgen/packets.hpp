// sluice-pcapgen's flows and the frames they send: addresses, ports and
// per-direction header state, IMIX frame sizes, and Ethernet/IPv4/IPv6 frames
// with TCP or UDP and valid checksums.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "bytes.hpp"
#include "payloads.hpp"
#include "rng.hpp"

namespace sluice::pcapgen {

constexpr size_t kEthernetMin = 60;  // without FCS; shorter frames are padded

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

// IMIX on the wire (7:4:1 of 64, 594, 1518 bytes with FCS) plus some spread,
// so sizes are not only three values; jumbo frames at `jumbo_percent`. The
// small ones are TCP's pure ACKs.
size_t pick_frame_len(Rng& rng, uint32_t jumbo_percent);

// Flow number `index`, IPv6 at `ipv6_percent`.
Flow make_flow(Rng& rng, uint32_t ipv6_percent, uint32_t index);

// Builds one Ethernet frame of the flow, about `len` bytes long: the length
// the IMIX picked where the application lets it choose, else what its message
// needs.
Bytes build_frame(Rng& rng, Flow& f, bool from_client, size_t len);

}  // namespace sluice::pcapgen
