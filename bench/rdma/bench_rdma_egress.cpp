// sluice's RDMA egress, transport alone: an RdmaSender driven as the egress
// stage drives it (sealed frames already in registered memory) into an
// RdmaListener in another thread that acknowledges every frame without
// verifying or writing it. bench/rdma/run puts its figure next to
// ib_write_bw's on the same device.
//
//   bench_rdma_egress --addr IP [--source IP] [--port N] [--frame-bytes N]
//                     [--seconds S] [--slots N] [--frames N] [--inline N]
//                     [--signal N] [--depth N]
//
// Prints one line: "frame_bytes=N seconds=S frames=N gbit_s=X".
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "sluice/rdma/listener.hpp"
#include "sluice/rdma/sender.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice;

// Acknowledges what arrives, in order: the transport's cost only.
class AckingHandler final : public session::ReceiverHandler {
  public:
    void on_connection(session::ConnectionId, session::ReceiverTransport&,
                       std::string_view) override {}
    session::HelloAnswer on_hello(session::ConnectionId, const session::Hello& h) override {
        session::HelloAnswer a;
        a.accept = true;
        a.new_session = true;
        a.resume_sequence = h.position.known ? h.position.sequence : 0;
        next_ = a.resume_sequence;
        return a;
    }
    bool on_frame(session::ConnectionId, const wire::FrameView& frame, session::Refusal&) override {
        next_ = frame.info().sequence + 1;
        return true;
    }
    std::optional<uint64_t> on_batch_done(session::ConnectionId, session::Refusal&) override {
        return next_;
    }
    void on_closed(session::ConnectionId, session::CloseCause, std::string_view why) override {
        if (!why.empty())
            std::fprintf(stderr, "bench_rdma_egress: listener: %.*s\n", int(why.size()),
                         why.data());
    }
    void on_listener_error(std::string_view what) override {
        std::fprintf(stderr, "bench_rdma_egress: listener: %.*s\n", int(what.size()), what.data());
    }

  private:
    uint64_t next_ = 0;
};

struct Options {
    std::string addr, source;
    uint16_t port = 7791;
    uint32_t frame_bytes = 262144;
    double seconds = 5;
    uint32_t slots = 64;
    uint32_t frames = 64;
    uint32_t inline_bytes = 256;
    uint32_t signal = 16;
    uint32_t depth = 128;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "bench_rdma_egress: %s\nusage: bench_rdma_egress --addr IP [--source IP] "
                 "[--port N] [--frame-bytes N] [--seconds S] [--slots N] [--frames N] "
                 "[--inline N] [--signal N] [--depth N]\n",
                 why);
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + a).c_str());
        const std::string v = argv[++i];
        if (a == "--addr")
            o.addr = v;
        else if (a == "--source")
            o.source = v;
        else if (a == "--port")
            o.port = static_cast<uint16_t>(std::stoul(v));
        else if (a == "--frame-bytes")
            o.frame_bytes = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--seconds")
            o.seconds = std::stod(v);
        else if (a == "--slots")
            o.slots = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--frames")
            o.frames = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--inline")
            o.inline_bytes = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--signal")
            o.signal = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--depth")
            o.depth = static_cast<uint32_t>(std::stoul(v));
        else
            usage(("unknown option " + a).c_str());
    }
    if (o.addr.empty()) usage("--addr is required");
    if (o.frame_bytes < 1024) usage("--frame-bytes must be at least 1024");
    return o;
}

