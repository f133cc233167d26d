#include "sluice/index/writer.hpp"

#include <cerrno>
#include <cstring>

#include "util.hpp"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::index {
namespace {

// Records the disk had no room for are kept up to this much; past it the
// file's index is given up (sluice-query --reindex rebuilds it).
constexpr std::size_t kMaxUnwritten = 64u << 20;

std::string base_name(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Writer::Writer(const BuildSettings& s) : set_(s) {}

Writer::~Writer() {
    if (fd_ >= 0) ::close(fd_);
}

void Writer::reset_file_state() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    active_ = closed_known_ = false;
    unwritten_.clear();
    index_size_ = 0;
    open_.reset();
    block_start_ = block_end_ = 0;
    block_interfaces_.clear();
    interfaces_ = 0;
    packets_ = blocks_ = max_ts_ = 0;
    min_ts_ = UINT64_MAX;
    rollback();
}

void Writer::stop(const std::string& why) {
    error_ = why;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    active_ = closed_known_ = false;
    unwritten_.clear();
    rollback();
}

bool Writer::start(const std::string& data_path, Compression c, uint64_t data_start) {
    reset_file_state();
    data_path_ = data_path;
    index_path_ = index_path(data_path);
    compression_ = c;
    error_.clear();
    fd_ = detail::open_index_file(index_path_, data_path_, O_WRONLY | O_TRUNC);
    if (fd_ < 0) {
        stop(detail::errno_message("cannot create", index_path_));
        return false;
    }
    IndexHeader h;
    h.compression = c;
    h.data_start = data_start;
    append_header(unwritten_, h);
    block_start_ = block_end_ = seal_start_ = data_start;
    active_ = true;
    return flush();
}

std::vector<std::string> Writer::resume(const std::string& data_path, Compression c,
                                        uint64_t committed) {
    std::vector<std::string> log;
    const bool same = data_path == data_path_ && c == compression_ && committed == block_end_;
    if (same && active_) return log;  // a rolled-back batch: nothing to redo
    if (same && closed_known_) {
        // Closed by this process at this very offset: continue where it ended.
        fd_ = ::open(index_path_.c_str(), O_WRONLY | O_CLOEXEC);
        struct stat st {};
        if (fd_ >= 0 && ::fstat(fd_, &st) == 0 && uint64_t(st.st_size) == index_size_) {
            active_ = true;
            closed_known_ = false;
            return log;
        }
    }
    reset_file_state();
    data_path_ = data_path;
    index_path_ = index_path(data_path);
    compression_ = c;
    error_.clear();
    const std::string name = base_name(index_path_);

    std::string why;
    std::optional<Index> ix = load_index(index_path_, &why);
    if (ix && ix->header.compression != c) {
        why = "it describes a file of the other compression";
        ix.reset();
    }
    if (ix && ix->header.data_start > committed) {
        why = "it begins past the data's committed end";
        ix.reset();
    }
    std::vector<pcapng::Interface> interfaces;
    uint64_t covered = 0;
    std::size_t keep_bytes = 0;
    if (ix) {
        // The blocks that end within the committed data stay; the rest (and
        // a Finish record: the file goes on) is cut.
        const IndexPrefix p = prefix_within(*ix, committed);
        if (p.blocks < ix->blocks.size()) {
            log.push_back(std::to_string(ix->blocks.size() - p.blocks) + " block(s) of " + name +
                          " described data past the committed end: cut");
        }
        keep_bytes = p.bytes;
        covered = p.covered_end;
        bool valid = true;
        for (uint32_t i = 0; i < p.interfaces && valid; ++i) {
            auto parsed = pcapng::parse_interface(ix->interfaces[i]);
            valid = parsed.has_value();
            if (valid) interfaces.push_back(std::move(*parsed));
        }
        if (!valid) {
            ix.reset();
            why = "an interface record holds no valid interface block";
        } else {
            for (std::size_t i = 0; i < p.blocks; ++i) {
                const BlockRecord& b = ix->blocks[i];
                packets_ += b.packets;
                if (b.packets) {
                    min_ts_ = std::min(min_ts_, b.min_ts_ns);
                    max_ts_ = std::max(max_ts_, b.max_ts_ns);
                }
            }
            blocks_ = p.blocks;
        }
    }
    if (!ix) {
        interfaces.clear();
        packets_ = blocks_ = max_ts_ = 0;
        min_ts_ = UINT64_MAX;
    }

    const int data_fd = ::open(data_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (data_fd < 0) {
        stop(detail::errno_message("cannot read", data_path));
        log.push_back("error: " + error_ + "; the file is not indexed");
        return log;
    }
    std::vector<std::byte> records;
    DataIndexed r;
    if (ix) {
        r = index_data(data_fd, c, covered, committed, false, interfaces, set_, records);
    } else {
        r = index_data(data_fd, c, 0, committed, true, interfaces, set_, records);
        std::vector<std::byte> head;
        IndexHeader h;
        h.compression = c;
        h.data_start = r.data_start;
        append_header(head, h);
        records.insert(records.begin(), head.begin(), head.end());
    }
    ::close(data_fd);
    if (!r.ok || r.covered_end != committed) {
        stop(name + ": the data cannot be indexed up to its committed end (" +
             (r.ok ? "it ends inside a block" : r.error) + ")");
        log.push_back("error: " + error_ + "; the file is not indexed");
        return log;
    }
    fd_ = detail::open_index_file(index_path_, data_path, O_WRONLY);
    if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(keep_bytes)) != 0) {
        stop(detail::errno_message("cannot write", index_path_));
        log.push_back("error: " + error_ + "; the file is not indexed");
        return log;
    }
    if (!ix && !why.empty() && committed > 0)
        log.push_back(name + " rebuilt from the data (" + why + ")");
    if (ix && r.packets)
        log.push_back(name + ": indexed " + std::to_string(committed - covered) +
                      " bytes of data it did not cover yet (" + std::to_string(r.packets) +
                      " packets)");
    index_size_ = keep_bytes;
    unwritten_ = std::move(records);
    packets_ += r.packets;
    blocks_ += r.blocks;
    if (r.packets) {
        min_ts_ = std::min(min_ts_, r.min_ts_ns);
        max_ts_ = std::max(max_ts_, r.max_ts_ns);
    }
    interfaces_ = static_cast<uint32_t>(interfaces.size());
    block_start_ = block_end_ = seal_start_ = committed;
    active_ = true;
    if (!flush()) log.push_back("error: " + error_);
    return log;
}

