// Counters: declared once, each with the description an operator sees (in
// the JSON summary, in telemetry, and in docs/pipeline.md).
//
// Each counter block is written by exactly one lcore and read by the control
// plane; blocks are cache-line aligned so two writers never share a line.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "sluice/lockfree/counter.hpp"

namespace sluice::dataplane {

using lockfree::Counter;
using lockfree::CounterInfo;

// Per NIC queue, written by the lcore that polls it. Every received packet
// ends in exactly one of: filtered, deduplicated, frame_pool_empty, captured.
#define SLUICE_QUEUE_COUNTERS(_)                                                           \
    _(rx_packets, "Packets received from this NIC queue.")                                 \
    _(rx_bytes, "Bytes received from this NIC queue (frame length without FCS).")          \
    _(filtered, "Packets not matching capture.filter, dropped as intended.")               \
    _(deduplicated,                                                                        \
      "With capture.dedup: packets dropped as copies of one seen within the dedup window " \
      "(the same bytes but for the TTL or hop limit and the IPv4 header checksum), as a "  \
      "SPAN session mirroring both directions delivers them. Intended, not a loss.")       \
    _(frame_pool_empty,                                                                    \
      "Packets DROPPED because no frame buffer was free: egress or compression is slower " \
      "than capture. Raise mempool.frame_buffers, use a faster codec, or set "             \
      "capture.overflow = \"backpressure\" to let the NIC count the drops (imissed).")     \
    _(captured, "Packets written into frames.")                                            \
    _(captured_bytes, "Packet bytes written into frames (after snaplen).")                 \
    _(truncated,                                                                           \
      "Captured packets longer than their snap length (capture.snaplen, or the "           \
      "[[capture.slice]] rule's), kept cut to it; the original length is recorded.")       \
    _(sliced,                                                                              \
      "Captured packets a [[capture.slice]] rule matched (their snap length is the "       \
      "rule's).")                                                                          \
    _(decapsulated,                                                                        \
      "With capture.decap: packets whose innermost packet was found inside tunnels or "    \
      "tags (the filter saw it; with \"strip\" it is what was written).")                  \
    _(decap_vlan, "Of those, packets with 802.1Q/802.1ad (QinQ) tags.")                    \
    _(decap_mpls, "... with an MPLS label stack.")                                         \
    _(decap_gre, "... in GRE (with or without key or sequence number).")                   \
    _(decap_erspan2, "... in ERSPAN type II (or type I).")                                 \
    _(decap_erspan3, "... in ERSPAN type III.")                                            \
    _(decap_vxlan, "... in VXLAN (UDP 4789).")                                             \
    _(decap_geneve, "... in Geneve (UDP 6081).")                                           \
    _(tunnel_truncated,                                                                    \
      "With capture.decap: packets whose tunnel header runs past the bytes received (cut " \
      "by a snap length upstream, e.g. the mirror session's): kept as they arrived; the "  \
      "filter saw the outer headers.")                                                     \
    _(tunnel_malformed,                                                                    \
      "With capture.decap: packets whose tunnel header breaks its specification (GRE "     \
      "reserved bits or version, VXLAN without its I flag, Geneve version, ERSPAN "        \
      "version, more than 8 tunnels, 4 tags or 8 MPLS labels): kept as they arrived; "     \
      "the filter saw the outer headers.")                                                 \
    _(tunnel_unknown,                                                                      \
      "With capture.decap: packets in a tunnel whose payload sluice cannot tell (MPLS "    \
      "over neither IPv4 nor IPv6, Geneve or ERSPAN III carrying something other than "    \
      "Ethernet or IP): kept as they arrived.")                                            \
    _(ipv4_checksum_bad,                                                                   \
      "With capture.verify_checksums: captured packets whose IPv4 header checksum is "     \
      "wrong (or whose IPv4 header is malformed). They are kept as they are; their "       \
      "records carry the verdict.")                                                        \
    _(tcp_checksum_bad,                                                                    \
      "With capture.verify_checksums: captured TCP segments whose checksum is wrong. "     \
      "Kept as they are.")                                                                 \
    _(udp_checksum_bad,                                                                    \
      "With capture.verify_checksums: captured UDP datagrams whose checksum is wrong "     \
      "(over IPv6, also a checksum of 0). Kept as they are.")
SLUICE_COUNTER_BLOCK(QueueCounters, SLUICE_QUEUE_COUNTERS);

// Per port dealt by software RSS (see soft_rss.hpp), written by the rx lcore
// that polls the port's one receive queue.
#define SLUICE_RSS_COUNTERS(_)                                                                \
    _(packets,                                                                                \
      "Packets polled from the port's receive queue and dealt to its rx_queues software "     \
      "queues by the Toeplitz hash of their 5-tuple.")                                        \
    _(handed_over,                                                                            \
      "Packets passed to the rx lcore of another queue over its ring (the rest stay with "    \
      "queue 0, on the polling lcore).")                                                      \
    _(not_ip, "Packets without an IPv4 or IPv6 header, dealt to queue 0 (hash 0, as a NIC).") \
    _(ring_full,                                                                              \
      "Packets DROPPED because the ring to their queue's rx lcore was full: that lcore is "   \
      "slower than the one polling the port. Spread queues over more rx lcores, or set "      \
      "capture.overflow = \"backpressure\" to let the NIC count the drops (imissed).")
SLUICE_COUNTER_BLOCK(RssCounters, SLUICE_RSS_COUNTERS);

// Per capture stage (one per rx lcore; one frame stream each).
#define SLUICE_CAPTURE_COUNTERS(_)                                                 \
    _(frames, "Frames handed to the codec stage.")                                 \
    _(flushed_by_timer,                                                            \
      "Frames sent before they were full because batch.flush_timeout_us "          \
      "passed (low traffic).")                                                     \
    _(ring_full,                                                                   \
      "Captured packets DROPPED because the ring to the codec stage was full: "    \
      "compression is too slow. Add codec lcores, raise lcores.ring_size, or use " \
      "a faster codec.")                                                           \
    _(ring_full_frames,                                                            \
      "Frames dropped for the same reason (their packets count in "                \
      "ring_full).")                                                               \
    _(rx_paused,                                                                   \
      "Polls in which rx was paused by backpressure (capture.overflow = "          \
      "\"backpressure\"); the NIC counts what it could not hold in imissed.")
SLUICE_COUNTER_BLOCK(CaptureCounters, SLUICE_CAPTURE_COUNTERS);

// Per codec stage (one per codec lcore, or one per rx lcore in
// run-to-completion mode).
#define SLUICE_CODEC_COUNTERS(_)                                                    \
    _(frames, "Frames sealed (compressed or stored, checksummed).")                 \
    _(packets, "Packets in those frames.")                                          \
    _(raw_bytes, "Frame bytes before compression.")                                 \
    _(sealed_bytes, "Frame bytes after compression (what goes on the wire).")       \
    _(compressed, "Frames stored compressed.")                                      \
    _(stored_raw,                                                                   \
      "Frames stored uncompressed: below codec.min_size, or compression did not "   \
      "shrink them.")                                                               \
    _(no_buffer,                                                                    \
      "Frames stored uncompressed because no second frame buffer was free for the " \
      "compressed copy (nothing is lost; raise mempool.frame_buffers).")            \
    _(seal_failed,                                                                  \
      "Packets DROPPED in frames the codec could not seal: an internal error, "     \
      "please report it.")
SLUICE_COUNTER_BLOCK(CodecCounters, SLUICE_CODEC_COUNTERS);

// Per stream, written by the egress lcore.
#define SLUICE_EGRESS_COUNTERS(_)                                              \
    _(frames, "Frames handed to the transport (tcp, rdma, file, null).")       \
    _(packets, "Packets in those frames.")                                     \
    _(bytes, "Bytes handed to the transport.")                                 \
    _(frames_done,                                                             \
      "Frames the transport finished with (acknowledged by the collector, or " \
      "written).")                                                             \
    _(retransmit_overflow,                                                     \
      "Packets DROPPED because the retransmit buffer was full (the "           \
      "collector is away or slow) with capture.overflow = \"drop\". "          \
      "Raise egress.retransmit_frames and mempool.frame_buffers to ride "      \
      "out longer outages.")                                                   \
    _(retransmit_overflow_frames, "Frames dropped for the same reason.")       \
    _(egress_errors,                                                           \
      "Packets DROPPED because the transport refused their frame for good "    \
      "(e.g. a write error on egress.path); see the log.")                     \
    _(egress_errors_frames, "Frames dropped for the same reason.")
SLUICE_COUNTER_BLOCK(EgressCounters, SLUICE_EGRESS_COUNTERS);

// Per port, read from the NIC's driver (rte_eth_stats) by the control
// plane: not sluice's own counters, but described here with them.
#define SLUICE_PORT_COUNTERS(_)                                                                   \
    _(ipackets, "Packets the NIC delivered to sluice.")                                           \
    _(ibytes, "Bytes the NIC delivered to sluice.")                                               \
    _(imissed,                                                                                    \
      "Packets the NIC DROPPED because its rx descriptors were full: the rx lcores did not "      \
      "poll fast enough (or backpressure paused them). Add rx lcores and queues, raise "          \
      "ports.rx_descriptors.")                                                                    \
    _(rx_nombuf, "Packets the NIC DROPPED because the mbuf pool was empty. Raise mempool.mbufs.") \
    _(ierrors, "Erroneous frames the NIC DROPPED (bad FCS, too long for the MTU).")
inline constexpr std::array<CounterInfo, 5> kPortCounters{
    SLUICE_PORT_COUNTERS(SLUICE_COUNTER_INFO)};

// A counter block of any kind, type-erased for stats and telemetry.
struct CounterBlockView {
    const char* scope;  // "queue", "rss", "capture", "codec", "egress"
    std::span<const CounterInfo> info;
    std::size_t (*read)(const void* block, uint64_t* out);  // fills info.size() values
    const void* block;
};

template <class Block>
CounterBlockView view_of(const char* scope, const Block& b) {
    return CounterBlockView{scope, std::span<const CounterInfo>(Block::info),
                            [](const void* p, uint64_t* out) {
                                const auto v = static_cast<const Block*>(p)->snapshot();
                                for (std::size_t i = 0; i < v.size(); ++i)
                                    out[i] = v[i];
                                return v.size();
                            },
                            &b};
}

}  // namespace sluice::dataplane
