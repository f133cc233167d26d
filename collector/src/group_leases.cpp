// A collector group's members and the leases on streams: who is alive,
// each member's share, taking, renewing and handing back a stream.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "group_source.hpp"
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

}  // namespace

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
        // Committed between reads (a time rotation's statistics blocks): the
        // lease update confirms it now, and renews the lease.
        if (!o.closed && o.stream && o.stream->pending()) {
            if (!commit(o, now)) return;  // owned_ changed
            continue;
        }
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
                 fmt::format("stream {}: another collector of group {} took it over (renewing "
                             "lease revision {} was refused)",
                             id, o_.group, o.revision),
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

}  // namespace sluice::collector