// A sealed, uncompressed frame of about `bytes` bytes (1500-byte packets).
std::vector<std::byte> make_frame(uint32_t bytes) {
    wire::FrameBuilder b({bytes, 1500});
    std::vector<std::byte> raw(bytes), pkt(1500);
    for (std::size_t i = 0; i < pkt.size(); ++i)
        pkt[i] = std::byte(static_cast<uint8_t>(i * 7));
    b.begin(raw, 1, 0, 0);
    uint64_t t = 0;
    while (b.append({++t, 1500, 0, 0, 0}, pkt) == wire::AppendResult::Appended) {
    }
    wire::FrameEncoder enc({.codec = wire::Codec::None});
    auto sealed = enc.seal(b.finish(), {});
    if (!sealed.ok()) usage("cannot build a frame");
    return {sealed->frame.begin(), sealed->frame.end()};
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    AckingHandler handler;
    rdma::ListenerConfig lc;
    lc.host = o.addr;
    lc.port = o.port;
    lc.slot_count = o.slots;
    const std::vector<std::byte> proto = make_frame(o.frame_bytes);
    lc.slot_bytes = static_cast<uint32_t>((proto.size() + 4095) & ~std::size_t{4095});
    std::unique_ptr<rdma::RdmaListener> listener;
    try {
        listener = std::make_unique<rdma::RdmaListener>(lc, handler);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_rdma_egress: %s\n", e.what());
        return 1;
    }
    std::atomic<bool> stop{false};
    std::thread serve([&] {
        const int ep = ::epoll_create1(0);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, listener->fd(), &ev);
        // relaxed: a stop flag; nothing else is handed over through it.
        while (!stop.load(std::memory_order_relaxed)) {
            epoll_event out;
            ::epoll_wait(ep, &out, 1, 10);
            listener->poll(session::monotonic_ns());
            listener->timers(session::monotonic_ns());
        }
        listener->close_all("benchmark over");
        ::close(ep);
    });

    rdma::SenderConfig sc;
    sc.host = o.addr;
    sc.source = o.source.empty() ? o.addr : o.source;
    sc.port = o.port;
    sc.retransmit_frames = o.frames;
    sc.inline_bytes = o.inline_bytes;
    sc.signal_interval = o.signal;
    sc.queue_depth = o.depth;
    std::unique_ptr<rdma::RdmaSender> tx;
    try {
        tx = std::make_unique<rdma::RdmaSender>(sc);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_rdma_egress: %s\n", e.what());
        stop = true;
        serve.join();
        return 1;
    }
    // One frame buffer per retransmit slot, in one registered region.
    const std::size_t stride = (proto.size() + 63) & ~std::size_t{63};
    std::vector<std::byte> arena(stride * o.frames);
    std::vector<std::byte*> free_bufs;
    for (uint32_t i = 0; i < o.frames; ++i) {
        std::memcpy(arena.data() + i * stride, proto.data(), proto.size());
        free_bufs.push_back(arena.data() + i * stride);
    }
    tx->register_memory(arena.data(), arena.size());

    uint64_t seq = 0;
    void* done[64];
    auto step = [&] {
        while (!free_bufs.empty()) {
            std::byte* b = free_bufs.back();
            std::memcpy(b + wire::offset::sequence, &seq, sizeof seq);
            if (tx->submit({b, proto.size()}, seq, b) != session::SubmitResult::Accepted) break;
            free_bufs.pop_back();
            ++seq;
        }
        tx->poll(session::monotonic_ns());
        for (std::size_t i = 0, n = tx->reclaim(done); i < n; ++i)
            free_bufs.push_back(static_cast<std::byte*>(done[i]));
    };
    const uint64_t connect_deadline = session::monotonic_ns() + 30'000'000'000ull;
    while (tx->state() != session::SenderState::Streaming &&
           session::monotonic_ns() < connect_deadline)
        step();
    if (tx->state() != session::SenderState::Streaming) {
        std::fprintf(stderr, "bench_rdma_egress: no connection: %s\n",
                     tx->stats().last_error.get().c_str());
        stop = true;
        serve.join();
        return 1;
    }
    // Warm up for a tenth of the run, then measure acknowledged bytes.
    const uint64_t warm_until = session::monotonic_ns() + static_cast<uint64_t>(o.seconds * 1e8);
    while (session::monotonic_ns() < warm_until)
        step();
    const uint64_t acked0 = tx->stats().frames_acknowledged.get();
    const uint64_t t0 = session::monotonic_ns();
    const uint64_t until = t0 + static_cast<uint64_t>(o.seconds * 1e9);
    while (session::monotonic_ns() < until)
        step();
    const uint64_t frames = tx->stats().frames_acknowledged.get() - acked0;
    const double secs = (session::monotonic_ns() - t0) / 1e9;
    const uint64_t reconnects = tx->stats().disconnects.get();
    tx->close();
    stop = true;
    serve.join();
    if (reconnects) {
        std::fprintf(stderr, "bench_rdma_egress: the connection dropped %llu times: %s\n",
                     static_cast<unsigned long long>(reconnects),
                     tx->stats().last_error.get().c_str());
        return 1;
    }
    std::printf("frame_bytes=%zu seconds=%.2f frames=%llu gbit_s=%.3f\n", proto.size(), secs,
                static_cast<unsigned long long>(frames), frames * proto.size() * 8 / secs / 1e9);
    return 0;
}
