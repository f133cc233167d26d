// A stream's interfaces (pcapng IDBs, their names and descriptions) and the
// interface statistics blocks that end each file.
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <iterator>
#include <stdexcept>

#include "stream_detail.hpp"
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/collector/pcapng.hpp"
#include "sluice/collector/stream.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::collector {
namespace {

using detail::active;
using detail::index_compression;
using detail::with_part;
using report::log_error;
using report::log_info;
using report::log_warning;
using session::wall_ns;

// A description from the peer, fit for a pcapng text option: control
// characters become '?'.
std::string printable(std::string_view text) {
    std::string s(text);
    for (char& c : s) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return s;
}

bool same_counters(const pcapng::InterfaceStatistics& a, const pcapng::InterfaceStatistics& b) {
    return a.timestamp_ns == b.timestamp_ns && a.start_ns == b.start_ns &&
           a.received == b.received && a.nic_dropped == b.nic_dropped && a.accepted == b.accepted &&
           a.dropped == b.dropped && a.delivered == b.delivered;
}

// What an interface's statistics block says. Wireshark shows isb_ifdrop as
// the interface's dropped packets (when a file holds one block for it):
// everything lost between the wire and the file. isb_osdrop is sluice's share.
pcapng::InterfaceStatistics isb_of(const wire::StatisticsEntry& e) {
    pcapng::InterfaceStatistics s;
    s.timestamp_ns = e.time_ns;
    s.start_ns = e.start_ns;
    s.received = e.received + e.nic_dropped;
    s.nic_dropped = e.nic_dropped + e.dropped;
    s.accepted = e.accepted;
    s.dropped = e.dropped;
    s.delivered = e.delivered;
    s.comment = fmt::format(
        "sluice: {} packets received, {} dropped by the NIC, {} dropped by sluice, {} passed "
        "the capture filter, {} captured",
        e.received, e.nic_dropped, e.dropped, e.accepted, e.delivered);
    return s;
}

}  // namespace

void Stream::reindex_interfaces() {
    file_ifs_.clear();
    for (uint32_t i = 0; i < st_.interface_count; ++i)
        file_ifs_.insert(st_.interfaces[i], i);
    last_id_ = UINT32_MAX;
}

uint32_t Stream::interface_id(uint16_t port, uint16_t queue) {
    const InterfaceKey k{port, queue};
    if (last_id_ != UINT32_MAX && k == last_key_) return last_id_;
    uint32_t id = file_ifs_.find(k);
    if (id == InterfaceIndex::kNone) {
        // add() made room for every interface of the frame before this.
        id = st_.interface_count;
        if (id >= StreamState::kMaxInterfaces || !file_ifs_.insert(k, id)) return UINT32_MAX;
        ++st_.interface_count;
        st_.interfaces[id] = k;
        ByteBuffer idb;
        const std::string_view device = description_of(k);
        pcapng::append_idb(
            idb, pcapng::kLinkTypeEthernet, wire::kMaxSnaplen,
            fmt::format("sluice-s{}-p{}-q{}", id_, port, queue),
            device.empty()
                ? fmt::format("sluice stream {} port {} queue {}", id_, port, queue)
                : fmt::format("sluice stream {} port {} queue {}: {}", id_, port, queue, device));
        ws_.batch.append(idb.span());
        index_.interface(idb.span(), ws_.batch.size());
    }
    last_key_ = k;
    return last_id_ = id;
}

std::string_view Stream::description_of(InterfaceKey k) const {
    const uint32_t i = known_ifs_.find(k);
    return i == InterfaceIndex::kNone ? std::string_view() : known_[i].description;
}

bool Stream::rotation_waits() {
    if (!group_) return false;
    // A file is finished only with every commit in it confirmed: its closing
    // statistics blocks go into a commit of their own first.
    append_file_statistics();
    return uncommitted() || saved_.pending;
}

