// The collector's files through their lives (files.hpp, on_rotate.hpp) and
// the SIGHUP reload of its keys and certificates: what the event loop does
// besides serving connections.
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>
#include <unistd.h>

#include "sluice/collector/collector.hpp"
#include "sluice/rdma/listener.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/tcp/listener.hpp"

namespace sluice::collector {
namespace {

using report::log_error;
using report::log_info;
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
        on_rotate_ =
            std::make_unique<RotateCommand>(opt_.on_rotate, opt_.on_rotate_jobs, file_counters_);
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

void Collector::request_reload() {
    const uint64_t one = 1;
    const ssize_t n = ::write(reload_fd_.get(), &one, sizeof one);
    (void)n;  // a full eventfd counter already means "reload"
}

void Collector::reload() {
    bool read = false, refused = false;
    if (!opt_.key_file.empty()) {
        try {
            auto keys = std::make_shared<const session::Keyring>(
                session::Keyring::read_file(opt_.key_file));
            opt_.keys = keys;
            if (tcp_) tcp_->set_keys(keys);
            if (rdma_) rdma_->set_keys(keys);
            read = true;
            log_info(
                "SIGHUP: {} read again: {}; new connections prove these, established ones go on",
                opt_.key_file,
                keys->named() ? fmt::format("{} named keys", keys->size())
                              : std::string("one key"));
        } catch (const std::exception& e) {
            refused = true;
            log_error("SIGHUP: {}; the keys in use stay: fix the file and send SIGHUP again",
                      e.what());
        }
    }
    if (tcp_ && tcp::tls_enabled(opt_.tls, tcp::TlsRole::Server)) {
        try {
            tcp_->reload_tls();
            read = true;
            log_info("SIGHUP: TLS certificate {}, key {}{} read again; new connections use them",
                     opt_.tls.cert, opt_.tls.key,
                     opt_.tls.ca.empty() ? "" : fmt::format(" and CA {}", opt_.tls.ca));
        } catch (const std::exception& e) {
            refused = true;
            log_error(
                "SIGHUP: {}; the TLS certificate and key in use stay: fix the files and send "
                "SIGHUP again",
                e.what());
        }
    }
    if (refused)
        counters_.reload_failures.inc();
    else if (read)
        counters_.reloads.inc();
    else
        log_info("SIGHUP: nothing to read again (no --key-file, no TLS)");
}

}  // namespace sluice::collector
