// Pipeline assembly: from the config to stages on lcores, rings between them,
// frame pools and sinks; launching, draining and stopping; the counters'
// snapshot.
#include "sluice/dataplane/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

#include "sluice/mempool/topology.hpp"
#include "sluice/report/log.hpp"
#include "sluice/simd/packet_hash.hpp"
#include "sluice/wire/format.hpp"

namespace sluice::dataplane {

using report::log_error;
using report::log_info;
using report::log_warning;

namespace {

// How often a capture stage reports its interfaces' counters when they move.
constexpr uint64_t kStatisticsIntervalNs = 1'000'000'000;

wire::Codec to_wire(config::CodecType t) {
    switch (t) {
        case config::CodecType::Lz4:
            return wire::Codec::Lz4;
        case config::CodecType::Zstd:
            return wire::Codec::Zstd;
        case config::CodecType::None:
            break;
    }
    return wire::Codec::None;
}

}  // namespace

std::unique_ptr<Pipeline> Pipeline::build(const config::Config& cfg,
                                          const std::vector<PortState>& ports,
                                          const SinkFactory& make_sink, std::string& error) {
    std::unique_ptr<Pipeline> pl(new Pipeline);
    pl->clock_ = TscClock::calibrate(rte_get_tsc_hz());
    const auto& lc = cfg.lcores;
    const bool pipeline_mode = lc.mode == config::Mode::Pipeline;

    std::unique_ptr<BpfFilter> filter;
    if (!cfg.capture.filter.empty()) {
        filter = BpfFilter::create(cfg.capture.filter, cfg.capture.snaplen, error);
        if (!filter) {
            error = fmt::format("capture.filter \"{}\": {}", cfg.capture.filter, error);
            return nullptr;
        }
        log_info("filter \"{}\" loaded ({})", cfg.capture.filter,
                 filter->jit() ? "JIT" : "interpreted");
    }
    for (std::size_t i = 0; i < cfg.capture.slices.size(); ++i) {
        const config::Slice& sl = cfg.capture.slices[i];
        auto f = BpfFilter::create(sl.filter, sl.snaplen, error);
        if (!f) {
            error = fmt::format("capture.slice[{}].filter \"{}\": {}", i, sl.filter, error);
            return nullptr;
        }
        pl->slice_filters_.push_back(std::move(f));
    }
    if (cfg.capture.decap != config::Decap::None) {
        log_info("capture.decap = \"{}\": {}", config::to_string(cfg.capture.decap),
                 cfg.capture.decap == config::Decap::Match
                     ? "the filter sees the innermost packet, the packet is written whole"
                     : "the innermost packet is written");
    }

    auto new_ring = [&](const std::string& name) {
        pl->rings_.push_back(std::make_unique<FrameRing>(lc.ring_size));
        pl->ring_info_.push_back({name, pl->rings_.back().get(), nullptr});
        return pl->rings_.back().get();
    };

    // Streams: one per rx lcore. Frame buffers hold a sealed frame of the
    // largest raw frame (compression may grow incompressible data a little).
    const std::size_t nstreams = lc.rx.size();
    const uint32_t object_bytes = static_cast<uint32_t>(
        (wire::FrameEncoder::max_sealed_size(cfg.batch.frame_size) + 63) & ~std::size_t{63});
    const unsigned egress_lcore = pipeline_mode ? lc.egress.at(0) : 0;
    // Huge pages when EAL has them; with --no-huge the pools take small pages
    // from the start instead of warning about a fallback.
    const bool huge_pages = rte_eal_has_hugepages() != 0;
    for (std::size_t i = 0; i < nstreams; ++i) {
        const uint64_t id = cfg.egress.stream_id + i;
        const unsigned home = pipeline_mode ? egress_lcore : lc.rx[i];
        const int socket = static_cast<int>(rte_lcore_to_socket_id(home));
        auto pool =
            FramePool::create(fmt::format("sluice_frames_{}", id), cfg.mempool.frame_buffers,
                              object_bytes, socket, huge_pages, error);
        if (!pool) return nullptr;
        log_info("frame pool {}: {} buffers of {} KiB on NUMA node {}, {} pages", pool->name(),
                 pool->count(), pool->object_bytes() / 1024, socket, pool->page_size());
        pl->pools_.push_back(std::move(pool));
        auto sink = make_sink(static_cast<uint32_t>(i), id, error);
        if (!sink) return nullptr;
        try {
            sink->register_memory(pl->pools_.back()->base(), pl->pools_.back()->region_bytes());
        } catch (const std::exception& e) {
            error = fmt::format("egress: {}", e.what());
            return nullptr;
        }
        pl->sinks_.push_back(std::move(sink));
        pl->egress_counters_.push_back(std::make_unique<EgressCounters>());
        pl->egress_labels_.push_back(
            {{"stream", std::to_string(id)},
             {"lcore", std::to_string(pipeline_mode ? egress_lcore : lc.rx[i])}});
    }

    // Placement is judged from the machine's topology when a port is a PCI
    // device (virtual devices have no locality of their own: DPDK's socket).
    std::optional<mempool::Topology> topology;
    if (std::any_of(ports.begin(), ports.end(),
                    [](const PortState& p) { return !p.pci.empty(); })) {
        auto t = mempool::Topology::discover();
        if (t) {
            topology = std::move(*t);
        } else {
            log_warning("cannot read the machine's topology ({}); NUMA placement is not checked",
                        t.error().message);
        }
    }
    // Ports dealt in software: a ring per queue beyond the first, as deep as
    // a NIC queue (the mbuf pool is sized for that), and an mbuf field for
    // the time the dealer received each packet it hands over.
    int rx_time_offset = -1;
    for (const PortState& p : ports) {
        if (!p.soft_rss) continue;
        pl->soft_rss_.push_back(
            std::make_unique<SoftRssPort>(p.rx_queues, p.cfg.rss_symmetric, p.cfg.rx_descriptors));
        if (rx_time_offset < 0) {
            rte_mbuf_dynfield field{};
            std::snprintf(field.name, sizeof field.name, "%s", "sluice_dynfield_rx_time_ns");
            field.size = sizeof(uint64_t);
            field.align = alignof(uint64_t);
            rx_time_offset = rte_mbuf_dynfield_register(&field);
            if (rx_time_offset < 0) {
                error = fmt::format("cannot register an mbuf field for software RSS: {}",
                                    rte_strerror(rte_errno));
                return nullptr;
            }
        }
    }
    // What the NIC drops, per port, for the statistics frames (read by the
    // control plane, published to the capture stages).
    for (const PortState& p : ports) {
        pl->nic_drops_.push_back(std::make_unique<NicDrops>());
        pl->nic_drops_.back()->port_id = p.port_id;
    }
    // Queues: (port, queue) pairs dealt to rx lcores round-robin, port-major.
    std::vector<std::vector<CaptureQueue>> queues(nstreams);
    std::size_t next = 0;
    std::size_t dealt_ports = 0;
    for (std::size_t pi = 0; pi < ports.size(); ++pi) {
        SoftRssPort* rss = ports[pi].soft_rss ? pl->soft_rss_[dealt_ports++].get() : nullptr;
        for (uint16_t q = 0; q < ports[pi].rx_queues; ++q) {
            const std::size_t w = next++ % nstreams;
            pl->queue_counters_.push_back(std::make_unique<QueueCounters>());
            CaptureQueue cq;
            cq.port_id = ports[pi].port_id;
            cq.queue_id = q;
            cq.port_index = static_cast<uint16_t>(pi);
            cq.hw_clock = ports[pi].hw_timestamps ? &ports[pi].hw_clock : nullptr;
            cq.counters = pl->queue_counters_.back().get();
            cq.rss = rss;
            cq.ring = rss && q > 0 ? rss->rings[q - 1u].get() : nullptr;
            if (q == 0) cq.nic_dropped = &pl->nic_drops_[pi]->dropped;
            // The device as the operator configured it, its driver and (for a
            // NIC) its PCI address: what the capture files name the interface by.
            cq.description = ports[pi].pci.empty() || ports[pi].pci == ports[pi].name
                                 ? fmt::format("{} ({})", ports[pi].name, ports[pi].driver)
                                 : fmt::format("{} ({}, PCI {})", ports[pi].name, ports[pi].driver,
                                               ports[pi].pci);
            if (cq.description.size() > wire::kMaxStatisticsText)
                cq.description.resize(wire::kMaxStatisticsText);
            queues[w].push_back(std::move(cq));
            pl->queue_labels_.push_back({{"port", std::to_string(pi)},
                                         {"queue", std::to_string(q)},
                                         {"lcore", std::to_string(lc.rx[w])}});
            if (rss && q == 0) {
                pl->rss_labels_.push_back(
                    {{"port", std::to_string(pi)}, {"lcore", std::to_string(lc.rx[w])}});
            }
            if (rss && q > 0) {
                pl->ring_info_.push_back(
                    {fmt::format("port{}-rss->queue{}", pi, q), nullptr, rss->rings[q - 1u].get()});
            }
            if (!ports[pi].pci.empty() && topology) {
                // A PCI NIC: ask the machine's topology (hwloc) which node it
                // hangs off and where the lcore's CPUs are.
                rte_cpuset_t set = rte_lcore_cpuset(lc.rx[w]);
                for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
                    if (!CPU_ISSET(cpu, &set)) continue;
                    if (auto warn = topology->placement_warning(cpu, ports[pi].pci)) {
                        log_warning("lcore {} polls port '{}' queue {}: {}", lc.rx[w],
                                    ports[pi].name, q, *warn);
                    }
                }
                continue;
            }
            const unsigned lsock = rte_lcore_to_socket_id(lc.rx[w]);
            if (static_cast<int>(lsock) != ports[pi].socket) {
                log_warning(
                    "lcore {} (NUMA node {}) polls port '{}' queue {} on node {}: every "
                    "packet crosses the interconnect; pick lcores on node {}",
                    lc.rx[w], lsock, ports[pi].name, q, ports[pi].socket, ports[pi].socket);
            }
        }
    }

