#include "sluice/collector/collector.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "group_source.hpp"
#include "handler.hpp"
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/http/server.hpp"
#include "sluice/rdma/listener.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/tcp/listener.hpp"

namespace sluice::collector {
namespace {

using report::log_error;
using report::log_info;
using report::log_line;
using report::log_warning;

constexpr uint64_t kTagListener = 0;
constexpr uint64_t kTagStop = 1;
constexpr uint64_t kTagReload = 2;
constexpr uint64_t kTimerNs = 100'000'000;  // timeouts and rotation checks

void make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
        throw std::runtime_error(
            fmt::format("cannot create directory {}: {}; check the path and "
                        "its permissions",
                        path, std::strerror(errno)));
    }
}

}  // namespace

Collector::Fd& Collector::Fd::operator=(Fd&& o) noexcept {
    if (this != &o) {
        reset();
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

void Collector::Fd::reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

Collector::Collector(const CollectorOptions& options) : opt_(options) {
    if (opt_.out_dir.empty()) throw std::invalid_argument("--out DIR is required");
    settings_.dir = opt_.out_dir;
    while (settings_.dir.size() > 1 && settings_.dir.back() == '/')
        settings_.dir.pop_back();
    settings_.compression = opt_.compression;
    settings_.rotate_bytes = opt_.rotate_bytes;
    settings_.rotate_ns = opt_.rotate_seconds * 1'000'000'000ull;
    settings_.sync = opt_.sync;
    settings_.index = opt_.index;
    settings_.application = "sluice-collector " SLUICE_VERSION;
    settings_.file_mode = opt_.file_mode;
    if (opt_.compression == Compression::Zstd)
        zstd_ = std::make_unique<ZstdCompressor>(opt_.zstd_level);
    ws_.zstd = zstd_.get();

    const bool group = !opt_.group.servers.empty();
    const session::ResolvedAddress addr = session::resolve(opt_.listen, true);
    const bool client_certificates =
        tcp::tls_enabled(opt_.tls, tcp::TlsRole::Server) && !opt_.tls.ca.empty();
    if (!group && !session::is_loopback(addr) && !opt_.has_keys() && !client_certificates) {
        throw std::invalid_argument(fmt::format(
            "listening on {} (not loopback) needs --key-file, or TLS with client certificates "
            "(--tls-cert, --tls-key, --tls-ca): without either, anyone who reaches the port "
            "could write captures here. Give both ends the same key file, or listen on "
            "127.0.0.1",
            opt_.listen.to_string()));
    }
    if (tcp::tls_enabled(opt_.tls, tcp::TlsRole::Server) &&
        opt_.listen.transport == session::Transport::Rdma) {
        throw std::invalid_argument("--tls-cert is for tcp:// only: RDMA has no encryption");
    }

    check_memory_budget();
    raise_open_files_limit();
    lock_output_dir();
    open_files();
    // Recover every stream that has state: files are cut back to their
    // committed size now, whether or not the stream's sender comes back.
    recover_streams();

    handler_ = std::make_unique<StreamHandler>(*this);
    int listener_fd = -1;
    if (group) {
        group_ = std::make_unique<GroupSource>(*this, *handler_, opt_.group);
    } else {
        for (const auto& [id, s] : streams_) {
            if (s->pending())
                throw std::runtime_error(fmt::format(
                    "stream {}'s last commit awaits the confirmation of the collector group "
                    "this directory belonged to: run sluice-collector on it once with that "
                    "group's --source and --group",
                    id));
        }
    }
    if (group) {
        // No listener: the group source is polled by run().
    } else if (opt_.listen.transport == session::Transport::Rdma) {
        rdma::ListenerConfig lc;
        lc.host = opt_.listen.host;
        lc.port = opt_.listen.port;
        lc.keys = opt_.keys;
        lc.slot_bytes = opt_.rdma_slot_bytes;
        lc.slot_count = opt_.rdma_slots;
        lc.handshake_timeout_ms = handshake_timeout_ms();
        lc.max_frame_bytes = opt_.max_frame_bytes;
        lc.max_pending = opt_.max_pending;
        lc.max_pending_per_source = opt_.max_pending_per_source;
        lc.max_memory = opt_.max_memory;
        rdma_ = std::make_unique<rdma::RdmaListener>(lc, *handler_);
        port_ = rdma_->port();
        listener_fd = rdma_->fd();
    } else {
        tcp::ListenerConfig lc;
        lc.listen = opt_.listen;
        lc.keys = opt_.keys;
        lc.max_frame_bytes = opt_.max_frame_bytes;
        lc.handshake_timeout_ms = handshake_timeout_ms();
        lc.idle_timeout_ms = opt_.peer_timeout_ms;
        lc.max_connections = opt_.max_connections;
        lc.max_pending = opt_.max_pending;
        lc.max_pending_per_source = opt_.max_pending_per_source;
        lc.tls = opt_.tls;
        lc.max_memory = opt_.max_memory;
        tcp_ = std::make_unique<tcp::TcpListener>(lc, *handler_);
        port_ = tcp_->port();
        listener_fd = tcp_->fd();
    }

    stop_fd_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    reload_fd_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    epoll_fd_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (stop_fd_.get() < 0 || reload_fd_.get() < 0 || epoll_fd_.get() < 0)
        throw std::runtime_error(fmt::format("eventfd/epoll: {}", std::strerror(errno)));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagListener;
    if (listener_fd >= 0) ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listener_fd, &ev);
    ev.data.u64 = kTagStop;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, stop_fd_.get(), &ev);
    ev.data.u64 = kTagReload;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, reload_fd_.get(), &ev);
    start_http();
}

