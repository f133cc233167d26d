// One frame stream at the collector: where its sequence stands, which file
// it writes, and the order of operations that makes a crash lose or repeat
// nothing (docs/collector.md, "Crash safety"):
//
//   add() frames      -> pcapng blocks in a batch buffer, in memory
//   commit()          -> append the batch to the file (one zstd frame when
//                        compressing), [fdatasync], then save the state
//                        (next sequence, file, offset) -> only then ACK
//   after a crash     -> recover(): cut the file back to the saved offset;
//                        the sender replays from the saved sequence
//
// Each file has an index beside it (NAME.idx, docs/query.md) kept in step
// by an index::Writer: add() hands it each packet and interface block as
// they enter the batch, commit() the batch's place in the file once the
// state is saved, a failed commit rolls it back with the batch, rotation
// finishes it, recover() cuts it to the file and indexes what it lacks.
//
// A file is written as NAME.part (its index NAME.part.idx) and renamed to
// NAME when finished: at rotation, when its --rotate-time period ends,
// when the stream is closed without a sender, when the collector stops, and
// at the next start after a crash. The state names the file by NAME;
// "finished" is saved (no current file) before the rename, so a crash in
// between leaves a NAME.part that recovery finishes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/collector/batch.hpp"
#include "sluice/collector/interface_index.hpp"
#include "sluice/collector/output.hpp"
#include "sluice/collector/pcapng.hpp"
#include "sluice/collector/state.hpp"
#include "sluice/index/file_name.hpp"
#include "sluice/index/writer.hpp"
#include "sluice/session/byte_buffer.hpp"
#include "sluice/session/hello.hpp"
#include "sluice/wire/reader.hpp"

namespace sluice::collector {

struct Peer;  // the connection writing a stream (handler.hpp)

// What the collector does as a stream's files come and go (files.hpp:
// FileStore keeps them within the retention limits and runs --on-rotate).
// Paths are below the output directory.
class FileEvents {
  public:
    virtual ~FileEvents() = default;
    // The files of `stream` found in the directory at start.
    virtual std::vector<index::FoundFile> files_of(uint64_t stream) = 0;
    virtual void created(uint64_t stream, const std::string& part_path) = 0;
    virtual void finished(uint64_t stream, const std::string& path) = 0;
    virtual void removed(const std::string& path) = 0;
};

struct StreamSettings {
    std::string dir;  // the output directory
    Compression compression = Compression::None;
    uint64_t rotate_bytes = 0;  // 0: no size rotation
    // 0: no time rotation; else a file ends at the next multiple of this
    // since the epoch (300 s: at :00, :05, ... of each hour, UTC).
    uint64_t rotate_ns = 0;
    index::FileTemplate names;    // --file-template
    FileEvents* files = nullptr;  // null: the stream finds its files itself
    bool sync = false;            // fdatasync data and state before each ACK, and the
                                  // directory after a file appears in it or is renamed
    bool index = true;            // write NAME.idx beside each file (docs/query.md)
    std::string application;      // shb_userappl
    unsigned file_mode = 0640;    // of every capture file (--file-mode)
};

// Buffers shared by all streams of one collector thread: a stream's batch
// is committed before another stream uses them.
struct Workspace {
    Batch batch;            // pcapng blocks not yet written
    ByteBuffer flat;        // the batch in one piece, for the compressor
    ByteBuffer compressed;  // the batch as a zstd frame
    ZstdCompressor* zstd = nullptr;
};

enum class FrameOutcome : uint8_t {
    Written,       // in the batch (the next commit writes it)
    Duplicate,     // its sequence was written before: discarded
    Gap,           // written, after frames that never came (counted lost)
    StorageError,  // could not open, rotate or write: drop the connection, no ACK
    // Refused, nothing of it kept: the frame names more (port, queue)
    // interfaces than a pcapng file may hold (StreamState::kMaxInterfaces).
    TooManyInterfaces,
    // A group's stream (set_group_commits): nothing of the frame kept; the
    // file must rotate first, and what came before must be committed (and
    // confirmed) before: commit, then add the frame again.
    CommitFirst,
};

struct HelloVerdict {
    uint64_t resume_sequence = 0;
    bool new_session = false;
    bool had_session = false;  // a previous session of this stream existed
    uint64_t previous_session = 0;
    uint64_t previous_next_sequence = 0;
};

// A stream that is not open (closed after an idle period or to make room,
// or recovered at start and not written since): what the summary and a
// resume need, in a few hundred bytes. Its state stays on disk; a sender's
// hello opens it again.
struct StreamRecord {
    uint64_t id = 0;
    StreamTotals run;       // this process's share
    StreamTotals all_runs;  // as saved
    uint64_t files_opened = 0;
    uint64_t next_sequence = 0;
    uint64_t session_id = 0;
    bool has_secret = false;
    session::SessionSecret secret{};
    session::KeyName key_name;
    std::string file;  // the current file's path, or empty
    bool connected = false;
    bool pending = false;  // a group's commit not yet confirmed (Stream::pending)

