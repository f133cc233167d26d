// Throughput of the TCP egress as the egress stage drives it: sealed frames
// already in memory (built once from a pcap), submitted to a TcpSender,
// polled, reclaimed, to a running sluice-collector. Every frame sent is a new
// sequence: a buffer is reused once reclaimed, with its header's sequence,
// first packet index and header CRC rewritten, as the codec stage would.
// Prints one JSON line per run (bench/tcp/run makes the table).
//
//   bench_tcp_stream --to HOST:PORT --pcap FILE [--codec none|lz4] [--seconds S]
//                    [--frame-size N] [--frames N] [--retransmit-frames N] [--zerocopy]
//                    [--spin] [--tls-ca F [--tls-cert F --tls-key F] [--tls-server-name N]]
//   bench_tcp_stream --sink PORT
//
// When a round of submit/poll/reclaim did nothing, the sender sleeps in
// poll(2) on its socket, as iperf3's blocking client does: on a machine with
// fewer cores than busy threads a spinning sender takes the CPU the far end
// needs. --spin busy-polls instead, as an egress lcore of its own does.
//
// With --tls-ca the stream is TLS 1.3 (kernel TLS where the kernel has it;
// SLUICE_KTLS=0 keeps it in user space); the JSON line says which mode ran.
//
// --sink is the transport alone at the far end: the collector's receiver
// (tcp::ReceiverSession: handshake, every frame verified with FrameReader,
// cumulative ACKs after each read) without pcapng or files, to tell the
// transport's cost from the collector's writing.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/session/clock.hpp"
#include "sluice/session/endpoint.hpp"
#include "sluice/simd/crc32c.hpp"
#include "sluice/tcp/receiver.hpp"
#include "sluice/tcp/sender.hpp"
#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice;
using wire::load_le;
using wire::store_le;

struct Frame {
    std::vector<std::byte> bytes;
    uint32_t packets = 0;
    uint64_t packet_bytes = 0;  // captured bytes (what the collector writes)
    bool busy = false;
};

std::vector<Frame> build(const std::string& pcap, wire::Codec codec, uint32_t frame_size,
                         std::size_t count) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p =
        pcap_open_offline_with_tstamp_precision(pcap.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) throw std::runtime_error(fmt::format("cannot read {}: {}", pcap, err));
    struct Pkt {
        uint64_t ts;
        uint32_t len;
        std::vector<std::byte> d;
    };
    std::vector<Pkt> pk;
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1)
        pk.push_back({uint64_t(h->ts.tv_sec) * 1'000'000'000u + h->ts.tv_usec, h->len,
                      std::vector<std::byte>(reinterpret_cast<const std::byte*>(d),
                                             reinterpret_cast<const std::byte*>(d) + h->caplen)});
    pcap_close(p);
    if (pk.empty()) throw std::runtime_error(pcap + " holds no packets");

    const uint32_t snap = std::min<uint32_t>(65535, (frame_size - 88) & ~7u);
    wire::FrameBuilder b({frame_size, snap});
    wire::FrameEncoder enc({.codec = codec, .max_raw_frame_bytes = frame_size});
    std::vector<std::byte> raw(frame_size), out(wire::FrameEncoder::max_sealed_size(frame_size));
    std::vector<Frame> frames;
    std::size_t i = 0;
    while (frames.size() < count) {
        Frame f;
        b.begin(raw, 1, 0, 0);
        for (;; i = (i + 1) % pk.size()) {
            const Pkt& q = pk[i];
            if (b.append({q.ts, q.len, 0, 0, 0}, q.d) == wire::AppendResult::FrameFull) break;
            ++f.packets;
            f.packet_bytes += std::min<std::size_t>(q.d.size(), snap);
        }
        auto s = enc.seal(b.finish(), out);
        if (!s) throw std::runtime_error(std::string(wire::to_string(s.error())));
        f.bytes.assign(s->frame.begin(), s->frame.end());
        frames.push_back(std::move(f));
    }
    return frames;
}

