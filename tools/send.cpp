// sluice-send: replays a pcap to a sluice-collector the way sluice's egress
// stage does: packets become frames (FrameBuilder, FrameEncoder), frames go
// through a TcpSender, an RdmaSender or a JetStreamSender (the same session
// logic over each transport), buffers come back when the collector (or
// JetStream) acknowledges them. For tests, demos and checking a collector
// without a DPDK host.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pcap/pcap.h>

#include "sluice/jetstream/sender.hpp"
#include "sluice/rdma/sender.hpp"
#include "sluice/report/histogram.hpp"
#include "sluice/report/json.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/session/endpoint.hpp"
#include "sluice/session/key.hpp"
#include "sluice/tcp/sender.hpp"
#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice;

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2;

const char* kUsage = R"(usage: sluice-send --pcap FILE --to HOST:PORT [options]

Sends the packets of FILE to a sluice-collector as one sluice frame stream,
exactly as sluice's egress does (frames, sequence numbers, retransmission,
replay after a reconnect), then waits for every frame to be acknowledged.

  --to HOST:PORT           the collector: HOST:PORT or tcp://HOST:PORT over TCP,
                           rdma://HOST:PORT over RDMA ([V6]:PORT for IPv6);
                           jetstream://HOST:PORT[,HOST:PORT...] publishes to
                           NATS JetStream for a collector group to read
                           (docs/scale-out.md), waiting for JetStream to
                           store every frame
  --pcap FILE              packets to send (pcap; timestamps kept to the ns)
  --stream-id N            default 1
  --key-file F             pre-shared key (the collector's --key-file)
  --tls-ca F               TLS 1.3 (tcp:// only): the collector's certificate
                           must be signed by this CA (PEM) and name the host
                           of --to, or --tls-server-name
  --tls-cert F --tls-key F this sender's certificate and key, for a
                           collector started with --tls-ca
  --tls-server-name NAME   the name (or IP address) the collector's
                           certificate must carry (default: the host of --to)
  --codec none|lz4|zstd    default lz4
  --frame-size N           largest raw frame in bytes (default 262144)
  --snaplen N              bytes kept per packet (default 65535, or what
                           --frame-size holds)
  --queues N               spread packets over N queues, round robin (default 1)
  --ports N                ... and over N ports (default 1)
  --repeat N               send the file N times (default 1)
  --rate PPS               pace packets (default: as fast as possible)
  --flush-us N             send a partly filled frame after N us (default 1000)
  --retransmit-frames N    frames kept until acknowledged (default 48)
  --overflow drop|backpressure
                           when they are all held: drop the frame (counted,
                           listed in --report) or wait (default backpressure).
                           The last frame always waits, so a collector sees
                           every gap.
  --heartbeat-ms N  --timeout-ms N  --reconnect-min-ms N  --reconnect-max-ms N
  --zerocopy               MSG_ZEROCOPY for large sends
  --drain-timeout-ms N     wait this long at the end for the last ACKs
                           (default 60000)
  --give-up-ms N           exit 1 after N ms without a working connection
                           (default: never)
  --report FILE            write counts, dropped frames, sender counters, the
                           seconds from the first packet to the last
                           acknowledgement, and each frame's latency from its
                           first packet to its acknowledgement (p50, p99,
                           p99.9, max in ns: latency_ns), and in two parts:
                           to its submission (to_submit: the flush wait,
                           and any wait for room in the retransmit window)
                           and from there to the ACK (to_ack), as JSON
JetStream (--to jetstream://...):
  --jetstream-stream NAME  the JetStream stream (default SLUICE; created when
                           missing, checked when it exists)
  --subject TEMPLATE       default sluice.frames.{stream_id}
  --jetstream-replicas N   the stream's replicas (default 1; 3 survives the
                           loss of one server)
  --jetstream-max-age S    keep frames S seconds (default 86400; 0: no limit)
  --jetstream-max-bytes N  the stream holds at most N bytes (default: no limit)
  --jetstream-duplicate-window S
                           replays within S seconds are stored once (default 120)
  --jetstream-discard old|new
                           at a limit, drop the oldest frames (default) or
                           refuse new ones
  --nats-creds F  --nats-user U --nats-password-file F  --nats-token-file F
  --nats-tls  --nats-tls-ca F  --nats-tls-cert F  --nats-tls-key F
Exit codes: 0 every frame acknowledged; 1 not (timeout, gave up; the last
error is printed); 2 bad command line or unreadable file.
)";

struct Options {
    std::string pcap, to, key_file, report;
    std::string tls_ca, tls_cert, tls_key, tls_server_name;
    uint64_t stream_id = 1;
    wire::Codec codec = wire::Codec::Lz4;
    uint32_t frame_size = 262144, snaplen = 0, queues = 1, ports = 1, repeat = 1;
    uint64_t rate = 0, flush_us = 1000;
    uint32_t retransmit = 48, heartbeat_ms = 1000, timeout_ms = 5000, rmin = 100, rmax = 5000;
    bool drop = false, zerocopy = false;
    uint64_t drain_ms = 60000, give_up_ms = 0;
    jetstream::StreamSpec js;
    jetstream::ClientOptions nats;
};

struct Packet {
    uint64_t ts_ns;
    uint32_t orig_len;
    std::vector<std::byte> data;
};

std::vector<Packet> read_pcap(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p =
        pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) throw std::runtime_error(fmt::format("cannot read {}: {}", path, err));
    std::vector<Packet> v;
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        Packet pk;
        pk.ts_ns = uint64_t(h->ts.tv_sec) * 1'000'000'000u + uint64_t(h->ts.tv_usec);
        pk.orig_len = h->len;
        pk.data.assign(reinterpret_cast<const std::byte*>(d),
                       reinterpret_cast<const std::byte*>(d) + h->caplen);
        v.push_back(std::move(pk));
    }
    pcap_close(p);
    return v;
}

