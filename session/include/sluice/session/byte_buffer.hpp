// A growable byte buffer without value-initialisation: connections receive
// into it, the collector builds pcapng blocks in it. It grows only when a
// frame is larger than anything seen before (control path).
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

namespace sluice::session {

class ByteBuffer {
  public:
    ByteBuffer() = default;
    explicit ByteBuffer(std::size_t capacity) { reserve(capacity); }

    std::byte* data() { return p_.get(); }
    const std::byte* data() const { return p_.get(); }
    std::size_t size() const { return size_; }
    std::size_t capacity() const { return cap_; }
    bool empty() const { return size_ == 0; }
    std::span<const std::byte> span() const { return {p_.get(), size_}; }

    void clear() { size_ = 0; }
    void resize(std::size_t n) {  // new bytes are left uninitialised
        reserve(n);
        size_ = n;
    }
    void reserve(std::size_t n) {  // doubles from 4 KiB: few reallocations
        if (n <= cap_) return;
        std::size_t c = cap_ ? cap_ : 4096;
        while (c < n)
            c *= 2;
        reserve_exact(c);
    }
    // Exactly n bytes (when more than now): for a caller that accounts for
    // the memory it holds.
    void reserve_exact(std::size_t n) {
        if (n <= cap_) return;
        const std::size_t c = n;
        std::unique_ptr<std::byte[]> q(new std::byte[c]);
        if (size_) std::memcpy(q.get(), p_.get(), size_);
        p_ = std::move(q);
        cap_ = c;
    }
    // Room for n more bytes; returns where they go. Size grows by n.
    std::byte* grow(std::size_t n) {
        reserve(size_ + n);
        std::byte* at = p_.get() + size_;
        size_ += n;
        return at;
    }
    void append(const void* src, std::size_t n) { std::memcpy(grow(n), src, n); }
    // Drops the first n bytes, moving the rest to the front.
    void consume(std::size_t n) {
        if (n >= size_) {
            size_ = 0;
            return;
        }
        std::memmove(p_.get(), p_.get() + n, size_ - n);
        size_ -= n;
    }
    void truncate(std::size_t n) {
        if (n < size_) size_ = n;
    }
    // Frees the memory (an empty buffer gives it back).
    void release() {
        p_.reset();
        size_ = cap_ = 0;
    }

  private:
    std::unique_ptr<std::byte[]> p_;
    std::size_t size_ = 0, cap_ = 0;
};

}  // namespace sluice::session