    std::optional<session::ResumeTicket> resume_ticket(uint64_t session) const;
};

class Stream {
  public:
    Stream(uint64_t id, const StreamSettings& settings, Workspace& ws);

    // Loads the state file (if any), cuts the current file back to its saved
    // offset and deletes files a rotation had begun but not recorded. Throws
    // std::runtime_error when the state cannot be trusted. Returns log lines.
    std::vector<std::string> recover();

    // A sender authenticated for this stream: where should it resume?
    // Persists a new session before answering. nullopt: state write failed.
    // A hello with `resume` continues the session it names when that is
    // this stream's session (the listener proved its secret: resume_ticket);
    // any other hello starts a new session and keeps its secret.
    std::optional<HelloVerdict> on_hello(const session::Hello& h);
    // What a sender must prove to resume `session_id`; nullopt when that is
    // not this stream's current session or it has no secret.
    std::optional<session::ResumeTicket> resume_ticket(uint64_t session_id) const;

    // The stream's record, and carrying a previous opening's share of this
    // process's totals over into this one.
    StreamRecord record() const;
    void carry_over(const StreamRecord& r);

    // Adds a verified frame to the batch (see FrameOutcome).
    FrameOutcome add(const wire::FrameView& frame);

    // Writes the batch and saves the state; false (errno, last_error())
    // when either fails, in which case nothing of the batch counts and the
    // file is back where the last commit left it.
    bool commit();
    bool dirty() const { return !ws_.batch.empty(); }

    // ---- a collector group's stream (docs/scale-out.md) -------------------------
    // Commits become true only when the group confirms them (its lease
    // update): commit() saves the state marked pending, with what undoing it
    // restores; then exactly one of confirm_commit() or undo_commit() follows.
    void set_group_commits(bool on) { group_ = on; }
    // The JetStream position the batch reaches (saved with the next commit).
    void set_source_position(uint64_t p) { st_.source_position = p; }
    // Anything added since the last commit: frames, a moved position, counts.
    bool uncommitted() const;
    bool pending() const { return saved_.pending; }
    // Where the working position stands (what the next frame should carry).
    uint64_t next_expected() const { return st_.next_sequence; }
    bool position_known() const { return st_.position_known; }
    // The group confirmed the pending commit. False (errno, last_error())
    // if the state could not be saved; the commit counts anyway (a restart
    // asks the group again).
    bool confirm_commit();
    // The group did not take it: the file is cut back, the state restored,
    // the file closed. False (last_error()) when that failed; the stream must
    // not be written then.
    bool undo_commit();
    // Drops what was added since the last commit (frames, position, counts):
    // their bytes are about to go.
    void discard_uncommitted();

    // Time-based rotation, from the collector's timer: a file whose period
    // ended is finished (committed first); the next one begins with the next
    // frame. False (last_error()) when the stream cannot be written.
    bool maybe_rotate_by_time(uint64_t wall_ns);
    // Finishes the current file (stop, or a disconnected stream's period
    // ended): the index gets its Finish record, the state no current file,
    // and NAME.part becomes NAME.
    bool finish_file();

    // The sequence every frame below which is written and saved: the ACK.
    uint64_t acknowledged() const { return saved_.position_known ? saved_.next_sequence : 0; }
    void close_file();

    uint64_t id() const { return id_; }
    const StreamState& saved() const { return saved_; }
    const StreamTotals& run() const { return run_; }  // this process's share of the totals
    uint64_t files_opened() const { return files_opened_; }
    const std::string& last_error() const { return last_error_; }
    // Frames and packets lost in the last add() that returned Gap.
    uint64_t last_gap_frames() const { return last_gap_frames_; }
    uint64_t last_gap_packets() const { return last_gap_packets_; }
    // The file being written (DIR/NAME.part); empty when there is none.
    std::string current_path() const;

    // The connection writing this stream now, if any (the collector's
    // handler keeps it; at most one at a time).
    Peer* connection = nullptr;
    // When the last connection went (monotonic ns): for --stream-idle-timeout.
    uint64_t idle_since_ns = 0;

