// Control-path logging to stderr, one line per event.
#pragma once

#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace sluice::collector {

inline void log_line(const std::string& s) {
    std::fputs(s.c_str(), stderr);
    std::fflush(stderr);
}

template <class... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
    log_line("sluice-collector: " + fmt::format(f, std::forward<Args>(args)...) + "\n");
}

template <class... Args>
void log_warning(fmt::format_string<Args...> f, Args&&... args) {
    log_line("sluice-collector: warning: " + fmt::format(f, std::forward<Args>(args)...) + "\n");
}

template <class... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
    log_line("sluice-collector: error: " + fmt::format(f, std::forward<Args>(args)...) + "\n");
}

}  // namespace sluice::collector
