#include "sluice/collector/server.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "rdma_bridge.hpp"
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/collector/log.hpp"
#include "sluice/tcp/auth.hpp"
#include "sluice/tcp/receiver.hpp"
#include "sluice/tcp/sender.hpp"

namespace sluice::collector {

struct Connection {
    Connection(uint64_t id_, int fd_, std::string peer_, std::span<const std::byte> key)
        : id(id_), fd(fd_), peer(std::move(peer_)), session(key) {}
    uint64_t id;
    int fd;
    std::string peer;
    tcp::ReceiverSession session;
    ByteBuffer in;
    std::size_t in_off = 0;  // unparsed bytes: in[in_off, in.size())
    ByteBuffer out;
    std::size_t out_off = 0;
    bool want_write = false;
    Stream* stream = nullptr;
    uint64_t accepted_ns = 0;
    uint64_t last_rx_ns = 0;
    uint32_t heartbeat_ms = 0;
    bool closed = false;
    uint64_t gap_logs = 0;

    std::string name() const {
        return stream ? fmt::format("stream {} from {}", stream->id(), peer)
                      : fmt::format("connection from {}", peer);
    }
};

namespace {

constexpr uint64_t kTagListener = 0;
constexpr uint64_t kTagStop = 1;
constexpr uint64_t kTagRdma = UINT64_MAX;         // TCP connections count up from 2
constexpr uint64_t kTimerNs = 100'000'000;        // timeouts and rotation checks
constexpr std::size_t kRecvChunk = 1u << 20;      // bytes asked of one recv()
constexpr std::size_t kTurnBudget = 8u << 20;     // bytes one connection reads per turn
constexpr std::size_t kMaxPendingOut = 1u << 20;  // unsent replies: the peer does not read
constexpr uint64_t kMaxGapLogsPerConnection = 10;

std::string si(double v) {
    const char* units[] = {"", "K", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4)
        v /= 1000, ++u;
    return u == 0 ? fmt::format("{:.0f} ", v) : fmt::format("{:.2f} {}", v, units[u]);
}

uint64_t wall_now_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

void make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        throw std::runtime_error(
            fmt::format("cannot create directory {}: {}; check the path and "
                        "its permissions",
                        path, std::strerror(errno)));
    }
}

}  // namespace

std::string too_many_interfaces(uint64_t sequence) {
    return fmt::format(
        "frame {} names more than {} (port, queue) interfaces, more than a pcapng file of the "
        "collector holds: it can never be written",
        sequence, StreamState::kMaxInterfaces);
}

