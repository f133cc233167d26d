// sluice configuration: the typed result of parsing sluice.toml.
//
// Every key has a default and a documented range (see schema() and
// docs/configuration.md). Loading never throws: all mistakes in a file are
// collected as Diagnostics naming file:line:column, the dotted key, what was
// expected and what was found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::config {

enum class Mode : uint8_t { RunToCompletion, Pipeline };
enum class Overflow : uint8_t { Drop, Backpressure };
enum class CodecType : uint8_t { None, Lz4, Zstd };
enum class EgressType : uint8_t { Tcp, Rdma, File, Null, JetStream };
enum class Discard : uint8_t { Old, New };
enum class Timestamps : uint8_t { Software, Hardware };
enum class SimdLevel : uint8_t { Auto, Scalar, Sse42, Avx2, Avx512 };
enum class Decap : uint8_t { None, Match, Strip };

struct Port {
    std::string name;  // PCI address ("0000:3b:00.0") or vdev string ("net_pcap0,rx_pcap=in.pcap")
    uint32_t rx_queues = 1;
    uint32_t rx_descriptors = 1024;
    bool rss = true;
    bool rss_symmetric = false;
    uint32_t mtu = 1500;
    bool promiscuous = true;
    Timestamps timestamps = Timestamps::Software;
};

// The largest burst an rx queue is polled with (lcores.burst_size): the
// stages size their per-burst arrays by it.
inline constexpr uint32_t kMaxBurst = 512;

struct Lcores {
    Mode mode = Mode::RunToCompletion;
    std::vector<uint32_t> rx{1};
    std::vector<uint32_t> codec;   // pipeline mode only
    std::vector<uint32_t> egress;  // pipeline mode only
    uint32_t burst_size = 32;
    uint32_t ring_size = 1024;
};

struct Mempool {
    uint32_t mbufs = 16383;
    uint32_t cache_size = 256;
    uint32_t mbuf_size = 2176;
    uint32_t frame_buffers = 64;
};

// One [[capture.slice]] rule: packets matching `filter` are kept to
// `snaplen` bytes. Rules are tried in order; the first that matches wins.
struct Slice {
    std::string filter;
    uint32_t snaplen = 0;
};
inline constexpr std::size_t kMaxSlices = 16;

struct Capture {
    std::string filter;
    uint32_t snaplen = 65535;
    Overflow overflow = Overflow::Drop;
    bool verify_checksums = false;
    bool pdump = true;  // dpdk-dumpcap / dpdk-pdump may attach (rte_pdump_init)
    Decap decap = Decap::None;
    std::vector<Slice> slices;
    bool dedup = false;
    uint32_t dedup_window_us = 1000;
    uint32_t dedup_window_packets = 1024;
};

struct Batch {
    uint32_t frame_size = 262144;
    uint32_t flush_timeout_us = 1000;
};

struct Codec {
    CodecType type = CodecType::Lz4;
    uint32_t lz4_acceleration = 1;
    int32_t zstd_level = 1;
    uint32_t min_size = 4096;
};

struct Simd {
    SimdLevel level = SimdLevel::Auto;
};

struct Rdma {
    uint32_t inline_size = 256;
    uint32_t signal_interval = 16;
    uint32_t queue_depth = 128;
    std::string source;  // local address to bind; empty: the route's
};

// egress.type = "jetstream": the NATS servers, the JetStream stream and its
// settings, credentials and TLS (docs/scale-out.md).
struct JetStream {
    std::vector<std::string> urls;  // "host:port", "nats://host:port", "tls://host:port"
    std::string stream = "SLUICE";
    std::string subject = "sluice.frames.{stream_id}";
    uint32_t replicas = 1;
    uint32_t max_age_s = 86400;  // 0: no limit
    int64_t max_bytes = 0;       // 0: no limit
    uint32_t duplicate_window_s = 120;
    Discard discard = Discard::Old;
    bool create_stream = true;
    std::string creds, user, password_file, token_file;
    bool tls = false;
    std::string tls_ca, tls_cert, tls_key;
};

