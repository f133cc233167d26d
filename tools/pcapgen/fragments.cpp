#include "fragments.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "checksum.hpp"
#include "packets.hpp"

namespace sluice::pcapgen {
namespace {

constexpr size_t kFragmentMinPayload = 256;  // smaller datagrams are left whole

}  // namespace

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

}  // namespace sluice::pcapgen
