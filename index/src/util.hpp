// Small helpers shared by the index's sources.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>

namespace sluice::index::detail {

// "cannot open PATH: No such file or directory", from errno.
inline std::string errno_message(const char* what, const std::string& path) {
    return std::string(what) + " " + path + ": " + std::strerror(errno);
}

}  // namespace sluice::index::detail
