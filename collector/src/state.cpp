#include "sluice/collector/state.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "sluice/simd/crc32c.hpp"
#include "sluice/wire/le.hpp"

namespace sluice::collector {
namespace {

using wire::load_le;
using wire::store_le;

constexpr uint32_t kStateMagic = 0x53434c53;  // "SLCS"
constexpr uint16_t kStateVersion = 1;
constexpr std::size_t kInterfacesAt = 512;
constexpr std::size_t kCrcAt = kStateSlotSize - 4;
static_assert(kInterfacesAt + StreamState::kMaxInterfaces * 4 <= kCrcAt);
static_assert(160 + StreamState::kMaxFileName + 1 <= 416);
static_assert(449 + session::kMaxKeyName <= kInterfacesAt);

namespace off {
constexpr std::size_t magic = 0, version = 4, flags = 6, generation = 8, stream_id = 16,
                      session_id = 24, next_sequence = 32, next_packet_index = 40, file_index = 48,
                      file_offset = 56, file_created_ns = 64, interface_count = 72, name_len = 76,
                      totals = 80,       // 7 x u64
    name = 160,                          // up to 256 bytes
    secret = 416,                        // 32 bytes, with flag::secret
    key_name_len = 448, key_name = 449;  // up to kMaxKeyName bytes
}
// A collector group's fields, after the interface table.
namespace group {
constexpr std::size_t source_position = 3712, undo_session_id = 3720, undo_next_sequence = 3728,
                      undo_next_packet_index = 3736, undo_file_offset = 3744,
                      undo_source_position = 3752, undo_interface_count = 3760,
                      undo_totals = 3768;  // 7 x u64, to 3824
}
namespace flag {
constexpr uint16_t position_known = 1, zstd = 2, secret = 4, pending = 8, undo_position_known = 16;
}
static_assert(kInterfacesAt + StreamState::kMaxInterfaces * 4 <= group::source_position);
static_assert(group::undo_totals + 7 * 8 <= kCrcAt);

void store_totals(std::byte* p, const StreamTotals& s) {
    const uint64_t t[7] = {s.frames_written,
                           s.packets_written,
                           s.packet_bytes_written,
                           s.frames_duplicate,
                           s.frames_lost,
                           s.packets_lost,
                           s.gaps};
    for (int i = 0; i < 7; ++i)
        store_le<uint64_t>(p + 8 * i, t[i]);
}

StreamTotals load_totals(const std::byte* p) {
    uint64_t t[7];
    for (int i = 0; i < 7; ++i)
        t[i] = load_le<uint64_t>(p + 8 * i);
    return {t[0], t[1], t[2], t[3], t[4], t[5], t[6]};
}

}  // namespace

void StreamState::set_file(std::string_view name) {
    const std::size_t n = std::min(name.size(), kMaxFileName);
    std::memcpy(file_name.data(), name.data(), n);
    file_name[n] = '\0';
}

void encode_slot(const StreamState& s, uint64_t generation, std::byte* p) {
    std::memset(p, 0, kStateSlotSize);
    store_le<uint32_t>(p + off::magic, kStateMagic);
    store_le<uint16_t>(p + off::version, kStateVersion);
    store_le<uint16_t>(
        p + off::flags,
        static_cast<uint16_t>((s.position_known ? flag::position_known : 0) |
                              (s.zstd ? flag::zstd : 0) | (s.has_secret ? flag::secret : 0) |
                              (s.pending ? flag::pending : 0) |
                              (s.undo.position_known ? flag::undo_position_known : 0)));
    store_le<uint64_t>(p + off::generation, generation);
    store_le<uint64_t>(p + off::stream_id, s.stream_id);
    store_le<uint64_t>(p + off::session_id, s.session_id);
    store_le<uint64_t>(p + off::next_sequence, s.next_sequence);
    store_le<uint64_t>(p + off::next_packet_index, s.next_packet_index);
    store_le<uint64_t>(p + off::file_index, s.file_index);
    store_le<uint64_t>(p + off::file_offset, s.file_offset);
    store_le<uint64_t>(p + off::file_created_ns, s.file_created_ns);
    const uint32_t nif = std::min<uint32_t>(s.interface_count, StreamState::kMaxInterfaces);
    store_le<uint32_t>(p + off::interface_count, nif);
    const std::string_view name = s.file();
    store_le<uint32_t>(p + off::name_len, static_cast<uint32_t>(name.size()));
    store_totals(p + off::totals, s.totals);
    store_le<uint64_t>(p + group::source_position, s.source_position);
    store_le<uint64_t>(p + group::undo_session_id, s.undo.session_id);
    store_le<uint64_t>(p + group::undo_next_sequence, s.undo.next_sequence);
    store_le<uint64_t>(p + group::undo_next_packet_index, s.undo.next_packet_index);
    store_le<uint64_t>(p + group::undo_file_offset, s.undo.file_offset);
    store_le<uint64_t>(p + group::undo_source_position, s.undo.source_position);
    store_le<uint32_t>(p + group::undo_interface_count, s.undo.interface_count);
    store_totals(p + group::undo_totals, s.undo.totals);
    std::memcpy(p + off::name, name.data(), name.size());
    if (s.has_secret) {
        std::memcpy(p + off::secret, s.secret.data(), s.secret.size());
        const std::string_view key = s.key_name.view();
        p[off::key_name_len] = static_cast<std::byte>(key.size());
        std::memcpy(p + off::key_name, key.data(), key.size());
    }
    for (uint32_t i = 0; i < nif; ++i) {
        store_le<uint16_t>(p + kInterfacesAt + 4 * i, s.interfaces[i].port);
        store_le<uint16_t>(p + kInterfacesAt + 4 * i + 2, s.interfaces[i].queue);
    }
    store_le<uint32_t>(p + kCrcAt, simd::crc32c(p, kCrcAt));
}

std::optional<StreamState> decode_slot(const std::byte* p, uint64_t* generation) {
    if (load_le<uint32_t>(p + off::magic) != kStateMagic) return std::nullopt;
    if (load_le<uint16_t>(p + off::version) != kStateVersion) return std::nullopt;
    if (load_le<uint32_t>(p + kCrcAt) != simd::crc32c(p, kCrcAt)) return std::nullopt;
    StreamState s;
    const uint16_t flags = load_le<uint16_t>(p + off::flags);
    s.position_known = flags & flag::position_known;
    s.zstd = flags & flag::zstd;
    s.has_secret = flags & flag::secret;
    if (generation) *generation = load_le<uint64_t>(p + off::generation);
    s.stream_id = load_le<uint64_t>(p + off::stream_id);
    s.session_id = load_le<uint64_t>(p + off::session_id);
    s.next_sequence = load_le<uint64_t>(p + off::next_sequence);
    s.next_packet_index = load_le<uint64_t>(p + off::next_packet_index);
    s.file_index = load_le<uint64_t>(p + off::file_index);
    s.file_offset = load_le<uint64_t>(p + off::file_offset);
    s.file_created_ns = load_le<uint64_t>(p + off::file_created_ns);
    s.interface_count = load_le<uint32_t>(p + off::interface_count);
    const uint32_t name_len = load_le<uint32_t>(p + off::name_len);
    if (s.interface_count > StreamState::kMaxInterfaces || name_len > StreamState::kMaxFileName)
        return std::nullopt;
    s.totals = load_totals(p + off::totals);
    s.source_position = load_le<uint64_t>(p + group::source_position);
    s.pending = flags & flag::pending;
    s.undo.position_known = flags & flag::undo_position_known;
    s.undo.session_id = load_le<uint64_t>(p + group::undo_session_id);
    s.undo.next_sequence = load_le<uint64_t>(p + group::undo_next_sequence);
    s.undo.next_packet_index = load_le<uint64_t>(p + group::undo_next_packet_index);
    s.undo.file_offset = load_le<uint64_t>(p + group::undo_file_offset);
    s.undo.source_position = load_le<uint64_t>(p + group::undo_source_position);
    s.undo.interface_count = load_le<uint32_t>(p + group::undo_interface_count);
    s.undo.totals = load_totals(p + group::undo_totals);
    if (s.undo.interface_count > s.interface_count) return std::nullopt;
    s.set_file({reinterpret_cast<const char*>(p + off::name), name_len});
    if (s.has_secret) {
        const auto key_len = static_cast<std::size_t>(p[off::key_name_len]);
        if (key_len > session::kMaxKeyName) return std::nullopt;
        std::memcpy(s.secret.data(), p + off::secret, s.secret.size());
        s.key_name.set({reinterpret_cast<const char*>(p + off::key_name), key_len});
    }
    for (uint32_t i = 0; i < s.interface_count; ++i) {
        s.interfaces[i].port = load_le<uint16_t>(p + kInterfacesAt + 4 * i);
        s.interfaces[i].queue = load_le<uint16_t>(p + kInterfacesAt + 4 * i + 2);
    }
    return s;
}

StateFile::StateFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
        throw std::runtime_error(
            fmt::format("cannot open state file {}: {}; check that the output "
                        "directory is writable",
                        path, std::strerror(errno)));
    }
}

