// The TCP transport as an egress sink: tcp::TcpSender does the work.
#include <stdexcept>

#include <fmt/format.h>

#include "sluice/dataplane/log.hpp"
#include "sluice/dataplane/sink.hpp"
#include "sluice/tcp/auth.hpp"
#include "sluice/tcp/sender.hpp"

namespace sluice::dataplane {
namespace {

class TcpSink final : public FrameSink {
  public:
    explicit TcpSink(const tcp::SenderConfig& cfg)
        : sender_(cfg), view_(view_of("transport", sender_.stats())) {}

    Submit submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie) override {
        return sender_.submit(frame, sequence, cookie) == tcp::SubmitResult::Accepted
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
        std::string s =
            fmt::format("tcp {}:{} stream {} ({})", c.host, c.port, c.stream_id,
                        closed_ ? std::string_view("closed") : tcp::to_string(sender_.state()));
        if (!sender_.stats().connected.load(std::memory_order_relaxed)) {
            const std::string err = sender_.stats().last_error.get();
            if (!err.empty()) s += ": " + err;
        }
        return s;
    }
    const CounterBlockView* counters() const override { return &view_; }
    uint64_t connects() const override { return sender_.stats().connects.get(); }
    uint64_t failures() const override { return sender_.stats().errors.get(); }
    std::string last_error() const override { return sender_.stats().last_error.get(); }
    void close() override {
        sender_.close();
        closed_ = true;
    }

  private:
    tcp::TcpSender sender_;
    CounterBlockView view_;
    bool closed_ = false;
};

}  // namespace

std::unique_ptr<FrameSink> make_tcp_sink(const config::Config& cfg, uint64_t stream_id,
                                         std::string& error) {
    config::HostPort hp;
    if (!config::parse_host_port(cfg.egress.address, hp, &error)) {
        error = fmt::format("egress.address \"{}\": {}", cfg.egress.address, error);
        return nullptr;
    }
    tcp::SenderConfig sc;
    sc.host = hp.host;
    sc.port = hp.port;
    sc.stream_id = stream_id;
    sc.reconnect_min_ms = cfg.egress.reconnect_min_ms;
    sc.reconnect_max_ms = cfg.egress.reconnect_max_ms;
    sc.heartbeat_ms = cfg.egress.heartbeat_ms;
    sc.timeout_ms = cfg.egress.timeout_ms;
    sc.retransmit_frames = cfg.egress.retransmit_frames;
    sc.sndbuf_bytes = cfg.egress.sndbuf_bytes;
    sc.zerocopy = cfg.egress.zerocopy;
    try {
        if (!cfg.egress.key_file.empty()) {
            std::string warning;
            sc.key = tcp::read_key_file(cfg.egress.key_file, &warning);
            if (!warning.empty()) log_warning("egress.key_file: {}", warning);
        }
        return std::make_unique<TcpSink>(sc);
    } catch (const std::exception& e) {
        error = fmt::format("egress (tcp {}): {}", cfg.egress.address, e.what());
        return nullptr;
    }
}

}  // namespace sluice::dataplane
