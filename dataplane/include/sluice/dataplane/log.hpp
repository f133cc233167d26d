// Control-plane logging to stderr. Never called from a per-packet path.
#pragma once

#include <fmt/format.h>

#include <cstdio>

namespace sluice::dataplane {

template <class... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
    std::fputs(("sluice: " + fmt::format(f, std::forward<Args>(args)...) + "\n").c_str(), stderr);
}

template <class... Args>
void log_warning(fmt::format_string<Args...> f, Args&&... args) {
    std::fputs(("sluice: warning: " + fmt::format(f, std::forward<Args>(args)...) + "\n").c_str(),
               stderr);
}

template <class... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
    std::fputs(("sluice: error: " + fmt::format(f, std::forward<Args>(args)...) + "\n").c_str(),
               stderr);
}

}  // namespace sluice::dataplane
