// Reading an owned stream from JetStream: frames in order, written to the
// stream's files, committed, and settled with the group.
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
    o.delivered = 0;
    return true;
}

void GroupSource::free_waiting(Owned& o) {
    if (!o.order) return;
    o.order->release_all();
    while (const auto w = o.order->next())
        natsMsg_Destroy(static_cast<natsMsg*>(w->handle));
}

void GroupSource::read_again(Owned& o) {
    free_waiting(o);
    o.order = std::make_unique<jetstream::FrameOrder>(o_.reorder_frames);
    o.order->start(o.lease.position);
    o.order->reset(o.session_known && o.lease.known, o.lease.next_sequence);
    o.waited_seen = 0;
    o.reader.reset();  // opened again by the next read()
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
        if (counts) {
            // An update taking the stream over may have raced the one that
            // carried the commit and still be on its way (see uncontested()).
            // One written now comes after it: if it lands, nothing raced it.
            Lease again = *l;
            ++again.beat;
            const auto w = store_->update(jetstream::lease_key(id), encode(again), lease.revision);
            if (w.outcome == GroupStore::Outcome::Failed) {
                log_nats_error(
                    fmt::format("stream {}: settling the last commit: {}", id, store_->error()));
                return Settle::Unknown;
            }
            if (w.outcome == GroupStore::Outcome::Conflict) return Settle::Unknown;  // next turn
        }
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
        log_info("stream {}: its last commit counts (the group's lease has it)", id);
    } else {
        counters_.commits_undone.inc();
        if (!s.undo_commit()) {
            log_error("stream {}: {}", id, s.last_error());
            return Settle::Unknown;
        }
        log_info(
            "stream {}: its last commit was not taken by the group; cut back to sequence {} "
            "(its frames are written by whoever owns the stream)",
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
    bool lost = false;
    for (int i = 0; i < list.Count && !o.closed; ++i) {
        natsMsg* m = list.Msgs[i];
        // The consumer numbers its deliveries 1, 2, 3...: a number skipped is
        // a delivery that never got here. The frames' tags would then take
        // the frames it carried for lost, though JetStream holds them.
        const uint64_t delivered = jetstream::consumer_sequence_of_reply(natsMsg_GetReply(m));
        if (delivered > o.delivered + 1) {
            counters_.deliveries_lost.add(delivered - o.delivered - 1);
            log_warning(
                "stream {}: JetStream deliveries {}..{} never reached this collector (a fetch "
                "answer that came too late, on a slow host); reading again from the last commit",
                o.id, o.delivered + 1, delivered - 1);
            lost = true;
            break;  // this one and the rest go with the list
        }
        if (delivered) o.delivered = delivered;
        list.Msgs[i] = nullptr;  // ours now
        accept_message(o, m);
    }
    natsMsgList_Destroy(&list);  // with any message not taken
    if (!o.closed && commit(o, now) && lost) read_again(o);
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
    uint64_t expected = o.revision;
    auto e = store_->update(jetstream::lease_key(id), encode(next), expected);
    if (e.outcome == GroupStore::Outcome::Conflict && refresh_own(o)) {
        next.beat = o.lease.beat + 1;
        expected = o.revision;
        e = store_->update(jetstream::lease_key(id), encode(next), expected);
    }
    note_write(e.outcome, now);
    if (e.outcome == GroupStore::Outcome::Done && !uncontested(id, expected)) {
        // Another member took the stream over from the revision this update
        // replaced, at the same moment: which of the two counts is settled
        // from the bucket, as for an update that got no answer.
        o.revision = e.revision;
        o.lease = next;
        free_done(o, false, 0);
        counters_.commits_unsettled.inc();
        log_warning(
            "stream {}: the lease update carrying a commit raced another collector of group {} "
            "taking the stream over; the commit is settled from the group's records",
            id, o_.group);
        unsettled_.insert(id);
        drop(id, CloseCause::Replaced, "", false);
        return false;
    }
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

bool GroupSource::uncontested(uint64_t id, uint64_t expected) {
    const auto rel = store_->get(jetstream::release_key(me_, id));
    if (rel.outcome == GroupStore::Outcome::Missing) return true;
    if (rel.outcome == GroupStore::Outcome::Failed) {
        log_nats_error(fmt::format("stream {}: checking a commit: {}", id, store_->error()));
        return false;
    }
    const auto r = jetstream::decode_release(rel.value);
    return !r || r->lease_revision < expected;
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

}  // namespace sluice::collector
