// Schema-driven TOML loading: one table of keys drives parsing, range checks,
// "did you mean", --print-config and the documentation checks in tests.
#include "sluice/config/config.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace sluice::config {
namespace {

// ---- describing values for messages -----------------------------------------

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string describe(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string:
            return "the string " + quote(n.as_string()->get());
        case toml::node_type::integer:
            return "the integer " + std::to_string(n.as_integer()->get());
        case toml::node_type::floating_point: {
            std::ostringstream o;
            o << "the float " << n.as_floating_point()->get();
            return o.str();
        }
        case toml::node_type::boolean:
            return n.as_boolean()->get() ? "the boolean true" : "the boolean false";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        default:
            return "a date/time";
    }
}

Position pos_of(const toml::source_region& r) {
    return Position{static_cast<uint32_t>(r.begin.line), static_cast<uint32_t>(r.begin.column)};
}

// ---- the schema ---------------------------------------------------------------

struct Sink {
    std::string file;
    std::vector<Diagnostic>* out;
    void error(Position p, std::string key, std::string msg) const {
        out->push_back(Diagnostic{file, p, std::move(key), std::move(msg), false});
    }
    void warning(Position p, std::string key, std::string msg) const {
        out->push_back(Diagnostic{file, p, std::move(key), std::move(msg), true});
    }
};

// A key of a table whose values live in `Owner` (Config for sections, Port
// for the entries of [[ports]]).
template <class Owner>
struct Field {
    std::string name;  // leaf name
    std::string type;  // for docs: "integer", "boolean", "string", "enum", "array of integers"
    std::string default_value;
    std::string range;
    std::string help;
    bool required = false;
    // Reads the node into the owner; on a mismatch records a diagnostic and
    // leaves the default in place.
    std::function<void(Owner&, const toml::node&, const std::string& key, const Sink&)> read;
    std::function<std::string(const Owner&)> show;  // current value as a TOML literal
};

template <class Owner, class Get>
Field<Owner> integer(std::string name, int64_t lo, int64_t hi, std::string help, Get get,
                     bool pow2 = false) {
    Field<Owner> f;
    f.name = std::move(name);
    f.type = "integer";
    f.range = std::to_string(lo) + ".." + std::to_string(hi) + (pow2 ? ", a power of two" : "");
    f.help = std::move(help);
    f.read = [lo, hi, pow2, get](Owner& o, const toml::node& n, const std::string& key,
                                 const Sink& sink) {
        const auto* v = n.as_integer();
        const std::string want = std::string(pow2 ? "a power of two" : "an integer") + " in " +
                                 std::to_string(lo) + ".." + std::to_string(hi);
        if (!v) {
            sink.error(pos_of(n.source()), key, "expected " + want + ", found " + describe(n));
            return;
        }
        const int64_t x = v->get();
        if (x < lo || x > hi || (pow2 && (x <= 0 || (x & (x - 1)) != 0))) {
            sink.error(pos_of(n.source()), key,
                       "expected " + want + ", found " + std::to_string(x));
            return;
        }
        auto& dst = get(o);
        dst = static_cast<std::remove_reference_t<decltype(dst)>>(x);
    };
    f.show = [get](const Owner& o) { return std::to_string(get(const_cast<Owner&>(o))); };
    return f;
}

template <class Owner, class Get>
Field<Owner> boolean(std::string name, std::string help, Get get) {
    Field<Owner> f;
    f.name = std::move(name);
    f.type = "boolean";
    f.range = "true, false";
    f.help = std::move(help);
    f.read = [get](Owner& o, const toml::node& n, const std::string& key, const Sink& sink) {
        if (const auto* v = n.as_boolean()) {
            get(o) = v->get();
        } else {
            sink.error(pos_of(n.source()), key,
                       "expected a boolean (true or false), found " + describe(n));
        }
    };
    f.show = [get](const Owner& o) {
        return std::string(get(const_cast<Owner&>(o)) ? "true" : "false");
    };
    return f;
}

template <class Owner, class Get>
Field<Owner> string(std::string name, std::string range, std::string help, Get get,
                    bool required = false) {
    Field<Owner> f;
    f.name = std::move(name);
    f.type = "string";
    f.range = std::move(range);
    f.help = std::move(help);
    f.required = required;
    f.read = [get](Owner& o, const toml::node& n, const std::string& key, const Sink& sink) {
        if (const auto* v = n.as_string()) {
            get(o) = v->get();
        } else {
            sink.error(pos_of(n.source()), key, "expected a string, found " + describe(n));
        }
    };
    f.show = [get](const Owner& o) { return quote(get(const_cast<Owner&>(o))); };
    return f;
}

template <class E>
using Choices = std::vector<std::pair<std::string_view, E>>;

