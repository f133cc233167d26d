#include "sluice/collector/pcapng.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::collector::pcapng {
namespace {

void put32(std::byte* p, uint32_t v) {
    std::memcpy(p, &v, 4);
}
void put16(std::byte* p, uint16_t v) {
    std::memcpy(p, &v, 2);
}

void option(ByteBuffer& out, uint16_t code, const void* value, std::size_t len) {
    std::byte* p = out.grow(4 + pad4(len));
    put16(p, code);
    put16(p + 2, static_cast<uint16_t>(len));
    if (len) std::memcpy(p + 4, value, len);
    std::memset(p + 4 + len, 0, pad4(len) - len);
}

void text_option(ByteBuffer& out, uint16_t code, std::string_view s) {
    if (!s.empty()) option(out, code, s.data(), std::min<std::size_t>(s.size(), 0xfff0));
}

// Opens a block: type and a length patched by close_block().
std::size_t open_block(ByteBuffer& out, uint32_t type) {
    const std::size_t start = out.size();
    std::byte* p = out.grow(8);
    put32(p, type);
    put32(p + 4, 0);
    return start;
}

void close_block(ByteBuffer& out, std::size_t start) {
    std::byte* end = out.grow(4);
    const uint32_t len = static_cast<uint32_t>(out.size() - start);
    put32(out.data() + start + 4, len);
    put32(end, len);
}

}  // namespace

void append_shb(ByteBuffer& out, std::string_view user_application, std::string_view comment) {
    const std::size_t start = open_block(out, kSectionHeaderBlock);
    std::byte* p = out.grow(16);
    put32(p, kByteOrderMagic);
    put16(p + 4, 1);                               // major
    put16(p + 6, 0);                               // minor
    const uint64_t unknown_length = ~uint64_t{0};  // files grow while written
    std::memcpy(p + 8, &unknown_length, 8);
    text_option(out, kOptComment, comment);
    text_option(out, kShbUserAppl, user_application);
    option(out, kOptEnd, nullptr, 0);
    close_block(out, start);
}

void append_idb(ByteBuffer& out, uint16_t link_type, uint32_t snaplen, std::string_view name,
                std::string_view description) {
    const std::size_t start = open_block(out, kInterfaceDescriptionBlock);
    std::byte* p = out.grow(8);
    put16(p, link_type);
    put16(p + 2, 0);
    put32(p + 4, snaplen);
    text_option(out, kIfName, name);
    text_option(out, kIfDescription, description);
    const uint8_t tsresol = kTsResolNanoseconds;
    option(out, kIfTsresol, &tsresol, 1);
    option(out, kOptEnd, nullptr, 0);
    close_block(out, start);
}

void append_epb(ByteBuffer& out, uint32_t interface_id, uint64_t timestamp_ns,
                std::span<const std::byte> data, uint32_t orig_len, uint32_t epb_flags) {
    const uint32_t caplen = static_cast<uint32_t>(data.size());
    const std::size_t total = epb_size(caplen, epb_flags != 0);
    std::byte* p = out.grow(total);
    put32(p, kEnhancedPacketBlock);
    put32(p + 4, static_cast<uint32_t>(total));
    put32(p + 8, interface_id);
    put32(p + 12, static_cast<uint32_t>(timestamp_ns >> 32));
    put32(p + 16, static_cast<uint32_t>(timestamp_ns));
    put32(p + 20, caplen);
    put32(p + 24, orig_len);
    std::memcpy(p + 28, data.data(), caplen);
    std::byte* q = p + 28 + caplen;
    const std::size_t pad = pad4(caplen) - caplen;
    std::memset(q, 0, pad);
    q += pad;
    if (epb_flags) {
        put16(q, kEpbFlags);
        put16(q + 2, 4);
        put32(q + 4, epb_flags);
        put32(q + 8, 0);  // opt_endofopt
        q += 12;
    }
    put32(q, static_cast<uint32_t>(total));
}

void append_epb(Batch& out, uint32_t interface_id, uint64_t timestamp_ns,
                std::span<const std::byte> data, uint32_t orig_len, uint32_t epb_flags,
                bool reference, std::string_view comment) {
    const uint32_t caplen = static_cast<uint32_t>(data.size());
    comment = comment.substr(0, 0xfff0);
    const std::size_t total = epb_size(caplen, epb_flags != 0, comment.size());
    std::byte* p = out.grow(28);
    put32(p, kEnhancedPacketBlock);
    put32(p + 4, static_cast<uint32_t>(total));
    put32(p + 8, interface_id);
    put32(p + 12, static_cast<uint32_t>(timestamp_ns >> 32));
    put32(p + 16, static_cast<uint32_t>(timestamp_ns));
    put32(p + 20, caplen);
    put32(p + 24, orig_len);
    if (reference)
        out.reference(data);
    else
        out.append(data);
    const std::size_t pad = pad4(caplen) - caplen;
    const std::size_t tail = total - 28 - caplen;
    std::byte* q = out.grow(tail);
    std::memset(q, 0, pad);
    q += pad;
    if (!comment.empty()) {
        put16(q, kOptComment);
        put16(q + 2, static_cast<uint16_t>(comment.size()));
        std::memcpy(q + 4, comment.data(), comment.size());
        std::memset(q + 4 + comment.size(), 0, pad4(comment.size()) - comment.size());
        q += 4 + pad4(comment.size());
    }
    if (epb_flags) {
        put16(q, kEpbFlags);
        put16(q + 2, 4);
        put32(q + 4, epb_flags);
        q += 8;
    }
    if (epb_flags || !comment.empty()) {
        put32(q, 0);  // opt_endofopt
        q += 4;
    }
    put32(q, static_cast<uint32_t>(total));
}

void append_isb(ByteBuffer& out, uint32_t interface_id, const InterfaceStatistics& s) {
    const std::size_t start = open_block(out, kInterfaceStatisticsBlock);
    std::byte* p = out.grow(12);
    put32(p, interface_id);
    put32(p + 4, static_cast<uint32_t>(s.timestamp_ns >> 32));
    put32(p + 8, static_cast<uint32_t>(s.timestamp_ns));
    auto time = [&](uint16_t code, uint64_t ns) {
        const uint32_t v[2] = {static_cast<uint32_t>(ns >> 32), static_cast<uint32_t>(ns)};
        option(out, code, v, 8);
    };
    auto count = [&](uint16_t code, uint64_t n) { option(out, code, &n, 8); };
    time(kIsbStartTime, s.start_ns);
    time(kIsbEndTime, s.timestamp_ns);
    count(kIsbIfRecv, s.received);
    count(kIsbIfDrop, s.nic_dropped);
    count(kIsbFilterAccept, s.accepted);
    count(kIsbOsDrop, s.dropped);
    count(kIsbUsrDeliv, s.delivered);
    text_option(out, kOptComment, s.comment);
    option(out, kOptEnd, nullptr, 0);
    close_block(out, start);
}

}  // namespace sluice::collector::pcapng
