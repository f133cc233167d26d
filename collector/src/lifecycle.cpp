// The collector's files through their lives (files.hpp, on_rotate.hpp):
// what the event loop does for them besides serving connections.
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>
#include <unistd.h>

#include "sluice/collector/collector.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"

namespace sluice::collector {
namespace {

using report::log_error;
using report::log_warning;

constexpr uint64_t kRetentionIntervalNs = 1'000'000'000;
// At stop, how long waiting --on-rotate commands may take to start and end.
constexpr uint32_t kOnRotateDrainMs = 10'000;

}  // namespace

void Collector::open_files() {
    std::vector<std::string> warnings;
    std::vector<index::FileTemplate> templates =
        index::directory_templates(settings_.dir, &warnings);
    bool known = false;
    for (const index::FileTemplate& t : templates)
        known = known || t.text() == opt_.file_template.text();
    if (!known) templates.push_back(opt_.file_template);
    // Recorded before the first file gets a name from it: sluice-query and
    // later runs (with another template) find its files by it.
    std::string error;
    if (!index::record_template(settings_.dir, opt_.file_template, opt_.file_mode, &error))
        throw std::runtime_error(error + "; check that the output directory is writable");
    RetentionSettings r;
    r.keep_files = opt_.keep_files;
    r.max_age_ns = opt_.max_age_s * 1'000'000'000ull;
    r.max_disk = opt_.max_disk;
    r.min_free = opt_.min_free;
    files_ = std::make_unique<FileStore>(settings_.dir, std::move(templates), r, file_counters_);
    for (const std::string& w : files_->scan())
        warnings.push_back(w);
    for (const std::string& w : warnings)
        log_warning("{}", w);
    settings_.names = opt_.file_template;
    settings_.files = files_.get();
    if (!opt_.on_rotate.empty()) {
        char* real = ::realpath(settings_.dir.c_str(), nullptr);
        abs_dir_ = real ? real : settings_.dir;
        std::free(real);
        on_rotate_ = std::make_unique<RotateCommand>(opt_.on_rotate, opt_.on_rotate_jobs,
                                                     file_counters_);
        files_->on_finished([this](uint64_t stream, const std::string& path) {
            on_rotate_->add(stream, abs_dir_ + "/" + path);
        });
    }
}

void Collector::file_timers(uint64_t now) {
    if (on_rotate_) on_rotate_->poll();
    if (now >= next_retention_ns_) {
        files_->enforce(session::wall_ns());
        next_retention_ns_ = now + kRetentionIntervalNs;
    }
}

void Collector::finish_files() {
    // Every file complete under its final name, the limits kept once more,
    // then the commands of the last files.
    for (auto& [id, s] : streams_) {
        if (!s->finish_file())
            log_error("stream {}: cannot finish {}: {}; the next start finishes it", id,
                      s->current_path(), s->last_error());
    }
    files_->enforce(session::wall_ns());
    if (on_rotate_) on_rotate_->drain(kOnRotateDrainMs);
}

}  // namespace sluice::collector