void Writer::interface(std::span<const std::byte> idb, uint64_t batch_end) {
    if (!active_) return;
    pending_interfaces_.push_back({batch_end, pending_idb_.size(), idb.size()});
    pending_idb_.insert(pending_idb_.end(), idb.begin(), idb.end());
}

void Writer::add_packet(uint64_t ts_ns, std::span<const std::byte> frame, uint64_t batch_end) {
    const FrameKeys k = frame_keys(frame);
    batch_.add_keys(ts_ns, {k.keys.data(), k.count}, {k.protos.data(), k.proto_count});
    batch_.add_bytes(batch_end - batch_done_);
    batch_done_ = batch_end;
    ++batch_packets_;
    batch_min_ = std::min(batch_min_, ts_ns);
    batch_max_ = std::max(batch_max_, ts_ns);
    // A block may end after any packet of a plain file; in a .zst file only
    // where a zstd frame ends: at the end of a commit.
    if (compression_ == Compression::None &&
        (open_sealed_ ? batch_.full(set_) : open_.full_with(batch_, set_)))
        seal(batch_end);
}

void Writer::seal(uint64_t batch_end) {
    // The open block's interfaces (not yet written), then the batch's up to here.
    if (!open_sealed_) {
        for (const auto& [id, idb] : block_interfaces_)
            append_interface(sealed_, id, idb);
    }
    for (; interfaces_sealed_ < pending_interfaces_.size() &&
           pending_interfaces_[interfaces_sealed_].batch_end <= batch_end;
         ++interfaces_sealed_) {
        const PendingInterface& pi = pending_interfaces_[interfaces_sealed_];
        append_interface(sealed_, interfaces_ + uint32_t(interfaces_sealed_),
                         {pending_idb_.data() + pi.offset, pi.size});
    }
    // The open block stays as committed (a rollback needs it): its copy
    // takes the batch.
    seal_scratch_.reset();
    if (!open_sealed_) seal_scratch_.copy_from(open_);
    seal_scratch_.merge_from(batch_);
    const uint64_t end = block_end_ + batch_end;
    seal_scratch_.close(seal_start_, end, sealed_);
    seal_start_ = end;
    open_sealed_ = true;
    ++sealed_blocks_;
}

