// Software RSS: the tuple a NIC hashes, the redirection table, the rings.
#include "sluice/dataplane/soft_rss.hpp"

#include <cstring>

#include "sluice/simd/checksum.hpp"

namespace sluice::dataplane {

namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

}  // namespace

std::size_t rss_tuple(const std::byte* frame, std::size_t len, std::byte* out) {
    const std::size_t l3 = simd::l3_offset_ethernet(frame, len);
    if (l3 == 0 || len <= l3) return 0;
    const auto* ip = reinterpret_cast<const uint8_t*>(frame + l3);
    const std::size_t avail = len - l3;
    if ((ip[0] >> 4) == 4) {
        if (avail < 20) return 0;
        const std::size_t ihl = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
        std::memcpy(out, ip + 12, 8);  // source, destination
        const uint8_t proto = ip[9];
        // A fragment (more fragments, or an offset) hashes by its addresses.
        const bool fragment = ((ip[6] & 0x3f) | ip[7]) != 0;
        if ((proto != kTcp && proto != kUdp) || fragment || ihl < 20 || avail < ihl + 4) {
            return 8;
        }
        std::memcpy(out + 8, ip + ihl, 4);  // source port, destination port
        return 12;
    }
    if ((ip[0] >> 4) == 6) {
        if (avail < 40) return 0;
        std::memcpy(out, ip + 8, 32);  // source, destination
        const uint8_t next = ip[6];
        if ((next != kTcp && next != kUdp) || avail < 44) return 32;
        std::memcpy(out + 32, ip + 40, 4);
        return 36;
    }
    return 0;
}

SoftRss::SoftRss(uint16_t queues, bool symmetric)
    : toeplitz_(symmetric ? std::span<const uint8_t>(simd::kSymmetricRssKey)
                          : std::span<const uint8_t>(simd::kDefaultRssKey)),
      queues_(queues) {
    for (std::size_t i = 0; i < kTableSize; ++i)
        table_[i] = static_cast<uint16_t>(i % queues);
}

SoftRssPort::SoftRssPort(uint16_t queues, bool symmetric, std::size_t ring_slots)
    : rss(queues, symmetric) {
    for (uint16_t q = 1; q < queues; ++q)
        rings.push_back(std::make_unique<MbufRing>(ring_slots));
}

}  // namespace sluice::dataplane
