#include "sluice/dataplane/live_filter.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

namespace sluice::dataplane {
namespace {

// How long a change waits for every polling stage to pass a burst boundary
// before it leaves the old filter to be freed later. A polling stage passes
// one every few microseconds.
constexpr auto kGraceWait = std::chrono::seconds(1);

std::string shown(const std::string& expression) {
    return expression.empty() ? std::string("none (every packet kept)")
                              : fmt::format("\"{}\"", expression);
}

}  // namespace

LiveFilter::LiveFilter(std::unique_ptr<BpfFilter> initial, std::string expression, uint32_t snaplen,
                       unsigned readers)
    : owned_(std::move(initial)), expression_(std::move(expression)), snaplen_(snaplen) {
    const unsigned n = readers ? readers : 1;
    const size_t bytes = rte_rcu_qsbr_get_memsize(n);
    qsbr_ =
        static_cast<rte_rcu_qsbr*>(rte_zmalloc("sluice_filter_rcu", bytes, RTE_CACHE_LINE_SIZE));
    if (!qsbr_ || rte_rcu_qsbr_init(qsbr_, n) != 0) {
        rte_free(qsbr_);
        throw std::runtime_error(
            fmt::format("cannot set up the live filter's RCU state: {}", rte_strerror(rte_errno)));
    }
    for (unsigned i = 0; i < readers; ++i)
        rte_rcu_qsbr_thread_register(qsbr_, i);
    current_.store(owned_.get(), std::memory_order_release);
}

LiveFilter::~LiveFilter() {
    rte_free(qsbr_);
}

void LiveFilter::online(unsigned reader) noexcept {
    rte_rcu_qsbr_thread_online(qsbr_, reader);
}

void LiveFilter::quiescent(unsigned reader) noexcept {
    rte_rcu_qsbr_quiescent(qsbr_, reader);
}

void LiveFilter::offline(unsigned reader) noexcept {
    rte_rcu_qsbr_thread_offline(qsbr_, reader);
}

void LiveFilter::reclaim(bool wait) {
    if (retired_.empty()) return;
    const uint64_t token = rte_rcu_qsbr_start(qsbr_);
    const auto deadline = std::chrono::steady_clock::now() + kGraceWait;
    while (rte_rcu_qsbr_check(qsbr_, token, false) != 1) {
        if (!wait || std::chrono::steady_clock::now() >= deadline) return;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    // Every stage online when the token was taken has passed a burst
    // boundary since: none holds a filter retired before it.
    retired_.clear();
}

LiveFilter::Change LiveFilter::set(const std::string& expression) {
    std::lock_guard lock(mu_);
    std::unique_ptr<BpfFilter> next;
    if (!expression.empty()) {
        std::string error;
        next = BpfFilter::create(expression, snaplen_, error);
        if (!next)
            return {false, fmt::format("capture.filter \"{}\" refused: {}; the filter stays {}",
                                       expression, error, shown(expression_))};
    }
    const std::string before = expression_;
    current_.store(next.get(), std::memory_order_release);
    if (owned_) retired_.push_back(std::move(owned_));
    owned_ = std::move(next);
    expression_ = expression;
    ++changes_;
    reclaim(true);
    std::string msg =
        fmt::format("capture.filter changed from {} to {}{}", shown(before), shown(expression_),
                    owned_ ? (owned_->jit() ? " (JIT)" : " (interpreted)") : "");
    if (!retired_.empty())
        msg += fmt::format("; {} old filter(s) are freed once every capture lcore polls again",
                           retired_.size());
    return {true, msg};
}

std::string LiveFilter::expression() const {
    std::lock_guard lock(mu_);
    return expression_;
}

uint64_t LiveFilter::changes() const {
    std::lock_guard lock(mu_);
    return changes_;
}

std::size_t LiveFilter::retired() const {
    std::lock_guard lock(mu_);
    return retired_.size();
}

}  // namespace sluice::dataplane
