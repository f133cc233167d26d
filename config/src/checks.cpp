// Cross-field checks: what no single key can say alone (queues against
// lcores, pools against descriptors, the egress address against its type).
#include <set>

#include "schema.hpp"

#include "sluice/session/endpoint.hpp"

namespace sluice::config::detail {

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
        const session::Transport type =
            c.egress.type == EgressType::Rdma ? session::Transport::Rdma : session::Transport::Tcp;
        const auto e = session::parse_endpoint(c.egress.address, type);
        if (!e) {
            sink.error(at("egress.address"), "egress.address",
                       "expected [tcp://|rdma://]host:port such as \"192.0.2.10:7700\" or "
                       "\"[2001:db8::1]:7700\", found " +
                           quote(c.egress.address) + " (" + e.error().message + ")");
        } else if (e->transport != type) {
            sink.error(at("egress.address"), "egress.address",
                       "the address says " + std::string(session::to_string(e->transport)) +
                           ":// but egress.type is \"" + std::string(session::to_string(type)) +
                           "\": make them agree (or leave the scheme out)");
        }
    }
    if (!c.stats.prometheus.empty()) {
        const auto e = session::parse_endpoint(c.stats.prometheus);
        if (!e || e->transport != session::Transport::Tcp) {
            sink.error(at("stats.prometheus"), "stats.prometheus",
                       "expected ADDR:PORT such as \"127.0.0.1:9470\" or \"[::1]:9470\", found " +
                           quote(c.stats.prometheus) + (e ? "" : " (" + e.error().message + ")"));
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
    const auto& eg = c.egress;
    const bool any_tls = !(eg.tls_ca + eg.tls_cert + eg.tls_key + eg.tls_server_name).empty();
    auto first_tls_key = [&]() -> std::string {
        return !eg.tls_ca.empty()     ? "egress.tls_ca"
               : !eg.tls_cert.empty() ? "egress.tls_cert"
               : !eg.tls_key.empty()  ? "egress.tls_key"
                                      : "egress.tls_server_name";
    };
    if (any_tls && eg.type != EgressType::Tcp) {
        const std::string key = first_tls_key();
        sink.error(at(key), key,
                   "TLS is for egress.type = \"tcp\" only" +
                       std::string(eg.type == EgressType::Rdma
                                       ? " (RDMA has no encryption: use it on trusted fabrics)"
                                   : eg.type == EgressType::JetStream
                                       ? " (TLS to NATS servers is set with egress.nats_tls_ca, "
                                         "nats_tls_cert and nats_tls_key)"
                                       : "") +
                       ": remove the egress.tls_* keys, or set egress.type = \"tcp\"");
    } else if (any_tls) {
        if (!eg.tls_cert.empty() && eg.tls_key.empty()) {
            sink.error(at("egress.tls_cert"), "egress.tls_key",
                       "egress.tls_cert needs egress.tls_key, the certificate's private key");
        }
        if (eg.tls_cert.empty() && !eg.tls_key.empty()) {
            sink.error(at("egress.tls_key"), "egress.tls_cert",
                       "egress.tls_key needs egress.tls_cert, the certificate it belongs to");
        }
        if (eg.tls_ca.empty()) {
            const std::string key = first_tls_key();
            sink.error(at(key), "egress.tls_ca",
                       key +
                           " needs egress.tls_ca: TLS is on only with the CA that signed the "
                           "collector's certificate");
        }
        if (!eg.tls_ca.empty() && eg.zerocopy) {
            sink.error(at("egress.zerocopy"), "egress.zerocopy",
                       "MSG_ZEROCOPY does not combine with TLS (the kernel encrypts into its own "
                       "buffers): set zerocopy = false, or remove egress.tls_ca");
        }
    }
    if (c.egress.type == EgressType::JetStream) {
        const auto& js = c.egress.jetstream;
        if (js.urls.empty()) {
            sink.error(at("egress.type"), "egress.urls",
                       "egress.type = \"jetstream\" needs egress.urls, the NATS servers, e.g. "
                       "urls = [\"nats1:4222\", \"nats2:4222\"]");
        }
        for (const auto& u : js.urls) {
            const auto url = session::nats_server_url(u);
            if (!url) {
                sink.error(at("egress.urls"), "egress.urls",
                           "expected host:port, nats://host:port or tls://host:port, found " +
                               quote(u) + " (" + url.error().message + ")");
            }
        }
        const auto id = js.subject.find("{stream_id}");
        if (id == std::string::npos || js.subject.find("{stream_id}", id + 1) != std::string::npos)
            sink.error(at("egress.subject"), "egress.subject",
                       "expected a subject with {stream_id} once, such as "
                       "\"sluice.frames.{stream_id}\", found " +
                           quote(js.subject));
        if (js.stream.empty() || js.stream.find_first_of(" .*>\t") != std::string::npos)
            sink.error(at("egress.stream"), "egress.stream",
                       "expected a JetStream stream name (no spaces, dots, * or >), found " +
                           quote(js.stream));
        if (js.user.empty() != js.password_file.empty())
            sink.error(at(js.user.empty() ? "egress.nats_password_file" : "egress.nats_user"),
                       js.user.empty() ? "egress.nats_password_file" : "egress.nats_user",
                       "nats_user and nats_password_file go together");
    }
    if (c.egress.type == EgressType::File && c.egress.path.empty()) {
        sink.error(at("egress.type"), "egress.path",
                   "egress.type = \"file\" needs egress.path, the file frames are written to");
    }
}

}  // namespace sluice::config::detail
