// The index of a data file while the collector writes it. The collector's
// stream calls it at four points (docs/query.md, "Crash safety"):
//
//   packet(), interface()  as each pcapng block goes into the batch: the
//                          packet's headers are parsed and its keys go into
//                          the batch's own filter (no allocation, no system
//                          call); in a plain file a block that fills up is
//                          sealed there, its record held back
//   commit()               after the batch is written and the state saved:
//                          the batch joins the open block, the sealed and
//                          full blocks' records are appended to the index
//   rollback()             when the batch is undone (a failed write): the
//                          open block was never touched by it
//   finish() / close()     at rotation / when the file is closed
//
// So the index never describes data the state does not count, and what it
// lacks after a crash (the open block, a torn record) is rebuilt from the
// data file by resume() when the file is opened again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/index/builder.hpp"
#include "sluice/index/format.hpp"
#include "sluice/index/keys.hpp"

namespace sluice::index {

class Writer {
  public:
    explicit Writer(const BuildSettings& s = {});
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    // A new data file whose section header ends at `data_start`: creates
    // its index (replacing a stale one). False (error()) when it cannot: the
    // file is then captured without an index.
    bool start(const std::string& data_path, Compression c, uint64_t data_start);

    // An existing data file whose committed data ends at `committed` (the
    // collector has cut it there): cuts the index to what the data holds and
    // indexes the data it does not cover. Returns what it did, for the log
    // ("error: " first for a failure; the file is then not indexed).
    std::vector<std::string> resume(const std::string& data_path, Compression c,
                                    uint64_t committed);

    // ---- the batch (per packet: a header parse and four filter insertions) ----
    // An Interface Description Block that ends `batch_end` bytes into the batch.
    void interface(std::span<const std::byte> idb, uint64_t batch_end);
    // An Enhanced Packet Block of `frame` that ends `batch_end` bytes into
    // the batch, which begins where the committed data ends.
    void packet(uint64_t ts_ns, std::span<const std::byte> frame, uint64_t batch_end) {
        if (active_) add_packet(ts_ns, frame, batch_end);
    }

    // The batch (`batch_bytes` of pcapng) is in the data file at [before,
    // after), its state saved. False (error()) when index records could not
    // be written: they are kept and retried at the next commit.
    bool commit(uint64_t before, uint64_t after, uint64_t batch_bytes);
    void rollback();

    // The data file is complete (rotation): writes the open block and the
    // Finish record and closes the index.
    bool finish();
    // Writes the open block and closes the index file; resume() of the same
    // file at the same offset continues without reading the index again.
    void close();
    // Forgets the file without writing (it is gone).
    void abandon();

    bool active() const { return active_; }
    const std::string& error() const { return error_; }
    const std::string& path() const { return index_path_; }

  private:
    struct PendingInterface {
        uint64_t batch_end;
        std::size_t offset, size;  // in pending_idb_
    };
    void add_packet(uint64_t ts_ns, std::span<const std::byte> frame, uint64_t batch_end);
    // A block of a plain file ends inside the batch, after its packet
    // ending at `batch_end`: its record waits for the commit in sealed_.
    void seal(uint64_t batch_end);
    void reset_file_state();
    void close_block(uint64_t end);
    bool flush();
    void stop(const std::string& why);

    BuildSettings set_;
    bool active_ = false;
    int fd_ = -1;
    std::string data_path_, index_path_, error_;
    Compression compression_ = Compression::None;
    uint64_t index_size_ = 0;           // bytes of the index file written
    std::vector<std::byte> unwritten_;  // records not yet in the file

    // The open block, committed data only: [block_start_, block_end_) of the
    // data file. The batch never touches it, so a rollback leaves it as is.
    BlockBuilder open_;
    uint64_t block_start_ = 0;
    uint64_t block_end_ = 0;  // the committed end: where the batch is written
    std::vector<std::pair<uint32_t, std::vector<std::byte>>> block_interfaces_;  // defined in it
    uint32_t interfaces_ = 0;  // committed interfaces of the file, the open block's included
    // For the Finish record.
    uint64_t packets_ = 0, blocks_ = 0, min_ts_ = UINT64_MAX, max_ts_ = 0;

    // The batch: its packets since the start or the last seal, the blocks
    // sealed in it, and its interfaces.
    BlockBuilder batch_;
    BlockBuilder seal_scratch_;
    uint64_t batch_done_ = 0;        // batch bytes accounted for
    bool open_sealed_ = false;       // a seal in this batch took the open block
    uint64_t seal_start_ = 0;        // where the next sealed block begins
    std::vector<std::byte> sealed_;  // their Interface and Block records
    uint64_t sealed_blocks_ = 0;
    uint64_t batch_packets_ = 0, batch_min_ = UINT64_MAX, batch_max_ = 0;
    std::vector<PendingInterface> pending_interfaces_;
    std::vector<std::byte> pending_idb_;
    std::size_t interfaces_sealed_ = 0;  // of pending_interfaces_, given to sealed blocks

    // After close(): what resume() needs to continue without reading.
    bool closed_known_ = false;
};

}  // namespace sluice::index