template <class Owner, class E, class Get>
Field<Owner> choice(std::string name, Choices<E> choices, std::string help, Get get) {
    Field<Owner> f;
    f.name = std::move(name);
    f.type = "string";
    std::string list;
    for (const auto& [word, _] : choices)
        list += (list.empty() ? "" : ", ") + quote(word);
    f.range = list;
    f.help = std::move(help);
    f.read = [choices, list, get](Owner& o, const toml::node& n, const std::string& key,
                                  const Sink& sink) {
        const auto* v = n.as_string();
        if (!v) {
            sink.error(pos_of(n.source()), key,
                       "expected one of " + list + ", found " + describe(n));
            return;
        }
        for (const auto& [word, value] : choices) {
            if (v->get() == word) {
                get(o) = value;
                return;
            }
        }
        std::string msg = "expected one of " + list + ", found " + quote(v->get());
        std::string_view best;
        std::size_t best_d = 3;
        for (const auto& [word, _] : choices) {
            const std::size_t d = edit_distance(word, v->get());
            if (d < best_d) best_d = d, best = word;
        }
        if (!best.empty()) msg += " (did you mean " + quote(best) + "?)";
        sink.error(pos_of(n.source()), key, msg);
    };
    f.show = [choices, get](const Owner& o) {
        const E value = get(const_cast<Owner&>(o));
        for (const auto& [word, v] : choices) {
            if (v == value) return quote(word);
        }
        return std::string("\"?\"");
    };
    return f;
}

template <class Owner, class Get>
Field<Owner> integer_list(std::string name, int64_t lo, int64_t hi, std::string help, Get get) {
    Field<Owner> f;
    f.name = std::move(name);
    f.type = "array of integers";
    f.range = "each " + std::to_string(lo) + ".." + std::to_string(hi);
    f.help = std::move(help);
    f.read = [lo, hi, get](Owner& o, const toml::node& n, const std::string& key,
                           const Sink& sink) {
        const auto* arr = n.as_array();
        if (!arr) {
            sink.error(pos_of(n.source()), key,
                       "expected an array of integers such as [1, 2], found " + describe(n));
            return;
        }
        std::vector<uint32_t> values;
        bool good = true;
        for (const auto& e : *arr) {
            const auto* v = e.as_integer();
            if (!v || v->get() < lo || v->get() > hi) {
                sink.error(pos_of(e.source()), key,
                           "expected integers in " + std::to_string(lo) + ".." +
                               std::to_string(hi) + ", found " + describe(e));
                good = false;
                continue;
            }
            values.push_back(static_cast<uint32_t>(v->get()));
        }
        if (good) get(o) = std::move(values);
    };
    f.show = [get](const Owner& o) {
        std::string s = "[";
        for (uint32_t v : get(const_cast<Owner&>(o))) {
            s += (s.size() > 1 ? ", " : "") + std::to_string(v);
        }
        return s + "]";
    };
    return f;
}

struct Section {
    std::string name;
    std::string help;
    std::vector<Field<Config>> fields;
};

// clang-format off
const std::vector<Field<Port>>& port_fields() {
    static const std::vector<Field<Port>> fields = [] {
        std::vector<Field<Port>> v;
        v.push_back(string<Port>("name", "PCI address or vdev string",
            "The NIC: a PCI address bound to a DPDK driver (\"0000:3b:00.0\"), or a virtual device "
            "string (\"net_pcap0,rx_pcap=/tmp/in.pcap\", \"net_null0\", \"net_memif0,role=client\").",
            [](Port& p) -> auto& { return p.name; }, true));
        v.push_back(integer<Port>("rx_queues", 1, 64,
            "Receive queues on this port. More than one spreads flows across rx lcores with RSS.",
            [](Port& p) -> auto& { return p.rx_queues; }));
        v.push_back(integer<Port>("rx_descriptors", 64, 16384,
            "Descriptors per receive queue: the NIC's buffer for bursts the lcore has not yet polled. "
            "Raise it when imissed grows during short bursts.",
            [](Port& p) -> auto& { return p.rx_descriptors; }, true));
        v.push_back(boolean<Port>("rss",
            "Spread flows across rx_queues by the NIC's RSS hash (only with rx_queues > 1).",
            [](Port& p) -> auto& { return p.rss; }));
        v.push_back(boolean<Port>("rss_symmetric",
            "Use a symmetric RSS key so both directions of a flow land on the same queue.",
            [](Port& p) -> auto& { return p.rss_symmetric; }));
        v.push_back(integer<Port>("mtu", 68, 9600,
            "Largest frame payload accepted. Set 9000 for jumbo frames.",
            [](Port& p) -> auto& { return p.mtu; }));
        v.push_back(boolean<Port>("promiscuous",
            "Receive frames not addressed to the port's MAC (what a capture wants).",
            [](Port& p) -> auto& { return p.promiscuous; }));
        v.push_back(choice<Port, Timestamps>("timestamps",
            {{"software", Timestamps::Software}, {"hardware", Timestamps::Hardware}},
            "Packet timestamps: \"software\" (TSC at receive, calibrated to ns) or \"hardware\" "
            "(the NIC's, where the port offers them; falls back to software with a warning).",
            [](Port& p) -> auto& { return p.timestamps; }));
        return v;
    }();
    return fields;
}

