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

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kHousekeepingNs = 200 * kMs;
constexpr uint64_t kDiscoveryNs = 1000 * kMs;
constexpr uint64_t kReconnectNs = 1000 * kMs;
constexpr uint64_t kStorageBackoffNs = 10'000 * kMs;
constexpr uint64_t kErrorLogIntervalNs = 5'000 * kMs;

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
        if (o->order) {
            o->order->release_all();
            while (auto it = o->order->next())
                natsMsg_Destroy(static_cast<natsMsg*>(it->handle));
        }
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
             fmt::format("stream {}: another collector of group {} took it over", *id, o_.group),
             false);
    }
}

void GroupSource::discover() {
    std::string error;
    const auto ids = jetstream::list_stream_ids(client_->js(), spec_, error);
    if (!ids) {
        log_nats_error(error);
        return;
    }
    discovered_.insert(ids->begin(), ids->end());
}

std::size_t GroupSource::alive_members(uint64_t now) const {
    std::size_t n = 1;  // this one
    for (const auto& [key, s] : keys_) {
        const std::string who = jetstream::collector_of_member_key(key);
        if (who.empty() || who == me_ || s.value.empty()) continue;
        n += now - s.changed_ns < 2ull * o_.lease_ms * kMs;
    }
    return n;
}

std::size_t GroupSource::share(uint64_t now) const {
    std::set<uint64_t> all = discovered_;
    for (const auto& [key, s] : keys_) {
        if (const auto id = jetstream::stream_of_lease_key(key)) all.insert(*id);
    }
    const std::size_t m = alive_members(now);
    return (all.size() + m - 1) / m;
}

void GroupSource::acquire(uint64_t now) {
    std::set<uint64_t> candidates = discovered_;
    for (const auto& [key, s] : keys_) {
        if (const auto id = jetstream::stream_of_lease_key(key)) candidates.insert(*id);
    }
    const std::size_t limit = share(now);
    // This collector's own leases first (a restart, a reconnect), then the
    // released and the new, then those whose owner went silent.
    for (int pass = 0; pass < 3 && client_; ++pass) {
        for (uint64_t id : candidates) {
            if (owned_.count(id) || unsettled_.count(id) || !client_) continue;
            const auto k = keys_.find(jetstream::lease_key(id));
            const Seen* seen = k == keys_.end() || k->second.value.empty() ? nullptr : &k->second;
            const auto lease = seen ? jetstream::decode_lease(seen->value) : std::nullopt;
            if (seen && !lease) continue;  // not a lease sluice wrote
            const bool mine = lease && lease->owner == me_;
            const bool free = !lease || lease->owner.empty();
            const uint64_t quiet_since =
                lease ? std::max(seen->changed_ns, writable_since_ns_) : now;
            const bool silent = lease && writable_since_ns_ && now >= quiet_since &&
                                now - quiet_since >= o_.lease_ms * kMs;
            if (pass == 0 && !mine) continue;
            if (pass == 1 && (mine || !free)) continue;
            if (pass == 2 && (mine || free || !silent)) continue;
            // A silent lease is taken whatever the share: its owner stopped
            // writing, though the group still counts it as a member until its
            // heartbeat is 2 x --lease-ms old. rebalance() evens it out later.
            if (pass == 1 && owned_.size() >= limit) continue;
            // The watch may lag: decide on the lease as it is now.
            const Seen* fresh = seen ? reread(id, now) : nullptr;
            if (seen && (!fresh || fresh->revision != seen->revision)) continue;
            take(now, id, fresh);
        }
    }
}

void GroupSource::rebalance(uint64_t now) {
    if (now < next_rebalance_ns_ || owned_.empty()) return;
    const std::size_t limit = share(now);
    if (owned_.size() <= limit) return;
    // Give one back only when a live member has less than its share, so two
    // members never hand a stream back and forth.
    bool someone_short = false;
    for (const auto& [key, s] : keys_) {
        const std::string who = jetstream::collector_of_member_key(key);
        if (who.empty() || who == me_ || now - s.changed_ns >= 2ull * o_.lease_ms * kMs) continue;
        if (const auto m = jetstream::decode_member(s.value); m && m->streams < limit)
            someone_short = true;
    }
    if (!someone_short) return;
    const uint64_t id = owned_.rbegin()->first;
    Owned& o = *owned_.rbegin()->second;
    if (!commit(o, now)) return;
    counters_.streams_released.inc();
    drop(id, CloseCause::ShuttingDown,
         fmt::format("stream {}: handed to another member of group {} ({} streams here, a share "
                     "is {})",
                     id, o_.group, owned_.size(), limit),
         true);
    next_rebalance_ns_ = now + o_.lease_ms * kMs;
}