struct Egress {
    EgressType type = EgressType::Tcp;
    std::string address = "127.0.0.1:7700";
    std::string path;
    std::string key_file;
    std::string tls_ca, tls_cert, tls_key, tls_server_name;  // TLS 1.3 (tcp) when tls_ca is set
    uint32_t stream_id = 1;
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 5000;
    uint32_t heartbeat_ms = 1000;
    uint32_t timeout_ms = 5000;
    uint32_t retransmit_frames = 48;
    uint32_t sndbuf_bytes = 4 << 20;
    bool zerocopy = false;
    uint32_t shutdown_timeout_ms = 5000;
    Rdma rdma;
    JetStream jetstream;
};

struct Stats {
    uint32_t interval_s = 1;
    std::string summary_json;
    bool telemetry = true;
    std::string prometheus;  // ADDR:PORT of GET /metrics; empty: none
};

struct Position {
    uint32_t line = 0;
    uint32_t column = 0;
};

struct Config {
    std::vector<Port> ports;
    Lcores lcores;
    Mempool mempool;
    Capture capture;
    Batch batch;
    Codec codec;
    Simd simd;
    Egress egress;
    Stats stats;

    std::string source;                         // file name, for diagnostics
    std::map<std::string, Position> positions;  // dotted key -> where it was set
    Position position_of(std::string_view dotted_key) const;
};

// Bytes a frame needs besides packet data: the frame header and one record
// header. wire/ static_asserts that these match its layout.
inline constexpr uint32_t kFrameHeaderBytes = 64;
inline constexpr uint32_t kRecordHeaderBytes = 24;
// The smallest frame that holds one packet of `snaplen` bytes.
constexpr uint32_t min_frame_size(uint32_t snaplen) {
    return kFrameHeaderBytes + kRecordHeaderBytes + ((snaplen + 7u) & ~7u);
}

struct Diagnostic {
    std::string file;
    Position where;
    std::string key;      // dotted key, empty for syntax errors
    std::string message;  // what was expected and what was found, and the fix
    bool warning = false;
    // "file:line:col: error: key: message"
    std::string str() const;
};

struct LoadResult {
    Config config;
    std::vector<Diagnostic> diagnostics;  // sorted by position
    bool ok() const;                      // no errors (warnings allowed)
    std::size_t error_count() const;
};

// Parses and validates. `overrides` are "dotted.key=value" strings (values in
// TOML syntax; bare words are taken as strings) applied on top of the file.
LoadResult load_file(const std::filesystem::path& path,
                     std::span<const std::string> overrides = {});
LoadResult load_string(std::string_view toml_text, std::string_view source_name,
                       std::span<const std::string> overrides = {});

// The effective configuration as TOML, every key present (defaults filled in).
std::string to_toml(const Config& cfg);

// One entry per key, for docs, --help and tests.
struct KeyInfo {
    std::string key;  // dotted; port keys as "ports[].name"
    std::string type;
    std::string default_value;
    std::string range;
    std::string help;
    bool required = false;
};
const std::vector<KeyInfo>& schema();
// The key reference as Markdown tables (docs/configuration.md embeds it; a
// test keeps the two identical).
std::string schema_markdown();

// Port name classification (also used by the dataplane to probe devices).
bool is_pci_address(std::string_view s);
// vdev strings: "net_<driver><id>[,key=value]*"; on failure `why` says what is wrong.
bool is_vdev_string(std::string_view s, std::string* why = nullptr);
// The device name EAL gives a port: the vdev name before the first comma, or the PCI address.
std::string_view device_name(std::string_view port_name);

// host:port (IPv4, [IPv6] or a host name). On failure `why` says what is wrong.

std::string_view to_string(Mode);
std::string_view to_string(Overflow);
std::string_view to_string(CodecType);
std::string_view to_string(EgressType);
std::string_view to_string(Timestamps);
std::string_view to_string(SimdLevel);
std::string_view to_string(Decap);

// Edit distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace sluice::config
