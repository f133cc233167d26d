// A stream's files: recovery at start, NAME.part while written, directories
// from the file template, rotation by size and on the clock, the finished
// file's rename and its index.
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

bool exists(const std::string& path) {
    return ::access(path.c_str(), F_OK) == 0;
}

std::string parent_of(const std::string& path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

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

}  // namespace sluice::collector