StateFile::~StateFile() {
    if (fd_ >= 0) ::close(fd_);
}

StateFile::StateFile(StateFile&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), generation_(o.generation_) {
    o.fd_ = -1;
}

StateFile& StateFile::operator=(StateFile&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(o.path_);
        fd_ = o.fd_;
        generation_ = o.generation_;
        o.fd_ = -1;
    }
    return *this;
}

std::optional<StreamState> StateFile::load(std::string* error) {
    alignas(64) std::byte buf[2 * kStateSlotSize];
    const ssize_t n = ::pread(fd_, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;  // new
    std::optional<StreamState> best;
    uint64_t best_gen = 0;
    for (int slot = 0; slot < 2; ++slot) {
        if (static_cast<std::size_t>(n) < (slot + 1) * kStateSlotSize) break;
        uint64_t gen = 0;
        auto s = decode_slot(buf + slot * kStateSlotSize, &gen);
        if (s && (!best || gen > best_gen)) {
            best = s;
            best_gen = gen;
        }
    }
    if (!best) {
        if (error)
            *error = fmt::format(
                "state file {} has no valid slot (corrupt or from another "
                "program): move it away to start this stream afresh",
                path_);
        return std::nullopt;
    }
    generation_ = best_gen;
    return best;
}

bool StateFile::save(const StreamState& s, bool sync) {
    alignas(64) std::byte slot[kStateSlotSize];
    const uint64_t gen = generation_ + 1;
    encode_slot(s, gen, slot);
    const off_t at = static_cast<off_t>((gen % 2) * kStateSlotSize);
    if (::pwrite(fd_, slot, sizeof slot, at) != static_cast<ssize_t>(sizeof slot)) {
        if (errno == 0) errno = EIO;
        return false;
    }
    if (sync && ::fdatasync(fd_) != 0) return false;
    generation_ = gen;
    return true;
}

}  // namespace sluice::collector