void Collector::check_memory_budget() const {
    const bool rdma = opt_.listen.transport == session::Transport::Rdma;
    const uint64_t one = rdma ? uint64_t{opt_.rdma_slot_bytes} * opt_.rdma_slots
                              : uint64_t{opt_.max_frame_bytes} + (2u << 20);
    if (opt_.max_memory < one) {
        throw std::invalid_argument(
            rdma ? fmt::format("--max-memory {} is less than one connection's ring ({} bytes: "
                               "--rdma-slots x --rdma-slot-bytes): raise it",
                               opt_.max_memory, one)
                 : fmt::format("--max-memory {} is less than one frame (--max-frame-bytes {}) "
                               "and 2 MiB of reading room: raise it to {} at least",
                               opt_.max_memory, opt_.max_frame_bytes, one));
    }
}

void Collector::raise_open_files_limit() {
    // Open streams hold up to three descriptors (state, file, index), each
    // connection one or more: take the hard limit, and say when even that
    // is short of what the limits allow.
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
    const uint64_t need =
        3ull * opt_.max_streams + 2ull * opt_.max_connections + opt_.max_pending + 64;
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < need) {
        log_warning(
            "the open files limit is {} and --max-streams {} with --max-connections {} may need "
            "{}: raise it (LimitNOFILE= in the unit, ulimit -n) or lower those limits; beyond "
            "it, a stream that cannot open its file drops its connection (dropped_storage)",
            r.rlim_cur, opt_.max_streams, opt_.max_connections, need);
    }
}

uint32_t Collector::handshake_timeout_ms() const {
    return opt_.handshake_timeout_ms ? opt_.handshake_timeout_ms
                                     : std::min<uint32_t>(5000, opt_.peer_timeout_ms);
}

void Collector::lock_output_dir() {
    make_dir(settings_.dir);
    make_dir(settings_.dir + "/.sluice");
    const std::string lock = settings_.dir + "/.sluice/lock";
    lock_fd_ = Fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (lock_fd_.get() < 0)
        throw std::runtime_error(fmt::format("cannot open {}: {}", lock, std::strerror(errno)));
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = {};
        const ssize_t n = ::pread(lock_fd_.get(), pid, sizeof pid - 1, 0);
        throw std::runtime_error(fmt::format(
            "another sluice-collector{} writes to {}: stop it, or choose another --out",
            n > 0 ? fmt::format(" (pid {})", std::string_view(pid, std::strcspn(pid, "\n"))) : "",
            settings_.dir));
    }
    const std::string pid = fmt::format("{}\n", ::getpid());
    if (::ftruncate(lock_fd_.get(), 0) != 0 ||
        ::pwrite(lock_fd_.get(), pid.data(), pid.size(), 0) < 0) {
        // The lock holds; only the pid shown to a second collector is missing.
    }
}

void Collector::recover_streams() {
    DIR* d = ::opendir((settings_.dir + "/.sluice").c_str());
    if (!d) return;
    std::vector<uint64_t> ids;
    while (const dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n.substr(0, 7) != "stream-" || n.size() < 14 || n.substr(n.size() - 6) != ".state")
            continue;
        n = n.substr(7, n.size() - 13);
        uint64_t id = 0;
        const auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), id);
        if (ec == std::errc() && p == n.data() + n.size()) ids.push_back(id);
    }
    ::closedir(d);
    std::sort(ids.begin(), ids.end());
    // Each is recovered (its file cut back to what was committed) and closed
    // again: only streams with a sender stay open, so a directory of many
    // streams holds no descriptors for them.
    for (uint64_t id : ids) {
        stream(id);
        retire(id);
    }
}

