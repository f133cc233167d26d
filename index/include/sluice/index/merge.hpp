// Merging query answers: pcapng streams each already in time order (what
// sluice-query and a collector's GET /query write) into one QuerySink, in
// time order, equal timestamps in the order the streams are given. This is
// how sluice-query joins several collectors' answers (docs/query.md).
//
// An answer comes from another host: it is read as hostile. Every block
// length is checked against pcapng::kMaxBlockBytes before it sizes a
// buffer, interfaces per answer are bounded (kMaxAnswerInterfaces), a packet
// must name an interface its answer described, and an answer cut short, not
// pcapng, or big-endian is an error naming it. Memory: one read buffer per
// answer holding at most the block being merged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/index/pcapng.hpp"
#include "sluice/index/query.hpp"

namespace sluice::index {

inline constexpr std::size_t kMaxAnswerInterfaces = 1u << 16;

// Reads one answer from a file descriptor (a pipe, a socket, a file), block
// by block: its interfaces and packets, in the order written.
class AnswerReader {
  public:
    AnswerReader(std::string name, int fd) : name_(std::move(name)), fd_(fd) {}
    AnswerReader(AnswerReader&&) = default;

    enum class Step : uint8_t { Packet, End, Error };
    // The next packet (p.source is left to the caller). Its spans and
    // interface stay valid until the next call.
    Step next(QueryPacket& p, std::string* error);

    const std::string& name() const { return name_; }
    uint64_t packets() const { return packets_; }
    uint64_t bytes() const { return bytes_; }

  private:
    // Makes [pos_, pos_ + n) readable; false at the end of the answer.
    bool fill(std::size_t n, std::string* error);
    std::string name_;
    int fd_;
    pcapng::Buffer buf_;
    std::size_t pos_ = 0, end_ = 0;  // the block being read; the bytes read
    bool eof_ = false, section_ = false;
    std::vector<pcapng::Interface> interfaces_;
    uint64_t packets_ = 0, bytes_ = 0;
};

// Merges the answers into `sink`. False and `error` (naming the answer)
// when one is damaged or cannot be read, or when the sink stops.
bool merge_answers(std::span<AnswerReader> answers, QuerySink& sink, std::string* error);

}  // namespace sluice::index
