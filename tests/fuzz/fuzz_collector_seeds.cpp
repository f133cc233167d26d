// Writes the hand-made inputs of the collector's fuzz targets into a
// directory. They seed the fuzzer (scripts/fuzz) and are replayed as
// regression tests (tests/fuzz/regressions/TARGET/).
//
//   fuzz_collector_seeds DIR [TARGET]      TARGET: collector_stream (default),
//                                          collector_tls, rdma_slot, index_reader
//
// collector_stream: whole sessions (handshake, frames of each codec,
//   heartbeats), keyed and not, delivered at once and in small chunks, and
//   the refusals (wrong key, another version, garbage, a peer's REJECT).
// collector_tls: a real ClientHello, a sluice HELLO without TLS, garbage,
//   an HTTP request (raw); sessions inside TLS written in one record, in
//   small records, with a KeyUpdate, a close_notify, bytes outside TLS.
// rdma_slot: the writes of a connection: frames of each codec over several
//   (port, queue) interfaces, a gap, a duplicate, a short write, a frame of
//   another stream, a frame the immediate did not announce.
// index_reader: data files and indexes the collector wrote (plain and zstd,
//   one block and many, finished and not), and an index that no longer
//   fits its data.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "collector_fuzzing.hpp"
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "sluice/collector/stream.hpp"
#include "sluice/index/builder.hpp"
#include "sluice/index/format.hpp"

namespace {

using namespace sluice;
using Bytes = std::vector<std::byte>;
namespace fs = std::filesystem;

constexpr uint64_t kFirstTs = 1700000000000000000ull;  // index_reader's time range starts here

Bytes hello(const Bytes& k, bool claim_key, uint8_t version = tcp::kTransportVersion) {
    tcp::Hello h;
    h.flags = (claim_key ? tcp::hello_flag::kHasKey : 0) | tcp::hello_flag::kHasPosition;
    h.stream_id = 3;
    h.session_id = 9;
    h.heartbeat_ms = 1000;
    h.proof = tcp::hello_proof(k, fuzzing::fixed_nonce(), tcp::hello_signed_bytes(h));
    std::array<std::byte, tcp::kMaxMessageSize> b;
    return {b.begin(), b.begin() + tcp::encode(h, b, version)};
}

// An Ethernet packet: IPv4 or IPv6, TCP or UDP, the ports given.
Bytes ethernet(uint32_t i, uint16_t size) {
    Bytes p(std::max<uint16_t>(size, 80));
    const bool v6 = i % 4 == 3;
    const bool udp = i % 3 == 0;
    auto put = [&](std::size_t at, std::initializer_list<int> bytes) {
        for (int b : bytes)
            p[at++] = std::byte(static_cast<uint8_t>(b));
    };
    put(0, {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2});
    std::size_t l4;
    if (v6) {
        put(12, {0x86, 0xdd, 0x60, 0, 0, 0, 0, 40, udp ? 17 : 6, 64});
        for (int k = 0; k < 32; ++k)
            p[22 + k] = std::byte(static_cast<uint8_t>(k == 15 || k == 31 ? i : 0x20));
        l4 = 54;
    } else {
        put(12, {0x08, 0x00, 0x45, 0, 0,  60,
                 0,    0,    0x40, 0, 64, udp ? 17 : 6,
                 0,    0,    10,   0, 0,  static_cast<int>(i & 0xff),
                 10,   0,    1,    1});
        l4 = 34;
    }
    const int sport = 1024 + static_cast<int>(i % 7),
              dport = udp ? 53 : 80 + static_cast<int>(i % 2);
    put(l4, {sport >> 8, sport & 0xff, dport >> 8, dport & 0xff});
    for (std::size_t k = l4 + 8; k < p.size(); ++k)
        p[k] = std::byte(static_cast<uint8_t>(k * 7 + i));
    return p;
}

// A sealed frame of `packets` packets from packet `first` on, alternating
// over `interfaces` (port, queue) pairs, timestamps `step_ns` apart.
Bytes frame(uint64_t stream, uint64_t seq, wire::Codec codec, uint32_t packets, uint64_t first = 0,
            uint32_t interfaces = 3, uint64_t step_ns = 1000) {
    const uint32_t max = 1u << 16;
    wire::FrameBuilder b({max, 2048});
    Bytes raw(max), out(wire::FrameEncoder::max_sealed_size(max));
    b.begin(raw, stream, seq, first);
    for (uint32_t i = 0; i < packets; ++i) {
        const uint32_t n = static_cast<uint32_t>(first) + i;
        const Bytes pkt = ethernet(n, static_cast<uint16_t>(60 + (n * 37) % 240));
        b.append({kFirstTs + n * step_ns, static_cast<uint32_t>(pkt.size() + (n % 5 == 0 ? 4 : 0)),
                  static_cast<uint16_t>(n % interfaces % 2), static_cast<uint16_t>(n % interfaces),
                  n % 5 == 0 ? wire::record_flag::kFcsIncluded : 0},
                 pkt);
    }
    wire::FrameEncoder enc({.codec = codec, .min_compress_bytes = 0, .max_raw_frame_bytes = max});
    auto s = enc.seal(b.finish(), out);
    return {s->frame.begin(), s->frame.end()};
}

Bytes heartbeat() {
    std::array<std::byte, tcp::kMaxMessageSize> b;
    return {b.begin(), b.begin() + tcp::encode(tcp::Heartbeat{1}, b)};
}

void put(Bytes& to, const Bytes& what) {
    to.insert(to.end(), what.begin(), what.end());
}

template <class T>
void put_le(Bytes& to, T v) {
    const std::size_t at = to.size();
    to.resize(at + sizeof v);
    std::memcpy(to.data() + at, &v, sizeof v);
}

void write(const std::string& dir, const std::string& name, uint8_t mode, const Bytes& body) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.put(static_cast<char>(mode));
    out.write(reinterpret_cast<const char*>(body.data()),
              static_cast<std::streamsize>(body.size()));
}

