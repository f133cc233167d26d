// libFuzzer target: the RDMA transport's private data and queue-pair
// messages (rdma/protocol.hpp) on arbitrary bytes, as a hostile peer could
// send them.
//
// Input: one selector byte (which structure: request, accept, reject,
// message), then the bytes. Beyond "no crash, no out-of-bounds read" (ASan +
// UBSan), everything a decoder accepts must be canonical: encoding the
// decoded value gives back the input's bytes (the rest being zero padding),
// so two peers can never read one message two ways. A violation traps.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "sluice/rdma/protocol.hpp"

namespace {

using namespace sluice::rdma;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

template <std::size_t N>
void same_prefix(const std::array<std::byte, N>& enc, std::span<const std::byte> in) {
    check(in.size() >= N && std::memcmp(enc.data(), in.data(), N) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
    switch (data[0] % 4) {
        case 0: {
            ConnectRequest r;
            if (decode(in, r) == DecodeStatus::Ok) {
                check(r.session_id != 0);
                same_prefix(encode(r), in);
            }
            break;
        }
        case 1: {
            ConnectAccept a;
            if (decode(in, a) == DecodeStatus::Ok) {
                check(a.slot_count >= 1 && a.slot_count <= kMaxSlots);
                check(a.slot_bytes >= kMinSlotBytes && a.slot_bytes % 8 == 0);
                same_prefix(encode(a), in);
            }
            break;
        }
        case 2: {
            ConnectReject r;
            if (decode(in, r) == DecodeStatus::Ok) {
                check(r.text.size() <= kMaxRejectText);
                // The text points into the input, within it.
                check(reinterpret_cast<const std::byte*>(r.text.data()) >= in.data() &&
                      reinterpret_cast<const std::byte*>(r.text.data()) + r.text.size() <=
                          in.data() + in.size());
            }
            break;
        }
        case 3: {
            Message m;
            if (decode(in, m) == DecodeStatus::Ok) {
                const MessageBytes b = encode(m);
                same_prefix(b, in);
            }
            break;
        }
    }
    return 0;
}
