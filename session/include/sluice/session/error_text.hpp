// A last-error text a control thread can read while the writer replaces it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::session {

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

}  // namespace sluice::session