const std::vector<Section>& sections() {
    static const std::vector<Section> s = [] {
        std::vector<Section> v;
        v.push_back({"lcores", "Which lcores run which stages.", {}});
        auto& lc = v.back().fields;
        lc.push_back(choice<Config, Mode>("mode",
            {{"run-to-completion", Mode::RunToCompletion}, {"pipeline", Mode::Pipeline}},
            "\"run-to-completion\": every rx lcore runs all stages for its queues. \"pipeline\": rx lcores "
            "filter and batch, codec lcores compress and checksum, an egress lcore sends.",
            [](Config& c) -> auto& { return c.lcores.mode; }));
        lc.push_back(integer_list<Config>("rx", 0, 1023,
            "Lcores that poll NIC queues. Queues are dealt to them round-robin. Must not include the "
            "main lcore (the first of EAL's -l list).",
            [](Config& c) -> auto& { return c.lcores.rx; }));
        lc.push_back(integer_list<Config>("codec", 0, 1023,
            "Pipeline mode: lcores that compress and checksum frames. rx lcores are dealt to them.",
            [](Config& c) -> auto& { return c.lcores.codec; }));
        lc.push_back(integer_list<Config>("egress", 0, 1023,
            "Pipeline mode: the lcore that sends frames (exactly one). May equal a codec lcore.",
            [](Config& c) -> auto& { return c.lcores.egress; }));
        lc.push_back(integer<Config>("burst_size", 1, 512,
            "Packets per rte_eth_rx_burst call and per ring transfer.",
            [](Config& c) -> auto& { return c.lcores.burst_size; }));
        lc.push_back(integer<Config>("ring_size", 64, 65536,
            "Slots in each ring between pipeline stages.",
            [](Config& c) -> auto& { return c.lcores.ring_size; }, true));

        v.push_back({"mempool", "Packet buffers (mbufs) and frame buffers.", {}});
        auto& mp = v.back().fields;
        mp.push_back(integer<Config>("mbufs", 1023, 4194303,
            "mbufs in each per-socket packet pool. Must cover every rx descriptor plus the per-lcore "
            "caches and bursts in flight; rx_nombuf counts packets lost when it runs out.",
            [](Config& c) -> auto& { return c.mempool.mbufs; }));
        mp.push_back(integer<Config>("cache_size", 0, 512,
            "Per-lcore mbuf cache (rte_mempool cache).",
            [](Config& c) -> auto& { return c.mempool.cache_size; }));
        mp.push_back(integer<Config>("mbuf_size", 1024, 65535,
            "Data room of one mbuf, headroom included (2176 = 2048 + 128). Larger frames arrive as "
            "chains of mbufs.",
            [](Config& c) -> auto& { return c.mempool.mbuf_size; }));
        mp.push_back(integer<Config>("frame_buffers", 4, 65536,
            "Frame buffers per egress path (each batch.frame_size bytes, huge-page backed). They hold "
            "frames being filled, compressed, sent and awaiting acknowledgement.",
            [](Config& c) -> auto& { return c.mempool.frame_buffers; }));

        v.push_back({"capture", "What is kept of each packet.", {}});
        auto& cap = v.back().fields;
        cap.push_back(string<Config>("filter", "tcpdump expression, empty = all",
            "Keep only packets matching this tcpdump/BPF expression, e.g. \"tcp port 443 or udp\". "
            "Empty keeps everything. Dropped packets count in 'filtered'.",
            [](Config& c) -> auto& { return c.capture.filter; }));
        cap.push_back(integer<Config>("snaplen", 64, 65535,
            "Bytes kept of each packet; the original length is recorded too.",
            [](Config& c) -> auto& { return c.capture.snaplen; }));
        cap.push_back(choice<Config, Overflow>("overflow",
            {{"drop", Overflow::Drop}, {"backpressure", Overflow::Backpressure}},
            "When a ring or pool downstream is full: \"drop\" counts the packet and goes on; "
            "\"backpressure\" stops polling the NIC so the NIC counts imissed instead.",
            [](Config& c) -> auto& { return c.capture.overflow; }));

        v.push_back({"batch", "How packets are grouped into frames.", {}});
        auto& b = v.back().fields;
        b.push_back(integer<Config>("frame_size", 16384, 16777216,
            "Largest frame in bytes (header and records, before compression). Bigger frames compress "
            "better and cost fewer sends; smaller ones bound latency and memory.",
            [](Config& c) -> auto& { return c.batch.frame_size; }));
        b.push_back(integer<Config>("flush_timeout_us", 10, 10000000,
            "A partly filled frame is sent after this many microseconds, so latency stays bounded "
            "at low packet rates.",
            [](Config& c) -> auto& { return c.batch.flush_timeout_us; }));

        v.push_back({"codec", "Compression of frames.", {}});
        auto& cd = v.back().fields;
        cd.push_back(choice<Config, CodecType>("type",
            {{"none", CodecType::None}, {"lz4", CodecType::Lz4}, {"zstd", CodecType::Zstd}},
            "\"lz4\" is fast (about 0.8 GB/s per core on capture data); \"zstd\" compresses better "
            "but slower; \"none\" sends records as they are.",
            [](Config& c) -> auto& { return c.codec.type; }));
        cd.push_back(integer<Config>("lz4_acceleration", 1, 65537,
            "LZ4 acceleration: higher is faster and compresses less.",
            [](Config& c) -> auto& { return c.codec.lz4_acceleration; }));
        cd.push_back(integer<Config>("zstd_level", -7, 22,
            "Zstd level: negative levels are fastest, 1-3 a good balance, above 9 rarely keeps up "
            "with a link.",
            [](Config& c) -> auto& { return c.codec.zstd_level; }));
        cd.push_back(integer<Config>("min_size", 0, 16777216,
            "Frames smaller than this are sent uncompressed (compression would cost more than it "
            "saves).",
            [](Config& c) -> auto& { return c.codec.min_size; }));

        v.push_back({"simd", "CPU instruction set used by checksum, CRC and hash kernels.", {}});
        v.back().fields.push_back(choice<Config, SimdLevel>("level",
            {{"auto", SimdLevel::Auto}, {"scalar", SimdLevel::Scalar}, {"sse4.2", SimdLevel::Sse42},
             {"avx2", SimdLevel::Avx2}, {"avx512", SimdLevel::Avx512}},
            "\"auto\" picks the fastest the CPU has. Force a lower level to compare, or under "
            "valgrind (which cannot run AVX-512). The SLUICE_SIMD environment variable overrides it.",
            [](Config& c) -> auto& { return c.simd.level; }));

        v.push_back({"egress", "Where frames go.", {}});
        auto& e = v.back().fields;
        e.push_back(choice<Config, EgressType>("type",
            {{"tcp", EgressType::Tcp}, {"rdma", EgressType::Rdma}, {"file", EgressType::File},
             {"null", EgressType::Null}},
            "\"tcp\" or \"rdma\" to a sluice-collector; \"file\" appends frames to egress.path "
            "(read it with sluice-decode); \"null\" discards frames (for measuring).",
            [](Config& c) -> auto& { return c.egress.type; }));
        e.push_back(string<Config>("address", "host:port",
            "The collector, for tcp and rdma: \"192.0.2.10:7700\", \"[2001:db8::1]:7700\" or "
            "\"collector.example.net:7700\".",
            [](Config& c) -> auto& { return c.egress.address; }));
        e.push_back(string<Config>("path", "file path",
            "For type = \"file\": the file frames are appended to. With several egress streams each "
            "gets its own file, suffixed .<stream id>.",
            [](Config& c) -> auto& { return c.egress.path; }));
        e.push_back(string<Config>("key_file", "file path, empty = no key",
            "Pre-shared key proving this sender to the collector (HMAC challenge-response). Required "
            "by a collector listening on a non-loopback address.",
            [](Config& c) -> auto& { return c.egress.key_file; }));
        e.push_back(integer<Config>("stream_id", 1, 4294967295LL,
            "Stream id of the first egress path; further paths (one per rx lcore in run-to-completion "
            "mode) take the next ids. The collector keeps one sequence space and one set of output "
            "interfaces per stream.",
            [](Config& c) -> auto& { return c.egress.stream_id; }));
        e.push_back(integer<Config>("reconnect_min_ms", 1, 60000,
            "First reconnect delay after a lost connection; doubles (with jitter) up to reconnect_max_ms.",
            [](Config& c) -> auto& { return c.egress.reconnect_min_ms; }));
        e.push_back(integer<Config>("reconnect_max_ms", 1, 600000,
            "Longest reconnect delay.",
            [](Config& c) -> auto& { return c.egress.reconnect_max_ms; }));
        e.push_back(integer<Config>("heartbeat_ms", 0, 60000,
            "Heartbeat interval on an idle connection; 0 disables heartbeats.",
            [](Config& c) -> auto& { return c.egress.heartbeat_ms; }));
        e.push_back(integer<Config>("timeout_ms", 100, 600000,
            "A connection with no acknowledgement or heartbeat from the collector for this long is "
            "dropped and re-established.",
            [](Config& c) -> auto& { return c.egress.timeout_ms; }));
        e.push_back(integer<Config>("retransmit_frames", 1, 65536,
            "Frames kept until the collector acknowledges them, replayed after a reconnect. When full, "
            "capture.overflow applies (drop: counted in retransmit_overflow). Must be below "
            "mempool.frame_buffers.",
            [](Config& c) -> auto& { return c.egress.retransmit_frames; }));
        e.push_back(integer<Config>("sndbuf_bytes", 0, 1073741824,
            "TCP socket send buffer (SO_SNDBUF); 0 keeps the kernel's default.",
            [](Config& c) -> auto& { return c.egress.sndbuf_bytes; }));
        e.push_back(boolean<Config>("zerocopy",
            "TCP: send large frames with MSG_ZEROCOPY.",
            [](Config& c) -> auto& { return c.egress.zerocopy; }));
        e.push_back(integer<Config>("shutdown_timeout_ms", 0, 600000,
            "At shutdown, how long to wait for the collector to acknowledge the last frames.",
            [](Config& c) -> auto& { return c.egress.shutdown_timeout_ms; }));
        e.push_back(integer<Config>("rdma_inline_size", 0, 4096,
            "RDMA: frames up to this size are sent inline (capped by the device's max_inline_data).",
            [](Config& c) -> auto& { return c.egress.rdma.inline_size; }));
        e.push_back(integer<Config>("rdma_signal_interval", 1, 1024,
            "RDMA: request a completion every this many work requests.",
            [](Config& c) -> auto& { return c.egress.rdma.signal_interval; }));
        e.push_back(integer<Config>("rdma_queue_depth", 4, 16384,
            "RDMA: send queue depth (work requests in flight).",
            [](Config& c) -> auto& { return c.egress.rdma.queue_depth; }));
        e.push_back(string<Config>("rdma_source", "address, empty = the route's",
            "RDMA: the local address to connect from, which picks the RDMA device (its netdev's "
            "address). Needed when several devices could reach the collector.",
            [](Config& c) -> auto& { return c.egress.rdma.source; }));

        v.push_back({"stats", "What sluice reports.", {}});
        auto& st = v.back().fields;
        st.push_back(integer<Config>("interval_s", 0, 3600,
            "Seconds between stats lines on stdout; 0 prints only the summary at exit.",
            [](Config& c) -> auto& { return c.stats.interval_s; }));
        st.push_back(string<Config>("summary_json", "file path, empty = none",
            "Write the exit summary as JSON to this file (\"-\" for stdout).",
            [](Config& c) -> auto& { return c.stats.summary_json; }));
        st.push_back(boolean<Config>("telemetry",
            "Register /sluice/stats, /sluice/rings and /sluice/pools with DPDK telemetry "
            "(read them with dpdk-telemetry.py).",
            [](Config& c) -> auto& { return c.stats.telemetry; }));
        return v;
    }();
    return s;
}
// clang-format on

