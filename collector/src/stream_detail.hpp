// What the parts of Stream (stream.cpp, stream_files.cpp,
// stream_statistics.cpp) share, and nothing outside the collector sees.
#pragma once

#include <string>

#include "sluice/collector/stream.hpp"
#include "sluice/index/file_name.hpp"
#include "sluice/index/format.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::collector::detail {

// The name a file has while it is written: NAME.part, renamed when complete.
inline std::string with_part(const std::string& path) {
    return path + std::string(index::kPartSuffix);
}

inline index::Compression index_compression(bool zstd) {
    return zstd ? index::Compression::Zstd : index::Compression::None;
}

// An interface whose counters say something happened on it.
inline bool active(const wire::StatisticsEntry& e) {
    return e.received || e.nic_dropped || e.dropped;
}

}  // namespace sluice::collector::detail

namespace sluice::collector {

// Totals between two points in time (what a batch added), and adding them.
inline StreamTotals operator-(const StreamTotals& a, const StreamTotals& b) {
    return {a.frames_written - b.frames_written,
            a.packets_written - b.packets_written,
            a.packet_bytes_written - b.packet_bytes_written,
            a.frames_duplicate - b.frames_duplicate,
            a.frames_lost - b.frames_lost,
            a.packets_lost - b.packets_lost,
            a.gaps - b.gaps};
}

inline void operator+=(StreamTotals& a, const StreamTotals& d) {
    a.frames_written += d.frames_written;
    a.packets_written += d.packets_written;
    a.packet_bytes_written += d.packet_bytes_written;
    a.frames_duplicate += d.frames_duplicate;
    a.frames_lost += d.frames_lost;
    a.packets_lost += d.packets_lost;
    a.gaps += d.gaps;
}

}  // namespace sluice::collector
