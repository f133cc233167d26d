// The capture files of a collector's directory through their lives: found
// at start, created (NAME.part), finished (renamed to NAME; --on-rotate is
// told), and deleted, each with its index, to stay within the retention
// limits (docs/operations.md, "Retention"):
//
//   --keep N        per stream, the newest N files (the one being written
//                   included); checked as files are created and finished
//   --max-age D     finished files whose last write is older than D
//   --max-disk S    the directory's capture files and indexes together at
//                   most S: the oldest finished files go, across streams
//   --min-free S    at least S free on the file system: the same
//
// A file being written is never deleted. The limits are checked every
// second (enforce()), after each start, and once more when the collector
// stops, so between checks the directory may exceed --max-disk (or fall
// below --min-free) by what arrives in a second. Only names a template
// gives (index/file_name.hpp) are ever deleted: an operator's own files in
// the directory are neither counted nor touched.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "sluice/collector/stream.hpp"
#include "sluice/index/file_name.hpp"
#include "sluice/lockfree/counter.hpp"

namespace sluice::collector {

struct RetentionSettings {
    uint32_t keep_files = 0;  // per stream; 0: no limit
    uint64_t max_age_ns = 0;  // 0: no limit
    uint64_t max_disk = 0;    // bytes; 0: no limit
    uint64_t min_free = 0;    // bytes; 0: no limit
    bool any() const { return keep_files || max_age_ns || max_disk || min_free; }
};

#define SLUICE_FILE_COUNTERS(_)                                                               \
    _(files_finished,                                                                         \
      "Capture files completed and renamed from NAME.part to NAME (rotation, the end of a "   \
      "--rotate-time period, a stream closed without a sender, stop, or left by the "         \
      "previous run).")                                                                       \
    _(files_deleted_keep,                                                                     \
      "Finished files deleted because their stream had more than --keep files.")              \
    _(files_deleted_max_age,                                                                  \
      "Finished files deleted because their last write was longer "                           \
      "ago than --max-age.")                                                                  \
    _(files_deleted_max_disk,                                                                 \
      "Finished files deleted, oldest first across streams, because the directory's "         \
      "capture files and indexes took more than --max-disk.")                                 \
    _(files_deleted_min_free,                                                                 \
      "Finished files deleted, oldest first across streams, because the file system had "     \
      "less than --min-free free.")                                                           \
    _(bytes_deleted, "Bytes of capture files and indexes that retention deleted.")            \
    _(retention_exhausted,                                                                    \
      "Times --max-disk or --min-free stayed exceeded with no finished file left to "         \
      "delete: only files being written remain. When the disk fills, writing stops and "      \
      "senders keep their frames until space returns; let files finish sooner (lower "        \
      "--rotate-size or --rotate-time) or give the collector more space.")                    \
    _(delete_failures,                                                                        \
      "Files retention could not delete (see the log: permissions, a read-only file "         \
      "system); they are not tried again before the next start.")                             \
    _(on_rotate_started, "--on-rotate commands started.")                                     \
    _(on_rotate_failed,                                                                       \
      "--on-rotate commands that could not be started or did not exit with status 0; the "    \
      "log names the file and the status.")                                                   \
    _(on_rotate_dropped,                                                                      \
      "Finished files whose --on-rotate command was never started: more were waiting than "   \
      "the queue holds (commands slower than files finish), or the collector stopped before " \
      "their turn. The log names each file.")
SLUICE_COUNTER_BLOCK(FileCounters, SLUICE_FILE_COUNTERS);

class FileStore final : public FileEvents {
  public:
    // `templates`: those the directory's files may be named with (its
    // recorded ones and the current one).
    FileStore(std::string dir, std::vector<index::FileTemplate> templates, RetentionSettings r,
              FileCounters& counters);

    // Finds every file below the directory. Returns warnings for the log.
    std::vector<std::string> scan();

    // Told of each finished file (its path below the directory): --on-rotate.
    void on_finished(std::function<void(uint64_t stream, const std::string& path)> f) {
        on_finished_ = std::move(f);
    }
    // The free bytes of the file system (statvfs); replaced by tests.
    void free_space(std::function<std::optional<uint64_t>()> f) { free_space_ = std::move(f); }

    // FileEvents (the streams).
    std::vector<index::FoundFile> files_of(uint64_t stream) override;
    void created(uint64_t stream, const std::string& path) override;
    void finished(uint64_t stream, const std::string& path) override;
    void removed(const std::string& path) override;

    // Deletes what --max-age, --max-disk and --min-free say must go, oldest
    // first. `wall_ns`: now.
    void enforce(uint64_t wall_ns);

    // Bytes of the files and indexes known, as of the last enforce() (files
    // being written) or their finish (the others).
    uint64_t bytes() const;
    std::size_t files() const { return entries_.size(); }

  private:
    struct Entry {
        index::FileId id;
        bool part = false;
        uint64_t bytes = 0;       // data and index, as their sizes say
        uint64_t disk = 0;        // data and index, as allocated: what deleting frees
        uint64_t written_ns = 0;  // the data's last write (finished files)
        index::Compression compression = index::Compression::None;
    };
    using Age = std::tuple<uint64_t, uint64_t, uint64_t, std::string>;  // written, stream, n, path

    void measure(const std::string& path, Entry& e) const;
    void add(const std::string& path, Entry e);
    void forget(const std::string& path);
    // Deletes a finished file and its index; false when it could not.
    bool remove(const std::string& path, lockfree::Counter& reason, const std::string& why);
    void enforce_keep(uint64_t stream);
    void exhausted(bool now, const std::string& limit);

    std::string dir_;
    std::vector<index::FileTemplate> templates_;
    RetentionSettings r_;
    FileCounters& k_;
    std::map<std::string, Entry> entries_;                         // by path
    std::map<uint64_t, std::map<uint64_t, std::string>> streams_;  // stream -> n -> path
    std::set<Age> oldest_;                                         // finished files
    uint64_t bytes_ = 0;
    bool exhausted_ = false;  // a limit is exceeded with nothing left to delete (logged once)
    std::function<void(uint64_t, const std::string&)> on_finished_;
    std::function<std::optional<uint64_t>()> free_space_;
};

}  // namespace sluice::collector