Bytes read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    const std::vector<char> c((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    Bytes v(c.size());
    std::memcpy(v.data(), c.data(), c.size());
    return v;
}

Bytes plain_session() {
    Bytes session = hello({}, false);
    put(session, frame(3, 0, wire::Codec::None, 5));
    put(session, heartbeat());
    put(session, frame(3, 1, wire::Codec::Lz4, 40, 5));
    put(session, frame(3, 2, wire::Codec::Zstd, 40, 45));
    return session;
}

void collector_stream(const std::string& dir) {
    const Bytes none;
    const Bytes session = plain_session();
    write(dir, "session-plain", 0x00, session);
    write(dir, "session-chunked-8", 0x30, session);
    write(dir, "session-chunked-2", 0x10, session);

    Bytes keyed = hello(fuzzing::fuzz_key(), true);
    put(keyed, frame(3, 0, wire::Codec::Lz4, 10));
    write(dir, "session-keyed", 0x04, keyed);

    Bytes frames_only = frame(3, 5, wire::Codec::None, 3);
    put(frames_only, frame(3, 6, wire::Codec::Lz4, 30));
    write(dir, "frames-only", 0x02, frames_only);

    write(dir, "wrong-key", 0x04, hello(Bytes(fuzzing::fuzz_key().size(), std::byte{'x'}), true));
    write(dir, "key-missing", 0x04, hello(none, false));
    write(dir, "key-unexpected", 0x00, hello(fuzzing::fuzz_key(), true));
    write(dir, "version-2", 0x00, hello(none, false, 2));

    Bytes garbage(64);
    for (std::size_t i = 0; i < garbage.size(); ++i)
        garbage[i] = std::byte(static_cast<uint8_t>(i * 37));
    write(dir, "garbage", 0x00, garbage);

    std::array<std::byte, tcp::kMaxMessageSize> b;
    const std::size_t n =
        tcp::encode(tcp::Reject{tcp::RejectReason::AuthFailed, "not my collector"}, b);
    write(dir, "peer-reject", 0x00, Bytes(b.begin(), b.begin() + n));

    Bytes truncated = hello(none, false);
    const Bytes f = frame(3, 0, wire::Codec::Lz4, 20);
    truncated.insert(truncated.end(), f.begin(), f.begin() + f.size() / 2);
    write(dir, "truncated-frame", 0x00, truncated);
}

// What an OpenSSL client sends first: a TLS 1.3 ClientHello.
Bytes client_hello() {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL* ssl = SSL_new(ctx);
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    SSL_do_handshake(ssl);
    Bytes out;
    char buf[4096];
    int n;
    while ((n = BIO_read(wbio, buf, sizeof buf)) > 0)
        out.insert(out.end(), reinterpret_cast<std::byte*>(buf),
                   reinterpret_cast<std::byte*>(buf) + n);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return out;
}

// A collector_tls script operation carrying bytes.
void op(Bytes& script, uint8_t kind, uint8_t param, const Bytes& data) {
    script.push_back(std::byte(static_cast<uint8_t>(kind | param << 3)));
    put_le<uint16_t>(script, static_cast<uint16_t>(data.size()));
    put(script, data);
}
void op(Bytes& script, uint8_t kind, uint8_t param = 0) {
    script.push_back(std::byte(static_cast<uint8_t>(kind | param << 3)));
}

void collector_tls(const std::string& dir) {
    // Raw (bit 0 clear): the client's first bytes.
    write(dir, "raw-client-hello", 0x00, client_hello());
    write(dir, "raw-client-hello-half-closed", 0x10, client_hello());
    write(dir, "raw-client-hello-client-certs", 0x08, client_hello());
    write(dir, "raw-plaintext-hello", 0x00, hello({}, false));
    write(dir, "raw-nothing-then-grace", 0x20, {});
    const std::string http = "GET / HTTP/1.1\r\nHost: collector\r\n\r\n";
    Bytes h(http.size());
    std::memcpy(h.data(), http.data(), http.size());
    write(dir, "raw-http", 0x00, h);

    // Sessions (bit 0 set; bit 1: repaired for the collector's nonce).
    const Bytes session = plain_session();
    Bytes one;
    op(one, 0, 0, session);
    write(dir, "session-one-record", 0x03, one);
    write(dir, "session-client-cert", 0x1b, one);
    write(dir, "session-client-cert-missing", 0x0b, one);
    Bytes small;
    op(small, 1, 6, session);  // records of 7 bytes
    write(dir, "session-small-records", 0x03, small);

    Bytes keyed_body = fuzzing::valid_hello(3, fuzzing::fuzz_key(), fuzzing::fixed_nonce());
    put(keyed_body, frame(3, 0, wire::Codec::Lz4, 10));
    Bytes keyed;
    op(keyed, 0, 0, keyed_body);
    write(dir, "session-keyed", 0x07, keyed);

    Bytes events;
    const Bytes half(session.begin(),
                     session.begin() + static_cast<std::ptrdiff_t>(session.size() / 2));
    const Bytes rest(session.begin() + static_cast<std::ptrdiff_t>(session.size() / 2),
                     session.end());
    op(events, 0, 0, half);
    op(events, 3, 1);  // KeyUpdate, the collector asked to update too
    op(events, 1, 31, rest);
    op(events, 6, 20);  // 2 s pass
    op(events, 4);      // close_notify
    write(dir, "session-key-update-close-notify", 0x03, events);

    Bytes outside;
    op(outside, 0, 0, Bytes(session.begin(), session.begin() + 200));
    Bytes fake_alert = {std::byte{21}, std::byte{3}, std::byte{3}, std::byte{0},
                        std::byte{2},  std::byte{2}, std::byte{40}};
    op(outside, 2, 0, fake_alert);
    write(dir, "session-bytes-outside-tls", 0x03, outside);

    Bytes idle;
    op(idle, 0, 0, Bytes(session.begin(), session.begin() + 116));  // the HELLO alone
    op(idle, 5);                                                    // half-close
    write(dir, "session-hello-then-idle", 0x23, idle);
}

void rdma_slot(const std::string& dir) {
    const auto slot = [](Bytes& to, const Bytes& f, uint16_t bits, std::size_t len = SIZE_MAX) {
        put_le<uint32_t>(to, static_cast<uint32_t>(std::min(len, f.size())));
        put_le<uint16_t>(to, bits);
        to.insert(to.end(), f.begin(),
                  f.begin() + static_cast<std::ptrdiff_t>(std::min(len, f.size())));
    };
    Bytes ring;
    uint64_t first = 0;
    const wire::Codec codecs[] = {wire::Codec::None, wire::Codec::Lz4, wire::Codec::Zstd};
    for (uint64_t seq = 0; seq < 6; ++seq) {
        const uint32_t n = 4 + static_cast<uint32_t>(seq) * 3;
        slot(ring, frame(5, seq, codecs[seq % 3], n, first, 5), static_cast<uint16_t>(seq));
        first += n;
    }
    write(dir, "writes", 0x00, ring);
    write(dir, "writes-zstd-files", 0x04, ring);
    write(dir, "writes-rotated-batches-of-2", 0x18, ring);
    write(dir, "writes-resume-at-3", 0x40, ring);

    Bytes gaps;
    slot(gaps, frame(5, 10, wire::Codec::None, 3, 0), 10);
    slot(gaps, frame(5, 12, wire::Codec::Lz4, 3, 6), 12);   // 11 never came
    slot(gaps, frame(5, 11, wire::Codec::Lz4, 3, 3), 11);   // late: a duplicate now
    slot(gaps, frame(5, 13, wire::Codec::None, 0, 9), 13);  // no packets
    write(dir, "gap-duplicate-empty", 0x20, gaps);

    Bytes short_write;
    const Bytes f = frame(5, 0, wire::Codec::Lz4, 20);
    slot(short_write, frame(5, 0, wire::Codec::None, 2), 0);
    slot(short_write, f, 1, f.size() - 9);
    write(dir, "short-write", 0x02, short_write);

    Bytes other;
    slot(other, frame(5, 0, wire::Codec::None, 2), 0);
    slot(other, frame(6, 1, wire::Codec::None, 2), 1);
    write(dir, "another-stream", 0x00, other);

    Bytes unannounced;
    slot(unannounced, frame(5, 0, wire::Codec::None, 2), 0);
    slot(unannounced, frame(5, 1, wire::Codec::None, 2), 7);
    write(dir, "sequence-not-announced", 0x00, unannounced);
}

// The data file and index a collector Stream writes for `frames`.
std::pair<Bytes, Bytes> collector_files(collector::Compression c, const std::vector<Bytes>& frames,
                                        bool finish, const index::BuildSettings* rebuild) {
    const fs::path d =
        fs::temp_directory_path() / fs::path("sluice-seeds-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d / ".sluice");
    collector::StreamSettings set;
    set.dir = d.string();
    set.compression = c;
    collector::ZstdCompressor zstd(3);
    collector::Workspace ws;
    ws.zstd = &zstd;
    wire::FrameReader reader;
    Bytes scratch(1u << 20);
    {
        collector::Stream s(1, set, ws);
        (void)s.recover();
        session::Hello h;
        h.stream_id = 1;
        h.session_id = 1;
        (void)s.on_hello(h);
        for (const Bytes& f : frames) {
            auto v = reader.open(f, scratch);
            (void)s.add(*v);
            (void)s.commit();  // one zstd frame per commit: a boundary per frame
        }
        s.close_file();
    }
    fs::path data;
    for (const auto& e : fs::directory_iterator(d))
        if (e.path().string().ends_with(".pcapng.part") ||
            e.path().string().ends_with(".zst.part"))  // still being written
            data = e.path();
    if (rebuild) {
        index::DataIndexed r;
        std::string error;
        (void)index::reindex_file(data.string(), *rebuild, &r, &error);
    }
    Bytes ix = read_file(index::index_path(data.string()));
    if (!finish) {
        // Without its Finish record: a file the collector still writes.
        if (ix.size() >= index::kFinishRecordBytes)
            ix.resize(ix.size() - index::kFinishRecordBytes);
    }
    Bytes out = read_file(data);
    fs::remove_all(d);
    return {std::move(ix), std::move(out)};
}

void index_reader(const std::string& dir) {
    std::vector<Bytes> frames;
    uint64_t first = 0;
    for (uint64_t seq = 0; seq < 4; ++seq) {
        // 30 ms apart: the packets span the one-second range and beyond.
        frames.push_back(frame(1, seq, wire::Codec::Lz4, 16, first, 3, 30'000'000));
        first += 16;
    }
    const auto seed = [&](const std::string& name, uint8_t mode, const std::pair<Bytes, Bytes>& f) {
        Bytes body;
        put_le<uint32_t>(body, static_cast<uint32_t>(f.first.size()));
        put(body, f.first);
        put(body, f.second);
        write(dir, name, mode, body);
    };
    index::BuildSettings small;
    small.block_bytes = 2048;
    small.block_packets = 8;
    const auto plain = collector_files(collector::Compression::None, frames, true, nullptr);
    seed("plain-one-block", 0x00, plain);
    seed("plain-one-block-filter-time", 0x0c, plain);
    seed("plain-flows", 0x20, plain);
    seed("plain-reindexed", 0x10, plain);
    seed("plain-many-blocks", 0x04,
         collector_files(collector::Compression::None, frames, true, &small));
    seed("plain-unfinished", 0x08,
         collector_files(collector::Compression::None, frames, false, &small));
    const auto zst = collector_files(collector::Compression::Zstd, frames, true, &small);
    seed("zstd-many-blocks", 0x02, zst);
    seed("zstd-filter-time", 0x0e, zst);
    // The index describes more than the data holds (a file cut behind its index).
    auto cut = plain;
    cut.second.resize(cut.second.size() / 2);
    seed("plain-cut-behind-its-index", 0x00, cut);
    // No index at all: the data is indexed in memory.
    seed("plain-no-index", 0x04, {Bytes{}, plain.second});
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        std::fprintf(stderr, "usage: fuzz_collector_seeds DIR [TARGET]\n");
        return 2;
    }
    const std::string dir = argv[1];
    const std::string target = argc == 3 ? argv[2] : "collector_stream";
    fs::create_directories(dir);
    if (target == "collector_stream")
        collector_stream(dir);
    else if (target == "collector_tls")
        collector_tls(dir);
    else if (target == "rdma_slot")
        rdma_slot(dir);
    else if (target == "index_reader")
        index_reader(dir);
    else {
        std::fprintf(stderr,
                     "fuzz_collector_seeds: no seeds for '%s' (collector_stream, collector_tls, "
                     "rdma_slot, index_reader)\n",
                     target.c_str());
        return 2;
    }
    return 0;
}
