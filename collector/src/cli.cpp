#include "sluice/collector/cli.hpp"

#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "sluice/jetstream/group.hpp"
#include "sluice/jetstream/stream_spec.hpp"
#include "sluice/rdma/protocol.hpp"
#include "sluice/session/key.hpp"
#include "sluice/session/keyring.hpp"
#include "sluice/tcp/tls.hpp"

namespace sluice::collector {
namespace {

std::optional<uint64_t> parse_uint(std::string_view s) {
    uint64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

}  // namespace

std::string usage() {
    return R"(usage: sluice-collector --out DIR [options]
       sluice-collector --source jetstream://HOST:PORT[,...] --group NAME --out DIR [options]

Receives sluice frame streams over TCP or RDMA, or reads them from NATS
JetStream as a member of a collector group, verifies every frame, and writes
pcapng files (nanosecond timestamps, one interface per stream/port/queue).
Every frame is acknowledged only once written; a restarted collector
resumes where its files end, so senders replay exactly what is missing.

  --listen tcp://ADDR:PORT  where to listen (default tcp://127.0.0.1:7700).
                            A non-loopback address needs --key-file, or
                            TLS with client certificates (--tls-cert,
                            --tls-key and --tls-ca).
  --listen rdma://ADDR:PORT the RDMA transport instead (ADDR: the address of
                            an RDMA device's netdev; as for tcp://, not
                            loopback: needs --key-file);
                            see docs/rdma.md
  --rdma-slot-bytes N       RDMA ring slot size: the largest frame a sender
                            may write (default 1M; suffixes K, M)
  --rdma-slots N            RDMA ring slots per connection (default 64)
  --out DIR                 output directory (created if missing); files are
                            DIR/stream-<id>-<n>-<UTC time>.pcapng[.zst],
                            state in DIR/.sluice/. A file being written is
                            NAME.part; it gets its name when complete
  --file-template T         name files (and directories) below DIR by T:
                            {stream}, {n} (once each) and UTC time fields
                            %Y %m %d %H %M %S %j %y %s %F, e.g.
                            '{stream}/%Y%m%d/capture-%H%M%S-{n}'
                            (default 'stream-{stream}-{n}-%Y%m%dT%H%M%SZ')
  --rotate-size N           start a new file before one exceeds N bytes
                            (suffixes K, M, G; default: never)
  --rotate-time S           end files at every multiple of S seconds of the
                            clock (300: at :00, :05, ... UTC; default: never)
  --on-rotate CMD           run CMD with each finished file's path as its
                            last argument (no shell: words split at spaces),
                            at most --on-rotate-jobs at once (default 4)
  --keep N                  keep only the newest N files per stream
  --max-disk SIZE           delete the oldest finished files, across
                            streams, to keep DIR's captures and indexes
                            within SIZE (suffixes K, M, G, T)
  --max-age D               delete finished files last written longer ago
                            than D (seconds, or with s, m, h, d, w)
  --min-free SIZE           delete the oldest finished files to keep SIZE
                            free on DIR's file system
  --key-file F              the key senders must prove: one key (the same file
                            as the sender's egress.key_file), or named keys,
                            one line each, 'key NAME STREAMS SECRET', each
                            allowed only the streams it lists
                            (docs/security.md)
  --tls-cert F --tls-key F  TLS 1.3 on tcp:// with this certificate (PEM,
                            the chain after it) and its key: senders need
                            egress.tls_ca (sluice-send --tls-ca) naming the
                            CA that signed it. TLS encrypts; it does not
                            say who may send: off loopback, a key is still
                            required, unless --tls-ca is given too.
  --tls-ca F                require a client certificate signed by this CA
                            from every sender (egress.tls_cert/tls_key).
                            With it, --key-file becomes optional anywhere
                            (and is a second factor when given).
  --compress zstd           write .pcapng.zst (one zstd frame per commit)
  --zstd-level N            zstd level, 1..19 (default 3)
  --sync                    fdatasync data and state before acknowledging,
                            and the directory when a file appears: survives
                            power loss, not only a crash (slower)
  --file-mode MODE          permissions of capture files and their indexes,
                            octal (default 0640: the owner writes, its group
                            reads)
  --no-index                do not write the index (NAME.idx) beside each
                            file; sluice-query then reads whole files (see
                            docs/query.md)
  --stats-interval S        a stats line every S seconds (default 10, 0: off)
  --peer-timeout MS         drop a streaming connection silent for MS ms and
                            three of its heartbeat intervals (default 10000;
                            a sender without heartbeats: MS)
  --handshake-timeout MS    drop a connection that completes no handshake
                            within MS ms (default 5000, at most --peer-timeout)
  --max-frame-bytes N       largest frame accepted (default 16M)
  --max-connections N       authenticated connections at once (default 1024);
                            handshakes in progress never count against them
  --max-pending N           connections in their handshake (default 64);
                            beyond, the oldest one of the busiest source goes
  --max-pending-per-source N
                            ... from one source address (default 8); beyond,
                            the newcomer is refused
  --max-streams N           streams open at once (default 1024; each holds up
                            to 3 file descriptors); beyond, the longest-idle
                            stream without a sender is closed, or the hello
                            is refused (busy) when every one has a sender
  --stream-idle-timeout S   close a stream without a sender after S seconds
                            (default 60, 0: only to make room); its state
                            stays and a returning sender resumes it
  --max-memory SIZE         receive buffers (TCP) or rings (RDMA) of all
                            connections together (default 2G); beyond, TCP
                            senders wait (backpressure), RDMA ones are
                            refused (busy)
  --summary-json F          also write the exit summary to F as JSON
  --metrics ADDR:PORT       an HTTP listener: GET /metrics (Prometheus) and
                            GET /query (packets back as pcapng, like
                            sluice-query; needs --http-token-file or
                            --http-tls-ca). See docs/operations.md
  --http-token-file F       GET /query requires "Authorization: Bearer" and
                            the text of F (at least 16 bytes, mode 0600)
  --http-tls-cert F --http-tls-key F
                            HTTPS with this certificate (PEM, chain after
                            it) and its key
  --http-tls-ca F           require a client certificate signed by this CA
                            on every request (with --http-tls-cert)
  --http-max-queries N      GET /query running at once (default 4); beyond,
                            503
  --http-timeout MS         a request must arrive whole, and each piece of a
                            response be taken, within MS ms (default 10000)

A collector group (docs/scale-out.md): every member reads the same JetStream
stream; each sluice stream is written by one member at a time (a lease in
the group's key-value bucket), taken over within --lease-ms when its writer
dies, from the last frame it durably wrote.
  --source jetstream://HOST:PORT[,HOST:PORT...]
                            the NATS servers (any reachable one is enough)
  --group NAME              the group ([A-Za-z0-9_-], at most 64 characters)
  --jetstream-stream NAME   the JetStream stream (default SLUICE)
  --subject TEMPLATE        the senders' subject (default
                            sluice.frames.{stream_id})
  --lease-ms MS             a stream whose writer did not renew its lease
                            for MS ms is taken over (default 3000)
  --fetch-frames N          frames read (and committed) at once (default 64)
  --reorder-frames N        frames that may wait for a late one (default 1024)
  --nats-creds F  --nats-user U  --nats-password-file F  --nats-token-file F
                            NATS credentials
  --nats-tls  --nats-tls-ca F  --nats-tls-cert F  --nats-tls-key F
                            TLS to the NATS servers
  --help                    this text
  --version                 the version

SIGINT/SIGTERM: commit, acknowledge, finish every file, print a summary, exit 0.
SIGHUP: read the key file and the TLS files again; a file that cannot be
used is refused (logged) and the one in use stays.
Exit codes: 0 stopped by a signal; 1 could not start (address in use, output
directory locked or not writable, unreadable key); 2 bad command line, or a
TLS certificate or key that cannot be read, does not match or has expired.
See docs/collector.md.
)";
}