void Stream::append_file_statistics() {
    if (file_statistics_current_) return;
    ByteBuffer isb;
    for (uint32_t id = 0; id < st_.interface_count; ++id) {
        const uint32_t i = known_ifs_.find(st_.interfaces[id]);
        if (i == InterfaceIndex::kNone || !known_[i].counted) continue;
        pcapng::append_isb(isb, id, known_[i].latest);
    }
    if (!isb.empty()) ws_.batch.append(isb.span());
    file_statistics_current_ = true;
}

FrameOutcome Stream::add_statistics(const wire::FrameView& frame, FrameOutcome outcome) {
    const wire::FrameInfo& info = frame.info();
    // The end of the stream: the final counters go into the file now. Before
    // it they are only remembered, for the interface blocks' descriptions and
    // for the end of the file at a rotation: Wireshark shows an interface's
    // drops only when its file holds exactly one statistics block for it.
    const bool end = (info.flags & wire::flag::kEndOfStream) != 0;
    std::size_t fresh = 0;
    bool any = false, changed = false;
    for (const wire::StatisticsEntry& e : frame.statistics()) {
        const InterfaceKey k{e.port, e.queue};
        uint32_t i = known_ifs_.find(k);
        if (i == InterfaceIndex::kNone &&
            known_ifs_.insert(k, static_cast<uint32_t>(known_.size()))) {
            i = static_cast<uint32_t>(known_.size());
            known_.push_back({k, printable(e.description), false, {}});
        }
        if (i != InterfaceIndex::kNone) {
            pcapng::InterfaceStatistics latest = isb_of(e);
            changed |= !known_[i].counted || !same_counters(known_[i].latest, latest);
            known_[i].counted = true;
            known_[i].latest = std::move(latest);
            if (!e.description.empty() && e.description != known_[i].description)
                known_[i].description = printable(e.description);
        }
        if (!active(e)) continue;
        any = true;
        fresh += file_ifs_.find(k) == InterfaceIndex::kNone;
    }
    // The same counters again (a frame offered anew after a group's commit
    // made room for a rotation) leave the file's blocks current.
    if (changed) file_statistics_current_ = false;
    const bool write = end && any;
    if (write) {
        // The blocks end the file they count for: no size or time rotation
        // before them (a file of nothing but them would follow), only one
        // when the interface table is full.
        if (!ensure_file()) return FrameOutcome::StorageError;
        if (st_.interface_count + fresh > StreamState::kMaxInterfaces) {
            if (rotation_waits()) return FrameOutcome::CommitFirst;
            if (!rotate()) return FrameOutcome::StorageError;
        }
    }
    if (outcome == FrameOutcome::Gap) {
        ++st_.totals.gaps;
        st_.totals.frames_lost += last_gap_frames_;
        st_.totals.packets_lost += last_gap_packets_;
    }
    if (write) {
        ByteBuffer isb;
        for (const wire::StatisticsEntry& e : frame.statistics()) {
            if (!active(e)) continue;
            const uint32_t id = interface_id(e.port, e.queue);
            if (id == UINT32_MAX) continue;  // cannot happen: room was made above
            pcapng::append_isb(isb, id, isb_of(e));
        }
        ws_.batch.append(isb.span());
        file_statistics_current_ = true;
    }
    st_.next_sequence = info.sequence + 1;
    st_.next_packet_index = info.first_packet_index;
    ++st_.totals.frames_written;
    return outcome;
}

std::optional<std::size_t> Stream::new_interfaces(const wire::FrameView& frame) {
    // Each distinct (port, queue) of the frame once; a frame naming more
    // than a file may hold can never be written, in any file.
    frame_ifs_.clear();
    std::size_t fresh = 0;
    for (const wire::Record& r : frame) {
        const InterfaceKey k{r.port, r.queue};
        if (frame_ifs_.find(k) != InterfaceIndex::kNone) continue;
        if (!frame_ifs_.insert(k, 0)) return std::nullopt;
        fresh += file_ifs_.find(k) == InterfaceIndex::kNone;
    }
    return fresh;
}

}  // namespace sluice::collector
