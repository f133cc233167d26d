// A query over capture directories: the packets of every file that pass a
// tcpdump filter and lie in a time range, merged in time order across files
// and streams, reading only the blocks the index says can hold such packets
// (docs/query.md).
//
// Order: by timestamp; equal timestamps by stream, then directory (in the
// order given), then file, then position in the file. Files are opened in
// that order as the merge reaches their earliest packet, so memory holds the
// indexes of the files being merged and the blocks whose packets are due,
// not the whole query.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice/index/builder.hpp"
#include "sluice/index/pcapng.hpp"
#include "sluice/index/predicate.hpp"

namespace sluice::index {

struct QuerySpec {
    std::vector<std::string> dirs;
    std::vector<uint64_t> streams;  // empty: every stream
    uint64_t from_ns = 0;           // packets with from_ns <= t < to_ns
    uint64_t to_ns = UINT64_MAX;
    std::string filter;  // tcpdump syntax; empty: every packet
    // The filter also matches a packet by its innermost packet (tunnels and
    // tags peeled as tunnel::decapsulate does, an inner IP packet behind an
    // Ethernet header of the MACs it travelled under).
    bool inner = false;
    BuildSettings build;  // for data no index covers, indexed in memory
};

struct QueryStats {
    uint64_t files = 0;
    uint64_t files_outside_time = 0;  // skipped on their index's Finish record alone
    uint64_t files_without_index = 0;
    uint64_t blocks = 0;          // of the files opened
    uint64_t blocks_in_time = 0;  // of those, overlapping the time range
    uint64_t blocks_read = 0;     // of those, candidates by the filter: read
    uint64_t blocks_matched = 0;  // of those, holding a packet that passed
    uint64_t data_bytes = 0;      // the files' sizes
    uint64_t bytes_read = 0;      // data read for the query (compressed, for .zst)
    uint64_t index_bytes_read = 0;
    uint64_t unindexed_bytes = 0;  // data no index covered (read once more to index it)
    uint64_t packets_examined = 0, packets_matched = 0;
};

// One packet of the result.
struct QueryPacket {
    uint32_t source = 0;  // the file, in query order
    uint32_t interface_id = 0;
    const pcapng::Interface* interface = nullptr;
    uint64_t ts_ns = 0;
    std::span<const std::byte> epb;  // the Enhanced Packet Block as in the file
    std::span<const std::byte> data;
    uint32_t orig_len = 0;
};

class QuerySink {
  public:
    virtual ~QuerySink() = default;
    virtual bool packet(const QueryPacket& p) = 0;  // false: stop the query
};

class Query {
  public:
    // Compiles the filter. nullopt and `error` naming the problem for a
    // filter libpcap rejects.
    static std::optional<Query> make(QuerySpec spec, std::string* error);
    Query(Query&&) noexcept;
    ~Query();

    const Predicate& predicate() const { return predicate_; }
    // Runs the query into `sink`. False and `error` when a directory cannot
    // be read or the sink fails; problems with single files (damaged data)
    // become `warnings` and the query goes on.
    bool run(QuerySink& sink, QueryStats& stats, std::vector<std::string>& warnings,
             std::string* error);

  private:
    struct Filters;
    Query(QuerySpec spec, std::unique_ptr<Filters> f, Predicate p);
    QuerySpec spec_;
    std::unique_ptr<Filters> filters_;
    Predicate predicate_;
};

// A data file of a capture directory named by the default template
// (file_name.hpp): stream-<id>-<n>-<time>.pcapng[.zst][.part].
struct DataFileName {
    uint64_t stream = 0, index = 0;
};
std::optional<DataFileName> parse_data_file_name(std::string_view name);

// Where a PcapngSink's bytes go: a file (sluice-query) or an HTTP response
// (the collector's GET /query).
class ByteOutput {
  public:
    virtual ~ByteOutput() = default;
    virtual bool write(std::span<const std::byte> bytes) = 0;  // false: stop
};

class FileOutput final : public ByteOutput {
  public:
    explicit FileOutput(std::FILE* f) : f_(f) {}
    bool write(std::span<const std::byte> b) override {
        return std::fwrite(b.data(), 1, b.size(), f_) == b.size();
    }

  private:
    std::FILE* f_;
};

// Writes the packets as one pcapng section: a section header, each distinct
// interface (its block as in the file) before its first packet, the packets'
// blocks as in the files (options and comments kept) with the interface id
// renumbered.
class PcapngSink : public QuerySink {
  public:
    PcapngSink(ByteOutput& out, std::string_view application, std::string_view comment);
    PcapngSink(std::FILE* out, std::string_view application, std::string_view comment);
    bool packet(const QueryPacket& p) override;
    bool ok() const { return ok_; }

  private:
    void header(std::string_view application, std::string_view comment);
    bool write(std::span<const std::byte> b);
    std::unique_ptr<FileOutput> file_;  // the FILE* constructor's
    ByteOutput* out_;
    bool ok_ = true;
    std::vector<std::pair<std::vector<std::byte>, uint32_t>> interfaces_;  // IDB -> output id
    std::vector<std::pair<uint64_t, uint32_t>> seen_;  // (source << 32 | id) -> output id
    std::vector<std::byte> epb_;
};

// Flows of the result: one JSON line each, in the order of their first
// packet. A flow is the protocol and the two endpoints; its direction is the
// first packet's.
class FlowSink : public QuerySink {
  public:
    FlowSink();
    ~FlowSink() override;
    bool packet(const QueryPacket& p) override;
    void write(std::FILE* out) const;
    std::size_t size() const;

  private:
    struct Table;
    std::unique_ptr<Table> t_;
};

}  // namespace sluice::index