// The HTTP listener's threads and the listeners go before the streams and
// the handler they read or call.
Collector::~Collector() {
    stop_http();
    group_.reset();
    rdma_.reset();
    tcp_.reset();
}

void Collector::request_stop() {
    const uint64_t one = 1;
    const ssize_t n = ::write(stop_fd_.get(), &one, sizeof one);
    (void)n;  // a full eventfd counter already means "stop"
}

Stream& Collector::stream(uint64_t id) {
    auto it = streams_.find(id);
    if (it != streams_.end()) return *it->second;
    auto s = std::make_unique<Stream>(id, settings_, ws_);
    s->idle_since_ns = session::monotonic_ns();
    const auto known = retired_.find(id);
    for (const std::string& line : s->recover()) {
        if (line.rfind("error: ", 0) == 0)
            log_error("{}", line.substr(7));
        else if (line.rfind("warning: ", 0) == 0)
            log_warning("{}", line.substr(9));
        else
            log_info("{}", line);
    }
    if (known != retired_.end()) {
        // Opened again: its state is on disk as it was left when it closed.
        s->carry_over(known->second);
        retired_.erase(known);
    } else if (s->saved().session_id != 0) {
        log_info("stream {}: state recovered: next sequence {}, file {}", id,
                 s->saved().next_sequence,
                 s->current_path().empty() ? "(none)" : s->current_path());
    }
    return *streams_.emplace(id, std::move(s)).first->second;
}

Stream* Collector::find_stream(uint64_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
}

std::optional<session::ResumeTicket> Collector::resume_ticket(uint64_t id,
                                                              uint64_t session_id) const {
    if (auto it = streams_.find(id); it != streams_.end())
        return it->second->resume_ticket(session_id);
    if (auto it = retired_.find(id); it != retired_.end())
        return it->second.resume_ticket(session_id);
    return std::nullopt;
}

bool Collector::make_room_for_stream() {
    if (streams_.size() < opt_.max_streams) return true;
    const Stream* idlest = nullptr;
    for (const auto& [id, s] : streams_) {
        if (s->connection || s->dirty()) continue;
        if (!idlest || s->idle_since_ns < idlest->idle_since_ns) idlest = s.get();
    }
    if (!idlest) return false;
    retire(idlest->id());
    counters_.streams_retired.inc();
    return true;
}

void Collector::retire(uint64_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end() || it->second->connection || it->second->dirty()) return;
    // Its file is finished: consumers get it now, and a sender that returns
    // begins the next one.
    if (!it->second->finish_file())
        log_error("stream {}: cannot finish {}: {}; the next start finishes it", id,
                  it->second->current_path(), it->second->last_error());
    it->second->close_file();
    retired_[id] = it->second->record();
    streams_.erase(it);
}

void Collector::retire_idle(uint64_t now) {
    if (!opt_.stream_idle_s) return;
    const uint64_t idle_ns = uint64_t{opt_.stream_idle_s} * 1'000'000'000;
    std::vector<uint64_t> idle;
    for (const auto& [id, s] : streams_)
        if (!s->connection && !s->dirty() && now - s->idle_since_ns >= idle_ns) idle.push_back(id);
    for (uint64_t id : idle) {
        retire(id);
        counters_.streams_retired.inc();
        log_info(
            "stream {}: closed after {} s without a sender (its state stays; a sender that "
            "returns reopens it)",
            id, opt_.stream_idle_s);
    }
}

std::vector<StreamRecord> Collector::stream_records() const {
    std::vector<StreamRecord> out;
    out.reserve(streams_.size() + retired_.size());
    for (const auto& [id, s] : streams_)
        out.push_back(s->record());
    for (const auto& [id, r] : retired_)
        out.push_back(r);
    std::sort(out.begin(), out.end(),
              [](const StreamRecord& a, const StreamRecord& b) { return a.id < b.id; });
    return out;
}