std::optional<uint64_t> parse_size(std::string_view s) {
    uint64_t mult = 1;
    if (!s.empty()) {
        switch (s.back()) {
            case 'K':
            case 'k':
                mult = 1ull << 10;
                break;
            case 'M':
            case 'm':
                mult = 1ull << 20;
                break;
            case 'G':
            case 'g':
                mult = 1ull << 30;
                break;
            case 'T':
            case 't':
                mult = 1ull << 40;
                break;
            default:
                break;
        }
        if (mult != 1) s.remove_suffix(1);
    }
    const auto v = parse_uint(s);
    if (!v || *v > (UINT64_MAX / mult)) return std::nullopt;
    return *v * mult;
}

std::optional<uint64_t> parse_duration(std::string_view s) {
    uint64_t mult = 1;
    if (!s.empty()) {
        switch (s.back()) {
            case 's':
                break;
            case 'm':
                mult = 60;
                break;
            case 'h':
                mult = 3600;
                break;
            case 'd':
                mult = 86400;
                break;
            case 'w':
                mult = 7 * 86400;
                break;
            default:
                mult = 0;  // no unit: seconds
                break;
        }
        if (mult)
            s.remove_suffix(1);
        else
            mult = 1;
    }
    const auto v = parse_uint(s);
    if (!v || *v == 0 || *v > (UINT64_MAX / 1'000'000'000ull / mult)) return std::nullopt;
    return *v * mult;
}

CliResult parse_command_line(const std::vector<std::string>& args) {
    CliResult r;
    CollectorOptions o;
    std::string key_file, token_file;
    bool listen_given = false;
    auto usage_error = [&](const std::string& msg) {
        r.exit_code = kExitUsage;
        r.message = "sluice-collector: " + msg + " (see --help)\n";
        return r;
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--help" || a == "-h") {
            r.message = usage();
            return r;
        }
        if (a == "--version") {
            r.message = "sluice-collector " SLUICE_VERSION "\n";
            return r;
        }
        if (a == "--sync") {
            o.sync = true;
            continue;
        }
        if (a == "--no-index") {
            o.index = false;
            continue;
        }
        if (a == "--nats-tls") {
            o.group.tls = true;
            continue;
        }
        if (a.rfind("--", 0) != 0) return usage_error(fmt::format("unexpected argument '{}'", a));
        if (i + 1 >= args.size()) return usage_error(fmt::format("{} needs a value", a));
        const std::string& v = args[++i];
        auto number = [&](uint64_t lo, uint64_t hi) -> std::optional<uint64_t> {
            const auto n = parse_uint(v);
            if (!n || *n < lo || *n > hi) return std::nullopt;
            return n;
        };
        if (a == "--listen") {
            listen_given = true;
            auto e = session::parse_endpoint(v);
            if (!e) return usage_error("--listen " + e.error().message);
            o.listen = std::move(*e);
        } else if (a == "--out") {
            o.out_dir = v;
        } else if (a == "--rotate-size") {
            const auto n = parse_size(v);
            if (!n || *n < 4096)
                return usage_error(
                    fmt::format("--rotate-size '{}': give bytes >= 4096, e.g. 512M", v));
            o.rotate_bytes = *n;
        } else if (a == "--rotate-time") {
            const auto n = number(1, 1ull << 32);
            if (!n) return usage_error(fmt::format("--rotate-time '{}': give seconds >= 1", v));
            o.rotate_seconds = *n;
        } else if (a == "--file-template") {
            std::string why;
            auto t = index::FileTemplate::parse(v, &why);
            if (!t) return usage_error(why);
            o.file_template = std::move(*t);
        } else if (a == "--on-rotate") {
            std::string why;
            auto words = RotateCommand::parse(v, &why);
            if (!words) return usage_error(why);
            o.on_rotate = std::move(*words);
        } else if (a == "--on-rotate-jobs") {
            const auto n = number(1, 256);
            if (!n) return usage_error(fmt::format("--on-rotate-jobs '{}': give 1..256", v));
            o.on_rotate_jobs = static_cast<uint32_t>(*n);
        } else if (a == "--max-disk" || a == "--min-free") {
            const auto n = parse_size(v);
            if (!n || *n == 0)
                return usage_error(fmt::format("{} '{}': give a size, e.g. 500G or 2T", a, v));
            (a == "--max-disk" ? o.max_disk : o.min_free) = *n;
        } else if (a == "--max-age") {
            const auto n = parse_duration(v);
            if (!n)
                return usage_error(fmt::format(
                    "--max-age '{}': give a duration: seconds, or a number with s, m, h, d or w "
                    "(e.g. 30d)",
                    v));
            o.max_age_s = *n;
        } else if (a == "--keep") {
            const auto n = number(1, 1u << 30);
            if (!n) return usage_error(fmt::format("--keep '{}': give a number of files >= 1", v));
            o.keep_files = static_cast<uint32_t>(*n);
        } else if (a == "--key-file") {
            key_file = v;
        } else if (a == "--tls-cert") {
            o.tls.cert = v;
        } else if (a == "--tls-key") {
            o.tls.key = v;
        } else if (a == "--tls-ca") {
            o.tls.ca = v;
        } else if (a == "--compress") {
            if (v == "zstd")
                o.compression = Compression::Zstd;
            else if (v == "none")
                o.compression = Compression::None;
            else
                return usage_error(
                    fmt::format("--compress '{}': the choices are zstd and none", v));
        } else if (a == "--zstd-level") {
            const auto n = number(1, 19);
            if (!n) return usage_error(fmt::format("--zstd-level '{}': give 1..19", v));
            o.zstd_level = static_cast<int>(*n);
        } else if (a == "--stats-interval") {
            const auto n = number(0, 86400);
            if (!n)
                return usage_error(fmt::format("--stats-interval '{}': give seconds, 0..86400", v));
            o.stats_interval_s = static_cast<uint32_t>(*n);
        } else if (a == "--peer-timeout") {
            const auto n = number(10, 3600000);
            if (!n) return usage_error(fmt::format("--peer-timeout '{}': give ms, 10..3600000", v));
            o.peer_timeout_ms = static_cast<uint32_t>(*n);
        } else if (a == "--max-frame-bytes") {
            const auto n = parse_size(v);
            if (!n || *n < 16384 || *n > (1ull << 30))
                return usage_error(fmt::format("--max-frame-bytes '{}': give 16K..1G", v));
            o.max_frame_bytes = static_cast<uint32_t>(*n);
        } else if (a == "--file-mode") {
            unsigned m = 0;
            const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), m, 8);
            if (ec != std::errc() || p != v.data() + v.size() || m > 0777 || !(m & 0200))
                return usage_error(fmt::format(
                    "--file-mode '{}': give octal permissions the owner can write, e.g. 0640", v));
            o.file_mode = m;
        } else if (a == "--handshake-timeout") {
            const auto n = number(10, 3600000);
            if (!n)
                return usage_error(
                    fmt::format("--handshake-timeout '{}': give ms, 10..3600000", v));
            o.handshake_timeout_ms = static_cast<uint32_t>(*n);
        } else if (a == "--max-pending") {
            const auto n = number(1, 1u << 20);
            if (!n) return usage_error(fmt::format("--max-pending '{}': give >= 1", v));
            o.max_pending = static_cast<uint32_t>(*n);
        } else if (a == "--max-pending-per-source") {
            const auto n = number(1, 1u << 20);
            if (!n) return usage_error(fmt::format("--max-pending-per-source '{}': give >= 1", v));
            o.max_pending_per_source = static_cast<uint32_t>(*n);
        } else if (a == "--max-connections") {
            const auto n = number(1, 1u << 20);
            if (!n) return usage_error(fmt::format("--max-connections '{}': give >= 1", v));
            o.max_connections = static_cast<uint32_t>(*n);
        } else if (a == "--max-streams") {
            const auto n = number(1, 1u << 20);
            if (!n) return usage_error(fmt::format("--max-streams '{}': give 1..1048576", v));
            o.max_streams = static_cast<uint32_t>(*n);
        } else if (a == "--stream-idle-timeout") {
            const auto n = number(0, 7 * 86400);
            if (!n)
                return usage_error(
                    fmt::format("--stream-idle-timeout '{}': give seconds, 0..604800", v));
            o.stream_idle_s = static_cast<uint32_t>(*n);
        } else if (a == "--max-memory") {
            const auto n = parse_size(v);
            if (!n || *n < (1ull << 20))
                return usage_error(fmt::format("--max-memory '{}': give a size, 1M or more", v));
            o.max_memory = *n;
        } else if (a == "--rdma-slot-bytes") {
            const auto n = parse_size(v);
            if (!n || *n < rdma::kMinSlotBytes || *n > (1ull << 30) || *n % 8 != 0)
                return usage_error(
                    fmt::format("--rdma-slot-bytes '{}': give a multiple of 8 from 4K to 1G", v));
            o.rdma_slot_bytes = static_cast<uint32_t>(*n);
        } else if (a == "--rdma-slots") {
            const auto n = number(1, rdma::kMaxSlots);
            if (!n)
                return usage_error(
                    fmt::format("--rdma-slots '{}': give 1..{}", v, rdma::kMaxSlots));
            o.rdma_slots = static_cast<uint32_t>(*n);
        } else if (a == "--summary-json") {
            o.summary_json = v;
        } else if (a == "--source") {
            if (!session::is_jetstream_url(v))
                return usage_error(
                    fmt::format("--source '{}': write jetstream://HOST:PORT[,HOST:PORT...]", v));
            auto urls = session::parse_nats_servers(v);
            if (!urls) return usage_error("--source " + urls.error().message);
            o.group.servers = std::move(*urls);
        } else if (a == "--group") {
            if (const std::string bad = jetstream::check_group_name(v); !bad.empty())
                return usage_error(fmt::format("--group '{}': {}", v, bad));
            o.group.group = v;
        } else if (a == "--jetstream-stream") {
            o.group.stream = v;
        } else if (a == "--subject") {
            if (const std::string bad = jetstream::check_subject(v); !bad.empty())
                return usage_error(fmt::format("--subject '{}': {}", v, bad));
            o.group.subject = v;
        } else if (a == "--lease-ms") {
            const auto n = number(300, 600000);
            if (!n) return usage_error(fmt::format("--lease-ms '{}': give ms, 300..600000", v));
            o.group.lease_ms = static_cast<uint32_t>(*n);
        } else if (a == "--fetch-frames") {
            const auto n = number(1, 100000);
            if (!n) return usage_error(fmt::format("--fetch-frames '{}': give 1..100000", v));
            o.group.fetch_frames = static_cast<uint32_t>(*n);
        } else if (a == "--reorder-frames") {
            const auto n = number(1, 1000000);
            if (!n) return usage_error(fmt::format("--reorder-frames '{}': give 1..1000000", v));
            o.group.reorder_frames = static_cast<uint32_t>(*n);
        } else if (a == "--nats-creds") {
            o.group.creds_file = v;
        } else if (a == "--nats-user") {
            o.group.user = v;
        } else if (a == "--nats-password-file") {
            o.group.password_file = v;
        } else if (a == "--nats-token-file") {
            o.group.token_file = v;
        } else if (a == "--nats-tls-ca") {
            o.group.tls_ca = v;
        } else if (a == "--nats-tls-cert") {
            o.group.tls_cert = v;
        } else if (a == "--nats-tls-key") {
            o.group.tls_key = v;
        } else if (a == "--metrics") {
            auto e = session::parse_endpoint(v);
            if (!e || e->transport != session::Transport::Tcp)
                return usage_error(
                    fmt::format("--metrics '{}': give ADDR:PORT, e.g. 127.0.0.1:9470", v));
            o.metrics = std::move(*e);
        } else if (a == "--http-token-file") {
            token_file = v;
        } else if (a == "--http-tls-cert") {
            o.http_tls_cert = v;
        } else if (a == "--http-tls-key") {
            o.http_tls_key = v;
        } else if (a == "--http-tls-ca") {
            o.http_tls_ca = v;
        } else if (a == "--http-max-queries") {
            const auto n = number(1, 256);
            if (!n) return usage_error(fmt::format("--http-max-queries '{}': give 1..256", v));
            o.http_max_queries = static_cast<uint32_t>(*n);
        } else if (a == "--http-timeout") {
            const auto n = number(100, 3600000);
            if (!n)
                return usage_error(fmt::format("--http-timeout '{}': give ms, 100..3600000", v));
            o.http_timeout_ms = static_cast<uint32_t>(*n);
        } else {
            return usage_error(fmt::format("unknown option '{}'", a));
        }
    }
    if (o.out_dir.empty()) return usage_error("--out DIR is required");
    const bool tls = tcp::tls_enabled(o.tls, tcp::TlsRole::Server);
    if (tls && o.listen.transport == session::Transport::Rdma) {
        return usage_error(
            "--tls-cert is for tcp:// only: RDMA has no encryption; use it on trusted fabrics "
            "(docs/collector.md, \"Encryption in transit\")");
    }
    try {
        tcp::check_tls_files(o.tls, tcp::TlsRole::Server);
    } catch (const std::exception& e) {
        r.exit_code = kExitUsage;
        r.message = fmt::format("sluice-collector: {}\n", e.what());
        return r;
    }
    const bool group = !o.group.servers.empty();
    if (group && o.group.group.empty())
        return usage_error("--source needs --group NAME (the members of one group share streams)");
    if (!group && !o.group.group.empty()) return usage_error("--group needs --source");
    if (group && listen_given)
        return usage_error(
            "--listen and --source exclude each other: a collector either "
            "listens for senders or reads from JetStream");
    if (!o.group.user.empty() != !o.group.password_file.empty())
        return usage_error("--nats-user and --nats-password-file go together");
    if (group && tls)
        return usage_error(
            "--tls-cert is for a collector that listens; a group member reads "
            "from NATS: use --nats-tls-ca, --nats-tls-cert and --nats-tls-key");
    if (o.max_disk && o.rotate_bytes && o.max_disk < 2 * o.rotate_bytes) {
        r.message += fmt::format(
            "sluice-collector: warning: --max-disk {} holds less than two --rotate-size files: "
            "the file being written may take all of it, and then nothing finished is left to "
            "delete\n",
            o.max_disk);
    }
    o.key_file = key_file;
    const bool http_options = !token_file.empty() || !o.http_tls_cert.empty() ||
                              !o.http_tls_key.empty() || !o.http_tls_ca.empty();
    if (http_options && !o.metrics)
        return usage_error(
            "the --http-* options configure the HTTP listener: give --metrics "
            "ADDR:PORT too");
    if (o.http_tls_cert.empty() != o.http_tls_key.empty())
        return usage_error("HTTPS needs --http-tls-cert and --http-tls-key together");
    if (!o.http_tls_ca.empty() && o.http_tls_cert.empty())
        return usage_error("--http-tls-ca needs HTTPS: give --http-tls-cert and --http-tls-key");
    if (!token_file.empty()) {
        std::string text;
        try {
            text = session::read_secret_file(
                token_file, "token file",
                "give its text to the clients of GET /query (Authorization: Bearer TEXT)");
        } catch (const std::exception& e) {
            r.exit_code = kExitRuntime;
            r.message = fmt::format("sluice-collector: --http-token-file: {}\n", e.what());
            return r;
        }
        if (!text.empty() && text.back() == '\n') text.pop_back();
        if (!text.empty() && text.back() == '\r') text.pop_back();
        bool printable = text.size() >= session::kMinKeyBytes && text.size() <= 256;
        for (char ch : text) {
            const auto c = static_cast<unsigned char>(ch);
            printable = printable && c > 0x20 && c < 0x7f;
        }
        if (!printable)
            return usage_error(fmt::format(
                "--http-token-file {}: a token is {} to 256 printable ASCII characters without "
                "spaces (an HTTP header carries it); e.g. head -c 32 /dev/urandom | base64 > {}",
                token_file, session::kMinKeyBytes, token_file));
        o.http_token.resize(text.size());
        std::memcpy(o.http_token.data(), text.data(), text.size());
    }
    if (!key_file.empty()) {
        try {
            o.keys =
                std::make_shared<const session::Keyring>(session::Keyring::read_file(key_file));
        } catch (const std::exception& e) {
            r.exit_code = kExitRuntime;
            r.message = fmt::format("sluice-collector: {}\n", e.what());
            return r;
        }
    }
    try {
        const session::ResolvedAddress addr = session::resolve(o.listen, true);
        if (!group && !session::is_loopback(addr) && !o.has_keys() && !(tls && !o.tls.ca.empty())) {
            return usage_error(fmt::format(
                "listening on {} (not loopback) needs --key-file{}: without it anyone who "
                "reaches the port could write captures to {}. Give both ends the same key file, "
                "or listen on 127.0.0.1",
                o.listen.to_string(),
                tls ? " or --tls-ca (TLS alone encrypts; client certificates say who may send)"
                    : " (or TLS with client certificates: --tls-cert, --tls-key, --tls-ca)",
                o.out_dir));
        }
    } catch (const std::exception& e) {
        return usage_error(fmt::format("--listen: {}", e.what()));
    }
    r.options = std::move(o);
    return r;
}

}  // namespace sluice::collector
