// Not for inclusion outside collector/src (and its tests): a collector as a
// member of a group reading sluice streams from NATS JetStream
// (docs/scale-out.md). It plays the part a listener plays for TCP and RDMA,
// under the same StreamHandler and Stream logic: each stream it owns is one
// "connection" whose hello comes from the stream's lease (authoritative:
// where the previous owner stopped), whose frames come from a JetStream
// consumer put back in sequence order (jetstream::FrameOrder), and whose
// commit becomes true when the lease update that carries it succeeds
// (Stream::set_group_commits). Only then are the messages acknowledged to
// JetStream.
//
// One thread (the collector's event loop) calls everything here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "sluice/collector/collector.hpp"
#include "sluice/jetstream/client.hpp"
#include "sluice/jetstream/frame_order.hpp"
#include "sluice/jetstream/group.hpp"
#include "sluice/jetstream/reader.hpp"
#include "sluice/jetstream/stream_spec.hpp"
#include "sluice/lockfree/counter.hpp"
#include "sluice/session/receiver.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::collector {

class StreamHandler;

#define SLUICE_GROUP_COUNTERS(_)                                                                   \
    _(streams_taken,                                                                               \
      "Streams this collector began to write: new ones, released ones, and its own again "         \
      "after a restart or a reconnect to NATS.")                                                   \
    _(streams_taken_over,                                                                          \
      "Of those, streams taken from a collector whose lease had not moved for --lease-ms (it "     \
      "died, hung, or lost NATS).")                                                                \
    _(streams_released,                                                                            \
      "Streams handed back to the group: at shutdown, to even out the members' shares, or "        \
      "because this collector could not write them (disk full, I/O error).")                       \
    _(leases_lost,                                                                                 \
      "Streams another collector took over while this one still wrote them (this one was "         \
      "paused or cut off from NATS for longer than --lease-ms). Its uncommitted work was "         \
      "undone; nothing is lost or doubled.")                                                       \
    _(commits_undone,                                                                              \
      "Commits cut back out of the files because the group never took them (the lease had "        \
      "moved on): the stream's new owner writes those frames.")                                    \
    _(commits_unsettled,                                                                           \
      "Commits whose lease update got no answer (NATS lost mid-commit), or raced another "         \
      "collector taking the stream over: kept aside until the group's records say whether they "   \
      "count.")                                                                                    \
    _(frames_waited,                                                                               \
      "Frames read before an earlier frame of their stream (whose first publish was lost and "     \
      "published again later): they waited for it, so nothing was lost.")                          \
    _(frames_forced,                                                                               \
      "Frames written past a missing one that was not proven lost, because --reorder-frames "      \
      "frames were waiting: if the missing one comes after all it is discarded as a duplicate. "   \
      "Raise --reorder-frames if this moves.")                                                     \
    _(messages_not_frames,                                                                         \
      "Messages on the frames' subjects that are not sluice frames (no Sluice-Frame header, or a " \
      "frame of another stream id): skipped. Something else publishes there.")                     \
    _(deliveries_lost,                                                                             \
      "Messages JetStream handed to this collector that never reached it (a fetch answer that "    \
      "came after the client library stopped waiting, on a slow host): reading starts again "      \
      "from the last commit, so nothing is lost or doubled.")                                      \
    _(frames_corrupt,                                                                              \
      "Frames stored in JetStream that fail verification (CRC, lengths, decompression) or "        \
      "name more interfaces than a file holds: skipped, and counted lost by their stream.")        \
    _(nats_reconnects, "Connections to NATS made again after one broke.")                          \
    _(nats_errors,                                                                                 \
      "Requests to NATS that failed (no answer, no leader during an election): see the log. "      \
      "Each is retried.")
SLUICE_COUNTER_BLOCK(GroupCounters, SLUICE_GROUP_COUNTERS);

class GroupSource final : public session::ReceiverTransport {
  public:
    // Connects to NATS (throws std::runtime_error with the operator's fix
    // when no server answers, the credentials are refused or JetStream is
    // off) and notes the streams of the directory whose last commit awaits
    // the group's verdict. The JetStream stream may not exist yet: it is
    // waited for.
    GroupSource(Collector& collector, StreamHandler& handler, const GroupOptions& options);
    ~GroupSource() override;
    GroupSource(const GroupSource&) = delete;
    GroupSource& operator=(const GroupSource&) = delete;

    // One turn: the group's housekeeping when due (leases, members, new
    // streams, reconnecting) and one fetch from each owned stream. True if
    // it read anything.
    bool poll(uint64_t now);
    // Shutdown: every owned stream committed and released to the group, so
    // another member takes it at once.
    void stop();

    const GroupCounters& counters() const { return counters_; }
    std::size_t owned() const { return owned_.size(); }
    const std::string& id() const { return me_; }

    // session::ReceiverTransport: the handler ends a stream's "connection"
    // (a timed rotation failed: storage).
    void close(session::ConnectionId conn, session::CloseCause cause, session::RejectReason reason,
               std::string_view text) override;
    std::string_view name() const override { return "jetstream"; }

  private:
    static constexpr uint64_t kMs = 1'000'000;
    static constexpr uint64_t kHousekeepingNs = 200 * kMs;
    static constexpr uint64_t kDiscoveryNs = 1000 * kMs;
    static constexpr uint64_t kReconnectNs = 1000 * kMs;
    static constexpr uint64_t kStorageBackoffNs = 10'000 * kMs;
    static constexpr uint64_t kErrorLogIntervalNs = 5'000 * kMs;

