// A stream at the collector: the hello and where it resumes, each frame
// written (duplicates and gaps counted), commits and acknowledgements. Its
// files are in stream_files.cpp, its interfaces and statistics blocks in
// stream_statistics.cpp.
#include "sluice/collector/stream.hpp"

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

const index::FileTemplate& default_names() {
    static const index::FileTemplate t;
    return t;
}

// pcapng's FCS-length field (epb_flags bits 5-8): 4 bytes when the record
// says the data ends with the Ethernet FCS; the direction an ERSPAN III
// session mirrored the packet in (bits 0-1).
uint32_t epb_flags_for(const wire::Record& r) {
    uint32_t f = (r.flags & wire::record_flag::kFcsIncluded) ? (4u << 5) : 0;
    if (r.has_tunnel && r.tunnel.kind == wire::TunnelKind::Erspan3)
        f |= (r.tunnel.bits & 1u) ? pcapng::kEpbOutbound : pcapng::kEpbInbound;
    return f;
}

// The packet comment of a record whose tunnel was stripped: what the tunnel
// said about the packet (ERSPAN's session, timestamp, port or switch).
void tunnel_comment(const wire::TunnelMeta& m, std::string& out) {
    out.clear();
    auto to = std::back_inserter(out);
    const unsigned vlan = m.vlan & 0x0fffu, cos = m.vlan >> 12;
    switch (m.kind) {
        case wire::TunnelKind::Erspan1:
            fmt::format_to(to, "ERSPAN type I");
            return;
        case wire::TunnelKind::Erspan2:
            fmt::format_to(to, "ERSPAN type II session {}, port index {}, VLAN {}, COS {}",
                           m.session, m.index, vlan, cos);
            return;
        case wire::TunnelKind::Erspan3: {
            static constexpr const char* kUnits[] = {"100 us units", "100 ns units",
                                                     "IEEE 1588 units", "reserved units"};
            fmt::format_to(to,
                           "ERSPAN type III session {}, timestamp {} ({}), hardware id {}, VLAN "
                           "{}, COS {}, {}",
                           m.session, m.timestamp, kUnits[(m.bits >> 1) & 3u], m.index, vlan, cos,
                           (m.bits & 1u) ? "egress" : "ingress");
            return;
        }
    }
    fmt::format_to(to, "tunnel kind {}", static_cast<unsigned>(m.kind));
}

}  // namespace

std::string output_file_name(uint64_t stream_id, uint64_t index, uint64_t wall, Compression c) {
    return default_names().format(stream_id, index, wall) +
           std::string(index::data_extension(index_compression(c == Compression::Zstd)));
}

std::optional<uint64_t> parse_output_file_index(std::string_view name, uint64_t stream_id) {
    const auto d = index::split_data_name(name);
    if (!d) return std::nullopt;
    const auto id = default_names().match(d->stem);
    if (!id || id->stream != stream_id) return std::nullopt;
    return id->n;
}

uint64_t rotation_due(uint64_t created_ns, uint64_t period_ns) {
    return (created_ns / period_ns + 1) * period_ns;
}

Stream::Stream(uint64_t id, const StreamSettings& settings, Workspace& ws)
    : id_(id), set_(settings), ws_(ws) {
    st_.stream_id = saved_.stream_id = id;
}

std::string Stream::file_path(std::string_view name) const {
    return set_.dir + "/" + std::string(name);
}

std::string Stream::current_path() const {
    return saved_.file().empty() ? std::string() : with_part(file_path(saved_.file()));
}

