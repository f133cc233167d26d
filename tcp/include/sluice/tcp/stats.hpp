// Counters one thread writes and any thread reads, and a last-error text a
// control thread can read while the writer replaces it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::tcp {

// One writer; readers on other threads. The writer's load+store pair is not
// an atomic read-modify-write (no lock prefix): only the owner writes.
class Counter {
  public:
    void add(uint64_t n) {
        // relaxed: a statistic; a reader's relaxed load pairs with nothing
        // and may see a value a few calls old.
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void inc() { add(1); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

struct CounterInfo {
    const char* name;
    const char* description;
};

// A sequence lock over words of text: the writer never waits, a reader
// retries while a write is in progress. Text longer than 255 bytes is cut.
class ErrorText {
  public:
    void set(std::string_view text);  // the owning thread only
    std::string get() const;          // any thread; allocates (control path)

  private:
    static constexpr std::size_t kWords = 32;
    std::atomic<uint32_t> seq_{0};
    std::array<std::atomic<uint64_t>, kWords> words_{};
};

}  // namespace sluice::tcp
