// The field table: every key of sluice.toml, its type, range, default and
// the help an operator reads (docs/configuration.md is generated from it),
// and what is derived from it: --print-config and the schema listing.
#include "schema.hpp"

namespace sluice::config {
namespace detail {

// clang-format off
const std::vector<Field<Port>>& port_fields() {
    static const std::vector<Field<Port>> fields = [] {
        std::vector<Field<Port>> v;
        v.push_back(string<Port>("name", "PCI address or vdev string",
            "The NIC: a PCI address bound to a DPDK driver (\"0000:3b:00.0\"), or a virtual device "
            "string (\"net_pcap0,rx_pcap=/tmp/in.pcap\", \"net_null0\", \"net_memif0,role=client\").",
            [](Port& p) -> auto& { return p.name; }, true));
        v.push_back(integer<Port>("rx_queues", 1, 64,
            "Receive queues on this port. More than one spreads flows across rx lcores with RSS "
            "(in software where the port has none: see rss).",
            [](Port& p) -> auto& { return p.rx_queues; }));
        v.push_back(integer<Port>("rx_descriptors", 64, 16384,
            "Descriptors per receive queue: the NIC's buffer for bursts the lcore has not yet polled. "
            "Raise it when imissed grows during short bursts.",
            [](Port& p) -> auto& { return p.rx_descriptors; }, true));
        v.push_back(boolean<Port>("rss",
            "Spread flows across rx_queues by the NIC's RSS hash (only with rx_queues > 1). A port "
            "without RSS, or with fewer queues, is polled on one queue and its packets dealt by a "
            "software Toeplitz hash of their 5-tuple. false: each queue gets what the driver gives "
            "it.",
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
            "(the NIC's RX timestamps, converted to ns with the NIC's clock; a port that offers none "
            "is an error naming it. net_pcap gives the pcap records' times, in microseconds).",
            [](Port& p) -> auto& { return p.timestamps; }));
        return v;
    }();
    return fields;
}

const std::vector<Field<Slice>>& slice_fields() {
    static const std::vector<Field<Slice>> fields = [] {
        std::vector<Field<Slice>> v;
        v.push_back(string<Slice>("filter", "tcpdump expression",
            "The packets this rule cuts, e.g. \"tcp port 443\". With capture.decap = \"match\" or "
            "\"strip\" it sees the inner headers, as capture.filter does.",
            [](Slice& s) -> auto& { return s.filter; }, true));
        v.push_back(integer<Slice>("snaplen", 64, 65535,
            "Bytes kept of the packets this rule matches (the original length is recorded too). "
            "May be above capture.snaplen, to keep whole what the rest is cut from.",
            [](Slice& s) -> auto& { return s.snaplen; }));
        v.back().required = true;
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
        lc.push_back(integer<Config>("burst_size", 1, kMaxBurst,
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
            "Empty keeps everything. Dropped packets count in 'filtered'. Changeable while "
            "capturing: sluice-ctl filter EXPRESSION (needs stats.telemetry).",
            [](Config& c) -> auto& { return c.capture.filter; }));
        cap.push_back(integer<Config>("snaplen", 64, 65535,
            "Bytes kept of each packet; the original length is recorded too.",
            [](Config& c) -> auto& { return c.capture.snaplen; }));
        cap.push_back(choice<Config, Overflow>("overflow",
            {{"drop", Overflow::Drop}, {"backpressure", Overflow::Backpressure}},
            "When a ring or pool downstream is full: \"drop\" counts the packet and goes on; "
            "\"backpressure\" stops polling the NIC so the NIC counts imissed instead.",
            [](Config& c) -> auto& { return c.capture.overflow; }));
        cap.push_back(boolean<Config>("verify_checksums",
            "Check the IPv4 header, TCP and UDP checksums of every captured packet (with the NIC's "
            "checksum offload where the port has it, else in software) and count the failures per "
            "queue (ipv4_checksum_bad, tcp_checksum_bad, udp_checksum_bad); each record carries "
            "the verdicts. Packets are kept as they are.",
            [](Config& c) -> auto& { return c.capture.verify_checksums; }));
        cap.push_back(boolean<Config>("pdump",
            "Let dpdk-dumpcap and dpdk-pdump attach to sluice's ports as secondary processes "
            "(rte_pdump_init) to copy what a port receives, as with any DPDK application. Costs "
            "nothing until one attaches; then each copied packet costs a copy on the receiving "
            "lcore. Needs EAL's shared files: not with --in-memory (give the tool the same "
            "--file-prefix as sluice).",
            [](Config& c) -> auto& { return c.capture.pdump; }));
        cap.push_back(choice<Config, Decap>("decap",
            {{"none", Decap::None}, {"match", Decap::Match}, {"strip", Decap::Strip}},
            "Tunnels and tags (802.1Q/QinQ, MPLS, GRE, ERSPAN II/III, VXLAN, Geneve): \"none\" "
            "treats packets as they arrive; \"match\" lets capture.filter and the slice rules see "
            "the innermost packet and writes the packet whole; \"strip\" writes the innermost "
            "packet (ERSPAN's session and timestamp go into the pcapng packet comment). A "
            "truncated or malformed tunnel header is counted (tunnel_truncated, tunnel_malformed) "
            "and its packet kept as it arrived.",
            [](Config& c) -> auto& { return c.capture.decap; }));
        cap.push_back(boolean<Config>("dedup",
            "Drop packets identical to one seen within the dedup window, as a SPAN session "
            "mirroring both directions of a link delivers them: the same bytes, the TTL or hop "
            "limit and the IPv4 header checksum aside. Counted in 'deduplicated'. With decap = "
            "\"strip\" the inner packets are compared.",
            [](Config& c) -> auto& { return c.capture.dedup; }));
        cap.push_back(integer<Config>("dedup_window_us", 1, 10000000,
            "A copy counts as a duplicate only this many microseconds after the packet it "
            "repeats (by the packets' timestamps).",
            [](Config& c) -> auto& { return c.capture.dedup_window_us; }));
        cap.push_back(integer<Config>("dedup_window_packets", 16, 1048576,
            "... and only within this many packets after it (per rx lcore). Sets the table's "
            "memory: 32 bytes per packet of window, times two.",
            [](Config& c) -> auto& { return c.capture.dedup_window_packets; }));

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
             {"null", EgressType::Null}, {"jetstream", EgressType::JetStream}},
            "\"tcp\" or \"rdma\" to a sluice-collector; \"jetstream\" publishes to a NATS JetStream "
            "stream that a group of collectors reads (egress.urls, docs/scale-out.md); \"file\" "
            "appends frames to egress.path (read it with sluice-decode); \"null\" discards frames "
            "(for measuring).",
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
        e.push_back(string<Config>("tls_ca", "file path, empty = no TLS",
            "TCP: encrypt the stream with TLS 1.3, trusting a collector whose certificate this CA "
            "(PEM) signed: the collector's --tls-cert. Setting it turns TLS on. The key proof "
            "(key_file), when set, runs inside TLS as a second factor.",
            [](Config& c) -> auto& { return c.egress.tls_ca; }));
        e.push_back(string<Config>("tls_cert", "file path, empty = none",
            "TLS: this sender's certificate (PEM, its chain after it), for a collector started "
            "with --tls-ca, which requires one signed by that CA. Needs tls_key and tls_ca.",
            [](Config& c) -> auto& { return c.egress.tls_cert; }));
        e.push_back(string<Config>("tls_key", "file path, empty = none",
            "TLS: the private key of tls_cert (PEM, not encrypted; keep it chmod 600).",
            [](Config& c) -> auto& { return c.egress.tls_key; }));
        e.push_back(string<Config>("tls_server_name", "name, empty = the host of address",
            "TLS: the name (or IP address) the collector's certificate must carry; set it when "
            "address names the collector otherwise, e.g. by IP address.",
            [](Config& c) -> auto& { return c.egress.tls_server_name; }));
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
            "TCP: send large frames with MSG_ZEROCOPY (not with TLS).",
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
        e.push_back(string_list<Config>("urls", "\"host:port\", \"nats://host:port\", \"tls://host:port\"",
            "JetStream: NATS servers of the cluster, e.g. [\"nats1:4222\", \"nats2:4222\"]. Any one "
            "reachable is enough; list several so that sluice can connect while one is down.",
            [](Config& c) -> auto& { return c.egress.jetstream.urls; }));
        e.push_back(string<Config>("stream", "JetStream stream name",
            "JetStream: the stream frames go to; sluice creates it when missing and checks its "
            "settings when it exists (a difference is an error naming it).",
            [](Config& c) -> auto& { return c.egress.jetstream.stream; }));
        e.push_back(string<Config>("subject", "subject with {stream_id}",
            "JetStream: each egress stream's subject; {stream_id} (a whole token) becomes its id. "
            "The collector group must be given the same (--subject).",
            [](Config& c) -> auto& { return c.egress.jetstream.subject; }));
        e.push_back(integer<Config>("jetstream_replicas", 1, 5,
            "JetStream: copies of every frame, on different servers. A frame is released once a "
            "majority of them stored it; 3 survives the loss of one server of three.",
            [](Config& c) -> auto& { return c.egress.jetstream.replicas; }));
        e.push_back(integer<Config>("jetstream_max_age_s", 0, 31536000,
            "JetStream: frames are kept this long whether collected or not (0: no limit): how long "
            "the whole collector group may be down without loss.",
            [](Config& c) -> auto& { return c.egress.jetstream.max_age_s; }));
        e.push_back(integer<Config>("jetstream_max_bytes", 0, 4611686018427387904LL,
            "JetStream: the stream holds at most this many bytes (0: no limit but the servers' "
            "storage); at the limit, jetstream_discard applies.",
            [](Config& c) -> auto& { return c.egress.jetstream.max_bytes; }));
        e.push_back(integer<Config>("jetstream_duplicate_window_s", 1, 86400,
            "JetStream: a frame published again within this window (after a lost acknowledgement) "
            "is stored once; beyond it the collector still discards it by sequence.",
            [](Config& c) -> auto& { return c.egress.jetstream.duplicate_window_s; }));
        e.push_back(choice<Config, Discard>("jetstream_discard",
            {{"old", Discard::Old}, {"new", Discard::New}},
            "JetStream: at max_bytes, \"old\" drops the oldest frames (collectors count them lost) "
            "and \"new\" refuses new ones (the retransmit buffer fills and capture.overflow "
            "applies here).",
            [](Config& c) -> auto& { return c.egress.jetstream.discard; }));
        e.push_back(boolean<Config>("jetstream_create",
            "JetStream: create the stream when it does not exist (false: it must exist).",
            [](Config& c) -> auto& { return c.egress.jetstream.create_stream; }));
        e.push_back(string<Config>("nats_creds", "file path, empty = none",
            "JetStream: a NATS credentials file (user JWT and NKey seed).",
            [](Config& c) -> auto& { return c.egress.jetstream.creds; }));
        e.push_back(string<Config>("nats_user", "user name, empty = none",
            "JetStream: a NATS user, with its password in nats_password_file.",
            [](Config& c) -> auto& { return c.egress.jetstream.user; }));
        e.push_back(string<Config>("nats_password_file", "file path, empty = none",
            "JetStream: the file holding nats_user's password.",
            [](Config& c) -> auto& { return c.egress.jetstream.password_file; }));
        e.push_back(string<Config>("nats_token_file", "file path, empty = none",
            "JetStream: a file holding a NATS authentication token.",
            [](Config& c) -> auto& { return c.egress.jetstream.token_file; }));
        e.push_back(boolean<Config>("nats_tls",
            "JetStream: TLS to the NATS servers (implied by tls:// URLs and by the files below).",
            [](Config& c) -> auto& { return c.egress.jetstream.tls; }));
        e.push_back(string<Config>("nats_tls_ca", "file path, empty = the system's",
            "JetStream: CA certificates (PEM) the NATS servers' certificates are checked against.",
            [](Config& c) -> auto& { return c.egress.jetstream.tls_ca; }));
        e.push_back(string<Config>("nats_tls_cert", "file path, empty = none",
            "JetStream: this sender's certificate chain (PEM), for servers that verify clients.",
            [](Config& c) -> auto& { return c.egress.jetstream.tls_cert; }));
        e.push_back(string<Config>("nats_tls_key", "file path, empty = none",
            "JetStream: the key of nats_tls_cert (PEM).",
            [](Config& c) -> auto& { return c.egress.jetstream.tls_key; }));

        v.push_back({"stats", "What sluice reports.", {}});
        auto& st = v.back().fields;
        st.push_back(integer<Config>("interval_s", 0, 3600,
            "Seconds between stats lines on stdout; 0 prints only the summary at exit.",
            [](Config& c) -> auto& { return c.stats.interval_s; }));
        st.push_back(string<Config>("summary_json", "file path, empty = none",
            "Write the exit summary as JSON to this file (\"-\" for stdout).",
            [](Config& c) -> auto& { return c.stats.summary_json; }));
        st.push_back(boolean<Config>("telemetry",
            "Register /sluice/stats, /sluice/rings, /sluice/pools and /sluice/filter with DPDK "
            "telemetry (read them with sluice-ctl or dpdk-telemetry.py; sluice-ctl filter "
            "changes capture.filter while capturing).",
            [](Config& c) -> auto& { return c.stats.telemetry; }));
        st.push_back(string<Config>("prometheus", "ADDR:PORT, empty = none",
            "Serve every counter for Prometheus on GET http://ADDR:PORT/metrics (e.g. "
            "\"127.0.0.1:9470\"), from a control thread on the main lcore's CPU: the worker lcores "
            "are never involved. Anyone who reaches the address can read the metrics: keep it on "
            "loopback or a management network.",
            [](Config& c) -> auto& { return c.stats.prometheus; }));
        return v;
    }();
    return s;
}
// clang-format on

}  // namespace detail

using detail::default_of;
using detail::port_fields;
using detail::sections;
using detail::slice_fields;

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
        if (s.name != "capture") continue;
        for (const auto& sl : c.capture.slices) {
            out += "\n[[capture.slice]]\n";
            for (const auto& f : slice_fields())
                out += f.name + " = " + f.show(sl) + "\n";
        }
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
            if (s.name != "capture") continue;
            for (const auto& f : slice_fields()) {
                v.push_back({"capture.slice[]." + f.name, f.type, "", f.range, f.help, true});
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
            out += "\n### `[";
            out += section == "ports" ? "[ports]]" : section + "]";
            out += "`\n\n";
            out += help;
            out += "\n\n| key | type | default | range | what it does |\n|---|---|---|---|---|\n";
        }
        out += "| `" + k.key + "` | " + k.type + " | " +
               (k.required ? std::string("required") : "`" + cell(k.default_value) + "`") + " | " +
               cell(k.range) + " | " + cell(k.help) + " |\n";
    }
    return out;
}

}  // namespace sluice::config
