#include "sluice/dataplane/filter.hpp"

#include <pcap/pcap.h>

#include <rte_bpf.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "sluice/config/config.hpp"

namespace sluice::dataplane {
namespace {

// pcap_compile is not thread-safe in older libpcap; compilation happens on
// the control plane only, at start-up.
bool compile(const std::string& expression, uint32_t snaplen, bpf_program& prog,
             std::string& error) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen));
    if (!dead) {
        error = "cannot create a pcap handle";
        return false;
    }
    const int rc = pcap_compile(dead, &prog, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN);
    if (rc != 0) error = pcap_geterr(dead);
    pcap_close(dead);
    return rc == 0;
}

}  // namespace

std::optional<std::string> check_filter(const std::string& expression, uint32_t snaplen) {
    if (expression.empty()) return std::nullopt;
    bpf_program prog{};
    std::string error;
    if (!compile(expression, snaplen, prog, error)) return error;
    pcap_freecode(&prog);
    return std::nullopt;
}

std::unique_ptr<BpfFilter> BpfFilter::create(const std::string& expression, uint32_t snaplen,
                                             std::string& error) {
    bpf_program prog{};
    if (!compile(expression, snaplen, prog, error)) return nullptr;
    rte_bpf_prm* prm = rte_bpf_convert(&prog);
    pcap_freecode(&prog);
    if (!prm) {
        error = std::string("cannot convert the filter to eBPF: ") + rte_strerror(rte_errno);
        return nullptr;
    }
    std::unique_ptr<BpfFilter> f(new BpfFilter);
    f->bpf_ = rte_bpf_load(prm);
    rte_free(prm);
    if (!f->bpf_) {
        error = std::string("cannot load the filter: ") + rte_strerror(rte_errno);
        return nullptr;
    }
    rte_bpf_jit jit{};
    if (rte_bpf_get_jit(f->bpf_, &jit) == 0 && jit.func) f->jit_ = jit.func;
    return f;
}

BpfFilter::~BpfFilter() {
    if (bpf_) rte_bpf_destroy(bpf_);
}

void BpfFilter::match(rte_mbuf* const* pkts, uint16_t n, uint64_t* rc) const {
    if (jit_) {
        for (uint16_t i = 0; i < n; ++i)
            rc[i] = jit_(pkts[i]);
    } else {
        rte_bpf_exec_burst(bpf_, reinterpret_cast<void**>(const_cast<rte_mbuf**>(pkts)), rc, n);
    }
}

bool BpfFilter::matches(rte_mbuf* pkt) const {
    if (jit_) return jit_(pkt) != 0;
    return rte_bpf_exec(bpf_, pkt) != 0;
}

uint16_t BpfFilter::apply(rte_mbuf** pkts, uint16_t n, rte_mbuf** rejected,
                          uint16_t& nrejected) const {
    uint64_t rc[config::kMaxBurst];
    match(pkts, n, rc);
    uint16_t kept = 0;
    nrejected = 0;
    for (uint16_t i = 0; i < n; ++i) {
        if (rc[i] != 0) {
            pkts[kept++] = pkts[i];
        } else {
            rejected[nrejected++] = pkts[i];
        }
    }
    return kept;
}

}  // namespace sluice::dataplane
