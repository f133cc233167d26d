#include "sluice/index/merge.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <unistd.h>

namespace sluice::index {

namespace {

constexpr std::size_t kReadBytes = 256u << 10;

uint32_t get_u32(const std::byte* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

}  // namespace

bool AnswerReader::fill(std::size_t n, std::string* error) {
    if (pos_) {  // what was consumed goes: the buffer holds the block being read
        std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
        end_ -= pos_;
        pos_ = 0;
    }
    while (end_ < n && !eof_) {
        if (buf_.size() < std::max(n, kReadBytes)) buf_.resize(std::max(n, kReadBytes));
        const ssize_t r = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
        if (r < 0) {
            if (errno == EINTR) continue;
            *error = name_ + ": " + std::strerror(errno);
            return false;
        }
        if (r == 0) eof_ = true;
        end_ += std::size_t(r);
        bytes_ += uint64_t(r);
    }
    return end_ >= n;
}

AnswerReader::Step AnswerReader::next(QueryPacket& p, std::string* error) {
    for (;;) {
        error->clear();
        if (!fill(8, error)) {
            if (!error->empty()) return Step::Error;
            if (end_ == 0 && section_) return Step::End;
            *error = name_ + (end_ == 0 && !section_ ? ": empty answer, not pcapng"
                                                     : ": cut short inside a block header");
            return Step::Error;
        }
        const std::byte* h = buf_.data();
        const uint32_t type = get_u32(h), len = get_u32(h + 4);
        if (!section_ && type != pcapng::kSectionHeaderBlock) {
            *error = name_ + ": not pcapng (no section header block first)";
            return Step::Error;
        }
        if (len < 12 || len % 4 != 0 || len > pcapng::kMaxBlockBytes) {
            *error = name_ + ": a block of " + std::to_string(len) +
                     " bytes (a pcapng block is a multiple of 4 from 12 to " +
                     std::to_string(pcapng::kMaxBlockBytes) + ")";
            return Step::Error;
        }
        if (!fill(len, error)) {
            if (error->empty()) *error = name_ + ": cut short inside a block";
            return Step::Error;
        }
        const pcapng::Next nb = pcapng::block_at({buf_.data(), len}, 0);
        if (nb.walk != pcapng::Walk::Ok) {
            *error = name_ + (type == pcapng::kSectionHeaderBlock
                                  ? ": a section header that is big-endian or not pcapng"
                                  : ": a block whose trailing length differs from its leading");
            return Step::Error;
        }
        pos_ = len;
        const std::span<const std::byte> b = nb.block.bytes;
        if (type == pcapng::kSectionHeaderBlock) {
            if (section_) {
                *error = name_ + ": a second section (an answer is one section)";
                return Step::Error;
            }
            section_ = true;
        } else if (type == pcapng::kInterfaceDescriptionBlock) {
            auto i = pcapng::parse_interface(b);
            if (!i) {
                *error = name_ + ": a malformed interface description block";
                return Step::Error;
            }
            if (interfaces_.size() >= kMaxAnswerInterfaces) {
                *error =
                    name_ + ": more than " + std::to_string(kMaxAnswerInterfaces) + " interfaces";
                return Step::Error;
            }
            interfaces_.push_back(std::move(*i));
        } else if (type == pcapng::kEnhancedPacketBlock) {
            const auto pk = pcapng::parse_packet_block(b);
            if (!pk) {
                *error = name_ + ": a packet block whose captured length runs past its end";
                return Step::Error;
            }
            if (pk->interface_id >= interfaces_.size()) {
                *error = name_ + ": a packet on interface " + std::to_string(pk->interface_id) +
                         ", which the answer has not described";
                return Step::Error;
            }
            p.interface_id = pk->interface_id;
            p.interface = &interfaces_[pk->interface_id];
            p.ts_ns = pcapng::to_ns(*p.interface, pk->ts_raw);
            p.epb = b;
            p.data = pk->data;
            p.orig_len = pk->orig_len;
            ++packets_;
            return Step::Packet;
        }
        // Other blocks (statistics, name resolution, custom) are not merged.
    }
}

bool merge_answers(std::span<AnswerReader> answers, QuerySink& sink, std::string* error) {
    std::vector<QueryPacket> head(answers.size());
    std::vector<bool> live(answers.size());
    for (std::size_t i = 0; i < answers.size(); ++i) {
        const auto s = answers[i].next(head[i], error);
        if (s == AnswerReader::Step::Error) return false;
        live[i] = s == AnswerReader::Step::Packet;
        head[i].source = uint32_t(i);
    }
    // A linear pick: answers are a handful of collectors and directories.
    for (;;) {
        std::size_t best = answers.size();
        for (std::size_t i = 0; i < answers.size(); ++i)
            if (live[i] && (best == answers.size() || head[i].ts_ns < head[best].ts_ns)) best = i;
        if (best == answers.size()) return true;
        if (!sink.packet(head[best])) {
            *error = "the output stopped";
            return false;
        }
        const auto s = answers[best].next(head[best], error);
        if (s == AnswerReader::Step::Error) return false;
        live[best] = s == AnswerReader::Step::Packet;
        head[best].source = uint32_t(best);
    }
}

}  // namespace sluice::index
