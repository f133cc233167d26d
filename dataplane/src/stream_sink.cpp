// The stream transports as egress sinks: a tcp::TcpSender, an
// rdma::RdmaSender or a jetstream::JetStreamSender (each a
// session::SenderCore over its transport) does the work; this adapts any of
// them to FrameSink. One virtual call per frame.
#include <stdexcept>

#include <fmt/format.h>

#include "sluice/dataplane/sink.hpp"
#include "sluice/jetstream/sender.hpp"
#include "sluice/rdma/sender.hpp"
#include "sluice/report/log.hpp"
#include "sluice/session/endpoint.hpp"
#include "sluice/session/key.hpp"
#include "sluice/tcp/sender.hpp"
#include "sluice/wire/codec.hpp"

namespace sluice::dataplane {
namespace {

template <class Sender, class TransportCounters>
class StreamSink final : public FrameSink {
  public:
    StreamSink(const typename Sender::Config& cfg, std::string_view kind,
               const TransportCounters& (Sender::*transport_stats)() const)
        : sender_(cfg),
          kind_(kind),
          views_{view_of("transport", sender_.stats()),
                 view_of(kind_.c_str(), (sender_.*transport_stats)())} {}

    void register_memory(const void* base, std::size_t bytes) override {
        if constexpr (requires { sender_.register_memory(base, bytes); })
            sender_.register_memory(base, bytes);
    }
    Submit submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie) override {
        return sender_.submit(frame, sequence, cookie) == session::SubmitResult::Accepted
                   ? Submit::Accepted
                   : Submit::Full;
    }
    // `now_ns` comes from the egress stage's TSC clock: monotonic, as the
    // sender's timers need.
    bool poll(uint64_t now_ns) override { return sender_.poll(now_ns); }
    std::size_t reclaim(std::span<void*> out) override { return sender_.reclaim(out); }
    bool all_done() const override { return sender_.all_acknowledged(); }
    std::string describe() const override {
        const auto& c = sender_.config();
        std::string peer;
        if constexpr (requires { sender_.peer(); })
            peer = sender_.peer();
        else
            peer = session::Endpoint{c.host, c.port}.to_string();
        std::string s =
            fmt::format("{} {} stream {} ({})", kind_, peer, c.stream_id,
                        closed_ ? std::string_view("closed") : session::to_string(sender_.state()));
        if (!sender_.stats().connected.load(std::memory_order_relaxed)) {
            const std::string err = sender_.stats().last_error.get();
            if (!err.empty()) s += ": " + err;
        }
        return s;
    }
    std::span<const CounterBlockView> counters() const override { return views_; }
    uint64_t connects() const override { return sender_.stats().connects.get(); }
    uint64_t failures() const override { return sender_.stats().errors.get(); }
    std::string last_error() const override { return sender_.stats().last_error.get(); }
    void close() override {
        sender_.close();
        closed_ = true;
    }

  private:
    Sender sender_;
    std::string kind_;
    std::array<CounterBlockView, 2> views_;
    bool closed_ = false;
};

// The egress section's address, key and timers, as every stream transport
// takes them; nullopt and `error` when the address or the key is unusable.
template <class Config>
std::optional<Config> common_config(const config::Config& cfg, uint64_t stream_id,
                                    session::Transport transport, std::string& error) {
    const auto e = session::parse_endpoint(cfg.egress.address, transport);
    if (!e) {
        error = fmt::format("egress.address: {}", e.error().message);
        return std::nullopt;
    }
    Config sc;
    sc.host = e->host;
    sc.port = e->port;
    sc.stream_id = stream_id;
    sc.reconnect_min_ms = cfg.egress.reconnect_min_ms;
    sc.reconnect_max_ms = cfg.egress.reconnect_max_ms;
    sc.timeout_ms = cfg.egress.timeout_ms;
    sc.retransmit_frames = cfg.egress.retransmit_frames;
    if (!cfg.egress.key_file.empty()) {
        try {
            sc.key = session::read_key_file(cfg.egress.key_file);
        } catch (const std::exception& ex) {
            error = fmt::format("egress ({} {}): {}", session::to_string(transport),
                                cfg.egress.address, ex.what());
            return std::nullopt;
        }
    }
    return sc;
}

}  // namespace