int Collector::run() {
    started_ns_ = session::monotonic_ns();
    last_stats_ns_ = started_ns_;
    next_timer_ns_ = started_ns_ + kTimerNs;
    next_stats_ns_ =
        opt_.stats_interval_s ? started_ns_ + opt_.stats_interval_s * 1'000'000'000ull : UINT64_MAX;
    if (group_) {
        run_group();
    } else {
        const bool tls = tcp::tls_enabled(opt_.tls, tcp::TlsRole::Server);
        log_info("listening on {}{} ({}{}), writing to {}{}{}", rdma_ ? "rdma://" : "",
                 opt_.listen.host + ":" + std::to_string(port_),
                 !opt_.has_keys()     ? std::string("no key")
                 : opt_.keys->named() ? fmt::format("{} named keys", opt_.keys->size())
                                      : std::string("key required"),
                 !tls                  ? ""
                 : opt_.tls.ca.empty() ? ", TLS"
                                       : ", TLS with client certificates",
                 settings_.dir, opt_.compression == Compression::Zstd ? " (zstd)" : "",
                 opt_.sync ? " (sync)" : "");
    }
    std::array<epoll_event, 8> events;
    while (!group_ &&
           !stopping_.load(std::memory_order_relaxed)) {  // relaxed: set and read by this thread
        uint64_t now = session::monotonic_ns();
        const uint64_t wait_ns = next_timer_ns_ > now ? next_timer_ns_ - now : 0;
        const int n = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()),
                                   static_cast<int>(wait_ns / 1'000'000) + 1);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: {}", std::strerror(errno));
            break;
        }
        now = session::monotonic_ns();
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == kTagStop) {
                stopping_.store(true, std::memory_order_relaxed);
            } else if (events[i].data.u64 == kTagReload) {
                uint64_t count = 0;
                if (::read(reload_fd_.get(), &count, sizeof count) == sizeof count) reload();
            } else if (tcp_) {
                tcp_->poll(now);
            } else {
                rdma_->poll(now);
            }
        }
        if (now >= next_timer_ns_) {
            timers(now);
            next_timer_ns_ = now + kTimerNs;
        }
    }

    if (hooks_.stopping) hooks_.stopping();
    stop_http();
    // Stop: every batch is committed and acknowledged already (each turn
    // ends with a commit); tell the senders why the connection ends, or hand
    // the group's streams back to it.
    if (group_) group_->stop();
    const std::string why = "sluice-collector is stopping; reconnect when it is back";
    if (rdma_) rdma_->close_all(why);
    if (tcp_) tcp_->close_all(why);
    finish_files();
    log_line(summary_text());
    if (!opt_.summary_json.empty()) {
        const std::string tmp = opt_.summary_json + ".tmp";
        if (FILE* f = std::fopen(tmp.c_str(), "w")) {
            const std::string j = summary_json();
            std::fwrite(j.data(), 1, j.size(), f);
            std::fclose(f);
            std::rename(tmp.c_str(), opt_.summary_json.c_str());
        } else {
            log_error("cannot write {}: {}", opt_.summary_json, std::strerror(errno));
        }
    }
    return 0;
}

void Collector::run_group() {
    log_info("writing to {}{}{} as a member of collector group {}", settings_.dir,
             opt_.compression == Compression::Zstd ? " (zstd)" : "", opt_.sync ? " (sync)" : "",
             opt_.group.group);
    std::array<epoll_event, 8> events;
    while (!stopping_.load(std::memory_order_relaxed)) {  // relaxed: set and read by this thread
        uint64_t now = session::monotonic_ns();
        const bool work = group_->poll(now);
        // Idle: wait a little for a stop request, then look again.
        const int n = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()),
                                   work ? 0 : 5);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: {}", std::strerror(errno));
            break;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == kTagStop) stopping_.store(true, std::memory_order_relaxed);
            uint64_t count = 0;
            if (events[i].data.u64 == kTagReload &&
                ::read(reload_fd_.get(), &count, sizeof count) == sizeof count)
                reload();
        }
        now = session::monotonic_ns();
        if (now >= next_timer_ns_) {
            timers(now);
            next_timer_ns_ = now + kTimerNs;
        }
    }
}

void Collector::timers(uint64_t now) {
    if (tcp_) tcp_->timers(now);
    if (now >= next_retire_check_ns_) {
        retire_idle(now);
        next_retire_check_ns_ = now + 1'000'000'000;
    }
    if (settings_.rotate_ns) {
        const uint64_t wall = session::wall_ns();
        for (auto& [id, s] : streams_) {
            if (!s->maybe_rotate_by_time(wall) && s->connection) handler_->drop_for_storage(*s);
        }
    }
    if (rdma_) rdma_->timers(now);
    file_timers(now);
    if (now >= next_stats_ns_) {
        stats_line(now);
        next_stats_ns_ = now + opt_.stats_interval_s * 1'000'000'000ull;
    }
    if (http_) publish_streams();
    if (hooks_.tick) hooks_.tick();
}

}  // namespace sluice::collector
