#include "sluice/session/error_text.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::session {

void ErrorText::set(std::string_view text) {
    char buf[kWords * 8] = {};
    std::memcpy(buf, text.data(), std::min(text.size(), sizeof buf - 1));
    const uint32_t s = seq_.load(std::memory_order_relaxed);  // only this thread writes it
    // Odd: a write is in progress.
    seq_.store(s + 1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < kWords; ++i) {
        uint64_t w;
        std::memcpy(&w, buf + i * 8, 8);
        // release: pairs with the reader's acquire load of this word; a reader
        // that sees the new word also sees seq_ odd or newer on its second
        // load, and retries (no fences: TSan does not model them).
        words_[i].store(w, std::memory_order_release);
    }
    // release: pairs with the reader's acquire load of seq_ at the start of a
    // read, which then sees every word stored above.
    seq_.store(s + 2, std::memory_order_release);
}

std::string ErrorText::get() const {
    char buf[kWords * 8];
    for (;;) {
        // acquire: pairs with the writer's final release store of seq_.
        const uint32_t s1 = seq_.load(std::memory_order_acquire);
        if (s1 & 1) continue;
        for (std::size_t i = 0; i < kWords; ++i) {
            // acquire: pairs with the writer's release store of the word, and
            // keeps the second load of seq_ below after it.
            const uint64_t w = words_[i].load(std::memory_order_acquire);
            std::memcpy(buf + i * 8, &w, 8);
        }
        // relaxed: ordered after the acquire loads above; a torn read shows
        // up as s2 != s1.
        const uint32_t s2 = seq_.load(std::memory_order_relaxed);
        if (s1 == s2) break;
    }
    buf[sizeof buf - 1] = '\0';
    return std::string(buf);
}

}  // namespace sluice::session
