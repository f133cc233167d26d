#include "sluice/collector/output.hpp"

#include <cerrno>
#include <stdexcept>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

namespace sluice::collector {

ZstdCompressor::ZstdCompressor(int level) : cctx_(ZSTD_createCCtx()), level_(level) {
    if (!cctx_) throw std::runtime_error("cannot allocate a zstd context (out of memory)");
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level_);
    // A content checksum per frame: a zstd reader detects a damaged file.
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
}

ZstdCompressor::~ZstdCompressor() {
    ZSTD_freeCCtx(cctx_);
}

bool ZstdCompressor::compress(std::span<const std::byte> in, ByteBuffer& out) {
    out.resize(ZSTD_compressBound(in.size()));
    const std::size_t n = ZSTD_compress2(cctx_, out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n)) {
        out.clear();
        errno = ENOMEM;
        return false;
    }
    out.resize(n);
    return true;
}

OutputFile::~OutputFile() {
    close();
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), size_(o.size_), path_(std::move(o.path_)) {}

OutputFile& OutputFile::operator=(OutputFile&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = std::exchange(o.fd_, -1);
        size_ = o.size_;
        path_ = std::move(o.path_);
    }
    return *this;
}

bool sync_directory(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    const int e = errno;
    ::close(fd);
    errno = e;
    return ok;
}

bool OutputFile::create(const std::string& path, unsigned mode) {
    close();
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd_ < 0) return false;
    if (::fchmod(fd_, mode) != 0) {
        const int e = errno;
        ::close(fd_);
        ::unlink(path.c_str());
        fd_ = -1;
        errno = e;
        return false;
    }
    size_ = 0;
    path_ = path;
    return true;
}

bool OutputFile::reopen(const std::string& path, uint64_t offset, uint64_t* discarded) {
    close();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return false;
    }
    const uint64_t have = static_cast<uint64_t>(st.st_size);
    if (have < offset) {
        ::close(fd);
        errno = ERANGE;
        return false;
    }
    if (have > offset && ::ftruncate(fd, static_cast<off_t>(offset)) != 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return false;
    }
    if (discarded) *discarded = have - offset;
    fd_ = fd;
    size_ = offset;
    path_ = path;
    return true;
}

bool OutputFile::append(std::span<const std::byte> bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                                   static_cast<off_t>(size_ + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            // Leave no partial block behind: the next commit starts clean.
            const bool restored = ::ftruncate(fd_, static_cast<off_t>(size_)) == 0;
            (void)restored;  // nothing better to do: the next reopen() cuts it too
            errno = e;
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    size_ += done;
    return true;
}

bool OutputFile::append(const Batch& batch) {
    constexpr std::size_t kMaxIov = 1024;  // IOV_MAX on Linux
    struct iovec iov[kMaxIov];
    std::size_t seg = 0, skip = 0;
    uint64_t at = size_;
    while (seg < batch.segments()) {
        const std::size_t n = batch.iovecs(seg, iov, kMaxIov);
        iov[0].iov_base = static_cast<std::byte*>(iov[0].iov_base) + skip;
        iov[0].iov_len -= skip;
        const ssize_t w = ::pwritev(fd_, iov, static_cast<int>(n), static_cast<off_t>(at));
        if (w < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            const bool restored = ::ftruncate(fd_, static_cast<off_t>(size_)) == 0;
            (void)restored;  // nothing better to do: the next reopen() cuts it too
            errno = e;
            return false;
        }
        at += static_cast<uint64_t>(w);
        // Step over what was written: whole segments, then into the next.
        std::size_t left = static_cast<std::size_t>(w);
        for (std::size_t k = 0; k < n && left > 0; ++k) {
            if (left >= iov[k].iov_len) {
                left -= iov[k].iov_len;
                ++seg;
                skip = 0;
            } else {
                skip += left;
                left = 0;
            }
        }
    }
    size_ = at;
    return true;
}

bool OutputFile::sync() {
    return ::fdatasync(fd_) == 0;
}

void OutputFile::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

}  // namespace sluice::collector
