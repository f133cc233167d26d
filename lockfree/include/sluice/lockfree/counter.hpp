// Statistics counters written by one thread and read by any: declared once,
// each with the description an operator sees (summaries, telemetry, docs).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace sluice::lockfree {

// One writer; readers on other threads. The writer's load+store pair is not
// an atomic read-modify-write (no lock prefix): only the owning thread writes.
class Counter {
  public:
    void add(uint64_t n) {
        // relaxed: a statistic. A reader's relaxed load pairs with nothing and
        // may see a value a few updates old; exact final values come from the
        // hand-back that ends the writer's work (a release/acquire pair there).
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void inc() { add(1); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

// Several writers (e.g. the HTTP listener's worker threads), readers
// anywhere: an atomic read-modify-write per update, so it belongs on control
// paths only, never on a packet's.
class SharedCounter {
  public:
    // relaxed: a statistic; nothing is published through it (as Counter).
    void add(uint64_t n) { v_.fetch_add(n, std::memory_order_relaxed); }
    void inc() { add(1); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

struct CounterInfo {
    const char* name;
    const char* description;
};

}  // namespace sluice::lockfree

// Declares `struct NAME` (cache-line aligned: one writer per line) with one
// Counter per entry of LIST, the table `info` of names and descriptions, and
// snapshot() returning the values in that order. LIST is an X-macro:
//   #define MY_COUNTERS(_) _(rx_packets, "Packets received.") ...
#define SLUICE_COUNTER_BLOCK(NAME, LIST)                                                          \
    struct alignas(64) NAME {                                                                     \
        LIST(SLUICE_COUNTER_DECLARE)                                                              \
        static constexpr std::array info{LIST(SLUICE_COUNTER_INFO)};                              \
        std::array<uint64_t, info.size()> snapshot() const { return {LIST(SLUICE_COUNTER_GET)}; } \
    };                                                                                            \
    static_assert(alignof(NAME) == 64, "one cache line per writer")
// The same for counters several threads write (SharedCounter).
#define SLUICE_SHARED_COUNTER_BLOCK(NAME, LIST)                                                   \
    struct alignas(64) NAME {                                                                     \
        LIST(SLUICE_SHARED_COUNTER_DECLARE)                                                       \
        static constexpr std::array info{LIST(SLUICE_COUNTER_INFO)};                              \
        std::array<uint64_t, info.size()> snapshot() const { return {LIST(SLUICE_COUNTER_GET)}; } \
    };                                                                                            \
    static_assert(alignof(NAME) == 64, "apart from other threads' lines")
#define SLUICE_COUNTER_DECLARE(name, desc) ::sluice::lockfree::Counter name;
#define SLUICE_SHARED_COUNTER_DECLARE(name, desc) ::sluice::lockfree::SharedCounter name;
#define SLUICE_COUNTER_INFO(name, desc) ::sluice::lockfree::CounterInfo{#name, desc},
#define SLUICE_COUNTER_GET(name, desc) name.get(),