void GroupSource::renew(uint64_t now) {
    for (auto& [id, op] : owned_) {
        Owned& o = *op;
        if (now - o.written_ns < o_.lease_ms * kMs / 3) continue;
        Lease next = o.lease;
        ++next.beat;
        auto e = store_->update(jetstream::lease_key(id), encode(next), o.revision);
        if (e.outcome == GroupStore::Outcome::Conflict && refresh_own(o)) {
            next.beat = o.lease.beat + 1;
            e = store_->update(jetstream::lease_key(id), encode(next), o.revision);
        }
        note_write(e.outcome, now);
        if (e.outcome == GroupStore::Outcome::Done) {
            o.revision = e.revision;
            o.lease = next;
            o.written_ns = now;
        } else if (e.outcome == GroupStore::Outcome::Conflict) {
            counters_.leases_lost.inc();
            drop(id, CloseCause::Replaced,
                 fmt::format("stream {}: another collector of group {} took it over", id, o_.group),
                 false);
            return;  // owned_ changed
        } else {
            log_nats_error(store_->error());
        }
    }
}

void GroupSource::note_write(GroupStore::Outcome outcome, uint64_t now) {
    if (outcome == GroupStore::Outcome::Failed)
        writable_since_ns_ = 0;
    else if (!writable_since_ns_)
        writable_since_ns_ = now;
}

bool GroupSource::refresh_own(Owned& o) {
    const auto e = store_->get(jetstream::lease_key(o.id));
    if (e.outcome != GroupStore::Outcome::Done) return false;
    const auto l = jetstream::decode_lease(e.value);
    if (!l || l->owner != me_ || l->position != o.lease.position ||
        l->next_sequence != o.lease.next_sequence || l->session_id != o.lease.session_id)
        return false;
    o.revision = e.revision;
    o.lease.beat = l->beat;
    return true;
}

const GroupSource::Seen* GroupSource::reread(uint64_t id, uint64_t now) {
    const std::string key = jetstream::lease_key(id);
    const auto e = store_->get(key);
    if (e.outcome == GroupStore::Outcome::Failed) {
        log_nats_error(store_->error());
        return nullptr;
    }
    Seen& s = keys_[key];
    if (e.outcome == GroupStore::Outcome::Missing) {
        s = Seen{};
        return nullptr;
    }
    if (s.revision != e.revision) s.changed_ns = now;
    s.revision = e.revision;
    s.value = e.value;
    return &s;
}

bool GroupSource::write_release(const std::string& owner, uint64_t id, uint64_t revision,
                                const Lease& l) {
    // A monotonic register: only a record of a later lease revision replaces
    // one, whatever order two collectors' writes arrive in.
    const std::string key = jetstream::release_key(owner, id);
    const std::string value = encode(jetstream::Release{revision, l.position, l.next_sequence});
    for (int tries = 0; tries < 5; ++tries) {
        const auto cur = store_->get(key);
        GroupStore::Entry e;
        if (cur.outcome == GroupStore::Outcome::Missing) {
            e = store_->create(key, value);
        } else if (cur.outcome == GroupStore::Outcome::Done) {
            const auto r = jetstream::decode_release(cur.value);
            if (r && r->lease_revision >= revision) return true;
            e = store_->update(key, value, cur.revision);
        } else {
            log_nats_error(store_->error());
            return false;
        }
        if (e.outcome == GroupStore::Outcome::Done) return true;
        if (e.outcome == GroupStore::Outcome::Failed) {
            log_nats_error(store_->error());
            return false;
        }
    }
    return false;
}

