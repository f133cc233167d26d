// sluice-pcapgen's output: the pcap file format, microsecond or nanosecond.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "bytes.hpp"

namespace sluice::pcapgen {

class PcapWriter {
  public:
    // Writes the global header (Ethernet link type) to `out`.
    PcapWriter(FILE* out, bool nanosecond);
    // One record: the frame at `t_ns` since the epoch, captured up to `caplen` bytes.
    void write(uint64_t t_ns, const Bytes& frame, size_t caplen);

  private:
    FILE* out_;
    bool nanosecond_;
};

}  // namespace sluice::pcapgen