namespace {

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

Collector::Collector(const CollectorOptions& options)
    : opt_(options),
      reader_(
          wire::ReaderLimits{options.max_frame_bytes, options.max_frame_bytes, wire::kMaxSnaplen}) {
    if (opt_.out_dir.empty()) throw std::invalid_argument("--out DIR is required");
    settings_.dir = opt_.out_dir;
    while (settings_.dir.size() > 1 && settings_.dir.back() == '/')
        settings_.dir.pop_back();
    settings_.compression = opt_.compression;
    settings_.rotate_bytes = opt_.rotate_bytes;
    settings_.rotate_ns = opt_.rotate_seconds * 1'000'000'000ull;
    settings_.keep_files = opt_.keep_files;
    settings_.sync = opt_.sync;
    settings_.index = opt_.index;
    settings_.application = "sluice-collector " SLUICE_VERSION;
    if (opt_.compression == Compression::Zstd)
        zstd_ = std::make_unique<ZstdCompressor>(opt_.zstd_level);
    ws_.zstd = zstd_.get();
    scratch_.resize(opt_.max_frame_bytes);

    const tcp::ResolvedAddress addr = tcp::resolve(opt_.listen, true);
    if (!tcp::is_loopback(addr) && opt_.key.empty()) {
        throw std::invalid_argument(fmt::format(
            "listening on {} (not loopback) needs --key-file: without a key anyone who reaches "
            "the port could write captures here. Give both ends the same key file, or listen on "
            "127.0.0.1",
            opt_.listen.to_string()));
    }

    make_dir(settings_.dir);
    make_dir(settings_.dir + "/.sluice");
    const std::string lock = settings_.dir + "/.sluice/lock";
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0)
        throw std::runtime_error(fmt::format("cannot open {}: {}", lock, std::strerror(errno)));
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = {};
        const ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
        throw std::runtime_error(fmt::format(
            "another sluice-collector{} writes to {}: stop it, or choose another --out",
            n > 0 ? fmt::format(" (pid {})", std::string_view(pid, std::strcspn(pid, "\n"))) : "",
            settings_.dir));
    }
    const std::string pid = fmt::format("{}\n", ::getpid());
    if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
        // The lock holds; only the pid shown to a second collector is missing.
    }

    // Recover every stream that has state: files are cut back to their
    // committed size now, whether or not the stream's sender comes back.
    if (DIR* d = ::opendir((settings_.dir + "/.sluice").c_str())) {
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
        for (uint64_t id : ids)
            stream(id);
    }

    if (opt_.rdma) {
        bridge_ = std::make_unique<RdmaBridge>(*this);
        rdma::ListenerConfig lc;
        lc.host = opt_.listen.host;
        lc.port = opt_.listen.port;
        lc.key = opt_.key;
        lc.slot_bytes = opt_.rdma_slot_bytes;
        lc.slot_count = opt_.rdma_slots;
        lc.handshake_timeout_ms = opt_.peer_timeout_ms;
        rdma_ = std::make_unique<rdma::RdmaListener>(lc, *bridge_);
        bridge_->listener = rdma_.get();
        port_ = rdma_->port();
    } else {
        listen_tcp(addr);
    }

    stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (stop_fd_ < 0 || epoll_fd_ < 0)
        throw std::runtime_error(fmt::format("eventfd/epoll: {}", std::strerror(errno)));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = opt_.rdma ? kTagRdma : kTagListener;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, opt_.rdma ? rdma_->fd() : listen_fd_, &ev);
    ev.data.u64 = kTagStop;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev);
}

