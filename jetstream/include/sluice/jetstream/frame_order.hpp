// FrameOrder: puts one sluice stream's frames back in sequence order as a
// collector reads them from JetStream.
//
// JetStream stores a stream's frames in publish order, with one exception: a
// publish that was lost (the server holding the stream's leadership died
// with it in flight) while later ones got through. The sender publishes the
// lost frame again after its timeout, so it is stored after frames that
// follow it. Handing frames to the writer in stream order would write the
// later ones as a gap and then discard the late one as a duplicate: a packet
// lost although JetStream holds it.
//
// So a frame above the expected sequence waits here, until either the missing
// frames arrive (then all go out in order), or the frames' tags (frame_tag.hpp)
// prove the missing ones will never come: the sender had dropped them (gap
// from), or they were stored before this frame was published (floor) and so
// are gone from JetStream (its limits removed them). Then the waiting frame
// goes out and the writer counts the gap. A bounded number of frames waits;
// past it the oldest goes out as if proven, counted in `forced()`.
//
// Plain data, one owner thread, no allocation once the waiting room reached
// its size.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace sluice::jetstream {

class FrameOrder {
  public:
    struct Item {
        uint64_t sequence = 0;
        uint64_t floor = 0;      // FrameTag::floor
        uint64_t gap_from = 0;   // FrameTag::gap_from
        uint64_t position = 0;   // its JetStream stream sequence
        void* handle = nullptr;  // the caller's message
        // From next(): a second copy of a frame that is waiting here; free it,
        // do not write it.
        bool discard = false;
    };

    explicit FrameOrder(std::size_t max_waiting);

    // A new owner reads from after `position`: everything up to it is settled.
    void start(uint64_t position);
    // Starts over for a session: frames from `next_sequence` on are expected
    // (unknown: the first frame offered sets it). Nothing may be waiting.
    void reset(bool known, uint64_t next_sequence);

    // Takes a frame of the current session, read at JetStream position
    // `item.position` (positions increase from one offer to the next).
    void offer(const Item& item);
    // The next frame for the writer, in sequence order (duplicates, below the
    // expected sequence, included: the writer discards them), or a copy to
    // free (`discard`); nullopt while the next one must wait.
    std::optional<Item> next();
    // A message at `position` that is no frame of this stream: passed over.
    void skip(uint64_t position) { last_position_ = std::max(last_position_, position); }
    // The session ended (a new one began): everything waiting goes out, the
    // frames missing before it counted by the writer as a gap.
    void release_all();

    std::size_t waiting() const { return waiting_.size(); }
    // The JetStream position up to which every message was handed out (or
    // discarded): where a new owner of the stream would start reading again.
    // Frames offered but still waiting or not yet taken with next() hold it
    // back.
    uint64_t settled_position() const;
    uint64_t forced() const { return forced_; }  // frames sent out past an unproven gap
    uint64_t expected() const { return expected_; }
    uint64_t floor() const { return floor_; }

  private:
    void settle();
    bool proven_missing(const Item& head) const;

    std::size_t max_waiting_;
    bool known_ = false;
    uint64_t expected_ = 0;
    uint64_t floor_ = 0;          // the highest floor seen in this session
    uint64_t last_position_ = 0;  // the position of the last frame offered
    std::vector<Item> waiting_;   // sorted by sequence, no two alike
    std::vector<Item> ready_;     // in order for the writer
    std::size_t ready_at_ = 0;
    uint64_t forced_ = 0;
};

}  // namespace sluice::jetstream