bool GroupSource::take(uint64_t now, uint64_t id, const Seen* seen) {
    const auto prev = seen ? jetstream::decode_lease(seen->value) : std::nullopt;
    Lease next = prev ? *prev : Lease{};
    const bool from_other = prev && !prev->owner.empty() && prev->owner != me_;
    // Before the lease moves: where the old owner's last commit stood, for it
    // to settle a commit it did not see confirmed when it restarts.
    if (from_other && !write_release(prev->owner, id, seen->revision, *prev)) return false;
    next.owner = me_;
    ++next.beat;
    const auto e = seen ? store_->update(jetstream::lease_key(id), encode(next), seen->revision)
                        : store_->create(jetstream::lease_key(id), encode(next));
    note_write(e.outcome, now);
    if (e.outcome == GroupStore::Outcome::Conflict) {
        reread(id, now);  // another member was faster, or the watch lags
        return false;
    }
    if (e.outcome != GroupStore::Outcome::Done) {
        log_nats_error(store_->error());
        return false;
    }
    Stream* s = nullptr;
    try {
        s = &c_.stream(id);
    } catch (const std::exception& ex) {
        log_error("stream {}: {}; handing it back to the group", id, ex.what());
        next.owner.clear();
        store_->update(jetstream::lease_key(id), encode(next), e.revision);
        storage_backoff_until_ns_ = now + kStorageBackoffNs;
        return false;
    }
    auto op = std::make_unique<Owned>();
    Owned& o = *op;
    o.id = id;
    o.stream = s;
    o.revision = e.revision;
    o.lease = next;
    o.written_ns = now;
    o.conn = session::next_connection_id();
    o.order = std::make_unique<jetstream::FrameOrder>(o_.reorder_frames);
    s->set_group_commits(true);
    h_.on_connection(
        o.conn, *this,
        fmt::format("JetStream {} ({}, lease {}{})", spec_.name,
                    jetstream::subject_for(spec_.subject, id), e.revision,
                    from_other ? fmt::format(", taken over from {}", prev->owner) : std::string()));
    session::Hello h;
    h.stream_id = id;
    h.session_id = next.session_id;
    h.position = {next.known, next.next_sequence, next.next_packet_index};
    h.authoritative = true;
    s->set_source_position(next.position);
    const session::HelloAnswer a = h_.on_hello(o.conn, h);
    owned_.emplace(id, std::move(op));
    if (!a.accept) {
        storage_backoff_until_ns_ = now + kStorageBackoffNs;
        drop(id, CloseCause::Storage, a.refusal.text, true);
        return false;
    }
    o.session_known = next.session_id != 0;
    o.session = next.session_id;
    o.order->start(next.position);
    o.order->reset(o.session_known && next.known, next.next_sequence);
    counters_.streams_taken.inc();
    if (from_other) counters_.streams_taken_over.inc();
    if (!open_reader(o)) return true;  // retried at the next read
    return true;
}

bool GroupSource::open_reader(Owned& o) {
    jetstream::ReaderOptions ro;
    ro.stream = spec_.name;
    ro.durable = fmt::format("sluice_{}_{}", o_.group, o.id);
    ro.subject = jetstream::subject_for(spec_.subject, o.id);
    ro.after = o.lease.position;
    ro.max_ack_pending = std::max<uint32_t>(20000, 4 * o_.reorder_frames);
    auto r = jetstream::StreamReader::open(client_->js(), ro);
    if (!r) {
        log_nats_error(r.error().message);
        return false;
    }
    o.reader = std::move(*r);
    return true;
}

GroupSource::Settle GroupSource::settle(uint64_t id) {
    Stream& s = c_.stream(id);
    if (!s.pending()) {
        unsettled_.erase(id);
        return Settle::Done;
    }
    const StreamState& st = s.saved();
    const auto lease = store_->get(jetstream::lease_key(id));
    if (lease.outcome == GroupStore::Outcome::Failed) {
        log_nats_error(fmt::format("stream {}: settling the last commit: {}", id, store_->error()));
        return Settle::Unknown;
    }
    bool counts = false;
    const auto l = lease.outcome == GroupStore::Outcome::Done ? jetstream::decode_lease(lease.value)
                                                              : std::nullopt;
    if (l && l->owner == me_) {
        // The lease holds this collector's last successful write: the pending
        // commit, or the one before it.
        counts = l->position == st.source_position && l->next_sequence == st.next_sequence;
    } else if (l) {
        // Taken over since: the taker wrote down where this collector stopped.
        const auto rel = store_->get(jetstream::release_key(me_, id));
        if (rel.outcome == GroupStore::Outcome::Failed) {
            log_nats_error(
                fmt::format("stream {}: settling the last commit: {}", id, store_->error()));
            return Settle::Unknown;
        }
        const auto r = rel.outcome == GroupStore::Outcome::Done
                           ? jetstream::decode_release(rel.value)
                           : std::nullopt;
        counts = r && r->position == st.source_position && r->next_sequence == st.next_sequence;
    }
    if (counts) {
        s.confirm_commit();
        log_info("stream {}: the last commit before the stop counts (the group's lease has it)",
                 id);
    } else {
        counters_.commits_undone.inc();
        if (!s.undo_commit()) {
            log_error("stream {}: {}", id, s.last_error());
            return Settle::Unknown;
        }
        log_info(
            "stream {}: the last commit before the stop was not taken by the group; cut "
            "back to sequence {} (its frames are written by whoever owns the stream)",
            id, s.saved().next_sequence);
    }
    unsettled_.erase(id);
    return Settle::Done;
}

