#include "sluice/dataplane/sink.hpp"

#include <array>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace sluice::dataplane {
namespace {

// Frames done at submit time wait here until reclaim(): a fixed ring, no
// allocation after construction.
class DoneList {
  public:
    bool push(void* cookie) {
        if (count_ == ring_.size()) return false;
        ring_[(head_ + count_++) % ring_.size()] = cookie;
        return true;
    }
    std::size_t pop(std::span<void*> out) {
        std::size_t n = 0;
        while (n < out.size() && count_) {
            out[n++] = ring_[head_];
            head_ = (head_ + 1) % ring_.size();
            --count_;
        }
        return n;
    }
    bool empty() const { return count_ == 0; }
    bool full() const { return count_ == ring_.size(); }

  private:
    std::array<void*, 256> ring_{};
    std::size_t head_ = 0, count_ = 0;
};

class NullSink final : public FrameSink {
  public:
    Submit submit(std::span<const std::byte>, uint64_t, void* cookie) override {
        return done_.push(cookie) ? Submit::Accepted : Submit::Full;
    }
    bool poll(uint64_t) override { return false; }
    std::size_t reclaim(std::span<void*> out) override { return done_.pop(out); }
    bool all_done() const override { return done_.empty(); }
    std::string describe() const override { return "null"; }

  private:
    DoneList done_;
};

class FileSink final : public FrameSink {
  public:
    FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    ~FileSink() override {
        if (fd_ >= 0) ::close(fd_);
    }
    Submit submit(std::span<const std::byte> frame, uint64_t, void* cookie) override {
        if (done_.full()) return Submit::Full;
        // The egress send: a blocking write to a local file.
        const std::byte* p = frame.data();
        std::size_t left = frame.size();
        while (left) {
            const ssize_t n = write(fd_, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ++write_errors_;
                last_errno_ = n < 0 ? errno : ENOSPC;
                return Submit::Failed;
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        done_.push(cookie);
        return Submit::Accepted;
    }
    bool poll(uint64_t) override { return false; }
    std::size_t reclaim(std::span<void*> out) override { return done_.pop(out); }
    bool all_done() const override { return done_.empty(); }
    std::string describe() const override {
        return write_errors_ ? fmt::format("file {} ({} write errors, last: {})", path_,
                                           write_errors_, std::strerror(last_errno_))
                             : "file " + path_;
    }

  private:
    int fd_;
    std::string path_;
    DoneList done_;
    uint64_t write_errors_ = 0;
    int last_errno_ = 0;
};

}  // namespace

std::unique_ptr<FrameSink> make_null_sink() {
    return std::make_unique<NullSink>();
}

std::unique_ptr<FrameSink> make_file_sink(const std::string& path, std::string& error) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = fmt::format("cannot open egress.path {}: {}", path, std::strerror(errno));
        return nullptr;
    }
    return std::make_unique<FileSink>(fd, path);
}

}  // namespace sluice::dataplane
