// One pcapng output file, plain or zstd-compressed. Every write() appends
// whole pcapng blocks; with zstd each write() is one complete zstd frame, so
// the file ends on a frame boundary after every commit and can be cut back
// to any committed offset (a zstd reader decodes concatenated frames as one
// stream).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sluice/collector/batch.hpp"
#include "sluice/session/byte_buffer.hpp"

struct ZSTD_CCtx_s;

namespace sluice::collector {

using session::ByteBuffer;

enum class Compression : uint8_t { None, Zstd };

// fsync of a directory: after a file was created in it (or renamed), so the
// file's name survives a power loss too. False and errno on failure.
bool sync_directory(const std::string& dir);

// The shared zstd context and its output buffer (one per collector thread).
class ZstdCompressor {
  public:
    explicit ZstdCompressor(int level);
    ~ZstdCompressor();
    ZstdCompressor(const ZstdCompressor&) = delete;
    ZstdCompressor& operator=(const ZstdCompressor&) = delete;
    // One zstd frame holding `in`; false on a zstd error (out of memory).
    bool compress(std::span<const std::byte> in, ByteBuffer& out);

  private:
    ZSTD_CCtx_s* cctx_;
    int level_;
};

class OutputFile {
  public:
    OutputFile() = default;
    ~OutputFile();
    OutputFile(OutputFile&& o) noexcept;
    OutputFile& operator=(OutputFile&& o) noexcept;

    // Creates `path` (it must not exist) with exactly `mode` (the umask does
    // not widen or narrow it). False and errno on failure.
    bool create(const std::string& path, unsigned mode);
    // Opens an existing file and cuts it to `offset` bytes: what follows was
    // written after the last commit. `discarded` receives how many bytes went.
    // False and errno on failure; errno ERANGE when the file is shorter than
    // `offset` (committed data is missing).
    bool reopen(const std::string& path, uint64_t offset, uint64_t* discarded);

    // Appends `bytes` completely, or restores the file to its previous size
    // and returns false (errno says why: ENOSPC, EIO, ...).
    bool append(std::span<const std::byte> bytes);
    // The same for a gathered batch (pwritev).
    bool append(const Batch& batch);
    bool sync();  // fdatasync
    void close();

    bool is_open() const { return fd_ >= 0; }
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }

  private:
    int fd_ = -1;
    uint64_t size_ = 0;
    std::string path_;
};

}  // namespace sluice::collector
