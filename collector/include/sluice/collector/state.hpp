// What the collector must remember about a stream to survive its own crash
// (SIGKILL, OOM kill, power loss with --sync) without losing or duplicating a
// packet: the next sequence to write, and the file and byte offset where the
// data written so far ends. docs/collector.md, "Crash safety", explains the
// order of operations that keeps it true.
//
// On disk: DIR/.sluice/stream-<id>.state, two 4 KiB slots written
// alternately with pwrite, each carrying a generation and a CRC-32C. A slot
// torn by a crash fails its CRC and the other slot, one commit older, is
// used: it is still true, because data beyond its offset is cut off again.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/lockfree/counter.hpp"
#include "sluice/session/keyring.hpp"

namespace sluice::collector {

struct InterfaceKey {
    uint16_t port = 0;
    uint16_t queue = 0;
    bool operator==(const InterfaceKey&) const = default;
};

// What a stream wrote and lost, declared once with what each means to the
// operator: the summary's names and the metrics' HELP
// (sluice_collector_stream_NAME_total). The state file stores them in this
// order (state.cpp).
#define SLUICE_STREAM_TOTALS(_)                                                            \
    _(frames_written,                                                                      \
      "Frames written to this stream's files (each acknowledged once "                     \
      "written).")                                                                         \
    _(packets_written, "Packets written to this stream's files.")                          \
    _(packet_bytes_written, "Captured bytes of the packets written.")                      \
    _(frames_duplicate,                                                                    \
      "Frames discarded as duplicates: their sequence was written before (a replay after " \
      "a reconnect). Harmless.")                                                           \
    _(frames_lost,                                                                         \
      "Frames that never came (gaps in the sequence): the sender dropped them, its "       \
      "retransmit buffer full with overflow policy drop.")                                 \
    _(packets_lost,                                                                        \
      "Packets LOST in frames that never came (from the frames' packet indexes): packets " \
      "offered = written + lost. The sender's retransmit buffer overflowed while this "    \
      "collector was away or slow; raise egress.retransmit_frames, or use backpressure.")  \
    _(gaps, "Gap events: each one range of sequences that never came (logged with the range).")

struct StreamTotals {
#define SLUICE_STREAM_TOTAL_FIELD(name, desc) uint64_t name = 0;
    SLUICE_STREAM_TOTALS(SLUICE_STREAM_TOTAL_FIELD)
#undef SLUICE_STREAM_TOTAL_FIELD
    static constexpr std::array info{SLUICE_STREAM_TOTALS(SLUICE_COUNTER_INFO)};
    std::array<uint64_t, info.size()> values() const {
#define SLUICE_STREAM_TOTAL_VALUE(name, desc) name,
        return {SLUICE_STREAM_TOTALS(SLUICE_STREAM_TOTAL_VALUE)};
#undef SLUICE_STREAM_TOTAL_VALUE
    }
    bool operator==(const StreamTotals&) const = default;
};

// Where a stream stood before a commit a collector group has yet to confirm
// (StreamState::pending): what undoing that commit restores.
struct CommitUndo {
    bool position_known = false;
    uint64_t session_id = 0;
    uint64_t next_sequence = 0;
    uint64_t next_packet_index = 0;
    uint64_t file_offset = 0;
    uint64_t source_position = 0;
    uint32_t interface_count = 0;
    StreamTotals totals;
    bool operator==(const CommitUndo&) const = default;
};

// Plain data, copied as a whole at every commit: no allocation.
struct StreamState {
    static constexpr std::size_t kMaxInterfaces = 800;  // per file; more: a new file
    static constexpr std::size_t kMaxFileName = 255;

    uint64_t stream_id = 0;
    uint64_t session_id = 0;  // 0: no sender seen yet
    // The session's secret, which its sender proves to resume it, and the
    // key that started it (a session of a key no longer allowed cannot be
    // resumed). No secret: the session cannot be resumed, only replaced.
    bool has_secret = false;
    session::SessionSecret secret{};
    session::KeyName key_name;
    bool position_known = false;
    uint64_t next_sequence = 0;
    uint64_t next_packet_index = 0;
    uint64_t file_index = 0;       // 0: no file yet
    uint64_t file_offset = 0;      // bytes of the file that hold committed data
    uint64_t file_created_ns = 0;  // wall clock, for --rotate-time across restarts
    bool zstd = false;
    std::array<char, kMaxFileName + 1> file_name{};  // NUL-terminated, in DIR
    uint32_t interface_count = 0;
    std::array<InterfaceKey, kMaxInterfaces> interfaces{};  // IDB order in the current file
    StreamTotals totals;
    // A collector group's stream (docs/scale-out.md): the JetStream position
    // up to which every message is written (0: none, or not a group's stream).
    uint64_t source_position = 0;
    // The last commit is written here but the group has not confirmed it yet
    // (its lease update was not seen to succeed): at restart the group's
    // records say whether it counts, else `undo` puts it back.
    bool pending = false;
    CommitUndo undo;

    std::string_view file() const { return file_name.data(); }
    void set_file(std::string_view name);
};

inline constexpr std::size_t kStateSlotSize = 4096;

// Encodes into / decodes from one slot. decode_slot: nullopt unless magic,
// version and CRC check out.
void encode_slot(const StreamState& s, uint64_t generation, std::byte* slot);
std::optional<StreamState> decode_slot(const std::byte* slot, uint64_t* generation);

class StateFile {
  public:
    // Opens (creating if missing) DIR/.sluice/stream-<id>.state. Throws
    // std::runtime_error with the path and the fix.
    StateFile(const std::string& path);
    ~StateFile();
    StateFile(StateFile&& o) noexcept;
    StateFile& operator=(StateFile&& o) noexcept;

    // The newest valid slot; nullopt for a new or unreadable file (`error`
    // says which when it is not just new).
    std::optional<StreamState> load(std::string* error);

    // Writes the next slot (one pwrite); with `sync`, fdatasync()s it. False
    // and errno on failure.
    bool save(const StreamState& s, bool sync);

    const std::string& path() const { return path_; }

  private:
    std::string path_;
    int fd_ = -1;
    uint64_t generation_ = 0;
};

}  // namespace sluice::collector