bool GroupSource::read(Owned& o, uint64_t now) {
    if (!o.reader && !open_reader(o)) return false;
    natsMsgList list;
    const natsStatus st = o.reader->fetch(list, static_cast<int>(o_.fetch_frames),
                                          static_cast<int64_t>(o_.fetch_bytes), 0);
    // Nothing there: a request that waited (timeout) or did not (not found).
    if (st == NATS_TIMEOUT || st == NATS_NOT_FOUND || (st == NATS_OK && list.Count == 0)) {
        natsMsgList_Destroy(&list);
        return false;
    }
    if (st != NATS_OK) {
        natsMsgList_Destroy(&list);
        if (client_->closed()) return false;
        log_nats_error(fmt::format("stream {}: reading from JetStream: {} ({})", o.id,
                                   natsStatus_GetText(st), jetstream::last_error(st)));
        return false;
    }
    for (int i = 0; i < list.Count && !o.closed; ++i) {
        natsMsg* m = list.Msgs[i];
        list.Msgs[i] = nullptr;  // ours now
        accept_message(o, m);
    }
    natsMsgList_Destroy(&list);  // with any message not taken
    if (!o.closed) commit(o, now);
    return true;
}

void GroupSource::accept_message(Owned& o, natsMsg* m) {
    const uint64_t position = jetstream::stream_sequence_of_reply(natsMsg_GetReply(m));
    const char* tag_text = nullptr;
    const auto tag = natsMsgHeader_Get(m, jetstream::kFrameHeader, &tag_text) == NATS_OK && tag_text
                         ? jetstream::parse_frame_tag(tag_text)
                         : std::nullopt;
    const auto bytes = std::span(reinterpret_cast<const std::byte*>(natsMsg_GetData(m)),
                                 static_cast<std::size_t>(natsMsg_GetDataLength(m)));
    const auto info = wire::parse_header(bytes, reader_.limits());
    if (!tag || !info || info->stream_id != o.id || position == 0) {
        if (tag && !info)
            counters_.frames_corrupt.inc();
        else
            counters_.messages_not_frames.inc();
        o.order->skip(position);
        o.done.push_back({m, position});
        return;
    }
    if (!o.session_known || tag->session_id != o.session) {
        // A new sender session: what waited for the old one will not come.
        if (o.session_known) {
            o.order->release_all();
            drain(o);
            if (o.closed || !commit(o, session::monotonic_ns())) {
                natsMsg_Destroy(m);
                return;
            }
        }
        session::Hello h;
        h.stream_id = o.id;
        h.session_id = tag->session_id;
        // Frames of the session below its floor were stored before this one
        // was published, so before it in JetStream: none is still to come.
        h.position = {true, tag->floor, info->first_packet_index};
        const session::HelloAnswer a = h_.on_hello(o.conn, h);
        if (!a.accept) {
            natsMsg_Destroy(m);
            storage_backoff_until_ns_ = session::monotonic_ns() + kStorageBackoffNs;
            drop(o.id, CloseCause::Storage, a.refusal.text, true);
            return;
        }
        o.session_known = true;
        o.session = tag->session_id;
        o.order->reset(true, tag->floor);
    }
    o.order->offer({info->sequence, tag->floor, tag->gap_from, position, m, false});
    if (o.order->waiting() > o.waited_seen)
        counters_.frames_waited.add(o.order->waiting() - o.waited_seen);
    o.waited_seen = o.order->waiting();
    drain(o);
}

void GroupSource::drain(Owned& o) {
    const uint64_t forced = o.order->forced();
    while (const auto it = o.order->next()) {
        const Held h{static_cast<natsMsg*>(it->handle), it->position};
        o.done.push_back(h);
        if (it->discard) continue;
        if (it->sequence > o.stream->next_expected() && o.stream->position_known())
            log_warning(
                "stream {}: frame {} (JetStream position {}) follows a gap from {}: "
                "proven lost (floor {}, dropped by the sender from {}{})",
                o.id, it->sequence, it->position, o.stream->next_expected(), o.order->floor(),
                it->gap_from, o.order->forced() != forced ? ", or waited for too long" : "");
        if (!write(o, h, it->sequence)) return;
    }
    counters_.frames_forced.add(o.order->forced() - forced);
    o.waited_seen = o.order->waiting();
}

