// The pcapng blocks the collector writes (draft-ietf-opsawg-pcapng): a
// Section Header per file, an Interface Description per (stream, port, queue)
// with nanosecond timestamps (if_tsresol = 9), and an Enhanced Packet Block per
// packet keeping the original length. Little-endian, as the host writes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sluice/collector/batch.hpp"
#include "sluice/session/byte_buffer.hpp"

namespace sluice::collector::pcapng {

inline constexpr uint32_t kSectionHeaderBlock = 0x0A0D0D0A;
inline constexpr uint32_t kInterfaceDescriptionBlock = 0x00000001;
inline constexpr uint32_t kEnhancedPacketBlock = 0x00000006;
inline constexpr uint32_t kInterfaceStatisticsBlock = 0x00000005;
inline constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
inline constexpr uint16_t kLinkTypeEthernet = 1;
inline constexpr uint8_t kTsResolNanoseconds = 9;

// Option codes.
inline constexpr uint16_t kOptEnd = 0;
inline constexpr uint16_t kOptComment = 1;
inline constexpr uint16_t kShbUserAppl = 4;
inline constexpr uint16_t kIfName = 2;
inline constexpr uint16_t kIfDescription = 3;
inline constexpr uint16_t kIfTsresol = 9;
inline constexpr uint16_t kEpbFlags = 2;
inline constexpr uint16_t kIsbStartTime = 2;
inline constexpr uint16_t kIsbEndTime = 3;
inline constexpr uint16_t kIsbIfRecv = 4;
inline constexpr uint16_t kIsbIfDrop = 5;
inline constexpr uint16_t kIsbFilterAccept = 6;
inline constexpr uint16_t kIsbOsDrop = 7;
inline constexpr uint16_t kIsbUsrDeliv = 8;
// epb_flags bits 0-1: the direction (1 inbound, 2 outbound).
inline constexpr uint32_t kEpbInbound = 1;
inline constexpr uint32_t kEpbOutbound = 2;

constexpr std::size_t pad4(std::size_t n) {
    return (n + 3) & ~std::size_t{3};
}

// Bytes append_epb() adds for a packet of caplen bytes (the flags option
// adds 12 when given; a comment 4 + its length padded to 4, and 4 more for
// the end of options when there are no flags).
constexpr std::size_t epb_size(uint32_t caplen, bool with_flags, std::size_t comment_len = 0) {
    const bool options = with_flags || comment_len;
    return 32 + pad4(caplen) + (with_flags ? 8 : 0) + (comment_len ? 4 + pad4(comment_len) : 0) +
           (options ? 4 : 0);
}

// What an Interface Statistics Block says of one interface.
struct InterfaceStatistics {
    uint64_t timestamp_ns = 0;  // when the counters were read
    uint64_t start_ns = 0;      // isb_starttime: when counting began
    uint64_t received = 0;      // isb_ifrecv
    uint64_t nic_dropped = 0;   // isb_ifdrop
    uint64_t accepted = 0;      // isb_filteraccept
    uint64_t dropped = 0;       // isb_osdrop
    uint64_t delivered = 0;     // isb_usrdeliv
    std::string comment;        // opt_comment, or none
};

void append_shb(ByteBuffer& out, std::string_view user_application, std::string_view comment);
void append_idb(ByteBuffer& out, uint16_t link_type, uint32_t snaplen, std::string_view name,
                std::string_view description);
// Cost: a 28-byte header store and a memcpy of the packet. epb_flags 0: no
// flags option.
void append_epb(ByteBuffer& out, uint32_t interface_id, uint64_t timestamp_ns,
                std::span<const std::byte> data, uint32_t orig_len, uint32_t epb_flags);
// The same into a batch; with `reference`, the packet bytes are not copied
// but written from where they are (they must outlive the batch's write).
// Cost: two small stores into the batch's buffer.
void append_epb(Batch& out, uint32_t interface_id, uint64_t timestamp_ns,
                std::span<const std::byte> data, uint32_t orig_len, uint32_t epb_flags,
                bool reference, std::string_view comment = {});
// An Interface Statistics Block with every counter option.
void append_isb(ByteBuffer& out, uint32_t interface_id, const InterfaceStatistics& s);

}  // namespace sluice::collector::pcapng
