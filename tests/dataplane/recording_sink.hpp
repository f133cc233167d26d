// A test sink that keeps a copy of every frame (it allocates; the real sinks
// do not), for in-process pipeline runs checked frame by frame.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "sluice/dataplane/sink.hpp"

namespace sluice::testing {

class RecordingSink final : public dataplane::FrameSink {
  public:
    explicit RecordingSink(std::vector<std::string>* frames, std::mutex* m)
        : frames_(frames), m_(m) {}
    Submit submit(std::span<const std::byte> f, uint64_t, void* cookie) override {
        {
            std::lock_guard lock(*m_);
            frames_->emplace_back(reinterpret_cast<const char*>(f.data()), f.size());
        }
        done_.push_back(cookie);
        return Submit::Accepted;
    }
    bool poll(uint64_t) override { return false; }
    std::size_t reclaim(std::span<void*> out) override {
        std::size_t n = 0;
        while (n < out.size() && !done_.empty()) {
            out[n++] = done_.back();
            done_.pop_back();
        }
        return n;
    }
    bool all_done() const override { return done_.empty(); }
    std::string describe() const override { return "recording"; }

  private:
    std::vector<std::string>* frames_;
    std::mutex* m_;
    std::vector<void*> done_;
};

}  // namespace sluice::testing
