// The pcapng bytes of one commit, gathered rather than copied: block headers
// and trailers live in the batch's own buffer, packet data may stay where the
// frame arrived (the connection's receive buffer) until the batch is written
// with one pwritev. That saves a copy of every packet when neither the frame
// nor the output is compressed. A referenced span must outlive the batch's
// next write or clear().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include <sys/uio.h>

#include "sluice/session/byte_buffer.hpp"

namespace sluice::collector {

using session::ByteBuffer;

class Batch {
  public:
    bool empty() const { return bytes_ == 0; }
    std::size_t size() const { return bytes_; }
    void clear() {
        owned_.clear();
        count_ = 0;
        bytes_ = 0;
    }
    // Room for n more owned bytes and k more segments: growth happens here,
    // once per frame, not per packet.
    void reserve(std::size_t n, std::size_t k) {
        owned_.reserve(owned_.size() + n);
        if (count_ + k > capacity_) grow_segments(count_ + k);
    }

    // n bytes at the end of the batch, in its own buffer; valid until the
    // next grow().
    std::byte* grow(std::size_t n) {
        const std::size_t at = owned_.size();
        std::byte* p = owned_.grow(n);
        Segment* last = count_ ? &segments_[count_ - 1] : nullptr;
        if (last && !last->ptr && last->offset + last->len == at)
            last->len += n;
        else
            push({nullptr, at, n});
        bytes_ += n;
        return p;
    }
    void append(std::span<const std::byte> s) {
        if (!s.empty()) std::memcpy(grow(s.size()), s.data(), s.size());
    }
    // Bytes that stay where they are until the batch is written.
    void reference(std::span<const std::byte> s) {
        if (s.empty()) return;
        push({s.data(), 0, s.size()});
        bytes_ += s.size();
    }

    // The batch as iovecs, at most `max` from segment `first`; returns the
    // count. Owned pointers are resolved here (the buffer no longer moves).
    std::size_t iovecs(std::size_t first, struct iovec* out, std::size_t max) const {
        std::size_t n = 0;
        for (std::size_t i = first; i < count_ && n < max; ++i, ++n) {
            const Segment& s = segments_[i];
            out[n].iov_base = const_cast<std::byte*>(s.ptr ? s.ptr : owned_.data() + s.offset);
            out[n].iov_len = s.len;
        }
        return n;
    }
    std::size_t segments() const { return count_; }

    // One contiguous copy (for a compressor).
    void flatten(ByteBuffer& out) const {
        out.clear();
        out.reserve(bytes_);
        for (std::size_t i = 0; i < count_; ++i) {
            const Segment& s = segments_[i];
            out.append(s.ptr ? s.ptr : owned_.data() + s.offset, s.len);
        }
    }

  private:
    struct Segment {
        const std::byte* ptr;  // referenced bytes; nullptr: owned ones, at `offset`
        std::size_t offset;
        std::size_t len;
    };
    // Two or three segments per packet: a plain array, so that adding one is
    // a store and a compare, with reserve() making room once per frame.
    void push(const Segment& s) {
        if (count_ == capacity_) [[unlikely]]
            grow_segments(count_ + 1);
        segments_[count_++] = s;
    }
    void grow_segments(std::size_t want) {
        const std::size_t cap = std::max({want, 2 * capacity_, std::size_t{64}});
        auto bigger = std::make_unique_for_overwrite<Segment[]>(cap);
        if (count_) std::memcpy(bigger.get(), segments_.get(), count_ * sizeof(Segment));
        segments_ = std::move(bigger);
        capacity_ = cap;
    }
    ByteBuffer owned_;
    std::unique_ptr<Segment[]> segments_;
    std::size_t count_ = 0, capacity_ = 0;
    std::size_t bytes_ = 0;
};

}  // namespace sluice::collector