    struct Held {
        natsMsg* msg;
        uint64_t position;
    };
    struct Owned {
        uint64_t id = 0;
        session::ConnectionId conn = 0;
        Stream* stream = nullptr;
        uint64_t revision = 0;  // of the lease, after this collector's last write
        jetstream::Lease lease;
        std::unique_ptr<jetstream::StreamReader> reader;
        std::unique_ptr<jetstream::FrameOrder> order;
        bool session_known = false;
        uint64_t session = 0;
        uint64_t written_ns = 0;   // the last lease write
        std::vector<Held> done;    // handed out, freed after the commit
        uint64_t waited_seen = 0;  // order->waiting() when last counted
        uint64_t delivered = 0;    // the consumer sequence of the last message read
        bool closed = false;       // drop()ped: stop using it; freed at the next turn
    };
    using GroupStore = jetstream::GroupStore;
    struct Seen {
        uint64_t revision = 0;
        std::string value;
        uint64_t changed_ns = 0;  // on this collector's clock
    };
    enum class Settle : uint8_t { Done, Unknown };

    bool connect(uint64_t now, bool at_start);
    void disconnect(uint64_t now, const std::string& why);
    void housekeeping(uint64_t now);
    void take_updates(uint64_t now);
    void discover();
    void acquire(uint64_t now);
    void rebalance(uint64_t now);
    void renew(uint64_t now);
    bool take(uint64_t now, uint64_t id, const Seen* seen);
    bool write_release(const std::string& owner, uint64_t id, uint64_t revision,
                       const jetstream::Lease& l);
    // A lease update refused (Conflict) may have met this collector's own
    // earlier update that timed out but landed: true (and the revision
    // taken) when the lease still is this collector's, as it left it.
    bool refresh_own(Owned& o);
    // The lease as the bucket has it now (the watch may lag): keys_ updated.
    const Seen* reread(uint64_t id, uint64_t now);
    // A bucket write's outcome, for the health of the bucket as seen here.
    void note_write(GroupStore::Outcome outcome, uint64_t now);
    Settle settle(uint64_t id);
    bool open_reader(Owned& o);
    bool read(Owned& o, uint64_t now);
    void accept_message(Owned& o, natsMsg* msg);
    // After a commit: what was read past it is read again, through a new
    // consumer starting at the lease's position.
    void read_again(Owned& o);
    // Frees every message the frame order still holds (it is being thrown away).
    static void free_waiting(Owned& o);
    void drain(Owned& o);
    bool write(Owned& o, const Held& h, uint64_t sequence);
    // Commits what was written, reaching at most JetStream position `limit`
    // (a frame being written holds the position back).
    bool commit(Owned& o, uint64_t now, uint64_t limit = UINT64_MAX);
    // Whether a lease update that succeeded, replacing revision `expected`,
    // surely carried its commit. NATS servers before 2.9.21 let two updates
    // that expect the same revision both succeed when they race
    // (nats-server issue 4320), so a member taking the stream over may have
    // succeeded too. It writes down whom it took the stream from, and at
    // which revision, before its own update: no such record at `expected`
    // or later means nothing raced. False also when the record cannot be
    // read.
    bool uncontested(uint64_t id, uint64_t expected);
    void free_done(Owned& o, bool acknowledge, uint64_t settled);
    // Ends this collector's writing of the stream: `release` hands the lease
    // back to the group (owner empty) so another member takes it at once.
    void drop(uint64_t id, session::CloseCause cause, const std::string& why, bool release);
    std::size_t alive_members(uint64_t now) const;
    std::size_t share(uint64_t now) const;
    void log_nats_error(const std::string& what);

    Collector& c_;
    StreamHandler& h_;
    GroupOptions o_;
    jetstream::StreamSpec spec_;
    std::string me_;    // this collector's id (DIR/.sluice/collector-id)
    std::string name_;  // host:dir, for people
    GroupCounters counters_;
    std::unique_ptr<jetstream::Client> client_;
    std::unique_ptr<jetstream::GroupStore> store_;
    std::map<std::string, Seen> keys_;  // the bucket as last seen
    std::set<uint64_t> discovered_;     // stream ids with messages
    std::map<uint64_t, std::unique_ptr<Owned>> owned_;
    std::vector<std::unique_ptr<Owned>> dropped_;  // freed at the start of the next turn
    std::set<uint64_t> unsettled_;  // streams whose last commit awaits the group's verdict
    wire::FrameReader reader_;
    std::vector<std::byte> scratch_;
    uint64_t next_housekeeping_ns_ = 0, next_discovery_ns_ = 0, next_member_ns_ = 0;
    uint64_t next_connect_ns_ = 0, next_rebalance_ns_ = 0, storage_backoff_until_ns_ = 0;
    uint64_t member_beat_ = 0;
    uint64_t member_revision_ = 0;    // of this collector's last member record
    uint64_t member_written_ns_ = 0;  // ... written then
    // Since when this collector's writes to the bucket succeed: a lease is
    // silent only if it did not move while the bucket could be written, so a
    // NATS outage that stopped every member's renewals takes nothing over.
    uint64_t writable_since_ns_ = 0;
    uint64_t next_error_log_ns_ = 0, errors_unlogged_ = 0;
    bool stopping_ = false;
    bool waiting_for_stream_ = false;  // logged once
};

}  // namespace sluice::collector