    // The cache of stream `s`'s pool that lcore `lcore` uses (one per pair).
    std::vector<std::pair<std::pair<std::size_t, unsigned>, FramePool::Cache*>> cache_index;
    auto cache_for = [&](std::size_t s, unsigned lcore) {
        for (const auto& [key, c] : cache_index) {
            if (key.first == s && key.second == lcore) return c;
        }
        pl->caches_.push_back(pl->pools_[s]->make_cache());
        cache_index.push_back({{s, lcore}, pl->caches_.back().get()});
        return pl->caches_.back().get();
    };

    auto work_for = [&](unsigned lcore) -> LcoreWork& {
        for (auto& w : pl->work_) {
            if (w.lcore == lcore) return w;
        }
        pl->work_.push_back(LcoreWork{lcore, {}, &pl->phase_});
        pl->lcore_ids_.push_back(lcore);
        return pl->work_.back();
    };
    auto add_stage = [&](unsigned lcore, std::unique_ptr<Stage> s,
                         std::vector<std::pair<std::string, std::string>> labels) {
        Stage* raw = s.get();
        pl->stages_.push_back(std::move(s));
        labels.insert(labels.begin(), {"lcore", std::to_string(lcore)});
        pl->stage_labels_.push_back(std::move(labels));
        work_for(lcore).stages.push_back(raw);
        return raw;
    };