std::unique_ptr<FrameSink> make_tcp_sink(const config::Config& cfg, uint64_t stream_id,
                                         std::string& error) {
    auto sc = common_config<tcp::SenderConfig>(cfg, stream_id, session::Transport::Tcp, error);
    if (!sc) return nullptr;
    sc->heartbeat_ms = cfg.egress.heartbeat_ms;
    sc->sndbuf_bytes = cfg.egress.sndbuf_bytes;
    sc->zerocopy = cfg.egress.zerocopy;
    sc->tls.ca = cfg.egress.tls_ca;
    sc->tls.cert = cfg.egress.tls_cert;
    sc->tls.key = cfg.egress.tls_key;
    sc->tls.server_name = cfg.egress.tls_server_name;
    try {
        return std::make_unique<StreamSink<tcp::TcpSender, tcp::TcpCounters>>(
            *sc, "tcp", &tcp::TcpSender::tcp_stats);
    } catch (const std::exception& e) {
        error = fmt::format("egress (tcp {}): {}", cfg.egress.address, e.what());
        return nullptr;
    }
}

std::unique_ptr<FrameSink> make_rdma_sink(const config::Config& cfg, uint64_t stream_id,
                                          std::string& error) {
    auto sc = common_config<rdma::SenderConfig>(cfg, stream_id, session::Transport::Rdma, error);
    if (!sc) return nullptr;
    sc->source = cfg.egress.rdma.source;
    sc->inline_bytes = cfg.egress.rdma.inline_size;
    sc->signal_interval = cfg.egress.rdma.signal_interval;
    sc->queue_depth = cfg.egress.rdma.queue_depth;
    try {
        return std::make_unique<StreamSink<rdma::RdmaSender, rdma::RdmaCounters>>(
            *sc, "rdma", &rdma::RdmaSender::rdma_stats);
    } catch (const std::exception& e) {
        error = fmt::format("egress (rdma {}): {}", cfg.egress.address, e.what());
        return nullptr;
    }
}

std::unique_ptr<FrameSink> make_jetstream_sink(const config::Config& cfg, uint64_t stream_id,
                                               std::string& error) {
    const config::JetStream& js = cfg.egress.jetstream;
    jetstream::SenderConfig sc;
    for (const auto& u : js.urls) {
        auto url = session::nats_server_url(u);
        if (!url) {
            error = fmt::format("egress.urls: {}", url.error().message);
            return nullptr;
        }
        sc.client.servers.push_back(std::move(*url));
    }
    sc.client.creds_file = js.creds;
    sc.client.user = js.user;
    sc.client.password_file = js.password_file;
    sc.client.token_file = js.token_file;
    sc.client.tls = js.tls;
    sc.client.tls_ca = js.tls_ca;
    sc.client.tls_cert = js.tls_cert;
    sc.client.tls_key = js.tls_key;
    sc.stream.name = js.stream;
    sc.stream.subject = js.subject;
    sc.stream.replicas = js.replicas;
    sc.stream.max_age_s = js.max_age_s;
    sc.stream.max_bytes = js.max_bytes > 0 ? js.max_bytes : -1;
    sc.stream.duplicate_window_s = js.duplicate_window_s;
    sc.stream.discard_new = js.discard == config::Discard::New;
    sc.create_stream = js.create_stream;
    sc.stream_id = stream_id;
    sc.max_frame_bytes =
        static_cast<uint32_t>(wire::FrameEncoder::max_sealed_size(cfg.batch.frame_size));
    sc.reconnect_min_ms = cfg.egress.reconnect_min_ms;
    sc.reconnect_max_ms = cfg.egress.reconnect_max_ms;
    sc.timeout_ms = cfg.egress.timeout_ms;
    sc.retransmit_frames = cfg.egress.retransmit_frames;
    try {
        return std::make_unique<
            StreamSink<jetstream::JetStreamSender, jetstream::JetStreamCounters>>(
            sc, "jetstream", &jetstream::JetStreamSender::jetstream_stats);
    } catch (const std::exception& e) {
        error = fmt::format("egress (jetstream): {}", e.what());
        return nullptr;
    }
}

}  // namespace sluice::dataplane
