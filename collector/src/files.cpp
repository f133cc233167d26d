#include "sluice/collector/files.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "sluice/index/format.hpp"
#include "sluice/report/log.hpp"

namespace sluice::collector {
namespace {

using report::log_info;
using report::log_warning;

std::string human(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string utc(uint64_t ns) {
    const time_t secs = static_cast<time_t>(ns / 1'000'000'000u);
    tm t{};
    ::gmtime_r(&secs, &t);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
    return buf;
}

std::string duration(uint64_t ns) {
    const uint64_t s = ns / 1'000'000'000u;
    if (s % 86400 == 0) return fmt::format("{}d", s / 86400);
    if (s % 3600 == 0) return fmt::format("{}h", s / 3600);
    if (s % 60 == 0) return fmt::format("{}m", s / 60);
    return fmt::format("{}s", s);
}

std::string strip_part(const std::string& path) {
    return path.ends_with(index::kPartSuffix)
               ? path.substr(0, path.size() - index::kPartSuffix.size())
               : path;
}

}  // namespace

FileStore::FileStore(std::string dir, std::vector<index::FileTemplate> templates,
                     RetentionSettings r, FileCounters& counters)
    : dir_(std::move(dir)), templates_(std::move(templates)), r_(r), k_(counters) {
    free_space_ = [this]() -> std::optional<uint64_t> {
        struct statvfs v {};
        if (::statvfs(dir_.c_str(), &v) != 0) return std::nullopt;
        return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
    };
}

std::vector<std::string> FileStore::scan() {
    std::vector<std::string> warnings;
    std::vector<index::FoundFile> found;
    std::string error;
    if (!index::find_data_files(dir_, templates_, found, &warnings, &error))
        warnings.push_back(error);
    for (const index::FoundFile& f : found) {
        Entry e;
        e.id = f.id;
        e.part = f.part;
        e.compression = f.compression;
        measure(f.path, e);
        add(f.path, e);
    }
    return warnings;
}

void FileStore::measure(const std::string& path, Entry& e) const {
    const std::string full = dir_ + "/" + path;
    e.bytes = e.disk = 0;
    struct stat st {};
    if (::stat(full.c_str(), &st) == 0) {
        e.bytes += static_cast<uint64_t>(st.st_size);
        e.disk += static_cast<uint64_t>(st.st_blocks) * 512;
        e.written_ns = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1'000'000'000u +
                       static_cast<uint64_t>(st.st_mtim.tv_nsec);
    }
    if (::stat(index::index_path(full).c_str(), &st) == 0) {
        e.bytes += static_cast<uint64_t>(st.st_size);
        e.disk += static_cast<uint64_t>(st.st_blocks) * 512;
    }
}

void FileStore::add(const std::string& path, Entry e) {
    forget(path);
    auto& by_n = streams_[e.id.stream];
    // Being written and finished under one number (a rename the previous
    // run did not complete): the finished name stands for it.
    if (auto it = by_n.find(e.id.n); it == by_n.end() || !e.part) by_n[e.id.n] = path;
    if (!e.part) oldest_.emplace(e.written_ns, e.id.stream, e.id.n, path);
    bytes_ += e.bytes;
    entries_.emplace(path, e);
}

void FileStore::forget(const std::string& path) {
    auto it = entries_.find(path);
    if (it == entries_.end()) return;
    const Entry& e = it->second;
    if (!e.part) oldest_.erase({e.written_ns, e.id.stream, e.id.n, path});
    if (auto s = streams_.find(e.id.stream); s != streams_.end()) {
        if (auto n = s->second.find(e.id.n); n != s->second.end() && n->second == path)
            s->second.erase(n);
        if (s->second.empty()) streams_.erase(s);
    }
    bytes_ -= e.bytes;
    entries_.erase(it);
}

std::vector<index::FoundFile> FileStore::files_of(uint64_t stream) {
    std::vector<index::FoundFile> out;
    for (const auto& [path, e] : entries_)
        if (e.id.stream == stream) out.push_back({path, e.id, e.compression, e.part});
    return out;
}

void FileStore::created(uint64_t stream, const std::string& path) {
    Entry e;
    const std::string name = strip_part(path);
    for (const index::FileTemplate& t : templates_) {
        if (const auto d = index::split_data_name(name); d) {
            if (const auto id = t.match(d->stem)) {
                e.id = *id;
                e.compression = d->compression;
                break;
            }
        }
    }
    e.id.stream = stream;
    e.part = true;
    measure(path, e);
    add(path, e);
    enforce_keep(stream);
}

void FileStore::finished(uint64_t stream, const std::string& path) {
    Entry e;
    const std::string part = path + std::string(index::kPartSuffix);
    if (auto it = entries_.find(part); it != entries_.end()) {
        e = it->second;
        forget(part);
    } else if (const auto d = index::split_data_name(path)) {
        e.compression = d->compression;
        for (const index::FileTemplate& t : templates_)
            if (const auto id = t.match(d->stem)) {
                e.id = *id;
                break;
            }
    }
    e.id.stream = stream;
    e.part = false;
    measure(path, e);
    add(path, e);
    k_.files_finished.inc();
    if (on_finished_) on_finished_(stream, path);
    enforce_keep(stream);
}

void FileStore::removed(const std::string& path) {
    forget(path);
}

uint64_t FileStore::bytes() const {
    return bytes_;
}

bool FileStore::remove(const std::string& path, lockfree::Counter& reason, const std::string& why) {
    const auto it = entries_.find(path);
    if (it == entries_.end()) return false;
    const Entry e = it->second;
    forget(path);
    const std::string full = dir_ + "/" + path;
    if (::unlink(full.c_str()) != 0 && errno != ENOENT) {
        k_.delete_failures.inc();
        log_warning("retention: cannot delete {}: {}; it is left alone until the next start", full,
                    std::strerror(errno));
        return false;
    }
    ::unlink(index::index_path(full).c_str());
    reason.inc();
    k_.bytes_deleted.add(e.bytes);
    log_info("retention: deleted {} and its index ({}): {}", full, human(e.bytes), why);
    // Directories a template made, once empty (rmdir leaves any other).
    for (std::size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0;
         slash = path.rfind('/', slash - 1)) {
        if (::rmdir((dir_ + "/" + path.substr(0, slash)).c_str()) != 0) break;
    }
    return true;
}

void FileStore::enforce_keep(uint64_t stream) {
    if (!r_.keep_files) return;
    while (true) {
        const auto s = streams_.find(stream);
        if (s == streams_.end() || s->second.size() <= r_.keep_files) return;
        // The oldest finished one (by number); a file being written stays.
        std::string victim;
        for (const auto& [n, path] : s->second) {
            if (!entries_.at(path).part) {
                victim = path;
                break;
            }
        }
        if (victim.empty()) return;
        remove(victim, k_.files_deleted_keep,
               fmt::format("stream {} keeps its newest {} files (--keep)", stream, r_.keep_files));
    }
}

void FileStore::exhausted(bool now, const std::string& limit) {
    if (now && !exhausted_) {
        k_.retention_exhausted.inc();
        log_warning(
            "retention: {}, and no finished file is left to delete: only files being written "
            "remain. If the disk fills, writing stops and senders keep their frames until space "
            "returns; let files finish sooner (--rotate-size, --rotate-time) or give the "
            "collector more space",
            limit);
    } else if (!now && exhausted_) {
        log_info("retention: within its limits again");
    }
    exhausted_ = now;
}

void FileStore::enforce(uint64_t wall_ns) {
    if (!r_.max_age_ns && !r_.max_disk && !r_.min_free) return;
    // Files being written grow: measure them again.
    for (auto& [path, e] : entries_) {
        if (!e.part) continue;
        bytes_ -= e.bytes;
        measure(path, e);
        bytes_ += e.bytes;
    }
    if (r_.max_age_ns) {
        while (!oldest_.empty()) {
            const auto [written, stream, n, path] = *oldest_.begin();
            if (written + r_.max_age_ns > wall_ns) break;
            remove(path, k_.files_deleted_max_age,
                   fmt::format("last written {}, longer ago than --max-age {}", utc(written),
                               duration(r_.max_age_ns)));
        }
    }
    bool short_of_room = false;
    std::string limit;
    if (r_.max_disk) {
        while (bytes_ > r_.max_disk) {
            if (oldest_.empty()) {
                short_of_room = true;
                limit = fmt::format("the directory holds {}, more than --max-disk {}",
                                    human(bytes_), human(r_.max_disk));
                break;
            }
            const std::string path = std::get<3>(*oldest_.begin());
            remove(path, k_.files_deleted_max_disk,
                   fmt::format("the directory held {}, more than --max-disk {}", human(bytes_),
                               human(r_.max_disk)));
        }
    }
    if (r_.min_free && free_space_) {
        if (const auto free = free_space_()) {
            // What deleting frees is counted as it goes: some file systems
            // report freed space only later.
            uint64_t have = *free;
            while (have < r_.min_free) {
                if (oldest_.empty()) {
                    short_of_room = true;
                    limit = fmt::format("{} free, less than --min-free {}", human(have),
                                        human(r_.min_free));
                    break;
                }
                const std::string path = std::get<3>(*oldest_.begin());
                const uint64_t frees = entries_.at(path).disk;
                if (remove(path, k_.files_deleted_min_free,
                           fmt::format("{} free, less than --min-free {}", human(have),
                                       human(r_.min_free))))
                    have += frees;
            }
        }
    }
    exhausted(short_of_room, limit);
}

}  // namespace sluice::collector
