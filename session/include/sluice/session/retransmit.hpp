// The sender's bounded store of frames the collector has not acknowledged.
// It holds spans into the caller's frame buffers, never copies: a frame stays
// where it was built until the collector has written it and the caller has
// reclaimed its cookie.
//
//   reclaimed      acked          sent(+partial bytes)    end
//   |  acked, cookie |  sent, awaiting |  submitted,         |
//   |  not returned  |  the ACK        |  not (fully) sent   |
//
// Every index is a running count; slot = index % capacity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <sys/uio.h>

namespace sluice::session {

struct StreamPosition {
    bool known = false;
    uint64_t sequence = 0;      // the next frame the collector should write
    uint64_t packet_index = 0;  // that frame's first_packet_index
};

class RetransmitBuffer {
  public:
    // Allocates `capacity` slots (>= 1) here and never again.
    explicit RetransmitBuffer(uint32_t capacity);

    uint32_t capacity() const { return capacity_; }
    // Frames whose slot is taken: not yet reclaimed (acknowledged or not).
    std::size_t held() const { return end_ - reclaimed_; }
    std::size_t unacknowledged() const { return end_ - acked_; }
    std::size_t unsent() const { return end_ - sent_; }
    bool full() const { return held() == capacity_; }
    bool partially_sent() const { return sent_bytes_ != 0; }

    // Takes a sealed frame; false (nothing kept) when full. Reads the frame's
    // first_packet_index and packet_count from its header for the resume
    // position. The caller guarantees increasing sequences.
    bool push(std::span<const std::byte> frame, uint64_t sequence, void* cookie);

    // The collector has every frame below `next_sequence`: those become
    // reclaimable. Never passes a frame that is partly on the wire (its
    // remaining bytes must follow, or the stream would lose its framing).
    // Returns how many frames it acknowledged.
    std::size_t acknowledge(uint64_t next_sequence);

    // A new connection starts at the oldest unacknowledged frame.
    void rewind();

    // Fills up to `max` iovecs with the unsent bytes in order; returns the
    // count. Cost: one store pair per frame.
    int fill_iov(struct iovec* iov, int max) const;

    struct Advance {
        std::size_t frames = 0;         // frames now completely sent
        std::size_t retransmitted = 0;  // of those, frames sent on an earlier connection too
    };
    // `bytes` more of the unsent bytes are on the wire. `zc_id` (non-zero)
    // tags every frame touched by a MSG_ZEROCOPY send: reclaim() waits for
    // zerocopy_done(zc_id).
    Advance advance(std::size_t bytes, uint32_t zc_id = 0);

    // The kernel released the pages of MSG_ZEROCOPY sends up to this id
    // (ids increase; wrap-around handled as serial numbers).
    void zerocopy_done(uint32_t upto) { zc_done_ = upto; }
    // The socket is gone: no kernel reference to a frame remains, and the
    // next socket counts its zerocopy sends from the start again.
    void zerocopy_forget();

    // Cookies of acknowledged frames, oldest first, up to out.size().
    std::size_t reclaim(std::span<void*> out);

    // Where the collector should resume: the oldest unacknowledged frame, or
    // the frame after the last one pushed; unknown before the first push.
    StreamPosition position() const;

    uint64_t oldest_unacknowledged_sequence() const;  // only with unacknowledged() > 0

    // ---- transports that send whole frames and hear about each on its own
    // (JetStream: one publish acknowledgement per frame, in any order) ----
    struct FrameRef {
        std::span<const std::byte> bytes;
        uint64_t sequence = 0;
        // The first sequence not pushed before this frame: [gap_from,
        // sequence) were dropped by the owner (full buffer); gap_from ==
        // sequence when none were.
        uint64_t gap_from = 0;
    };
    // The next frame to send; only with unsent() > 0 and !partially_sent().
    FrameRef next_unsent() const;
    // Marks the held, unacknowledged frame carrying `sequence` as stored by
    // the peer; false when no such frame is held (already acknowledged, or
    // never pushed). Marks survive rewind(): they are facts about the peer.
    bool mark_stored(uint64_t sequence);
    // Where a cumulative acknowledgement may go: the sequence of the oldest
    // unmarked frame, or the position after the last push when all are marked.
    uint64_t stored_prefix_end() const;
    // The sequence after the latest frame sent completely (0 before any):
    // an acknowledgement beyond it speaks of frames this sender never sent.
    uint64_t sent_limit() const { return sent_limit_; }

  private:
    struct Entry {
        const std::byte* data;
        uint32_t len;
        uint32_t zc_id;  // 0: no MSG_ZEROCOPY send references it
        uint64_t sequence;
        uint64_t packet_index;
        uint64_t gap_from;
        void* cookie;
        bool stored;  // mark_stored()
    };
    Entry& at(uint64_t i) const { return slots_[i % capacity_]; }

    std::unique_ptr<Entry[]> slots_;
    uint32_t capacity_;
    uint64_t reclaimed_ = 0, acked_ = 0, sent_ = 0, end_ = 0;
    uint64_t high_sent_ = 0;  // frames [0, high_sent_) went out at least once
    uint64_t sent_limit_ = 0;
    std::size_t sent_bytes_ = 0;
    uint32_t zc_done_ = 0;
    StreamPosition next_;  // after the last push
};

}  // namespace sluice::session
