// capture.filter, changed while sluice captures (telemetry /sluice/filter,
// `sluice-ctl filter`). A new expression is compiled and loaded on the
// control thread that asks; each capture stage picks the new filter up
// between two bursts; the old filter is freed once no stage can still be
// running it, proven with DPDK's QSBR RCU (each capture stage reports a
// quiescent state once per poll, which is one store).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/dataplane/filter.hpp"

struct rte_rcu_qsbr;

namespace sluice::dataplane {

class LiveFilter {
  public:
    // `readers`: the capture stages, each known by its index. `initial` may
    // be null (no filter: every packet is kept). Throws std::runtime_error
    // when the RCU state cannot be allocated.
    LiveFilter(std::unique_ptr<BpfFilter> initial, std::string expression, uint32_t snaplen,
               unsigned readers);
    ~LiveFilter();
    LiveFilter(const LiveFilter&) = delete;
    LiveFilter& operator=(const LiveFilter&) = delete;

    // ---- capture stages (each on its own lcore) --------------------------
    // The filter to run on this burst; valid until this reader's next
    // quiescent() or offline().
    const BpfFilter* current() const noexcept { return current_.load(std::memory_order_acquire); }
    void online(unsigned reader) noexcept;
    // Between bursts: this reader holds no filter pointer any more.
    void quiescent(unsigned reader) noexcept;
    // The stage stops polling (drained): a change never waits for it.
    void offline(unsigned reader) noexcept;

    // ---- control threads ------------------------------------------------
    struct Change {
        bool ok = false;
        std::string message;  // the outcome, for the operator
    };
    // Compiles `expression` ("" removes the filter) and swaps it in. A bad
    // expression changes nothing; the message says why and what stays.
    Change set(const std::string& expression);
    std::string expression() const;
    uint64_t changes() const;
    // Old filters not yet proven unused (a stage that did not poll within
    // the wait): freed at the next change or at the end.
    std::size_t retired() const;

  private:
    void reclaim(bool wait);

    mutable std::mutex mu_;  // control threads only
    std::atomic<const BpfFilter*> current_{nullptr};
    std::unique_ptr<BpfFilter> owned_;
    std::vector<std::unique_ptr<BpfFilter>> retired_;
    std::string expression_;
    uint32_t snaplen_ = 0;
    uint64_t changes_ = 0;
    rte_rcu_qsbr* qsbr_ = nullptr;
};

}  // namespace sluice::dataplane
