// Writes the hand-made inputs of the collector_stream fuzz target into a
// directory: whole sessions (handshake, frames of each codec, heartbeats),
// keyed and not, delivered at once and in small chunks, and the refusals
// (wrong key, another version, garbage, a peer's REJECT). They seed the
// fuzzer and are replayed as regression tests
// (tests/fuzz/regressions/collector_stream/).
//
//   fuzz_collector_seeds DIR
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "sluice/session/key.hpp"
#include "sluice/tcp/protocol.hpp"
#include "sluice/wire/wire.hpp"

namespace {

using namespace sluice;
using Bytes = std::vector<std::byte>;

tcp::Nonce server_nonce() {  // the fuzz target's fixed nonce
    tcp::Nonce n{};
    for (std::size_t i = 0; i < n.size(); ++i)
        n[i] = std::byte(static_cast<uint8_t>(i * 13));
    return n;
}

Bytes key() {
    const char* s = "fuzz-key-0123456789abcdef";
    Bytes v(std::strlen(s));
    std::memcpy(v.data(), s, v.size());
    return v;
}

Bytes hello(const Bytes& k, bool claim_key, uint8_t version = tcp::kTransportVersion) {
    tcp::Hello h;
    h.flags = (claim_key ? tcp::hello_flag::kHasKey : 0) | tcp::hello_flag::kHasPosition;
    h.stream_id = 3;
    h.session_id = 9;
    h.heartbeat_ms = 1000;
    h.proof = tcp::hello_proof(k, server_nonce(), tcp::hello_signed_bytes(h));
    std::array<std::byte, tcp::kMaxMessageSize> b;
    return {b.begin(), b.begin() + tcp::encode(h, b, version)};
}

Bytes frame(uint64_t seq, wire::Codec codec, uint32_t packets) {
    const uint32_t max = 1u << 16;
    wire::FrameBuilder b({max, 2048});
    Bytes raw(max), out(wire::FrameEncoder::max_sealed_size(max));
    b.begin(raw, 3, seq, seq * packets);
    Bytes pkt(300);
    for (uint32_t i = 0; i < packets; ++i) {
        for (std::size_t j = 0; j < pkt.size(); ++j)
            pkt[j] = std::byte(static_cast<uint8_t>(j % 17 + i));
        b.append({1700000000000000000ull + i, 300 + (i % 3), static_cast<uint16_t>(i % 2),
                  static_cast<uint16_t>(i % 3), i % 5 == 0 ? wire::record_flag::kFcsIncluded : 0},
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

void write(const std::string& dir, const std::string& name, uint8_t mode, const Bytes& body) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.put(static_cast<char>(mode));
    out.write(reinterpret_cast<const char*>(body.data()),
              static_cast<std::streamsize>(body.size()));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_collector_seeds DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    const Bytes none;
    Bytes session = hello(none, false);
    put(session, frame(0, wire::Codec::None, 5));
    put(session, heartbeat());
    put(session, frame(1, wire::Codec::Lz4, 40));
    put(session, frame(2, wire::Codec::Zstd, 40));
    write(dir, "session-plain", 0x00, session);
    write(dir, "session-chunked-8", 0x30, session);
    write(dir, "session-chunked-2", 0x10, session);

    Bytes keyed = hello(key(), true);
    put(keyed, frame(0, wire::Codec::Lz4, 10));
    write(dir, "session-keyed", 0x04, keyed);

    Bytes frames_only = frame(5, wire::Codec::None, 3);
    put(frames_only, frame(6, wire::Codec::Lz4, 30));
    write(dir, "frames-only", 0x02, frames_only);

    write(dir, "wrong-key", 0x04, hello(Bytes(key().size(), std::byte{'x'}), true));
    write(dir, "key-missing", 0x04, hello(none, false));
    write(dir, "key-unexpected", 0x00, hello(key(), true));
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
    const Bytes f = frame(0, wire::Codec::Lz4, 20);
    truncated.insert(truncated.end(), f.begin(), f.begin() + f.size() / 2);
    write(dir, "truncated-frame", 0x00, truncated);
    return 0;
}