std::optional<HelloVerdict> Stream::on_hello(const session::Hello& h) {
    HelloVerdict v;
    v.had_session = st_.session_id != 0;
    v.previous_session = st_.session_id;
    v.previous_next_sequence = st_.next_sequence;
    const bool has_position = h.position.known;
    if (h.authoritative) {
        // A group's lease: where the stream's previous owner stopped, whatever
        // this collector wrote of it before.
        v.new_session = h.session_id != st_.session_id;
        st_.session_id = h.session_id;
        st_.position_known = has_position;
        st_.next_sequence = has_position ? h.position.sequence : 0;
        st_.next_packet_index = has_position ? h.position.packet_index : 0;
        // No sender proved a session secret here: none may resume it.
        st_.has_secret = false;
        st_.secret = {};
        st_.key_name = {};
        if (!write_state()) {
            fail_storage(fmt::format("cannot save {}", state_file_->path()));
            return std::nullopt;
        }
        v.resume_sequence = st_.position_known ? st_.next_sequence : 0;
        return v;
    }
    if (!h.resume || h.session_id != st_.session_id || !st_.has_secret) {
        // A new sender instance numbers its frames afresh: its position is
        // the truth, whatever the previous session reached.
        v.new_session = true;
        st_.session_id = h.session_id;
        st_.position_known = has_position;
        st_.next_sequence = has_position ? h.position.sequence : 0;
        st_.next_packet_index = has_position ? h.position.packet_index : 0;
        st_.has_secret = true;
        st_.secret = h.secret;
        st_.key_name = h.key_name;
    } else if (!st_.position_known && has_position) {
        st_.position_known = true;
        st_.next_sequence = h.position.sequence;
        st_.next_packet_index = h.position.packet_index;
    }
    if (v.new_session || st_.position_known != saved_.position_known) {
        if (!write_state()) {
            fail_storage(fmt::format("cannot save {}", state_file_->path()));
            return std::nullopt;
        }
    }
    v.resume_sequence = st_.position_known ? st_.next_sequence : 0;
    return v;
}

std::optional<session::ResumeTicket> Stream::resume_ticket(uint64_t session_id) const {
    return record().resume_ticket(session_id);
}

std::optional<session::ResumeTicket> StreamRecord::resume_ticket(uint64_t session) const {
    if (session == 0 || session != session_id || !has_secret) return std::nullopt;
    session::ResumeTicket t;
    t.secret = secret;
    t.key_name = key_name;
    return t;
}

StreamRecord Stream::record() const {
    StreamRecord r;
    r.id = id_;
    r.run = run_;
    r.all_runs = saved_.totals;
    r.files_opened = files_opened_;
    r.next_sequence = saved_.next_sequence;
    r.session_id = st_.session_id;
    r.has_secret = st_.has_secret;
    r.secret = st_.secret;
    r.key_name = st_.key_name;
    r.file = current_path();
    r.connected = connection != nullptr;
    r.pending = pending();
    return r;
}

void Stream::carry_over(const StreamRecord& r) {
    run_ = r.run;
    files_opened_ = r.files_opened;
}