// One frame buffer: the raw frame, and the sealed copy when compressed.
struct Slot {
    std::unique_ptr<std::byte[]> raw, sealed;
    uint64_t first_packet_ns = 0;  // when its first packet was taken (monotonic)
    uint64_t submitted_ns = 0;     // when the sealed frame went to the sender
    bool busy = false;
};

template <class Sender>
class Run {
  public:
    Run(const Options& o, Sender& tx)
        : o_(o),
          tx_(tx),
          builder_({o.frame_size, o.snaplen}),
          encoder_({.codec = o.codec, .max_raw_frame_bytes = o.frame_size}),
          slots_(o.retransmit + 2) {
        for (auto& s : slots_) {
            s.raw = std::make_unique_for_overwrite<std::byte[]>(o.frame_size);
            s.sealed = std::make_unique_for_overwrite<std::byte[]>(
                wire::FrameEncoder::max_sealed_size(o.frame_size));
        }
    }

    // Sends every packet; false if it gave up.
    bool send(const std::vector<Packet>& pkts) {
        const auto start = session::monotonic_ns();
        uint64_t i = 0;
        for (uint32_t r = 0; r < o_.repeat; ++r) {
            for (const Packet& p : pkts) {
                if (o_.rate) {
                    const uint64_t due = start + i * 1'000'000'000ull / o_.rate;
                    while (session::monotonic_ns() < due) {
                        if (!service()) return false;
                        flush_if_old();
                        if (!tx_.poll(session::monotonic_ns()))
                            std::this_thread::sleep_for(std::chrono::microseconds(20));
                    }
                }
                if (!builder_.active() && !begin()) return false;
                const wire::RecordMeta m{p.ts_ns, p.orig_len,
                                         static_cast<uint16_t>((i / o_.queues) % o_.ports),
                                         static_cast<uint16_t>(i % o_.queues), 0};
                if (builder_.append(m, p.data) == wire::AppendResult::FrameFull) {
                    if (!finish(false) || !begin()) return false;
                    if (builder_.append(m, p.data) != wire::AppendResult::Appended)
                        throw std::runtime_error(
                            "a packet does not fit an empty frame: raise --frame-size");
                }
                ++i;
                ++offered_packets_;
                offered_bytes_ += p.data.size();
                if (!service()) return false;
                flush_if_old();
            }
        }
        return !builder_.active() || finish(true);
    }

