#include "sluice/session/retransmit.hpp"

#include <algorithm>
#include <stdexcept>

#include "sluice/wire/format.hpp"
#include "sluice/wire/le.hpp"

namespace sluice::session {

RetransmitBuffer::RetransmitBuffer(uint32_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("retransmit buffer needs at least 1 frame");
    slots_ = std::make_unique<Entry[]>(capacity);
}

bool RetransmitBuffer::push(std::span<const std::byte> frame, uint64_t sequence, void* cookie) {
    if (full()) return false;
    using wire::load_le;
    uint64_t first = 0;
    uint32_t count = 0;
    if (frame.size() >= wire::kHeaderSize) {
        first = load_le<uint64_t>(frame.data() + wire::offset::first_packet_index);
        count = load_le<uint32_t>(frame.data() + wire::offset::packet_count);
    }
    const uint64_t gap_from = next_.known ? next_.sequence : sequence;
    at(end_) = Entry{
        frame.data(), static_cast<uint32_t>(frame.size()), 0, sequence, first, gap_from, cookie,
        false};
    ++end_;
    next_ = {true, sequence + 1, first + count};
    return true;
}

std::size_t RetransmitBuffer::acknowledge(uint64_t next_sequence) {
    const uint64_t limit = sent_bytes_ ? sent_ : end_;
    const uint64_t before = acked_;
    while (acked_ < limit && at(acked_).sequence < next_sequence)
        ++acked_;
    if (acked_ > sent_) {
        // A resume point beyond what this connection sent: skip those frames.
        sent_ = acked_;
        sent_bytes_ = 0;
    }
    return acked_ - before;
}

void RetransmitBuffer::rewind() {
    sent_ = acked_;
    sent_bytes_ = 0;
}

int RetransmitBuffer::fill_iov(struct iovec* iov, int max) const {
    int n = 0;
    for (uint64_t i = sent_; i < end_ && n < max; ++i, ++n) {
        const Entry& e = at(i);
        const std::size_t skip = i == sent_ ? sent_bytes_ : 0;
        iov[n].iov_base = const_cast<std::byte*>(e.data + skip);
        iov[n].iov_len = e.len - skip;
    }
    return n;
}

RetransmitBuffer::Advance RetransmitBuffer::advance(std::size_t bytes, uint32_t zc_id) {
    Advance a;
    while (bytes > 0 && sent_ < end_) {
        Entry& e = at(sent_);
        if (zc_id) e.zc_id = zc_id;
        const std::size_t left = e.len - sent_bytes_;
        if (bytes < left) {
            sent_bytes_ += bytes;
            return a;
        }
        bytes -= left;
        sent_bytes_ = 0;
        ++a.frames;
        sent_limit_ = std::max(sent_limit_, e.sequence + 1);
        if (sent_ < high_sent_) ++a.retransmitted;
        ++sent_;
        if (sent_ > high_sent_) high_sent_ = sent_;
    }
    return a;
}

std::size_t RetransmitBuffer::reclaim(std::span<void*> out) {
    std::size_t n = 0;
    while (n < out.size() && reclaimed_ < acked_) {
        const Entry& e = at(reclaimed_);
        // Serial-number comparison: ids wrap after 2^32 sends.
        if (e.zc_id && static_cast<int32_t>(zc_done_ - e.zc_id) < 0) break;
        out[n++] = e.cookie;
        ++reclaimed_;
    }
    return n;
}

void RetransmitBuffer::zerocopy_forget() {
    for (uint64_t i = reclaimed_; i < end_; ++i)
        at(i).zc_id = 0;
    zc_done_ = 0;
}

StreamPosition RetransmitBuffer::position() const {
    if (acked_ < end_) {
        const Entry& e = at(acked_);
        return {true, e.sequence, e.packet_index};
    }
    return next_;
}

uint64_t RetransmitBuffer::oldest_unacknowledged_sequence() const {
    return at(acked_).sequence;
}

RetransmitBuffer::FrameRef RetransmitBuffer::next_unsent() const {
    const Entry& e = at(sent_);
    return {{e.data, e.len}, e.sequence, e.gap_from};
}

bool RetransmitBuffer::mark_stored(uint64_t sequence) {
    // Sequences increase through the buffer: binary search the unacknowledged part.
    uint64_t lo = acked_, hi = end_;
    while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2;
        if (at(mid).sequence < sequence)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == end_ || at(lo).sequence != sequence) return false;
    at(lo).stored = true;
    return true;
}

uint64_t RetransmitBuffer::stored_prefix_end() const {
    for (uint64_t i = acked_; i < end_; ++i) {
        if (!at(i).stored) return at(i).sequence;
    }
    return next_.sequence;
}

}  // namespace sluice::session