    wire::EncoderConfig enc;
    enc.codec = to_wire(cfg.codec.type);
    enc.lz4_acceleration = static_cast<int>(cfg.codec.lz4_acceleration);
    enc.zstd_level = cfg.codec.zstd_level;
    enc.min_compress_bytes = cfg.codec.min_size;
    enc.max_raw_frame_bytes = cfg.batch.frame_size;

    std::vector<FramePool*> pool_ptrs;
    for (auto& p : pl->pools_)
        pool_ptrs.push_back(p.get());

    // An empty frame must hold one whole record: longer packets (beyond any
    // MTU, e.g. from LRO) are cut to fit and counted as truncated.
    const uint32_t fit = static_cast<uint32_t>(
        (cfg.batch.frame_size - wire::kHeaderSize - wire::kRecordHeaderSize) & ~std::size_t{7});
    const uint32_t snaplen = std::min(cfg.capture.snaplen, fit);
    std::vector<SliceRule> slices;
    for (std::size_t i = 0; i < pl->slice_filters_.size(); ++i)
        slices.push_back(
            {pl->slice_filters_[i].get(), std::min(cfg.capture.slices[i].snaplen, fit)});
    const uint64_t flush_tsc =
        pl->clock_.ns_to_tsc(static_cast<uint64_t>(cfg.batch.flush_timeout_us) * 1000);
    // One key for the run: copies cannot be forged without it.
    const simd::PacketHashKey dedup_key = simd::PacketHashKey::random();
    if (cfg.capture.dedup) {
        log_info("capture.dedup: copies within {} us and {} packets are dropped ({} hash)",
                 cfg.capture.dedup_window_us, cfg.capture.dedup_window_packets,
                 simd::detail::kernels().packet_hash_name);
    }
    const uint64_t start_ns = pl->clock_.to_ns(rte_rdtsc());
    // The filter may change while capturing (telemetry /sluice/filter):
    // every capture stage reads it as one RCU reader.
    try {
        pl->filter_ =
            std::make_unique<LiveFilter>(std::move(filter), cfg.capture.filter, cfg.capture.snaplen,
                                         static_cast<unsigned>(nstreams));
    } catch (const std::exception& e) {
        error = e.what();
        return nullptr;
    }
    std::vector<Stage*> captures;
    std::vector<FrameRing*> capture_out;
    for (std::size_t i = 0; i < nstreams; ++i) {
        pl->capture_counters_.push_back(std::make_unique<CaptureCounters>());
        CaptureStage::Params cp;
        cp.queues = queues[i];
        cp.burst = static_cast<uint16_t>(lc.burst_size);
        cp.live = pl->filter_.get();
        cp.live_reader = static_cast<unsigned>(i);
        cp.frame_size = cfg.batch.frame_size;
        cp.snaplen = snaplen;
        cp.flush_timeout_tsc = flush_tsc;
        cp.overflow = cfg.capture.overflow;
        cp.stream = static_cast<uint32_t>(i);
        cp.stream_id = cfg.egress.stream_id + i;
        cp.pool = pl->pools_[i].get();
        cp.cache = cache_for(i, lc.rx[i]);
        cp.out = new_ring(fmt::format("capture{}->codec", i));
        cp.clock = &pl->clock_;
        cp.phase = &pl->phase_;
        cp.counters = pl->capture_counters_.back().get();
        cp.verify_checksums = cfg.capture.verify_checksums;
        cp.rx_time_offset = rx_time_offset;
        cp.decap = cfg.capture.decap;
        cp.slices = slices;
        if (cfg.capture.dedup) {
            cp.dedup_window_packets = cfg.capture.dedup_window_packets;
            cp.dedup_window_ns = uint64_t{cfg.capture.dedup_window_us} * 1000;
            cp.dedup_key = dedup_key;
        }
        cp.statistics_interval_tsc = pl->clock_.ns_to_tsc(kStatisticsIntervalNs);
        cp.start_ns = start_ns;
        cp.egress = pl->egress_counters_[i].get();
        capture_out.push_back(cp.out);
        captures.push_back(add_stage(lc.rx[i], std::make_unique<CaptureStage>(std::move(cp)),
                                     {{"stream", std::to_string(cfg.egress.stream_id + i)}}));
    }

