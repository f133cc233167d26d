#include "sluice/jetstream/frame_order.hpp"

#include <algorithm>

namespace sluice::jetstream {

FrameOrder::FrameOrder(std::size_t max_waiting)
    : max_waiting_(std::max<std::size_t>(1, max_waiting)) {
    waiting_.reserve(max_waiting_ + 1);
    ready_.reserve(max_waiting_ + 2);
}

void FrameOrder::start(uint64_t position) {
    last_position_ = position;
}

void FrameOrder::reset(bool known, uint64_t next_sequence) {
    known_ = known;
    expected_ = next_sequence;
    floor_ = 0;
    waiting_.clear();
    ready_.clear();
    ready_at_ = 0;
}

bool FrameOrder::proven_missing(const Item& head) const {
    // The frame expected will never come: every frame below the highest floor
    // was stored before some frame already read was published, or dropped;
    // and [gap_from, sequence) of the head were dropped by the sender.
    return expected_ < floor_ || head.gap_from <= expected_;
}

void FrameOrder::settle() {
    while (!waiting_.empty()) {
        const Item& head = waiting_.front();
        if (head.sequence > expected_ && !proven_missing(head)) {
            if (waiting_.size() <= max_waiting_) return;
            ++forced_;  // no room to wait longer: the writer counts the gap
        }
        ready_.push_back(head);
        expected_ = std::max(expected_, head.sequence + 1);
        waiting_.erase(waiting_.begin());
    }
}

void FrameOrder::offer(const Item& item) {
    last_position_ = std::max(last_position_, item.position);
    floor_ = std::max(floor_, item.floor);
    if (!known_) {
        known_ = true;
        expected_ = item.sequence;
    }
    if (ready_at_ == ready_.size()) {
        ready_.clear();
        ready_at_ = 0;
    }
    if (item.sequence <= expected_ && waiting_.empty()) {
        ready_.push_back(item);  // in order, or a duplicate for the writer to discard
        expected_ = std::max(expected_, item.sequence + 1);
        return;
    }
    const auto at = std::lower_bound(waiting_.begin(), waiting_.end(), item.sequence,
                                     [](const Item& w, uint64_t seq) { return w.sequence < seq; });
    if (at != waiting_.end() && at->sequence == item.sequence) {
        Item copy = item;  // a second copy of a waiting frame
        copy.discard = true;
        ready_.push_back(copy);
    } else {
        waiting_.insert(at, item);
    }
    settle();
}

std::optional<FrameOrder::Item> FrameOrder::next() {
    if (ready_at_ == ready_.size()) return std::nullopt;
    return ready_[ready_at_++];
}

void FrameOrder::release_all() {
    for (const Item& w : waiting_) {
        ready_.push_back(w);
        expected_ = std::max(expected_, w.sequence + 1);
    }
    waiting_.clear();
}

uint64_t FrameOrder::settled_position() const {
    uint64_t p = last_position_;
    for (const Item& w : waiting_)
        p = std::min(p, w.position - 1);
    for (std::size_t i = ready_at_; i < ready_.size(); ++i)
        p = std::min(p, ready_[i].position - 1);
    return p;
}

}  // namespace sluice::jetstream