void Writer::close_block(uint64_t end) {
    for (auto& [id, idb] : block_interfaces_)
        append_interface(unwritten_, id, idb);
    block_interfaces_.clear();
    open_.close(block_start_, end, unwritten_);
    block_start_ = seal_start_ = end;
    ++blocks_;
}

bool Writer::commit(uint64_t before, uint64_t after, uint64_t batch_bytes) {
    if (!active_) {
        rollback();
        return true;
    }
    if (before != block_end_) {
        // Sealed blocks were placed at the committed end; a batch written
        // anywhere else cannot be described. Not expected from the collector.
        stop(index_path_ + ": a batch written at " + std::to_string(before) +
             ", not at the committed end " + std::to_string(block_end_) +
             "; run sluice-query --reindex on the file once it is complete");
        return false;
    }
    if (batch_bytes > batch_done_) batch_.add_bytes(batch_bytes - batch_done_);
    if (open_sealed_) {
        // Blocks ended inside the batch: the open block went into the first.
        open_.reset();
        block_interfaces_.clear();
        block_start_ = seal_start_;
    }
    for (std::size_t i = interfaces_sealed_; i < pending_interfaces_.size(); ++i) {
        const PendingInterface& pi = pending_interfaces_[i];
        block_interfaces_.emplace_back(
            interfaces_ + uint32_t(i),
            std::vector<std::byte>(pending_idb_.begin() + std::ptrdiff_t(pi.offset),
                                   pending_idb_.begin() + std::ptrdiff_t(pi.offset + pi.size)));
    }
    interfaces_ += uint32_t(pending_interfaces_.size());
    open_.merge_from(batch_);
    unwritten_.insert(unwritten_.end(), sealed_.begin(), sealed_.end());
    blocks_ += sealed_blocks_;
    packets_ += batch_packets_;
    if (batch_packets_) {
        min_ts_ = std::min(min_ts_, batch_min_);
        max_ts_ = std::max(max_ts_, batch_max_);
    }
    block_end_ = after;
    if (open_.full(set_) && block_end_ > block_start_) close_block(after);
    rollback();  // the batch's state is spent
    return flush();
}

void Writer::rollback() {
    batch_.reset();
    batch_done_ = 0;
    open_sealed_ = false;
    seal_start_ = block_start_;
    sealed_.clear();
    sealed_blocks_ = 0;
    batch_packets_ = batch_max_ = 0;
    batch_min_ = UINT64_MAX;
    pending_interfaces_.clear();
    pending_idb_.clear();
    interfaces_sealed_ = 0;
}

bool Writer::flush() {
    if (unwritten_.empty()) return true;
    std::size_t done = 0;
    while (done < unwritten_.size()) {
        const ssize_t n = ::pwrite(fd_, unwritten_.data() + done, unwritten_.size() - done,
                                   static_cast<off_t>(index_size_ + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int e = n < 0 ? errno : ENOSPC;
            // No partial record stays behind: the next try rewrites it whole.
            if (::ftruncate(fd_, static_cast<off_t>(index_size_)) != 0) {
                // The reader ignores a torn record anyway.
            }
            errno = e;
            error_ = detail::errno_message("cannot write", index_path_);
            if (unwritten_.size() > kMaxUnwritten) {
                stop(error_ + "; its index is given up: run sluice-query --reindex " + data_path_ +
                     " once the file is complete");
            }
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    index_size_ += done;
    unwritten_.clear();
    return true;
}

bool Writer::finish() {
    if (!active_) {
        reset_file_state();
        return true;
    }
    rollback();
    if (block_end_ > block_start_) close_block(block_end_);
    FinishRecord f;
    f.data_end = block_end_;
    f.packets = packets_;
    f.blocks = blocks_;
    f.min_ts_ns = packets_ ? min_ts_ : 0;
    f.max_ts_ns = max_ts_;
    append_finish(unwritten_, f);
    const bool ok = flush();
    reset_file_state();
    data_path_.clear();
    return ok;
}

void Writer::close() {
    if (!active_) return;
    rollback();
    if (block_end_ > block_start_) close_block(block_end_);
    const bool ok = flush();
    ::close(fd_);
    fd_ = -1;
    active_ = false;
    closed_known_ = ok;
    rollback();
}

void Writer::abandon() {
    reset_file_state();
    data_path_.clear();
}

}  // namespace sluice::index