    auto make_egress = [&](unsigned lcore, std::vector<EgressStage::Input> inputs,
                           const std::vector<std::size_t>& streams) {
        EgressStage::Params ep;
        ep.inputs = std::move(inputs);
        ep.streams.resize(nstreams);
        for (std::size_t s : streams) {
            ep.streams[s] = {pl->sinks_[s].get(), pl->pools_[s].get(), cache_for(s, lcore),
                             pl->egress_counters_[s].get()};
        }
        ep.overflow = cfg.capture.overflow;
        ep.clock = &pl->clock_;
        ep.phase = &pl->phase_;
        add_stage(lcore, std::make_unique<EgressStage>(std::move(ep)), {});
    };

    if (!pipeline_mode) {
        for (std::size_t i = 0; i < nstreams; ++i) {
            pl->codec_counters_.push_back(std::make_unique<CodecCounters>());
            CodecStage::Params cp;
            cp.inputs = {{capture_out[i], captures[i]}};
            cp.pools = pool_ptrs;
            cp.caches.assign(nstreams, nullptr);
            cp.caches[i] = cache_for(i, lc.rx[i]);
            cp.out = new_ring(fmt::format("codec{}->egress", i));
            cp.encoder = enc;
            cp.phase = &pl->phase_;
            cp.counters = pl->codec_counters_.back().get();
            FrameRing* out = cp.out;
            Stage* codec = add_stage(lc.rx[i], std::make_unique<CodecStage>(std::move(cp)), {});
            make_egress(lc.rx[i], {{out, codec}}, {i});
        }
    } else {
        std::vector<EgressStage::Input> egress_inputs;
        for (std::size_t c = 0; c < lc.codec.size(); ++c) {
            pl->codec_counters_.push_back(std::make_unique<CodecCounters>());
            CodecStage::Params cp;
            cp.caches.assign(nstreams, nullptr);
            for (std::size_t i = c; i < nstreams; i += lc.codec.size()) {
                cp.inputs.push_back({capture_out[i], captures[i]});
                cp.caches[i] = cache_for(i, lc.codec[c]);
            }
            if (cp.inputs.empty()) {
                error = fmt::format(
                    "lcores.codec: lcore {} would get no rx lcore to serve ({} codec "
                    "lcores for {} rx lcores); list fewer codec lcores",
                    lc.codec[c], lc.codec.size(), nstreams);
                return nullptr;
            }
            cp.pools = pool_ptrs;
            cp.out = new_ring(fmt::format("codec{}->egress", c));
            cp.encoder = enc;
            cp.phase = &pl->phase_;
            cp.counters = pl->codec_counters_.back().get();
            FrameRing* out = cp.out;
            Stage* codec = add_stage(lc.codec[c], std::make_unique<CodecStage>(std::move(cp)), {});
            egress_inputs.push_back({out, codec});
        }
        std::vector<std::size_t> all(nstreams);
        for (std::size_t i = 0; i < nstreams; ++i)
            all[i] = i;
        make_egress(egress_lcore, std::move(egress_inputs), all);
    }
    return pl;
}