// Defaults as TOML literals, read from a default-constructed Config.
template <class Owner>
std::string default_of(const Field<Owner>& f) {
    static const Owner defaults{};
    return f.show(defaults);
}

// ---- validation of single values -----------------------------------------------

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

void suggest(std::string& msg, std::string_view word, const std::vector<std::string>& candidates,
             std::string_view prefix) {
    std::string_view best;
    std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(word, c);
        if (d < best_d) best_d = d, best = c;
    }
    if (!best.empty()) msg += " (did you mean '" + std::string(prefix) + std::string(best) + "'?)";
}

// Applies "a.b.c=value" overrides to the parsed table.
void apply_override(toml::table& root, const std::string& ov, const Sink& sink) {
    const auto eq = ov.find('=');
    if (eq == std::string::npos || eq == 0) {
        sink.error({}, ov, "an override must look like key=value, e.g. batch.frame_size=65536");
        return;
    }
    const std::string key = ov.substr(0, eq);
    const std::string text = ov.substr(eq + 1);
    toml::table parsed;
    try {
        parsed = toml::parse("v = " + text);
    } catch (const toml::parse_error&) {
        parsed = toml::table{{"v", text}};  // a bare word: take it as a string
    }
    toml::table* t = &root;
    std::size_t start = 0;
    for (;;) {
        const auto dot = key.find('.', start);
        const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
        if (dot == std::string::npos) {
            t->insert_or_assign(part, *parsed.get("v"));
            return;
        }
        auto* next = t->get(part);
        if (!next) {
            t->insert(part, toml::table{});
            next = t->get(part);
        }
        if (!next->is_table()) {
            sink.error({}, key, "cannot override inside '" + part + "': it is not a table");
            return;
        }
        t = next->as_table();
        start = dot + 1;
    }
}

