// libFuzzer target: the burst checksum verifier on arbitrary packets.
//
// Packets come off the wire: every header field is attacker-controlled. Every
// implementation available on the CPU must give the same verdicts (a
// differential check, the scalar one being the reference), read nothing
// outside the packet (ASan), and the raw sums must equal the reference sum.
// A disagreement traps.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "kernels.hpp"

#include "sluice/simd/checksum.hpp"
#include "sluice/simd/reference.hpp"

namespace {

using namespace sluice::simd;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    auto pkt = std::make_unique<std::byte[]>(size ? size : 1);
    std::memcpy(pkt.get(), data, size);
    // Ethernet when it parses as such; otherwise let the first byte pick where
    // the IP header starts, so inputs need not carry a valid Ethernet header.
    uint16_t l3 = l3_offset_ethernet(pkt.get(), size);
    if (l3 == 0 && size) l3 = static_cast<uint16_t>(data[0] % 48);
    const PacketView view{pkt.get(), static_cast<uint32_t>(size), l3};

    ChecksumResult want;
    detail::verify_checksums_scalar(&view, 1, &want);
    const uint16_t sum = cksum_fold(reference::cksum_add(pkt.get(), size, 0));
    check(cksum_fold(detail::cksum_add_scalar(pkt.get(), size, 0)) == sum);
    for (int i = 1; i <= static_cast<int>(detected_level()); ++i) {
        const detail::Kernels& k = detail::kernels_for(static_cast<Level>(i));
        ChecksumResult got;
        k.verify_checksums(&view, 1, &got);
        check(got.ip == want.ip && got.l4 == want.l4 && got.l4_proto == want.l4_proto);
        check(cksum_fold(k.cksum_add(pkt.get(), size, 0)) == sum);
    }
    // A verdict of Good is never given to a packet too short for its headers.
    if (want.l4 == Verdict::Good) check(size >= l3 + 20u + 8u);
    return 0;
}