FrameOutcome Stream::add(const wire::FrameView& frame) {
    const wire::FrameInfo& info = frame.info();
    last_gap_frames_ = last_gap_packets_ = 0;
    // Only a frame with more packets than the file has room for interfaces
    // can overflow the table: count its new interfaces then (one probe per
    // record), before anything of it is kept.
    std::size_t fresh = 0;
    if (frame.is_statistics()) {
        // Like packets, a frame naming more interfaces than a file holds is
        // refused whole (each entry takes at least 64 bytes).
        if (info.raw_len / wire::kStatisticsEntrySize > StreamState::kMaxInterfaces) {
            std::size_t n = 0;
            for (const auto& e : frame.statistics()) {
                (void)e;
                ++n;
            }
            if (n > StreamState::kMaxInterfaces) return FrameOutcome::TooManyInterfaces;
        }
    } else if (st_.interface_count + info.packet_count > StreamState::kMaxInterfaces) {
        const auto n = new_interfaces(frame);
        if (!n) return FrameOutcome::TooManyInterfaces;
        fresh = *n;
    }
    if (!st_.position_known) {
        st_.position_known = true;
        st_.next_sequence = info.sequence;
        st_.next_packet_index = info.first_packet_index;
    }
    if (info.sequence < st_.next_sequence) {
        ++st_.totals.frames_duplicate;
        return FrameOutcome::Duplicate;
    }
    FrameOutcome outcome = FrameOutcome::Written;
    if (info.sequence > st_.next_sequence) {
        last_gap_frames_ = info.sequence - st_.next_sequence;
        last_gap_packets_ = info.first_packet_index > st_.next_packet_index
                                ? info.first_packet_index - st_.next_packet_index
                                : 0;
        outcome = FrameOutcome::Gap;
    }
    // A group's stream begins its next file only once what came before is
    // confirmed: undoing a commit never reaches into another file.
    if (group_ && st_.file().empty() && (uncommitted() || saved_.pending))
        return FrameOutcome::CommitFirst;
    if (frame.is_statistics()) return add_statistics(frame, outcome);
    if (!ensure_file()) return FrameOutcome::StorageError;

    // Rotate before the frame rather than in its middle: a frame lives in one
    // file, so a crash can never leave half of it committed.
    const bool has_packets = st_.interface_count > 0;
    const uint64_t frame_bytes = info.raw_len + 8ull * info.packet_count;
    bool rotate_now = false;
    if (has_packets && set_.rotate_bytes &&
        out_.size() + ws_.batch.size() + frame_bytes > set_.rotate_bytes)
        rotate_now = true;
    if (has_packets && set_.rotate_ns &&
        wall_ns() >= rotation_due(st_.file_created_ns, set_.rotate_ns))
        rotate_now = true;
    if (st_.interface_count + fresh > StreamState::kMaxInterfaces) rotate_now = true;
    if (rotate_now && rotation_waits()) return FrameOutcome::CommitFirst;
    if (rotate_now && !rotate()) return FrameOutcome::StorageError;

    if (outcome == FrameOutcome::Gap) {
        ++st_.totals.gaps;
        st_.totals.frames_lost += last_gap_frames_;
        st_.totals.packets_lost += last_gap_packets_;
    }
    // Packet bytes stay in the frame (the connection's receive buffer) until
    // the commit writes them, unless a compressor needs them in one piece or
    // they were decompressed into the shared scratch buffer.
    const bool reference = set_.compression == Compression::None && info.codec == wire::Codec::None;
    // Records with tunnel metadata get a packet comment of about 100 bytes.
    const uint64_t per_packet = (info.flags & wire::flag::kRecordMeta) ? 176 : 48;
    ws_.batch.reserve((reference ? 0 : info.raw_len) + per_packet * info.packet_count,
                      2ull * info.packet_count + 2);
    uint64_t bytes = 0;
    for (const wire::Record& r : frame) {
        const uint32_t ifid = interface_id(r.port, r.queue);
        if (ifid == UINT32_MAX) {  // cannot happen: room was made above
            last_error_ = "internal: the interface table overflowed";
            ws_.batch.clear();
            st_ = saved_;
            reindex_interfaces();
            return FrameOutcome::StorageError;
        }
        if (r.has_tunnel) {
            tunnel_comment(r.tunnel, comment_);
            pcapng::append_epb(ws_.batch, ifid, r.timestamp_ns, r.data, r.orig_len,
                               epb_flags_for(r), reference, comment_);
        } else {
            pcapng::append_epb(ws_.batch, ifid, r.timestamp_ns, r.data, r.orig_len,
                               epb_flags_for(r), reference);
        }
        index_.packet(r.timestamp_ns, r.data, ws_.batch.size());
        bytes += r.caplen;
    }
    st_.next_sequence = info.sequence + 1;
    st_.next_packet_index = info.first_packet_index + info.packet_count;
    ++st_.totals.frames_written;
    st_.totals.packets_written += info.packet_count;
    st_.totals.packet_bytes_written += bytes;
    return outcome;
}

bool Stream::uncommitted() const {
    return !ws_.batch.empty() || st_.next_sequence != saved_.next_sequence ||
           st_.next_packet_index != saved_.next_packet_index || !(st_.totals == saved_.totals) ||
           st_.source_position != saved_.source_position;
}