    bool drain(uint64_t timeout_ms) {
        const uint64_t end = session::monotonic_ns() + timeout_ms * 1'000'000;
        while (!tx_.all_acknowledged()) {
            if (session::monotonic_ns() > end) return false;
            if (!service()) return false;
            if (!tx_.poll(session::monotonic_ns()))
                std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        reclaim();
        return true;
    }

    // `seconds`: from the first packet to the last acknowledgement.
    std::string report(bool ok, double seconds) const {
        std::string ranges;
        for (std::size_t k = 0; k < dropped_.size(); ++k)
            ranges +=
                fmt::format("{}[{}, {}]", k ? ", " : "", dropped_[k].first, dropped_[k].second);
        std::string counters;
        const auto snap = tx_.stats().snapshot();
        for (std::size_t k = 0; k < snap.size(); ++k)
            counters += fmt::format("{}\"{}\": {}", k ? ", " : "",
                                    session::SenderStats::info[k].name, snap[k]);
        return fmt::format(
            "{{\"acknowledged\": {}, \"offered_packets\": {}, \"offered_frames\": {}, "
            "\"offered_bytes\": {}, \"seconds\": {:.6f}, "
            "\"dropped_frames\": {}, \"dropped_packets\": {}, \"dropped\": [{}], \"sender\": "
            "{{{}}}, "
            "\"latency_ns\": {{\"frames\": {}, \"p50\": {}, \"p99\": {}, \"p999\": {}, "
            "\"max\": {}, \"to_submit\": {{\"p50\": {}, \"p99\": {}, \"p999\": {}, \"max\": {}}}, "
            "\"to_ack\": {{\"p50\": {}, \"p99\": {}, \"p999\": {}, \"max\": {}}}}}, "
            "\"last_error\": {}}}\n",
            ok ? "true" : "false", offered_packets_, next_seq_, offered_bytes_, seconds,
            dropped_.size(), dropped_packets_, ranges, counters, latency_.count(),
            latency_.percentile(0.5), latency_.percentile(0.99), latency_.percentile(0.999),
            latency_.max(), to_submit_.percentile(0.5), to_submit_.percentile(0.99),
            to_submit_.percentile(0.999), to_submit_.max(), to_ack_.percentile(0.5),
            to_ack_.percentile(0.99), to_ack_.percentile(0.999), to_ack_.max(),
            report::json_string(tx_.stats().last_error.get()));
    }

    uint64_t offered_packets() const { return offered_packets_; }
    uint64_t dropped_packets() const { return dropped_packets_; }

  private:
    // Polls, reclaims, reports new errors; false when it is time to give up.
    bool service() {
        const uint64_t now = session::monotonic_ns();
        tx_.poll(now);
        reclaim();
        const uint64_t errors = tx_.stats().errors.get();
        if (errors != errors_seen_) {
            errors_seen_ = errors;
            std::fprintf(stderr, "sluice-send: %s\n", tx_.stats().last_error.get().c_str());
        }
        if (tx_.stats().connected.load(std::memory_order_relaxed)) {
            down_since_ = 0;
        } else if (o_.give_up_ms) {
            if (!down_since_) down_since_ = now;
            if (now - down_since_ > o_.give_up_ms * 1'000'000) {
                std::fprintf(stderr, "sluice-send: no working connection for %llu ms: giving up\n",
                             static_cast<unsigned long long>(o_.give_up_ms));
                return false;
            }
        }
        return true;
    }

    void reclaim() {
        void* done[64];
        for (std::size_t n; (n = tx_.reclaim(done)) > 0;)
            for (std::size_t k = 0; k < n; ++k) {
                // Acknowledged: from its first packet to now.
                Slot* s = static_cast<Slot*>(done[k]);
                const uint64_t now = session::monotonic_ns();
                latency_.record(now - s->first_packet_ns);
                to_submit_.record(s->submitted_ns - s->first_packet_ns);
                to_ack_.record(now - s->submitted_ns);
                s->busy = false;
            }
    }

    bool begin() {
        for (;;) {
            for (auto& s : slots_) {
                if (!s.busy) {
                    s.busy = true;
                    current_ = &s;
                    builder_.begin({s.raw.get(), o_.frame_size}, o_.stream_id, next_seq_,
                                   offered_packets_);
                    began_ns_ = session::monotonic_ns();
                    s.first_packet_ns = began_ns_;  // the packet that begins it comes next
                    return true;
                }
            }
            if (!service()) return false;
        }
    }

    void flush_if_old() {
        if (builder_.active() && !builder_.empty() &&
            session::monotonic_ns() - began_ns_ > o_.flush_us * 1000)
            finish(false);
    }

    bool finish(bool last) {
        const uint32_t count = builder_.packet_count();
        const uint64_t first = offered_packets_ - count;
        auto raw = builder_.finish();
        auto sealed = encoder_.seal(
            raw, {current_->sealed.get(), wire::FrameEncoder::max_sealed_size(o_.frame_size)});
        if (!sealed) throw std::runtime_error(std::string(wire::to_string(sealed.error())));
        const uint64_t seq = next_seq_++;
        for (;;) {
            current_->submitted_ns = session::monotonic_ns();
            if (tx_.submit(sealed->frame, seq, current_) == session::SubmitResult::Accepted) break;
            if (o_.drop && !last) {
                dropped_.emplace_back(first, count);
                dropped_packets_ += count;
                current_->busy = false;
                break;
            }
            if (!service()) return false;
        }
        current_ = nullptr;
        return true;
    }

    const Options& o_;
    Sender& tx_;
    wire::FrameBuilder builder_;
    wire::FrameEncoder encoder_;
    std::vector<Slot> slots_;
    Slot* current_ = nullptr;
    uint64_t next_seq_ = 0, offered_packets_ = 0, offered_bytes_ = 0, began_ns_ = 0;
    uint64_t errors_seen_ = 0, down_since_ = 0, dropped_packets_ = 0;
    std::vector<std::pair<uint64_t, uint32_t>> dropped_;  // first packet index, count
    // Each acknowledged frame, from its first packet to its acknowledgement,
    // and that time in two parts: until the frame was submitted (the flush
    // wait, sealing, waiting for room in the retransmit window) and from
    // there to the acknowledgement (sending, the collector's write, the
    // ACK's way back).
    report::LatencyHistogram latency_, to_submit_, to_ack_;
};

std::optional<uint64_t> number(const std::string& s) {
    try {
        std::size_t pos = 0;
        const unsigned long long v = std::stoull(s, &pos);
        if (pos != s.size()) return std::nullopt;
        return v;
    } catch (...) {
        return std::nullopt;
    }
}

// What both transports' configurations take from the command line.
template <class Config>
void configure(Config& cfg, const Options& o, const session::Endpoint& to,
               const std::vector<std::byte>& key) {
    cfg.host = to.host;
    cfg.port = to.port;
    cfg.stream_id = o.stream_id;
    cfg.key = key;
    cfg.retransmit_frames = o.retransmit;
    cfg.timeout_ms = o.timeout_ms;
    cfg.reconnect_min_ms = o.rmin;
    cfg.reconnect_max_ms = std::max(o.rmax, o.rmin);
}

// Sends every packet, waits for the last acknowledgement, reports.
template <class Sender>
int send_all(const Options& o, Sender& tx, const std::vector<Packet>& pkts) {
    Run<Sender> run(o, tx);
    const uint64_t t0 = session::monotonic_ns();
    const bool ok = run.send(pkts) && run.drain(o.drain_ms);
    const double seconds = double(session::monotonic_ns() - t0) / 1e9;
    tx.close();
    const auto& s = tx.stats();
    std::fprintf(stderr,
                 "sluice-send: %s: %llu packets offered, %llu dropped (retransmit buffer full), "
                 "%llu frames acknowledged, %llu retransmitted, %llu connects\n",
                 ok ? "done" : "NOT all acknowledged",
                 static_cast<unsigned long long>(run.offered_packets()),
                 static_cast<unsigned long long>(run.dropped_packets()),
                 static_cast<unsigned long long>(s.frames_acknowledged.get()),
                 static_cast<unsigned long long>(s.frames_retransmitted.get()),
                 static_cast<unsigned long long>(s.connects.get()));
    if (!ok) std::fprintf(stderr, "sluice-send: last error: %s\n", s.last_error.get().c_str());
    if (!o.report.empty()) {
        if (FILE* f = std::fopen(o.report.c_str(), "w")) {
            const std::string r = run.report(ok, seconds);
            std::fwrite(r.data(), 1, r.size(), f);
            std::fclose(f);
        }
    }
    return ok ? kExitOk : kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    std::vector<std::string> a(argv + 1, argv + argc);
    auto usage_error = [](const std::string& m) {
        std::fprintf(stderr, "sluice-send: %s (see --help)\n", m.c_str());
        return kExitUsage;
    };
    for (std::size_t i = 0; i < a.size(); ++i) {
        const std::string& k = a[i];
        if (k == "--help") {
            std::fputs(kUsage, stdout);
            return kExitOk;
        }
        if (k == "--zerocopy") {
            o.zerocopy = true;
            continue;
        }
        if (k == "--nats-tls") {
            o.nats.tls = true;
            continue;
        }
        if (i + 1 >= a.size()) return usage_error(k + " needs a value");
        const std::string& v = a[++i];
        const auto n = number(v);
        auto need = [&](uint64_t lo, uint64_t hi) { return n && *n >= lo && *n <= hi; };
        if (k == "--pcap")
            o.pcap = v;
        else if (k == "--to")
            o.to = v;
        else if (k == "--key-file")
            o.key_file = v;
        else if (k == "--tls-ca")
            o.tls_ca = v;
        else if (k == "--tls-cert")
            o.tls_cert = v;
        else if (k == "--tls-key")
            o.tls_key = v;
        else if (k == "--tls-server-name")
            o.tls_server_name = v;
        else if (k == "--report")
            o.report = v;
        else if (k == "--jetstream-stream")
            o.js.name = v;
        else if (k == "--subject") {
            if (const std::string bad = jetstream::check_subject(v); !bad.empty())
                return usage_error("--subject: " + bad);
            o.js.subject = v;
        } else if (k == "--jetstream-discard") {
            if (v != "old" && v != "new") return usage_error("--jetstream-discard: old or new");
            o.js.discard_new = v == "new";
        } else if (k == "--nats-creds")
            o.nats.creds_file = v;
        else if (k == "--nats-user")
            o.nats.user = v;
        else if (k == "--nats-password-file")
            o.nats.password_file = v;
        else if (k == "--nats-token-file")
            o.nats.token_file = v;
        else if (k == "--nats-tls-ca")
            o.nats.tls_ca = v;
        else if (k == "--nats-tls-cert")
            o.nats.tls_cert = v;
        else if (k == "--nats-tls-key")
            o.nats.tls_key = v;
        else if (k == "--codec") {
            const auto c = wire::parse_codec(v);
            if (!c) return usage_error("--codec: none, lz4 or zstd");
            o.codec = *c;
        } else if (k == "--overflow") {
            if (v != "drop" && v != "backpressure")
                return usage_error("--overflow: drop or backpressure");
            o.drop = v == "drop";
        } else if (!n) {
            return usage_error(fmt::format("{} needs a number, not '{}'", k, v));
        } else if (k == "--stream-id")
            o.stream_id = *n;
        else if (k == "--frame-size" && need(1024, wire::kMaxFrameBytes))
            o.frame_size = uint32_t(*n);
        else if (k == "--snaplen" && need(1, wire::kMaxSnaplen))
            o.snaplen = uint32_t(*n);
        else if (k == "--queues" && need(1, 65536))
            o.queues = uint32_t(*n);
        else if (k == "--ports" && need(1, 65536))
            o.ports = uint32_t(*n);
        else if (k == "--repeat" && need(1, 1u << 30))
            o.repeat = uint32_t(*n);
        else if (k == "--rate")
            o.rate = *n;
        else if (k == "--flush-us")
            o.flush_us = *n;
        else if (k == "--retransmit-frames" && need(1, 65536))
            o.retransmit = uint32_t(*n);
        else if (k == "--heartbeat-ms" && need(0, 600000))
            o.heartbeat_ms = uint32_t(*n);
        else if (k == "--timeout-ms" && need(1, 600000))
            o.timeout_ms = uint32_t(*n);
        else if (k == "--reconnect-min-ms" && need(1, 600000))
            o.rmin = uint32_t(*n);
        else if (k == "--reconnect-max-ms" && need(1, 600000))
            o.rmax = uint32_t(*n);
        else if (k == "--drain-timeout-ms")
            o.drain_ms = *n;
        else if (k == "--give-up-ms")
            o.give_up_ms = *n;
        else if (k == "--jetstream-replicas" && need(1, 5))
            o.js.replicas = uint32_t(*n);
        else if (k == "--jetstream-max-age")
            o.js.max_age_s = *n;
        else if (k == "--jetstream-max-bytes" && need(1, INT64_MAX))
            o.js.max_bytes = int64_t(*n);
        else if (k == "--jetstream-duplicate-window" && need(1, 86400))
            o.js.duplicate_window_s = uint32_t(*n);
        else
            return usage_error(fmt::format("unknown option or value out of range: {} {}", k, v));
    }
    if (o.pcap.empty() || o.to.empty()) return usage_error("--pcap and --to are required");
    if (o.snaplen == 0) {
        const uint32_t room = o.frame_size - wire::kHeaderSize - wire::kRecordHeaderSize;
        o.snaplen = std::min<uint32_t>(65535, room & ~7u);
    }
    if (session::is_jetstream_url(o.to)) {
        auto urls = session::parse_nats_servers(o.to);
        if (!urls) return usage_error("--to " + urls.error().message);
        if (!o.key_file.empty())
            return usage_error(
                "--key-file is for a collector's own transport; JetStream "
                "authenticates with --nats-creds, --nats-user or --nats-token-file");
        try {
            const auto pkts = read_pcap(o.pcap);
            jetstream::SenderConfig cfg;
            cfg.client = o.nats;
            cfg.client.servers = std::move(*urls);
            cfg.stream = o.js;
            cfg.stream_id = o.stream_id;
            cfg.max_frame_bytes =
                static_cast<uint32_t>(wire::FrameEncoder::max_sealed_size(o.frame_size));
            cfg.retransmit_frames = o.retransmit;
            cfg.timeout_ms = o.timeout_ms;
            cfg.reconnect_min_ms = o.rmin;
            cfg.reconnect_max_ms = std::max(o.rmax, o.rmin);
            jetstream::JetStreamSender tx(cfg);
            return send_all(o, tx, pkts);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "sluice-send: %s\n", e.what());
            return kExitUsage;
        }
    }
    const auto ep = session::parse_endpoint(o.to);
    if (!ep) return usage_error("--to " + ep.error().message);
    try {
        const bool tls = !o.tls_ca.empty() || !o.tls_cert.empty() || !o.tls_key.empty() ||
                         !o.tls_server_name.empty();
        if (tls && ep->transport == session::Transport::Rdma)
            return usage_error("--tls-* are for tcp:// only: RDMA has no encryption");
        if (tls && o.zerocopy) return usage_error("--zerocopy does not combine with TLS");
        std::vector<std::byte> key;
        if (!o.key_file.empty()) key = session::read_key_file(o.key_file);
        const auto pkts = read_pcap(o.pcap);
        if (ep->transport == session::Transport::Rdma) {
            rdma::SenderConfig cfg;
            configure(cfg, o, *ep, key);
            rdma::RdmaSender tx(cfg);
            return send_all(o, tx, pkts);
        }
        tcp::SenderConfig cfg;
        configure(cfg, o, *ep, key);
        cfg.heartbeat_ms = o.heartbeat_ms;
        cfg.zerocopy = o.zerocopy;
        cfg.tls.ca = o.tls_ca;
        cfg.tls.cert = o.tls_cert;
        cfg.tls.key = o.tls_key;
        cfg.tls.server_name = o.tls_server_name;
        cfg.tls.names = {"--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"};
        tcp::TcpSender tx(cfg);
        return send_all(o, tx, pkts);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice-send: %s\n", e.what());
        return kExitUsage;
    }
}