  private:
    bool ensure_file();
    bool open_new_file();
    bool make_directories(const std::string& name);
    bool rotate();
    bool finish_current(std::vector<std::string>* log);
    // NAME.part (and its index) to NAME, once the state no longer names it.
    void publish(const std::string& name, std::vector<std::string>* log);
    void recover_current(std::vector<std::string>& log);
    bool write_state();
    bool fail_storage(const std::string& what);
    // The frame's interfaces not in the current file yet; nullopt when the
    // frame alone names more than StreamState::kMaxInterfaces.
    std::optional<std::size_t> new_interfaces(const wire::FrameView& frame);
    // The pcapng interface id of (port, queue), writing its IDB into the
    // batch when new; UINT32_MAX when the file's table is full.
    uint32_t interface_id(uint16_t port, uint16_t queue);
    // A statistics frame (wire flag::kStatistics): remembers each interface's
    // description and counters; the stream's last (flag::kEndOfStream) writes
    // Interface Statistics Blocks for those that saw traffic or drops.
    FrameOutcome add_statistics(const wire::FrameView& frame, FrameOutcome outcome);
    // Interface Statistics Blocks with the latest counters of the current
    // file's interfaces (before a rotation closes it).
    void append_file_statistics();
    // Before a rotation in a collector group: true when those blocks, or
    // anything else, wait for a commit the group has yet to confirm (the
    // caller answers CommitFirst).
    bool rotation_waits();
    // The sender's description of (port, queue), or empty.
    std::string_view description_of(InterfaceKey k) const;
    void reindex_interfaces();  // after st_'s interface table was replaced or reset
    void mark_pending();        // a group's commit: saved pending, with its undo
    // The index of the current file: started with a new file, resumed when
    // an existing one is opened (a restart, a reconnect), finished at rotation.
    void start_index();
    void resume_index(const std::string& path, std::vector<std::string>* log);
    void index_committed(uint64_t before, uint64_t batch_bytes);
    std::vector<index::FoundFile> own_files(std::vector<std::string>& log) const;
    std::string file_path(std::string_view name) const;

    uint64_t id_;
    const StreamSettings& set_;
    Workspace& ws_;
    std::optional<StateFile> state_file_;
    OutputFile out_;
    StreamState st_;     // working: includes what the batch adds
    StreamState saved_;  // as on disk
    StreamTotals run_;
    uint64_t files_opened_ = 0;
    uint64_t packets_in_file_ = 0;  // since the file was opened by this process
    std::string last_error_;
    uint64_t last_gap_frames_ = 0, last_gap_packets_ = 0;
    // The last (port, queue) seen and its interface id: capture streams
    // mostly come from one queue, so one compare usually finds it.
    InterfaceKey last_key_{};
    uint32_t last_id_ = UINT32_MAX;
    InterfaceIndex file_ifs_;   // st_.interfaces[0, interface_count) by key
    InterfaceIndex frame_ifs_;  // scratch: the distinct interfaces of one frame
    // What the sender's statistics frames said of each interface: its
    // description (for interface blocks) and its latest counters (for
    // statistics blocks). In memory only: the sender repeats them. Bounded
    // by StreamState::kMaxInterfaces, like everything keyed by the wire.
    struct KnownInterface {
        InterfaceKey key;
        std::string description;
        bool counted = false;  // `latest` holds counters
        pcapng::InterfaceStatistics latest;
    };
    std::vector<KnownInterface> known_;
    InterfaceIndex known_ifs_;  // known_ by key
    std::string comment_;       // scratch: a packet's pcapng comment
    // The current file ends with statistics blocks of the latest counters
    // (nothing came since): a rotation adds none.
    bool file_statistics_current_ = false;
    index::Writer index_;
    bool index_failing_ = false;  // the last index write failed (logged once)
    bool group_ = false;          // set_group_commits()
};

// "stream-<id>-<index:06>-<UTC>.pcapng[.zst]" (the default template) and
// its parser: index, or nullopt for a name that is not one of this stream's
// data files, finished or being written (NAME.part; its index files
// NAME.idx are not).
std::string output_file_name(uint64_t stream_id, uint64_t index, uint64_t wall_ns, Compression c);
std::optional<uint64_t> parse_output_file_index(std::string_view name, uint64_t stream_id);

// When a file created at `created_ns` ends under --rotate-time: the next
// multiple of `period_ns` since the epoch after it.
uint64_t rotation_due(uint64_t created_ns, uint64_t period_ns);

}  // namespace sluice::collector
