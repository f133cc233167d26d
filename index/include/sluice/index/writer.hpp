// The index of a data file while the collector writes it. The collector's
// stream calls it at four points (docs/query.md, "Crash safety"):
//
//   packet(), interface()  as each pcapng block goes into the batch: the
//                          packet's headers are parsed and its keys kept
//                          with the batch (no allocation, no system call)
//   commit()               after the batch is written and the state saved:
//                          the batch's packets join the open block; blocks
//                          that are full are appended to the index file
//   rollback()             when the batch is undone (a failed write)
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

    // ---- the batch (per packet: cheap, no allocation after reserve()) ----
    // Room for `packets` more pending packets: once per frame.
    void reserve(std::size_t packets) {
        if (active_ && pending_.capacity() < pending_.size() + packets)
            pending_.reserve(std::max(pending_.size() + packets, 2 * pending_.capacity()));
    }
    // An Interface Description Block that ends `batch_end` bytes into the batch.
    void interface(std::span<const std::byte> idb, uint64_t batch_end);
    // An Enhanced Packet Block of `frame` that ends `batch_end` bytes into the batch.
    void packet(uint64_t ts_ns, std::span<const std::byte> frame, uint64_t batch_end) {
        if (!active_) return;
        Pending& p = pending_.emplace_back();
        p.ts_ns = ts_ns;
        p.batch_end = batch_end;
        const PacketKeys k = parse_packet(frame);
        p.keys = static_cast<uint8_t>(packet_key_hashes(k, p.key));
        p.protos = k.protos;
        p.proto_count = k.proto_count;
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
    struct Pending {
        uint64_t ts_ns;
        uint64_t batch_end;
        std::array<uint64_t, kMaxPacketKeys> key;
        uint8_t keys;
        uint8_t proto_count;
        std::array<uint8_t, 3> protos;
    };
    struct PendingInterface {
        uint64_t batch_end;
        std::size_t offset, size;  // in pending_idb_
    };
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

    // The open block: [block_start_, covered so far) of the data file.
    BlockBuilder block_;
    uint64_t block_start_ = 0;
    uint64_t block_end_ = 0;  // data committed into the open block
    std::vector<std::pair<uint32_t, std::vector<std::byte>>> block_interfaces_;  // defined in it
    uint32_t interfaces_ = 0;  // interfaces of the file, the open block's included
    // For the Finish record.
    uint64_t packets_ = 0, blocks_ = 0, min_ts_ = UINT64_MAX, max_ts_ = 0;

    std::vector<Pending> pending_;
    std::vector<PendingInterface> pending_interfaces_;
    std::vector<std::byte> pending_idb_;

    // After close(): what resume() needs to continue without reading.
    bool closed_known_ = false;
};

}  // namespace sluice::index
