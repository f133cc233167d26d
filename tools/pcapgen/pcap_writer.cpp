#include "pcap_writer.hpp"

namespace sluice::pcapgen {

PcapWriter::PcapWriter(FILE* out, bool nanosecond) : out_(out), nanosecond_(nanosecond) {
    // pcap global header, host byte order as the format allows; snaplen covers jumbo.
    struct {
        uint32_t magic;
        uint16_t major, minor;
        int32_t zone;
        uint32_t sigfigs, snaplen, linktype;
    } gh{nanosecond ? 0xa1b23c4du : 0xa1b2c3d4u, 2, 4, 0, 0, 65535, 1};
    std::fwrite(&gh, sizeof gh, 1, out_);
}

void PcapWriter::write(uint64_t t_ns, const Bytes& frame, size_t caplen) {
    const uint32_t sub = nanosecond_ ? static_cast<uint32_t>(t_ns % 1000000000ull)
                                     : static_cast<uint32_t>(t_ns % 1000000000ull / 1000);
    const uint32_t rec[4] = {static_cast<uint32_t>(t_ns / 1000000000ull), sub,
                             static_cast<uint32_t>(caplen), static_cast<uint32_t>(frame.size())};
    std::fwrite(rec, sizeof rec, 1, out_);
    std::fwrite(frame.data(), 1, caplen, out_);
}

}  // namespace sluice::pcapgen
