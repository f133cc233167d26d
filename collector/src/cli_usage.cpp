// sluice-collector --help: every option, what it does, the exit codes.
#include "sluice/collector/cli.hpp"

namespace sluice::collector {

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

}  // namespace sluice::collector
