#include "sluice/jetstream/frame_tag.hpp"

#include <array>
#include <charconv>

#include <fmt/format.h>

namespace sluice::jetstream {
namespace {

std::optional<uint64_t> number(std::string_view s, int base = 10) {
    uint64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::size_t finish(std::span<char, kMaxTagText> out, fmt::format_to_n_result<char*> r) {
    const std::size_t n = std::min<std::size_t>(r.size, kMaxTagText - 1);
    out[n] = '\0';
    return n;
}

}  // namespace

std::size_t format_msg_id(std::span<char, kMaxTagText> out, uint64_t stream_id, uint64_t session_id,
                          uint64_t sequence) {
    return finish(out, fmt::format_to_n(out.data(), kMaxTagText - 1, "{}-{:016x}-{}", stream_id,
                                        session_id, sequence));
}

std::size_t format_frame_tag(std::span<char, kMaxTagText> out, const FrameTag& t) {
    return finish(out, fmt::format_to_n(out.data(), kMaxTagText - 1, "{:016x} {} {}", t.session_id,
                                        t.floor, t.gap_from));
}

std::optional<uint64_t> sequence_of_msg_id(std::string_view id) {
    const auto dash = id.rfind('-');
    if (dash == std::string_view::npos) return std::nullopt;
    return number(id.substr(dash + 1));
}

std::optional<FrameTag> parse_frame_tag(std::string_view text) {
    std::array<std::string_view, 3> f;
    for (std::size_t i = 0; i < f.size(); ++i) {
        const auto sp = text.find(' ');
        if ((sp == std::string_view::npos) != (i + 1 == f.size())) return std::nullopt;
        f[i] = text.substr(0, sp);
        text.remove_prefix(sp == std::string_view::npos ? text.size() : sp + 1);
    }
    const auto session = number(f[0], 16), floor = number(f[1]), gap = number(f[2]);
    if (!session || !floor || !gap || f[0].size() != 16) return std::nullopt;
    return FrameTag{*session, *floor, *gap};
}

namespace {

// Token `k` after <consumer> (0: delivered, 1: stream seq, 2: consumer seq)
// of a consumer's reply subject:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (9 tokens), or
// $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>... (12 and more).
uint64_t reply_number(std::string_view reply, std::size_t k) {
    std::array<std::string_view, 12> t;
    std::size_t n = 0;
    while (n < t.size()) {
        const auto dot = reply.find('.');
        t[n++] = reply.substr(0, dot);
        if (dot == std::string_view::npos) break;
        reply.remove_prefix(dot + 1);
    }
    if (n < 9 || t[0] != "$JS" || t[1] != "ACK") return 0;
    const auto v = number(n == 9 ? t[4 + k] : t[6 + k]);
    return v ? *v : 0;
}

}  // namespace

uint64_t stream_sequence_of_reply(std::string_view reply) {
    return reply_number(reply, 1);
}

uint64_t consumer_sequence_of_reply(std::string_view reply) {
    return reply_number(reply, 2);
}

}  // namespace sluice::jetstream