void Collector::listen_tcp(const tcp::ResolvedAddress& addr) {
    listen_fd_ = ::socket(addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error(fmt::format("socket(): {}", std::strerror(errno)));
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
        const int e = errno;
        throw std::runtime_error(fmt::format(
            "cannot listen on {}: {}{}", opt_.listen.to_string(), std::strerror(e),
            e == EADDRINUSE ? " (another collector or program uses the port: stop it or choose "
                              "another --listen port)"
            : e == EADDRNOTAVAIL ? " (no local interface has that address)"
                                 : ""));
    }
    if (::listen(listen_fd_, 128) != 0)
        throw std::runtime_error(fmt::format("listen(): {}", std::strerror(errno)));
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
    port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

Collector::~Collector() {
    for (auto& [id, c] : conns_)
        if (!c->closed) ::close(c->fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void Collector::request_stop() {
    const uint64_t one = 1;
    const ssize_t n = ::write(stop_fd_, &one, sizeof one);
    (void)n;  // a full eventfd counter already means "stop"
}

Stream& Collector::stream(uint64_t id) {
    auto it = streams_.find(id);
    if (it != streams_.end()) return *it->second;
    auto s = std::make_unique<Stream>(id, settings_, ws_);
    for (const std::string& line : s->recover()) {
        if (line.rfind("error: ", 0) == 0)
            log_error("{}", line.substr(7));
        else if (line.rfind("warning: ", 0) == 0)
            log_warning("{}", line.substr(9));
        else
            log_info("{}", line);
    }
    if (s->saved().session_id != 0) {
        log_info("stream {}: state recovered: next sequence {}, file {}", id,
                 s->saved().next_sequence,
                 s->current_path().empty() ? "(none)" : s->current_path());
    }
    return *streams_.emplace(id, std::move(s)).first->second;
}

int Collector::run() {
    started_ns_ = tcp::monotonic_ns();
    last_stats_ns_ = started_ns_;
    next_timer_ns_ = started_ns_ + kTimerNs;
    next_stats_ns_ =
        opt_.stats_interval_s ? started_ns_ + opt_.stats_interval_s * 1'000'000'000ull : UINT64_MAX;
    log_info("listening on {}{} ({}), writing to {}{}{}", opt_.rdma ? "rdma://" : "",
             opt_.listen.host + ":" + std::to_string(port_),
             opt_.key.empty() ? "no key" : "key required", settings_.dir,
             opt_.compression == Compression::Zstd ? " (zstd)" : "", opt_.sync ? " (sync)" : "");
    std::array<epoll_event, 64> events;
    while (!stopping_.load(std::memory_order_relaxed)) {  // relaxed: set and read by this thread
        uint64_t now = tcp::monotonic_ns();
        const uint64_t wait_ns = next_timer_ns_ > now ? next_timer_ns_ - now : 0;
        const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                   static_cast<int>(wait_ns / 1'000'000) + 1);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: {}", std::strerror(errno));
            break;
        }
        now = tcp::monotonic_ns();
        for (int i = 0; i < n; ++i) {
            const uint64_t tag = events[i].data.u64;
            if (tag == kTagListener) {
                accept_connections(now);
            } else if (tag == kTagRdma) {
                rdma_->poll(now);
            } else if (tag == kTagStop) {
                stopping_.store(true, std::memory_order_relaxed);
            } else if (auto it = conns_.find(tag); it != conns_.end() && !it->second->closed) {
                Connection& c = *it->second;
                if (events[i].events & EPOLLOUT) flush(c);
                if (!c.closed && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    on_readable(c, now);
            }
        }
        reap();
        if (now >= next_timer_ns_) {
            timers(now);
            reap();
            next_timer_ns_ = now + kTimerNs;
        }
    }

    // Stop: every batch is committed and acknowledged already (each turn
    // ends with a commit); tell the senders why the connection ends.
    if (rdma_) rdma_->close_all("sluice-collector is stopping; reconnect when it is back");
    for (auto& [id, c] : conns_) {
        if (c->closed) continue;
        if (c->stream) send(*c, c->session.ack(c->stream->acknowledged()));
        send(*c, c->session.reject(tcp::RejectReason::ShuttingDown,
                                   "sluice-collector is stopping; reconnect when it is back"));
        close(*c, "");
    }
    reap();
    for (auto& [id, s] : streams_)
        s->close_file();
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

void Collector::accept_connections(uint64_t now) {
    for (;;) {
        sockaddr_storage a{};
        socklen_t len = sizeof a;
        const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            log_warning("accept: {}{}", std::strerror(errno),
                        errno == EMFILE || errno == ENFILE
                            ? " (raise the open files limit: ulimit -n)"
                            : "");
            return;
        }
        counters_.connections_accepted.inc();
        const std::string peer = tcp::format_address(reinterpret_cast<sockaddr*>(&a), len);
        const uint64_t id = ++next_conn_id_;
        auto c = std::make_unique<Connection>(id, fd, peer, opt_.key);
        c->accepted_ns = c->last_rx_ns = now;
        const int one = 1;
        // ACKs are small and the sender waits for them: no Nagle delay.
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Connection& ref = *c;
        conns_.emplace(id, std::move(c));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = id;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        if (conns_.size() > opt_.max_connections) {
            reject(ref, tcp::RejectReason::Busy, counters_.dropped_busy,
                   fmt::format("the collector serves its maximum of {} connections "
                               "(--max-connections)",
                               opt_.max_connections));
            continue;
        }
        tcp::Nonce nonce;
        if (!tcp::random_bytes(nonce)) {
            close(ref, "the system's random generator failed");
            continue;
        }
        ref.in.reserve(4096);
        send(ref, ref.session.challenge(nonce));
    }
}

void Collector::send(Connection& c, std::span<const std::byte> bytes) {
    if (c.closed || bytes.empty()) return;
    std::size_t done = 0;
    if (c.out.size() == c.out_off) {
        const ssize_t n = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) done = static_cast<std::size_t>(n);
    }
    if (done == bytes.size()) return;
    if (c.out.size() - c.out_off + bytes.size() - done > kMaxPendingOut) {
        close(c, "the peer reads nothing (its receive buffer is full): dropped");
        return;
    }
    c.out.append(bytes.data() + done, bytes.size() - done);
    if (!c.want_write) {
        c.want_write = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u64 = c.id;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
    }
}

void Collector::flush(Connection& c) {
    while (c.out_off < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            counters_.closed_by_peer.inc();
            close(c, fmt::format("{}: connection lost: {}", c.name(), std::strerror(errno)));
            return;
        }
        c.out_off += static_cast<std::size_t>(n);
    }
    c.out.clear();
    c.out_off = 0;
    if (c.want_write) {
        c.want_write = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = c.id;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
    }
}

