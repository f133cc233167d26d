#include "sluice/jetstream/group.hpp"

#include <cerrno>
#include <charconv>
#include <map>

#include <fmt/format.h>

#include "sluice/jetstream/client.hpp"

namespace sluice::jetstream {
namespace {

// "sluice-lease v1 a=1 b=x" -> {a: 1, b: x} when the first two words match.
std::optional<std::map<std::string, std::string, std::less<>>> fields(std::string_view text,
                                                                      std::string_view kind) {
    const std::string head = fmt::format("{} v1", kind);
    if (text.substr(0, head.size()) != head) return std::nullopt;
    text.remove_prefix(head.size());
    std::map<std::string, std::string, std::less<>> out;
    while (!text.empty()) {
        if (text.front() != ' ') return std::nullopt;
        text.remove_prefix(1);
        const auto end = text.find(' ');
        const std::string_view kv = text.substr(0, end);
        const auto eq = kv.find('=');
        if (eq == std::string_view::npos || eq == 0) return std::nullopt;
        out.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
        text.remove_prefix(end == std::string_view::npos ? text.size() : end);
    }
    return out;
}

bool number(const std::map<std::string, std::string, std::less<>>& f, std::string_view key,
            uint64_t& out, int base = 10) {
    const auto it = f.find(key);
    if (it == f.end()) return false;
    const std::string& s = it->second;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string encode(const Lease& l) {
    return fmt::format(
        "sluice-lease v1 owner={} session={:016x} known={} next={} packet={} js={} "
        "beat={}",
        l.owner.empty() ? "-" : l.owner, l.session_id, l.known ? 1 : 0, l.next_sequence,
        l.next_packet_index, l.position, l.beat);
}

std::string encode(const Release& r) {
    return fmt::format("sluice-release v1 lease={} js={} next={}", r.lease_revision, r.position,
                       r.next_sequence);
}

std::string encode(const Member& m) {
    return fmt::format("sluice-member v1 streams={} beat={} name={}", m.streams, m.beat,
                       m.name.empty() ? "-" : m.name);
}

std::optional<Lease> decode_lease(std::string_view text) {
    const auto f = fields(text, "sluice-lease");
    if (!f || !f->count("owner")) return std::nullopt;
    Lease l;
    l.owner = f->at("owner") == "-" ? "" : f->at("owner");
    uint64_t known = 0;
    if (!number(*f, "session", l.session_id, 16) || !number(*f, "known", known) || known > 1 ||
        !number(*f, "next", l.next_sequence) || !number(*f, "packet", l.next_packet_index) ||
        !number(*f, "js", l.position) || !number(*f, "beat", l.beat))
        return std::nullopt;
    l.known = known == 1;
    return l;
}

std::optional<Release> decode_release(std::string_view text) {
    const auto f = fields(text, "sluice-release");
    Release r;
    if (!f || !number(*f, "lease", r.lease_revision) || !number(*f, "js", r.position) ||
        !number(*f, "next", r.next_sequence))
        return std::nullopt;
    return r;
}

std::optional<Member> decode_member(std::string_view text) {
    // The name is last and may hold spaces.
    const auto at = text.find(" name=");
    if (at == std::string_view::npos) return std::nullopt;
    const auto f = fields(text.substr(0, at), "sluice-member");
    Member m;
    uint64_t streams = 0;
    if (!f || !number(*f, "streams", streams) || !number(*f, "beat", m.beat)) return std::nullopt;
    m.streams = static_cast<uint32_t>(streams);
    m.name = std::string(text.substr(at + 6));
    if (m.name == "-") m.name.clear();
    return m;
}

std::string lease_key(uint64_t stream_id) {
    return fmt::format("lease.{}", stream_id);
}

std::string release_key(std::string_view collector, uint64_t stream_id) {
    return fmt::format("release.{}.{}", collector, stream_id);
}

std::string member_key(std::string_view collector) {
    return fmt::format("member.{}", collector);
}

std::optional<uint64_t> stream_of_lease_key(std::string_view key) {
    constexpr std::string_view p = "lease.";
    if (key.substr(0, p.size()) != p) return std::nullopt;
    key.remove_prefix(p.size());
    uint64_t id = 0;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (key.empty() || ec != std::errc() || end != key.data() + key.size()) return std::nullopt;
    return id;
}

std::string collector_of_member_key(std::string_view key) {
    constexpr std::string_view p = "member.";
    if (key.substr(0, p.size()) != p) return "";
    return std::string(key.substr(p.size()));
}

std::string check_group_name(std::string_view g) {
    if (g.empty() || g.size() > 64) return "a group name has 1 to 64 characters";
    for (char c : g) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return fmt::format("'{}' in the group name: use letters, digits, '_' and '-'", c);
    }
    return "";
}

report::Result<std::unique_ptr<GroupStore>> GroupStore::open(jsCtx* js, const std::string& group,
                                                             uint32_t replicas) {
    std::unique_ptr<GroupStore> g(new GroupStore());
    g->bucket_ = "sluice_" + group;
    g->js_ = js;
    natsStatus s = js_KeyValue(&g->kv_, js, g->bucket_.c_str());
    if (s != NATS_OK) {
        kvConfig c;
        kvConfig_Init(&c);
        c.Bucket = g->bucket_.c_str();
        c.Description = "sluice collector group: leases, releases, members (docs/scale-out.md)";
        c.History = 1;
        c.StorageType = js_FileStorage;
        c.Replicas = static_cast<int>(replicas);
        s = js_CreateKeyValue(&g->kv_, js, &c);
        // Another collector may have created it meanwhile.
        if (s != NATS_OK) s = js_KeyValue(&g->kv_, js, g->bucket_.c_str());
        if (s != NATS_OK) {
            return report::Error{
                EIO, fmt::format("cannot create the group's key-value bucket {} (replicas {}): {}",
                                 g->bucket_, replicas, last_error(s))};
        }
    }
    return g;
}

GroupStore::~GroupStore() {
    if (watch_) kvWatcher_Destroy(watch_);
    if (kv_) kvStore_Destroy(kv_);
}

GroupStore::Entry GroupStore::outcome_of(natsStatus s, const char* what, const std::string& key) {
    Entry e;
    if (s == NATS_OK) {
        e.outcome = Outcome::Done;
        return e;
    }
    const std::string why = last_error(s);
    if (s == NATS_NOT_FOUND) {
        e.outcome = Outcome::Missing;
    } else if (why.find("wrong last sequence") != std::string::npos) {
        e.outcome = Outcome::Conflict;  // the compare in compare-and-set failed
    } else {
        e.outcome = Outcome::Failed;
        error_ = fmt::format("{} {} in {}: {}", what, key, bucket_, why);
    }
    return e;
}

GroupStore::Entry GroupStore::get(const std::string& key) {
    // A bucket is the stream KV_<bucket>; a key's value is the last message
    // on $KV.<bucket>.<key> (a delete or purge leaves a marker there).
    natsMsg* m = nullptr;
    jsErrCode je = static_cast<jsErrCode>(0);
    const std::string stream = "KV_" + bucket_;
    const std::string subject = "$KV." + bucket_ + "." + key;
    natsStatus s = js_GetLastMsg(&m, js_, stream.c_str(), subject.c_str(), nullptr, &je);
    if (s != NATS_OK && je == JSNoMessageFoundErr) s = NATS_NOT_FOUND;
    Entry e = outcome_of(s, "reading", key);
    if (!m) return e;
    const char* op = nullptr;
    const bool deleted = natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op;
    if (deleted) {
        e.outcome = Outcome::Missing;
    } else {
        e.revision = natsMsg_GetSequence(m);
        e.value.assign(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
    }
    natsMsg_Destroy(m);
    return e;
}

GroupStore::Entry GroupStore::create(const std::string& key, std::string_view value) {
    uint64_t rev = 0;
    Entry e = outcome_of(
        kvStore_Create(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size())),
        "creating", key);
    e.revision = rev;
    return e;
}

GroupStore::Entry GroupStore::update(const std::string& key, std::string_view value,
                                     uint64_t revision) {
    uint64_t rev = 0;
    Entry e = outcome_of(kvStore_Update(&rev, kv_, key.c_str(), value.data(),
                                        static_cast<int>(value.size()), revision),
                         "updating", key);
    e.revision = rev;
    return e;
}

GroupStore::Entry GroupStore::put(const std::string& key, std::string_view value) {
    uint64_t rev = 0;
    Entry e = outcome_of(
        kvStore_Put(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size())),
        "writing", key);
    e.revision = rev;
    return e;
}

GroupStore::Entry GroupStore::remove(const std::string& key) {
    return outcome_of(kvStore_Delete(kv_, key.c_str()), "removing", key);
}

void GroupStore::rewatch() {
    if (watch_) kvWatcher_Destroy(watch_);
    watch_ = nullptr;
}

bool GroupStore::updates(std::vector<Update>& out) {
    if (!watch_) {
        const natsStatus s = kvStore_WatchAll(&watch_, kv_, nullptr);
        if (s != NATS_OK) {
            error_ = fmt::format("cannot watch {}: {}", bucket_, last_error(s));
            watch_ = nullptr;
            return false;
        }
    }
    while (true) {
        kvEntry* k = nullptr;
        const natsStatus s = kvWatcher_Next(&k, watch_, 1);
        if (s == NATS_TIMEOUT) return true;
        if (s != NATS_OK) {
            error_ = fmt::format("watching {}: {}", bucket_, last_error(s));
            kvWatcher_Destroy(watch_);
            watch_ = nullptr;
            return false;
        }
        if (!k) continue;  // the end of the initial values
        Update u;
        u.key = kvEntry_Key(k);
        u.revision = kvEntry_Revision(k);
        if (kvEntry_Operation(k) == kvOp_Put)
            u.value.assign(static_cast<const char*>(kvEntry_Value(k)),
                           static_cast<std::size_t>(kvEntry_ValueLen(k)));
        kvEntry_Destroy(k);
        out.push_back(std::move(u));
    }
}

}  // namespace sluice::jetstream