template <class Owner>
void read_table(Owner& owner, const toml::table& table, const std::vector<Field<Owner>>& fields,
                const std::string& prefix, const Sink& sink,
                std::map<std::string, Position>& positions,
                const std::vector<std::string>& all_keys) {
    std::vector<std::string> names;
    for (const auto& f : fields)
        names.push_back(f.name);
    for (const auto& [k, node] : table) {
        const std::string name(k.str());
        const std::string dotted = prefix + name;
        auto it = std::find_if(fields.begin(), fields.end(),
                               [&](const auto& f) { return f.name == name; });
        if (it == fields.end()) {
            std::string msg = "unknown key";
            const std::size_t before = msg.size();
            suggest(msg, name, names, prefix);
            if (msg.size() == before) {
                // Maybe it belongs to another section.
                for (const auto& full : all_keys) {
                    const auto leaf = full.substr(full.rfind('.') + 1);
                    if (leaf == name) {
                        msg += " (did you mean '" + full + "'? it belongs in [" +
                               full.substr(0, full.rfind('.')) + "])";
                        break;
                    }
                }
            }
            sink.error(pos_of(k.source()), dotted, msg);
            continue;
        }
        positions[dotted] = pos_of(node.source());
        it->read(owner, node, dotted, sink);
    }
    for (const auto& f : fields) {
        if (f.required && !table.contains(f.name)) {
            sink.error(pos_of(table.source()), prefix + f.name,
                       "missing: this key is required (" + f.range + ")");
        }
    }
}

// ---- cross-field checks -----------------------------------------------------------

// The smallest batch.frame_size holds the largest frame the largest MTU admits
// (two VLAN tags and the FCS included), so an empty frame always takes a whole
// packet and no frame-size/snaplen check is needed. Anything longer (e.g. from
// LRO) is cut to fit and counted by the dataplane.
static_assert(min_frame_size(9600 + 14 + 8 + 4) <= 16384);

