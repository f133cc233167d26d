// What a collector group keeps in JetStream besides the frames: one
// key-value bucket, "sluice_<group>", replicated like the frames' stream.
// docs/scale-out.md explains the protocol; these are its records and the
// operations on them, each a compare-and-set where two collectors could race.
//
//   lease.<stream id>              who writes the stream, and where it stands:
//                                  every message up to `position` is written.
//                                  The owner rewrites it at each commit (that
//                                  rewrite IS the commit) and when idle, so
//                                  the revision moves while the owner lives.
//   release.<collector>.<stream>   written by a collector taking a stream over
//                                  from <collector>, before it takes it: the
//                                  position the old owner's last commit
//                                  reached. The old owner reads it when it
//                                  restarts to settle a commit it did not
//                                  see confirmed.
//   member.<collector>             each collector's heartbeat, so that each
//                                  takes its share of the streams and no more
//
// Records are one line of text ("sluice-lease v1 owner=... js=..."), for
// `nats kv get` to show.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nats/nats.h>

#include "sluice/report/result.hpp"

namespace sluice::jetstream {

struct Lease {
    std::string owner;        // collector id; empty: released (anyone takes it at once)
    uint64_t session_id = 0;  // the sender session the position is in (0: none seen yet)
    bool known = false;       // the next two fields are valid
    uint64_t next_sequence = 0;
    uint64_t next_packet_index = 0;
    uint64_t position = 0;  // JetStream stream sequence; every message up to it is written
    uint64_t beat = 0;      // bumped by every rewrite
    bool operator==(const Lease&) const = default;
};

struct Release {
    uint64_t lease_revision = 0;  // the lease revision taken over
    uint64_t position = 0;        // the position that revision held
    uint64_t next_sequence = 0;   // ... and its next sequence
    bool operator==(const Release&) const = default;
};

struct Member {
    std::string name;  // host and directory, for people
    uint32_t streams = 0;
    uint64_t beat = 0;
    bool operator==(const Member&) const = default;
};

std::string encode(const Lease& l);
std::string encode(const Release& r);
std::string encode(const Member& m);
std::optional<Lease> decode_lease(std::string_view text);
std::optional<Release> decode_release(std::string_view text);
std::optional<Member> decode_member(std::string_view text);

std::string lease_key(uint64_t stream_id);
std::string release_key(std::string_view collector, uint64_t stream_id);
std::string member_key(std::string_view collector);
// "lease.7" -> 7; "member.ab12" -> "ab12"; nullopt/empty for other keys.
std::optional<uint64_t> stream_of_lease_key(std::string_view key);
std::string collector_of_member_key(std::string_view key);

// A group name as the bucket takes it: [A-Za-z0-9_-], 1..64 characters; ""
// when usable, else why not.
std::string check_group_name(std::string_view group);

class GroupStore {
  public:
    enum class Outcome : uint8_t {
        Done,
        Conflict,  // create: the key exists; update: the key moved past `revision`
        Missing,   // get: no such key
        Failed,    // anything else (no answer, connection lost): error() says what
    };
    struct Entry {
        Outcome outcome = Outcome::Failed;
        uint64_t revision = 0;
        std::string value;
    };
    struct Update {
        std::string key;
        uint64_t revision = 0;
        std::string value;  // empty for a deleted key
    };

    // Opens the group's bucket, creating it (file storage, `replicas`) when
    // missing.
    static report::Result<std::unique_ptr<GroupStore>> open(jsCtx* js, const std::string& group,
                                                            uint32_t replicas);
    ~GroupStore();
    GroupStore(const GroupStore&) = delete;
    GroupStore& operator=(const GroupStore&) = delete;

    // The key's value as the bucket's leader has it. The bucket allows direct
    // reads, which any replica answers, and a replica catching up after a
    // restart answers with an older revision: a compare-and-set decided on
    // that would fail again and again. So this read goes to the leader.
    Entry get(const std::string& key);
    Entry create(const std::string& key, std::string_view value);
    Entry update(const std::string& key, std::string_view value, uint64_t revision);
    Entry put(const std::string& key, std::string_view value);
    Entry remove(const std::string& key);

    // Every change since the last call (the first call: every key), without
    // waiting. False when the watch broke (error() says why); the next call
    // watches afresh.
    bool updates(std::vector<Update>& out);
    // Watches afresh: the next updates() starts with every key's value. For
    // a watch that stopped delivering (its server went away under it).
    void rewatch();

    const std::string& bucket() const { return bucket_; }
    const std::string& error() const { return error_; }

  private:
    GroupStore() = default;
    Entry outcome_of(natsStatus s, const char* what, const std::string& key);

    std::string bucket_;
    jsCtx* js_ = nullptr;  // the client's, which outlives this
    kvStore* kv_ = nullptr;
    kvWatcher* watch_ = nullptr;
    std::string error_;
};

}  // namespace sluice::jetstream
