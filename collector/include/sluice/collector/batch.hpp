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
#include <span>
#include <vector>

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
        segments_.clear();
        bytes_ = 0;
    }
    // Room for n more owned bytes and k more segments: growth happens here,
    // once per frame, not per packet.
    void reserve(std::size_t n, std::size_t k) {
        owned_.reserve(owned_.size() + n);
        const std::size_t want = segments_.size() + k;
        if (want > segments_.capacity())
            segments_.reserve(std::max(want, 2 * segments_.capacity()));
    }

    // n bytes at the end of the batch, in its own buffer; valid until the
    // next grow().
    std::byte* grow(std::size_t n) {
        const std::size_t at = owned_.size();
        std::byte* p = owned_.grow(n);
        if (!segments_.empty() && !segments_.back().external &&
            segments_.back().offset + segments_.back().len == at) {
            segments_.back().len += n;
        } else {
            segments_.push_back({nullptr, at, n, false});
        }
        bytes_ += n;
        return p;
    }
    void append(std::span<const std::byte> s) {
        if (!s.empty()) std::memcpy(grow(s.size()), s.data(), s.size());
    }
    // Bytes that stay where they are until the batch is written.
    void reference(std::span<const std::byte> s) {
        if (s.empty()) return;
        segments_.push_back({s.data(), 0, s.size(), true});
        bytes_ += s.size();
    }

    // The batch as iovecs, at most `max` from segment `first`; returns the
    // count. Owned pointers are resolved here (the buffer no longer moves).
    std::size_t iovecs(std::size_t first, struct iovec* out, std::size_t max) const {
        std::size_t n = 0;
        for (std::size_t i = first; i < segments_.size() && n < max; ++i, ++n) {
            const Segment& s = segments_[i];
            out[n].iov_base = const_cast<std::byte*>(s.external ? s.ptr : owned_.data() + s.offset);
            out[n].iov_len = s.len;
        }
        return n;
    }
    std::size_t segments() const { return segments_.size(); }

    // One contiguous copy (for a compressor).
    void flatten(ByteBuffer& out) const {
        out.clear();
        out.reserve(bytes_);
        for (const Segment& s : segments_)
            out.append(s.external ? s.ptr : owned_.data() + s.offset, s.len);
    }

  private:
    struct Segment {
        const std::byte* ptr;  // external
        std::size_t offset;    // owned
        std::size_t len;
        bool external;
    };
    ByteBuffer owned_;
    std::vector<Segment> segments_;
    std::size_t bytes_ = 0;
};

}  // namespace sluice::collector