void check(Config& c, const Sink& sink, bool have_ports_key) {
    auto at = [&](const std::string& key) { return c.position_of(key); };

    if (c.ports.empty() && !have_ports_key) {
        sink.error({1, 1}, "ports",
                   "no port configured: add at least one [[ports]] table with a name, e.g. "
                   "[[ports]] name = \"0000:3b:00.0\"");
    }
    std::set<std::string> seen;
    uint32_t total_queues = 0, total_desc = 0;
    for (std::size_t i = 0; i < c.ports.size(); ++i) {
        const auto& p = c.ports[i];
        const std::string key = "ports[" + std::to_string(i) + "].name";
        total_queues += p.rx_queues;
        total_desc += p.rx_queues * p.rx_descriptors;
        if (p.name.empty()) continue;  // reported as missing
        std::string why;
        if (!is_pci_address(p.name) && !is_vdev_string(p.name, &why)) {
            sink.error(at(key), key,
                       "expected a PCI address such as \"0000:3b:00.0\" or a vdev string such as "
                       "\"net_pcap0,rx_pcap=/tmp/in.pcap\", found " +
                           quote(p.name) + (why.empty() ? "" : " (" + why + ")"));
        }
        if (!seen.insert(std::string(device_name(p.name))).second) {
            sink.error(at(key), key, "port " + quote(device_name(p.name)) + " is configured twice");
        }
        if (p.rss_symmetric && !p.rss) {
            sink.warning(at("ports[" + std::to_string(i) + "].rss_symmetric"),
                         "ports[" + std::to_string(i) + "].rss_symmetric",
                         "has no effect with rss = false");
        }
    }

    const auto& l = c.lcores;
    std::set<uint32_t> rx(l.rx.begin(), l.rx.end());
    if (rx.size() != l.rx.size()) {
        sink.error(at("lcores.rx"), "lcores.rx", "an lcore is listed twice");
    }
    if (l.rx.empty()) {
        sink.error(at("lcores.rx"), "lcores.rx", "expected at least one rx lcore, found none");
    }
    if (!c.ports.empty() && total_queues < l.rx.size()) {
        sink.error(at("lcores.rx"), "lcores.rx",
                   std::to_string(l.rx.size()) + " rx lcores but only " +
                       std::to_string(total_queues) +
                       " rx queues in all ports: an lcore without a queue would idle; raise "
                       "ports.rx_queues or list fewer lcores");
    }
    if (l.mode == Mode::RunToCompletion) {
        for (const auto& [key, list] :
             {std::pair{"lcores.codec", &l.codec}, std::pair{"lcores.egress", &l.egress}}) {
            if (!list->empty()) {
                sink.error(at(key), key,
                           "only used in pipeline mode: remove it, or set lcores.mode = "
                           "\"pipeline\"");
            }
        }
    } else {
        if (l.codec.empty()) {
            sink.error(at("lcores.mode"), "lcores.codec",
                       "pipeline mode needs codec lcores, e.g. codec = [2]");
        }
        if (l.egress.size() != 1) {
            sink.error(at(l.egress.empty() ? "lcores.mode" : "lcores.egress"), "lcores.egress",
                       "pipeline mode needs exactly one egress lcore, e.g. egress = [2], found " +
                           std::to_string(l.egress.size()));
        }
        for (uint32_t x : l.codec) {
            if (rx.count(x)) {
                sink.error(at("lcores.codec"), "lcores.codec",
                           "lcore " + std::to_string(x) + " is also an rx lcore; give it one role");
            }
        }
        for (uint32_t x : l.egress) {
            if (rx.count(x)) {
                sink.error(at("lcores.egress"), "lcores.egress",
                           "lcore " + std::to_string(x) + " is also an rx lcore; give it one role");
            }
        }
    }

    const uint64_t needed =
        static_cast<uint64_t>(total_desc) +
        static_cast<uint64_t>(l.rx.size()) * (c.mempool.cache_size * 3ull / 2 + l.burst_size);
    if (!c.ports.empty() && c.mempool.mbufs < needed) {
        sink.error(at("mempool.mbufs"), "mempool.mbufs",
                   "expected at least " + std::to_string(needed) + " (rx descriptors " +
                       std::to_string(total_desc) + " + per-lcore caches and bursts), found " +
                       std::to_string(c.mempool.mbufs) +
                       ": with fewer, queues cannot be filled and rx_nombuf grows");
    }
    if (c.egress.reconnect_min_ms > c.egress.reconnect_max_ms) {
        sink.error(
            at("egress.reconnect_min_ms"), "egress.reconnect_min_ms",
            "expected at most reconnect_max_ms = " + std::to_string(c.egress.reconnect_max_ms) +
                ", found " + std::to_string(c.egress.reconnect_min_ms));
    }
    if (c.egress.retransmit_frames >= c.mempool.frame_buffers) {
        sink.error(at("egress.retransmit_frames"), "egress.retransmit_frames",
                   "expected less than mempool.frame_buffers = " +
                       std::to_string(c.mempool.frame_buffers) +
                       " (frames awaiting acknowledgement hold frame buffers; some must stay free "
                       "for filling), found " +
                       std::to_string(c.egress.retransmit_frames));
    }
    if (c.egress.type == EgressType::Tcp || c.egress.type == EgressType::Rdma) {
        HostPort hp;
        std::string why;
        if (!parse_host_port(c.egress.address, hp, &why)) {
            sink.error(at("egress.address"), "egress.address",
                       "expected host:port such as \"192.0.2.10:7700\" or \"[2001:db8::1]:7700\", "
                       "found " +
                           quote(c.egress.address) + " (" + why + ")");
        }
    }
    if (c.egress.type == EgressType::Rdma &&
        c.egress.rdma.signal_interval > c.egress.rdma.queue_depth / 2) {
        sink.error(at("egress.rdma_signal_interval"), "egress.rdma_signal_interval",
                   "expected at most rdma_queue_depth / 2 = " +
                       std::to_string(c.egress.rdma.queue_depth / 2) +
                       " (the send queue must hold two signal intervals), found " +
                       std::to_string(c.egress.rdma.signal_interval));
    }
    if (c.egress.type == EgressType::File && c.egress.path.empty()) {
        sink.error(at("egress.type"), "egress.path",
                   "egress.type = \"file\" needs egress.path, the file frames are written to");
    }
}

}  // namespace

// ---- public ---------------------------------------------------------------------

Position Config::position_of(std::string_view key) const {
    auto it = positions.find(std::string(key));
    if (it != positions.end()) return it->second;
    // A key left at its default: point at its section, if the file has it.
    const auto dot = key.find('.');
    if (dot != std::string_view::npos) {
        it = positions.find(std::string(key.substr(0, dot)));
        if (it != positions.end()) return it->second;
    }
    return {};
}