void Collector::close(Connection& c, const std::string& why) {
    if (c.closed) return;
    if (!why.empty()) log_info("{}", why);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.closed = true;
    if (c.stream && c.stream->connection == &c) {
        c.stream->connection = nullptr;
        c.stream->close_file();
    }
    closed_.push_back(c.id);
}

void Collector::drop(Connection& c, tcp::Counter& counter, const std::string& why) {
    counter.inc();
    close(c, why);
}

void Collector::reject(Connection& c, tcp::RejectReason reason, tcp::Counter& counter,
                       const std::string& why) {
    send(c, c.session.reject(reason, why));
    drop(c, counter, fmt::format("{}: {}; connection dropped", c.name(), why));
}

void Collector::reap() {
    for (uint64_t id : closed_)
        conns_.erase(id);
    closed_.clear();
}

void Collector::on_readable(Connection& c, uint64_t now) {
    std::size_t budget = kTurnBudget;
    while (budget > 0 && !c.closed) {
        const bool streaming = c.session.state() == tcp::ReceiverState::Streaming;
        const std::size_t chunk = streaming ? kRecvChunk : 4096;
        if (c.in.capacity() - c.in.size() < chunk / 4) {
            // Move the unparsed tail to the front before growing.
            if (c.in_off) {
                c.in.consume(c.in_off);
                c.in_off = 0;
            }
            if (c.in.capacity() - c.in.size() < chunk / 4) c.in.reserve(c.in.size() + chunk);
        }
        const std::size_t room = c.in.capacity() - c.in.size();
        const ssize_t n = ::recv(c.fd, c.in.data() + c.in.size(), room, MSG_DONTWAIT);
        if (n == 0) {
            counters_.closed_by_peer.inc();
            close(c, fmt::format("{}: the peer closed the connection{}", c.name(),
                                 streaming ? "" : " before completing the handshake"));
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            counters_.closed_by_peer.inc();
            close(c, fmt::format("{}: connection lost: {}", c.name(), std::strerror(errno)));
            return;
        }
        c.in.resize(c.in.size() + static_cast<std::size_t>(n));
        c.last_rx_ns = now;
        budget -= std::min(budget, static_cast<std::size_t>(n));
        process(c, now);
    }
}