void Stream::mark_pending() {
    if (!group_) return;
    st_.pending = true;
    st_.undo = CommitUndo{saved_.position_known,    saved_.session_id,  saved_.next_sequence,
                          saved_.next_packet_index, saved_.file_offset, saved_.source_position,
                          saved_.interface_count,   saved_.totals};
}

bool Stream::commit() {
    if (ws_.batch.empty()) {
        // No packet bytes to write, but the position or the counters may have
        // moved (duplicates; a frame with no packets that closes a gap): the
        // state must say so before anything is acknowledged.
        if (uncommitted()) {
            mark_pending();
            if (!write_state())
                return fail_storage(fmt::format("cannot save {}", state_file_->path()));
        }
        return true;
    }
    const uint64_t before = out_.size();
    const uint64_t batch_bytes = ws_.batch.size();
    bool written;
    if (set_.compression == Compression::Zstd) {
        ws_.batch.flatten(ws_.flat);
        if (!ws_.zstd->compress(ws_.flat.span(), ws_.compressed))
            return fail_storage(fmt::format("cannot compress for {}", out_.path()));
        written = out_.append(ws_.compressed.span());
    } else {
        written = out_.append(ws_.batch);
    }
    if (!written) return fail_storage(fmt::format("cannot write {}", out_.path()));
    if (set_.sync && !out_.sync()) return fail_storage(fmt::format("cannot sync {}", out_.path()));
    st_.file_offset = out_.size();
    mark_pending();
    if (!write_state()) return fail_storage(fmt::format("cannot save {}", state_file_->path()));
    index_committed(before, batch_bytes);
    ws_.batch.clear();
    return true;
}

bool Stream::confirm_commit() {
    if (!st_.pending) return true;
    st_.pending = false;
    // Not synced even with --sync: lost, it leaves the commit pending, and a
    // restart asks the group, which says it counts.
    if (!state_file_->save(st_, false)) {
        last_error_ = fmt::format("cannot save {}: {}", state_file_->path(), std::strerror(errno));
        return false;
    }
    saved_ = st_;
    return true;
}

void Stream::discard_uncommitted() {
    if (!uncommitted()) return;
    ws_.batch.clear();
    file_statistics_current_ = false;
    index_.rollback();
    st_ = saved_;
    reindex_interfaces();
    if (out_.is_open() && out_.size() != saved_.file_offset) out_.close();
}

bool Stream::undo_commit() {
    if (!saved_.pending) return true;
    ws_.batch.clear();
    file_statistics_current_ = false;
    close_file();
    const CommitUndo& u = saved_.undo;
    st_ = saved_;
    st_.position_known = u.position_known;
    st_.session_id = u.session_id;
    st_.next_sequence = u.next_sequence;
    st_.next_packet_index = u.next_packet_index;
    st_.file_offset = u.file_offset;
    st_.source_position = u.source_position;
    st_.interface_count = u.interface_count;
    st_.totals = u.totals;
    st_.pending = false;
    st_.undo = {};
    // What this process counted of the undone commit goes too.
    run_ += st_.totals - saved_.totals;
    if (!state_file_->save(st_, set_.sync)) {
        last_error_ = fmt::format("cannot save {}: {}", state_file_->path(), std::strerror(errno));
        return false;
    }
    saved_ = st_;
    reindex_interfaces();
    if (!st_.file().empty()) {
        uint64_t discarded = 0;
        const std::string path = with_part(file_path(st_.file()));
        if (!out_.reopen(path, st_.file_offset, &discarded)) {
            last_error_ = fmt::format("cannot cut {} back to {} bytes: {}", path, st_.file_offset,
                                      std::strerror(errno));
            return false;
        }
        out_.close();
        resume_index(path, nullptr);
        index_.close();
    }
    return true;
}

}  // namespace sluice::collector