std::string Diagnostic::str() const {
    std::string s = file;
    if (where.line) s += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
    s += warning ? ": warning: " : ": error: ";
    if (!key.empty()) s += key + ": ";
    return s + message;
}

bool LoadResult::ok() const {
    return error_count() == 0;
}

std::size_t LoadResult::error_count() const {
    return static_cast<std::size_t>(std::count_if(diagnostics.begin(), diagnostics.end(),
                                                  [](const Diagnostic& d) { return !d.warning; }));
}

LoadResult load_string(std::string_view text, std::string_view source_name,
                       std::span<const std::string> overrides) {
    LoadResult r;
    r.config.source = std::string(source_name);
    Sink sink{std::string(source_name), &r.diagnostics};
    toml::table root;
    try {
        root = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        sink.error(pos_of(e.source()), "", "malformed TOML: " + std::string(e.description()));
        return r;
    }
    for (const auto& ov : overrides)
        apply_override(root, ov, sink);

    std::vector<std::string> all_keys;
    for (const auto& s : sections()) {
        for (const auto& f : s.fields)
            all_keys.push_back(s.name + "." + f.name);
    }
    std::vector<std::string> section_names{"ports"};
    for (const auto& s : sections())
        section_names.push_back(s.name);

    bool have_ports_key = false;
    for (const auto& [k, node] : root) {
        const std::string name(k.str());
        if (name == "ports") {
            have_ports_key = true;
            r.config.positions["ports"] = pos_of(node.source());
            const auto* arr = node.as_array();
            if (!arr || !arr->is_array_of_tables()) {
                sink.error(pos_of(node.source()), "ports",
                           "expected [[ports]] tables (one per NIC port), found " + describe(node));
                continue;
            }
            if (arr->empty()) {
                sink.error(pos_of(node.source()), "ports",
                           "expected at least one port, found none");
            }
            std::vector<std::string> port_keys;
            for (const auto& f : port_fields())
                port_keys.push_back("ports." + f.name);
            for (std::size_t i = 0; i < arr->size(); ++i) {
                Port p;
                const std::string prefix = "ports[" + std::to_string(i) + "].";
                read_table(p, *arr->get(i)->as_table(), port_fields(), prefix, sink,
                           r.config.positions, port_keys);
                r.config.positions["ports[" + std::to_string(i) + "]"] =
                    pos_of(arr->get(i)->source());
                r.config.ports.push_back(std::move(p));
            }
            continue;
        }
        auto sec = std::find_if(sections().begin(), sections().end(),
                                [&](const Section& s) { return s.name == name; });
        if (sec == sections().end()) {
            std::string msg = "unknown key";
            const std::size_t before = msg.size();
            suggest(msg, name, section_names, "");
            if (msg.size() == before && !node.is_table()) {
                for (const auto& full : all_keys) {
                    if (full.substr(full.find('.') + 1) == name) {
                        msg += " (did you mean '" + full + "'? it belongs in [" +
                               full.substr(0, full.find('.')) + "])";
                        break;
                    }
                }
            }
            sink.error(pos_of(k.source()), name, msg);
            continue;
        }
        r.config.positions[name] = pos_of(node.source());
        if (!node.is_table()) {
            sink.error(pos_of(node.source()), name,
                       "expected a table [" + name + "], found " + describe(node));
            continue;
        }
        read_table(r.config, *node.as_table(), sec->fields, name + ".", sink, r.config.positions,
                   all_keys);
    }
    check(r.config, sink, have_ports_key);
    std::stable_sort(
        r.diagnostics.begin(), r.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
            return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
        });
    return r;
}

LoadResult load_file(const std::filesystem::path& path, std::span<const std::string> overrides) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        LoadResult r;
        r.config.source = path.string();
        std::error_code ec;
        const bool exists = std::filesystem::exists(path, ec);
        r.diagnostics.push_back(
            Diagnostic{path.string(),
                       {},
                       "",
                       exists ? "cannot read the file (check its permissions)"
                              : "no such file (the example config is config/sluice.toml)",
                       false});
        return r;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return load_string(ss.str(), path.string(), overrides);
}

std::string to_toml(const Config& c) {
    std::string out = "# effective configuration";
    if (!c.source.empty()) out += " of " + c.source;
    out += " (defaults filled in)\n";
    for (const auto& p : c.ports) {
        out += "\n[[ports]]\n";
        for (const auto& f : port_fields())
            out += f.name + " = " + f.show(p) + "\n";
    }
    for (const auto& s : sections()) {
        out += "\n[" + s.name + "]\n";
        for (const auto& f : s.fields)
            out += f.name + " = " + f.show(c) + "\n";
    }
    return out;
}

const std::vector<KeyInfo>& schema() {
    static const std::vector<KeyInfo> keys = [] {
        std::vector<KeyInfo> v;
        for (const auto& f : port_fields()) {
            v.push_back({"ports[]." + f.name, f.type, f.required ? "" : default_of(f), f.range,
                         f.help, f.required});
        }
        for (const auto& s : sections()) {
            for (const auto& f : s.fields) {
                v.push_back(
                    {s.name + "." + f.name, f.type, default_of(f), f.range, f.help, f.required});
            }
        }
        return v;
    }();
    return keys;
}