// What the codec stage writes into each new frame's header.
void renumber(Frame& f, uint64_t seq, uint64_t first_packet) {
    std::byte* h = f.bytes.data();
    store_le<uint64_t>(h + wire::offset::sequence, seq);
    store_le<uint64_t>(h + wire::offset::first_packet_index, first_packet);
    store_le<uint32_t>(h + wire::offset::header_crc, simd::crc32c(h, wire::offset::header_crc));
}

// Serves one connection after another until killed.
int sink(uint16_t port) {
    const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 8) != 0) {
        std::perror("bench_tcp_stream --sink");
        return 1;
    }
    wire::FrameReader reader;
    std::vector<std::byte> scratch(64u << 20), in(8u << 20);
    for (;;) {
        const int fd = ::accept(lfd, nullptr, nullptr);
        if (fd < 0) continue;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        tcp::ReceiverSession session({});
        tcp::Nonce nonce{};
        auto send_all = [&](std::span<const std::byte> b) {
            return ::send(fd, b.data(), b.size(), MSG_NOSIGNAL) >= 0;
        };
        send_all(session.challenge(nonce));
        std::size_t have = 0;
        uint64_t next = 0;
        bool open = true;
        while (open) {
            const ssize_t n = ::recv(fd, in.data() + have, in.size() - have, 0);
            if (n <= 0) break;
            have += static_cast<std::size_t>(n);
            std::size_t off = 0;
            bool ack = false;
            for (;;) {
                auto step = session.next({in.data() + off, have - off}, reader, scratch);
                if (step.kind == tcp::StepKind::NeedMore) {
                    if (step.needed > in.size()) in.resize(step.needed);
                    break;
                }
                off += step.consumed;
                if (step.kind == tcp::StepKind::Hello) {
                    const bool pos = step.hello.flags & tcp::hello_flag::kHasPosition;
                    next = pos ? step.hello.next_sequence : 0;
                    send_all(session.welcome(next, true));
                } else if (step.kind == tcp::StepKind::Frame) {
                    next = step.frame.info().sequence + 1;
                    ack = true;
                } else if (step.kind == tcp::StepKind::Heartbeat) {
                    ack = true;
                } else {
                    std::fprintf(stderr, "sink: %.*s\n", int(step.detail.size()),
                                 step.detail.data());
                    open = false;
                    break;
                }
            }
            std::memmove(in.data(), in.data() + off, have - off);
            have -= off;
            if (ack) send_all(session.ack(next));
        }
        ::close(fd);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--sink")
        return sink(static_cast<uint16_t>(std::stoul(argv[2])));
    std::string to, pcap;
    wire::Codec codec = wire::Codec::None;
    double seconds = 3;
    uint32_t frame_size = 262144, retransmit = 48;
    std::size_t nframes = 256;
    bool zerocopy = false, spin = false;
    tcp::TlsSettings tls;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--to")
            to = val();
        else if (a == "--pcap")
            pcap = val();
        else if (a == "--codec")
            codec = wire::parse_codec(val()).value_or(wire::Codec::None);
        else if (a == "--seconds")
            seconds = std::stod(val());
        else if (a == "--frame-size")
            frame_size = static_cast<uint32_t>(std::stoul(val()));
        else if (a == "--frames")
            nframes = std::stoul(val());
        else if (a == "--retransmit-frames")
            retransmit = static_cast<uint32_t>(std::stoul(val()));
        else if (a == "--zerocopy")
            zerocopy = true;
        else if (a == "--spin")
            spin = true;
        else if (a == "--tls-ca")
            tls.ca = val();
        else if (a == "--tls-cert")
            tls.cert = val();
        else if (a == "--tls-key")
            tls.key = val();
        else if (a == "--tls-server-name")
            tls.server_name = val();
        else {
            std::fprintf(stderr, "bench_tcp_stream: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    const auto ep = session::parse_endpoint(to);
    if (!ep || pcap.empty()) {
        std::fprintf(stderr, "usage: bench_tcp_stream --to HOST:PORT --pcap FILE [options]\n");
        return 2;
    }
    auto frames = build(pcap, codec, frame_size, std::max<std::size_t>(nframes, retransmit + 2));

    tcp::SenderConfig cfg;
    cfg.host = ep->host;
    cfg.port = ep->port;
    cfg.stream_id = 1;
    cfg.retransmit_frames = retransmit;
    cfg.zerocopy = zerocopy;
    cfg.tls = tls;
    tcp::TcpSender tx(cfg);

    uint64_t seq = 0, first_packet = 0, next = 0;
    void* done[64];
    auto step = [&](uint64_t now) {
        bool work = false;
        Frame& f = frames[next];
        if (!f.busy) {
            renumber(f, seq, first_packet);
            if (tx.submit(f.bytes, seq, &f) == session::SubmitResult::Accepted) {
                f.busy = true;
                ++seq;
                first_packet += f.packets;
                next = (next + 1) % frames.size();
                work = true;
            }
        }
        work |= tx.poll(now);
        const std::size_t n = tx.reclaim(done);
        for (std::size_t k = 0; k < n; ++k)
            static_cast<Frame*>(done[k])->busy = false;
        work |= n > 0;
        if (!work && !spin && tx.socket_fd() >= 0) {
            pollfd p{tx.socket_fd(),
                     static_cast<short>(POLLIN | (tx.wants_to_send() ? POLLOUT : 0)), 0};
            ::poll(&p, 1, 1);
        }
    };
    // Warm up: connect (a loaded machine may take a while), fill the pipe.
    const uint64_t give_up = session::monotonic_ns() + 20'000'000'000ull;
    while (!tx.stats().connected.load() && session::monotonic_ns() < give_up)
        step(session::monotonic_ns());
    if (!tx.stats().connected.load()) {
        std::fprintf(stderr, "bench_tcp_stream: not connected: %s\n",
                     tx.stats().last_error.get().c_str());
        return 1;
    }
    const uint64_t warm_end = session::monotonic_ns() + 500'000'000;
    while (session::monotonic_ns() < warm_end)
        step(session::monotonic_ns());
    // The measured interval counts what the collector acknowledged in it.
    auto acked_totals = [&](uint64_t& wire_bytes, uint64_t& packets, uint64_t& packet_bytes) {
        const uint64_t n = tx.stats().frames_acknowledged.get();
        wire_bytes = packets = packet_bytes = 0;
        for (uint64_t k = 0; k < n; ++k) {
            const Frame& f = frames[k % frames.size()];
            wire_bytes += f.bytes.size();
            packets += f.packets;
            packet_bytes += f.packet_bytes;
        }
        return n;
    };
    uint64_t w0, p0, b0;
    const uint64_t f0 = acked_totals(w0, p0, b0);
    const uint64_t t0 = session::monotonic_ns();
    const uint64_t t_end = t0 + static_cast<uint64_t>(seconds * 1e9);
    uint64_t now;
    while ((now = session::monotonic_ns()) < t_end)
        step(now);
    uint64_t w1, p1, b1;
    const uint64_t f1 = acked_totals(w1, p1, b1);
    const double dt = (now - t0) / 1e9;
    const auto& s = tx.stats();
    std::printf(
        "{\"codec\": \"%s\", \"zerocopy\": %s, \"seconds\": %.3f, \"frames_per_s\": %.1f, "
        "\"wire_gbit_s\": %.3f, \"capture_gbit_s\": %.3f, \"mpps\": %.3f, \"frame_bytes_avg\": "
        "%.0f, "
        "\"reconnects\": %llu, \"zerocopy_copied\": %llu, \"total_wire_bytes\": %llu, "
        "\"tls\": \"%s\"}\n",
        std::string(wire::codec_name(codec)).c_str(), zerocopy ? "true" : "false", dt,
        (f1 - f0) / dt, (w1 - w0) * 8 / dt / 1e9, (b1 - b0) * 8 / dt / 1e9, (p1 - p0) / dt / 1e6,
        f1 > f0 ? double(w1 - w0) / double(f1 - f0) : 0.0,
        static_cast<unsigned long long>(s.disconnects.get()),
        static_cast<unsigned long long>(tx.tcp_stats().zerocopy_copied.get()),
        static_cast<unsigned long long>(w1),
        tls.ca.empty()                             ? "none"
        : tx.tcp_stats().tls_kernel_send.get() > 0 ? "kernel"
                                                   : "user");
    tx.close();
    return 0;
}