void Collector::process(Connection& c, uint64_t now) {
    bool ack_due = false;
    bool frames = false;
    std::size_t needed = 0;
    while (!c.closed) {
        const std::span<const std::byte> in{c.in.data() + c.in_off, c.in.size() - c.in_off};
        const tcp::ReceiverStep step =
            c.session.next(in, reader_, {scratch_.data(), scratch_.size()});
        if (step.kind == tcp::StepKind::NeedMore) {
            needed = step.needed;
            break;
        }
        c.in_off += step.consumed;
        switch (step.kind) {
            case tcp::StepKind::Hello:
                on_hello(c, step.hello, now);
                break;
            case tcp::StepKind::Frame: {
                Stream& s = *c.stream;
                frames = true;
                switch (s.add(step.frame)) {
                    case FrameOutcome::Written:
                    case FrameOutcome::Duplicate:
                        break;
                    case FrameOutcome::Gap:
                        if (c.gap_logs++ < kMaxGapLogsPerConnection) {
                            log_warning(
                                "{}: frames {}..{} never arrived: {} packets lost at the sender "
                                "(its retransmit buffer overflowed: see submit_full there){}",
                                c.name(), step.frame.info().sequence - s.last_gap_frames(),
                                step.frame.info().sequence - 1, s.last_gap_packets(),
                                c.gap_logs == kMaxGapLogsPerConnection
                                    ? "; further gaps on this connection are only counted"
                                    : "");
                        }
                        break;
                    case FrameOutcome::StorageError:
                        reject(c, tcp::RejectReason::Storage, counters_.dropped_storage,
                               fmt::format("the collector cannot write: {}", s.last_error()));
                        return;
                    case FrameOutcome::TooManyInterfaces:
                        // What came before it is good: keep it.
                        if (s.dirty() && s.commit()) send(c, c.session.ack(s.acknowledged()));
                        reject(c, tcp::RejectReason::Limit, counters_.dropped_over_limit,
                               too_many_interfaces(step.frame.info().sequence));
                        return;
                }
                break;
            }
            case tcp::StepKind::Heartbeat:
                ack_due = true;
                break;
            case tcp::StepKind::Failed: {
                tcp::Counter* counter = &counters_.dropped_protocol;
                if (step.reason == tcp::RejectReason::Version) counter = &counters_.refused_version;
                if (step.reason == tcp::RejectReason::AuthFailed ||
                    step.reason == tcp::RejectReason::KeyRequired ||
                    step.reason == tcp::RejectReason::KeyUnexpected)
                    counter = &counters_.refused_auth;
                if (step.wire_error) counter = &counters_.dropped_bad_frame;
                const std::string why =
                    fmt::format("{}: {}; connection dropped", c.name(), step.detail);
                // ack() below reuses the session's output buffer.
                const std::vector<std::byte> reply(step.reply.begin(), step.reply.end());
                // Whatever arrived before the bad bytes is good: keep it.
                if (c.stream && c.stream->dirty() && c.stream->commit())
                    send(c, c.session.ack(c.stream->acknowledged()));
                send(c, reply);
                drop(c, *counter, why);
                return;
            }
            case tcp::StepKind::PeerRejected: {
                std::string text;
                for (char ch : step.detail)
                    text += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
                drop(c, counters_.rejected_by_peer,
                     fmt::format("{}: the sender ended the connection ({}): {}", c.name(),
                                 tcp::to_string(step.reason), text));
                return;
            }
            case tcp::StepKind::NeedMore:
                break;
        }
    }
    if (c.closed) return;
    // The batch may point into the receive buffer: write it before the
    // buffer moves.
    if (c.stream && (frames || c.stream->dirty())) {
        if (!c.stream->commit()) {
            reject(c, tcp::RejectReason::Storage, counters_.dropped_storage,
                   fmt::format("the collector cannot write: {}", c.stream->last_error()));
            return;
        }
        ack_due = true;
    }
    if (ack_due && c.stream) send(c, c.session.ack(c.stream->acknowledged()));
    if (c.in_off == c.in.size()) {
        c.in.clear();
        c.in_off = 0;
    } else if (needed > c.in.capacity() - c.in_off) {
        c.in.consume(c.in_off);
        c.in_off = 0;
        c.in.reserve(needed);
    }
}