std::string schema_markdown() {
    auto cell = [](std::string s) {
        for (std::size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2)
            s.insert(i, "\\");
        return s;
    };
    std::string out;
    std::string current;
    for (const auto& k : schema()) {
        const std::string section =
            k.key.rfind("ports[]", 0) == 0 ? "ports" : k.key.substr(0, k.key.find('.'));
        if (section != current) {
            current = section;
            std::string help = "One `[[ports]]` table per NIC port.";
            for (const auto& s : sections()) {
                if (s.name == section) help = s.help;
            }
            out += "\n### `[" + std::string(section == "ports" ? "[ports]]" : section + "]") +
                   "`\n\n" + help +
                   "\n\n| key | type | default | range | what it does |\n"
                   "|---|---|---|---|---|\n";
        }
        out += "| `" + k.key + "` | " + k.type + " | " +
               (k.required ? std::string("required") : "`" + cell(k.default_value) + "`") + " | " +
               cell(k.range) + " | " + cell(k.help) + " |\n";
    }
    return out;
}

bool is_pci_address(std::string_view s) {
    // [DDDD:]BB:DD.F
    auto hex_run = [&](std::size_t at, std::size_t n) {
        if (at + n > s.size()) return false;
        for (std::size_t i = 0; i < n; ++i) {
            if (!is_hex(s[at + i])) return false;
        }
        return true;
    };
    std::size_t i = 0;
    if (s.size() == 12) {
        if (!hex_run(0, 4) || s[4] != ':') return false;
        i = 5;
    } else if (s.size() != 7) {
        return false;
    }
    return hex_run(i, 2) && s[i + 2] == ':' && hex_run(i + 3, 2) && s[i + 5] == '.' &&
           s[i + 6] >= '0' && s[i + 6] <= '7';
}

bool is_vdev_string(std::string_view s, std::string* why) {
    auto fail = [&](std::string w) {
        if (why) *why = std::move(w);
        return false;
    };
    const std::string_view name = device_name(s);
    if (name.substr(0, 4) != "net_") {
        return fail("a vdev name starts with net_, e.g. net_pcap0");
    }
    if (name.size() == 4) return fail("the driver name is missing after net_");
    for (char ch : name) {
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_')) {
            return fail("the vdev name may hold only letters, digits and _");
        }
    }
    std::size_t start = name.size();
    while (start < s.size()) {
        ++start;  // the comma
        auto end = s.find(',', start);
        if (end == std::string_view::npos) end = s.size();
        const auto arg = s.substr(start, end - start);
        const auto eq = arg.find('=');
        if (arg.empty()) return fail("empty argument between commas");
        if (eq == 0 || eq == std::string_view::npos) {
            return fail("argument '" + std::string(arg) + "' is not key=value");
        }
        start = end;
    }
    return true;
}

std::string_view device_name(std::string_view port_name) {
    return port_name.substr(0, port_name.find(','));
}

bool parse_host_port(std::string_view s, HostPort& out, std::string* why) {
    auto fail = [&](std::string w) {
        if (why) *why = std::move(w);
        return false;
    };
    std::string_view host, port;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos) return fail("missing ']' after an IPv6 address");
        host = s.substr(1, close - 1);
        if (close + 1 >= s.size() || s[close + 1] != ':') return fail("missing :port");
        port = s.substr(close + 2);
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos) return fail("missing :port");
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return fail("write an IPv6 address in brackets: [2001:db8::1]:7700");
        }
    }
    if (host.empty()) return fail("missing host");
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
        return fail("port must be a number in 1..65535");
    }
    out.host = std::string(host);
    out.port = static_cast<uint16_t>(value);
    return true;
}

std::string_view to_string(Mode m) {
    return m == Mode::Pipeline ? "pipeline" : "run-to-completion";
}
std::string_view to_string(Overflow o) {
    return o == Overflow::Drop ? "drop" : "backpressure";
}
std::string_view to_string(CodecType t) {
    switch (t) {
        case CodecType::None:
            return "none";
        case CodecType::Lz4:
            return "lz4";
        case CodecType::Zstd:
            return "zstd";
    }
    return "?";
}
std::string_view to_string(EgressType t) {
    switch (t) {
        case EgressType::Tcp:
            return "tcp";
        case EgressType::Rdma:
            return "rdma";
        case EgressType::File:
            return "file";
        case EgressType::Null:
            return "null";
    }
    return "?";
}
std::string_view to_string(Timestamps t) {
    return t == Timestamps::Hardware ? "hardware" : "software";
}
std::string_view to_string(SimdLevel l) {
    switch (l) {
        case SimdLevel::Auto:
            return "auto";
        case SimdLevel::Scalar:
            return "scalar";
        case SimdLevel::Sse42:
            return "sse4.2";
        case SimdLevel::Avx2:
            return "avx2";
        case SimdLevel::Avx512:
            return "avx512";
    }
    return "?";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    // Optimal string alignment distance: insertions, deletions, substitutions
    // and transpositions of neighbours ("fiel" -> "feil") each cost one.
    const std::size_t w = b.size() + 1;
    std::vector<std::size_t> d((a.size() + 1) * w);
    for (std::size_t i = 0; i <= a.size(); ++i)
        d[i * w] = i;
    for (std::size_t j = 0; j <= b.size(); ++j)
        d[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            std::size_t v = std::min(
                {d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                v = std::min(v, d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    return d[a.size() * w + b.size()];
}

}  // namespace sluice::config
