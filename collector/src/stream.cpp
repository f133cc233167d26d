#include "sluice/collector/stream.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <iterator>
#include <stdexcept>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/collector/pcapng.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::collector {
namespace {

using report::log_error;
using report::log_info;
using report::log_warning;
using session::wall_ns;

StreamTotals operator-(const StreamTotals& a, const StreamTotals& b) {
    return {a.frames_written - b.frames_written,
            a.packets_written - b.packets_written,
            a.packet_bytes_written - b.packet_bytes_written,
            a.frames_duplicate - b.frames_duplicate,
            a.frames_lost - b.frames_lost,
            a.packets_lost - b.packets_lost,
            a.gaps - b.gaps};
}

void operator+=(StreamTotals& a, const StreamTotals& d) {
    a.frames_written += d.frames_written;
    a.packets_written += d.packets_written;
    a.packet_bytes_written += d.packet_bytes_written;
    a.frames_duplicate += d.frames_duplicate;
    a.frames_lost += d.frames_lost;
    a.packets_lost += d.packets_lost;
    a.gaps += d.gaps;
}

index::Compression index_compression(bool zstd) {
    return zstd ? index::Compression::Zstd : index::Compression::None;
}

const index::FileTemplate& default_names() {
    static const index::FileTemplate t;
    return t;
}

bool exists(const std::string& path) {
    return ::access(path.c_str(), F_OK) == 0;
}

std::string parent_of(const std::string& path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

std::string with_part(const std::string& path) {
    return path + std::string(index::kPartSuffix);
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

bool active(const wire::StatisticsEntry& e) {
    return e.received || e.nic_dropped || e.dropped;
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

std::vector<index::FoundFile> Stream::own_files(std::vector<std::string>& log) const {
    std::vector<std::string> warnings;
    auto templates = index::directory_templates(set_.dir, &warnings);
    bool known = false;
    for (const auto& t : templates)
        known = known || t.text() == set_.names.text();
    if (!known) templates.push_back(set_.names);
    std::vector<index::FoundFile> all, mine;
    std::string error;
    if (!index::find_data_files(set_.dir, templates, all, &warnings, &error))
        warnings.push_back(error);
    for (const std::string& w : warnings)
        log.push_back("warning: " + w);
    for (auto& f : all)
        if (f.id.stream == id_) mine.push_back(std::move(f));
    return mine;
}

std::vector<std::string> Stream::recover() {
    std::vector<std::string> log;
    state_file_.emplace(fmt::format("{}/.sluice/stream-{}.state", set_.dir, id_));
    std::string error;
    auto loaded = state_file_->load(&error);
    // The highest number among this stream's files: a fresh state never
    // reuses one, and files past the saved one are orphans.
    const std::vector<index::FoundFile> files =
        set_.files ? set_.files->files_of(id_) : own_files(log);
    uint64_t highest = 0;
    for (const auto& f : files)
        highest = std::max(highest, f.id.n);
    if (!loaded) {
        if (!error.empty()) log.push_back("warning: " + error);
        st_ = StreamState{};
        st_.stream_id = id_;
        st_.file_index = highest;  // the next file gets a fresh number
        saved_ = st_;
        reindex_interfaces();
        return log;
    }
    if (loaded->stream_id != id_) {
        throw std::runtime_error(fmt::format("{} holds stream {}, not {}: move it away",
                                             state_file_->path(), loaded->stream_id, id_));
    }
    st_ = saved_ = *loaded;
    const std::string current(st_.file());
    if (!current.empty()) recover_current(log);
    for (const auto& f : files) {
        if (!current.empty() && (f.path == current || f.path == with_part(current))) continue;
        const std::string path = file_path(f.path);
        if (f.id.n > st_.file_index) {
            // A rotation creates the next file before it saves the state
            // naming it, and writes no packet there until then: such a
            // file holds only a section header.
            ::unlink(sluice::index::index_path(path).c_str());
            if (::unlink(path.c_str()) == 0) {
                if (set_.files) set_.files->removed(f.path);
                log.push_back(
                    fmt::format("stream {}: removed {}, begun by a rotation that did not "
                                "complete (it held no packets)",
                                id_, path));
            }
        } else if (f.part) {
            // Finished and saved so, but not renamed yet when the process died.
            publish(f.path.substr(0, f.path.size() - index::kPartSuffix.size()), &log);
        }
    }
    if (st_.file_index < highest && st_.file().empty()) st_.file_index = highest;
    saved_ = st_;
    reindex_interfaces();
    return log;
}

void Stream::recover_current(std::vector<std::string>& log) {
    const std::string final_path = file_path(st_.file());
    // NAME.part; NAME itself for a file of a collector that wrote no .part.
    std::string path = with_part(final_path);
    if (!exists(path) && exists(final_path)) path = final_path;
    uint64_t discarded = 0;
    if (out_.reopen(path, st_.file_offset, &discarded)) {
        if (discarded) {
            log.push_back(fmt::format(
                "stream {}: cut {} bytes written after the last commit from {}; the sender "
                "resends those frames from sequence {}",
                id_, discarded, path, st_.next_sequence));
        }
        out_.close();
        // A crash between renaming the index and the data leaves NAME.idx.
        const std::string idx = sluice::index::index_path(path);
        const std::string final_idx = sluice::index::index_path(final_path);
        if (path != final_path && !exists(idx) && exists(final_idx))
            ::rename(final_idx.c_str(), idx.c_str());
        resume_index(path, &log);
        // The previous run ended here: its file is complete, unless a
        // group's commit in it is still to be settled (then the file goes on).
        if (!saved_.pending) {
            if (finish_current(&log))
                log.push_back(fmt::format("stream {}: finished {}, left by the previous run", id_,
                                          final_path));
            else
                log.push_back(
                    fmt::format("error: stream {}: cannot finish {}: {}", id_, path, last_error_));
        }
    } else if (errno == ENOENT || errno == ERANGE) {
        log.push_back(fmt::format(
            "error: stream {}: {} {}: packets acknowledged to the sender are gone (removed or "
            "truncated outside the collector, or a power loss without --sync); continuing "
            "in a new file",
            id_, path, errno == ENOENT ? "is missing" : "is shorter than its committed size"));
        index_.abandon();
        if (set_.files) set_.files->removed(with_part(std::string(st_.file())));
        st_.set_file("");
        st_.interface_count = 0;
        saved_ = st_;
    } else {
        throw std::runtime_error(
            fmt::format("cannot reopen {}: {}; fix its permissions or "
                        "move the output directory's .sluice away",
                        path, std::strerror(errno)));
    }
}

bool Stream::fail_storage(const std::string& what) {
    const int e = errno;
    last_error_ = fmt::format("{}: {}", what, std::strerror(e ? e : EIO));
    // Nothing of the batch counts: back to the saved state, file included.
    ws_.batch.clear();
    file_statistics_current_ = false;
    index_.rollback();
    st_ = saved_;
    reindex_interfaces();
    if (out_.is_open() && out_.path() != current_path()) {
        ::unlink(out_.path().c_str());  // a new file the state never named
        ::unlink(sluice::index::index_path(out_.path()).c_str());
        index_.abandon();
        out_.close();
    } else if (out_.is_open() && out_.size() != saved_.file_offset) {
        out_.close();  // reopen() cuts it back to the saved offset
    }
    errno = e;
    return false;
}

bool Stream::write_state() {
    if (!state_file_->save(st_, set_.sync)) return false;
    run_ += st_.totals - saved_.totals;
    saved_ = st_;
    return true;
}

bool Stream::ensure_file() {
    if (out_.is_open()) return true;
    if (st_.file().empty()) return open_new_file();
    const std::string path = with_part(file_path(st_.file()));
    if (out_.reopen(path, st_.file_offset, nullptr)) {
        resume_index(path, nullptr);
        return true;
    }
    if (errno != ENOENT && errno != ERANGE)
        return fail_storage(fmt::format("cannot reopen {}", path));
    // Removed or cut behind the collector's back while the stream was
    // disconnected: what it held is gone; go on in a new file.
    log_error(
        "stream {}: {} {} (removed or truncated outside the collector); continuing in a new file",
        id_, path, errno == ENOENT ? "is missing" : "is shorter than its committed size");
    index_.abandon();
    if (set_.files) set_.files->removed(with_part(std::string(st_.file())));
    st_.set_file("");
    st_.interface_count = 0;
    reindex_interfaces();
    return open_new_file();
}

bool Stream::make_directories(const std::string& name) {
    // Each directory of the template's path below the output directory.
    for (std::size_t slash = name.find('/'); slash != std::string::npos;
         slash = name.find('/', slash + 1)) {
        const std::string d = file_path(name.substr(0, slash));
        if (::mkdir(d.c_str(), 0750) == 0) {
            if (set_.sync && !sync_directory(parent_of(d))) return false;
        } else if (errno != EEXIST) {
            return false;
        }
    }
    return true;
}

bool Stream::open_new_file() {
    const uint64_t now = wall_ns();
    uint64_t index = st_.file_index + 1;
    std::string name;
    for (int tries = 0;; ++tries, ++index) {
        name = set_.names.format(id_, index, now) +
               std::string(
                   index::data_extension(index_compression(set_.compression == Compression::Zstd)));
        if (!make_directories(name))
            return fail_storage(
                fmt::format("cannot create the directories of {}", file_path(name)));
        // Neither a finished file nor one being written may have the name.
        if (exists(file_path(name)))
            errno = EEXIST;
        else if (out_.create(with_part(file_path(name)), set_.file_mode))
            break;
        if (errno != EEXIST || tries > 1000)
            return fail_storage(fmt::format("cannot create {}", with_part(file_path(name))));
    }
    ByteBuffer header;
    pcapng::append_shb(header, set_.application, fmt::format("sluice stream {}", id_));
    std::span<const std::byte> bytes = header.span();
    if (set_.compression == Compression::Zstd) {
        if (!ws_.zstd->compress(bytes, ws_.compressed))
            return fail_storage(fmt::format("cannot compress for {}", out_.path()));
        bytes = ws_.compressed.span();
    }
    if (!out_.append(bytes)) return fail_storage(fmt::format("cannot write {}", out_.path()));
    if (set_.sync && !sync_directory(parent_of(out_.path())))
        return fail_storage(fmt::format("cannot sync directory {}", parent_of(out_.path())));
    st_.file_index = index;
    st_.set_file(name);
    st_.file_offset = out_.size();
    st_.file_created_ns = now;
    st_.zstd = set_.compression == Compression::Zstd;
    st_.interface_count = 0;
    file_statistics_current_ = false;
    // No group commit is pending here (add() asks for it first): the undo of
    // an earlier one describes another file.
    st_.undo = {};
    reindex_interfaces();
    if (!write_state()) return fail_storage(fmt::format("cannot save {}", state_file_->path()));
    ++files_opened_;
    start_index();
    if (set_.files) set_.files->created(id_, with_part(name));
    return true;
}

bool Stream::finish_current(std::vector<std::string>* log) {
    if (st_.file().empty()) return true;
    // A group's commit the group has not confirmed may still be undone (cut
    // out of the file): the file stays current until it is settled.
    if (saved_.pending || (group_ && uncommitted())) return true;
    out_.close();
    const std::string name(st_.file());
    std::string path = with_part(file_path(name));
    if (!exists(path)) path = file_path(name);  // of a collector that wrote no .part
    // A section header and nothing else (a group's commit undone, or a crash
    // before the first packet): nothing for a consumer; it goes.
    const bool empty = st_.interface_count == 0;
    if (empty) {
        index_.abandon();
    } else if (set_.index) {
        if (!index_.active()) resume_index(path, log);
        if (!index_.finish()) {
            const std::string line =
                fmt::format("stream {}: {}; run sluice-query --reindex on it", id_, index_.error());
            if (log)
                log->push_back("warning: " + line);
            else
                log_warning("{}", line);
        }
    }
    // Saved as finished before the rename: a crash in between leaves a
    // NAME.part that the next start renames (recover()). No commit is
    // pending here: what undoing the last one would restore goes too.
    st_.set_file("");
    st_.interface_count = 0;
    file_statistics_current_ = false;
    st_.undo = {};
    reindex_interfaces();
    if (!write_state()) return fail_storage(fmt::format("cannot save {}", state_file_->path()));
    if (!empty) {
        publish(name, log);
    } else if (path != file_path(name)) {
        ::unlink(sluice::index::index_path(path).c_str());
        ::unlink(path.c_str());
        if (set_.files) set_.files->removed(with_part(name));
    }
    return true;
}

bool Stream::finish_file() {
    return finish_current(nullptr);
}

void Stream::publish(const std::string& name, std::vector<std::string>* log) {
    const std::string final_path = file_path(name);
    const std::string part = with_part(final_path);
    auto problem = [&](const std::string& line) {
        if (log)
            log->push_back("error: " + line);
        else
            log_error("{}", line);
    };
    // The index first: a consumer that sees NAME finds NAME.idx beside it.
    if (::rename(sluice::index::index_path(part).c_str(),
                 sluice::index::index_path(final_path).c_str()) != 0 &&
        errno != ENOENT)
        problem(fmt::format("stream {}: cannot rename {}: {}", id_, sluice::index::index_path(part),
                            std::strerror(errno)));
    if (::rename(part.c_str(), final_path.c_str()) != 0) {
        if (errno != ENOENT || !exists(final_path)) {
            problem(fmt::format(
                "stream {}: cannot rename {} to its final name: {}; it is complete, but "
                "consumers that wait for the name do not see it: rename it by hand",
                id_, part, std::strerror(errno)));
            return;
        }
    } else if (set_.sync && !sync_directory(parent_of(final_path))) {
        problem(fmt::format("stream {}: cannot sync directory {}: {}", id_, parent_of(final_path),
                            std::strerror(errno)));
    }
    if (set_.files) set_.files->finished(id_, name);
}

void Stream::start_index() {
    if (!set_.index) return;
    if (!index_.start(out_.path(), st_.zstd ? index::Compression::Zstd : index::Compression::None,
                      st_.file_offset))
        log_warning("stream {}: {}; the file is captured without an index", id_, index_.error());
}

void Stream::resume_index(const std::string& path, std::vector<std::string>* log) {
    if (!set_.index) return;
    for (const std::string& line :
         index_.resume(path, st_.zstd ? index::Compression::Zstd : index::Compression::None,
                       st_.file_offset)) {
        const bool error = line.rfind("error: ", 0) == 0;
        const std::string text =
            fmt::format("stream {}: index: {}", id_, error ? line.substr(7) : line);
        if (log)
            log->push_back(error ? "error: " + text : text);
        else if (error)
            log_error("{}", text);
        else
            log_info("{}", text);
    }
}

void Stream::index_committed(uint64_t before, uint64_t batch_bytes) {
    // The data is committed whatever happens to its index: a failure is
    // logged (once until it succeeds again) and the records are retried.
    if (index_.commit(before, st_.file_offset, batch_bytes)) {
        if (index_failing_) log_info("stream {}: index writes succeed again", id_);
        index_failing_ = false;
    } else if (!index_failing_) {
        index_failing_ = true;
        log_warning("stream {}: {}; queries read the unindexed part of the file in full", id_,
                    index_.error());
    }
}

void Stream::close_file() {
    out_.close();
    index_.close();
}

bool Stream::rotate() {
    // The file ends with its interfaces' latest counters, written into
    // NAME.part before it gets its final name (in a group they were
    // committed and confirmed already: rotation_waits()).
    append_file_statistics();
    if (!commit() || !finish_current(nullptr)) return false;
    return open_new_file();
}

bool Stream::maybe_rotate_by_time(uint64_t wall) {
    if (!set_.rotate_ns || st_.file().empty() || st_.interface_count == 0) return true;
    if (group_ && (uncommitted() || saved_.pending)) return true;  // after the commit
    if (wall < rotation_due(st_.file_created_ns, set_.rotate_ns)) return true;
    // The file ends with its interfaces' latest counters, its sender
    // connected or not. In a group that commit waits for the group's
    // confirmation (GroupSource renews the lease with it): finish_current()
    // leaves the file current until then, and a later call finishes it.
    append_file_statistics();
    if (!ws_.batch.empty() && !ensure_file()) return false;
    if (!commit()) return false;
    // The next file begins with the next frame, and is named by its time.
    return finish_current(nullptr);
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