void Collector::on_hello(Connection& c, const tcp::Hello& h, uint64_t now) {
    (void)now;
    Stream* s = nullptr;
    try {
        s = &stream(h.stream_id);
    } catch (const std::exception& e) {
        reject(c, tcp::RejectReason::Storage, counters_.dropped_storage,
               fmt::format("stream {}: {}", h.stream_id, e.what()));
        return;
    }
    if (s->connection && s->connection != &c) {
        Connection& old = *static_cast<Connection*>(s->connection);
        reject(old, tcp::RejectReason::Replaced, counters_.dropped_replaced,
               fmt::format("a new connection of stream {} from {} took over", h.stream_id, c.peer));
    }
    const auto v = s->on_hello(h);
    c.stream = s;
    if (!v) {
        c.stream = nullptr;
        reject(c, tcp::RejectReason::Storage, counters_.dropped_storage,
               fmt::format("the collector cannot write: {}", s->last_error()));
        return;
    }
    s->connection = &c;
    c.heartbeat_ms = h.heartbeat_ms;
    counters_.handshakes.inc();
    if (v->new_session && v->had_session) {
        log_info(
            "stream {} connected from {}: new sender session {:016x} (the previous one ended "
            "at sequence {}), starting at sequence {}",
            h.stream_id, c.peer, h.session_id, v->previous_next_sequence, v->resume_sequence);
    } else {
        log_info("stream {} connected from {}{}: resuming at sequence {}", h.stream_id, c.peer,
                 v->new_session ? " (new stream)" : "", v->resume_sequence);
    }
    send(c, c.session.welcome(v->resume_sequence, v->new_session));
}

void Collector::drop_for_storage(Stream& s) {
    const std::string why = fmt::format("the collector cannot write: {}", s.last_error());
    if (rdma_) {
        rdma_->close(static_cast<RdmaPeer*>(s.connection)->conn, rdma::CloseCause::Storage,
                     tcp::RejectReason::Storage,
                     fmt::format("stream {}: {}; connection dropped", s.id(), why));
        return;
    }
    Connection& c = *static_cast<Connection*>(s.connection);
    reject(c, tcp::RejectReason::Storage, counters_.dropped_storage, why);
}

void Collector::timers(uint64_t now) {
    const uint64_t handshake_ns = uint64_t{opt_.peer_timeout_ms} * 1'000'000;
    for (auto& [id, cp] : conns_) {
        Connection& c = *cp;
        if (c.closed) continue;
        if (c.session.state() == tcp::ReceiverState::AwaitHello) {
            if (now - c.accepted_ns >= handshake_ns)
                reject(c, tcp::RejectReason::Timeout, counters_.dropped_timeout,
                       fmt::format("no handshake within {} ms (--peer-timeout)",
                                   opt_.peer_timeout_ms));
            continue;
        }
        if (c.heartbeat_ms) {
            const uint64_t idle_ns =
                std::max<uint64_t>(handshake_ns, 3ull * c.heartbeat_ms * 1'000'000);
            if (now - c.last_rx_ns >= idle_ns)
                reject(c, tcp::RejectReason::Timeout, counters_.dropped_timeout,
                       fmt::format("nothing received for {} ms though the sender heartbeats every "
                                   "{} ms",
                                   idle_ns / 1'000'000, c.heartbeat_ms));
        }
    }
    if (settings_.rotate_ns) {
        const uint64_t wall = wall_now_ns();
        for (auto& [id, s] : streams_) {
            if (!s->maybe_rotate_by_time(wall) && s->connection) drop_for_storage(*s);
        }
    }
    if (rdma_) rdma_->timers(now);
    if (now >= next_stats_ns_) {
        stats_line(now);
        next_stats_ns_ = now + opt_.stats_interval_s * 1'000'000'000ull;
    }
}

