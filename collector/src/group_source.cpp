#include "group_source.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "handler.hpp"
#include <fmt/format.h>
#include <unistd.h>

#include "sluice/jetstream/frame_tag.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/session/key.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::collector {
namespace {

using jetstream::GroupStore;
using jetstream::Lease;
using report::log_error;
using report::log_info;
using report::log_warning;
using session::CloseCause;

// This collector's id in the group: random once, kept in its directory, so
// that a restart is the same member (it settles its own commits by it).
std::string collector_id(const std::string& dir) {
    const std::string path = dir + "/.sluice/collector-id";
    std::ifstream in(path);
    std::string id;
    if (in >> id && id.size() == 16 &&
        id.find_first_not_of("0123456789abcdef") == std::string::npos)
        return id;
    id = fmt::format("{:016x}", session::random_u64());
    const std::string tmp = path + ".tmp";
    std::ofstream out(tmp, std::ios::trunc);
    out << id << "\n";
    out.close();
    if (!out || std::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    return id;
}

std::string host_name() {
    char h[256] = {};
    if (::gethostname(h, sizeof h - 1) != 0) return "?";
    return h;
}

}  // namespace

GroupSource::GroupSource(Collector& collector, StreamHandler& handler, const GroupOptions& o)
    : c_(collector),
      h_(handler),
      o_(o),
      reader_({.max_raw_len = collector.opt_.max_frame_bytes,
               .max_stored_len = collector.opt_.max_frame_bytes}),
      scratch_(collector.opt_.max_frame_bytes) {
    if (const std::string bad = jetstream::check_group_name(o_.group); !bad.empty())
        throw std::invalid_argument("--group: " + bad);
    spec_.name = o_.stream;
    spec_.subject = o_.subject;
    if (const std::string bad = jetstream::check_subject(spec_.subject); !bad.empty())
        throw std::invalid_argument("--subject: " + bad);
    me_ = collector_id(c_.settings_.dir);
    name_ = fmt::format("{}:{}", host_name(), c_.settings_.dir);
    // A commit this collector made but did not see confirmed before it
    // stopped: the group's records say whether it counts (settled before
    // the stream is written again).
    // Streams are closed again once recovered: their records say which.
    for (const StreamRecord& r : c_.stream_records()) {
        if (r.pending) unsettled_.insert(r.id);
    }
    connect(session::monotonic_ns(), true);
}

GroupSource::~GroupSource() {
    for (auto& [id, o] : owned_) {
        free_done(*o, false, 0);
        free_waiting(*o);
    }
}

void GroupSource::log_nats_error(const std::string& what) {
    counters_.nats_errors.inc();
    const uint64_t now = session::monotonic_ns();
    if (now < next_error_log_ns_) {
        ++errors_unlogged_;
        return;
    }
    if (errors_unlogged_)
        log_warning("{} ({} more NATS errors since the last report)", what, errors_unlogged_);
    else
        log_warning("{}", what);
    errors_unlogged_ = 0;
    next_error_log_ns_ = now + kErrorLogIntervalNs;
}

bool GroupSource::connect(uint64_t now, bool at_start) {
    // A connection that closed while this collector waited for the stream or
    // the bucket is made again, not asked again.
    if (client_ && client_->closed()) client_.reset();
    if (!client_) {
        jetstream::ClientOptions co;
        co.servers = o_.servers;
        co.creds_file = o_.creds_file;
        co.user = o_.user;
        co.password_file = o_.password_file;
        co.token_file = o_.token_file;
        co.tls = o_.tls;
        co.tls_ca = o_.tls_ca;
        co.tls_cert = o_.tls_cert;
        co.tls_key = o_.tls_key;
        co.name = fmt::format("sluice-collector {} group {}", name_, o_.group);
        auto c = jetstream::Client::connect(co);
        if (!c) {
            // At start an unreachable cluster is the operator's to fix now;
            // later it is an outage to ride out.
            if (at_start) throw std::runtime_error(c.error().message);
            log_nats_error(fmt::format("NATS: {}; trying again", c.error().message));
            next_connect_ns_ = now + kReconnectNs;
            return false;
        }
        client_ = std::move(*c);
        if (!at_start) counters_.nats_reconnects.inc();
    }
    // The group's bucket is kept like the frames: as many replicas.
    std::string error;
    const uint32_t replicas = jetstream::stream_replicas(client_->js(), spec_.name, error);
    if (!replicas) {
        if (!waiting_for_stream_) log_info("{}; waiting for it", error);
        waiting_for_stream_ = true;
        next_connect_ns_ = now + kReconnectNs;
        return false;
    }
    waiting_for_stream_ = false;
    auto g = GroupStore::open(client_->js(), o_.group, replicas);
    if (!g) {
        log_nats_error(g.error().message);
        next_connect_ns_ = now + kReconnectNs;
        return false;
    }
    store_ = std::move(*g);
    keys_.clear();
    log_info("member {} of group {} ({}), reading JetStream stream {} from {}", me_, o_.group,
             name_, spec_.name, client_->server());
    next_housekeeping_ns_ = now;
    return true;
}

void GroupSource::disconnect(uint64_t now, const std::string& why) {
    log_warning(
        "{}; this collector stops writing its {} streams until it is back (the group "
        "takes them over after --lease-ms)",
        why, owned_.size());
    std::vector<uint64_t> ids;
    for (const auto& [id, o] : owned_)
        ids.push_back(id);
    for (uint64_t id : ids)
        drop(id, CloseCause::PeerClosed, "", false);
    store_.reset();
    client_.reset();
    next_connect_ns_ = now + kReconnectNs;
}

bool GroupSource::poll(uint64_t now) {
    dropped_.clear();
    if (stopping_) return false;
    if (!client_ || !store_) {
        if (now < next_connect_ns_ || !connect(now, false)) return false;
    }
    if (client_->closed()) {
        const std::string why = client_->close_reason();
        disconnect(now, fmt::format("lost the connection to NATS server {}{}", client_->server(),
                                    why.empty() ? "" : " (" + why + ")"));
        return false;
    }
    if (now >= next_housekeeping_ns_) {
        housekeeping(now);
        next_housekeeping_ns_ = now + kHousekeepingNs;
        if (!client_) return false;
    }
    bool work = false;
    std::vector<uint64_t> ids;
    for (const auto& [id, o] : owned_)
        ids.push_back(id);
    for (uint64_t id : ids) {
        auto it = owned_.find(id);
        if (it == owned_.end()) continue;
        work = read(*it->second, now) || work;
        if (!client_) break;
    }
    return work;
}

void GroupSource::housekeeping(uint64_t now) {
    take_updates(now);
    if (!client_) return;
    if (member_revision_ && now - member_written_ns_ >= o_.lease_ms * kMs &&
        keys_[jetstream::member_key(me_)].revision < member_revision_) {
        // This collector's own record never came back through the watch: it
        // stopped delivering (its server went away). Watch afresh.
        store_->rewatch();
        member_revision_ = 0;
        take_updates(now);
    }
    if (now >= next_member_ns_) {
        jetstream::Member m{name_, static_cast<uint32_t>(owned_.size()), ++member_beat_};
        const auto e = store_->put(jetstream::member_key(me_), encode(m));
        note_write(e.outcome, now);
        if (e.outcome == GroupStore::Outcome::Done) {
            if (!member_revision_) member_written_ns_ = now;
            member_revision_ = e.revision;
        }
        next_member_ns_ = now + o_.lease_ms * kMs / 3;
    }
    renew(now);
    for (auto it = unsettled_.begin(); it != unsettled_.end();) {
        const uint64_t id = *it++;
        settle(id);
    }
    if (now >= next_discovery_ns_) {
        discover();
        next_discovery_ns_ = now + kDiscoveryNs;
    }
    if (now >= storage_backoff_until_ns_) acquire(now);
    rebalance(now);
}

void GroupSource::take_updates(uint64_t now) {
    std::vector<GroupStore::Update> ups;
    if (!store_->updates(ups)) log_nats_error(store_->error());
    for (auto& u : ups) {
        Seen& s = keys_[u.key];
        if (s.revision != u.revision) s.changed_ns = now;
        s.revision = u.revision;
        s.value = std::move(u.value);
        // Someone else wrote the lease of a stream this collector writes: it
        // was taken over (this one was too slow, or cut off). An older
        // revision is this collector's own earlier write coming late.
        if (u.key == jetstream::member_key(me_) && u.revision >= member_revision_)
            member_written_ns_ = now;  // the watch delivers
        const auto id = jetstream::stream_of_lease_key(u.key);
        if (!id) continue;
        auto it = owned_.find(*id);
        if (it == owned_.end() || u.revision <= it->second->revision) continue;
        const auto l = jetstream::decode_lease(s.value);
        if (l && l->owner == me_ && l->position == it->second->lease.position &&
            l->next_sequence == it->second->lease.next_sequence) {
            // This collector's own renewal that timed out here but landed.
            it->second->revision = u.revision;
            it->second->lease.beat = l->beat;
            continue;
        }
        counters_.leases_lost.inc();
        drop(*id, CloseCause::Replaced,
             fmt::format(
                 "stream {}: another collector of group {} took it over (lease revision "
                 "{} by {}, after this collector's {})",
                 *id, o_.group, u.revision,
                 l ? (l->owner.empty() ? std::string("nobody") : l->owner) : std::string("?"),
                 it->second->revision),
             false);
    }
}

void GroupSource::drop(uint64_t id, CloseCause cause, const std::string& why, bool release) {
    auto it = owned_.find(id);
    if (it == owned_.end()) return;
    std::unique_ptr<Owned> op = std::move(it->second);
    owned_.erase(it);
    Owned& o = *op;
    o.closed = true;
    // Nothing uncommitted may outlive the messages its bytes point into.
    o.stream->discard_uncommitted();
    free_done(o, false, 0);
    free_waiting(o);
    o.reader.reset();
    if (release && store_ && !o.stream->pending()) {
        Lease next = o.lease;
        next.owner.clear();
        ++next.beat;
        if (store_->update(jetstream::lease_key(id), encode(next), o.revision).outcome !=
            GroupStore::Outcome::Done)
            log_nats_error(store_->error());
    }
    h_.on_closed(o.conn, cause, why);
    dropped_.push_back(std::move(op));
}

void GroupSource::close(session::ConnectionId conn, CloseCause cause, session::RejectReason,
                        std::string_view text) {
    for (const auto& [id, o] : owned_) {
        if (o->conn != conn) continue;
        const bool storage = cause == CloseCause::Storage;
        if (storage) {
            storage_backoff_until_ns_ = session::monotonic_ns() + kStorageBackoffNs;
            counters_.streams_released.inc();
        }
        drop(id, cause, std::string(text), storage);
        return;
    }
}

void GroupSource::stop() {
    if (!client_) return;
    const uint64_t now = session::monotonic_ns();
    std::vector<uint64_t> ids;
    for (const auto& [id, o] : owned_)
        ids.push_back(id);
    for (uint64_t id : ids) {
        auto it = owned_.find(id);
        if (it == owned_.end() || !commit(*it->second, now)) continue;
        counters_.streams_released.inc();
        drop(id, CloseCause::ShuttingDown, "", true);
    }
    if (store_) store_->remove(jetstream::member_key(me_));
    stopping_ = true;
}

}  // namespace sluice::collector