bool GroupSource::write(Owned& o, const Held& h, uint64_t sequence) {
    const auto bytes = std::span(reinterpret_cast<const std::byte*>(natsMsg_GetData(h.msg)),
                                 static_cast<std::size_t>(natsMsg_GetDataLength(h.msg)));
    const auto view = reader_.open(bytes, scratch_);
    if (!view) {
        counters_.frames_corrupt.inc();
        log_warning(
            "stream {}: frame {} in JetStream (position {}) fails verification ({}); "
            "skipped, its packets count as lost",
            o.id, sequence, h.position, wire::to_string(view.error()));
        return true;
    }
    session::Refusal r;
    FrameOutcome out = h_.frame_outcome(o.conn, *view, r);
    if (out == FrameOutcome::CommitFirst) {
        // This frame is not written yet: the commit stops before it.
        if (!commit(o, session::monotonic_ns(), h.position - 1)) return false;
        out = h_.frame_outcome(o.conn, *view, r);
    }
    switch (out) {
        case FrameOutcome::Written:
        case FrameOutcome::Duplicate:
        case FrameOutcome::Gap:
            return true;
        case FrameOutcome::TooManyInterfaces:
            counters_.frames_corrupt.inc();
            log_warning("stream {}: {}; skipped", o.id, r.text);
            return true;
        case FrameOutcome::StorageError:
        case FrameOutcome::CommitFirst:
            break;
    }
    // Nothing of the batch counts (Stream cut the file back): hand the stream
    // to a member that can write.
    storage_backoff_until_ns_ = session::monotonic_ns() + kStorageBackoffNs;
    counters_.streams_released.inc();
    drop(o.id, CloseCause::Storage, r.text, true);
    return false;
}

bool GroupSource::commit(Owned& o, uint64_t now, uint64_t limit) {
    const uint64_t id = o.id;
    const uint64_t settled = std::min(o.order->settled_position(), limit);
    o.stream->set_source_position(settled);
    session::Refusal r;
    if (!h_.on_batch_done(o.conn, r)) {
        storage_backoff_until_ns_ = now + kStorageBackoffNs;
        counters_.streams_released.inc();
        drop(id, CloseCause::Storage, r.text, true);
        return false;
    }
    if (!o.stream->pending()) {
        free_done(o, false, 0);
        return true;
    }
    const StreamState& st = o.stream->saved();
    Lease next = o.lease;
    next.session_id = st.session_id;
    next.known = st.position_known;
    next.next_sequence = st.next_sequence;
    next.next_packet_index = st.next_packet_index;
    next.position = st.source_position;
    ++next.beat;
    // The commit point: the lease update either carries this commit to the
    // group or finds the lease moved (taken over) and undoes it.
    auto e = store_->update(jetstream::lease_key(id), encode(next), o.revision);
    if (e.outcome == GroupStore::Outcome::Conflict && refresh_own(o)) {
        next.beat = o.lease.beat + 1;
        e = store_->update(jetstream::lease_key(id), encode(next), o.revision);
    }
    note_write(e.outcome, now);
    if (e.outcome == GroupStore::Outcome::Done) {
        o.revision = e.revision;
        o.lease = next;
        o.written_ns = now;
        if (!o.stream->confirm_commit())
            log_warning("stream {}: {} (the commit counts; a restart asks the group)", id,
                        o.stream->last_error());
        free_done(o, true, st.source_position);
        return true;
    }
    free_done(o, false, 0);
    if (e.outcome == GroupStore::Outcome::Conflict) {
        counters_.leases_lost.inc();
        counters_.commits_undone.inc();
        if (!o.stream->undo_commit()) log_error("stream {}: {}", id, o.stream->last_error());
        drop(id, CloseCause::Replaced,
             fmt::format("stream {}: another collector of group {} took it over; the last "
                         "commit here was undone",
                         id, o_.group),
             false);
        return false;
    }
    counters_.commits_unsettled.inc();
    log_nats_error(
        fmt::format("stream {}: the lease update carrying a commit got no answer "
                    "({}); the commit is settled once NATS answers",
                    id, store_->error()));
    unsettled_.insert(id);
    drop(id, CloseCause::PeerClosed, "", false);
    return false;
}

void GroupSource::free_done(Owned& o, bool acknowledge, uint64_t settled) {
    // Acknowledging the last settled message acknowledges all before it
    // (the consumer's policy is "all").
    natsMsg* ack = nullptr;
    uint64_t best = 0;
    if (acknowledge) {
        for (const Held& h : o.done) {
            if (h.position <= settled && h.position >= best) {
                best = h.position;
                ack = h.msg;
            }
        }
        if (ack && o.reader) o.reader->acknowledge(ack);
    }
    for (const Held& h : o.done)
        natsMsg_Destroy(h.msg);
    o.done.clear();
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
    if (o.order) {
        o.order->release_all();
        while (auto w = o.order->next())
            natsMsg_Destroy(static_cast<natsMsg*>(w->handle));
    }
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