void Collector::stats_line(uint64_t now) {
    uint64_t packets = 0, bytes = 0, dup = 0, lost = 0, gaps = 0, connected = 0;
    for (const auto& [id, s] : streams_) {
        packets += s->run().packets_written;
        bytes += s->run().packet_bytes_written;
        dup += s->run().frames_duplicate;
        lost += s->run().packets_lost;
        gaps += s->run().gaps;
        connected += s->connection != nullptr;
    }
    const double dt = (now - last_stats_ns_) / 1e9;
    const double pps = dt > 0 ? (packets - last_packets_) / dt : 0;
    const double bps = dt > 0 ? (bytes - last_bytes_) * 8.0 / dt : 0;
    last_stats_ns_ = now;
    last_packets_ = packets;
    last_bytes_ = bytes;
    const auto& k = counters_;
    log_info(
        "{:.1f}s | {} of {} streams connected | {}pps {}bit/s | written {} packets {}B | "
        "duplicate frames {} | lost {} packets in {} gaps | refused {} dropped {}",
        (now - started_ns_) / 1e9, connected, streams_.size(), si(pps), si(bps), packets,
        si(double(bytes)), dup, lost, gaps,
        k.refused_version.get() + k.refused_auth.get() + k.dropped_busy.get(),
        k.dropped_protocol.get() + k.dropped_bad_frame.get() + k.dropped_timeout.get() +
            k.dropped_storage.get());
}

std::string Collector::summary_text() const {
    const double secs = started_ns_ ? (tcp::monotonic_ns() - started_ns_) / 1e9 : 0;
    std::string out = fmt::format("sluice-collector: summary after {:.1f} s\n", secs);
    for (const auto& [id, s] : streams_) {
        const StreamTotals& r = s->run();
        const StreamTotals& t = s->saved().totals;
        out += fmt::format(
            "  stream {}: this run {} packets ({}B) in {} frames, {} files opened; duplicate "
            "frames {}; lost {} packets in {} frames ({} gaps); all runs {} packets, lost {}; "
            "next sequence {}; file {}\n",
            id, r.packets_written, si(double(r.packet_bytes_written)), r.frames_written,
            s->files_opened(), r.frames_duplicate, r.packets_lost, r.frames_lost, r.gaps,
            t.packets_written, t.packets_lost, s->saved().next_sequence,
            s->current_path().empty() ? "(none)" : s->current_path());
    }
    out += "  connections:";
    const auto snap = counters_.snapshot();
    for (std::size_t i = 0; i < snap.size(); ++i)
        out += fmt::format(" {} {}{}", CollectorCounters::info[i].name, snap[i],
                           i + 1 < snap.size() ? "," : "\n");
    return out;
}

std::string Collector::summary_json() const {
    const double secs = started_ns_ ? (tcp::monotonic_ns() - started_ns_) / 1e9 : 0;
    auto totals = [](const StreamTotals& t) {
        return fmt::format(
            "{{\"frames_written\": {}, \"packets_written\": {}, \"packet_bytes_written\": {}, "
            "\"frames_duplicate\": {}, \"frames_lost\": {}, \"packets_lost\": {}, \"gaps\": {}}}",
            t.frames_written, t.packets_written, t.packet_bytes_written, t.frames_duplicate,
            t.frames_lost, t.packets_lost, t.gaps);
    };
    std::string out = fmt::format("{{\"seconds\": {:.3f}, \"streams\": [", secs);
    bool first = true;
    for (const auto& [id, s] : streams_) {
        out += fmt::format(
            "{}{{\"stream_id\": {}, \"run\": {}, \"all_runs\": {}, \"files_opened\": {}, "
            "\"next_sequence\": {}, \"session_id\": {}, \"file\": \"{}\"}}",
            first ? "" : ", ", id, totals(s->run()), totals(s->saved().totals), s->files_opened(),
            s->saved().next_sequence, s->saved().session_id, json_escape(s->current_path()));
        first = false;
    }
    out += "], \"counters\": {";
    const auto snap = counters_.snapshot();
    for (std::size_t i = 0; i < snap.size(); ++i)
        out += fmt::format("{}\"{}\": {}", i ? ", " : "", CollectorCounters::info[i].name, snap[i]);
    out += "}}\n";
    return out;
}

}  // namespace sluice::collector
