// The pcapng blocks the collector writes (draft-ietf-opsawg-pcapng): a
// Section Header per file, an Interface Description per (stream, port, queue)
// with nanosecond timestamps (if_tsresol = 9), and an Enhanced Packet Block per
// packet keeping the original length. Little-endian, as the host writes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "sluice/collector/batch.hpp"
#include "sluice/session/byte_buffer.hpp"

namespace sluice::collector::pcapng {

inline constexpr uint32_t kSectionHeaderBlock = 0x0A0D0D0A;
inline constexpr uint32_t kInterfaceDescriptionBlock = 0x00000001;
inline constexpr uint32_t kEnhancedPacketBlock = 0x00000006;
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

constexpr std::size_t pad4(std::size_t n) {
    return (n + 3) & ~std::size_t{3};
}

// Bytes append_epb() adds for a packet of caplen bytes (the flags option
// adds 12 when given).
constexpr std::size_t epb_size(uint32_t caplen, bool with_flags) {
    return 32 + pad4(caplen) + (with_flags ? 12 : 0);
}

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
                bool reference);

}  // namespace sluice::collector::pcapng
