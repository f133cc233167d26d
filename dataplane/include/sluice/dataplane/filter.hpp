// capture.filter: a tcpdump expression compiled by libpcap, converted to
// eBPF and run by DPDK's rte_bpf (JIT-compiled where the platform allows).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

struct rte_bpf;
struct rte_mbuf;

namespace sluice::dataplane {

// libpcap's message for an invalid expression, or nothing. Needs no EAL: used
// by --check-config.
std::optional<std::string> check_filter(const std::string& expression, uint32_t snaplen);

class BpfFilter {
  public:
    // Compiles and loads (needs EAL for rte_bpf). On failure returns null and
    // sets `error`.
    static std::unique_ptr<BpfFilter> create(const std::string& expression, uint32_t snaplen,
                                             std::string& error);
    ~BpfFilter();
    BpfFilter(const BpfFilter&) = delete;
    BpfFilter& operator=(const BpfFilter&) = delete;

    // Keeps the matching packets at the front of `pkts` (order preserved) and
    // moves the others to `rejected`. Returns the number kept; `nrejected` is
    // set. `n` is at most config::kMaxBurst. Cost: one JIT call (or
    // interpreter run) per packet.
    uint16_t apply(rte_mbuf** pkts, uint16_t n, rte_mbuf** rejected, uint16_t& nrejected) const;

    // The verdict for each packet: rc[i] != 0 when pkts[i] matches.
    void match(rte_mbuf* const* pkts, uint16_t n, uint64_t* rc) const;
    bool matches(rte_mbuf* pkt) const;

    bool jit() const { return jit_ != nullptr; }

  private:
    BpfFilter() = default;
    rte_bpf* bpf_ = nullptr;
    uint64_t (*jit_)(void*) = nullptr;
};

}  // namespace sluice::dataplane