Pipeline::~Pipeline() {
    if (launched_) {
        phase_.store(Phase::Done, std::memory_order_release);
        wait_lcores();
    }
    // Stages hold no buffers the pools need back: pools are freed whole.
}

void Pipeline::wait_lcores() {
    rte_eal_mp_wait_lcore();
    for (auto& w : work_) {
        // acquire pairs with the release store as the lcore left lcore_main:
        // everything it wrote is visible to the control plane from here.
        while (!w.left->load(std::memory_order_acquire))
            rte_pause();
    }
}

int Pipeline::lcore_main(void* arg) {
    auto& w = *static_cast<LcoreWork*>(arg);
    // acquire pairs with the control plane's release stores of the phase.
    while (w.phase->load(std::memory_order_acquire) != Phase::Done) {
        bool busy = false;
        for (Stage* s : w.stages)
            busy |= s->poll();
        if (!busy) rte_pause();
    }
    w.left->store(true, std::memory_order_release);
    return 0;
}

bool Pipeline::launch(std::string& error) {
    for (auto& w : work_) {
        if (rte_eal_remote_launch(lcore_main, &w, w.lcore) != 0) {
            error = fmt::format("cannot launch lcore {}: it is busy", w.lcore);
            phase_.store(Phase::Done, std::memory_order_release);
            rte_eal_mp_wait_lcore();
            for (auto& other : work_)
                other.left->store(true, std::memory_order_relaxed);
            return false;
        }
    }
    launched_ = true;
    return true;
}

