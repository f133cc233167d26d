// Small helpers shared by the index's sources.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::index::detail {

// "cannot open PATH: No such file or directory", from errno.
inline std::string errno_message(const char* what, const std::string& path) {
    return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// Opens (O_CREAT | `flags`) an index file with its data file's permissions,
// set exactly whatever the umask: an index tells which addresses, ports and
// times its data holds, so exactly who may read the data (the collector's
// --file-mode) may read it. -1 and errno on failure.
inline int open_index_file(const std::string& path, const std::string& data_path, int flags) {
    struct stat st {};
    const mode_t mode =
        (::stat(data_path.c_str(), &st) == 0 ? st.st_mode & 0777 : mode_t{0600}) | S_IWUSR;
    const int fd = ::open(path.c_str(), flags | O_CREAT | O_CLOEXEC, mode);
    if (fd >= 0 && ::fchmod(fd, mode) != 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

}  // namespace sluice::index::detail
