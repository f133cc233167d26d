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