void Pipeline::publish_nic_drops() {
    std::lock_guard lock(port_stats_mutex_);
    for (auto& d : nic_drops_) {
        rte_eth_stats st{};
        if (rte_eth_stats_get(d->port_id, &st) != 0) continue;
        // relaxed: a statistic the capture stages read for their reports.
        d->dropped.store(st.imissed + st.rx_nombuf, std::memory_order_relaxed);
    }
}

bool Pipeline::all_drained() const {
    return std::all_of(stages_.begin(), stages_.end(), [](const auto& s) { return s->drained(); });
}

void Pipeline::drain_and_stop(double timeout_s) {
    if (!launched_) return;
    // The last statistics frames carry the NIC's final drop counts.
    publish_nic_drops();
    // release pairs with the stages' acquire loads of the phase.
    phase_.store(Phase::Draining, std::memory_order_release);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!all_drained() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!all_drained()) {
        for (std::size_t i = 0; i < stages_.size(); ++i) {
            if (stages_[i]->drained()) continue;
            std::string labels;
            for (const auto& [k, v] : stage_labels_[i])
                labels += fmt::format(" {} {}", k, v);
            log_warning(
                "{} stage{} not drained after {:.1f}s (frames awaiting acknowledgement "
                "are counted as not done)",
                stages_[i]->kind(), labels, timeout_s);
        }
    }
    phase_.store(Phase::Done, std::memory_order_release);
    wait_lcores();
    launched_ = false;
    for (auto& sink : sinks_)
        sink->close();
}

uint64_t Pipeline::received() const {
    uint64_t n = 0;
    for (const auto& q : queue_counters_)
        n += q->rx_packets.get();
    return n;
}

uint64_t Pipeline::paused_polls() const {
    uint64_t n = 0;
    for (const auto& c : capture_counters_)
        n += c->rx_paused.get();
    return n;
}

Snapshot Pipeline::snapshot(double seconds, const std::vector<PortState>& ports) const {
    Snapshot s;
    s.seconds = seconds;
    std::lock_guard lock(port_stats_mutex_);
    for (const auto& p : ports) {
        PortSnapshot ps;
        ps.name = p.name;
        ps.driver = p.driver;
        rte_eth_stats st{};
        if (rte_eth_stats_get(p.port_id, &st) == 0) {
            ps.ipackets = st.ipackets, ps.ibytes = st.ibytes, ps.imissed = st.imissed;
            ps.ierrors = st.ierrors, ps.rx_nombuf = st.rx_nombuf;
        }
        s.ports.push_back(ps);
    }
    for (std::size_t i = 0; i < queue_counters_.size(); ++i) {
        s.blocks.push_back(snapshot_of(view_of("queue", *queue_counters_[i]), queue_labels_[i]));
    }
    for (std::size_t i = 0; i < soft_rss_.size(); ++i) {
        s.blocks.push_back(snapshot_of(view_of("rss", soft_rss_[i]->counters), rss_labels_[i]));
    }
    std::size_t capture = 0, codec = 0;
    for (std::size_t i = 0; i < stages_.size(); ++i) {
        const std::string kind = stages_[i]->kind();
        if (kind == "capture") {
            s.blocks.push_back(
                snapshot_of(view_of("capture", *capture_counters_[capture++]), stage_labels_[i]));
        } else if (kind == "codec") {
            s.blocks.push_back(
                snapshot_of(view_of("codec", *codec_counters_[codec++]), stage_labels_[i]));
        }
    }
    for (std::size_t i = 0; i < egress_counters_.size(); ++i) {
        s.blocks.push_back(snapshot_of(view_of("egress", *egress_counters_[i]), egress_labels_[i]));
    }
    for (std::size_t i = 0; i < sinks_.size(); ++i) {
        for (const CounterBlockView& v : sinks_[i]->counters())
            s.blocks.push_back(snapshot_of(v, egress_labels_[i]));
    }
    return s;
}

std::vector<const FramePool*> Pipeline::pools() const {
    std::vector<const FramePool*> v;
    for (const auto& p : pools_)
        v.push_back(p.get());
    return v;
}

std::vector<std::string> Pipeline::sink_descriptions() const {
    std::vector<std::string> v;
    for (const auto& s : sinks_)
        v.push_back(s->describe());
    return v;
}

}  // namespace sluice::dataplane
