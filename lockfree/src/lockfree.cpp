// Control-path helpers shared by the rings: capacity rounding and the checks that let a ring be
// built in, or attached to, caller-supplied memory.
#include <bit>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "sluice/lockfree/detail/lap_slot.hpp"

namespace sluice::lockfree::detail {

namespace {
constexpr std::size_t kMaxCapacity = std::size_t{1} << 31;
}

std::size_t round_capacity(std::size_t requested, const char* ring_kind) {
    if (requested == 0) {
        throw std::invalid_argument(std::string(ring_kind) +
                                    ": capacity 0 requested; ask for at least 1 element");
    }
    if (requested > kMaxCapacity) {
        throw std::invalid_argument(std::string(ring_kind) + ": capacity " +
                                    std::to_string(requested) + " is above the limit of " +
                                    std::to_string(kMaxCapacity) + " elements");
    }
    return std::bit_ceil(requested);
}

void check_region(const void* region, std::size_t bytes, std::size_t need, std::size_t alignment,
                  const char* ring_kind) {
    const std::string kind(ring_kind);
    if (region == nullptr) throw std::invalid_argument(kind + ": region is null");
    if (reinterpret_cast<std::uintptr_t>(region) % alignment != 0) {
        throw std::invalid_argument(kind + ": region at " +
                                    std::to_string(reinterpret_cast<std::uintptr_t>(region)) +
                                    " is not aligned to " + std::to_string(alignment) +
                                    " bytes; allocate it with that alignment");
    }
    if (bytes < need) {
        throw std::invalid_argument(kind + ": region of " + std::to_string(bytes) +
                                    " bytes is too small, this ring needs " + std::to_string(need) +
                                    " (use bytes_for(capacity))");
    }
}

void check_header(const RingHeader& h, std::uint64_t magic, std::uint32_t layout_version,
                  std::uint32_t slot_size, std::uint64_t element_size, std::size_t bytes,
                  std::size_t (*bytes_for)(std::size_t), const char* ring_kind) {
    const std::string kind(ring_kind);
    if (h.magic != magic) {
        throw std::invalid_argument(kind + ": region does not hold a " + kind +
                                    " (create it with create_in() before attaching)");
    }
    if (h.layout_version != layout_version) {
        throw std::invalid_argument(kind + ": region holds layout version " +
                                    std::to_string(h.layout_version) + ", this build expects " +
                                    std::to_string(layout_version) +
                                    "; both processes must run the same sluice build");
    }
    if (h.element_size != element_size || h.slot_size != slot_size) {
        throw std::invalid_argument(kind + ": region holds elements of " +
                                    std::to_string(h.element_size) +
                                    " bytes, this handle expects " + std::to_string(element_size) +
                                    "; attach with the element type the ring was created with");
    }
    if (h.capacity == 0 || !std::has_single_bit(h.capacity) || h.capacity > kMaxCapacity) {
        throw std::invalid_argument(kind + ": region header is corrupt (capacity " +
                                    std::to_string(h.capacity) + ")");
    }
    const std::size_t need = bytes_for(h.capacity);
    if (bytes < need) {
        throw std::invalid_argument(kind + ": region of " + std::to_string(bytes) +
                                    " bytes is smaller than the ring it holds (" +
                                    std::to_string(need) + " bytes)");
    }
}

}  // namespace sluice::lockfree::detail
